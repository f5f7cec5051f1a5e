//! `read_member` of one member dir in a loop (the issue-17 decode row's in-process side), for
//! `perf record` / `perf stat`: `cargo run --release --example decode_loop -- DIR [ITERS]`.
//! Prints the median time of `MemberFiles::open` and of `read_member` (strict).

use std::path::PathBuf;
use std::time::Instant;

use raft_replay::fsio::RealFs;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::wal::DecoderMode;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: decode_loop DIR [ITERS]"));
    let iters: usize = args.next().map_or(200, |s| s.parse().expect("ITERS"));
    let (mut open, mut read, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut entries = 0;
    for _ in 0..iters {
        let t0 = Instant::now();
        let files = MemberFiles::open(&RealFs, &dir).expect("open");
        let t1 = Instant::now();
        let r = read_member(&files, DecoderMode::Strict);
        let t2 = Instant::now();
        assert!(r.contents.errors.is_empty(), "{:?}", r.contents.errors);
        entries = r.contents.entries.len();
        drop(r);
        drop(files);
        open.push((t1 - t0).as_secs_f64());
        read.push((t2 - t1).as_secs_f64());
        total.push((t2 - t0).as_secs_f64());
    }
    println!(
        "{}: {entries} entries, {iters} iterations, medians: open {:.3} ms, read_member {:.3} ms, total {:.3} ms",
        dir.display(),
        median(open) * 1e3,
        median(read) * 1e3,
        median(total) * 1e3
    );
}
