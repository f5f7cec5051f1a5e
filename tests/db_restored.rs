//! A real member restored from a backend db by etcd 3.5's own `etcdutl snapshot restore`
//! (`tools/etcd-bin/restored-member.sh`): a WAL of one `ConfChangeAddNode` up to a boot
//! snapshot at index 1, the keys in the db. etcd 3.5.30 boots it on loopback and takes puts and
//! a delete, then stops — cleanly (the db's consistent index is the last entry) or by SIGKILL
//! with its backend uncommitted (the WAL holds every entry above the db's consistent index).
//! `verify` exits 0 and says the replay started from the db because the member was restored;
//! `hashkv` is the HashKV etcd served before it stopped, at the same revision; `verify`,
//! `hashkv` and `db` print the same bytes with the db's and the store's digest windows forced to
//! 4 entries (everything spills to temporary files); the member's files are not written.
//!
//! The db is written by etcd 3.4.23's mvcc store (`bbolt-ref gen-etcd`: needs
//! `RAFT_REPLAY_BBOLT_REF`, as `tests/diff_bbolt.rs`); etcd 3.5.30 comes from `common::etcd_35`
//! (`RAFT_REPLAY_ETCD35`, fetched by `tools/etcd-bin/fetch.sh 3.5.30 sid` when missing).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{etcd_35, fingerprint, free_port, reference_tool, repo_dir, run_cli, run_cli_env};

/// A small etcd db (2,000 keys, 6,000 revisions, deletes and compactions) in `dir`.
fn generated_db(bbolt_ref: &str, dir: &Path) -> PathBuf {
    let db = dir.join("gen.db");
    let out = Command::new(bbolt_ref)
        .arg("gen-etcd")
        .arg(&db)
        .args([
            "--keys=2000",
            "--revisions=6000",
            "--value-size=64",
            "--delete-every=50",
            "--compact-every=2000",
        ])
        .output()
        .expect("run bbolt-ref gen-etcd");
    assert!(
        out.status.success(),
        "bbolt-ref gen-etcd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

/// The member restored from `db` and stopped by `stop` (`term` or `kill`), and etcd's HashKV
/// and revision while it ran.
fn restored_member(etcd: &Path, db: &Path, dir: &Path, stop: &str) -> (PathBuf, u64, i64) {
    let out = dir.join(stop);
    let status = Command::new(repo_dir().join("tools/etcd-bin/restored-member.sh"))
        .arg(etcd.parent().expect("etcd's directory"))
        .arg(db)
        .arg(&out)
        .args([free_port().to_string(), free_port().to_string()])
        .args(["25", stop])
        .status()
        .expect("run restored-member.sh");
    assert!(status.success(), "restored-member.sh {stop}: {status}");
    let hashkv: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("etcd-hashkv.json")).expect("etcd's hashkv"),
    )
    .expect("etcd's hashkv JSON");
    let hash = hashkv[0]["HashKV"]["hash"].as_u64().expect("hash");
    let revision = hashkv[0]["HashKV"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    (out.join("data"), hash, revision)
}

#[test]
fn a_member_restored_by_etcdutl_verifies_and_hashes_as_etcd() {
    let Some(bbolt_ref) = reference_tool(
        "RAFT_REPLAY_BBOLT_REF",
        "bbolt-ref",
        "`make diff-bbolt` (needs Go, golang-etcd-server-dev, golang-github-coreos-bbolt-dev)",
    ) else {
        return;
    };
    let Some(etcd) = etcd_35() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = generated_db(&bbolt_ref, dir.path());
    for stop in ["term", "kill"] {
        let (member, etcd_hash, etcd_revision) = restored_member(&etcd, &db, dir.path(), stop);
        let path = member.display().to_string();
        let before = fingerprint(&member);

        let (code, stdout, stderr) = run_cli(&["verify", "--format", "json", &path]);
        assert_eq!(code, 0, "{stop}: {stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let replay = &report["members"][0]["replay"];
        assert_eq!(
            replay["hashkv"].as_u64(),
            Some(etcd_hash),
            "{stop}: {replay}"
        );
        assert_eq!(replay["revision"].as_i64(), Some(etcd_revision), "{stop}");
        let kv_start = replay["kv_start"].as_str().unwrap_or_default();
        assert!(
            kv_start.contains("restored from a snapshot"),
            "{stop}: {kv_start}"
        );
        // SIGKILLed with its backend uncommitted: the db is still at the restore's index.
        let ci = replay["db"]["consistent_index"].as_u64().unwrap();
        let applied = replay["applied_index"].as_u64().unwrap();
        match stop {
            "kill" => assert!(ci < applied, "{stop}: CI {ci}, applied {applied}"),
            _ => assert_eq!(ci, applied, "{stop}"),
        }

        let (code, hashkv, stderr) = run_cli(&["hashkv", &path]);
        assert_eq!(code, 0, "{stop}: {stderr}");
        let ours: Value = serde_json::from_str(&hashkv).unwrap();
        assert_eq!(
            (ours["hash"].as_u64(), ours["revision"].as_i64()),
            (Some(etcd_hash), Some(etcd_revision)),
            "{stop}: hashkv vs etcd's own"
        );

        let (code, db_report, stderr) = run_cli(&["db", "--format", "json", &path]);
        assert_eq!(code, 0, "{stop}: {stderr}");
        let tiny = [("RAFT_REPLAY_STORE_HOT_REVISIONS", "4")];
        for (args, want) in [
            (vec!["verify", "--format", "json", &path], &stdout),
            (vec!["hashkv", &path], &hashkv),
            (vec!["db", "--format", "json", &path], &db_report),
        ] {
            let (code, out, stderr) = run_cli_env(&args, &tiny);
            assert_eq!(code, 0, "{args:?} spilled: {stderr}");
            assert_eq!(&out, want, "{args:?}: the same with every digest spilled");
        }
        assert_eq!(
            fingerprint(&member),
            before,
            "{stop}: the member was written"
        );
    }
}
