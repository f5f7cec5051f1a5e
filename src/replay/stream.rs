//! The streaming replay: a member's log applied without holding its entries.
//!
//! Pass 1 is etcd's boot read without keeping the entries ([`crate::member::read_member_summary`]:
//! errors, HardState, start, snapshots, the number of entries held) and the invariant scan, whose
//! resolved log ([`ResolvedLog`]: term, type, data CRC and frame position per index, 8 bytes an
//! entry) is the only structure that grows with the log. Pass 2 is [`EntryStream`]: the surviving
//! entries in index order, read from their known frames, each segment once, forward only (the
//! frames of surviving entries lie in increasing order), one entry decoded at a time. Every entry
//! read is checked against its digest (index, term, type, data CRC): a difference is a
//! [`StreamError`], after which the caller falls back to the materialised read.
//!
//! raft-rs is answered from the digests ([`super::storage::LogStorage::over_digests`]: it only
//! needs types, terms and indexes), and the apply loop pulls each committed entry from the stream
//! as raft-rs hands out its index, so at most one decoded entry is alive.
//!
//! Reading follows the decoder's rules: a frame is trusted only as far as the file system's
//! length (a record longer than what remains of its segment, or ≥ etcd 3.4's 10 MiB limit, is an
//! error, never an allocation); the segment is read 1 MB at a time, forward only, and records
//! are slices of that chunk (no copy).

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use prost::Message;

use super::kv::{replay_kv_from, KvReplay, KvReplayError};
use super::restart::LogSource;
use crate::check::resolved_log::ResolvedLog;
use crate::fsio::ReadOnlyFs;
use crate::member::{read_member, read_member_summary, MemberFiles, MemberRead};
use crate::proto::raftpb::Entry;
use crate::proto::walpb::{Record, ENTRY_TYPE};
use crate::wal::decoder::fast;
use crate::wal::frame::{decode_frame_size, FRAME_HEADER_BYTES};
use crate::wal::name::SegmentName;
use crate::wal::DecoderMode;
use crate::wal::MAX_RECORD_BYTES_34;

/// Why the stream could not hand out an entry (the caller falls back to the materialised read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("streaming read of raft index {index}: {message}")]
pub struct StreamError {
    pub index: u64,
    pub message: String,
}

/// Bytes read from a segment at a time (more when one frame is longer, never more than what
/// remains of the file).
const READ_CHUNK_BYTES: u64 = 1024 * 1024;

/// The segment being read, forward only, a chunk at a time: records are slices of the chunk, so
/// an entry handed out keeps at most its chunk alive.
struct SegmentReader<'a> {
    segment: u32,
    reader: Box<dyn Read + 'a>,
    /// The file system's length.
    len: u64,
    /// The file offset of `chunk[0]`.
    chunk_start: u64,
    chunk: Bytes,
}

impl SegmentReader<'_> {
    /// Bytes `[at, at + n)` of the segment; `at` never lies before the current chunk.
    fn bytes(&mut self, at: u64, n: u64) -> Result<Bytes, String> {
        let end = at
            .checked_add(n)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| format!("bytes {at}+{n} past the end of the segment ({})", self.len))?;
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if at < self.chunk_start {
            return Err(format!("byte {at} lies before byte {}", self.chunk_start));
        }
        if end > chunk_end {
            // Keep what is still ahead, skip what lies between, read at least a chunk.
            let keep = if at < chunk_end {
                (at - self.chunk_start) as usize
            } else {
                let skip = at - chunk_end;
                let skipped =
                    std::io::copy(&mut (&mut self.reader).take(skip), &mut std::io::sink())
                        .map_err(|e| format!("read error: {e}"))?;
                if skipped != skip {
                    return Err(format!("short read before byte {at}"));
                }
                self.chunk.len()
            };
            let kept = chunk_end.saturating_sub(at);
            let read = n.max(READ_CHUNK_BYTES).min(self.len - at) - kept;
            crate::wal::window::refill(&mut self.chunk, keep, read, &mut self.reader)
                .map_err(|e| format!("read error: {e}"))?;
            self.chunk_start = at;
            if self.chunk.len() < n as usize {
                return Err(format!("short read at byte {at}"));
            }
        }
        let from = (at - self.chunk_start) as usize;
        Ok(self.chunk.slice(from..from + n as usize))
    }
}

/// The entries of a resolved log, in index order, read from the WAL one at a time.
pub struct EntryStream<'a> {
    fs: &'a dyn ReadOnlyFs,
    wal_dir: PathBuf,
    /// The segments the digests' segment numbers refer to.
    segments: &'a [SegmentName],
    log: &'a ResolvedLog,
    /// The index handed out next.
    next: u64,
    current: Option<SegmentReader<'a>>,
    /// The first failure; the stream hands out nothing after it.
    failed: Option<StreamError>,
    /// Decoded entries alive in the stream at most (it holds none between calls: 0).
    pub max_held: usize,
}

impl<'a> EntryStream<'a> {
    /// A stream over `log` (whose digests name frames in `segments`, files of `wal_dir`).
    pub fn new(
        fs: &'a dyn ReadOnlyFs,
        wal_dir: PathBuf,
        segments: &'a [SegmentName],
        log: &'a ResolvedLog,
    ) -> EntryStream<'a> {
        EntryStream {
            fs,
            wal_dir,
            segments,
            log,
            next: log.first_index(),
            current: None,
            failed: None,
            max_held: 0,
        }
    }

    /// Over a member's files (the scan's digests number `files.segments`).
    pub fn over_member(files: &'a MemberFiles<'_>, log: &'a ResolvedLog) -> EntryStream<'a> {
        EntryStream::new(files.fs, files.paths.wal_dir.clone(), &files.segments, log)
    }

    /// The digests the entries are checked against (what raft-rs is answered from).
    pub fn log(&self) -> &'a ResolvedLog {
        self.log
    }

    pub fn failed(&self) -> Option<&StreamError> {
        self.failed.as_ref()
    }

    /// Entry `index`, which must not lie below the last one handed out: entries between are
    /// read (and checked) and dropped. `None` past the end of the log.
    pub fn entry(&mut self, index: u64) -> Result<Option<Entry>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if index < self.next {
            return self.fail(index, format!("asked again after {}", self.next - 1));
        }
        loop {
            match self.next_entry()? {
                Some(entry) if entry.index == index => return Ok(Some(entry)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Reads (and checks) every entry not handed out yet.
    pub fn verify_rest(&mut self) -> Result<(), StreamError> {
        while self.next_entry()?.is_some() {}
        Ok(())
    }

    /// Marks the stream failed (the caller falls back to the held entries).
    pub(crate) fn refuse(&mut self, message: String) {
        let _ = self.fail::<()>(self.next, message);
    }

    fn fail<T>(&mut self, index: u64, message: String) -> Result<T, StreamError> {
        let error = StreamError { index, message };
        self.failed = Some(error.clone());
        self.current = None;
        Err(error)
    }

    /// The next entry of the log, checked against its digest.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let index = self.next;
        if index > self.log.last_index() {
            self.current = None;
            return Ok(None);
        }
        let Some(digest) = self.log.get(index) else {
            return self.fail(index, "no digest".into());
        };
        let entry = match self.read_at(digest.segment, digest.offset) {
            Ok(entry) => entry,
            Err(message) => return self.fail(index, message),
        };
        if entry.index != index
            || entry.term != digest.term
            || entry.r#type != digest.entry_type
            || crc32c::crc32c(entry.data_bytes()) != digest.data_crc
        {
            return self.fail(
                index,
                format!(
                    "the entry read (index {}, term {}, type {}) differs from the scan's",
                    entry.index, entry.term, entry.r#type
                ),
            );
        }
        self.next += 1;
        self.max_held = self.max_held.max(1);
        Ok(Some(entry))
    }

    /// Decodes the entry record whose frame starts at `offset` of segment `segment`.
    fn read_at(&mut self, segment: u32, offset: u64) -> Result<Entry, String> {
        let same = self.current.as_ref().map(|c| c.segment);
        if same != Some(segment) {
            if same.is_some_and(|s| s > segment) {
                return Err(format!(
                    "segment {segment} after segment {}",
                    same.unwrap_or(0)
                ));
            }
            let name = self
                .segments
                .get(segment as usize)
                .ok_or_else(|| format!("no segment number {segment}"))?;
            self.current = None;
            let (reader, len) = self
                .fs
                .open_read(&self.wal_dir.join(&name.file_name))
                .map_err(|e| format!("cannot read {}: {e}", name.file_name))?;
            self.current = Some(SegmentReader {
                segment,
                reader,
                len,
                chunk_start: 0,
                chunk: Bytes::new(),
            });
        }
        let cur = self.current.as_mut().expect("opened above");
        let word = cur.bytes(offset, FRAME_HEADER_BYTES)?;
        let word = u64::from_le_bytes(word[..].try_into().expect("8 bytes"));
        let (record_len, pad_len) = decode_frame_size(word);
        if record_len >= MAX_RECORD_BYTES_34.saturating_sub(pad_len) {
            return Err(format!("a record of {record_len} bytes at {offset}"));
        }
        if offset.saturating_add(FRAME_HEADER_BYTES + record_len + pad_len) > cur.len {
            return Err(format!("a frame overrunning its segment at {offset}"));
        }
        // Bounded by the record limit and the file system's length.
        let body = cur.bytes(offset + FRAME_HEADER_BYTES, record_len)?;
        let record = match fast::record(&body, 0, body.len()) {
            Some(record) => record,
            None => Record::decode(body.clone()).map_err(|e| format!("record at {offset}: {e}"))?,
        };
        if record.r#type != ENTRY_TYPE {
            return Err(format!("record at {offset} is of type {}", record.r#type));
        }
        let data = record.data.unwrap_or_default();
        match fast::entry(&data) {
            Some(entry) => Ok(entry),
            None => Entry::decode(data).map_err(|e| format!("entry at {offset}: {e}")),
        }
    }
}

/// etcd's boot read for a replay that may stream: a summary read (no entries held) when the
/// log is read whole from the first segment without an error in strict mode, else the full
/// read (gap fallback, damaged logs, forensic mode keep the materialised path).
pub fn read_for_streaming(files: &MemberFiles<'_>, mode: DecoderMode) -> MemberRead {
    if mode == DecoderMode::Strict {
        let summary = read_member_summary(files, mode);
        if summary.start.index == 0
            && summary.contents.errors.is_empty()
            && summary.contents.segments == files.segments
        {
            return summary;
        }
    }
    read_member(files, mode)
}

/// Whether `read` (a summary read) and the scan's `log` describe one log the stream can replay:
/// etcd's read from the beginning of every segment without an error, holding exactly the entries
/// the scan resolved.
pub fn streamable(files: &MemberFiles<'_>, read: &MemberRead, log: &ResolvedLog) -> bool {
    let contents = &read.contents;
    read.start.index == 0
        && contents.start_index == 0
        && contents.errors.is_empty()
        && contents.segments == files.segments
        && log.positioned
        && log.base_index == 0
        && log.len() == contents.entry_count
}

/// [`super::kv::replay_kv`] of a summary read, streaming the entries (see the module docs).
/// `Ok(Err(_))`: the stream failed (a read error, an entry differing from its digest) and the
/// caller must replay the materialised read instead. A full replay (`through` None) reads and
/// checks every entry of the log, applied or not; a replay through an index reads the entries
/// it applies (the scan read and digested the rest, and nothing past `through` is applied).
pub fn replay_kv_streaming(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    log: &ResolvedLog,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<Result<KvReplay, StreamError>, KvReplayError> {
    let mut stream = EntryStream::over_member(files, log);
    let release = super::binary::start_release(read, Some(files));
    let replay = replay_kv_from(
        member,
        read,
        &release,
        LogSource::Stream(&mut stream),
        through,
        progress,
    )?;
    finish_stream(&mut stream, through);
    Ok(match stream.failed() {
        Some(e) => Err(e.clone()),
        None => Ok(replay),
    })
}

/// A full replay reads the entries no one applied, so that a log differing from its scan
/// anywhere fails the stream; a replay through an index stops where it stopped.
fn finish_stream(stream: &mut EntryStream<'_>, through: Option<u64>) {
    if through.is_none() {
        let _ = stream.verify_rest();
    }
}

/// [`replay_kv_streaming`] started from a member's backend db (see `replay::from_db`): for the
/// replay "both ways" of a log read whole from index 1. `Ok(Err(_))` as there.
pub fn replay_kv_streaming_from_db(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    log: &ResolvedLog,
    db: super::from_db::LoadedDb,
    through: Option<u64>,
) -> Result<Result<KvReplay, StreamError>, KvReplayError> {
    let mut stream = EntryStream::over_member(files, log);
    let replay = super::from_db::replay_kv_from_db_source(
        member,
        read,
        db,
        LogSource::Stream(&mut stream),
        through,
        &mut |_| {},
    )?;
    finish_stream(&mut stream, through);
    Ok(match stream.failed() {
        Some(e) => Err(e.clone()),
        None => Ok(replay),
    })
}
