//! etcd's `WAL.ReadAll`: not "read all records" but the state a member restarts from.
//!
//! Entries at or below the start snapshot are skipped; a later entry at index i replaces every
//! entry ≥ i (a new leader overwrote an uncommitted tail); the last HardState wins; metadata must
//! agree across segments; the start snapshot record must be present somewhere.

use bytes::Bytes;
use prost::Message;

use super::decoder::{DecodeEnd, Decoder, DecoderMode, RecordHead};
use super::error::{Location, WalError, WalErrorKind};
use super::name::SegmentName;
use crate::proto::raftpb::{Entry, HardState};
use crate::proto::walpb::{
    record_type_name, WalSnapshot, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAllOptions {
    /// The snapshot the read starts from: `(index, term)`; `(0, 0)` reads from the beginning.
    pub start_index: u64,
    pub start_term: u64,
    pub mode: DecoderMode,
    /// False: count the entries held without keeping them (`entries` and `entry_positions`
    /// stay empty; everything else is what a full read gives). For a second, streaming pass.
    pub keep_entries: bool,
}

impl Default for ReadAllOptions {
    fn default() -> Self {
        ReadAllOptions {
            start_index: 0,
            start_term: 0,
            mode: DecoderMode::Strict,
            keep_entries: true,
        }
    }
}

/// Where a record sits, compactly (entries keep one each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPosition {
    pub segment_index: u32,
    pub offset: u64,
}

/// The positions of the entries held, in order, in 4 bytes an entry: per entry the offset from
/// its run's base offset; per run of entries in one segment (a run also ends where an offset
/// would not fit 32 bits from its base) the segment and the base offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryPositions {
    deltas: Vec<u32>,
    runs: Vec<PositionRun>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PositionRun {
    /// Position (0-based, in `deltas`) of the run's first entry.
    first: usize,
    segment_index: u32,
    base_offset: u64,
}

impl EntryPositions {
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    pub fn push(&mut self, position: RecordPosition) {
        let fits = |run: &PositionRun| {
            run.segment_index == position.segment_index
                && position
                    .offset
                    .checked_sub(run.base_offset)
                    .is_some_and(|d| d <= u64::from(u32::MAX))
        };
        if !self.runs.last().is_some_and(fits) {
            self.runs.push(PositionRun {
                first: self.deltas.len(),
                segment_index: position.segment_index,
                base_offset: position.offset,
            });
        }
        let run = self.runs.last().expect("a run was pushed above");
        let delta = u32::try_from(position.offset - run.base_offset).expect("checked by fits");
        self.deltas.push(delta);
    }

    pub fn truncate(&mut self, len: usize) {
        self.deltas.truncate(len);
        let keep = self.runs.partition_point(|r| r.first < len);
        self.runs.truncate(keep);
    }

    pub fn clear(&mut self) {
        self.deltas.clear();
        self.runs.clear();
    }

    /// The position of the `i`-th entry held (0-based).
    pub fn get(&self, i: usize) -> Option<RecordPosition> {
        let delta = *self.deltas.get(i)?;
        let run = self.runs[self
            .runs
            .partition_point(|r| r.first <= i)
            .checked_sub(1)
            .expect("the first run starts at 0")];
        Some(RecordPosition {
            segment_index: run.segment_index,
            offset: run.base_offset + u64::from(delta),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = RecordPosition> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Where entry data is kept: small entries' data is copied into shared 1 MB chunks, so the held
/// entries do not keep whole segment buffers (frames, headers, HardState records) alive. Large
/// entries keep their slice of a segment already in memory (copying them would save little).
/// Read from a file through the decoder's window, a large entry keeps its slice when it is most
/// of that window (the decoder reads a large frame into a window of its own), and gets its own
/// copy otherwise: a slice would pin the window's other bytes.
struct EntryDataArena {
    chunk: bytes::BytesMut,
    /// Bytes of the chunk's spare capacity already populated ([`super::prefault`]).
    populated: usize,
}

impl EntryDataArena {
    const CHUNK_BYTES: usize = 1024 * 1024;
    /// Data at least this long is not copied.
    const COPY_LIMIT_BYTES: usize = 4096;

    fn new() -> Self {
        EntryDataArena {
            chunk: bytes::BytesMut::new(),
            populated: 0,
        }
    }

    /// `window_len`: the decoder's file window the entry was sliced from (None: in memory).
    fn rehome(&mut self, entry: &mut Entry, window_len: Option<usize>) {
        let Some(data) = entry.data.as_mut() else {
            return;
        };
        if data.len() >= Self::COPY_LIMIT_BYTES {
            if window_len.is_some_and(|window| data.len() * 2 < window) {
                *data = Bytes::copy_from_slice(data);
            }
            return;
        }
        if data.is_empty() || data.len() >= Self::COPY_LIMIT_BYTES {
            return;
        }
        *data = self.copy(data);
    }

    /// A copy of `data` (shorter than [`Self::COPY_LIMIT_BYTES`]) in the current chunk.
    fn copy(&mut self, data: &[u8]) -> Bytes {
        if self.chunk.capacity() - self.chunk.len() < data.len() {
            self.chunk = bytes::BytesMut::with_capacity(Self::CHUNK_BYTES);
            self.populated = 0;
        }
        if self.populated < data.len() {
            let spare = self.chunk.spare_capacity_mut();
            let step = super::prefault::STEP_BYTES.min(spare.len());
            super::prefault::populate(&mut spare[..step]);
            self.populated = step;
        }
        self.populated -= data.len();
        self.chunk.extend_from_slice(data);
        self.chunk.split().freeze()
    }
}

#[derive(Clone, Debug)]
pub struct SnapshotRecord {
    pub snapshot: WalSnapshot,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct WalContents {
    /// The segments read, in order.
    pub segments: Vec<SegmentName>,
    pub metadata: Option<Bytes>,
    /// The last HardState record (commit-only states may be missing: they are not fsynced).
    pub hard_state: HardState,
    /// Entries with index > start, contiguous from start + 1, after overwrites.
    /// Empty when read with `keep_entries: false` (see [`WalContents::entry_count`]).
    pub entries: Vec<Entry>,
    pub entry_positions: EntryPositions,
    /// Entries held after overwrites (`entries.len()` when they are kept).
    pub entry_count: usize,
    /// Whether `entries` and `entry_positions` were kept.
    pub kept_entries: bool,
    pub snapshots: Vec<SnapshotRecord>,
    pub start_index: u64,
    pub start_term: u64,
    /// Whether a snapshot record equal to the start was seen (etcd: else ErrSnapshotNotFound).
    pub start_found: bool,
    pub record_count: u64,
    /// Entry records that replaced an earlier entry at the same or a higher index.
    pub overwrites: Vec<(u64, Location)>,
    /// `(position, entry type)` where each run of one entry type starts among the held
    /// entries: the log's types without keeping the entries (a summary read counts them).
    pub entry_type_runs: Vec<(usize, i32)>,
    /// Problems that make etcd refuse this WAL (in forensic mode: every one found).
    pub errors: Vec<WalError>,
    /// Problems etcd handles by itself (a torn tail it repairs), and notes.
    pub warnings: Vec<WalError>,
    /// Damage etcd's reader lets through (it reads on and boots): a lost or renamed segment,
    /// bytes after a zero length word it never reads. Still a failure finding, never a refusal.
    pub accepted_by_etcd: Vec<WalError>,
    /// Where the last good record ends in the last segment read (Repair truncates here).
    pub last_good_offset: u64,
}

impl WalContents {
    /// Entries are contiguous from `start_index + 1`.
    /// How many held entries there are of each entry type (from the runs: no entry needed).
    pub fn entry_type_counts(&self) -> std::collections::BTreeMap<i32, usize> {
        let mut counts = std::collections::BTreeMap::new();
        let ends = self
            .entry_type_runs
            .iter()
            .skip(1)
            .map(|(p, _)| *p)
            .chain(std::iter::once(self.entry_count));
        for ((start, entry_type), end) in self.entry_type_runs.iter().zip(ends) {
            *counts.entry(*entry_type).or_default() += end - start;
        }
        counts
    }

    pub fn first_index(&self) -> Option<u64> {
        (self.entry_count > 0).then(|| self.start_index + 1)
    }

    pub fn last_index(&self) -> Option<u64> {
        (self.entry_count > 0).then(|| self.start_index + self.entry_count as u64)
    }

    /// The location of an entry in this read, for messages.
    pub fn entry_location(&self, position: usize) -> Location {
        let p = self
            .entry_positions
            .get(position)
            .expect("a position per entry");
        Location {
            segment: Some(self.segments[p.segment_index as usize].file_name.clone()),
            offset: Some(p.offset),
            raft_index: Some(self.start_index + 1 + position as u64),
        }
    }
}

/// ReadAll over the given decoder (already positioned at the selected segments).
pub fn read_all(mut decoder: Decoder<'_>, options: ReadAllOptions) -> WalContents {
    let forensic = options.mode == DecoderMode::Forensic;
    let mut out = WalContents {
        segments: decoder.segment_names().to_vec(),
        metadata: None,
        hard_state: HardState::default(),
        entries: Vec::new(),
        entry_positions: EntryPositions::default(),
        entry_count: 0,
        kept_entries: options.keep_entries,
        snapshots: Vec::new(),
        start_index: options.start_index,
        start_term: options.start_term,
        start_found: false,
        record_count: 0,
        overwrites: Vec::new(),
        entry_type_runs: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        accepted_by_etcd: Vec::new(),
        last_good_offset: 0,
    };
    let mut arena = EntryDataArena::new();
    let end = loop {
        // Borrowed where it was returned, not moved: the head is read field by field.
        let next = decoder.next_head();
        let head = match &next {
            Ok(head) => head,
            Err(_) => break next.expect_err("matched Err"),
        };
        out.record_count += 1;
        let raft_index = (decoder.last_entry_index > 0).then_some(decoder.last_entry_index);
        // Built only when something is reported: naming a location copies the segment name.
        let location =
            |decoder: &Decoder<'_>| decoder.location(head.segment_index, head.offset, raft_index);
        let data = decoder.data(head).unwrap_or(&[]);
        let problem = match head.record_type {
            ENTRY_TYPE => match decode_entry(&decoder, head, data, &mut arena, &options) {
                Ok(entry) => {
                    decoder.last_entry_index = entry.index;
                    let index = entry.index;
                    let location = || Location {
                        raft_index: Some(index),
                        ..location(&decoder)
                    };
                    let position = RecordPosition {
                        segment_index: head.segment_index as u32,
                        offset: head.offset,
                    };
                    append_entry(&mut out, entry, position, location, forensic)
                }
                Err(e) => Some(payload_error(ENTRY_TYPE, e, location(&decoder))),
            },
            STATE_TYPE => match super::decoder::fast::hard_state(data) {
                // Field by field: a whole-struct copy of a just-built value stalls the load.
                Some(HardState { term, vote, commit }) => {
                    out.hard_state.term = term;
                    out.hard_state.vote = vote;
                    out.hard_state.commit = commit;
                    None
                }
                None => match HardState::decode(data) {
                    Ok(state) => {
                        out.hard_state = state;
                        None
                    }
                    Err(e) => Some(payload_error(STATE_TYPE, e, location(&decoder))),
                },
            },
            METADATA_TYPE => match &out.metadata {
                Some(existing) if existing != data => Some(WalError::new(
                    WalErrorKind::MetadataConflict,
                    location(&decoder),
                )),
                _ => {
                    // A copy: a slice would pin the first segment's whole buffer (64 MB) for as
                    // long as the read's result lives.
                    out.metadata = Some(Bytes::copy_from_slice(data));
                    None
                }
            },
            CRC_TYPE => {
                let running = decoder.running_crc();
                let problem = (running != 0 && head.crc != running).then(|| {
                    WalError::new(
                        WalErrorKind::ChainCrcMismatch {
                            stored: head.crc,
                            computed: running,
                        },
                        location(&decoder),
                    )
                });
                decoder.reseed(head.crc);
                problem
            }
            SNAPSHOT_TYPE => match WalSnapshot::decode(data) {
                Ok(snapshot) => {
                    let location = location(&decoder);
                    let mut problem = None;
                    if snapshot.index == options.start_index {
                        if snapshot.term != options.start_term {
                            problem = Some(WalError::new(
                                WalErrorKind::SnapshotMismatch {
                                    index: snapshot.index,
                                    wal_term: snapshot.term,
                                    start_term: options.start_term,
                                },
                                location.clone(),
                            ));
                        } else {
                            out.start_found = true;
                        }
                    }
                    out.snapshots.push(SnapshotRecord { snapshot, location });
                    problem
                }
                Err(e) => Some(payload_error(SNAPSHOT_TYPE, e, location(&decoder))),
            },
            other => Some(WalError::new(
                WalErrorKind::UnknownRecordType { record_type: other },
                location(&decoder),
            )),
        };
        if let Some(error) = problem {
            out.errors.push(error);
            if !forensic {
                break DecodeEnd::Eof;
            }
        }
    };
    // Forensic damage that did not stop the read comes first, in file order.
    let mut damage = std::mem::take(&mut decoder.damage);
    match end {
        DecodeEnd::Eof => {}
        DecodeEnd::UnexpectedEof {
            error,
            in_last_segment: true,
        } => out.warnings.push(error),
        DecodeEnd::UnexpectedEof {
            error,
            in_last_segment: false,
        } => out.errors.push(error),
        DecodeEnd::Fatal(error) => {
            damage.retain(|d| *d != error);
            out.errors.push(error);
        }
    }
    // Non-zero bytes after a zero length word in a non-last segment: etcd's decodeRecord ends the
    // segment at the zero word and never reads them, so in strict mode (etcd's read) they are
    // damage etcd lets through, not a reason it refuses. Forensic mode reads into them (a resync)
    // and lists them with every other bad record.
    let (accepted, damage): (Vec<WalError>, Vec<WalError>) = damage
        .into_iter()
        .partition(|d| !forensic && matches!(d.kind, WalErrorKind::SkippedBytes { .. }));
    out.accepted_by_etcd.extend(accepted);
    for item in damage.into_iter().rev() {
        if !out.errors.contains(&item) {
            out.errors.insert(0, item);
        }
    }
    out.errors
        .sort_by_key(|e| (e.location.segment.clone(), e.location.offset));
    out.last_good_offset = decoder.last_offset();
    if !out.start_found && out.errors.is_empty() {
        out.warnings.push(WalError::new(
            WalErrorKind::SnapshotNotFound {
                index: options.start_index,
                term: options.start_term,
            },
            Location::default(),
        ));
    }
    out
}

fn payload_error(record_type: i64, e: prost::DecodeError, location: Location) -> WalError {
    WalError::new(
        WalErrorKind::PayloadDecode {
            record_type: record_type_name(record_type).into(),
            message: e.to_string(),
        },
        location,
    )
}

/// The entry in `record_data`, the data of the record `head`. Its data is built only when
/// ReadAll holds the entry (kept, above the start): small data copied into the arena straight
/// from the window, large data shared with the window or copied ([`EntryDataArena`]); an entry
/// not held gets none (ReadAll reads only its index and type).
fn decode_entry(
    decoder: &Decoder<'_>,
    head: &RecordHead,
    record_data: &[u8],
    arena: &mut EntryDataArena,
    options: &ReadAllOptions,
) -> Result<Entry, prost::DecodeError> {
    let Some((entry_type, term, index, data)) = super::decoder::fast::entry_parts(record_data)
    else {
        let mut entry = Entry::decode(decoder.share(head, 0..record_data.len()))?;
        if options.keep_entries && entry.index > options.start_index {
            arena.rehome(&mut entry, decoder.window_len());
        }
        return Ok(entry);
    };
    let held = options.keep_entries && index > options.start_index;
    let data = data.map(|range| match held {
        false => Bytes::new(),
        true if range.is_empty() => Bytes::new(),
        true if range.len() < EntryDataArena::COPY_LIMIT_BYTES => arena.copy(&record_data[range]),
        true if decoder
            .window_len()
            .is_some_and(|window| range.len() * 2 < window) =>
        {
            Bytes::copy_from_slice(&record_data[range])
        }
        true => decoder.share(head, range),
    });
    Ok(Entry {
        r#type: entry_type,
        term,
        index,
        data,
    })
}

fn append_entry(
    out: &mut WalContents,
    entry: Entry,
    position: RecordPosition,
    location: impl Fn() -> Location,
    forensic: bool,
) -> Option<WalError> {
    if entry.index <= out.start_index {
        return None;
    }
    let up = entry.index - out.start_index - 1;
    if up > out.entry_count as u64 {
        let error = WalError::new(
            WalErrorKind::SliceOutOfRange {
                expected_at_most: out.start_index.saturating_add(out.entry_count as u64 + 1),
                found: entry.index,
                // A leader snapshot jumps the log *forward*: its index lies beyond every entry
                // already held, and the next entry follows it directly.
                bridged_by_snapshot: out.snapshots.last().is_some_and(|s| {
                    s.snapshot.index.checked_add(1) == Some(entry.index)
                        && s.snapshot.index > out.start_index.saturating_add(out.entry_count as u64)
                }),
            },
            location(),
        );
        if forensic {
            // Keep reading: the entries after the gap are what a reader can still check.
            out.entries.clear();
            out.entry_positions.clear();
            out.entry_type_runs.clear();
            out.entry_count = 0;
            out.start_index = entry.index - 1;
            hold(out, entry, position);
        }
        return Some(error);
    }
    let up = up as usize;
    if up < out.entry_count {
        out.overwrites.push((entry.index, location()));
        out.entries.truncate(up);
        out.entry_positions.truncate(up);
        let keep_runs = out.entry_type_runs.partition_point(|(p, _)| *p < up);
        out.entry_type_runs.truncate(keep_runs);
        out.entry_count = up;
    }
    hold(out, entry, position);
    None
}

/// The held entries' first allocation (≈ 230 KB of address space; pages are touched as used).
const HELD_ENTRIES_FIRST: usize = 4096;

/// Held entries per [`super::prefault::STEP_BYTES`]: the next step's pages are populated when
/// the entries reach it.
const HELD_ENTRIES_PREFAULT: usize = super::prefault::STEP_BYTES / std::mem::size_of::<Entry>();

fn hold(out: &mut WalContents, entry: Entry, position: RecordPosition) {
    if out.entry_type_runs.last().map(|(_, t)| *t) != Some(entry.r#type) {
        out.entry_type_runs.push((out.entry_count, entry.r#type));
    }
    out.entry_count += 1;
    if out.kept_entries {
        if out.entries.capacity() == 0 {
            // Past the allocator's mmap threshold from the start: growing it then remaps pages
            // instead of copying them into fresh ones (faults on a cold heap dominate a short read).
            out.entries.reserve(HELD_ENTRIES_FIRST);
        }
        if out.entries.len() % HELD_ENTRIES_PREFAULT == 0 {
            super::prefault::populate_spare(&mut out.entries, super::prefault::STEP_BYTES);
        }
        out.entries.push(entry);
        out.entry_positions.push(position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Push(RecordPosition),
        Truncate(usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        let position = (
            0u32..3,
            prop_oneof![0u64..10_000, Just(u64::from(u32::MAX) + 9), any::<u64>()],
        )
            .prop_map(|(segment_index, offset)| RecordPosition {
                segment_index,
                offset,
            });
        prop_oneof![
            8 => position.prop_map(Op::Push),
            2 => (0usize..40).prop_map(Op::Truncate),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// The compact positions answer exactly as a plain vector would.
        #[test]
        fn entry_positions_answer_as_a_vector(ops in prop::collection::vec(op(), 0..120)) {
            let mut compact = EntryPositions::default();
            let mut plain: Vec<RecordPosition> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(p) => {
                        compact.push(p);
                        plain.push(p);
                    }
                    Op::Truncate(n) => {
                        compact.truncate(n);
                        plain.truncate(n);
                    }
                    Op::Clear => {
                        compact.clear();
                        plain.clear();
                    }
                }
                prop_assert_eq!(compact.len(), plain.len());
                prop_assert_eq!(compact.iter().collect::<Vec<_>>(), plain.clone());
                prop_assert_eq!(compact.get(plain.len()), None);
            }
        }
    }

    #[test]
    fn small_entry_data_is_copied_out_of_the_segment_buffer() {
        let segment = Bytes::from(vec![7u8; 10_000]);
        let mut arena = EntryDataArena::new();
        let mut small = Entry {
            data: Some(segment.slice(10..50)),
            ..Default::default()
        };
        let mut large = Entry {
            data: Some(segment.slice(100..100 + EntryDataArena::COPY_LIMIT_BYTES)),
            ..Default::default()
        };
        let mut none = Entry::default();
        let (small_before, large_before) = (small.clone(), large.clone());
        let mut large_windowed = large.clone();
        let mut large_own_window = large.clone();
        arena.rehome(&mut small, None);
        arena.rehome(&mut large, None);
        arena.rehome(&mut large_windowed, Some(segment.len()));
        arena.rehome(
            &mut large_own_window,
            Some(EntryDataArena::COPY_LIMIT_BYTES + 40),
        );
        arena.rehome(&mut none, None);
        assert_eq!(small, small_before);
        assert_eq!(large, large_before);
        assert_eq!(large_windowed, large_before);
        assert_eq!(none, Entry::default());
        let inside = |b: &Bytes| {
            let range = segment.as_ptr() as usize..segment.as_ptr() as usize + segment.len();
            range.contains(&(b.as_ptr() as usize))
        };
        assert!(!inside(small.data.as_ref().unwrap()));
        // A large entry keeps its slice of a segment in memory, and of a file window that is
        // mostly itself; not of a window mostly holding other bytes.
        assert!(inside(large.data.as_ref().unwrap()));
        assert!(!inside(large_windowed.data.as_ref().unwrap()));
        assert!(inside(large_own_window.data.as_ref().unwrap()));
    }

    proptest! {
        /// The type runs count what the held entries hold, through overwrites, with or without
        /// keeping the entries.
        #[test]
        fn type_runs_count_the_held_entries(
            saves in prop::collection::vec(
                (1u64..4, prop::collection::vec(0i32..3, 1..6)),
                1..30,
            ),
        ) {
            use crate::wal::decoder::Segment;
            use crate::wal::name::parse_wal_name;
            let mut writer = crate::wal::writer::WalWriter::create_with_segment_size(b"m", 4096);
            let mut last = 0u64;
            for (term, (back, types)) in (2u64..).zip(saves) {
                // Start at or below the end: every save after the first may overwrite.
                let first = last.saturating_sub(back - 1) + 1;
                let entries: Vec<Entry> = types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Entry {
                        r#type: *t,
                        term,
                        index: first + i as u64,
                        data: None,
                    })
                    .collect();
                last = first + types.len() as u64 - 1;
                writer.save(&HardState { term, vote: 1, commit: 0 }, &entries);
            }
            let read = |keep_entries| {
                let segments = writer
                    .files(false)
                    .into_iter()
                    .map(|(name, bytes)| Segment { name: parse_wal_name(&name).unwrap(), bytes })
                    .collect();
                read_all(
                    Decoder::from_segments(segments, DecoderMode::Strict),
                    ReadAllOptions { keep_entries, ..Default::default() },
                )
            };
            let full = read(true);
            let summary = read(false);
            prop_assert!(full.errors.is_empty(), "{:?}", full.errors);
            let mut expected = std::collections::BTreeMap::new();
            for entry in &full.entries {
                *expected.entry(entry.r#type).or_insert(0usize) += 1;
            }
            prop_assert_eq!(full.entry_type_counts(), expected.clone());
            prop_assert_eq!(summary.entry_type_counts(), expected);
        }
    }
}
