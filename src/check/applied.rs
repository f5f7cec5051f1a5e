//! Applied ≤ commit where the applied index is known: a member never applies an entry it has
//! not persisted as committed (etcd `server/verify`: backend consistent_index ≤ HardState.commit;
//! raft "applied(%d) is out of range [prevApplied(%d), committed(%d)]").
//!
//! Inside the WAL the applied index shows only through local snapshots (judged by
//! [`super::snapshot_records`]); this is the hook for the others — the backend's
//! consistent_index or what a replay applied.

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "raft.applied_beyond_commit";
pub const REFERENCE: &str =
    "Raft §5.3 (apply only committed entries); etcd server/verify consistent_index ≤ HardState.commit; raft 'applied is out of range'";

/// `applied` (from `source`, e.g. "backend consistent_index") against the member's persisted
/// commit.
pub fn check(member: &str, applied: u64, commit: u64, source: &str) -> Option<Finding> {
    (applied > commit).then(|| {
        Finding::new(
            KIND,
            Severity::Violation,
            member,
            Location {
                raft_index: Some(applied),
                ..Default::default()
            },
            None,
            format!("{source} is {applied}, beyond the persisted commit {commit}"),
            REFERENCE,
        )
    })
}
