//! The one verify pipeline: everything `raft-replay verify` establishes about the members of
//! one cluster, and what `gate`, `sim`, `crash` and `profile` build on.
//!
//! For each member, in order:
//! 1. open its files once ([`MemberFiles`]) and read them as etcd boots them (strict or forensic;
//!    a log etcd reads whole is read as a summary and streamed, unless entries are held);
//! 2. the decode-level findings and the invariant scan ([`check::check_member`]);
//!
//! then across members: the vote reconciliation (a vote for an id another member knows is a
//! vote for a member), the cross-member invariants ([`check::check_cluster`]); then per member
//! that decoded without a failure, the replay ([`replay_member`]: raft-rs restart and apply, the
//! follower re-execution of every persisted batch, the KV replay and its HashKV); and last the
//! HashKV agreement across members at each applied index and at the lowest one all share.
//! With several workers (`--jobs`) the same steps overlap across members (`at_once`'s
//! schedule) and the report is the same.
//!
//! A verdict is only given on complete data: a member whose spilled digests could not be read
//! back is [`VerifyError::DigestsLost`], an input that cannot be read at all is
//! [`VerifyError::Unreadable`].

mod at_once;
mod render;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::check::state_hash::StatePoint;
use crate::check::{self, vote, Finding, MemberScan};
use crate::fsio::ReadOnlyFs;
use crate::member::{read_member, MemberFiles, MemberRead, OpenError};
use crate::pool::{run_pool, Queued};
use crate::replay::member_state::{
    agreement, agreement_requests, hash_at_member, replay_member, HashAt, MemberState,
};
use crate::replay::stream::read_for_streaming;
use crate::wal::DecoderMode;

/// Whether a member's entries are held in memory after the read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryReading {
    /// A log etcd reads whole from its first segment is only counted, and the replay streams
    /// it: memory does not grow with the log.
    #[default]
    Stream,
    /// Every member's entries are held ([`MemberRead`]'s contents), for callers that inspect
    /// them (the upgrade gate's facts, the simulation's client checks).
    Hold,
}

/// How [`verify_cluster`] reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions {
    /// Strict stops where etcd stops; forensic reads past damage and lists every bad record.
    pub mode: DecoderMode,
    /// Stream or hold the entries.
    pub entries: EntryReading,
    /// Members read, checked and replayed at once: 0 is one per core. The report is the same
    /// for every value (each member's work is independent; results keep input order).
    pub jobs: usize,
}

impl VerifyOptions {
    /// The worker count for `members` members: `jobs`, 0 meaning one per core.
    fn workers(&self, members: usize) -> usize {
        crate::pool::workers_for(self.jobs, members)
    }
}

/// Why there is no verdict.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// An input is not a member's data at all (no WAL, unreadable directory).
    #[error("{path}: {source}")]
    Unreadable {
        /// The input as given.
        path: PathBuf,
        /// What is wrong with it.
        source: OpenError,
    },
    /// A member's spilled check digests could not be read back: the checks would judge a log
    /// with entries missing.
    #[error("{member}: {message}")]
    DigestsLost {
        /// The member's name in findings.
        member: String,
        /// The read error.
        message: String,
    },
}

/// One member's verification: how it was read, what the scan kept, its findings (including
/// cross-member findings filed under it) and what the replay established.
pub struct MemberReport {
    /// The member's name in its findings.
    pub name: String,
    /// The input path.
    pub path: PathBuf,
    /// etcd's boot read of the member.
    pub read: MemberRead,
    /// What the invariant scan kept (for the cross-member checks).
    pub scan: MemberScan,
    /// Decode and invariant findings sorted most severe first, then the replay's findings and
    /// the HashKV agreement's, in that order.
    pub findings: Vec<Finding>,
    /// The replay, for a member that decoded without a failure.
    pub replay: Option<MemberState>,
}

/// The verification of every member of one cluster.
pub struct ClusterReport {
    /// One report per input, in input order.
    pub members: Vec<MemberReport>,
    /// The HashKV points compared across members.
    pub state_points: Vec<StatePoint>,
    /// The lowest applied index every replayed member reached, when two or more were replayed.
    pub common_index: Option<u64>,
}

impl ClusterReport {
    /// Every finding, member by member.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.members.iter().flat_map(|m| &m.findings)
    }

    /// The findings that fail the run (violations and corruption).
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings().filter(|f| f.severity.is_failure())
    }

    /// Whether every invariant held (warnings allowed).
    pub fn holds(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Panics with every failure when an invariant did not hold: for a user's own tests.
    #[track_caller]
    pub fn assert_holds(&self) {
        let failures: Vec<String> = self.failures().map(|f| f.to_string()).collect();
        assert!(
            failures.is_empty(),
            "raft-replay: {} failure(s)\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Verifies the members at `paths` (one cluster), each named by its path.
pub fn verify_cluster(
    fs: &dyn ReadOnlyFs,
    paths: &[PathBuf],
    options: &VerifyOptions,
) -> Result<ClusterReport, VerifyError> {
    let named: Vec<(String, PathBuf)> = paths
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    verify_named(fs, &named, options)
}

/// [`verify_cluster`] with the name each member's findings carry.
pub fn verify_named(
    fs: &dyn ReadOnlyFs,
    members: &[(String, PathBuf)],
    options: &VerifyOptions,
) -> Result<ClusterReport, VerifyError> {
    verify_observed(fs, members, options, &mut Unobserved)
}

/// A step of the pipeline, as [`StepObserver`]s see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Open a member's files and read them as etcd boots.
    Decode,
    /// The decode-level findings, the invariant scan, the cross-member checks.
    Checks,
    /// The replay of a member, and the HashKV agreement's replays (with several workers, also
    /// the members' reads and checks, which overlap the replays).
    Replay,
}

/// Runs each step of the pipeline (the profiler times and names them). `work` must be called
/// exactly once.
pub trait StepObserver {
    /// Runs `work`, which is one `step`.
    fn step(&mut self, step: Step, work: &mut dyn FnMut());

    /// After a step that ran on several workers: the CPU time in it of each worker the step
    /// spawned (the calling thread works too; its time is the step's own). On idle cores the
    /// busiest of them and the calling thread bound the step's wall time, whatever else runs on
    /// the machine.
    fn workers(&mut self, _step: Step, _cpu: &[Duration]) {}
}

struct Unobserved;

impl StepObserver for Unobserved {
    fn step(&mut self, _: Step, work: &mut dyn FnMut()) {
        work()
    }
}

/// Runs `work` as `step` through `observer`, returning its value.
fn observe<T>(observer: &mut dyn StepObserver, step: Step, work: impl FnOnce() -> T) -> T {
    let mut work = Some(work);
    let mut value = None;
    observer.step(step, &mut || {
        if let Some(work) = work.take() {
            value = Some(work());
        }
    });
    match value {
        Some(value) => value,
        None => panic!("a StepObserver did not run the {step:?} step"),
    }
}

/// [`verify_named`], each step run through `observer`. With one worker each member's steps are
/// observed one by one; with several, the members' reads, checks and replays overlap (a member's
/// replay may start while others are read: see `at_once`), so one Replay step spans them all
/// and a second one the agreement.
pub fn verify_observed(
    fs: &dyn ReadOnlyFs,
    members: &[(String, PathBuf)],
    options: &VerifyOptions,
    observer: &mut dyn StepObserver,
) -> Result<ClusterReport, VerifyError> {
    let workers = options.workers(members.len());
    let (files, mut reports) = if workers == 1 {
        let mut files = Vec::with_capacity(members.len());
        let mut reports = Vec::with_capacity(members.len());
        for (name, path) in members {
            let (opened, read) = observe(observer, Step::Decode, || read_one(fs, path, options))?;
            let report = observe(observer, Step::Checks, || {
                check_one(name, path, &opened, read)
            });
            files.push(opened);
            reports.push(report);
        }
        observe(observer, Step::Checks, || check_across(&mut reports));
        digests_complete(&reports)?;
        for (report, files) in reports.iter_mut().zip(&files) {
            report.replay = observe(observer, Step::Replay, || replay_clean(report, files));
        }
        (files, reports)
    } else {
        let (done, worker_cpu) = observe(observer, Step::Replay, || {
            at_once::verify_members(fs, members, options, workers)
        });
        observer.workers(Step::Replay, &worker_cpu);
        done?
    };
    let ((state_points, common_index), worker_cpu) = observe(observer, Step::Replay, || {
        agree(&mut reports, &files, workers)
    });
    observer.workers(Step::Replay, &worker_cpu);
    digests_complete(&reports)?;
    Ok(ClusterReport {
        members: reports,
        state_points,
        common_index,
    })
}

/// Opens a member's files once and reads them as etcd boots them.
fn read_one<'fs>(
    fs: &'fs dyn ReadOnlyFs,
    path: &Path,
    options: &VerifyOptions,
) -> Result<(MemberFiles<'fs>, MemberRead), VerifyError> {
    let opened = MemberFiles::open(fs, path).map_err(|source| VerifyError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let read = match options.entries {
        EntryReading::Stream => read_for_streaming(&opened, options.mode),
        EntryReading::Hold => read_member(&opened, options.mode),
    };
    Ok((opened, read))
}

/// The decode-level findings and the invariant scan of one member read as etcd boots it.
fn check_one(name: &str, path: &Path, files: &MemberFiles<'_>, read: MemberRead) -> MemberReport {
    let check = check::check_member(name, files, &read);
    MemberReport {
        name: name.to_string(),
        path: path.to_path_buf(),
        read,
        scan: check.scan,
        findings: check.findings,
        replay: None,
    }
}

/// The vote reconciliation and the cross-member invariants; then each member's findings sorted.
fn check_across(reports: &mut [MemberReport]) {
    if reports.len() > 1 {
        // A vote for an id only another member's log knows is still a vote for a member.
        let ids: BTreeSet<u64> = reports
            .iter()
            .flat_map(|r| vote::known_ids(&r.scan))
            .collect();
        for report in reports.iter_mut() {
            report.findings.retain(|f| f.kind != vote::NOT_MEMBER);
            let findings = vote::not_member_among(&report.scan, &ids);
            report.findings.extend(findings);
        }
    }
    let scans: Vec<&MemberScan> = reports.iter().map(|r| &r.scan).collect();
    let cross = check::check_cluster(&scans);
    for finding in cross {
        if let Some(report) = reports.iter_mut().find(|r| r.scan.member == finding.member) {
            report.findings.push(finding);
        }
    }
    for report in reports.iter_mut() {
        check::sort(&mut report.findings);
    }
}

/// Whether a member is replayed: etcd's reader accepts it and the checks found no failure.
fn is_clean(report: &MemberReport) -> bool {
    report.read.contents.errors.is_empty()
        && !report.findings.iter().any(|f| f.severity.is_failure())
}

/// The replay of a member etcd's reader accepts and the checks found no failure in.
fn replay_clean(report: &mut MemberReport, files: &MemberFiles<'_>) -> Option<MemberState> {
    if !is_clean(report) {
        return None;
    }
    let mut findings = Vec::new();
    let state = replay_member(
        &report.name,
        files,
        &report.read,
        &report.scan,
        &mut findings,
    );
    report.findings.extend(findings);
    Some(state)
}

/// HashKV agreement across the replayed members: the points compared and the common index;
/// findings filed under their member. The replays to the common index it needs run on `workers`
/// threads first (longest first); each worker's CPU time.
fn agree(
    reports: &mut [MemberReport],
    files: &[MemberFiles<'_>],
    workers: usize,
) -> ((Vec<StatePoint>, Option<u64>), Vec<Duration>) {
    let replayed: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].replay.is_some())
        .collect();
    if replayed.len() < 2 {
        return ((Vec::new(), None), Vec::new());
    }
    // (member position, index) of each replay to the common index, each a different member's.
    let requests: Vec<(usize, u64)> = agreement_requests(&replayed_states(reports, &replayed))
        .into_iter()
        .map(|(k, index)| (replayed[k], index))
        .collect();
    let computed: Vec<OnceLock<Option<HashAt>>> =
        requests.iter().map(|_| OnceLock::new()).collect();
    // Each request is a different member's: its report is lent to one task.
    let tasks = reports
        .iter_mut()
        .zip(files)
        .enumerate()
        .filter_map(|(i, (report, files))| {
            let slot = requests.iter().position(|r| r.0 == i)?;
            Some(Queued {
                priority: requests[slot].1,
                task: (slot, report, files),
            })
        })
        .collect();
    let worker_cpu = run_pool(
        tasks,
        workers,
        |(slot, report, files): (usize, &mut MemberReport, _)| {
            let index = requests[slot].1;
            let at = hash_at_member(&report.name, files, &report.read, &report.scan.log, index);
            let _ = computed[slot].set(at);
            Vec::new()
        },
    );
    let outcome = {
        let members = replayed_states(reports, &replayed);
        let hash_at = |k: usize, index: u64| {
            let key = (*replayed.get(k)?, index);
            let task = requests.iter().position(|r| *r == key)?;
            computed[task].get().copied().flatten()
        };
        agreement(&members, &hash_at)
    };
    for finding in outcome.findings {
        if let Some(report) = reports.iter_mut().find(|r| r.name == finding.member) {
            report.findings.push(finding);
        }
    }
    ((outcome.points, outcome.common_index), worker_cpu)
}

/// (name, replay) of the members at positions `replayed` (each has a replay).
fn replayed_states<'r>(
    reports: &'r [MemberReport],
    replayed: &[usize],
) -> Vec<(String, &'r MemberState)> {
    replayed
        .iter()
        .filter_map(|&i| Some((reports[i].name.clone(), reports[i].replay.as_ref()?)))
        .collect()
}

/// Err when a member's spilled digests could not be read back.
fn digests_complete(reports: &[MemberReport]) -> Result<(), VerifyError> {
    match reports
        .iter()
        .find_map(|r| r.scan.log.spill_error().map(|e| (r, e)))
    {
        Some((report, error)) => Err(VerifyError::DigestsLost {
            member: report.name.clone(),
            message: error.to_string(),
        }),
        None => Ok(()),
    }
}
