//! The sharpest proof the replay is right: at every checkpoint the capture script recorded,
//! `raft-replay hashkv --index <applied index>` equals what `etcdctl endpoint hashkv` reported,
//! for every member: from the WAL when it begins at raft index 1, else from the member's backend
//! db at its consistent index (learners that joined through a leader snapshot). Nothing here is
//! hard-coded: the expected values come from each capture's manifest.

mod common;

use serde_json::Value;

#[test]
fn hashkv_matches_etcd_at_every_checkpoint_of_every_capture() {
    let (mut compared, mut unreachable) = (0, 0);
    let mut versions_compared = 0;
    for capture in common::captures() {
        let manifest = common::manifest(&capture);
        let root = common::unpacked(&capture);
        for checkpoint in manifest["checkpoints"].as_array().unwrap() {
            for member in checkpoint["members"].as_array().unwrap() {
                if member["hash"].is_null() {
                    continue; // etcd 3.4 refuses HashKV on learners
                }
                let name = member["name"].as_str().unwrap();
                let data_dir = manifest["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["name"] == name)
                    .and_then(|m| m["data_dir"].as_str())
                    .unwrap_or(name);
                let path = root.join(data_dir);
                let index = member["raft_applied_index"].as_u64().unwrap().to_string();
                let (code, stdout, stderr) =
                    common::run_cli(&["hashkv", path.to_str().unwrap(), "--index", &index]);
                if code == 2 && stderr.contains("below the db's consistent index") {
                    // A WAL purged or reset past this checkpoint: the member's files hold only
                    // the state at its db's consistent index and after (said, not guessed).
                    unreachable += 1;
                    continue;
                }
                assert_eq!(
                    code, 0,
                    "{capture} {} {name}: {stderr}",
                    checkpoint["label"]
                );
                let ours: Value = serde_json::from_str(&stdout).unwrap();
                for field in ["hash", "revision", "compact_revision"] {
                    assert_eq!(
                        ours[field], member[field],
                        "{capture} checkpoint {} member {name} index {index}: {field}",
                        checkpoint["label"]
                    );
                }
                // The cluster version in force at the applied index, as that member's
                // `GET /version` reported it (captures since cluster-d record it).
                if let Some(reported) = member["cluster_version"].as_str() {
                    let minor: String = reported.split('.').take(2).collect::<Vec<_>>().join(".");
                    assert_eq!(
                        ours["cluster_version"], minor,
                        "{capture} checkpoint {} member {name} index {index}: cluster version",
                        checkpoint["label"]
                    );
                    let release = match minor.as_str() {
                        "3.4" => "3.4.23",
                        "3.5" => "3.5.30",
                        other => panic!("no release modelled for cluster version {other}"),
                    };
                    assert_eq!(ours["applied_as"], release);
                    versions_compared += 1;
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 20, "compared {compared} checkpoints");
    assert!(
        versions_compared >= 20,
        "compared {versions_compared} cluster versions"
    );
    assert!(
        unreachable < compared,
        "{unreachable} checkpoints unreachable, {compared} compared"
    );
}

#[test]
fn a_wal_that_starts_after_a_snapshot_is_replayed_from_the_db_and_matches_etcd() {
    // cluster-a m5 and cluster-c c4 are learners that caught up from a leader snapshot; their
    // db's consistent index is the final checkpoint's applied index.
    for (capture, name) in [("cluster-a", "m5"), ("cluster-c", "c4")] {
        let manifest = common::manifest(capture);
        let last = manifest["checkpoints"].as_array().unwrap().last().unwrap();
        let expected = last["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap();
        let member = common::members(capture)
            .into_iter()
            .find(|m| m.ends_with(name))
            .unwrap();
        let path = member.to_str().unwrap();
        let (code, stdout, stderr) = common::run_cli(&["hashkv", path]);
        assert_eq!(code, 0, "{capture}/{name}: {stderr}");
        assert!(
            stderr.contains("replayed from the db at consistent index")
                && stderr.contains("leader snapshot"),
            "{stderr}"
        );
        let ours: Value = serde_json::from_str(&stdout).unwrap();
        for field in ["hash", "revision", "compact_revision"] {
            assert_eq!(ours[field], expected[field], "{capture}/{name}: {field}");
        }
        assert_eq!(ours["applied_index"], expected["raft_applied_index"]);
        // Below the db's consistent index there is no state to replay to: said plainly.
        let (code, stdout, stderr) = common::run_cli(&["hashkv", path, "--index", "5503"]);
        assert_eq!(code, 2);
        assert!(stdout.is_empty());
        assert!(
            stderr.contains("below the db's consistent index"),
            "{stderr}"
        );
    }
}

#[test]
fn hashkv_at_a_compacted_or_future_revision_gives_etcds_errors() {
    let m1 = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .unwrap();
    let path = m1.to_str().unwrap();
    let (code, stdout, _) = common::run_cli(&["hashkv", path]);
    assert_eq!(code, 0);
    let head: Value = serde_json::from_str(&stdout).unwrap();
    let compact = head["compact_revision"].as_i64().unwrap();
    let current = head["revision"].as_i64().unwrap();
    assert!(compact > 0);
    let (code, _, stderr) = common::run_cli(&["hashkv", path, "--rev", &compact.to_string()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("mvcc: required revision has been compacted"),
        "{stderr}"
    );
    let (code, _, stderr) = common::run_cli(&["hashkv", path, "--rev", &(current + 1).to_string()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("mvcc: required revision is a future revision"),
        "{stderr}"
    );
    // An earlier revision still in history hashes to something else than the head.
    let (code, stdout, _) = common::run_cli(&["hashkv", path, "--rev", &(current - 1).to_string()]);
    assert_eq!(code, 0);
    let earlier: Value = serde_json::from_str(&stdout).unwrap();
    assert_ne!(earlier["hash"], head["hash"]);
    assert_eq!(earlier["hash_revision"], current - 1);
}

#[test]
fn raft_rs_accepts_every_real_capture() {
    use raft_replay::member::{read_member, MemberFiles};
    use raft_replay::replay::kv::restart_state;
    use raft_replay::replay::restart::restart_and_apply;
    for (_, member) in common::all_members() {
        let fs = raft_replay::fsio::RealFs;
        let files = MemberFiles::open(&fs, &member).unwrap();
        let read = read_member(&files, raft_replay::wal::DecoderMode::Strict);
        let name = member.display().to_string();
        let state = restart_state(&name, &read);
        let outcome = restart_and_apply(
            &state,
            raft_replay::replay::kv::node_id(&read),
            u64::MAX,
            &mut |_| {},
        );
        assert!(outcome.started, "{name}: {:?}", outcome.findings);
        assert!(
            outcome.findings.is_empty(),
            "{name}: {:?}",
            outcome.findings
        );
        assert_eq!(
            outcome.applied_index, read.contents.hard_state.commit,
            "{name}"
        );
    }
}

#[test]
fn follower_reexecution_reproduces_every_persisted_batch_of_every_capture() {
    use raft_replay::member::{read_member, MemberFiles};
    use raft_replay::replay::follower::reexecute;
    use raft_replay::wal::name::search_index;
    for (_, member) in common::all_members() {
        let fs = raft_replay::fsio::RealFs;
        let files = MemberFiles::open(&fs, &member).unwrap();
        let read = read_member(&files, raft_replay::wal::DecoderMode::Strict);
        let from = search_index(&files.segments, read.start.index).unwrap();
        let conf = read
            .snapshot
            .as_ref()
            .map(|s| s.snapshot.metadata.conf_state.clone())
            .unwrap_or_default();
        let name = member.display().to_string();
        let outcome = reexecute(
            &name,
            files.decoder(from, raft_replay::wal::DecoderMode::Strict),
            read.start.index,
            read.start.term,
            &conf,
        );
        assert!(
            outcome.findings.is_empty(),
            "{name}: {:#?}",
            outcome.findings
        );
        assert!(outcome.batches > 0, "{name}: {outcome:?}");
        assert_eq!(
            outcome.entries_persisted as usize,
            read.contents.entries.len() + read.contents.overwrites.len(),
            "{name}"
        );
    }
}

#[test]
fn verify_reports_each_members_replayed_hashkv_and_they_agree() {
    for capture in common::captures() {
        let manifest = common::manifest(&capture);
        let final_checkpoint = manifest["checkpoints"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let members = common::members(&capture);
        let mut args = vec!["verify".to_string(), "--format".into(), "json".into()];
        args.extend(members.iter().map(|m| m.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = common::run_cli(&args);
        assert_eq!(code, 0, "{capture}: {stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let mut checked = 0;
        for member in report["members"].as_array().unwrap() {
            let replay = &member["replay"];
            let name = std::path::Path::new(member["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let Some(expected) = final_checkpoint["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name.as_str())
            else {
                continue;
            };
            // Every member has a KV state: from index 1, or from its db.
            assert!(replay["hashkv"].is_u64(), "{name}: {replay}");
            assert!(replay["kv_unavailable"].is_null(), "{name}: {replay}");
            if expected["raft_applied_index"] == replay["applied_index"]
                && !expected["hash"].is_null()
            {
                assert_eq!(replay["hashkv"], expected["hash"], "{capture}/{name}");
                assert_eq!(replay["revision"], expected["revision"], "{capture}/{name}");
                checked += 1;
            }
        }
        assert!(
            checked >= 2,
            "{capture}: compared {checked} members with etcd's final checkpoint"
        );
    }
}
