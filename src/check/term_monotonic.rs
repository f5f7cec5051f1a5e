//! Entry terms never decrease along the log, once later records have overwritten earlier ones
//! at the same index (etcd's ReadAll rule, Raft Fig. 7).
//!
//! A leader appends entries of its own term after the entries it inherited, and a follower's log
//! is a prefix of some leader's log (§5.3), so terms along any log are non-decreasing. Checked
//! when each entry record lands: its term against the term of the entry just below it.

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "raft.entry_term_regressed";
pub const REFERENCE: &str =
    "Raft §5.3 (log terms are non-decreasing: a leader appends after what it inherited); TLA+ LogMatchingInv";

/// `prev_term` is the term of entry `index - 1` in the resolved log (or of the snapshot the log
/// starts after), when known.
pub fn check(
    member: &str,
    index: u64,
    term: u64,
    prev_term: Option<u64>,
    location: impl FnOnce() -> Location,
) -> Option<Finding> {
    let prev = prev_term?;
    (term < prev).then(|| {
        Finding::new(
            KIND,
            Severity::Violation,
            member,
            location(),
            Some(term),
            format!(
                "entry {index} has term {term}, below the term {prev} of entry {} before it",
                index.saturating_sub(1)
            ),
            REFERENCE,
        )
    })
}
