//! Replay throughput on a synthetic log: decode + raft-rs replay + MVCC + checks, entries per
//! second on one core, at 1 M and 10 M small puts (time should be linear), peak RSS at each
//! size, and the CPU profiler's overhead at its default rate — all in one run.
//!
//! The log is written with `wal::writer::WalWriter` (etcd's exact bytes) into a temporary
//! directory, never into the repository. Each size runs in a child process of its own, so its
//! peak RSS (`VmHWM`) is that size's alone.
//!
//! Times are CPU time of the (single) replay thread: the shared 2-core machines run other
//! jobs, and wall time then measures the neighbours. Wall time is printed beside it.
//!
//! `make bench` runs this (and the decode-vs-etcd ratio). Knobs: `BENCH_SIZES=1000000,10000000`,
//! `BENCH_RUNS=5` (runs at the smallest size; larger sizes run fewer), `BENCH_PAIRS=10` (bare /
//! profiled pairs for the overhead), `BENCH_HZ` (their sampling rate), `BENCH_DIR` (where the synthetic logs go; default: a
//! tempdir).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use raft_replay::fsio::RealFs;
use raft_replay::profile::clock::{peak_rss_bytes, Span};
use raft_replay::profile::synth::{write_synthetic, SynthSpec};
use raft_replay::profile::workload::{run_once, StepSpans};
use serde_json::{json, Value};

fn span_json(s: Span) -> Value {
    json!({ "wall_s": s.wall.as_secs_f64(), "cpu_s": s.cpu.as_secs_f64() })
}

fn spans_json(s: &StepSpans) -> Value {
    json!({
        "decode": span_json(s.decode),
        "replay": span_json(s.replay),
        "checks": span_json(s.checks),
        "total": span_json(s.total()),
    })
}

/// Child: run the workload `runs` times on `dir`, report each run and the peak RSS of the first
/// (later runs in one process add allocator fragmentation, which is not the workload's memory;
/// the peak over all runs is reported beside it).
fn child_throughput(dir: &Path, runs: usize) {
    let paths = vec![dir.to_path_buf()];
    let mut reports = Vec::new();
    let mut entries = 0;
    let mut first_run_rss = None;
    for run_number in 0..runs {
        let run = run_once(&RealFs, &paths).expect("workload");
        assert_eq!(
            run.members[0].failures, 0,
            "the synthetic log has no failures"
        );
        entries = run.entries();
        reports.push(spans_json(&run.spans));
        if run_number == 0 {
            first_run_rss = peak_rss_bytes();
        }
    }
    let out = json!({
        "entries": entries,
        "runs": reports,
        "peak_rss_bytes": first_run_rss,
        "peak_rss_all_runs_bytes": peak_rss_bytes(),
    });
    println!("{out}");
}

/// Child: interleaved bare and profiled runs (sampler at the default rate), CPU time of each
/// (the signal handler runs on the sampled thread, so its cost is in that thread's CPU time).
#[cfg(feature = "profile")]
fn child_overhead(dir: &Path, pairs: usize) {
    use raft_replay::profile::clock::Stamp;
    use raft_replay::profile::sampler::Sampler;
    use raft_replay::profile::DEFAULT_HZ;
    let paths = vec![dir.to_path_buf()];
    // BENCH_HZ: another rate than the default, to tell per-sample cost from fixed cost.
    let hz = std::env::var("BENCH_HZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_HZ);
    run_once(&RealFs, &paths).expect("warm-up");
    let (mut bare, mut profiled) = (Vec::new(), Vec::new());
    let mut samples = 0;
    let mut achieved = Vec::new();
    for i in 0..pairs * 2 {
        // Alternate which goes first, so drift affects both sides alike.
        let with_profiler = (i % 2 == 0) == (i / 2 % 2 == 0);
        if with_profiler {
            let sampler = Sampler::start(hz).expect("profiler");
            let start = Stamp::now();
            run_once(&RealFs, &paths).expect("workload");
            profiled.push(start.elapsed().cpu.as_secs_f64());
            let profile = sampler.finish().expect("report");
            samples += profile.samples;
            achieved.push(profile.achieved_hz);
        } else {
            let start = Stamp::now();
            run_once(&RealFs, &paths).expect("workload");
            bare.push(start.elapsed().cpu.as_secs_f64());
        }
    }
    println!(
        "{}",
        json!({ "bare_s": bare, "profiled_s": profiled, "samples": samples, "achieved_hz": achieved })
    );
}

#[cfg(not(feature = "profile"))]
fn child_overhead(_dir: &Path, _pairs: usize) {
    println!("{}", json!({ "bare_s": [], "profiled_s": [] }));
}

fn run_child(args: &[String]) -> Value {
    let exe = std::env::current_exe().expect("own path");
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .expect("spawn child");
    assert!(
        output.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("child output {line:?}: {e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct SizeResult {
    entries: u64,
    wall: f64,
    cpu: f64,
    decode: f64,
    replay: f64,
    checks: f64,
    rss: u64,
}

fn measure(size: u64, root: &Path, runs: usize) -> (SizeResult, PathBuf) {
    let dir = root.join(format!("synthetic-{size}"));
    if !dir.join("member").exists() {
        let start = Instant::now();
        let log = write_synthetic(
            &dir,
            &SynthSpec {
                puts: size,
                ..Default::default()
            },
        )
        .expect("write the synthetic log");
        eprintln!(
            "generated {} entries, {} segments, {:.0} MB in {:.1} s",
            log.entries,
            log.segments,
            log.wal_bytes as f64 / 1e6,
            start.elapsed().as_secs_f64()
        );
    }
    let report = run_child(&[
        "throughput".into(),
        dir.display().to_string(),
        runs.to_string(),
    ]);
    let field = |step: &str, what: &str| -> f64 {
        median(
            report["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[step][what].as_f64().unwrap())
                .collect(),
        )
    };
    let result = SizeResult {
        entries: report["entries"].as_u64().unwrap(),
        wall: field("total", "wall_s"),
        cpu: field("total", "cpu_s"),
        decode: field("decode", "cpu_s"),
        replay: field("replay", "cpu_s"),
        checks: field("checks", "cpu_s"),
        rss: report["peak_rss_bytes"].as_u64().unwrap_or(0),
    };
    (result, dir)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let rest = &args[at + 1..];
        let dir = PathBuf::from(&rest[1]);
        let n: usize = rest[2].parse().unwrap();
        match rest[0].as_str() {
            "throughput" => child_throughput(&dir, n),
            "overhead" => child_overhead(&dir, n),
            other => panic!("unknown child mode {other}"),
        }
        return;
    }
    let sizes: Vec<u64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = env_or("BENCH_RUNS", 5);
    let pairs: usize = env_or("BENCH_PAIRS", 10);
    let tempdir;
    let root = match std::env::var("BENCH_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            tempdir = tempfile::Builder::new()
                .prefix("raft-replay-bench-")
                .tempdir()
                .expect("tempdir");
            tempdir.path().to_path_buf()
        }
    };
    println!("replay bench: decode + raft-rs replay + MVCC + checks, one member, one core");
    println!(
        "{:>10} {:>9} {:>9} {:>9} {:>9} {:>13} {:>9} {:>10}",
        "entries", "CPU s", "decode", "replay", "checks", "entries/s", "wall s", "peak RSS"
    );
    let mut results: Vec<SizeResult> = Vec::new();
    let mut smallest_dir = None;
    for (i, &size) in sizes.iter().enumerate() {
        // Fewer runs as the size grows (one at 10 M is ~10 s).
        let n = (runs as u64 * sizes[0] / size.max(1)).clamp(1, runs as u64) as usize;
        let (r, dir) = measure(size, &root, n);
        println!(
            "{:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>13.0} {:>9.3} {:>7.0} MB",
            r.entries,
            r.cpu,
            r.decode,
            r.replay,
            r.checks,
            r.entries as f64 / r.cpu,
            r.wall,
            r.rss as f64 / 1e6
        );
        if i == 0 {
            smallest_dir = Some(dir.clone());
        } else if std::env::var("BENCH_KEEP").is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        results.push(r);
    }
    if results.len() >= 2 {
        let (a, b) = (&results[0], &results[results.len() - 1]);
        let per_entry_a = a.cpu / a.entries as f64;
        let per_entry_b = b.cpu / b.entries as f64;
        println!(
            "linearity: {:.3} CPU-µs/entry at {} vs {:.3} at {} (ratio {:.2}; 1.00 = linear)",
            per_entry_a * 1e6,
            a.entries,
            per_entry_b * 1e6,
            b.entries,
            per_entry_b / per_entry_a
        );
        println!(
            "memory: {:.0} bytes of peak RSS per entry at {}, {:.0} at {}",
            a.rss as f64 / a.entries as f64,
            a.entries,
            b.rss as f64 / b.entries as f64,
            b.entries
        );
        // What each added entry costs: 0 would be bounded.
        println!(
            "memory slope: {:.0} bytes of peak RSS per added entry from {} to {} entries",
            (b.rss as f64 - a.rss as f64) / (b.entries as f64 - a.entries as f64),
            a.entries,
            b.entries
        );
    }
    if let Some(dir) = smallest_dir {
        if pairs > 0 {
            let report = run_child(&[
                "overhead".into(),
                dir.display().to_string(),
                pairs.to_string(),
            ]);
            let values = |k: &str| -> Vec<f64> {
                report[k]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            };
            let (bare_runs, profiled_runs) = (values("bare_s"), values("profiled_s"));
            let (bare, profiled) = (median(bare_runs.clone()), median(profiled_runs.clone()));
            // Each pair ran back to back: the median of the pair ratios resists drift in load.
            let pair_ratios: Vec<f64> = bare_runs
                .iter()
                .zip(&profiled_runs)
                .map(|(b, p)| p / b - 1.0)
                .collect();
            if bare.is_finite() && profiled.is_finite() {
                println!(
                    "profiler overhead at {} Hz: bare {:.3} CPU-s, profiled {:.3} CPU-s (medians of {pairs} interleaved pairs): {:+.1}%; median of pair ratios {:+.1}% ({} samples, {:.0} Hz achieved)",
                    raft_replay::profile::DEFAULT_HZ,
                    bare,
                    profiled,
                    (profiled / bare - 1.0) * 100.0,
                    median(pair_ratios) * 100.0,
                    report["samples"],
                    median(values("achieved_hz")),
                );
            }
        }
    }
}
