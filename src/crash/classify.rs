//! Classification of each planned state: what etcd recovers from it (the prefix model's
//! evaluation, or the state's files read on the real path), then its outcome by the records it
//! lost against what was fsynced and written when the crash happened.

use std::collections::BTreeSet;

use super::evaluate::{eval_real_recovery, log_digest, RecoveryEval};
use super::history::{History, RecKind};
use super::member::StateResult;
use super::prefix_model::PrefixModel;
use super::recover::{heartbeat_panic, recover, DiskState, RealRecovery};
use super::states::{Effect, Planned, Spec};
use super::{FaultClass, Outcome};

/// What classification reads from the earlier phases.
pub(super) struct Evidence<'a> {
    pub history: &'a History,
    pub prefixes: &'a PrefixModel,
    /// Per prefix, the index through which its log agrees with the written log
    /// ([`super::prefix_model::agreement_limits`]).
    pub agreement_limits: &'a [u64],
    /// etcd's recovery of the files as captured (the uncrashed member).
    pub baseline: &'a RealRecovery,
    /// The written log's commit and last index.
    pub final_commit: u64,
    pub final_last: u64,
}

/// Classifies every planned state, in plan order. raft-rs is asked to confirm the "tocommit
/// out of range" panic for the first such state of each fault class only.
pub(super) fn classify(evidence: &Evidence<'_>, planned: &[Planned]) -> Vec<StateResult> {
    let mut tocommit_confirmed: BTreeSet<FaultClass> = BTreeSet::new();
    planned
        .iter()
        .map(|p| classify_state(evidence, p, &mut tocommit_confirmed))
        .collect()
}

/// One state's outcome: no WAL left (an undetected loss), refused (a violation under a crash,
/// corruption detected under a storage fault), a violation found in its recovery, or else by
/// the records it lost ([`judge_losses`]).
fn classify_state(
    evidence: &Evidence<'_>,
    p: &Planned,
    tocommit_confirmed: &mut BTreeSet<FaultClass>,
) -> StateResult {
    let prefixes = evidence.prefixes;
    let modelled = |k: usize| k >= prefixes.first_cut && k <= prefixes.record_count;
    let crash = p.class.is_crash();
    // A crash stops the writer at `written` records; a storage fault strikes the finished log,
    // whose commit the cluster has.
    let acked = if modelled(p.durable) {
        prefixes.at(p.durable).written_last
    } else {
        0
    };
    let known_commit = if crash && modelled(p.written) {
        prefixes.at(p.written).written_commit
    } else {
        evidence.final_commit
    };
    let mut r = StateResult {
        class: p.class,
        spec: p.spec.clone(),
        outcome: Outcome::Recovered,
        recovered_last: 0,
        held: 0,
        known_commit,
        acked,
        kind: None,
        detail: None,
    };
    let (eval, stop, repaired) = match recover_planned(evidence, p) {
        PlannedRecovery::NoWalLeft => {
            judge_no_wal_left(evidence, &mut r);
            return r;
        }
        PlannedRecovery::Booted {
            eval,
            stop,
            repaired,
        } => (eval, stop, repaired),
    };
    if let Some(reason) = &eval.refused {
        judge_refusal(reason, &mut r);
        return r;
    }
    r.recovered_last = eval.last_index;
    let stop = stop.unwrap_or(prefixes.record_count);
    r.held = eval
        .last_index
        .min(evidence.agreement_limits[stop.min(prefixes.record_count)]);
    if let Some((kind, message)) = &eval.violation {
        r.outcome = Outcome::Violation;
        r.kind = Some(kind);
        r.detail = Some(message.clone());
        return r;
    }
    judge_losses(
        evidence.history,
        p,
        stop,
        repaired,
        tocommit_confirmed,
        &mut r,
    );
    r
}

/// No `.wal` file left: etcd starts the member as a new one, every entry lost (an undetected
/// loss: nothing tells the member it had a log).
fn judge_no_wal_left(evidence: &Evidence<'_>, r: &mut StateResult) {
    let lost = evidence.history.segments.last();
    r.outcome = Outcome::UndetectedLoss;
    r.kind = Some("crash.no_wal_left");
    r.detail = Some(format!(
        "{} is gone and no .wal file is left: etcd would start this member as a new one (every entry through {} lost)",
        lost.map(|s| s.name.file_name.as_str()).unwrap_or("the WAL"),
        evidence.final_last
    ));
}

/// etcd refuses to start: a violation when a crash alone left the state (etcd must restart
/// from anything a crash leaves), corruption detected under a storage fault.
fn judge_refusal(reason: &str, r: &mut StateResult) {
    if r.class.is_crash() {
        r.outcome = Outcome::Violation;
        r.kind = Some("crash.refused_after_crash");
        r.detail = Some(format!(
            "etcd cannot restart from a state a crash can leave (no corruption involved): {reason}"
        ));
    } else {
        r.outcome = Outcome::Refused;
        r.kind = Some("crash.corruption_detected");
        r.detail = Some(reason.to_string());
    }
}

/// What etcd recovers from a planned state.
enum PlannedRecovery {
    /// No `.wal` file is left: etcd would start the member as a new one.
    NoWalLeft,
    /// etcd's boot result. `stop`: the written records the recovered log corresponds to (for
    /// loss accounting), none when etcd refuses; `repaired`: Repair truncated a torn tail.
    Booted {
        eval: RecoveryEval,
        stop: Option<usize>,
        repaired: bool,
    },
}

/// etcd's recovery of a planned state: the prefix model's evaluation where the state reduces
/// to a record prefix, else its files read on the real path.
fn recover_planned(evidence: &Evidence<'_>, p: &Planned) -> PlannedRecovery {
    let history = evidence.history;
    let prefixes = evidence.prefixes;
    match &p.effect {
        Effect::Refused(reason) => PlannedRecovery::Booted {
            eval: RecoveryEval {
                refused: Some(reason.clone()),
                ..Default::default()
            },
            stop: None,
            repaired: false,
        },
        Effect::Prefix { altered: true, .. } => PlannedRecovery::Booted {
            eval: recover_altered(history, &p.spec, evidence.baseline),
            stop: Some(prefixes.record_count),
            repaired: false,
        },
        Effect::Prefix { stop, repaired, .. } => {
            let eval = if *stop < prefixes.first_cut {
                // Only part of the first segment's header (crc, metadata, snapshot{0,0}) is
                // left, below the prefix model's first state: boot those records for real.
                let (real, _) = recover(&DiskState::prefix(history, *stop));
                let mut budget = 2;
                eval_real_recovery(history, &real, real.hard_state, &mut budget)
            } else {
                prefixes.at(*stop).clone()
            };
            PlannedRecovery::Booted {
                eval,
                stop: Some(*stop),
                repaired: *repaired,
            }
        }
        Effect::Real => {
            let (real, _) = recover(&real_state(history, &p.spec));
            if real.no_wal {
                return PlannedRecovery::NoWalLeft;
            }
            let mut budget = 2;
            let eval = eval_real_recovery(history, &real, real.hard_state, &mut budget);
            let stop = if real.refused.is_some() {
                None
            } else {
                Some(prefix_matching(prefixes, &real))
            };
            PlannedRecovery::Booted {
                eval,
                stop,
                repaired: false,
            }
        }
    }
}

/// A damaged record decoded as valid (bytes the CRC does not cover): what etcd makes of it
/// needs ReadAll's semantics, so the damaged files are read for real. Recovering anything but
/// the uncrashed member's state is a violation (`crash.corruption_accepted`).
fn recover_altered(history: &History, spec: &Spec, baseline: &RealRecovery) -> RecoveryEval {
    let (real, _) = recover(&real_state(history, spec));
    let mut budget = 2;
    let mut e = eval_real_recovery(history, &real, real.hard_state, &mut budget);
    let same = real.refused.is_none()
        && !real.no_wal
        && real.hard_state == baseline.hard_state
        && real.start_index == baseline.start_index
        && log_digest((0, 0), &real.hard_state, &real.entries)
            == log_digest((0, 0), &baseline.hard_state, &baseline.entries);
    if e.refused.is_none() && e.violation.is_none() && !same {
        e.violation = Some((
            "crash.corruption_accepted",
            format!(
                "etcd accepts the damaged record (the damage is in bytes the CRC does not cover) and recovers a different state: log ..={} with HardState {{term {}, vote {:x}, commit {}}} instead of ..={} with {{term {}, vote {:x}, commit {}}}",
                real.last_index(),
                real.hard_state.term,
                real.hard_state.vote,
                real.hard_state.commit,
                baseline.last_index(),
                baseline.hard_state.term,
                baseline.hard_state.vote,
                baseline.hard_state.commit
            ),
        ));
    }
    e
}

/// The outcome of a state etcd recovered without a violation, by the records after `stop` it
/// lost: fsynced ones lost silently are a violation under a crash (fsynced data persists) and
/// an undetected loss under a storage fault; only unsynced ones are an expected loss (never
/// acknowledged); none leaves the state recovered.
fn judge_losses(
    history: &History,
    p: &Planned,
    stop: usize,
    repaired: bool,
    tocommit_confirmed: &mut BTreeSet<FaultClass>,
    r: &mut StateResult,
) {
    let lost_synced = state_records(history, stop, p.durable.max(stop));
    let lost_any = state_records(history, stop, p.written.max(stop));
    if lost_synced == 0 {
        if lost_any > 0 {
            r.outcome = Outcome::ExpectedLoss;
        }
        return;
    }
    let what = format!(
        "{lost_synced} fsynced record(s) after record {stop} lost silently{} (recovered ..={}, fsynced ..={})",
        if repaired { " by Repair's truncation" } else { "" },
        r.recovered_last,
        r.acked
    );
    if p.class.is_crash() {
        r.outcome = Outcome::Violation;
        r.kind = Some("crash.fsynced_data_lost");
        r.detail = Some(what);
        return;
    }
    r.outcome = Outcome::UndetectedLoss;
    r.kind = Some("crash.undetected_storage_fault");
    let mut detail = what;
    // A leader's heartbeat carries commit min(its commit, the follower's match) (etcd raft's
    // sendHeartbeat); a commit beyond the recovered log makes raft-rs panic in commit_to.
    let tocommit = r.known_commit.min(r.acked);
    if tocommit > r.recovered_last {
        detail.push_str(&format!(
            "; on restart its leader (commit ≥ {}, match {}) sends commit {tocommit}: tocommit({tocommit}) is out of range [lastIndex({})]",
            r.known_commit, r.acked, r.recovered_last
        ));
        if tocommit_confirmed.insert(p.class) {
            if let Some(m) = confirm_tocommit(history, p, stop, tocommit) {
                detail.push_str(&format!(" — raft-rs: \"{m}\""));
            }
        }
    }
    r.detail = Some(detail);
}

/// Records that carry Raft state (entries, HardStates, snapshot records) in
/// `records[from..to]`.
fn state_records(history: &History, from: usize, to: usize) -> usize {
    history.records[from.min(to)..to]
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                RecKind::Entry(_) | RecKind::State(_) | RecKind::Snapshot(_)
            )
        })
        .count()
}

/// The files of a real-path state.
pub(crate) fn real_state(history: &History, spec: &Spec) -> DiskState {
    let mut state = DiskState::full(history);
    match spec {
        Spec::Snap { missing } => {
            if let Some(newest) = history.snaps.first() {
                if *missing {
                    state.snaps.retain(|(n, _)| *n != newest.file_name);
                } else if let Some(s) = state.snaps.iter_mut().find(|(n, _)| *n == newest.file_name)
                {
                    s.1 = s.1.slice(..s.1.len() / 2);
                }
            }
        }
        Spec::DropLastSegment => {
            state.segments.pop();
        }
        Spec::Flip { seg, at, bit } => {
            if let Some((_, bytes)) = state.segments.get_mut(*seg) {
                let mut v = bytes.to_vec();
                if let Some(b) = v.get_mut(*at as usize) {
                    *b ^= 1 << bit;
                }
                *bytes = v.into();
            }
        }
        Spec::Zeroed { seg, at } => {
            if let Some((_, bytes)) = state.segments.get_mut(*seg) {
                let mut v = bytes.to_vec();
                let lo = (*at as usize).min(v.len());
                let hi = (*at as usize + 512).min(v.len());
                v[lo..hi].fill(0);
                *bytes = v.into();
            }
        }
        _ => {}
    }
    state
}

/// The record prefix whose recovery equals a real-path recovery (by last index and commit).
fn prefix_matching(prefixes: &PrefixModel, real: &RealRecovery) -> usize {
    (prefixes.first_cut..=prefixes.record_count)
        .rev()
        .find(|&k| {
            let c = prefixes.at(k);
            c.refused.is_none()
                && c.written_last == real.last_index()
                && c.written_commit == real.hard_state.commit
        })
        .unwrap_or(prefixes.first_cut)
}

/// raft-rs's verdict when the member recovered to the first `stop` records gets a heartbeat
/// with `commit` from its leader.
fn confirm_tocommit(history: &History, p: &Planned, stop: usize, commit: u64) -> Option<String> {
    let state = match &p.effect {
        Effect::Real => real_state(history, &p.spec),
        _ => DiskState::prefix(history, stop),
    };
    let (real, _) = recover(&state);
    if real.refused.is_some() || real.no_wal {
        return None;
    }
    heartbeat_panic(
        history.node_id,
        (real.start_index, real.start_term, &real.conf_state),
        &real.hard_state,
        &real.entries,
        commit,
    )
}
