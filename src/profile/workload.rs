//! The profiled workload: what `verify` does for each member (etcd's boot read, the invariant
//! checks) plus the raft-rs replay into the MVCC model, each step timed at its boundaries.
//! A log read whole from the beginning is not held: the boot read only counts its entries and
//! the replay streams them from the WAL (`replay::stream`), so memory does not grow with it
//! beyond the scan's 8-byte digests.
//!
//! The three steps are separate non-inlined functions so that every CPU sample's stack names the
//! step it was taken in ([`PHASE_FRAMES`]); the profile's sub-phase split relies on it.

use std::path::{Path, PathBuf};

use super::clock::{Span, Stamp};
use crate::check::scan::ResolvedLog;
use crate::check::{check_cluster, check_member, MemberScan};
use crate::fsio::ReadOnlyFs;
use crate::member::{read_member, MemberFiles, MemberRead};
use crate::replay::kv::{node_id, replay_kv, restart_state, KvReplayError};
use crate::replay::restart::restart_and_apply;
use crate::replay::stream::{read_for_streaming, replay_kv_streaming, streamable};
use crate::wal::DecoderMode;

/// Function names (as they appear in symbolised stacks) of the three measured steps.
pub const PHASE_FRAMES: [(&str, Step); 3] = [
    ("profile::workload::phase_decode", Step::Decode),
    ("profile::workload::phase_replay", Step::Replay),
    ("profile::workload::phase_checks", Step::Checks),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Open the member dir and read it as etcd boots (read, CRC, protobuf decode, ReadAll),
    /// without keeping the entries when the log can be streamed (`replay::stream`).
    Decode,
    /// raft-rs restart + apply, feeding committed entries to the MVCC model (streamed from the
    /// WAL: the entries' second read is part of this step).
    Replay,
    /// Decode-level findings, the per-member invariant scan (its own pass over the WAL) and the
    /// cross-member checks.
    Checks,
}

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

struct Timed<T> {
    value: T,
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

fn timed<T>(f: impl FnOnce() -> T) -> Timed<T> {
    let allocs_before = alloc_counters();
    let start = Stamp::now();
    let value = f();
    let span = start.elapsed();
    let allocs_after = alloc_counters();
    Timed {
        value,
        span,
        allocs: (
            allocs_after.0 - allocs_before.0,
            allocs_after.1 - allocs_before.1,
        ),
    }
}

#[inline(never)]
fn phase_decode<'fs>(
    fs: &'fs dyn ReadOnlyFs,
    path: &Path,
) -> Result<(MemberFiles<'fs>, MemberRead), String> {
    let files = MemberFiles::open(fs, path).map_err(|e| e.to_string())?;
    // A log read whole from the beginning without an error is streamed by the replay; any
    // other read keeps its entries (the replay needs them).
    let read = read_for_streaming(&files, DecoderMode::Strict);
    Ok((files, read))
}

/// Returns (kind, entries applied). The MVCC store is dropped inside the step: freeing the
/// model is part of the replay's cost. A summary read is streamed over the scan's `log`; when
/// it cannot be (or the stream fails), the member is read again with its entries.
#[inline(never)]
fn phase_replay(
    name: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    log: &ResolvedLog,
) -> (ReplayKind, u64) {
    if !read.contents.kept_entries {
        if streamable(files, read, log) {
            if let Ok(Ok(kv)) = replay_kv_streaming(name, files, read, log, None, &mut |_| {}) {
                let applied = kv.raft.entries_applied + kv.applied_beyond_commit;
                drop(std::hint::black_box(kv));
                return (ReplayKind::Kv, applied);
            }
        }
        let full = read_member(files, DecoderMode::Strict);
        return phase_replay_held(name, &full);
    }
    phase_replay_held(name, read)
}

fn phase_replay_held(name: &str, read: &MemberRead) -> (ReplayKind, u64) {
    match replay_kv(name, read, None, &mut |_| {}) {
        Ok(kv) => {
            let applied = kv.raft.entries_applied + kv.applied_beyond_commit;
            drop(std::hint::black_box(kv));
            (ReplayKind::Kv, applied)
        }
        Err(KvReplayError::NeedsHistory { .. }) => {
            let state = restart_state(name, read);
            let outcome = restart_and_apply(
                &state,
                node_id(read),
                read.contents.hard_state.commit,
                &mut |e| {
                    std::hint::black_box(e);
                },
            );
            (ReplayKind::RaftOnly, outcome.entries_applied)
        }
    }
}

#[inline(never)]
fn phase_checks(
    name: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
) -> (MemberScan, usize, usize) {
    let check = check_member(name, files, read);
    let failures = check
        .findings
        .iter()
        .filter(|f| f.severity.is_failure())
        .count();
    (check.scan, check.findings.len(), failures)
}

#[inline(never)]
fn phase_checks_cluster(scans: &[&MemberScan]) -> usize {
    check_cluster(scans).len()
}

/// One pass over every member: decode, replay, checks, then the cross-member checks.
pub fn run_once(fs: &dyn ReadOnlyFs, paths: &[PathBuf]) -> Result<WorkloadRun, String> {
    let mut spans = StepSpans::default();
    let mut members = Vec::with_capacity(paths.len());
    let mut scans = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path.display().to_string();
        let decode = timed(|| phase_decode(fs, path));
        spans.decode += decode.span;
        add_allocs(&mut spans.decode_allocs, decode.allocs);
        let (files, read) = decode.value?;
        // The checks first: their scan's resolved log is what the replay streams against.
        let checks = timed(|| phase_checks(&name, &files, &read));
        spans.checks += checks.span;
        add_allocs(&mut spans.checks_allocs, checks.allocs);
        let (scan, findings, failures) = checks.value;
        let replay = timed(|| phase_replay(&name, &files, &read, &scan.log));
        spans.replay += replay.span;
        add_allocs(&mut spans.replay_allocs, replay.allocs);
        scans.push(scan);
        members.push(MemberRun {
            path: path.clone(),
            entries: read.contents.entry_count as u64,
            applied: replay.value.1,
            replay: replay.value.0,
            findings,
            failures,
        });
    }
    let cluster = timed(|| {
        let refs: Vec<&MemberScan> = scans.iter().collect();
        phase_checks_cluster(&refs)
    });
    spans.checks += cluster.span;
    add_allocs(&mut spans.checks_allocs, cluster.allocs);
    Ok(WorkloadRun {
        spans,
        members,
        cluster_findings: cluster.value,
    })
}
