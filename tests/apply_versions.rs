//! Each request etcd 3.5 and 3.6 put in the log, applied as the release of the cluster version
//! in force at its index: logs written with the crate's etcd-exact WAL writer, replayed by the
//! verify pipeline and judged by the gate. 3.5.30 applies the cluster requests without touching
//! the key space (no revision, HashKV unchanged); 3.4.23 skips their unknown fields and panics
//! "not implemented" (`etcdserver/apply.go: applierV3backend.Apply`).

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;
use raft_replay::proto::etcdserverpb::{self as pb, InternalRaftRequest, Metadata, Request};
use raft_replay::proto::raftpb::{ConfChange, ConfChangeType, Entry, HardState};
use raft_replay::replay::member_state::MemberState;
use raft_replay::wal::writer::WalWriter;
use serde_json::Value;

fn entry(index: u64, data: Option<Vec<u8>>) -> Entry {
    Entry {
        r#type: 0,
        term: 2,
        index,
        data: data.map(Bytes::from),
    }
}

fn add_node(index: u64) -> Entry {
    let cc = ConfChange {
        id: 0,
        r#type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: 1,
        context: Some(br#"{"id":1,"peerURLs":["http://127.0.0.1:2380"],"name":"s1"}"#.to_vec()),
    };
    Entry {
        r#type: 1,
        term: 1,
        index,
        data: Some(cc.encode_to_vec().into()),
    }
}

fn v2(index: u64, path: &str, val: &str) -> Entry {
    let r = Request {
        id: index,
        method: b"PUT".to_vec(),
        path: path.into(),
        val: val.into(),
        ..Default::default()
    };
    entry(index, Some(r.encode_to_vec()))
}

fn irr(index: u64, fill: impl FnOnce(&mut InternalRaftRequest)) -> Entry {
    let mut r = InternalRaftRequest {
        header: Some(pb::RequestHeader {
            id: 1000 + index,
            ..Default::default()
        }),
        ..Default::default()
    };
    fill(&mut r);
    entry(index, Some(r.encode_to_vec()))
}

fn put(index: u64, key: &str) -> Entry {
    irr(index, |r| {
        r.put = Some(pb::PutRequest {
            key: Bytes::from(key.to_string()),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })
    })
}

/// The requests 3.5/3.6 propose that 3.4 does not know, and the one every release knows
/// (`etcdctl endpoint health` of 3.5 proposes an Alarm GET through raft).
/// A request kind and how to build its entry at a raft index.
type Request35 = (&'static str, Box<dyn Fn(u64) -> Entry>);

fn requests() -> Vec<Request35> {
    vec![
        (
            "downgrade_info_set",
            Box::new(|i| {
                irr(i, |r| {
                    r.downgrade_info_set = Some(pb::DowngradeInfoSetRequest {
                        enabled: true,
                        ver: b"3.4.0".to_vec(),
                    })
                })
            }),
        ),
        (
            "downgrade_info_set",
            Box::new(|i| {
                irr(i, |r| {
                    r.downgrade_info_set = Some(pb::DowngradeInfoSetRequest {
                        enabled: false,
                        ver: Vec::new(),
                    })
                })
            }),
        ),
        (
            "cluster_version_set",
            Box::new(|i| {
                irr(i, |r| {
                    r.cluster_version_set = Some(pb::ClusterVersionSetRequest {
                        ver: b"3.5.0".to_vec(),
                    })
                })
            }),
        ),
        (
            "cluster_member_attr_set",
            Box::new(|i| {
                irr(i, |r| {
                    r.cluster_member_attr_set = Some(pb::ClusterMemberAttrSetRequest {
                        member_id: 1,
                        member_attributes: Some(pb::Attributes {
                            name: b"s1".to_vec(),
                            client_urls: vec![b"http://127.0.0.1:2379".to_vec()],
                        }),
                    })
                })
            }),
        ),
        (
            "alarm",
            Box::new(|i| {
                irr(i, |r| {
                    r.alarm = Some(pb::AlarmRequest {
                        action: 0,
                        member_id: 0,
                        alarm: 0,
                    })
                })
            }),
        ),
    ]
}

/// A one-voter cluster at `cluster_version`: two puts around `middle` (none when `None`).
fn log(cluster_version: &str, middle: Option<Entry>) -> Vec<Entry> {
    let mut entries = vec![
        add_node(1),
        entry(2, None),
        v2(
            3,
            "/0/members/1/attributes",
            r#"{"name":"s1","clientURLs":["http://127.0.0.1:2379"]}"#,
        ),
        v2(4, "/0/version", cluster_version),
        put(5, "foo"),
    ];
    let mut next = 6;
    if let Some(mut e) = middle {
        e.index = next;
        entries.push(e);
        next += 1;
    }
    entries.push(put(next, "bar"));
    entries
}

fn data_dir(root: &Path, entries: &[Entry]) -> PathBuf {
    let meta = Metadata {
        node_id: 1,
        cluster_id: 0x99,
    };
    let mut w = WalWriter::create(&meta.encode_to_vec());
    let last = entries.last().unwrap();
    w.save(
        &HardState {
            term: last.term,
            vote: 1,
            commit: last.index,
        },
        entries,
    );
    let wal = root.join("member/wal");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::create_dir_all(root.join("member/snap")).unwrap();
    for (name, bytes) in w.files(true) {
        std::fs::write(wal.join(name), bytes).unwrap();
    }
    root.to_path_buf()
}

fn replay(entries: &[Entry]) -> MemberState {
    let dir = tempfile::tempdir().unwrap();
    let path = data_dir(dir.path(), entries);
    let report =
        raft_replay::verify_cluster(&raft_replay::RealFs, &[path], &Default::default()).unwrap();
    report.assert_holds();
    report.members[0].replay.clone().expect("replayed")
}

fn gate(entries: &[Entry], target: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = data_dir(dir.path(), entries);
    let (code, out, stderr) = common::run_cli(&[
        "gate",
        path.to_str().unwrap(),
        "--target",
        target,
        "--format",
        "json",
    ]);
    assert!(code != 2, "{stderr}");
    (code, serde_json::from_str(&out).unwrap())
}

fn apply_panics(report: &Value) -> &Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "apply.panics")
        .unwrap()
}

#[test]
fn a_3_5_cluster_applies_every_3_5_request_without_touching_the_key_space() {
    let plain = replay(&log("3.5.0", None));
    assert_eq!(plain.revision, Some(3));
    for (kind, make) in requests() {
        let state = replay(&log("3.5.0", Some(make(0))));
        assert!(state.panicking_entries.is_empty(), "{kind}: {state:?}");
        assert_eq!(state.applied_index, 7, "{kind}");
        // No revision taken, no key written: the same KV state as without the request.
        assert_eq!(state.revision, plain.revision, "{kind}");
        assert_eq!(state.hashkv, plain.hashkv, "{kind}");
    }
}

#[test]
fn a_3_4_cluster_panics_on_the_3_5_requests_and_applies_the_alarm_get() {
    let plain = replay(&log("3.4.0", None));
    for (kind, make) in requests() {
        let state = replay(&log("3.4.0", Some(make(0))));
        if kind == "alarm" {
            assert!(state.panicking_entries.is_empty(), "{state:?}");
            assert_eq!(state.hashkv, plain.hashkv);
            continue;
        }
        assert_eq!(state.panicking_entries.len(), 1, "{kind}: {state:?}");
        let p = &state.panicking_entries[0];
        assert_eq!((p.index, p.kind, p.release.as_str()), (6, kind, "3.4.23"));
        assert!(p.reason.contains("not implemented"), "{}", p.reason);
        // etcd stops at the panic; the model leaves the store as it was and goes on.
        assert_eq!(state.revision, plain.revision, "{kind}");
    }
}

#[test]
fn the_version_in_force_changes_at_the_entry_that_sets_it() {
    let downgrade = |i| requests()[0].1(i);
    let mut entries = log("3.4.0", Some(downgrade(0)));
    // The leader raises the cluster version once every member runs 3.5 (a v2 PUT in 3.5.30).
    entries.push(v2(8, "/0/version", "3.5.0"));
    entries.push(downgrade(9));
    // 3.6 sets it with ClusterVersionSet.
    entries.push(irr(10, |r| {
        r.cluster_version_set = Some(pb::ClusterVersionSetRequest {
            ver: b"3.6.0".to_vec(),
        })
    }));
    entries.push(requests()[3].1(11));
    entries.push(put(12, "baz"));
    let state = replay(&entries);
    let panics: Vec<(u64, &str)> = state
        .panicking_entries
        .iter()
        .map(|p| (p.index, p.release.as_str()))
        .collect();
    assert_eq!(panics, [(6, "3.4.23")], "only the downgrade applied by 3.4");
    assert_eq!(state.applied_index, 12);
    assert_eq!(state.revision, Some(4));
}

#[test]
fn a_cluster_version_that_is_not_semver_panics_3_5() {
    let bad = irr(0, |r| {
        r.cluster_version_set = Some(pb::ClusterVersionSetRequest {
            ver: b"3.6".to_vec(),
        })
    });
    let state = replay(&log("3.5.0", Some(bad)));
    assert_eq!(state.panicking_entries.len(), 1, "{state:?}");
    assert!(state.panicking_entries[0].reason.contains("semver.Must"));
    let no_attributes = irr(0, |r| {
        r.cluster_member_attr_set = Some(pb::ClusterMemberAttrSetRequest {
            member_id: 1,
            member_attributes: None,
        })
    });
    let state = replay(&log("3.5.0", Some(no_attributes)));
    assert_eq!(state.panicking_entries.len(), 1, "{state:?}");
    assert_eq!(state.panicking_entries[0].release, "3.5.30");
}

#[test]
fn the_gate_blocks_a_downgrade_request_only_where_3_4_applied_it() {
    let downgrade = requests()[0].1(0);
    for target in ["3.5", "3.6"] {
        let (code, report) = gate(&log("3.5.0", Some(downgrade.clone())), target);
        assert_eq!(apply_panics(&report)["status"], "pass", "{report:#}");
        assert_eq!(code, 0, "{target}: {report:#}");
    }
    let (code, report) = gate(&log("3.4.0", Some(downgrade)), "3.5");
    assert_eq!(code, 1);
    let rule = apply_panics(&report);
    assert_eq!(rule["status"], "blocked");
    assert_eq!(rule["raft_indexes"], serde_json::json!([6]));
    let detail = rule["details"][0].as_str().unwrap();
    assert!(
        detail.contains("etcd 3.4.23") && detail.contains("downgrade_info_set"),
        "{detail}"
    );
}

fn attributes_of(member_id: u64) -> Entry {
    irr(0, |r| {
        r.cluster_member_attr_set = Some(pb::ClusterMemberAttrSetRequest {
            member_id,
            member_attributes: Some(pb::Attributes {
                name: b"s9".to_vec(),
                client_urls: Vec::new(),
            }),
        })
    })
}

#[test]
fn attributes_of_an_unknown_member_panic_every_release() {
    // `UpdateAttributes` (3.4.23 and 3.5.30): member 9 was never added.
    for version in ["3.4.0", "3.5.0"] {
        let mut publish = v2(
            0,
            "/0/members/9/attributes",
            r#"{"name":"s9","clientURLs":[]}"#,
        );
        publish.term = 2;
        let state = replay(&log(version, Some(publish)));
        assert_eq!(state.panicking_entries.len(), 1, "{version}: {state:?}");
        assert!(state.panicking_entries[0].reason.contains("member unknown"));
    }
    let state = replay(&log("3.5.0", Some(attributes_of(9))));
    assert_eq!(state.panicking_entries.len(), 1, "{state:?}");
    assert_eq!(state.panicking_entries[0].kind, "cluster_member_attr_set");
    // Member 1 exists: no panic (the 3.5 request was already checked above for that).
    let state = replay(&log("3.5.0", Some(attributes_of(1))));
    assert!(state.panicking_entries.is_empty(), "{state:?}");
}

#[test]
fn an_alarm_of_an_unknown_type_panics_3_5_only() {
    let activate = || {
        irr(0, |r| {
            r.alarm = Some(pb::AlarmRequest {
                action: 1,
                member_id: 1,
                alarm: 3,
            })
        })
    };
    let state = replay(&log("3.4.0", Some(activate())));
    assert!(
        state.panicking_entries.is_empty(),
        "3.4.23 warns: {state:?}"
    );
    let state = replay(&log("3.5.0", Some(activate())));
    assert_eq!(state.panicking_entries.len(), 1, "{state:?}");
    assert!(state.panicking_entries[0]
        .reason
        .contains("unimplemented alarm activation"));
}
