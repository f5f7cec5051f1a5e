//! Cross-checks of the prefix model against the real recovery path (the files in memory, etcd's
//! boot, Repair, raft-rs from the boot snapshot), and of the KV state recovered there against the
//! uncrashed member's (HashKV at the same applied index).

use std::collections::BTreeSet;

use crate::mvcc::{HashKv, MvccStore};
use crate::proto::raftpb::Entry;
use crate::replay::kv::replay_kv;

use super::evaluate::{eval_real_recovery, log_digest, RecoveryEval};
use super::history::{History, RecKind};
use super::member::CrossCheck;
use super::prefix_model::{ModelDigest, PrefixModel};
use super::recover::{read_from_start, recover, DiskState, RealRecovery};

/// A cross-check point's KV state after recovery: `(prefix, applied index, HashKV)`.
pub(super) type KvPoint = (usize, u64, HashKv);

/// The prefixes to cross-check, chosen before the pass: the first and the whole log, each
/// segment's first record and header end, and evenly spread points making up `wanted` (at
/// least two). None when `wanted` is 0 or the log ends inside the first header.
pub(super) fn fixed_points(history: &History, wanted: usize) -> BTreeSet<usize> {
    let first_cut = history.first_cut();
    let record_count = history.records.len();
    let mut points: BTreeSet<usize> = BTreeSet::new();
    if record_count >= first_cut && wanted > 0 {
        points.insert(first_cut);
        points.insert(record_count);
        for s in &history.segments {
            for k in [s.first_record, s.header_end] {
                if k >= first_cut && k <= record_count {
                    points.insert(k);
                }
            }
        }
        let spread_n = wanted.saturating_sub(points.len()).max(2);
        for i in 0..spread_n {
            points.insert(first_cut + (record_count - first_cut) * i / (spread_n - 1).max(1));
        }
    }
    points
}

/// The uncrashed member's log to replay the KV model against: only when the WAL holds it from
/// index 1 (a member that booted from a leader snapshot has no such log).
pub(super) fn kv_reference(history: &History) -> Option<Vec<Entry>> {
    let log_from_one = history
        .records
        .iter()
        .find_map(|r| match &r.kind {
            RecKind::Entry(e) => Some(e.index),
            _ => None,
        })
        .is_some_and(|i| i == 1);
    if !log_from_one {
        return None;
    }
    read_from_start(&DiskState::full(history)).map(|r| r.contents.entries.clone())
}

/// Recovers each cross-check point on the real path and compares it with the model; with
/// `replay_kv`, also replays the KV model there. Returns one [`CrossCheck`] per point, in
/// ascending order, and the KV states to compare with the uncrashed member's.
pub(super) fn against_real_path(
    history: &History,
    prefixes: &PrefixModel,
    replay_kv: bool,
) -> (Vec<CrossCheck>, Vec<KvPoint>) {
    let mut cross_checks = Vec::new();
    let mut kv_points = Vec::new();
    for &k in &prefixes.cross_check_points {
        if k < prefixes.first_cut || k > prefixes.record_count {
            continue;
        }
        let state = DiskState::prefix(history, k);
        let (real, _) = recover(&state);
        let model = prefixes.at(k);
        let problems = model_vs_real(history, model, prefixes.digests.get(&k), &real);
        let mut kv_checked = false;
        if replay_kv && real.refused.is_none() && model.violation.is_none() {
            if let Some((applied, hash)) = kv_after_recovery(history, &state) {
                kv_points.push((k, applied, hash));
                kv_checked = true;
            }
        }
        cross_checks.push(CrossCheck {
            k,
            ok: problems.is_empty(),
            message: problems.join("; "),
            kv_checked,
        });
    }
    (cross_checks, kv_points)
}

/// Where the model's recovery of a prefix differs from the real path's: one refuses and the
/// other not, a different recovered log, or a different applied index or ConfState than a
/// raft-rs restart from the boot snapshot (the model restarts from a checkpoint).
fn model_vs_real(
    history: &History,
    model: &RecoveryEval,
    digest: Option<&ModelDigest>,
    real: &RealRecovery,
) -> Vec<String> {
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
        if let Some(digest) = digest {
            let real_digest = log_digest(
                (real.start_index, real.start_term),
                &real.hard_state,
                &real.entries,
            );
            if real_digest != digest.log {
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
                let full_eval = eval_real_recovery(history, real, real.hard_state, &mut budget);
                if full_eval.violation.is_none()
                    && (full_eval.applied != digest.applied
                        || full_eval.conf_hash != digest.conf_hash)
                {
                    problems.push(format!(
                        "checkpointed raft-rs restart applied {} (conf {:x}), a full restart applied {} (conf {:x})",
                        digest.applied, digest.conf_hash, full_eval.applied, full_eval.conf_hash
                    ));
                }
            }
        }
    }
    problems
}

/// The KV state etcd's apply of `state`'s log reaches: the applied index and HashKV at the
/// current revision, when the WAL reads from its start without error and replays without a
/// finding.
fn kv_after_recovery(history: &History, state: &DiskState) -> Option<(u64, HashKv)> {
    let read = read_from_start(state)?;
    let replay = replay_kv(&history.member, &read, None, &mut |_| {}).ok()?;
    if !replay.raft.findings.is_empty() {
        return None;
    }
    let hash = replay.store.hash_kv(0).ok()?;
    Some((replay.applied_index, hash))
}

/// The KV check: replays the uncrashed member's log once, in applied-index order, and fails
/// each cross-check whose recovered HashKV differs from the uncrashed member's at the same
/// applied index.
pub(super) fn kv_against_uncrashed(
    reference: &[Entry],
    kv_points: &[KvPoint],
    cross_checks: &mut [CrossCheck],
) {
    let mut wanted: Vec<(u64, usize)> = kv_points
        .iter()
        .enumerate()
        .map(|(i, (_, applied, _))| (*applied, i))
        .collect();
    wanted.sort_unstable();
    let mut store = MvccStore::following_log();
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
        if expected.map(|e| (e.hash, e.revision)) != Some((recovered.hash, recovered.revision)) {
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

/// A failed cross-check makes its prefix a violation (`crash.model_mismatch`) unless the model
/// already refuses it or found one there, so every state that recovers to it fails too.
pub(super) fn record_mismatches(prefixes: &mut PrefixModel, cross_checks: &[CrossCheck]) {
    for c in cross_checks {
        if !c.ok && c.k >= prefixes.first_cut {
            let slot = prefixes.at_mut(c.k);
            if slot.violation.is_none() && slot.refused.is_none() {
                slot.violation = Some(("crash.model_mismatch", c.message.clone()));
            }
        }
    }
}
