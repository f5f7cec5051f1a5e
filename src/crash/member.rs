//! One member: plan the states, evaluate etcd's recovery of every record prefix once (the fold
//! pass, with checkpointed raft-rs restarts: `prefix_model`), recover the uncrashed
//! member, cross-check the model against the real recovery path and replay the KV model at the
//! cross-check points (`cross_check`), then classify each state
//! (`classify`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::fsio::ReadOnlyFs;
use crate::member::MemberRead;
use crate::proto::raftpb::HardState;
use crate::replay::restart::restart_and_apply;

use super::classify::{classify, Evidence};
use super::cross_check;
use super::evaluate::eval_real_recovery;
use super::fold::Fold;
use super::history::History;
use super::prefix_model::{agreement_limits, evaluate_prefixes, PrefixModel};
use super::recover::{recover, DiskState, RealRecovery};
use super::states::{plan, plan_only, Planned, Spec};
use super::{FaultClass, OnlyState, Options, Outcome};

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
    /// The recovered state's KV state when it was replayed: applied index and HashKV.
    pub kv_state: Option<(u64, crate::mvcc::HashKv)>,
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
    /// Crash states not judged, per class: moments before the shortest prefix etcd can boot
    /// from the files we have ([`History::first_bootable`]), when the purged files existed.
    pub not_modelled: BTreeMap<FaultClass, usize>,
    /// That shortest prefix (records), when it is past the first segment's header.
    pub first_modelled: Option<usize>,
    /// Where the WAL does not reach back to index 1: the KV side starts from the db, and the
    /// states it does not model.
    pub kv_from_db: Option<KvFromDb>,
}

/// The KV side of a member whose WAL does not reach back to index 1: recovered states are
/// replayed from the backend db at its consistent index (CI), which is the db of a crash moment
/// only when the recovered log reaches CI (etcd commits the backend after the entries it
/// applies were written to the WAL). A state whose recovered log ends below CI boots in etcd
/// with the db ahead of its log (nothing at or below CI is re-applied): its KV state is not
/// modelled, counted here, never judged.
#[derive(Clone, Debug)]
pub struct KvFromDb {
    /// The db's `meta/consistent_index`.
    pub consistent_index: u64,
    /// Booted states (not refused) whose recovered log ends below CI, per class.
    pub db_ahead: BTreeMap<FaultClass, usize>,
    /// Cross-check points whose KV replay was skipped for that reason (record prefixes).
    pub db_ahead_points: Vec<usize>,
}

impl KvFromDb {
    fn of(consistent_index: u64, results: &[StateResult], db_ahead_points: Vec<usize>) -> Self {
        let mut db_ahead = BTreeMap::new();
        for r in results
            .iter()
            .filter(|r| r.outcome != Outcome::Refused && r.recovered_last < consistent_index)
        {
            *db_ahead.entry(r.class).or_insert(0) += 1;
        }
        KvFromDb {
            consistent_index,
            db_ahead,
            db_ahead_points,
        }
    }

    /// Booted states whose KV state is not modelled (the db is ahead of their log).
    pub fn db_ahead_count(&self) -> usize {
        self.db_ahead.values().sum()
    }
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

    /// Crash states not judged because the files of their moment were purged.
    pub fn not_modelled_count(&self) -> usize {
        self.not_modelled.values().sum()
    }

    pub fn record_boundaries_checked(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.class == FaultClass::RecordBoundary)
            .count()
    }
}

/// Enumerates one member's crash states and classifies each. The phases run in order, each
/// handing the next what it computed: plan → prefix model (fold pass) → log agreement →
/// uncrashed member → cross-checks and KV check → classification.
pub fn enumerate_member(
    fs: &dyn ReadOnlyFs,
    path: &Path,
    opts: &Options,
) -> Result<MemberRun, String> {
    let started = Instant::now();
    let history = History::load(fs, path).map_err(|e| e.to_string())?;
    let mut notes: Vec<String> = input_damage_note(&history).into_iter().collect();
    let only = only_member_state(opts)?;
    let planned = plan_states(&history, opts, only.as_ref())?;
    let (planned, purged) = split_purged(&history, planned);

    // `--only` evaluates one state: no cross-checks, no KV replay.
    let cross_checks_wanted = if only.is_some() { 0 } else { opts.cross_checks };
    let kv_reference = if opts.kv && only.is_none() {
        cross_check::kv_reference(fs, path, &history).unwrap_or_else(|why| {
            notes.push(format!("no KV side: {why}"));
            None
        })
    } else {
        None
    };
    let kv_from = kv_reference
        .as_ref()
        .and_then(cross_check::KvReference::consistent_index)
        .and_then(|ci| cross_check::first_prefix_holding(&history, ci));
    let fixed_points = cross_check::fixed_points(&history, cross_checks_wanted, kv_from);
    let mut prefixes = evaluate_prefixes(&history, fixed_points, cross_checks_wanted);
    let agreement = agreement_limits(prefixes.record_count, &prefixes.overwrite_events);
    let uncrashed = recover_uncrashed(&history, &prefixes, &mut notes);

    let (mut cross_checks, kv_points) =
        cross_check::against_real_path(&history, &prefixes, kv_reference.as_ref(), opts.plant);
    if let Some(reference) = &kv_reference {
        cross_check::kv_against_uncrashed(reference, &kv_points.points, &mut cross_checks);
    }
    // From here a prefix the real path disagrees with is a violation, and so is every state
    // that recovers to it.
    cross_check::record_mismatches(&mut prefixes, &cross_checks);

    let results = classify(
        &Evidence {
            history: &history,
            prefixes: &prefixes,
            agreement_limits: &agreement,
            baseline: &uncrashed.baseline,
            final_commit: uncrashed.final_commit,
            final_last: uncrashed.final_last,
        },
        &planned,
    );
    let kv_from_db = kv_reference
        .as_ref()
        .and_then(cross_check::KvReference::consistent_index)
        .map(|ci| KvFromDb::of(ci, &results, kv_points.db_ahead));
    Ok(MemberRun {
        history,
        kv_from_db,
        results,
        cross_checks,
        baseline: uncrashed.baseline,
        baseline_finding: uncrashed.finding,
        final_commit: uncrashed.final_commit,
        final_last: uncrashed.final_last,
        voters: uncrashed.voters,
        elapsed: started.elapsed(),
        notes,
        not_modelled: purged.counts,
        first_modelled: purged.first_modelled,
    })
}

/// The crash states whose moment precedes the shortest bootable prefix, set apart and counted.
struct Purged {
    counts: BTreeMap<FaultClass, usize>,
    first_modelled: Option<usize>,
}

/// Sets apart the crash states (a–e) whose fsynced prefix is shorter than
/// [`History::first_bootable`]: at that moment the purged segments and `.snap` files were still
/// on disk (etcd purges only the oldest, once newer ones cover them), and the state etcd would
/// boot from them is not one these files can show. From that prefix on, the boot snapshot is
/// the newest `.snap` a surviving WAL record names, the same with or without the older files
/// (`selectWALFiles` reads from the segment at or below its index). Storage faults (f–i)
/// strike the finished log and are all judged.
fn split_purged(history: &History, planned: Vec<Planned>) -> (Vec<Planned>, Purged) {
    let first_modelled = history
        .first_bootable()
        .filter(|k| *k > history.first_cut());
    let mut counts = BTreeMap::new();
    let Some(first) = first_modelled else {
        return (
            planned,
            Purged {
                counts,
                first_modelled,
            },
        );
    };
    let kept = planned
        .into_iter()
        .filter(|p| {
            let purged = p.class.is_crash() && p.durable < first;
            if purged {
                *counts.entry(p.class).or_insert(0) += 1;
            }
            !purged
        })
        .collect();
    (
        kept,
        Purged {
            counts,
            first_modelled,
        },
    )
}

/// When the input WAL itself is damaged: the states are enumerated over its readable records.
fn input_damage_note(history: &History) -> Option<String> {
    let damage = history.damage.as_ref()?;
    Some(format!(
        "the input WAL is damaged ({damage}); crash states are enumerated over the {} readable records",
        history.records.len()
    ))
}

/// The state `--only` asks for in this member, if any (a cluster state is an error here).
fn only_member_state(opts: &Options) -> Result<Option<(FaultClass, Spec)>, String> {
    match &opts.only {
        Some(OnlyState::Member(class, spec)) => Ok(Some((*class, spec.clone()))),
        Some(OnlyState::Cluster(_)) => {
            Err("a cluster state (MEMBER@SPEC) for a single member".into())
        }
        None => Ok(None),
    }
}

/// The plan: every state of the classes asked for, or only the `--only` state (an error when
/// this member has no such state).
fn plan_states(
    history: &History,
    opts: &Options,
    only: Option<&(FaultClass, Spec)>,
) -> Result<Vec<Planned>, String> {
    match only {
        Some((class, spec)) => {
            let planned = plan_only(history, *class, spec).ok_or_else(|| {
                format!(
                    "--only {}: no such state in this member",
                    spec.render(*class)
                )
            })?;
            Ok(vec![planned])
        }
        None => Ok(plan(history, opts)),
    }
}

/// The uncrashed member: etcd's recovery of the files as captured, and what it establishes for
/// every state (the written log's commit and last index, the voters).
struct Uncrashed {
    baseline: RealRecovery,
    /// A violation or refusal of the captured state itself, or fsynced records Repair would
    /// discard after a damaged one.
    finding: Option<(&'static str, String)>,
    final_commit: u64,
    final_last: u64,
    voters: Vec<u64>,
}

/// Recovers the files as captured on the real path and checks them against the HardState last
/// written (the fold over every record).
fn recover_uncrashed(
    history: &History,
    prefixes: &PrefixModel,
    notes: &mut Vec<String>,
) -> Uncrashed {
    let (baseline, baseline_read) = recover(&DiskState::full(history));
    let mut raw_budget = 4;
    let written_final = if prefixes.whole_log().is_some() {
        let mut fold = Fold::new(history);
        fold.advance_to(prefixes.record_count);
        fold.hard_state()
    } else {
        HardState::default()
    };
    let baseline_eval = eval_real_recovery(history, &baseline, written_final, &mut raw_budget);
    let mut finding = baseline_eval.violation.clone().or_else(|| {
        baseline_eval
            .refused
            .clone()
            .map(|r| ("crash.baseline_refused", r))
    });
    records_after_damage(history, &mut finding, notes);
    Uncrashed {
        baseline,
        finding,
        final_commit: prefixes.whole_log().map_or(0, |w| w.written_commit),
        final_last: prefixes.whole_log().map_or(0, |w| w.written_last),
        voters: voters_after_whole_log(history, baseline_read.as_ref()),
    }
}

/// Valid records after the point where the last segment's read stops: etcd drops them (Repair
/// truncates, or ZeroToEnd wipes them). Fsynced data lost when a Save completed after the
/// damage (it had been fsynced), else a note (the damage can be a torn in-flight write).
fn records_after_damage(
    history: &History,
    finding: &mut Option<(&'static str, String)>,
    notes: &mut Vec<String>,
) {
    let Some(after) = history.after_damage.as_ref().filter(|a| a.records > 0) else {
        return;
    };
    let entries = match (after.first_entry, after.last_entry) {
        (Some(a), Some(b)) => format!(", entries {a}..={b}"),
        _ => String::new(),
    };
    let text = format!(
        "the last segment stops at offset {} (a torn-looking record or a zero length word) but {} valid record(s){entries} follow: etcd stops reading there (Repair truncates, or ZeroToEnd wipes them) and drops them silently (#6515 shape: zero sectors followed by data)",
        after.offset, after.records
    );
    if after.later_save_completed && finding.is_none() {
        *finding = Some((
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

/// Voters after raft-rs applies the uncrashed member's whole log (none when it does not read).
fn voters_after_whole_log(history: &History, read: Option<&MemberRead>) -> Vec<u64> {
    read.map(|read| {
        let state = crate::replay::kv::restart_state(&history.member, read);
        let outcome = restart_and_apply(&state, history.node_id, u64::MAX, &mut |_| {});
        let mut v = outcome.conf_state.voters.clone();
        v.sort_unstable();
        v
    })
    .unwrap_or_default()
}
