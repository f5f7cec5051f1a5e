//! `raft-replay hashkv PATH [--index I] [--rev R]`: etcd's HashKV of the state after applying the
//! log through raft index I (default: everything committed), hashed at revision R (default:
//! current), printed as `{"hash":…,"revision":…,"compact_revision":…}`.

use std::io::IsTerminal;
use std::path::Path;

use serde_json::json;

use super::{out, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::check::scan::scan_member_after;
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::member::MemberFiles;
use raft_replay::replay::from_db::{late_start_reason, DbStartError};
use raft_replay::replay::kv::KvReplayError;
use raft_replay::replay::member_state::{replay_kv_any, replay_kv_held};
use raft_replay::replay::stream::read_for_streaming;
use raft_replay::wal::DecoderMode;

/// A progress bar on stderr for long replays; hidden when stderr is not a terminal.
pub fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() || total < 100_000 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replay {bar:40} {pos}/{len} entries ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

pub fn run(fs: &dyn ReadOnlyFs, path: &Path, index: Option<u64>, rev: Option<i64>) -> i32 {
    let files = match MemberFiles::open(fs, path) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("raft-replay hashkv: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    // A log read whole from the first segment is not held: it is streamed against the
    // invariant scan's digests (`replay::stream`), so memory does not grow with the log.
    let read = read_for_streaming(&files, DecoderMode::Strict);
    if !read.contents.errors.is_empty() {
        for error in &read.contents.errors {
            eprintln!("error: {error}");
        }
        eprintln!("raft-replay hashkv: the WAL is damaged; run `raft-replay verify` for details");
        return EXIT_FINDINGS;
    }
    let last_index = read.contents.last_index().unwrap_or(read.start.index);
    if let Some(i) = index {
        if i > last_index {
            eprintln!("raft-replay hashkv: --index {i} is beyond the last entry in the WAL ({last_index})");
            return EXIT_CANNOT_RUN;
        }
        if i > read.contents.hard_state.commit {
            eprintln!(
                "note: --index {i} is beyond the last persisted commit {} (commit-only HardStates are not fsynced); applying the entries up to {i} as logged",
                read.contents.hard_state.commit
            );
        }
    }
    let bar = progress_bar(index.unwrap_or(read.contents.hard_state.commit));
    let member = path.display().to_string();
    let mut progress = |i: u64| {
        if i % 4096 == 0 {
            bar.set_position(i);
        }
    };
    // A WAL that does not reach back to index 1 starts from the member's backend db at its
    // consistent index (`replay::from_db`).
    let replayed = if read.contents.kept_entries {
        replay_kv_held(&member, &files, &read, index, &mut progress)
    } else {
        let scan = scan_member_after(&member, &files, Some(&read));
        replay_kv_any(&member, &files, &read, &scan.log, index, &mut progress).0
    };
    let replay = match replayed {
        Ok(replay) => replay,
        Err(e) => {
            bar.finish_and_clear();
            eprintln!("raft-replay hashkv: {e}");
            // A db the log contradicts (ahead of it, older than the boot snapshot) or that
            // cannot be read is a finding about the data; anything else means no state to hash.
            return match e {
                KvReplayError::FromDb(
                    DbStartError::AheadOfLog { .. }
                    | DbStartError::OlderThanSnapshot { .. }
                    | DbStartError::Unreadable { .. },
                ) => EXIT_FINDINGS,
                _ => EXIT_CANNOT_RUN,
            };
        }
    };
    bar.finish_and_clear();
    if let Some(db) = &replay.from_db {
        eprintln!(
            "note: replayed from the db at consistent index {} ({}): {}",
            db.consistent_index,
            db.path.display(),
            late_start_reason(&read)
        );
    }
    eprintln!("note: {}", replay.start_release.describe());
    for finding in &replay.raft.findings {
        eprintln!("{finding}");
    }
    if !replay.raft.findings.is_empty() {
        return EXIT_FINDINGS;
    }
    for p in &replay.panicking_entries {
        eprintln!(
            "warning: etcd {} panics applying raft index {} ({}: {}); the model left the store as it was",
            p.release, p.index, p.kind, p.reason
        );
    }
    if let Some(first) = replay.store.stats().first_auth_enable_index {
        eprintln!("warning: auth was enabled at raft index {first}; etcd may have rejected writes this model applied");
    }
    match replay.store.hash_kv(rev.unwrap_or(0)) {
        Ok(h) => {
            let line = json!({
                "hash": h.hash,
                "revision": h.revision,
                "compact_revision": h.compact_revision,
                "hash_revision": h.hash_revision,
                "applied_index": replay.applied_index,
                "cluster_version": replay.store.cluster_version().map(|v| format!("{}.{}", v.major, v.minor)),
                "applied_as": replay.store.etcd_version().to_string(),
                "started_as": replay.start_release,
            });
            out(&format!("{line}\n"));
            EXIT_OK
        }
        Err(e) => {
            // etcd's own errors for a compacted or future revision.
            eprintln!("raft-replay hashkv: {e}");
            EXIT_CANNOT_RUN
        }
    }
}
