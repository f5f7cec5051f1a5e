//! A member's write history, decoded once: every record with its place and the CRC chain value
//! after it, the segments' written bytes, the `.snap` files, and where etcd fsynced.
//!
//! The WAL is append-only (etcd zeroes a torn tail before appending again), so the files as
//! captured are the last of a sequence of states each a record prefix of the next: the state after
//! `k` records were handed to the OS is `records[..k]`. Fsync points follow from the record stream
//! by etcd's rules (`wal.Save`, `raft.MustSync`): a Save's entries then its HardState, synced when
//! `MustSync` (entries, or a term or vote change; a commit-only HardState is not synced); a
//! snapshot record always synced; a HardState saved with a leader snapshot synced by the server's
//! explicit `Sync` (#10219); a cut syncs the old tail and the new segment's header.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use crate::fsio::ReadOnlyFs;
use crate::member::{MemberFiles, OpenError};
use crate::proto::etcdserverpb::Metadata;
use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::proto::walpb::{
    WalSnapshot, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE,
};
use crate::wal::decoder::{DecodeEnd, DecoderMode};
use crate::wal::name::SegmentName;
use crate::wal::WalError;

#[derive(Clone, Debug)]
pub enum RecKind {
    Entry(Entry),
    State(HardState),
    Snapshot(WalSnapshot),
    Metadata(Bytes),
    Crc(u32),
    /// A record etcd's ReadAll refuses (unknown type) or whose payload does not decode.
    Other(i64),
}

#[derive(Clone, Debug)]
pub struct Rec {
    pub segment: usize,
    /// Offset of the frame's length word in its segment.
    pub offset: u64,
    pub frame_len: u64,
    pub kind: RecKind,
    /// The running CRC after this record, as ReadAll leaves it (crc records re-seed).
    pub crc_after: u32,
}

impl Rec {
    pub fn end(&self) -> u64 {
        self.offset + self.frame_len
    }
}

#[derive(Clone, Debug)]
pub struct SegInfo {
    pub name: SegmentName,
    /// The written bytes `[0, data_len)`; what follows on disk is not needed (zeros, or bytes
    /// etcd never reads).
    pub bytes: Bytes,
    pub data_len: u64,
    pub file_len: u64,
    /// First record of this segment.
    pub first_record: usize,
    /// Records `[first_record, header_end)` are the segment's header (crc, metadata, state, or
    /// Create's crc, metadata, snapshot{0,0}): the file exists under its name only once they are
    /// synced, so a crash state holds the segment only from `header_end` records on.
    pub header_end: usize,
}

#[derive(Clone, Debug)]
pub struct SnapInfo {
    pub file_name: String,
    pub bytes: Bytes,
    /// `(term, index, conf_state)` when the file reads as etcd's `snap.Read` accepts it.
    pub meta: Option<(u64, u64, ConfState)>,
    pub read_error: Option<String>,
    /// The first WAL snapshot record with the same (index, term).
    pub wal_record: Option<usize>,
}

/// Valid records after the point where etcd stops reading the last segment (a torn-looking
/// record, or a zero length word).
#[derive(Clone, Debug, Default)]
pub struct AfterDamage {
    /// Offset of the damaged frame (Repair truncates here).
    pub offset: u64,
    pub records: usize,
    pub first_entry: Option<u64>,
    pub last_entry: Option<u64>,
    /// A Save ended (state record) and another record followed: the write holding the damaged
    /// record had returned, fsync included, before later data was written.
    pub later_save_completed: bool,
}

pub struct History {
    pub member: String,
    pub input: std::path::PathBuf,
    pub wal_dir: std::path::PathBuf,
    pub snap_dir: Option<std::path::PathBuf>,
    pub segments: Vec<SegInfo>,
    pub records: Vec<Rec>,
    /// Why decoding stopped before the end of the files, if it did (the input is damaged: crash
    /// points are enumerated over the readable prefix only).
    pub damage: Option<WalError>,
    /// When decoding stopped at a torn-looking record in the last segment (etcd's Repair would
    /// truncate there): the valid records a forensic scan still finds after it.
    pub after_damage: Option<AfterDamage>,
    /// Newest first, as etcd's `snapNames` sorts them.
    pub snaps: Vec<SnapInfo>,
    /// Record boundaries `k` (records `[..k]` durable) where an fsync completes, ascending.
    pub syncs: Vec<usize>,
    pub node_id: u64,
}

impl History {
    pub fn load(fs: &dyn ReadOnlyFs, input: &Path) -> Result<History, OpenError> {
        let files = MemberFiles::open(fs, input)?;
        let member = input.display().to_string();
        let mut decoder = files.decoder(0, DecoderMode::Strict);
        let mut records: Vec<Rec> = Vec::new();
        let mut damage = None;
        let mut torn_in_last = false;
        loop {
            let decoded = match decoder.next_record() {
                Ok(d) => d,
                Err(DecodeEnd::Eof) => break,
                Err(DecodeEnd::UnexpectedEof {
                    error,
                    in_last_segment,
                }) => {
                    torn_in_last = in_last_segment;
                    damage = Some(error);
                    break;
                }
                Err(DecodeEnd::Fatal(error)) => {
                    damage = Some(error);
                    break;
                }
            };
            let record = &decoded.record;
            let data = record.data.clone().unwrap_or_default();
            let kind = match record.r#type {
                ENTRY_TYPE => Entry::decode(data).map(RecKind::Entry).ok(),
                STATE_TYPE => HardState::decode(data).map(RecKind::State).ok(),
                SNAPSHOT_TYPE => WalSnapshot::decode(data).map(RecKind::Snapshot).ok(),
                METADATA_TYPE => Some(RecKind::Metadata(data)),
                CRC_TYPE => Some(RecKind::Crc(record.crc)),
                _ => None,
            }
            .unwrap_or(RecKind::Other(record.r#type));
            if record.r#type == CRC_TYPE {
                decoder.reseed(record.crc);
            }
            if let RecKind::Entry(e) = &kind {
                decoder.last_entry_index = e.index;
            }
            records.push(Rec {
                segment: decoded.segment_index,
                offset: decoded.offset,
                frame_len: decoded.frame_len,
                kind,
                crc_after: decoder.running_crc(),
            });
        }
        let mut segments = Vec::new();
        for (index, name) in files.segments.iter().enumerate() {
            let first_record = records.partition_point(|r| r.segment < index);
            let after = records.partition_point(|r| r.segment <= index);
            if first_record == after && index > 0 && damage.is_some() {
                break; // never reached: decoding stopped earlier
            }
            let data_len = records[first_record..after]
                .last()
                .map(|r| r.end())
                .unwrap_or(0);
            let (reader, file_len) = files
                .fs
                .open_read(&files.paths.wal_dir.join(&name.file_name))
                .map_err(|e| OpenError::Unreadable {
                    path: files.paths.wal_dir.join(&name.file_name),
                    message: e.to_string(),
                })?;
            let mut buf = Vec::with_capacity(data_len as usize);
            reader
                .take(data_len)
                .read_to_end(&mut buf)
                .map_err(|e| OpenError::Unreadable {
                    path: files.paths.wal_dir.join(&name.file_name),
                    message: e.to_string(),
                })?;
            segments.push(SegInfo {
                name: name.clone(),
                bytes: Bytes::from(buf),
                data_len,
                file_len,
                first_record,
                header_end: first_record,
            });
        }
        let node_id = records
            .iter()
            .find_map(|r| match &r.kind {
                RecKind::Metadata(m) => Metadata::decode(m.clone()).ok(),
                _ => None,
            })
            .map(|m| m.node_id)
            .unwrap_or(0);
        let mut snaps: Vec<SnapInfo> = files
            .snaps()
            .into_iter()
            .map(|(name, bytes)| {
                let (meta, read_error) = match crate::snap::read_snap(bytes.clone()) {
                    Ok(s) => (
                        Some((s.metadata.term, s.metadata.index, s.metadata.conf_state)),
                        None,
                    ),
                    Err(e) => (None, Some(e.to_string())),
                };
                SnapInfo {
                    file_name: name,
                    bytes,
                    meta,
                    read_error,
                    wal_record: None,
                }
            })
            .collect();
        for snap in &mut snaps {
            if let Some((term, index, _)) = &snap.meta {
                snap.wal_record = records.iter().position(|r| {
                    matches!(&r.kind, RecKind::Snapshot(s) if s.index == *index && s.term == *term)
                });
            }
        }
        // Where etcd stops reading the last segment (a torn record, or a zero length word): any
        // valid records after that point are data etcd would silently drop (#6515).
        let after_damage = match (damage.is_some(), torn_in_last) {
            (true, false) => None,
            _ => files.segments.last().and_then(|last| {
                let index = files.segments.len() - 1;
                let offset = match &damage {
                    Some(d) => d.location.offset.unwrap_or(0),
                    None => records
                        .iter()
                        .rev()
                        .find(|r| r.segment == index)
                        .map(|r| r.end())
                        .unwrap_or(0),
                };
                let bytes = files
                    .fs
                    .read(&files.paths.wal_dir.join(&last.file_name))
                    .ok()?;
                let rest_from = if damage.is_some() { offset + 8 } else { offset };
                if bytes.get(rest_from as usize..).is_none_or_all_zero() {
                    return None;
                }
                let last_entry = records.iter().rev().find_map(|r| match &r.kind {
                    RecKind::Entry(e) => Some(e.index),
                    _ => None,
                });
                Some(scan_after(last, bytes, offset, damage.is_some()))
                    .filter(|a| a.records > 0)
                    .filter(|a| match (a.first_entry, last_entry) {
                        // Only data continuing this log (stale bytes from a reused
                        // preallocated file carry older indexes).
                        (Some(first), Some(last)) => first > last,
                        _ => true,
                    })
            }),
        };
        let mut history = History {
            member,
            input: input.to_path_buf(),
            wal_dir: files.paths.wal_dir.clone(),
            snap_dir: files.paths.snap_dir.clone(),
            segments,
            records,
            damage,
            after_damage,
            snaps,
            syncs: Vec::new(),
            node_id,
        };
        history.derive_headers_and_syncs();
        Ok(history)
    }

    /// Header extents and fsync points from the record stream (see the module docs).
    fn derive_headers_and_syncs(&mut self) {
        let mut syncs: Vec<usize> = Vec::new();
        let push = |syncs: &mut Vec<usize>, k: usize| {
            if syncs.last() != Some(&k) {
                syncs.push(k);
            }
        };
        let mut prev_state = HardState::default();
        let mut pending_entries = 0usize;
        let mut last_entry_index = 0u64;
        // A HardState saved together with a leader snapshot is synced explicitly by the server.
        let mut after_leader_snapshot = false;
        let n = self.records.len();
        let mut k = 0usize;
        for seg_index in 0..self.segments.len() {
            let first = self.segments[seg_index].first_record;
            let end = self
                .segments
                .get(seg_index + 1)
                .map(|s| s.first_record)
                .unwrap_or(n);
            if first >= end {
                self.segments[seg_index].header_end = first;
                continue;
            }
            if seg_index > 0 {
                // The cut synced the old tail (a pending entries-only Save included).
                pending_entries = 0;
                push(&mut syncs, first);
            }
            // Header: crc, metadata, then either snapshot{0,0} (Create) or the state (if the
            // writing process had saved one, it equals the last HardState written before).
            let mut h = first;
            if matches!(self.records[h].kind, RecKind::Crc(_)) {
                h += 1;
                if h < end && matches!(self.records[h].kind, RecKind::Metadata(_)) {
                    h += 1;
                    if h < end {
                        match &self.records[h].kind {
                            RecKind::Snapshot(s) if s.index == 0 && s.term == 0 => h += 1,
                            RecKind::State(st) if seg_index > 0 && *st == prev_state => h += 1,
                            _ => {}
                        }
                    }
                }
            }
            self.segments[seg_index].header_end = h;
            push(&mut syncs, h);
            k = h;
            while k < end {
                match &self.records[k].kind {
                    RecKind::Entry(e) => {
                        pending_entries += 1;
                        last_entry_index = e.index;
                        after_leader_snapshot = false;
                    }
                    RecKind::State(st) => {
                        let must_sync = pending_entries > 0
                            || st.term != prev_state.term
                            || st.vote != prev_state.vote;
                        prev_state = *st;
                        pending_entries = 0;
                        if must_sync || after_leader_snapshot {
                            push(&mut syncs, k + 1);
                        }
                        after_leader_snapshot = false;
                    }
                    RecKind::Snapshot(s) => {
                        if pending_entries > 0 {
                            push(&mut syncs, k);
                            pending_entries = 0;
                        }
                        push(&mut syncs, k + 1);
                        after_leader_snapshot = s.index > last_entry_index;
                        last_entry_index = last_entry_index.max(s.index);
                    }
                    _ => {
                        if pending_entries > 0 {
                            push(&mut syncs, k);
                            pending_entries = 0;
                        }
                        after_leader_snapshot = false;
                    }
                }
                k += 1;
            }
        }
        if pending_entries > 0 {
            push(&mut syncs, k);
        }
        syncs.retain(|s| *s <= n);
        syncs.sort_unstable();
        syncs.dedup();
        self.syncs = syncs;
    }

    /// The first record boundary at which a crash state can exist (the first segment's header
    /// is synced; before that the WAL directory does not exist under its name).
    pub fn first_cut(&self) -> usize {
        self.segments.first().map(|s| s.header_end).unwrap_or(0)
    }

    /// The shortest record prefix etcd can boot from the files we have: it must hold a WAL
    /// snapshot record that a file present names. etcd 3.5.30 `NewServer`
    /// (server/etcdserver/server.go: `wal.ValidSnapshotEntries`, then
    /// `snap.LoadNewestAvailable(walSnaps)`) boots from the newest `.snap` whose (index, term)
    /// a WAL snapshot record carries; without one it opens the WAL at index 0, and
    /// `wal.Open` → `selectWALFiles` needs a segment named at or below that index
    /// (server/wal/wal.go, util.go `searchIndex`: `ErrFileNotFound`). So Create's `{0, 0}`
    /// record counts only in a segment named with raft index 0, and a `.snap` record only at
    /// or above the first segment's index. A prefix shorter than this is a moment when the
    /// files it would boot from — earlier segments, older `.snap` files — still existed and
    /// have since been purged (`--max-wals`, `--max-snapshots`): not a state these files can
    /// show. `None`: no prefix boots (the input itself does not; that is judged, not hidden).
    pub fn first_bootable(&self) -> Option<usize> {
        let first = self.segments.first()?;
        let create = self
            .records
            .iter()
            .position(|r| matches!(&r.kind, RecKind::Snapshot(s) if s.index == 0 && s.term == 0))
            .filter(|_| first.name.raft_index == 0);
        let snap = self
            .snaps
            .iter()
            .filter_map(|s| match (&s.meta, s.wal_record) {
                (Some((_, index, _)), Some(r)) if *index >= first.name.raft_index => Some(r),
                _ => None,
            })
            .min();
        let r = create.into_iter().chain(snap).min()?;
        Some((r + 1).max(self.first_cut()))
    }

    /// The last sync point at or before `k` (records durable if a crash happens after `k`
    /// records were written).
    pub fn durable_at(&self, k: usize) -> usize {
        let i = self.syncs.partition_point(|s| *s <= k);
        if i == 0 {
            self.first_cut()
        } else {
            self.syncs[i - 1]
        }
    }

    /// Segments a crash state with `k` records holds: those whose header was synced (the first
    /// one always).
    pub fn segments_at(&self, k: usize) -> usize {
        self.segments
            .iter()
            .enumerate()
            .take_while(|(i, s)| *i == 0 || s.header_end <= k)
            .count()
    }

    /// One past the last record of segment `seg`.
    pub fn segment_end_record(&self, seg: usize) -> usize {
        self.segments
            .get(seg + 1)
            .map(|s| s.first_record)
            .unwrap_or(self.records.len())
    }

    /// The tail segment of the state with `k` records and its written length in bytes.
    pub fn tail_at(&self, k: usize) -> (usize, u64) {
        let seg = self.segments_at(k) - 1;
        let first = self.segments[seg].first_record;
        let upto = k.min(self.segment_end_record(seg)).max(first);
        let len = self.records[first..upto]
            .last()
            .map(|r| r.end())
            .unwrap_or(0);
        (seg, len)
    }

    /// The chain value before record `r` (what the decoder holds when it reaches it).
    pub fn crc_before(&self, r: usize) -> u32 {
        if r == 0 {
            0
        } else {
            self.records[r - 1].crc_after
        }
    }

    /// The number of records whose frame ends at or before `offset` in segment `seg` (counted
    /// from the first record of the WAL).
    pub fn records_before(&self, seg: usize, offset: u64) -> usize {
        let first = self.segments[seg].first_record;
        let end = self.segment_end_record(seg);
        first + self.records[first..end].partition_point(|r| r.end() <= offset)
    }

    pub fn entry_count(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r.kind, RecKind::Entry(_)))
            .count()
    }
}

/// A forensic scan of the last segment past `offset`: the segment is decoded as if it were not
/// the last (so a torn-looking record is skipped, not taken as the end) and resynchronised past
/// damage; the records found after `offset` are counted.
fn scan_after(name: &SegmentName, bytes: Bytes, offset: u64, damaged: bool) -> AfterDamage {
    let mut next = name.clone();
    next.seq += 1;
    next.file_name = format!("{}.next", name.file_name);
    let mut decoder = crate::wal::decoder::Decoder::from_segments(
        vec![
            crate::wal::decoder::Segment {
                name: name.clone(),
                bytes,
            },
            crate::wal::decoder::Segment {
                name: next,
                bytes: Bytes::new(),
            },
        ],
        DecoderMode::Forensic,
    );
    let mut out = AfterDamage {
        offset,
        ..Default::default()
    };
    let mut state_seen = false;
    while let Ok(d) = decoder.next_record() {
        let past = if damaged {
            d.offset > offset
        } else {
            d.offset >= offset
        };
        if d.segment_index != 0 || !past || !d.crc_valid {
            continue;
        }
        if d.record.r#type == CRC_TYPE {
            decoder.reseed(d.record.crc);
        }
        out.records += 1;
        if state_seen {
            out.later_save_completed = true;
        }
        match d.record.r#type {
            ENTRY_TYPE => {
                if let Some(e) = d.record.data.clone().and_then(|b| Entry::decode(b).ok()) {
                    out.first_entry.get_or_insert(e.index);
                    out.last_entry = Some(e.index);
                }
            }
            STATE_TYPE => state_seen = true,
            _ => {}
        }
    }
    out
}

trait AllZero {
    fn is_none_or_all_zero(&self) -> bool;
}

impl AllZero for Option<&[u8]> {
    fn is_none_or_all_zero(&self) -> bool {
        self.map_or(true, |b| b.iter().all(|x| *x == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::fixture::{synthetic_member, SyntheticMember};
    use crate::crash::recover::MOUNT;

    fn load(m: &SyntheticMember) -> History {
        let fs = m.disk().mount();
        History::load(&fs, Path::new(MOUNT)).expect("loads")
    }

    /// Fsync points derived from the record stream are exactly where the writer synced.
    #[test]
    fn derived_fsync_points_are_the_writers() {
        for (segment_size, snapshot_every) in [(4096, 7), (64 * 1000 * 1000, 25), (8192, 0)] {
            let mut m = synthetic_member(2, 120, segment_size, snapshot_every);
            // A leader snapshot: the record, then its HardState, then the server's Sync.
            let last = m.writer.last_raft_index();
            m.save_snap(last + 10, 3, &[1, 2, 3], true);
            m.save(
                HardState {
                    term: 3,
                    vote: 1,
                    commit: last + 10,
                },
                &[],
            );
            m.sync();
            let h = load(&m);
            let mut expected: Vec<(usize, u64)> = m
                .writer
                .sync_points()
                .iter()
                .map(|p| (p.segment_index, p.durable_len))
                .collect();
            expected.dedup();
            let derived: Vec<(usize, u64)> = h
                .syncs
                .iter()
                .map(|k| {
                    let r = &h.records[k - 1];
                    (r.segment, r.end())
                })
                .collect();
            assert!(h.segments.len() > 1 || segment_size > 8192);
            assert_eq!(derived, expected, "segment size {segment_size}");
        }
    }
}
