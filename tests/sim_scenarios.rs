//! Runs every scenario file under `scenarios/` (and `scenarios/regressions/`) and compares each
//! command's output with the file. `RAFT_REPLAY_REWRITE=1 cargo test --test sim_scenarios`
//! rewrites the expected output instead.
//!
//! A scenario without `inject` must hold at every `check`; a scenario with `inject` (a shrunk
//! case found by `raft-replay sim --inject`) must still be caught.

use std::path::{Path, PathBuf};

use raft_replay::sim::script::{rewrite_requested, run_script};

fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "txt") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_scenario_replays() {
    let files = scenario_files();
    let own = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "regressions"))
        .count();
    let rewrite = rewrite_requested();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let run = match run_script(&text) {
            Ok(run) => run,
            Err(e) => {
                failures.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        if rewrite {
            let rendered = run.rendered();
            if rendered != text {
                std::fs::write(file, rendered).unwrap();
            }
        } else {
            for (line, command, expected, actual) in &run.mismatches {
                failures.push(format!(
                    "{}:{line}: {command}\n--- expected\n{expected}\n--- actual\n{actual}",
                    file.display()
                ));
            }
        }
        let injected = run.runner.inject().is_some();
        if run.runner.verdicts.is_empty() {
            failures.push(format!("{}: no `check` command", file.display()));
        } else if injected && run.runner.holds() {
            failures.push(format!(
                "{}: the injected bug is no longer caught",
                file.display()
            ));
        } else if !injected && !run.runner.holds() {
            failures.push(format!(
                "{}: a check failed on the unmodified code:\n{}",
                file.display(),
                run.runner
                    .verdicts
                    .iter()
                    .flat_map(|v| &v.failures)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(own >= 25, "expected at least 25 scenarios, found {own}");
}
