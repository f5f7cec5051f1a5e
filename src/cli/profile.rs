//! `raft-replay profile PATH... --out DIR`: CPU-profile decode + replay + checks of the members
//! (see [`raft_replay::profile`]). Writes the flame graph, `profile.pb`, folded stacks and the phase
//! table into DIR only. Exit 0 when the profile was written (findings in the inputs do not
//! matter here), 2 when it could not be.

use std::path::PathBuf;

use super::EXIT_CANNOT_RUN;
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::profile::ProfileOptions;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(required_unless_present = "synthetic")]
    pub paths: Vec<PathBuf>,
    /// Output directory (flamegraph.svg, profile.pb, stacks.folded, phases.txt); never
    /// inside a PATH.
    #[arg(long)]
    pub out: PathBuf,
    /// Run the workload exactly N times while sampling.
    #[arg(long, conflicts_with = "seconds")]
    pub repeat: Option<u32>,
    /// Repeat the workload until S CPU-seconds were sampled.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Sampling rate in Hz (ITIMER_PROF is capped by the kernel tick, ~250 Hz).
    #[arg(long, default_value_t = raft_replay::profile::DEFAULT_HZ)]
    pub frequency: i32,
    /// Without --repeat/--seconds: repeat until about this many samples.
    #[arg(long, default_value_t = raft_replay::profile::DEFAULT_MIN_SAMPLES)]
    pub min_samples: u64,
    /// Allocation profile instead of CPU (needs a build with the `alloc-profile` feature).
    #[arg(long)]
    pub alloc: bool,
    /// Also profile a synthetic member of N small puts (written with the WAL writer into a
    /// temporary directory, removed afterwards).
    #[arg(long, value_name = "N")]
    pub synthetic: Option<u64>,
}

pub fn run(fs: &dyn ReadOnlyFs, args: Args) -> i32 {
    if args.frequency < 1 {
        eprintln!("raft-replay profile: --frequency must be at least 1");
        return EXIT_CANNOT_RUN;
    }
    // The synthetic member lives in a temporary directory, never in --out or an input.
    let mut paths = args.paths;
    let _synthetic_dir = match args.synthetic {
        Some(puts) => match synthetic_member(puts) {
            Ok((dir, path)) => {
                paths.push(path);
                Some(dir)
            }
            Err(e) => {
                eprintln!("raft-replay profile: cannot write the synthetic member: {e}");
                return EXIT_CANNOT_RUN;
            }
        },
        None => None,
    };
    let options = ProfileOptions {
        paths,
        out: args.out,
        repeat: args.repeat,
        seconds: args.seconds,
        frequency: args.frequency,
        min_samples: args.min_samples,
    };
    if args.alloc {
        return alloc(fs, &options);
    }
    cpu(fs, &options)
}

fn synthetic_member(puts: u64) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("raft-replay-synthetic-")
        .tempdir()?;
    let path = dir.path().join("synthetic");
    let log = raft_replay::profile::synth::write_synthetic(
        &path,
        &raft_replay::profile::synth::SynthSpec {
            puts,
            ..Default::default()
        },
    )?;
    eprintln!(
        "profile: synthetic member of {} entries ({} segments, {:.0} MB) at {}",
        log.entries,
        log.segments,
        log.wal_bytes as f64 / 1e6,
        path.display()
    );
    Ok((dir, path))
}

#[cfg(feature = "profile")]
fn cpu(fs: &dyn ReadOnlyFs, options: &ProfileOptions) -> i32 {
    let summary =
        match raft_replay::profile::profile(fs, options, &mut |m| eprintln!("profile: {m}")) {
            Ok(summary) => summary,
            Err(e) => {
                eprintln!("raft-replay profile: {e}");
                return EXIT_CANNOT_RUN;
            }
        };
    let run = &summary.last_run;
    let total = summary.spans.total();
    let mut text = format!(
        "profiled {} run(s) of decode + replay + checks over {} member(s), {} entries a run\n\
         samples: {} over {:.2} CPU-s / {:.2} wall-s: {:.1} samples per CPU-second achieved ({} Hz requested)\n\
         throughput: {:.0} entries/s (CPU)\n\n",
        summary.runs,
        run.members.len(),
        run.entries(),
        summary.samples,
        summary.sampled_cpu.as_secs_f64(),
        summary.sampled_wall.as_secs_f64(),
        summary.achieved_hz,
        options.frequency,
        if total.cpu.is_zero() {
            0.0
        } else {
            (run.entries() * summary.runs as u64) as f64 / total.cpu.as_secs_f64()
        },
    );
    text.push_str(&summary.table);
    for warning in &summary.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text.push('\n');
    for file in &summary.files {
        text.push_str(&format!("wrote {}\n", file.display()));
    }
    super::out(&text);
    super::EXIT_OK
}

#[cfg(not(feature = "profile"))]
fn cpu(_fs: &dyn ReadOnlyFs, _options: &ProfileOptions) -> i32 {
    eprintln!(
        "raft-replay profile: this build has no CPU profiler (rebuild with the `profile` feature)"
    );
    EXIT_CANNOT_RUN
}

#[cfg(feature = "alloc-profile")]
fn alloc(fs: &dyn ReadOnlyFs, options: &ProfileOptions) -> i32 {
    match raft_replay::profile::alloc::profile_allocations(fs, options) {
        Ok(text) => {
            super::out(&text);
            super::EXIT_OK
        }
        Err(e) => {
            eprintln!("raft-replay profile --alloc: {e}");
            EXIT_CANNOT_RUN
        }
    }
}

#[cfg(not(feature = "alloc-profile"))]
fn alloc(_fs: &dyn ReadOnlyFs, _options: &ProfileOptions) -> i32 {
    eprintln!(
        "raft-replay profile --alloc: this build has no allocation profiler \
         (cargo build --release --features alloc-profile)"
    );
    EXIT_CANNOT_RUN
}
