//! Decoding a real member dir: raft-replay vs etcd's own Go reader (`tools/etcd-ref bench`, i.e.
//! ValidSnapshotEntries + OpenForRead + ReadAll on Debian's etcd 3.4.23), same files, one run.
//! Prints a ratio; the machines are noisy, so both sides are measured interleaved and the
//! medians compared. `make bench-vs-etcd` builds the Go side and runs this.

mod common;
use common::unpack;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use raft_replay::fsio::RealFs;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::wal::DecoderMode;

fn ours_once(member: &Path) -> (f64, usize) {
    let start = Instant::now();
    let fs = RealFs;
    let files = MemberFiles::open(&fs, member).unwrap();
    let read = read_member(&files, DecoderMode::Strict);
    assert!(read.contents.errors.is_empty());
    (start.elapsed().as_secs_f64(), read.contents.entries.len())
}

fn etcd_once(tool: &str, member: &Path) -> f64 {
    let output = Command::new(tool)
        .arg("bench")
        .arg(member)
        .args(["--iters", "1", "--warmup", "0"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    v["per_iter_ns"].as_f64().unwrap() / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let iterations: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let tool = std::env::var("RAFT_REPLAY_ETCD_REF")
        .ok()
        .filter(|t| !t.is_empty());
    if tool.is_none() {
        eprintln!("RAFT_REPLAY_ETCD_REF not set: measuring raft-replay only (make bench-vs-etcd for the ratio)");
    }
    for (capture, name) in [("cluster-a", "m1"), ("cluster-b", "b1")] {
        let member = unpack(capture).join(name);
        let wal_bytes: u64 = std::fs::read_dir(member.join("member/wal"))
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut entries = 0;
        ours_once(&member); // warm the page cache
        for _ in 0..iterations {
            let (t, n) = ours_once(&member);
            ours.push(t);
            entries = n;
            if let Some(tool) = &tool {
                theirs.push(etcd_once(tool, &member));
            }
        }
        let ours_s = median(ours);
        print!(
            "{capture}/{name}: {entries} entries, {:.1} MB of segments: raft-replay {:.2} ms ({:.0} MB/s)",
            wal_bytes as f64 / 1e6,
            ours_s * 1e3,
            wal_bytes as f64 / 1e6 / ours_s
        );
        if !theirs.is_empty() {
            let etcd_s = median(theirs);
            print!(
                ", etcd ReadAll {:.2} ms, ratio {:.2}x faster",
                etcd_s * 1e3,
                etcd_s / ours_s
            );
        }
        println!();
    }
}
