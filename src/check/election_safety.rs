//! Election safety across members: at most one leader per term (§5.2, TLA+ `ElectionSafetyInv`).
//!
//! Two visible consequences are checked:
//! * entries — two members holding different entries at one index with one term (only the one
//!   leader of that term writes entries of that term, and never two at one index);
//! * votes — each HardState says whom its member voted for in its term; if two different
//!   candidates each got a quorum of votes in one term, two leaders could be elected. The quorum
//!   is counted against the largest voter set any member's files show (a larger configuration
//!   only makes a quorum harder to reach, so this never reports a split that a smaller one
//!   would not).

use std::collections::{BTreeMap, BTreeSet};

use super::scan::MemberScan;
use super::{Finding, Severity};

pub const ENTRY_CONFLICT: &str = "cluster.entry_conflict";
pub const VOTES: &str = "cluster.election_safety";
pub const REFERENCE_ENTRIES: &str =
    "Raft §5.2 Election Safety + §5.3 (one leader per term writes one entry per index); TLA+ ElectionSafetyInv";
pub const REFERENCE_VOTES: &str =
    "Raft §5.2 Election Safety (each server votes once per term; a candidate needs a majority); TLA+ ElectionSafetyInv";

fn largest_voter_set(scans: &[&MemberScan]) -> usize {
    let mut largest = 0;
    for scan in scans {
        for (_, config) in &scan.timeline.points {
            if let Some(config) = config {
                largest = largest.max(config.voter_count());
            }
        }
        for snap in &scan.snaps {
            let cs = &snap.conf_state;
            largest = largest.max(cs.voters.len().max(cs.voters_outgoing.len()));
        }
    }
    largest
}

/// For one candidate: the ids that voted for it, and which of the compared members they are.
type Ballots = (BTreeSet<u64>, Vec<usize>);

pub fn votes(scans: &[&MemberScan]) -> Vec<Finding> {
    let voters = largest_voter_set(scans);
    if voters == 0 {
        return Vec::new();
    }
    let quorum = voters / 2 + 1;
    // term → candidate → (voter ids, the members that voted)
    let mut tally: BTreeMap<u64, BTreeMap<u64, Ballots>> = BTreeMap::new();
    for (m, scan) in scans.iter().enumerate() {
        let Some(node) = scan.node_id else { continue };
        for vote in &scan.votes {
            let entry = tally
                .entry(vote.term)
                .or_default()
                .entry(vote.vote)
                .or_default();
            entry.0.insert(node);
            entry.1.push(m);
        }
    }
    let mut findings = Vec::new();
    for (term, candidates) in tally {
        let elected: Vec<(&u64, &Ballots)> = candidates
            .iter()
            .filter(|(_, (voters, _))| voters.len() >= quorum)
            .collect();
        if elected.len() < 2 {
            continue;
        }
        let summary = elected
            .iter()
            .map(|(candidate, (voters, _))| {
                format!(
                    "{candidate:x} by {}",
                    voters
                        .iter()
                        .map(|v| format!("{v:x}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        // Attributed to the first member that voted for the second candidate.
        let member = elected[1].1 .1[0];
        let scan = scans[member];
        let location = scan
            .votes
            .iter()
            .find(|v| v.term == term && v.vote == *elected[1].0)
            .map(|v| v.location.clone())
            .unwrap_or_default();
        findings.push(Finding::new(
            VOTES,
            Severity::Violation,
            &scan.member,
            location,
            Some(term),
            format!(
                "in term {term}, {} candidates each got a quorum ({quorum} of {voters}) of votes: {summary}",
                elected.len()
            ),
            REFERENCE_VOTES,
        ));
    }
    findings
}
