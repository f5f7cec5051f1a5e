//! Cross-member checks over several members (PATHs) of one cluster, including removed members
//! and learners: one walk over each pair's overlapping log classifies every differing index as
//! an entry conflict (same index and term, different entry — [`super::election_safety`]), a
//! committed-prefix disagreement ([`super::committed_prefix`]) or a log-matching break below an
//! entry both hold ([`super::log_matching`]); then votes, membership, and (through a hook fed by
//! the replay) state hashes.
//!
//! A finding is attributed to the member that is in the minority at that index (the one that
//! diverges from the others); with two members, to the second. Each member gets one finding per
//! kind, at the first index, with the count of further indexes.

use std::collections::{BTreeMap, HashMap};

use super::member_scan::MemberScan;
use super::resolved_log::EntryDigest;
use super::{committed_prefix, election_safety, log_matching, membership, Finding, Severity};
use crate::wal::Location;

pub const IDENTITY: &str = "cluster.identity";
pub const DUPLICATE_MEMBER: &str = "cluster.duplicate_member";
pub const REFERENCE_IDENTITY: &str = "etcd WAL metadata (node id, cluster id)";

/// All cross-member findings for members of one cluster.
pub fn check_cluster(scans: &[&MemberScan]) -> Vec<Finding> {
    let mut findings = Vec::new();
    if scans.len() < 2 {
        return findings;
    }
    let group = identity(scans, &mut findings);
    if group.len() < 2 {
        return findings;
    }
    findings.extend(compare_logs(&group));
    findings.extend(election_safety::votes(&group));
    findings.extend(membership::check(&group));
    findings
}

/// Members whose WAL metadata names another cluster than most are set aside (and reported);
/// two paths with one node id are noted.
fn identity<'a>(scans: &[&'a MemberScan], findings: &mut Vec<Finding>) -> Vec<&'a MemberScan> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for scan in scans {
        if let Some(id) = scan.cluster_id {
            *counts.entry(id).or_default() += 1;
        }
    }
    let majority = counts.iter().max_by_key(|(_, n)| **n).map(|(id, _)| *id);
    let mut group = Vec::new();
    for scan in scans {
        match (scan.cluster_id, majority) {
            (Some(id), Some(m)) if id != m => findings.push(Finding::new(
                IDENTITY,
                Severity::Corruption,
                &scan.member,
                Location::default(),
                None,
                format!(
                    "WAL metadata names cluster {id:x}, the other members cluster {m:x}: not compared with them"
                ),
                REFERENCE_IDENTITY,
            )),
            _ => group.push(*scan),
        }
    }
    let mut by_node: HashMap<u64, &str> = HashMap::new();
    for scan in &group {
        let Some(node) = scan.node_id else { continue };
        if let Some(first) = by_node.insert(node, &scan.member) {
            findings.push(Finding::new(
                DUPLICATE_MEMBER,
                Severity::Warning,
                &scan.member,
                Location::default(),
                None,
                format!("same member id {node:x} as {first}: two copies of one member?"),
                REFERENCE_IDENTITY,
            ));
        }
    }
    group
}

/// How a pair differs at one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Difference {
    /// Same term, different entry.
    EntryConflict,
    /// Both committed it, with different terms.
    CommittedPrefix,
    /// Different terms below an index where both hold the same term.
    LogMatching { agreed_at: u64 },
}

/// One finding per (kind, member): the first index and how many more.
struct Aggregate {
    first_index: u64,
    first_detail: String,
    term: Option<u64>,
    indexes: u64,
}

fn compare_logs(scans: &[&MemberScan]) -> Vec<Finding> {
    let mut aggregates: BTreeMap<(&'static str, usize), Aggregate> = BTreeMap::new();
    let mut seen: std::collections::HashSet<(&'static str, usize, u64)> =
        std::collections::HashSet::new();
    for a in 0..scans.len() {
        for b in a + 1..scans.len() {
            let (la, lb) = (&scans[a].log, &scans[b].log);
            let lo = la.first_index().max(lb.first_index());
            let hi = la.last_index().min(lb.last_index());
            if lo > hi {
                continue;
            }
            let agreed = (lo..=hi)
                .rev()
                .find(|&i| la.get(i).map(|e| e.term) == lb.get(i).map(|e| e.term));
            let committed_a = scans[a].committed_through();
            let committed_b = scans[b].committed_through();
            for i in lo..=hi {
                let (Some(ea), Some(eb)) = (la.get(i), lb.get(i)) else {
                    continue;
                };
                let difference = if ea.term == eb.term {
                    if ea.same_entry(&eb) {
                        continue;
                    }
                    Difference::EntryConflict
                } else if i <= committed_a && i <= committed_b {
                    Difference::CommittedPrefix
                } else if let Some(h) = agreed.filter(|h| i < *h) {
                    Difference::LogMatching { agreed_at: h }
                } else {
                    continue;
                };
                let odd = minority(scans, i, a, &ea, b, &eb);
                let other = if odd == a { b } else { a };
                let kind = match difference {
                    Difference::EntryConflict => election_safety::ENTRY_CONFLICT,
                    Difference::CommittedPrefix => committed_prefix::KIND,
                    Difference::LogMatching { .. } => log_matching::KIND,
                };
                if !seen.insert((kind, odd, i)) {
                    continue;
                }
                let (mine, theirs) = if odd == a { (&ea, &eb) } else { (&eb, &ea) };
                let aggregate = aggregates.entry((kind, odd)).or_insert_with(|| Aggregate {
                    first_index: i,
                    first_detail: describe(difference, i, mine, theirs, &scans[other].member),
                    term: Some(mine.term),
                    indexes: 0,
                });
                aggregate.indexes += 1;
            }
        }
    }
    aggregates
        .into_iter()
        .map(|((kind, member), agg)| {
            let scan = scans[member];
            let more = if agg.indexes > 1 {
                format!(" (and {} more indexes)", agg.indexes - 1)
            } else {
                String::new()
            };
            let (severity, reference) = match kind {
                k if k == election_safety::ENTRY_CONFLICT => {
                    (Severity::Violation, election_safety::REFERENCE_ENTRIES)
                }
                k if k == committed_prefix::KIND => {
                    (Severity::Violation, committed_prefix::REFERENCE)
                }
                _ => (Severity::Violation, log_matching::REFERENCE),
            };
            Finding::new(
                kind,
                severity,
                &scan.member,
                scan.entry_location(agg.first_index),
                agg.term,
                format!("{}{more}", agg.first_detail),
                reference,
            )
        })
        .collect()
}

fn describe(
    difference: Difference,
    index: u64,
    mine: &EntryDigest,
    theirs: &EntryDigest,
    other: &str,
) -> String {
    match difference {
        Difference::EntryConflict => format!(
            "entry {index} of term {} differs from {other}'s entry {index} of the same term (type {} data CRC-32C {:08x} vs type {} {:08x}): two different entries at one index in one term",
            mine.term, mine.entry_type, mine.data_crc, theirs.entry_type, theirs.data_crc
        ),
        Difference::CommittedPrefix => format!(
            "committed entry {index} has term {}, but {other} committed term {} at {index}: committed prefixes disagree",
            mine.term, theirs.term
        ),
        Difference::LogMatching { agreed_at } => format!(
            "entry {index} has term {}, {other}'s has term {}, yet both hold the same term at {agreed_at}: logs that match at an index must match before it",
            mine.term, theirs.term
        ),
    }
}

/// Which of a, b holds the entry fewer members hold at `index` (ties: b).
fn minority(
    scans: &[&MemberScan],
    index: u64,
    a: usize,
    ea: &EntryDigest,
    b: usize,
    eb: &EntryDigest,
) -> usize {
    let count = |e: &EntryDigest| {
        scans
            .iter()
            .filter(|s| s.log.get(index).is_some_and(|x| x.same_entry(e)))
            .count()
    };
    if count(ea) < count(eb) {
        a
    } else {
        b
    }
}
