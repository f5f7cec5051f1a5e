//! `raft-replay pack PATH... --out DIR [--redact [--redact-keys]] [--name NAME]`: the library's
//! `raft_replay::pack::pack`, its summary as JSON on stdout. Exit 0: packed and every invariant
//! holds; 1: packed, with findings (they are in the manifest); 2: nothing packed.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{out, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::pack::{pack, PackOptions};

pub fn run(
    fs: &dyn ReadOnlyFs,
    paths: &[PathBuf],
    dir: &Path,
    redact: bool,
    redact_keys: bool,
    name: Option<String>,
) -> i32 {
    let options = PackOptions {
        redact,
        redact_keys,
        capture_name: name.unwrap_or_default(),
    };
    let packed = match pack(fs, paths, dir, &options) {
        Ok(packed) => packed,
        Err(e) => {
            eprintln!("raft-replay pack: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    for finding in packed.report.failures() {
        eprintln!("{finding}");
    }
    let summary = json!({
        "out": packed.out.display().to_string(),
        "verdict": packed.manifest["verify"]["verdict"],
        "redacted": packed.redaction.is_some(),
        "redaction": packed.redaction,
        "members": packed.manifest["checkpoints"][0]["members"],
    });
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    ));
    if packed.report.holds() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }
}
