//! Which etcd release applied a member's log before the log itself says: the rules a replay
//! starts with.
//!
//! The cluster version in the log (`mvcc::cluster`) is no record of the binary. etcd 3.5.30
//! proposes it from `monitorVersions` (server/etcdserver/server.go), a goroutine of its own that
//! runs when the leader applies its first entry of a term, apart from `publish` (the member's
//! attributes, after which it serves clients, `close(s.readych)`). When the leader cannot reach
//! a member, `decideClusterVersion` (cluster_util.go) returns nil and the version set is
//! `version.MinClusterVersion`, "3.0.0" — and it stays so until every member answers. Every
//! 3.5.30 capture here shows it: `cluster-d` holds `PUT /0/version 3.0.0` at raft index 7,
//! after two members published (5, 6), and `3.5.0` at 9. Writes in between are applied by 3.5.30
//! binaries under a cluster version that names no release. So the replay starts with the rules
//! of the binary the files show wrote them, and only a cluster version that names a modelled
//! release (3.4 and up) switches them (`MvccStore::set_cluster_version`).
//!
//! The evidence, earliest first:
//!
//! * the first WAL snapshot record past index 0: etcd 3.5 writes it with `conf_state`
//!   (server/etcdserver/storage.go `SaveSnap`: `walpb.Snapshot{Index, Term, ConfState:
//!   &snap.Metadata.ConfState}`; `etcdutl snapshot restore` likewise), 3.4's `walpb.Snapshot`
//!   has no such field (wal/walpb/record.proto: index, term). Its position is the point: the
//!   binary at that raft index. Create's `{0, 0}` record carries none in either release;
//! * the backend db's `meta` bucket: `storageVersion` (3.6), `term`/`confState` (3.5: written
//!   with every consistent index, `cindex.UnsafeUpdateConsistentIndex`), neither (3.4) — the
//!   release that committed the backend last;
//! * none: etcd 3.4.23's rules, the oldest release modelled.
//!
//! A rolling upgrade (`cluster-e`: 3.4.23 → 3.5.30) starts as its first binary (its first
//! snapshot record has no `conf_state`) and switches at the version entries, which stand for
//! every member of a mixed cluster.

use serde::Serialize;

use crate::backend::etcd::generation_of;
use crate::backend::Db;
use crate::member::{MemberFiles, MemberRead};
use crate::mvcc::{EtcdVersion, MvccStore};
use crate::proto::walpb::WalSnapshot;

use super::from_db::db_path;

/// What in the files chose the release a replay starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "evidence", rename_all = "snake_case")]
pub enum ReleaseEvidence {
    /// The first WAL snapshot record past index 0 carries `conf_state`: etcd 3.5+ wrote it.
    WalSnapshotWithConfState { index: u64 },
    /// The first WAL snapshot record past index 0 has no `conf_state`: etcd 3.4 wrote it.
    WalSnapshotWithoutConfState { index: u64 },
    /// The backend db's `meta` bucket names the generation that committed it last.
    Db { generation: &'static str },
    /// Nothing in the files tells: the oldest release modelled.
    None,
}

/// The release a replay starts with, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StartRelease {
    #[serde(serialize_with = "as_text")]
    pub release: EtcdVersion,
    #[serde(flatten)]
    pub evidence: ReleaseEvidence,
}

fn as_text<S: serde::Serializer>(v: &EtcdVersion, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl StartRelease {
    /// No evidence: etcd 3.4.23.
    pub fn unknown() -> StartRelease {
        StartRelease {
            release: EtcdVersion::V3_4_23,
            evidence: ReleaseEvidence::None,
        }
    }

    /// A store for replaying a log from index 1 with these rules, following the log's cluster
    /// version from there.
    pub fn store(&self) -> MvccStore {
        let mut store = MvccStore::with_version(self.release);
        store.follow_log();
        store
    }

    /// In words, for reports.
    pub fn describe(&self) -> String {
        let why = match &self.evidence {
            ReleaseEvidence::WalSnapshotWithConfState { index } => format!(
                "its first WAL snapshot record (index {index}) carries conf_state, which etcd 3.5+ writes"
            ),
            ReleaseEvidence::WalSnapshotWithoutConfState { index } => format!(
                "its first WAL snapshot record (index {index}) has no conf_state: etcd 3.4 wrote it"
            ),
            ReleaseEvidence::Db { generation } => {
                format!("the backend db's meta bucket was written by etcd {generation}")
            }
            ReleaseEvidence::None => {
                "nothing in the files names the release (no WAL snapshot record past index 0, no db)"
                    .to_string()
            }
        };
        format!("applied as etcd {} from the start: {why}", self.release)
    }
}

/// The release from the evidence: `snapshots` are the WAL's snapshot records in file order,
/// `db_generation` what the db's `meta` bucket names (`backend::etcd::generation_of`), asked
/// only when no snapshot record decides.
pub fn infer<'a>(
    snapshots: impl IntoIterator<Item = &'a WalSnapshot>,
    db_generation: impl FnOnce() -> Option<&'static str>,
) -> StartRelease {
    if let Some(first) = snapshots.into_iter().find(|s| s.index > 0) {
        return match first.conf_state {
            Some(_) => StartRelease {
                release: EtcdVersion::V3_5_30,
                evidence: ReleaseEvidence::WalSnapshotWithConfState { index: first.index },
            },
            None => StartRelease {
                release: EtcdVersion::V3_4_23,
                evidence: ReleaseEvidence::WalSnapshotWithoutConfState { index: first.index },
            },
        };
    }
    match db_generation() {
        Some(generation) => StartRelease {
            release: EtcdVersion::for_generation(generation),
            evidence: ReleaseEvidence::Db { generation },
        },
        None => StartRelease::unknown(),
    }
}

/// The generation the member's db names, when it has a readable one.
pub fn db_generation(files: &MemberFiles<'_>) -> Option<&'static str> {
    let path = db_path(files)?;
    let db = Db::open(files.fs, &path).ok()?;
    generation_of(&db).ok()
}

/// [`infer`] for a member read: the WAL snapshot records its boot's `ValidSnapshotEntries` saw
/// (every record in file order, those above the commit included) and, with `files`, its db.
pub fn start_release(read: &MemberRead, files: Option<&MemberFiles<'_>>) -> StartRelease {
    let snapshots = read
        .valid_snapshots
        .iter()
        .flat_map(|v| v.snapshots.iter().chain(v.above_commit.iter()));
    infer(snapshots, || files.and_then(db_generation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::ConfState;

    fn record(index: u64, conf: bool) -> WalSnapshot {
        WalSnapshot {
            index,
            term: 2,
            conf_state: conf.then(ConfState::default),
        }
    }

    #[test]
    fn the_first_snapshot_record_past_zero_decides_before_the_db() {
        let create = record(0, false);
        let r = infer([&create, &record(25, true), &record(50, true)], || {
            Some("3.4")
        });
        assert_eq!(r.release, EtcdVersion::V3_5_30);
        assert_eq!(
            r.evidence,
            ReleaseEvidence::WalSnapshotWithConfState { index: 25 }
        );
        // A rolling upgrade: 3.4 wrote the first record, 3.5 the db.
        let r = infer([&create, &record(25, false), &record(50, true)], || {
            Some("3.5")
        });
        assert_eq!(r.release, EtcdVersion::V3_4_23);
    }

    #[test]
    fn without_a_snapshot_record_the_db_decides_and_without_a_db_3_4_23() {
        let create = record(0, false);
        assert_eq!(
            infer([&create], || Some("3.5")).release,
            EtcdVersion::V3_5_30
        );
        assert_eq!(
            infer([&create], || Some("3.6")).release,
            EtcdVersion::V3_6_0
        );
        assert_eq!(
            infer([&create], || Some("3.4")).release,
            EtcdVersion::V3_4_23
        );
        assert_eq!(infer([&create], || None), StartRelease::unknown());
    }
}
