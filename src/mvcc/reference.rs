//! The reference model of etcd's `key` bucket, for tests only: every revision's marshaled
//! `KeyValue` kept in one arena, hashed byte by byte. The product's bucket
//! ([`super::bucket::KeyBucket`]) keeps a digest per revision instead; under `cfg(test)` it
//! updates one of these beside its digests, and the tests hold the two to the same HashKV and
//! the same values at every revision.

use std::collections::HashMap;

use super::bucket::{decode_key_value, encode_key_value, StoredKeyValue};
use super::key_index::KeyIndex;
use super::revision::{Revision, RevisionSet};
use super::CompactionRules;

/// etcd's `treeIndex` with every key's full history (`key_index.go` ported function by
/// function): the reference the store's reduced index and its slot walks are held to.
#[derive(Clone, Debug, Default)]
pub(crate) struct HistoryIndex {
    keys: HashMap<Vec<u8>, KeyIndex>,
}

impl HistoryIndex {
    pub fn put(&mut self, key: &[u8], revision: Revision) {
        self.keys.entry(key.to_vec()).or_default().put(revision);
    }

    pub fn tombstone(&mut self, key: &[u8], revision: Revision) -> bool {
        self.keys
            .get_mut(key)
            .is_some_and(|ki| ki.tombstone(revision))
    }

    /// `restoreIntoIndex` of a key first seen.
    pub fn restored(&mut self, key: &[u8], created: Revision, modified: Revision, version: i64) {
        self.keys
            .insert(key.to_vec(), KeyIndex::restored(created, modified, version));
    }

    pub fn get(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.keys.get(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// `treeIndex.Compact(at)`: the revisions kept.
    pub fn compact(&mut self, at: i64, rules: CompactionRules) -> RevisionSet {
        let mut keep = RevisionSet::default();
        self.keys.retain(|_, ki| {
            if let Some(kept) = ki.compact(at, rules) {
                keep.insert(kept);
            }
            !ki.is_empty()
        });
        keep
    }

    /// `treeIndex.Keep(at)`: whether it is non-empty, and its members.
    pub fn keep(&self, at: i64, rules: CompactionRules) -> (bool, RevisionSet) {
        let keep: RevisionSet = self
            .keys
            .values()
            .filter_map(|ki| ki.keep(at, rules))
            .collect();
        (!keep.is_empty(), keep)
    }
}

/// Where one bucket entry lives in the arena.
#[derive(Clone, Copy, Debug)]
struct Record {
    revision: Revision,
    tombstone: bool,
    value_start: usize,
    value_len: usize,
}

/// One bucket entry as seen by readers: the revision, whether its key carries the tombstone
/// mark, and the marshaled `KeyValue` exactly as etcd stores it.
#[derive(Clone, Copy, Debug)]
pub struct ArenaEntry<'a> {
    pub revision: Revision,
    pub tombstone: bool,
    pub value: &'a [u8],
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ArenaBucket {
    records: Vec<Record>,
    arena: Vec<u8>,
}

impl ArenaBucket {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn arena_bytes(&self) -> usize {
        self.arena.len()
    }

    /// Appends a put. The caller guarantees `revision` is greater than every stored revision.
    #[allow(clippy::too_many_arguments)]
    pub fn append_put(
        &mut self,
        revision: Revision,
        key: &[u8],
        create_revision: i64,
        version: i64,
        value: &[u8],
        lease: i64,
    ) {
        let value_start = self.arena.len();
        encode_key_value(
            &mut self.arena,
            key,
            create_revision,
            revision.main_revision,
            version,
            value,
            lease,
        );
        self.records.push(Record {
            revision,
            tombstone: false,
            value_start,
            value_len: self.arena.len() - value_start,
        });
    }

    /// Appends an entry read from a backend's `key` bucket as stored (the marshaled
    /// `KeyValue` bytes verbatim). The caller guarantees `revision` is greater than every
    /// stored revision (bbolt keys ascend, and `BE64(main) '_' BE64(sub)` sorts as the revision
    /// for main ≥ 1).
    pub fn append_raw(&mut self, revision: Revision, tombstone: bool, value: &[u8]) {
        let value_start = self.arena.len();
        self.arena.extend_from_slice(value);
        self.records.push(Record {
            revision,
            tombstone,
            value_start,
            value_len: value.len(),
        });
    }

    /// Appends a tombstone: etcd stores `KeyValue{key}` under the `'t'`-marked revision key.
    pub fn append_tombstone(&mut self, revision: Revision, key: &[u8]) {
        let value_start = self.arena.len();
        encode_key_value(&mut self.arena, key, 0, 0, 0, &[], 0);
        self.records.push(Record {
            revision,
            tombstone: true,
            value_start,
            value_len: self.arena.len() - value_start,
        });
    }

    /// Removes every record with `main_revision >= main_revision` (they are all at the end).
    /// Used to roll back a write transaction that etcd would have crashed in.
    pub fn truncate_from_main(&mut self, main_revision: i64) {
        let keep = self
            .records
            .partition_point(|r| r.revision.main_revision < main_revision);
        if let Some(first_removed) = self.records.get(keep) {
            self.arena.truncate(first_removed.value_start);
        }
        self.records.truncate(keep);
    }

    /// The marshaled `KeyValue` stored at exactly `revision`.
    pub fn get(&self, revision: Revision) -> Option<&[u8]> {
        let i = self
            .records
            .binary_search_by(|r| r.revision.cmp(&revision))
            .ok()?;
        let r = &self.records[i];
        self.arena.get(r.value_start..r.value_start + r.value_len)
    }

    /// The decoded `KeyValue` stored at exactly `revision`.
    pub fn get_key_value(&self, revision: Revision) -> Option<StoredKeyValue<'_>> {
        self.get(revision).map(decode_key_value)
    }

    /// All entries in bucket (= revision) order.
    pub fn iter(&self) -> impl Iterator<Item = ArenaEntry<'_>> + '_ {
        self.records.iter().map(move |r| ArenaEntry {
            revision: r.revision,
            tombstone: r.tombstone,
            value: &self.arena[r.value_start..r.value_start + r.value_len],
        })
    }

    /// The entries with `main_revision <= upper_main_revision`, in order.
    pub fn iter_up_to(&self, upper_main_revision: i64) -> impl Iterator<Item = ArenaEntry<'_>> {
        let end = self
            .records
            .partition_point(|r| r.revision.main_revision <= upper_main_revision);
        self.records[..end].iter().map(move |r| ArenaEntry {
            revision: r.revision,
            tombstone: r.tombstone,
            value: &self.arena[r.value_start..r.value_start + r.value_len],
        })
    }

    /// Physical compaction (`scheduleCompaction`): delete every entry with
    /// `main_revision <= compact_revision` whose revision is not in `keep`.
    /// Returns the number of deleted entries.
    pub fn compact(&mut self, compact_revision: i64, keep: &RevisionSet) -> usize {
        let boundary = self
            .records
            .partition_point(|r| r.revision.main_revision <= compact_revision);
        // Slide the surviving records (and their bytes) to the front, in order; the arena only
        // ever moves bytes towards lower offsets, so copy_within never overwrites unread data.
        let mut write = 0usize;
        let mut arena_write = 0usize;
        let mut deleted = 0usize;
        for read in 0..self.records.len() {
            let record = self.records[read];
            if read < boundary && !keep.contains(&record.revision) {
                deleted += 1;
                continue;
            }
            if arena_write != record.value_start {
                self.arena.copy_within(
                    record.value_start..record.value_start + record.value_len,
                    arena_write,
                );
            }
            self.records[write] = Record {
                value_start: arena_write,
                ..record
            };
            arena_write += record.value_len;
            write += 1;
        }
        self.records.truncate(write);
        self.arena.truncate(arena_write);
        deleted
    }
}

/// `HashByRev` over the arena, byte by byte, as the store hashed before it kept digests:
/// `"key"`, then `bucket key ‖ value` of every entry with `main <= hash_revision`, entries
/// `<= compact_revision` only if in `keep` (all of them when `keep_any` is false), a tombstone
/// at the compact revision skipped when `skip_tombstone_at_compaction`.
pub(crate) fn hash_arena(
    arena: &ArenaBucket,
    hash_revision: i64,
    compact_revision: i64,
    (keep_any, keep): (bool, &RevisionSet),
    skip_tombstone_at_compaction: bool,
) -> u32 {
    let mut crc = crc32c::crc32c(b"key");
    for entry in arena.iter_up_to(hash_revision) {
        let main = entry.revision.main_revision;
        if main <= compact_revision && keep_any && !keep.contains(&entry.revision) {
            continue;
        }
        if skip_tombstone_at_compaction && main == compact_revision && entry.tombstone {
            continue;
        }
        let (key, len) = entry.revision.bucket_key(entry.tombstone);
        crc = crc32c::crc32c_append(crc, &key[..len]);
        crc = crc32c::crc32c_append(crc, entry.value);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_slides_records_and_bytes() {
        let mut bucket = ArenaBucket::default();
        for main in 2..8 {
            bucket.append_put(
                Revision::new(main, 0),
                b"k",
                2,
                main - 1,
                format!("v{main}").as_bytes(),
                0,
            );
        }
        let keep: RevisionSet = [Revision::new(4, 0)].into_iter().collect();
        assert_eq!(bucket.compact(5, &keep), 3);
        let left: Vec<(i64, Vec<u8>)> = bucket
            .iter()
            .map(|e| {
                (
                    e.revision.main_revision,
                    decode_key_value(e.value).value.to_vec(),
                )
            })
            .collect();
        assert_eq!(
            left,
            vec![
                (4, b"v4".to_vec()),
                (6, b"v6".to_vec()),
                (7, b"v7".to_vec())
            ]
        );
        assert_eq!(
            bucket
                .get_key_value(Revision::new(6, 0))
                .unwrap()
                .mod_revision,
            6
        );
        bucket.truncate_from_main(6);
        assert_eq!(bucket.len(), 1);
        assert_eq!(
            bucket.arena_bytes(),
            bucket.get(Revision::new(4, 0)).unwrap().len()
        );
    }
}
