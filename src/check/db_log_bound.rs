//! The backend db is not ahead of the log: its consistent index (the last entry whose effect the
//! db holds) is at most the last durable WAL index. etcd fsyncs the WAL before it applies (raft
//! `Ready`: entries are saved before `CommittedEntries` reach the apply loop), so a db beyond the
//! log means the WAL lost entries the state machine applied, or the db belongs elsewhere.
//!
//! CI above the HardState commit alone is no finding: a commit-only HardState is not fsynced
//! (etcd `wal.go: Save` syncs only with entries or a term/vote change), applied data is.

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "db.consistent_index_beyond_log";
pub const REFERENCE: &str =
    "etcd raft Ready (entries persisted before they are applied); etcd 3.4 etcdserver/server.go NewServer + raft restartNode (applied ≤ last index)";

/// The db's `consistent_index` against the member's last WAL index.
pub fn check(member: &str, consistent_index: u64, last_index: u64) -> Option<Finding> {
    (consistent_index > last_index).then(|| {
        Finding::new(
            KIND,
            Severity::Corruption,
            member,
            Location {
                raft_index: Some(consistent_index),
                ..Default::default()
            },
            None,
            format!(
                "the backend db's consistent index {consistent_index} is beyond the last WAL index {last_index}: the db is ahead of the log (applied entries are missing from the WAL)"
            ),
            REFERENCE,
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn beyond_the_log_only() {
        assert!(super::check("m", 10, 10).is_none());
        assert!(super::check("m", 3, 10).is_none());
        let f = super::check("m", 11, 10).unwrap();
        assert_eq!(f.location.raft_index, Some(11));
        assert!(f.severity.is_failure());
    }
}
