//! The release a replay starts with comes from the files, not from the cluster version
//! (`replay::binary`): on every corpus member it is the binary that wrote the member's first
//! entries (the manifests say which), the evidence it rests on holds on real data (a WAL
//! snapshot record carries `conf_state` exactly when etcd 3.5 wrote it), and on a live etcd
//! 3.5.30 cluster whose cluster version stays at `MinClusterVersion` "3.0.0" (one member never
//! started) the replay applies as 3.5.30 and gives etcd's own HashKV.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raft_replay::crash::history::{History, RecKind};
use raft_replay::fsio::RealFs;
use serde_json::Value;

/// The binary of each run of a member: (etcd version, the WAL entries it wrote (from, to]).
fn runs(capture: &str, name: &str) -> Vec<(String, Option<u64>, Option<u64>)> {
    let manifest = common::manifest(capture);
    let member = manifest["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or(Value::Null);
    member["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    (
                        r["etcd_version"].as_str().unwrap().to_string(),
                        r["wal_last_entry_before_start"].as_u64(),
                        r["wal_last_entry_at_stop"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn member_name(member: &Path) -> String {
    member.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_corpus_member_starts_as_the_binary_that_wrote_its_first_entries() {
    let mut by_evidence = std::collections::BTreeMap::<String, usize>::new();
    for (capture, member) in common::all_members() {
        let name = member_name(&member);
        let expected = runs(&capture, &name)
            .first()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| {
                common::manifest(&capture)["etcd_version"]
                    .as_str()
                    .unwrap()
                    .to_string()
            });
        let (code, stdout, stderr) = common::run_cli(&["hashkv", member.to_str().unwrap()]);
        assert_eq!(code, 0, "{capture}/{name}: {stderr}");
        let ours: Value = serde_json::from_str(&stdout).unwrap();
        let started = &ours["started_as"];
        assert_eq!(started["release"], expected.as_str(), "{capture}/{name}");
        assert_ne!(started["evidence"], "none", "{capture}/{name}");
        assert!(
            stderr.contains(&format!("applied as etcd {expected} from the start")),
            "{stderr}"
        );
        *by_evidence
            .entry(started["evidence"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    // The corpus exercises each kind of evidence: 3.4 and 3.5 WAL snapshot records, dbs.
    for kind in [
        "wal_snapshot_with_conf_state",
        "wal_snapshot_without_conf_state",
        "db",
    ] {
        assert!(by_evidence.contains_key(kind), "{by_evidence:?}");
    }
}

/// The premise, on the captures whose manifests say which binary wrote which entries
/// (cluster-d: 3.5.30; cluster-e: 3.4.23, then 3.5.30 after each member's restart): every WAL
/// snapshot record past index 0 carries `conf_state` exactly when its writer was 3.5. A record
/// belongs to the run that wrote the first entry after it (a restarted member may write a
/// snapshot record before any entry of its own), or to the last run.
#[test]
fn a_wal_snapshot_record_carries_conf_state_exactly_when_etcd_3_5_wrote_it() {
    let mut checked = [0usize; 2];
    for capture in ["cluster-d", "cluster-e"] {
        for member in common::members(capture) {
            let name = member_name(&member);
            let runs = runs(capture, &name);
            assert!(
                !runs.is_empty(),
                "{capture}/{name}: no runs in the manifest"
            );
            let history = History::load(&RealFs, &member).unwrap();
            for (i, record) in history.records.iter().enumerate() {
                let RecKind::Snapshot(s) = &record.kind else {
                    continue;
                };
                if s.index == 0 {
                    continue;
                }
                let next_entry = history.records[i + 1..].iter().find_map(|r| match &r.kind {
                    RecKind::Entry(e) => Some(e.index),
                    _ => None,
                });
                let run = next_entry
                    .and_then(|e| {
                        runs.iter().find(|(_, from, to)| {
                            from.is_none_or(|f| e > f) && to.is_none_or(|t| e <= t)
                        })
                    })
                    .unwrap_or_else(|| runs.last().unwrap());
                let by_3_5 = run.0.starts_with("3.5.");
                assert_eq!(
                    s.conf_state.is_some(),
                    by_3_5,
                    "{capture}/{name}: snapshot record at index {} written by {}",
                    s.index,
                    run.0
                );
                checked[usize::from(by_3_5)] += 1;
            }
        }
    }
    assert!(
        checked[0] > 0 && checked[1] > 0,
        "records of both releases: {checked:?}"
    );
}

/// A live etcd 3.5.30 cluster of three whose third member never starts: the leader cannot reach
/// it, `decideClusterVersion` returns nil and `monitorVersions` sets the cluster version to
/// `MinClusterVersion` "3.0.0" (raft index 7 here), where it stays. The two members serve
/// writes, an `auth status` (3.5 proposes it through raft; 3.4.23 would panic on it, "not
/// implemented") and a compaction at a tombstone's revision. The replay applies them as 3.5.30
/// (the db's `meta/term`), says so, and its HashKV is etcd's own.
#[test]
fn writes_under_cluster_version_3_0_0_apply_as_the_3_5_30_binary() {
    let Some(etcd) = common::etcd_35() else {
        return;
    };
    let etcdctl = etcd.with_file_name("etcdctl");
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let clients: Vec<u16> = (0..2).map(|_| common::free_port()).collect();
    let initial: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("v{i}=http://127.0.0.1:{p}"))
        .collect();
    let mut members = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        members.push(Member::start(
            &etcd,
            &dir.path().join(format!("v{i}")),
            i,
            peers[i],
            *client,
            &initial.join(","),
        ));
    }
    let ctl = |args: &[&str]| -> String {
        let out = std::process::Command::new(&etcdctl)
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &format!("http://127.0.0.1:{}", clients[0]),
                "--command-timeout",
                "10s",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let version = loop {
        let v = get_version(clients[0]);
        if v.as_ref()
            .is_some_and(|v| v["etcdcluster"] != "not_decided")
        {
            break v.unwrap();
        }
        assert!(Instant::now() < deadline, "no cluster version in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(version["etcdserver"], "3.5.30");
    assert_eq!(version["etcdcluster"], "3.0.0", "{version}");
    ctl(&["put", "k1", "v1"]);
    ctl(&["put", "k2", "v2"]);
    ctl(&["del", "k1"]); // revision 4: the tombstone the compaction lands on
    ctl(&["auth", "status"]);
    ctl(&["compaction", "4"]);
    ctl(&["put", "k3", "v3"]);
    let hashkv: Value = serde_json::from_str(&ctl(&["endpoint", "hashkv", "-w", "json"])).unwrap();
    let etcd_hash = hashkv[0]["HashKV"]["hash"].as_u64().unwrap();
    assert_eq!(get_version(clients[0]).unwrap()["etcdcluster"], "3.0.0");
    let paths: Vec<PathBuf> = members.iter().map(|m| m.data_dir.clone()).collect();
    for m in members {
        m.stop();
    }
    for path in &paths {
        let (code, stdout, stderr) = common::run_cli(&["hashkv", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        let ours: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(ours["hash"].as_u64(), Some(etcd_hash), "{stdout}");
        assert_eq!(ours["cluster_version"], "3.0");
        assert_eq!(ours["applied_as"], "3.5.30", "{stdout}");
        assert_eq!(ours["started_as"]["evidence"], "db");
        assert!(!stderr.contains("panics"), "{stderr}");
    }
    let paths: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    let (code, stdout, stderr) =
        common::run_cli(&[&["verify", "--format", "json"], &paths[..]].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // verify's report says which evidence chose the rules, per member.
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    for m in members {
        assert_eq!(m["replay"]["started_as"]["release"], "3.5.30", "{m}");
        assert_eq!(m["replay"]["started_as"]["evidence"], "db", "{m}");
        assert!(m["replay"]["panicking_entries"].is_null(), "{m}");
    }
}

/// `GET /version` of a member's client URL.
fn get_version(client: u16) -> Option<Value> {
    let addr = format!("127.0.0.1:{client}").parse().unwrap();
    let response = raft_replay::gate::rehearse::http::request(
        addr,
        "GET",
        "/version",
        None,
        Duration::from_secs(2),
    )
    .ok()?;
    serde_json::from_str(&response.body).ok()
}

/// One etcd process of the test cluster, killed when dropped.
struct Member {
    child: std::process::Child,
    data_dir: PathBuf,
}

impl Member {
    fn start(
        etcd: &Path,
        data_dir: &Path,
        i: usize,
        peer: u16,
        client: u16,
        initial: &str,
    ) -> Member {
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut command = std::process::Command::new(etcd);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["--name", &format!("v{i}"), "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", initial])
            .args(["--initial-cluster-token", "raft-replay-start-release"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd 3.5.30");
        Member {
            child,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGTERM, then wait (etcd commits its backend on a clean stop).
    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
