//! Index contiguity after the overwrite rule: each entry record's index is at most one past the
//! last entry (etcd ReadAll: `ErrSliceOutOfRange`), unless a snapshot record reset the log first
//! (a member catching up from a leader snapshot writes snapshot{S} then entries S+1…).

use super::{Finding, Severity};
use crate::wal::Location;

pub const INDEX_GAP: &str = "wal.index_gap";
pub const REFERENCE: &str = "Raft §5.3 log matching; etcd ErrSliceOutOfRange";

pub fn gap(
    member: &str,
    index: u64,
    term: u64,
    last: u64,
    location: impl FnOnce() -> Location,
) -> Finding {
    Finding::new(
        INDEX_GAP,
        Severity::Corruption,
        member,
        location(),
        Some(term),
        format!(
            "entry index gap: expected an index ≤ {}, found {index}; entries {}..{} are missing and no snapshot record covers them",
            last.saturating_add(1),
            last.saturating_add(1),
            index.saturating_sub(1)
        ),
        REFERENCE,
    )
}
