//! The profiled workload is `verify` itself: the one pipeline ([`crate::verify`]: etcd's boot
//! read, the invariant checks, the raft-rs replay into the MVCC model with the follower
//! re-execution, the HashKV agreement), each step timed at its boundaries. A log read whole
//! from the beginning is not held: the boot read only counts its entries and the replay streams
//! them from the WAL (`replay::stream`), so memory does not grow with it beyond the scan's
//! 8-byte digests.
//!
//! Each step runs inside a separate non-inlined function so that every CPU sample's stack names
//! the step it was taken in ([`PHASE_FRAMES`]); the profile's sub-phase split relies on it.

use std::path::PathBuf;

use super::clock::{Span, Stamp};
use crate::fsio::ReadOnlyFs;
pub use crate::verify::Step;
use crate::verify::{verify_observed, StepObserver, VerifyOptions};

/// Function names (as they appear in symbolised stacks) of the three measured steps.
pub const PHASE_FRAMES: [(&str, Step); 3] = [
    ("profile::workload::phase_decode", Step::Decode),
    ("profile::workload::phase_replay", Step::Replay),
    ("profile::workload::phase_checks", Step::Checks),
];

/// How a member was replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayKind {
    /// raft-rs restart + apply of the whole log into the MVCC model.
    Kv,
    /// The WAL starts after a snapshot: raft-rs restart + apply only (no KV state to rebuild).
    RaftOnly,
}

#[derive(Clone, Debug)]
pub struct MemberRun {
    pub path: PathBuf,
    pub entries: u64,
    pub applied: u64,
    pub replay: ReplayKind,
    pub findings: usize,
    pub failures: usize,
}

/// Measured spans of one run over all members.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepSpans {
    pub decode: Span,
    pub replay: Span,
    pub checks: Span,
    /// (allocations, bytes allocated) per step; zeros unless built with `alloc-profile`.
    pub decode_allocs: (u64, u64),
    pub replay_allocs: (u64, u64),
    pub checks_allocs: (u64, u64),
}

impl StepSpans {
    pub fn total(&self) -> Span {
        self.decode + self.replay + self.checks
    }

    pub fn step(&self, step: Step) -> Span {
        match step {
            Step::Decode => self.decode,
            Step::Replay => self.replay,
            Step::Checks => self.checks,
        }
    }
}

impl std::ops::AddAssign for StepSpans {
    fn add_assign(&mut self, rhs: StepSpans) {
        self.decode += rhs.decode;
        self.replay += rhs.replay;
        self.checks += rhs.checks;
        for (a, b) in [
            (&mut self.decode_allocs, rhs.decode_allocs),
            (&mut self.replay_allocs, rhs.replay_allocs),
            (&mut self.checks_allocs, rhs.checks_allocs),
        ] {
            add_allocs(a, b);
        }
    }
}

#[derive(Clone, Debug)]
pub struct WorkloadRun {
    pub spans: StepSpans,
    pub members: Vec<MemberRun>,
    pub cluster_findings: usize,
}

impl WorkloadRun {
    pub fn entries(&self) -> u64 {
        self.members.iter().map(|m| m.entries).sum()
    }

    pub fn applied(&self) -> u64 {
        self.members.iter().map(|m| m.applied).sum()
    }
}

/// What one step cost: its span and (allocations, bytes allocated).
struct Timed {
    span: Span,
    allocs: (u64, u64),
}

/// (allocations, bytes allocated) so far, when the counting allocator is in.
fn alloc_counters() -> (u64, u64) {
    #[cfg(feature = "alloc-profile")]
    {
        let c = super::alloc::counters();
        (c.allocs, c.bytes)
    }
    #[cfg(not(feature = "alloc-profile"))]
    {
        (0, 0)
    }
}

fn add_allocs(total: &mut (u64, u64), step: (u64, u64)) {
    total.0 += step.0;
    total.1 += step.1;
}

fn timed(f: impl FnOnce()) -> Timed {
    let allocs_before = alloc_counters();
    let start = Stamp::now();
    f();
    let span = start.elapsed();
    let allocs_after = alloc_counters();
    Timed {
        span,
        allocs: (
            allocs_after.0 - allocs_before.0,
            allocs_after.1 - allocs_before.1,
        ),
    }
}

/// Times each step of the verify pipeline and runs it inside a named, non-inlined frame.
#[derive(Default)]
struct StepTimer {
    spans: StepSpans,
}

impl StepObserver for StepTimer {
    fn step(&mut self, step: Step, work: &mut dyn FnMut()) {
        let run = timed(|| match step {
            Step::Decode => phase_decode(work),
            Step::Checks => phase_checks(work),
            Step::Replay => phase_replay(work),
        });
        let (span, allocs) = match step {
            Step::Decode => (&mut self.spans.decode, &mut self.spans.decode_allocs),
            Step::Checks => (&mut self.spans.checks, &mut self.spans.checks_allocs),
            Step::Replay => (&mut self.spans.replay, &mut self.spans.replay_allocs),
        };
        *span += run.span;
        add_allocs(allocs, run.allocs);
    }
}

#[inline(never)]
fn phase_decode(work: &mut dyn FnMut()) {
    // Distinct bodies: identical functions would be folded into one symbol.
    std::hint::black_box(Step::Decode);
    work()
}

#[inline(never)]
fn phase_checks(work: &mut dyn FnMut()) {
    // Distinct bodies: identical functions would be folded into one symbol.
    std::hint::black_box(Step::Checks);
    work()
}

#[inline(never)]
fn phase_replay(work: &mut dyn FnMut()) {
    // Distinct bodies: identical functions would be folded into one symbol.
    std::hint::black_box(Step::Replay);
    work()
}

/// One pass of the verify pipeline over every member ([`crate::verify::verify_observed`]: what
/// `verify` does), each step timed.
pub fn run_once(fs: &dyn ReadOnlyFs, paths: &[PathBuf]) -> Result<WorkloadRun, String> {
    let named: Vec<(String, PathBuf)> = paths
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    let mut timer = StepTimer::default();
    // One worker: each member's steps are timed on their own.
    let options = VerifyOptions {
        jobs: 1,
        ..VerifyOptions::default()
    };
    let report = verify_observed(fs, &named, &options, &mut timer).map_err(|e| e.to_string())?;
    let members = report
        .members
        .iter()
        .map(|m| {
            let replay = match &m.replay {
                Some(state) if state.kv_unavailable.is_none() => ReplayKind::Kv,
                _ => ReplayKind::RaftOnly,
            };
            let applied = m
                .replay
                .as_ref()
                .map_or(0, |s| s.applied_index.saturating_sub(m.read.start.index));
            MemberRun {
                path: m.path.clone(),
                entries: m.read.contents.entry_count as u64,
                applied,
                replay,
                findings: m.findings.len(),
                failures: m
                    .findings
                    .iter()
                    .filter(|f| f.severity.is_failure())
                    .count(),
            }
        })
        .collect();
    let cluster_findings = report
        .findings()
        .filter(|f| f.kind.starts_with("cluster."))
        .count();
    Ok(WorkloadRun {
        spans: timer.spans,
        members,
        cluster_findings,
    })
}
