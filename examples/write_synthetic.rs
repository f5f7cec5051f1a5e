//! Writes the benchmark's synthetic member (small puts, etcd-style auto-compaction, 64 MB
//! segments) into a new data dir, for measuring the CLI on long logs:
//!
//! ```sh
//! cargo run --release --example write_synthetic -- /tmp/synthetic-10m 10000000
//! /usr/bin/time -v target/release/raft-replay verify /tmp/synthetic-10m
//! ```
//!
//! `--value-len N` and `--compact-every N` (0: never compact) override [`SynthSpec`]'s
//! defaults; `--value-len 100 --compact-every 0` is the memory benchmark's history that grows
//! with the log.

use raft_replay::profile::synth::{write_synthetic, SynthSpec};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec = SynthSpec::default();
    let usage = || -> ! {
        eprintln!("usage: write_synthetic DATA_DIR PUTS [--value-len N] [--compact-every N]");
        std::process::exit(2);
    };
    while let Some(at) = args.iter().position(|a| a.starts_with("--")) {
        let flag = args.remove(at);
        let Some(value) = (at < args.len()).then(|| args.remove(at)) else {
            usage()
        };
        match (flag.as_str(), value.parse::<u64>()) {
            ("--value-len", Ok(n)) => spec.value_len = n as usize,
            ("--compact-every", Ok(n)) => spec.compact_every = n,
            _ => usage(),
        }
    }
    let (Some(dir), Some(puts)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        usage()
    };
    let path = std::path::Path::new(dir);
    if path.exists() {
        eprintln!("write_synthetic: {dir} exists; give a new directory");
        std::process::exit(2);
    }
    spec.puts = puts;
    match write_synthetic(path, &spec) {
        Ok(log) => eprintln!(
            "{dir}: {} entries, {} segments, {:.0} MB",
            log.entries,
            log.segments,
            log.wal_bytes as f64 / 1e6
        ),
        Err(e) => {
            eprintln!("write_synthetic: {e}");
            std::process::exit(2);
        }
    }
}
