//! The per-entry part of the scan's resolved log — `(data CRC, frame offset delta)`, 8 bytes an
//! entry — kept in bounded memory: the newest items in memory, older ones in an unlinked
//! temporary file (`tempfile::tempfile`, in `std::env::temp_dir()`, never the user's directory),
//! in fixed-size blocks.
//!
//! Why a file: the digests are the one structure of the checks that grows with the log (8 bytes
//! an entry, 80 MB at 10 M entries), and they are needed whole — an overwrite may reach any
//! earlier index, and the cross-member checks compare logs index by index. Every access pattern
//! on them is sequential or near the tail (the scan appends and looks one entry back; the
//! stream and the cross-member walk go forward or backward in index order), so one cached
//! block answers almost every read of the spilled part.
//!
//! When no temporary file can be created or written, the items simply stay in memory (the old
//! behaviour). A failed read-back of the file is remembered ([`DigestItems::spill_error`]) and
//! answered as "no such entry"; the scan reports it as a finding rather than panicking.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// Items kept in memory before older ones go to the file (2 MiB); see [`hot_limit`]. Logs past
/// it spill, so from a quarter of a million entries on the cost per entry does not change.
pub const DEFAULT_HOT_ITEMS: usize = 1 << 18;

/// Overrides [`DEFAULT_HOT_ITEMS`] (tests force spilling on small logs with it).
pub const HOT_ITEMS_ENV: &str = "RAFT_REPLAY_DIGEST_HOT_ENTRIES";

const ITEM_BYTES: usize = 8;

/// The in-memory limit: [`HOT_ITEMS_ENV`] when set to a number ≥ 2, else the default.
pub fn hot_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(HOT_ITEMS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n >= 2)
            .unwrap_or(DEFAULT_HOT_ITEMS)
    })
}

/// The last block read back from the file, and the buffers reads reuse.
#[derive(Debug, Default)]
struct BlockCache {
    /// The block `items` holds, if any.
    block: Option<usize>,
    items: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

/// `(data CRC, offset delta)` items in order, the oldest spilled to a file past `hot_limit`.
#[derive(Debug)]
pub struct DigestItems {
    /// Items `cold_len ..` (in memory).
    hot: Vec<(u32, u32)>,
    /// Items `0 .. cold_len` live in `file`, `block_items` to a block; `cold_len` is a multiple
    /// of `block_items`.
    cold_len: usize,
    file: Option<File>,
    /// Set once creating or writing the file failed: everything stays in memory from then on.
    spill_disabled: bool,
    block_items: usize,
    hot_limit: usize,
    /// The last block read back from the file.
    cache: RefCell<BlockCache>,
    spill_error: RefCell<Option<String>>,
}

impl Default for DigestItems {
    fn default() -> Self {
        DigestItems::with_limit(hot_limit())
    }
}

impl DigestItems {
    /// At most `hot_limit` items in memory (blocks of a sixteenth of it go to the file).
    pub fn with_limit(hot_limit: usize) -> DigestItems {
        let hot_limit = hot_limit.max(2);
        DigestItems {
            hot: Vec::new(),
            cold_len: 0,
            file: None,
            spill_disabled: false,
            block_items: (hot_limit / 16).max(1),
            hot_limit,
            cache: RefCell::new(BlockCache::default()),
            spill_error: RefCell::new(None),
        }
    }

    pub fn len(&self) -> usize {
        self.cold_len + self.hot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items held in the file.
    pub fn spilled(&self) -> usize {
        self.cold_len
    }

    /// Why reading the file back failed, if it did (reads then answered `None`).
    pub fn spill_error(&self) -> Option<String> {
        self.spill_error.borrow().clone()
    }

    pub fn push(&mut self, item: (u32, u32)) {
        self.hot.push(item);
        if self.hot.len() >= self.hot_limit && !self.spill_disabled {
            self.spill();
        }
    }

    /// Moves whole blocks from the front of `hot` to the file, keeping at least one block in
    /// memory (the scan looks back at the previous entry; overwrites land near the tail).
    fn spill(&mut self) {
        let blocks = (self.hot.len() - self.block_items) / self.block_items;
        if blocks == 0 {
            return;
        }
        let count = blocks * self.block_items;
        if self.file.is_none() {
            match tempfile::tempfile() {
                Ok(file) => self.file = Some(file),
                Err(_) => {
                    self.spill_disabled = true;
                    return;
                }
            }
        }
        // One block at a time: a buffer for all of them would be a transient as large as the
        // memory the spill saves.
        let file = self.file.as_ref().expect("created above");
        let mut bytes = Vec::with_capacity(self.block_items * ITEM_BYTES);
        for (block, items) in self.hot[..count].chunks(self.block_items).enumerate() {
            bytes.clear();
            for (crc, delta) in items {
                bytes.extend_from_slice(&crc.to_le_bytes());
                bytes.extend_from_slice(&delta.to_le_bytes());
            }
            let at = ((self.cold_len + block * self.block_items) * ITEM_BYTES) as u64;
            if file.write_all_at(&bytes, at).is_err() {
                // A full or failing temp directory: keep everything in memory instead.
                self.spill_disabled = true;
                return;
            }
        }
        self.cold_len += count;
        self.hot.drain(..count);
    }

    /// Reads block `block` of the file into `items` (through `bytes`; both reused).
    fn read_block(
        &self,
        block: usize,
        items: &mut Vec<(u32, u32)>,
        bytes: &mut Vec<u8>,
    ) -> Result<(), String> {
        items.clear();
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| "no spill file".to_string())?;
        bytes.resize(self.block_items * ITEM_BYTES, 0);
        file.read_exact_at(bytes, (block * self.block_items * ITEM_BYTES) as u64)
            .map_err(|e| format!("reading back the digest spill file: {e}"))?;
        items.extend(bytes.chunks_exact(ITEM_BYTES).map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                u32::from_le_bytes(c[4..].try_into().expect("4 bytes")),
            )
        }));
        Ok(())
    }

    pub fn get(&self, position: usize) -> Option<(u32, u32)> {
        if position >= self.cold_len {
            return self.hot.get(position - self.cold_len).copied();
        }
        let block = position / self.block_items;
        let mut cache = self.cache.borrow_mut();
        let cache = &mut *cache;
        if cache.block != Some(block) {
            cache.block = None;
            if let Err(why) = self.read_block(block, &mut cache.items, &mut cache.bytes) {
                self.spill_error.borrow_mut().get_or_insert(why);
                return None;
            }
            cache.block = Some(block);
        }
        cache.items.get(position % self.block_items).copied()
    }

    /// Keeps the first `len` items. Truncating into the file brings its last kept block back
    /// into memory.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.cold_len {
            self.hot.truncate(len - self.cold_len);
            return;
        }
        let block = len / self.block_items;
        let mut kept = Vec::new();
        if let Err(why) = self.read_block(block, &mut kept, &mut Vec::new()) {
            self.spill_error.borrow_mut().get_or_insert(why);
        }
        kept.truncate(len - block * self.block_items);
        self.hot = kept;
        self.cold_len = block * self.block_items;
        self.drop_cache_from(block);
    }

    pub fn clear(&mut self) {
        self.hot.clear();
        self.cold_len = 0;
        self.drop_cache_from(0);
    }

    /// Forgets a cached block the file no longer holds as cached.
    fn drop_cache_from(&mut self, block: usize) {
        let cache = self.cache.get_mut();
        if cache.block.is_some_and(|b| b >= block) {
            cache.block = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Truncate(usize),
        Clear,
        Get(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            12 => any::<u32>().prop_map(Op::Push),
            2 => (0usize..80).prop_map(Op::Truncate),
            1 => Just(Op::Clear),
            4 => (0usize..100).prop_map(Op::Get),
        ]
    }

    proptest! {
        /// Spilled or not, the items answer as a plain vector does.
        #[test]
        fn spilled_items_answer_as_a_vector(
            limit in 2usize..40,
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let mut items = DigestItems::with_limit(limit);
            let mut plain: Vec<(u32, u32)> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(x) => {
                        let item = (x, x.rotate_left(7));
                        items.push(item);
                        plain.push(item);
                    }
                    Op::Truncate(n) => {
                        items.truncate(n);
                        plain.truncate(n);
                    }
                    Op::Clear => {
                        items.clear();
                        plain.clear();
                    }
                    Op::Get(p) => prop_assert_eq!(items.get(p), plain.get(p).copied()),
                }
                prop_assert_eq!(items.len(), plain.len());
                prop_assert!(items.hot.len() <= limit.max(2), "memory bounded by the limit");
            }
            for (p, item) in plain.iter().enumerate() {
                prop_assert_eq!(items.get(p), Some(*item));
            }
            for p in (0..plain.len()).rev() {
                prop_assert_eq!(items.get(p), Some(plain[p]));
            }
            prop_assert_eq!(items.spill_error(), None);
        }
    }

    #[test]
    fn long_runs_spill_and_stay_bounded() {
        let mut items = DigestItems::with_limit(64);
        for i in 0..10_000u32 {
            items.push((i, !i));
            assert!(items.hot.len() <= 64);
        }
        assert!(
            items.spilled() >= 10_000 - 64,
            "spilled {}",
            items.spilled()
        );
        assert_eq!(items.get(0), Some((0, !0)));
        assert_eq!(items.get(4_321), Some((4_321, !4_321)));
        // An overwrite deep into the spilled part.
        items.truncate(1_000);
        assert_eq!(items.len(), 1_000);
        assert!(items.spilled() <= 1_000);
        items.push((7, 7));
        assert_eq!(items.get(999), Some((999, !999)));
        assert_eq!(items.get(1_000), Some((7, 7)));
        assert_eq!(items.get(1_001), None);
    }
}
