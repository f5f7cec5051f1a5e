//! `raft-replay gate`: can a cluster's data be upgraded to etcd `TARGET`, do Raft's invariants
//! hold on it, do the members' key spaces agree, and did anything change since a baseline?
//!
//! One concern a file: [`version`] (etcd version numbers), [`min_version`] (etcd's
//! `MinimalEtcdVersion`), [`v2`] (v2 requests and v2-store content per release), [`membership`]
//! (conf-change kinds, learners), [`facts`] (one pass over a member), [`rules`] (the upgrade
//! rules), [`baseline`] (the lock file and its diff), [`report`] (text, JSON, JUnit).
//!
//! The invariant part is `verify`'s own pipeline ([`crate::verify::verify_named`]): every
//! finding, replay and HashKV agreement `verify` reports, the gate reports too.

pub mod baseline;
pub mod facts;
pub mod membership;
pub mod min_version;
pub mod rehearse;
pub mod report;
pub mod rules;
pub mod v2;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::check::state_hash::StatePoint;
use crate::check::{sort, Finding};
use crate::fsio::ReadOnlyFs;
use crate::replay::member_state::MemberState;
use crate::verify::{verify_named, EntryReading, MemberReport, VerifyError, VerifyOptions};
use crate::wal::DecoderMode;

use baseline::{Baseline, Change};
use facts::{gather, KvState, MemberFacts};
use rules::{evaluate, Options, RuleResult, Status};
use version::Version;

pub struct GateReport {
    pub target: Version,
    pub members: Vec<MemberFacts>,
    pub rules: Vec<RuleResult>,
    /// HashKV per member: at its own applied index and at the lowest one all share.
    pub state_points: Vec<StatePoint>,
    /// The index every replayable member was compared at, when there are two or more.
    pub common_index: Option<u64>,
    /// This run's lock.
    pub lock: Baseline,
    /// `--baseline`: the file as given, and what changed.
    pub baseline: Option<(String, Vec<Change>)>,
    /// `--rehearse`: each member booted on the target binary ([`rehearse`]).
    pub rehearsals: Option<Vec<rehearse::Rehearsal>>,
}

impl GateReport {
    pub fn blocked(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules.iter().filter(|r| r.status == Status::Blocked)
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.members.iter().flat_map(|m| &m.findings)
    }

    pub fn failures(&self) -> usize {
        self.findings().filter(|f| f.severity.is_failure()).count()
    }

    pub fn baseline_changes(&self) -> usize {
        self.baseline.as_ref().map_or(0, |(_, c)| c.len())
    }

    /// The rehearsals that block the upgrade.
    pub fn rehearsals_blocked(&self) -> impl Iterator<Item = &rehearse::Rehearsal> {
        self.rehearsals
            .iter()
            .flatten()
            .filter(|r| r.status == Status::Blocked)
    }

    pub fn passed(&self) -> bool {
        self.blocked().next().is_none()
            && self.failures() == 0
            && self.baseline_changes() == 0
            && self.rehearsals_blocked().next().is_none()
    }
}

/// Report names: the last path component, or the whole path when two inputs share it.
pub fn labels(paths: &[PathBuf]) -> Vec<String> {
    let base = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for p in paths {
        *seen.entry(base(p)).or_default() += 1;
    }
    paths
        .iter()
        .map(|p| {
            let b = base(p);
            if seen[&b] > 1 {
                p.display().to_string()
            } else {
                b
            }
        })
        .collect()
}

/// Runs every part of the gate: the invariants, the replay and the HashKV agreement are the
/// one verify pipeline's ([`crate::verify`]), so the gate cannot pass data `verify` fails; the
/// upgrade rules and the baseline are added on top. Err: no verdict (exit 2).
pub fn run_gate(
    fs: &dyn ReadOnlyFs,
    paths: &[PathBuf],
    target: Version,
    options: Options,
    baseline: Option<(String, &Baseline)>,
) -> Result<GateReport, VerifyError> {
    let named: Vec<(String, PathBuf)> = labels(paths).into_iter().zip(paths.to_vec()).collect();
    let verify_options = VerifyOptions {
        mode: DecoderMode::Strict,
        entries: EntryReading::Hold,
        ..VerifyOptions::default()
    };
    let verified = verify_named(fs, &named, &verify_options)?;
    let mut members: Vec<MemberFacts> = Vec::with_capacity(verified.members.len());
    for report in verified.members {
        let MemberReport {
            name,
            path,
            read,
            scan,
            findings,
            replay,
        } = report;
        let mut facts = gather(name, path, read, scan, findings);
        facts.kv = kv_state(replay.as_ref());
        facts.db = replay.as_ref().and_then(|r| r.db.clone());
        let boot = facts.boot_snapshot.as_ref().map_or(0, |s| s.index);
        let panicking = replay.iter().flat_map(|r| &r.panicking_entries);
        for p in panicking.filter(|p| p.index > boot) {
            if !facts.apply_panics.iter().any(|(i, _)| *i == p.index) {
                facts.apply_panics.push((
                    p.index,
                    format!(
                        "etcd {} (the release of the cluster version in force) panics applying this {} request: {}",
                        p.release, p.kind, p.reason
                    ),
                ));
            }
        }
        facts.apply_panics.sort();
        sort(&mut facts.findings);
        members.push(facts);
    }
    let state_points = verified.state_points;
    let common_index = verified.common_index;

    let rules = members
        .iter()
        .flat_map(|m| evaluate(m, target, options))
        .collect();
    let lock = baseline::baseline(&members);
    let baseline = baseline.map(|(file, was)| (file, baseline::diff(was, &lock)));
    Ok(GateReport {
        target,
        members,
        rules,
        state_points,
        common_index,
        lock,
        baseline,
        rehearsals: None,
    })
}

/// The KV state the replay reached, or why there is none.
fn kv_state(replay: Option<&MemberState>) -> Result<KvState, String> {
    let Some(state) = replay else {
        return Err("not replayed: its files have failures (see the invariants)".into());
    };
    if let Some(why) = &state.kv_unavailable {
        return Err(why.clone());
    }
    match (state.hashkv, state.revision, state.compact_revision) {
        (Some(hash), Some(revision), Some(compact_revision)) => Ok(KvState {
            applied_index: state.applied_index,
            hash,
            revision,
            compact_revision,
        }),
        _ => Err("HashKV could not be computed from the replayed store".into()),
    }
}
