//! The commit boundary at every persisted batch (each state record ends an etcd `Save`):
//! commit ≤ the last entry index persisted so far, and the HardState term ≥ the last entry's term.
//!
//! etcd writes a Save's entries before its state; raft only commits what is in its log
//! (`commitTo(min(m.Commit, lastnewi))`), and a node's term is at least that of any entry it
//! accepted. A commit beyond the log is the state that makes etcd panic with "tocommit(N) is out
//! of range [lastIndex(M)]" and raft-rs with "hs.commit … out of range" on restart.

use super::resolved_log::ResolvedLog;
use super::{Finding, Severity};
use crate::proto::raftpb::HardState;
use crate::wal::Location;

pub const BEYOND_LAST: &str = "raft.commit_beyond_last";
pub const TERM_BEHIND_LOG: &str = "raft.hardstate_term_behind_log";
pub const REFERENCE_COMMIT: &str =
    "Raft Fig. 2 (commitIndex ≤ last log index); TLA+ CommittedIsDurableInv; etcd 'tocommit(N) is out of range [lastIndex(M)]'";
pub const REFERENCE_TERM: &str = "Raft Fig. 2 (currentTerm ≥ the term of every entry in the log)";

pub fn check(
    member: &str,
    state: &HardState,
    log: &ResolvedLog,
    location: impl Fn() -> Location,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !log.last_known() {
        return findings;
    }
    let last = log.last_index();
    if state.commit > last {
        let mut at = location();
        at.raft_index = Some(state.commit);
        findings.push(Finding::new(
            BEYOND_LAST,
            Severity::Violation,
            member,
            at,
            Some(state.term),
            format!(
                "HardState commits index {} but the log persisted so far ends at {last}: committed entries are missing",
                state.commit
            ),
            REFERENCE_COMMIT,
        ));
    }
    if let Some(last_term) = log.last_term() {
        if state.term < last_term {
            let mut at = location();
            at.raft_index = Some(last);
            findings.push(Finding::new(
                TERM_BEHIND_LOG,
                Severity::Violation,
                member,
                at,
                Some(state.term),
                format!(
                    "HardState term {} is below the term {last_term} of the last entry ({last}) persisted before it",
                    state.term
                ),
                REFERENCE_TERM,
            ));
        }
    }
    findings
}
