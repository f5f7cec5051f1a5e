//! A read-only raft-rs [`Storage`] over the decoded log, for restarting a member.
//!
//! raft-rs's `MemStorage` needs the whole log translated and copied in (`append` clones every
//! entry) and hands committed entries out as a second copy of the whole range (`entries()` is
//! `to_vec`): three copies of the log and two atomic reference-count updates per entry, which the
//! replay profile showed as a third of the raft-rs time on a long log (docs/perf.md). This
//! storage reads the decoded entries in place and builds raft-rs entries only for the range asked
//! for, a bounded chunk at a time.
//!
//! The entries handed to raft-rs carry type, term and index but no data: on the restart + apply
//! path raft-rs never reads entry data (with no size limits configured it only compares indexes
//! and terms and reports types), and the apply loop hands the caller the decoded entry itself.
//!
//! Semantics otherwise follow `MemStorage` after `apply_snapshot` (or `set_conf_state`) +
//! `append` + `set_hardstate` (what a restart from a snapshot builds): the same first/last
//! index, `term` errors (`Compacted` below the snapshot, `Unavailable` past the end) and the same
//! panic for a range past the end.

use raft::eraftpb;
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::check::resolved_log::ResolvedLog;
use crate::proto::raftpb::Entry;
use crate::proto::translate;

/// Entries built per `entries()` call at most. raft-rs treats a shorter answer as a size limit
/// and asks again for the rest after the caller applied these.
pub const MAX_ENTRIES_PER_READ: usize = 4096;

pub struct LogStorage<'a> {
    state: RaftState,
    snapshot_index: u64,
    snapshot_term: u64,
    log: Held<'a>,
}

/// What raft-rs is answered from.
#[derive(Clone, Copy)]
enum Held<'a> {
    /// Contiguous from `snapshot_index + 1` (the pre-flight checks make sure).
    Entries(&'a [Entry]),
    /// The scan's digests (type and term per index) of a log starting at `snapshot_index + 1`;
    /// the entries themselves are streamed by the apply loop (`replay::stream`).
    Digests(&'a ResolvedLog),
}

/// The first entry whose type raft-rs does not know, as `(index, error)`.
pub type UnknownType = (u64, translate::TranslateError);

impl<'a> LogStorage<'a> {
    /// Fails on the first entry of an unknown type: raft-rs would treat it as a normal entry and
    /// a conf change could be missed.
    pub fn new(
        hard_state: eraftpb::HardState,
        conf_state: eraftpb::ConfState,
        snapshot_index: u64,
        snapshot_term: u64,
        entries: &'a [Entry],
    ) -> Result<LogStorage<'a>, UnknownType> {
        for e in entries {
            translate::entry_type(e.r#type).map_err(|err| (e.index, err))?;
        }
        Ok(LogStorage {
            state: RaftState::new(hard_state, conf_state),
            snapshot_index,
            snapshot_term,
            log: Held::Entries(entries),
        })
    }

    /// The same storage over a log known by its digests only, which must start right after the
    /// snapshot (`log.base_index == snapshot_index`): raft-rs gets the same answers without the
    /// entries being held. Fails on the first entry of an unknown type, as [`Self::new`].
    pub fn over_digests(
        hard_state: eraftpb::HardState,
        conf_state: eraftpb::ConfState,
        snapshot_index: u64,
        snapshot_term: u64,
        log: &'a ResolvedLog,
    ) -> Result<LogStorage<'a>, UnknownType> {
        assert_eq!(
            log.base_index, snapshot_index,
            "the log starts after the snapshot"
        );
        for (index, entry_type) in log.type_changes() {
            translate::entry_type(entry_type).map_err(|err| (index, err))?;
        }
        Ok(LogStorage {
            state: RaftState::new(hard_state, conf_state),
            snapshot_index,
            snapshot_term,
            log: Held::Digests(log),
        })
    }

    fn first(&self) -> u64 {
        match self.log {
            Held::Entries(entries) => entries
                .first()
                .map(|e| e.index)
                .unwrap_or(self.snapshot_index + 1),
            Held::Digests(_) => self.snapshot_index + 1,
        }
    }

    fn last(&self) -> u64 {
        match self.log {
            Held::Entries(entries) => entries
                .last()
                .map(|e| e.index)
                .unwrap_or(self.snapshot_index),
            Held::Digests(log) => self.snapshot_index + log.len() as u64,
        }
    }

    /// (type, term, index) of the entry at `position`.
    fn at(&self, position: usize) -> (i32, u64, u64) {
        match self.log {
            Held::Entries(entries) => {
                let e = &entries[position];
                (e.r#type, e.term, e.index)
            }
            Held::Digests(log) => {
                let index = self.snapshot_index + 1 + position as u64;
                let d = log.get(index).expect("position within the log");
                (d.entry_type, d.term, index)
            }
        }
    }

    fn raft_entry(&self, position: usize) -> eraftpb::Entry {
        let (entry_type, term, index) = self.at(position);
        let mut out = eraftpb::Entry::default();
        // Checked in `new`.
        out.set_entry_type(
            translate::entry_type(entry_type).unwrap_or(eraftpb::EntryType::EntryNormal),
        );
        out.term = term;
        out.index = index;
        out
    }
}

impl Storage for LogStorage<'_> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(self.state.clone())
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<eraftpb::Entry>> {
        let max_size = max_size.into();
        let first = self.first();
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            panic!(
                "index out of bound (last: {}, high: {})",
                self.last() + 1,
                high
            );
        }
        let lo = (low - first) as usize;
        let hi = ((high - first) as usize).min(lo + MAX_ENTRIES_PER_READ);
        let mut out: Vec<eraftpb::Entry> = (lo..hi).map(|p| self.raft_entry(p)).collect();
        raft::util::limit_size(&mut out, max_size);
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index {
            return Ok(self.snapshot_term);
        }
        let first = self.first();
        if idx < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.at((idx - first) as usize).1)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// `MemStorage::snapshot`: metadata at the commit index (never asked of a follower).
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<eraftpb::Snapshot> {
        let mut snapshot = eraftpb::Snapshot::default();
        let commit = self.state.hard_state.commit;
        let term = match commit.cmp(&self.snapshot_index) {
            std::cmp::Ordering::Equal => self.snapshot_term,
            std::cmp::Ordering::Greater => self.term(commit)?,
            std::cmp::Ordering::Less => panic!(
                "commit {} < snapshot_metadata.index {}",
                commit, self.snapshot_index
            ),
        };
        let meta = snapshot.mut_metadata();
        meta.index = commit.max(request_index);
        meta.term = term;
        meta.set_conf_state(self.state.conf_state.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::storage::MemStorage;

    fn entry(index: u64, term: u64, entry_type: i32) -> Entry {
        Entry {
            r#type: entry_type,
            term,
            index,
            data: Some(bytes::Bytes::from_static(b"x")),
        }
    }

    /// The same answers as raft-rs's MemStorage set up from the same snapshot, entries and state.
    #[test]
    #[allow(clippy::field_reassign_with_default)] // rust-protobuf messages have private fields
    fn answers_like_mem_storage_after_snapshot_and_append() {
        let log: Vec<Entry> = (11..=20)
            .map(|i| entry(i, 2 + i / 15, (i == 13) as i32))
            .collect();
        let mut hs = eraftpb::HardState::default();
        hs.term = 3;
        hs.commit = 18;
        let mut cs = eraftpb::ConfState::default();
        cs.voters = vec![1, 2, 3];
        let ours = LogStorage::new(hs.clone(), cs.clone(), 10, 2, &log).unwrap();
        let mem = MemStorage::new();
        {
            let mut core = mem.wl();
            let mut snapshot = eraftpb::Snapshot::default();
            snapshot.mut_metadata().index = 10;
            snapshot.mut_metadata().term = 2;
            snapshot.mut_metadata().set_conf_state(cs.clone());
            core.apply_snapshot(snapshot).unwrap();
            let translated: Vec<eraftpb::Entry> =
                log.iter().map(|e| translate::entry(e).unwrap()).collect();
            core.append(&translated).unwrap();
            core.set_hardstate(hs);
        }
        let (a, b) = (ours.initial_state().unwrap(), mem.initial_state().unwrap());
        assert_eq!((a.hard_state, a.conf_state), (b.hard_state, b.conf_state));
        assert_eq!(ours.first_index().unwrap(), mem.first_index().unwrap());
        assert_eq!(ours.last_index().unwrap(), mem.last_index().unwrap());
        for idx in 8..=22 {
            assert_eq!(
                format!("{:?}", ours.term(idx)),
                format!("{:?}", mem.term(idx)),
                "term({idx})"
            );
        }
        let strip = |v: Vec<eraftpb::Entry>| -> Vec<(i32, u64, u64)> {
            v.into_iter()
                .map(|e| (e.entry_type as i32, e.term, e.index))
                .collect()
        };
        for (lo, hi) in [(11, 21), (13, 15), (20, 21), (11, 11)] {
            let a = ours
                .entries(lo, hi, None, GetEntriesContext::empty(false))
                .unwrap();
            let b = mem
                .entries(lo, hi, None, GetEntriesContext::empty(false))
                .unwrap();
            assert_eq!(strip(a), strip(b), "entries({lo}, {hi})");
        }
        assert!(ours
            .entries(10, 12, None, GetEntriesContext::empty(false))
            .is_err());
        assert_eq!(
            ours.snapshot(0, 0).unwrap().get_metadata(),
            mem.snapshot(0, 0).unwrap().get_metadata()
        );
    }

    /// Over the scan's digests: the same answers as over the entries they digest.
    #[test]
    fn digests_answer_like_the_entries() {
        use crate::check::resolved_log::EntryDigest;
        let log: Vec<Entry> = (11..=9000)
            .map(|i| entry(i, 2 + i / 15, (i % 97 == 0) as i32))
            .collect();
        let digests: Vec<EntryDigest> = log
            .iter()
            .map(|e| EntryDigest {
                term: e.term,
                entry_type: e.r#type,
                data_crc: 0,
                segment: 0,
                offset: e.index * 10,
            })
            .collect();
        let resolved = ResolvedLog::from_digests(10, 2, &digests);
        let hs = eraftpb::HardState {
            term: 700,
            commit: 8000,
            ..Default::default()
        };
        let cs = eraftpb::ConfState::default();
        let a = LogStorage::new(hs.clone(), cs.clone(), 10, 2, &log).unwrap();
        let b = LogStorage::over_digests(hs, cs, 10, 2, &resolved).unwrap();
        assert_eq!(a.first_index().unwrap(), b.first_index().unwrap());
        assert_eq!(a.last_index().unwrap(), b.last_index().unwrap());
        for idx in [0, 9, 10, 11, 12, 500, 8999, 9000, 9001] {
            assert_eq!(
                format!("{:?}", a.term(idx)),
                format!("{:?}", b.term(idx)),
                "term({idx})"
            );
        }
        for (lo, hi) in [(11, 9001), (13, 15), (5000, 9001), (11, 11), (10, 12)] {
            assert_eq!(
                format!(
                    "{:?}",
                    a.entries(lo, hi, None, GetEntriesContext::empty(false))
                ),
                format!(
                    "{:?}",
                    b.entries(lo, hi, None, GetEntriesContext::empty(false))
                ),
                "entries({lo}, {hi})"
            );
        }
        let mut bad = digests.clone();
        bad[40].entry_type = 9;
        let resolved = ResolvedLog::from_digests(10, 2, &bad);
        let err = LogStorage::over_digests(
            eraftpb::HardState::default(),
            eraftpb::ConfState::default(),
            10,
            2,
            &resolved,
        )
        .err()
        .unwrap();
        assert_eq!(err.0, 51);
    }

    #[test]
    fn long_ranges_come_in_chunks_and_unknown_types_are_refused() {
        let log: Vec<Entry> = (1..=10_000).map(|i| entry(i, 1, 0)).collect();
        let storage = LogStorage::new(
            eraftpb::HardState::default(),
            eraftpb::ConfState::default(),
            0,
            0,
            &log,
        )
        .unwrap();
        let got = storage
            .entries(1, 10_001, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.len(), MAX_ENTRIES_PER_READ);
        assert_eq!(got.last().unwrap().index, MAX_ENTRIES_PER_READ as u64);
        let mut bad = log[..3].to_vec();
        bad[1].r#type = 9;
        let err = LogStorage::new(
            eraftpb::HardState::default(),
            eraftpb::ConfState::default(),
            0,
            0,
            &bad,
        )
        .err()
        .unwrap();
        assert_eq!(err.0, 2);
    }
}
