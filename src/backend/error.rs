//! Typed errors of the db reader. Damage is data, not a crash: every problem found in the file
//! names the page id, the absolute byte offset in the file and what is wrong.

use serde::Serialize;

/// Why the db could not be read (or a part of it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum DbError {
    /// The file system refused a read (not damage of the file's content).
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A temporary file of this tool's own (the `key` bucket's digests past the in-memory
    /// window) could not be read back: not damage of the db, and no result over part of it.
    #[error("{message}")]
    Spill {
        /// What failed.
        message: String,
    },
    /// The file's content is damaged at a known page and byte.
    #[error("page {page} (byte {offset}): {damage}")]
    Damage {
        /// The page id the problem was found in (for an inline bucket: the page holding it).
        page: u64,
        /// Absolute byte offset in the file of the damaged field or structure.
        offset: u64,
        /// What is wrong.
        damage: Damage,
    },
}

impl DbError {
    /// A damage finding at `page` / `offset`.
    pub fn damage(page: u64, offset: u64, damage: Damage) -> Self {
        DbError::Damage {
            page,
            offset,
            damage,
        }
    }

    /// The damage kind, if this is damage (not an I/O error).
    pub fn kind(&self) -> Option<&Damage> {
        match self {
            DbError::Damage { damage, .. } => Some(damage),
            DbError::Io { .. } | DbError::Spill { .. } => None,
        }
    }
}

/// What is wrong with a page or a structure in it. Variants follow the order of bbolt's own
/// checks (`db.go: meta.validate`, `page.go`, `tx_check.go`) plus the bounds checks bbolt does
/// not make (it trusts its mmap and dies with SIGBUS or a panic instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Damage {
    /// The file ends before a structure that must be there.
    #[error("file of {file_len} bytes ends before byte {needed}")]
    Truncated {
        /// First byte past the structure.
        needed: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A meta page fails `meta.validate` (magic, version, checksum) or has an unusable field.
    #[error("meta page {meta} invalid: {reason}")]
    MetaInvalid {
        /// 0 or 1.
        meta: u8,
        /// What failed.
        reason: MetaProblem,
    },
    /// Neither meta page is valid: bbolt refuses the file ("invalid database").
    #[error("neither meta page is valid (meta 0: {meta0}; meta 1: {meta1})")]
    NoValidMeta {
        /// Why meta 0 was rejected.
        meta0: MetaProblem,
        /// Why meta 1 was rejected.
        meta1: MetaProblem,
    },
    /// The page header's id is not the page's position (bbolt 1.3.7+ panics on fetch).
    #[error("page header holds id {found}")]
    IdMismatch {
        /// The id in the header.
        found: u64,
    },
    /// The page's type flags are not what the referring structure needs.
    #[error("page flags {flags:#06x}, expected a {expected} page")]
    UnexpectedFlags {
        /// The flags found.
        flags: u16,
        /// The page type wanted.
        expected: &'static str,
    },
    /// A page id (or a page's overflow) reaches the high-water mark or beyond.
    #[error("page (with {overflow} overflow pages) reaches beyond the high-water mark {hwm}")]
    BeyondHighWater {
        /// The meta's high-water mark.
        hwm: u64,
        /// The page's overflow count.
        overflow: u32,
    },
    /// A page reached a second time in the tree walk (shared subtree or cycle).
    #[error("page reached twice (cycle or shared subtree)")]
    ReachedTwice,
    /// A page id that can never be a tree page (0 and 1 are the metas).
    #[error("tree refers to meta page {referred}")]
    MetaReferenced {
        /// The page id referred to.
        referred: u64,
    },
    /// An element or its key/value ends outside the page (with overflow) or inline image.
    #[error("element {index}: {what} ends at byte {end} of a {span}-byte page span")]
    ElementOutOfPage {
        /// Element index.
        index: u32,
        /// "element header", "key" or "value".
        what: &'static str,
        /// End, relative to the page start.
        end: u64,
        /// Bytes available.
        span: u64,
    },
    /// Keys do not strictly ascend across the bucket.
    #[error("element {index}: key does not ascend")]
    KeysNotAscending {
        /// Element index.
        index: u32,
    },
    /// A branch page without elements.
    #[error("branch page without elements")]
    EmptyBranch,
    /// The tree or the bucket nesting is deeper than any sane bbolt file.
    #[error("nesting deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A sub-bucket value shorter than its 16-byte header, or an inline bucket image that is not
    /// a leaf page.
    #[error("element {index}: bad sub-bucket value: {reason}")]
    BadBucket {
        /// Element index in the parent.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// The root bucket holds a plain key (bbolt keeps only buckets there).
    #[error("root bucket element {index} is not a bucket")]
    RootItemNotBucket {
        /// Element index.
        index: u32,
    },
    /// The freelist page's ids do not fit in the page, or an id is invalid.
    #[error("freelist: {reason}")]
    BadFreelist {
        /// What is wrong.
        reason: String,
    },
    /// `tx.Check`: a page is neither reachable nor free.
    #[error("page unreachable and not free")]
    Unreachable,
    /// `tx.Check`: a reachable page is also on the freelist.
    #[error("page reachable and on the freelist")]
    ReachableAndFree,
    /// `etcdctl snapshot save` trailer does not match the sha256 of the file before it.
    #[error("snapshot sha256 trailer mismatch: stored {stored}, computed {computed}")]
    ShaMismatch {
        /// Stored hex digest.
        stored: String,
        /// Computed hex digest.
        computed: String,
    },
}

/// Why a meta page was rejected (`meta.validate` and the reader's own sanity checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaProblem {
    /// The file is too short to hold it.
    #[error("missing (file too short)")]
    Missing,
    /// Magic is not 0xED0CDAED.
    #[error("bad magic")]
    BadMagic,
    /// Version is not 2.
    #[error("bad version")]
    BadVersion,
    /// FNV-1a 64 of bytes 16..72 differs from the stored checksum.
    #[error("checksum mismatch")]
    BadChecksum,
    /// Page size outside 1 KiB..=64 KiB or not a power of two.
    #[error("unsupported page size")]
    BadPageSize,
    /// The page header does not carry the meta flag.
    #[error("not a meta page")]
    NotMeta,
}
