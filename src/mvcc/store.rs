//! The MVCC store proper (`mvcc/kvstore.go`, `kvstore_txn.go`, `index.go`,
//! `kvstore_compaction.go`): key index, key bucket, lessor, write transactions, compaction and
//! `HashByRev`.

use std::borrow::Cow;
use std::ops::Bound;

use serde::Serialize;

use super::bucket::{decode_key_value, encode_key_value, KeyBucket};
use super::generations::Generations;
use super::key_index::{CurrentValue, KeyAt, KeyState};
use super::keyspace::KeySpace;
use super::lease::{Lease, Lessor, MAX_LEASE_TTL};
use super::revision::Revision;
use super::{ApplyError, ApplyStats, CompactionRules, EtcdVersion, MvccError};
use crate::backend::crc::CrcConcat;

/// CRC-32C of the bucket name `"key"`: the HashKV of an empty (or fully compacted) store.
pub const EMPTY_HASH: u32 = 0x40a4_756d;

/// The result of `HashByRev` / `etcdctl endpoint hashkv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HashKv {
    /// CRC-32C (Castagnoli) over the bucket name and the selected bucket entries.
    pub hash: u32,
    /// The store's current revision when hashed (the response header's `revision`).
    pub revision: i64,
    /// `compact_revision` of the response: the last applied compaction, -1 if none.
    pub compact_revision: i64,
    /// The revision the hash covers (the request's revision, or the current one for 0).
    pub hash_revision: i64,
}

/// A serializable overview of a store's state, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoreSummary {
    pub etcd_version: String,
    pub current_revision: i64,
    pub compact_revision: i64,
    pub consistent_index: u64,
    pub live_keys: usize,
    pub indexed_keys: usize,
    pub bucket_entries: usize,
    pub bucket_value_bytes: usize,
    pub leases: usize,
    pub applier_mode: super::ApplierMode,
    /// Active alarms as (alarm type: 1 NOSPACE, 2 CORRUPT; member id).
    pub alarms: Vec<(i32, u64)>,
}

/// Which keys a range covers, from a request's `key` / `range_end` (`mkGteRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRange<'a> {
    /// No `range_end`: just `key`.
    Single(&'a [u8]),
    /// `range_end == "\0"`: every key `>= key`.
    FromKey(&'a [u8]),
    /// `[key, range_end)`; empty when `range_end <= key`.
    Until(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    /// Decodes etcd's request encoding. An absent and an empty `range_end` are the same thing
    /// for prost (and etcd never marshals an empty one), so empty means a single key.
    pub fn from_request(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::FromKey(key),
            end => KeyRange::Until(key, end),
        }
    }
}

/// One change of a write transaction, remembered so that a transaction etcd would crash in
/// can be rolled back (etcd's batch transaction is never committed in that case): the key's
/// state before the change, `None` for a key the change created.
#[derive(Clone, Debug)]
struct Undo {
    key: Box<[u8]>,
    previous: Option<KeyState>,
}

/// An open write transaction (`storeTxnWrite`): all its changes share `begin_revision + 1`.
#[derive(Debug)]
pub(crate) struct WriteTxn {
    pub begin_revision: i64,
    pub changes: i64,
    undo: Option<Vec<Undo>>,
    /// The reference history as the transaction began (restored on abort).
    #[cfg(test)]
    history_before: Option<super::reference::HistoryIndex>,
}

impl WriteTxn {
    /// The revision reads inside the transaction see (`storeTxnWrite.Range`): its own writes
    /// once it has any.
    pub fn read_revision(&self) -> i64 {
        if self.changes > 0 {
            self.begin_revision + 1
        } else {
            self.begin_revision
        }
    }
}

/// etcd's v3 key-value state as far as the WAL determines it: the MVCC store, the lessor, the
/// applier mode set by alarms and the consistent index. See the module documentation.
#[derive(Clone, Debug)]
pub struct MvccStore {
    pub(crate) version: EtcdVersion,
    pub(crate) rules: CompactionRules,
    /// `currentRev`: the revision of the last completed write transaction (starts at 1).
    pub(crate) current_revision: i64,
    /// `compactMainRev`: the last compaction revision (-1 until the first compaction).
    pub(crate) compact_revision: i64,
    pub(crate) index: KeySpace,
    pub(crate) bucket: KeyBucket,
    pub(crate) lessor: Lessor,
    pub(crate) consistent_index: u64,
    pub(crate) applier_mode: super::apply::ApplierMode,
    pub(crate) alarms: std::collections::BTreeSet<(i32, u64)>,
    pub(crate) strip_top_level_txn_ranges: bool,
    /// The cluster version in force, set by the log ([`super::cluster`]) or by the caller.
    pub(crate) cluster_version: Option<super::cluster::ClusterVersionInForce>,
    pub(crate) downgrade: Option<super::cluster::DowngradeInForce>,
    /// Membership, known when the replay starts at raft index 1.
    pub(crate) members: Option<super::cluster::Members>,
    /// The release is the log's: until it sets a cluster version, the 3.5 cluster requests
    /// are taken as known ([`MvccStore::following_log`]).
    pub(crate) follows_log: bool,
    pub(crate) stats: ApplyStats,
    /// Reused buffers (no per-request allocation on the hot paths).
    pub(crate) scratch_keys: Vec<Box<[u8]>>,
    pub(crate) scratch_path: Vec<bool>,
    pub(crate) scratch_value: Vec<u8>,
    /// The current values of keys restored from a db ([`CurrentValue::InFile`]).
    pub(crate) values: Option<std::sync::Arc<super::bucket::ValueFile>>,
    /// The test-only reference: every key's full history, as etcd's `treeIndex` keeps it.
    #[cfg(test)]
    pub(crate) history: super::reference::HistoryIndex,
}

impl Default for MvccStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MvccStore {
    /// An empty store with etcd 3.4.23 behaviour, as after `NewStore` on an empty backend.
    pub fn new() -> Self {
        Self::with_version(EtcdVersion::V3_4_23)
    }

    /// An empty store following the rules of the given etcd version where they differ
    /// (compaction tombstones, HashKV at the compact revision, requests known).
    pub fn with_version(version: EtcdVersion) -> Self {
        MvccStore {
            version,
            rules: version.compaction_rules(),
            current_revision: 1,
            compact_revision: -1,
            index: KeySpace::default(),
            bucket: KeyBucket::default(),
            lessor: Lessor::default(),
            consistent_index: 0,
            applier_mode: super::apply::ApplierMode::Full,
            alarms: Default::default(),
            strip_top_level_txn_ranges: true,
            cluster_version: None,
            downgrade: None,
            members: None,
            follows_log: false,
            stats: ApplyStats::default(),
            scratch_keys: Vec::new(),
            scratch_path: Vec::new(),
            scratch_value: Vec::new(),
            values: None,
            #[cfg(test)]
            history: Default::default(),
        }
    }

    /// An empty store for replaying a log: each entry applies as the release of the cluster
    /// version in force at its index ([`super::cluster`]). Until the log (or
    /// [`Self::set_cluster_version`]) sets one, 3.4.23's key-space rules apply and the 3.5
    /// cluster requests are taken as known (the member that proposed one knows it).
    pub fn following_log() -> Self {
        MvccStore {
            follows_log: true,
            ..Self::new()
        }
    }

    /// The release whose rules apply now.
    pub fn etcd_version(&self) -> EtcdVersion {
        self.version
    }

    /// `currentRev`.
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    /// `compactMainRev` (-1 before the first compaction).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The raft index of the last entry applied (etcd's consistent index).
    pub fn consistent_index(&self) -> u64 {
        self.consistent_index
    }

    /// Starts the replay after a point where the state is known to be already applied:
    /// entries with an index `<=` this are not re-applied to the v3 store (as etcd does after
    /// a restart).
    pub fn set_consistent_index(&mut self, raft_index: u64) {
        self.consistent_index = raft_index;
    }

    /// Model the member the client talked to (`true` = replay as a non-proposing member,
    /// the default): see [`super::apply`] on `removeNeedlessRangeReqs`.
    pub fn set_strip_top_level_txn_ranges(&mut self, strip: bool) {
        self.strip_top_level_txn_ranges = strip;
    }

    pub fn summary(&self) -> StoreSummary {
        StoreSummary {
            etcd_version: self.version.to_string(),
            current_revision: self.current_revision,
            compact_revision: self.compact_revision,
            consistent_index: self.consistent_index,
            live_keys: self.live_key_count(),
            indexed_keys: self.indexed_key_count(),
            bucket_entries: self.bucket.len(),
            bucket_value_bytes: self.bucket.value_bytes(),
            leases: self.lessor.leases.len(),
            applier_mode: self.applier_mode,
            alarms: self.alarms.iter().copied().collect(),
        }
    }

    pub fn stats(&self) -> &ApplyStats {
        &self.stats
    }

    /// Keys in the index (alive or with history not yet compacted away).
    pub fn indexed_key_count(&self) -> usize {
        self.index.len()
    }

    /// Keys that currently exist.
    pub fn live_key_count(&self) -> usize {
        self.index.values().filter(|ki| ki.is_alive()).count()
    }

    /// Entries in the modelled `key` bucket (revisions incl. tombstones not compacted away).
    pub fn bucket_entry_count(&self) -> usize {
        self.bucket.len()
    }

    /// Bytes of marshaled `KeyValue`s in the modelled bucket (as etcd stores them; the store
    /// itself keeps only their digests and each live key's current one).
    pub fn bucket_value_bytes(&self) -> usize {
        self.bucket.value_bytes()
    }

    /// Bucket entries whose digests are in the spill file rather than in memory.
    pub fn bucket_entries_spilled(&self) -> usize {
        self.bucket.spilled()
    }

    /// The bucket entries' digests in bbolt key order (revision, tombstone flag, CRC-32C and
    /// length of `bucket key ‖ marshaled KeyValue`). The iteration stops early if the spill file
    /// cannot be read back: [`crate::mvcc::Digests::error`] then says why.
    pub fn bucket_digests(&self) -> super::bucket::Digests<'_> {
        self.bucket.iter()
    }

    /// The key of the bucket entry `revision` (a put or a tombstone not compacted away): the
    /// id its slot names. A scan of the slots up to it: for naming a bucket entry in a report,
    /// not for the hot path.
    pub fn key_of_revision(&self, revision: super::Revision) -> Option<Vec<u8>> {
        let slot = self
            .bucket
            .slots()
            .take_while(|s| s.revision <= revision)
            .find(|s| s.revision == revision)?;
        self.index.key_of(slot.key_id).map(<[u8]>::to_vec)
    }

    /// The bucket entries in bbolt key order with their values, from the test-only reference
    /// model that runs beside the digests (each checked against its digest).
    #[cfg(test)]
    pub(crate) fn bucket_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let digests: Vec<_> = self.bucket.iter().collect();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .bucket
            .reference
            .iter()
            .map(|e| {
                let (key, len) = e.revision.bucket_key(e.tombstone);
                (key[..len].to_vec(), e.value.to_vec())
            })
            .collect();
        assert_eq!(digests.len(), entries.len(), "digests and reference model");
        for (d, e) in digests.iter().zip(&entries) {
            let (revision, tombstone) = super::Revision::from_bucket_key(&e.0).unwrap();
            assert_eq!(*d, super::BucketDigest::of(revision, tombstone, &e.1));
        }
        entries
    }

    /// The lease table (granted and not revoked).
    pub fn leases(&self) -> &std::collections::HashMap<i64, Lease> {
        &self.lessor.leases
    }

    /// The current `KeyValue` of `key` as (create_revision, mod_revision, version, value,
    /// lease), if the key exists.
    pub fn get(&self, key: &[u8]) -> Option<(i64, i64, i64, Vec<u8>, i64)> {
        let stored = self.current_key_value(key, self.current_revision)?;
        let kv = decode_key_value(&stored);
        Some((
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.value.to_vec(),
            kv.lease,
        ))
    }

    // ---------------------------------------------------------------------------------------
    // Reads

    /// `kvindex.Get(key, at)`.
    pub(crate) fn key_at(&self, key: &[u8], at: i64) -> Option<KeyAt> {
        self.index.get(key)?.current_at(at)
    }

    /// The stored `KeyValue` of `key` visible at `at` (what `rangeKeys` returns). Apply reads
    /// only at the current revision (or a write txn's own), where that is the key's newest.
    /// Returns the marshaled `KeyValue`: decode it with [`decode_key_value`].
    pub(crate) fn current_key_value(&self, key: &[u8], at: i64) -> Option<Cow<'_, [u8]>> {
        let ki = self.index.get(key)?;
        let found = ki.current_at(at)?;
        self.stored_value(ki, found)
    }

    /// The marshaled `KeyValue` stored at `found` (a revision of `ki`), if it is the key's
    /// current one: from memory, or read from the value file of a db start.
    pub(crate) fn stored_value<'s>(
        &'s self,
        ki: &'s KeyState,
        found: KeyAt,
    ) -> Option<Cow<'s, [u8]>> {
        if ki.newest_alive() != Some(found.modified) {
            debug_assert!(false, "a read of an older revision than the key's newest");
            return None;
        }
        let current = match &ki.current {
            CurrentValue::None => None,
            CurrentValue::Inline(value) => Some(Cow::Borrowed(&value[..])),
            CurrentValue::InFile { offset, len } => self
                .values
                .as_ref()
                .and_then(|file| file.read(*offset, *len))
                .map(Cow::Owned),
        };
        #[cfg(test)]
        assert_eq!(
            current.as_deref(),
            self.bucket.reference.get(found.modified),
            "the current value and the reference model at {:?}",
            found.modified
        );
        current
    }

    /// Calls `f` with each key alive at `at` in the range, in ascending key order
    /// (`treeIndex.visit` / `Range`), and the stored `KeyValue` if `with_values`.
    pub(crate) fn for_each_alive<'s>(
        &'s self,
        range: KeyRange<'_>,
        at: i64,
        mut f: impl FnMut(&'s [u8], KeyAt, &'s KeyState) -> bool,
    ) {
        let (start, end) = match range {
            KeyRange::Single(key) => {
                if let Some((k, ki)) = self.index.get_key_value(key) {
                    if let Some(found) = ki.current_at(at) {
                        f(k, found, ki);
                    }
                }
                return;
            }
            KeyRange::FromKey(key) => (key, Bound::Unbounded),
            KeyRange::Until(key, end) => (key, Bound::Excluded(end)),
        };
        self.index
            .for_each_in_range(start, end, |k, ki| match ki.current_at(at) {
                Some(found) => f(k, found, ki),
                None => true,
            });
    }

    // ---------------------------------------------------------------------------------------
    // Write transactions

    /// `store.Write()`. With `journal`, the changes can be rolled back by [`Self::abort_txn`].
    pub(crate) fn begin_txn(&mut self, journal: bool) -> WriteTxn {
        WriteTxn {
            begin_revision: self.current_revision,
            changes: 0,
            undo: journal.then(Vec::new),
            #[cfg(test)]
            history_before: journal.then(|| self.history.clone()),
        }
    }

    /// `storeTxnWrite.End()`: the revision advances only if something changed.
    /// Returns the written main revision, if any.
    pub(crate) fn end_txn(&mut self, txn: WriteTxn) -> Option<i64> {
        if txn.changes > 0 {
            self.current_revision += 1;
            self.stats.revisions_written += 1;
            self.stats.changes_written += txn.changes as u64;
            Some(self.current_revision)
        } else {
            None
        }
    }

    /// Drops every change of `txn` (etcd would have panicked before committing it): its slots
    /// go, and each key it touched gets back its state from before, newest change first.
    pub(crate) fn abort_txn(&mut self, txn: WriteTxn) {
        let written = txn.begin_revision + 1;
        self.bucket.truncate_from_main(written);
        #[cfg(test)]
        if let Some(history) = txn.history_before {
            self.history = history;
        }
        for Undo { key, previous } in txn.undo.unwrap_or_default().into_iter().rev() {
            let Some(ki) = self.index.get_mut(&key) else {
                continue;
            };
            if ki.attached_lease != 0 {
                self.lessor.detach(ki.attached_lease, &key);
            }
            match previous {
                None => self.index.remove(&key),
                Some(previous) => {
                    if previous.attached_lease != 0 {
                        self.lessor.attach(previous.attached_lease, &key);
                    }
                    *ki = previous;
                }
            }
        }
    }

    /// `storeTxnWrite.put`. The caller has checked that a non-zero `lease` exists (etcd
    /// panics on `Attach` otherwise); if it does not, the key is written without attachment.
    pub(crate) fn txn_put(&mut self, txn: &mut WriteTxn, key: &[u8], value: &[u8], lease: i64) {
        let revision = txn.begin_revision + 1;
        let index_revision = Revision::new(revision, txn.changes);
        let Some((ki, new_key)) = self.index.get_or_insert(key) else {
            return;
        };
        let (create_revision, previous_version) = match ki.current_at(revision) {
            Some(found) => (found.created.main_revision, found.version),
            None => (revision, 0),
        };
        // Alive keys carry their lease here; deleted keys have none (detached on delete).
        let previous_lease = ki.attached_lease;
        // The previous value is kept only where the txn may be rolled back; otherwise its
        // buffer is reused (no allocation per put).
        let previous_current = std::mem::take(&mut ki.current);
        let (mut current, previous_current) = match (previous_current, &txn.undo) {
            (CurrentValue::Inline(buffer), None) => (buffer, CurrentValue::None),
            (previous, _) => (Vec::new(), previous),
        };
        let previous = match (&txn.undo, new_key) {
            (Some(_), false) => Some(KeyState {
                current: previous_current,
                ..ki.clone()
            }),
            _ => None,
        };
        current.clear();
        encode_key_value(
            &mut current,
            key,
            create_revision,
            revision,
            previous_version + 1,
            value,
            lease,
        );
        self.bucket.append(index_revision, false, &current, ki.id);
        ki.current = CurrentValue::Inline(current);
        #[cfg(test)]
        {
            self.bucket.reference.append_put(
                index_revision,
                key,
                create_revision,
                previous_version + 1,
                value,
                lease,
            );
            self.history.put(key, index_revision);
        }
        ki.put(index_revision);
        txn.changes += 1;
        if previous_lease != 0 {
            self.lessor.detach(previous_lease, key);
            ki.attached_lease = 0;
        }
        if lease != 0 && self.lessor.attach(lease, key) {
            ki.attached_lease = lease;
        }
        if let Some(undo) = txn.undo.as_mut() {
            undo.push(Undo {
                key: key.into(),
                previous,
            });
        }
    }

    /// `storeTxnWrite.deleteRange`: tombstones every key alive in the range at the
    /// transaction's read revision, in key order. Returns how many.
    pub(crate) fn txn_delete_range(&mut self, txn: &mut WriteTxn, range: KeyRange<'_>) -> i64 {
        let read_revision = txn.read_revision();
        if !matches!(range, KeyRange::Single(_)) {
            self.index.flush_order();
        }
        let mut keys = std::mem::take(&mut self.scratch_keys);
        keys.clear();
        self.for_each_alive(range, read_revision, |k, _, _| {
            keys.push(k.into());
            true
        });
        for key in &keys {
            self.txn_delete(txn, key);
        }
        let deleted = keys.len() as i64;
        keys.clear();
        self.scratch_keys = keys;
        deleted
    }

    /// `storeTxnWrite.delete` of one alive key.
    fn txn_delete(&mut self, txn: &mut WriteTxn, key: &[u8]) {
        let index_revision = Revision::new(txn.begin_revision + 1, txn.changes);
        let Some(ki) = self.index.get_mut(key) else {
            return;
        };
        if !ki.is_alive() {
            return; // etcd: lg.Fatal("failed to tombstone an existing key"); callers prevent it
        }
        // A deleted key holds no value (its buffer is freed: deleted keys may be many).
        let previous_current = std::mem::take(&mut ki.current);
        let previous = txn.undo.is_some().then(|| KeyState {
            current: previous_current,
            ..ki.clone()
        });
        ki.tombstone(index_revision);
        let mut tombstone = std::mem::take(&mut self.scratch_value);
        tombstone.clear();
        encode_key_value(&mut tombstone, key, 0, 0, 0, &[], 0);
        self.bucket.append(index_revision, true, &tombstone, ki.id);
        self.scratch_value = tombstone;
        #[cfg(test)]
        {
            self.bucket.reference.append_tombstone(index_revision, key);
            self.history.tombstone(key, index_revision);
        }
        txn.changes += 1;
        let previous_lease = ki.attached_lease;
        if previous_lease != 0 {
            ki.attached_lease = 0;
            self.lessor.detach(previous_lease, key);
        }
        if let Some(undo) = txn.undo.as_mut() {
            undo.push(Undo {
                key: key.into(),
                previous,
            });
        }
    }

    // ---------------------------------------------------------------------------------------
    // Direct operations (each one write transaction), for tests and tools that build a state
    // without going through raft entries.

    /// A standalone put as `applierV3backend.Put` does it (lease must exist, ignore flags
    /// need the key). Returns the new revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, ApplyError> {
        if lease != 0 && !self.lessor.contains(lease) {
            return Err(ApplyError::LeaseNotFound);
        }
        let mut txn = self.begin_txn(false);
        self.txn_put(&mut txn, key, value, lease);
        Ok(self.end_txn(txn).unwrap_or(self.current_revision))
    }

    /// A standalone delete range; returns the number of deleted keys and the revision (the
    /// current one when nothing was deleted).
    pub fn delete_range(&mut self, range: KeyRange<'_>) -> (i64, i64) {
        let mut txn = self.begin_txn(false);
        let deleted = self.txn_delete_range(&mut txn, range);
        let revision = self.end_txn(txn).unwrap_or(self.current_revision);
        (deleted, revision)
    }

    /// `lessor.Grant`.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<(), ApplyError> {
        if id == 0 {
            return Err(ApplyError::LeaseNotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(ApplyError::LeaseTtlTooLarge);
        }
        if self.lessor.contains(id) {
            return Err(ApplyError::LeaseExists);
        }
        self.lessor.leases.insert(
            id,
            Lease {
                requested_ttl: ttl,
                ..Lease::default()
            },
        );
        Ok(())
    }

    /// `lessor.Revoke`: deletes the attached keys in bytewise order in one write transaction
    /// (one main revision, one sub revision per key; none if no keys), then the lease.
    /// Returns the written revision, if any.
    pub fn lease_revoke(&mut self, id: i64) -> Result<Option<i64>, ApplyError> {
        let Some(lease) = self.lessor.leases.remove(&id) else {
            return Err(ApplyError::LeaseNotFound);
        };
        let mut txn = self.begin_txn(false);
        for key in &lease.keys {
            self.txn_delete_range(&mut txn, KeyRange::Single(key));
        }
        Ok(self.end_txn(txn))
    }

    /// `lessor.Checkpoint`: remembers the remaining TTL of existing leases; never fails.
    pub fn lease_checkpoint(&mut self, id: i64, remaining_ttl: i64) {
        if let Some(lease) = self.lessor.leases.get_mut(&id) {
            lease.remaining_ttl = remaining_ttl;
        }
    }

    // ---------------------------------------------------------------------------------------
    // Compaction

    /// `store.Compact` followed by the (here synchronous) compaction job: the index keeps,
    /// per key, the newest revision `<= revision` of the generation alive then; the bucket
    /// loses every other entry `<= revision`.
    ///
    /// etcd runs the job asynchronously, but its end state does not depend on writes applied
    /// in between (it only looks at revisions `<= revision`), so doing it at once is exact.
    ///
    /// Two reads of the slots: [`Generations::walk`] up to `revision` (O(keys + revisions
    /// since the last compaction), see [`super::generations`]), then the bucket's rewrite.
    pub fn compact(&mut self, revision: i64) -> Result<(), ApplyError> {
        if revision <= self.compact_revision {
            return Err(ApplyError::Compacted);
        }
        if revision > self.current_revision {
            return Err(ApplyError::FutureRevision);
        }
        let previous = self.compact_revision;
        self.compact_revision = revision;
        let rules = self.rules;
        #[cfg(test)]
        {
            let keep = self.history.compact(revision, rules);
            self.bucket.reference.compact(revision, &keep);
        }
        let ids = self.index.id_bound();
        let mut slots = self.bucket.slots();
        let generations = Generations::walk(slots.by_ref(), ids, revision, previous, rules);
        if let Some(why) = slots.error().map(str::to_string) {
            self.bucket.note_error(why);
            return Ok(());
        }
        let Ok(referenced) = self
            .bucket
            .compact(revision, ids, |slot| generations.compacted(slot))
        else {
            return Ok(());
        };
        self.index.retain(&referenced, |ki| {
            // A live key whose newest revision leaves the bucket (deleted and put again in one
            // txn, under the 3.4.34+ / 3.5.16+ rules the tombstone is the one kept) has no
            // stored value left, in etcd as here.
            if ki.newest_alive().is_some_and(|newest| {
                newest.main_revision <= revision && Some(newest) != generations.kept(ki.id)
            }) {
                ki.current = CurrentValue::None;
            }
            !ki.empties_at(revision, rules.keep_tombstone_at_compaction)
        });
        self.stats.compactions += 1;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // HashKV

    /// `treeIndex.Keep(revision)`, as [`Generations`]: only what the hash needs (whether the
    /// set is non-empty, and which slots at or below the compact revision are in it). Before a
    /// compaction no slot is at or below it, and no walk is made. `Err` when the spill file
    /// cannot be read back.
    pub(crate) fn keep_for_hash(&self, revision: i64) -> Result<Generations, MvccError> {
        if self.compact_revision < 1 {
            return Ok(Generations::default());
        }
        let mut slots = self.bucket.slots();
        let generations = Generations::walk(
            slots.by_ref(),
            self.index.id_bound(),
            revision,
            self.compact_revision,
            self.rules,
        );
        if slots.error().is_some() {
            return Err(MvccError::SpillUnreadable);
        }
        Ok(generations)
    }

    /// The revision `HashByRev(revision)` hashes up to, or etcd's refusal: a compacted revision
    /// (3.5.16+ / 3.4.34+ accept the compact revision itself) or a future one. etcd substitutes
    /// only 0 (the current revision); a negative revision hashes nothing but the bucket name.
    pub(crate) fn hash_revision(&self, revision: i64) -> Result<i64, MvccError> {
        let compact_revision = self.compact_revision;
        let current_revision = self.current_revision;
        let compacted = if self.version.hash_allows_compact_revision() {
            revision < compact_revision
        } else {
            revision <= compact_revision
        };
        if revision > 0 && compacted {
            return Err(MvccError::Compacted { compact_revision });
        }
        if revision > 0 && revision > current_revision {
            return Err(MvccError::FutureRevision { current_revision });
        }
        Ok(if revision == 0 {
            current_revision
        } else {
            revision
        })
    }

    /// [`MvccStore::hash_kv`] computed from the test-only reference model (every value in an
    /// arena, hashed byte by byte).
    #[cfg(test)]
    pub(crate) fn hash_kv_reference(&self, revision: i64) -> Result<HashKv, MvccError> {
        let hash_revision = self.hash_revision(revision)?;
        let (keep_any, keep) = self.history.keep(hash_revision, self.rules);
        let hash = super::reference::hash_arena(
            &self.bucket.reference,
            hash_revision,
            self.compact_revision,
            (keep_any, &keep),
            self.rules.keep_tombstone_at_compaction,
        );
        Ok(HashKv {
            hash,
            revision: self.current_revision,
            compact_revision: self.compact_revision,
            hash_revision,
        })
    }

    /// Empties the bucket's spill file (tests of a temp file lost under a running check).
    #[cfg(test)]
    pub(crate) fn lose_bucket_spill_file(&self) {
        self.bucket.lose_spill_file();
    }

    /// Keeps at most `limit` bucket digests in memory (tests force spilling with a small one).
    #[cfg(test)]
    pub(crate) fn set_bucket_hot_limit(&mut self, limit: usize) {
        assert_eq!(self.bucket.len(), 0, "set before the first write");
        self.bucket = KeyBucket::with_limit(limit);
    }

    /// etcd's `HashByRev(revision)` (`etcdctl endpoint hashkv --rev`), 0 = current revision.
    ///
    /// CRC-32C over `"key"` and then `bucket key ‖ marshaled KeyValue` of every bucket entry
    /// with `main <= revision`, where entries `<= compact_revision` count only if they are in
    /// `Keep(revision)` — unless that set is empty, in which case all of them count (etcd's
    /// `len(keep) > 0` check). From 3.4.34 / 3.5.16 a tombstone exactly at the compact
    /// revision is skipped (those versions keep it in the bucket; older ones delete it).
    ///
    /// Not modelled: 3.5.5+ answers `revision == a recent compaction revision` from a cache
    /// of hashes computed during compaction (etcd `kvstore.HashStorage`).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv, MvccError> {
        let compact_revision = self.compact_revision;
        let hash_revision = self.hash_revision(revision)?;
        let current_revision = self.current_revision;
        let keep = self.keep_for_hash(hash_revision)?;
        let keep_any = keep.any_keep();
        let skip_tombstone_at_compaction = self.rules.keep_tombstone_at_compaction;
        let mut crc = crc32c::crc32c(b"key");
        let mut concat = CrcConcat::default();
        let mut digests = self.bucket.slots();
        for entry in digests.by_ref() {
            let main = entry.revision.main_revision;
            if main > hash_revision {
                break;
            }
            if entry.index_only {
                continue;
            }
            if main <= compact_revision
                && keep_any
                && keep.keep(entry.key_id) != Some(entry.revision)
            {
                continue;
            }
            if skip_tombstone_at_compaction && main == compact_revision && entry.tombstone {
                continue;
            }
            crc = concat.concat(crc, entry.crc, entry.len as usize);
        }
        let value_read_failed = self.values.as_ref().is_some_and(|v| v.failed());
        if digests.error().is_some() || self.bucket.spill_error().is_some() || value_read_failed {
            return Err(MvccError::SpillUnreadable);
        }
        Ok(HashKv {
            hash: crc,
            revision: current_revision,
            compact_revision,
            hash_revision,
        })
    }
}
