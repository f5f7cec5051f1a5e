//! The db's `meta/term` is the term of the entry at its consistent index. etcd 3.5+ persists the
//! consistent index together with the term of the entry it names (`cindex.UnsafeUpdateConsistentIndex`
//! writes `meta/consistent_index` and `meta/term` in one backend transaction; `applyEntryNormal`
//! and `apply` set both from the entry being applied). The Log Matching property (Raft §5.3)
//! makes (index, term) name one entry: a different term at CI in the WAL means the db applied an
//! entry this log does not hold.
//!
//! Checked only where the WAL holds CI (an entry at CI, or the snapshot the log starts from at
//! CI) and the db has a term (3.4 writes none).

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "db.term_mismatch";
pub const REFERENCE: &str = "etcd 3.5 server/etcdserver/cindex/cindex.go UnsafeUpdateConsistentIndex (index and term in one tx), server.go apply/applyEntryNormal (SetConsistentIndex(e.Index, e.Term)); Raft §5.3 Log Matching";

/// `db_term`: the db's `meta/term`; `wal_term`: the term the log holds at CI (None: not held).
pub fn check(
    member: &str,
    consistent_index: u64,
    db_term: Option<u64>,
    wal_term: Option<u64>,
) -> Option<Finding> {
    let (db_term, wal_term) = (db_term.filter(|&t| t > 0)?, wal_term?);
    (db_term != wal_term).then(|| {
        Finding::new(
            KIND,
            Severity::Corruption,
            member,
            Location {
                raft_index: Some(consistent_index),
                ..Default::default()
            },
            Some(wal_term),
            format!(
                "the backend db's meta/term {db_term} is not the term {wal_term} of the WAL entry at its consistent index {consistent_index}: the db applied an entry this log does not hold"
            ),
            REFERENCE,
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_different_known_term_is_a_finding() {
        assert!(super::check("m", 10, Some(3), Some(3)).is_none());
        assert!(super::check("m", 10, None, Some(3)).is_none());
        assert!(super::check("m", 10, Some(0), Some(3)).is_none());
        assert!(super::check("m", 10, Some(3), None).is_none());
        let f = super::check("m", 10, Some(4), Some(3)).unwrap();
        assert_eq!(f.location.raft_index, Some(10));
        assert!(f.severity.is_failure());
        assert!(f.message.contains("meta/term 4"), "{}", f.message);
    }
}
