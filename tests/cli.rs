//! The command line as users and CI drive it: exit codes, output formats, and the promise never to
//! write into the input.

mod common;

use std::path::Path;

#[test]
fn every_command_leaves_the_input_byte_identical() {
    for capture in common::captures() {
        let root = common::unpacked(&capture);
        let before = common::fingerprint(root);
        let members: Vec<String> = common::members(&capture)
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        let member = members[0].as_str();
        let mut runs: Vec<Vec<&str>> = vec![
            vec!["dump", member],
            vec!["dump", member, "--format", "json"],
            vec!["dump", member, "--summary", "--format", "json"],
            vec!["dump", member, "--forensic"],
            vec!["hashkv", member],
        ];
        let mut verify = vec!["verify"];
        verify.extend(members.iter().map(String::as_str));
        runs.push(verify.clone());
        verify.extend(["--format", "junit"]);
        runs.push(verify);
        for args in runs {
            let (code, _, stderr) = common::run_cli(&args);
            assert!(code == 0 || code == 2, "{args:?}: {code} {stderr}");
        }
        assert_eq!(
            common::fingerprint(root),
            before,
            "{capture}: input changed"
        );
    }
}

#[test]
fn broken_input_never_writes_or_renames_either() {
    // etcd renames a broken .snap to .broken and truncates a torn WAL; we must not.
    let m1 = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .unwrap();
    let copy = common::copy_member(&m1);
    let snap_dir = copy.path().join("member/snap");
    let snap = std::fs::read_dir(&snap_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap();
    std::fs::write(&snap, b"garbage").unwrap();
    let wal = &common::segments(copy.path())[0];
    let mut bytes = std::fs::read(wal).unwrap();
    bytes.truncate(bytes.len() / 2 + 3);
    std::fs::write(wal, &bytes).unwrap();
    let before = common::fingerprint(copy.path());
    for args in [
        vec!["verify"],
        vec!["dump"],
        vec!["hashkv"],
        vec!["verify", "--forensic"],
    ] {
        let mut args = args;
        let p = copy.path().display().to_string();
        args.push(&p);
        let _ = common::run_cli(&args);
    }
    assert_eq!(common::fingerprint(copy.path()), before);
}

#[test]
fn unreadable_paths_and_bad_usage_exit_2() {
    let (code, _, stderr) = common::run_cli(&["verify", "/nonexistent/raft-replay"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/raft-replay"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = common::run_cli(&["dump", empty.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no etcd WAL found"), "{stderr}");
    let (code, _, _) = common::run_cli(&["verify"]);
    assert_eq!(code, 2);
    let (code, _, _) = common::run_cli(&["dump", "x", "--format", "yaml"]);
    assert_eq!(code, 2);
    let (code, _, _) = common::run_cli(&["no-such-command"]);
    assert_eq!(code, 2);
}

#[test]
fn paths_may_be_data_dir_member_dir_or_wal_dir() {
    let m1 = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .unwrap();
    let outputs: Vec<String> = [m1.clone(), m1.join("member"), m1.join("member/wal")]
        .iter()
        .map(|p| {
            let (code, stdout, stderr) =
                common::run_cli(&["dump", p.to_str().unwrap(), "--format", "json"]);
            assert_eq!(code, 0, "{}: {stderr}", p.display());
            stdout
        })
        .collect();
    assert!(outputs.iter().all(|o| o == &outputs[0] && !o.is_empty()));
}

#[test]
fn dump_json_is_one_object_per_entry_with_the_contract_fields() {
    let m1 = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .unwrap();
    let (code, stdout, _) = common::run_cli(&["dump", m1.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    let mut kinds = std::collections::BTreeSet::new();
    let mut previous = 0;
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in [
            "index",
            "term",
            "type",
            "data_len",
            "data_crc32c",
            "request",
        ] {
            assert!(!v[field].is_null(), "{field} missing in {line}");
        }
        assert_eq!(v["index"].as_u64().unwrap(), previous + 1);
        previous = v["index"].as_u64().unwrap();
        kinds.insert(v["request"]["kind"].as_str().unwrap().to_string());
    }
    // The capture's workload shows up decoded.
    for kind in [
        "conf_change",
        "put",
        "delete_range",
        "txn",
        "compaction",
        "lease_grant",
        "lease_revoke",
        "noop",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} request decoded; saw {kinds:?}"
        );
    }
    let (code, stdout, _) = common::run_cli(&[
        "dump",
        m1.to_str().unwrap(),
        "--summary",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["entry_count"].as_u64().unwrap(), previous);
    assert_eq!(s["last_index"].as_u64().unwrap(), previous);
    assert!(s["hard_state"]["commit"].as_u64().unwrap() <= previous);
    assert_eq!(s["snapshot"]["index"], 0);
}

#[test]
fn verify_junit_parses_and_holds_a_testcase_per_member_and_check() {
    let members = common::members("cluster-b");
    let mut args = vec!["verify".to_string(), "--format".into(), "junit".into()];
    args.extend(members.iter().map(|m| m.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, _) = common::run_cli(&args);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("<?xml"));
    assert_eq!(stdout.matches("<testsuite ").count(), members.len());
    assert!(stdout.matches("<testcase ").count() >= members.len() * 2);
    assert!(!stdout.contains("<failure"));
    assert!(stdout.trim_end().ends_with("</testsuites>"));
}

#[test]
fn dump_on_a_closed_pipe_does_not_panic() {
    let m1 = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["dump", m1.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = Path::new("");
}

#[test]
fn a_member_etcd_cannot_read_never_passes() {
    // The first record's length word says 2^64 − 1 bytes: etcd refuses the WAL. Every command
    // that gives a verdict must say so with exit 1 (crash included: the captured state itself
    // does not boot, before any simulated crash).
    let m1 = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .unwrap();
    let copy = common::copy_member(&m1);
    let wal = &common::segments(copy.path())[0];
    let mut bytes = std::fs::read(wal).unwrap();
    bytes[..8].copy_from_slice(&[0xff; 8]);
    std::fs::write(wal, &bytes).unwrap();
    let p = copy.path().display().to_string();
    for args in [
        vec!["verify", p.as_str()],
        vec!["dump", p.as_str()],
        vec!["hashkv", p.as_str()],
        vec!["crash", p.as_str(), "--classes", "a"],
        vec!["gate", p.as_str(), "--target", "3.5"],
    ] {
        let (code, stdout, stderr) = common::run_cli(&args);
        assert_eq!(code, 1, "{args:?}\n{stdout}\n{stderr}");
    }
    let (code, stdout, _) =
        common::run_cli(&["crash", p.as_str(), "--classes", "a", "--format", "json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["refused_input_count"], 1, "{stdout}");
    assert_eq!(report["verdict"], "findings");
}

/// The scan's digests spill to a temporary file past a bound (`check::digest_items`); forcing
/// that on every member — and making the temporary directory unusable, so it falls back to
/// memory — changes no verdict and no byte of output.
#[test]
fn spilled_digests_change_no_output() {
    const HOT: &str = "RAFT_REPLAY_DIGEST_HOT_ENTRIES";
    for capture in common::captures() {
        let members: Vec<String> = common::members(&capture)
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        for extra in [&["--format", "json"][..], &["--forensic"][..], &[][..]] {
            let mut args = vec!["verify"];
            args.extend(members.iter().map(String::as_str));
            args.extend(extra);
            let plain = common::run_cli_env(&args, &[(HOT, "100000000")]);
            let spilled = common::run_cli_env(&args, &[(HOT, "16")]);
            let no_tmp = common::run_cli_env(
                &args,
                &[(HOT, "16"), ("TMPDIR", "/nonexistent/raft-replay-test")],
            );
            assert!(plain.0 == 0 || plain.0 == 1, "{args:?}: {}", plain.2);
            assert_eq!(spilled.0, plain.0, "{args:?}: {}", spilled.2);
            assert_eq!(
                spilled.1, plain.1,
                "{capture} {extra:?}: output differs when spilled"
            );
            assert_eq!(no_tmp.0, plain.0, "{args:?}: {}", no_tmp.2);
            assert_eq!(
                no_tmp.1, plain.1,
                "{capture} {extra:?}: output differs without a tmpdir"
            );
        }
    }
}
