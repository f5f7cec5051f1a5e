//! `raft-replay gate`: can a cluster's data be upgraded to etcd `TARGET`, do Raft's invariants
//! hold on it, do the members' key spaces agree, and did anything change since a baseline?
//!
//! One concern a file: [`version`] (etcd version numbers), [`min_version`] (etcd's
//! `MinimalEtcdVersion`), [`v2`] (v2 requests and v2-store content per release), [`membership`]
//! (conf-change kinds, learners), [`facts`] (one pass over a member), [`rules`] (the upgrade
//! rules), [`baseline`] (the lock file and its diff), [`report`] (text, JSON, JUnit).
//!
//! The invariant part is `verify`'s: [`crate::check::check_member`] per member, then
//! [`crate::check::check_cluster`], plus the KV replay's HashKV compared across members
//! ([`crate::check::state_hash`]).

pub mod baseline;
pub mod facts;
pub mod membership;
pub mod min_version;
pub mod report;
pub mod rules;
pub mod v2;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::check::state_hash::{self, StatePoint};
use crate::check::{check_cluster, check_member, sort, Finding, MemberScan};
use crate::fsio::ReadOnlyFs;
use crate::member::{read_member, MemberFiles};
use crate::wal::DecoderMode;

use baseline::{Baseline, Change};
use facts::{gather, replay_state, MemberFacts};
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

    pub fn passed(&self) -> bool {
        self.blocked().next().is_none() && self.failures() == 0 && self.baseline_changes() == 0
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

/// Runs every part of the gate. Err: an input cannot be read at all (exit 2).
pub fn run_gate(
    fs: &dyn ReadOnlyFs,
    paths: &[PathBuf],
    target: Version,
    options: Options,
    baseline: Option<(String, &Baseline)>,
) -> Result<GateReport, String> {
    // Read, check and scan each member as `verify` does.
    let mut members: Vec<MemberFacts> = Vec::new();
    let mut scans: Vec<MemberScan> = Vec::new();
    let mut reads = Vec::new();
    for (path, label) in paths.iter().zip(labels(paths)) {
        let files = MemberFiles::open(fs, path).map_err(|e| e.to_string())?;
        let read = read_member(&files, DecoderMode::Strict);
        let check = check_member(&label, &files, &read);
        scans.push(check.scan);
        reads.push((label, path.clone(), read, check.findings));
    }
    let cross = {
        let refs: Vec<&MemberScan> = scans.iter().collect();
        check_cluster(&refs)
    };
    // A member whose spilled digests could not be read back was compared on a partial log.
    crate::check::spill_failure(&scans)?;
    for ((label, path, read, mut findings), scan) in reads.into_iter().zip(scans) {
        findings.extend(cross.iter().filter(|f| f.member == label).cloned());
        members.push(gather(label, path, read, scan, findings));
    }

    // KV replay: HashKV per member, then agreement at a common applied index.
    for m in &mut members {
        match replay_state(m, None) {
            Ok((kv, raft_findings, panicking)) => {
                m.kv = Ok(kv);
                m.findings.extend(raft_findings);
                let boot = m.boot_snapshot.as_ref().map_or(0, |s| s.index);
                for index in panicking.into_iter().filter(|i| *i > boot) {
                    if !m.apply_panics.iter().any(|(i, _)| *i == index) {
                        m.apply_panics.push((
                            index,
                            "etcd's applier panics on this request (MVCC model of etcd 3.4)".into(),
                        ));
                    }
                }
            }
            Err(e) => m.kv = Err(e),
        }
    }
    let mut state_points = Vec::new();
    let point = |label: &str, kv: &facts::KvState| StatePoint {
        member: label.to_string(),
        applied_index: kv.applied_index,
        hash: u64::from(kv.hash),
        what: format!(
            "HashKV {:#010x} (revision {}, compact revision {})",
            kv.hash, kv.revision, kv.compact_revision
        ),
    };
    for m in &members {
        if let Ok(kv) = &m.kv {
            state_points.push(point(&m.label, kv));
        }
    }
    let replayed: Vec<u64> = members
        .iter()
        .filter_map(|m| m.kv.as_ref().ok().map(|k| k.applied_index))
        .collect();
    let common_index = (replayed.len() >= 2)
        .then(|| replayed.iter().copied().min())
        .flatten();
    if let Some(common) = common_index {
        for m in &members {
            if m.kv.as_ref().is_ok_and(|k| k.applied_index > common) {
                if let Ok((kv, _, _)) = replay_state(m, Some(common)) {
                    state_points.push(point(&m.label, &kv));
                }
            }
        }
    }
    for finding in state_hash::check(&state_points) {
        if let Some(m) = members.iter_mut().find(|m| m.label == finding.member) {
            m.findings.push(finding);
        }
    }
    for m in &mut members {
        m.apply_panics.sort();
        sort(&mut m.findings);
    }

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
    })
}
