//! Cluster mode: several members of one cluster, up to f voters crashed together.
//!
//! Committed-is-durable: an entry committed by a quorum must survive on a quorum. For a crashed
//! member, each of its states holds the entries it recovers (`held`) and knew a commit
//! (`known_commit`, a lower bound of the cluster's commit when it crashed); a live member holds
//! its whole log. For every set F of at most f voters, every state s of one of them sets the
//! moment (c = what s knew committed); each other member of F takes its worst state among those
//! that knew no more than c (it crashed no later); the quorum-th largest holding must reach c. A crash that loses only unsynced entries can never fail this
//! (those entries were not acknowledged); a storage fault on f members can only fail it when
//! the live members lack committed entries — and a member that lost entries it acknowledged is
//! handed a commit beyond its log by its leader on restart ("tocommit out of range").

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::fsio::ReadOnlyFs;

use super::member::{enumerate_member, MemberRun};
use super::{FaultClass, OnlyState, Options, Outcome};

#[derive(Clone, Debug)]
pub struct ClusterFinding {
    pub kind: &'static str,
    /// `(member index, state spec)` of the crashed members; empty for the input itself.
    pub crashed: Vec<(usize, String)>,
    pub message: String,
    /// A `--only` argument reproducing it.
    pub only: Option<String>,
    /// How many (crash set, commit) combinations fail the same way.
    pub count: usize,
}

pub struct ClusterRun {
    pub members: Vec<MemberRun>,
    pub paths: Vec<PathBuf>,
    /// Voter node ids (from the configuration of the member with the highest commit).
    pub voters: Vec<u64>,
    pub quorum: usize,
    pub max_crashed: usize,
    pub committed: u64,
    pub combinations: usize,
    pub findings: Vec<ClusterFinding>,
    pub notes: Vec<String>,
}

pub fn enumerate_cluster(
    fs: &dyn ReadOnlyFs,
    paths: &[PathBuf],
    opts: &Options,
) -> Result<ClusterRun, String> {
    let only = match &opts.only {
        Some(OnlyState::Cluster(states)) => Some(states.as_slice()),
        Some(OnlyState::Member(..)) => {
            return Err("a member state without MEMBER@ for several members".into())
        }
        None => None,
    };
    let mut members = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let member_opts = match &only {
            None => opts.clone(),
            Some(list) => match list.iter().find(|(m, _, _)| *m == i) {
                Some((_, class, spec)) => Options {
                    only: Some(OnlyState::Member(*class, spec.clone())),
                    ..opts.clone()
                },
                None => Options {
                    classes: Vec::new(),
                    cross_checks: 0,
                    only: None,
                    ..opts.clone()
                },
            },
        };
        members.push(enumerate_member(fs, path, &member_opts)?);
    }
    let mut notes = Vec::new();
    let leader = (0..members.len())
        .max_by_key(|i| (members[*i].final_commit, std::cmp::Reverse(*i)))
        .unwrap_or(0);
    let voters = members
        .get(leader)
        .map(|m| m.voters.clone())
        .unwrap_or_default();
    let committed = members.iter().map(|m| m.final_commit).max().unwrap_or(0);
    // Voter → member index (None: a voter whose data dir was not given).
    let voter_members: Vec<Option<usize>> = voters
        .iter()
        .map(|id| members.iter().position(|m| m.history.node_id == *id))
        .collect();
    let missing = voter_members.iter().filter(|m| m.is_none()).count();
    if missing > 0 {
        notes.push(format!(
            "{missing} voter(s) of the final configuration were not given; they are assumed live and up to date (only the given members can fail the quorum check)"
        ));
    }
    let quorum = voters.len() / 2 + 1;
    let f = voters.len().saturating_sub(1) / 2;
    let max_crashed = opts.max_crashed.map_or(f, |m| m.min(f));
    let live_held: Vec<u64> = members
        .iter()
        .map(|m| {
            if m.baseline.refused.is_some() || m.baseline.no_wal {
                0
            } else {
                m.baseline.last_index().min(m.final_last)
            }
        })
        .collect();
    let mut findings = Vec::new();
    let name = |i: usize| paths[i].display().to_string();

    // The input itself.
    if !voters.is_empty() {
        let mut held: Vec<u64> = voter_members
            .iter()
            .map(|m| m.map(|i| live_held[i]).unwrap_or(u64::MAX))
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        let q = held.get(quorum - 1).copied().unwrap_or(0);
        if q < committed {
            let laggers: Vec<String> = voter_members
                .iter()
                .flatten()
                .filter(|i| live_held[**i] < committed)
                .map(|i| format!("{} (log ..={})", name(*i), live_held[*i]))
                .collect();
            findings.push(ClusterFinding {
                kind: "cluster.committed_not_on_quorum",
                crashed: Vec::new(),
                message: format!(
                    "entries up to commit {committed} are held by fewer than a quorum ({quorum}) of voters in the input: only through {q}. At least one of {} acknowledged entries it no longer has: on restart its leader sends commit {committed} and it panics (tocommit({committed}) is out of range)",
                    laggers.join(", ")
                ),
                only: None,
                count: 1,
            });
        }
    }

    // Crash sets.
    let voter_idx: Vec<usize> = voter_members.iter().flatten().copied().collect();
    let mut combinations = 0usize;
    for size in 1..=max_crashed.min(voter_idx.len()) {
        for set in subsets(&voter_idx, size) {
            // Each crashed member's states as (known commit, held, result index), by commit.
            let per: Vec<Vec<(u64, u64, usize)>> = set
                .iter()
                .map(|&m| {
                    let mut v: Vec<(u64, u64, usize)> = members[m]
                        .results
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let c = if r.class.is_crash() {
                                r.known_commit
                            } else {
                                committed
                            };
                            let held = if matches!(r.outcome, Outcome::Refused)
                                || (r.outcome == Outcome::Violation && r.recovered_last == 0)
                            {
                                0
                            } else {
                                r.held
                            };
                            (c, held, i)
                        })
                        .collect();
                    v.sort_unstable();
                    v
                })
                .collect();
            // Prefix minima: for each member, the worst holding among its states that knew no
            // more than a given commit.
            let prefix_min: Vec<Vec<(u64, usize)>> = per
                .iter()
                .map(|states| {
                    let mut best: Option<(u64, usize)> = None;
                    states
                        .iter()
                        .map(|(_, held, i)| {
                            if best.is_none_or_greater(*held) {
                                best = Some((*held, *i));
                            }
                            best.expect("set above")
                        })
                        .collect()
                })
                .collect();
            let mut failing: Option<(usize, ClusterFinding)> = None;
            let mut fail_count = 0usize;
            // One crashed member's state sets the moment (its known commit c); the others
            // crashed no later than that (their worst state that knew at most c).
            for (setter, states) in per.iter().enumerate() {
                for &(c, held_setter, i_setter) in states {
                    combinations += 1;
                    let mut worst: Vec<Option<(u64, usize)>> = vec![None; set.len()];
                    worst[setter] = Some((held_setter, i_setter));
                    for (j, other) in per.iter().enumerate() {
                        if j == setter {
                            continue;
                        }
                        let upto = other.partition_point(|(oc, _, _)| *oc <= c);
                        worst[j] = upto.checked_sub(1).map(|u| prefix_min[j][u]);
                    }
                    if worst.iter().any(|w| w.is_none()) {
                        continue;
                    }
                    let mut held: Vec<u64> = voter_members
                        .iter()
                        .map(|vm| match vm {
                            Some(i) => match set.iter().position(|m| m == i) {
                                Some(j) => worst[j].map(|w| w.0).unwrap_or(0),
                                None => live_held[*i],
                            },
                            None => u64::MAX,
                        })
                        .collect();
                    held.sort_unstable_by(|a, b| b.cmp(a));
                    let q = held.get(quorum - 1).copied().unwrap_or(0);
                    if q >= c {
                        continue;
                    }
                    fail_count += 1;
                    let chosen: Vec<(usize, &super::member::StateResult)> = set
                        .iter()
                        .enumerate()
                        .map(|(j, m)| (*m, &members[*m].results[worst[j].expect("checked").1]))
                        .collect();
                    // Report the most telling combination: silent losses before refusals.
                    let refusals = chosen
                        .iter()
                        .filter(|(_, r)| r.outcome == Outcome::Refused)
                        .count();
                    if failing.as_ref().is_some_and(|(best, _)| *best <= refusals) {
                        continue;
                    }
                    let crashed: Vec<(usize, String)> = chosen
                        .iter()
                        .map(|(m, r)| (*m, r.spec.render(r.class)))
                        .collect();
                    let mut parts = Vec::new();
                    for (m, r) in &chosen {
                        let mut part = format!(
                            "{} in state {} ({}: {}) holds ..={}",
                            name(*m),
                            r.spec.render(r.class),
                            r.class.title(),
                            r.outcome.title(),
                            r.held
                        );
                        let tocommit = c.min(r.acked);
                        if tocommit > r.recovered_last && r.recovered_last > 0 {
                            part.push_str(&format!(
                                ", had acknowledged ..={}: its leader sends commit {tocommit} on restart → tocommit({tocommit}) is out of range [lastIndex({})]",
                                r.acked, r.recovered_last
                            ));
                        }
                        if let Some(d) = &r.detail {
                            if d.contains("raft-rs:") {
                                part.push_str(&format!(" [{d}]"));
                            }
                        }
                        parts.push(part);
                    }
                    let only = crashed
                        .iter()
                        .map(|(m, s)| format!("{m}@{s}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    failing = Some((refusals, ClusterFinding {
                        kind: "cluster.committed_lost",
                        crashed,
                        message: format!(
                            "committed entries through {c} survive on fewer than a quorum ({quorum} of {} voters), only through {q}: {}",
                            voters.len(),
                            parts.join("; ")
                        ),
                        only: Some(only),
                        count: 0,
                    }));
                }
            }
            if let Some((_, mut finding)) = failing {
                finding.count = fail_count;
                findings.push(finding);
            }
        }
    }
    Ok(ClusterRun {
        members,
        paths: paths.to_vec(),
        voters,
        quorum,
        max_crashed,
        committed,
        combinations,
        findings,
        notes,
    })
}

trait WorstHeld {
    fn is_none_or_greater(&self, held: u64) -> bool;
}

impl WorstHeld for Option<(u64, usize)> {
    fn is_none_or_greater(&self, held: u64) -> bool {
        self.map_or(true, |(h, _)| h > held)
    }
}

fn subsets(items: &[usize], size: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    fn go(
        items: &[usize],
        size: usize,
        from: usize,
        current: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if current.len() == size {
            out.push(current.clone());
            return;
        }
        for i in from..items.len() {
            current.push(items[i]);
            go(items, size, i + 1, current, out);
            current.pop();
        }
    }
    go(items, size, 0, &mut current, &mut out);
    out
}

/// Per-class × outcome counts over every member.
pub fn cluster_tally(run: &ClusterRun) -> BTreeMap<(FaultClass, Outcome), usize> {
    let mut t = BTreeMap::new();
    for m in &run.members {
        for (k, v) in m.tally() {
            *t.entry(k).or_insert(0) += v;
        }
    }
    t
}
