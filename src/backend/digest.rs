//! The `key` bucket as the db pass saw it ([`KeyBucketDigest`]): per entry under a revision key,
//! its revision, tombstone flag, and the length and CRC-32C of its `k‖v` — what HashKV
//! concatenates without reading the values again (`etcd::hash_kv`).
//!
//! Memory does not grow with the bucket: the newest `mvcc::hot_limit()` entries are packed in memory;
//! each time that many have piled up they are written, as one block, to an unlinked temporary
//! file (`tempfile::tempfile()` in `std::env::temp_dir()`, never the user's directory; it goes
//! with the process) and read back a block at a time, in bucket order, by [`DigestIter`]. In
//! memory stay the newest block and one `(bytes, entries)` pair per written block. The window
//! is the one the MVCC store's digests use (`RAFT_REPLAY_STORE_HOT_REVISIONS`, default
//! 256 Ki entries, ≈1.8 MB packed here): tests force it down to 4 to make every db spill.
//!
//! When no temporary file can be created or written, the entries stay in memory (7 B each, as
//! without the file). A block that cannot be read back stops the iteration and is kept
//! ([`DigestIter::error`]): HashKV then is an error (exit 2), never a hash over part of the
//! bucket.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::mvcc::Revision;

/// One entry of a [`KeyBucketDigest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestEntry {
    /// The bucket key's revision.
    pub revision: Revision,
    /// The bucket key is a tombstone's.
    pub tombstone: bool,
    /// Length of `k‖v`.
    pub len: usize,
    /// CRC-32C of `k‖v`.
    pub crc: u32,
}

/// A block written to the file: its packed bytes (at the sum of the earlier blocks' lengths)
/// and how many entries they hold.
#[derive(Clone, Copy, Debug)]
struct Block {
    bytes: u64,
    entries: u64,
}

/// The `key` bucket's entries in bucket order, packed: per entry one LEB128 number with the
/// main revision's step from the previous entry, the tombstone flag and whether a sub revision
/// follows (then a second LEB128 number), the length as LEB128 and the CRC as 4 bytes — 7 bytes
/// for the usual entry (next main revision, sub 0, value under 16 KiB). The older entries are in
/// the spill file in blocks; `hot` holds the ones since the last block.
#[derive(Debug)]
pub struct KeyBucketDigest {
    hot: Vec<u8>,
    hot_entries: u64,
    hot_limit: u64,
    /// The main revision of the last entry pushed (the packed steps continue across blocks).
    last_main: i64,
    spill: Option<File>,
    blocks: Vec<Block>,
    spilled_bytes: u64,
    spilled_entries: u64,
    /// Creating or writing the file failed: every entry stays in memory from then on.
    spill_disabled: bool,
}

impl Default for KeyBucketDigest {
    fn default() -> Self {
        KeyBucketDigest::with_limit(crate::mvcc::hot_limit())
    }
}

fn put_leb128(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads what [`put_leb128`] wrote (the digest is only ever read back by its writer).
fn get_leb128(bytes: &[u8], at: &mut usize) -> u128 {
    let mut v = 0u128;
    let mut shift = 0;
    while let Some(&byte) = bytes.get(*at) {
        *at += 1;
        if shift < 128 {
            v |= u128::from(byte & 0x7f) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

impl KeyBucketDigest {
    /// At most `hot_limit` (≥ 4) entries in memory.
    pub fn with_limit(hot_limit: usize) -> Self {
        KeyBucketDigest {
            hot: Vec::new(),
            hot_entries: 0,
            hot_limit: hot_limit.max(4) as u64,
            last_main: 0,
            spill: None,
            blocks: Vec::new(),
            spilled_bytes: 0,
            spilled_entries: 0,
            spill_disabled: false,
        }
    }

    /// Appends an entry (in bucket order).
    pub fn push(&mut self, e: DigestEntry) {
        let step = e.revision.main_revision.wrapping_sub(self.last_main) as u64;
        self.last_main = e.revision.main_revision;
        let has_sub = e.revision.sub_revision != 0;
        let head = (u128::from(step) << 2) | (u128::from(has_sub) << 1) | u128::from(e.tombstone);
        put_leb128(&mut self.hot, head);
        if has_sub {
            put_leb128(&mut self.hot, u128::from(e.revision.sub_revision as u64));
        }
        put_leb128(&mut self.hot, e.len as u128);
        self.hot.extend_from_slice(&e.crc.to_le_bytes());
        self.hot_entries += 1;
        if self.hot_entries >= self.hot_limit && !self.spill_disabled {
            self.spill();
        }
    }

    /// Writes `hot` to the file as one block (or, failing that, keeps everything in memory).
    fn spill(&mut self) {
        if self.spill.is_none() {
            self.spill = tempfile::tempfile().ok();
        }
        let written = self.spill.as_ref().map(|file| {
            file.write_all_at(&self.hot, self.spilled_bytes)
                .map(|()| self.hot.len() as u64)
        });
        let Some(Ok(bytes)) = written else {
            // No usable temporary directory: the entries stay in memory from now on.
            self.spill_disabled = true;
            return;
        };
        self.blocks.push(Block {
            bytes,
            entries: self.hot_entries,
        });
        self.spilled_bytes += bytes;
        self.spilled_entries += self.hot_entries;
        self.hot.clear();
        self.hot_entries = 0;
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.spilled_entries + self.hot_entries
    }

    /// No entries (or no `key` bucket).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries held in the spill file.
    pub fn spilled(&self) -> u64 {
        self.spilled_entries
    }

    /// Bytes held in memory.
    pub fn heap_bytes(&self) -> usize {
        self.hot.capacity() + self.blocks.capacity() * std::mem::size_of::<Block>()
    }

    /// Empties the spill file, so that reading it back fails.
    #[cfg(test)]
    fn lose_spill_file(&self) {
        if let Some(file) = &self.spill {
            file.set_len(0).expect("truncate the spill file");
        }
    }

    /// The entries in bucket order. Stops early, recording why ([`DigestIter::error`]), if a
    /// block cannot be read back from the file.
    pub fn iter(&self) -> DigestIter<'_> {
        DigestIter {
            digest: self,
            block: 0,
            block_offset: 0,
            buffer: Vec::new(),
            at: 0,
            left: 0,
            in_hot: false,
            main: 0,
            error: None,
        }
    }
}

/// An iterator over a [`KeyBucketDigest`], reading the spilled blocks one at a time.
pub struct DigestIter<'d> {
    digest: &'d KeyBucketDigest,
    /// The next block to read.
    block: usize,
    /// Its offset in the file.
    block_offset: u64,
    /// The block being decoded (empty once the iteration reaches `hot`).
    buffer: Vec<u8>,
    at: usize,
    /// Entries left in the current block (or in `hot`).
    left: u64,
    in_hot: bool,
    main: i64,
    error: Option<String>,
}

impl DigestIter<'_> {
    /// Why the iteration stopped before the end, if it did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Makes the next block (or `hot`) current; false at the end or on a failed read.
    fn next_block(&mut self) -> bool {
        let digest = self.digest;
        let Some(block) = digest.blocks.get(self.block).copied() else {
            if self.in_hot {
                return false;
            }
            self.in_hot = true;
            self.buffer = Vec::new();
            self.at = 0;
            self.left = digest.hot_entries;
            return self.left > 0;
        };
        // The length is this process's own write, never read from the input.
        self.buffer.resize(block.bytes as usize, 0);
        let read = match &digest.spill {
            Some(file) => file
                .read_exact_at(&mut self.buffer, self.block_offset)
                .map_err(|e| e.to_string()),
            None => Err("the file is missing".to_string()),
        };
        if let Err(why) = read {
            self.error = Some(format!(
                "reading back the db's key-bucket digests from their temporary file: {why}"
            ));
            return false;
        }
        self.block += 1;
        self.block_offset += block.bytes;
        self.at = 0;
        self.left = block.entries;
        true
    }
}

impl Iterator for DigestIter<'_> {
    type Item = DigestEntry;

    fn next(&mut self) -> Option<DigestEntry> {
        while self.left == 0 {
            if self.error.is_some() || !self.next_block() {
                return None;
            }
        }
        self.left -= 1;
        let bytes = if self.in_hot {
            &self.digest.hot[..]
        } else {
            &self.buffer[..]
        };
        let at = &mut self.at;
        let head = get_leb128(bytes, at);
        self.main = self.main.wrapping_add((head >> 2) as u64 as i64);
        let sub = if head & 2 != 0 {
            get_leb128(bytes, at) as u64 as i64
        } else {
            0
        };
        let len = get_leb128(bytes, at) as usize;
        let crc = bytes
            .get(*at..*at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        *at += 4;
        Some(DigestEntry {
            revision: Revision::new(self.main, sub),
            tombstone: head & 1 != 0,
            len,
            crc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries(seeds: &[(i64, i64, bool, usize, u32)]) -> Vec<DigestEntry> {
        seeds
            .iter()
            .map(|&(main, sub, tombstone, len, crc)| DigestEntry {
                revision: Revision::new(main, sub),
                tombstone,
                len,
                crc,
            })
            .collect()
    }

    proptest! {
        // Any window, any entries (steps that go back, huge subs and lengths, as a damaged db
        // can have): the iteration gives back what was pushed, in order.
        #[test]
        fn spilled_digest_reads_back_what_was_pushed(
            seeds in proptest::collection::vec(
                (any::<i64>(), prop_oneof![Just(0i64), any::<i64>()], any::<bool>(),
                 0usize..(1 << 40), any::<u32>()),
                0..200),
            limit in 4usize..40,
        ) {
            let want = entries(&seeds);
            let mut digest = KeyBucketDigest::with_limit(limit);
            for e in &want {
                digest.push(*e);
            }
            prop_assert_eq!(digest.len(), want.len() as u64);
            prop_assert_eq!(digest.spilled(), (want.len() / limit * limit) as u64);
            let mut iter = digest.iter();
            let got: Vec<DigestEntry> = iter.by_ref().collect();
            prop_assert_eq!(iter.error(), None);
            prop_assert_eq!(&got, &want);
            // A second pass reads the file again.
            prop_assert_eq!(digest.iter().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn memory_stays_within_the_window() {
        let mut digest = KeyBucketDigest::with_limit(1024);
        for main in 1..=100_000 {
            digest.push(DigestEntry {
                revision: Revision::new(main, 0),
                tombstone: false,
                len: 120,
                crc: main as u32,
            });
        }
        assert_eq!(digest.spilled(), 97 * 1024);
        // At most 1,024 packed entries of 7 bytes, plus one pair per block (700 KB unspilled).
        assert!(digest.heap_bytes() < 16 * 1024, "{}", digest.heap_bytes());
        assert_eq!(digest.iter().count(), 100_000);
    }

    #[test]
    fn a_lost_spill_file_stops_the_iteration_with_why() {
        let mut digest = KeyBucketDigest::with_limit(4);
        for main in 1..=10 {
            digest.push(DigestEntry {
                revision: Revision::new(main, 0),
                tombstone: false,
                len: 20,
                crc: 7,
            });
        }
        assert_eq!(digest.spilled(), 8);
        digest.lose_spill_file();
        let mut iter = digest.iter();
        assert_eq!(iter.by_ref().count(), 0);
        assert!(
            iter.error().unwrap().contains("temporary file"),
            "{:?}",
            iter.error()
        );
    }
}
