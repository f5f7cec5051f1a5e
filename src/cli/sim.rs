//! `raft-replay sim --cases N --seed S [--inject BUG] [--out DIR] [--jobs J]`: generated cluster
//! scenarios under faults, every check after each. Exit 0 when every case holds; 1 when one
//! fails, with the path of its shrunk scenario file (written under DIR); 2 on bad arguments.

use std::path::{Path, PathBuf};

use super::{EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::sim::gen::{run_cases, scenario_path, Summary};
use raft_replay::sim::Inject;

fn counts(map: &std::collections::BTreeMap<&'static str, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn summary_text(summary: &Summary, seed: u64, inject: Option<Inject>) -> String {
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let mut text = format!(
        "seed {seed}{}: {} case(s) in {:.1} s ({:.0} cases/s)\n",
        inject
            .map(|b| format!(", injected bug {}", b.name()))
            .unwrap_or_default(),
        summary.cases,
        secs,
        summary.cases as f64 / secs
    );
    text.push_str(&format!("faults: {}\n", counts(&summary.faults)));
    text.push_str(&format!(
        "joint consensus / conf changes applied: {}\n",
        counts(&summary.transitions)
    ));
    text.push_str(&format!(
        "client requests: {} proposed, {} acknowledged\n",
        summary.proposals, summary.acked
    ));
    text.push_str(&format!(
        "liveness: {} case(s) ended without a converged leader (not a failure)\n",
        summary.stuck
    ));
    text
}

pub fn run(
    cases: u64,
    seed: u64,
    inject: Option<&str>,
    out: Option<&Path>,
    jobs: Option<usize>,
) -> i32 {
    let inject = match inject {
        None => None,
        Some(name) => match Inject::parse(name) {
            Some(bug) => Some(bug),
            None => {
                let known: Vec<&str> = Inject::ALL.iter().map(|b| b.name()).collect();
                eprintln!(
                    "raft-replay sim: unknown bug {name:?} (one of: {})",
                    known.join(", ")
                );
                return EXIT_CANNOT_RUN;
            }
        },
    };
    let jobs = jobs
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let summary = run_cases(cases, seed, inject, jobs, &|_| {});
    let mut text = summary_text(&summary, seed, inject);
    let Some(failure) = &summary.failure else {
        text.push_str(&format!("OK: every case held ({} jobs)\n", jobs));
        super::out(&text);
        return EXIT_OK;
    };
    let dir: PathBuf = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("sim-failures"));
    let path = scenario_path(&dir, seed, failure.case, inject);
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &failure.script));
    text.push_str(&format!(
        "FAILED at case {} ({} commands, shrunk to {}):\n",
        failure.case,
        failure.original_commands,
        failure.shrunk.commands.len()
    ));
    for f in failure.shrunk_failures.iter().take(5) {
        text.push_str(&format!("  {}\n", f.replace('\n', " | ")));
    }
    match written {
        Ok(()) => text.push_str(&format!("shrunk scenario: {}\n", path.display())),
        Err(e) => {
            super::out(&text);
            eprintln!("raft-replay sim: cannot write {}: {e}", path.display());
            return EXIT_FINDINGS;
        }
    }
    super::out(&text);
    EXIT_FINDINGS
}
