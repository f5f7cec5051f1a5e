//! The record decoder: etcd's `decoder.decodeRecord`, over one logical stream of segments.
//!
//! Segments are opened one at a time through a loader. A file-backed segment (cut, or the last
//! one, preallocated to 64 MB by etcd) is read forward through a window, as the checks' record
//! walk does (`check::records`): the window starts at the current frame, and when more bytes are
//! needed the unconsumed tail is copied into a new window followed by a read of at least 1 MB,
//! never past the file system's length. Memory is about 1 MB plus the longest frame (< 10 MiB)
//! whatever the segment size ([`Decoder::max_buffered_bytes`]); a segment already in memory
//! ([`Decoder::from_segments`]) is one window. Records are sliced out of their window without
//! copying; a frame of at least 512 KiB is read into a window of its own, so that a large entry
//! kept as a slice pins only its own bytes. Paths that look beyond the current frame read
//! forward too: forensic resynchronisation scans with the window at the candidate frame, and
//! the bytes after a zero length word in a non-last segment are scanned for the first non-zero
//! one. Nothing reads backwards. A file shorter than the file system said ends where the reads find its end; the
//! results are those of a read of the whole segment (a frame overrunning the segment reads the
//! rest of it, < 10 MiB, to name the real remaining length; a skipped-bytes length counted to
//! the segment's end is fixed when the segment is left). No allocation is ever sized by a length
//! word before the size checks: a frame longer than what remains in the file is a short read.

use std::io;

use bytes::Bytes;
use prost::Message;

use super::error::{Location, WalError, WalErrorKind};
use super::frame::{decode_frame_size, FRAME_HEADER_BYTES};
use super::name::SegmentName;
use super::window;
use super::{MAX_RECORD_BYTES_34, MIN_SECTOR_SIZE};
use crate::proto::raftpb::Entry;
use crate::proto::walpb::{Record, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecoderMode {
    /// Stop at the first bad record, as etcd does.
    #[default]
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

/// Where a decoded record's data lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataAt {
    /// The record has no data field.
    Absent,
    /// `window[start..end]`: the canonical layout, parsed in place.
    Window(usize, usize),
    /// In [`Decoder::decoded_data`]: a record only prost could decode.
    Decoded,
}

/// A record just decoded, its data left in the decoder's window: read it with
/// [`Decoder::data`], share a part of it with [`Decoder::share`]. Valid until the decoder moves
/// on (both check that it has not).
#[derive(Clone, Copy, Debug)]
pub struct RecordHead {
    pub record_type: i64,
    pub crc: u32,
    data: DataAt,
    /// Index into the decoder's segment list.
    pub segment_index: usize,
    /// Byte offset of the frame's length word in its segment.
    pub offset: u64,
    pub frame_len: u64,
    /// False only in forensic mode, for a record returned despite a CRC mismatch.
    pub crc_valid: bool,
    /// Which record of the stream this is (0-based).
    serial: u64,
}

/// How the stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeEnd {
    /// Clean end of the last segment (EOF or a zero length word).
    Eof,
    /// The data ends inside a frame, a record's protobuf ends short, or a bad record looks torn
    /// (`io.ErrUnexpectedEOF`).
    /// `in_last_segment` tells whether etcd's Repair could fix it.
    UnexpectedEof {
        error: WalError,
        in_last_segment: bool,
    },
    /// A record CRC mismatch, protobuf error or size-limit error: etcd refuses the WAL.
    Fatal(WalError),
}

/// An opened segment: its reader and its size from the file system (never from its content),
/// or a segment already in memory (decoded in place, as one window).
pub struct SegmentSource<'a> {
    pub reader: Box<dyn io::Read + 'a>,
    pub len: u64,
    /// The whole segment, when it is in memory already (`reader` and `len` are then unused).
    pub whole: Option<Bytes>,
}

impl<'a> SegmentSource<'a> {
    pub fn from_bytes(bytes: Bytes) -> SegmentSource<'a> {
        SegmentSource {
            reader: Box::new(io::empty()),
            len: bytes.len() as u64,
            whole: Some(bytes),
        }
    }
}

/// The segment being decoded: a window of its bytes starting at segment offset `start`, its
/// length (from the file system, lowered if the file turns out shorter) and the reader the rest
/// comes from (`None` once the window reaches the end). Bytes are read forward on demand, so
/// decoding stops reading at the end of the written data instead of reading a preallocated 64 MB
/// tail of zeros, and the window keeps only what is still needed.
struct Current<'a> {
    index: usize,
    buf: Bytes,
    start: u64,
    len: u64,
    reader: Option<Box<dyn io::Read + 'a>>,
    /// Skipped-bytes damage counted to the segment's end: (index in `damage`, first non-zero
    /// offset). Its length is fixed when the segment is left, once the real end is known.
    pending_tails: Vec<(usize, u64)>,
    /// Read from a file through the window (not a segment held whole in memory).
    windowed: bool,
    /// The window was last read exactly to a large frame's end: the next read is a short probe
    /// ([`PROBE_READ_BYTES`]), so a large frame following it is read exactly too instead of
    /// being read once into a full window and copied into its own.
    after_large: bool,
}

impl Current<'_> {
    /// The segment offset just past the window.
    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// The 8 bytes at segment offset `at` (inside the window).
    fn word_at(&self, at: u64) -> u64 {
        let i = (at - self.start) as usize;
        u64::from_le_bytes(
            self.buf[i..i + 8]
                .try_into()
                .expect("8 bytes in the window"),
        )
    }
}

/// The least read from a segment at a time (fewer, larger reads; bounds the window).
const FIRST_READ_BYTES: u64 = window::LEAST_READ_BYTES;

/// Spans at least this long are read exactly (see `ensure_upto`).
const LARGE_SPAN_BYTES: u64 = 512 * 1024;

/// The least read right after a large frame (see [`Current::after_large`]).
const PROBE_READ_BYTES: u64 = 16 * 1024;

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
    /// The largest window held so far, in bytes.
    max_buffered: u64,
    /// The data of the last record, when only prost could decode it (see [`DataAt::Decoded`]).
    decoded_data: Option<Bytes>,
    /// Records returned so far (a [`RecordHead`] is valid while this is one past its serial).
    returned: u64,
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
            max_buffered: 0,
            decoded_data: None,
            returned: 0,
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

    /// The largest window of segment bytes held at once so far (a whole segment for one that
    /// was in memory already).
    pub fn max_buffered_bytes(&self) -> u64 {
        self.max_buffered
    }

    /// The length of the file window the last record was sliced from (None: the segment was
    /// given whole, in memory).
    pub fn window_len(&self) -> Option<usize> {
        self.current
            .as_ref()
            .filter(|c| c.windowed)
            .map(|c| c.buf.len())
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
        let head = self.next_head()?;
        let data = self.data(&head).map(|d| self.share(&head, 0..d.len()));
        Ok(DecodedRecord {
            record: Record {
                r#type: head.record_type,
                crc: head.crc,
                data,
            },
            segment_index: head.segment_index,
            offset: head.offset,
            frame_len: head.frame_len,
            crc_valid: head.crc_valid,
        })
    }

    /// [`Self::next_record`] without building the record: its data stays in the window, read
    /// in place with [`Self::data`] (no reference counting, no copy).
    ///
    /// The common frame is decoded here, inlined into the caller's loop (no 72-byte head passed
    /// back through memory); everything else in [`Self::next_head_general`].
    #[inline(always)]
    pub fn next_head(&mut self) -> Result<RecordHead, DecodeEnd> {
        if self.end.is_none() {
            if let Some(head) = self.decode_in_window() {
                self.returned += 1;
                return Ok(head);
            }
        }
        self.next_head_general()
    }

    /// [`Self::next_head`] past its fast path.
    #[inline(never)]
    fn next_head_general(&mut self) -> Result<RecordHead, DecodeEnd> {
        if let Some(end) = &self.end {
            return Err(end.clone());
        }
        match self.decode() {
            Ok(head) => {
                self.returned += 1;
                Ok(head)
            }
            Err(end) => {
                self.end = Some(end.clone());
                Err(end)
            }
        }
    }

    /// The data field of the record `head` names (None when it has none).
    pub fn data(&self, head: &RecordHead) -> Option<&[u8]> {
        assert_eq!(
            head.serial + 1,
            self.returned,
            "a record head is read before the decoder moves on"
        );
        match head.data {
            DataAt::Absent => None,
            DataAt::Window(start, end) => Some(&self.current().buf[start..end]),
            DataAt::Decoded => self.decoded_data.as_deref(),
        }
    }

    /// `range` of the record's data as `Bytes` sharing the window (no copy).
    pub fn share(&self, head: &RecordHead, range: std::ops::Range<usize>) -> Bytes {
        let len = self.data(head).map_or(0, <[u8]>::len);
        assert!(
            range.start <= range.end && range.end <= len,
            "inside the data"
        );
        match head.data {
            DataAt::Absent => Bytes::new(),
            DataAt::Window(start, _) => self
                .current()
                .buf
                .slice(start + range.start..start + range.end),
            DataAt::Decoded => self
                .decoded_data
                .as_ref()
                .map_or_else(Bytes::new, |d| d.slice(range)),
        }
    }

    fn advance_segment(&mut self) -> Result<bool, DecodeEnd> {
        if self.next_segment >= self.names.len() {
            self.current = None;
            return Ok(false);
        }
        let index = self.next_segment;
        self.next_segment += 1;
        // Drop the previous window before opening the next segment.
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
        let current = match source.whole {
            Some(bytes) => Current {
                index,
                len: bytes.len() as u64,
                buf: bytes,
                start: 0,
                reader: None,
                pending_tails: Vec::new(),
                windowed: false,
                after_large: false,
            },
            None => Current {
                index,
                buf: Bytes::new(),
                start: 0,
                len: source.len,
                reader: Some(source.reader),
                pending_tails: Vec::new(),
                windowed: true,
                after_large: false,
            },
        };
        self.max_buffered = self.max_buffered.max(current.buf.len() as u64);
        self.current = Some(current);
        self.offset = 0;
        Ok(true)
    }

    #[inline]
    fn current(&self) -> &Current<'a> {
        self.current.as_ref().expect("a segment is loaded")
    }

    /// Makes the window reach segment offset `end` (or the segment's end). A new window holds
    /// the old one's bytes from `keep_from` on, then a read of at least [`FIRST_READ_BYTES`]
    /// ([`PROBE_READ_BYTES`] right after a large frame); its
    /// size never exceeds what the file system says remains, and `end` is only ever a frame
    /// end that passed the size checks.
    #[inline]
    fn ensure_upto(&mut self, keep_from: u64, end: u64) -> Result<(), DecodeEnd> {
        let current = self.current();
        if current.end() >= end.min(current.len) {
            return Ok(());
        }
        self.read_upto(keep_from, end)
    }

    /// [`Self::ensure_upto`] when the window falls short of `end`.
    fn read_upto(&mut self, keep_from: u64, end: u64) -> Result<(), DecodeEnd> {
        let current = self.current.as_mut().expect("a segment is loaded");
        let end = end.min(current.len);
        let have = current.end();
        if have >= end {
            return Ok(());
        }
        let Some(reader) = current.reader.as_mut() else {
            current.len = have;
            return Ok(());
        };
        let keep_from = keep_from.clamp(current.start, have);
        // A long span (a large frame) is read exactly, so its window is that frame alone: a
        // large entry held as a slice pins no bytes read past it. After one, the next read is
        // a probe: large frames tend to follow each other.
        let large = end - keep_from >= LARGE_SPAN_BYTES;
        let least = if current.after_large {
            PROBE_READ_BYTES
        } else {
            FIRST_READ_BYTES
        };
        let read = if large {
            end - have
        } else {
            (end - have).max(least)
        }
        .min(current.len - have);
        current.after_large = large;
        let keep = (keep_from - current.start) as usize;
        let read_result = window::refill(&mut current.buf, keep, read, reader);
        current.start = keep_from;
        if let Err(e) = read_result {
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
        let new_end = keep_from + current.buf.len() as u64;
        if new_end < have + read {
            // The file is shorter than the file system said (changed under us): its end is here.
            current.len = new_end;
        }
        if new_end >= current.len {
            current.reader = None;
        }
        self.max_buffered = self.max_buffered.max(current.buf.len() as u64);
        Ok(())
    }

    /// Leaves the current segment. Skipped-bytes damage counted to its end gets its length
    /// first: the rest of the segment is read (keeping nothing) to learn where the end really is.
    fn finish_segment(&mut self) -> Result<(), DecodeEnd> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| !c.pending_tails.is_empty())
        {
            loop {
                let (end, len) = (self.current().end(), self.current().len);
                if end >= len {
                    break;
                }
                self.ensure_upto(end, end + FIRST_READ_BYTES)?;
            }
            let current = self.current.as_mut().expect("checked above");
            for (i, first_nonzero) in std::mem::take(&mut current.pending_tails) {
                if let WalErrorKind::SkippedBytes { length } = &mut self.damage[i].kind {
                    *length = current.len - first_nonzero;
                }
            }
        }
        self.current = None;
        Ok(())
    }

    /// The first non-zero byte at or after `from` in the current segment, reading forward. The
    /// window keeps from the 8-aligned scan position on (for a resync from there).
    fn first_nonzero(&mut self, from: u64) -> Result<Option<u64>, DecodeEnd> {
        let mut pos = from;
        loop {
            self.ensure_upto(pos & !7, pos + 1)?;
            let current = self.current();
            if current.end() <= pos {
                return Ok(None);
            }
            let window = &current.buf[(pos - current.start) as usize..];
            if let Some(i) = window.iter().position(|b| *b != 0) {
                return Ok(Some(pos + i as u64));
            }
            pos = current.end();
        }
    }

    /// The common case, decided without the general path's steps: a record in etcd's layout
    /// whose whole frame is in the window, with a matching CRC (or a crc record, which the
    /// caller checks). Anything else — no segment, a zero or oversized length word, a frame
    /// reaching past the window, another layout, a CRC to trust or one that does not match —
    /// is `None`, and [`Self::decode`] takes the general path, which decides it as always (the
    /// fast path is only ever a shortcut: the general path decides a common frame the same way).
    #[inline(always)]
    fn decode_in_window(&mut self) -> Option<RecordHead> {
        if self.trust_next_crc {
            return None;
        }
        let current = self.current.as_ref()?;
        let offset = self.offset;
        let at = usize::try_from(offset.checked_sub(current.start)?).ok()?;
        let window = &current.buf[..];
        let word = u64::from_le_bytes(window.get(at..at.checked_add(8)?)?.try_into().ok()?);
        let (record_len, pad_len) = decode_frame_size(word);
        if word == 0 || record_len >= MAX_RECORD_BYTES_34.saturating_sub(pad_len) {
            return None;
        }
        let frame_len = FRAME_HEADER_BYTES + record_len + pad_len;
        let body_start = at + FRAME_HEADER_BYTES as usize;
        let record_end = body_start + record_len as usize;
        if offset + frame_len > current.len || at + frame_len as usize > window.len() {
            return None;
        }
        let (record_type, crc, data) = fast::record_parts(&window[body_start..record_end])?;
        let data = data.map(|r| body_start + r.start..body_start + r.end);
        let mut running = self.crc;
        if record_type != CRC_TYPE {
            let bytes = data.clone().map_or(&[][..], |r| &window[r]);
            running = super::crc::crc32c_append(running, bytes);
            if running != crc {
                return None;
            }
        }
        let head = RecordHead {
            record_type,
            crc,
            data: data.map_or(DataAt::Absent, |r| DataAt::Window(r.start, r.end)),
            segment_index: current.index,
            offset,
            frame_len,
            crc_valid: true,
            serial: self.returned,
        };
        self.crc = running;
        self.offset = offset + frame_len;
        if self.decoded_data.is_some() {
            self.decoded_data = None;
        }
        Some(head)
    }

    /// The general path: every frame the fast path ([`Self::decode_in_window`]) left.
    fn decode(&mut self) -> Result<RecordHead, DecodeEnd> {
        loop {
            if self.current.is_none() && !self.advance_segment()? {
                return Err(DecodeEnd::Eof);
            }
            let offset = self.offset;
            self.ensure_upto(offset, offset + FRAME_HEADER_BYTES)?;
            let (segment_index, segment_len) = {
                let current = self.current();
                (current.index, current.len)
            };
            let remaining = segment_len.saturating_sub(offset);
            if remaining == 0 {
                self.finish_segment()?;
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
            let length_word = self.current().word_at(offset);
            let forensic = self.mode == DecoderMode::Forensic;
            if length_word == 0 {
                // End of written data in this segment (preallocated zeros): etcd moves on. The
                // rest of a non-last segment is read only to name skipped data.
                if !self.is_last_segment(segment_index) {
                    if let Some(first_nonzero) = self.first_nonzero(offset)? {
                        self.note_skipped_tail(segment_index, offset, first_nonzero);
                        if forensic {
                            // The words before the one holding the first non-zero byte are zero.
                            let from = (offset + FRAME_HEADER_BYTES)
                                .div_ceil(8)
                                .max(first_nonzero / 8)
                                * 8;
                            if let Some(resume) = self.resync(from)? {
                                self.offset = resume;
                                continue;
                            }
                        }
                    }
                }
                self.finish_segment()?;
                continue;
            }
            let (record_len, pad_len) = decode_frame_size(length_word);
            if record_len >= MAX_RECORD_BYTES_34.saturating_sub(pad_len) {
                let error = WalError::new(
                    WalErrorKind::RecordTooLarge { record_len },
                    self.location(segment_index, offset, None),
                );
                if self.forensic_skip(error, segment_index, offset)? {
                    continue;
                }
                return Err(DecodeEnd::Fatal(
                    self.damage.pop().expect("pushed by forensic_skip"),
                ));
            }
            let frame_len = FRAME_HEADER_BYTES + record_len + pad_len;
            // The frame (< 10 MiB), or the rest of the segment when the frame overruns it: then
            // the segment's real length is known for the report, as with the whole segment.
            self.ensure_upto(offset, offset + frame_len)?;
            let remaining = self.current().len.saturating_sub(offset);
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
                if !in_last_segment && self.forensic_skip(error.clone(), segment_index, offset)? {
                    continue;
                }
                return Err(DecodeEnd::UnexpectedEof {
                    error,
                    in_last_segment,
                });
            }
            if self.current().end() < offset + frame_len {
                // Not reached: `ensure_upto` lowers the length when the file ends early.
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
            let at = (offset - self.current().start) as usize;
            let body_start = at + FRAME_HEADER_BYTES as usize;
            let body_range = body_start..body_start + (record_len + pad_len) as usize;
            let record_range = body_start..body_start + record_len as usize;
            self.decoded_data = None;
            let parsed = match fast::record_parts(&self.current().buf[record_range.clone()]) {
                Some((record_type, crc, data)) => Ok((
                    record_type,
                    crc,
                    data.map_or(DataAt::Absent, |r| {
                        DataAt::Window(body_start + r.start, body_start + r.end)
                    }),
                )),
                None => {
                    Record::decode(self.current().buf.slice(record_range.clone())).map(|record| {
                        let at = if record.data.is_some() {
                            DataAt::Decoded
                        } else {
                            DataAt::Absent
                        };
                        self.decoded_data = record.data;
                        (record.r#type, record.crc, at)
                    })
                }
            };
            let (record_type, crc, data_at) = match parsed {
                Ok(parsed) => parsed,
                Err(e) => {
                    let buf = self.current().buf.clone();
                    let body = &buf[body_range.clone()];
                    let torn = self.is_torn(segment_index, offset, body);
                    // A message cut short: gogo's generated Unmarshal says io.ErrUnexpectedEOF,
                    // prost "buffer underflow", or "invalid varint" when the bytes end inside a
                    // varint (prost's word for an over-long varint too, which gogo calls an
                    // integer overflow).
                    let message = e.to_string();
                    let truncated = message.contains("buffer underflow")
                        || (message.contains("invalid varint")
                            && ends_inside_a_varint(&buf[record_range.clone()]));
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
                            && self.forensic_skip(error.clone(), segment_index, offset)?
                        {
                            continue;
                        }
                        return Err(DecodeEnd::UnexpectedEof {
                            error,
                            in_last_segment,
                        });
                    }
                    if self.forensic_skip(error, segment_index, offset)? {
                        continue;
                    }
                    return Err(DecodeEnd::Fatal(
                        self.damage.pop().expect("pushed by forensic_skip"),
                    ));
                }
            };
            let head = RecordHead {
                record_type,
                crc,
                data: data_at,
                segment_index,
                offset,
                frame_len,
                crc_valid: true,
                serial: self.returned,
            };
            let mut crc_valid = true;
            if record_type != CRC_TYPE && std::mem::take(&mut self.trust_next_crc) {
                self.crc = crc;
            } else if record_type != CRC_TYPE {
                // The running CRC is updated before the comparison, as etcd does.
                let data = match data_at {
                    DataAt::Absent => &[][..],
                    DataAt::Window(start, end) => &self.current().buf[start..end],
                    DataAt::Decoded => self.decoded_data.as_deref().unwrap_or(&[]),
                };
                let running = super::crc::crc32c_append(self.crc, data);
                if crc != running {
                    let record = Record {
                        r#type: record_type,
                        crc,
                        data: (data_at != DataAt::Absent).then(|| Bytes::copy_from_slice(data)),
                    };
                    self.crc = running;
                    let raft_index = damaged_entry_index(&record, self.last_entry_index);
                    if self.is_torn(
                        segment_index,
                        offset,
                        &self.current().buf[body_range.clone()],
                    ) {
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
                            stored: crc,
                            computed: running,
                        },
                        self.location(segment_index, offset, raft_index),
                    );
                    if self.mode == DecoderMode::Strict {
                        return Err(DecodeEnd::Fatal(error));
                    }
                    // Forensic: keep going, trusting the stored CRC so one bad record is reported once.
                    self.damage.push(error);
                    self.crc = crc;
                    crc_valid = false;
                } else {
                    self.crc = running;
                }
            }
            self.offset = offset + frame_len;
            return Ok(RecordHead { crc_valid, ..head });
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

    /// A zero length word at `offset` ends a segment. In a non-last segment, non-zero bytes
    /// after it (the first at `first_nonzero`) mean records were skipped (a zeroed sector, not a
    /// preallocated tail): worth naming, with the length up to the segment's end (fixed when the
    /// segment is left, should the file turn out shorter than the file system said).
    fn note_skipped_tail(&mut self, segment_index: usize, offset: u64, first_nonzero: u64) {
        let current = self.current.as_mut().expect("a segment is loaded");
        let length = current.len - first_nonzero;
        current
            .pending_tails
            .push((self.damage.len(), first_nonzero));
        let error = WalError::new(
            WalErrorKind::SkippedBytes { length },
            self.location(segment_index, offset, None),
        );
        self.damage.push(error);
    }

    /// Forensic mode: record the damage and look for the next plausible frame in this segment
    /// (or go to the next segment). Strict mode: record it and return false.
    fn forensic_skip(
        &mut self,
        error: WalError,
        segment_index: usize,
        offset: u64,
    ) -> Result<bool, DecodeEnd> {
        self.damage.push(error);
        if self.mode == DecoderMode::Strict {
            return Ok(false);
        }
        match self.resync(offset + FRAME_HEADER_BYTES)? {
            Some(resume) => {
                let skipped = resume - offset;
                let location = self.location(segment_index, offset, None);
                self.damage.push(WalError::new(
                    WalErrorKind::SkippedBytes { length: skipped },
                    location,
                ));
                self.offset = resume;
            }
            None => self.finish_segment()?,
        }
        Ok(true)
    }

    /// The first 8-aligned offset ≥ `from` where a frame decodes into a plausible record,
    /// reading the segment forward (the window keeps from the candidate on). The chain is
    /// re-seeded from it, since the CRC of the skipped records is unknowable.
    fn resync(&mut self, from: u64) -> Result<Option<u64>, DecodeEnd> {
        let mut candidate = from.div_ceil(8) * 8;
        loop {
            self.ensure_upto(candidate, candidate + FRAME_HEADER_BYTES)?;
            if candidate + FRAME_HEADER_BYTES > self.current().end() {
                return Ok(None);
            }
            let length_word = self.current().word_at(candidate);
            let (record_len, pad_len) = decode_frame_size(length_word);
            if length_word != 0 && record_len < MAX_RECORD_BYTES_34 {
                let frame_end = candidate + FRAME_HEADER_BYTES + record_len + pad_len;
                if frame_end <= self.current().len {
                    self.ensure_upto(candidate, frame_end)?;
                }
                let current = self.current();
                if frame_end <= current.end() {
                    let at = (candidate - current.start) as usize + FRAME_HEADER_BYTES as usize;
                    if let Ok(record) = Record::decode(&current.buf[at..at + record_len as usize]) {
                        if plausible(&record) {
                            // The chain value before this record is unknown. A crc record
                            // re-seeds by itself (and a zero running CRC skips the chain check,
                            // as in etcd); any other record's stored CRC is trusted.
                            self.crc = 0;
                            self.trust_next_crc = record.r#type != CRC_TYPE;
                            return Ok(Some(candidate));
                        }
                    }
                }
            }
            candidate += 8;
        }
    }
}

/// Whether protobuf `body` ends inside a varint (a tag, a varint value or a length), read field
/// by field as gogo's generated `Unmarshal` reads it: `io.ErrUnexpectedEOF` ("if iNdEx >= l")
/// before any varint reaches 64 bits of shift (`ErrIntOverflow`). Bytes of a length-delimited or
/// fixed-size value are skipped; a length beyond the end is another error (a short read).
fn ends_inside_a_varint(body: &[u8]) -> bool {
    /// `Err(true)`: the bytes end inside the varint; `Err(false)`: it is over-long.
    fn varint(body: &[u8], at: &mut usize) -> Result<u64, bool> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *body.get(*at).ok_or(true)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(false)
    }
    let mut at = 0usize;
    while at < body.len() {
        let value_len = match varint(body, &mut at).map(|key| key & 7) {
            Err(eof) => return eof,
            Ok(0) => match varint(body, &mut at) {
                Ok(_) => 0,
                Err(eof) => return eof,
            },
            Ok(1) => 8,
            Ok(2) => match varint(body, &mut at) {
                Ok(len) => len,
                Err(eof) => return eof,
            },
            Ok(3 | 4) => 0,
            Ok(5) => 4,
            Ok(_) => return false,
        };
        match usize::try_from(value_len)
            .ok()
            .and_then(|len| at.checked_add(len))
        {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
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

    use crate::proto::raftpb::{Entry, HardState};
    use crate::proto::walpb::Record;

    /// A varint as prost reads it (at most 10 bytes, the 10th at most 1), or None.
    #[inline]
    fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
        let byte = *buf.get(*at)?;
        if byte < 0x80 {
            *at += 1;
            return Some(u64::from(byte));
        }
        long_varint(buf, at)
    }

    /// [`varint`] of two bytes or more: one 8-byte load when 8 bytes remain (a CRC is 5 bytes,
    /// an index 2–4, a member id 9–10), else byte by byte.
    #[inline]
    fn long_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
        if let Some(word) = buf.get(*at..*at + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            // The lowest byte with its continuation bit clear ends the varint.
            let ends = !word & 0x8080_8080_8080_8080;
            if ends != 0 {
                let len = ends.trailing_zeros() as usize / 8 + 1;
                let bytes = if len == 8 {
                    word
                } else {
                    word & ((1u64 << (8 * len)) - 1)
                };
                *at += len;
                return Some(seven_bit_groups(bytes));
            }
            // Nine or ten bytes (a member id): the tenth may only be 0 or 1.
            let low = seven_bit_groups(word);
            let ninth = *buf.get(*at + 8)?;
            if ninth < 0x80 {
                *at += 9;
                return Some(low | u64::from(ninth) << 56);
            }
            let tenth = *buf.get(*at + 9)?;
            if tenth > 1 {
                return None;
            }
            *at += 10;
            return Some(low | u64::from(ninth & 0x7f) << 56 | u64::from(tenth) << 63);
        }
        bytewise_varint(buf, at)
    }

    /// The low 7 bits of each byte of `word`, packed (byte `i`'s at bit `7 i`).
    #[inline]
    fn seven_bit_groups(word: u64) -> u64 {
        let x = word & 0x7f7f_7f7f_7f7f_7f7f;
        let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
        let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
        (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
    }

    /// [`varint`] read a byte at a time (fewer than 8 bytes left).
    #[cold]
    #[inline(never)]
    fn bytewise_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
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

    /// `walpb.Record` in `body`: type, crc and where its data lies in `body`.
    #[inline]
    pub fn record_parts(body: &[u8]) -> Option<(i64, u32, Option<std::ops::Range<usize>>)> {
        let mut at = 0;
        let record_type = field(body, &mut at, 0x08)? as i64;
        let crc = field(body, &mut at, 0x10)? as u32;
        let data = trailing_bytes(body, &mut at, 0x1a)?;
        Some((record_type, crc, data))
    }

    /// `walpb.Record` from `buf[start..start + len]`; its data shares `buf`.
    pub fn record(buf: &Bytes, start: usize, len: usize) -> Option<Record> {
        let body = buf.get(start..start.checked_add(len)?)?;
        let (record_type, crc, data) = record_parts(body)?;
        Some(Record {
            r#type: record_type,
            crc,
            data: data.map(|r| buf.slice(start + r.start..start + r.end)),
        })
    }

    /// `raftpb.Entry` in `buf`: type, term, index and where its data lies in `buf`.
    #[inline(always)]
    pub fn entry_parts(buf: &[u8]) -> Option<(i32, u64, u64, Option<std::ops::Range<usize>>)> {
        let mut at = 0;
        let entry_type = field(buf, &mut at, 0x08)? as i32;
        let term = field(buf, &mut at, 0x10)?;
        let index = field(buf, &mut at, 0x18)?;
        let data = trailing_bytes(buf, &mut at, 0x22)?;
        Some((entry_type, term, index, data))
    }

    /// `raftpb.Entry` from all of `buf`; its data shares `buf`.
    pub fn entry(buf: &Bytes) -> Option<Entry> {
        let (entry_type, term, index, data) = entry_parts(buf)?;
        Some(Entry {
            r#type: entry_type,
            term,
            index,
            data: data.map(|r| buf.slice(r)),
        })
    }

    /// `raftpb.HardState` from all of `buf`: etcd writes its three fields, always, in order.
    #[inline(always)]
    pub fn hard_state(buf: &[u8]) -> Option<HardState> {
        let mut at = 0;
        let term = field(buf, &mut at, 0x08)?;
        let vote = field(buf, &mut at, 0x10)?;
        let commit = field(buf, &mut at, 0x18)?;
        (at == buf.len()).then_some(HardState { term, vote, commit })
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

        #[test]
        fn nine_and_ten_byte_varints_as_prost_reads_them() {
            let mut max = Vec::new();
            prost::encoding::encode_varint(u64::MAX, &mut max);
            assert_eq!(max.len(), 10);
            for tail in [&[][..], &[7, 7][..]] {
                let bytes = [&max[..], tail].concat();
                let mut at = 0;
                assert_eq!(long_varint(&bytes, &mut at), Some(u64::MAX));
                assert_eq!(at, 10);
            }
            // A tenth byte above 1 overflows 64 bits; an eleventh byte is too long.
            let mut over = max.clone();
            over[9] = 2;
            assert_eq!(long_varint(&over, &mut 0), None);
            let mut eleven = max.clone();
            eleven[9] = 0x81;
            eleven.push(0);
            assert_eq!(long_varint(&eleven, &mut 0), None);
            // Cut short: no answer.
            assert_eq!(long_varint(&max[..9], &mut 0), None);
            assert_eq!(long_varint(&max[..8], &mut 0), None);
            let nine = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
            let mut at = 0;
            assert_eq!(long_varint(&nine, &mut at), Some(u64::MAX >> 1));
            assert_eq!(at, 9);
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
                if let Some(fast) = super::hard_state(&bytes[start..]) {
                    prop_assert_eq!(Some(fast), HardState::decode(&bytes[start..]).ok());
                }
            }

            /// The 8-byte-load varint reads what the byte loop reads, and stops where it stops.
            #[test]
            fn word_varint_equals_bytewise(
                bytes in proptest::collection::vec(any::<u8>(), 0..24),
                start in 0usize..12,
                value in any::<u64>(),
                pad in proptest::collection::vec(any::<u8>(), 0..10),
            ) {
                let start = start.min(bytes.len());
                let (mut a, mut b) = (start, start);
                let word = long_varint(&bytes, &mut a);
                prop_assert_eq!(word, bytewise_varint(&bytes, &mut b));
                if word.is_some() {
                    prop_assert_eq!(a, b);
                }
                let mut encoded = Vec::new();
                prost::encoding::encode_varint(value, &mut encoded);
                encoded.extend(&pad);
                let mut at = 0;
                if encoded[0] >= 0x80 {
                    prop_assert_eq!(long_varint(&encoded, &mut at), Some(value));
                    prop_assert_eq!(at, encoded.len() - pad.len());
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
                let state = HardState { term, vote: index, commit: crc.into() };
                prop_assert_eq!(super::hard_state(&state.encode_to_vec()), Some(state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::name::parse_wal_name;

    /// Segment `seq` holding one frame with `body`, padded to 8 bytes as etcd pads it.
    fn segment(seq: u64, body: &[u8]) -> Segment {
        let pad = (8 - body.len() % 8) % 8;
        let mut word = body.len() as u64;
        if pad > 0 {
            word |= (1 << 63) | ((pad as u64) << 56);
        }
        let mut bytes = word.to_le_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes.resize(bytes.len() + pad, 0);
        Segment {
            name: parse_wal_name(&format!("{seq:016x}-{seq:016x}.wal")).unwrap(),
            bytes: Bytes::from(bytes),
        }
    }

    fn end_of(segments: Vec<Segment>) -> DecodeEnd {
        Decoder::from_segments(segments, DecoderMode::Strict)
            .next_record()
            .expect_err("the record does not decode")
    }

    /// gogo's `Unmarshal` returns io.ErrUnexpectedEOF for a message that ends inside a varint:
    /// the torn-tail rules apply (wal.Repair mends it only in the last segment).
    #[test]
    fn a_record_ending_inside_a_varint_is_cut_short() {
        let bodies: [&[u8]; 4] = [
            &[0x08, 0x82],                   // the type's value
            &[0x88],                         // a tag
            &[0x08, 0x01, 0x10, 0xff, 0xff], // the crc's value
            &[0x08, 0x01, 0x1a, 0x80],       // the data's length
        ];
        for body in bodies {
            assert!(ends_inside_a_varint(body), "{body:02x?}");
            match end_of(vec![segment(0, body)]) {
                DecodeEnd::UnexpectedEof {
                    error,
                    in_last_segment: true,
                } => assert!(
                    matches!(error.kind, WalErrorKind::UnexpectedEof { .. }),
                    "{error}"
                ),
                other => panic!("{body:02x?}: {other:?}"),
            }
            let not_last = vec![segment(0, body), segment(1, &[0x08, 0x04, 0x10, 0x00])];
            assert!(
                matches!(
                    end_of(not_last),
                    DecodeEnd::UnexpectedEof {
                        in_last_segment: false,
                        ..
                    }
                ),
                "{body:02x?}"
            );
        }
    }

    /// An over-long varint is no short read: gogo says "proto: integer overflow".
    #[test]
    fn an_over_long_varint_is_a_protobuf_error() {
        let mut body = vec![0x08];
        body.extend([0xff; 10]);
        body.push(0x01);
        assert!(!ends_inside_a_varint(&body));
        match end_of(vec![segment(0, &body)]) {
            DecodeEnd::Fatal(error) => {
                assert!(matches!(error.kind, WalErrorKind::Proto { .. }), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }
}
