//! Differential tests of the backend db reader against bbolt's and etcd's own Go code
//! (tools/bbolt-ref, built against Debian's bbolt 1.3.6 and etcd 3.4.23 sources):
//! * generated dbs — page sizes 1, 2, 4, 8 and 16 KiB, with and without a persisted freelist,
//!   nested and inline buckets, overflow values, churn, and a freelist of more than 0xFFFF ids —
//!   listed key for key (path, key, value, sequence) and their free page counts;
//! * every corpus db: HashKV, revision, compact revision, consistent index and `snapshot
//!   status` equal to etcd's (removed members included);
//! * etcd dbs written by etcd's own mvcc store (`bbolt-ref gen-etcd`: overwrites, deletes,
//!   periodic compactions, a txn-free history), and copies of them that resume a scheduled
//!   compaction at restore: the same five equal to etcd's.
//!
//! Runs when `RAFT_REPLAY_BBOLT_REF` names the built program (`make diff-bbolt`, `make test`);
//! without it the tests say so and pass.

mod common;

use std::process::Command;

use raft_replay::backend::{BucketRef, Db, DbReport, Item, Walker};
use raft_replay::fsio::RealFs;
use raft_replay::mvcc::EtcdVersion;
use serde_json::{json, Value};

fn bbolt_ref() -> Option<String> {
    common::reference_tool(
        "RAFT_REPLAY_BBOLT_REF",
        "bbolt-ref",
        "`make diff-bbolt` (needs Go, golang-etcd-server-dev, golang-github-coreos-bbolt-dev)",
    )
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("run bbolt-ref");
    assert!(
        out.status.success(),
        "bbolt-ref {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Our listing in bbolt-ref's format.
fn list_ours(db: &Db<'_>) -> Vec<Value> {
    fn walk(w: &mut Walker<'_, '_>, b: &BucketRef, path: &[String], out: &mut Vec<Value>) {
        w.for_each(b, &mut |w, k, item| {
            match item {
                Item::Value(v) => {
                    out.push(json!({"path": path, "key": hex::encode(k), "value": hex::encode(v)}))
                }
                Item::Bucket(sub) => {
                    out.push(json!({"path": path, "key": hex::encode(k), "value": null, "seq": sub.sequence}));
                    let mut p = path.to_vec();
                    p.push(hex::encode(k));
                    walk(w, &sub, &p, out);
                }
            }
            Ok(())
        })
        .expect("walk");
    }
    let mut out = Vec::new();
    let mut w = Walker::new(db, true);
    walk(&mut w, &db.root_bucket(), &[], &mut out);
    out
}

#[test]
fn generated_dbs_list_key_for_key() {
    let Some(tool) = bbolt_ref() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    for ps in [1024, 2048, 4096, 8192, 16384] {
        for sync in [true, false] {
            let mut args = vec![
                format!("--page-size={ps}"),
                "--nested".into(),
                "--overflow".into(),
                "--churn".into(),
                format!("--seed={ps}"),
            ];
            if !sync {
                args.push("--no-freelist-sync".into());
            }
            cases.push((
                format!("p{ps}-{}", if sync { "freelist" } else { "nofreelist" }),
                args,
            ));
        }
    }
    cases.push((
        "plain".into(),
        vec!["--page-size=4096".into(), "--keys=50".into()],
    ));
    cases.push((
        "escape".into(),
        vec![
            "--page-size=1024".into(),
            "--keys=100".into(),
            "--free-pages=70000".into(),
        ],
    ));
    for (name, args) in &cases {
        let file = dir.path().join(format!("{name}.db"));
        let file_s = file.display().to_string();
        let mut gen_args = vec!["gen", file_s.as_str()];
        gen_args.extend(args.iter().map(String::as_str));
        run(&tool, &gen_args);
        let listing = run(&tool, &["list", &file_s]);
        let mut theirs: Vec<Value> = listing
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let summary = theirs.pop().unwrap()["summary"].clone();
        for item in &mut theirs {
            if item.get("seq").is_none() {
                continue;
            }
            item["value"] = Value::Null;
        }
        let db = Db::open(&RealFs, &file).unwrap();
        let ours = list_ours(&db);
        assert_eq!(ours.len(), theirs.len(), "{name}: item count");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{name}: item {i}");
        }
        assert_eq!(
            u64::from(db.page_size),
            summary["page_size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(db.meta.txid, summary["txid"].as_u64().unwrap(), "{name}");
        assert_eq!(db.meta.hwm, summary["hwm"].as_u64().unwrap(), "{name}");
        assert!(
            summary["check_errors"].is_null(),
            "{name}: bbolt check {summary}"
        );
        let r = DbReport::build(&RealFs, &file, 0, EtcdVersion::default()).unwrap();
        assert!(r.findings.is_empty(), "{name}: {:?}", r.findings);
        assert_eq!(
            r.free_pages,
            summary["free_pages"].as_u64(),
            "{name}: free pages"
        );
        if name == "escape" {
            let fl = db.freelist().unwrap().expect("freelist persisted");
            assert!(fl.len() > 0xFFFF, "escape case has {} free ids", fl.len());
        }
        eprintln!(
            "{name}: {} items, {} free pages: equal",
            ours.len(),
            summary["free_pages"]
        );
    }
}

#[test]
fn corpus_dbs_equal_etcd() {
    let Some(tool) = bbolt_ref() else { return };
    for (capture, member) in common::all_members() {
        let file = member.join("member/snap/db");
        let theirs: Value =
            serde_json::from_str(&run(&tool, &["etcd", &file.display().to_string()])).unwrap();
        let r = DbReport::build(&RealFs, &member, 0, EtcdVersion::default()).unwrap();
        let name = format!(
            "{capture}/{}",
            member.file_name().unwrap().to_string_lossy()
        );
        assert_eq!(
            r.hash.map(u64::from),
            theirs["hash"].as_u64(),
            "{name} hash"
        );
        assert_eq!(r.revision, theirs["revision"].as_i64(), "{name} revision");
        assert_eq!(
            r.compact_revision,
            theirs["compact_revision"].as_i64(),
            "{name} compact"
        );
        assert_eq!(
            r.consistent_index,
            theirs["consistent_index"].as_u64(),
            "{name} ci"
        );
        let ss = r.snapshot_status.unwrap();
        let st = &theirs["snapshot_status"];
        assert_eq!(
            u64::from(ss.hash),
            st["hash"].as_u64().unwrap(),
            "{name} status hash"
        );
        assert_eq!(
            ss.revision,
            st["revision"].as_i64().unwrap(),
            "{name} status revision"
        );
        assert_eq!(
            ss.total_keys,
            st["total_keys"].as_u64().unwrap(),
            "{name} total keys"
        );
        assert_eq!(
            ss.total_size,
            st["total_size"].as_u64().unwrap(),
            "{name} total size"
        );
        eprintln!(
            "{name}: hash {} rev {} compact {} ci {}: equal",
            r.hash.unwrap(),
            r.revision.unwrap(),
            r.compact_revision.unwrap(),
            r.consistent_index.unwrap()
        );
    }
}

/// Our report's HashKV, revision, compact revision, consistent index and `snapshot status`
/// against `bbolt-ref etcd` on `file`.
fn assert_equals_etcd(tool: &str, file: &std::path::Path, name: &str) -> DbReport {
    let theirs: Value =
        serde_json::from_str(&run(tool, &["etcd", &file.display().to_string()])).unwrap();
    let r = DbReport::build(&RealFs, file, 0, EtcdVersion::default()).unwrap();
    assert!(
        r.findings.iter().all(|f| f.damage.is_none()),
        "{name}: {:?}",
        r.findings
    );
    assert_eq!(
        r.hash.map(u64::from),
        theirs["hash"].as_u64(),
        "{name} hash"
    );
    assert_eq!(r.revision, theirs["revision"].as_i64(), "{name} revision");
    assert_eq!(
        r.compact_revision,
        theirs["compact_revision"].as_i64(),
        "{name} compact"
    );
    assert_eq!(
        r.consistent_index,
        theirs["consistent_index"].as_u64(),
        "{name} ci"
    );
    let ss = r.snapshot_status.unwrap();
    let st = &theirs["snapshot_status"];
    assert_eq!(
        u64::from(ss.hash),
        st["hash"].as_u64().unwrap(),
        "{name} status hash"
    );
    assert_eq!(
        ss.revision,
        st["revision"].as_i64().unwrap(),
        "{name} status rev"
    );
    assert_eq!(
        ss.total_keys,
        st["total_keys"].as_u64().unwrap(),
        "{name} total keys"
    );
    assert_eq!(
        ss.total_size,
        st["total_size"].as_u64().unwrap(),
        "{name} total size"
    );
    r
}

#[test]
fn generated_etcd_dbs_equal_etcd() {
    let Some(tool) = bbolt_ref() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        (
            "plain",
            vec!["--keys=50", "--revisions=3000", "--value-size=40"],
        ),
        (
            "churn",
            vec![
                "--keys=300",
                "--revisions=12000",
                "--value-size=100",
                "--delete-every=7",
                "--compact-every=1500",
                "--seed=3",
            ],
        ),
        (
            "overflow",
            vec![
                "--keys=40",
                "--revisions=600",
                "--value-size=9000",
                "--delete-every=11",
                "--compact-every=150",
            ],
        ),
    ] {
        let file = dir.path().join(format!("{name}.db"));
        let file_s = file.display().to_string();
        let mut gen_args = vec!["gen-etcd", file_s.as_str()];
        gen_args.extend(args.iter().copied());
        run(&tool, &gen_args);
        let r = assert_equals_etcd(&tool, &file, name);
        let (compact, current) = (r.compact_revision.unwrap(), r.revision.unwrap());
        eprintln!("{name}: rev {current} compact {compact}: equal");
        if compact > 0 && current - compact >= 2 {
            let at = compact + (current - compact) / 2;
            let copy = common::with_scheduled_compaction(&std::fs::read(&file).unwrap(), at)
                .expect("scheduledCompactRev in a compacted db");
            let copy_file = dir.path().join(format!("{name}-scheduled.db"));
            std::fs::write(&copy_file, copy).unwrap();
            let r = assert_equals_etcd(&tool, &copy_file, &format!("{name} scheduled {at}"));
            assert!(
                r.restore.as_ref().unwrap().resumed_compaction == Some(at),
                "{name}: compaction at {at} resumed"
            );
            eprintln!("{name} with a compaction scheduled at {at}: equal");
        }
    }
}
