//! The members' reads, checks and replays on several workers, overlapping: the reports the
//! phases run one after the other give ([`super::verify_observed`] with one worker).
//!
//! Tasks, highest priority first: every member's read and own checks (input order); then the
//! two replay parts of each member, longest first. A member's follower re-execution needs only
//! its read, so it is queued as soon as the member's own checks find no failure, while other
//! members are still being read; the cross-member checks run when the last member's own checks
//! are done, and only then is a member judged clean: its KV replay is queued (and its follower
//! re-execution, if its own checks had failed it), and a follower re-execution queued for a
//! member they fail is dropped. No worker waits while a task is ready.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{check_across, check_one, digests_complete, is_clean, read_one, MemberReport};
use super::{VerifyError, VerifyOptions};
use crate::check::Finding;
use crate::fsio::ReadOnlyFs;
use crate::member::MemberFiles;
use crate::pool::{lock, run_pool, Queued};
use crate::replay::follower::FollowerOutcome;
use crate::replay::member_state::{join_parts, replay_state, FollowerInput, MemberState};

/// The follower re-execution costs about twice the KV replay per entry (cluster-a, release
/// build): the weights that order the replay parts, longest first.
const FOLLOWER_WEIGHT: u64 = 2;

/// Reads and their checks come before any replay part.
const READ_PRIORITY: u64 = u64::MAX;

enum Task {
    Read(usize),
    Follower(usize, FollowerInput),
    State(usize),
}

/// One member's slots, each written by one task.
#[derive(Default)]
struct Slots<'fs> {
    files: OnceLock<MemberFiles<'fs>>,
    report: Mutex<Option<MemberReport>>,
    unreadable: OnceLock<VerifyError>,
    follower_queued: OnceLock<()>,
    follower: OnceLock<Option<FollowerOutcome>>,
    state: OnceLock<(MemberState, Vec<Finding>)>,
}

struct AtOnce<'a, 'fs> {
    fs: &'fs dyn ReadOnlyFs,
    members: &'a [(String, PathBuf)],
    options: &'a VerifyOptions,
    slots: Vec<Slots<'fs>>,
    reads_left: AtomicUsize,
    /// Per member, whether it is replayed: set once every member's checks are done.
    clean: OnceLock<Vec<bool>>,
}

/// The files and reports of every member in input order, or why there is no verdict.
type Verified<'fs> = Result<(Vec<MemberFiles<'fs>>, Vec<MemberReport>), VerifyError>;

/// Every member read, checked (on its own and across members) and replayed on `workers`
/// threads; the files and the reports in input order, with each worker's CPU time. The first
/// unreadable input (in input order) or lost digests is the error, as one worker gives.
pub(super) fn verify_members<'fs>(
    fs: &'fs dyn ReadOnlyFs,
    members: &[(String, PathBuf)],
    options: &VerifyOptions,
    workers: usize,
) -> (Verified<'fs>, Vec<Duration>) {
    let run = AtOnce {
        fs,
        members,
        options,
        slots: members.iter().map(|_| Slots::default()).collect(),
        reads_left: AtomicUsize::new(members.len()),
        clean: OnceLock::new(),
    };
    let reads = (0..members.len())
        .map(|i| Queued {
            priority: READ_PRIORITY,
            task: Task::Read(i),
        })
        .collect();
    let worker_cpu = run_pool(reads, workers, |task| run.run(task));
    (run.assemble(), worker_cpu)
}

impl<'fs> AtOnce<'_, 'fs> {
    fn run(&self, task: Task) -> Vec<Queued<Task>> {
        match task {
            Task::Read(i) => {
                let mut more = self.read(i);
                if self.reads_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    more.extend(self.across());
                }
                more
            }
            Task::Follower(i, input) => {
                let (name, _) = &self.members[i];
                // An unreadable input means no verdict: a speculative part is not worth running.
                if self.slots.iter().any(|s| s.unreadable.get().is_some()) {
                    return Vec::new();
                }
                if let Some(files) = self.slots[i].files.get() {
                    let _ = self.slots[i].follower.set(input.reexecute(name, files));
                }
                Vec::new()
            }
            Task::State(i) => {
                let slots = &self.slots[i];
                if let (Some(files), Some(report)) = (slots.files.get(), &*lock(&slots.report)) {
                    let mut findings = Vec::new();
                    let state = replay_state(
                        &report.name,
                        files,
                        &report.read,
                        &report.scan,
                        &mut findings,
                    );
                    let _ = slots.state.set((state, findings));
                }
                Vec::new()
            }
        }
    }

    /// A member's read and own checks; its follower re-execution when they find no failure.
    fn read(&self, i: usize) -> Vec<Queued<Task>> {
        let (name, path) = &self.members[i];
        let slots = &self.slots[i];
        let (files, read) = match read_one(self.fs, path, self.options) {
            Ok(opened) => opened,
            Err(e) => {
                let _ = slots.unreadable.set(e);
                return Vec::new();
            }
        };
        let report = check_one(name, path, &files, read);
        let follower = is_clean(&report).then(|| self.follower(i, &report));
        let _ = slots.files.set(files);
        *lock(&slots.report) = Some(report);
        follower.into_iter().collect()
    }

    fn follower(&self, i: usize, report: &MemberReport) -> Queued<Task> {
        let _ = self.slots[i].follower_queued.set(());
        Queued {
            priority: replay_cost(report) * FOLLOWER_WEIGHT,
            task: Task::Follower(i, FollowerInput::of(&report.read)),
        }
    }

    /// The cross-member checks, once every member's own are done; then the replay parts of
    /// every clean member not queued yet. Nothing is queued when there will be no verdict.
    fn across(&self) -> Vec<Queued<Task>> {
        if self.slots.iter().any(|s| s.unreadable.get().is_some()) {
            return Vec::new();
        }
        // No replay part that reads a report runs before this is done.
        let mut reports: Vec<MemberReport> = self
            .slots
            .iter()
            .filter_map(|s| lock(&s.report).take())
            .collect();
        check_across(&mut reports);
        let complete = digests_complete(&reports).is_ok();
        let clean: Vec<bool> = reports.iter().map(|r| complete && is_clean(r)).collect();
        let mut more = Vec::new();
        for (i, (report, &clean)) in reports.iter().zip(&clean).enumerate() {
            if !clean {
                continue;
            }
            if self.slots[i].follower_queued.get().is_none() {
                more.push(self.follower(i, report));
            }
            more.push(Queued {
                priority: replay_cost(report),
                task: Task::State(i),
            });
        }
        for (slots, report) in self.slots.iter().zip(reports) {
            *lock(&slots.report) = Some(report);
        }
        let _ = self.clean.set(clean);
        more
    }

    fn assemble(self) -> Verified<'fs> {
        let clean = self.clean.into_inner().unwrap_or_default();
        let mut files = Vec::with_capacity(self.slots.len());
        let mut reports = Vec::with_capacity(self.slots.len());
        for (i, slots) in self.slots.into_iter().enumerate() {
            if let Some(e) = slots.unreadable.into_inner() {
                return Err(e);
            }
            let (Some(opened), Some(mut report)) = (
                slots.files.into_inner(),
                slots.report.into_inner().unwrap_or_else(|e| e.into_inner()),
            ) else {
                unreachable!("a member read without an error has its files and report")
            };
            if clean.get(i) == Some(&true) {
                if let (Some(follower), Some((state, rest))) =
                    (slots.follower.into_inner(), slots.state.into_inner())
                {
                    report.replay = Some(join_parts(state, follower, rest, &mut report.findings));
                }
            }
            files.push(opened);
            reports.push(report);
        }
        digests_complete(&reports)?;
        Ok((files, reports))
    }
}

/// A replay's cost in entries.
fn replay_cost(report: &MemberReport) -> u64 {
    report.scan.log.len() as u64 + 1
}
