//! The gate's rules on data the real captures do not hold, written with the crate's etcd-exact
//! WAL writer: a cluster whose version is already 3.5 (so only the v2 rule can stop 3.6), v2
//! requests 3.6 refuses, custom v2-store content in a `.snap`, and two learners.

mod common;

use std::path::Path;

use bytes::Bytes;
use prost::Message;
use raft_replay::proto::etcdserverpb::{self as pb, InternalRaftRequest, Metadata, Request};
use raft_replay::proto::raftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, HardState, Snapshot, SnapshotMetadata,
};
use raft_replay::proto::snappb::SnapFile;
use raft_replay::proto::walpb::WalSnapshot;
use raft_replay::wal::writer::WalWriter;
use serde_json::Value;

fn entry(index: u64, term: u64, r#type: i32, data: Option<Vec<u8>>) -> Entry {
    Entry {
        r#type,
        term,
        index,
        data: data.map(Bytes::from),
    }
}

fn add(index: u64, kind: ConfChangeType, node: u64, learner: bool) -> Entry {
    let context = format!(
        "{{\"id\":{node},\"peerURLs\":[\"http://127.0.0.1:{}\"]{}}}",
        2380 + node,
        if learner { ",\"isLearner\":true" } else { "" }
    );
    let cc = ConfChange {
        id: 0,
        r#type: kind as i32,
        node_id: node,
        context: Some(context.into_bytes()),
    };
    entry(index, 1, 1, Some(cc.encode_to_vec()))
}

fn v2(index: u64, id: u64, method: &str, path: &str, val: &str) -> Entry {
    let r = Request {
        id,
        method: method.into(),
        path: path.into(),
        val: val.into(),
        ..Default::default()
    };
    entry(index, 2, 0, Some(r.encode_to_vec()))
}

fn put(index: u64, key: &str) -> Entry {
    let r = InternalRaftRequest {
        header: Some(pb::RequestHeader {
            id: index,
            ..Default::default()
        }),
        put: Some(pb::PutRequest {
            key: Bytes::from(key.to_string()),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        }),
        ..Default::default()
    };
    entry(index, 2, 0, Some(r.encode_to_vec()))
}

/// A one-voter data dir (`member/wal`, `member/snap`) holding `entries`, optionally with a
/// snapshot at `snap` whose v2 store is `store`.
fn data_dir(root: &Path, entries: &[Entry], snap: Option<(u64, &str)>) {
    let meta = Metadata {
        node_id: 1,
        cluster_id: 0x99,
    };
    let mut w = WalWriter::create(&meta.encode_to_vec());
    let last = entries.last().unwrap();
    let hs = HardState {
        term: last.term,
        vote: 1,
        commit: last.index,
    };
    w.save(&hs, entries);
    let wal = root.join("member/wal");
    let snap_dir = root.join("member/snap");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::create_dir_all(&snap_dir).unwrap();
    if let Some((index, store)) = snap {
        let term = entries.iter().find(|e| e.index == index).unwrap().term;
        let voters_and_learners = ConfState {
            voters: vec![1],
            ..Default::default()
        };
        w.save_snapshot(&WalSnapshot {
            index,
            term,
            conf_state: Some(voters_and_learners.clone()),
        });
        let data = Snapshot {
            data: Some(Bytes::from(store.to_string())),
            metadata: SnapshotMetadata {
                conf_state: voters_and_learners,
                index,
                term,
            },
        }
        .encode_to_vec();
        let file = SnapFile {
            crc: crc32c::crc32c(&data),
            data: Some(Bytes::from(data)),
        };
        std::fs::write(
            snap_dir.join(format!("{term:016x}-{index:016x}.snap")),
            file.encode_to_vec(),
        )
        .unwrap();
    }
    for (name, bytes) in w.files(true) {
        std::fs::write(wal.join(name), bytes).unwrap();
    }
}

fn gate(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["gate", dir.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, stderr) = common::run_cli(&args);
    assert!(code != 2, "{stderr}");
    (code, serde_json::from_str(&out).unwrap())
}

fn rule<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == id)
        .unwrap()
}

fn indexes(rule: &Value) -> Vec<u64> {
    rule["raft_indexes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// A 3.5 cluster's log with the two v2 PUTs 3.6 translates and two it refuses.
fn v2_log() -> Vec<Entry> {
    vec![
        add(1, ConfChangeType::ConfChangeAddNode, 1, false),
        entry(2, 2, 0, None),
        v2(
            3,
            30,
            "PUT",
            "/0/members/1/attributes",
            r#"{"name":"s1","clientURLs":["http://127.0.0.1:2379"]}"#,
        ),
        v2(4, 40, "PUT", "/0/version", "3.5.0"),
        put(5, "foo"),
        v2(6, 60, "PUT", "/1/foo", "bar"),
        v2(7, 70, "DELETE", "/0/members/1/attributes", ""),
        put(8, "bar"),
    ]
}

#[test]
fn v2_requests_3_6_refuses_block_it_by_raft_index() {
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path(), &v2_log(), None);

    let (code, report) = gate(dir.path(), &["--target", "3.6"]);
    assert_eq!(code, 1, "{report:#}");
    // Cluster version 3.5 → 3.6 is one minor step: only the v2 entries block.
    assert_eq!(rule(&report, "version.upgrade_path")["status"], "info");
    let v2 = rule(&report, "v2.wal_requests");
    assert_eq!(v2["status"], "blocked");
    assert_eq!(indexes(v2), vec![6, 7, 3, 4], "blocking entries first");
    let message = v2["message"].as_str().unwrap();
    assert!(message.contains("2 of 4 v2 request(s)"), "{message}");
    assert!(message.contains("raft index(es) 6, 7"), "{message}");
    let details: Vec<&str> = v2["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(details[0].contains("→ translated into ClusterMemberAttrSet"));
    assert!(details[1].contains("PUT /0/version 3.5.0 → translated into ClusterVersionSet"));
    assert!(details[2].starts_with("raft index 6 (term 2): PUT /1/foo bar → REFUSED"));
    assert!(details[3].contains("DELETE /0/members/1/attributes → REFUSED"));
    assert!(details[3].contains("detected disallowed v2 WAL"));
    let blocked: Vec<&str> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "blocked")
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, ["v2.wal_requests"]);
    assert_eq!(report["summary"]["invariant_failures"], 0);

    // 3.5 applies them all; the gate warns that 3.6 will not.
    let (code, report) = gate(dir.path(), &["--target", "3.5"]);
    assert_eq!(code, 0, "{report:#}");
    let v2 = rule(&report, "v2.wal_requests");
    assert_eq!(v2["status"], "warning");
    assert!(v2["message"]
        .as_str()
        .unwrap()
        .contains("etcd 3.6 would refuse 2 of them"));

    // 3.7 skips 3.6 and decodes no v2 request at all.
    let (code, report) = gate(dir.path(), &["--target", "3.7"]);
    assert_eq!(code, 1);
    assert_eq!(rule(&report, "version.upgrade_path")["status"], "blocked");
    assert_eq!(indexes(rule(&report, "v2.wal_requests")).len(), 4);
}

#[test]
fn v2_entries_before_the_boot_snapshot_no_longer_count() {
    // The same log, with a snapshot at 7 that covers every v2 request: 3.6 replays only 8.
    let store = r#"{"Root":{"Path":"/","Children":{"0":{"Path":"/0","Children":{"version":{"Path":"/0/version","Value":"3.5.0","Children":null}}},"1":{"Path":"/1","Children":{}}}}}"#;
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path(), &v2_log(), Some((7, store)));
    let (code, report) = gate(dir.path(), &["--target", "3.6"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(rule(&report, "v2.wal_requests")["status"], "pass");
    assert_eq!(rule(&report, "v2.store_content")["status"], "pass");
    assert_eq!(report["members"][0]["boot_snapshot"]["index"], 7);
}

#[test]
fn custom_v2_store_content_in_the_boot_snapshot_blocks_3_6() {
    let store = r#"{"Root":{"Path":"/","Children":{"0":{"Path":"/0","Children":{"version":{"Path":"/0/version","Value":"3.5.0","Children":null}}},"1":{"Path":"/1","Children":{"foo":{"Path":"/1/foo","Value":"bar","Children":null}}}}}}"#;
    let entries = vec![
        add(1, ConfChangeType::ConfChangeAddNode, 1, false),
        entry(2, 2, 0, None),
        put(3, "foo"),
    ];
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path(), &entries, Some((3, store)));
    let (code, report) = gate(dir.path(), &["--target", "3.6"]);
    assert_eq!(code, 1, "{report:#}");
    let r = rule(&report, "v2.store_content");
    assert_eq!(r["status"], "blocked");
    assert!(r["message"].as_str().unwrap().contains("/1 (1 children)"));
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("detected disallowed custom content in v2store"));
    let (code, report) = gate(dir.path(), &["--target", "3.5"]);
    assert_eq!(code, 0);
    assert_eq!(rule(&report, "v2.store_content")["status"], "warning");
}

#[test]
fn two_learners_exceed_3_6s_default_max_learners() {
    let entries = vec![
        add(1, ConfChangeType::ConfChangeAddNode, 1, false),
        entry(2, 2, 0, None),
        v2(3, 30, "PUT", "/0/version", "3.5.0"),
        add(4, ConfChangeType::ConfChangeAddLearnerNode, 2, true),
        add(5, ConfChangeType::ConfChangeAddLearnerNode, 3, true),
    ];
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|mut e| {
            e.term = e.term.max(2).min(if e.index == 1 { 1 } else { 2 });
            e
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    data_dir(dir.path(), &entries, None);
    let (code, report) = gate(dir.path(), &["--target", "3.6"]);
    assert_eq!(code, 1, "{report:#}");
    let r = rule(&report, "membership.learners");
    assert_eq!(r["status"], "blocked");
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("2 learner(s) after raft index 5 (2, 3)"));
    assert_eq!(indexes(r), vec![5]);
    let (code, _) = gate(dir.path(), &["--target", "3.6", "--max-learners", "2"]);
    assert_eq!(code, 0);
    let kinds = rule(&report, "membership.conf_change_kinds");
    assert_eq!(
        kinds["message"],
        "conf changes in the log: AddLearnerNode ×2 (4, 5); AddNode ×1 (1)"
    );
}
