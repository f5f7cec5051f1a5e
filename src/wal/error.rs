//! Every outcome of reading a WAL that is not a clean end, each with where it happened.

use std::fmt;

/// Where in the WAL something was found: the segment file, the byte offset of the frame inside
/// it, and the raft index involved (the damaged entry's own index when it could be decoded,
/// otherwise the last good entry index before the damage).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub segment: Option<String>,
    pub offset: Option<u64>,
    pub raft_index: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(segment) = &self.segment {
            parts.push(format!("segment {segment}"));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("byte offset {offset}"));
        }
        if let Some(index) = self.raft_index {
            parts.push(format!("raft index {index}"));
        }
        if parts.is_empty() {
            write!(f, "(no location)")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WalErrorKind {
    /// No `*.wal` file in the directory (`wal: file not found`).
    NoWalFiles,
    /// No segment covers the start index, or sequence numbers are not contiguous.
    FileNotFound {
        reason: String,
    },
    /// Segment sequence numbers jump right after sequence 0: a segment was lost or renamed,
    /// but etcd's `isValidSeq` treats a last sequence of 0 as unset and reads on.
    /// `first_index` is the raft index the segment after the gap starts at (its name's).
    SequenceGapAfterZero {
        after: u64,
        first_index: u64,
    },
    /// A record's CRC does not match the running CRC (`walpb: crc mismatch`).
    RecordCrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// A crc record does not match the chain carried from the previous record/segment
    /// (`wal: crc mismatch`).
    ChainCrcMismatch {
        stored: u32,
        computed: u32,
    },
    /// The record or its payload is not valid protobuf.
    Proto {
        message: String,
    },
    /// The data ends inside a frame. Benign as a torn tail of the last segment (etcd repairs it);
    /// anywhere else etcd refuses to start.
    UnexpectedEof {
        reason: String,
    },
    /// etcd 3.4.10+: a record ≥ 10 MiB − pad is refused (`wal: max entry size limit exceeded`).
    RecordTooLarge {
        record_len: u64,
    },
    UnknownRecordType {
        record_type: i64,
    },
    /// Metadata differs between segments (`wal: conflicting metadata found`).
    MetadataConflict,
    /// The start snapshot's index is present with another term (`wal: snapshot mismatch`).
    SnapshotMismatch {
        index: u64,
        wal_term: u64,
        start_term: u64,
    },
    /// The start snapshot record was never seen (`wal: snapshot not found`).
    SnapshotNotFound {
        index: u64,
        term: u64,
    },
    /// An entry jumps past the next expected index (`wal: slice bounds out of range`).
    /// `bridged_by_snapshot`: a snapshot record at `found - 1` precedes the entry — the shape a
    /// leader snapshot leaves (etcd then reads from that snapshot); otherwise entries are missing.
    SliceOutOfRange {
        expected_at_most: u64,
        found: u64,
        bridged_by_snapshot: bool,
    },
    /// An entry/state/snapshot payload that etcd's `MustUnmarshal` would panic on.
    PayloadDecode {
        record_type: String,
        message: String,
    },
    /// Bytes skipped while resynchronising in forensic mode.
    SkippedBytes {
        length: u64,
    },
    Io {
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WalError {
    #[serde(flatten)]
    pub kind: WalErrorKind,
    pub location: Location,
}

impl WalError {
    pub fn new(kind: WalErrorKind, location: Location) -> WalError {
        WalError { kind, location }
    }

    /// The same problem at the same place, whatever raft index each reader could attach to it.
    pub fn same_place(&self, other: &WalError) -> bool {
        self.kind == other.kind
            && self.location.segment == other.location.segment
            && self.location.offset == other.location.offset
    }

    /// The etcd error string this corresponds to, for users who grep etcd's logs.
    pub fn etcd_error(&self) -> &'static str {
        match self.kind {
            WalErrorKind::NoWalFiles | WalErrorKind::FileNotFound { .. } => "wal: file not found",
            WalErrorKind::SequenceGapAfterZero { .. } => {
                "none: isValidSeq treats sequence 0 as unset, so etcd reads every segment and boots"
            }
            WalErrorKind::RecordCrcMismatch { .. } => "walpb: crc mismatch",
            WalErrorKind::ChainCrcMismatch { .. } => "wal: crc mismatch",
            WalErrorKind::Proto { .. } => "proto: …",
            WalErrorKind::UnexpectedEof { .. } => "unexpected EOF",
            WalErrorKind::RecordTooLarge { .. } => "wal: max entry size limit exceeded",
            WalErrorKind::UnknownRecordType { .. } => "unexpected block type",
            WalErrorKind::MetadataConflict => "wal: conflicting metadata found",
            WalErrorKind::SnapshotMismatch { .. } => "wal: snapshot mismatch",
            WalErrorKind::SnapshotNotFound { .. } => {
                "none: in write mode ReadAll's ErrSnapshotNotFound is overwritten by newFileEncoder, so etcd boots"
            }
            WalErrorKind::SliceOutOfRange { .. } => "wal: slice bounds out of range",
            WalErrorKind::PayloadDecode { .. } => "panic: unmarshal",
            WalErrorKind::SkippedBytes { .. } => {
                "none: etcd never reads these bytes (decodeRecord ends a segment at a zero length word)"
            }
            WalErrorKind::Io { .. } => "io error",
        }
    }
}

impl fmt::Display for WalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalErrorKind::NoWalFiles => write!(f, "no .wal files found"),
            WalErrorKind::FileNotFound { reason } => write!(f, "cannot select WAL segments: {reason}"),
            WalErrorKind::SequenceGapAfterZero { after, first_index } => write!(
                f,
                "segment sequence jumps from 0 to {after} (a segment was lost or renamed); the segment after the gap starts at raft index {first_index}"
            ),
            WalErrorKind::RecordCrcMismatch { stored, computed } => {
                write!(f, "record CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            WalErrorKind::ChainCrcMismatch { stored, computed } => write!(
                f,
                "CRC chain broken: crc record holds {stored:#010x}, chain so far is {computed:#010x}"
            ),
            WalErrorKind::Proto { message } => write!(f, "record is not valid protobuf: {message}"),
            WalErrorKind::UnexpectedEof { reason } => write!(f, "data ends inside a record: {reason}"),
            WalErrorKind::RecordTooLarge { record_len } => {
                write!(f, "record of {record_len} bytes exceeds etcd 3.4's 10 MiB record limit")
            }
            WalErrorKind::UnknownRecordType { record_type } => write!(f, "unknown record type {record_type}"),
            WalErrorKind::MetadataConflict => write!(f, "metadata differs from the first segment's"),
            WalErrorKind::SnapshotMismatch { index, wal_term, start_term } => write!(
                f,
                "snapshot record at index {index} has term {wal_term}, the start snapshot has term {start_term}"
            ),
            WalErrorKind::SnapshotNotFound { index, term } => {
                write!(f, "no snapshot record for the start snapshot (index {index}, term {term})")
            }
            WalErrorKind::SliceOutOfRange { expected_at_most, found, bridged_by_snapshot } => {
                write!(f, "entry index gap: expected an index ≤ {expected_at_most}, found {found}")?;
                if *bridged_by_snapshot {
                    write!(f, " (after a leader snapshot at {})", found - 1)?;
                }
                Ok(())
            }
            WalErrorKind::PayloadDecode { record_type, message } => {
                write!(f, "{record_type} payload does not decode ({message}); etcd would panic here")
            }
            WalErrorKind::SkippedBytes { length } => write!(f, "skipped {length} unreadable bytes"),
            WalErrorKind::Io { message } => write!(f, "I/O error: {message}"),
        }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} [etcd: {}]",
            self.kind,
            self.location,
            self.etcd_error()
        )
    }
}

impl std::error::Error for WalError {}
