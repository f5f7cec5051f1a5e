//! `verify` of a 5-member cluster (cluster-a) with one worker per core vs `--jobs 1`, same
//! process, interleaved runs, medians compared: the speedup of reading, checking and replaying
//! members at once. Target on 2 cores: ≥ 1.7×.

mod common;
use common::unpack;

use std::path::PathBuf;
use std::time::Instant;

use raft_replay::fsio::RealFs;
use raft_replay::verify::{verify_cluster, verify_observed, Step, StepObserver, VerifyOptions};

/// Wall time per step of the pipeline (with several workers, a step spans every member).
#[derive(Default)]
struct StepTimes(std::collections::BTreeMap<Step, f64>);

impl StepObserver for StepTimes {
    fn step(&mut self, step: Step, work: &mut dyn FnMut()) {
        let start = Instant::now();
        work();
        *self.0.entry(step).or_default() += start.elapsed().as_secs_f64();
    }
}

fn steps(paths: &[PathBuf], jobs: usize) -> String {
    let named: Vec<(String, PathBuf)> = paths
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    let options = VerifyOptions {
        jobs,
        ..VerifyOptions::default()
    };
    let mut times = StepTimes::default();
    verify_observed(&RealFs, &named, &options, &mut times).expect("cluster-a verifies");
    times
        .0
        .iter()
        .map(|(step, t)| format!("{step:?} {t:.3} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn once(paths: &[PathBuf], jobs: usize) -> f64 {
    let options = VerifyOptions {
        jobs,
        ..VerifyOptions::default()
    };
    let start = Instant::now();
    let report = verify_cluster(&RealFs, paths, &options).expect("cluster-a verifies");
    let elapsed = start.elapsed().as_secs_f64();
    assert!(report.holds(), "cluster-a holds");
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let iterations: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = unpack("cluster-a");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("cluster-a unpacked")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("member").is_dir())
        .collect();
    paths.sort();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    once(&paths, 1);
    let (mut serial, mut parallel) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        serial.push(once(&paths, 1));
        parallel.push(once(&paths, cores));
    }
    let (s, p) = (median(serial), median(parallel));
    println!("  steps, --jobs 1: {}", steps(&paths, 1));
    println!("  steps, --jobs {cores}: {}", steps(&paths, cores));
    println!(
        "verify cluster-a ({} members): --jobs 1 {:.3} s, --jobs {cores} {:.3} s: speedup {:.2}× on {cores} core(s) (target on 2 cores: ≥ 1.7×)",
        paths.len(),
        s,
        p,
        s / p
    );
}
