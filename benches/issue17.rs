//! Issue 17's table, every row a ratio measured in this one run (`make bench`):
//!
//! 1. full replay time at 1 M entries vs etcd's decode-only `ReadAll`: `raft-replay hashkv` and
//!    `tools/etcd-ref bench --iters 1` (etcd 3.4.23's `ValidSnapshotEntries` + `ReadAll`) as
//!    child processes on the same single-member dir, alternately, `BENCH_PAIRS` pairs; the
//!    median of the pairs' ratios of CPU time (user + system, `wait4`: the shared machines'
//!    load stretches wall time, printed beside it);
//! 2. time(4 M) / time(1 M) of `hashkv` (CPU time, the median of `BENCH_SCALE_PAIRS` pairs
//!    alternating the sizes: one pair's ratio moves by ±15% on these VMs);
//! 3. peak RSS at 4 M of `hashkv` vs etcd's `ReadAll` on the same dir (`wait4` `ru_maxrss`);
//! 4. decode (`MemberFiles::open` + `read_member`, strict) vs etcd's `ReadAll` on the bundled
//!    captures' cluster-a/m1 and cluster-b/b1 (medians of `BENCH_ITERS`, interleaved; the lower
//!    ratio is the row). Both sides time one read from inside a fresh process, as etcd-ref's
//!    `bench --iters 1 --warmup 0` does (its `per_iter_ns`: `ValidSnapshotEntries`, the `.snap`
//!    load, `OpenForRead`, `ReadAll`; opening the files included, process start excluded): ours
//!    is this bench re-run as a child (`ISSUE17_DECODE_ONCE=DIR`), so neither side reuses a
//!    warm heap (the CPU feature probe Go's runtime makes before `main` is made before the
//!    timer on ours too). The in-process figure after a warm-up read is printed beside it;
//! 5. `verify --jobs N` vs `--jobs 1` on cluster-a (`common::jobs`).
//!
//! The dirs are the issue's workload (`SynthSpec::issue17`: 10,000 keys, 100-byte values, 1 in
//! 50 a txn, 1 in 50 a delete, no compaction), written with the WAL writer into `BENCH_DIR`
//! (default: a tempdir). Needs `RAFT_REPLAY_ETCD_REF` (`make etcd-ref`); without it only our
//! side is printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::child::{measure, Measured};
use raft_replay::fsio::RealFs;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::profile::synth::{write_synthetic, SynthSpec};
use raft_replay::wal::DecoderMode;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn member(root: &Path, requests: u64) -> PathBuf {
    let dir = root.join(format!("issue17-{requests}"));
    if !dir.join("member").exists() {
        // In a child: this process's own peak would count in every later child's `ru_maxrss`
        // (a child spawned by vfork + exec inherits its parent's high-water mark).
        let status = Command::new(std::env::current_exe().expect("own path"))
            .env("ISSUE17_WRITE", &dir)
            .env("ISSUE17_REQUESTS", requests.to_string())
            .status()
            .expect("spawn the writer");
        assert!(status.success(), "writing {} failed", dir.display());
    }
    dir
}

/// Child: writes the issue's log of `requests` requests into `dir`.
fn write_member(dir: &Path, requests: u64) {
    let log = write_synthetic(dir, &SynthSpec::issue17(requests)).expect("write the log");
    eprintln!(
        "generated {}: {} entries, {:.0} MB",
        dir.display(),
        log.entries,
        log.wal_bytes as f64 / 1e6
    );
}

fn hashkv(dir: &Path, scratch: &Path) -> Measured {
    let mut c = Command::new(env!("CARGO_BIN_EXE_raft-replay"));
    c.arg("hashkv").arg(dir);
    measure(&mut c, scratch)
}

fn read_all(tool: &Path, dir: &Path, scratch: &Path) -> Measured {
    let mut c = Command::new(tool);
    c.arg("bench")
        .arg(dir)
        .args(["--iters", "1", "--warmup", "0"]);
    measure(&mut c, scratch)
}

/// Median over pairs (alternating which runs first) of a/b for CPU and wall time.
fn pairs(
    n: usize,
    mut a: impl FnMut() -> Measured,
    mut b: impl FnMut() -> Measured,
) -> (f64, f64, Vec<Measured>, Vec<Measured>) {
    let (mut cpu, mut wall, mut ra, mut rb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (x, y) = if i % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        cpu.push(x.cpu / y.cpu);
        wall.push(x.wall / y.wall);
        ra.push(x);
        rb.push(y);
    }
    (median(cpu), median(wall), ra, rb)
}

/// One decode of `dir` (`MemberFiles::open` + `read_member`, strict), its seconds.
fn decode_once(dir: &Path) -> f64 {
    let start = Instant::now();
    let files = MemberFiles::open(&RealFs, dir).unwrap();
    let read = read_member(&files, DecoderMode::Strict);
    let elapsed = start.elapsed().as_secs_f64();
    assert!(read.contents.errors.is_empty());
    elapsed
}

/// [`decode_once`] in a fresh process (this bench as a child), as etcd-ref times its read.
fn decode_in_child(dir: &Path, scratch: &Path) -> f64 {
    let mut c = Command::new(std::env::current_exe().expect("the bench's path"));
    c.env("ISSUE17_DECODE_ONCE", dir);
    measure(&mut c, scratch)
        .stdout
        .trim()
        .parse()
        .expect("seconds")
}

fn decode_row(tool: Option<&Path>, scratch: &Path, iterations: usize) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for (capture, name) in [("cluster-a", "m1"), ("cluster-b", "b1")] {
        let dir = common::unpack(capture).join(name);
        decode_once(&dir);
        let (mut ours, mut warm, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..iterations {
            ours.push(decode_in_child(&dir, scratch));
            warm.push(decode_once(&dir));
            if let Some(tool) = tool {
                let out = read_all(tool, &dir, scratch).stdout;
                let v: serde_json::Value = serde_json::from_str(&out).expect("etcd-ref JSON");
                theirs.push(v["per_iter_ns"].as_f64().unwrap() / 1e9);
            }
        }
        let (ours, warm) = (median(ours), median(warm));
        if theirs.is_empty() {
            println!(
                "  decode {capture}/{name}: raft-replay {:.2} ms (in process after a warm-up: {:.2} ms)",
                ours * 1e3,
                warm * 1e3
            );
            continue;
        }
        let theirs = median(theirs);
        let ratio = theirs / ours;
        println!(
            "  decode {capture}/{name}: raft-replay {:.2} ms, etcd ReadAll {:.2} ms: {ratio:.2}x faster \
             (in process after a warm-up: {:.2} ms, {:.2}x)",
            ours * 1e3,
            theirs * 1e3,
            warm * 1e3,
            theirs / warm
        );
        worst = Some(worst.map_or(ratio, |w: f64| w.min(ratio)));
    }
    worst
}

fn main() {
    if let Some(dir) = std::env::var_os("ISSUE17_WRITE") {
        let requests = env_or("ISSUE17_REQUESTS", 0u64);
        write_member(Path::new(&dir), requests);
        return;
    }
    if let Some(dir) = std::env::var_os("ISSUE17_DECODE_ONCE") {
        // The CPU feature probe (`cpuid`, trapped by the hypervisor: ≈70 µs here) that Go's
        // runtime makes before etcd-ref's `main`, made before the timer as on etcd's side.
        #[cfg(target_arch = "x86_64")]
        let _ = std::arch::is_x86_feature_detected!("sse4.2");
        println!("{}", decode_once(Path::new(&dir)));
        return;
    }
    if std::env::var_os("ISSUE17_DECODE_ONLY").is_some() {
        let tool = std::env::var("RAFT_REPLAY_ETCD_REF")
            .ok()
            .map(PathBuf::from);
        let scratch = tempfile::tempdir().expect("scratch");
        if let Some(worst) = decode_row(tool.as_deref(), scratch.path(), env_or("BENCH_ITERS", 21))
        {
            println!(
                "decode vs etcd's ReadAll on the bundled captures (lower of m1, b1): {worst:.2}x"
            );
        }
        return;
    }
    let pairs_n = env_or("BENCH_PAIRS", 3usize);
    let tool = std::env::var("RAFT_REPLAY_ETCD_REF")
        .ok()
        .filter(|t| !t.is_empty())
        .map(PathBuf::from);
    let temp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let scratch = tempfile::tempdir().expect("scratch");
    let scratch = scratch.path();
    let one = member(&root, 1_000_000);
    let four = member(&root, 4_000_000);
    hashkv(&one, scratch); // warm the page cache

    let mut rows = Vec::new();
    if let Some(tool) = &tool {
        let (cpu, wall, ours, theirs) = pairs(
            pairs_n,
            || hashkv(&one, scratch),
            || read_all(tool, &one, scratch),
        );
        println!(
            "  1 M: hashkv {:.2} s CPU ({:.2} s wall), etcd ReadAll {:.2} s CPU ({:.2} s wall)",
            median(ours.iter().map(|m| m.cpu).collect()),
            median(ours.iter().map(|m| m.wall).collect()),
            median(theirs.iter().map(|m| m.cpu).collect()),
            median(theirs.iter().map(|m| m.wall).collect()),
        );
        rows.push(format!(
            "full replay time, 1 M entries, vs etcd's ReadAll | {cpu:.2}x CPU ({wall:.2}x wall) | <= 1.0x"
        ));
    }
    let (cpu, wall, four_runs, _) = pairs(
        env_or("BENCH_SCALE_PAIRS", 11usize),
        || hashkv(&four, scratch),
        || hashkv(&one, scratch),
    );
    rows.push(format!(
        "time(4 M) / time(1 M) | {cpu:.2} CPU ({wall:.2} wall) | <= 4.2"
    ));
    let our_rss = four_runs.iter().map(|m| m.rss).max().unwrap_or(0);
    match &tool {
        Some(tool) => {
            let theirs = read_all(tool, &four, scratch);
            rows.push(format!(
                "peak RSS at 4 M vs etcd's ReadAll | {:.2}x ({:.0} MB vs {:.0} MB) | <= 0.10x",
                our_rss as f64 / theirs.rss as f64,
                our_rss as f64 / 1e6,
                theirs.rss as f64 / 1e6
            ));
        }
        None => rows.push(format!(
            "peak RSS at 4 M | {:.0} MB | <= 0.10x of ReadAll",
            our_rss as f64 / 1e6
        )),
    }
    if let Some(worst) = decode_row(tool.as_deref(), scratch, env_or("BENCH_ITERS", 21)) {
        rows.push(format!(
            "decode vs etcd's ReadAll on the bundled captures (lower of m1, b1) | {worst:.2}x | >= 5x"
        ));
    }
    let (jobs_wall, jobs_critical, cores) = common::jobs::jobs_row(env_or("BENCH_JOBS_PAIRS", 31));
    rows.push(format!(
        "verify --jobs {cores} vs --jobs 1, 5 members | {jobs_critical:.2}x critical path on idle cores ({jobs_wall:.2}x wall) | >= 1.7x"
    ));
    println!(
        "\nissue 17 (load {}):",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    println!("| | measured | target |\n|---|---|---|");
    for row in rows {
        println!("| {row} |");
    }
}
