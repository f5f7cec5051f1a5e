//! `verify` of a 5-member cluster (cluster-a) with one worker per core vs `--jobs 1`, same
//! process, interleaved runs, medians compared: the speedup of reading, checking and replaying
//! members at once. Target on 2 cores: ≥ 1.7×.
//!
//! Two figures, because the 2-core machines are shared: the **wall-time** speedup (what a user
//! sees, and what neighbours' load distorts), and the **critical-path** speedup on idle cores,
//! from CPU clocks only: `--jobs 1`'s CPU time over the sum, step by step, of the larger of the
//! main thread's CPU time (it is a worker too, and runs the serial parts) and the busiest spawned
//! worker's. A busy machine stretches wall times but barely moves CPU times, so the second figure
//! is what the schedule achieves.

mod common;

fn main() {
    let iterations: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let (wall, critical, cores) = common::jobs::jobs_row(iterations);
    println!(
        "verify cluster-a (5 members), --jobs {cores} vs --jobs 1 (median of {iterations} pairs): critical-path speedup {critical:.2}× (CPU clocks: the run on {cores} idle cores), wall-time speedup {wall:.2}× (load {}) (target on 2 cores: ≥ 1.7×)",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?")
    );
}
