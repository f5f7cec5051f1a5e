//! The start from the backend db: the KV model restored from `member/snap/db` at its consistent
//! index (CI) exactly as etcd's boot restores it, with the rules of the generation that wrote
//! the db ([`load_member_db_as_written`]), then the WAL entries above CI applied through raft-rs
//! with etcd's rules (etcd 3.4 `etcdserver/server.go: NewServer`, `applyEntryNormal`; 3.5.30
//! `server/etcdserver/server.go: apply`, `applyEntryNormal`, where CI moves with every applied
//! entry, so nothing above it is in the db):
//!
//! * entries ≤ CI are not re-applied to the KV store (`shouldApplyV3`: `e.Index > consistIndex`);
//!   raft-rs still hands them out and conf changes among them are applied to its configuration
//!   regardless of CI (etcd applies conf changes to raft and the v2 membership unconditionally);
//! * in 3.4 CI moves only with KV/auth writes and local snapshots, so entries above CI may
//!   already have their effect in the db (a lease grant, a compaction, a keyless revoke):
//!   re-applied, they get etcd's outcomes (`lease already exists`, `compacted`, `lease not
//!   found`) and change nothing — the model's applier gives exactly those;
//! * a commit-only HardState is not fsynced, so CI may exceed the persisted commit while CI ≤
//!   the last WAL index; raft-rs refuses `applied` beyond the commit, so the commit handed to it
//!   is raised to max(commit, CI), as etcd main does for `--force-new-cluster` (etcd-io/raft#300).
//!
//! A member needs this start when its WAL does not reach back to index 1 (a learner that joined
//! through a leader snapshot, purged segments), or when it was restored from a snapshot
//! (`etcdutl snapshot restore`: a WAL of conf changes up to a boot snapshot, the keys in the db;
//! `kv::restored_from_snapshot`): its KV history before the WAL lives only in the db.

use std::path::PathBuf;

use serde::Serialize;

use super::binary::{ReleaseEvidence, StartRelease};
use super::kv::{replay_into, KvReplay, KvReplayError};
use super::restart::LogSource;
use crate::backend::etcd::{generation_of, load_store, read_etcd, MemberRecord};
use crate::backend::{Db, DbError};
use crate::member::{MemberFiles, MemberRead, ReadFrom};
use crate::mvcc::{EtcdVersion, MvccStore};

/// What the db says about where its state stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DbSummary {
    /// The db file.
    pub path: PathBuf,
    /// `meta/consistent_index`.
    pub consistent_index: u64,
    /// `meta/term` (3.5+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// The etcd generation that wrote it (`3.4`, `3.5`, `3.6`).
    pub generation: &'static str,
    /// Whether it has `meta/confState` (3.5 writes it with the first conf change it applies).
    pub has_conf_state: bool,
}

/// A member's db read and restored: its summary, the full KV model at its CI and the
/// membership it records (for the db ↔ log checks). A clone shares the store's spilled digests.
#[derive(Clone)]
pub struct LoadedDb {
    pub summary: DbSummary,
    /// The KV model etcd boots with (values loaded), its consistent index set to CI.
    pub store: MvccStore,
    pub records: DbRecords,
}

/// The membership a db records, for the db ↔ log checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DbRecords {
    /// `meta/confState` (3.5+).
    pub conf_state: Option<serde_json::Value>,
    /// The `members` bucket.
    pub members: Vec<MemberRecord>,
    /// The `members_removed` bucket's ids (hex).
    pub removed_members: Vec<String>,
}

/// Why a member's KV replay cannot start from its db.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DbStartError {
    /// No `member/snap/db` next to the WAL (a WAL-only copy).
    #[error("no backend db (member/snap/db) next to the WAL")]
    Absent,
    /// The db cannot be read or restored (page damage, a schema value that does not decode).
    #[error("the backend db {path} cannot be read: {message}")]
    Unreadable { path: PathBuf, message: String },
    /// The db has no `meta/consistent_index` (etcd would start from an empty store).
    #[error("the backend db {path} has no meta/consistent_index")]
    NoConsistentIndex { path: PathBuf },
    /// CI > the last WAL index: the db holds applied state the log does not (etcd: raft cannot
    /// restart with applied beyond its last index).
    #[error(
        "the db's consistent index {consistent_index} is beyond the last WAL index {last_index}: the db is ahead of the log"
    )]
    AheadOfLog {
        consistent_index: u64,
        last_index: u64,
    },
    /// CI < the snapshot etcd boots from: etcd 3.4 `recoverSnapshotBackend` then looks for the
    /// leader's `%016x.snap.db` and refuses to start without it; the entries between CI and the
    /// snapshot are in neither the db nor the WAL.
    #[error(
        "the db's consistent index {consistent_index} is below the snapshot etcd boots from (index {snapshot_index}): etcd refuses to start"
    )]
    OlderThanSnapshot {
        consistent_index: u64,
        snapshot_index: u64,
    },
    /// A state before CI was asked for; the db holds only the state at CI.
    #[error(
        "index {through} is below the db's consistent index {consistent_index}: the db holds the state at {consistent_index} only"
    )]
    BelowConsistentIndex { consistent_index: u64, through: u64 },
}

/// The db file of a member: `snap/db` in its snap dir.
pub fn db_path(files: &MemberFiles<'_>) -> Option<PathBuf> {
    let path = files.paths.snap_dir.as_ref()?.join("db");
    (files.fs.len(&path).is_ok() && !files.fs.is_dir(&path)).then_some(path)
}

fn unreadable(path: &std::path::Path, e: &DbError) -> DbStartError {
    DbStartError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads and restores the member's db as etcd's boot does (`mvcc/kvstore.go: restore`,
/// `lessor.initAndRecover`, `restoreAlarms`), with the `key` bucket's values loaded. Damage
/// anywhere the walk goes (pages, schema values) makes it [`DbStartError::Unreadable`]: a
/// start from a db bbolt or etcd would choke on is no start.
pub fn load_member_db(
    files: &MemberFiles<'_>,
    version: EtcdVersion,
) -> Result<LoadedDb, DbStartError> {
    let path = db_path(files).ok_or(DbStartError::Absent)?;
    let db = Db::open(files.fs, &path).map_err(|e| unreadable(&path, &e))?;
    if let Some(e) = db.findings.first() {
        return Err(unreadable(&path, e));
    }
    let read = read_etcd(&db, version).map_err(|e| unreadable(&path, &e))?;
    if let Some(e) = read.page_findings.first() {
        return Err(unreadable(&path, e));
    }
    if let Some(f) = read.schema.findings.first() {
        return Err(DbStartError::Unreadable {
            path,
            message: format!("{}/{}: {}", f.bucket, f.key, f.problem),
        });
    }
    let Some(consistent_index) = read.schema.consistent_index else {
        return Err(DbStartError::NoConsistentIndex { path });
    };
    let summary = DbSummary {
        path: path.clone(),
        consistent_index,
        term: read.schema.term,
        generation: read.schema.generation(),
        has_conf_state: read.schema.conf_state.is_some(),
    };
    let cluster_version = read.schema.cluster_version.clone();
    let mut store = load_store(&db, read.restored).map_err(|e| unreadable(&path, &e))?;
    store.set_consistent_index(consistent_index);
    store.follow_log();
    if let Some(text) = cluster_version {
        // 3.5+ keeps it in the `cluster` bucket; the boot snapshot's v2 store, which etcd's
        // `RaftCluster.Recover` reads, takes precedence (`replay_kv_from_db_source`).
        store.set_cluster_version_text(text.as_bytes(), consistent_index);
    }
    Ok(LoadedDb {
        summary,
        store,
        records: DbRecords {
            conf_state: read.schema.conf_state,
            members: read.schema.members,
            removed_members: read.schema.removed_members,
        },
    })
}

/// [`load_member_db`] with the rules of the etcd generation that wrote the db (its `meta`
/// bucket: `storageVersion` 3.6, `confState`/`term` 3.5, else 3.4; [`EtcdVersion::for_generation`]).
/// In 3.5.3+ the consistent index moves with every applied entry (`applyEntryNormal` sets it
/// for entries of any kind, `apply` for conf changes), in 3.4 only with KV/auth writes and
/// snapshots; the replay above CI is the same under both (entries at or below CI are not
/// re-applied to the KV store, and re-applied 3.4 entries get etcd's no-op outcomes), but the
/// applier must know the requests of the generation (3.5's `ClusterVersionSet`,
/// `ClusterMemberAttrSet`, `DowngradeInfoSet`) and its compaction rules.
pub fn load_member_db_as_written(files: &MemberFiles<'_>) -> Result<LoadedDb, DbStartError> {
    let path = db_path(files).ok_or(DbStartError::Absent)?;
    let db = Db::open(files.fs, &path).map_err(|e| unreadable(&path, &e))?;
    let generation = generation_of(&db).map_err(|e| unreadable(&path, &e))?;
    drop(db);
    load_member_db(files, EtcdVersion::for_generation(generation))
}

/// Why a member's WAL starts after index 1, in words.
pub fn late_start_reason(read: &MemberRead) -> String {
    if super::kv::restored_from_snapshot(read) {
        return format!(
            "restored from a snapshot: the WAL's entries up to the boot snapshot at index {} are \
             conf changes only, the keys are the db's",
            read.boot_start().0
        );
    }
    match read.start.reason {
        ReadFrom::GapFallback => format!(
            "a leader snapshot left a gap in the WAL; it is read from the snapshot at index {}",
            read.start.index
        ),
        ReadFrom::Purged => format!(
            "the WAL's older segments were purged; it is read from the snapshot at index {}",
            read.start.index
        ),
        ReadFrom::Snapshot | ReadFrom::Beginning if read.start.index > 0 => format!(
            "the WAL's older segments were purged (it starts at snapshot index {})",
            read.start.index
        ),
        _ => format!(
            "the WAL's older segments were purged (its first entry is {})",
            read.contents.first_index().unwrap_or(0)
        ),
    }
}

/// The last index of the member's log: its last entry, or the snapshot it starts from.
pub fn last_wal_index(read: &MemberRead) -> u64 {
    read.contents.last_index().unwrap_or(read.start.index)
}

/// Whether the replay of `read` can start from a db at `consistent_index` and reach `through`:
/// CI within the log, at or above the snapshot the log starts from, and not above `through`.
pub fn check_start(
    read: &MemberRead,
    consistent_index: u64,
    through: Option<u64>,
) -> Result<(), DbStartError> {
    let last_index = last_wal_index(read);
    if consistent_index > last_index {
        return Err(DbStartError::AheadOfLog {
            consistent_index,
            last_index,
        });
    }
    if consistent_index < read.start.index {
        return Err(DbStartError::OlderThanSnapshot {
            consistent_index,
            snapshot_index: read.start.index,
        });
    }
    if let Some(through) = through.filter(|&t| t < consistent_index) {
        return Err(DbStartError::BelowConsistentIndex {
            consistent_index,
            through,
        });
    }
    Ok(())
}

/// Replays `read` from `db`: the WAL entries above CI applied to the db's KV model through
/// raft-rs, up to `through` (`None`: everything committed, the commit raised to CI when CI is
/// above it). `source`: the held entries of `read`, or a stream over them (`replay::stream`).
pub fn replay_kv_from_db_source(
    member: &str,
    read: &MemberRead,
    db: LoadedDb,
    source: LogSource<'_, '_>,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<KvReplay, KvReplayError> {
    let consistent_index = db.summary.consistent_index;
    let release = StartRelease {
        release: db.store.etcd_version(),
        evidence: ReleaseEvidence::Db {
            generation: db.summary.generation,
        },
    };
    let store = start_store(read, db.store, consistent_index, through)?;
    let mut kv = replay_into(
        member,
        read,
        (store, release),
        source,
        through,
        consistent_index,
        progress,
    );
    kv.from_db = Some(db.summary);
    kv.from_db_records = Some(db.records);
    Ok(kv)
}

/// The store etcd boots `read` with from a db restored at `consistent_index`: the db's KV model
/// with the boot snapshot's cluster version ([`snapshot_cluster_version`]), when the start is
/// possible ([`check_start`]).
pub fn start_store(
    read: &MemberRead,
    mut store: MvccStore,
    consistent_index: u64,
    through: Option<u64>,
) -> Result<MvccStore, DbStartError> {
    check_start(read, consistent_index, through)?;
    if let Some((text, index)) = snapshot_cluster_version(read) {
        store.set_cluster_version_text(text.as_bytes(), index);
    }
    Ok(store)
}

/// The cluster version the boot snapshot's v2 store records, and the snapshot's index: what
/// `RaftCluster.Recover` (3.4.23, 3.5.30) starts the member's cluster version from.
pub fn snapshot_cluster_version(read: &MemberRead) -> Option<(String, u64)> {
    let snap = read.snapshot.as_ref()?;
    let data = snap.snapshot.data.as_ref()?;
    let version = crate::snap::membership::parse_membership(data)?.cluster_version?;
    Some((version, snap.snapshot.metadata.index))
}

/// [`replay_kv_from_db_source`] over the entries `read` holds.
pub fn replay_kv_from_db(
    member: &str,
    read: &MemberRead,
    db: LoadedDb,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<KvReplay, KvReplayError> {
    debug_assert!(
        read.contents.kept_entries,
        "a summary read holds no entries"
    );
    replay_kv_from_db_source(member, read, db, LogSource::Held, through, progress)
}
