//! `raft-replay gate PATH... --target VERSION [--baseline FILE] [--write-baseline FILE]
//! [--junit FILE] [--format text|json|junit] [--max-learners N] [--rehearse ETCD
//! [--rehearse-timeout SECONDS]]`: the upgrade gate (see `raft_replay::gate`). Exit: 0 the target
//! can take the data, invariants hold, HashKV agrees, the baseline (if given) is unchanged and
//! every rehearsed member served the replay's HashKV; 1 a blocking upgrade rule, an invariant
//! failure, a baseline change or a rehearsal that blocks; 2 cannot run (bad target, unreadable
//! input or baseline, a rehearsal that could not start the binary or was interrupted).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{out, Format, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::gate::rehearse::{rehearse_gate, RehearseOptions};
use raft_replay::gate::rules::Options;
use raft_replay::gate::version::{Version, NEWEST_KNOWN};
use raft_replay::gate::{baseline, report, run_gate};

pub struct GateArgs<'a> {
    pub paths: &'a [PathBuf],
    pub target: &'a str,
    pub baseline: Option<&'a Path>,
    pub write_baseline: Option<&'a Path>,
    pub junit: Option<&'a Path>,
    pub format: Format,
    pub max_learners: usize,
    /// `--rehearse ETCD` and `--rehearse-timeout SECONDS`.
    pub rehearse: Option<&'a Path>,
    pub rehearse_timeout: f64,
}

fn fail(message: String) -> i32 {
    eprintln!("raft-replay gate: {message}");
    EXIT_CANNOT_RUN
}

pub fn run(fs: &dyn ReadOnlyFs, args: GateArgs<'_>) -> i32 {
    let Some(target) = Version::parse(args.target) else {
        return fail(format!(
            "--target {:?} is not an etcd version (e.g. 3.5, 3.6.1)",
            args.target
        ));
    };
    if target.major != 3 || NEWEST_KNOWN.minor_lt(target) {
        return fail(format!(
            "--target {target}: the gate knows the rules of etcd 3.0 to {NEWEST_KNOWN}"
        ));
    }
    // The baseline is read with std::fs: it is the gate's own file, not etcd data.
    let was = match args.baseline {
        None => None,
        Some(file) => {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => return fail(format!("--baseline {}: {e}", file.display())),
            };
            match baseline::parse(&text) {
                Ok(b) => Some((file.display().to_string(), b)),
                Err(e) => return fail(format!("--baseline {}: {e}", file.display())),
            }
        }
    };
    let options = Options {
        max_learners: args.max_learners,
    };
    let mut report = match run_gate(
        fs,
        args.paths,
        target,
        options,
        was.as_ref().map(|(f, b)| (f.clone(), b)),
    ) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    if let Some(etcd) = args.rehearse {
        let mut options = RehearseOptions::new(etcd.to_path_buf());
        match Duration::try_from_secs_f64(args.rehearse_timeout) {
            Ok(t) if !t.is_zero() => options.boot_timeout = t,
            _ => {
                return fail(format!(
                    "--rehearse-timeout {}: not a positive number of seconds",
                    args.rehearse_timeout
                ))
            }
        }
        if let Err(e) = rehearse_gate(fs, &mut report, options) {
            return fail(format!("--rehearse: {e}"));
        }
    }
    if let Some(file) = args.write_baseline {
        if let Err(e) = std::fs::write(file, baseline::render(&report.lock)) {
            return fail(format!("--write-baseline {}: {e}", file.display()));
        }
        eprintln!("raft-replay gate: wrote the baseline to {}", file.display());
    }
    if let Some(file) = args.junit {
        if let Err(e) = std::fs::write(file, report::junit(&report)) {
            return fail(format!("--junit {}: {e}", file.display()));
        }
    }
    let rendered = match args.format {
        Format::Text => report::text(&report),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report::json_report(&report)).unwrap_or_default()
        ),
        Format::Junit => report::junit(&report),
    };
    out(&rendered);
    if report.passed() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }
}
