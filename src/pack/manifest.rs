//! `manifest.json` and `README.md` of a packed capture. Field names follow the bundled corpus'
//! manifests where they overlap (`members[].name/member_id/member_id_hex/data_dir/wal_summary`,
//! `checkpoints[].members[].raft_applied_index/revision/hash/compact_revision/hashkv_revision`),
//! so the corpus helpers read a packed capture as they read ours; unlike the corpus, every
//! number here is raft-replay's (its replay, its db reader), not etcd's own report.

use serde_json::{json, Value};

use super::copy::CopiedMember;
use super::redact::RedactStats;
use super::PackOptions;
use crate::backend::DbReport;
use crate::verify::{ClusterReport, MemberReport};

fn file_list(dir: &std::path::Path) -> Vec<Value> {
    let mut names: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|(name, size)| json!({"name": name, "size": size}))
        .collect()
}

fn wal_summary(copy: &CopiedMember, member: &MemberReport) -> Value {
    let contents = &member.read.contents;
    let hs = contents.hard_state;
    json!({
        "wal_files": file_list(&copy.dir.join("member/wal")),
        "snap_files": file_list(&copy.dir.join("member/snap")),
        "first_entry_index": contents.first_index(),
        "last_entry_index": contents.last_index(),
        "entry_count": contents.entry_count,
        "last_hardstate": {"term": hs.term, "vote": hs.vote, "commit": hs.commit},
    })
}

fn db_json(db: Option<&DbReport>) -> Value {
    match db {
        None => Value::Null,
        Some(db) => json!({
            "file_size": db.file_size,
            "schema": db.schema,
            "consistent_index": db.consistent_index,
            "term": db.term,
            "cluster_version": db.cluster_version,
            "revision": db.revision,
            "compact_revision": db.compact_revision,
            "hash": db.hash,
            "hash_revision": db.hash_revision,
            "damage": db.has_damage(),
        }),
    }
}

fn member_json(copy: &CopiedMember, member: &MemberReport, db: Option<&DbReport>) -> Value {
    let id = member.scan.node_id;
    let failures = member
        .findings
        .iter()
        .filter(|f| f.severity.is_failure())
        .count();
    json!({
        "name": copy.name,
        "member_id": id,
        "member_id_hex": id.map(|id| format!("{id:016x}")),
        "data_dir": copy.name,
        "wal_summary": wal_summary(copy, member),
        "verify": {
            "verdict": if failures == 0 { "ok" } else { "findings" },
            "findings": member.findings,
        },
        "hashkv": member.replay,
        "db": db_json(db),
        "copy": {
            "changed_during_copy": copy.changed,
            "purged_during_copy": copy.vanished,
            "last_segment_trimmed": copy.trimmed.as_ref().map(|(n, before, after)| json!({"name": n, "from": before, "to": after})),
        },
    })
}

/// The checkpoint the corpus tests compare HashKV at: each replayed member's applied state.
fn checkpoint(copies: &[CopiedMember], report: &ClusterReport) -> Value {
    let members: Vec<Value> = copies
        .iter()
        .zip(&report.members)
        .filter_map(|(copy, m)| {
            let state = m.replay.as_ref()?;
            Some(json!({
                "name": copy.name,
                "member_id": m.scan.node_id,
                "member_id_hex": m.scan.node_id.map(|id| format!("{id:016x}")),
                "raft_applied_index": state.applied_index,
                "revision": state.revision,
                "hash": state.hashkv,
                "compact_revision": state.compact_revision,
                "hashkv_revision": state.revision,
            }))
        })
        .collect();
    json!({"label": "packed", "members": members})
}

/// The etcd version the data records: the newest cluster version in a db (`MAJOR.MINOR.0`),
/// else the newest db schema generation.
fn etcd_version(dbs: &[Option<DbReport>]) -> Option<String> {
    let versions = dbs.iter().flatten();
    let cluster = versions
        .clone()
        .filter_map(|d| d.cluster_version.clone())
        .max();
    cluster.or_else(|| {
        versions
            .filter_map(|d| d.schema)
            .max()
            .map(|s| format!("{s}.0"))
    })
}

/// The manifest.
pub fn manifest(
    copies: &[CopiedMember],
    report: &ClusterReport,
    dbs: &[Option<DbReport>],
    options: &PackOptions,
    redaction: Option<&RedactStats>,
) -> Value {
    let failures = report.failures().count();
    json!({
        "etcd_version": etcd_version(dbs),
        "capture": options.capture_name,
        "packed_by": format!("raft-replay {} pack", env!("CARGO_PKG_VERSION")),
        "archive": "data.tar.gz",
        "archive_layout": "<member-name>/member/{wal,snap}/... (each member's data dir; the last WAL segment's preallocated zero tail cut)",
        "field_notes": {
            "etcd_version": "the cluster version recorded in the members' dbs (MAJOR.MINOR.0), not the binary's patch release",
            "checkpoints": "computed by raft-replay's replay of the packed files (verify/hashkv), not reported by a live etcd",
            "hash": "HashKV at the member's applied index, CRC-32C as unsigned 32-bit",
            "member_id": "u64 as JSON number (exceeds 2^53: parse as u64, or use member_id_hex)",
            "db": "raft-replay db: the member's backend as etcd restores it",
        },
        "redacted": redaction.is_some(),
        "redaction": redaction.map(|stats| json!({
            "keys": if options.redact_keys { "mapped (order- and length-preserving)" } else { "kept" },
            "stats": stats,
        })),
        "verify": {
            "verdict": if failures == 0 { "ok" } else { "findings" },
            "failure_count": failures,
            "finding_count": report.findings().count(),
            "common_index": report.common_index,
        },
        "members": copies.iter().zip(&report.members).zip(dbs)
            .map(|((c, m), db)| member_json(c, m, db.as_ref()))
            .collect::<Vec<_>>(),
        "checkpoints": [checkpoint(copies, report)],
    })
}

/// The capture's README.
pub fn readme(manifest: &Value) -> String {
    let mut out = String::new();
    let name = manifest["capture"].as_str().unwrap_or("capture");
    out.push_str(&format!("# {name}\n\n"));
    out.push_str(&format!(
        "Packed by `{}`{}.\n\n",
        manifest["packed_by"].as_str().unwrap_or("raft-replay pack"),
        if manifest["redacted"] == true {
            " with `--redact`: every value is replaced by pseudo-random bytes of the same length (keys, leases, revisions, membership kept)"
        } else {
            ""
        }
    ));
    out.push_str("Files: `data.tar.gz` (each member's data dir, `<name>/member/wal/*.wal`, `<name>/member/snap/*`), `manifest.json` (what `raft-replay verify`, `hashkv` and `db` report for each member).\n\n");
    out.push_str("Check it: `tar -xzf data.tar.gz -C DIR && raft-replay verify DIR/*`.\n\n");
    out.push_str("| member | id | entries | last HardState (term/commit) | applied | revision | HashKV | verify |\n|---|---|---|---|---|---|---|---|\n");
    for m in manifest["members"].as_array().into_iter().flatten() {
        let w = &m["wal_summary"];
        let h = &m["hashkv"];
        out.push_str(&format!(
            "| {} | {} | {}..{} | {}/{} | {} | {} | {} | {} |\n",
            m["name"].as_str().unwrap_or(""),
            m["member_id_hex"].as_str().unwrap_or("?"),
            w["first_entry_index"],
            w["last_entry_index"],
            w["last_hardstate"]["term"],
            w["last_hardstate"]["commit"],
            h["applied_index"],
            h["revision"],
            h["hashkv"],
            m["verify"]["verdict"].as_str().unwrap_or(""),
        ));
    }
    out
}
