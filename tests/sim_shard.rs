//! `sim --shard K/N` over N machines adds up to one unsharded run: `sim --merge` of the shards'
//! JSON reports equals the unsharded run's report (same cases counted, same faults, transitions
//! and client requests, same first failure with the same shrunk scenario), and its text is the
//! unsharded text but for the wall time. Checked on a run where every case holds and on one
//! with an injected bug whose first failure lies in a middle shard, so the later shard's extra
//! cases must be dropped, as the unsharded run never reaches them.

mod common;

use std::path::Path;

use serde_json::Value;

/// Runs `sim` with `args`, returning (exit code, stdout, stderr).
fn sim(args: &[&str], out: &Path) -> (i32, String, String) {
    let mut all = vec!["sim", "--jobs", "2", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    common::run_cli(&all)
}

fn without_time(mut report: Value) -> Value {
    report
        .as_object_mut()
        .expect("a JSON object")
        .remove("elapsed_seconds")
        .expect("elapsed_seconds");
    report
}

/// The text without the wall time of its first line ("… N case(s) in X s (Y cases/s)").
fn text_without_time(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let first = first.split(" in ").next().unwrap_or_default();
    std::iter::once(first)
        .chain(lines)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the whole run and its 3 shards; returns (unsharded JSON, merged JSON, shard JSONs).
fn whole_and_shards(run: &[&str], dir: &Path) -> (i32, Value, Vec<Value>) {
    let (code, whole, stderr) = sim(&[run, &["--format", "json"]].concat(), dir);
    assert!(code == 0 || code == 1, "{stderr}");
    let mut files = Vec::new();
    let mut shards = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let (shard_code, json, stderr) = sim(
            &[run, &["--format", "json", "--shard", &shard]].concat(),
            dir,
        );
        assert!(shard_code == 0 || shard_code == 1, "{shard}: {stderr}");
        let report: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(shard_code == 1, !report["failure"].is_null(), "{shard}");
        let file = dir.join(format!("shard-{k}.json"));
        std::fs::write(&file, &json).unwrap();
        files.push(file.to_str().unwrap().to_string());
        shards.push(report);
    }
    let mut merge = vec!["--merge"];
    merge.extend(files.iter().rev().map(String::as_str)); // any order
    let (merge_code, merged, stderr) = sim(&[&merge[..], &["--format", "json"]].concat(), dir);
    assert_eq!(merge_code, code, "{stderr}");
    let whole: Value = serde_json::from_str(&whole).unwrap();
    let merged: Value = serde_json::from_str(&merged).unwrap();
    assert_eq!(without_time(merged), without_time(whole.clone()));
    // And the text a person reads.
    let (_, whole_text, _) = sim(run, dir);
    let (_, merged_text, _) = sim(&merge, dir);
    assert_eq!(
        text_without_time(&merged_text),
        text_without_time(&whole_text)
    );
    (code, whole, shards)
}

/// The shards' blocks are disjoint, in order, and cover `0..cases`.
fn assert_blocks_cover(shards: &[Value], cases: u64) {
    let mut next = 0;
    for shard in shards {
        assert_eq!(shard["first_case"].as_u64(), Some(next), "{shard}");
        next = shard["end_case"].as_u64().unwrap();
    }
    assert_eq!(next, cases);
}

#[test]
fn shards_of_a_run_that_holds_add_up_to_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, whole, shards) = whole_and_shards(&["--cases", "24", "--seed", "5"], dir.path());
    assert_eq!(code, 0);
    assert_blocks_cover(&shards, 24);
    assert_eq!(whole["cases"], 24);
    let counted: u64 = shards.iter().map(|s| s["cases"].as_u64().unwrap()).sum();
    assert_eq!(counted, 24);
    assert!(whole["proposals"].as_u64().unwrap() > 0, "{whole}");
}

#[test]
fn the_first_failure_of_a_sharded_run_is_the_unsharded_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = [
        "--cases",
        "30",
        "--seed",
        "5",
        "--inject",
        "truncate-committed-on-conflict",
    ];
    let (code, whole, shards) = whole_and_shards(&run, dir.path());
    assert_eq!(code, 1, "the injected bug is caught: {whole}");
    assert_blocks_cover(&shards, 30);
    let failing: Vec<usize> = (0..3)
        .filter(|&k| !shards[k]["failure"].is_null())
        .collect();
    let first = failing[0];
    // Seed 5's first failing case lies in the middle block (10..20), so shard 3/3 ran cases
    // the unsharded run never reaches (and stopped at a failure of its own, which the merge
    // drops: the unsharded run reports only its first).
    assert_eq!(first, 1, "{shards:?}");
    assert!(shards[2]["cases"].as_u64().unwrap() > 0);
    assert_ne!(whole["failure"], shards[2]["failure"]);
    assert_eq!(whole["failure"], shards[first]["failure"]);
    // The cases after the unsharded run's failure are not counted in the merged report.
    let before: u64 = shards[..first]
        .iter()
        .map(|s| s["cases"].as_u64().unwrap())
        .sum();
    assert_eq!(
        whole["cases"].as_u64().unwrap(),
        before + shards[first]["cases"].as_u64().unwrap()
    );
}

#[test]
fn reports_of_other_runs_or_missing_shards_do_not_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (seed, shard) in [("5", "1/2"), ("6", "2/2"), ("5", "2/2")] {
        let (_, json, _) = sim(
            &[
                "--cases", "4", "--seed", seed, "--shard", shard, "--format", "json",
            ],
            dir.path(),
        );
        let file = dir
            .path()
            .join(format!("{seed}-{}.json", shard.replace('/', "of")));
        std::fs::write(&file, json).unwrap();
        files.push(file.to_str().unwrap().to_string());
    }
    for (inputs, says) in [
        (vec![&files[0], &files[1]], "another run: seed"),
        (vec![&files[0]], "shard 2/2 is missing"),
        (vec![&files[0], &files[0], &files[2]], "given twice"),
    ] {
        let mut args = vec!["--merge"];
        args.extend(inputs.iter().map(|s| s.as_str()));
        let (code, stdout, stderr) = sim(&args, dir.path());
        assert_eq!(code, 2, "{stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
    // --merge runs nothing: run arguments beside it are an error, not ignored.
    let (code, _, stderr) = sim(&["--merge", &files[0], "--seed", "5"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = sim(&["--cases", "4", "--shard", "4/3"], dir.path());
    assert_eq!(code, 2);
    assert!(stderr.contains("expected K/N"), "{stderr}");
}
