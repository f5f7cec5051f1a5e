//! State-hash agreement: members that applied the log up to the same index hold the same key
//! space (etcd's `HashKV` at a common revision; the corruption checker's rule). The hashes come
//! from the replay (MVCC apply); this file only compares them.

use std::collections::BTreeMap;

use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "cluster.state_hash";
pub const REFERENCE: &str =
    "Raft §5.4 State Machine Safety (same log prefix ⇒ same state); etcd HashKV / corruption check";

/// One member's state after applying through `applied_index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePoint {
    pub member: String,
    pub applied_index: u64,
    pub hash: u64,
    /// What the hash is of, for the message (e.g. "HashKV at revision 812").
    pub what: String,
}

/// Members at a common applied index with different hashes: the minority is reported.
pub fn check(points: &[StatePoint]) -> Vec<Finding> {
    let mut by_index: BTreeMap<u64, Vec<&StatePoint>> = BTreeMap::new();
    for point in points {
        by_index.entry(point.applied_index).or_default().push(point);
    }
    let mut findings = Vec::new();
    for (index, points) in by_index {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for p in &points {
            *counts.entry(p.hash).or_default() += 1;
        }
        if counts.len() < 2 {
            continue;
        }
        // The most common hash (ties: the first member's) is taken as the reference.
        let top = counts.values().copied().max().unwrap_or(0);
        let reference = points
            .iter()
            .find(|p| counts[&p.hash] == top)
            .map(|p| (p.hash, p.member.clone()))
            .unwrap_or_default();
        for p in points.iter().filter(|p| p.hash != reference.0) {
            findings.push(Finding::new(
                KIND,
                Severity::Violation,
                &p.member,
                Location {
                    raft_index: Some(index),
                    ..Default::default()
                },
                None,
                format!(
                    "after applying through {index}, {} is {:#x}; {} has {:#x}",
                    p.what, p.hash, reference.1, reference.0
                ),
                REFERENCE,
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(member: &str, index: u64, hash: u64) -> StatePoint {
        StatePoint {
            member: member.into(),
            applied_index: index,
            hash,
            what: "HashKV".into(),
        }
    }

    #[test]
    fn the_odd_member_out_is_reported_at_the_common_index() {
        let findings = check(&[
            point("a", 10, 1),
            point("b", 10, 1),
            point("c", 10, 2),
            point("c", 12, 9),
        ]);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].member, "c");
        assert_eq!(findings[0].location.raft_index, Some(10));
        assert!(check(&[point("a", 10, 1), point("b", 11, 2)]).is_empty());
    }
}
