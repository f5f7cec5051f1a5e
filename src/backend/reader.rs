//! The read-only bbolt reader: opens a db through [`ReadOnlyFs`] (positioned reads only: no
//! mmap, no file lock, no `unsafe`), picks the meta as `db.go: DB.meta` does, and walks buckets
//! page by page so that memory stays bounded by the tree depth, not the file size.
//!
//! Invariants every read keeps before touching bytes:
//! * a page id is `>= 2` (0 and 1 are the metas) and, with its overflow, below the high-water
//!   mark (`meta.pgid`);
//! * the page and its overflow lie inside the file (checked against [`ReadOnlyFs::len`], so a
//!   buffer is never sized from a count inside the file);
//! * the page header's id equals the page's position and its flags are the expected type
//!   (bbolt 1.3.7+ panics on both, 1.3.6 misreads);
//! * every element header, key and value lies inside the page span or inline image;
//! * keys strictly ascend within a bucket; with reachability tracking on, no page is reached
//!   twice (`tx_check.go: checkBucket`), which also rules out cycles.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Damage, DbError, MetaProblem};
use super::page::*;
use crate::fsio::{RangeReader, ReadOnlyFs};

/// Deepest tree (branch levels) or bucket nesting accepted. A bbolt tree of 2^64 keys with
/// two keys per page is 64 deep; etcd's are 2–4 deep.
pub const MAX_DEPTH: usize = 64;

/// Length of the sha256 trailer of `etcdctl snapshot save` files.
pub const SHA256_TRAILER_LEN: u64 = 32;

/// An open, read-only bbolt file: the chosen meta and everything needed to fetch pages.
pub struct Db<'fs> {
    fs: &'fs dyn ReadOnlyFs,
    /// The file, opened once for every page read ([`ReadOnlyFs::open_ranges`]).
    ranges: Box<dyn RangeReader + 'fs>,
    path: PathBuf,
    /// The file's length in bytes.
    pub file_len: u64,
    /// Page size (from a valid meta, or probed as bbolt 1.3.7+ `getPageSize` does).
    pub page_size: u32,
    /// The meta in use.
    pub meta: Meta,
    /// Which meta page is in use (0 or 1).
    pub meta_used: u8,
    /// Each meta page's validation outcome.
    pub metas: [Result<Meta, MetaProblem>; 2],
    /// The meta with the higher txid field failed validation, so the newest commit was lost
    /// (`DB.meta` fell back to the previous transaction).
    pub meta_newer_lost: bool,
    /// Damage found on open that does not stop reading (an invalid meta, a file shorter than the
    /// high-water mark, a bad snapshot trailer).
    pub findings: Vec<DbError>,
    /// `Some(ok)` when the file carries an `etcdctl snapshot save` sha256 trailer.
    pub snapshot_trailer: Option<bool>,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .field("file_len", &self.file_len)
            .field("page_size", &self.page_size)
            .field("meta", &self.meta)
            .field("meta_used", &self.meta_used)
            .finish()
    }
}

fn io_error(path: &Path, e: std::io::Error) -> DbError {
    DbError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl<'fs> Db<'fs> {
    /// Opens `path` read-only. Fails only when no meta is valid or the file cannot be read;
    /// everything else found is in [`Db::findings`] or surfaces from the walks.
    pub fn open(fs: &'fs dyn ReadOnlyFs, path: &Path) -> Result<Self, DbError> {
        let file_len = fs.len(path).map_err(|e| io_error(path, e))?;
        let ranges = fs.open_ranges(path).map_err(|e| io_error(path, e))?;
        let read = |offset: u64, len: u64| -> Result<Option<Vec<u8>>, DbError> {
            if offset.saturating_add(len) > file_len {
                return Ok(None);
            }
            ranges
                .read_range(offset, len as usize)
                .map(Some)
                .map_err(|e| io_error(path, e))
        };
        let meta_bytes = (PAGE_HEADER_SIZE + 64) as u64;
        let validate = |b: Option<Vec<u8>>| match b {
            Some(b) => Meta::validate(&b),
            None => Err(MetaProblem::Missing),
        };
        // getPageSize (bbolt 1.3.7+): meta 0's page size if valid, else probe meta 1 at
        // 1 KiB << i, else the OS page size.
        let meta0_first = validate(read(0, meta_bytes)?);
        let page_size = match meta0_first {
            Ok(m) => m.page_size,
            Err(_) => {
                let mut found = None;
                let mut size = MIN_PAGE_SIZE;
                while size <= MAX_PAGE_SIZE {
                    if let Ok(m) = validate(read(u64::from(size), meta_bytes)?) {
                        if m.page_size == size {
                            found = Some(size);
                            break;
                        }
                    }
                    size <<= 1;
                }
                found.unwrap_or(4096)
            }
        };
        let ps = u64::from(page_size);
        let metas = [meta0_first, validate(read(ps, meta_bytes)?)];
        // DB.meta: the meta with the higher txid if valid, else the other if valid.
        let raw_txid = |i: u64| -> Result<Option<u64>, DbError> {
            Ok(read(i * ps, meta_bytes)?
                .as_deref()
                .and_then(Meta::parse)
                .map(|m| m.txid))
        };
        let txids = [raw_txid(0)?.unwrap_or(0), raw_txid(1)?.unwrap_or(0)];
        let newer: usize = if txids[1] > txids[0] { 1 } else { 0 };
        let older = 1 - newer;
        let (meta_used, meta, meta_newer_lost) = match (&metas[newer], &metas[older]) {
            (Ok(m), _) => (newer, *m, false),
            (Err(_), Ok(m)) => (older, *m, txids[newer] > txids[older]),
            (Err(a), Err(b)) => {
                let (meta0, meta1) = if newer == 0 { (*a, *b) } else { (*b, *a) };
                return Err(DbError::damage(0, 0, Damage::NoValidMeta { meta0, meta1 }));
            }
        };
        let mut findings = Vec::new();
        for (i, m) in metas.iter().enumerate() {
            if let Err(reason) = m {
                findings.push(DbError::damage(
                    i as u64,
                    i as u64 * ps,
                    Damage::MetaInvalid {
                        meta: i as u8,
                        reason: *reason,
                    },
                ));
            }
        }
        let size = meta.hwm.saturating_mul(ps);
        if size > file_len {
            findings.push(DbError::damage(
                file_len / ps,
                file_len,
                Damage::Truncated {
                    needed: size,
                    file_len,
                },
            ));
        }
        let mut db = Db {
            fs,
            ranges,
            path: path.to_path_buf(),
            file_len,
            page_size,
            meta,
            meta_used: meta_used as u8,
            metas,
            meta_newer_lost,
            findings,
            snapshot_trailer: None,
        };
        db.check_trailer()?;
        Ok(db)
    }

    /// `etcdctl snapshot save` appends sha256(everything before) after the last page
    /// (`v3rpc/maintenance.go: Snapshot`): a file of `size mod 512 == 32` at or past the
    /// high-water mark. Verified by streaming the file (no whole-file buffer).
    fn check_trailer(&mut self) -> Result<(), DbError> {
        let size = self.meta.hwm.saturating_mul(u64::from(self.page_size));
        if self.file_len % 512 != SHA256_TRAILER_LEN || self.file_len < size + SHA256_TRAILER_LEN {
            return Ok(());
        }
        let body = self.file_len - SHA256_TRAILER_LEN;
        let (reader, _) = self
            .fs
            .open_read(&self.path)
            .map_err(|e| io_error(&self.path, e))?;
        let mut reader = reader.take(body);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(|e| io_error(&self.path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let computed = hasher.finalize();
        let stored = self
            .ranges
            .read_range(body, SHA256_TRAILER_LEN as usize)
            .map_err(|e| io_error(&self.path, e))?;
        let ok = computed.as_slice() == stored.as_slice();
        self.snapshot_trailer = Some(ok);
        if !ok {
            self.findings.push(DbError::damage(
                body / u64::from(self.page_size),
                body,
                Damage::ShaMismatch {
                    stored: hex::encode(&stored),
                    computed: hex::encode(computed),
                },
            ));
        }
        Ok(())
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `tx.Size()`: high-water mark × page size (`snapshot status` TotalSize).
    pub fn size(&self) -> u64 {
        self.meta.hwm.saturating_mul(u64::from(self.page_size))
    }

    /// Pages a reachability set needs: the high-water mark, capped by what the file can hold
    /// (never sized from the meta alone).
    pub fn page_limit(&self) -> u64 {
        let in_file = self.file_len / u64::from(self.page_size) + 1;
        self.meta.hwm.min(in_file)
    }

    /// Reads page `id` with its overflow pages, checking position, type, high-water mark and
    /// file bounds. `expected` is a mask of acceptable flags.
    pub fn read_page(
        &self,
        id: u64,
        expected: u16,
        what: &'static str,
    ) -> Result<Vec<u8>, DbError> {
        let ps = u64::from(self.page_size);
        let offset = id.saturating_mul(ps);
        if id < 2 && expected & META_PAGE == 0 {
            return Err(DbError::damage(
                id,
                offset,
                Damage::MetaReferenced { referred: id },
            ));
        }
        if id >= self.meta.hwm {
            return Err(DbError::damage(
                id,
                offset,
                Damage::BeyondHighWater {
                    hwm: self.meta.hwm,
                    overflow: 0,
                },
            ));
        }
        let truncated = |needed: u64| {
            DbError::damage(
                id,
                offset,
                Damage::Truncated {
                    needed,
                    file_len: self.file_len,
                },
            )
        };
        let first_end = offset.checked_add(ps).ok_or_else(|| truncated(u64::MAX))?;
        if first_end > self.file_len {
            return Err(truncated(first_end));
        }
        let mut buf = self
            .ranges
            .read_range(offset, ps as usize)
            .map_err(|e| io_error(&self.path, e))?;
        let found = le64(&buf, 0).unwrap_or(0);
        if found != id {
            return Err(DbError::damage(id, offset, Damage::IdMismatch { found }));
        }
        let flags = le16(&buf, 8).unwrap_or(0);
        if flags.count_ones() != 1 || flags & expected == 0 {
            return Err(DbError::damage(
                id,
                offset + 8,
                Damage::UnexpectedFlags {
                    flags,
                    expected: what,
                },
            ));
        }
        let overflow = le32(&buf, 12).unwrap_or(0);
        if id.saturating_add(u64::from(overflow)) >= self.meta.hwm {
            return Err(DbError::damage(
                id,
                offset + 12,
                Damage::BeyondHighWater {
                    hwm: self.meta.hwm,
                    overflow,
                },
            ));
        }
        if overflow > 0 {
            let rest = u64::from(overflow) * ps;
            let end = first_end.saturating_add(rest);
            if end > self.file_len {
                return Err(truncated(end));
            }
            // Bounded by the file length checked just above.
            let more = self
                .ranges
                .read_range(first_end, rest as usize)
                .map_err(|e| io_error(&self.path, e))?;
            buf.extend_from_slice(&more);
        }
        Ok(buf)
    }

    /// The root bucket (`tx.root`), from the meta in use.
    pub fn root_bucket(&self) -> BucketRef {
        BucketRef {
            root: self.meta.root,
            sequence: self.meta.sequence,
            inline: None,
            page: self.meta_used as u64,
            offset: u64::from(self.meta_used) * u64::from(self.page_size) + 32,
        }
    }

    /// Freelist page ids (`freelist.read`, with the 0xFFFF count escape), or `None` when the db
    /// persists no freelist (etcd on Linux: `NoFreelistSync`). The ids are returned as the raw
    /// page body; see [`FreelistIds`].
    pub fn freelist(&self) -> Result<Option<FreelistIds>, DbError> {
        let id = self.meta.freelist;
        if id == NO_FREELIST {
            return Ok(None);
        }
        let buf = self.read_page(id, FREELIST_PAGE, "freelist")?;
        let offset = id.saturating_mul(u64::from(self.page_size));
        let count = le16(&buf, 10).unwrap_or(0);
        let (start, n) = if count == 0xFFFF {
            // `count` overflowed: the first u64 holds the real count, ids follow.
            (
                PAGE_HEADER_SIZE + 8,
                le64(&buf, PAGE_HEADER_SIZE).unwrap_or(0),
            )
        } else {
            (PAGE_HEADER_SIZE, u64::from(count))
        };
        let available = (buf.len().saturating_sub(start) / 8) as u64;
        if n > available {
            return Err(DbError::damage(
                id,
                offset + 10,
                Damage::BadFreelist {
                    reason: format!("{n} ids do not fit in the page span ({available} fit)"),
                },
            ));
        }
        let overflow = le32(&buf, 12).unwrap_or(0);
        Ok(Some(FreelistIds {
            page: id,
            overflow,
            body: buf,
            start,
            count: n as usize,
        }))
    }
}

/// The ids of a freelist page, read lazily from its body (nothing allocated from the count).
#[derive(Clone, Debug)]
pub struct FreelistIds {
    /// The freelist's page id.
    pub page: u64,
    /// Its overflow pages.
    pub overflow: u32,
    body: Vec<u8>,
    start: usize,
    count: usize,
}

impl FreelistIds {
    /// Number of ids.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No ids.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ids in stored order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).filter_map(move |i| le64(&self.body, self.start + i * 8))
    }
}

/// A bucket to walk: a root page, or an inline bucket's page image (`bucket.go: openBucket`).
#[derive(Clone, Debug)]
pub struct BucketRef {
    /// Root page id; 0 for an inline bucket.
    pub root: u64,
    /// The bucket's sequence (`NextSequence`).
    pub sequence: u64,
    /// An inline bucket's value after the 16-byte header (a leaf page image).
    pub inline: Option<Vec<u8>>,
    /// Page holding this bucket's header (for error reports).
    pub page: u64,
    /// File offset of this bucket's header (for error reports).
    pub offset: u64,
}

/// One item of a bucket: a value, or a sub-bucket (whose value bbolt's `ForEach` reports as nil).
#[derive(Debug)]
pub enum Item<'a> {
    /// A plain key's value.
    Value(&'a [u8]),
    /// A nested bucket.
    Bucket(BucketRef),
}

/// A fixed-size bit set over page ids, sized by [`Db::page_limit`].
#[derive(Clone, Debug)]
pub struct PageSet {
    bits: Vec<u64>,
    limit: u64,
}

impl PageSet {
    /// An empty set for ids `< limit`.
    pub fn new(limit: u64) -> Self {
        PageSet {
            bits: vec![0; limit.div_ceil(64) as usize],
            limit,
        }
    }

    /// Inserts `id`; false if it was present. Ids beyond the limit are never stored (the
    /// readers reject them before), and report "present" so they are not counted.
    pub fn insert(&mut self, id: u64) -> bool {
        if id >= self.limit {
            return false;
        }
        let (w, b) = ((id / 64) as usize, id % 64);
        let was = self.bits[w] & (1 << b) != 0;
        self.bits[w] |= 1 << b;
        !was
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u64) -> bool {
        id < self.limit && self.bits[(id / 64) as usize] & (1 << (id % 64)) != 0
    }

    /// Number of ids in the set.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The limit the set was built for.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// The visitor a walk calls with every item: it gets the walker back so it can descend into a
/// sub-bucket while the parent's page is held.
pub type Visit<'v, 'd, 'fs> =
    dyn FnMut(&mut Walker<'d, 'fs>, &[u8], Item<'_>) -> Result<(), DbError> + 'v;

/// Walks buckets of a [`Db`], optionally tracking reachability (`tx.Check`).
pub struct Walker<'d, 'fs> {
    /// The db.
    pub db: &'d Db<'fs>,
    /// Pages reached so far, when tracking.
    pub reached: Option<PageSet>,
    depth: usize,
    value_offset: u64,
}

impl<'d, 'fs> Walker<'d, 'fs> {
    /// A walker; `track` turns on reachability (every page may be reached once).
    pub fn new(db: &'d Db<'fs>, track: bool) -> Self {
        Walker {
            db,
            reached: track.then(|| PageSet::new(db.page_limit())),
            depth: 0,
            value_offset: 0,
        }
    }

    /// Absolute file offset of the value of the [`Item::Value`] being visited (inline buckets
    /// included: their image lies in the parent's leaf).
    pub fn value_offset(&self) -> u64 {
        self.value_offset
    }

    /// Calls `visit` with each item of `bucket` in key order (bbolt's `Bucket.ForEach`),
    /// reading one page at a time.
    pub fn for_each(
        &mut self,
        bucket: &BucketRef,
        visit: &mut Visit<'_, 'd, 'fs>,
    ) -> Result<(), DbError> {
        if self.depth >= MAX_DEPTH {
            return Err(DbError::damage(
                bucket.page,
                bucket.offset,
                Damage::TooDeep { max: MAX_DEPTH },
            ));
        }
        self.depth += 1;
        let mut last_key: Option<Vec<u8>> = None;
        let result = match &bucket.inline {
            Some(image) => {
                let img = PageImage {
                    page: bucket.page,
                    file_offset: bucket.offset + BUCKET_HEADER_SIZE as u64,
                    bytes: image,
                };
                match img.flags()? {
                    LEAF_PAGE => self.visit_leaf(&img, &mut last_key, visit),
                    _ => Err(DbError::damage(
                        bucket.page,
                        bucket.offset,
                        Damage::BadBucket {
                            index: 0,
                            reason: "inline bucket image is not a leaf page",
                        },
                    )),
                }
            }
            None => self.walk_tree(bucket.root, 0, &mut last_key, visit),
        };
        self.depth -= 1;
        result
    }

    fn walk_tree(
        &mut self,
        id: u64,
        level: usize,
        last_key: &mut Option<Vec<u8>>,
        visit: &mut Visit<'_, 'd, 'fs>,
    ) -> Result<(), DbError> {
        let ps = u64::from(self.db.page_size);
        let offset = id.saturating_mul(ps);
        if level >= MAX_DEPTH {
            return Err(DbError::damage(
                id,
                offset,
                Damage::TooDeep { max: MAX_DEPTH },
            ));
        }
        let buf = self
            .db
            .read_page(id, BRANCH_PAGE | LEAF_PAGE, "branch or leaf")?;
        if let Some(reached) = self.reached.as_mut() {
            let overflow = u64::from(le32(&buf, 12).unwrap_or(0));
            for p in id..=id + overflow {
                if !reached.insert(p) {
                    return Err(DbError::damage(
                        p,
                        p.saturating_mul(ps),
                        Damage::ReachedTwice,
                    ));
                }
            }
        }
        let img = PageImage {
            page: id,
            file_offset: offset,
            bytes: &buf,
        };
        if img.flags()? == BRANCH_PAGE {
            let count = img.count()?;
            if count == 0 {
                return Err(DbError::damage(id, offset + 10, Damage::EmptyBranch));
            }
            for i in 0..count {
                let child = img.branch(i)?.child;
                self.walk_tree(child, level + 1, last_key, visit)?;
            }
            Ok(())
        } else {
            self.visit_leaf(&img, last_key, visit)
        }
    }

    fn visit_leaf(
        &mut self,
        img: &PageImage<'_>,
        last_key: &mut Option<Vec<u8>>,
        visit: &mut Visit<'_, 'd, 'fs>,
    ) -> Result<(), DbError> {
        for i in 0..img.count()? {
            let e = img.leaf(i)?;
            if let Some(last) = last_key.as_mut() {
                if e.key <= last.as_slice() {
                    return Err(DbError::damage(
                        img.page,
                        e.offset,
                        Damage::KeysNotAscending {
                            index: u32::from(i),
                        },
                    ));
                }
                last.clear();
                last.extend_from_slice(e.key);
            } else {
                *last_key = Some(e.key.to_vec());
            }
            if e.flags & BUCKET_LEAF_FLAG != 0 {
                let bad = |reason| {
                    DbError::damage(
                        img.page,
                        e.offset,
                        Damage::BadBucket {
                            index: u32::from(i),
                            reason,
                        },
                    )
                };
                // The 16-byte header (root, sequence) is whole before either is read.
                if e.value.len() < BUCKET_HEADER_SIZE {
                    return Err(bad("value shorter than the bucket header"));
                }
                let root = le64(e.value, 0).unwrap_or(0);
                let sequence = le64(e.value, 8).unwrap_or(0);
                let value_offset = img.file_offset
                    + (e.value.as_ptr() as usize - img.bytes.as_ptr() as usize) as u64;
                let inline = if root == 0 {
                    let image = &e.value[BUCKET_HEADER_SIZE..];
                    if image.len() < PAGE_HEADER_SIZE {
                        return Err(bad("inline bucket shorter than a page header"));
                    }
                    Some(image.to_vec())
                } else {
                    None
                };
                let sub = BucketRef {
                    root,
                    sequence,
                    inline,
                    page: img.page,
                    offset: value_offset,
                };
                visit(self, e.key, Item::Bucket(sub))?;
            } else {
                self.value_offset = img.file_offset
                    + (e.value.as_ptr() as usize - img.bytes.as_ptr() as usize) as u64;
                visit(self, e.key, Item::Value(e.value))?;
            }
        }
        Ok(())
    }

    /// Walks every bucket under `bucket`, recursively, visiting nothing: with tracking on this
    /// marks every page reachable from it (`tx.checkBucket`).
    pub fn mark_all(&mut self, bucket: &BucketRef) -> Result<(), DbError> {
        self.for_each(bucket, &mut |w, _k, item| match item {
            Item::Bucket(sub) => w.mark_all(&sub),
            Item::Value(_) => Ok(()),
        })
    }
}

/// `tx.Check` after a full tracked walk: marks the metas and the freelist reachable, then
/// reports freelist ids that are reachable, duplicated or out of range, and pages that are
/// neither reachable nor free (only when a freelist is persisted; without one bbolt's free set
/// *is* the unreachable set). Returns (reachable pages, free pages, findings capped at `cap`).
pub fn check_pages(db: &Db<'_>, reached: &mut PageSet, cap: usize) -> (u64, u64, Vec<DbError>) {
    let ps = u64::from(db.page_size);
    let mut findings = Vec::new();
    let mut push = |f: DbError| {
        if findings.len() < cap {
            findings.push(f);
        }
    };
    reached.insert(0);
    reached.insert(1);
    let freelist = match db.freelist() {
        Ok(f) => f,
        Err(e) => {
            push(e);
            None
        }
    };
    let limit = reached.limit();
    let mut free = PageSet::new(limit);
    if let Some(fl) = &freelist {
        for p in fl.page..=fl.page.saturating_add(u64::from(fl.overflow)) {
            if !reached.insert(p) {
                push(DbError::damage(
                    p,
                    p.saturating_mul(ps),
                    Damage::ReachedTwice,
                ));
            }
        }
        for id in fl.ids() {
            let offset = id.saturating_mul(ps);
            if id < 2 || id >= db.meta.hwm {
                push(DbError::damage(
                    fl.page,
                    fl.page.saturating_mul(ps),
                    Damage::BadFreelist {
                        reason: format!(
                            "page {id} is not a freeable page (high-water mark {})",
                            db.meta.hwm
                        ),
                    },
                ));
            } else if reached.contains(id) {
                push(DbError::damage(id, offset, Damage::ReachableAndFree));
            } else if !free.insert(id) && id < limit {
                push(DbError::damage(
                    fl.page,
                    fl.page.saturating_mul(ps),
                    Damage::BadFreelist {
                        reason: format!("page {id} freed twice"),
                    },
                ));
            }
        }
    }
    let reachable = reached.count();
    let free_count = if freelist.is_some() {
        for id in 2..limit {
            if !reached.contains(id) && !free.contains(id) {
                push(DbError::damage(
                    id,
                    id.saturating_mul(ps),
                    Damage::Unreachable,
                ));
            }
        }
        free.count()
    } else {
        limit.saturating_sub(reachable)
    };
    (reachable, free_count, findings)
}
