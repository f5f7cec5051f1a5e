//! `raft-replay crash` on the real etcd captures (3.4.23 and 3.5.30, cluster-f with purged
//! segments and `.snap` files): every record boundary of every member
//! recovers without a violation, cluster mode finds none, every fault class runs, and the input
//! is left byte-identical. The full enumeration of every class on every member runs in release
//! behind `RAFT_REPLAY_CRASH_FULL=1` (and in `cargo bench --bench crash`).

mod common;

use std::path::{Path, PathBuf};

use raft_replay::crash::cluster::QuorumLoss;
use raft_replay::crash::{
    enumerate_cluster, enumerate_member, FaultClass, KvPlant, Options, Outcome, ALL_CLASSES,
};
use raft_replay::fsio::RealFs;
use raft_replay::member::MemberFiles;
use raft_replay::replay::from_db::load_member_db_as_written;

fn boundaries_only() -> Options {
    Options {
        classes: vec![
            FaultClass::FsyncPoint,
            FaultClass::RecordBoundary,
            FaultClass::LostUnsynced,
        ],
        cross_checks: 6,
        kv: false,
        ..Options::default()
    }
}

/// Every capture. cluster-f's members purged their first segments and `.snap` files
/// (`--max-wals 2`, `--max-snapshots 2`): the crash states before the first prefix etcd can
/// boot from the files left are not modelled (counted, never judged); its f3 was SIGKILLed and
/// never restarted, and cluster mode holds it to the log it has.
fn crash_captures() -> Vec<String> {
    common::captures()
}

/// Whether the member's first segment is the one etcd's `wal.Create` wrote (named with raft
/// index 0, holding the `{0, 0}` snapshot record): nothing was purged, every state is modelled.
fn wal_from_create(h: &raft_replay::crash::history::History) -> bool {
    h.segments
        .first()
        .is_some_and(|s| s.name.raft_index == 0 && s.name.seq == 0)
}

fn violations(run: &raft_replay::crash::MemberRun) -> Vec<String> {
    run.results
        .iter()
        .filter(|r| r.outcome == Outcome::Violation)
        .take(5)
        .map(|r| {
            format!(
                "{}: [{}] {}",
                r.spec.render(r.class),
                r.kind.unwrap_or(""),
                r.detail.as_deref().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn every_record_boundary_of_every_member_recovers() {
    for (capture, member) in common::all_members()
        .into_iter()
        .filter(|(c, _)| crash_captures().contains(c))
    {
        let run = enumerate_member(&RealFs, &member, &boundaries_only()).unwrap();
        let h = &run.history;
        let name = format!("{capture}/{}", member.display());
        assert!(h.damage.is_none(), "{name}: {:?}", h.damage);
        let not_modelled = |c| run.not_modelled.get(&c).copied().unwrap_or(0);
        if wal_from_create(h) {
            assert_eq!(run.not_modelled_count(), 0, "{name}: nothing was purged");
            assert_eq!(run.first_modelled, None, "{name}");
        } else {
            assert_eq!(
                capture, "cluster-f",
                "{name}: only cluster-f purged segments"
            );
            let first = run
                .first_modelled
                .expect("a bootable prefix past the header");
            assert!(
                not_modelled(FaultClass::RecordBoundary) > 0 && first > h.first_cut(),
                "{name}: the cuts before the first bootable prefix are not modelled"
            );
            assert_eq!(
                not_modelled(FaultClass::RecordBoundary),
                first - h.first_cut(),
                "{name}: exactly the cuts before record {first}"
            );
        }
        assert_eq!(
            run.record_boundaries_checked() + not_modelled(FaultClass::RecordBoundary),
            h.records.len() - h.first_cut() + 1,
            "{name}: every record boundary from the first synced header on"
        );
        assert_eq!(
            run.results
                .iter()
                .filter(|r| r.class == FaultClass::FsyncPoint)
                .count()
                + not_modelled(FaultClass::FsyncPoint),
            h.syncs.len(),
            "{name}: every fsync point"
        );
        assert_eq!(
            run.count(Outcome::Violation),
            0,
            "{name}: {:?}",
            violations(&run)
        );
        assert_eq!(run.count(Outcome::Refused), 0, "{name}");
        assert!(
            run.baseline_finding.is_none(),
            "{name}: {:?}",
            run.baseline_finding
        );
        assert!(
            run.cross_checks.iter().all(|c| c.ok),
            "{name}: the prefix model disagrees with the real recovery path: {:?}",
            run.cross_checks.iter().find(|c| !c.ok)
        );
        // Only the LazyFS states lose anything, and only what was never fsynced.
        for r in &run.results {
            let expected = match r.class {
                FaultClass::LostUnsynced => Outcome::ExpectedLoss,
                _ => Outcome::Recovered,
            };
            assert_eq!(r.outcome, expected, "{name}: {}", r.spec.render(r.class));
        }
    }
}

#[test]
fn cluster_mode_finds_no_violation_in_any_capture() {
    for capture in crash_captures() {
        let members: Vec<PathBuf> = common::members(&capture);
        let run = enumerate_cluster(&RealFs, &members, &boundaries_only()).unwrap();
        assert!(
            !run.voters.is_empty(),
            "{capture}: voters from the final configuration"
        );
        assert!(run.max_crashed >= 1, "{capture}: f ≥ 1");
        assert!(run.combinations > 0, "{capture}");
        assert!(run.findings.is_empty(), "{capture}: {:?}", run.findings);
        for m in &run.members {
            assert_eq!(
                m.count(Outcome::Violation),
                0,
                "{capture}: {:?}",
                violations(m)
            );
        }
    }
}

/// Members enumerated at once give the report members enumerated one by one give (the JSON
/// report byte for byte, apart from the members' timings).
#[test]
fn cluster_mode_reports_the_same_for_any_number_of_jobs() {
    use raft_replay::crash::report::json_report;
    let report = |members: &[PathBuf], jobs: usize| {
        let opts = Options {
            jobs,
            ..boundaries_only()
        };
        let run = enumerate_cluster(&RealFs, members, &opts).unwrap();
        let each: Vec<&raft_replay::crash::MemberRun> = run.members.iter().collect();
        let mut json = json_report(&each, Some(&run), &[], &opts, false);
        for member in json["members"].as_array_mut().unwrap() {
            member.as_object_mut().unwrap().remove("elapsed_ms");
        }
        serde_json::to_string_pretty(&json).unwrap()
    };
    for capture in crash_captures() {
        let members = common::members(&capture);
        let one = report(&members, 1);
        assert!(one.contains("crash_points"), "{capture}: a report");
        assert_eq!(one, report(&members, 3), "{capture}");
    }
}

/// Every class on the small members through the command line: JSON with `crash_points` per
/// class, exit 0, and the input untouched.
#[test]
fn every_class_runs_through_the_cli_and_leaves_the_input_untouched() {
    let root = common::unpacked("cluster-a");
    let before = common::fingerprint(root);
    let members = common::members("cluster-a");
    for name in ["m3", "m5"] {
        let member = members.iter().find(|m| m.ends_with(name)).unwrap();
        let path = member.display().to_string();
        let (code, stdout, stderr) =
            common::run_cli(&["crash", &path, "--format", "json", "--cross-checks", "4"]);
        assert_eq!(code, 0, "{name}: {stderr}\n{stdout}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["verdict"], "ok");
        assert_eq!(report["violation_count"], 0);
        for class in ALL_CLASSES {
            let c = &report["classes"][class.key()];
            let points = c["crash_points"].as_u64().unwrap();
            let sum: u64 = c["outcomes"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(points, sum, "{name} {}", class.key());
            if !matches!(class, FaultClass::SnapFile) || name == "m5" {
                assert!(
                    points > 0,
                    "{name}: class {} enumerated nothing",
                    class.key()
                );
            }
        }
        // Corruption is detected where the format allows it: a flipped data bit is refused.
        assert!(
            report["classes"]["bit_flip"]["outcomes"]["refused"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
    // A zeroed sector in the live segment looks torn to etcd 3.4, which truncates it: an
    // undetected loss, exit 0 without --strict, counted and reproducible from the summary.
    let m3 = members.iter().find(|m| m.ends_with("m3")).unwrap();
    let m3 = m3.display().to_string();
    let (code, stdout, stderr) = common::run_cli(&["crash", &m3, "--classes", "f"]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("OK: "))
        .unwrap_or_else(|| panic!("no summary line: {stdout}"));
    assert!(!summary.contains(" 0 undetected"), "{summary}");
    let first = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("first undetected loss: "))
        .unwrap_or_else(|| panic!("no reproducer in the summary: {stdout}"));
    assert!(
        first.starts_with("raft-replay crash ") && first.contains(" --only f"),
        "{first}"
    );
    let (code, stdout, _) = common::run_cli(&["crash", &m3, "--strict", "--classes", "f"]);
    assert_eq!(code, 1, "--strict fails on an undetected loss\n{stdout}");
    let (code, stdout, _) = common::run_cli(&["crash", "--classes", "abd", "--cross-checks", "2"]);
    assert_eq!(code, 2, "no PATH: cannot run\n{stdout}");
    assert_eq!(common::fingerprint(root), before, "input changed");
}

/// A member whose first segments and `.snap` files were purged, through the command line: the
/// states before the first bootable prefix are reported as not modelled, with how many, in the
/// text and the JSON report, and the run holds (exit 0); the input is left untouched.
#[test]
fn purged_files_are_reported_as_not_modelled_through_the_cli() {
    let root = common::unpacked("cluster-f");
    let before = common::fingerprint(root);
    let members = common::members("cluster-f");
    let f3 = members.iter().find(|m| m.ends_with("f3")).unwrap();
    let path = f3.display().to_string();
    let args = ["crash", &path, "--classes", "abd", "--cross-checks", "2"];
    let (code, stdout, stderr) = common::run_cli(&args);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let run = enumerate_member(
        &RealFs,
        f3,
        &Options {
            classes: vec![
                FaultClass::FsyncPoint,
                FaultClass::RecordBoundary,
                FaultClass::LostUnsynced,
            ],
            cross_checks: 2,
            ..Options::default()
        },
    )
    .unwrap();
    let n = run.not_modelled_count();
    assert!(n > 0);
    assert!(
        stdout.contains(&format!(
            "not modelled: {n} crash state(s) written before record"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{n} crash state(s) not modelled (the files of that time were purged)"
        )),
        "{stdout}"
    );
    let (code, stdout, stderr) = common::run_cli(&[&args[..], &["--format", "json"]].concat());
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verdict"], "ok");
    assert_eq!(report["not_modelled_count"], n);
    let m = &report["members"][0]["not_modelled"];
    assert_eq!(m["count"], n);
    assert_eq!(
        m["first_modelled_record"].as_u64(),
        run.first_modelled.map(|k| k as u64)
    );
    assert_eq!(
        m["by_class"]["record_boundary"],
        run.not_modelled[&FaultClass::RecordBoundary]
    );
    // The KV side starts from the db; the states whose log ends below its consistent index are
    // counted, in the text and the JSON.
    let kv = run.kv_from_db.as_ref().expect("f3's KV side from its db");
    assert!(kv.db_ahead_count() > 0);
    assert_eq!(report["kv_not_modelled_count"], kv.db_ahead_count());
    let m = &report["members"][0]["kv_from_db"];
    assert_eq!(m["consistent_index"], kv.consistent_index);
    assert_eq!(m["not_modelled_count"], kv.db_ahead_count());
    assert_eq!(
        m["by_class"]["record_boundary"],
        kv.db_ahead[&FaultClass::RecordBoundary]
    );
    let (_, text, _) = common::run_cli(&args);
    assert!(
        text.contains(&format!(
            "KV side: replayed from the db at consistent index {}",
            kv.consistent_index
        )) && text.contains(&format!(
            "{} state(s) with the KV side not modelled",
            kv.db_ahead_count()
        )),
        "{text}"
    );
    assert_eq!(common::fingerprint(root), before, "input changed");
}

fn kv_options(plant: Option<KvPlant>) -> Options {
    Options {
        kv: true,
        plant,
        ..boundaries_only()
    }
}

fn first_entry_index(h: &raft_replay::crash::history::History) -> Option<u64> {
    h.records.iter().find_map(|r| match &r.kind {
        raft_replay::crash::history::RecKind::Entry(e) => Some(e.index),
        _ => None,
    })
}

/// etcd's own HashKV of `member` at `applied` from the capture's manifest, if a checkpoint
/// recorded one there.
fn etcd_hashkv_at(capture: &str, member: &Path, applied: u64) -> Option<u64> {
    let name = member.file_name()?.to_str()?.to_string();
    common::manifest(capture)["checkpoints"]
        .as_array()?
        .iter()
        .flat_map(|c| c["members"].as_array().cloned().unwrap_or_default())
        .find(|m| m["name"] == name.as_str() && m["raft_applied_index"] == applied)
        .and_then(|m| m["hash"].as_u64())
}

/// Members whose WAL does not reach back to index 1 (cluster-f's purged segments, the
/// learners that joined through a leader snapshot): crash's KV side starts from the db at its
/// consistent index, as `verify` and `hashkv` do. Every recovered state whose log reaches CI is
/// replayed and equals the uncrashed member at the same applied index; the whole log's equals
/// etcd's own HashKV where the manifest has it (f3: etcd restarted on a copy as SIGKILL left
/// it, 74 entries above CI); the states whose log ends below CI are counted, never judged.
#[test]
fn kv_side_of_members_whose_wal_starts_late_starts_from_the_db() {
    let mut late = 0;
    let mut anchored = Vec::new();
    for (capture, member) in common::all_members() {
        let run = enumerate_member(&RealFs, &member, &kv_options(None)).unwrap();
        let name = format!("{capture}/{}", member.display());
        if first_entry_index(&run.history) == Some(1) {
            assert!(run.kv_from_db.is_none(), "{name}: its WAL holds index 1");
            continue;
        }
        late += 1;
        let files = MemberFiles::open(&RealFs, &member).unwrap();
        let ci = load_member_db_as_written(&files)
            .unwrap()
            .summary
            .consistent_index;
        let kv = run
            .kv_from_db
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no KV side from the db: {:?}", run.notes));
        assert_eq!(kv.consistent_index, ci, "{name}");
        let booted = run.results.iter().filter(|r| r.outcome != Outcome::Refused);
        let (below, reaching): (Vec<_>, Vec<_>) = booted.partition(|r| r.recovered_last < ci);
        assert_eq!(kv.db_ahead_count(), below.len(), "{name}");
        assert!(!reaching.is_empty(), "{name}: the whole log reaches CI");
        let points: Vec<(u64, u32)> = run
            .cross_checks
            .iter()
            .filter_map(|c| c.kv_state.map(|(applied, h)| (applied, h.hash)))
            .collect();
        assert!(!points.is_empty(), "{name}: no KV state replayed");
        assert!(points.iter().all(|(applied, _)| *applied >= ci), "{name}");
        assert!(
            run.cross_checks.iter().all(|c| c.ok),
            "{name}: {:?}",
            run.cross_checks.iter().find(|c| !c.ok)
        );
        assert_eq!(
            run.count(Outcome::Violation),
            0,
            "{name}: {:?}",
            violations(&run)
        );
        let whole = run
            .cross_checks
            .iter()
            .filter(|c| c.kv_state.is_some())
            .max_by_key(|c| c.k)
            .and_then(|c| c.kv_state)
            .unwrap();
        if let Some(expected) = etcd_hashkv_at(&capture, &member, whole.0) {
            assert_eq!(u64::from(whole.1.hash), expected, "{name} at {}", whole.0);
            anchored.push(format!(
                "{capture}/{}",
                member.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(late >= 4, "cluster-f's three members and a learner: {late}");
    for m in ["cluster-f/f1", "cluster-f/f2", "cluster-f/f3"] {
        assert!(
            anchored.iter().any(|a| a == m),
            "{m}: no etcd HashKV to anchor to ({anchored:?})"
        );
    }
}

/// A bug planted in the recovery's KV side (the entry at the db's consistent index applied
/// again) makes the KV check fail on f3, whose WAL holds entries above CI: the recovered
/// HashKV differs from the uncrashed member's, the prefix is a model mismatch, and every state
/// recovering to it a violation.
#[test]
fn a_planted_double_apply_above_the_db_fails_the_kv_check() {
    let f3 = common::members("cluster-f")
        .into_iter()
        .find(|m| m.ends_with("f3"))
        .unwrap();
    let run = enumerate_member(
        &RealFs,
        &f3,
        &kv_options(Some(KvPlant::ReapplyConsistentIndex)),
    )
    .unwrap();
    let failed: Vec<_> = run.cross_checks.iter().filter(|c| !c.ok).collect();
    assert!(!failed.is_empty(), "the planted bug went unseen");
    assert!(
        failed
            .iter()
            .all(|c| c.message.contains("HashKV after recovery")),
        "{failed:?}"
    );
    assert!(run
        .results
        .iter()
        .any(|r| r.outcome == Outcome::Violation && r.kind == Some("crash.model_mismatch")));
}

/// What crash counts as "KV not modelled", on the real binary: a member whose db's consistent
/// index is ahead of its WAL. A single etcd 3.5.30 member takes five puts and stops; its WAL is
/// cut back to three entries below the db's consistent index (a copy in a temp dir). etcd boots
/// on it without a word ("restore consistentIndex"), serves the db's state (the keys of the
/// entries the WAL lost), and re-applies nothing at or below CI: the new term's entries there
/// (its no-op, its publish, a health check's Alarm GET) never reach the backend, and the log
/// and the db disagree from then on — `verify` reports `db.kv_mismatch`.
#[test]
fn etcd_3_5_30_boots_with_its_db_ahead_of_its_wal_and_reapplies_nothing_below_it() {
    let Some(etcd) = common::etcd_35() else {
        return;
    };
    let etcdctl = etcd.with_file_name("etcdctl");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("s1");
    let live = common::LiveEtcd::start(&etcd, &etcdctl, &data);
    for k in ["a", "b", "c", "d", "e"] {
        live.ctl(&["put", k, &format!("v{k}")]).unwrap();
    }
    live.stop();
    let files = MemberFiles::open(&RealFs, &data).unwrap();
    let ci = load_member_db_as_written(&files)
        .unwrap()
        .summary
        .consistent_index;
    drop(files);
    // Cut the WAL after the entry 3 below CI: the last three puts' entries are lost.
    let history = raft_replay::crash::history::History::load(&RealFs, &data).unwrap();
    let keep = ci - 3;
    let cut = history
        .records
        .iter()
        .find(|r| matches!(&r.kind, raft_replay::crash::history::RecKind::Entry(e) if e.index == keep))
        .map(|r| r.end() as usize)
        .unwrap();
    assert_eq!(history.segments.len(), 1);
    let segment = data
        .join("member/wal")
        .join(&history.segments[0].name.file_name);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[cut..].fill(0);
    std::fs::write(&segment, bytes).unwrap();
    // etcd boots on it and serves the db's state: c, d and e, whose entries are gone.
    let live = common::LiveEtcd::start(&etcd, &etcdctl, &data);
    let served = live.ctl(&["get", "e"]).unwrap();
    assert!(served.contains("ve"), "{served}");
    for k in ["x", "y", "z"] {
        live.ctl(&["put", k, &format!("v{k}")]).unwrap();
    }
    live.stop();
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(
        log.contains(&format!(
            "\"msg\":\"restore consistentIndex\",\"index\":{ci}"
        )),
        "etcd did not restore CI {ci}"
    );
    // The new term's entries at or below CI were not applied to the backend: the db's key
    // bucket is not the WAL's replay.
    let path = data.to_str().unwrap();
    let (code, stdout, stderr) = common::run_cli(&["verify", path]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("db.kv_mismatch"), "{stdout}");
}

/// A member whose records are ~1 MB (cluster-b, a cut segment): every class with small caps.
#[test]
fn every_class_on_a_member_with_a_cut_segment() {
    let members = common::members("cluster-b");
    let opts = Options {
        classes: ALL_CLASSES.to_vec(),
        cross_checks: 3,
        kv: false,
        max_torn_per_write: 2,
        max_subsets_per_write: 2,
        max_zeroed_per_segment: 8,
        max_flips_per_segment: 8,
        ..Options::default()
    };
    let run = enumerate_member(&RealFs, &members[0], &opts).unwrap();
    assert!(run.history.segments.len() >= 2);
    assert_eq!(run.count(Outcome::Violation), 0, "{:?}", violations(&run));
    let tally = run.tally();
    let get = |c, o| tally.get(&(c, o)).copied().unwrap_or(0);
    // A zeroed sector in the cut (middle) segment breaks the chain at the next segment's crc
    // record: refused. In the live segment it looks torn: etcd truncates (undetected loss).
    assert!(get(FaultClass::ZeroedSector, Outcome::Refused) > 0);
    assert!(get(FaultClass::ZeroedSector, Outcome::UndetectedLoss) > 0);
    assert!(get(FaultClass::TornSector, Outcome::ExpectedLoss) > 0);
    assert_eq!(
        get(FaultClass::LastSegmentMissing, Outcome::UndetectedLoss),
        1
    );
}

/// The whole enumeration, every class, every member and every capture (release only).
#[test]
fn full_enumeration_of_every_member() {
    if std::env::var_os("RAFT_REPLAY_CRASH_FULL").is_none() {
        eprintln!(
            "skipped: set RAFT_REPLAY_CRASH_FULL=1 (release build) to run every class in full"
        );
        return;
    }
    for capture in crash_captures() {
        let members = common::members(&capture);
        let run = enumerate_cluster(&RealFs, &members, &Options::default()).unwrap();
        // Storage faults may cost a quorum as undetected loss (etcd's known weakness); no
        // combination may be a violation.
        let broken: Vec<_> = run.findings_of(QuorumLoss::Violation).collect();
        assert!(broken.is_empty(), "{capture}: {broken:?}");
        for m in &run.members {
            assert_eq!(
                m.count(Outcome::Violation),
                0,
                "{capture}: {:?}",
                violations(m)
            );
            assert!(m.cross_checks.iter().all(|c| c.ok));
            eprintln!(
                "{capture} {}: {} states in {:.2} s, {:?}",
                m.history.input.display(),
                m.results.len(),
                m.elapsed.as_secs_f64(),
                m.tally()
            );
        }
    }
}
