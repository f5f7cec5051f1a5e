//! The prefix model: etcd's recovery of the first `k` records for every `k` from the first cut
//! (the first segment's header) to the whole log, by one incremental fold ([`super::fold`]) with
//! raft-rs restarted from a checkpoint carried from one prefix to the next, so all record
//! boundaries cost O(n) restarts of O(new entries) each.

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::raftpb::{ConfState, HardState};
use crate::replay::preflight::RestartState;
use crate::replay::restart::restart_and_apply;

use super::evaluate::{
    check_state, conf_hash, eval_real_recovery, lift_term, log_digest, RecoveryEval,
};
use super::fold::{Fold, Recovery};
use super::history::History;
use super::recover::{raw_restart_panic, recover, DiskState, RealRecovery};

/// What the model recovered at a cross-check point, to compare with the real path.
#[derive(Clone, Copy, Debug)]
pub(super) struct ModelDigest {
    /// [`log_digest`] of the recovered boot snapshot, HardState and entries.
    pub log: u64,
    /// The index raft-rs applied through, and its ConfState's hash.
    pub applied: u64,
    pub conf_hash: u64,
}

/// Every prefix's evaluation, and what the fold saw on the way.
pub(super) struct PrefixModel {
    /// The shortest prefix modelled: the first segment's header ([`History::first_cut`]).
    pub first_cut: usize,
    /// The longest: every record written.
    pub record_count: usize,
    /// `evals[k - first_cut]` is prefix `k`'s, for `k` in `first_cut..=record_count` (none
    /// when the log ends inside the first header).
    evals: Vec<RecoveryEval>,
    /// The prefixes to cross-check against the real path: the points chosen before the pass
    /// plus those it triggered (a new boot snapshot, a violation or a refusal).
    pub cross_check_points: BTreeSet<usize>,
    /// The model's recovery at each cross-check point it did not refuse.
    pub digests: BTreeMap<usize, ModelDigest>,
    /// `(record, index)` of every entry record that overwrote entries (for log agreement).
    pub overwrite_events: Vec<(usize, u64)>,
}

impl PrefixModel {
    /// Prefix `k`'s evaluation; `k` must be in `first_cut..=record_count`.
    pub fn at(&self, k: usize) -> &RecoveryEval {
        &self.evals[k - self.first_cut]
    }

    pub fn at_mut(&mut self, k: usize) -> &mut RecoveryEval {
        &mut self.evals[k - self.first_cut]
    }

    /// The whole log's evaluation (none when it ends inside the first header).
    pub fn whole_log(&self) -> Option<&RecoveryEval> {
        (self.record_count >= self.first_cut).then(|| self.at(self.record_count))
    }
}

/// The fold pass: evaluates every prefix once, in order. Cross-checks the real path later at
/// `cross_check_points` plus up to `trigger_cap` prefixes where the model's state changes shape
/// (a new boot snapshot) or fails (a violation, a refusal); records the model's digest at each.
pub(super) fn evaluate_prefixes(
    history: &History,
    mut cross_check_points: BTreeSet<usize>,
    trigger_cap: usize,
) -> PrefixModel {
    let first_cut = history.first_cut();
    let record_count = history.records.len();
    let mut evals: Vec<RecoveryEval> =
        Vec::with_capacity(record_count.saturating_sub(first_cut) + 1);
    let mut digests: BTreeMap<usize, ModelDigest> = BTreeMap::new();
    let mut overwrite_events = Vec::new();
    if record_count >= first_cut {
        let mut fold = Fold::new(history);
        let mut evaluator = PrefixEvaluator {
            history,
            checkpoint: None,
            raw_budget: 8,
        };
        let mut triggered = 0usize;
        let mut last_snap: Option<Option<usize>> = None;
        fold.advance_to(first_cut);
        loop {
            let rec = fold.recovery();
            let eval = evaluator.eval(&fold, &rec);
            let k = fold.k;
            let trigger = triggered < trigger_cap
                && (last_snap != Some(eval.snap)
                    || eval.violation.is_some()
                    || eval.refused.is_some());
            if trigger && !cross_check_points.contains(&k) {
                cross_check_points.insert(k);
                triggered += 1;
            }
            last_snap = Some(eval.snap);
            if cross_check_points.contains(&k) && rec.refused.is_none() {
                let log = log_digest(
                    (rec.start_index, rec.start_term),
                    &rec.hard_state,
                    rec.entries,
                );
                digests.insert(
                    k,
                    ModelDigest {
                        log,
                        applied: eval.applied,
                        conf_hash: eval.conf_hash,
                    },
                );
            }
            evals.push(eval);
            if fold.k >= record_count {
                break;
            }
            fold.advance();
        }
        overwrite_events = fold.overwrite_events.clone();
    }
    PrefixModel {
        first_cut,
        record_count,
        evals,
        cross_check_points,
        digests,
        overwrite_events,
    }
}

/// Log agreement: `limits[k]` is the highest index through which prefix `k`'s entries agree
/// with the member's written log. An entry record written after the prefix (`records[k..]`)
/// that overwrote index `i` (a new leader's entries replacing uncommitted ones, Raft §5.3)
/// caps it at `i − 1`; with no such overwrite it is `u64::MAX`. One slot per `k` in
/// `0..=record_count`.
pub(super) fn agreement_limits(record_count: usize, overwrite_events: &[(usize, u64)]) -> Vec<u64> {
    let mut limits = vec![u64::MAX; record_count + 1];
    let mut events = overwrite_events.iter().rev().peekable();
    let mut current = u64::MAX;
    for k in (0..=record_count).rev() {
        while let Some((pos, index)) = events.peek() {
            if *pos >= k {
                current = current.min(index.saturating_sub(1));
                events.next();
            } else {
                break;
            }
        }
        limits[k] = current;
    }
    limits
}

/// A raft-rs state to restart the next prefix from: the applied index of an earlier prefix, its
/// term and the ConfState raft-rs had there.
struct Checkpoint {
    index: u64,
    term: u64,
    conf: ConfState,
}

/// Evaluates prefixes in ascending order, restarting raft-rs from the previous prefix's applied
/// state when that state is still on the new prefix's log at or below its commit (so each restart
/// applies only the new entries); otherwise from the prefix's boot snapshot.
struct PrefixEvaluator<'h> {
    history: &'h History,
    checkpoint: Option<Checkpoint>,
    /// raft-rs's own panic text is attached to at most this many violations (it costs a full
    /// restart each).
    raw_budget: usize,
}

impl<'h> PrefixEvaluator<'h> {
    /// etcd's recovery of the prefix `fold` stands at, checked and restarted in raft-rs.
    fn eval(&mut self, fold: &Fold<'_>, rec: &Recovery<'_>) -> RecoveryEval {
        let h = self.history;
        let mut out = RecoveryEval {
            start_index: rec.start_index,
            snap: rec.snap,
            written_last: fold.last_index(),
            written_commit: fold.hard_state().commit,
            ..Default::default()
        };
        if let Some(reason) = &rec.refused {
            out.refused = Some(reason.clone());
            self.checkpoint = None;
            return out;
        }
        if rec.inexact {
            // An overwrite at or below the boot snapshot: read this state for real.
            let (real, _) = recover(&DiskState::prefix(h, fold.k));
            return self.eval_real(&real, rec.written_hard_state);
        }
        let hs = rec.hard_state;
        out.last_index = rec.last_index();
        out.commit = hs.commit;
        if let Some(v) = check_state(
            &h.member,
            rec.start_index,
            rec.start_term,
            &rec.conf_state,
            &hs,
            rec.entries,
            &rec.written_hard_state,
            h.node_id,
            &mut self.raw_budget,
        ) {
            out.violation = Some(v);
            self.checkpoint = None;
            return out;
        }
        let cp = self.checkpoint_for(rec, &hs);
        let tail_from = rec.entries.partition_point(|e| e.index <= cp.index);
        let tail = &rec.entries[tail_from..];
        let restart_hs = lift_term(&hs, rec.last_term());
        if restart_hs != hs {
            // raft-rs itself must accept the state as it is on disk.
            if let Some(panic) =
                raw_restart_panic(h.node_id, (cp.index, cp.term, &cp.conf), &hs, tail)
            {
                out.violation = Some((
                    "crash.raft_refuses_restart",
                    format!("raft-rs refuses to restart: {panic}"),
                ));
                self.checkpoint = None;
                return out;
            }
        }
        let state = RestartState {
            member: &h.member,
            snapshot_index: cp.index,
            snapshot_term: cp.term,
            conf_state: cp.conf.clone(),
            hard_state: restart_hs,
            entries: tail,
        };
        let outcome = restart_and_apply(&state, h.node_id, u64::MAX, &mut |_| {});
        if let Some(f) = outcome.findings.first() {
            out.violation = Some((f.kind, f.message.clone()));
            self.checkpoint = None;
            return out;
        }
        out.applied = outcome.applied_index;
        out.conf_hash = conf_hash(&outcome.conf_state);
        let term = rec.term_at(outcome.applied_index).unwrap_or(0);
        self.checkpoint = Some(Checkpoint {
            index: outcome.applied_index,
            term,
            conf: outcome.conf_state,
        });
        out
    }

    /// The checkpoint to restart `rec` from: the previous prefix's applied state while it is
    /// still in `rec`'s log (at or above the boot snapshot, at or below the commit, same term),
    /// else `rec`'s boot snapshot.
    fn checkpoint_for(&mut self, rec: &Recovery<'_>, hs: &HardState) -> &Checkpoint {
        let effective_commit = if hs.is_empty() {
            rec.start_index
        } else {
            hs.commit
        };
        let usable = self.checkpoint.as_ref().is_some_and(|c| {
            c.index >= rec.start_index
                && c.index <= effective_commit
                && rec.term_at(c.index) == Some(c.term)
        });
        if !usable {
            self.checkpoint = Some(Checkpoint {
                index: rec.start_index,
                term: rec.start_term,
                conf: rec.conf_state.clone(),
            });
        }
        self.checkpoint.as_ref().expect("set above")
    }

    /// A prefix the fold cannot model exactly, read on the real path.
    fn eval_real(&mut self, real: &RealRecovery, written: HardState) -> RecoveryEval {
        self.checkpoint = None;
        eval_real_recovery(self.history, real, written, &mut self.raw_budget)
    }
}
