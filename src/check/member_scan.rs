//! What one member's invariant scan leaves behind: its resolved log, HardStates, votes,
//! configuration timeline, `.snap` files and WAL snapshot records. Part of `check`'s ground
//! floor: the invariant files and the cross-member checks import it; it imports none of them.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::conf_model::ConfTimeline;
use super::resolved_log::ResolvedLog;
use super::Finding;
use crate::proto::raftpb::{ConfState, HardState};
use crate::proto::walpb::WalSnapshot;
use crate::wal::Location;

/// A distinct (term, vote) pair, where it was first persisted.
#[derive(Clone, Debug)]
pub struct VoteRecord {
    pub term: u64,
    pub vote: u64,
    pub location: Location,
    /// Whether the member's configuration was known when the vote was first persisted.
    pub conf_known: bool,
}

/// A readable `.snap` file.
#[derive(Clone, Debug)]
pub struct SnapInfo {
    pub file_name: String,
    pub index: u64,
    pub term: u64,
    pub conf_state: ConfState,
    pub data: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// `{0,0}` written by `wal.Create`.
    Initial,
    /// The log holds the snapshot's entry: log compaction of applied state.
    Local,
    /// The log was reset to it: a snapshot received from the leader.
    Leader,
    /// Contradicts a committed entry at its index.
    Conflicting,
    /// Below the part of the log this member's files hold.
    Unplaced,
}

#[derive(Clone, Debug)]
pub struct WalSnapshotSeen {
    pub snapshot: WalSnapshot,
    pub location: Location,
    pub kind: SnapshotKind,
}

/// Everything one member's scan found, for the cross-member checks and the report.
#[derive(Debug, Default)]
pub struct MemberScan {
    pub member: String,
    pub node_id: Option<u64>,
    pub cluster_id: Option<u64>,
    pub segments: Vec<String>,
    pub log: ResolvedLog,
    pub hard_state: Option<HardState>,
    /// The highest commit persisted in a state record.
    pub commit: u64,
    /// Entries up to here are committed: `commit`, or a snapshot the log was reset to.
    pub committed: u64,
    pub votes: Vec<VoteRecord>,
    pub timeline: ConfTimeline,
    pub snaps: Vec<SnapInfo>,
    /// Every `.snap` file name, readable or not.
    pub snap_names: Vec<String>,
    pub wal_snapshots: Vec<WalSnapshotSeen>,
    /// Node ids named by any conf-change entry of the log.
    pub conf_change_ids: BTreeSet<u64>,
    pub record_count: u64,
    pub entry_records: u64,
    /// Why the scan stopped before the end of the last segment.
    pub stopped: Option<String>,
    pub findings: Vec<Finding>,
}

impl MemberScan {
    /// Where entry `index` of the resolved log was read.
    pub fn entry_location(&self, index: u64) -> Location {
        match self.log.get(index) {
            Some(e) => Location {
                segment: self.segments.get(e.segment as usize).cloned(),
                offset: Some(e.offset),
                raft_index: Some(index),
            },
            None => Location {
                raft_index: Some(index),
                ..Default::default()
            },
        }
    }

    /// The entries this member persisted as committed: up to its commit, within its log.
    pub fn committed_through(&self) -> u64 {
        self.committed.min(self.log.last_index())
    }
}
