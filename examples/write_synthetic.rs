//! Writes a synthetic member (etcd's exact WAL bytes, 64 MB segments) into a new data dir, for
//! measuring the CLI on long logs:
//!
//! ```sh
//! cargo run --release --example write_synthetic -- /tmp/synthetic-10m 10000000
//! cargo run --release --example write_synthetic -- /tmp/issue17-1m 1000000 --issue17
//! /usr/bin/time -v target/release/raft-replay verify /tmp/synthetic-10m
//! ```
//!
//! Flags (after `DATA_DIR REQUESTS`): `--issue17` (the issue-17 workload: 10,000 keys, 100-byte
//! values, 1 in 50 a txn, 1 in 50 a delete, no compaction), then any of `--keys N`,
//! `--value-len N`, `--txn-every N`, `--delete-every N`, `--compact-every N` (0: none),
//! `--compact-retention N`. Without flags: the replay bench's log (puts only, 16-byte values,
//! a compaction every 100,000 puts).

use raft_replay::profile::synth::{write_synthetic, SynthSpec};

const USAGE: &str = "usage: write_synthetic DATA_DIR REQUESTS [--issue17] [--keys N] [--value-len N] [--txn-every N] [--delete-every N] [--compact-every N] [--compact-retention N]";

fn parse(args: &[String]) -> Result<(String, SynthSpec), String> {
    let (Some(dir), Some(requests)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        return Err(USAGE.into());
    };
    let mut spec = SynthSpec {
        puts: requests,
        ..Default::default()
    };
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        if flag == "--issue17" {
            spec = SynthSpec::issue17(requests);
            continue;
        }
        let value = rest
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{flag} needs a number\n{USAGE}"))?;
        match flag.as_str() {
            "--keys" => spec.keys = value.max(1),
            "--value-len" => spec.value_len = value as usize,
            "--txn-every" => spec.txn_every = value,
            "--delete-every" => spec.delete_every = value,
            "--compact-every" => spec.compact_every = value,
            "--compact-retention" => spec.compact_retention = value,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok((dir.clone(), spec))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, spec) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let path = std::path::Path::new(&dir);
    if path.exists() {
        eprintln!("write_synthetic: {dir} exists; give a new directory");
        std::process::exit(2);
    }
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
