//! The record walk behind the invariant scan: each segment read whole and framed in place, no
//! copies (the shared `wal::Decoder` regrows its buffer while streaming, which costs the scan
//! more than all of its checks; see `benches/checks.rs`).
//!
//! It does not judge damage — the decode-level findings come from etcd's reader
//! (`wal::decoder` + `wal::read_all`). It only has to stop where that reader stops, so that no
//! invariant is judged on records etcd would never read: at a frame overrunning its segment, a
//! record ≥ etcd 3.4's 10 MiB limit, a record that does not decode, a CRC mismatch, a crc record
//! breaking the chain, an unknown record type. A zero length word ends a segment and the walk
//! continues with the next one, the chain carried over, as etcd's decoder does. The
//! `check_records` test holds it to the decoder on every corpus member and on damaged inputs.

use std::path::PathBuf;

use bytes::Bytes;
use prost::Message;

use crate::fsio::ReadOnlyFs;
use crate::proto::walpb::{Record, CRC_TYPE, SNAPSHOT_TYPE};
use crate::wal::frame::{decode_frame_size, FRAME_HEADER_BYTES};
use crate::wal::name::SegmentName;
use crate::wal::MAX_RECORD_BYTES_34;

/// One good record: its type and payload, and where its frame starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub record_type: i64,
    /// The stored CRC (a crc record's chain value).
    pub crc: u32,
    pub data: Bytes,
    pub segment: u32,
    pub offset: u64,
}

/// Where the segments come from.
pub enum SegmentBytes<'a> {
    Files {
        fs: &'a dyn ReadOnlyFs,
        wal_dir: PathBuf,
    },
    Memory(Vec<Bytes>),
}

pub struct RecordWalk<'a> {
    source: SegmentBytes<'a>,
    names: Vec<SegmentName>,
    segment: usize,
    buf: Option<Bytes>,
    offset: usize,
    crc: u32,
    /// Why the walk ended before the end of the last segment.
    pub stopped: Option<String>,
    done: bool,
}

impl<'a> RecordWalk<'a> {
    pub fn new(names: Vec<SegmentName>, source: SegmentBytes<'a>) -> RecordWalk<'a> {
        RecordWalk {
            source,
            names,
            segment: 0,
            buf: None,
            offset: 0,
            crc: 0,
            stopped: None,
            done: false,
        }
    }

    pub fn segment_names(&self) -> &[SegmentName] {
        &self.names
    }

    fn stop(&mut self, why: String) -> Option<RawRecord> {
        let name = self
            .names
            .get(self.segment)
            .map(|n| n.file_name.as_str())
            .unwrap_or("?");
        self.stopped = Some(format!("{why} in {name} at byte offset {}", self.offset));
        self.done = true;
        None
    }

    fn load(&mut self) -> Result<bool, String> {
        if self.segment >= self.names.len() {
            return Ok(false);
        }
        let bytes = match &self.source {
            SegmentBytes::Files { fs, wal_dir } => fs
                .read(&wal_dir.join(&self.names[self.segment].file_name))
                .map_err(|e| format!("cannot read segment: {e}"))?,
            SegmentBytes::Memory(segments) => {
                segments.get(self.segment).cloned().unwrap_or_default()
            }
        };
        self.buf = Some(bytes);
        self.offset = 0;
        Ok(true)
    }

    fn next_segment(&mut self) {
        self.buf = None;
        self.segment += 1;
    }
}

impl Iterator for RecordWalk<'_> {
    type Item = RawRecord;

    fn next(&mut self) -> Option<RawRecord> {
        loop {
            if self.done {
                return None;
            }
            if self.buf.is_none() {
                match self.load() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(why) => return self.stop(why),
                }
            }
            let buf = self.buf.clone().expect("loaded above");
            let remaining = buf.len() - self.offset;
            if remaining == 0 {
                self.next_segment();
                continue;
            }
            if (remaining as u64) < FRAME_HEADER_BYTES {
                return self.stop("a partial length word".into());
            }
            let at = self.offset;
            let word = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
            if word == 0 {
                self.next_segment();
                continue;
            }
            let (record_len, pad_len) = decode_frame_size(word);
            if record_len >= MAX_RECORD_BYTES_34.saturating_sub(pad_len) {
                return self.stop(format!("a record of {record_len} bytes"));
            }
            let body_len = (record_len + pad_len) as usize;
            if body_len > remaining - 8 {
                return self.stop("a frame overrunning its segment".into());
            }
            let body = buf.slice(at + 8..at + 8 + record_len as usize);
            let Ok(record) = Record::decode(body) else {
                return self.stop("a record that does not decode".into());
            };
            if !(1..=SNAPSHOT_TYPE).contains(&record.r#type) {
                return self.stop(format!("record type {}", record.r#type));
            }
            let data = record.data.unwrap_or_default();
            if record.r#type == CRC_TYPE {
                if self.crc != 0 && record.crc != self.crc {
                    return self.stop("a crc record breaking the chain".into());
                }
                self.crc = record.crc;
            } else {
                self.crc = crc32c::crc32c_append(self.crc, &data);
                if record.crc != self.crc {
                    return self.stop("a record CRC mismatch".into());
                }
            }
            self.offset = at + 8 + body_len;
            return Some(RawRecord {
                record_type: record.r#type,
                crc: record.crc,
                data,
                segment: self.segment as u32,
                offset: at as u64,
            });
        }
    }
}
