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
//!
//! A verdict is only given on complete data: a member whose spilled digests could not be read
//! back is [`VerifyError::DigestsLost`], an input that cannot be read at all is
//! [`VerifyError::Unreadable`].

mod render;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::check::state_hash::StatePoint;
use crate::check::{self, vote, Finding, MemberScan};
use crate::fsio::ReadOnlyFs;
use crate::member::{read_member, MemberFiles, MemberRead, OpenError};
use crate::profile::clock::thread_cpu;
use crate::replay::follower::FollowerOutcome;
use crate::replay::member_state::{
    agreement, agreement_requests, hash_at_member, join_parts, replay_member, replay_state,
    FollowerInput, MemberState,
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
        let jobs = match self.jobs {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        jobs.clamp(1, members.max(1))
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
    /// The replay of a member, and the HashKV agreement's replays.
    Replay,
}

/// Runs each step of the pipeline (the profiler times and names them). `work` must be called
/// exactly once.
pub trait StepObserver {
    /// Runs `work`, which is one `step`.
    fn step(&mut self, step: Step, work: &mut dyn FnMut());

    /// After a step that ran on several workers: each worker's CPU time in it. On idle cores the
    /// busiest worker bounds the step's wall time, whatever else runs on the machine.
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
/// observed one by one; with several, a step spans that phase's work on every member: one
/// Decode step every member's read and own checks (one task per member), one Checks step the
/// cross-member checks, Replay steps the replays (two tasks per member) and the agreement.
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
        (files, reports)
    } else {
        // A member's read and its own checks run as one task.
        let done = observe_parallel(observer, Step::Decode, || {
            parallel_map(members.iter().collect(), workers, |(name, path)| {
                let (opened, read) = read_one(fs, path, options)?;
                let report = check_one(name, path, &opened, read);
                Ok::<_, VerifyError>((opened, report))
            })
        });
        done.into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip()
    };
    observe(observer, Step::Checks, || check_across(&mut reports));
    digests_complete(&reports)?;
    if workers == 1 {
        for (report, files) in reports.iter_mut().zip(&files) {
            report.replay = observe(observer, Step::Replay, || replay_clean(report, files));
        }
    } else {
        let parts = observe_parallel(observer, Step::Replay, || {
            replay_parts(&mut reports, &files, workers)
        });
        join_replays(&mut reports, parts);
    }
    let (state_points, common_index) = observe_parallel(observer, Step::Replay, || {
        agree(&mut reports, &files, workers)
    })
    .pop()
    .unwrap_or_default();
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

/// Stack of a worker thread: a member's replay runs there as it would on the main thread.
const WORKER_STACK: usize = 16 << 20;

/// `f` over `items` on `workers` threads, results in the order of `items`. A panic in `f` is
/// re-raised on the caller's thread.
fn parallel_map<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Parallel<R> {
    let order: Vec<usize> = (0..items.len()).collect();
    parallel_map_ordered(items, &order, workers, f)
}

/// Results in the order of the items, and each worker's CPU time.
struct Parallel<R> {
    results: Vec<R>,
    worker_cpu: Vec<Duration>,
}

/// [`parallel_map`], the items started in `order` (a permutation of their positions: the
/// longest first keeps the workers busy to the end); results still in the order of `items`.
fn parallel_map_ordered<T: Send, R: Send>(
    items: Vec<T>,
    order: &[usize],
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Parallel<R> {
    let count = items.len();
    let workers = workers.min(count);
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let start = thread_cpu();
        while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let item = queue
                .get(i)
                .and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take());
            if let Some(item) = item {
                let value = f(item);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
            }
        }
        thread_cpu().saturating_sub(start)
    };
    let mut worker_cpu = Vec::with_capacity(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(scope, work)
            })
            .collect();
        for handle in handles {
            match handle {
                Ok(handle) => match handle.join() {
                    Ok(cpu) => worker_cpu.push(cpu),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to spare: this one does the work.
                Err(_) => worker_cpu.push(work()),
            }
        }
    });
    let results = results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was mapped by a worker that returned")
        })
        .collect();
    Parallel {
        results,
        worker_cpu,
    }
}

/// [`observe`] of a step run by [`parallel_map`]: the observer also gets each worker's CPU time.
fn observe_parallel<R>(
    observer: &mut dyn StepObserver,
    step: Step,
    work: impl FnOnce() -> Parallel<R>,
) -> Vec<R> {
    let done = observe(observer, step, work);
    observer.workers(step, &done.worker_cpu);
    done.results
}

/// Positions of `costs` from the largest cost to the smallest (ties in input order).
fn largest_first(costs: &[u64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
    order
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

/// One of a clean member's two independent replay parts ([`replay_member`]'s).
enum ReplayTask<'r, 'fs> {
    Follower {
        member: usize,
        name: String,
        input: FollowerInput,
        files: &'r MemberFiles<'fs>,
    },
    State {
        member: usize,
        report: &'r mut MemberReport,
        files: &'r MemberFiles<'fs>,
    },
}

enum ReplayPart {
    Follower(Option<FollowerOutcome>),
    State(Box<MemberState>, Vec<Finding>),
}

/// The follower re-execution costs about twice the KV replay per entry (cluster-a, release
/// build): the weights that order the tasks, longest first.
const FOLLOWER_WEIGHT: u64 = 2;

/// The two replay parts of every member [`replay_clean`] replays, as separate tasks on `workers`
/// threads (longest first, by entries); each result with its member's position.
fn replay_parts(
    reports: &mut [MemberReport],
    files: &[MemberFiles<'_>],
    workers: usize,
) -> Parallel<(usize, ReplayPart)> {
    let mut tasks = Vec::new();
    let mut costs = Vec::new();
    for (i, (report, files)) in reports.iter_mut().zip(files).enumerate() {
        if !is_clean(report) {
            continue;
        }
        let entries = report.scan.log.len() as u64 + 1;
        tasks.push(ReplayTask::Follower {
            member: i,
            name: report.name.clone(),
            input: FollowerInput::of(&report.read),
            files,
        });
        costs.push(entries * FOLLOWER_WEIGHT);
        tasks.push(ReplayTask::State {
            member: i,
            report,
            files,
        });
        costs.push(entries);
    }
    let order = largest_first(&costs);
    parallel_map_ordered(tasks, &order, workers, |task| match task {
        ReplayTask::Follower {
            member,
            name,
            input,
            files,
        } => (member, ReplayPart::Follower(input.reexecute(&name, files))),
        ReplayTask::State {
            member,
            report,
            files,
        } => {
            let mut findings = Vec::new();
            let state = replay_state(
                &report.name,
                files,
                &report.read,
                &report.scan,
                &mut findings,
            );
            (member, ReplayPart::State(Box::new(state), findings))
        }
    })
}

/// Each member's two parts (consecutive, follower first) joined into its replay: the reports
/// [`replay_clean`] one by one gives.
fn join_replays(reports: &mut [MemberReport], parts: Vec<(usize, ReplayPart)>) {
    let mut parts = parts.into_iter();
    while let (
        Some((i, ReplayPart::Follower(follower))),
        Some((j, ReplayPart::State(state, rest))),
    ) = (parts.next(), parts.next())
    {
        debug_assert_eq!(i, j, "a member's two parts are consecutive");
        let report = &mut reports[i];
        report.replay = Some(join_parts(*state, follower, rest, &mut report.findings));
    }
}

/// HashKV agreement across the replayed members (one result); findings filed under their
/// member. The replays to the common index it needs run on `workers` threads first.
fn agree(
    reports: &mut [MemberReport],
    files: &[MemberFiles<'_>],
    workers: usize,
) -> Parallel<(Vec<StatePoint>, Option<u64>)> {
    let replayed: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].replay.is_some())
        .collect();
    if replayed.len() < 2 {
        return Parallel {
            results: vec![(Vec::new(), None)],
            worker_cpu: Vec::new(),
        };
    }
    let requests = agreement_requests(&replayed_states(reports, &replayed));
    // Each request is a different member's: its report is lent to one task.
    let mut wanted: Vec<Option<u64>> = vec![None; reports.len()];
    for &(k, index) in &requests {
        wanted[replayed[k]] = Some(index);
    }
    let work: Vec<(usize, &mut MemberReport, &MemberFiles<'_>, u64)> = reports
        .iter_mut()
        .zip(files)
        .zip(&wanted)
        .enumerate()
        .filter_map(|(i, ((report, files), index))| Some((i, report, files, (*index)?)))
        .collect();
    let costs: Vec<u64> = work.iter().map(|w| w.3).collect();
    let Parallel {
        results: computed,
        worker_cpu,
    } = parallel_map_ordered(
        work,
        &largest_first(&costs),
        workers,
        |(i, report, files, index)| {
            let at = hash_at_member(&report.name, files, &report.read, &report.scan.log, index);
            ((i, index), at)
        },
    );
    let outcome = {
        let members = replayed_states(reports, &replayed);
        let hash_at = |k: usize, index: u64| {
            let key = (*replayed.get(k)?, index);
            computed
                .iter()
                .find(|(c, _)| *c == key)
                .and_then(|(_, at)| *at)
        };
        agreement(&members, &hash_at)
    };
    for finding in outcome.findings {
        if let Some(report) = reports.iter_mut().find(|r| r.name == finding.member) {
            report.findings.push(finding);
        }
    }
    Parallel {
        results: vec![(outcome.points, outcome.common_index)],
        worker_cpu,
    }
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
