//! What etcd 3.4.23 really does with a request only 3.5 knows, on real binaries: a mixed cluster
//! (two 3.4.23 members, one 3.5.30, cluster version 3.4) asked to enable a downgrade to 3.3
//! through the 3.5 member (`tools/mixed-downgrade/run.sh`). 3.5.30 validates it against cluster
//! version 3.4 and proposes a `DowngradeInfoSet`; both 3.4.23 members exit with
//! `panic: not implemented`, the 3.5.30 member applies it. The gate names that entry, applied as
//! 3.4.23 (the release of the cluster version in force), and `dump` shows it there.

mod common;

use serde_json::Value;

#[test]
fn a_downgrade_request_at_cluster_version_3_4_panics_the_3_4_members_and_the_gate_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let script = common::repo_dir().join("tools/mixed-downgrade/run.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(out)
        .status()
        .expect("bash runs the script");
    assert!(status.success(), "{} failed: {status}", script.display());

    let result = std::fs::read_to_string(out.join("result.txt")).unwrap();
    assert_eq!(result, "x1 exited\nx2 exited\nx3 alive\n");
    for member in ["x1", "x2"] {
        let log = std::fs::read_to_string(out.join(format!("{member}.log"))).unwrap();
        assert!(log.contains("panic: not implemented"), "{member}: {log}");
    }

    // The entry etcd 3.5 proposed, as the 3.5 member logged it.
    let x3 = out.join("x3");
    let (code, dump, stderr) = common::run_cli(&["dump", x3.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let downgrade: Vec<u64> = dump
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["request"]["kind"] == "downgrade_info_set")
        .map(|e| {
            assert_eq!(e["request"]["downgrade_info_set"]["enabled"], true);
            assert_eq!(e["request"]["downgrade_info_set"]["ver"], "3.3.0");
            e["index"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(downgrade.len(), 1, "{dump}");

    let paths: Vec<String> = ["x1", "x2", "x3"]
        .iter()
        .map(|m| out.join(m).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["gate"];
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--target", "3.5", "--format", "json"]);
    let (code, stdout, stderr) = common::run_cli(&args);
    assert_eq!(code, 1, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let x3_rule = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "apply.panics" && r["member"] == "x3")
        .unwrap();
    assert_eq!(x3_rule["status"], "blocked", "{x3_rule:#}");
    assert_eq!(x3_rule["raft_indexes"], serde_json::json!(downgrade));
    let detail = x3_rule["details"][0].as_str().unwrap();
    assert!(
        detail.contains("etcd 3.4.23") && detail.contains("downgrade_info_set"),
        "{detail}"
    );
    // The invariants hold: the data is sound, the 3.4 members cannot apply it.
    assert_eq!(report["summary"]["invariant_failures"], 0, "{report:#}");
}
