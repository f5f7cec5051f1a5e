//! etcd's bucket schema 3.4–3.6 read from a [`Db`], the KV model restored from the `key` bucket
//! (`mvcc/kvstore.go: restore`), HashKV (`HashByRev`) and `snapshot status`
//! (`clientv3/snapshot/v3_snapshot.go: Status`), all in one streaming pass.
//!
//! One pass walks every bucket with reachability tracking: `snapshot status` (CRC-32C of every
//! root bucket's name then each `k‖v`), bucket key counts, the schema's meta keys, members,
//! leases, alarms, auth, and the key index restore. HashKV needs the whole index first (its
//! `Keep` set), but which entries it hashes depends on their revision keys alone, so the pass
//! keeps each `key`-bucket entry's revision and the CRC-32C and length of its `k‖v`
//! ([`KeyBucketDigest`], about 7 bytes an entry, the older ones in a temporary file) and
//! [`hash_kv`] concatenates the CRCs of the entries HashKV selects ([`super::crc`]): the values
//! are read once. [`hash_kv_pass2`] is the direct way, a second walk of the `key` bucket feeding
//! HashKV's stream (the tests check that both agree).

use std::collections::BTreeMap;

use prost::Message;
use serde::Serialize;

use super::crc::CrcConcat;
use super::error::DbError;
use super::reader::{check_pages, Db, Item, Walker};
use crate::mvcc::{EtcdVersion, HashKv, MvccError, MvccStore, Restore, RestoredStore, Revision};
use crate::proto::etcdserverpb::KeyValue;

/// `snapshot status` as `etcdutl snapshot status` prints it (3.4/3.5 semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotStatus {
    /// CRC-32C over every root bucket's name and `k‖v` pairs.
    pub hash: u32,
    /// Main revision of the last `key`-bucket key (0 if none).
    pub revision: i64,
    /// Pairs in all root buckets (sub-bucket items count, with a nil value).
    pub total_keys: u64,
    /// `tx.Size()`: high-water mark × page size.
    pub total_size: u64,
}

/// A `members` bucket record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberRecord {
    /// Member id (the key, lowercase hex).
    pub id: String,
    /// The stored JSON (`{"id":…,"peerURLs":[…],"name":…,"clientURLs":[…],"isLearner":…}`).
    pub record: serde_json::Value,
}

/// A `lease` bucket record (`leasepb.Lease`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    /// Lease id.
    pub id: i64,
    /// Granted TTL.
    pub ttl: i64,
    /// Last checkpointed remaining TTL (0 if none).
    pub remaining_ttl: i64,
    /// Keys attached at restore.
    pub keys: usize,
}

/// An `alarm` bucket record (the key is a marshaled `AlarmMember`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlarmRecord {
    /// The member that raised it.
    pub member_id: u64,
    /// `NOSPACE`, `CORRUPT` or the raw number.
    pub alarm: String,
}

/// The `auth`, `authUsers`, `authRoles` buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthRecord {
    /// `authEnabled` (absent until first enabled or disabled).
    pub enabled: Option<bool>,
    /// `authRevision`.
    pub revision: Option<u64>,
    /// User names.
    pub users: Vec<String>,
    /// Role names.
    pub roles: Vec<String>,
}

/// A value in etcd's schema that does not decode (etcd would refuse it or panic on it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaFinding {
    /// Bucket name.
    pub bucket: String,
    /// Key (text if printable, else hex).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// Everything read from etcd's schema in pass 1.
#[derive(Debug, Default, Serialize)]
pub struct EtcdSchema {
    /// Root bucket name → number of keys (direct items).
    pub buckets: BTreeMap<String, u64>,
    /// `meta/consistent_index`.
    pub consistent_index: Option<u64>,
    /// `meta/term` (3.5+).
    pub term: Option<u64>,
    /// `meta/confState` (3.5+, JSON).
    pub conf_state: Option<serde_json::Value>,
    /// Main revision of `meta/scheduledCompactRev`.
    pub scheduled_compact_rev: Option<i64>,
    /// Main revision of `meta/finishedCompactRev`.
    pub finished_compact_rev: Option<i64>,
    /// `meta/storageVersion` (3.6+).
    pub storage_version: Option<String>,
    /// `cluster/clusterVersion`.
    pub cluster_version: Option<String>,
    /// `cluster/downgrade` (3.5+, JSON).
    pub downgrade: Option<serde_json::Value>,
    /// `members`.
    pub members: Vec<MemberRecord>,
    /// `members_removed` ids (hex).
    pub removed_members: Vec<String>,
    /// `lease`.
    pub leases: Vec<LeaseRecord>,
    /// `alarm`.
    pub alarms: Vec<AlarmRecord>,
    /// `auth*`.
    pub auth: AuthRecord,
    /// `snapshot status`.
    pub snapshot_status: Option<SnapshotStatus>,
    /// Values that do not decode.
    pub findings: Vec<SchemaFinding>,
}

impl EtcdSchema {
    /// Which etcd generation wrote the db (3.6 `schema.UnsafeDetectSchemaVersion`): `3.6` with
    /// `storageVersion`, `3.5` with `confState` or a non-zero `term`, else `3.4`.
    pub fn generation(&self) -> &'static str {
        if self.storage_version.is_some() {
            "3.6"
        } else if self.conf_state.is_some() || self.term.unwrap_or(0) > 0 {
            "3.5"
        } else {
            "3.4"
        }
    }
}

/// Which etcd generation wrote `db`, by [`EtcdSchema::generation`]'s rule, from its `meta` bucket
/// alone (a walk of the root leaf and that bucket: the rules of the full read depend on it).
pub fn generation_of(db: &Db<'_>) -> Result<&'static str, DbError> {
    let mut schema = EtcdSchema::default();
    for_each_in_bucket(db, b"meta", &mut |k, v| match k {
        b"term" => schema.term = be64(v),
        b"confState" => schema.conf_state = Some(serde_json::Value::Null),
        b"storageVersion" => schema.storage_version = Some(String::new()),
        _ => {}
    })?;
    Ok(schema.generation())
}

/// The outcome of reading a db's etcd state.
#[derive(Debug)]
pub struct EtcdRead {
    /// The schema.
    pub schema: EtcdSchema,
    /// The restored KV model (index-only).
    pub restored: RestoredStore,
    /// Pages reached from the root, metas and freelist included.
    pub reachable_pages: u64,
    /// Free pages (freelist ids, or unreachable pages below the high-water mark).
    pub free_pages: u64,
    /// Page-level findings of `tx.Check`.
    pub page_findings: Vec<DbError>,
    /// The `key` bucket's entries, for [`hash_kv`].
    pub key_digest: KeyBucketDigest,
}

pub use super::digest::{DigestEntry, DigestIter, KeyBucketDigest};

/// Key bytes as text when printable ASCII, else hex.
pub fn display_key(key: &[u8]) -> String {
    if !key.is_empty() && key.iter().all(|b| (0x20..0x7f).contains(b)) {
        String::from_utf8_lossy(key).into_owned()
    } else {
        format!("0x{}", hex::encode(key))
    }
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// Protobuf varint fields of a small message (`leasepb.Lease`, `AlarmMember`): field → value.
/// `None` on anything but varints.
fn varint_fields(mut data: &[u8]) -> Option<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    while !data.is_empty() {
        let tag = prost::encoding::decode_varint(&mut data).ok()?;
        if tag & 7 != 0 {
            return None;
        }
        let v = prost::encoding::decode_varint(&mut data).ok()?;
        out.insert(tag >> 3, v);
    }
    Some(out)
}

/// Findings beyond this many per kind are counted, not listed.
pub const FINDINGS_CAP: usize = 100;

/// Reads the etcd state of `db`: pass 1 (schema, snapshot status, index restore, reachability).
/// Damage that stops the walk is the `Err`.
pub fn read_etcd(db: &Db<'_>, version: EtcdVersion) -> Result<EtcdRead, DbError> {
    std::thread::scope(|scope| {
        let feed = RestoreFeed::start(scope, version);
        read_etcd_feeding(db, feed)
    })
}

/// Key-bucket entries on their way to the index restore: in batches, in bucket order, to a
/// thread of their own — restoring the index is about half of the pass and reading, hashing and
/// parsing the pages the other half, so on two cores they overlap — or restored in place when
/// no thread could be started. Memory: at most `FEED_DEPTH + 2` batches of `FEED_BATCH` entries.
enum RestoreFeed<'scope> {
    Threaded {
        batch: EntryBatch,
        tx: std::sync::mpsc::SyncSender<EntryBatch>,
        worker: std::thread::ScopedJoinHandle<'scope, Restore>,
    },
    InPlace(Box<Restore>),
}

const FEED_BATCH: usize = 4096;
const FEED_DEPTH: usize = 4;

/// Key-bucket entries for [`Restore::entry`], their keys in one buffer.
#[derive(Default)]
struct EntryBatch {
    keys: Vec<u8>,
    entries: Vec<BatchedEntry>,
    alarms: Vec<(i32, u64)>,
}

struct BatchedEntry {
    revision: Revision,
    tombstone: bool,
    key_end: usize,
    create_revision: i64,
    version: i64,
    lease: i64,
}

impl EntryBatch {
    fn apply(&self, restore: &mut Restore) {
        for &(alarm, member_id) in &self.alarms {
            restore.alarm(alarm, member_id);
        }
        let mut key_start = 0;
        for e in &self.entries {
            restore.entry(
                e.revision,
                e.tombstone,
                &self.keys[key_start..e.key_end],
                e.create_revision,
                e.version,
                e.lease,
            );
            key_start = e.key_end;
        }
    }
}

impl<'scope> RestoreFeed<'scope> {
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, version: EtcdVersion) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<EntryBatch>(FEED_DEPTH);
        let worker = std::thread::Builder::new()
            .name("db-restore".into())
            .spawn_scoped(scope, move || {
                let mut restore = Restore::new(version);
                for batch in rx {
                    batch.apply(&mut restore);
                }
                restore
            });
        match worker {
            Ok(worker) => RestoreFeed::Threaded {
                batch: EntryBatch::default(),
                tx,
                worker,
            },
            Err(_) => RestoreFeed::InPlace(Box::new(Restore::new(version))),
        }
    }

    /// One `key`-bucket entry, as [`Restore::entry`] takes it.
    fn entry(
        &mut self,
        revision: Revision,
        tombstone: bool,
        key: &[u8],
        create_revision: i64,
        version: i64,
        lease: i64,
    ) {
        match self {
            RestoreFeed::InPlace(restore) => {
                restore.entry(revision, tombstone, key, create_revision, version, lease);
            }
            RestoreFeed::Threaded { batch, tx, .. } => {
                batch.keys.extend_from_slice(key);
                batch.entries.push(BatchedEntry {
                    revision,
                    tombstone,
                    key_end: batch.keys.len(),
                    create_revision,
                    version,
                    lease,
                });
                if batch.entries.len() == FEED_BATCH {
                    // A closed channel means the worker panicked: finish() reports it.
                    let _ = tx.send(std::mem::take(batch));
                }
            }
        }
    }

    /// An `alarm` bucket record, as [`Restore::alarm`] takes it (in order with the entries).
    fn alarm(&mut self, alarm: i32, member_id: u64) {
        match self {
            RestoreFeed::InPlace(restore) => restore.alarm(alarm, member_id),
            RestoreFeed::Threaded { batch, .. } => batch.alarms.push((alarm, member_id)),
        }
    }

    /// Everything fed, restored.
    fn finish(self) -> Restore {
        match self {
            RestoreFeed::InPlace(restore) => *restore,
            RestoreFeed::Threaded { batch, tx, worker } => {
                let _ = tx.send(batch);
                drop(tx);
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
        }
    }
}

fn read_etcd_feeding(db: &Db<'_>, mut restore: RestoreFeed<'_>) -> Result<EtcdRead, DbError> {
    let mut schema = EtcdSchema::default();
    let mut crc = crc32c::crc32c(&[]);
    let mut total_keys = 0u64;
    let mut last_key_rev: Option<i64> = None;
    let mut key_digest = KeyBucketDigest::default();
    let mut concat = CrcConcat::default();
    let mut walker = Walker::new(db, true);
    let root = db.root_bucket();
    walker.for_each(&root, &mut |w, name, item| {
        let Item::Bucket(bucket) = item else {
            schema.findings.push(SchemaFinding {
                bucket: String::new(),
                key: display_key(name),
                problem:
                    "root item is not a bucket (snapshot status fails: cannot get hash of bucket)"
                        .into(),
            });
            return Ok(());
        };
        let bname = String::from_utf8_lossy(name).into_owned();
        crc = crc32c::crc32c_append(crc, name);
        let is_key = name == b"key";
        let mut count = 0u64;
        w.for_each(&bucket, &mut |w, k, item| {
            count += 1;
            total_keys += 1;
            let v = match item {
                Item::Bucket(sub) => {
                    crc = crc32c::crc32c_append(crc, k);
                    w.mark_all(&sub)?;
                    return Ok(());
                }
                Item::Value(v) => v,
            };
            if is_key {
                // Hashed once, on its own: placed in snapshot status's CRC here and in
                // HashKV's by hash_kv.
                let entry = crc32c::crc32c_append(crc32c::crc32c(k), v);
                let len = k.len() + v.len();
                crc = concat.concat(crc, entry, len);
                if let Some((revision, tombstone)) = Revision::from_bucket_key(k) {
                    key_digest.push(DigestEntry {
                        revision,
                        tombstone,
                        len,
                        crc: entry,
                    });
                }
            } else {
                crc = crc32c::crc32c_append(crc, k);
                crc = crc32c::crc32c_append(crc, v);
            }
            decode_item(&bname, k, v, &mut schema, &mut restore, &mut last_key_rev);
            Ok(())
        })?;
        schema.buckets.insert(bname, count);
        Ok(())
    })?;
    schema.snapshot_status = Some(SnapshotStatus {
        hash: crc,
        revision: last_key_rev.unwrap_or(0),
        total_keys,
        total_size: db.size(),
    });
    let mut reached = walker
        .reached
        .take()
        .unwrap_or_else(|| super::reader::PageSet::new(0));
    let (reachable_pages, free_pages, page_findings) = check_pages(db, &mut reached, FINDINGS_CAP);
    let mut restore = restore.finish();
    let leases: Vec<(i64, i64, i64)> = schema
        .leases
        .iter()
        .map(|l| (l.id, l.ttl, l.remaining_ttl))
        .collect();
    for (id, ttl, remaining) in leases {
        restore.lease(id, ttl, remaining);
    }
    let restored = restore.finish(schema.finished_compact_rev, schema.scheduled_compact_rev);
    for lease in &mut schema.leases {
        lease.keys = restored
            .store
            .leases()
            .get(&lease.id)
            .map_or(0, |l| l.keys.len());
    }
    Ok(EtcdRead {
        schema,
        restored,
        reachable_pages,
        free_pages,
        page_findings,
        key_digest,
    })
}

fn decode_item(
    bucket: &str,
    k: &[u8],
    v: &[u8],
    schema: &mut EtcdSchema,
    restore: &mut RestoreFeed<'_>,
    last_key_rev: &mut Option<i64>,
) {
    let mut bad = |problem: String| {
        if schema.findings.len() < FINDINGS_CAP {
            schema.findings.push(SchemaFinding {
                bucket: bucket.to_string(),
                key: display_key(k),
                problem,
            });
        }
    };
    // Compaction keys: a 17-byte revision key `BE64(rev) '_' BE64(0)`; etcd reads the main part.
    let rev_main =
        |v: &[u8]| -> Option<i64> { Revision::from_bucket_key(v).map(|(r, _)| r.main_revision) };
    match (bucket, k) {
        ("key", _) => {
            let Some((revision, tombstone)) = Revision::from_bucket_key(k) else {
                bad("key shorter than a revision (etcd's bytesToRev panics)".into());
                return;
            };
            *last_key_rev = Some(revision.main_revision);
            if let Some(kv) = KeyValueFields::parse(v) {
                restore.entry(
                    revision,
                    tombstone,
                    kv.key,
                    kv.create_revision,
                    kv.version,
                    kv.lease,
                );
                return;
            }
            match KeyValue::decode(v) {
                Ok(kv) => {
                    restore.entry(
                        revision,
                        tombstone,
                        &kv.key,
                        kv.create_revision,
                        kv.version,
                        kv.lease,
                    );
                }
                Err(e) => bad(format!("KeyValue does not unmarshal (etcd: fatal): {e}")),
            }
        }
        ("meta", b"consistent_index") => match be64(v) {
            Some(ci) => schema.consistent_index = Some(ci),
            None => bad(format!("{} bytes, want 8", v.len())),
        },
        ("meta", b"term") => match be64(v) {
            Some(t) => schema.term = Some(t),
            None => bad(format!("{} bytes, want 8", v.len())),
        },
        ("meta", b"confState") => match serde_json::from_slice(v) {
            Ok(j) => schema.conf_state = Some(j),
            Err(e) => bad(format!("not JSON: {e}")),
        },
        ("meta", b"scheduledCompactRev") | ("meta", b"finishedCompactRev") => match rev_main(v) {
            Some(main) if k == b"scheduledCompactRev" => schema.scheduled_compact_rev = Some(main),
            Some(main) => schema.finished_compact_rev = Some(main),
            None => bad(format!("{} bytes, want a 17-byte revision", v.len())),
        },
        ("meta", b"storageVersion") => {
            schema.storage_version = Some(String::from_utf8_lossy(v).into_owned())
        }
        ("cluster", b"clusterVersion") => {
            schema.cluster_version = Some(String::from_utf8_lossy(v).into_owned())
        }
        ("cluster", b"downgrade") => match serde_json::from_slice(v) {
            Ok(j) => schema.downgrade = Some(j),
            Err(e) => bad(format!("not JSON: {e}")),
        },
        ("members", _) => match serde_json::from_slice(v) {
            Ok(record) => schema.members.push(MemberRecord {
                id: String::from_utf8_lossy(k).into_owned(),
                record,
            }),
            Err(e) => bad(format!("member record is not JSON: {e}")),
        },
        ("members_removed", _) => schema
            .removed_members
            .push(String::from_utf8_lossy(k).into_owned()),
        ("lease", _) => {
            let fields = varint_fields(v);
            match (be64(k), fields) {
                (Some(id), Some(f)) => schema.leases.push(LeaseRecord {
                    id: id as i64,
                    ttl: f.get(&2).copied().unwrap_or(0) as i64,
                    remaining_ttl: f.get(&3).copied().unwrap_or(0) as i64,
                    keys: 0,
                }),
                _ => bad("lease record does not decode".into()),
            }
        }
        ("alarm", _) => match varint_fields(k) {
            Some(f) => {
                let member_id = f.get(&1).copied().unwrap_or(0);
                let alarm = f.get(&2).copied().unwrap_or(0);
                restore.alarm(alarm as i32, member_id);
                schema.alarms.push(AlarmRecord {
                    member_id,
                    alarm: match alarm {
                        0 => "NONE".into(),
                        1 => "NOSPACE".into(),
                        2 => "CORRUPT".into(),
                        n => n.to_string(),
                    },
                })
            }
            None => bad("AlarmMember does not decode".into()),
        },
        ("auth", b"authEnabled") => match v {
            [b] => schema.auth.enabled = Some(*b == 1),
            _ => bad(format!("{} bytes, want 1", v.len())),
        },
        ("auth", b"authRevision") => match be64(v) {
            Some(r) => schema.auth.revision = Some(r),
            None => bad(format!("{} bytes, want 8", v.len())),
        },
        ("authUsers", _) => schema.auth.users.push(display_key(k)),
        ("authRoles", _) => schema.auth.roles.push(display_key(k)),
        _ => {}
    }
}

/// The `mvccpb.KeyValue` fields the index restore needs, read in place (no copy of the key or
/// the value) from the layout etcd writes: single-byte tags of fields 1–6 in ascending order,
/// each at most once. `None` for anything else — another order, a repeated or unknown field, a
/// varint prost would refuse, a length past the end — and the caller decodes with prost, so a
/// value this accepts is one prost decodes to the same fields (a proptest holds them equal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KeyValueFields<'a> {
    key: &'a [u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: &'a [u8],
    lease: i64,
}

/// A protobuf varint as prost's slice decoder reads it: at most 10 bytes, the 10th at most 1.
fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *data.get(*pos)?;
        *pos += 1;
        if i == 9 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

impl<'a> KeyValueFields<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let mut kv = KeyValueFields::default();
        let mut pos = 0;
        let mut last_field = 0u8;
        while pos < data.len() {
            let tag = data[pos];
            pos += 1;
            let (field, wire) = (tag >> 3, tag & 7);
            if field <= last_field || field > 6 || tag & 0x80 != 0 {
                return None;
            }
            last_field = field;
            match (field, wire) {
                (1 | 5, 2) => {
                    let len = varint(data, &mut pos)?;
                    let end = pos.checked_add(usize::try_from(len).ok()?)?;
                    let bytes = data.get(pos..end)?;
                    pos = end;
                    if field == 1 {
                        kv.key = bytes;
                    } else {
                        kv.value = bytes;
                    }
                }
                (2 | 3 | 4 | 6, 0) => {
                    let v = varint(data, &mut pos)? as i64;
                    match field {
                        2 => kv.create_revision = v,
                        3 => kv.mod_revision = v,
                        4 => kv.version = v,
                        _ => kv.lease = v,
                    }
                }
                _ => return None,
            }
        }
        Some(kv)
    }
}

/// etcd's `HashByRev(revision)` (0 = current) of the db's `key` bucket, from the pass's
/// [`KeyBucketDigest`]: the CRCs of the entries HashKV selects, concatenated in bucket order.
/// The outer `Err` is this tool's own failure (the digests' temporary file could not be read
/// back), the inner one etcd's answer (compacted, future revision).
pub fn hash_kv(
    restored: &RestoredStore,
    digest: &KeyBucketDigest,
    revision: i64,
) -> Result<Result<HashKv, MvccError>, DbError> {
    let stream = match restored.hash_kv_stream(revision) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let mut concat = CrcConcat::default();
    let mut crc = crc32c::crc32c(b"key");
    let mut entries = digest.iter();
    for e in entries.by_ref() {
        if stream.selects(e.revision, e.tombstone) {
            crc = concat.concat(crc, e.crc, e.len);
        }
    }
    if let Some(why) = entries.error() {
        return Err(DbError::Spill {
            message: why.to_string(),
        });
    }
    Ok(Ok(stream.finish_with_crc(crc)))
}

/// etcd's `HashByRev(revision)` (0 = current) by a second walk of the db's `key` bucket, every
/// entry fed to HashKV's stream: what [`hash_kv`] computes without reading the values again.
pub fn hash_kv_pass2(
    db: &Db<'_>,
    restored: &RestoredStore,
    revision: i64,
) -> Result<Result<HashKv, MvccError>, DbError> {
    let mut stream = match restored.hash_kv_stream(revision) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    for_each_in_bucket(db, b"key", &mut |k, v| stream.feed(k, v))?;
    Ok(Ok(stream.finish()))
}

/// The full store etcd boots with from this db: `restored` (pass 1) with the `key` bucket
/// streamed into it (a third, untracked walk of that bucket): a digest per entry (spilled to a
/// temporary file past a bounded window) and each live key's current value, never every value.
pub fn load_store(db: &Db<'_>, restored: RestoredStore) -> Result<MvccStore, DbError> {
    let mut loader = restored.into_loader();
    for_each_in_bucket(db, b"key", &mut |k, v| loader.feed(k, v))?;
    Ok(loader.finish())
}

/// Calls `f` with every `k‖v` of root bucket `name` (plain values only), untracked.
pub fn for_each_in_bucket(
    db: &Db<'_>,
    name: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<(), DbError> {
    let mut walker = Walker::new(db, false);
    let root = db.root_bucket();
    walker.for_each(&root, &mut |w, bname, item| {
        if bname != name {
            return Ok(());
        }
        if let Item::Bucket(bucket) = item {
            w.for_each(&bucket, &mut |_, k, item| {
                if let Item::Value(v) = item {
                    f(k, v);
                }
                Ok(())
            })?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(kv: &KeyValue) -> Vec<u8> {
        kv.encode_to_vec()
    }

    fn assert_agrees_with_prost(data: &[u8]) {
        if let Some(f) = KeyValueFields::parse(data) {
            let kv = KeyValue::decode(data).expect("the fast path accepts only what prost does");
            assert_eq!(f.key, &kv.key[..]);
            assert_eq!(f.value, &kv.value[..]);
            assert_eq!(
                (f.create_revision, f.mod_revision, f.version, f.lease),
                (kv.create_revision, kv.mod_revision, kv.version, kv.lease)
            );
        }
    }

    #[test]
    fn etcd_layout_takes_the_fast_path() {
        let kv = KeyValue {
            key: bytes::Bytes::from_static(b"/registry/pods/a"),
            create_revision: 5,
            mod_revision: 9,
            version: 3,
            value: bytes::Bytes::from(vec![7u8; 3000]),
            lease: -2,
        };
        let data = encoded(&kv);
        let f = KeyValueFields::parse(&data).expect("etcd's layout");
        assert_eq!(f.key, b"/registry/pods/a");
        assert_eq!(
            (f.create_revision, f.mod_revision, f.version, f.lease),
            (5, 9, 3, -2)
        );
        assert_eq!(f.value.len(), 3000);
        assert_eq!(KeyValueFields::parse(&[]), Some(KeyValueFields::default()));
        // Out of order, repeated, unknown field, wrong wire type, truncated, overlong varint.
        for bad in [
            &[0x10, 1, 0x0a, 0][..],
            &[0x10, 1, 0x10, 2],
            &[0x38, 1],
            &[0x0a, 0x01],
            &[0x12, 0],
            &[
                0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02,
            ],
        ] {
            assert_eq!(KeyValueFields::parse(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_prost(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..300),
            revs in any::<(i64, i64, i64, i64)>(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let kv = KeyValue {
                key: key.into(),
                create_revision: revs.0,
                mod_revision: revs.1,
                version: revs.2,
                value: value.into(),
                lease: revs.3,
            };
            let data = encoded(&kv);
            prop_assert!(KeyValueFields::parse(&data).is_some());
            assert_agrees_with_prost(&data);
            let mut damaged = data.clone();
            for (at, x) in flips {
                if !damaged.is_empty() {
                    let i = at % damaged.len();
                    damaged[i] ^= x;
                }
            }
            assert_agrees_with_prost(&damaged);
            assert_agrees_with_prost(&data[..cut % (data.len() + 1)]);
            assert_agrees_with_prost(&junk);
        }
    }
}
