//! `raft-replay crash` throughput: record-boundary enumeration of one member (budget: a
//! ~1,300-entry member under 5 s on one core) and a 3-member cluster, every class (budget: within
//! 2 minutes). Measured on the real cluster-a capture (m1 has 5,510 entries: measured and
//! scaled to 1,300) and on a 1,300-entry member written with the etcd-exact writer.
//!
//! `cargo bench --bench crash` — prints wall and CPU seconds (the code is single-threaded, so
//! CPU time is the one-core figure even on a busy machine).

mod common;
use common::unpack;

use std::path::{Path, PathBuf};
use std::time::Instant;

use raft_replay::crash::fixture::synthetic_member;
use raft_replay::crash::{enumerate_cluster, enumerate_member, FaultClass, Options, Outcome};
use raft_replay::fsio::RealFs;

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let cpu = cpu_seconds();
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

fn boundaries() -> Options {
    Options {
        classes: vec![FaultClass::RecordBoundary],
        cross_checks: 0,
        kv: false,
        ..Options::default()
    }
}

fn record_boundaries(label: &str, path: &Path, budget_entries: u64) {
    let mut best = (f64::MAX, f64::MAX);
    let mut states = 0;
    let mut entries = 0;
    for _ in 0..3 {
        let (run, wall, cpu) = measure(|| enumerate_member(&RealFs, path, &boundaries()).unwrap());
        assert_eq!(run.count(Outcome::Violation), 0);
        states = run.record_boundaries_checked();
        entries = run.history.entry_count() as u64;
        best = (best.0.min(wall), best.1.min(cpu));
    }
    let scaled = best.1 * budget_entries as f64 / entries as f64;
    println!(
        "record boundaries, {label}: {states} cuts ({entries} entries) in {:.3} s wall / {:.3} s CPU (best of 3); scaled to {budget_entries} entries: {:.3} s CPU [budget 5 s: {}]",
        best.0,
        best.1,
        scaled,
        if scaled < 5.0 { "ok" } else { "OVER" }
    );
}

fn cluster(label: &str, paths: &[PathBuf]) {
    let (run, wall, cpu) =
        measure(|| enumerate_cluster(&RealFs, paths, &Options::default()).unwrap());
    let states: usize = run.members.iter().map(|m| m.results.len()).sum();
    let violations: usize = run
        .members
        .iter()
        .map(|m| m.count(Outcome::Violation))
        .sum::<usize>()
        + run.findings.len();
    println!(
        "cluster {label}: {} members, every class: {states} states, {} quorum combinations, {violations} violations in {:.2} s wall / {:.2} s CPU [budget 120 s: {}]",
        paths.len(),
        run.combinations,
        wall,
        cpu,
        if cpu < 120.0 { "ok" } else { "OVER" }
    );
    for m in &run.members {
        println!(
            "  {}: {} states in {:.2} s",
            m.history.input.display(),
            m.results.len(),
            m.elapsed.as_secs_f64()
        );
    }
}

fn main() {
    let a = unpack("cluster-a");
    let b = unpack("cluster-b");
    record_boundaries("cluster-a m1", &a.join("m1"), 1300);
    let synthetic = tempfile::tempdir().unwrap();
    synthetic_member(2, 1300, 64 * 1000 * 1000, 200)
        .write_to(synthetic.path())
        .unwrap();
    record_boundaries("synthetic 1,300-entry member", synthetic.path(), 1300);
    cluster(
        "cluster-a (m1–m5: 4 voters, m3 removed)",
        &["m1", "m2", "m3", "m4", "m5"].map(|m| a.join(m)),
    );
    cluster(
        "cluster-b (3 voters, a cut segment, ~1 MB entries)",
        &[b.join("b1"), b.join("b2"), b.join("b3")],
    );
}
