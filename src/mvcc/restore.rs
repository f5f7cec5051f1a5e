//! Restoring the store from a backend's `key` bucket, as etcd does at boot (3.4.23
//! `mvcc/kvstore.go: restore`, `restoreChunk`, `restoreIntoIndex`), and HashKV computed by
//! streaming that bucket (`kvstore.go: HashByRev`) so that values are never held in memory.
//!
//! The restored store is *index-only*: the key index, the lessor and the revisions are exact,
//! but the modelled key bucket is empty (the values stay in the db file). Its
//! [`MvccStore::hash_kv`] therefore does not apply; use [`RestoredStore::hash_kv_stream`] and feed
//! it the bucket again. The revisions the index holds are kept beside it as bare slots (revision,
//! tombstone mark, key id; spilled like the bucket's), from which a resumed compaction and
//! HashKV's `Keep` are walked (`super::generations`).

use serde::Serialize;

use std::sync::Arc;

use super::bucket::{Compacted, KeyBucket, Slot, ValueFile};
use super::generations::Generations;
use super::key_index::{CurrentValue, KeyState};
use super::lease::Lease;
use super::revision::{Revision, RevisionSet};
use super::store::{HashKv, MvccStore};
use super::{EtcdVersion, MvccError};

/// What a restore saw besides the state itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreSummary {
    /// Key-bucket entries fed to the index.
    pub entries: u64,
    /// Tombstones of keys never seen before (etcd 3.4.23 skips them; no hash effect).
    pub orphan_tombstones: u64,
    /// Entries below revision 1 (outside etcd's restore range `[1_0, MaxInt64_MaxInt64)`).
    pub out_of_range: u64,
    /// Leases keys are attached to that are not in the `lease` bucket (etcd only logs them).
    pub missing_leases: Vec<i64>,
    /// A compaction scheduled but not finished, resumed at restore (`compactLockfree`).
    pub resumed_compaction: Option<i64>,
}

/// A restore in progress: feed leases and key-bucket entries in bucket order, then
/// [`Restore::finish`].
#[derive(Debug)]
pub struct Restore {
    store: MvccStore,
    summary: RestoreSummary,
    /// `currentRev` of `restoreIntoIndex`: the main revision of the last entry seen.
    last_main: i64,
    /// The revisions the key index holds, as bare slots.
    index_slots: KeyBucket,
}

/// A store restored from a backend, with what is needed to hash the backend's bucket.
#[derive(Debug)]
pub struct RestoredStore {
    /// The index-only store (see the module documentation).
    pub store: MvccStore,
    /// What the restore saw.
    pub summary: RestoreSummary,
    /// A resumed compaction (see [`PendingCompaction`]).
    pending_compaction: Option<PendingCompaction>,
    /// The revisions the key index holds, as bare slots.
    index_slots: KeyBucket,
}

/// A compaction resumed at restore: its revision, the revisions its job keeps (it deletes every
/// other bucket entry at or below it, `scheduleCompaction`, so hashing skips them), and those it
/// deletes from the bucket that the key index keeps (`bucket::Slot::index_only`).
#[derive(Clone, Debug)]
struct PendingCompaction {
    at: i64,
    kept: RevisionSet,
    index_only: RevisionSet,
}

impl PendingCompaction {
    fn deletes(&self, revision: Revision) -> bool {
        revision.main_revision <= self.at && !self.kept.contains(&revision)
    }
}

impl Restore {
    /// An empty restore following `version`'s rules.
    pub fn new(version: EtcdVersion) -> Self {
        Restore {
            store: MvccStore::with_version(version),
            summary: RestoreSummary::default(),
            last_main: 1,
            index_slots: KeyBucket::default(),
        }
    }

    /// Keeps at most `limit` index slots in memory (tests force spilling with a small one).
    #[cfg(test)]
    pub(crate) fn set_hot_limit(&mut self, limit: usize) {
        self.index_slots = KeyBucket::with_limit(limit);
        self.store.set_bucket_hot_limit(limit);
    }

    /// A `lease` bucket record (`lessor.initAndRecover`; TTL kept as stored).
    pub fn lease(&mut self, id: i64, ttl: i64, remaining_ttl: i64) {
        self.store.lessor.leases.insert(
            id,
            Lease {
                requested_ttl: ttl,
                remaining_ttl,
                ..Lease::default()
            },
        );
    }

    /// An `alarm` bucket record (`v3alarm.NewAlarmStore`), and the applier etcd's
    /// `restoreAlarms` installs for it: capped with a NOSPACE alarm, corrupt (which wins) with a
    /// CORRUPT alarm.
    pub fn alarm(&mut self, alarm: i32, member_id: u64) {
        const NOSPACE: i32 = 1;
        const CORRUPT: i32 = 2;
        let store = &mut self.store;
        store.alarms.insert((alarm, member_id));
        if store.alarms.iter().any(|(a, _)| *a == CORRUPT) {
            store.applier_mode = super::ApplierMode::Corrupt;
        } else if store.alarms.iter().any(|(a, _)| *a == NOSPACE) {
            store.applier_mode = super::ApplierMode::Capped;
        }
    }

    /// One `key`-bucket entry in bucket order: its revision key and the decoded `KeyValue`
    /// fields the index needs. Returns false when etcd's restore skips the entry.
    pub fn entry(
        &mut self,
        revision: Revision,
        tombstone: bool,
        key: &[u8],
        create_revision: i64,
        version: i64,
        lease: i64,
    ) -> bool {
        if revision.main_revision < 1 {
            self.summary.out_of_range += 1;
            return false;
        }
        self.summary.entries += 1;
        self.last_main = revision.main_revision;
        match self.store.index.get_mut(key) {
            Some(ki) => {
                let id = ki.id;
                let held = if tombstone {
                    // ErrRevisionNotFound on a key already deleted is ignored.
                    let held = ki.tombstone(revision);
                    ki.attached_lease = 0;
                    held
                } else {
                    ki.put(revision);
                    ki.attached_lease = lease;
                    true
                };
                if held {
                    self.index_slots.push(Slot::bare(revision, tombstone, id));
                }
                #[cfg(test)]
                if tombstone {
                    self.store.history.tombstone(key, revision);
                } else {
                    self.store.history.put(key, revision);
                }
                true
            }
            None if tombstone => {
                self.summary.orphan_tombstones += 1;
                false
            }
            None => {
                let created = Revision::new(create_revision, 0);
                let ki = self.store.index.insert_new(key, |id| {
                    KeyState::restored(id, created, revision, version, lease)
                });
                self.index_slots.push(Slot::bare(revision, false, ki.id));
                #[cfg(test)]
                self.store.history.restored(key, created, revision, version);
                true
            }
        }
    }

    /// Ends the restore with the `meta` bucket's `finishedCompactRev` / `scheduledCompactRev`
    /// (main revisions, if present): current revision, compact revision, lease attachment,
    /// and a resumed compaction.
    pub fn finish(mut self, finished: Option<i64>, scheduled: Option<i64>) -> RestoredStore {
        let store = &mut self.store;
        if let Some(finished) = finished {
            store.compact_revision = finished;
        }
        store.current_revision = self.last_main.max(store.compact_revision);
        // keyToLease → lessor.Attach; a missing lease is only logged by etcd.
        let mut missing = std::collections::BTreeSet::new();
        for (key, ki) in store.index.iter_mut() {
            let id = ki.attached_lease;
            if id == 0 {
                continue;
            }
            match store.lessor.leases.get_mut(&id) {
                Some(lease) => {
                    lease.keys.insert(key.into());
                }
                None => {
                    missing.insert(id);
                    ki.attached_lease = 0;
                }
            }
        }
        self.summary.missing_leases = missing.into_iter().collect();
        let mut pending_compaction = None;
        // restore: a scheduled revision <= compactMainRev is dropped (0 = none); then
        // compactLockfree refuses one above currentRev (ErrFutureRev).
        let scheduled = scheduled.unwrap_or(0);
        if scheduled != 0
            && scheduled > store.compact_revision
            && scheduled <= store.current_revision
        {
            // compactLockfree: compactMainRev := rev, kvindex.Compact(rev), then the job
            // deletes the bucket entries <= rev not kept.
            let previous = store.compact_revision;
            store.compact_revision = scheduled;
            pending_compaction =
                resume_compaction(store, &mut self.index_slots, previous, scheduled);
            self.summary.resumed_compaction = Some(scheduled);
        }
        RestoredStore {
            store: self.store,
            summary: self.summary,
            pending_compaction,
            index_slots: self.index_slots,
        }
    }
}

/// `kvindex.Compact(at)` on a restored index, from its slots: the pending job's keep set and
/// index-only revisions. `None` (no compaction) when the slots cannot be read back; the store
/// is then marked so that HashKV refuses to answer.
fn resume_compaction(
    store: &mut MvccStore,
    index_slots: &mut KeyBucket,
    previous: i64,
    at: i64,
) -> Option<PendingCompaction> {
    let rules = store.rules;
    #[cfg(test)]
    store.history.compact(at, rules);
    let ids = store.index.id_bound();
    let mut slots = index_slots.slots();
    let generations = Generations::walk(slots.by_ref(), ids, at, previous, rules);
    if let Some(why) = slots.error().map(str::to_string) {
        store.bucket.note_error(why);
        return None;
    }
    let mut kept = RevisionSet::default();
    let mut index_only = RevisionSet::default();
    let compacted = index_slots.compact(at, ids, |slot| {
        let decided = generations.compacted(slot);
        match decided {
            Compacted::Keep => {
                kept.insert(slot.revision);
            }
            Compacted::IndexOnly => {
                index_only.insert(slot.revision);
            }
            Compacted::Drop => {}
        }
        decided
    });
    let referenced = match compacted {
        Ok(referenced) => referenced,
        Err(why) => {
            store.bucket.note_error(why);
            return None;
        }
    };
    store.index.retain(&referenced, |ki| {
        !ki.empties_at(at, rules.keep_tombstone_at_compaction)
    });
    Some(PendingCompaction {
        at,
        kept,
        index_only,
    })
}

impl RestoredStore {
    /// Whether the resumed compaction's job deletes the bucket entry at `revision` (it is in
    /// the db, but not in the state etcd converges to).
    pub fn deleted_by_resumed_compaction(&self, revision: Revision) -> bool {
        self.pending_compaction
            .as_ref()
            .is_some_and(|p| p.deletes(revision))
    }

    /// Turns the index-only store into a full one from the `key` bucket: feed every bucket
    /// entry in bucket order to the returned loader, which keeps a digest per entry (HashKV)
    /// and each live key's current value (a txn compares it), never every value.
    pub fn into_loader(self) -> BucketLoader {
        BucketLoader {
            store: self.store,
            pending_compaction: self.pending_compaction,
            skipped: 0,
            values: None,
            values_len: 0,
            pending: Vec::new(),
            values_unavailable: false,
        }
    }

    /// Starts `HashByRev(revision)` (0 = current): feed every `key`-bucket entry in order to
    /// the returned stream, then [`HashKvStream::finish`]. Errors as [`MvccStore::hash_kv`].
    pub fn hash_kv_stream(&self, revision: i64) -> Result<HashKvStream, MvccError> {
        let store = &self.store;
        let hash_revision = store.hash_revision(revision)?;
        let (compact_revision, current_revision) = (store.compact_revision, store.current_revision);
        let (keep_any, keep) = self.keep_for_hash_sorted(hash_revision)?;
        Ok(HashKvStream {
            crc: crc32c::crc32c(b"key"),
            keep_any,
            keep,
            keep_cursor: Default::default(),
            compact_revision,
            current_revision,
            hash_revision,
            skip_tombstone_at_compaction: store.rules.keep_tombstone_at_compaction,
            pending_compaction: self.pending_compaction.clone(),
        })
    }

    /// `treeIndex.Keep(revision)` reduced to what the hash needs: whether it is non-empty, and
    /// its members at or below the compact revision (revisions above it are hashed regardless),
    /// ascending — a caller looks them up in bucket order. Walked from the index's slots.
    fn keep_for_hash_sorted(&self, revision: i64) -> Result<(bool, Vec<Revision>), MvccError> {
        let store = &self.store;
        if store.compact_revision < 1 {
            return Ok((false, Vec::new()));
        }
        let mut slots = self.index_slots.slots();
        let ids = store.index.id_bound();
        let generations = Generations::walk(
            slots.by_ref(),
            ids,
            revision,
            store.compact_revision,
            store.rules,
        );
        if slots.error().is_some() || self.index_slots.spill_error().is_some() {
            return Err(MvccError::SpillUnreadable);
        }
        let mut below: Vec<Revision> = (0..ids as u32)
            .filter_map(|id| generations.keep(id))
            .filter(|r| r.main_revision <= store.compact_revision)
            .collect();
        below.sort_unstable();
        Ok((generations.any_keep(), below))
    }
}

/// Streams a backend's `key` bucket into a restored store (see [`RestoredStore::into_loader`]).
#[derive(Debug)]
pub struct BucketLoader {
    store: MvccStore,
    pending_compaction: Option<PendingCompaction>,
    skipped: u64,
    /// The live keys' current values, and how many bytes of it are written.
    values: Option<Arc<ValueFile>>,
    values_len: u64,
    /// Values not yet written, to go at `values_len` (one write a MiB, not one per key).
    pending: Vec<u8>,
    /// Creating the value file failed: values stay in memory.
    values_unavailable: bool,
}

/// The value file is written in pieces of about this size.
const VALUE_WRITE_BYTES: usize = 1 << 20;

impl BucketLoader {
    /// One bucket entry, in bucket order. Entries the resumed compaction's job deletes are
    /// dropped, as are keys shorter than a revision and revisions below 1 (outside etcd's
    /// restore range `[1_0, MaxInt64_MaxInt64)`, and out of order as bytes).
    pub fn feed(&mut self, bucket_key: &[u8], value: &[u8]) {
        let Some((revision, tombstone)) = Revision::from_bucket_key(bucket_key) else {
            self.skipped += 1;
            return;
        };
        if revision.main_revision < 1 {
            self.skipped += 1;
            return;
        }
        let key = super::bucket::decode_key_value(value).key;
        if let Some(pending) = &self.pending_compaction {
            if pending.deletes(revision) {
                if pending.index_only.contains(&revision) {
                    let id = self.store.index.slot_id(key);
                    let slot = Slot::of(revision, tombstone, value, id, true);
                    self.store.bucket.push(slot);
                }
                return;
            }
        }
        let id = self.store.index.slot_id(key);
        self.store.bucket.append(revision, tombstone, value, id);
        #[cfg(test)]
        self.store
            .bucket
            .reference
            .append_raw(revision, tombstone, value);
        if tombstone {
            return;
        }
        // The newest revision of a live key: its value is what apply reads from now on. It
        // goes to the value file (in memory only when no temporary file can be written).
        let Some(ki) = self.store.index.get_mut(key) else {
            return;
        };
        if ki.newest_alive() != Some(revision) {
            return;
        }
        let file = match &self.values {
            Some(file) => Some(file),
            None if !self.values_unavailable => {
                self.values = ValueFile::create().map(Arc::new);
                self.values_unavailable = self.values.is_none();
                self.values.as_ref()
            }
            None => None,
        };
        let len = u32::try_from(value.len()).ok();
        ki.current = match (file, len) {
            (Some(_), Some(len)) => {
                let offset = self.values_len + self.pending.len() as u64;
                self.pending.extend_from_slice(value);
                CurrentValue::InFile { offset, len }
            }
            _ => CurrentValue::Inline(value.to_vec()),
        };
        if self.pending.len() >= VALUE_WRITE_BYTES {
            self.flush_values();
        }
    }

    /// Writes the buffered values to the value file. A failed write marks the file failed:
    /// HashKV then answers `MvccError::SpillUnreadable` (the values it holds are lost).
    fn flush_values(&mut self) {
        if let Some(file) = &self.values {
            if !self.pending.is_empty() && !file.write(self.values_len, &self.pending) {
                file.mark_failed();
            }
        }
        self.values_len += self.pending.len() as u64;
        self.pending.clear();
    }

    /// Entries dropped as not restorable (a short key, a revision below 1).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The full store.
    pub fn finish(mut self) -> MvccStore {
        self.flush_values();
        self.store.values = self.values;
        self.store
    }
}

/// `HashByRev` over a streamed `key` bucket (see [`RestoredStore::hash_kv_stream`]).
#[derive(Clone, Debug)]
pub struct HashKvStream {
    crc: u32,
    keep_any: bool,
    /// `Keep(hash_revision)`'s members at or below the compact revision, ascending.
    keep: Vec<Revision>,
    /// Where the last lookup in `keep` ended, and for which revision: bucket entries come in
    /// ascending order, so the next lookup starts there.
    keep_cursor: std::cell::Cell<(usize, Revision)>,
    compact_revision: i64,
    current_revision: i64,
    hash_revision: i64,
    skip_tombstone_at_compaction: bool,
    pending_compaction: Option<PendingCompaction>,
}

impl HashKvStream {
    /// One bucket entry: `bucket_key ‖ value` is hashed if `HashByRev` selects it. Keys shorter
    /// than a revision (etcd's `bytesToRev` would panic) are ignored; the caller reports them.
    pub fn feed(&mut self, bucket_key: &[u8], value: &[u8]) {
        let Some((revision, tombstone)) = Revision::from_bucket_key(bucket_key) else {
            return;
        };
        if !self.selects(revision, tombstone) {
            return;
        }
        self.crc = crc32c::crc32c_append(self.crc, bucket_key);
        self.crc = crc32c::crc32c_append(self.crc, value);
    }

    /// Whether `HashByRev` hashes the bucket entry of `revision` (a tombstone or not): what
    /// [`HashKvStream::feed`] decides, from the bucket key alone (never the value).
    pub fn selects(&self, revision: Revision, tombstone: bool) -> bool {
        let main = revision.main_revision;
        if self
            .pending_compaction
            .as_ref()
            .is_some_and(|p| p.deletes(revision))
        {
            return false; // deleted by the resumed compaction's job
        }
        if main > self.hash_revision {
            return false;
        }
        if main <= self.compact_revision && self.keep_any && !self.kept(revision) {
            return false;
        }
        if self.skip_tombstone_at_compaction && main == self.compact_revision && tombstone {
            return false;
        }
        true
    }

    /// Whether `revision` is in `keep`: a few steps on from the last lookup (entries come in
    /// ascending order, so usually none or one), a binary search otherwise.
    fn kept(&self, revision: Revision) -> bool {
        let (mut i, last) = self.keep_cursor.get();
        if revision < last {
            i = self.keep.partition_point(|k| *k < revision);
        } else {
            let mut steps = 0;
            while i < self.keep.len() && self.keep[i] < revision {
                i += 1;
                steps += 1;
                if steps == 8 {
                    i += self.keep[i..].partition_point(|k| *k < revision);
                    break;
                }
            }
        }
        self.keep_cursor.set((i, revision));
        self.keep.get(i) == Some(&revision)
    }

    /// The result for a CRC computed elsewhere: `crc` must be CRC-32C of `"key"` then the
    /// `bucket_key ‖ value` of every entry [selected](HashKvStream::selects), in bucket order —
    /// what feeding the whole bucket would have computed.
    pub fn finish_with_crc(mut self, crc: u32) -> HashKv {
        self.crc = crc;
        self.finish()
    }

    /// The result.
    pub fn finish(self) -> HashKv {
        HashKv {
            hash: self.crc,
            revision: self.current_revision,
            compact_revision: self.compact_revision,
            hash_revision: self.hash_revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store built by puts, deletes and a compaction, restored from its own bucket, hashes
    /// the same at every revision.
    #[test]
    fn restore_from_bucket_matches_the_live_store() {
        let mut live = MvccStore::new();
        live.lease_grant(7, 60).unwrap();
        live.put(b"a", b"1", 0).unwrap();
        live.put(b"b", b"2", 7).unwrap();
        live.put(b"a", b"3", 0).unwrap();
        live.delete_range(super::super::KeyRange::Single(b"b"));
        live.put(b"c", b"4", 7).unwrap();
        live.put(b"b", b"5", 0).unwrap();
        live.compact(4).unwrap();
        live.put(b"a", b"6", 0).unwrap();
        let mut restore = Restore::new(EtcdVersion::V3_4_23);
        restore.lease(7, 60, 0);
        let entries: Vec<(Vec<u8>, Vec<u8>)> = live.bucket_entries();
        for (k, v) in &entries {
            let (rev, tomb) = Revision::from_bucket_key(k).unwrap();
            let kv = super::super::bucket::decode_key_value(v);
            restore.entry(rev, tomb, kv.key, kv.create_revision, kv.version, kv.lease);
        }
        let restored = restore.finish(Some(4), Some(4));
        assert_eq!(restored.store.current_revision(), live.current_revision());
        assert_eq!(restored.store.compact_revision(), 4);
        for rev in [0, 5, 6, 7] {
            let mut stream = restored.hash_kv_stream(rev).unwrap();
            for (k, v) in &entries {
                stream.feed(k, v);
            }
            assert_eq!(stream.finish(), live.hash_kv(rev).unwrap(), "rev {rev}");
        }
        assert_eq!(restored.store.leases()[&7].keys.len(), 1);
    }

    /// A store loaded from its own bucket (current values in the loader's value file) applies
    /// value compares and `ignore_value` puts as the live store does, and hashes the same.
    #[test]
    fn a_loaded_store_reads_its_values_from_the_value_file() {
        use crate::proto::etcdserverpb::{
            compare::TargetUnion, request_op, Compare, CompareResult, CompareTarget,
            InternalRaftRequest, PutRequest, RequestHeader, RequestOp, TxnRequest,
        };
        let mut live = MvccStore::new();
        live.put(b"a", b"1", 0).unwrap();
        live.put(b"b", b"2", 0).unwrap();
        live.put(b"a", b"3", 0).unwrap();
        live.delete_range(super::super::KeyRange::Single(b"b"));
        live.put(b"c", b"4", 0).unwrap();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = live.bucket_entries();
        let mut restore = Restore::new(EtcdVersion::V3_4_23);
        for (k, v) in &entries {
            let (rev, tomb) = Revision::from_bucket_key(k).unwrap();
            let kv = super::super::bucket::decode_key_value(v);
            restore.entry(rev, tomb, kv.key, kv.create_revision, kv.version, kv.lease);
        }
        let mut loader = restore.finish(None, None).into_loader();
        for (k, v) in &entries {
            loader.feed(k, v);
        }
        let mut loaded = loader.finish();
        assert!(loaded.values.is_some(), "values went to the file");
        assert_eq!(loaded.get(b"a"), live.get(b"a"));
        assert_eq!(loaded.get(b"b"), None);
        let put = |key: &[u8], ignore_value: bool| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: bytes::Bytes::copy_from_slice(key),
                value: bytes::Bytes::from_static(b"new"),
                ignore_value,
                ..Default::default()
            })),
        };
        let txn = InternalRaftRequest {
            header: Some(RequestHeader {
                id: 1,
                ..Default::default()
            }),
            txn: Some(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Value as i32,
                    key: bytes::Bytes::from_static(b"a"),
                    target_union: Some(TargetUnion::Value(bytes::Bytes::from_static(b"3"))),
                    ..Default::default()
                }],
                success: vec![put(b"c", true), put(b"d", false)],
                failure: vec![put(b"e", false)],
            }),
            ..Default::default()
        };
        let outcome = loaded.apply_request(&txn);
        assert_eq!(outcome, live.apply_request(&txn));
        assert_eq!(outcome.revision(), Some(7));
        assert_eq!(
            loaded.get(b"c").unwrap().3,
            b"4".to_vec(),
            "ignore_value kept it"
        );
        assert!(loaded.get(b"e").is_none(), "the compare held");
        assert_eq!(loaded.hash_kv(0), live.hash_kv(0));
    }
}
