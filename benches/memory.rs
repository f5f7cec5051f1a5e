//! Peak RSS of `raft-replay hashkv` on a history that grows with the log, as a ratio to etcd
//! 3.4.23's own decode-only `ReadAll` (`tools/etcd-ref bench DIR --iters 1 --warmup 0`) on the
//! same dir, measured in one run (issue 17's memory rows, docs/perf.md §7).
//!
//! The workload: a single-member log of puts with 100-byte values round-robin over 10,000 keys
//! and no compaction (`SynthSpec { value_len: 100, compact_every: 0 }`), so every revision stays
//! in the MVCC history. Each measured program (and the writer) runs as a child of its own and
//! its peak RSS is the kernel's `ru_maxrss` for that child (`wait4`); this process stays small,
//! since a child inherits its parent's high-water mark across the spawn.
//!
//! Knobs: `BENCH_MEMORY_SIZES=1000000,4000000` (puts per log), `RAFT_REPLAY_ETCD_REF` (the
//! etcd-ref binary; without it only raft-replay is measured), `BENCH_DIR` (where the logs go;
//! default: a tempdir, removed at the end).

use std::path::Path;
use std::process::Command;

use raft_replay::profile::synth::{write_synthetic, SynthSpec};
use serde_json::json;

mod common;

const KEYS: u64 = 10_000;
const VALUE_LEN: usize = 100;
/// Target: raft-replay's peak RSS at most this fraction of etcd's ReadAll.
const TARGET_RATIO: f64 = 0.10;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Child: writes the synthetic log of `puts` puts into `dir`.
fn write_log(dir: &Path, puts: u64) {
    let spec = SynthSpec {
        puts,
        keys: KEYS,
        value_len: VALUE_LEN,
        compact_every: 0,
        ..Default::default()
    };
    write_synthetic(dir, &spec).expect("write the synthetic log");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--write") {
        let (Some(dir), Some(puts)) = (args.get(at + 1), args.get(at + 2)) else {
            panic!("--write DIR PUTS");
        };
        write_log(Path::new(dir), puts.parse().expect("PUTS"));
        return;
    }
    let sizes: Vec<u64> = std::env::var("BENCH_MEMORY_SIZES")
        .unwrap_or_else(|_| "1000000,4000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let etcd_ref = std::env::var("RAFT_REPLAY_ETCD_REF")
        .ok()
        .filter(|p| Path::new(p).exists());
    if etcd_ref.is_none() {
        eprintln!(
            "RAFT_REPLAY_ETCD_REF not set: measuring raft-replay only (make bench for the ratio)"
        );
    }
    let temp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let raft_replay = env!("CARGO_BIN_EXE_raft-replay");
    let mut rows = Vec::new();
    println!(
        "memory: hashkv peak RSS, {VALUE_LEN}-byte values over {KEYS} keys, no compaction (every revision in the history)"
    );
    for &puts in &sizes {
        let dir = root.join(format!("memory-{puts}"));
        if !dir.exists() {
            // In a child: this process's own peak would count in every later child's
            // `ru_maxrss` (a child spawned by vfork + exec inherits the parent's high-water mark).
            let status = Command::new(std::env::current_exe().expect("own path"))
                .arg("--write")
                .arg(&dir)
                .arg(puts.to_string())
                .status()
                .expect("spawn the writer");
            assert!(status.success(), "writing {} failed", dir.display());
        }
        let measured = common::child::measure(
            Command::new(raft_replay).arg("hashkv").arg(&dir),
            temp.path(),
        );
        let (ours, hash) = (measured.rss, measured.stdout);
        let theirs = etcd_ref.as_ref().map(|bin| {
            common::child::measure(
                Command::new(bin)
                    .args(["bench"])
                    .arg(dir.join("member"))
                    .args(["--iters", "1", "--warmup", "0"]),
                temp.path(),
            )
            .rss
        });
        let ratio = theirs.map(|t| ours as f64 / t as f64);
        match (theirs, ratio) {
            (Some(t), Some(r)) => println!(
                "  {:>5.1} M entries: raft-replay hashkv {:>7.1} MB, etcd ReadAll {:>7.1} MB, ratio {:.3}x (target <= {TARGET_RATIO:.2}x: {})",
                puts as f64 / 1e6,
                mb(ours),
                mb(t),
                r,
                if r <= TARGET_RATIO { "holds" } else { "MISSED" }
            ),
            _ => println!(
                "  {:>5.1} M entries: raft-replay hashkv {:>7.1} MB",
                puts as f64 / 1e6,
                mb(ours)
            ),
        }
        rows.push(json!({
            "puts": puts,
            "raft_replay_peak_rss_bytes": ours,
            "etcd_readall_peak_rss_bytes": theirs,
            "ratio": ratio,
            "hashkv": serde_json::from_str::<serde_json::Value>(hash.trim()).ok(),
        }));
        if std::env::var("BENCH_DIR").is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let (p0, p1) = (first["puts"].as_u64(), last["puts"].as_u64());
        let (r0, r1) = (
            first["raft_replay_peak_rss_bytes"].as_u64(),
            last["raft_replay_peak_rss_bytes"].as_u64(),
        );
        if let (Some(p0), Some(p1), Some(r0), Some(r1)) = (p0, p1, r0, r1) {
            if p1 > p0 {
                println!(
                    "  growth {:.1} M -> {:.1} M entries: {:+.1} MB, {:.1} bytes per added revision",
                    p0 as f64 / 1e6,
                    p1 as f64 / 1e6,
                    (r1 as f64 - r0 as f64) / 1e6,
                    (r1 as f64 - r0 as f64) / (p1 - p0) as f64
                );
            }
        }
    }
    println!("{}", json!({ "memory": rows }));
}
