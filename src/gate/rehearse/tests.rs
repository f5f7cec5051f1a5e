//! The pure side of the rehearsal: what a boot outcome means for the upgrade, which log lines say
//! why, and the loop over members against a scripted runner.

use std::time::Duration;

use super::*;

fn expected(kv: Result<KvState, String>, self_removed_at: Option<u64>) -> Expected {
    Expected {
        label: "m1".into(),
        kv,
        self_removed_at,
    }
}

fn replayed() -> Result<KvState, String> {
    Ok(KvState {
        applied_index: 5510,
        hash: 3258207393,
        revision: 5482,
        compact_revision: 5177,
    })
}

fn served(revision: i64, hash: Result<(u32, i64), HashError>) -> BootOutcome {
    BootOutcome::Served(Observed {
        revision,
        raft_applied_index: 5516,
        hash: hash.map(|(hash, compact_revision)| EtcdHash {
            hash,
            compact_revision,
            at_revision: 5482,
        }),
        server_version: "3.5.30".into(),
        cluster_version: "3.5.0".into(),
        boot_millis: 812,
    })
}

#[test]
fn the_replays_hashkv_passes() {
    let r = judge(
        &expected(replayed(), None),
        served(5482, Ok((3258207393, 5177))),
    );
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(r.message.contains("0xc2344ca1"), "{}", r.message);
    assert!(r.details.is_empty());
}

#[test]
fn another_hash_or_compact_revision_blocks() {
    for hash in [(3258207394, 5177), (3258207393, 5176)] {
        let r = judge(&expected(replayed(), None), served(5482, Ok(hash)));
        assert_eq!(r.status, Status::Blocked, "{r:?}");
        assert!(
            r.message.contains("the replay's 0xc2344ca1"),
            "{}",
            r.message
        );
    }
}

#[test]
fn a_revision_below_the_replays_blocks() {
    let r = judge(
        &expected(replayed(), None),
        served(
            5481,
            Err(HashError::Failed(
                "etcdserver: mvcc: required revision is a future revision".into(),
            )),
        ),
    );
    assert_eq!(r.status, Status::Blocked);
    assert!(
        r.message.contains("below the replay's 5482"),
        "{}",
        r.message
    );
}

#[test]
fn a_failed_hashkv_blocks_and_a_later_revision_is_noted() {
    let r = judge(
        &expected(replayed(), None),
        served(5482, Err(HashError::Failed("HTTP 500".into()))),
    );
    assert_eq!(r.status, Status::Blocked);
    assert!(r.message.contains("HTTP 500"));
    let r = judge(
        &expected(replayed(), None),
        served(5482, Err(HashError::NoGateway("HTTP 404".into()))),
    );
    assert_eq!(r.status, Status::Warning, "{r:?}");
    assert!(r.message.contains("HashKV not compared"), "{}", r.message);
    let r = judge(
        &expected(replayed(), None),
        served(5490, Ok((3258207393, 5177))),
    );
    assert_eq!(r.status, Status::Pass);
    assert!(r.details[0].contains("moved on to revision 5490"), "{r:?}");
}

#[test]
fn without_a_replay_it_is_a_warning() {
    let r = judge(
        &expected(Err("not replayed".into()), None),
        served(5482, Ok((1, 2))),
    );
    assert_eq!(r.status, Status::Warning);
    assert!(r.message.contains("not replayed"));
}

#[test]
fn refusals_and_timeouts_block_with_the_log() {
    let log = vec!["{\"level\":\"fatal\",\"msg\":\"failed to recover v3 backend\"}".to_string()];
    let r = judge(
        &expected(replayed(), None),
        BootOutcome::Refused {
            why: "etcd exited (exit status: 1) before it served".into(),
            log: log.clone(),
        },
    );
    assert_eq!(
        (r.status, r.details.clone()),
        (Status::Blocked, log.clone())
    );
    let r = judge(
        &expected(replayed(), None),
        BootOutcome::TimedOut {
            after: Duration::from_millis(1500),
            log: log.clone(),
        },
    );
    assert_eq!(r.status, Status::Blocked);
    assert!(r.message.contains("within 1.5 s"), "{}", r.message);
}

#[test]
fn a_removal_blocks_only_when_the_log_does_not_record_it() {
    let log = vec!["membership: ID removed".to_string()];
    let removed = BootOutcome::Removed { log };
    let r = judge(&expected(replayed(), Some(93)), removed.clone());
    assert_eq!(r.status, Status::Info);
    assert!(r.message.contains("raft index 93"));
    let r = judge(&expected(replayed(), None), removed);
    assert_eq!(r.status, Status::Blocked);
}

#[test]
fn log_lines_are_classified_as_etcd_writes_them() {
    let zap = |level: &str| format!("{{\"level\":\"{level}\",\"ts\":\"x\",\"msg\":\"m\"}}");
    assert_eq!(classify(&zap("fatal")), LineKind::Fatal);
    assert_eq!(classify(&zap("panic")), LineKind::Fatal);
    assert_eq!(classify(&zap("error")), LineKind::Error);
    assert_eq!(classify(&zap("info")), LineKind::Other);
    assert_eq!(
        classify("panic: runtime error: index out of range"),
        LineKind::Fatal
    );
    assert_eq!(
        classify("fatal error: concurrent map writes"),
        LineKind::Fatal
    );
    // The line etcd 3.5.30 logs when --force-new-cluster re-adds a removed member.
    let removed = "{\"level\":\"error\",\"caller\":\"etcdserver/server.go:2418\",\"msg\":\"Validation on configuration change failed\",\"shouldApplyV3\":true,\"error\":\"membership: ID removed\"}";
    assert_eq!(classify(removed), LineKind::IdRemoved);
}

#[test]
fn reasons_prefer_fatal_then_errors_then_the_tail() {
    let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let notable = lines(&[
        "{\"level\":\"error\",\"msg\":\"e1\"}",
        "{\"level\":\"fatal\",\"msg\":\"f\"}",
    ]);
    let tail = lines(&["a", "b", "c"]);
    assert_eq!(
        reasons(&notable, &tail, 8),
        lines(&["{\"level\":\"fatal\",\"msg\":\"f\"}"])
    );
    assert_eq!(reasons(&notable[..1], &tail, 8), notable[..1].to_vec());
    assert_eq!(reasons(&[], &tail, 2), lines(&["b", "c"]));
    let long = vec!["x".repeat(5000)];
    assert_eq!(reasons(&[], &long, 2)[0].len(), 600);
}

#[test]
fn zap_lines_lose_their_timestamp_and_stack_trace() {
    let line = r#"{"level":"panic","ts":"2026-12-06T14:57:15Z","caller":"etcdserver/server.go:515","msg":"failed to recover v3 backend from snapshot","error":"failed to find database snapshot file (snap: snapshot file doesn't exist)","stacktrace":"go.etcd.io/etcd/server/etcdserver.NewServer\n\tserver.go:515"}"#;
    let c = compact(line);
    assert!(!c.contains("stacktrace") && !c.contains("\"ts\""), "{c}");
    assert!(
        c.contains("server.go:515") && c.contains("failed to recover v3 backend"),
        "{c}"
    );
    assert_eq!(
        compact("panic: removed all voters"),
        "panic: removed all voters"
    );
}
