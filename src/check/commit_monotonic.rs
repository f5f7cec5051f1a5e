//! The commit index never decreases from one state record to the next.
//!
//! A committed entry stays committed (§5.4); raft never lowers `committed` (etcd: "state.commit
//! is out of range" at restart, `commitTo` only moves forward). Commit-only states are not
//! fsynced, so a crash can lose the *latest* ones — that shortens the stream, it never leaves a
//! lower commit after a higher one in the file.

use super::{Finding, Severity};
use crate::proto::raftpb::HardState;
use crate::wal::Location;

pub const KIND: &str = "raft.commit_regressed";
pub const REFERENCE: &str =
    "Raft §5.4 / Fig. 2 (commitIndex increases monotonically); etcd raft log.commitTo";

pub fn check(
    member: &str,
    previous: &HardState,
    state: &HardState,
    location: impl FnOnce() -> Location,
) -> Option<Finding> {
    (state.commit < previous.commit).then(|| {
        let mut location = location();
        location.raft_index = Some(state.commit);
        Finding::new(
            KIND,
            Severity::Violation,
            member,
            location,
            Some(state.term),
            format!(
                "HardState commit went back from {} to {}",
                previous.commit, state.commit
            ),
            REFERENCE,
        )
    })
}
