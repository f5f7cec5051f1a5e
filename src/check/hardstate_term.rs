//! The HardState term never decreases from one state record to the next.
//!
//! `currentTerm` only grows (Fig. 2); etcd persists it before acting on a higher term (a term
//! change forces an fsync, `raft.MustSync`). A restart rewrites the same state, a segment cut
//! repeats it in the new segment's header: both are equal, never lower.

use super::{Finding, Severity};
use crate::proto::raftpb::HardState;
use crate::wal::Location;

pub const KIND: &str = "raft.hardstate_term_regressed";
pub const REFERENCE: &str = "Raft Fig. 2 (currentTerm increases monotonically); TLA+ currentTerm";

pub fn check(
    member: &str,
    previous: &HardState,
    state: &HardState,
    location: impl FnOnce() -> Location,
) -> Option<Finding> {
    (state.term < previous.term).then(|| {
        Finding::new(
            KIND,
            Severity::Violation,
            member,
            location(),
            Some(state.term),
            format!(
                "HardState term went back from {} to {}",
                previous.term, state.term
            ),
            REFERENCE,
        )
    })
}
