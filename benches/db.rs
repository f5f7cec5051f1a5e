//! `raft-replay db` against etcd 3.5.30's `etcdutl snapshot status` on the same etcd backend db of
//! more than 1 GB, in one run: both as child processes, alternately (which goes first alternates
//! too), `BENCH_PAIRS` pairs; the time ratio (ours / etcdutl) is the median of the pairs' ratios,
//! for wall time and for CPU time (user + system: the shared 2-core machines run other jobs, and
//! wall time then measures the neighbours too). Peak RSS is each child's own (`wait4`'s
//! `ru_maxrss`). The two tools must agree on `snapshot status`: hash, revision, total keys, total
//! size.
//!
//! Then our peak RSS on a db of the same keys and revisions with small values (~130 MB instead of
//! ~1.4 GB): memory must follow the number of keys and entries, not the size of the file.
//!
//! The dbs are written by etcd 3.4.23's own mvcc store and backend (`bbolt-ref gen-etcd`, as a
//! member writes `member/snap/db`: no freelist page, batched commits, periodic compactions) into
//! `target/bench-db/` (`BENCH_DB_DIR`), once: a file named after its shape is reused (about two
//! minutes each to write). `make bench` builds bbolt-ref, fetches etcdutl
//! (`tools/etcd-bin/fetch.sh 3.5.30 sid`) and runs this. Without etcdutl or without a db (and
//! no bbolt-ref to write one) it says so and skips.
//!
//! Then a real member of each db ([`members`]): etcd 3.5's own `etcdutl snapshot restore` of the
//! db, booted by etcd 3.5 on loopback for `BENCH_DB_MEMBER_PUTS` puts and SIGKILLed with its db
//! uncommitted since the restore (`tools/etcd-bin/restored-member.sh … kill`: the WAL holds
//! every entry above the db's consistent index); `raft-replay verify` and `hashkv` on each,
//! `BENCH_DB_MEMBER_RUNS` times alternately: wall, CPU, peak RSS, exit code; `hashkv` must equal
//! the HashKV etcd served before the kill, at the same revision, and `verify` must exit 0. The
//! peak-RSS ratio large / small is the flatness: ≈ 1.0 when memory does not follow the db's
//! bytes.
//!
//! Knobs: `BENCH_PAIRS` (5), `BENCH_DB_KEYS` (800000), `BENCH_DB_REVISIONS` (1200000),
//! `BENCH_DB_VALUE` (1100 bytes; the small db: `BENCH_DB_SMALL_VALUE`, 32),
//! `BENCH_DB_DELETE_EVERY` (100), `BENCH_DB_COMPACT_EVERY` (100000), `BENCH_DB_MEMBER_PUTS`
//! (300), `BENCH_DB_MEMBER_RUNS` (3), `BENCH_DB_ONLY` (`status`: only the `snapshot status`
//! part; `members`: only the members'), `RAFT_REPLAY_ETCDUTL`, `RAFT_REPLAY_BBOLT_REF`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

mod common;
use common::child::{measure, measure_status, Measured};

const ETCDUTL_VERSION: &str = "3.5.30";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program from an environment variable, else its default place under the repo.
fn tool(var: &str, default: &str) -> Option<PathBuf> {
    let path = match std::env::var(var) {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo().join(default),
    };
    let path = if path.is_absolute() {
        path
    } else {
        repo().join(path)
    };
    path.is_file().then_some(path)
}

/// What `bbolt-ref gen-etcd` writes.
#[derive(Clone, Copy, Debug)]
struct Shape {
    keys: u64,
    revisions: u64,
    value: u64,
    delete_every: u64,
    compact_every: u64,
}

impl Shape {
    fn file_name(&self) -> String {
        format!(
            "etcd-k{}-r{}-v{}-d{}-c{}.db",
            self.keys, self.revisions, self.value, self.delete_every, self.compact_every
        )
    }
}

/// The db of `shape` under `dir`, written by bbolt-ref if absent (into a sibling, then renamed,
/// so an interrupted run leaves no half-written db for the next).
fn ensure_db(dir: &Path, shape: Shape, bbolt_ref: Option<&Path>) -> Option<PathBuf> {
    let path = dir.join(shape.file_name());
    if path.is_file() {
        return Some(path);
    }
    let Some(bbolt_ref) = bbolt_ref else {
        println!(
            "db bench skipped: {} does not exist and there is no bbolt-ref to write it \
             (make bench builds it: make bbolt-ref, RAFT_REPLAY_BBOLT_REF)",
            path.display()
        );
        return None;
    };
    std::fs::create_dir_all(dir).expect("create the bench db dir");
    let partial = dir.join(format!(".{}.{}", shape.file_name(), std::process::id()));
    let start = Instant::now();
    let status = Command::new(bbolt_ref)
        .arg("gen-etcd")
        .arg(&partial)
        .arg(format!("--keys={}", shape.keys))
        .arg(format!("--revisions={}", shape.revisions))
        .arg(format!("--value-size={}", shape.value))
        .arg(format!("--delete-every={}", shape.delete_every))
        .arg(format!("--compact-every={}", shape.compact_every))
        .stdout(Stdio::null())
        .status()
        .expect("run bbolt-ref gen-etcd");
    assert!(status.success(), "bbolt-ref gen-etcd {shape:?}: {status}");
    std::fs::rename(&partial, &path).expect("rename the generated db");
    eprintln!(
        "wrote {} ({:.0} MB) in {:.0} s",
        path.display(),
        file_mb(&path),
        start.elapsed().as_secs_f64()
    );
    Some(path)
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ours_cmd(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_raft-replay"));
    c.arg("db").arg(db).args(["--format", "json"]);
    c
}

fn etcdutl_cmd(etcdutl: &Path, db: &Path) -> Command {
    let mut c = Command::new(etcdutl);
    c.args(["snapshot", "status", "-w", "json"]).arg(db);
    c
}

/// (hash, revision, total keys, total size) of each tool's `snapshot status`.
fn statuses(ours: &str, theirs: &str) -> ([u64; 4], [u64; 4], Value) {
    let ours: Value = serde_json::from_str(ours).expect("our JSON");
    let theirs: Value = serde_json::from_str(theirs.trim()).expect("etcdutl's JSON");
    let ss = &ours["snapshot_status"];
    let field = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    (
        [
            field(ss, "hash"),
            field(ss, "revision"),
            field(ss, "total_keys"),
            field(ss, "total_size"),
        ],
        [
            field(&theirs, "hash"),
            field(&theirs, "revision"),
            field(&theirs, "totalKey"),
            field(&theirs, "totalSize"),
        ],
        ours,
    )
}

fn main() {
    let Some(etcdutl) = tool(
        "RAFT_REPLAY_ETCDUTL",
        &format!("target/etcd/{ETCDUTL_VERSION}/usr/bin/etcdutl"),
    ) else {
        println!(
            "db bench skipped: no etcdutl {ETCDUTL_VERSION} (make bench fetches it: \
             tools/etcd-bin/fetch.sh {ETCDUTL_VERSION} sid; or set RAFT_REPLAY_ETCDUTL)"
        );
        return;
    };
    let bbolt_ref = tool("RAFT_REPLAY_BBOLT_REF", "target/bbolt-ref/bbolt-ref");
    let dir = std::env::var("BENCH_DB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target/bench-db"));
    let pairs: usize = env_or("BENCH_PAIRS", 5).max(1);
    let large = Shape {
        keys: env_or("BENCH_DB_KEYS", 800_000),
        revisions: env_or("BENCH_DB_REVISIONS", 1_200_000),
        value: env_or("BENCH_DB_VALUE", 1100),
        delete_every: env_or("BENCH_DB_DELETE_EVERY", 100),
        compact_every: env_or("BENCH_DB_COMPACT_EVERY", 100_000),
    };
    let small = Shape {
        value: env_or("BENCH_DB_SMALL_VALUE", 32),
        ..large
    };
    let Some(large_db) = ensure_db(&dir, large, bbolt_ref.as_deref()) else {
        return;
    };
    let Some(small_db) = ensure_db(&dir, small, bbolt_ref.as_deref()) else {
        return;
    };
    let only = std::env::var("BENCH_DB_ONLY").unwrap_or_default();
    if only != "members" {
        snapshot_status(&etcdutl, &large_db, &small_db, large, pairs);
    }
    if only != "status" {
        members(&etcdutl, &large_db, &small_db);
    }
}

/// `raft-replay db` vs `etcdutl snapshot status`: time on the large db, peak RSS on both.
fn snapshot_status(etcdutl: &Path, large_db: &Path, small_db: &Path, large: Shape, pairs: usize) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let scratch = scratch.path();
    let version = measure(Command::new(etcdutl).arg("version"), scratch).stdout;
    // "etcdutl version: 3.5.30" -> "etcdutl 3.5.30"
    let version = version
        .lines()
        .next()
        .unwrap_or_default()
        .replace(" version:", "");

    // Warm the page cache and check that both read the same db the same way.
    let ours = measure(&mut ours_cmd(large_db), scratch);
    let theirs = measure(&mut etcdutl_cmd(etcdutl, large_db), scratch);
    let (a, b, report) = statuses(&ours.stdout, &theirs.stdout);
    assert_eq!(
        a, b,
        "snapshot status (hash, revision, total keys, total size): ours vs etcdutl"
    );
    println!(
        "db bench: raft-replay db vs {version} snapshot status, same file, {pairs} interleaved pairs"
    );
    let deletes = match large.delete_every {
        0 => "no deletes".to_string(),
        n => format!("every {n}th a delete"),
    };
    let compactions = match large.compact_every {
        0 => "never compacted".to_string(),
        n => format!("compacted every {n} revisions"),
    };
    println!(
        "db: {} ({:.0} MB; etcd 3.4.23's mvcc store: {} keys, {} revisions, {}-byte values, \
         {deletes}, {compactions})",
        large_db.display(),
        file_mb(large_db),
        large.keys,
        large.revisions,
        large.value,
    );
    println!(
        "agree: snapshot status hash {}, revision {}, total keys {}, total size {}; \
         ours also: HashKV {}, {} keys in the index",
        a[0], a[1], a[2], a[3], report["hash"], report["keys"]
    );

    let (mut ours_runs, mut etcd_runs) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        // Alternate which goes first, so drift and cache effects fall on both alike.
        if i % 2 == 0 {
            ours_runs.push(measure(&mut ours_cmd(large_db), scratch));
            etcd_runs.push(measure(&mut etcdutl_cmd(etcdutl, large_db), scratch));
        } else {
            etcd_runs.push(measure(&mut etcdutl_cmd(etcdutl, large_db), scratch));
            ours_runs.push(measure(&mut ours_cmd(large_db), scratch));
        }
    }
    let col = |runs: &[Measured], f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
    let ratio = |f: fn(&Measured) -> f64| {
        median(
            ours_runs
                .iter()
                .zip(&etcd_runs)
                .map(|(o, e)| f(o) / f(e))
                .collect(),
        )
    };
    let (wall_ratio, cpu_ratio) = (ratio(|m| m.wall), ratio(|m| m.cpu));
    let ours_rss = ours_runs.iter().map(|m| m.rss).max().unwrap_or(0);
    let etcd_rss = etcd_runs.iter().map(|m| m.rss).max().unwrap_or(0);
    println!(
        "{:<26} {:>8} {:>8} {:>10}",
        "(medians)", "wall s", "CPU s", "peak RSS"
    );
    println!(
        "{:<26} {:>8.2} {:>8.2} {:>7.0} MB",
        "raft-replay db",
        col(&ours_runs, |m| m.wall),
        col(&ours_runs, |m| m.cpu),
        ours_rss as f64 / 1e6
    );
    println!(
        "{:<26} {:>8.2} {:>8.2} {:>7.0} MB",
        "etcdutl snapshot status",
        col(&etcd_runs, |m| m.wall),
        col(&etcd_runs, |m| m.cpu),
        etcd_rss as f64 / 1e6
    );
    println!(
        "time ratio raft-replay / etcdutl (median of {pairs} pairs): wall {wall_ratio:.2}, CPU {cpu_ratio:.2}"
    );

    // Memory against the db's size: the same keys and revisions, small values.
    let (mut small_ours, mut small_etcd) = (Vec::new(), Vec::new());
    for _ in 0..pairs.min(3) {
        small_ours.push(measure(&mut ours_cmd(small_db), scratch));
        small_etcd.push(measure(&mut etcdutl_cmd(etcdutl, small_db), scratch));
    }
    let (sa, sb, small_report) = statuses(&small_ours[0].stdout, &small_etcd[0].stdout);
    assert_eq!(sa, sb, "small db: snapshot status, ours vs etcdutl");
    assert_eq!(
        (small_report["keys"].clone(), sa[2], sa[1]),
        (report["keys"].clone(), a[2], a[1]),
        "the small db has the large one's keys, entries and revision"
    );
    let small_ours_rss = small_ours.iter().map(|m| m.rss).max().unwrap_or(0);
    let small_etcd_rss = small_etcd.iter().map(|m| m.rss).max().unwrap_or(0);
    println!(
        "peak RSS vs db size (same {} keys, {} entries): {:.0} MB db -> {:.0} MB, {:.0} MB db -> {:.0} MB: \
         ratio {:.2} (etcdutl: {:.0} MB -> {:.0} MB, ratio {:.2})",
        report["keys"],
        a[2],
        file_mb(small_db),
        small_ours_rss as f64 / 1e6,
        file_mb(large_db),
        ours_rss as f64 / 1e6,
        ours_rss as f64 / small_ours_rss.max(1) as f64,
        small_etcd_rss as f64 / 1e6,
        etcd_rss as f64 / 1e6,
        etcd_rss as f64 / small_etcd_rss.max(1) as f64,
    );
}

/// One `raft-replay` command on a member, measured.
struct MemberRun {
    measured: Measured,
    code: Option<i32>,
    stderr: String,
}

fn run_on_member(command: &str, member: &Path, scratch: &Path) -> MemberRun {
    let mut c = Command::new(env!("CARGO_BIN_EXE_raft-replay"));
    c.arg(command).arg(member);
    if command == "verify" {
        c.args(["--format", "json"]);
    }
    let (measured, code, stderr) = measure_status(&mut c, scratch);
    MemberRun {
        measured,
        code,
        stderr,
    }
}

/// A member restored from `db` by etcd 3.5 (see the module docs) in `dir`/`name`; etcd's HashKV
/// and the revision it is at.
fn restored_member(
    bin: &Path,
    db: &Path,
    dir: &Path,
    name: &str,
    puts: u64,
) -> (PathBuf, u64, i64) {
    let out = dir.join(name);
    let start = Instant::now();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port")
    };
    let status = Command::new(repo().join("tools/etcd-bin/restored-member.sh"))
        .arg(bin)
        .arg(db)
        .arg(&out)
        .args([port().to_string(), port().to_string(), puts.to_string()])
        .arg("kill")
        .status()
        .expect("run tools/etcd-bin/restored-member.sh");
    assert!(
        status.success(),
        "restored-member.sh {}: {status}",
        db.display()
    );
    let text = std::fs::read_to_string(out.join("etcd-hashkv.json")).expect("etcd's hashkv");
    let v: Value = serde_json::from_str(&text).expect("etcd's hashkv JSON");
    let hash = v[0]["HashKV"]["hash"].as_u64().expect("hash");
    let revision = v[0]["HashKV"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    eprintln!(
        "restored and booted {} with etcd 3.5 in {:.0} s",
        db.display(),
        start.elapsed().as_secs_f64()
    );
    (out.join("data"), hash, revision)
}

/// `verify` and `hashkv` on a real member of each db: wall, CPU, peak RSS, exit code; `hashkv`
/// against etcd's own; the peak-RSS ratio large / small.
fn members(etcdutl: &Path, large_db: &Path, small_db: &Path) {
    let bin = etcdutl.parent().expect("etcdutl's directory");
    if !bin.join("etcd").is_file() || !bin.join("etcdctl").is_file() {
        println!(
            "member bench skipped: no etcd and etcdctl beside {}",
            etcdutl.display()
        );
        return;
    }
    let puts: u64 = env_or("BENCH_DB_MEMBER_PUTS", 300);
    let runs: usize = env_or("BENCH_DB_MEMBER_RUNS", 3).max(1);
    // Members (a copy of each db, 1.5 GB in all) in the temporary directory, removed at the end.
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = dir.path();
    let dbs = [("small", small_db), ("large", large_db)];
    let members: Vec<(&str, PathBuf, u64, i64)> = dbs
        .iter()
        .map(|(name, db)| {
            let (member, hash, revision) = restored_member(bin, db, scratch, name, puts);
            (*name, member, hash, revision)
        })
        .collect();
    println!(
        "member bench: etcd 3.5 `snapshot restore` of each db, {puts} puts and a delete, SIGKILLed \
         with the db at the restore's consistent index; raft-replay verify / hashkv, {runs} runs each"
    );
    println!(
        "{:<22} {:>9} {:>8} {:>8} {:>10} {:>5}",
        "(medians)", "db MB", "wall s", "CPU s", "peak RSS", "exit"
    );
    let mut peaks = std::collections::BTreeMap::new();
    for command in ["verify", "hashkv"] {
        let mut all: Vec<Vec<MemberRun>> = members.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (i, (_, member, _, _)) in members.iter().enumerate() {
                all[i].push(run_on_member(command, member, scratch));
            }
        }
        for ((name, member, hash, revision), runs) in members.iter().zip(&all) {
            for r in runs {
                assert_eq!(
                    r.code,
                    Some(0),
                    "{command} {}: {}\n{}",
                    member.display(),
                    r.measured.stdout,
                    r.stderr
                );
                if command == "hashkv" {
                    let ours: Value =
                        serde_json::from_str(&r.measured.stdout).expect("hashkv JSON");
                    assert_eq!(
                        (ours["hash"].as_u64(), ours["revision"].as_i64()),
                        (Some(*hash), Some(*revision)),
                        "{name}: hashkv vs etcd's own HashKV"
                    );
                }
            }
            let col =
                |f: fn(&Measured) -> f64| median(runs.iter().map(|r| f(&r.measured)).collect());
            let rss = runs.iter().map(|r| r.measured.rss).max().unwrap_or(0);
            peaks.insert((command, *name), rss);
            println!(
                "{:<22} {:>9.0} {:>8.2} {:>8.2} {:>7.0} MB {:>5}",
                format!("{command} ({name})"),
                file_mb(&member.join("member/snap/db")),
                col(|m| m.wall),
                col(|m| m.cpu),
                rss as f64 / 1e6,
                runs[0].code.map_or("signal".to_string(), |c| c.to_string())
            );
        }
    }
    for (_, _, hash, revision) in &members {
        println!("hashkv equals etcd's own: {hash} at revision {revision}");
    }
    for command in ["verify", "hashkv"] {
        let (small, large) = (peaks[&(command, "small")], peaks[&(command, "large")]);
        println!(
            "peak RSS {command}, large / small db: {:.0} MB / {:.0} MB = {:.2} (flat: 1.0)",
            large as f64 / 1e6,
            small as f64 / 1e6,
            large as f64 / small.max(1) as f64
        );
    }
}
