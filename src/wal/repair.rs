//! What etcd's `wal.Repair` would do to the last segment — computed, never done: this tool does
//! not write into its input.
//!
//! Repair reads only the last segment from offset 0 with a fresh chain. On a torn tail
//! (`ErrUnexpectedEOF`) it copies the file to `<name>.broken` and truncates it at the start of
//! the failing frame; on a clean end it changes nothing; on any other error it gives up.

use bytes::Bytes;

use super::decoder::{DecodeEnd, Decoder, DecoderMode, Segment};
use super::error::{WalError, WalErrorKind};
use super::name::SegmentName;
use crate::proto::walpb::CRC_TYPE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The segment ends cleanly: nothing to repair.
    Clean,
    /// etcd would truncate the segment to `truncate_at` bytes (after keeping a `.broken` copy).
    Truncate { truncate_at: u64, cause: WalError },
    /// etcd cannot repair this (CRC mismatch, protobuf error, size limit): it refuses to start.
    Unrepairable(WalError),
}

pub fn repair_last_segment(name: SegmentName, bytes: Bytes) -> RepairOutcome {
    let mut decoder = Decoder::from_segments(vec![Segment { name, bytes }], DecoderMode::Strict);
    loop {
        match decoder.next_record() {
            Ok(decoded) => {
                if decoded.record.r#type == CRC_TYPE {
                    let running = decoder.running_crc();
                    if running != 0 && decoded.record.crc != running {
                        let location =
                            decoder.location(decoded.segment_index, decoded.offset, None);
                        return RepairOutcome::Unrepairable(WalError::new(
                            WalErrorKind::ChainCrcMismatch {
                                stored: decoded.record.crc,
                                computed: running,
                            },
                            location,
                        ));
                    }
                    decoder.reseed(decoded.record.crc);
                }
            }
            Err(DecodeEnd::Eof) => return RepairOutcome::Clean,
            Err(DecodeEnd::UnexpectedEof { error, .. }) => {
                return RepairOutcome::Truncate {
                    truncate_at: decoder.last_offset(),
                    cause: error,
                }
            }
            Err(DecodeEnd::Fatal(error)) => return RepairOutcome::Unrepairable(error),
        }
    }
}
