//! `gate --rehearse ETCD`: the upgrade rehearsed on the target binary itself. Each member's data
//! is copied into a temporary dir (the input is only read), booted alone with
//! `--force-new-cluster` on loopback ports, asked for its revision, HashKV and versions, and
//! stopped; its HashKV must equal the replay's at the same revision.
//!
//! Why a lone boot shows the member's own state: with an existing WAL etcd restarts the member
//! from its db and WAL (`server/etcdserver/server.go` `NewServer`, `case haveWAL`), and
//! `--force-new-cluster` (`raft.go` `restartAsStandaloneNode`) keeps every entry up to
//! max(HardState commit, consistent index), drops the rest and appends conf changes removing
//! the other members, which change no key: the KV state it serves is the member's committed log
//! applied, the state the replay computes. The member's id comes from the WAL metadata; the
//! `--name` given only becomes the attributes it publishes (`server.go` `attributes`), so the
//! report's label is passed.
//!
//! The process control is at the edge ([`process::ProcessRunner`], behind [`EtcdRunner`]);
//! what a boot means for the upgrade ([`judge`]) is pure.

pub mod http;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::facts::{KvState, MemberFacts};
use super::rules::Status;
use super::GateReport;
use crate::fsio::ReadOnlyFs;
use crate::member::resolve;

/// The etcd source the rehearsal's verdicts rest on.
pub const SOURCE: &str = "etcd server/etcdserver/raft.go restartAsStandaloneNode (--force-new-cluster); server.go NewServer (restart from the WAL and db), applyConfChange (membership: ID removed); v3rpc/maintenance.go HashKV";

/// How to rehearse.
#[derive(Clone, Debug)]
pub struct RehearseOptions {
    /// The target etcd binary.
    pub etcd: PathBuf,
    /// How long a boot may take until the member serves.
    pub boot_timeout: Duration,
    /// How long a stop may take after SIGTERM before the process group gets SIGKILL.
    pub stop_timeout: Duration,
}

impl RehearseOptions {
    pub fn new(etcd: PathBuf) -> RehearseOptions {
        RehearseOptions {
            etcd,
            boot_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// One member to boot: its files as the input names them.
#[derive(Clone, Debug)]
pub struct BootRequest {
    /// The member's label in the report (passed as `--name`).
    pub label: String,
    /// The input path (a data dir, its `member/` dir or a `wal/` dir).
    pub input: PathBuf,
    /// Where the WAL segments are.
    pub wal_dir: PathBuf,
    /// Where the `.snap` files and the db are, when there is such a dir.
    pub snap_dir: Option<PathBuf>,
    /// The revision to ask HashKV at (the replay's), 0 for etcd's current one.
    pub hash_revision: i64,
}

/// etcd's `HashKV` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EtcdHash {
    pub hash: u32,
    pub compact_revision: i64,
    /// The revision it was asked at (0: current).
    pub at_revision: i64,
}

/// What a member that served reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// `Status.header.revision`.
    pub revision: i64,
    /// `Status.raftAppliedIndex`.
    pub raft_applied_index: u64,
    /// `HashKV` at the request's revision, or etcd's error.
    #[serde(serialize_with = "hash_json")]
    pub hash: Result<EtcdHash, HashError>,
    /// `GET /version`: `etcdserver` and `etcdcluster`.
    pub server_version: String,
    pub cluster_version: String,
    /// From the spawn until `/health` said true.
    pub boot_millis: u64,
}

/// etcd's hash as an object, or `{"error": …}`.
fn hash_json<S: serde::Serializer>(
    hash: &Result<EtcdHash, HashError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match hash {
        Ok(h) => h.serialize(serializer),
        Err(e) => serde_json::json!({ "error": e.to_string() }).serialize(serializer),
    }
}

/// Why etcd gave no HashKV.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The target's JSON gateway does not offer HashKV (etcd 3.4).
    #[error("no HashKV over this etcd's JSON gateway: {0}")]
    NoGateway(String),
    /// etcd answered with an error (a compacted or future revision, …) or not at all.
    #[error("{0}")]
    Failed(String),
}

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootOutcome {
    /// It served; what it reported.
    Served(Observed),
    /// It exited, or logged a fatal or panic line, before it served.
    Refused { why: String, log: Vec<String> },
    /// It did not serve within the boot timeout.
    TimedOut { after: Duration, log: Vec<String> },
    /// It refused to re-add its own id: the member was removed from the cluster.
    Removed { log: Vec<String> },
}

/// Why a rehearsal could not run at all (no verdict: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error("cannot start {etcd}: {message}")]
    Spawn { etcd: PathBuf, message: String },
    #[error("cannot copy {what} into a temporary dir: {message}")]
    Copy { what: PathBuf, message: String },
    #[error("no free loopback port: {0}")]
    Ports(String),
    #[error("interrupted; every etcd started was stopped")]
    Interrupted,
}

/// Boots one member's copy and reports what it saw; every process it starts is stopped before
/// it returns.
pub trait EtcdRunner {
    fn boot(&self, request: &BootRequest) -> Result<BootOutcome, RehearseError>;
}

/// One member's rehearsal, judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rehearsal {
    pub member: String,
    pub status: Status,
    pub message: String,
    /// etcd's log lines that say why, or notes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// `gate --rehearse`: every member of `report` booted on `options.etcd`, one at a time, the
/// verdicts added to the report.
pub fn rehearse_gate(
    fs: &dyn ReadOnlyFs,
    report: &mut GateReport,
    options: RehearseOptions,
) -> Result<(), RehearseError> {
    if !options.etcd.is_file() {
        return Err(RehearseError::Spawn {
            etcd: options.etcd,
            message: "no such file".into(),
        });
    }
    let runner = process::ProcessRunner { options };
    let _signals = process::SignalGuard::install();
    report.rehearsals = Some(rehearse(fs, &runner, &report.members)?);
    Ok(())
}

/// The rehearsal of every member, one boot at a time.
pub fn rehearse(
    fs: &dyn ReadOnlyFs,
    runner: &dyn EtcdRunner,
    members: &[MemberFacts],
) -> Result<Vec<Rehearsal>, RehearseError> {
    let mut out = Vec::with_capacity(members.len());
    for member in members {
        let paths = resolve(fs, &member.path).map_err(|e| RehearseError::Copy {
            what: member.path.clone(),
            message: e.to_string(),
        })?;
        let request = BootRequest {
            label: member.label.clone(),
            input: member.path.clone(),
            wal_dir: paths.wal_dir,
            snap_dir: paths.snap_dir,
            hash_revision: member.kv.as_ref().map_or(0, |k| k.revision),
        };
        let outcome = runner.boot(&request)?;
        out.push(judge(&Expected::of(member), outcome));
    }
    Ok(out)
}

/// What the replay says a member's boot should show.
#[derive(Clone, Debug)]
pub struct Expected {
    pub label: String,
    /// The replay's KV state, or why there is none.
    pub kv: Result<KvState, String>,
    /// The raft index of a committed removal of the member itself.
    pub self_removed_at: Option<u64>,
}

impl Expected {
    pub fn of(member: &MemberFacts) -> Expected {
        Expected {
            label: member.label.clone(),
            kv: member.kv.clone(),
            self_removed_at: member.conf_changes.self_removed_at,
        }
    }
}

/// What a boot means for the upgrade: blocked when etcd refused, timed out, or serves another
/// state than the replay's; pass when it serves the replay's HashKV.
pub fn judge(member: &Expected, outcome: BootOutcome) -> Rehearsal {
    let rehearsal = |status, message: String, details: Vec<String>, observed| Rehearsal {
        member: member.label.clone(),
        status,
        message,
        details,
        observed,
    };
    match outcome {
        BootOutcome::Served(observed) => judge_served(member, observed),
        BootOutcome::Refused { why, log } => rehearsal(Status::Blocked, why, log, None),
        BootOutcome::TimedOut { after, log } => rehearsal(
            Status::Blocked,
            format!(
                "did not serve within {:.1} s (GET /health never said true)",
                after.as_secs_f64()
            ),
            log,
            None,
        ),
        BootOutcome::Removed { log } => match member.self_removed_at {
            Some(index) => rehearsal(
                Status::Info,
                format!("removed from the cluster at raft index {index} (its own log): etcd refuses to re-add a removed id, so this copy cannot serve; it is not part of the upgrade"),
                log,
                None,
            ),
            None => rehearsal(
                Status::Blocked,
                "etcd treats this member as removed from the cluster, which its log does not record".into(),
                log,
                None,
            ),
        },
    }
}

fn judge_served(member: &Expected, observed: Observed) -> Rehearsal {
    let versions = format!(
        "etcd {} (cluster version {}), booted in {:.1} s",
        observed.server_version,
        observed.cluster_version,
        observed.boot_millis as f64 / 1000.0
    );
    let (status, message, details) = match (&member.kv, &observed.hash) {
        (Err(why), _) => (
            Status::Warning,
            format!(
                "{versions}; serves revision {}; no replayed HashKV to compare ({why})",
                observed.revision
            ),
            vec![],
        ),
        (Ok(kv), _) if observed.revision < kv.revision => (
            Status::Blocked,
            format!(
                "{versions}; serves revision {}, below the replay's {} at applied index {}",
                observed.revision, kv.revision, kv.applied_index
            ),
            vec![],
        ),
        (Ok(_), Err(HashError::NoGateway(e))) => (
            Status::Warning,
            format!(
                "{versions}; serves revision {}; HashKV not compared ({e})",
                observed.revision
            ),
            vec![],
        ),
        (Ok(kv), Err(e)) => (
            Status::Blocked,
            format!("{versions}; HashKV at revision {} failed: {e}", kv.revision),
            vec![],
        ),
        (Ok(kv), Ok(h)) if (h.hash, h.compact_revision) != (kv.hash, kv.compact_revision) => (
            Status::Blocked,
            format!(
                "{versions}; HashKV at revision {} is {:#010x} (compact revision {}), the replay's {:#010x} (compact revision {})",
                kv.revision, h.hash, h.compact_revision, kv.hash, kv.compact_revision
            ),
            vec![],
        ),
        (Ok(kv), Ok(h)) => {
            let mut details = vec![];
            if observed.revision > kv.revision {
                details.push(format!(
                    "etcd moved on to revision {} after the boot; compared at the replay's revision {}",
                    observed.revision, kv.revision
                ));
            }
            (
                Status::Pass,
                format!(
                    "{versions}; revision {}, HashKV {:#010x} (compact revision {}) equals the replay's at applied index {}",
                    kv.revision, h.hash, h.compact_revision, kv.applied_index
                ),
                details,
            )
        }
    };
    Rehearsal {
        member: member.label.clone(),
        status,
        message,
        details,
        observed: Some(observed),
    }
}

/// What a line of etcd's log (zap JSON, or Go's plain `panic:` output) says about the boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// `"level":"fatal"`, `"level":"panic"` / `"dpanic"`, or a Go runtime `panic:` / `fatal
    /// error:`: the process is going down.
    Fatal,
    /// `membership: ID removed` (`membership.ErrIDRemoved`): the conf change re-adding this
    /// member was refused.
    IdRemoved,
    /// An error-level line (shown when nothing fatal explains a failure).
    Error,
    Other,
}

/// Classifies one log line.
pub fn classify(line: &str) -> LineKind {
    let level = |l: &str| line.contains(&format!("\"level\":\"{l}\""));
    let go_runtime = line.starts_with("panic:") || line.starts_with("fatal error:");
    if level("fatal") || level("panic") || level("dpanic") || go_runtime {
        LineKind::Fatal
    } else if line.contains("membership: ID removed") {
        LineKind::IdRemoved
    } else if level("error") {
        LineKind::Error
    } else {
        LineKind::Other
    }
}

/// A zap JSON line without its timestamp and Go stack trace (the `caller` names the source
/// line); any other line as it is.
pub fn compact(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("ts");
            fields.remove("stacktrace");
            serde_json::Value::Object(fields).to_string()
        }
        _ => line.to_string(),
    }
}

/// The lines that say why a boot failed: the fatal ones (and any removal) among `notable`, else
/// its last error lines, else the last lines of the log (`tail`); at most `keep`, each cut to 600
/// characters.
pub fn reasons(notable: &[String], tail: &[String], keep: usize) -> Vec<String> {
    let last = |lines: Vec<&String>| -> Vec<String> {
        let skip = lines.len().saturating_sub(keep);
        lines
            .into_iter()
            .skip(skip)
            .map(|l| compact(l).chars().take(600).collect())
            .collect()
    };
    let of = |f: &dyn Fn(LineKind) -> bool| notable.iter().filter(|l| f(classify(l))).collect();
    let fatal = last(of(&|k| matches!(k, LineKind::Fatal | LineKind::IdRemoved)));
    if !fatal.is_empty() {
        return fatal;
    }
    let errors = last(of(&|k| k == LineKind::Error));
    if !errors.is_empty() {
        return errors;
    }
    last(tail.iter().collect())
}

#[cfg(test)]
mod tests;
