//! etcd's write-ahead log: framing, segment names, the record decoder, ReadAll semantics, the
//! snapshot-record scan used at boot, repair semantics, and a writer producing etcd's bytes.
//!
//! One concern a file, as in etcd's own `wal/` package.

pub mod crc;
pub mod decoder;
pub mod error;
pub mod frame;
pub mod name;
pub(crate) mod prefault;
pub mod read_all;
pub mod repair;
pub mod valid_snapshots;
pub(crate) mod window;
pub mod writer;

pub use decoder::{DecodedRecord, Decoder, DecoderMode, Segment};
pub use error::{Location, WalError, WalErrorKind};
pub use read_all::{read_all, ReadAllOptions, WalContents};

/// etcd: `SegmentSizeBytes int64 = 64 * 1000 * 1000` — not 64 MiB.
pub const SEGMENT_SIZE_BYTES: u64 = 64 * 1000 * 1000;
/// etcd 3.4.10+: `maxWALEntrySizeLimit = 10 * 1024 * 1024`.
pub const MAX_RECORD_BYTES_34: u64 = 10 * 1024 * 1024;
/// Torn-write detection works on this sector size (`minSectorSize`).
pub const MIN_SECTOR_SIZE: u64 = 512;
