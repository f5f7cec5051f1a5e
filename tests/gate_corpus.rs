//! `cargo test` is the upgrade gate: `raft-replay gate` over every capture in `corpus/`, against
//! the baselines checked in under `tests/baselines/`, with insta snapshots of the reports.
//!
//! What it shows: a 3.4 capture with `--target 3.5` → 0; `--target 3.6` → 1, naming the
//! v2 entries after each member's last snapshot (etcd 3.6 translates those the captures hold;
//! the upgrade is refused because 3.4 → 3.6 skips a minor version); a changed baseline → 1 with a
//! readable diff. Numbers come from the data (`dump`), never hard-coded.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn baseline_file(capture: &str) -> PathBuf {
    common::repo_dir()
        .join("tests")
        .join("baselines")
        .join(format!("{capture}.json"))
}

fn gate(capture: &str, extra: &[&str]) -> (i32, String, String) {
    let members = common::members(capture);
    let mut args: Vec<String> = vec!["gate".into()];
    args.extend(members.iter().map(|m| m.to_str().unwrap().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_cli(&args)
}

/// Tempdir paths out of a report.
fn redact(text: &str, capture: &str) -> String {
    let root = common::unpacked(capture).to_string_lossy().into_owned();
    text.replace(&root, "[CORPUS]")
        .replace(&common::repo_dir().to_string_lossy().into_owned(), "[REPO]")
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).expect("gate --format json prints JSON")
}

#[test]
fn every_capture_passes_its_checked_in_baseline_for_3_5() {
    for capture in common::captures() {
        let baseline = baseline_file(&capture);
        assert!(
            baseline.is_file(),
            "{} is missing: run `raft-replay gate <members> --target 3.5 --write-baseline {}`",
            baseline.display(),
            baseline.display()
        );
        let baseline = baseline.to_str().unwrap();
        let (code, text, stderr) = gate(&capture, &["--target", "3.5", "--baseline", baseline]);
        assert_eq!(code, 0, "{capture}: {text}\n{stderr}");
        insta::assert_snapshot!(format!("gate_{capture}_3_5_text"), redact(&text, &capture));

        let (code, out, _) = gate(
            &capture,
            &[
                "--target",
                "3.5",
                "--baseline",
                baseline,
                "--format",
                "json",
            ],
        );
        assert_eq!(code, 0);
        let mut report = json(&out);
        assert_eq!(report["verdict"], "ok");
        assert_eq!(report["baseline"]["changes"], Value::Array(vec![]));
        for m in report["members"].as_array_mut().unwrap() {
            m["path"] = Value::Null;
        }
        report["baseline"]["file"] = Value::Null;
        // Messages may name a member's files: the unpacked corpus's path is not part of it.
        let report: Value = serde_json::from_str(&redact(&report.to_string(), &capture)).unwrap();
        insta::assert_json_snapshot!(format!("gate_{capture}_3_5_json"), report);
    }
}

/// Raft indexes of the v2 requests after `boot` in a member's log, as `dump` decodes them.
fn v2_indexes_after(member: &Path, boot: u64) -> Vec<u64> {
    let (code, out, _) = common::run_cli(&["dump", member.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["request"]["kind"] == "v2")
        .filter_map(|e| e["index"].as_u64())
        .filter(|i| *i > boot)
        .collect()
}

/// Whether a capture was made by etcd 3.4 (its manifest's `etcd_version`).
fn is_3_4(capture: &str) -> bool {
    common::manifest(capture)["etcd_version"]
        .as_str()
        .unwrap()
        .starts_with("3.4.")
}

#[test]
fn target_3_6_refuses_3_4_data_accepts_3_5_data_and_names_the_v2_entries_after_the_last_snapshot() {
    for capture in common::captures() {
        // 3.4 → 3.6 skips a minor version; 3.5 → 3.6 is the supported path.
        let from_3_4 = common::etcd_minor(&capture) == "3.4";
        let (code, out, stderr) = gate(&capture, &["--target", "3.6", "--format", "json"]);
        let report = json(&out);
        if from_3_4 {
            assert_eq!(code, 1, "{capture}: {stderr}");
            assert_eq!(report["verdict"], "blocked");
        } else {
            assert_ne!(report["verdict"], "blocked", "{capture}: {out}");
        }
        let rules = report["rules"].as_array().unwrap();
        let members = report["members"].as_array().unwrap();
        for (m, path) in members.iter().zip(common::members(&capture)) {
            let name = m["name"].as_str().unwrap();
            let rule = |id: &str| {
                rules
                    .iter()
                    .find(|r| r["rule"] == id && r["member"] == name)
                    .unwrap_or_else(|| panic!("{capture} {name}: no {id}"))
            };
            // 3.4 → 3.6 skips 3.5: refused, with the reason from etcd's sources.
            let path_rule = rule("version.upgrade_path");
            let message = path_rule["message"].as_str().unwrap();
            if from_3_4 {
                assert_eq!(path_rule["status"], "blocked", "{capture} {name}");
                assert!(message.contains("skips 3.5"), "{message}");
            } else {
                assert_eq!(path_rule["status"], "info", "{capture} {name}");
                assert!(
                    message.contains("one minor version, supported"),
                    "{message}"
                );
            }
            // Every v2 request after the boot snapshot is named by raft index, each with what
            // 3.6 does with it (the captures hold only the two PUTs 3.6 translates).
            let boot = m["boot_snapshot"]["index"].as_u64().unwrap_or(0);
            let expected = v2_indexes_after(&path, boot);
            let v2 = rule("v2.wal_requests");
            let named: Vec<u64> = v2["raft_indexes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            assert_eq!(named, expected, "{capture} {name}");
            if !expected.is_empty() {
                assert_eq!(v2["status"], "info", "{capture} {name}: {v2}");
                for (index, detail) in expected.iter().zip(v2["details"].as_array().unwrap()) {
                    let detail = detail.as_str().unwrap();
                    assert!(
                        detail.starts_with(&format!("raft index {index} ")),
                        "{detail}"
                    );
                    assert!(detail.contains("translated into Cluster"), "{detail}");
                }
            }
        }
        let (code, text, _) = gate(&capture, &["--target", "3.6"]);
        assert!(text.starts_with("raft-replay gate:"));
        if from_3_4 {
            assert_eq!(code, 1);
            assert!(text.contains("BLOCKED — etcd 3.6 cannot start from or replay this data"));
        }
        insta::assert_snapshot!(format!("gate_{capture}_3_6_text"), redact(&text, &capture));
    }
}

#[test]
fn a_3_5_capture_goes_to_3_6_and_a_db_without_conf_state_is_named() {
    for capture in common::captures().into_iter().filter(|c| !is_3_4(c)) {
        let (code, out, stderr) = gate(&capture, &["--target", "3.6", "--format", "json"]);
        assert_eq!(code, 0, "{capture}: {out}{stderr}");
        let report = json(&out);
        let schema: Vec<&Value> = report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["rule"] == "storage.schema_version")
            .collect();
        assert_eq!(schema.len(), common::members(&capture).len());
        // A db that 3.4 wrote first and 3.5 took over without a conf change since (the rolling
        // upgrade, cluster-e) has meta/term but no confState: named, with the remedy.
        let upgraded_from_3_4 = common::manifest(&capture)["etcd_versions"]
            .as_array()
            .is_some_and(|v| {
                v.iter()
                    .any(|v| v.as_str().is_some_and(|v| v.starts_with("3.4.")))
            });
        let expected = if upgraded_from_3_4 { "warning" } else { "pass" };
        assert!(
            schema.iter().all(|r| r["status"] == expected),
            "{capture}: {schema:?}"
        );
    }
    // A db upgraded 3.4 → 3.5 that applied no conf change under 3.5 has a term but no
    // confState: the key renamed in place (same length, the meta keys still ascend). etcd 3.6
    // starts on it but cannot migrate its schema.
    let member = common::members("cluster-f").into_iter().next().unwrap();
    let copy = common::copy_member(&member);
    let db = copy.path().join("member/snap/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let mut renamed = 0;
    for i in 0..bytes.len().saturating_sub(9) {
        if &bytes[i..i + 9] == b"confState" {
            bytes[i + 8] = b'X';
            renamed += 1;
        }
    }
    assert!(renamed >= 1);
    std::fs::write(&db, bytes).unwrap();
    let path = copy.path().to_str().unwrap();
    for (target, status) in [("3.6", "warning"), ("3.5", "info")] {
        // etcd 3.6 starts on it (schema.Validate only warns): said, not blocking.
        let (code, out, stderr) =
            common::run_cli(&["gate", path, "--target", target, "--format", "json"]);
        assert_eq!(code, 0, "{target}: {stderr}");
        let report = json(&out);
        let rule = report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == "storage.schema_version")
            .unwrap()
            .clone();
        assert_eq!(rule["status"], status, "{rule}");
        let message = rule["message"].as_str().unwrap();
        assert!(
            message.contains("missing confstate information") && message.contains("member update"),
            "{message}"
        );
    }
}

#[test]
fn a_changed_baseline_fails_with_a_readable_diff() {
    let capture = common::captures().into_iter().next().unwrap();
    let mut lock: Value =
        serde_json::from_slice(&std::fs::read(baseline_file(&capture)).unwrap()).unwrap();
    let (key, member) = lock["members"]
        .as_object_mut()
        .unwrap()
        .iter_mut()
        .find(|(_, m)| !m["hashkv"].is_null())
        .map(|(k, m)| (k.clone(), m))
        .unwrap();
    let name = member["name"].as_str().unwrap().to_string();
    let commit = member["hard_state"]["commit"].as_u64().unwrap();
    member["hard_state"]["commit"] = (commit + 1).into();
    member["hashkv"]["hash"] = 12345.into();
    let chunk = &mut member["log"]["chunks"][0];
    let (first, last) = (
        chunk["first"].as_u64().unwrap(),
        chunk["last"].as_u64().unwrap(),
    );
    chunk["crc32c"] = "00000000".into();
    member["log"]["digest"] = "crc32c:00000000".into();
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, serde_json::to_string_pretty(&lock).unwrap()).unwrap();
    let junit = dir.path().join("gate.xml");

    let (code, text, stderr) = gate(
        &capture,
        &[
            "--target",
            "3.5",
            "--baseline",
            changed.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        text.contains("CHANGED — the data differs from the baseline"),
        "{text}"
    );
    let who = format!("{name} ({key})");
    assert!(
        text.contains(&format!("baseline {}: 3 change(s)", changed.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{who}: hard_state.commit {} → {commit}",
            commit + 1
        )),
        "{text}"
    );
    assert!(text.contains(&format!("{who}: log.digest crc32c:00000000 → crc32c:")));
    assert!(
        text.contains(&format!(
            "(entries differ in raft indexes {first}..={last})"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{who}: hashkv.hash 0x00003039 → 0x")),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(&format!(
        "<testcase classname=\"{name}\" name=\"baseline\">"
    )));
    assert!(xml.contains("<failure message=\"3 change(s)\">"));
}

#[test]
fn cannot_run_cases_exit_2() {
    let capture = common::captures().into_iter().next().unwrap();
    for target in ["3", "next", "4.0", "3.9"] {
        let (code, _, stderr) = gate(&capture, &["--target", target]);
        assert_eq!(code, 2, "--target {target}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\":\"something else\",\"members\":{}}").unwrap();
    let (code, _, stderr) = gate(
        &capture,
        &["--target", "3.5", "--baseline", bad.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("baseline format"), "{stderr}");
    let (code, _, _) = common::run_cli(&["gate", "/nonexistent/dir", "--target", "3.5"]);
    assert_eq!(code, 2);
}

#[test]
fn write_baseline_reproduces_the_checked_in_lock() {
    // The lock is deterministic: no paths, no times. Regenerate with --write-baseline.
    for capture in common::captures() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("lock.json");
        let (code, _, stderr) = gate(
            &capture,
            &["--target", "3.5", "--write-baseline", out.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(baseline_file(&capture)).unwrap(),
            "{capture}"
        );
    }
}
