//! `raft-replay db PATH [--format text|json] [--rev R]`: the backend db report
//! (`raft_replay::backend::DbReport`). Exit 0 no damage, 1 damage found, 2 cannot run.

use std::path::Path;

use super::{Format, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::backend::DbReport;
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::mvcc::EtcdVersion;

pub fn run(
    fs: &dyn ReadOnlyFs,
    path: &Path,
    format: Format,
    rev: Option<i64>,
    etcd_version: Option<&str>,
) -> i32 {
    let version = match etcd_version {
        None => EtcdVersion::default(),
        Some(text) => match EtcdVersion::parse(text) {
            Some(v) => v,
            None => {
                eprintln!("raft-replay db: --etcd-version {text}: not a version like 3.4.23");
                return EXIT_CANNOT_RUN;
            }
        },
    };
    let report = match DbReport::build_with_state(fs, path, rev.unwrap_or(0), version) {
        Ok((report, state)) => {
            // The process exits next: leave the restored index to the exit instead of freeing it
            // key by key (a fifth of the run on a db of 800 k keys).
            std::mem::forget(state);
            report
        }
        Err(e) => {
            eprintln!("raft-replay db: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    match format {
        Format::Json => println!("{}", report.to_json()),
        Format::Text => print!("{}", report.to_text()),
        Format::Junit => {
            eprintln!("raft-replay db: --format junit is not supported; use text or json");
            return EXIT_CANNOT_RUN;
        }
    }
    if let Some(e) = &report.hash_error {
        eprintln!("raft-replay db: --rev: {e}");
        return EXIT_CANNOT_RUN;
    }
    if report.has_damage() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}
