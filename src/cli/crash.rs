//! `raft-replay crash PATH...`: enumerate the on-disk states a crash or a storage fault could
//! leave, recover each with etcd's semantics, restart raft-rs, replay, check, classify.
//! Output: a fault-class × outcome table (text) or JSON (`crash_points` per class); every
//! violation with the command that reproduces it. Exit: 0 no violation, 1 violations, an input
//! etcd refuses to boot as captured, or an invariant `verify` finds broken in the input as
//! captured (with `--strict`, undetected losses too), 2 cannot run.

use std::path::PathBuf;

use super::{out, Format, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::check::Finding;
use raft_replay::crash::report::{json_report, text, Verdict};
use raft_replay::crash::{
    enumerate_cluster, enumerate_member, FaultClass, MemberRun, OnlyState, Options,
};
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::verify::{verify_cluster, VerifyOptions};

pub struct Args {
    pub classes: String,
    pub only: Option<String>,
    pub exhaustive: bool,
    pub flip_unprotected: bool,
    pub cross_checks: usize,
    pub kv: bool,
    pub max_crashed: Option<usize>,
    pub strict: bool,
}

pub fn run(fs: &dyn ReadOnlyFs, paths: &[PathBuf], format: Format, args: Args) -> i32 {
    let mut classes = Vec::new();
    for c in args.classes.chars().filter(|c| !matches!(c, ',' | ' ')) {
        match FaultClass::from_letter(c) {
            Some(class) if !classes.contains(&class) => classes.push(class),
            Some(_) => {}
            None => {
                eprintln!(
                    "raft-replay crash: --classes {}: unknown class '{c}' (a–i)",
                    args.classes
                );
                return EXIT_CANNOT_RUN;
            }
        }
    }
    classes.sort();
    // `--only` is parsed once; its class is the only one run.
    let only = match &args.only {
        Some(text) => match OnlyState::parse(text, paths.len()) {
            Ok(only) => Some(only),
            Err(e) => {
                eprintln!("raft-replay crash: --only {text}: {e}");
                return EXIT_CANNOT_RUN;
            }
        },
        None => None,
    };
    if let Some(OnlyState::Member(class, _)) = &only {
        classes = vec![*class];
    }
    let opts = Options {
        classes,
        cross_checks: args.cross_checks,
        kv: args.kv,
        exhaustive: args.exhaustive,
        flip_unprotected: args.flip_unprotected,
        max_crashed: args.max_crashed,
        only,
        ..Options::default()
    };
    if format == Format::Junit {
        eprintln!("raft-replay crash: --format junit is not supported (text or json)");
        return EXIT_CANNOT_RUN;
    }
    // The inputs as captured, through the one verify pipeline: the crash states are judged
    // against data whose own invariants hold.
    let captured: Vec<Finding> = match verify_cluster(fs, paths, &VerifyOptions::default()) {
        Ok(report) => report.failures().cloned().collect(),
        Err(e) => {
            eprintln!("raft-replay crash: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let single;
    let cluster;
    let members: Vec<&MemberRun> = if paths.len() == 1 {
        match enumerate_member(fs, &paths[0], &opts) {
            Ok(run) => {
                single = run;
                cluster = None;
                vec![&single]
            }
            Err(e) => {
                eprintln!("raft-replay crash: {}: {e}", paths[0].display());
                return EXIT_CANNOT_RUN;
            }
        }
    } else {
        match enumerate_cluster(fs, paths, &opts) {
            Ok(run) => {
                cluster = Some(run);
                cluster
                    .as_ref()
                    .map(|c| c.members.iter().collect())
                    .unwrap_or_default()
            }
            Err(e) => {
                eprintln!("raft-replay crash: {e}");
                return EXIT_CANNOT_RUN;
            }
        }
    };
    let rendered = match format {
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json_report(
                &members,
                cluster.as_ref(),
                &captured,
                &opts,
                args.strict
            ))
            .unwrap_or_default()
        ),
        _ => text(&members, cluster.as_ref(), &captured, &opts, args.strict),
    };
    out(&rendered);
    if Verdict::of(&members, cluster.as_ref(), &captured, args.strict).failed() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}
