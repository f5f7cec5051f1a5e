//! No committed entry is rewritten: an entry record at an index ≤ a commit already persisted
//! (or ≤ a snapshot the log was reset to) must carry the same entry as before.
//!
//! Uncommitted tails may be overwritten by a new leader (§5.3); committed entries never are
//! (Leader Completeness, §5.4). etcd's raft panics "entry %d conflict with committed entry" when
//! asked to; finding such a record in a WAL means the member lost or replaced committed data.

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "raft.committed_entry_rewritten";
pub const REFERENCE: &str =
    "Raft §5.4 Leader Completeness / State Machine Safety; etcd raft 'entry %d conflict with committed entry'; TLA+ LogInv";

/// An entry at `index` replaced a different entry (`old_term`, `None` when the old entry is only
/// known to be covered by a snapshot) while `committed` ≥ `index` was already persisted.
pub fn check(
    member: &str,
    index: u64,
    term: u64,
    old_term: Option<u64>,
    committed: u64,
    location: impl FnOnce() -> Location,
) -> Option<Finding> {
    if index > committed {
        return None;
    }
    let what = match old_term {
        Some(old) if old == term => format!("another entry of the same term {term}"),
        Some(old) => format!("an entry of term {term} (the committed one had term {old})"),
        None => format!("an entry of term {term}, below the snapshot the log was reset to"),
    };
    Some(Finding::new(
        KIND,
        Severity::Violation,
        member,
        location(),
        Some(term),
        format!("committed entry {index} (commit {committed}) is rewritten with {what}"),
        REFERENCE,
    ))
}
