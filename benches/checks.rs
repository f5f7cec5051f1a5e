//! What the invariant checks cost on top of decoding (and replaying) a member.
//!
//! A synthetic member of ~200k entries written by `WalWriter` exactly as etcd writes it: the
//! bootstrap conf changes, then etcd puts (`InternalRaftRequest{put}`, ~100-byte values over
//! 10k keys) in batches of 10 with a HardState each, a local snapshot record every 10k entries.
//! The member is written to a temp dir under the cargo target dir and read through `RealFs`, as
//! `verify` reads (warm page cache). Measured:
//! * `decode`: etcd's boot read (`ValidSnapshotEntries` + `ReadAll`), i.e. `read_member`;
//! * `decode+checks`: the same plus every per-member check (`check_member`: decode findings and
//!   the one-pass invariant scan);
//! * `decode+replay`: `read_member` + the raft-rs + MVCC replay (`replay_kv`);
//! * `decode+replay+checks`: all three.
//!
//! Times are thread CPU time (`CLOCK_THREAD_CPUTIME_ID`), so the figures hold on a shared
//! machine; `CHECKS_BENCH_WALL=1` switches to wall-clock. The issue's budget: checks add at most
//! 30 % to decode + replay. `cargo bench --bench checks`
//! prints criterion's estimates and, at the end, the two ratios from medians of interleaved runs
//! (`-- --ratios-only` for just those; `CHECKS_BENCH_DETAIL=1` adds the cost of one decoder pass
//! and of the scan alone).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, criterion_group, Criterion};
use prost::Message;
use raft_replay::check::check_member;
use raft_replay::fsio::RealFs;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::proto::etcdserverpb::{InternalRaftRequest, Metadata, PutRequest, RequestHeader};
use raft_replay::proto::raftpb::{ConfChange, Entry, HardState};
use raft_replay::proto::walpb::WalSnapshot;
use raft_replay::replay::kv::replay_kv;
use raft_replay::wal::writer::WalWriter;
use raft_replay::wal::DecoderMode;

const ENTRIES: u64 = 200_000;

/// The member's data dir, removed when dropped.
struct Member {
    dir: tempfile::TempDir,
}

impl Member {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn put(index: u64) -> Bytes {
    let request = InternalRaftRequest {
        header: Some(RequestHeader {
            id: index,
            ..Default::default()
        }),
        id: index,
        put: Some(PutRequest {
            key: Bytes::from(format!("/registry/key-{:05}", index % 10_000)),
            value: Bytes::from(vec![b'v'; 100]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Bytes::from(request.encode_to_vec())
}

fn member_fs() -> Member {
    let metadata = Metadata {
        node_id: 1,
        cluster_id: 0xc1,
    }
    .encode_to_vec();
    let mut writer = WalWriter::create(&metadata);
    let bootstrap: Vec<Entry> = (1..=3u64)
        .map(|id| Entry {
            r#type: 1,
            term: 1,
            index: id,
            data: Some(
                ConfChange {
                    id: 0,
                    r#type: 0,
                    node_id: id,
                    context: Some(
                        format!(r#"{{"id":{id},"peerURLs":["http://n{id}:2380"]}}"#).into_bytes(),
                    ),
                }
                .encode_to_vec()
                .into(),
            ),
        })
        .collect();
    writer.save(
        &HardState {
            term: 1,
            vote: 0,
            commit: 3,
        },
        &bootstrap,
    );
    let mut commit = 3;
    let mut index = 4;
    while index <= ENTRIES {
        let end = (index + 9).min(ENTRIES);
        let batch: Vec<Entry> = (index..=end)
            .map(|i| Entry {
                r#type: 0,
                term: 2,
                index: i,
                data: Some(put(i)),
            })
            .collect();
        writer.save(
            &HardState {
                term: 2,
                vote: 1,
                commit,
            },
            &batch,
        );
        commit = end;
        if end % 10_000 < 10 && end > 10 {
            writer.save(
                &HardState {
                    term: 2,
                    vote: 1,
                    commit,
                },
                &[],
            );
            writer.save_snapshot(&WalSnapshot {
                index: end - end % 10_000,
                term: 2,
                conf_state: None,
            });
        }
        index = end + 1;
    }
    writer.save(
        &HardState {
            term: 2,
            vote: 1,
            commit,
        },
        &[],
    );
    let dir = tempfile::Builder::new()
        .prefix("checks-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let wal = dir.path().join("member/wal");
    std::fs::create_dir_all(&wal).unwrap();
    for (name, bytes) in writer.files(true) {
        std::fs::write(wal.join(name), bytes).unwrap();
    }
    Member { dir }
}

fn decode(m: &Member) -> usize {
    let files = MemberFiles::open(&RealFs, m.path()).unwrap();
    read_member(&files, DecoderMode::Strict)
        .contents
        .entries
        .len()
}

fn decode_checks(m: &Member) -> usize {
    let files = MemberFiles::open(&RealFs, m.path()).unwrap();
    let read = read_member(&files, DecoderMode::Strict);
    let check = check_member("m1", &files, &read);
    assert!(check.findings.is_empty(), "{:?}", check.findings);
    read.contents.entries.len() + check.scan.log.len()
}

fn decode_replay(m: &Member, checks: bool) -> u64 {
    let files = MemberFiles::open(&RealFs, m.path()).unwrap();
    let read = read_member(&files, DecoderMode::Strict);
    let replay = replay_kv("m1", &read, None, &mut |_| {}).unwrap();
    assert_eq!(replay.applied_index, ENTRIES);
    if checks {
        let check = check_member("m1", &files, &read);
        assert!(check.findings.is_empty(), "{:?}", check.findings);
    }
    replay.applied_index
}

fn benches(c: &mut Criterion) {
    let fs = member_fs();
    let mut group = c.benchmark_group("checks");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("decode", |b| b.iter(|| black_box(decode(&fs))));
    group.bench_function("decode+checks", |b| {
        b.iter(|| black_box(decode_checks(&fs)))
    });
    group.bench_function("decode+replay", |b| {
        b.iter(|| black_box(decode_replay(&fs, false)))
    });
    group.bench_function("decode+replay+checks", |b| {
        b.iter(|| black_box(decode_replay(&fs, true)))
    });
    group.finish();
}

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_THREAD_CPUTIME_ID is always available on
    // Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Interleaved runs, so machine noise hits both sides alike; medians compared.
fn ratios() {
    let fs = member_fs();
    let wal_bytes: u64 = std::fs::read_dir(fs.path().join("member/wal"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // Thread CPU time: what this work costs, whatever else the (shared) machine is doing.
    let use_wall = std::env::var_os("CHECKS_BENCH_WALL").is_some();
    let time = |f: &dyn Fn()| {
        if use_wall {
            let t = Instant::now();
            f();
            return t.elapsed().as_secs_f64();
        }
        let before = thread_cpu_seconds();
        f();
        thread_cpu_seconds() - before
    };
    let (mut d, mut dc, mut dr, mut drc) = (vec![], vec![], vec![], vec![]);
    let runs: usize = std::env::var("CHECKS_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    for _ in 0..runs {
        d.push(time(&|| {
            black_box(decode(&fs));
        }));
        dc.push(time(&|| {
            black_box(decode_checks(&fs));
        }));
        dr.push(time(&|| {
            black_box(decode_replay(&fs, false));
        }));
        drc.push(time(&|| {
            black_box(decode_replay(&fs, true));
        }));
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    // The minimum is the least disturbed run (the VM is shared); the median is shown with it.
    let (md, mdc, mdr, mdrc) = (min(&d), min(&dc), min(&dr), min(&drc));
    let (d, dc, dr, drc) = (median(d), median(dc), median(dr), median(drc));
    if std::env::var_os("CHECKS_BENCH_DETAIL").is_some() {
        let files = MemberFiles::open(&RealFs, fs.path()).unwrap();
        let (mut pass, mut scan) = (vec![], vec![]);
        for _ in 0..7 {
            pass.push(time(&|| {
                let mut decoder = files.decoder(0, DecoderMode::Strict);
                let mut n = 0u64;
                while decoder.next_record().is_ok() {
                    n += 1;
                }
                black_box(n);
            }));
            scan.push(time(&|| {
                let read = read_member(&files, DecoderMode::Strict);
                black_box(raft_replay::check::scan::scan_member_after(
                    "m1",
                    &files,
                    Some(&read),
                ));
            }));
        }
        println!(
            "one wal::Decoder pass {:8.1} ms   (read_member is one such pass + ReadAll)",
            median(pass) * 1e3
        );

        println!(
            "read_member + scan    {:8.1} ms   (the scan after the boot read, trusting it)",
            median(scan) * 1e3
        );
    }
    println!(
        "\n{ENTRIES} entries, {:.1} MB of WAL (segment files incl. preallocation), {runs} interleaved runs, {}",
        wal_bytes as f64 / 1e6,
        if use_wall { "wall-clock time" } else { "thread CPU time (CHECKS_BENCH_WALL=1 for wall-clock)" }
    );
    println!("                        min        median");
    println!(
        "decode                {:8.1} ms {:8.1} ms",
        md * 1e3,
        d * 1e3
    );
    println!(
        "decode+checks         {:8.1} ms {:8.1} ms   checks add {:5.1} % (min) / {:5.1} % (median) to decode",
        mdc * 1e3,
        dc * 1e3,
        (mdc / md - 1.0) * 100.0,
        (dc / d - 1.0) * 100.0
    );
    println!(
        "decode+replay         {:8.1} ms {:8.1} ms",
        mdr * 1e3,
        dr * 1e3
    );
    println!(
        "decode+replay+checks  {:8.1} ms {:8.1} ms   checks add {:5.1} % (min) / {:5.1} % (median) to decode + replay (budget 30 %)",
        mdrc * 1e3,
        drc * 1e3,
        (mdrc / mdr - 1.0) * 100.0,
        (drc / dr - 1.0) * 100.0
    );
}

criterion_group!(group, benches);

fn main() {
    if std::env::var_os("CHECKS_BENCH_SCAN_LOOP").is_some() {
        // For profilers: the scan alone, many times.
        let m = member_fs();
        let files = MemberFiles::open(&RealFs, m.path()).unwrap();
        let read = read_member(&files, DecoderMode::Strict);
        for _ in 0..30 {
            black_box(raft_replay::check::scan::scan_member_after(
                "m1",
                &files,
                Some(&read),
            ));
        }
        return;
    }
    if std::env::args().any(|a| a == "--ratios-only") {
        ratios();
        return;
    }
    group();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
