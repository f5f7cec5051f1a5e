//! `raft-replay sim --cases N --seed S [--inject BUG] [--out DIR] [--jobs J] [--shard K/N]
//! [--format text|json]` and `raft-replay sim --merge FILE...`: generated cluster scenarios
//! under faults, every check after each. Exit 0 when every case holds; 1 when one fails, with
//! the path of its shrunk scenario file (written under DIR); 2 on bad arguments or shard
//! reports that are not one run's.

use std::path::{Path, PathBuf};

use super::{EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::sim::gen::{run_cases, scenario_path};
use raft_replay::sim::shard::{merge, RunReport, Shard};
use raft_replay::sim::Inject;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of generated cases (of the whole run, when sharded).
    #[arg(long, default_value_t = 100)]
    cases: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A test-only bug to inject (ack-before-fsync, apply-before-commit, skip-leave-joint,
    /// persist-hardstate-before-entries, truncate-committed-on-conflict, stale-vote-after-restart).
    #[arg(long)]
    inject: Option<String>,
    /// Where the shrunk scenario of a failing case is written (default: sim-failures).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: available parallelism); results do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only block K of N of the cases (1-based): the N shards' blocks are disjoint and
    /// cover every case; `--merge` adds their JSON reports up to the unsharded run's.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// `json`: the run's report as one JSON object (what `--merge` reads).
    #[arg(long, value_enum, default_value = "text")]
    format: super::Format,
    /// Merge the JSON reports of shards 1/N..N/N of one run into the unsharded run's report
    /// (instead of running cases).
    #[arg(long, num_args = 1.., value_name = "FILE", conflicts_with_all = ["shard", "inject", "cases", "seed"])]
    merge: Vec<PathBuf>,
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn summary_text(report: &RunReport) -> String {
    let secs = report.elapsed_seconds.max(1e-9);
    let shard = match report.shard.as_str() {
        "1/1" => String::new(),
        k => format!(
            ", shard {k} (cases {}..{} of {})",
            report.first_case, report.end_case, report.total_cases
        ),
    };
    let mut text = format!(
        "seed {}{}{shard}: {} case(s) in {:.1} s ({:.0} cases/s)\n",
        report.seed,
        report
            .inject
            .as_ref()
            .map(|b| format!(", injected bug {b}"))
            .unwrap_or_default(),
        report.cases,
        secs,
        report.cases as f64 / secs
    );
    text.push_str(&format!("faults: {}\n", counts(&report.faults)));
    text.push_str(&format!(
        "joint consensus / conf changes applied: {}\n",
        counts(&report.transitions)
    ));
    text.push_str(&format!(
        "client requests: {} proposed, {} acknowledged\n",
        report.proposals, report.acked
    ));
    text.push_str(&format!(
        "liveness: {} case(s) ended without a converged leader (not a failure)\n",
        report.stuck
    ));
    text
}

fn parse_inject(name: Option<&str>) -> Result<Option<Inject>, String> {
    let Some(name) = name else { return Ok(None) };
    Inject::parse(name).map(Some).ok_or_else(|| {
        let known: Vec<&str> = Inject::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {name:?} (one of: {})", known.join(", "))
    })
}

fn read_reports(files: &[PathBuf]) -> Result<Vec<RunReport>, String> {
    files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a `sim --format json` report: {e}", file.display()))
        })
        .collect()
}

/// The report of the run the arguments ask for: cases run, or shard reports merged.
fn report(args: &Args) -> Result<RunReport, String> {
    if !args.merge.is_empty() {
        return merge(read_reports(&args.merge)?).map_err(|e| e.to_string());
    }
    let inject = parse_inject(args.inject.as_deref())?;
    let shard = match &args.shard {
        Some(text) => Shard::parse(text).map_err(|e| e.to_string())?,
        None => Shard::WHOLE,
    };
    let jobs = args
        .jobs
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    let summary = run_cases(shard.cases(args.cases), args.seed, inject, jobs, &|_| {});
    Ok(RunReport::new(
        &summary, args.seed, inject, args.cases, shard,
    ))
}

pub fn run(args: Args) -> i32 {
    if args.format == super::Format::Junit {
        eprintln!("raft-replay sim: --format is text or json");
        return EXIT_CANNOT_RUN;
    }
    let report = match report(&args) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("raft-replay sim: {message}");
            return EXIT_CANNOT_RUN;
        }
    };
    let failure_file = report.failure.as_ref().map(|failure| {
        let dir: PathBuf = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("sim-failures"));
        let inject = report.inject.as_deref().and_then(Inject::parse);
        let path = scenario_path(&dir, report.seed, failure.case, inject);
        let written =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &failure.script));
        (path, written)
    });
    if let Some((path, Err(e))) = &failure_file {
        eprintln!("raft-replay sim: cannot write {}: {e}", path.display());
    }
    if args.format == super::Format::Json {
        super::out(&format!(
            "{}\n",
            serde_json::to_string(&report).unwrap_or_default()
        ));
    } else {
        let written = failure_file
            .as_ref()
            .filter(|(_, w)| w.is_ok())
            .map(|(p, _)| p.as_path());
        super::out(&render_text(&report, written));
    }
    match report.failure {
        None => EXIT_OK,
        Some(_) => EXIT_FINDINGS,
    }
}

fn render_text(report: &RunReport, scenario: Option<&Path>) -> String {
    let mut text = summary_text(report);
    let Some(failure) = &report.failure else {
        text.push_str("OK: every case held\n");
        return text;
    };
    text.push_str(&format!(
        "FAILED at case {} ({} commands, shrunk to {}):\n",
        failure.case, failure.original_commands, failure.shrunk_commands
    ));
    for f in failure.shrunk_failures.iter().take(5) {
        text.push_str(&format!("  {}\n", f.replace('\n', " | ")));
    }
    if let Some(path) = scenario {
        text.push_str(&format!("shrunk scenario: {}\n", path.display()));
    }
    text
}
