//! `raft-replay dump`: a member's log as ReadAll resolves it.

use std::path::Path;

use prost::Message;
use serde_json::{json, Value};

use super::{out, Format, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use raft_replay::check::scan::scan_member_after;
use raft_replay::fsio::ReadOnlyFs;
use raft_replay::member::{read_member, MemberFiles, MemberRead, ReadFrom};
use raft_replay::proto::etcdserverpb::Metadata;
use raft_replay::proto::payload::{decode_payload, payload_json, payload_text, Payload};
use raft_replay::proto::raftpb::Entry;
use raft_replay::replay::stream::{read_for_streaming, streamable, EntryStream, StreamError};
use raft_replay::wal::read_all::WalContents;
use raft_replay::wal::DecoderMode;

pub fn run(fs: &dyn ReadOnlyFs, path: &Path, format: Format, summary: bool, forensic: bool) -> i32 {
    let files = match MemberFiles::open(fs, path) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("raft-replay dump: {e}");
            return EXIT_CANNOT_RUN;
        }
    };
    let mode = if forensic {
        DecoderMode::Forensic
    } else {
        DecoderMode::Strict
    };
    // A log read whole from its first segment is read without keeping its entries: a summary
    // needs none, and a dump streams them (memory does not grow with the log).
    let read = read_for_streaming(&files, mode);
    let why = match read.start.reason {
        ReadFrom::GapFallback => Some("the WAL has a gap left by a leader snapshot"),
        ReadFrom::Purged => Some("the WAL's older segments were purged"),
        ReadFrom::Beginning | ReadFrom::Snapshot => None,
    };
    if let Some(why) = why {
        eprintln!(
            "note: {why}; reading from snapshot index {} term {}{}, as etcd does",
            read.start.index,
            read.start.term,
            read.start
                .snap_file
                .as_ref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
    }
    for warning in &read.contents.warnings {
        eprintln!("warning: {warning}");
    }
    for error in &read.contents.errors {
        eprintln!("error: {error}");
    }
    let written = match (summary, format) {
        (true, Format::Json) => Ok(out(&format!("{}\n", summary_json(&files, &read)))),
        (true, _) => Ok(out(&summary_text(&files, &read))),
        (false, _) => {
            let (scan, full);
            let (shown, mut entries) = if read.contents.kept_entries {
                (&read, Entries::Held(read.contents.entries.iter()))
            } else {
                scan = scan_member_after(&path.display().to_string(), &files, Some(&read));
                if streamable(&files, &read, &scan.log) {
                    let stream = EntryStream::over_member(&files, &scan.log);
                    (&read, Entries::Stream(stream))
                } else {
                    full = read_member(&files, mode);
                    (&full, Entries::Held(full.contents.entries.iter()))
                }
            };
            match format {
                Format::Json => dump_json(&mut entries),
                _ => dump_text(shown, &mut entries),
            }
        }
    };
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            eprintln!("raft-replay dump: the WAL changed while it was read ({e}); run it again");
            return EXIT_CANNOT_RUN;
        }
    };
    if !written {
        return EXIT_OK;
    }
    if read.contents.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }
}

/// One JSON object per entry: index, term, type, data length and CRC-32C, decoded request.
pub fn entry_json(entry: &Entry) -> Value {
    let data = entry.data_bytes();
    json!({
        "index": entry.index,
        "term": entry.term,
        "type": entry.type_name(),
        "data_len": data.len(),
        "data_crc32c": crc32c::crc32c(data),
        "request": payload_json(&decode_payload(entry)),
    })
}

/// The entries a dump prints, in index order: held by the read, or streamed from the WAL and
/// checked against the invariant scan's digests (`replay::stream`).
enum Entries<'a> {
    Held(std::slice::Iter<'a, Entry>),
    Stream(EntryStream<'a>),
}

impl Entries<'_> {
    /// Err: a streamed entry differs from what the scan read moments ago (the files changed).
    fn next(&mut self) -> Result<Option<Entry>, StreamError> {
        match self {
            Entries::Held(entries) => Ok(entries.next().cloned()),
            Entries::Stream(stream) => stream.next_entry(),
        }
    }
}

/// Ok(false): stdout was closed.
fn dump_json(entries: &mut Entries<'_>) -> Result<bool, StreamError> {
    let mut buf = String::with_capacity(64 * 1024);
    while let Some(entry) = entries.next()? {
        buf.push_str(&entry_json(&entry).to_string());
        buf.push('\n');
        if buf.len() > 60 * 1024 {
            if !out(&buf) {
                return Ok(false);
            }
            buf.clear();
        }
    }
    Ok(out(&buf))
}

fn metadata_of(read: &MemberRead) -> Option<Metadata> {
    read.contents
        .metadata
        .as_ref()
        .and_then(|m| Metadata::decode(m.clone()).ok())
}

/// Ok(false): stdout was closed.
fn dump_text(read: &MemberRead, entries: &mut Entries<'_>) -> Result<bool, StreamError> {
    let mut text = String::new();
    match &read.snapshot {
        Some(snap) => {
            let meta = &snap.snapshot.metadata;
            let voters: Vec<String> = meta
                .conf_state
                .voters
                .iter()
                .map(|v| format!("{v:x}"))
                .collect();
            text.push_str(&format!(
                "Snapshot:\nterm={} index={} nodes=[{}]\n",
                meta.term,
                meta.index,
                voters.join(" ")
            ));
        }
        None => text.push_str("Snapshot:\nempty\n"),
    }
    if read.start.index == 0 {
        text.push_str("Start dumping log entries from the beginning of the WAL.\n");
    } else {
        text.push_str(&format!(
            "Start dumping log entries from snapshot index {}.\n",
            read.start.index
        ));
    }
    let hs = read.contents.hard_state;
    let (node, cluster) = metadata_of(read)
        .map(|m| (m.node_id, m.cluster_id))
        .unwrap_or_default();
    text.push_str(&format!(
        "WAL metadata:\nnodeID={node:x} clusterID={cluster:x} term={} commitIndex={} vote={:x}\n",
        hs.term, hs.commit, hs.vote
    ));
    text.push_str(&format!("WAL entries: {}\n", read.contents.entry_count));
    if let Some(last) = read.contents.last_index() {
        text.push_str(&format!("lastIndex={last}\n"));
    }
    text.push_str(&format!("{:>4}\t{:>10}\ttype\tdata\n", "term", "index"));
    if !out(&text) {
        return Ok(false);
    }
    text.clear();
    while let Some(entry) = entries.next()? {
        let payload = decode_payload(&entry);
        let kind = match payload {
            Payload::ConfChange { .. } | Payload::ConfChangeV2(_) => "conf",
            _ => "norm",
        };
        text.push_str(&format!(
            "{:>4}\t{:>10}\t{kind}\t{}\n",
            entry.term,
            entry.index,
            payload_text(&payload)
        ));
        if text.len() > 60 * 1024 {
            if !out(&text) {
                return Ok(false);
            }
            text.clear();
        }
    }
    text.push_str(&format!("\nEntry count: {}\n", read.contents.entry_count));
    Ok(out(&text))
}

/// Counts by entry type, named as `Entry::type_name` names them (from the read's type runs:
/// a summary read holds no entries).
fn type_counts(contents: &WalContents) -> serde_json::Map<String, Value> {
    contents
        .entry_type_counts()
        .into_iter()
        .map(|(entry_type, count)| {
            let name = Entry {
                r#type: entry_type,
                ..Default::default()
            }
            .type_name();
            (name, json!(count))
        })
        .collect()
}

pub fn summary_json(files: &MemberFiles<'_>, read: &MemberRead) -> Value {
    let contents = &read.contents;
    let segments: Vec<Value> = files
        .segments
        .iter()
        .map(|s| {
            let size = files.fs.len(&files.paths.wal_dir.join(&s.file_name)).ok();
            json!({ "name": s.file_name, "seq": s.seq, "raft_index": s.raft_index, "size": size })
        })
        .collect();
    let metadata = metadata_of(read)
        .map(|m| json!({ "node_id": format!("{:x}", m.node_id), "cluster_id": format!("{:x}", m.cluster_id) }));
    let hs = contents.hard_state;
    json!({
        "path": files.paths.input.display().to_string(),
        "wal_dir": files.paths.wal_dir.display().to_string(),
        "segments": segments,
        "ignored_files": files.ignored_files,
        "metadata": metadata,
        "record_count": contents.record_count,
        "entry_count": contents.entry_count,
        "entry_types": type_counts(contents),
        "first_index": contents.first_index(),
        "last_index": contents.last_index(),
        "hard_state": { "term": hs.term, "vote": hs.vote, "commit": hs.commit },
        "snapshot": { "index": read.start.index, "term": read.start.term },
        "start_reason": read.start.reason,
        "snap_file": read.snapshot.as_ref().map(|s| s.file_name.clone()),
        "wal_snapshot_records": contents.snapshots.iter().map(|s| json!({
            "index": s.snapshot.index, "term": s.snapshot.term,
            "segment": s.location.segment, "offset": s.location.offset,
        })).collect::<Vec<_>>(),
        "overwritten_entries": contents.overwrites.len(),
        "errors": contents.errors,
        "warnings": contents.warnings,
    })
}

fn summary_text(files: &MemberFiles<'_>, read: &MemberRead) -> String {
    let v = summary_json(files, read);
    let mut text = format!("member: {}\n", files.paths.input.display());
    text.push_str(&format!("wal dir: {}\n", files.paths.wal_dir.display()));
    if let Some(segments) = v["segments"].as_array() {
        text.push_str(&format!("segments: {}\n", segments.len()));
        for s in segments {
            text.push_str(&format!(
                "  {} ({} bytes)\n",
                s["name"].as_str().unwrap_or("?"),
                s["size"]
            ));
        }
    }
    text.push_str(&format!(
        "read from: {} (index {}, term {})\n",
        read.start.reason, read.start.index, read.start.term
    ));
    text.push_str(&format!(
        "records: {}\nentries: {} ",
        v["record_count"], v["entry_count"]
    ));
    text.push_str(&format!("({})\n", v["entry_types"]));
    text.push_str(&format!(
        "index range: {} ..= {}\n",
        v["first_index"], v["last_index"]
    ));
    let hs = read.contents.hard_state;
    text.push_str(&format!(
        "last HardState: term={} vote={:x} commit={}\n",
        hs.term, hs.vote, hs.commit
    ));
    text.push_str(&format!(
        "WAL snapshot records: {}\n",
        read.contents.snapshots.len()
    ));
    text.push_str(&format!(
        "errors: {}, warnings: {}\n",
        read.contents.errors.len(),
        read.contents.warnings.len()
    ));
    text
}
