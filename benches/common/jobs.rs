//! The `--jobs` row: `verify` of cluster-a with one worker per core vs `--jobs 1` (see
//! `benches/verify_jobs.rs`).

use super::unpack;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use raft_replay::fsio::RealFs;
use raft_replay::profile::clock::thread_cpu;
use raft_replay::verify::{verify_observed, Step, StepObserver, VerifyOptions};

/// Per step: wall time, the main thread's CPU time (it works too), and the busiest spawned
/// worker's CPU time.
#[derive(Default)]
struct StepTimes(std::collections::BTreeMap<Step, (f64, f64, f64)>);

impl StepObserver for StepTimes {
    fn step(&mut self, step: Step, work: &mut dyn FnMut()) {
        let (start, cpu) = (Instant::now(), thread_cpu());
        work();
        let entry = self.0.entry(step).or_default();
        entry.0 += start.elapsed().as_secs_f64();
        entry.1 += thread_cpu().saturating_sub(cpu).as_secs_f64();
    }

    fn workers(&mut self, step: Step, cpu: &[Duration]) {
        let busiest = cpu.iter().max().copied().unwrap_or_default();
        self.0.entry(step).or_default().2 += busiest.as_secs_f64();
    }
}

impl StepTimes {
    fn wall(&self) -> f64 {
        self.0.values().map(|t| t.0).sum()
    }

    /// The run's length on idle cores: per step, the larger of the main thread's CPU and the
    /// busiest spawned worker's.
    fn critical_cpu(&self) -> f64 {
        self.0.values().map(|t| t.1.max(t.2)).sum()
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(step, t)| {
                format!(
                    "{step:?} {:.1} ms wall, {:.1} ms CPU critical",
                    t.0 * 1e3,
                    t.1.max(t.2) * 1e3
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn once(paths: &[PathBuf], jobs: usize) -> StepTimes {
    let named: Vec<(String, PathBuf)> = paths
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    let options = VerifyOptions {
        jobs,
        ..VerifyOptions::default()
    };
    let mut times = StepTimes::default();
    let report =
        verify_observed(&RealFs, &named, &options, &mut times).expect("cluster-a verifies");
    assert!(report.holds(), "cluster-a holds");
    times
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One line of `make bench`'s table: wall and critical-path speedups of `--jobs N` over
/// `--jobs 1` on cluster-a, medians of `iterations` interleaved pairs.
pub fn jobs_row(iterations: usize) -> (f64, f64, usize) {
    let root = unpack("cluster-a");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("cluster-a unpacked")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("member").is_dir())
        .collect();
    paths.sort();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    once(&paths, 1);
    let (mut wall_ratio, mut cpu_ratio) = (Vec::new(), Vec::new());
    let (mut last_serial, mut last_parallel) = (None, None);
    for i in 0..iterations {
        // Alternate which goes first, so drift affects both sides alike.
        let (serial, parallel) = if i % 2 == 0 {
            let s = once(&paths, 1);
            (s, once(&paths, cores))
        } else {
            let p = once(&paths, cores);
            (once(&paths, 1), p)
        };
        wall_ratio.push(serial.wall() / parallel.wall());
        cpu_ratio.push(serial.critical_cpu() / parallel.critical_cpu());
        (last_serial, last_parallel) = (Some(serial), Some(parallel));
    }
    if let (Some(s), Some(p)) = (last_serial, last_parallel) {
        eprintln!("  steps, --jobs 1: {}", s.describe());
        eprintln!("  steps, --jobs {cores}: {}", p.describe());
    }
    (median(wall_ratio), median(cpu_ratio), cores)
}
