//! `raft-replay verify`: findings for one or more members of one cluster — decode-level, each
//! member's Raft invariants, and (with several PATHs) the cross-member checks.
//!
//! Output: text (grouped by severity, most severe first, then by kind, each finding with its
//! location), JSON, or JUnit (one testcase per member × invariant). Exit: 0 nothing failed,
//! 1 a violation or corruption, 2 an input could not be read at all.

use std::path::PathBuf;

use super::{out, Format, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::verify::{verify_cluster, EntryReading, VerifyOptions};
use raft_replay::wal::DecoderMode;

pub fn run(
    fs: &dyn ReadOnlyFs,
    paths: &[PathBuf],
    format: Format,
    forensic: bool,
    jobs: usize,
) -> i32 {
    let options = VerifyOptions {
        mode: if forensic {
            DecoderMode::Forensic
        } else {
            DecoderMode::Strict
        },
        entries: EntryReading::Stream,
        jobs,
    };
    let report = match verify_cluster(fs, paths, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("raft-replay verify: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let rendered = match format {
        Format::Text => report.to_text(),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        ),
        Format::Junit => report.to_junit(),
    };
    out(&rendered);
    if report.holds() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }
}
