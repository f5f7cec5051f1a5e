//! One entry per (index, term): an entry record never replaces a *different* entry of the same
//! term at the same index, committed or not.
//!
//! Term T has at most one leader (Election Safety, §5.2), and a leader never overwrites its own
//! entries (Leader Append-Only); every entry of term T at index i comes from that leader, so two
//! different ones at (i, T) mean two leaders in T or a leader that rewrote its log.

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "raft.same_term_entry_replaced";
pub const REFERENCE: &str =
    "Raft §5.2 Election Safety + §5.3 Leader Append-Only (one entry per index and term); TLA+ ElectionSafetyInv";

pub fn check(
    member: &str,
    index: u64,
    term: u64,
    old_term: u64,
    same_content: bool,
    location: impl FnOnce() -> Location,
) -> Option<Finding> {
    (old_term == term && !same_content).then(|| {
        Finding::new(
            KIND,
            Severity::Violation,
            member,
            location(),
            Some(term),
            format!(
                "entry {index} of term {term} is replaced by a different entry of the same term"
            ),
            REFERENCE,
        )
    })
}
