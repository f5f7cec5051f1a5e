//! `gate --rehearse`: the upgrade rehearsed on the real etcd 3.5.30 binary (fetched by
//! `tools/etcd-bin/fetch.sh`, see `common::etcd_35`). Every bundled 3.4 capture boots and serves
//! the replay's HashKV — which is also the HashKV etcd 3.4.23 itself reported at the capture's
//! last checkpoint; a copy whose db is older than its boot snapshot blocks with etcd's own panic;
//! a boot past its deadline and a Ctrl-C stop etcd and leave nothing behind. Inputs are never
//! written.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{captures, copy_dir, etcd_35, fingerprint, manifest, members, run_cli};

/// The etcd pids and data copies the CLI reported on stderr.
fn started(stderr: &str) -> Vec<(u32, PathBuf)> {
    stderr
        .lines()
        .filter_map(|l| {
            let pid = l.split("(pid ").nth(1)?.split(')').next()?.parse().ok()?;
            let copy = l.split("copy in ").nth(1)?;
            Some((pid, PathBuf::from(copy)))
        })
        .collect()
}

/// Every etcd started is gone (not even a zombie) and its temporary copy removed.
fn assert_cleaned_up(stderr: &str, expected: usize) {
    let started = started(stderr);
    assert_eq!(started.len(), expected, "{stderr}");
    for (pid, copy) in started {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "etcd pid {pid} still exists"
        );
        assert!(!copy.exists(), "{} was left behind", copy.display());
    }
}

/// The final checkpoint's HashKV etcd 3.4.23 reported for a member, if it was live then.
fn manifest_hash(capture: &str, member: &str) -> Option<u64> {
    let m = manifest(capture);
    let last = m["checkpoints"].as_array()?.last()?;
    last["members"]
        .as_array()?
        .iter()
        .find(|x| x["name"] == member)
        .and_then(|x| x["hash"].as_u64())
}

#[test]
fn every_capture_boots_on_3_5_30_and_serves_the_replays_hashkv() {
    let Some(etcd) = etcd_35() else { return };
    let etcd = etcd.display().to_string();
    for capture in captures() {
        let paths = members(&capture);
        let before: Vec<_> = paths.iter().map(|p| fingerprint(p)).collect();
        let junit = tempfile::NamedTempFile::new().unwrap();
        let mut args: Vec<String> = vec!["gate".into()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        args.extend(["--target", "3.5", "--format", "json", "--rehearse", &etcd].map(String::from));
        args.extend(["--junit".to_string(), junit.path().display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = run_cli(&args);
        assert_eq!(code, 0, "{capture}: {stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let rehearsals = report["rehearsal"].as_array().expect("a rehearsal section");
        assert_eq!(rehearsals.len(), paths.len());
        for (r, m) in rehearsals.iter().zip(report["members"].as_array().unwrap()) {
            let name = r["member"].as_str().unwrap();
            let roles = manifest(&capture)["members"].clone();
            let role = roles
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == name)
                .map(|x| x["role"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            if role.contains("removed") {
                // etcd refuses to re-add a removed id; the member's own log records the removal.
                assert_eq!(r["status"], "info", "{capture}/{name}: {r}");
                assert!(r["message"].as_str().unwrap().contains("removed"), "{r}");
                assert!(
                    r["details"].to_string().contains("membership: ID removed"),
                    "{r}"
                );
                continue;
            }
            assert_eq!(r["status"], "pass", "{capture}/{name}: {r}");
            let observed = &r["observed"];
            assert_eq!(observed["server_version"], "3.5.30", "{r}");
            assert_eq!(observed["hash"]["hash"], m["hashkv"]["hash"], "{r}\n{m}");
            assert_eq!(observed["revision"], m["hashkv"]["revision"], "{r}\n{m}");
            assert_eq!(
                observed["hash"]["compact_revision"],
                m["hashkv"]["compact_revision"]
            );
            if let Some(hash) = manifest_hash(&capture, name) {
                assert_eq!(observed["hash"]["hash"].as_u64(), Some(hash), "{r}");
            }
        }
        let xml = std::fs::read_to_string(junit.path()).unwrap();
        let cases = xml.matches("name=\"rehearsal\"").count();
        assert_eq!(cases, paths.len(), "one JUnit case per member:\n{xml}");
        assert!(!xml.contains("blocked: "), "{xml}");
        assert_cleaned_up(&stderr, paths.len());
        for (p, was) in paths.iter().zip(before) {
            assert_eq!(fingerprint(p), was, "{} was written", p.display());
        }
    }
}

/// cluster-a's m1 with the db of m3 (consistent index 92, far below m1's boot snapshot): the
/// backup of the wrong member restored. etcd 3.5.30 panics looking for the snapshot's db.
#[test]
fn a_db_older_than_the_boot_snapshot_blocks_with_etcds_panic() {
    let Some(etcd) = etcd_35() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m1 = dir.path().join("m1");
    copy_dir(&common::damage::member("cluster-a", "m1"), &m1);
    let m3 = common::damage::member("cluster-a", "m3");
    std::fs::copy(m3.join("member/snap/db"), m1.join("member/snap/db")).unwrap();
    let before = fingerprint(&m1);
    let m1_arg = m1.display().to_string();
    let etcd = etcd.display().to_string();
    let args = ["gate", &m1_arg, "--target", "3.5", "--rehearse", &etcd];
    let (code, stdout, stderr) = run_cli(&args);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let section = stdout
        .split("\nrehearsal")
        .nth(1)
        .expect("a rehearsal section");
    assert!(
        section.contains("BLOCKED  m1: etcd logged a panic or fatal line"),
        "{section}"
    );
    assert!(
        section.contains("failed to recover v3 backend from snapshot"),
        "{section}"
    );
    assert!(
        stdout.contains("rehearsal: 1 of 1 member(s) blocking"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run_cli(&[&args[..], &["--format", "json"]].concat());
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["rehearsals_blocked"], 1);
    assert_eq!(report["rehearsal"][0]["status"], "blocked");
    assert_cleaned_up(&stderr, 1);
    assert_eq!(fingerprint(&m1), before);
}

#[test]
fn a_boot_past_its_deadline_blocks_and_is_stopped() {
    let Some(etcd) = etcd_35() else { return };
    let member = common::damage::member("cluster-b", "b1");
    let before = fingerprint(&member);
    let (m, e) = (member.display().to_string(), etcd.display().to_string());
    let started_at = Instant::now();
    let (code, stdout, stderr) = run_cli(&[
        "gate",
        &m,
        "--target",
        "3.5",
        "--rehearse",
        &e,
        "--rehearse-timeout",
        "0.2",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("BLOCKED  b1: did not serve within 0.2 s"),
        "{stdout}"
    );
    assert!(started_at.elapsed() < Duration::from_secs(30));
    assert_cleaned_up(&stderr, 1);
    assert_eq!(fingerprint(&member), before);
}

#[test]
fn ctrl_c_stops_etcd_and_exits_2() {
    let Some(etcd) = etcd_35() else { return };
    let paths = members("cluster-a");
    let mut child = Command::new(common::bin())
        .arg("gate")
        .args(&paths)
        .args(["--target", "3.5", "--rehearse"])
        .arg(&etcd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("rehearsing") {
            break;
        }
    }
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    for line in lines {
        stderr.push_str(&line.unwrap());
        stderr.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_cleaned_up(&stderr, 1);
}

#[test]
fn a_missing_binary_cannot_run() {
    let member = common::damage::member("cluster-b", "b1")
        .display()
        .to_string();
    let (code, _, stderr) = run_cli(&[
        "gate",
        &member,
        "--target",
        "3.5",
        "--rehearse",
        "/nonexistent/etcd",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/etcd"), "{stderr}");
    let (code, _, stderr) = run_cli(&[
        "gate",
        &member,
        "--target",
        "3.5",
        "--rehearse",
        "/nonexistent/etcd",
        "--rehearse-timeout",
        "-1",
    ]);
    assert_eq!(code, 2, "{stderr}");
}

/// The loop over members, with a runner that records what it is asked (no etcd): each member's
/// resolved dirs, its label and the replay's revision reach the runner, in input order, and a
/// runner error ends the rehearsal with that error.
#[test]
fn each_member_is_booted_once_at_the_replays_revision() {
    use raft_replay::gate::rehearse::{
        rehearse, BootOutcome, BootRequest, EtcdRunner, RehearseError,
    };
    use std::cell::RefCell;

    struct Recorder(RefCell<Vec<BootRequest>>, bool);
    impl EtcdRunner for Recorder {
        fn boot(&self, request: &BootRequest) -> Result<BootOutcome, RehearseError> {
            self.0.borrow_mut().push(request.clone());
            if self.1 {
                return Err(RehearseError::Interrupted);
            }
            Ok(BootOutcome::TimedOut {
                after: Duration::from_secs(1),
                log: vec![],
            })
        }
    }
    let paths = members("cluster-c");
    let fs = raft_replay::RealFs;
    let report = raft_replay::gate::run_gate(
        &fs,
        &paths,
        raft_replay::gate::version::Version::parse("3.5").unwrap(),
        Default::default(),
        None,
    )
    .unwrap();
    let runner = Recorder(RefCell::new(vec![]), false);
    let judged = rehearse(&fs, &runner, &report.members).unwrap();
    let asked = runner.0.into_inner();
    assert_eq!(asked.len(), paths.len());
    for ((request, member), path) in asked.iter().zip(&report.members).zip(&paths) {
        assert_eq!(&request.input, path);
        assert_eq!(request.label, member.label);
        assert_eq!(request.wal_dir, path.join("member/wal"));
        assert_eq!(request.snap_dir, Some(path.join("member/snap")));
        let kv = member.kv.as_ref().unwrap();
        assert_eq!(request.hash_revision, kv.revision);
    }
    assert!(judged.iter().all(|r| r.message.contains("did not serve")));
    let failing = Recorder(RefCell::new(vec![]), true);
    assert!(matches!(
        rehearse(&fs, &failing, &report.members),
        Err(RehearseError::Interrupted)
    ));
    assert_eq!(failing.0.borrow().len(), 1);
}
