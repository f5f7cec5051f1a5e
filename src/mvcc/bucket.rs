//! The model of etcd's bbolt `key` bucket: revision key → gogo-marshaled `mvccpb.KeyValue`.
//!
//! etcd only ever appends to this bucket with increasing revisions, and only compaction deletes
//! from it. We therefore keep the records in a `Vec` sorted by revision (append is O(1), lookup
//! is a binary search) and the marshaled values back to back in one byte arena, so a put costs
//! no allocation of its own and HashKV can feed the stored bytes straight into the CRC.

use super::revision::{Revision, RevisionSet};

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
pub struct BucketEntry<'a> {
    pub revision: Revision,
    pub tombstone: bool,
    pub value: &'a [u8],
}

#[derive(Clone, Debug, Default)]
pub(crate) struct KeyBucket {
    records: Vec<Record>,
    arena: Vec<u8>,
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

impl KeyBucket {
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
    pub fn iter(&self) -> impl Iterator<Item = BucketEntry<'_>> + '_ {
        self.records.iter().map(move |r| BucketEntry {
            revision: r.revision,
            tombstone: r.tombstone,
            value: &self.arena[r.value_start..r.value_start + r.value_len],
        })
    }

    /// The entries with `main_revision <= upper_main_revision`, in order.
    pub fn iter_up_to(&self, upper_main_revision: i64) -> impl Iterator<Item = BucketEntry<'_>> {
        let end = self
            .records
            .partition_point(|r| r.revision.main_revision <= upper_main_revision);
        self.records[..end].iter().map(move |r| BucketEntry {
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

    #[test]
    fn compact_slides_records_and_bytes() {
        let mut bucket = KeyBucket::default();
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
