//! Election safety across members: at most one leader per term (§5.2, TLA+ `ElectionSafetyInv`).
//!
//! Two visible consequences are checked:
//! * entries — two members holding different entries at one index with one term (only the one
//!   leader of that term writes entries of that term, and never two at one index);
//! * votes — each HardState says whom its member voted for in its term; if two different
//!   candidates each got a quorum of votes in one term, two leaders could be elected. A candidate
//!   counts as elected only by votes that form a majority of *every* configuration any member's
//!   files show — of both halves of a joint one — so a learner's vote, or a vote that is a
//!   majority of one half only, never makes a candidate count as elected. Without any known
//!   configuration the quorum is counted against the largest voter set.

use std::collections::{BTreeMap, BTreeSet};

use super::member_scan::MemberScan;
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

type Voters = (BTreeSet<u64>, BTreeSet<u64>);

/// The configurations (incoming voters, outgoing voters) in force where the votes of `term` were
/// persisted, as each voting member's files show them.
fn configurations_of_term(scans: &[&MemberScan], term: u64) -> Vec<Voters> {
    let mut configs = Vec::new();
    for scan in scans {
        for vote in scan.votes.iter().filter(|v| v.term == term) {
            let index = vote
                .location
                .raft_index
                .unwrap_or(0)
                .min(scan.timeline.applied_through);
            if let Some(config) = scan.timeline.at(index) {
                configs.push((config.voters.clone(), config.voters_outgoing.clone()));
            }
        }
    }
    configs.retain(|(incoming, _)| !incoming.is_empty());
    configs.sort();
    configs.dedup();
    configs
}

fn describe_configs(configs: &[Voters]) -> String {
    let ids = |s: &BTreeSet<u64>| {
        s.iter()
            .map(|id| format!("{id:x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    configs
        .iter()
        .map(|(incoming, outgoing)| {
            if outgoing.is_empty() {
                format!("({})", ids(incoming))
            } else {
                format!("({})&&({})", ids(incoming), ids(outgoing))
            }
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn majority_of(votes: &BTreeSet<u64>, voters: &BTreeSet<u64>) -> bool {
    voters.is_empty() || votes.intersection(voters).count() > voters.len() / 2
}

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
        let configs = configurations_of_term(scans, term);
        let elected_by = |ballots: &BTreeSet<u64>| {
            if configs.is_empty() {
                ballots.len() >= quorum
            } else {
                configs.iter().all(|(incoming, outgoing)| {
                    majority_of(ballots, incoming) && majority_of(ballots, outgoing)
                })
            }
        };
        let rule = if configs.is_empty() {
            format!("{quorum} of {voters}")
        } else {
            format!("a majority of {}", describe_configs(&configs))
        };
        let elected: Vec<(&u64, &Ballots)> = candidates
            .iter()
            .filter(|(_, (ballots, _))| elected_by(ballots))
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
                "in term {term}, {} candidates each got a quorum ({rule}) of votes: {summary}",
                elected.len()
            ),
            REFERENCE_VOTES,
        ));
    }
    findings
}
