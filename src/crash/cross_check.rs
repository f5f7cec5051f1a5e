//! Cross-checks of the prefix model against the real recovery path (the files in memory, etcd's
//! boot, Repair, raft-rs from the boot snapshot), and of the KV state recovered there against the
//! uncrashed member's (HashKV at the same applied index). Where the WAL does not reach back to
//! index 1, both KV sides start from the member's backend db at its consistent index.

use std::collections::BTreeSet;
use std::path::Path;

use crate::fsio::ReadOnlyFs;
use crate::member::{MemberFiles, MemberRead};
use crate::mvcc::{HashKv, MvccStore};
use crate::proto::raftpb::Entry;
use crate::replay::binary;
use crate::replay::from_db::{
    load_member_db_as_written, replay_kv_from_db, start_store, DbStartError, LoadedDb,
};
use crate::replay::kv::{replay_kv_from, KvReplayError};
use crate::replay::restart::LogSource;

use super::KvPlant;

use super::evaluate::{eval_real_recovery, log_digest, RecoveryEval};
use super::history::{History, RecKind};
use super::member::CrossCheck;
use super::prefix_model::{ModelDigest, PrefixModel};
use super::recover::{read_from_start, recover, DiskState, RealRecovery};

/// A cross-check point's KV state after recovery: `(prefix, applied index, HashKV)`.
pub(super) type KvPoint = (usize, u64, HashKv);

/// The prefixes to cross-check, chosen before the pass: the first and the whole log, each
/// segment's first record and header end, and evenly spread points making up `wanted` (at
/// least two); with `kv_from` (the first prefix whose log reaches the db's consistent index,
/// where the KV side starts from the db), half as many again spread from there to the end, so
/// that the KV check has states to compare. None when `wanted` is 0 or the log ends inside the
/// first header.
pub(super) fn fixed_points(
    history: &History,
    wanted: usize,
    kv_from: Option<usize>,
) -> BTreeSet<usize> {
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
        if let Some(from) = kv_from.filter(|k| (first_cut..=record_count).contains(k)) {
            let kv_n = (wanted / 2).max(2);
            for i in 0..kv_n {
                points.insert(from + (record_count - from) * i / (kv_n - 1));
            }
        }
    }
    points
}

/// The first record prefix holding the entry at `index` (the records up to and including it).
pub(super) fn first_prefix_holding(history: &History, index: u64) -> Option<usize> {
    history
        .records
        .iter()
        .position(|r| matches!(&r.kind, RecKind::Entry(e) if e.index == index))
        .map(|p| p + 1)
}

/// The uncrashed member's KV history that recovered states are compared with: the store its
/// replay starts from and the log applied to it.
pub(super) struct KvReference {
    /// An empty store (a WAL from index 1), or the db's KV model at its consistent index.
    start: MvccStore,
    /// The rules a replay from index 1 starts with (a start from the db takes the db's).
    release: binary::StartRelease,
    /// The uncrashed member's log (from index 1, or from its boot snapshot).
    entries: Vec<Entry>,
    /// The db, when the WAL does not reach back to index 1: every recovered state starts from
    /// it as well.
    db: Option<LoadedDb>,
}

impl KvReference {
    /// The db's consistent index, when the KV side starts from the db.
    pub(super) fn consistent_index(&self) -> Option<u64> {
        self.db.as_ref().map(|db| db.summary.consistent_index)
    }
}

/// The uncrashed member's KV history ([`KvReference`]): the log from index 1 when the WAL holds
/// it; else (a leader snapshot's gap, purged segments) the member's backend db at its
/// consistent index and the WAL entries above it, as `verify` and `hashkv` replay such a member
/// (`replay::from_db`). `Err`: why there is no KV side (no db, an unreadable one, a db the
/// log contradicts), for the member's notes.
pub(super) fn kv_reference(
    fs: &dyn ReadOnlyFs,
    path: &Path,
    history: &History,
) -> Result<Option<KvReference>, String> {
    let log_from_one = history
        .records
        .iter()
        .find_map(|r| match &r.kind {
            RecKind::Entry(e) => Some(e.index),
            _ => None,
        })
        .is_some_and(|i| i == 1);
    let files = MemberFiles::open(fs, path).map_err(|e| e.to_string())?;
    if log_from_one {
        // Every recovered state and the reference start with the rules of the binary the
        // member's files show (its WAL snapshot records, its db).
        let snapshots = history.records.iter().filter_map(|r| match &r.kind {
            RecKind::Snapshot(s) => Some(s),
            _ => None,
        });
        let release = binary::infer(snapshots, || binary::db_generation(&files));
        return Ok(
            read_from_start(&DiskState::full(history)).map(|r| KvReference {
                start: release.store(),
                release,
                entries: r.contents.entries.clone(),
                db: None,
            }),
        );
    }
    let (_, read) = recover(&DiskState::full(history));
    let Some(read) = read else {
        return Ok(None);
    };
    let db = load_member_db_as_written(&files).map_err(|e| e.to_string())?;
    let start = start_store(&read, db.store.clone(), db.summary.consistent_index, None)
        .map_err(|e| e.to_string())?;
    Ok(Some(KvReference {
        start,
        release: binary::StartRelease::unknown(),
        entries: read.contents.entries.clone(),
        db: Some(db),
    }))
}

/// What the cross-checks found on the KV side.
#[derive(Default)]
pub(super) struct KvPoints {
    /// The recovered states' KV states, to compare with the uncrashed member's.
    pub points: Vec<KvPoint>,
    /// Cross-check points whose recovered log ends below the db's consistent index: the db is
    /// ahead of that log, so it is not the db of that moment (not modelled).
    pub db_ahead: Vec<usize>,
}

/// Recovers each cross-check point on the real path and compares it with the model; with a
/// `kv` reference, also replays the KV model there (`plant`: a test's bug in that replay).
/// Returns one [`CrossCheck`] per point, in ascending order, and the KV states to compare with
/// the uncrashed member's.
pub(super) fn against_real_path(
    history: &History,
    prefixes: &PrefixModel,
    kv: Option<&KvReference>,
    plant: Option<KvPlant>,
) -> (Vec<CrossCheck>, KvPoints) {
    let mut cross_checks = Vec::new();
    let mut kv_points = KvPoints::default();
    for &k in &prefixes.cross_check_points {
        if k < prefixes.first_cut || k > prefixes.record_count {
            continue;
        }
        let state = DiskState::prefix(history, k);
        let (real, read) = recover(&state);
        let model = prefixes.at(k);
        let problems = model_vs_real(history, model, prefixes.digests.get(&k), &real);
        let mut kv_state = None;
        if let Some(reference) = kv.filter(|_| real.refused.is_none() && model.violation.is_none())
        {
            match kv_after_recovery(history, &state, read.as_ref(), reference, plant) {
                KvAfter::State(applied, hash) => {
                    kv_points.points.push((k, applied, hash));
                    kv_state = Some((applied, hash));
                }
                KvAfter::DbAhead => kv_points.db_ahead.push(k),
                KvAfter::Unavailable => {}
            }
        }
        cross_checks.push(CrossCheck {
            k,
            ok: problems.is_empty(),
            message: problems.join("; "),
            kv_checked: kv_state.is_some(),
            kv_state,
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

/// The KV state of one recovered crash state.
enum KvAfter {
    /// The applied index and HashKV at the current revision.
    State(u64, HashKv),
    /// The recovered log ends below the db's consistent index.
    DbAhead,
    /// The log does not read or replay cleanly (the raft side reports it).
    Unavailable,
}

/// The KV state etcd's apply of `state`'s log reaches, when the WAL reads without error and
/// replays without a finding: from index 1, or, when the WAL starts late, from the db at its
/// consistent index CI over the recovered log (`read`, from the state's boot snapshot), whose
/// entries above CI are applied up to max(commit, CI). A recovered log ending below CI makes the
/// db ahead of it: etcd 3.5.30 boots (`NewServer` refuses a db only below the boot snapshot,
/// server.go "does not match with snapshot"; `restartNode` sets no `Applied`), re-applies
/// nothing at or below CI (`applyEntryNormal`: `e.Index > consistIndex`) and serves the db's
/// state — not the state of that moment, whose db is not among the files.
fn kv_after_recovery(
    history: &History,
    state: &DiskState,
    read: Option<&MemberRead>,
    reference: &KvReference,
    plant: Option<KvPlant>,
) -> KvAfter {
    let replay = match &reference.db {
        None => match read_from_start(state) {
            Some(read) => replay_kv_from(
                &history.member,
                &read,
                &reference.release,
                LogSource::Held,
                None,
                &mut |_| {},
            ),
            None => return KvAfter::Unavailable,
        },
        Some(db) => {
            let Some(read) = read else {
                return KvAfter::Unavailable;
            };
            let mut db = db.clone();
            if plant == Some(KvPlant::ReapplyConsistentIndex) {
                let ci = db.summary.consistent_index;
                db.store.set_consistent_index(ci.saturating_sub(1));
            }
            replay_kv_from_db(&history.member, read, db, None, &mut |_| {})
        }
    };
    match replay {
        Err(KvReplayError::FromDb(DbStartError::AheadOfLog { .. })) => KvAfter::DbAhead,
        Ok(replay) if replay.raft.findings.is_empty() => match replay.store.hash_kv(0) {
            Ok(hash) => KvAfter::State(replay.applied_index, hash),
            Err(_) => KvAfter::Unavailable,
        },
        _ => KvAfter::Unavailable,
    }
}

/// The KV check: replays the uncrashed member's log once, in applied-index order, and fails
/// each cross-check whose recovered HashKV differs from the uncrashed member's at the same
/// applied index.
pub(super) fn kv_against_uncrashed(
    reference: &KvReference,
    kv_points: &[KvPoint],
    cross_checks: &mut [CrossCheck],
) {
    let mut wanted: Vec<(u64, usize)> = kv_points
        .iter()
        .enumerate()
        .map(|(i, (_, applied, _))| (*applied, i))
        .collect();
    wanted.sort_unstable();
    let mut store = reference.start.clone();
    let mut at = 0u64;
    let mut entries = reference.entries.iter();
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
