//! Cluster mode: several members of one cluster, up to f voters crashed together.
//!
//! Committed-is-durable: an entry committed by a quorum must survive on a quorum. For a crashed
//! member, each of its states holds the entries it recovers (`held`) and knew a commit
//! (`known_commit`, a lower bound of the cluster's commit when it crashed); a live member holds
//! its whole log. For every set F of at most f voters, every state s of one of them sets the
//! moment (c = what s knew committed); each other member of F takes its worst state among those
//! that knew no more than c (it crashed no later); the quorum-th largest holding must reach c.
//! A voter not in F holds its log as given — for a voter that stopped long before the others
//! (SIGKILLed, never restarted), exactly the log it had at every later moment; it is not
//! assumed up to date. A moment is judged only if Raft can reach it: c persisted on a quorum
//! counting the crashed member at what it had fsynced (`QuorumView::moment_reachable`).
//! A crash that loses only unsynced entries can never fail this
//! (those entries were not acknowledged); a storage fault on f members can only fail it when
//! the live members lack committed entries — and a member that lost entries it acknowledged is
//! handed a commit beyond its log by its leader on restart ("tocommit out of range").
//!
//! A failing combination is classified by the members that fell below the commit
//! (`QuorumLoss::of`): crash classes alone, or a state that is itself a violation, break
//! durability; a storage fault etcd cannot detect is a cluster-wide undetected loss (its known
//! weakness, failing only with `--strict`); one it detects leaves the member refusing to start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::fsio::ReadOnlyFs;

use super::member::{enumerate_member, MemberRun, StateResult};
use super::{FaultClass, OnlyState, Options, Outcome};

/// What losing committed entries from a quorum amounts to, by the fault that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuorumLoss {
    /// Crash classes alone (cuts, lost unsynced writes, torn in-flight writes) or a state that
    /// is itself a violation: committed-is-durable is broken (Raft §5.4.1: a committed entry is
    /// on a quorum that never forgets it).
    Violation,
    /// A storage fault etcd cannot tell from a torn tail: the member boots from an older prefix
    /// without a word (Alagappan et al., FAST '18, "Protocol-Aware Recovery"). etcd's known
    /// weakness, not a bug of the data: counted, shown with its reproducer, failing with
    /// `--strict` only.
    Undetected,
    /// A storage fault etcd detects: the damaged member refuses to start, so the committed
    /// entries live on fewer than a quorum of bootable members until it is restored.
    Detected,
}

impl QuorumLoss {
    pub fn key(self) -> &'static str {
        match self {
            QuorumLoss::Violation => "violation",
            QuorumLoss::Undetected => "undetected_loss",
            QuorumLoss::Detected => "refused",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            QuorumLoss::Violation => "cluster.committed_lost",
            QuorumLoss::Undetected => "cluster.committed_lost_undetected",
            QuorumLoss::Detected => "cluster.committed_on_refused_member",
        }
    }

    /// Classifies one failing combination by the states of the members that fell below the
    /// commit `c`: a state that is itself a violation, or losers that are all crash classes,
    /// break durability; otherwise a storage fault did it, silent or refused.
    fn of(chosen: &[(usize, &StateResult)], c: u64) -> QuorumLoss {
        let losers: Vec<&StateResult> = chosen
            .iter()
            .map(|(_, r)| *r)
            .filter(|r| r.held < c)
            .collect();
        if losers.iter().any(|r| r.outcome == Outcome::Violation)
            || losers.iter().all(|r| r.class.is_crash())
        {
            QuorumLoss::Violation
        } else if losers
            .iter()
            .any(|r| !r.class.is_crash() && r.outcome == Outcome::UndetectedLoss)
        {
            QuorumLoss::Undetected
        } else {
            QuorumLoss::Detected
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClusterFinding {
    pub kind: &'static str,
    pub loss: QuorumLoss,
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
    /// Failing combinations whose moment Raft cannot reach (`QuorumView::moment_reachable`).
    pub unreachable: usize,
    pub findings: Vec<ClusterFinding>,
    pub notes: Vec<String>,
}

impl ClusterRun {
    /// Findings of one kind of quorum loss.
    pub fn findings_of(&self, loss: QuorumLoss) -> impl Iterator<Item = &ClusterFinding> {
        self.findings.iter().filter(move |f| f.loss == loss)
    }
}

/// Member `i`'s options in cluster mode: with `--only` states, only the state named for it (a
/// member named in none is not enumerated, only read).
fn member_options(
    opts: &Options,
    only: Option<&[(usize, FaultClass, super::Spec)]>,
    i: usize,
) -> Options {
    match only {
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
    }
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
    let per_member: Vec<(&PathBuf, Options)> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| (path, member_options(opts, only, i)))
        .collect();
    let workers = crate::pool::workers_for(opts.jobs, paths.len());
    let members = crate::pool::map_in_order(per_member, workers, |(path, member_opts)| {
        enumerate_member(fs, path, &member_opts)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
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
                loss: QuorumLoss::Violation,
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
    let mut unreachable = 0usize;
    let quorum_view = QuorumView {
        members: &members,
        voter_members: &voter_members,
        live_held: &live_held,
        quorum,
        voters: voters.len(),
        paths,
    };
    for size in 1..=max_crashed.min(voter_idx.len()) {
        for set in subsets(&voter_idx, size) {
            let (checked, set_findings) = quorum_view.check_crash_set(&set, committed);
            combinations += checked.combinations;
            unreachable += checked.unreachable;
            findings.extend(set_findings);
        }
    }
    if unreachable > 0 {
        notes.push(format!(
            "{unreachable} combination(s) not judged: the crashed member knew a commit that its fsynced log and the other voters' logs do not hold on a quorum, a moment no leader can produce (a commit-only HardState read as part of the Save before it)"
        ));
    }
    Ok(ClusterRun {
        members,
        unreachable,
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

/// What a crash set is checked against: every member's states, who holds what live, the quorum.
struct QuorumView<'a> {
    members: &'a [MemberRun],
    /// Voter → member index (None: a voter whose data dir was not given, assumed up to date).
    voter_members: &'a [Option<usize>],
    live_held: &'a [u64],
    quorum: usize,
    voters: usize,
    paths: &'a [PathBuf],
}

/// One crashed member's state: (commit it knew, entries it holds after recovery, result index).
type HeldState = (u64, u64, usize);

/// What one crash set's check covered.
struct CrashSetCheck {
    /// (crash set, commit) combinations checked.
    combinations: usize,
    /// Failing combinations set aside because their moment is not one Raft can reach
    /// ([`QuorumView::moment_reachable`]).
    unreachable: usize,
}

impl QuorumView<'_> {
    /// Crashes the members of `set` together: one member's state sets the moment (the commit c
    /// it knew); each other member crashed no later (its worst state that knew at most c). Returns
    /// the combinations checked and, per kind of loss, the most telling failing combination
    /// (silent losses before refusals) with the number failing that way.
    fn check_crash_set(
        &self,
        set: &[usize],
        committed: u64,
    ) -> (CrashSetCheck, Vec<ClusterFinding>) {
        let per: Vec<Vec<HeldState>> = set
            .iter()
            .map(|&m| self.states_by_commit(m, committed))
            .collect();
        let prefix_min: Vec<Vec<(u64, usize)>> = per.iter().map(|s| worst_so_far(s)).collect();
        let mut combinations = 0usize;
        let mut unreachable = 0usize;
        // Per kind of loss: (refusals in the combination, finding).
        let mut best: BTreeMap<QuorumLoss, (usize, ClusterFinding)> = BTreeMap::new();
        for (setter, states) in per.iter().enumerate() {
            for &(c, held_setter, i_setter) in states {
                combinations += 1;
                let mut worst: Vec<(u64, usize)> = Vec::with_capacity(set.len());
                for (j, other) in per.iter().enumerate() {
                    if j == setter {
                        worst.push((held_setter, i_setter));
                        continue;
                    }
                    let upto = other.partition_point(|(oc, _, _)| *oc <= c);
                    match upto.checked_sub(1) {
                        Some(u) => worst.push(prefix_min[j][u]),
                        None => break,
                    }
                }
                if worst.len() < set.len() {
                    continue;
                }
                let q = self.quorum_holding(set, &worst);
                if q >= c {
                    continue;
                }
                let setter_result = &self.members[set[setter]].results[i_setter];
                if !self.moment_reachable(set[setter], setter_result, c) {
                    unreachable += 1;
                    continue;
                }
                let chosen: Vec<(usize, &StateResult)> = set
                    .iter()
                    .zip(&worst)
                    .map(|(m, w)| (*m, &self.members[*m].results[w.1]))
                    .collect();
                let loss = QuorumLoss::of(&chosen, c);
                let refusals = chosen
                    .iter()
                    .filter(|(_, r)| r.outcome == Outcome::Refused)
                    .count();
                let entry = best
                    .entry(loss)
                    .or_insert_with(|| (usize::MAX, self.finding(loss, &chosen, c, q)));
                entry.1.count += 1;
                if refusals < entry.0 {
                    let count = entry.1.count;
                    *entry = (refusals, self.finding(loss, &chosen, c, q));
                    entry.1.count = count;
                }
            }
        }
        (
            CrashSetCheck {
                combinations,
                unreachable,
            },
            best.into_values().map(|(_, f)| f).collect(),
        )
    }

    /// Whether a crash moment is one Raft can reach: a member knows commit `c` only once `c`
    /// is persisted on a quorum (Raft §5.3: the leader commits an entry once it is replicated
    /// on a majority; a follower learns the commit from the leader's AppendEntries). At the
    /// moment of crash state `r` of member `m`, `m` had persisted through `r.acked`; every
    /// other voter holds at most its log as given (for a voter that stopped long before, like a
    /// member SIGKILLed and never restarted, exactly that). If even these do not reach `c` on
    /// a quorum, no leader could have committed `c` then: the state pairs a commit-only
    /// HardState with the Save before it. etcd writes them as separate Saves when a Ready has
    /// entries and an unchanged HardState (server/wal/wal.go `Save` skips an empty HardState;
    /// raft `MustSync` does not sync a commit-only one), and the record stream cannot tell the
    /// two apart. Only crash classes have such a moment; a storage fault strikes the finished
    /// log.
    fn moment_reachable(&self, m: usize, r: &StateResult, c: u64) -> bool {
        if !r.class.is_crash() {
            return true;
        }
        let mut held: Vec<u64> = self
            .voter_members
            .iter()
            .map(|vm| match vm {
                Some(i) if *i == m => r.acked,
                Some(i) => self.live_held[*i],
                None => u64::MAX,
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(self.quorum - 1).copied().unwrap_or(0) >= c
    }

    /// A crashed member's states sorted by the commit each knew.
    fn states_by_commit(&self, m: usize, committed: u64) -> Vec<HeldState> {
        let mut v: Vec<HeldState> = self.members[m]
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
    }

    /// The quorum-th largest holding among the voters, the members of `set` in their `worst`
    /// states, the others live.
    fn quorum_holding(&self, set: &[usize], worst: &[(u64, usize)]) -> u64 {
        let mut held: Vec<u64> = self
            .voter_members
            .iter()
            .map(|vm| match vm {
                Some(i) => match set.iter().position(|m| m == i) {
                    Some(j) => worst[j].0,
                    None => self.live_held[*i],
                },
                None => u64::MAX,
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(self.quorum - 1).copied().unwrap_or(0)
    }

    fn finding(
        &self,
        loss: QuorumLoss,
        chosen: &[(usize, &StateResult)],
        c: u64,
        q: u64,
    ) -> ClusterFinding {
        let name = |i: usize| self.paths[i].display().to_string();
        let mut parts = Vec::new();
        for (m, r) in chosen {
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
        let crashed: Vec<(usize, String)> = chosen
            .iter()
            .map(|(m, r)| (*m, r.spec.render(r.class)))
            .collect();
        let only = crashed
            .iter()
            .map(|(m, s)| format!("{m}@{s}"))
            .collect::<Vec<_>>()
            .join(",");
        let why = match loss {
            QuorumLoss::Violation => "",
            QuorumLoss::Undetected => " — a storage fault etcd cannot tell from a torn write (it boots from an older prefix without a word; Alagappan et al., FAST '18)",
            QuorumLoss::Detected => " — etcd detects the damage and refuses to start the member; the entries rest on fewer than a quorum until it is restored",
        };
        ClusterFinding {
            kind: loss.kind(),
            loss,
            crashed,
            message: format!(
                "committed entries through {c} survive on fewer than a quorum ({} of {} voters), only through {q}: {}{why}",
                self.quorum,
                self.voters,
                parts.join("; ")
            ),
            only: Some(only),
            count: 0,
        }
    }
}

/// For each state in order, the worst holding among it and the states before it.
fn worst_so_far(states: &[HeldState]) -> Vec<(u64, usize)> {
    let mut best: Option<(u64, usize)> = None;
    states
        .iter()
        .map(|&(_, held, i)| {
            let current = match best {
                Some(b) if b.0 <= held => b,
                _ => (held, i),
            };
            best = Some(current);
            current
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::states::Spec;

    fn state(class: FaultClass, outcome: Outcome, held: u64) -> StateResult {
        StateResult {
            class,
            spec: Spec::Cut { k: 1 },
            outcome,
            recovered_last: held,
            held,
            known_commit: 40,
            acked: 40,
            kind: None,
            detail: None,
        }
    }

    #[test]
    fn a_quorum_lost_to_crash_classes_alone_is_a_violation() {
        let cut = state(FaultClass::FsyncPoint, Outcome::ExpectedLoss, 20);
        let torn = state(FaultClass::TornSector, Outcome::Recovered, 30);
        assert_eq!(
            QuorumLoss::of(&[(0, &cut), (1, &torn)], 40),
            QuorumLoss::Violation
        );
    }

    #[test]
    fn a_quorum_lost_to_an_undetected_storage_fault_is_undetected_loss() {
        let zeroed = state(FaultClass::ZeroedSector, Outcome::UndetectedLoss, 20);
        let cut = state(FaultClass::FsyncPoint, Outcome::ExpectedLoss, 30);
        let intact = state(FaultClass::FsyncPoint, Outcome::Recovered, 40);
        assert_eq!(QuorumLoss::of(&[(0, &zeroed)], 40), QuorumLoss::Undetected);
        assert_eq!(
            QuorumLoss::of(&[(0, &zeroed), (1, &cut)], 40),
            QuorumLoss::Undetected
        );
        assert_eq!(
            QuorumLoss::of(&[(0, &zeroed), (1, &intact)], 40),
            QuorumLoss::Undetected
        );
    }

    #[test]
    fn a_state_that_is_itself_a_violation_keeps_the_loss_a_violation() {
        let zeroed = state(FaultClass::ZeroedSector, Outcome::UndetectedLoss, 20);
        let broken = state(FaultClass::LostUnsynced, Outcome::Violation, 10);
        assert_eq!(
            QuorumLoss::of(&[(0, &zeroed), (1, &broken)], 40),
            QuorumLoss::Violation
        );
    }

    /// cluster-f's shape: voter 3 stopped with its log at 2389; member 1 (a follower) crashes
    /// in a state that knew commit 2418.
    #[test]
    fn a_commit_no_quorum_of_fsynced_logs_holds_is_not_a_moment_but_lost_acked_entries_are() {
        let voter_members = [Some(0), Some(1), Some(2)];
        let live_held = [6200, 6200, 2389];
        let view = QuorumView {
            members: &[],
            voter_members: &voter_members,
            live_held: &live_held,
            quorum: 2,
            voters: 3,
            paths: &[],
        };
        let mut lost_unsynced = state(FaultClass::LostUnsynced, Outcome::ExpectedLoss, 2417);
        lost_unsynced.acked = 2417;
        assert!(!view.moment_reachable(1, &lost_unsynced, 2418));
        // It had fsynced 2418 and lost it: a reachable moment, judged (and a violation).
        let mut lost_acked = state(FaultClass::RecordBoundary, Outcome::Violation, 2417);
        lost_acked.acked = 2418;
        assert!(view.moment_reachable(1, &lost_acked, 2418));
        // The same commit with voter 3 up to date: reachable.
        let live_held = [6200, 6200, 6200];
        let view = QuorumView {
            live_held: &live_held,
            ..view
        };
        assert!(view.moment_reachable(1, &lost_unsynced, 2418));
        // A storage fault strikes the finished log: always judged.
        let zeroed = state(FaultClass::ZeroedSector, Outcome::UndetectedLoss, 10);
        assert!(view.moment_reachable(1, &zeroed, 6200));
    }

    #[test]
    fn a_quorum_lost_to_a_refused_member_is_detected() {
        let refused = state(FaultClass::BitFlip, Outcome::Refused, 0);
        assert_eq!(QuorumLoss::of(&[(0, &refused)], 40), QuorumLoss::Detected);
    }
}
