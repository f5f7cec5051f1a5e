//! The model of etcd's bbolt `key` bucket (revision key → gogo-marshaled `mvccpb.KeyValue`),
//! kept as one digest per entry, never the entry's bytes.
//!
//! HashKV is CRC-32C over `"key"` and then `bucket key ‖ marshaled KeyValue` of the selected
//! entries in revision order (`kvstore.go: HashByRev`). CRC-32C is linear: the CRC of a
//! concatenation follows from the CRCs of its parts and the length of the second
//! ([`crc32c_combine`]). So an entry is kept as its revision, tombstone flag, the CRC-32C of its
//! `bucket key ‖ value` and that length ([`BucketDigest`]; with the id of its key, a [`Slot`],
//! 29 bytes on disk), and any ordered subset hashes from those. The key ids let the key index
//! recover a key's history from the slots (`super::generations`) instead of keeping it. What
//! apply reads — a key's current `KeyValue` (txn compares, `ignore_value` / `ignore_lease`
//! puts) — lives with the key in the index (`KeyState::current`), not here.
//!
//! etcd only ever appends to this bucket with increasing revisions, and only compaction deletes
//! from it. The newest digests stay in memory (`hot`, at most [`hot_limit`] of them); older ones
//! spill to an unlinked temporary file (`tempfile::tempfile`, in `std::env::temp_dir()`, never
//! the user's directory) that is written once and then only read, in order. Clones of a store
//! share that file: a clone appends to it only while the file ends where the clone's part ends
//! (nobody else appended since), otherwise it first copies its own part to a file of its own.
//! Compaction writes the surviving digests to a new file. When no temporary file can be made or
//! written, the digests stay in memory; a failed read-back is kept ([`KeyBucket::spill_error`])
//! and HashKV answers `MvccError::SpillUnreadable`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::revision::{Revision, REVISION_KEY_LEN, TOMBSTONE_KEY_LEN};

/// Digests kept in memory before older ones go to the file (32 B each: 8 MiB).
pub const DEFAULT_HOT_REVISIONS: usize = 1 << 18;

/// Overrides [`DEFAULT_HOT_REVISIONS`] (tests force spilling on small stores with it).
pub const HOT_REVISIONS_ENV: &str = "RAFT_REPLAY_STORE_HOT_REVISIONS";

/// Bytes of one digest in the spill file: main, sub (LE i64), CRC, length, key id (LE u32),
/// flags (bit 0 tombstone, bit 1 retained by the index only).
const RECORD_BYTES: usize = 29;

/// Digests read from the file per read (1.6 MiB).
const READ_CHUNK: usize = 1 << 16;

/// The in-memory limit: [`HOT_REVISIONS_ENV`] when set to a number ≥ 4, else the default.
pub fn hot_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(HOT_REVISIONS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n >= 4)
            .unwrap_or(DEFAULT_HOT_REVISIONS)
    })
}

/// `crc32c(A ‖ B)` from `crc_a = crc32c(A)`, `crc_b = crc32c(B)` and `len_b = |B|`: one
/// combination through [`crate::backend::crc::CrcConcat`]; a loop combining many keeps one
/// `CrcConcat` (its multipliers are cached per length).
pub fn crc32c_combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    crate::backend::crc::CrcConcat::default().concat(crc_a, crc_b, len_b)
}

/// One bucket entry as the store keeps it: its revision, whether its key carries the
/// tombstone mark, and CRC-32C and length of `bucket key ‖ marshaled KeyValue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketDigest {
    pub revision: Revision,
    pub tombstone: bool,
    /// CRC-32C of the bucket key (17 or 18 bytes) followed by the marshaled `KeyValue`.
    pub crc: u32,
    /// Length of the bucket key plus the marshaled `KeyValue`.
    pub len: u32,
}

impl BucketDigest {
    /// The digest of the entry `revision` (a tombstone or not) holding `value`.
    pub fn of(revision: Revision, tombstone: bool, value: &[u8]) -> Self {
        let (key, key_len) = revision.bucket_key(tombstone);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&key[..key_len]), value);
        // bbolt values are below 2 GiB (`maxAllocSize`), as are WAL entries: this never clamps.
        let len = u32::try_from(key_len + value.len()).unwrap_or(u32::MAX);
        BucketDigest {
            revision,
            tombstone,
            crc,
            len,
        }
    }

    /// Length of the marshaled `KeyValue` alone.
    pub fn value_len(&self) -> usize {
        let key_len = if self.tombstone {
            TOMBSTONE_KEY_LEN
        } else {
            REVISION_KEY_LEN
        };
        (self.len as usize).saturating_sub(key_len)
    }
}

/// One bucket entry as the store keeps it: its digest, the id of its user key
/// (`keyspace::KeySpace`), and whether etcd's bucket still holds it.
///
/// `index_only` marks a revision etcd's key index still holds but its bucket no longer does:
/// a compaction under the 3.4.34+/3.5.16+ rules that keeps a tombstone at the compaction
/// revision deletes from the bucket the revisions of the same key written after it in the same
/// transaction, while `keyIndex.compact` leaves the later generations in the index. Such a slot
/// is never hashed, counted or listed; it is there so that the key's generations stay
/// recoverable from its slots (`super::generations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub revision: Revision,
    pub crc: u32,
    pub len: u32,
    pub key_id: u32,
    pub tombstone: bool,
    pub index_only: bool,
}

impl Slot {
    pub fn digest(&self) -> BucketDigest {
        BucketDigest {
            revision: self.revision,
            tombstone: self.tombstone,
            crc: self.crc,
            len: self.len,
        }
    }

    /// The slot of the entry `revision` of key `key_id` holding `value`.
    pub fn of(
        revision: Revision,
        tombstone: bool,
        value: &[u8],
        key_id: u32,
        index_only: bool,
    ) -> Self {
        Slot {
            index_only,
            ..Slot::new(BucketDigest::of(revision, tombstone, value), key_id)
        }
    }

    /// A slot that only records a revision of the key index (no digest): what a restore's
    /// index side keeps before the bucket is streamed in.
    pub fn bare(revision: Revision, tombstone: bool, key_id: u32) -> Self {
        Slot {
            revision,
            crc: 0,
            len: 0,
            key_id,
            tombstone,
            index_only: false,
        }
    }

    fn new(digest: BucketDigest, key_id: u32) -> Self {
        Slot {
            revision: digest.revision,
            crc: digest.crc,
            len: digest.len,
            key_id,
            tombstone: digest.tombstone,
            index_only: false,
        }
    }

    fn value_len(&self) -> usize {
        self.digest().value_len()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.revision.main_revision.to_le_bytes());
        out.extend_from_slice(&self.revision.sub_revision.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.key_id.to_le_bytes());
        out.push(u8::from(self.tombstone) | (u8::from(self.index_only) << 1));
    }

    fn read_from(bytes: &[u8]) -> Self {
        let word = |at: usize| -> [u8; 8] {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            b
        };
        let half = |at: usize| -> [u8; 4] {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            b
        };
        Slot {
            revision: Revision::new(i64::from_le_bytes(word(0)), i64::from_le_bytes(word(8))),
            crc: u32::from_le_bytes(half(16)),
            len: u32::from_le_bytes(half(20)),
            key_id: u32::from_le_bytes(half(24)),
            tombstone: bytes[28] & 1 != 0,
            index_only: bytes[28] & 2 != 0,
        }
    }
}

/// The spill file and how many digests have been written to it (by whichever clone).
#[derive(Debug)]
struct SpillFile {
    file: File,
    written: AtomicUsize,
}

impl SpillFile {
    fn create() -> Option<Arc<SpillFile>> {
        let file = tempfile::tempfile().ok()?;
        Some(Arc::new(SpillFile {
            file,
            written: AtomicUsize::new(0),
        }))
    }

    fn write(&self, at: usize, digests: &[Slot]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(digests.len().min(READ_CHUNK) * RECORD_BYTES);
        for (i, chunk) in digests.chunks(READ_CHUNK).enumerate() {
            bytes.clear();
            for d in chunk {
                d.write_to(&mut bytes);
            }
            let offset = (at + i * READ_CHUNK) * RECORD_BYTES;
            self.file.write_all_at(&bytes, offset as u64)?;
        }
        Ok(())
    }

    fn read(&self, from: usize, to: usize, out: &mut Vec<Slot>) -> Result<(), String> {
        let mut bytes = vec![0u8; (to - from) * RECORD_BYTES];
        self.file
            .read_exact_at(&mut bytes, (from * RECORD_BYTES) as u64)
            .map_err(|e| format!("reading back the store's spill file: {e}"))?;
        out.clear();
        out.extend(bytes.chunks_exact(RECORD_BYTES).map(Slot::read_from));
        Ok(())
    }
}

/// The current values of keys restored from a backend db, back to back in an unlinked temporary
/// file: written once, in bucket order, while the `key` bucket is streamed
/// (`restore::BucketLoader`), then only read (a txn comparing a value, an `ignore_value` put).
/// Clones share it. A failed read is remembered: HashKV then answers
/// `MvccError::SpillUnreadable` rather than a state built on a value it could not read.
#[derive(Debug)]
pub(crate) struct ValueFile {
    file: File,
    failed: std::sync::atomic::AtomicBool,
}

impl ValueFile {
    pub fn create() -> Option<ValueFile> {
        Some(ValueFile {
            file: tempfile::tempfile().ok()?,
            failed: Default::default(),
        })
    }

    pub fn write(&self, offset: u64, value: &[u8]) -> bool {
        self.file.write_all_at(value, offset).is_ok()
    }

    pub fn read(&self, offset: u64, len: u32) -> Option<Vec<u8>> {
        let mut value = vec![0u8; len as usize];
        match self.file.read_exact_at(&mut value, offset) {
            Ok(()) => Some(value),
            Err(_) => {
                self.failed.store(true, Ordering::SeqCst);
                None
            }
        }
    }

    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}

/// What a compaction does with a slot at or below its revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compacted {
    /// Deleted from the bucket and from the key index.
    Drop,
    /// Kept in both (the revision `keyIndex.compact` keeps).
    Keep,
    /// Deleted from the bucket, still in the key index ([`Slot::index_only`]).
    IndexOnly,
}

/// The `key` bucket's digests in revision order: `0 .. cold_len` in the spill file, the rest in
/// memory.
#[derive(Clone, Debug)]
pub(crate) struct KeyBucket {
    spill: Option<Arc<SpillFile>>,
    cold_len: usize,
    hot: Vec<Slot>,
    hot_limit: usize,
    /// Set once creating or writing a file failed: everything stays in memory from then on.
    spill_disabled: bool,
    /// Sum of the marshaled `KeyValue` lengths (a size measure, [`KeyBucket::value_bytes`]).
    value_bytes: usize,
    /// Slots marked [`Slot::index_only`] (not entries of etcd's bucket).
    index_only: usize,
    spill_error: Option<String>,
    /// The test-only reference model, updated by the same calls.
    #[cfg(test)]
    pub(crate) reference: super::reference::ArenaBucket,
}

impl Default for KeyBucket {
    fn default() -> Self {
        KeyBucket::with_limit(hot_limit())
    }
}

impl KeyBucket {
    /// At most `hot_limit` digests in memory.
    pub fn with_limit(hot_limit: usize) -> Self {
        KeyBucket {
            spill: None,
            cold_len: 0,
            hot: Vec::new(),
            hot_limit: hot_limit.max(4),
            spill_disabled: false,
            value_bytes: 0,
            index_only: 0,
            spill_error: None,
            #[cfg(test)]
            reference: Default::default(),
        }
    }

    /// Entries of etcd's bucket.
    pub fn len(&self) -> usize {
        self.cold_len + self.hot.len() - self.index_only
    }

    /// Slots held in the spill file.
    pub fn spilled(&self) -> usize {
        self.cold_len
    }

    /// Bytes of marshaled `KeyValue`s the bucket holds (as etcd stores them).
    pub fn value_bytes(&self) -> usize {
        self.value_bytes
    }

    /// Empties the spill file under every clone, so that reading it back fails.
    #[cfg(test)]
    pub(crate) fn lose_spill_file(&self) {
        if let Some(spill) = &self.spill {
            spill.file.set_len(0).expect("truncate the spill file");
        }
    }

    /// Records that reading the spill file back failed (HashKV then refuses to answer).
    pub fn note_error(&mut self, why: String) {
        self.spill_error.get_or_insert(why);
    }

    /// Why reading the spill file back failed, if it did.
    pub fn spill_error(&self) -> Option<&str> {
        self.spill_error.as_deref()
    }

    /// Appends the entry `revision` of the key `key_id` holding `value` (the marshaled
    /// `KeyValue`). The caller guarantees `revision` is greater than every stored revision
    /// (bbolt keys ascend, and `BE64(main) '_' BE64(sub)` sorts as the revision for main ≥ 1).
    pub fn append(&mut self, revision: Revision, tombstone: bool, value: &[u8], key_id: u32) {
        self.push(Slot::new(
            BucketDigest::of(revision, tombstone, value),
            key_id,
        ));
    }

    /// Appends a slot as given (an index-only one included).
    pub(crate) fn push(&mut self, slot: Slot) {
        if slot.index_only {
            self.index_only += 1;
        } else {
            self.value_bytes += slot.value_len();
        }
        self.hot.push(slot);
        if self.hot.len() >= self.hot_limit && !self.spill_disabled {
            self.spill();
        }
    }

    /// Moves the older three quarters of `hot` to the file (the newest quarter stays: a write
    /// transaction etcd would crash in is rolled back from the tail).
    fn spill(&mut self) {
        let count = self.hot.len() - self.hot_limit / 4;
        if count == 0 {
            return;
        }
        let Some(file) = self.writable_spill() else {
            self.spill_disabled = true;
            return;
        };
        if file.write(self.cold_len, &self.hot[..count]).is_err() {
            // A full or failing temp directory: keep everything in memory instead.
            file.written.store(self.cold_len, Ordering::SeqCst);
            self.spill_disabled = true;
            return;
        }
        self.cold_len += count;
        self.hot.drain(..count);
    }

    /// A spill file this bucket may append to at `cold_len`, with the region after it reserved.
    /// A file another clone appended to since is left to it: this bucket's part is copied to a
    /// new file first.
    fn writable_spill(&mut self) -> Option<Arc<SpillFile>> {
        if let Some(file) = &self.spill {
            if file
                .written
                .compare_exchange(
                    self.cold_len,
                    usize::MAX,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                let file = file.clone();
                let end = self.cold_len + self.hot.len() - self.hot_limit / 4;
                file.written.store(end, Ordering::SeqCst);
                return Some(file);
            }
        }
        let fresh = SpillFile::create()?;
        if let Some(shared) = &self.spill {
            let mut chunk = Vec::new();
            let mut at = 0;
            while at < self.cold_len {
                let to = (at + READ_CHUNK).min(self.cold_len);
                shared.read(at, to, &mut chunk).ok()?;
                fresh.write(at, &chunk).ok()?;
                at = to;
            }
        }
        let end = self.cold_len + self.hot.len() - self.hot_limit / 4;
        fresh.written.store(end, Ordering::SeqCst);
        self.spill = Some(fresh.clone());
        Some(fresh)
    }

    /// Removes every entry with `main_revision >= main_revision` (they are all at the end, and
    /// none is index-only: those are at or below the compact revision).
    /// Used to roll back a write transaction that etcd would have crashed in.
    pub fn truncate_from_main(&mut self, main_revision: i64) {
        #[cfg(test)]
        self.reference.truncate_from_main(main_revision);
        let keep = self
            .hot
            .partition_point(|d| d.revision.main_revision < main_revision);
        for d in &self.hot[keep..] {
            self.value_bytes -= d.value_len();
        }
        self.hot.truncate(keep);
        if keep > 0 || self.cold_len == 0 {
            return;
        }
        // The transaction reaches into the file: bring back the part of it before the cut.
        let Some(file) = self.spill.clone() else {
            return;
        };
        let mut from = self.cold_len;
        let mut chunk = Vec::new();
        while from > 0 {
            let start = from.saturating_sub(READ_CHUNK);
            if let Err(why) = file.read(start, from, &mut chunk) {
                self.spill_error.get_or_insert(why);
                return;
            }
            let kept = chunk.partition_point(|d| d.revision.main_revision < main_revision);
            for d in &chunk[kept..] {
                self.value_bytes -= d.value_len();
            }
            chunk.truncate(kept);
            self.cold_len = start;
            if kept > 0 || start == 0 {
                self.hot = chunk;
                return;
            }
            from = start;
        }
    }

    /// The digests of etcd's bucket in bucket (= revision) order. Stops early, recording why,
    /// if the spill file cannot be read back.
    pub fn iter(&self) -> Digests<'_> {
        Digests {
            slots: self.slots(),
        }
    }

    /// Every slot (index-only ones included) in revision order, read from the file in chunks.
    pub(crate) fn slots(&self) -> Slots<'_> {
        Slots {
            bucket: self,
            position: 0,
            chunk: Vec::new(),
            chunk_start: 0,
            error: None,
        }
    }

    /// Physical compaction (`scheduleCompaction`) with the index's side: every slot with
    /// `main_revision <= compact_revision` goes as `decide` says; later ones stay. Returns the
    /// ids of the keys some surviving slot names, as a bitmap over ids (`ids` long), or the
    /// reason the spill file could not be read (the bucket is then unchanged).
    pub fn compact(
        &mut self,
        compact_revision: i64,
        ids: usize,
        mut decide: impl FnMut(&Slot) -> Compacted,
    ) -> Result<Vec<bool>, String> {
        let mut survivors = KeyBucket::with_limit(self.hot_limit);
        survivors.spill_disabled = self.spill_disabled;
        let mut referenced = vec![false; ids];
        let mut slots = self.slots();
        for mut d in slots.by_ref() {
            if d.revision.main_revision <= compact_revision {
                match decide(&d) {
                    Compacted::Drop => continue,
                    Compacted::Keep => {}
                    Compacted::IndexOnly => d.index_only = true,
                }
            }
            if let Some(seen) = referenced.get_mut(d.key_id as usize) {
                *seen = true;
            }
            survivors.push(d);
        }
        if let Some(why) = slots.error {
            self.spill_error.get_or_insert(why.clone());
            return Err(why);
        }
        #[cfg(test)]
        {
            survivors.reference = std::mem::take(&mut self.reference);
        }
        *self = survivors;
        Ok(referenced)
    }
}

/// An iterator over a [`KeyBucket`]'s slots, reading the spilled part in chunks.
pub(crate) struct Slots<'b> {
    bucket: &'b KeyBucket,
    position: usize,
    chunk: Vec<Slot>,
    chunk_start: usize,
    error: Option<String>,
}

impl Slots<'_> {
    /// Why the iteration stopped before the end, if it did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl Iterator for Slots<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        let bucket = self.bucket;
        if self.error.is_some() {
            return None;
        }
        if self.position >= bucket.cold_len {
            let d = bucket.hot.get(self.position - bucket.cold_len).copied()?;
            self.position += 1;
            return Some(d);
        }
        let offset = self.position - self.chunk_start;
        if offset >= self.chunk.len() {
            let to = (self.position + READ_CHUNK).min(bucket.cold_len);
            let read = match &bucket.spill {
                Some(file) => file.read(self.position, to, &mut self.chunk),
                None => Err("the store's spill file is missing".to_string()),
            };
            if let Err(why) = read {
                self.error = Some(why);
                return None;
            }
            self.chunk_start = self.position;
        }
        let d = self.chunk.get(self.position - self.chunk_start).copied()?;
        self.position += 1;
        Some(d)
    }
}

/// An iterator over the digests of etcd's bucket (index-only slots left out).
pub struct Digests<'b> {
    slots: Slots<'b>,
}

impl Digests<'_> {
    /// Why the iteration stopped before the end, if it did.
    pub fn error(&self) -> Option<&str> {
        self.slots.error()
    }
}

impl Iterator for Digests<'_> {
    type Item = BucketDigest;

    fn next(&mut self) -> Option<BucketDigest> {
        self.slots
            .by_ref()
            .find(|s| !s.index_only)
            .map(|s| s.digest())
    }
}

/// The fields of a stored `KeyValue`, borrowed from the bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StoredKeyValue<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: &'a [u8],
    pub lease: i64,
}

fn put_varint(out: &mut Vec<u8>, value: u64) {
    let mut v = value;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Marshals an `mvccpb.KeyValue` the way gogo does (and prost does: see the tests): fields in
/// tag order, proto3 zero values omitted, int64 as the varint of its two's-complement u64
/// (negative numbers take 10 bytes).
pub fn encode_key_value(
    out: &mut Vec<u8>,
    key: &[u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: &[u8],
    lease: i64,
) {
    if !key.is_empty() {
        out.push(0x0a);
        put_varint(out, key.len() as u64);
        out.extend_from_slice(key);
    }
    if create_revision != 0 {
        out.push(0x10);
        put_varint(out, create_revision as u64);
    }
    if mod_revision != 0 {
        out.push(0x18);
        put_varint(out, mod_revision as u64);
    }
    if version != 0 {
        out.push(0x20);
        put_varint(out, version as u64);
    }
    if !value.is_empty() {
        out.push(0x2a);
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
    if lease != 0 {
        out.push(0x30);
        put_varint(out, lease as u64);
    }
}

fn read_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        result |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(result);
        }
    }
    None
}

/// Decodes a `KeyValue` this module encoded. Malformed input (never produced by us) decodes
/// to whatever fields could be read before the damage, never panics.
pub(crate) fn decode_key_value(data: &[u8]) -> StoredKeyValue<'_> {
    let mut kv = StoredKeyValue::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(tag) = read_varint(data, &mut pos) else {
            break;
        };
        match tag {
            0x0a | 0x2a => {
                let Some(len) = read_varint(data, &mut pos) else {
                    break;
                };
                let Some(end) = pos.checked_add(len as usize).filter(|e| *e <= data.len()) else {
                    break;
                };
                if tag == 0x0a {
                    kv.key = &data[pos..end];
                } else {
                    kv.value = &data[pos..end];
                }
                pos = end;
            }
            0x10 | 0x18 | 0x20 | 0x30 => {
                let Some(v) = read_varint(data, &mut pos) else {
                    break;
                };
                let v = v as i64;
                match tag {
                    0x10 => kv.create_revision = v,
                    0x18 => kv.mod_revision = v,
                    0x20 => kv.version = v,
                    _ => kv.lease = v,
                }
            }
            _ => break,
        }
    }
    kv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::KeyValue;
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message;

    fn encoded(key: &[u8], c: i64, m: i64, v: i64, value: &[u8], lease: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&mut out, key, c, m, v, value, lease);
        out
    }

    #[test]
    fn reference_bucket_values() {
        // §4.7, bucket after step 4.
        assert_eq!(
            hex::encode(encoded(b"foo", 2, 2, 1, b"bar", 0)),
            "0a03666f6f100218022001 2a03626172".replace(' ', "")
        );
        assert_eq!(
            hex::encode(encoded(b"k2", 4, 4, 1, b"v", 0x1234)),
            "0a026b32100418042001 2a0176 30b424".replace(' ', "")
        );
        assert_eq!(hex::encode(encoded(b"foo", 0, 0, 0, b"", 0)), "0a03666f6f");
    }

    #[test]
    fn negative_lease_is_ten_byte_varint() {
        let out = encoded(b"k", 1, 1, 1, b"", -1);
        assert_eq!(
            &out[out.len() - 11..],
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    proptest! {
        #[test]
        fn matches_prost_key_value(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..300),
            c in any::<i64>(), m in any::<i64>(), v in any::<i64>(), lease in any::<i64>(),
        ) {
            let ours = encoded(&key, c, m, v, &value, lease);
            let theirs = KeyValue {
                key: Bytes::from(key.clone()),
                create_revision: c,
                mod_revision: m,
                version: v,
                value: Bytes::from(value.clone()),
                lease,
            }.encode_to_vec();
            prop_assert_eq!(&ours, &theirs);
            let back = decode_key_value(&ours);
            prop_assert_eq!(back, StoredKeyValue { key: &key, create_revision: c, mod_revision: m, version: v, value: &value, lease });
        }
    }
}
