//! The start from the backend db and the db ↔ log checks on damaged copies of real captures.
//!
//! bbolt data pages carry no checksum (only the metas do), so a copy is damaged by rewriting
//! bytes inside a leaf page where they stay decodable: the `meta/consistent_index` value (key and
//! value are contiguous in a leaf page, and the `meta` bucket is inline in the root leaf), or the
//! last byte of a `KeyValue`'s value field. Every copy of the pattern in the file is rewritten
//! (freed pages may hold older copies), so the reachable one is.

mod common;

use std::path::{Path, PathBuf};

use prost::Message;
use raft_replay::backend::etcd::for_each_in_bucket;
use raft_replay::backend::Db;
use raft_replay::fsio::RealFs;
use raft_replay::proto::etcdserverpb::KeyValue;
use serde_json::Value;

fn member(capture: &str, name: &str) -> PathBuf {
    common::members(capture)
        .into_iter()
        .find(|m| m.ends_with(name))
        .unwrap()
}

fn db_file(member: &Path) -> PathBuf {
    member.join("member/snap/db")
}

/// Replaces every occurrence of `from` by `to` (same length) in `file`; returns how many.
fn replace_all(file: &Path, from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(file).unwrap();
    let mut count = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + to.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(file, bytes).unwrap();
    count
}

/// Rewrites the db's `meta/consistent_index` from `old` to `new`.
fn set_consistent_index(member: &Path, old: u64, new: u64) {
    let mut from = b"consistent_index".to_vec();
    from.extend_from_slice(&old.to_be_bytes());
    let mut to = b"consistent_index".to_vec();
    to.extend_from_slice(&new.to_be_bytes());
    assert!(replace_all(&db_file(member), &from, &to) >= 1);
}

fn verify_json(paths: &[&Path]) -> (i32, Value, String) {
    let mut args = vec!["verify".to_string(), "--format".into(), "json".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = common::run_cli(&args);
    (code, serde_json::from_str(&stdout).unwrap(), stderr)
}

fn findings_of(report: &Value, kind: &str) -> Vec<Value> {
    report["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["findings"].as_array().unwrap().clone())
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn final_expected(capture: &str, name: &str) -> Value {
    let manifest = common::manifest(capture);
    let last = manifest["checkpoints"].as_array().unwrap().last().unwrap();
    last["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn the_corpus_members_whose_wal_starts_late_are_replayed_from_the_db() {
    for (capture, name) in [("cluster-a", "m5"), ("cluster-c", "c4")] {
        let m = member(capture, name);
        let (code, stdout, stderr) = common::run_cli(&["verify", m.to_str().unwrap()]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains("replayed from the db at consistent index")
                && stdout.contains("leader snapshot")
                && !stdout.contains("raft only"),
            "{stdout}"
        );
        let expected = final_expected(capture, name);
        assert!(
            stdout.contains(&format!("hashkv {}", expected["hash"])),
            "{stdout}"
        );
    }
}

#[test]
fn a_db_ahead_of_the_log_is_a_finding() {
    // m1's WAL reaches index 1 (the replay from the WAL still runs); m5's does not (no KV state).
    for (name, ci) in [("m1", 5510u64), ("m5", 5510)] {
        let copy = common::copy_member(&member("cluster-a", name));
        set_consistent_index(copy.path(), ci, ci + 100);
        let (code, report, stderr) = verify_json(&[copy.path()]);
        assert_eq!(code, 1, "{name}: {stderr}");
        let found = findings_of(&report, "db.consistent_index_beyond_log");
        assert_eq!(found.len(), 1, "{name}: {report}");
        assert_eq!(found[0]["raft_index"], ci + 100);
        assert_eq!(found[0]["severity"], "corruption");
        let replay = &report["members"][0]["replay"];
        if name == "m5" {
            assert!(
                replay["kv_unavailable"]
                    .as_str()
                    .unwrap()
                    .contains("beyond the last WAL index"),
                "{replay}"
            );
            let (code, _, stderr) = common::run_cli(&["hashkv", copy.path().to_str().unwrap()]);
            assert_eq!(code, 1, "{stderr}");
            assert!(stderr.contains("the db is ahead of the log"), "{stderr}");
        } else {
            assert!(replay["hashkv"].is_u64(), "{replay}");
        }
    }
}

#[test]
fn a_db_older_than_the_boot_snapshot_is_a_finding() {
    // c4 boots from its .snap at 5505; a db at consistent index 5400 is older. (Only the
    // consistent index is rewritten: an older db's data would be older too, which this check
    // does not look at.)
    let copy = common::copy_member(&member("cluster-c", "c4"));
    set_consistent_index(copy.path(), 5594, 5400);
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "{stderr}");
    let found = findings_of(&report, "db.older_than_snapshot");
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["raft_index"], 5400);
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("etcd refuses to start"),
        "{found:?}"
    );
    let (code, _, stderr) = common::run_cli(&["hashkv", copy.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("below the snapshot etcd boots from"),
        "{stderr}"
    );
}

#[test]
fn a_value_changed_in_the_key_bucket_is_named_by_revision_and_key() {
    let copy = common::copy_member(&member("cluster-a", "m1"));
    let db = db_file(copy.path());
    // The newest live put without a lease whose value is non-empty: its marshaled KeyValue ends
    // with the value field, so its last byte is a value byte.
    let mut target: Option<(Vec<u8>, Vec<u8>)> = None;
    {
        let fs = RealFs;
        let opened = Db::open(&fs, &db).unwrap();
        for_each_in_bucket(&opened, b"key", &mut |k, v| {
            if k.len() == 17 {
                if let Ok(kv) = KeyValue::decode(v) {
                    if kv.lease == 0 && !kv.value.is_empty() && v.ends_with(&kv.value) {
                        target = Some((k.to_vec(), v.to_vec()));
                    }
                }
            }
        })
        .unwrap();
    }
    let (bucket_key, value) = target.expect("a put to damage");
    let kv = KeyValue::decode(&value[..]).unwrap();
    let main = i64::from_be_bytes(bucket_key[..8].try_into().unwrap());
    let sub = i64::from_be_bytes(bucket_key[9..17].try_into().unwrap());
    let mut changed = value.clone();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'Z' { b'Y' } else { b'Z' };
    assert!(replace_all(&db, &value, &changed) >= 1);
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "{stderr}");
    let found = findings_of(&report, "db.kv_mismatch");
    assert_eq!(found.len(), 1, "{report}");
    let message = found[0]["message"].as_str().unwrap();
    let key = String::from_utf8_lossy(&kv.key).into_owned();
    assert!(
        message.contains(&format!("revision {main}_{sub}")) && message.contains(&key),
        "{message}"
    );
}

#[test]
fn entries_above_the_consistent_index_already_in_the_db_apply_as_etcd_applies_them() {
    // etcd 3.4 moves the consistent index only with KV writes: a db at 5509 may already hold
    // the effect of the lease revoke at 5510 (the lease is gone). Re-applied, the revoke finds no
    // lease (etcd: "lease not found") and changes nothing: the HashKV stays etcd's.
    let copy = common::copy_member(&member("cluster-a", "m5"));
    set_consistent_index(copy.path(), 5510, 5509);
    let (code, stdout, stderr) = common::run_cli(&["hashkv", copy.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("consistent index 5509"), "{stderr}");
    let ours: Value = serde_json::from_str(&stdout).unwrap();
    let expected = final_expected("cluster-a", "m5");
    assert_eq!(ours["hash"], expected["hash"]);
    assert_eq!(ours["revision"], expected["revision"]);
    assert_eq!(ours["applied_index"], 5510);
}

#[test]
fn a_consistent_index_above_the_persisted_commit_raises_the_commit() {
    // A commit-only HardState is not fsynced: CI (5510) above the commit (5505 here) but within
    // the log is no finding, and raft-rs gets the commit raised to CI instead of refusing.
    use raft_replay::member::{read_member, MemberFiles};
    use raft_replay::mvcc::EtcdVersion;
    use raft_replay::replay::from_db::{load_member_db, replay_kv_from_db};
    let m5 = member("cluster-a", "m5");
    let fs = RealFs;
    let files = MemberFiles::open(&fs, &m5).unwrap();
    let mut read = read_member(&files, raft_replay::wal::DecoderMode::Strict);
    read.contents.hard_state.commit = 5505;
    let db = load_member_db(&files, EtcdVersion::default()).unwrap();
    let kv = replay_kv_from_db("m5", &read, db, None, &mut |_| {}).unwrap();
    assert!(kv.raft.started, "{:?}", kv.raft.findings);
    assert!(kv.raft.findings.is_empty(), "{:?}", kv.raft.findings);
    assert_eq!(kv.applied_index, 5510);
    let expected = final_expected("cluster-a", "m5");
    assert_eq!(
        u64::from(kv.store.hash_kv(0).unwrap().hash),
        expected["hash"].as_u64().unwrap()
    );
}

#[test]
fn a_wal_only_copy_verifies_as_before_and_says_there_is_no_db() {
    let copy = common::copy_member(&member("cluster-a", "m1"));
    std::fs::remove_file(db_file(copy.path())).unwrap();
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 0, "{stderr}");
    let replay = &report["members"][0]["replay"];
    assert!(replay["hashkv"].is_u64());
    assert!(
        replay["db_checks_skipped"]
            .as_str()
            .unwrap()
            .contains("no backend db"),
        "{replay}"
    );
    assert!(report["members"][0]["findings"]
        .as_array()
        .unwrap()
        .is_empty());
    // A late-starting WAL without its db: raft only, saying why.
    let copy = common::copy_member(&member("cluster-a", "m5"));
    std::fs::remove_file(db_file(copy.path())).unwrap();
    let (code, stdout, _) = common::run_cli(&["verify", copy.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("raft only") && stdout.contains("no backend db"),
        "{stdout}"
    );
}

// ---- etcd 3.5 (cluster-f: purged WALs, a restored member, a member SIGKILLed mid-burst) ----

/// The first `members` bucket record of `db` that is not a learner: (key, stored JSON).
fn a_voter_record(db: &Path) -> (Vec<u8>, Vec<u8>) {
    let fs = RealFs;
    let opened = Db::open(&fs, db).unwrap();
    let mut found = None;
    for_each_in_bucket(&opened, b"members", &mut |k, v| {
        if found.is_none() && !String::from_utf8_lossy(v).contains("isLearner") {
            found = Some((k.to_vec(), v.to_vec()));
        }
    })
    .unwrap();
    found.expect("a voter in the members bucket")
}

#[test]
fn every_cluster_f_member_is_replayed_from_its_db_and_verifies() {
    let members = common::members("cluster-f");
    let paths: Vec<&Path> = members.iter().map(PathBuf::as_path).collect();
    let mut args = vec!["verify".to_string()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = common::run_cli(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("raft only"), "{stdout}");
    assert_eq!(
        stdout
            .matches("replayed from the db at consistent index")
            .count(),
        members.len(),
        "{stdout}"
    );
    assert!(stdout.contains("older WAL segments purged"), "{stdout}");
    let (_, report, _) = verify_json(&paths);
    for m in report["members"].as_array().unwrap() {
        assert_eq!(m["replay"]["db"]["generation"], "3.5", "{m}");
        assert!(m["replay"]["db"]["term"].as_u64().unwrap() > 0, "{m}");
        assert!(m["findings"].as_array().unwrap().is_empty(), "{m}");
    }
}

#[test]
fn the_sigkilled_member_replayed_above_its_consistent_index_is_etcds_restart() {
    // f3's db was committed tens of entries before its WAL's end when SIGKILL came; etcd
    // restarted on a copy applied the entries above the consistent index: so does the replay.
    let manifest = common::manifest("cluster-f");
    let checkpoint = manifest["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "f3-killed-restarted-on-copy")
        .unwrap();
    let expected = &checkpoint["members"][0];
    let f3 = member("cluster-f", "f3");
    let (code, stdout, stderr) = common::run_cli(&["hashkv", f3.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let ours: Value = serde_json::from_str(&stdout).unwrap();
    for field in ["hash", "revision", "compact_revision"] {
        assert_eq!(ours[field], expected[field], "{field}");
    }
    assert_eq!(ours["applied_index"], expected["raft_applied_index"]);
    let ci: u64 = stderr
        .split("consistent index ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    let applied = ours["applied_index"].as_u64().unwrap();
    assert!(applied >= ci + 10, "CI {ci}, applied {applied}");
    assert!(stderr.contains("purged"), "{stderr}");
}

#[test]
fn a_35_db_whose_term_is_not_the_logs_at_its_consistent_index_is_a_finding() {
    let copy = common::copy_member(&member("cluster-f", "f3"));
    let (_, report, _) = verify_json(&[copy.path()]);
    let db = &report["members"][0]["replay"]["db"];
    let (ci, term) = (
        db["consistent_index"].as_u64().unwrap(),
        db["term"].as_u64().unwrap(),
    );
    let mut from = b"term".to_vec();
    from.extend_from_slice(&term.to_be_bytes());
    let mut to = b"term".to_vec();
    to.extend_from_slice(&(term + 1).to_be_bytes());
    assert!(replace_all(&db_file(copy.path()), &from, &to) >= 1);
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "{stderr}");
    let found = findings_of(&report, "db.term_mismatch");
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["raft_index"], ci);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("meta/term {}", term + 1))
            && message.contains(&format!("term {term} of the WAL entry")),
        "{message}"
    );
}

#[test]
fn a_35_db_whose_conf_state_is_not_the_logs_is_a_finding() {
    let copy = common::copy_member(&member("cluster-f", "f2"));
    let db = db_file(copy.path());
    // A voter id in the confState JSON, its last digit changed (same length, still JSON).
    let bytes = std::fs::read(&db).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w == b"\"voters\":[")
        .expect("a confState");
    let digits = bytes[at + 10..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let from = bytes[at..at + 10 + digits].to_vec();
    let mut to = from.clone();
    let last = to.len() - 1;
    to[last] = if to[last] == b'9' { b'8' } else { to[last] + 1 };
    assert!(replace_all(&db, &from, &to) >= 1);
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "{stderr}");
    let found = findings_of(&report, "db.conf_state_mismatch");
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("is not the configuration of the log at its consistent index"),
        "{found:?}"
    );
}

#[test]
fn a_35_members_bucket_that_is_not_the_logs_membership_is_a_finding() {
    let copy = common::copy_member(&member("cluster-f", "f1"));
    let db = db_file(copy.path());
    // The largest member id, its last hex digit raised: the keys still ascend, the record is
    // intact, but that member is not the log's.
    let fs = RealFs;
    let mut keys = Vec::new();
    for_each_in_bucket(&Db::open(&fs, &db).unwrap(), b"members", &mut |k, _| {
        keys.push(k.to_vec())
    })
    .unwrap();
    let from = keys.last().unwrap().clone();
    let mut to = from.clone();
    let last = to.len() - 1;
    to[last] = match to[last] {
        b'f' => panic!("pick another key"),
        b'9' => b'a',
        c => c + 1,
    };
    assert!(replace_all(&db, &from, &to) >= 1);
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "{stderr}");
    let found = findings_of(&report, "db.members_mismatch");
    assert_eq!(found.len(), 1, "{report}");
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains(std::str::from_utf8(&to).unwrap())
            && message.contains(std::str::from_utf8(&from).unwrap()),
        "{message}"
    );
}

#[test]
fn a_promoted_learner_still_is_learner_in_the_db_is_etcd_19557_a_warning() {
    // f2 joined as a learner and was promoted; 3.5.30 persisted the promotion. Writing
    // `isLearner:true` back into its record (same length: a client URL traded for padding) is
    // the shape etcd 3.5.1–3.5.19 could leave.
    let copy = common::copy_member(&member("cluster-f", "f1"));
    let db = db_file(copy.path());
    let (_, record) = a_voter_record(&db);
    let text = String::from_utf8(record.clone()).unwrap();
    let start = text.find("\"clientURLs\":[").expect("client URLs");
    let end = start + text[start..].find(']').unwrap() + 1;
    let replacement = "\"isLearner\":true,\"clientURLs\":[]";
    assert!(replacement.len() <= end - start, "{text}");
    let padded = format!("{replacement:<width$}", width = end - start);
    let changed = format!("{}{}{}", &text[..start], padded, &text[end..]);
    serde_json::from_str::<Value>(&changed).unwrap();
    assert!(replace_all(&db, &record, changed.as_bytes()) >= 1);
    let (code, report, stderr) = verify_json(&[copy.path()]);
    assert_eq!(code, 0, "a warning only: {stderr}");
    let found = findings_of(&report, "db.promoted_learner_flag");
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["severity"], "warning");
    assert!(
        found[0]["message"].as_str().unwrap().contains("19557"),
        "{found:?}"
    );
    assert!(findings_of(&report, "db.members_mismatch").is_empty());
}

#[test]
fn a_35_db_ahead_of_the_log_or_older_than_its_boot_snapshot_is_a_finding() {
    let f3 = member("cluster-f", "f3");
    let (_, report, _) = verify_json(&[f3.as_path()]);
    let ci = report["members"][0]["replay"]["db"]["consistent_index"]
        .as_u64()
        .unwrap();
    for (new, kind) in [
        (ci + 1000, "db.consistent_index_beyond_log"),
        (ci - 100, "db.older_than_snapshot"),
    ] {
        let copy = common::copy_member(&f3);
        set_consistent_index(copy.path(), ci, new);
        let (code, report, stderr) = verify_json(&[copy.path()]);
        assert_eq!(code, 1, "{kind}: {stderr}");
        let found = findings_of(&report, kind);
        assert_eq!(found.len(), 1, "{kind}: {report}");
        assert_eq!(found[0]["raft_index"], new);
    }
}

/// etcd 3.4 does not move the consistent index with a compaction, but the compaction is in the
/// db: a log that ends with one has a db at CI already compacted past it. Real etcd 3.4.23:
/// that member verifies clean, and its HashKV is etcd's.
#[test]
fn a_compaction_above_the_consistent_index_already_in_a_3_4_db_is_not_a_mismatch() {
    let Some((etcd, etcdctl)) = common::etcd_34() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("s1");
    let live = common::LiveEtcd::start(&etcd, &etcdctl, &data);
    for args in [
        &["put", "k", "v"][..],
        &["put", "k2", "v"],
        &["del", "k"],
        &["compaction", "--physical", "4"],
    ] {
        live.ctl(args)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"));
    }
    let hashkv: Value =
        serde_json::from_str(&live.ctl(&["endpoint", "hashkv", "-w", "json"]).unwrap()).unwrap();
    live.stop();
    let expected = &hashkv[0]["HashKV"];
    assert_eq!(expected["compact_revision"], 4, "{hashkv}");
    // The db's consistent index is below the compaction entry (3.4 does not move it there).
    let (code, out, stderr) = common::run_cli(&["db", data.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let db: Value = serde_json::from_str(&out).unwrap();
    let (_, summary, _) = common::run_cli(&[
        "dump",
        data.to_str().unwrap(),
        "--summary",
        "--format",
        "json",
    ]);
    assert!(
        db["consistent_index"].as_u64().unwrap() < last_index(&summary),
        "{db}\n{summary}"
    );
    assert_eq!(db["compact_revision"], 4, "{db}");

    let (code, report, stderr) = verify_json(&[&data]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert!(
        findings_of(&report, "db.kv_mismatch").is_empty(),
        "{report}"
    );
    let (code, out, stderr) = common::run_cli(&["hashkv", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let ours: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ours["hash"], expected["hash"], "{out}");
    assert_eq!(ours["compact_revision"], 4);
}

/// The last raft index `dump --summary --format json` reports.
fn last_index(summary: &str) -> u64 {
    let v: Value = serde_json::from_str(summary).unwrap_or(Value::Null);
    v["last_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("no last index in {summary}"))
}
