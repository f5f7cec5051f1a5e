//! One member: plan the states, evaluate etcd's recovery of every record prefix once (the fold
//! pass, with checkpointed raft-rs restarts), classify each state, cross-check the model against
//! the real recovery path, and replay the KV model at the cross-check points.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::fsio::ReadOnlyFs;
use crate::mvcc::MvccStore;
use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::replay::kv::replay_kv;
use crate::replay::preflight::RestartState;
use crate::replay::restart::restart_and_apply;

use super::fold::{Fold, Recovery};
use super::history::{History, RecKind};
use super::recover::{
    heartbeat_panic, raw_restart_panic, read_from_start, recover, DiskState, RealRecovery,
};
use super::states::{plan, Effect, Planned, Spec};
use super::{FaultClass, OnlyState, Options, Outcome};

/// etcd's recovery of the state holding the first `k` records, and what raft-rs made of it.
#[derive(Clone, Debug, Default)]
pub struct CutEval {
    pub refused: Option<String>,
    pub violation: Option<(&'static str, String)>,
    pub start_index: u64,
    pub snap: Option<usize>,
    pub last_index: u64,
    pub commit: u64,
    /// The writer's log and commit at this point (the uncrashed member).
    pub written_last: u64,
    pub written_commit: u64,
    pub applied: u64,
    pub conf_hash: u64,
}

#[derive(Clone, Debug)]
pub struct StateResult {
    pub class: FaultClass,
    pub spec: Spec,
    pub outcome: Outcome,
    /// The recovered log's last index (0 when refused).
    pub recovered_last: u64,
    /// Entries held after recovery that agree with the member's written log (for quorum checks).
    pub held: u64,
    /// The commit the member knew when it crashed (the cluster's is at least this).
    pub known_commit: u64,
    /// The last entry the member had fsynced (acknowledged) when it crashed.
    pub acked: u64,
    pub kind: Option<&'static str>,
    pub detail: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CrossCheck {
    pub k: usize,
    pub ok: bool,
    pub message: String,
    pub kv_checked: bool,
}

pub struct MemberRun {
    pub history: History,
    pub results: Vec<StateResult>,
    pub cross_checks: Vec<CrossCheck>,
    /// The uncrashed member: etcd's recovery of the files as captured.
    pub baseline: RealRecovery,
    pub baseline_finding: Option<(&'static str, String)>,
    pub final_commit: u64,
    pub final_last: u64,
    /// Voters after applying the whole log (raft-rs's configuration).
    pub voters: Vec<u64>,
    pub elapsed: Duration,
    pub notes: Vec<String>,
}

impl MemberRun {
    pub fn tally(&self) -> BTreeMap<(FaultClass, Outcome), usize> {
        let mut t = BTreeMap::new();
        for r in &self.results {
            *t.entry((r.class, r.outcome)).or_insert(0) += 1;
        }
        t
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    pub fn record_boundaries_checked(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.class == FaultClass::RecordBoundary)
            .count()
    }
}

fn conf_hash(cs: &ConfState) -> u64 {
    let mut hasher = DefaultHasher::new();
    cs.normalized().hash(&mut hasher);
    hasher.finish()
}

fn log_digest(start: (u64, u64), hs: &HardState, entries: &[Entry]) -> u64 {
    let mut hasher = DefaultHasher::new();
    start.hash(&mut hasher);
    (hs.term, hs.vote, hs.commit).hash(&mut hasher);
    for e in entries {
        (e.index, e.term, e.r#type, crc32c::crc32c(e.data_bytes())).hash(&mut hasher);
    }
    hasher.finish()
}

struct Checkpoint {
    index: u64,
    term: u64,
    conf: ConfState,
}

struct Pass<'h> {
    h: &'h History,
    checkpoint: Option<Checkpoint>,
    /// raft-rs's own panic text is attached to at most this many violations (it costs a full
    /// restart each).
    raw_budget: usize,
}

impl<'h> Pass<'h> {
    fn eval(&mut self, fold: &Fold<'_>, rec: &Recovery<'_>) -> CutEval {
        let h = self.h;
        let mut out = CutEval {
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
        let cp = self.checkpoint.as_ref().expect("set above");
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

    fn eval_real(&mut self, real: &RealRecovery, written: HardState) -> CutEval {
        self.checkpoint = None;
        eval_real_recovery(self.h, real, written, &mut self.raw_budget)
    }
}

/// The checks made on a recovered state before raft-rs sees it: what raft-rs would panic on,
/// and whether the recovered HardState is the one written.
#[allow(clippy::too_many_arguments)]
fn check_state(
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
fn eval_real_recovery(
    h: &History,
    real: &RealRecovery,
    written: HardState,
    raw_budget: &mut usize,
) -> CutEval {
    let mut out = CutEval {
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
fn lift_term(hs: &HardState, last_term: u64) -> HardState {
    if hs.is_empty() || hs.term >= last_term {
        return *hs;
    }
    HardState {
        term: last_term,
        vote: 0,
        commit: hs.commit,
    }
}

/// Meaningful records (entries, HardStates, snapshot records) in `records[from..to]`.
fn meaningful(h: &History, from: usize, to: usize) -> usize {
    h.records[from.min(to)..to]
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                RecKind::Entry(_) | RecKind::State(_) | RecKind::Snapshot(_)
            )
        })
        .count()
}

pub fn enumerate_member(
    fs: &dyn ReadOnlyFs,
    path: &Path,
    opts: &Options,
) -> Result<MemberRun, String> {
    let started = Instant::now();
    let history = History::load(fs, path).map_err(|e| e.to_string())?;
    let h = &history;
    let n = h.records.len();
    let first = h.first_cut();
    let mut notes = Vec::new();
    if let Some(d) = &h.damage {
        notes.push(format!(
            "the input WAL is damaged ({d}); crash states are enumerated over the {n} readable records"
        ));
    }
    let only = match &opts.only {
        Some(OnlyState::Member(class, spec)) => Some((*class, spec.clone())),
        Some(OnlyState::Cluster(_)) => {
            return Err("a cluster state (MEMBER@SPEC) for a single member".into())
        }
        None => None,
    };
    let planned: Vec<Planned> = match &only {
        Some((class, spec)) => {
            vec![super::states::plan_only(h, *class, spec).ok_or_else(|| {
                format!(
                    "--only {}: no such state in this member",
                    spec.render(*class)
                )
            })?]
        }
        None => plan(h, opts),
    };

    // Samples for the real-path cross-check: fixed points now, triggered ones during the pass.
    let mut samples: BTreeSet<usize> = BTreeSet::new();
    if n >= first && only.is_none() && opts.cross_checks > 0 {
        samples.insert(first);
        samples.insert(n);
        for s in &h.segments {
            for k in [s.first_record, s.header_end] {
                if k >= first && k <= n {
                    samples.insert(k);
                }
            }
        }
        let spread_n = opts.cross_checks.saturating_sub(samples.len()).max(2);
        for i in 0..spread_n {
            samples.insert(first + (n - first) * i / (spread_n - 1).max(1));
        }
    }
    let trigger_cap = opts.cross_checks;
    let mut triggered = 0usize;

    // The fold pass: every prefix k in first..=n.
    let mut cuts: Vec<CutEval> = Vec::with_capacity(n.saturating_sub(first) + 1);
    let mut digests: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
    let mut fold = Fold::new(h);
    let mut pass = Pass {
        h,
        checkpoint: None,
        raw_budget: 8,
    };
    let mut last_snap: Option<Option<usize>> = None;
    let mut overwrite_events = Vec::new();
    if n >= first {
        fold.advance_to(first);
        loop {
            let rec = fold.recovery();
            let eval = pass.eval(&fold, &rec);
            let k = fold.k;
            let trigger = only.is_none()
                && triggered < trigger_cap
                && (last_snap != Some(eval.snap)
                    || eval.violation.is_some()
                    || eval.refused.is_some());
            if trigger && !samples.contains(&k) {
                samples.insert(k);
                triggered += 1;
            }
            last_snap = Some(eval.snap);
            if samples.contains(&k) && rec.refused.is_none() {
                digests.insert(
                    k,
                    (
                        log_digest(
                            (rec.start_index, rec.start_term),
                            &rec.hard_state,
                            rec.entries,
                        ),
                        eval.applied,
                        eval.conf_hash,
                    ),
                );
            }
            cuts.push(eval);
            if fold.k >= n {
                break;
            }
            fold.advance();
        }
        overwrite_events = fold.overwrite_events.clone();
    }
    let cut = |k: usize| -> &CutEval { &cuts[k - first] };

    // Log agreement: a prefix's entries agree with the written log except where a later record
    // overwrote them.
    let mut agree_limit = vec![u64::MAX; n + 1];
    {
        let mut ev = overwrite_events.iter().rev().peekable();
        let mut current = u64::MAX;
        for k in (0..=n).rev() {
            while let Some((pos, index)) = ev.peek() {
                if *pos >= k {
                    current = current.min(index.saturating_sub(1));
                    ev.next();
                } else {
                    break;
                }
            }
            agree_limit[k] = current;
        }
    }

    // The uncrashed member: the files as captured, recovered for real.
    let full = DiskState::full(h);
    let (baseline, baseline_read) = recover(&full);
    let mut raw_budget = 4;
    let written_final = if n >= first {
        let mut f = Fold::new(h);
        f.advance_to(n);
        f.hard_state()
    } else {
        HardState::default()
    };
    let baseline_eval = eval_real_recovery(h, &baseline, written_final, &mut raw_budget);
    let mut baseline_finding = baseline_eval.violation.clone().or_else(|| {
        baseline_eval
            .refused
            .clone()
            .map(|r| ("crash.baseline_refused", r))
    });
    if let Some(after) = h.after_damage.as_ref().filter(|a| a.records > 0) {
        let entries = match (after.first_entry, after.last_entry) {
            (Some(a), Some(b)) => format!(", entries {a}..={b}"),
            _ => String::new(),
        };
        let text = format!(
            "the last segment stops at offset {} (a torn-looking record or a zero length word) but {} valid record(s){entries} follow: etcd stops reading there (Repair truncates, or ZeroToEnd wipes them) and drops them silently (#6515 shape: zero sectors followed by data)",
            after.offset, after.records
        );
        if after.later_save_completed && baseline_finding.is_none() {
            baseline_finding = Some((
                "crash.repair_discards_fsynced",
                format!(
                    "{text}; a Save completed after the damaged record, so it had been fsynced: fsynced data is lost"
                ),
            ));
        } else {
            notes.push(format!(
                "{text}; no Save completed after it, so the damage can be a torn in-flight write (expected loss)"
            ));
        }
    }
    let voters = baseline_read
        .as_ref()
        .map(|read| {
            let state = crate::replay::kv::restart_state(&h.member, read);
            let outcome = restart_and_apply(&state, h.node_id, u64::MAX, &mut |_| {});
            let mut v = outcome.conf_state.voters.clone();
            v.sort_unstable();
            v
        })
        .unwrap_or_default();
    let final_commit = if n >= first { cut(n).written_commit } else { 0 };
    let final_last = if n >= first { cut(n).written_last } else { 0 };

    // Cross-checks against the real path (and the KV model).
    let mut cross_checks = Vec::new();
    let mut kv_reference: Option<Vec<Entry>> = None;
    let log_from_one = h
        .records
        .iter()
        .find_map(|r| match &r.kind {
            RecKind::Entry(e) => Some(e.index),
            _ => None,
        })
        .is_some_and(|i| i == 1);
    if opts.kv && log_from_one && only.is_none() {
        kv_reference = read_from_start(&full).map(|r| r.contents.entries.clone());
    }
    let mut kv_points: Vec<(usize, u64, crate::mvcc::HashKv)> = Vec::new();
    for &k in &samples {
        if k < first || k > n {
            continue;
        }
        let state = DiskState::prefix(h, k);
        let (real, _) = recover(&state);
        let model = cut(k);
        let mut problems = Vec::new();
        match (&real.refused, &model.refused) {
            (Some(_), None) => problems.push(format!(
                "the real path refuses ({}) where the model recovers",
                real.refused.as_deref().unwrap_or("")
            )),
            (None, Some(m)) => problems.push(format!(
                "the model refuses ({m}) where the real path recovers"
            )),
            _ => {}
        }
        if real.refused.is_none() {
            if let Some((digest, applied, conf)) = digests.get(&k) {
                let real_digest = log_digest(
                    (real.start_index, real.start_term),
                    &real.hard_state,
                    &real.entries,
                );
                if real_digest != *digest {
                    problems.push(format!(
                        "recovered state differs: real path boots from {} with {} entries ..={} and HardState commit {}, the model from {} with ..={} commit {}",
                        real.start_index,
                        real.entries.len(),
                        real.last_index(),
                        real.hard_state.commit,
                        model.start_index,
                        model.last_index,
                        model.commit
                    ));
                }
                if model.violation.is_none() {
                    let mut budget = 0;
                    let full_eval = eval_real_recovery(h, &real, real.hard_state, &mut budget);
                    if full_eval.violation.is_none()
                        && (full_eval.applied != *applied || full_eval.conf_hash != *conf)
                    {
                        problems.push(format!(
                            "checkpointed raft-rs restart applied {} (conf {:x}), a full restart applied {} (conf {:x})",
                            applied, conf, full_eval.applied, full_eval.conf_hash
                        ));
                    }
                }
            }
        }
        let mut kv_checked = false;
        if kv_reference.is_some() && real.refused.is_none() && model.violation.is_none() {
            if let Some(read) = read_from_start(&state) {
                if let Ok(replay) = replay_kv(&h.member, &read, None, &mut |_| {}) {
                    if replay.raft.findings.is_empty() {
                        if let Ok(hash) = replay.store.hash_kv(0) {
                            kv_points.push((k, replay.applied_index, hash));
                            kv_checked = true;
                        }
                    }
                }
            }
        }
        cross_checks.push(CrossCheck {
            k,
            ok: problems.is_empty(),
            message: problems.join("; "),
            kv_checked,
        });
    }
    if let Some(reference) = &kv_reference {
        // One pass over the written log, hashing where a cross-check point applied through.
        let mut wanted: Vec<(u64, usize)> = kv_points
            .iter()
            .enumerate()
            .map(|(i, (_, applied, _))| (*applied, i))
            .collect();
        wanted.sort_unstable();
        let mut store = MvccStore::new();
        let mut at = 0u64;
        let mut entries = reference.iter().peekable();
        for (applied, i) in wanted {
            while at < applied {
                match entries.next() {
                    Some(e) => {
                        store.apply_entry(e);
                        at = e.index;
                    }
                    None => break,
                }
            }
            let (k, _, recovered) = kv_points[i];
            let expected = store.hash_kv(0).ok();
            if expected.map(|e| (e.hash, e.revision)) != Some((recovered.hash, recovered.revision))
            {
                if let Some(c) = cross_checks.iter_mut().find(|c| c.k == k) {
                    c.ok = false;
                    let text = format!(
                        "HashKV after recovery {:#010x}@rev{} differs from the uncrashed member's {:?} at applied index {applied}",
                        recovered.hash,
                        recovered.revision,
                        expected.map(|e| (format!("{:#010x}", e.hash), e.revision))
                    );
                    c.message = if c.message.is_empty() {
                        text
                    } else {
                        format!("{}; {text}", c.message)
                    };
                }
            }
        }
    }
    for c in &cross_checks {
        if !c.ok && c.k >= first {
            let slot = &mut cuts[c.k - first];
            if slot.violation.is_none() && slot.refused.is_none() {
                slot.violation = Some(("crash.model_mismatch", c.message.clone()));
            }
        }
    }
    let cut = |k: usize| -> &CutEval { &cuts[k - first] };

    // Classify.
    let mut results = Vec::with_capacity(planned.len());
    let mut tocommit_confirmed: BTreeSet<FaultClass> = BTreeSet::new();
    for p in &planned {
        let crash = p.class.is_crash();
        let acked = if p.durable >= first && p.durable <= n {
            cut(p.durable).written_last
        } else {
            0
        };
        let known_commit = if crash && p.written >= first && p.written <= n {
            cut(p.written).written_commit
        } else {
            final_commit
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
        let (eval, stop, altered, repaired): (CutEval, Option<usize>, bool, bool) = match &p.effect
        {
            Effect::Refused(reason) => (
                CutEval {
                    refused: Some(reason.clone()),
                    ..Default::default()
                },
                None,
                false,
                false,
            ),
            Effect::Prefix { altered: true, .. } => {
                // A damaged record decoded as valid (bytes the CRC does not cover): what etcd
                // makes of it needs ReadAll's semantics, so read the damaged files for real.
                let (real, _) = recover(&real_state(h, &p.spec));
                let mut budget = 2;
                let mut e = eval_real_recovery(h, &real, real.hard_state, &mut budget);
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
                (e, Some(n), false, false)
            }
            Effect::Prefix {
                stop,
                altered,
                repaired,
            } => {
                if *stop < first {
                    // Only part of the first segment's header (crc, metadata, snapshot{0,0}) is
                    // left, below the prefix model's first state: boot those records for real.
                    let (real, _) = recover(&DiskState::prefix(h, *stop));
                    let mut budget = 2;
                    let e = eval_real_recovery(h, &real, real.hard_state, &mut budget);
                    (e, Some(*stop), *altered, *repaired)
                } else {
                    (cut(*stop).clone(), Some(*stop), *altered, *repaired)
                }
            }
            Effect::Real => {
                let state = real_state(h, &p.spec);
                let (real, _) = recover(&state);
                if real.no_wal {
                    r.outcome = Outcome::UndetectedLoss;
                    r.kind = Some("crash.no_wal_left");
                    r.detail = Some(format!(
                        "{} is gone and no .wal file is left: etcd would start this member as a new one (every entry through {} lost)",
                        h.segments.last().map(|s| s.name.file_name.as_str()).unwrap_or("the WAL"),
                        final_last
                    ));
                    results.push(r);
                    continue;
                }
                let mut budget = 2;
                let e = eval_real_recovery(h, &real, real.hard_state, &mut budget);
                // The prefix the recovered log corresponds to (for loss accounting).
                let stop = if real.refused.is_some() {
                    None
                } else {
                    Some(prefix_matching(h, &real, first, n, &cuts))
                };
                (e, stop, false, false)
            }
        };
        if let Some(reason) = &eval.refused {
            if crash {
                r.outcome = Outcome::Violation;
                r.kind = Some("crash.refused_after_crash");
                r.detail = Some(format!(
                    "etcd cannot restart from a state a crash can leave (no corruption involved): {reason}"
                ));
            } else {
                r.outcome = Outcome::Refused;
                r.kind = Some("crash.corruption_detected");
                r.detail = Some(reason.clone());
            }
            results.push(r);
            continue;
        }
        r.recovered_last = eval.last_index;
        let stop = stop.unwrap_or(n);
        r.held = eval.last_index.min(agree_limit[stop.min(n)]);
        if let Some((kind, message)) = &eval.violation {
            r.outcome = Outcome::Violation;
            r.kind = Some(kind);
            r.detail = Some(message.clone());
            results.push(r);
            continue;
        }
        if altered {
            r.outcome = Outcome::Violation;
            r.kind = Some("crash.corruption_accepted");
            r.detail = Some("a damaged record was accepted as valid (the damage is in bytes the CRC does not cover): the recovered state is not what was written".into());
            results.push(r);
            continue;
        }
        let lost_synced = meaningful(h, stop, p.durable.max(stop));
        let lost_any = meaningful(h, stop, p.written.max(stop));
        if lost_synced > 0 {
            let what = format!(
                "{lost_synced} fsynced record(s) after record {stop} lost silently{} (recovered ..={}, fsynced ..={})",
                if repaired { " by Repair's truncation" } else { "" },
                eval.last_index,
                acked
            );
            if crash {
                r.outcome = Outcome::Violation;
                r.kind = Some("crash.fsynced_data_lost");
                r.detail = Some(what);
            } else {
                r.outcome = Outcome::UndetectedLoss;
                r.kind = Some("crash.undetected_storage_fault");
                let tocommit = known_commit.min(acked);
                let mut detail = what;
                if tocommit > eval.last_index {
                    detail.push_str(&format!(
                        "; on restart its leader (commit ≥ {known_commit}, match {acked}) sends commit {tocommit}: tocommit({tocommit}) is out of range [lastIndex({})]",
                        eval.last_index
                    ));
                    if tocommit_confirmed.insert(p.class) {
                        if let Some(m) = confirm_tocommit(h, p, stop, tocommit) {
                            detail.push_str(&format!(" — raft-rs: \"{m}\""));
                        }
                    }
                }
                r.detail = Some(detail);
            }
        } else if lost_any > 0 {
            r.outcome = Outcome::ExpectedLoss;
        }
        results.push(r);
    }
    Ok(MemberRun {
        history,
        results,
        cross_checks,
        baseline,
        baseline_finding,
        final_commit,
        final_last,
        voters,
        elapsed: started.elapsed(),
        notes,
    })
}

/// The files of a real-path state.
pub(crate) fn real_state(h: &History, spec: &Spec) -> DiskState {
    let mut state = DiskState::full(h);
    match spec {
        Spec::Snap { missing } => {
            if let Some(newest) = h.snaps.first() {
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
fn prefix_matching(
    h: &History,
    real: &RealRecovery,
    first: usize,
    n: usize,
    cuts: &[CutEval],
) -> usize {
    let _ = h;
    (first..=n)
        .rev()
        .find(|k| {
            let c = &cuts[k - first];
            c.refused.is_none()
                && c.written_last == real.last_index()
                && c.written_commit == real.hard_state.commit
        })
        .unwrap_or(first)
}

/// raft-rs's verdict when the member recovered to the first `stop` records gets a heartbeat
/// with `commit` from its leader.
fn confirm_tocommit(h: &History, p: &Planned, stop: usize, commit: u64) -> Option<String> {
    let state = match &p.effect {
        Effect::Real => real_state(h, &p.spec),
        _ => DiskState::prefix(h, stop),
    };
    let (real, _) = recover(&state);
    if real.refused.is_some() || real.no_wal {
        return None;
    }
    heartbeat_panic(
        h.node_id,
        (real.start_index, real.start_term, &real.conf_state),
        &real.hard_state,
        &real.entries,
        commit,
    )
}
