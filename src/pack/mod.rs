//! `raft-replay pack`: one cluster's members copied into a capture directory in the corpus
//! layout (`data.tar.gz`, `manifest.json`, `README.md`), optionally with every value redacted.
//!
//! The inputs are only read (through [`ReadOnlyFs`]); the copies are made in a private temporary
//! directory, checked there by the one verify pipeline ([`verify_named`]: the same readers
//! `verify` uses), redacted there, checked again, and only then archived into `DIR`.
//! A redacted capture must verify exactly as the copy it came from (same findings by member,
//! kind, severity, segment and raft index; same entry counts, index ranges and HardStates):
//! otherwise nothing is written and the difference is the error.

pub mod archive;
pub mod copy;
pub mod manifest;
pub mod redact;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::backend::DbReport;
use crate::backend::{etcd::generation_of, Db};
use crate::fsio::{ReadOnlyFs, RealFs};
use crate::member::OpenError;
use crate::mvcc::EtcdVersion;
use crate::verify::{verify_named, ClusterReport, VerifyError, VerifyOptions};
use copy::CopiedMember;
use redact::{RedactError, RedactStats, Redactor};

/// What to pack and how.
#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// Replace every value (see [`redact`]).
    pub redact: bool,
    /// With `redact`: map every key too, preserving order and length ([`redact::keys`]).
    pub redact_keys: bool,
    /// The capture's name in the manifest (default: `DIR`'s file name).
    pub capture_name: String,
}

/// Why nothing was packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// `DIR` exists and is not an empty directory, or lies inside an input.
    #[error("--out {path}: {reason}")]
    OutDir {
        /// `DIR`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two inputs would be archived under the same member name.
    #[error("two inputs are both named {0:?} (the member's directory name): pack each cluster's members from distinct data dirs")]
    DuplicateName(String),
    /// An input is not a member's data.
    #[error("{0}")]
    Input(OpenError),
    /// Reading or writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        message: String,
    },
    /// The copy could not be verified at all.
    #[error("the copy cannot be read: {0}")]
    Verify(#[from] VerifyError),
    /// A file changed while it was copied and the copy does not read back as etcd would read
    /// it (pack again, or stop the member first).
    #[error("member {member}: changed while it was copied: {detail}")]
    ChangedDuringCopy {
        /// The member.
        member: String,
        /// Which file and what the reader found.
        detail: String,
    },
    /// A member's copy could not be redacted.
    #[error("member {member}: cannot redact: {source}")]
    Redact {
        /// The member.
        member: String,
        /// Why.
        source: RedactError,
    },
    /// The redacted copy does not verify as the original does.
    #[error("the redacted copy does not verify like the original ({} difference(s)):\n{}", .0.len(), .0.join("\n"))]
    RedactionChangedVerdict(Vec<String>),
}

/// What was packed.
pub struct PackReport {
    /// The capture directory written.
    pub out: PathBuf,
    /// The manifest written to `manifest.json`.
    pub manifest: serde_json::Value,
    /// The verification of the packed (redacted, if asked) copy.
    pub report: ClusterReport,
    /// What redaction replaced.
    pub redaction: Option<RedactStats>,
}

fn io_err(path: &Path, e: std::io::Error) -> PackError {
    PackError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Packs the members at `inputs` (one cluster) into the capture directory `out`.
pub fn pack(
    fs: &dyn ReadOnlyFs,
    inputs: &[PathBuf],
    out: &Path,
    options: &PackOptions,
) -> Result<PackReport, PackError> {
    check_out(out, inputs)?;
    let names = member_names(inputs)?;
    let staging = tempfile::Builder::new()
        .prefix("raft-replay-pack-")
        .tempdir()
        .map_err(|e| io_err(&std::env::temp_dir(), e))?;
    let root = staging.path().join("data");
    let mut copies = Vec::new();
    for (name, input) in names.iter().zip(inputs) {
        copies.push(copy::copy_member(fs, name, input, &root.join(name))?);
    }
    let original = verify_copies(&copies)?;
    check_copy(&copies, &original)?;
    let (report, redaction) = if options.redact {
        let stats = redact_copies(&copies, staging.path(), options.redact_keys)?;
        let redacted = verify_copies(&copies)?;
        let differences = compare_verdicts(&original, &redacted);
        if !differences.is_empty() {
            return Err(PackError::RedactionChangedVerdict(differences));
        }
        (redacted, Some(stats))
    } else {
        (original, None)
    };
    let dbs: Vec<Option<DbReport>> = copies.iter().map(db_report).collect();
    let mut options = options.clone();
    if options.capture_name.is_empty() {
        options.capture_name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "capture".into());
    }
    let manifest = manifest::manifest(&copies, &report, &dbs, &options, redaction.as_ref());
    let manifest = archive_relative(manifest, &root);
    write_capture(&root, out, &manifest)?;
    Ok(PackReport {
        out: out.to_path_buf(),
        manifest,
        report,
        redaction,
    })
}

/// The manifest with the staging directory's paths (the replay's db path, messages naming a
/// file) made relative to the archive's root, `<name>/member/...`.
fn archive_relative(manifest: serde_json::Value, root: &Path) -> serde_json::Value {
    let text = manifest.to_string();
    let prefix = serde_json::Value::String(format!("{}/", root.display())).to_string();
    let prefix = prefix.trim_matches('"');
    serde_json::from_str(&text.replace(prefix, "")).unwrap_or(manifest)
}

/// `DIR` must not exist or be an empty directory, and must not lie inside an input.
fn check_out(out: &Path, inputs: &[PathBuf]) -> Result<(), PackError> {
    let bad = |reason: String| PackError::OutDir {
        path: out.to_path_buf(),
        reason,
    };
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).map_err(|e| bad(format!("not a readable directory ({e})")))?;
        if entries.next().is_some() {
            return Err(bad("exists and is not empty".into()));
        }
    }
    // The nearest existing ancestor, resolved, against every input resolved.
    let mut probe = out.to_path_buf();
    let resolved = loop {
        if let Ok(p) = probe.canonicalize() {
            break p;
        }
        if !probe.pop() {
            break std::env::current_dir().unwrap_or_default();
        }
    };
    for input in inputs {
        if let Ok(input) = input.canonicalize() {
            if resolved.starts_with(&input) {
                return Err(bad(format!(
                    "lies inside the input {}: inputs are never written",
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

/// A member's name: its data dir's name (`PATH`, `PATH/..` for a `member/` dir, `PATH/../..`
/// for a `wal/` dir).
fn member_names(inputs: &[PathBuf]) -> Result<Vec<String>, PackError> {
    let mut seen = BTreeSet::new();
    let mut names = Vec::new();
    for input in inputs {
        let path = input.canonicalize().unwrap_or_else(|_| input.clone());
        let mut dir = path.as_path();
        if dir.file_name().is_some_and(|n| n == "wal") {
            dir = dir.parent().unwrap_or(dir);
        }
        if dir.file_name().is_some_and(|n| n == "member") {
            dir = dir.parent().unwrap_or(dir);
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "member".into());
        if !seen.insert(name.clone()) {
            return Err(PackError::DuplicateName(name));
        }
        names.push(name);
    }
    Ok(names)
}

fn verify_copies(copies: &[CopiedMember]) -> Result<ClusterReport, PackError> {
    let named: Vec<(String, PathBuf)> = copies
        .iter()
        .map(|c| (c.name.clone(), c.dir.clone()))
        .collect();
    Ok(verify_named(&RealFs, &named, &VerifyOptions::default())?)
}

/// A failure the reader reports in a file that changed while it was copied is the copy's doing,
/// not the data's: refused. (A torn last record is a warning, not a failure: etcd repairs it.)
fn check_copy(copies: &[CopiedMember], report: &ClusterReport) -> Result<(), PackError> {
    for (copy, member) in copies.iter().zip(&report.members) {
        for finding in member.findings.iter().filter(|f| f.severity.is_failure()) {
            let in_changed = finding.location.segment.as_ref().is_some_and(|s| {
                copy.changed
                    .iter()
                    .any(|c| c.rsplit('/').next() == Some(s.as_str()))
            });
            if in_changed {
                return Err(PackError::ChangedDuringCopy {
                    member: copy.name.clone(),
                    detail: finding.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Redacts every copy with one key: WAL (re-encoded into a fresh directory that replaces the
/// copy's), `.snap` files, db. With `redact_keys`, a first walk over every copy collects the
/// keys (writing nothing).
fn redact_copies(
    copies: &[CopiedMember],
    scratch: &Path,
    redact_keys: bool,
) -> Result<RedactStats, PackError> {
    let mut redactor =
        Redactor::new(redact_keys).map_err(|e| io_err(Path::new("/dev/urandom"), e))?;
    if redact_keys {
        redact_each(copies, scratch, &mut redactor)?;
        redactor.seal_keys();
    }
    redact_each(copies, scratch, &mut redactor)?;
    Ok(redactor.stats)
}

fn redact_each(
    copies: &[CopiedMember],
    scratch: &Path,
    redactor: &mut Redactor,
) -> Result<(), PackError> {
    let collecting = redactor.collecting();
    for copy in copies {
        let fail = |source| PackError::Redact {
            member: copy.name.clone(),
            source,
        };
        let wal = copy.dir.join("member/wal");
        let fresh = scratch.join("redacted-wal");
        redact::wal::redact_wal(&copy.dir, &fresh, redactor).map_err(fail)?;
        if !collecting {
            std::fs::remove_dir_all(&wal).map_err(|e| io_err(&wal, e))?;
            std::fs::rename(&fresh, &wal).map_err(|e| io_err(&wal, e))?;
        }
        let snap = copy.dir.join("member/snap");
        for entry in std::fs::read_dir(&snap).map_err(|e| io_err(&snap, e))? {
            let path = entry.map_err(|e| io_err(&snap, e))?.path();
            if path.extension().is_some_and(|e| e == "snap") {
                let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
                if let Some(new) = redact::snap::redact_snap(&bytes, redactor).map_err(fail)? {
                    std::fs::write(&path, new).map_err(|e| io_err(&path, e))?;
                }
            }
        }
        let db = snap.join("db");
        if db.is_file() {
            redact::db::redact_db(&db, redactor).map_err(fail)?;
        }
    }
    Ok(())
}

/// The differences between two verifications of the same members, in words: findings by
/// (member, kind, severity, segment, raft index) — byte offsets and messages may differ, since
/// a re-encoded record's CRC varint can change its length — and each member's entry count,
/// index range and HardState.
pub fn compare_verdicts(a: &ClusterReport, b: &ClusterReport) -> Vec<String> {
    let mut out = Vec::new();
    for (ma, mb) in a.members.iter().zip(&b.members) {
        let shape = |m: &crate::verify::MemberReport| {
            let c = &m.read.contents;
            (
                c.entry_count,
                c.first_index(),
                c.last_index(),
                (c.hard_state.term, c.hard_state.vote, c.hard_state.commit),
                m.read.start.index,
            )
        };
        if shape(ma) != shape(mb) {
            out.push(format!(
                "{}: log {:?} became {:?}",
                ma.name,
                shape(ma),
                shape(mb)
            ));
        }
        let key = |m: &crate::verify::MemberReport| {
            m.findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {} {:?} segment {:?} index {:?}",
                        f.member, f.kind, f.severity, f.location.segment, f.location.raft_index
                    )
                })
                .collect::<BTreeSet<_>>()
        };
        let (ka, kb) = (key(ma), key(mb));
        out.extend(ka.difference(&kb).map(|f| format!("lost: {f}")));
        out.extend(kb.difference(&ka).map(|f| format!("new: {f}")));
    }
    out
}

/// `raft-replay db` on a copy's backend, with the rules of the generation that wrote it.
fn db_report(copy: &CopiedMember) -> Option<DbReport> {
    let path = copy.dir.join("member/snap/db");
    if !path.is_file() {
        return None;
    }
    let fs = RealFs;
    let version = Db::open(&fs, &path)
        .ok()
        .and_then(|db| generation_of(&db).ok())
        .map(EtcdVersion::for_generation)
        .unwrap_or_default();
    DbReport::build(&fs, &path, 0, version).ok()
}

/// `DIR/{data.tar.gz, manifest.json, README.md}`; on failure nothing is left in `DIR`.
fn write_capture(root: &Path, out: &Path, manifest: &serde_json::Value) -> Result<(), PackError> {
    let existed = out.exists();
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let result = (|| {
        archive::write_archive(root, &out.join("data.tar.gz"))?;
        let text = serde_json::to_string_pretty(manifest).unwrap_or_default() + "\n";
        let path = out.join("manifest.json");
        std::fs::write(&path, text).map_err(|e| io_err(&path, e))?;
        let path = out.join("README.md");
        std::fs::write(&path, manifest::readme(manifest)).map_err(|e| io_err(&path, e))
    })();
    if result.is_err() {
        for name in ["data.tar.gz", "manifest.json", "README.md"] {
            let _ = std::fs::remove_file(out.join(name));
        }
        if !existed {
            let _ = std::fs::remove_dir(out);
        }
    }
    result
}
