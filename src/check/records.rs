//! The record walk behind the invariant scan: records framed in place in a window of the
//! segment, no copies. Every segment read from files (cut or last — the last is preallocated to
//! 64 MB by etcd, mostly zeros) is read forward in chunks of at least 1 MB, and the window keeps
//! only the bytes from the current frame's start on: when a frame needs bytes beyond it, the
//! unconsumed tail is copied into a new window followed by the next chunk. Memory stays at about
//! a chunk plus the largest frame (< 10 MiB) whatever the segment size, and the walk stops
//! reading near the end of the written data. No buffer is ever sized by a length word: only by
//! the file system's length, once the frame's length has been checked against it (see
//! `benches/checks.rs` for why the walk is not the shared `wal::Decoder`). Records' `data` are
//! slices of their window (a window lives as long as a record still holds one of its slices).
//!
//! It does not judge damage — the decode-level findings come from etcd's reader
//! (`wal::decoder` + `wal::read_all`). It only has to stop where that reader stops, so that no
//! invariant is judged on records etcd would never read: at a frame overrunning its segment, a
//! record ≥ etcd 3.4's 10 MiB limit, a record that does not decode, a CRC mismatch, a crc record
//! breaking the chain, an unknown record type. A zero length word ends a segment and the walk
//! continues with the next one, the chain carried over, as etcd's decoder does. The
//! `check_records` test holds it to the decoder on every corpus member and on damaged inputs.
//!
//! When etcd's boot read has just read every segment from the first with no error, the walk can
//! [`trust`](RecordWalk::trust) it: those records were validated (the CRC chain is not computed
//! again) and the walk ends exactly where that read ended, reading only that much of the tail
//! segment (not its preallocated zeros).

use std::path::PathBuf;

use bytes::Bytes;
use prost::Message;

use crate::fsio::ReadOnlyFs;
use crate::proto::walpb::{Record, CRC_TYPE, ENTRY_TYPE, SNAPSHOT_TYPE};
use crate::wal::frame::{decode_frame_size, FRAME_HEADER_BYTES};
use crate::wal::name::SegmentName;
use crate::wal::read_all::{EntryPositions, RecordPosition};
use crate::wal::MAX_RECORD_BYTES_34;

/// One good record: its type and payload, and where its frame starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub record_type: i64,
    /// The stored CRC (a crc record's chain value); 0 for a known entry.
    pub crc: u32,
    /// Empty for a known entry.
    pub data: Bytes,
    pub segment: u32,
    pub offset: u64,
    /// An entry record the trusted read already decoded: its position in that read's entries.
    pub known_entry: Option<usize>,
}

/// Where the segments come from.
pub enum SegmentBytes<'a> {
    Files {
        fs: &'a dyn ReadOnlyFs,
        wal_dir: PathBuf,
    },
    Memory(Vec<Bytes>),
}

/// The segment being walked: a window of its bytes starting at segment offset `start`, its
/// length (from the file system, or the trusted end), and the reader the rest comes from (`None`
/// once the window reaches the end).
struct Loaded<'a> {
    buf: Bytes,
    start: u64,
    len: u64,
    reader: Option<Box<dyn std::io::Read + 'a>>,
}

impl Loaded<'_> {
    /// The segment offset just past the window.
    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }
}

/// The least read from a segment file at a time (fewer, larger reads; bounds the window).
const FIRST_READ_BYTES: u64 = crate::wal::window::LEAST_READ_BYTES;

pub struct RecordWalk<'a> {
    source: SegmentBytes<'a>,
    names: Vec<SegmentName>,
    segment: usize,
    buf: Option<Loaded<'a>>,
    offset: usize,
    crc: u32,
    /// Why the walk ended before the end of the last segment.
    pub stopped: Option<String>,
    done: bool,
    /// Records up to (last segment, this offset) were validated by etcd's reader.
    trusted_end: Option<u64>,
    /// Frames of entries the trusted read decoded, in file order (borrowed from that read).
    known: Option<&'a EntryPositions>,
    next_known: usize,
    /// The largest window held so far, in bytes.
    max_buffered: u64,
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
            trusted_end: None,
            known: None,
            next_known: 0,
            max_buffered: 0,
        }
    }

    /// Trust a read that went through every segment without error and ended at `end` in the
    /// last one (`WalContents::last_good_offset`): no CRC recomputation, and the walk stops there.
    pub fn trust(mut self, end: u64) -> Self {
        self.trusted_end = Some(end);
        self
    }

    /// With [`trust`](Self::trust): the frames (segment, offset), in file order, of entries the
    /// trusted read already decoded; they are handed over as `known_entry` without decoding.
    pub fn known_entries(mut self, positions: &'a EntryPositions) -> Self {
        if self.trusted_end.is_some() {
            self.known = Some(positions);
        }
        self
    }

    fn is_last(&self) -> bool {
        self.segment + 1 == self.names.len()
    }

    pub fn segment_names(&self) -> &[SegmentName] {
        &self.names
    }

    /// The largest window of segment bytes the walk has held at once (a whole segment for
    /// [`SegmentBytes::Memory`], which is in memory already).
    pub fn max_buffered_bytes(&self) -> u64 {
        self.max_buffered
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

    /// Opens the current segment. Its bytes are read on demand ([`Self::ensure_upto`]), so the
    /// walk stops reading where the written data ends instead of reading a preallocated tail.
    fn load(&mut self) -> Result<bool, String> {
        if self.segment >= self.names.len() {
            return Ok(false);
        }
        let limit = self.trusted_end.filter(|_| self.is_last());
        let loaded = match &self.source {
            SegmentBytes::Files { fs, wal_dir } => {
                let path = wal_dir.join(&self.names[self.segment].file_name);
                let (reader, file_len) = fs
                    .open_read(&path)
                    .map_err(|e| format!("cannot read segment: {e}"))?;
                Loaded {
                    buf: Bytes::new(),
                    start: 0,
                    len: limit.map_or(file_len, |end| end.min(file_len)),
                    reader: Some(reader),
                }
            }
            SegmentBytes::Memory(segments) => {
                let bytes = segments.get(self.segment).cloned().unwrap_or_default();
                let bytes = match limit {
                    Some(end) => bytes.slice(..(end as usize).min(bytes.len())),
                    None => bytes,
                };
                Loaded {
                    len: bytes.len() as u64,
                    buf: bytes,
                    start: 0,
                    reader: None,
                }
            }
        };
        self.max_buffered = self.max_buffered.max(loaded.buf.len() as u64);
        self.buf = Some(loaded);
        self.offset = 0;
        Ok(true)
    }

    /// Makes the window reach segment offset `end` (or the segment's end). A new window holds
    /// the old one's bytes from the current frame (`self.offset`) on, then a read of at least
    /// [`FIRST_READ_BYTES`]; it is never sized by anything but the file system's length.
    fn ensure_upto(&mut self, end: u64) -> Result<(), String> {
        let keep_from = self.offset as u64;
        let loaded = self.buf.as_mut().expect("a segment is loaded");
        let end = end.min(loaded.len);
        let have = loaded.end();
        if have >= end {
            return Ok(());
        }
        let Some(reader) = loaded.reader.as_mut() else {
            loaded.len = have;
            return Ok(());
        };
        let read = (end - have).max(FIRST_READ_BYTES).min(loaded.len - have);
        let keep = (keep_from - loaded.start) as usize;
        let read_result = crate::wal::window::refill(&mut loaded.buf, keep, read, reader);
        loaded.start = keep_from;
        read_result.map_err(|e| format!("cannot read segment: {e}"))?;
        let new_end = keep_from + loaded.buf.len() as u64;
        if new_end < have + read {
            // The file is shorter than the file system said (changed under us): it ends here.
            loaded.len = new_end;
        }
        if new_end >= loaded.len {
            loaded.reader = None;
        }
        self.max_buffered = self.max_buffered.max(loaded.buf.len() as u64);
        Ok(())
    }

    /// The length of the current segment (as far as it is known).
    fn segment_len(&self) -> u64 {
        self.buf.as_ref().map_or(0, |loaded| loaded.len)
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
            let at = self.offset;
            if let Err(why) = self.ensure_upto(at as u64 + FRAME_HEADER_BYTES) {
                return self.stop(why);
            }
            let remaining = (self.segment_len() - at as u64) as usize;
            if remaining == 0 {
                self.next_segment();
                continue;
            }
            if (remaining as u64) < FRAME_HEADER_BYTES {
                return self.stop("a partial length word".into());
            }
            let word = {
                let loaded = self.buf.as_ref().expect("loaded above");
                let i = at - loaded.start as usize;
                u64::from_le_bytes(loaded.buf[i..i + 8].try_into().expect("8 bytes"))
            };
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
            if let Err(why) = self.ensure_upto((at + 8 + body_len) as u64) {
                return self.stop(why);
            }
            let loaded = self.buf.as_ref().expect("loaded above");
            if loaded.end() < (at + 8 + body_len) as u64 {
                // The file ended early (it changed under us).
                return self.stop("a frame overrunning its segment".into());
            }
            let (buf, i) = (loaded.buf.clone(), at - loaded.start as usize);
            let position = RecordPosition {
                segment_index: self.segment as u32,
                offset: at as u64,
            };
            if self.known.and_then(|k| k.get(self.next_known)) == Some(position) {
                let known = self.next_known;
                self.next_known += 1;
                self.offset = at + 8 + body_len;
                return Some(RawRecord {
                    record_type: ENTRY_TYPE,
                    crc: 0,
                    data: Bytes::new(),
                    segment: position.segment_index,
                    offset: position.offset,
                    known_entry: Some(known),
                });
            }
            // etcd's layout takes the fast path (prost's answer, held equal by its proptests).
            let record = crate::wal::decoder::fast::record(&buf, i + 8, record_len as usize)
                .map(Ok)
                .unwrap_or_else(|| Record::decode(buf.slice(i + 8..i + 8 + record_len as usize)));
            let Ok(record) = record else {
                return self.stop("a record that does not decode".into());
            };
            if !(1..=SNAPSHOT_TYPE).contains(&record.r#type) {
                return self.stop(format!("record type {}", record.r#type));
            }
            let data = record.data.unwrap_or_default();
            if self.trusted_end.is_some() {
                // Validated by etcd's reader moments ago.
            } else if record.r#type == CRC_TYPE {
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
                known_entry: None,
            });
        }
    }
}
