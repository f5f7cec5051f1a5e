//! One recovered state, judged: the checks etcd's boot result must pass before raft-rs sees it
//! (commit within the log, the HardState as written), then a raft-rs restart that applies the
//! committed log. Used by every phase of [`super::member`]: the prefix model, the uncrashed
//! member, the real-path cross-checks and the states read for real.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::replay::preflight::RestartState;
use crate::replay::restart::restart_and_apply;

use super::history::History;
use super::recover::{raw_restart_panic, RealRecovery};

/// etcd's recovery of one on-disk state (in the prefix model: the state holding the first `k`
/// records), and what raft-rs made of it.
#[derive(Clone, Debug, Default)]
pub struct RecoveryEval {
    pub refused: Option<String>,
    pub violation: Option<(&'static str, String)>,
    pub start_index: u64,
    pub snap: Option<usize>,
    pub last_index: u64,
    pub commit: u64,
    /// The writer's log and commit at this point (the uncrashed member): set where the prefix
    /// model evaluates a prefix itself, 0 where it reads the prefix for real.
    pub written_last: u64,
    pub written_commit: u64,
    pub applied: u64,
    pub conf_hash: u64,
}

/// The ConfState raft-rs ended with, as a comparable hash.
pub(super) fn conf_hash(cs: &ConfState) -> u64 {
    let mut hasher = DefaultHasher::new();
    cs.normalized().hash(&mut hasher);
    hasher.finish()
}

/// The recovered log (boot snapshot, HardState, every entry's index, term, type and data CRC),
/// as a comparable hash.
pub(super) fn log_digest(start: (u64, u64), hs: &HardState, entries: &[Entry]) -> u64 {
    let mut hasher = DefaultHasher::new();
    start.hash(&mut hasher);
    (hs.term, hs.vote, hs.commit).hash(&mut hasher);
    for e in entries {
        (e.index, e.term, e.r#type, crc32c::crc32c(e.data_bytes())).hash(&mut hasher);
    }
    hasher.finish()
}

/// The checks made on a recovered state before raft-rs sees it: what raft-rs would panic on,
/// and whether the recovered HardState is the one written.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_state(
    member: &str,
    start_index: u64,
    start_term: u64,
    conf: &ConfState,
    hs: &HardState,
    entries: &[Entry],
    written: &HardState,
    node_id: u64,
    raw_budget: &mut usize,
) -> Option<(&'static str, String)> {
    let _ = member;
    let last = entries.last().map(|e| e.index).unwrap_or(start_index);
    // A HardState behind the log's last term is a legal crash state (a Save writes its
    // entries before its HardState) and raft-rs restarts from it: not checked here.
    let raw = |budget: &mut usize| -> String {
        if *budget == 0 {
            return String::new();
        }
        *budget -= 1;
        raw_restart_panic(node_id, (start_index, start_term, conf), hs, entries)
            .map(|m| format!("; raft-rs: \"{m}\""))
            .unwrap_or_default()
    };
    if !hs.is_empty() {
        if hs.commit > last {
            return Some((
                "crash.commit_beyond_last",
                format!(
                    "recovered HardState commit {} is beyond the last recovered index {last}: committed entries lost (etcd: \"tocommit({}) is out of range [lastIndex({last})]\"){}",
                    hs.commit,
                    hs.commit,
                    raw(raw_budget)
                ),
            ));
        }
        if hs.commit < start_index {
            return Some((
                "crash.commit_below_snapshot",
                format!(
                    "recovered HardState commit {} is below the boot snapshot {start_index} (etcd #10219 shape){}",
                    hs.commit,
                    raw(raw_budget)
                ),
            ));
        }
    }
    if hs != written {
        return Some((
            "crash.hardstate_diverges",
            format!(
                "recovered HardState {{term {}, vote {:x}, commit {}}} differs from the one written {{term {}, vote {:x}, commit {}}}: term/vote lost (the segment read from has no state record)",
                hs.term, hs.vote, hs.commit, written.term, written.vote, written.commit
            ),
        ));
    }
    None
}

/// Full evaluation of a state recovered on the real path: checks, then a raft-rs restart from
/// the boot snapshot with every entry.
pub(super) fn eval_real_recovery(
    h: &History,
    real: &RealRecovery,
    written: HardState,
    raw_budget: &mut usize,
) -> RecoveryEval {
    let mut out = RecoveryEval {
        start_index: real.start_index,
        ..Default::default()
    };
    if let Some(r) = &real.refused {
        out.refused = Some(r.clone());
        return out;
    }
    if real.no_wal {
        out.refused = Some("no WAL left".into());
        return out;
    }
    out.last_index = real.last_index();
    out.commit = real.hard_state.commit;
    if let Some(v) = check_state(
        &h.member,
        real.start_index,
        real.start_term,
        &real.conf_state,
        &real.hard_state,
        &real.entries,
        &written,
        h.node_id,
        raw_budget,
    ) {
        out.violation = Some(v);
        return out;
    }
    let last_term = real
        .entries
        .last()
        .map(|e| e.term)
        .unwrap_or(real.start_term);
    let restart_hs = lift_term(&real.hard_state, last_term);
    if restart_hs != real.hard_state {
        if let Some(panic) = raw_restart_panic(
            h.node_id,
            (real.start_index, real.start_term, &real.conf_state),
            &real.hard_state,
            &real.entries,
        ) {
            out.violation = Some((
                "crash.raft_refuses_restart",
                format!("raft-rs refuses to restart: {panic}"),
            ));
            return out;
        }
    }
    let state = RestartState {
        member: &h.member,
        snapshot_index: real.start_index,
        snapshot_term: real.start_term,
        conf_state: real.conf_state.clone(),
        hard_state: restart_hs,
        entries: &real.entries,
    };
    let outcome = restart_and_apply(&state, h.node_id, u64::MAX, &mut |_| {});
    if let Some(f) = outcome.findings.first() {
        out.violation = Some((f.kind, f.message.clone()));
        return out;
    }
    out.applied = outcome.applied_index;
    out.conf_hash = conf_hash(&outcome.conf_state);
    out
}

/// A Save writes its entries before its HardState, so a crash between them leaves a HardState
/// behind the last entry's term: legal, and raft-rs restarts from it (checked with the state as
/// it is). The pre-flight of the replay module asks for currentTerm ≥ every entry's term, so the
/// apply replay runs with the term lifted to the log's (vote cleared: no vote in that term).
pub(super) fn lift_term(hs: &HardState, last_term: u64) -> HardState {
    if hs.is_empty() || hs.term >= last_term {
        return *hs;
    }
    HardState {
        term: last_term,
        vote: 0,
        commit: hs.commit,
    }
}
