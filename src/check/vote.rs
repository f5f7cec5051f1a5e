//! Votes: the vote never changes within a term, and it goes to a member of the configuration.
//!
//! `votedFor` is set at most once per term and reset only when the term changes (Fig. 2); etcd
//! fsyncs a vote before answering (`MustSync`). A vote for an id that no configuration known to
//! this member ever held — not at the time of the vote, not later, not in any conf change of its
//! log — means a corrupted state or a vote for a stranger (§6). The membership test runs only
//! for votes cast while the configuration was known (a WAL whose older segments were purged
//! starts with an unknown configuration).

use std::collections::BTreeSet;

use super::member_scan::MemberScan;
use super::{Finding, Severity};
use crate::proto::raftpb::HardState;
use crate::wal::Location;

pub const CHANGED_IN_TERM: &str = "raft.vote_changed_in_term";
pub const NOT_MEMBER: &str = "raft.vote_not_member";
pub const REFERENCE_ONCE: &str =
    "Raft §5.2 / Fig. 2 (votedFor: at most one vote per term); TLA+ ElectionSafetyInv";
pub const REFERENCE_MEMBER: &str =
    "Raft §6 (servers outside the configuration are not elected); raft-rs pre-flight vote ∈ ConfState";

pub fn changed(
    member: &str,
    previous: &HardState,
    state: &HardState,
    location: impl FnOnce() -> Location,
) -> Option<Finding> {
    let changed = state.term == previous.term && previous.vote != 0 && state.vote != previous.vote;
    changed.then(|| {
        Finding::new(
            CHANGED_IN_TERM,
            Severity::Violation,
            member,
            location(),
            Some(state.term),
            format!(
                "the vote in term {} changed from {:x} to {:x}",
                state.term, previous.vote, state.vote
            ),
            REFERENCE_ONCE,
        )
    })
}

/// Every id this member's files show in a configuration or a conf change.
pub fn known_ids(scan: &MemberScan) -> BTreeSet<u64> {
    let mut ids = scan.timeline.all_ids();
    for snap in &scan.snaps {
        let cs = &snap.conf_state;
        ids.extend(
            cs.voters
                .iter()
                .chain(&cs.learners)
                .chain(&cs.voters_outgoing),
        );
        ids.extend(&cs.learners_next);
    }
    for record in &scan.wal_snapshots {
        if let Some(cs) = &record.snapshot.conf_state {
            ids.extend(
                cs.voters
                    .iter()
                    .chain(&cs.learners)
                    .chain(&cs.voters_outgoing),
            );
            ids.extend(&cs.learners_next);
        }
    }
    ids.extend(scan.conf_change_ids.iter().copied());
    ids
}

/// Votes for ids this member's own files never show in a configuration.
pub fn not_member(scan: &MemberScan) -> Vec<Finding> {
    not_member_among(scan, &known_ids(scan))
}

/// Votes for ids outside `ids`. With several members, `ids` is what any of them knows: a voter
/// may grant its vote to a new member whose AddNode it has not received yet (the candidate's log
/// is the more up-to-date one), and only another member's log shows that node.
pub fn not_member_among(scan: &MemberScan, ids: &BTreeSet<u64>) -> Vec<Finding> {
    if ids.is_empty() {
        return Vec::new();
    }
    scan.votes
        .iter()
        .filter(|v| v.conf_known && v.vote != 0 && !ids.contains(&v.vote))
        .map(|v| {
            Finding::new(
                NOT_MEMBER,
                Severity::Violation,
                &scan.member,
                v.location.clone(),
                Some(v.term),
                format!(
                    "voted in term {} for {:x}, which is in no known configuration ({})",
                    v.term,
                    v.vote,
                    ids.iter()
                        .map(|id| format!("{id:x}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                REFERENCE_MEMBER,
            )
        })
        .collect()
}
