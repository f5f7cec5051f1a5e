//! Checks made before handing state to raft-rs, which would otherwise panic (`fatal!`) inside
//! `RawNode::new`: "hs.commit {} is out of range [{}, {}]", "invalid restore", …

use super::kinds;
use crate::check::{Finding, Severity};
use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::wal::Location;

/// What a member restarts from: the snapshot it boots from, its last HardState and its entries.
pub struct RestartState<'a> {
    pub member: &'a str,
    pub snapshot_index: u64,
    pub snapshot_term: u64,
    pub conf_state: ConfState,
    pub hard_state: HardState,
    /// Entries with index > snapshot_index, contiguous.
    pub entries: &'a [Entry],
}

fn finding(
    state: &RestartState<'_>,
    kind: &'static str,
    raft_index: u64,
    message: String,
    reference: &'static str,
) -> Finding {
    Finding {
        kind,
        severity: Severity::Violation,
        member: state.member.to_string(),
        location: Location {
            segment: None,
            offset: None,
            raft_index: Some(raft_index),
        },
        term: Some(state.hard_state.term),
        message,
        reference,
    }
}

fn warning(mut finding: Finding) -> Finding {
    finding.severity = Severity::Warning;
    finding
}

/// What the pre-flight checks need of the log: its first entry, its last (index, term) and
/// every break in its contiguity, as (index before, index after).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    pub first_index: Option<u64>,
    pub last: Option<(u64, u64)>,
    pub breaks: Vec<(u64, u64)>,
}

impl LogSummary {
    pub fn of_entries(entries: &[Entry]) -> LogSummary {
        LogSummary {
            first_index: entries.first().map(|e| e.index),
            last: entries.last().map(|e| (e.index, e.term)),
            breaks: entries
                .windows(2)
                .filter(|p| p[1].index != p[0].index + 1)
                .map(|p| (p[0].index, p[1].index))
                .collect(),
        }
    }
}

/// Every reason raft-rs 0.7 would refuse (panic on) this state. Empty means it is safe to start.
pub fn preflight(state: &RestartState<'_>) -> Vec<Finding> {
    preflight_log(state, &LogSummary::of_entries(state.entries))
}

/// [`preflight`] with the log given by its summary (`state.entries` is not looked at).
pub fn preflight_log(state: &RestartState<'_>, log: &LogSummary) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (last_index, last_term) = log
        .last
        .unwrap_or((state.snapshot_index, state.snapshot_term));
    if let Some(first) = log.first_index {
        if first != state.snapshot_index + 1 {
            findings.push(finding(
                state,
                kinds::LOG_NOT_CONTIGUOUS,
                first,
                format!(
                    "first entry {} does not follow the snapshot index {}",
                    first, state.snapshot_index
                ),
                "Raft §5.3 Log Matching; raft-rs MemStorage::append",
            ));
        }
    }
    for &(before, after) in &log.breaks {
        findings.push(finding(
            state,
            kinds::LOG_NOT_CONTIGUOUS,
            after,
            format!("entry {after} follows entry {before}"),
            "Raft §5.3 Log Matching; raft-rs MemStorage::append",
        ));
    }
    let hs = &state.hard_state;
    if let Some(first) = state.entries.first() {
        if first.index != state.snapshot_index + 1 {
            findings.push(finding(
                state,
                kinds::LOG_NOT_CONTIGUOUS,
                first.index,
                format!(
                    "first entry {} does not follow the snapshot index {}",
                    first.index, state.snapshot_index
                ),
                "Raft §5.3 Log Matching; raft-rs MemStorage::append",
            ));
        }
    }
    for pair in state.entries.windows(2) {
        if pair[1].index != pair[0].index + 1 {
            findings.push(finding(
                state,
                kinds::LOG_NOT_CONTIGUOUS,
                pair[1].index,
                format!("entry {} follows entry {}", pair[1].index, pair[0].index),
                "Raft §5.3 Log Matching; raft-rs MemStorage::append",
            ));
        }
    }
    if !hs.is_empty() {
        if hs.commit > last_index {
            findings.push(finding(
                state,
                crate::check::commit_boundary::BEYOND_LAST,
                hs.commit,
                format!(
                    "HardState commit {} is beyond the last index {last_index}: committed entries were lost (raft-rs: hs.commit out of range; etcd: tocommit out of range)",
                    hs.commit
                ),
                "Raft §5.4.1/Fig. 2 (commitIndex ≤ log); TLA+ CommittedIndexesAreInLog",
            ));
        }
        if hs.commit < state.snapshot_index {
            findings.push(finding(
                state,
                kinds::COMMIT_BELOW_SNAPSHOT,
                hs.commit,
                format!(
                    "HardState commit {} is below the snapshot index {}",
                    hs.commit, state.snapshot_index
                ),
                "etcd #10219 (HardState must be synced with the snapshot)",
            ));
        }
        if hs.term < last_term {
            // Legal after a crash between a Save's entries and its HardState (entries are written
            // first), and raft-rs starts from it: a warning, not a reason to refuse.
            findings.push(warning(finding(
                state,
                crate::check::commit_boundary::TERM_BEHIND_LOG,
                last_index,
                format!(
                    "HardState term {} is below the last entry's term {last_term}",
                    hs.term
                ),
                "Raft Fig. 2: currentTerm ≥ term of every log entry",
            )));
        }
    }
    let cs = &state.conf_state;
    for id in cs.voters.iter().chain(&cs.voters_outgoing) {
        if cs.learners.contains(id) {
            findings.push(finding(
                state,
                crate::check::joint::VOTER_AND_LEARNER,
                state.snapshot_index,
                format!("member {id:x} is both a voter and a learner in the snapshot's ConfState"),
                "raft-rs confchange::restore check_invariants",
            ));
        }
    }
    if cs.voters_outgoing.is_empty() && (!cs.learners_next.is_empty() || cs.auto_leave) {
        findings.push(finding(
            state,
            crate::check::joint::INVALID_CONF_STATE,
            state.snapshot_index,
            "learners_next / auto_leave set outside a joint configuration".into(),
            "raft-rs confchange check_invariants",
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_start(entries: &[Entry], hard_state: HardState) -> RestartState<'_> {
        RestartState {
            member: "m",
            snapshot_index: 0,
            snapshot_term: 0,
            conf_state: ConfState::default(),
            hard_state,
            entries,
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range
            .map(|i| Entry {
                r#type: 0,
                term: 1,
                index: i,
                data: None,
            })
            .collect()
    }

    #[test]
    fn commit_beyond_last_is_a_violation_at_the_commit_index() {
        let ents = entries(1..=5);
        let state = from_start(
            &ents,
            HardState {
                term: 1,
                vote: 1,
                commit: 9,
            },
        );
        let findings = preflight(&state);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, crate::check::commit_boundary::BEYOND_LAST);
        assert_eq!(findings[0].location.raft_index, Some(9));
    }

    #[test]
    fn clean_state_passes() {
        let ents = entries(1..=5);
        let state = from_start(
            &ents,
            HardState {
                term: 1,
                vote: 1,
                commit: 5,
            },
        );
        assert!(preflight(&state).is_empty());
    }
}
