//! The `raft-replay db` report: what a db holds and what is wrong with it, rendered as text or
//! JSON. Damage never aborts the report; it becomes a finding and the fields that could not be
//! read are null.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::DbError;
use super::etcd::{
    hash_kv, read_etcd, AlarmRecord, AuthRecord, EtcdRead, LeaseRecord, MemberRecord,
    SchemaFinding, SnapshotStatus,
};
use super::reader::Db;
use crate::fsio::ReadOnlyFs;
use crate::mvcc::{EtcdVersion, RestoreSummary};

/// The db file for a user path: a data dir (`member/snap/db`), a `member/` dir (`snap/db`), a
/// `snap/` dir (`db`), or the file itself (a db or a `snapshot save` file).
pub fn open_db_path(fs: &dyn ReadOnlyFs, path: &Path) -> Result<PathBuf, DbError> {
    if !fs.is_dir(path) {
        return Ok(path.to_path_buf());
    }
    for candidate in ["member/snap/db", "snap/db", "db"] {
        let p = path.join(candidate);
        if fs.len(&p).is_ok() && !fs.is_dir(&p) {
            return Ok(p);
        }
    }
    Err(DbError::Io {
        path: path.display().to_string(),
        message: "no member/snap/db, snap/db or db under this directory".into(),
    })
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Damage: the db is not what bbolt/etcd committed (exit 1).
    Error,
    /// Worth knowing, not damage (an interrupted compaction, a lease missing at restore).
    Info,
}

/// One finding of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportFinding {
    /// Severity.
    pub level: Level,
    /// Human-readable text.
    pub message: String,
    /// The typed damage, when page-level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<DbError>,
    /// A schema problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaFinding>,
}

/// HashKV as `etcdctl endpoint hashkv` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HashReport {
    /// The hash.
    pub hash: u32,
    /// The revision hashed.
    pub hash_revision: i64,
}

/// The report of `raft-replay db`. Fields that could not be read are `None` (null in JSON).
#[derive(Clone, Debug, Serialize)]
pub struct DbReport {
    /// The db file read.
    pub path: String,
    /// File length.
    pub file_size: u64,
    /// Page size.
    pub page_size: Option<u32>,
    /// Transaction id of the meta in use.
    pub txid: Option<u64>,
    /// Meta page in use (0/1).
    pub meta_used: Option<u8>,
    /// The newest meta failed validation (its commit was lost).
    pub meta_newer_lost: bool,
    /// High-water mark (pages).
    pub high_water_mark: Option<u64>,
    /// Freelist page id; null when no freelist is persisted (etcd on Linux).
    pub freelist_page: Option<u64>,
    /// `etcdctl snapshot save` sha256 trailer present: whether it matched.
    pub snapshot_trailer: Option<bool>,
    /// Schema generation (`3.4`, `3.5`, `3.6`).
    pub schema: Option<&'static str>,
    /// `meta/consistent_index`.
    pub consistent_index: Option<u64>,
    /// `meta/term` (null before 3.5).
    pub term: Option<u64>,
    /// `meta/confState`.
    pub conf_state: Option<serde_json::Value>,
    /// `meta/storageVersion`.
    pub storage_version: Option<String>,
    /// `cluster/clusterVersion`.
    pub cluster_version: Option<String>,
    /// `cluster/downgrade`.
    pub downgrade: Option<serde_json::Value>,
    /// Current revision after etcd's restore.
    pub revision: Option<i64>,
    /// Compact revision after etcd's restore (-1: never compacted).
    pub compact_revision: Option<i64>,
    /// `meta/scheduledCompactRev` (main).
    pub scheduled_compact_revision: Option<i64>,
    /// `meta/finishedCompactRev` (main).
    pub finished_compact_revision: Option<i64>,
    /// etcd's HashKV at the asked revision (default current): the hash.
    pub hash: Option<u32>,
    /// The revision the hash covers.
    pub hash_revision: Option<i64>,
    /// Why HashKV could not be computed at the asked revision (compacted, future).
    pub hash_error: Option<String>,
    /// `etcdutl snapshot status`.
    pub snapshot_status: Option<SnapshotStatus>,
    /// Bytes in reachable pages (metas, freelist and every bucket's pages).
    pub size_in_use: Option<u64>,
    /// Free pages.
    pub free_pages: Option<u64>,
    /// Root bucket → key count.
    pub buckets: BTreeMap<String, u64>,
    /// `members`.
    pub members: Vec<MemberRecord>,
    /// `members_removed`.
    pub removed_members: Vec<String>,
    /// `lease`.
    pub leases: Vec<LeaseRecord>,
    /// `alarm`.
    pub alarms: Vec<AlarmRecord>,
    /// `auth*`.
    pub auth: AuthRecord,
    /// Keys in the restored index, and how many are alive.
    pub keys: Option<usize>,
    /// Keys alive at the current revision.
    pub live_keys: Option<usize>,
    /// What the restore saw.
    pub restore: Option<RestoreSummary>,
    /// Everything wrong or notable.
    pub findings: Vec<ReportFinding>,
}

impl DbReport {
    fn empty(path: &Path, file_size: u64) -> Self {
        DbReport {
            path: path.display().to_string(),
            file_size,
            page_size: None,
            txid: None,
            meta_used: None,
            meta_newer_lost: false,
            high_water_mark: None,
            freelist_page: None,
            snapshot_trailer: None,
            schema: None,
            consistent_index: None,
            term: None,
            conf_state: None,
            storage_version: None,
            cluster_version: None,
            downgrade: None,
            revision: None,
            compact_revision: None,
            scheduled_compact_revision: None,
            finished_compact_revision: None,
            hash: None,
            hash_revision: None,
            hash_error: None,
            snapshot_status: None,
            size_in_use: None,
            free_pages: None,
            buckets: BTreeMap::new(),
            members: Vec::new(),
            removed_members: Vec::new(),
            leases: Vec::new(),
            alarms: Vec::new(),
            auth: AuthRecord::default(),
            keys: None,
            live_keys: None,
            restore: None,
            findings: Vec::new(),
        }
    }

    fn damage(&mut self, e: DbError) {
        self.findings.push(ReportFinding {
            level: Level::Error,
            message: e.to_string(),
            damage: Some(e),
            schema: None,
        });
    }

    fn info(&mut self, message: String) {
        self.findings.push(ReportFinding {
            level: Level::Info,
            message,
            damage: None,
            schema: None,
        });
    }

    /// Reads the db at `path` (see [`open_db_path`]) and hashes at `revision` (0 = current).
    /// `Err` only when the file cannot be read at all (I/O) or this tool's temporary file fails
    /// it ([`DbError::Spill`]); damage is in the findings.
    pub fn build(
        fs: &dyn ReadOnlyFs,
        path: &Path,
        revision: i64,
        version: EtcdVersion,
    ) -> Result<DbReport, DbError> {
        Self::build_with_state(fs, path, revision, version).map(|(report, _)| report)
    }

    /// [`DbReport::build`], also returning the state the report was computed from (the restored
    /// index and the `key`-bucket digest; `None` when damage stopped the read). For a caller that
    /// wants it — or, like the CLI, which exits right after, wants to skip freeing it: a
    /// restored index is a few allocations per key, and freeing 800 k keys one by one takes a
    /// fifth of the whole read.
    pub fn build_with_state(
        fs: &dyn ReadOnlyFs,
        path: &Path,
        revision: i64,
        version: EtcdVersion,
    ) -> Result<(DbReport, Option<EtcdRead>), DbError> {
        let file = open_db_path(fs, path)?;
        let file_size = fs.len(&file).map_err(|e| DbError::Io {
            path: file.display().to_string(),
            message: e.to_string(),
        })?;
        let mut report = DbReport::empty(&file, file_size);
        let db = match Db::open(fs, &file) {
            Ok(db) => db,
            Err(e @ DbError::Io { .. }) => return Err(e),
            Err(e) => {
                report.damage(e);
                return Ok((report, None));
            }
        };
        report.page_size = Some(db.page_size);
        report.txid = Some(db.meta.txid);
        report.meta_used = Some(db.meta_used);
        report.meta_newer_lost = db.meta_newer_lost;
        report.high_water_mark = Some(db.meta.hwm);
        report.freelist_page =
            (db.meta.freelist != super::page::NO_FREELIST).then_some(db.meta.freelist);
        report.snapshot_trailer = db.snapshot_trailer;
        for f in db.findings.clone() {
            report.damage(f);
        }
        let mut read = match read_etcd(&db, version) {
            Ok(r) => r,
            Err(e @ DbError::Io { .. }) => return Err(e),
            Err(e) => {
                report.damage(e);
                return Ok((report, None));
            }
        };
        for f in std::mem::take(&mut read.page_findings) {
            report.damage(f);
        }
        let s = &read.schema;
        report.schema = Some(s.generation());
        report.consistent_index = s.consistent_index;
        report.term = s.term;
        report.conf_state = s.conf_state.clone();
        report.storage_version = s.storage_version.clone();
        report.cluster_version = s.cluster_version.clone();
        report.downgrade = s.downgrade.clone();
        report.scheduled_compact_revision = s.scheduled_compact_rev;
        report.finished_compact_revision = s.finished_compact_rev;
        report.snapshot_status = s.snapshot_status;
        report.size_in_use = Some(read.reachable_pages * u64::from(db.page_size));
        report.free_pages = Some(read.free_pages);
        report.buckets = s.buckets.clone();
        report.members = s.members.clone();
        report.removed_members = s.removed_members.clone();
        report.leases = s.leases.clone();
        report.alarms = s.alarms.clone();
        report.auth = s.auth.clone();
        for f in &s.findings {
            report.findings.push(ReportFinding {
                level: Level::Error,
                message: format!("{}/{}: {}", f.bucket, f.key, f.problem),
                damage: None,
                schema: Some(f.clone()),
            });
        }
        let store = &read.restored.store;
        report.revision = Some(store.current_revision());
        report.compact_revision = Some(store.compact_revision());
        report.keys = Some(store.indexed_key_count());
        report.live_keys = Some(store.live_key_count());
        let summary = read.restored.summary.clone();
        if let Some(rev) = summary.resumed_compaction {
            report.info(format!(
                "compaction at {rev} scheduled but not finished: etcd resumes it at boot (hashed as finished)"
            ));
        }
        if !summary.missing_leases.is_empty() {
            report.info(format!(
                "keys attached to leases missing from the lease bucket: {:?} (etcd only logs this)",
                summary.missing_leases
            ));
        }
        report.restore = Some(summary);
        match hash_kv(&read.restored, &read.key_digest, revision)? {
            Ok(h) => {
                report.hash = Some(h.hash);
                report.hash_revision = Some(h.hash_revision);
            }
            Err(e) => report.hash_error = Some(e.to_string()),
        }
        Ok((report, Some(read)))
    }

    /// Whether any finding is damage (exit status 1).
    pub fn has_damage(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = writeln!(t, "db {} ({} bytes)", self.path, self.file_size);
        let _ = writeln!(
            t,
            "bbolt: page size {}, txid {}, meta {} in use{}, high-water mark {}, freelist {}",
            opt(self.page_size.map(|v| v.to_string())),
            opt(self.txid.map(|v| v.to_string())),
            opt(self.meta_used.map(|v| v.to_string())),
            if self.meta_newer_lost {
                " (newer meta lost)"
            } else {
                ""
            },
            opt(self.high_water_mark.map(|v| v.to_string())),
            self.freelist_page
                .map_or("not persisted".to_string(), |p| format!("page {p}")),
        );
        if let Some(ok) = self.snapshot_trailer {
            let _ = writeln!(
                t,
                "snapshot save file: sha256 trailer {}",
                if ok { "ok" } else { "MISMATCH" }
            );
        }
        let _ = writeln!(
            t,
            "etcd {} schema: consistent index {}, term {}, cluster version {}, storage version {}",
            self.schema.unwrap_or("-"),
            opt(self.consistent_index.map(|v| v.to_string())),
            opt(self.term.map(|v| v.to_string())),
            opt(self.cluster_version.clone()),
            opt(self.storage_version.clone()),
        );
        if let Some(cs) = &self.conf_state {
            let _ = writeln!(t, "conf state: {cs}");
        }
        let _ = writeln!(
            t,
            "kv: revision {}, compact revision {}, keys {} ({} live)",
            opt(self.revision.map(|v| v.to_string())),
            opt(self.compact_revision.map(|v| v.to_string())),
            opt(self.keys.map(|v| v.to_string())),
            opt(self.live_keys.map(|v| v.to_string())),
        );
        match (self.hash, &self.hash_error) {
            (Some(h), _) => {
                let _ = writeln!(
                    t,
                    "hashkv: {h} at revision {}",
                    opt(self.hash_revision.map(|v| v.to_string()))
                );
            }
            (None, Some(e)) => {
                let _ = writeln!(t, "hashkv: {e}");
            }
            _ => {}
        }
        if let Some(s) = &self.snapshot_status {
            let _ = writeln!(
                t,
                "snapshot status: hash {:x}, revision {}, total keys {}, total size {}",
                s.hash, s.revision, s.total_keys, s.total_size
            );
        }
        if let (Some(u), Some(f)) = (self.size_in_use, self.free_pages) {
            let _ = writeln!(t, "size in use {u} bytes, {f} free pages");
        }
        let buckets: Vec<String> = self
            .buckets
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(t, "buckets: {}", buckets.join(" "));
        for m in &self.members {
            let _ = writeln!(t, "member {}: {}", m.id, m.record);
        }
        for m in &self.removed_members {
            let _ = writeln!(t, "removed member {m}");
        }
        for l in &self.leases {
            let _ = writeln!(t, "lease {:016x}: ttl {}, {} keys", l.id, l.ttl, l.keys);
        }
        for a in &self.alarms {
            let _ = writeln!(t, "alarm {} on member {:x}", a.alarm, a.member_id);
        }
        for f in &self.findings {
            let level = match f.level {
                Level::Error => "error",
                Level::Info => "info",
            };
            let _ = writeln!(t, "{level}: {}", f.message);
        }
        if self.findings.is_empty() {
            let _ = writeln!(t, "no findings");
        }
        t
    }
}
