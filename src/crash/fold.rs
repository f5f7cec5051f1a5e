//! The prefix model: etcd's boot (ValidSnapshotEntries → LoadNewestAvailable → selectWALFiles →
//! ReadAll) over "the first `k` records", kept incrementally so that moving from `k` to `k + 1`
//! costs one record, not a re-read. Every record-boundary crash state of a member is then
//! evaluated in O(n) total.
//!
//! The log is folded as ReadAll from index 0 folds it (a later entry at index i replaces every
//! entry ≥ i), generalised over gaps a leader snapshot leaves: a jump resets the log and raises
//! `gap_floor`, below which a read fails with `ErrSliceOutOfRange`. A read from a start S is then
//! the folded entries above S, which equals ReadAll from S unless an overwrite at an index ≤ S
//! truncated entries above S (`inexact`; the caller re-reads those states for real).

use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::wal::name::{is_valid_seq, search_index, SegmentName};

use super::history::{History, RecKind};

pub struct Fold<'h> {
    h: &'h History,
    /// Records applied.
    pub k: usize,
    /// `entries[0].index == base + 1`.
    base: u64,
    entries: Vec<Entry>,
    gap_floor: u64,
    /// Overwrites that dropped entries: `(index, last index before)`.
    overwrites: Vec<(u64, u64)>,
    /// `(record, index)` of every entry record that replaced entries (for log agreement).
    pub overwrite_events: Vec<(usize, u64)>,
    hs: HardState,
    hs_record: Option<usize>,
    /// The first record ReadAll would refuse (unknown type, undecodable payload).
    bad_record: Option<usize>,
}

/// The state etcd restarts from, for the crash state holding the first `k` records.
pub struct Recovery<'a> {
    /// etcd refuses to start: why.
    pub refused: Option<String>,
    pub start_index: u64,
    pub start_term: u64,
    /// Index into `History::snaps` of the `.snap` booted from.
    pub snap: Option<usize>,
    pub conf_state: ConfState,
    pub hard_state: HardState,
    /// Entries above the start, contiguous.
    pub entries: &'a [Entry],
    /// The in-memory state of the writer at this point (what an uncrashed member holds).
    pub written_hard_state: HardState,
    /// True when the folded log may differ from ReadAll from the start (see module docs).
    pub inexact: bool,
}

impl<'a> Recovery<'a> {
    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map(|e| e.index)
            .unwrap_or(self.start_index)
    }

    pub fn last_term(&self) -> u64 {
        self.entries
            .last()
            .map(|e| e.term)
            .unwrap_or(self.start_term)
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.start_index {
            return Some(self.start_term);
        }
        let first = self.entries.first()?.index;
        if index < first {
            return None;
        }
        self.entries.get((index - first) as usize).map(|e| e.term)
    }
}

impl<'h> Fold<'h> {
    pub fn new(h: &'h History) -> Fold<'h> {
        Fold {
            h,
            k: 0,
            base: 0,
            entries: Vec::new(),
            gap_floor: 0,
            overwrites: Vec::new(),
            overwrite_events: Vec::new(),
            hs: HardState::default(),
            hs_record: None,
            bad_record: None,
        }
    }

    pub fn history(&self) -> &'h History {
        self.h
    }

    /// The written (uncrashed) log's last index.
    pub fn last_index(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    pub fn hard_state(&self) -> HardState {
        self.hs
    }

    /// Applies the next record.
    pub fn advance(&mut self) {
        let k = self.k;
        let record = &self.h.records[k];
        match &record.kind {
            RecKind::Entry(e) => {
                let last = self.last_index();
                if e.index > last + 1 {
                    // A jump (leader snapshot): reads from below it fail.
                    self.base = e.index - 1;
                    self.entries.clear();
                    self.entries.push(e.clone());
                    self.gap_floor = self.gap_floor.max(e.index - 1);
                } else if e.index > self.base {
                    let keep = (e.index - self.base - 1) as usize;
                    if keep < self.entries.len() {
                        self.overwrites.push((e.index, last));
                        self.overwrite_events.push((k, e.index));
                        self.entries.truncate(keep);
                    }
                    self.entries.push(e.clone());
                }
                // e.index ≤ base: below a gap; every read that could include it fails already.
            }
            RecKind::State(st) => {
                self.hs = *st;
                self.hs_record = Some(k);
            }
            RecKind::Other(_) => {
                self.bad_record.get_or_insert(k);
            }
            RecKind::Snapshot(_) | RecKind::Metadata(_) | RecKind::Crc(_) => {}
        }
        self.k += 1;
    }

    /// Advance until `k` records are applied.
    pub fn advance_to(&mut self, k: usize) {
        while self.k < k {
            self.advance();
        }
    }

    /// The written log: entries above `base`.
    pub fn written_entries(&self) -> (u64, &[Entry]) {
        (self.base, &self.entries)
    }

    /// etcd's boot over the state holding the first `self.k` records.
    pub fn recovery(&self) -> Recovery<'_> {
        let h = self.h;
        let k = self.k;
        let mut out = Recovery {
            refused: None,
            start_index: 0,
            start_term: 0,
            snap: None,
            conf_state: ConfState::default(),
            hard_state: HardState::default(),
            entries: &[],
            written_hard_state: self.hs,
            inexact: false,
        };
        // ValidSnapshotEntries + LoadNewestAvailable: the newest readable .snap whose WAL record
        // is in this state and not above the last HardState's commit.
        let commit = self.hs.commit;
        let snap = h.snaps.iter().position(|s| {
            matches!((&s.meta, s.wal_record), (Some((_, index, _)), Some(r)) if r < k && *index <= commit)
        });
        if let Some(i) = snap {
            let (term, index, conf) = h.snaps[i].meta.clone().expect("checked above");
            out.start_index = index;
            out.start_term = term;
            out.conf_state = conf;
            out.snap = Some(i);
        }
        let segs = h.segments_at(k);
        let names: Vec<SegmentName> = h.segments[..segs].iter().map(|s| s.name.clone()).collect();
        let Some(from) = search_index(&names, out.start_index) else {
            out.refused = Some(format!(
                "wal: file not found (no segment at or below raft index {})",
                out.start_index
            ));
            return out;
        };
        if !is_valid_seq(&names[from..]) {
            out.refused = Some("wal: file not found (segment sequence has a gap)".into());
            return out;
        }
        let first_read = h.segments[from].first_record;
        if self.bad_record.is_some_and(|r| r >= first_read) {
            out.refused = Some(format!(
                "a record ReadAll refuses (unknown type or undecodable payload) at record {}",
                self.bad_record.unwrap_or(0)
            ));
            return out;
        }
        // Whether the start snapshot's record is among the records read does not matter: in
        // write mode ReadAll's ErrSnapshotNotFound is overwritten (see `recover`). Every segment
        // of a prefix state begins with a metadata record.
        if out.start_index < self.gap_floor {
            out.refused = Some(format!(
                "wal: slice bounds out of range (reading from snapshot {} over a gap up to {})",
                out.start_index, self.gap_floor
            ));
            return out;
        }
        out.hard_state = match self.hs_record {
            Some(r) if r >= first_read => self.hs,
            _ => HardState::default(),
        };
        let skip = (out.start_index.saturating_sub(self.base) as usize).min(self.entries.len());
        out.entries = &self.entries[skip..];
        out.inexact = self
            .overwrites
            .iter()
            .any(|(index, old_last)| *index <= out.start_index && out.start_index < *old_last);
        out
    }
}
