//! One verify pipeline: `gate` reports exactly the invariant findings `verify` reports, so it
//! cannot pass data `verify` fails, nor fail data `verify` passes.

mod check_support;
mod common;

use std::path::PathBuf;

use check_support::*;
use raft_replay::check::Finding;
use raft_replay::fsio::MemFs;
use raft_replay::gate::run_gate;
use raft_replay::gate::version::Version;

/// (member label, kind) of every failing finding, sorted.
fn failing(findings: impl Iterator<Item = Finding>) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = findings
        .filter(|f| f.severity.is_failure())
        .map(|f| {
            (
                f.member.rsplit('/').next().unwrap_or("").to_string(),
                f.kind,
            )
        })
        .collect();
    out.sort();
    out
}

/// (member, finding kind) pairs.
type Kinds = Vec<(String, &'static str)>;

fn verify_and_gate(fs: &MemFs, paths: &[PathBuf]) -> (Kinds, Kinds, bool) {
    let verified = raft_replay::verify::verify_cluster(fs, paths, &Default::default()).unwrap();
    let target = Version::parse("3.5").unwrap();
    let gate = run_gate(fs, paths, target, Default::default(), None).unwrap();
    let ours = failing(verified.members.into_iter().flat_map(|m| m.findings));
    let gates = failing(gate.findings().cloned());
    // The gate's own invariant verdict ("invariants (as `raft-replay verify`) … OK"); its
    // upgrade rules come on top (the scripted logs hold no etcd requests: `apply.panics`).
    (ours, gates, gate.failures() == 0)
}

/// Two members: m1 voted in term 3 for 5, a member m1's log adds at 61; m2 voted for 5 too but
/// its log stops before 61. A vote for an id another member's log knows is a vote for a member:
/// `verify` accepts it, and so must the gate (no `raft.vote_not_member` on m2).
#[test]
fn a_vote_for_a_member_only_another_member_knows_passes_verify_and_gate() {
    let mut a = scripted(1);
    a.save(hs(2, 1, 60), &[conf_entry(61, 2, 0, 5)]);
    a.save(hs(2, 1, 61), &[]);
    a.save(hs(3, 5, 61), &[]);
    let mut b = scripted(2);
    b.save(hs(3, 5, 60), &[]);
    let mut fs = MemFs::default();
    let paths = vec![a.install(&mut fs, "m1"), b.install(&mut fs, "m2")];
    // m2 alone cannot know 5: the reconciliation across members is what accepts the vote.
    let alone = verify(&[("m2", &b)]);
    assert_eq!(
        failing_kinds(&alone),
        vec!["raft.vote_not_member"],
        "{}",
        show(&alone)
    );
    let (verified, gated, passed) = verify_and_gate(&fs, &paths);
    assert!(verified.is_empty(), "{verified:?}");
    assert_eq!(gated, verified);
    assert!(
        passed,
        "the gate's invariants fail where verify passes: {gated:?}"
    );
}

/// A finding only the replay makes (the follower re-execution: etcd persisted committed entry
/// 60 again, which Raft's follower never does) fails `verify`, and so must fail the gate's
/// invariants.
#[test]
fn a_finding_only_the_replay_makes_fails_verify_and_gate() {
    let mut a = scripted(1);
    a.save(hs(2, 1, 60), &[entry(60, 2, b"put k60")]);
    let mut fs = MemFs::default();
    let paths = vec![a.install(&mut fs, "m1")];
    // The invariant scan alone has nothing to say.
    let files = raft_replay::member::MemberFiles::open(&fs, &paths[0]).unwrap();
    let read = raft_replay::member::read_member(&files, Default::default());
    let scan_only = raft_replay::check::check_member("m1", &files, &read).findings;
    assert!(failures(&scan_only).is_empty(), "{}", show(&scan_only));
    let (verified, gated, passed) = verify_and_gate(&fs, &paths);
    assert_eq!(
        verified,
        vec![("m1".to_string(), "replay.persist_mismatch")]
    );
    assert_eq!(gated, verified);
    assert!(!passed, "the gate's invariants pass where verify fails");
}

/// Every capture: the same failing findings (none) from both, member by member.
#[test]
fn gate_and_verify_agree_on_every_capture() {
    for capture in common::captures() {
        let mut fs = MemFs::default();
        let paths: Vec<PathBuf> = corpus_members(&capture)
            .iter()
            .map(|dir| install_dir(&mut fs, dir, dir.file_name().unwrap().to_str().unwrap()))
            .collect();
        let (verified, gated, passed) = verify_and_gate(&fs, &paths);
        assert_eq!(gated, verified, "{capture}");
        assert_eq!(passed, verified.is_empty(), "{capture}");
    }
}

/// `crash` judges the input as captured through the same pipeline: a finding only the replay
/// makes fails the run (exit 1) and is listed, before any simulated crash.
#[test]
fn crash_reports_the_pipelines_findings_on_the_input_as_captured() {
    let mut a = scripted(1);
    a.save(hs(2, 1, 60), &[entry(60, 2, b"put k60")]);
    let dir = tempfile::tempdir().unwrap();
    let member = dir.path().join("m1");
    a.write_dir(&member);
    let path = member.to_str().unwrap();
    let (code, stdout, stderr) = common::run_cli(&["crash", path, "--classes", "a"]);
    assert_eq!(code, 1, "{stderr}\n{stdout}");
    assert!(
        stdout.contains("as captured (raft-replay verify): 1 failure(s)")
            && stdout.contains("[replay.persist_mismatch]"),
        "{stdout}"
    );
    let (code, stdout, _) = common::run_cli(&["crash", path, "--classes", "a", "--format", "json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["as_captured_verify"]["failure_count"], 1);
    assert_eq!(
        report["as_captured_verify"]["findings"][0]["kind"],
        "replay.persist_mismatch"
    );
}

/// Members verified at once give the report members verified one by one give: the same
/// findings, HashKV points and rendering, byte for byte, on every capture and on damage.
#[test]
fn the_report_is_the_same_for_any_number_of_jobs() {
    use raft_replay::verify::{verify_cluster, VerifyOptions};
    let damaged = tempfile::tempdir().unwrap();
    let mut sets: Vec<Vec<PathBuf>> = common::captures()
        .iter()
        .map(|c| common::members(c))
        .collect();
    // One member with a flipped bit mid-log among healthy ones: its findings, not a panic.
    let a = common::members("cluster-a");
    let copy = damaged.path().join("m1");
    common::copy_dir(&a[0], &copy);
    let segment = common::segments(&copy)[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    // Half-way through the written records (the segment is preallocated with zeros after them).
    let written = bytes.iter().rposition(|b| *b != 0).unwrap();
    common::flip_bit(&mut bytes, written / 2, 3);
    std::fs::write(&segment, bytes).unwrap();
    sets.push(
        std::iter::once(copy)
            .chain(a[1..].iter().cloned())
            .collect(),
    );
    let damaged_set = sets.len() - 1;
    for (set, paths) in sets.into_iter().enumerate() {
        let one = verify_cluster(
            &raft_replay::fsio::RealFs,
            &paths,
            &VerifyOptions {
                jobs: 1,
                ..VerifyOptions::default()
            },
        )
        .unwrap();
        assert_eq!(one.holds(), set != damaged_set, "{paths:?}");
        for jobs in [2, 5] {
            let many = verify_cluster(
                &raft_replay::fsio::RealFs,
                &paths,
                &VerifyOptions {
                    jobs,
                    ..VerifyOptions::default()
                },
            )
            .unwrap();
            assert_eq!(one.to_text(), many.to_text(), "{paths:?} --jobs {jobs}");
            assert_eq!(one.to_json(), many.to_json(), "{paths:?} --jobs {jobs}");
            assert_eq!(one.common_index, many.common_index);
        }
    }
    // Through the CLI: the same stdout and exit code.
    let a: Vec<String> = common::members("cluster-a")
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let args = |jobs: &'static str| -> Vec<&str> {
        let mut v = vec!["verify", "--format", "json", "--jobs", jobs];
        v.extend(a.iter().map(|s| s.as_str()));
        v
    };
    let (code1, out1, _) = common::run_cli(&args("1"));
    let (code2, out2, _) = common::run_cli(&args("2"));
    assert_eq!((code1, &out1), (code2, &out2));
}

/// An unreadable input among readable ones is the same error with any number of jobs: the
/// first unreadable input in input order, however the workers finish.
#[test]
fn an_unreadable_member_is_the_same_error_for_any_number_of_jobs() {
    use raft_replay::verify::{verify_cluster, VerifyError, VerifyOptions};
    let scratch = tempfile::tempdir().unwrap();
    let (empty, also_empty) = (scratch.path().join("empty"), scratch.path().join("also"));
    std::fs::create_dir(&empty).unwrap();
    std::fs::create_dir(&also_empty).unwrap();
    let a = common::members("cluster-a");
    let paths = vec![
        a[0].clone(),
        empty.clone(),
        a[1].clone(),
        also_empty,
        a[2].clone(),
    ];
    for jobs in [1, 2, 5] {
        let outcome = verify_cluster(
            &raft_replay::fsio::RealFs,
            &paths,
            &VerifyOptions {
                jobs,
                ..VerifyOptions::default()
            },
        );
        match outcome {
            Err(VerifyError::Unreadable { path, .. }) => assert_eq!(path, empty, "--jobs {jobs}"),
            Err(e) => panic!("--jobs {jobs}: {e}"),
            Ok(_) => panic!("--jobs {jobs}: a verdict on a directory with no WAL"),
        }
    }
}
