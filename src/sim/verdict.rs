//! The end of a run: heal, restart every node, let the cluster converge, then check everything.
//!
//! Checks, all of which must hold for the unmodified code under the fault atlas:
//! * everything `verify` establishes, per member and across members, on the simulated WAL files:
//!   the one pipeline ([`crate::verify::verify_named`]: checks, replay, HashKV agreement);
//! * what the run itself observed: no raft-rs panic, no refused boot, one leader per term,
//!   no committed conf change refused, quiescence;
//! * clients: no acknowledged request lost from the final committed log, and each key's
//!   put/get/delete history linearizable;
//! * each node's live state agrees with its log: its raft configuration equals the one the
//!   checker derives from its WAL at its applied index, and its key space hashes like a fresh
//!   replay of its WAL (`replay::kv`) through the same index.

use std::path::PathBuf;

use bytes::Bytes;

use super::cluster::Sim;
use crate::check::conf_model::Config;
use crate::check::MemberScan;
use crate::fsio::MemFs;
use crate::member::{MemberFiles, MemberRead};
use crate::proto::translate;
use crate::verify::{verify_named, EntryReading, VerifyOptions};
use crate::wal::DecoderMode;

#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// `[kind] message` per failure; empty when everything holds.
    pub failures: Vec<String>,
    pub leader: Option<u64>,
    pub commit: u64,
    pub nodes: usize,
    /// Why the cluster did not converge, when it did not. Not a failure: after lost unsynced
    /// data a correct cluster can be stuck (e.g. the only voter left forgot the commit of the
    /// change that removed the other one). Checks needing a leader fall back to every log.
    pub stuck: Option<String>,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.failures.is_empty()
    }
}

impl Sim {
    /// Heals the network, boots every node that is down, and drives elections until one leader
    /// has committed its log on every member of its configuration.
    pub fn converge(&mut self) -> Result<u64, String> {
        self.net.heal();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in &ids {
            let node = &self.nodes[id];
            if !node.is_up() && !node.broken {
                self.boot(*id);
            }
        }
        self.stabilize()?;
        // Let time pass: every node ticks, so heartbeats carry the commit index, candidates cut
        // off by a partition time out and stale leaders step down (timeouts differ per node,
        // so elections settle). Every 25 ticks without a leader, the most up-to-date
        // promotable node is asked to campaign.
        let mut attempt = 0usize;
        for round in 0..1000u32 {
            if let Some(leader) = self.leader().filter(|l| !self.outranked(*l)) {
                if self.converged(leader) {
                    return Ok(leader);
                }
            } else if round % 25 == 0 {
                let mut candidates: Vec<(u64, u64, u64)> = self
                    .nodes
                    .values()
                    .filter_map(|n| n.raft.as_ref().map(|r| (n.id, r)))
                    .filter(|(_, r)| r.raft.promotable())
                    .map(|(id, r)| {
                        (
                            r.raft.raft_log.last_term(),
                            r.raft.raft_log.last_index(),
                            id,
                        )
                    })
                    .collect();
                if candidates.is_empty() {
                    return Err("no promotable node is up".into());
                }
                candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
                let (_, _, id) = candidates[attempt % candidates.len()];
                attempt += 1;
                self.campaign(id);
                self.stabilize()?;
                continue;
            }
            self.tick(None, 1);
            self.stabilize()?;
        }
        Err(format!(
            "the cluster did not converge in 1000 ticks:\n{}",
            self.state_lines()
        ))
    }

    /// Whether a member of the leader's configuration is in a higher term (a candidate cut
    /// off by a partition): the leader never hears of it without ticks, so elect anew.
    fn outranked(&self, leader: u64) -> bool {
        let Some(raw) = self.nodes.get(&leader).and_then(|n| n.raft.as_ref()) else {
            return true;
        };
        let term = raw.raft.term;
        let conf = raw.raft.prs().conf().to_conf_state();
        conf.voters
            .iter()
            .chain(&conf.voters_outgoing)
            .chain(&conf.learners)
            .chain(&conf.learners_next)
            .filter_map(|id| self.nodes.get(id).and_then(|n| n.raft.as_ref()))
            .any(|r| r.raft.term > term)
    }

    fn converged(&self, leader: u64) -> bool {
        let Some(raw) = self.nodes.get(&leader).and_then(|n| n.raft.as_ref()) else {
            return false;
        };
        let r = &raw.raft;
        if r.state != raft::StateRole::Leader {
            return false;
        }
        let commit = r.raft_log.committed;
        if commit != r.raft_log.last_index() || self.nodes[&leader].sm.applied != commit {
            return false;
        }
        let conf = r.prs().conf().to_conf_state();
        if conf.auto_leave {
            return false;
        }
        let members = conf
            .voters
            .iter()
            .chain(&conf.voters_outgoing)
            .chain(&conf.learners)
            .chain(&conf.learners_next);
        for id in members {
            let Some(node) = self.nodes.get(id) else {
                return false;
            };
            let Some(other) = node.raft.as_ref() else {
                return false;
            };
            if other.raft.raft_log.committed != commit
                || other.raft.raft_log.last_index() != commit
                || node.sm.applied != commit
            {
                return false;
            }
        }
        true
    }

    /// The files of every node as they are now (clean view for running nodes).
    pub fn member_files(&self) -> Vec<(u64, Vec<(String, Bytes)>)> {
        self.nodes
            .values()
            .map(|n| {
                let files = match &n.down_files {
                    Some(files) if !n.is_up() => files.clone(),
                    _ => n.disk.files(),
                };
                (n.id, files)
            })
            .collect()
    }

    /// Converges and runs every check.
    pub fn verdict(&mut self) -> Verdict {
        let mut verdict = Verdict {
            nodes: self.nodes.len(),
            ..Default::default()
        };
        let converged = match &self.halted {
            Some(_) => Ok(Err(String::new())),
            None => crate::replay::run_guarded(|| self.converge()),
        };
        match converged {
            Ok(Ok(leader)) => verdict.leader = Some(leader),
            // Halted: the livelock is a failure already.
            Ok(Err(_)) if self.halted.is_some() => {}
            Ok(Err(e)) => {
                self.stats.stuck += 1;
                verdict.stuck = Some(e);
            }
            Err(panic) => verdict
                .failures
                .push(format!("[sim.raft_panic] raft-rs panicked: {panic}")),
        }
        for f in &self.findings {
            verdict.failures.push(f.to_string());
        }
        // The checker on the WAL files, as `verify` runs it.
        let mut fs = MemFs::default();
        let files = self.member_files();
        for (id, segments) in &files {
            for (name, bytes) in segments {
                fs.insert(
                    PathBuf::from(format!("/n{id}/member/wal/{name}")),
                    bytes.clone(),
                );
            }
        }
        let mut named: Vec<(u64, (String, PathBuf))> = Vec::new();
        for (id, _) in &files {
            let root = PathBuf::from(format!("/n{id}"));
            let member = format!("n{id}");
            match MemberFiles::open(&fs, &root) {
                Ok(_) => named.push((*id, (member, root))),
                Err(e) => verdict
                    .failures
                    .push(format!("[sim.unreadable] {member}: {e}")),
            }
        }
        // Cases already run one per core.
        let options = VerifyOptions {
            mode: DecoderMode::Strict,
            entries: EntryReading::Hold,
            jobs: 1,
        };
        let members: Vec<(String, PathBuf)> = named.iter().map(|(_, m)| m.clone()).collect();
        let verified = match verify_named(&fs, &members, &options) {
            Ok(verified) => verified.members,
            Err(e) => {
                verdict.failures.push(format!("[sim.unverifiable] {e}"));
                Vec::new()
            }
        };
        for f in verified
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.severity.is_failure())
        {
            verdict.failures.push(f.to_string());
        }
        let (scans, reads): (Vec<MemberScan>, Vec<(u64, MemberRead)>) = verified
            .into_iter()
            .zip(&named)
            .map(|(report, (id, _))| (report.scan, (*id, report.read)))
            .unzip();
        // Clients: nothing acknowledged is lost; every key linearizable. Without a converged
        // leader, an acknowledged request counts as lost only if no node's log holds it.
        if verdict.leader.is_none() {
            for op in self.history.acked() {
                let super::history::Outcome::Acked { index, .. } = op.outcome else {
                    continue;
                };
                let held = reads.iter().any(|(_, read)| {
                    read.contents
                        .entries
                        .iter()
                        .find(|e| e.index == index)
                        .and_then(super::entry::request_id)
                        == Some(op.id)
                });
                if !held {
                    verdict.failures.push(format!(
                        "[sim.acked_lost] r{} ({:?} {} via n{}) was acknowledged at index {index}, but no node's log holds it there",
                        op.id, op.kind, op.key, op.node
                    ));
                }
            }
        }
        if let Some(leader) = verdict.leader {
            if let Some((_, read)) = reads.iter().find(|(id, _)| *id == leader) {
                let entries = &read.contents.entries;
                let commit = read.contents.hard_state.commit;
                verdict.commit = commit;
                for op in self.history.acked() {
                    let super::history::Outcome::Acked { index, .. } = op.outcome else {
                        continue;
                    };
                    let found = entries
                        .iter()
                        .find(|e| e.index == index)
                        .filter(|e| e.index <= commit)
                        .and_then(super::entry::request_id);
                    if found != Some(op.id) {
                        verdict.failures.push(format!(
                            "[sim.acked_lost] r{} ({:?} {} via n{}) was acknowledged at index {index}, but the committed log holds {} there",
                            op.id,
                            op.kind,
                            op.key,
                            op.node,
                            found.map(|r| format!("r{r}")).unwrap_or_else(|| "something else".into())
                        ));
                    }
                }
            }
        }
        for (key, history) in self.history.non_linearizable_keys() {
            verdict.failures.push(format!(
                "[sim.not_linearizable] key {key}: no linearization of {history}"
            ));
        }
        // Live state vs the log.
        for (scan, (id, read)) in scans.iter().zip(&reads) {
            let node = &self.nodes[id];
            let Some(raw) = node.raft.as_ref() else {
                continue;
            };
            let applied = node.sm.applied;
            let live = Config::from_conf_state(&translate::conf_state_from_raft(
                &raw.raft.prs().conf().to_conf_state(),
            ));
            if let Some(logged) = scan.timeline.at(applied) {
                if *logged != live {
                    verdict.failures.push(format!(
                        "[sim.conf_diverged] n{id} runs with {live}, but its log gives {logged} at applied index {applied}"
                    ));
                }
            }
            let member = format!("n{id}");
            if let Ok(replay) =
                crate::replay::kv::replay_kv(&member, read, Some(applied), &mut |_| {})
            {
                let live_hash = node.sm.kv.hash_kv(0).map(|h| (h.hash, h.revision));
                let replay_hash = replay.store.hash_kv(0).map(|h| (h.hash, h.revision));
                if live_hash.ok() != replay_hash.ok() {
                    let render = |h: Option<(u32, i64)>| match h {
                        Some((hash, revision)) => format!("hashkv {hash} at revision {revision}"),
                        None => "no hashkv".to_string(),
                    };
                    verdict.failures.push(format!(
                        "[sim.state_diverged] n{id}: key space after applying through {applied} has {}, a replay of its WAL gives {}",
                        render(live_hash.ok()),
                        render(replay_hash.ok())
                    ));
                }
            }
        }
        verdict.failures.dedup();
        verdict.failures = cap_per_kind(std::mem::take(&mut verdict.failures), 3);
        verdict
    }
}

/// The finding kind of a failure line (`[kind]`).
fn kind_of(failure: &str) -> &str {
    failure
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map_or("", |(kind, _)| kind)
}

/// At most `max` failures of each kind, then one line counting the rest.
fn cap_per_kind(failures: Vec<String>, max: usize) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut kept = Vec::new();
    for f in &failures {
        let n = seen.entry(kind_of(f).to_string()).or_default();
        *n += 1;
        if *n <= max {
            kept.push(f.clone());
        }
    }
    for (kind, n) in seen {
        if n > max {
            kept.push(format!("[{kind}] … and {} more", n - max));
        }
    }
    kept
}
