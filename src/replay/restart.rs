//! Restart a member in raft-rs exactly as etcd restarts it (`ApplySnapshot` → `Append` →
//! `SetHardState` → `RestartNode` with applied = snapshot index), then apply every committed
//! entry in order: conf changes through `apply_conf_change` (etcd numbering translated), all
//! entries handed to the caller's state machine.

use super::kinds;
use prost::Message;
use raft::eraftpb;
use raft::{RawNode, Storage};

use super::preflight::{preflight_log, LogSummary, RestartState};
use super::storage::LogStorage;
use super::stream::EntryStream;
use super::{discard_logger, replay_config, run_guarded};
use crate::check::{Finding, Severity};
use crate::proto::raftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType};
use crate::proto::translate;
use crate::wal::Location;

#[derive(Clone, Debug)]
pub struct RestartOutcome {
    /// The last entry applied (the snapshot index when none was).
    pub applied_index: u64,
    /// raft-rs's configuration after the last applied conf change.
    pub conf_state: ConfState,
    pub conf_changes_applied: u64,
    pub entries_applied: u64,
    /// Whether raft-rs accepted the state (no pre-flight finding, no panic).
    pub started: bool,
    pub findings: Vec<Finding>,
}

fn violation(
    member: &str,
    kind: &'static str,
    raft_index: Option<u64>,
    message: String,
    reference: &'static str,
) -> Finding {
    Finding {
        kind,
        severity: Severity::Violation,
        member: member.to_string(),
        location: Location {
            segment: None,
            offset: None,
            raft_index,
        },
        term: None,
        message,
        reference,
    }
}

/// Where the entries of a restart come from.
pub enum LogSource<'s, 'a> {
    /// `RestartState::entries`, held in memory.
    Held,
    /// Streamed from the WAL in index order, raft-rs answered from the stream's digests
    /// (`RestartState::entries` is not looked at). On a stream failure the apply stops there;
    /// the stream says why ([`EntryStream::failed`]).
    Stream(&'s mut EntryStream<'a>),
}

/// Restart `state` in raft-rs as member `node_id` and apply committed entries up to
/// `apply_through` (inclusive), calling `apply` for each one in order.
pub fn restart_and_apply(
    state: &RestartState<'_>,
    node_id: u64,
    apply_through: u64,
    apply: &mut dyn FnMut(&Entry),
) -> RestartOutcome {
    restart_and_apply_from(state, LogSource::Held, node_id, apply_through, apply)
}

/// [`restart_and_apply`] with the entries from `source`.
pub fn restart_and_apply_from(
    state: &RestartState<'_>,
    mut source: LogSource<'_, '_>,
    node_id: u64,
    apply_through: u64,
    apply: &mut dyn FnMut(&Entry),
) -> RestartOutcome {
    if let LogSource::Stream(stream) = &mut source {
        if stream.log().base_index != state.snapshot_index {
            stream.refuse(format!(
                "the digests start after index {}, the restart at snapshot index {}",
                stream.log().base_index,
                state.snapshot_index
            ));
            return RestartOutcome {
                applied_index: state.snapshot_index,
                conf_state: state.conf_state.clone(),
                conf_changes_applied: 0,
                entries_applied: 0,
                started: false,
                findings: Vec::new(),
            };
        }
    }
    let summary = match &source {
        LogSource::Held => LogSummary::of_entries(state.entries),
        LogSource::Stream(stream) => {
            let log = stream.log();
            LogSummary {
                first_index: (!log.is_empty()).then(|| log.first_index()),
                last: log
                    .last_term()
                    .filter(|_| !log.is_empty())
                    .map(|t| (log.last_index(), t)),
                breaks: Vec::new(),
            }
        }
    };
    let mut outcome = RestartOutcome {
        applied_index: state.snapshot_index,
        conf_state: state.conf_state.clone(),
        conf_changes_applied: 0,
        entries_applied: 0,
        started: false,
        findings: preflight_log(state, &summary),
    };
    if outcome.findings.iter().any(|f| f.severity.is_failure()) {
        return outcome;
    }
    // raft-rs reads the decoded log in place (see `storage`): the same state MemStorage held
    // after apply_snapshot / set_conf_state + append + set_hardstate, without copying the log.
    let (hard_state, conf_state) = (
        translate::hard_state(&state.hard_state),
        translate::conf_state(&state.conf_state),
    );
    let storage = match &source {
        LogSource::Held => LogStorage::new(
            hard_state,
            conf_state,
            state.snapshot_index,
            state.snapshot_term,
            state.entries,
        ),
        LogSource::Stream(stream) => LogStorage::over_digests(
            hard_state,
            conf_state,
            state.snapshot_index,
            state.snapshot_term,
            stream.log(),
        ),
    };
    let storage = match storage {
        Ok(storage) => storage,
        Err((index, e)) => {
            outcome.findings.push(violation(
                state.member,
                kinds::UNKNOWN_ENTRY_TYPE,
                Some(index),
                e.to_string(),
                "etcd raftpb.EntryType",
            ));
            return outcome;
        }
    };
    let config = replay_config(node_id.max(1), state.snapshot_index);
    let member = state.member;
    let first_index = state.snapshot_index + 1;
    let result = run_guarded(|| {
        let mut node =
            RawNode::new(&config, storage, &discard_logger()).map_err(|e| e.to_string())?;
        let mut local = outcome.clone();
        local.started = true;
        let mut handle = |node: &mut RawNode<LogStorage<'_>>,
                          committed: Vec<eraftpb::Entry>,
                          local: &mut RestartOutcome|
         -> bool {
            for raft_entry in committed {
                if raft_entry.index > apply_through {
                    return false;
                }
                let held;
                let streamed;
                let entry = match &mut source {
                    LogSource::Held => {
                        held = state.entries.get((raft_entry.index - first_index) as usize);
                        held
                    }
                    LogSource::Stream(stream) => match stream.entry(raft_entry.index) {
                        Ok(entry) => {
                            streamed = entry;
                            streamed.as_ref()
                        }
                        // The caller falls back to the held entries (see `replay::stream`).
                        Err(_) => return false,
                    },
                };
                let Some(entry) = entry else {
                    local.findings.push(violation(
                        member,
                        kinds::APPLIED_UNKNOWN_ENTRY,
                        Some(raft_entry.index),
                        "raft-rs applied an entry the log does not hold".into(),
                        "raft-rs RawNode committed_entries",
                    ));
                    return false;
                };
                apply_membership(node, entry, member, local);
                apply(entry);
                local.applied_index = entry.index;
                local.entries_applied += 1;
            }
            true
        };
        while node.has_ready() {
            let mut ready = node.ready();
            let committed = ready.take_committed_entries();
            if !handle(&mut node, committed, &mut local) {
                break;
            }
            let mut light = node.advance(ready);
            let committed = light.take_committed_entries();
            if !handle(&mut node, committed, &mut local) {
                break;
            }
            node.advance_apply();
        }
        local.conf_state = translate::conf_state_from_raft(&node.raft.prs().conf().to_conf_state());
        Ok::<RestartOutcome, String>(local)
    });
    match result {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => {
            outcome.findings.push(violation(
                member,
                kinds::RESTART_REFUSED,
                None,
                error,
                "raft-rs RawNode::new",
            ));
            outcome
        }
        Err(panic) => {
            outcome.findings.push(violation(
                member,
                kinds::PANIC,
                None,
                format!("raft-rs panicked: {panic}"),
                "raft-rs fatal!/panic on invalid state",
            ));
            outcome
        }
    }
}

/// Applies a conf-change entry to raft-rs's configuration, as etcd's apply loop does.
fn apply_membership<S: Storage>(
    node: &mut RawNode<S>,
    entry: &Entry,
    member: &str,
    outcome: &mut RestartOutcome,
) {
    let result = match EntryType::try_from(entry.r#type) {
        Ok(EntryType::EntryConfChange) => match ConfChange::decode(entry.data_bytes()) {
            Ok(cc) => match translate::conf_change(&cc) {
                Ok(Some(raft_cc)) => {
                    Some(node.apply_conf_change(&raft_cc).map_err(|e| e.to_string()))
                }
                Ok(None) => None, // UpdateNode: membership attributes only.
                Err(e) => Some(Err(e.to_string())),
            },
            Err(e) => Some(Err(format!("conf change does not decode: {e}"))),
        },
        Ok(EntryType::EntryConfChangeV2) => match ConfChangeV2::decode(entry.data_bytes()) {
            Ok(cc) => match translate::conf_change_v2(&cc) {
                Ok(Some(raft_cc)) => {
                    Some(node.apply_conf_change(&raft_cc).map_err(|e| e.to_string()))
                }
                Ok(None) => None, // a simple change of one UpdateNode: attributes only.
                Err(e) => Some(Err(e.to_string())),
            },
            Err(e) => Some(Err(format!("conf change v2 does not decode: {e}"))),
        },
        _ => None,
    };
    match result {
        Some(Ok(cs)) => {
            outcome.conf_state = translate::conf_state_from_raft(&cs);
            outcome.conf_changes_applied += 1;
        }
        Some(Err(error)) => outcome.findings.push(violation(
            member,
            kinds::CONF_CHANGE_REJECTED,
            Some(entry.index),
            format!("raft-rs rejects the committed conf change: {error} (etcd panics applying it)"),
            "Raft §6 / raft-rs confchange::Changer",
        )),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::HardState;
    use bytes::Bytes;

    fn conf_entry(index: u64, change_type: i32, node_id: u64) -> Entry {
        let cc = ConfChange {
            id: 0,
            r#type: change_type,
            node_id,
            context: None,
        };
        Entry {
            r#type: 1,
            term: 1,
            index,
            data: Some(Bytes::from(cc.encode_to_vec())),
        }
    }

    /// A member restarting from the beginning of its log (no snapshot).
    fn from_start(log: &[Entry], hard_state: HardState) -> RestartState<'_> {
        RestartState {
            member: "m",
            snapshot_index: 0,
            snapshot_term: 0,
            conf_state: ConfState::default(),
            hard_state,
            entries: log,
        }
    }

    fn bootstrap_log() -> Vec<Entry> {
        // etcd's bootstrap: one AddNode per initial member at term 1, then a learner and data.
        let mut log = vec![
            conf_entry(1, 0, 1),
            conf_entry(2, 0, 2),
            conf_entry(3, 0, 3),
        ];
        log.push(Entry {
            r#type: 0,
            term: 2,
            index: 4,
            data: None,
        });
        log.push(conf_entry(5, 3, 4)); // etcd AddLearnerNode (3)
        log.push(conf_entry(6, 2, 2)); // etcd UpdateNode (2): not a membership change
        log.push(conf_entry(7, 0, 4)); // promote the learner
        log.push(conf_entry(8, 1, 3)); // remove member 3
        log
    }

    #[test]
    fn replays_etcd_conf_changes_with_etcd_numbering() {
        let log = bootstrap_log();
        let state = from_start(
            &log,
            HardState {
                term: 2,
                vote: 1,
                commit: 8,
            },
        );
        let mut applied = Vec::new();
        let outcome = restart_and_apply(&state, 1, u64::MAX, &mut |e| applied.push(e.index));
        assert!(outcome.findings.is_empty(), "{:?}", outcome.findings);
        assert_eq!(applied, (1..=8).collect::<Vec<_>>());
        let mut voters = outcome.conf_state.voters.clone();
        voters.sort();
        assert_eq!(voters, vec![1, 2, 4]);
        assert!(outcome.conf_state.learners.is_empty());
        assert_eq!(
            outcome.conf_changes_applied, 6,
            "UpdateNode is not applied to raft-rs"
        );
    }

    #[test]
    fn apply_stops_at_the_requested_index() {
        let log = bootstrap_log();
        let state = from_start(
            &log,
            HardState {
                term: 2,
                vote: 1,
                commit: 8,
            },
        );
        let outcome = restart_and_apply(&state, 1, 5, &mut |_| {});
        assert_eq!(outcome.applied_index, 5);
        assert_eq!(outcome.conf_state.learners, vec![4]);
    }

    #[test]
    fn commit_beyond_last_index_is_a_finding_not_a_panic() {
        let log = bootstrap_log();
        let state = from_start(
            &log,
            HardState {
                term: 2,
                vote: 1,
                commit: 12,
            },
        );
        let outcome = restart_and_apply(&state, 1, u64::MAX, &mut |_| {});
        assert!(!outcome.started);
        assert_eq!(
            outcome.findings[0].kind,
            crate::check::commit_boundary::BEYOND_LAST
        );
        assert_eq!(outcome.findings[0].location.raft_index, Some(12));
    }

    #[test]
    fn invalid_conf_change_is_a_finding() {
        // Removing the only voter: raft-rs refuses ("removed all voters").
        let log = vec![conf_entry(1, 0, 1), conf_entry(2, 1, 1)];
        let state = from_start(
            &log,
            HardState {
                term: 1,
                vote: 1,
                commit: 2,
            },
        );
        let outcome = restart_and_apply(&state, 1, u64::MAX, &mut |_| {});
        assert!(
            outcome
                .findings
                .iter()
                .any(|f| f.kind == kinds::CONF_CHANGE_REJECTED && f.location.raft_index == Some(2)),
            "{:?}",
            outcome.findings
        );
    }
}
