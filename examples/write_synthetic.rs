//! Writes the benchmark's synthetic member (small puts, etcd-style auto-compaction, 64 MB
//! segments) into a new data dir, for measuring the CLI on long logs:
//!
//! ```sh
//! cargo run --release --example write_synthetic -- /tmp/synthetic-10m 10000000
//! /usr/bin/time -v target/release/raft-replay verify /tmp/synthetic-10m
//! ```

use raft_replay::profile::synth::{write_synthetic, SynthSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(puts)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: write_synthetic DATA_DIR PUTS");
        std::process::exit(2);
    };
    let path = std::path::Path::new(dir);
    if path.exists() {
        eprintln!("write_synthetic: {dir} exists; give a new directory");
        std::process::exit(2);
    }
    let spec = SynthSpec {
        puts,
        ..Default::default()
    };
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
