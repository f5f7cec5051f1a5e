//! The record decoder: etcd's `decoder.decodeRecord`, over one logical stream of segments.
//!
//! Segments are loaded one at a time (through a loader, so memory follows one segment, not the
//! whole WAL) and records are sliced out of the loaded buffer without copying. No allocation is
//! ever sized by a length word: a frame longer than what remains in the file is a short read.

use std::io;

use bytes::Bytes;
use prost::Message;

use super::error::{Location, WalError, WalErrorKind};
use super::frame::{decode_frame_size, FRAME_HEADER_BYTES};
use super::name::SegmentName;
use super::{MAX_RECORD_BYTES_34, MIN_SECTOR_SIZE};
use crate::proto::raftpb::Entry;
use crate::proto::walpb::{Record, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderMode {
    /// Stop at the first bad record, as etcd does.
    Strict,
    /// Continue past CRC errors and unreadable bytes, listing every bad record.
    Forensic,
}

/// A segment already in memory.
#[derive(Clone, Debug)]
pub struct Segment {
    pub name: SegmentName,
    pub bytes: Bytes,
}

#[derive(Clone, Debug)]
pub struct DecodedRecord {
    pub record: Record,
    /// Index into the decoder's segment list.
    pub segment_index: usize,
    /// Byte offset of the frame's length word in its segment.
    pub offset: u64,
    pub frame_len: u64,
    /// False only in forensic mode, for a record returned despite a CRC mismatch.
    pub crc_valid: bool,
}

/// How the stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeEnd {
    /// Clean end of the last segment (EOF or a zero length word).
    Eof,
    /// The data ends inside a frame, or a bad record looks torn (`io.ErrUnexpectedEOF`).
    /// `in_last_segment` tells whether etcd's Repair could fix it.
    UnexpectedEof {
        error: WalError,
        in_last_segment: bool,
    },
    /// A record CRC mismatch, protobuf error or size-limit error: etcd refuses the WAL.
    Fatal(WalError),
}

/// An opened segment: its reader and its size from the file system (never from its content).
pub struct SegmentSource<'a> {
    pub reader: Box<dyn io::Read + 'a>,
    pub len: u64,
}

impl<'a> SegmentSource<'a> {
    pub fn from_bytes(bytes: Bytes) -> SegmentSource<'a> {
        let len = bytes.len() as u64;
        SegmentSource {
            reader: Box::new(io::Cursor::new(bytes)),
            len,
        }
    }
}

/// The segment being decoded. Its bytes are read on demand, so decoding stops reading at the
/// end of the written data instead of reading a preallocated 64 MB tail of zeros.
struct Current<'a> {
    index: usize,
    buf: Bytes,
    len: u64,
    reader: Box<dyn io::Read + 'a>,
}

fn source_len_hint(current: &Option<Current<'_>>) -> u64 {
    current.as_ref().map(|c| c.len).unwrap_or(0)
}

/// The first read of a segment; later reads double (amortised O(n) copying).
const FIRST_READ_BYTES: u64 = 1024 * 1024;

type Loader<'a> = Box<dyn FnMut(&SegmentName) -> io::Result<SegmentSource<'a>> + 'a>;

pub struct Decoder<'a> {
    names: Vec<SegmentName>,
    loader: Loader<'a>,
    mode: DecoderMode,
    current: Option<Current<'a>>,
    next_segment: usize,
    /// Offset just past the last good frame in the current segment (`lastValidOff`).
    offset: u64,
    crc: u32,
    /// Updated by the consumer after each entry, to name the raft index near damage.
    pub last_entry_index: u64,
    /// Forensic mode: every problem passed over, in order.
    pub damage: Vec<WalError>,
    /// After a forensic resync the chain value before the next record is unknown: trust its CRC.
    trust_next_crc: bool,
    end: Option<DecodeEnd>,
}

impl<'a> Decoder<'a> {
    pub fn new(
        names: Vec<SegmentName>,
        loader: impl FnMut(&SegmentName) -> io::Result<SegmentSource<'a>> + 'a,
        mode: DecoderMode,
    ) -> Self {
        Decoder {
            names,
            loader: Box::new(loader),
            mode,
            current: None,
            next_segment: 0,
            offset: 0,
            crc: 0,
            last_entry_index: 0,
            damage: Vec::new(),
            trust_next_crc: false,
            end: None,
        }
    }

    pub fn from_segments(segments: Vec<Segment>, mode: DecoderMode) -> Decoder<'static> {
        let names: Vec<SegmentName> = segments.iter().map(|s| s.name.clone()).collect();
        Decoder::new(
            names,
            move |name: &SegmentName| {
                segments
                    .iter()
                    .find(|s| s.name == *name)
                    .map(|s| SegmentSource::from_bytes(s.bytes.clone()))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.file_name.clone()))
            },
            mode,
        )
    }

    pub fn segment_names(&self) -> &[SegmentName] {
        &self.names
    }

    pub fn segment_name(&self, segment_index: usize) -> &str {
        &self.names[segment_index].file_name
    }

    /// The running CRC-32C (`decoder.lastCRC()`).
    pub fn running_crc(&self) -> u32 {
        self.crc
    }

    /// Re-seed the chain from a crc record (`decoder.updateCRC`).
    pub fn reseed(&mut self, crc: u32) {
        self.crc = crc;
    }

    /// Offset just past the last good record of the segment being read (`lastOffset`).
    pub fn last_offset(&self) -> u64 {
        self.offset
    }

    pub fn current_segment_index(&self) -> Option<usize> {
        self.current.as_ref().map(|c| c.index)
    }

    pub fn location(&self, segment_index: usize, offset: u64, raft_index: Option<u64>) -> Location {
        Location {
            segment: Some(self.names[segment_index].file_name.clone()),
            offset: Some(offset),
            raft_index: raft_index
                .or(Some(self.last_entry_index))
                .filter(|i| *i > 0),
        }
    }

    fn is_last_segment(&self, segment_index: usize) -> bool {
        segment_index + 1 == self.names.len()
    }

    /// The next record, or `Err(end)` once the stream is over (repeated calls return the same end).
    pub fn next_record(&mut self) -> Result<DecodedRecord, DecodeEnd> {
        if let Some(end) = &self.end {
            return Err(end.clone());
        }
        match self.decode() {
            Ok(record) => Ok(record),
            Err(end) => {
                self.end = Some(end.clone());
                Err(end)
            }
        }
    }

    fn advance_segment(&mut self) -> Result<bool, DecodeEnd> {
        if self.next_segment >= self.names.len() {
            self.current = None;
            return Ok(false);
        }
        let index = self.next_segment;
        self.next_segment += 1;
        // Drop the previous buffer before loading the next: one segment in memory at a time.
        self.current = None;
        let source = (self.loader)(&self.names[index]).map_err(|e| {
            DecodeEnd::Fatal(WalError::new(
                WalErrorKind::Io {
                    message: e.to_string(),
                },
                Location {
                    segment: Some(self.names[index].file_name.clone()),
                    ..Default::default()
                },
            ))
        })?;
        self.current = Some(Current {
            index,
            buf: Bytes::new(),
            len: source.len,
            reader: source.reader,
        });
        self.offset = 0;
        if !self.is_last_segment(index) {
            // A cut segment is truncated to its data: read it whole, in one exact read.
            self.ensure_upto(source_len_hint(&self.current))?;
        }
        Ok(true)
    }

    /// The current segment's bytes, read up to at least `end` (or the end of the file).
    fn bytes_upto(&mut self, end: u64) -> Result<Bytes, DecodeEnd> {
        self.ensure_upto(end)?;
        Ok(self.current_buf().clone())
    }

    /// The current segment's bytes read so far (borrowed: no reference-count traffic).
    fn current_buf(&self) -> &Bytes {
        &self.current.as_ref().expect("a segment is loaded").buf
    }

    /// Reads the current segment up to at least `end` (or the end of the file).
    fn ensure_upto(&mut self, end: u64) -> Result<(), DecodeEnd> {
        let current = self.current.as_mut().expect("a segment is loaded");
        let end = end.min(current.len);
        let have = current.buf.len() as u64;
        if have < end {
            use std::io::Read;
            let target = end.max(have * 2).max(FIRST_READ_BYTES).min(current.len);
            let mut grown = Vec::with_capacity(target as usize);
            grown.extend_from_slice(&current.buf);
            let read = (&mut current.reader)
                .take(target - have)
                .read_to_end(&mut grown);
            if let Err(e) = read {
                let location = Location {
                    segment: Some(self.names[current.index].file_name.clone()),
                    ..Default::default()
                };
                return Err(DecodeEnd::Fatal(WalError::new(
                    WalErrorKind::Io {
                        message: e.to_string(),
                    },
                    location,
                )));
            }
            if (grown.len() as u64) < target {
                // The file is shorter than the file system said (changed under us): its end is here.
                current.len = grown.len() as u64;
            }
            current.buf = Bytes::from(grown);
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<DecodedRecord, DecodeEnd> {
        loop {
            if self.current.is_none() && !self.advance_segment()? {
                return Err(DecodeEnd::Eof);
            }
            let offset = self.offset;
            self.ensure_upto(offset + FRAME_HEADER_BYTES)?;
            let (segment_index, segment_len) = {
                let current = self.current.as_ref().expect("segment loaded above");
                (current.index, current.len)
            };
            let remaining = segment_len.saturating_sub(offset);
            if remaining == 0 {
                self.current = None;
                continue;
            }
            if remaining < FRAME_HEADER_BYTES {
                let error = WalError::new(
                    WalErrorKind::UnexpectedEof {
                        reason: format!("{remaining} bytes left, a length word needs 8"),
                    },
                    self.location(segment_index, offset, None),
                );
                return Err(DecodeEnd::UnexpectedEof {
                    error,
                    in_last_segment: self.is_last_segment(segment_index),
                });
            }
            let at = offset as usize;
            let length_word = u64::from_le_bytes(
                self.current_buf()[at..at + 8]
                    .try_into()
                    .expect("8 bytes checked"),
            );
            let forensic = self.mode == DecoderMode::Forensic;
            // The rare paths below need the buffer alongside `&mut self`: they take a handle.
            let mut buf = Bytes::new();
            if length_word == 0 {
                // End of written data in this segment (preallocated zeros): etcd moves on. The
                // rest of a non-last segment is read only to name skipped data.
                buf = if !self.is_last_segment(segment_index) {
                    self.bytes_upto(segment_len)?
                } else {
                    self.current_buf().clone()
                };
                self.note_skipped_tail(segment_index, &buf, offset);
                if self.mode == DecoderMode::Forensic && !self.is_last_segment(segment_index) {
                    if let Some(resume) = self.resync(&buf, offset + FRAME_HEADER_BYTES) {
                        self.offset = resume;
                        continue;
                    }
                }
                self.current = None;
                continue;
            }
            let (record_len, pad_len) = decode_frame_size(length_word);
            if forensic {
                buf = self.bytes_upto(segment_len)?;
            }
            if record_len >= MAX_RECORD_BYTES_34.saturating_sub(pad_len) {
                if !forensic {
                    buf = self.current_buf().clone();
                }
                let error = WalError::new(
                    WalErrorKind::RecordTooLarge { record_len },
                    self.location(segment_index, offset, None),
                );
                if self.forensic_skip(error, segment_index, &buf, offset) {
                    continue;
                }
                return Err(DecodeEnd::Fatal(
                    self.damage.pop().expect("pushed by forensic_skip"),
                ));
            }
            let frame_len = FRAME_HEADER_BYTES + record_len + pad_len;
            if frame_len > remaining {
                let error = WalError::new(
                    WalErrorKind::UnexpectedEof {
                        reason: format!(
                            "frame of {frame_len} bytes, only {remaining} left in the segment"
                        ),
                    },
                    self.location(segment_index, offset, None),
                );
                let in_last_segment = self.is_last_segment(segment_index);
                if !forensic {
                    buf = self.current_buf().clone();
                }
                if !in_last_segment
                    && self.forensic_skip(error.clone(), segment_index, &buf, offset)
                {
                    continue;
                }
                return Err(DecodeEnd::UnexpectedEof {
                    error,
                    in_last_segment,
                });
            }
            self.ensure_upto(offset + frame_len)?;
            if (self.current_buf().len() as u64) < offset + frame_len {
                let error = WalError::new(
                    WalErrorKind::UnexpectedEof {
                        reason: "the segment ended while being read".into(),
                    },
                    self.location(segment_index, offset, None),
                );
                return Err(DecodeEnd::UnexpectedEof {
                    error,
                    in_last_segment: self.is_last_segment(segment_index),
                });
            }
            let body_start = at + FRAME_HEADER_BYTES as usize;
            let body_range = body_start..body_start + (record_len + pad_len) as usize;
            let decoded = match fast::record(self.current_buf(), body_start, record_len as usize) {
                Some(record) => Ok(record),
                None => Record::decode(
                    self.current_buf()
                        .slice(body_start..body_start + record_len as usize),
                ),
            };
            let record = match decoded {
                Ok(record) => record,
                Err(e) => {
                    let buf = self.current_buf().clone();
                    let body = buf.slice(body_range.clone());
                    let torn = self.is_torn(segment_index, offset, &body);
                    let truncated = e.to_string().contains("buffer underflow");
                    let kind = if torn || truncated {
                        WalErrorKind::UnexpectedEof {
                            reason: if torn {
                                "record has an all-zero sector (torn write)".into()
                            } else {
                                format!("record protobuf truncated: {e}")
                            },
                        }
                    } else {
                        WalErrorKind::Proto {
                            message: e.to_string(),
                        }
                    };
                    let error = WalError::new(kind, self.location(segment_index, offset, None));
                    if torn || truncated {
                        let in_last_segment = self.is_last_segment(segment_index);
                        if !in_last_segment
                            && self.forensic_skip(error.clone(), segment_index, &buf, offset)
                        {
                            continue;
                        }
                        return Err(DecodeEnd::UnexpectedEof {
                            error,
                            in_last_segment,
                        });
                    }
                    if self.forensic_skip(error, segment_index, &buf, offset) {
                        continue;
                    }
                    return Err(DecodeEnd::Fatal(
                        self.damage.pop().expect("pushed by forensic_skip"),
                    ));
                }
            };
            let mut crc_valid = true;
            if record.r#type != CRC_TYPE && std::mem::take(&mut self.trust_next_crc) {
                self.crc = record.crc;
            } else if record.r#type != CRC_TYPE {
                // The running CRC is updated before the comparison, as etcd does.
                self.crc = crc32c::crc32c_append(self.crc, record.data.as_deref().unwrap_or(&[]));
                if record.crc != self.crc {
                    let raft_index = damaged_entry_index(&record, self.last_entry_index);
                    let body = self.current_buf().slice(body_range.clone());
                    if self.is_torn(segment_index, offset, &body) {
                        let error = WalError::new(
                            WalErrorKind::UnexpectedEof {
                                reason: "record has an all-zero sector (torn write)".into(),
                            },
                            self.location(segment_index, offset, raft_index),
                        );
                        return Err(DecodeEnd::UnexpectedEof {
                            error,
                            in_last_segment: true,
                        });
                    }
                    let error = WalError::new(
                        WalErrorKind::RecordCrcMismatch {
                            stored: record.crc,
                            computed: self.crc,
                        },
                        self.location(segment_index, offset, raft_index),
                    );
                    if self.mode == DecoderMode::Strict {
                        return Err(DecodeEnd::Fatal(error));
                    }
                    // Forensic: keep going, trusting the stored CRC so one bad record is reported once.
                    self.damage.push(error);
                    self.crc = record.crc;
                    crc_valid = false;
                }
            }
            self.offset = offset + frame_len;
            return Ok(DecodedRecord {
                record,
                segment_index,
                offset,
                frame_len,
                crc_valid,
            });
        }
    }

    /// etcd's `isTornEntry`: only while reading the last segment, a bad record counts as torn
    /// when one of its 512-byte-sector-aligned pieces (record + padding) is entirely zero.
    fn is_torn(&self, segment_index: usize, frame_offset: u64, body: &[u8]) -> bool {
        if !self.is_last_segment(segment_index) {
            return false;
        }
        let mut file_offset = frame_offset + FRAME_HEADER_BYTES;
        let mut at = 0usize;
        while at < body.len() {
            let chunk_len =
                ((MIN_SECTOR_SIZE - file_offset % MIN_SECTOR_SIZE) as usize).min(body.len() - at);
            if body[at..at + chunk_len].iter().all(|b| *b == 0) {
                return true;
            }
            at += chunk_len;
            file_offset += chunk_len as u64;
        }
        false
    }

    /// A zero length word ends a segment. In a non-last segment, non-zero bytes after it mean
    /// records were skipped (a zeroed sector, not a preallocated tail): worth naming.
    fn note_skipped_tail(&mut self, segment_index: usize, buf: &Bytes, offset: u64) {
        if self.is_last_segment(segment_index) {
            return;
        }
        let rest = &buf[offset as usize..];
        if let Some(first_nonzero) = rest.iter().position(|b| *b != 0) {
            let error = WalError::new(
                WalErrorKind::SkippedBytes {
                    length: (rest.len() - first_nonzero) as u64,
                },
                self.location(segment_index, offset, None),
            );
            self.damage.push(error);
        }
    }

    /// Forensic mode: record the damage and look for the next plausible frame in this segment
    /// (or go to the next segment). Strict mode: record it and return false.
    fn forensic_skip(
        &mut self,
        error: WalError,
        segment_index: usize,
        buf: &Bytes,
        offset: u64,
    ) -> bool {
        self.damage.push(error);
        if self.mode == DecoderMode::Strict {
            return false;
        }
        match self.resync(buf, offset + FRAME_HEADER_BYTES) {
            Some(resume) => {
                let skipped = resume - offset;
                let location = self.location(segment_index, offset, None);
                self.damage.push(WalError::new(
                    WalErrorKind::SkippedBytes { length: skipped },
                    location,
                ));
                self.offset = resume;
            }
            None => self.current = None,
        }
        true
    }

    /// The first 8-aligned offset ≥ `from` where a frame decodes into a plausible record. The
    /// chain is re-seeded from it, since the CRC of the skipped records is unknowable.
    fn resync(&mut self, buf: &Bytes, from: u64) -> Option<u64> {
        let mut candidate = from.div_ceil(8) * 8;
        while candidate + FRAME_HEADER_BYTES <= buf.len() as u64 {
            let at = candidate as usize;
            let length_word = u64::from_le_bytes(buf[at..at + 8].try_into().ok()?);
            let (record_len, pad_len) = decode_frame_size(length_word);
            let fits = length_word != 0
                && record_len < MAX_RECORD_BYTES_34
                && candidate + FRAME_HEADER_BYTES + record_len + pad_len <= buf.len() as u64;
            if fits {
                let body = &buf[at + 8..at + 8 + record_len as usize];
                if let Ok(record) = Record::decode(body) {
                    if plausible(&record) {
                        // The chain value before this record is unknown. A crc record re-seeds
                        // by itself (and a zero running CRC skips the chain check, as in etcd);
                        // any other record's stored CRC is trusted.
                        self.crc = 0;
                        self.trust_next_crc = record.r#type != CRC_TYPE;
                        return Some(candidate);
                    }
                }
            }
            candidate += 8;
        }
        None
    }
}

fn plausible(record: &Record) -> bool {
    match record.r#type {
        CRC_TYPE => record.data.is_none(),
        ENTRY_TYPE => record
            .data
            .as_ref()
            .is_some_and(|d| Entry::decode(d.clone()).is_ok_and(|e| e.index > 0)),
        METADATA_TYPE..=SNAPSHOT_TYPE => record.data.is_some(),
        _ => false,
    }
}

/// The raft index to name for a damaged record: its own index when it decodes to something
/// plausible (≤ the next expected index), otherwise the next expected index.
fn damaged_entry_index(record: &Record, last_entry_index: u64) -> Option<u64> {
    if record.r#type != ENTRY_TYPE {
        return None;
    }
    let next = last_entry_index + 1;
    let decoded = record
        .data
        .as_ref()
        .and_then(|d| Entry::decode(d.clone()).ok())
        .map(|e| e.index);
    Some(decoded.filter(|i| *i >= 1 && *i <= next).unwrap_or(next))
}

/// Fast paths for the two messages decoded once per record (`walpb.Record`, `raftpb.Entry`).
///
/// etcd (gogo-protobuf `Marshal`) writes these fields once each, in field-number order, the
/// optional `data` last and only when set. For exactly that layout the result is built here
/// without prost's generic field loop and without the reference-count traffic of decoding from
/// a `Bytes` (the replay profile showed both; docs/perf.md). Any other byte sequence — another
/// field order, a repeated or unknown field, an over-long varint, a truncated message — returns
/// `None`, and callers decode with prost as before, so the result and every error are prost's.
pub mod fast {
    use bytes::Bytes;

    use crate::proto::raftpb::Entry;
    use crate::proto::walpb::Record;

    /// A varint as prost reads it (at most 10 bytes, the 10th at most 1), or None.
    #[inline]
    fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *buf.get(*at)?;
            *at += 1;
            if i == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    /// `tag varint` at `at`.
    #[inline]
    fn field(buf: &[u8], at: &mut usize, tag: u8) -> Option<u64> {
        if *buf.get(*at)? != tag {
            return None;
        }
        *at += 1;
        varint(buf, at)
    }

    /// The optional trailing bytes field `tag`: `Ok(None)` when the message ends first.
    #[inline]
    fn trailing_bytes(
        buf: &[u8],
        at: &mut usize,
        tag: u8,
    ) -> Option<Option<std::ops::Range<usize>>> {
        if *at == buf.len() {
            return Some(None);
        }
        if buf[*at] != tag {
            return None;
        }
        *at += 1;
        let len = varint(buf, at)?;
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        if end != buf.len() {
            return None; // truncated, or more fields after the data
        }
        let range = *at..end;
        *at = end;
        Some(Some(range))
    }

    /// `walpb.Record` from `buf[start..start + len]`; its data shares `buf`.
    pub fn record(buf: &Bytes, start: usize, len: usize) -> Option<Record> {
        let body = buf.get(start..start.checked_add(len)?)?;
        let mut at = 0;
        let record_type = field(body, &mut at, 0x08)? as i64;
        let crc = field(body, &mut at, 0x10)? as u32;
        let data = trailing_bytes(body, &mut at, 0x1a)?;
        Some(Record {
            r#type: record_type,
            crc,
            data: data.map(|r| buf.slice(start + r.start..start + r.end)),
        })
    }

    /// `raftpb.Entry` from all of `buf`; its data shares `buf`.
    pub fn entry(buf: &Bytes) -> Option<Entry> {
        let mut at = 0;
        let entry_type = field(buf, &mut at, 0x08)? as i32;
        let term = field(buf, &mut at, 0x10)?;
        let index = field(buf, &mut at, 0x18)?;
        let data = trailing_bytes(buf, &mut at, 0x22)?;
        Some(Entry {
            r#type: entry_type,
            term,
            index,
            data: data.map(|r| buf.slice(r)),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;
        use prost::Message;

        fn prost_record(bytes: &[u8]) -> Option<Record> {
            Record::decode(Bytes::copy_from_slice(bytes)).ok()
        }

        #[test]
        fn canonical_messages_decode_as_prost_does() {
            let record = Record {
                r#type: 2,
                crc: 0xdead_beef,
                data: Some(Bytes::from_static(b"payload")),
            };
            let bytes = Bytes::from(record.encode_to_vec());
            assert_eq!(super::record(&bytes, 0, bytes.len()), Some(record.clone()));
            let crc_record = Record {
                r#type: 4,
                crc: 7,
                data: None,
            };
            let bytes = Bytes::from(crc_record.encode_to_vec());
            assert_eq!(super::record(&bytes, 0, bytes.len()), Some(crc_record));
            let entry = Entry {
                r#type: 1,
                term: 3,
                index: u64::MAX,
                data: Some(Bytes::from_static(b"")),
            };
            let bytes = Bytes::from(entry.encode_to_vec());
            assert_eq!(super::entry(&bytes), Some(entry));
            // Unusual but valid layouts are left to prost.
            assert_eq!(
                super::entry(&Bytes::from_static(&[0x10, 1, 0x08, 0, 0x18, 1])),
                None
            );
        }

        proptest! {
            /// Whenever the fast path answers, prost agrees — on arbitrary bytes …
            #[test]
            fn never_disagrees_with_prost_on_arbitrary_bytes(
                bytes in proptest::collection::vec(any::<u8>(), 0..40),
                start in 0usize..4,
            ) {
                let buf = Bytes::from(bytes.clone());
                let start = start.min(bytes.len());
                if let Some(fast) = super::record(&buf, start, bytes.len() - start) {
                    prop_assert_eq!(Some(fast), prost_record(&bytes[start..]));
                }
                if let Some(fast) = super::entry(&buf) {
                    prop_assert_eq!(Some(fast), Entry::decode(&bytes[..]).ok());
                }
            }

            /// … and on every well-formed message, where it always answers.
            #[test]
            fn always_answers_for_etcd_layout(
                record_type in any::<i64>(),
                crc in any::<u32>(),
                entry_type in any::<i32>(),
                term in any::<u64>(),
                index in any::<u64>(),
                data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            ) {
                let entry = Entry { r#type: entry_type, term, index, data: data.clone().map(Bytes::from) };
                let entry_bytes = Bytes::from(entry.encode_to_vec());
                prop_assert_eq!(super::entry(&entry_bytes), Some(entry));
                let record = Record { r#type: record_type, crc, data: data.map(Bytes::from) };
                let mut framed = vec![0xAA; 3];
                framed.extend(record.encode_to_vec());
                let len = framed.len() - 3;
                prop_assert_eq!(super::record(&Bytes::from(framed), 3, len), Some(record));
            }
        }
    }
}
