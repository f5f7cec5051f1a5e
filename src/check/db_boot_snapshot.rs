//! The backend db covers the snapshot etcd boots from: its consistent index is at least the
//! index of the `.snap` etcd loads. Below it, etcd 3.4 `etcdserver/backend.go:
//! recoverSnapshotBackend` (`snapshot.Metadata.Index <= consistentIndex` else
//! `openSnapshotBackend`) looks for the db the leader sent (`%016x.snap.db`) and refuses to start
//! without it; the entries between the consistent index and the snapshot are in neither the db
//! nor the WAL. A local snapshot commits the consistent index first (`KV().Commit()` in
//! `snapshot`), so a db taken with its WAL is never older.

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "db.older_than_snapshot";
pub const REFERENCE: &str =
    "etcd 3.4 etcdserver/backend.go recoverSnapshotBackend / openSnapshotBackend (db older than the boot snapshot)";

/// The db's `consistent_index` against the index of the snapshot etcd boots from.
/// `snap_db_present`: a `%016x.snap.db` for that index is in the snap dir (etcd swaps it in:
/// a warning, not corruption).
pub fn check(
    member: &str,
    consistent_index: u64,
    snapshot_index: u64,
    snap_db_present: bool,
) -> Option<Finding> {
    if consistent_index >= snapshot_index {
        return None;
    }
    let (severity, tail) = if snap_db_present {
        (
            Severity::Warning,
            format!("; {snapshot_index:016x}.snap.db is present and etcd swaps it in at boot"),
        )
    } else {
        (
            Severity::Corruption,
            format!(
                ": etcd refuses to start ([etcd: failed to find database snapshot file] {snapshot_index:016x}.snap.db)"
            ),
        )
    };
    Some(Finding::new(
        KIND,
        severity,
        member,
        Location {
            raft_index: Some(consistent_index),
            ..Default::default()
        },
        None,
        format!(
            "the backend db's consistent index {consistent_index} is below the snapshot etcd boots from (index {snapshot_index}){tail}"
        ),
        REFERENCE,
    ))
}

#[cfg(test)]
mod tests {
    use crate::check::Severity;

    #[test]
    fn older_than_the_boot_snapshot() {
        assert!(super::check("m", 5, 5, false).is_none());
        assert!(super::check("m", 6, 5, false).is_none());
        let f = super::check("m", 4, 5, false).unwrap();
        assert_eq!(f.severity, Severity::Corruption);
        assert_eq!(f.location.raft_index, Some(4));
        assert_eq!(
            super::check("m", 4, 5, true).unwrap().severity,
            Severity::Warning
        );
    }
}
