//! Membership agreement: wherever two members both know the configuration after applying entry
//! i (replayed from their logs or taken from their snapshots), it is the same configuration.
//! Configurations change only through committed log entries, which are the same on every member.

use std::collections::BTreeSet;

use super::conf_model::Config;
use super::member_scan::MemberScan;
use super::{Finding, Severity};

pub const KIND: &str = "cluster.membership";
pub const REFERENCE: &str =
    "Raft §6 (configuration changes are log entries; committed prefixes agree); etcd membership";

pub fn check(scans: &[&MemberScan]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut flagged: BTreeSet<usize> = BTreeSet::new();
    for a in 0..scans.len() {
        for b in a + 1..scans.len() {
            let Some((index, ca, cb)) = first_disagreement(scans[a], scans[b]) else {
                continue;
            };
            let holds = |c: &Config| {
                scans
                    .iter()
                    .filter(|s| s.timeline.at(index) == Some(c))
                    .count()
            };
            let odd = if holds(&ca) < holds(&cb) { a } else { b };
            if !flagged.insert(odd) {
                continue;
            }
            let (mine, theirs, other) = if odd == a { (ca, cb, b) } else { (cb, ca, a) };
            let scan = scans[odd];
            findings.push(Finding::new(
                KIND,
                Severity::Violation,
                &scan.member,
                scan.entry_location(index),
                None,
                format!(
                    "after entry {index} the configuration is {mine}, but {} has {theirs}",
                    scans[other].member
                ),
                REFERENCE,
            ));
        }
    }
    findings
}

fn first_disagreement(a: &MemberScan, b: &MemberScan) -> Option<(u64, Config, Config)> {
    let mut indexes: Vec<u64> = a
        .timeline
        .points
        .iter()
        .chain(&b.timeline.points)
        .map(|(i, _)| *i)
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    indexes.into_iter().find_map(|i| {
        let (ca, cb) = (a.timeline.at(i)?, b.timeline.at(i)?);
        (ca != cb).then(|| (i, ca.clone(), cb.clone()))
    })
}
