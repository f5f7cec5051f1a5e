//! The simulated cluster: raft-rs `RawNode`s in one thread, each persisting its Ready through
//! etcd's WAL writer onto a [`Disk`], a [`Network`] of in-flight messages, clients, and the
//! injected bugs. Everything is deterministic: no clock, no thread, no unseeded randomness
//! (election timeouts are fixed per node: `min_election_tick = election_tick`, `max = +1`).
//!
//! Ready handling follows raft-rs 0.7's documented order: messages, committed
//! entries (conf changes through `apply_conf_change` at apply time), entries + HardState through
//! `WAL.Save` (fsync when `MustSync`), raft storage append, persisted messages, `advance`, then
//! the light ready's commit index (a commit-only HardState, not fsynced, as etcd) and entries.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message as _;
use raft::eraftpb::{self};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};

pub use super::apply::validate;
use super::disk::{recover, CrashMode, Disk};
use super::entry::to_raft;
use super::history::{ClientOp, History, OpKind, Outcome};
use super::net::Network;
use super::ready::{handle_ready, to_save};
pub use super::render::message_type_name;
use crate::check::conf_model::Membership;
use crate::mvcc::MvccStore;
use crate::proto::etcdserverpb::{
    compare, request_op, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    InternalRaftRequest, LeaseGrantRequest, LeaseRevokeRequest, Metadata, PutRequest, RangeRequest,
    RequestHeader, RequestOp, TxnRequest,
};
use crate::proto::raftpb::{self, ConfChange, Entry, HardState};
use crate::proto::translate;
use crate::replay::discard_logger;

pub const CLUSTER_ID: u64 = 0x5157;

/// Rounds (every Ready handled, every message delivered) before `stabilize` calls it a
/// livelock. A correct cluster quiesces in a few dozen.
const STABILIZE_ROUNDS: usize = 500;

/// Test-only bugs in the simulated persistence/apply layer (`--inject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Inject {
    /// Responses go out before the fsync: the fsync of a Ready happens only when the next one
    /// is persisted.
    AckBeforeFsync,
    /// Normal entries are applied (and clients answered) when appended, not when committed.
    ApplyBeforeCommit,
    /// An empty ConfChangeV2 (leave joint) is not applied: the node stays joint.
    SkipLeaveJoint,
    /// The HardState is written and fsynced before the entries, whose fsync comes later.
    PersistHardStateBeforeEntries,
    /// On a conflicting append the WAL is truncated from the commit index, not the conflict.
    TruncateCommittedOnConflict,
    /// A restarted node forgets its vote.
    StaleVoteAfterRestart,
}

impl Inject {
    pub const ALL: [Inject; 6] = [
        Inject::AckBeforeFsync,
        Inject::ApplyBeforeCommit,
        Inject::SkipLeaveJoint,
        Inject::PersistHardStateBeforeEntries,
        Inject::TruncateCommittedOnConflict,
        Inject::StaleVoteAfterRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Inject::AckBeforeFsync => "ack-before-fsync",
            Inject::ApplyBeforeCommit => "apply-before-commit",
            Inject::SkipLeaveJoint => "skip-leave-joint",
            Inject::PersistHardStateBeforeEntries => "persist-hardstate-before-entries",
            Inject::TruncateCommittedOnConflict => "truncate-committed-on-conflict",
            Inject::StaleVoteAfterRestart => "stale-vote-after-restart",
        }
    }

    pub fn parse(name: &str) -> Option<Inject> {
        Inject::ALL.into_iter().find(|i| i.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub segment_size: u64,
    /// Node `id` times out after `election + 2 * (id - 1)` ticks.
    pub election: usize,
    pub heartbeat: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pre_vote: false,
            check_quorum: false,
            segment_size: 16 * 1024,
            election: 10,
            heartbeat: 2,
        }
    }
}

/// Something that went wrong while the cluster ran (the end-of-run checks add more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFinding {
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for SimFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.kind, self.message)
    }
}

/// The application state of one node, rebuilt from the log at every restart.
#[derive(Default)]
pub struct StateMachine {
    pub kv: MvccStore,
    /// etcd's membership layer (its validation of v1 changes), the checker's model of it.
    pub membership: Membership,
    pub applied: u64,
    /// Requests proposed through this node, awaiting their apply.
    pub pending: BTreeSet<u64>,
    /// apply-before-commit: entries applied when appended, by index → term.
    pub early: BTreeMap<u64, u64>,
}

pub struct Node {
    pub id: u64,
    pub raft: Option<RawNode<MemStorage>>,
    pub disk: Disk,
    /// While down: the files the crash left.
    pub down_files: Option<Vec<(String, Bytes)>>,
    /// Down after a power loss or torn write (the fault atlas bounds how many at once).
    pub power_lost: bool,
    /// The node could not boot from its files (a finding was recorded).
    pub broken: bool,
    /// The node applied its own removal and shut down, as an etcd member does (raft-rs leaves
    /// that clean-up to the application; a removed leader that keeps running panics in
    /// `maybe_commit`). It never boots again, and its id is never reused.
    pub removed: bool,
    pub sm: StateMachine,
}

impl Node {
    /// A node that has not booted yet: down, with the files its disk holds.
    fn unbooted(id: u64, disk: Disk) -> Node {
        let files = disk.files();
        Node {
            id,
            raft: None,
            disk,
            down_files: Some(files),
            power_lost: false,
            broken: false,
            removed: false,
            sm: StateMachine::default(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }
}

/// What handling a Ready produced, applied to the cluster after the node is released.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) messages: Vec<eraftpb::Message>,
    /// (request, index, value read, transaction succeeded)
    pub(super) acks: Vec<(u64, u64, Option<u64>, bool)>,
    pub(super) leader_of_term: Option<u64>,
    pub(super) findings: Vec<SimFinding>,
    pub(super) transitions: Vec<(u64, &'static str)>,
    /// The node applied a configuration without itself.
    pub(super) removed_self: bool,
    /// Ids a configuration applied here dropped.
    pub(super) removed_ids: Vec<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub faults: BTreeMap<&'static str, u64>,
    /// Conf-change kinds committed and applied (counted once per log index).
    pub transitions: BTreeMap<&'static str, u64>,
    pub proposals: u64,
    pub acked: u64,
    pub messages_delivered: u64,
    /// `check`s after which the cluster did not converge (liveness, not a failure).
    pub stuck: u64,
}

pub struct Sim {
    pub options: Options,
    pub inject: Option<Inject>,
    pub nodes: BTreeMap<u64, Node>,
    pub net: Network,
    pub clock: u64,
    next_request: u64,
    pub history: History,
    pub findings: Vec<SimFinding>,
    pub stats: Stats,
    /// Election Safety as observed live: the leader of each term.
    leaders: BTreeMap<u64, u64>,
    counted_conf: BTreeSet<(u64, &'static str)>,
    /// The initial voters (the fault atlas's f is computed from them).
    pub initial_voters: u64,
    /// Set when the cluster livelocked: the run stops there (a finding was recorded).
    pub halted: Option<String>,
    /// Ids some node saw removed from a configuration: never reused (etcd's ErrIDRemoved; a
    /// member re-added under an old id with an empty log would break what the cluster
    /// remembers of it — e.g. a stale leader's match index).
    pub removed_ids: BTreeSet<u64>,
}

/// Where a client sends a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Node(u64),
    Leader,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Auto,
    Implicit,
    Explicit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeOp {
    Voter,
    Learner,
    Remove,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfSpec {
    pub v1: bool,
    pub transition: Transition,
    /// Empty (v2): leave the joint configuration.
    pub changes: Vec<(ChangeOp, u64)>,
}

pub(super) fn finding(kind: &'static str, message: String) -> SimFinding {
    SimFinding { kind, message }
}

pub fn member_context(id: u64, learner: bool, promote: bool) -> Vec<u8> {
    if promote {
        format!(r#"{{"id":{id},"peerURLs":["http://n{id}:2380"],"name":"n{id}","isPromote":true}}"#)
            .into_bytes()
    } else if learner {
        format!(r#"{{"id":{id},"peerURLs":["http://n{id}:2380"],"name":"n{id}","isLearner":true}}"#)
            .into_bytes()
    } else {
        format!(r#"{{"id":{id},"peerURLs":["http://n{id}:2380"],"name":"n{id}"}}"#).into_bytes()
    }
}

pub(super) fn metadata(id: u64) -> Vec<u8> {
    Metadata {
        node_id: id,
        cluster_id: CLUSTER_ID,
    }
    .encode_to_vec()
}

pub(super) fn value_of(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes)
        .ok()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

impl Sim {
    pub fn new(options: Options, inject: Option<Inject>) -> Sim {
        Sim {
            options,
            inject,
            nodes: BTreeMap::new(),
            net: Network::default(),
            clock: 0,
            next_request: 1,
            history: History::default(),
            findings: Vec::new(),
            stats: Stats::default(),
            leaders: BTreeMap::new(),
            counted_conf: BTreeSet::new(),
            initial_voters: 0,
            halted: None,
            removed_ids: BTreeSet::new(),
        }
    }

    fn raft_config(&self, id: u64) -> raft::Config {
        let election = self.options.election + 2 * (id.saturating_sub(1) as usize);
        raft::Config {
            id,
            applied: 0,
            election_tick: election,
            min_election_tick: election,
            max_election_tick: election + 1,
            heartbeat_tick: self.options.heartbeat,
            max_size_per_msg: u64::MAX,
            max_inflight_msgs: 256,
            pre_vote: self.options.pre_vote,
            check_quorum: self.options.check_quorum,
            ..Default::default()
        }
    }

    pub fn fault(&mut self, kind: &'static str) {
        *self.stats.faults.entry(kind).or_default() += 1;
    }

    /// etcd's bootstrap of a new cluster: every initial member writes the same AddNode /
    /// AddLearnerNode entries at term 1, committed, then boots from its WAL.
    pub fn bootstrap(&mut self, voters: u64, learners: u64) -> Result<(), String> {
        if !self.nodes.is_empty() {
            return Err("the cluster already exists".into());
        }
        self.initial_voters = voters;
        let total = voters + learners;
        let entries: Vec<Entry> = (1..=total)
            .map(|id| {
                let learner = id > voters;
                let cc = ConfChange {
                    id: 0,
                    r#type: if learner { 3 } else { 0 },
                    node_id: id,
                    context: Some(member_context(id, learner, false)),
                };
                Entry {
                    r#type: 1,
                    term: 1,
                    index: id,
                    data: Some(Bytes::from(cc.encode_to_vec())),
                }
            })
            .collect();
        let hs = HardState {
            term: 1,
            vote: 0,
            commit: total,
        };
        for id in 1..=total {
            let mut disk = Disk::create(&metadata(id), self.options.segment_size);
            disk.save(&hs, &entries, false);
            self.nodes.insert(id, Node::unbooted(id, disk));
            self.boot(id);
        }
        Ok(())
    }

    /// A node that joins later: an empty WAL, no configuration, waiting for the leader.
    pub fn create_joining(&mut self, id: u64) {
        if self.nodes.contains_key(&id) {
            return;
        }
        let disk = Disk::create(&metadata(id), self.options.segment_size);
        self.nodes.insert(id, Node::unbooted(id, disk));
        self.boot(id);
    }

    /// Boot (or restart) a node from its files, as etcd does, then handle the first Ready.
    pub fn boot(&mut self, id: u64) -> String {
        let config = self.raft_config(id);
        let inject = self.inject;
        let segment_size = self.options.segment_size;
        let Some(node) = self.nodes.get_mut(&id) else {
            return format!("n{id}: no such node");
        };
        if node.is_up() {
            return format!("n{id}: already up");
        }
        if node.removed {
            return format!("n{id}: removed from the cluster, stays down");
        }
        let Some(files) = node.down_files.clone() else {
            return format!("n{id}: no files");
        };
        let recovered = match recover(id, &files, segment_size) {
            Ok(r) => r,
            Err(e) => {
                node.broken = true;
                let f = finding("sim.boot_refused", format!("n{id} cannot restart: {e}"));
                self.findings.push(f);
                return format!("n{id}: cannot boot: {e}");
            }
        };
        let mut hs = recovered.hard_state;
        if inject == Some(Inject::StaleVoteAfterRestart) {
            hs.vote = 0;
        }
        let state = crate::replay::preflight::RestartState {
            member: "sim",
            snapshot_index: 0,
            snapshot_term: 0,
            conf_state: raftpb::ConfState::default(),
            hard_state: hs,
            entries: &recovered.entries,
        };
        // Only what raft-rs itself refuses (it panics) stops a boot: a HardState term behind the
        // last entry's term (a torn Save kept entries but not the state record) is accepted by
        // raft-rs and etcd alike.
        let problems = crate::replay::preflight::preflight(&state);
        if let Some(p) = problems
            .iter()
            .find(|p| p.kind != "raft.hardstate_term_behind_log")
        {
            node.broken = true;
            let message = format!("n{id} cannot restart: {}", p.message);
            self.findings
                .push(finding("sim.boot_refused", message.clone()));
            return message;
        }
        let storage = MemStorage::new();
        {
            let mut core = storage.wl();
            let entries: Vec<eraftpb::Entry> = recovered.entries.iter().map(to_raft).collect();
            if let Err(e) = core.append(&entries) {
                node.broken = true;
                return format!("n{id}: storage refused entries: {e}");
            }
            core.set_hardstate(translate::hard_state(&hs));
        }
        let raw = crate::replay::run_guarded(|| RawNode::new(&config, storage, &discard_logger()));
        let raw = match raw {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => {
                node.broken = true;
                let message = format!("n{id}: raft-rs refused to start: {e}");
                self.findings
                    .push(finding("sim.boot_refused", message.clone()));
                return message;
            }
            Err(panic) => {
                node.broken = true;
                let message = format!("n{id}: raft-rs panicked at start: {panic}");
                self.findings
                    .push(finding("sim.boot_refused", message.clone()));
                return message;
            }
        };
        let repaired = recovered.repaired_at.clone();
        let entries = recovered.entries.len();
        node.disk = recovered.disk;
        node.raft = Some(raw);
        node.down_files = None;
        node.power_lost = false;
        node.sm = StateMachine::default();
        self.process_ready(id);
        let node = &self.nodes[&id];
        let mut out = format!(
            "n{id}: booted with {entries} entries, hs term={} vote={} commit={}, applied={}",
            hs.term, hs.vote, hs.commit, node.sm.applied
        );
        if let Some((segment, offset)) = repaired {
            out.push_str(&format!(", Repair cut a torn tail at {segment}:{offset}"));
        }
        out
    }

    pub fn up_ids(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect()
    }

    /// The node that believes it leads in the highest term.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter_map(|n| n.raft.as_ref().map(|r| (n.id, r)))
            .filter(|(_, r)| r.raft.state == StateRole::Leader)
            .max_by_key(|(id, r)| (r.raft.term, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    pub fn resolve(&self, target: Target) -> Option<u64> {
        match target {
            Target::Node(id) => Some(id),
            Target::Leader => self.leader(),
        }
    }

    // ----------------------------------------------------------------------------------
    // Ready handling

    /// Handles every Ready the node has. Returns whether there was any.
    pub fn process_ready(&mut self, id: u64) -> bool {
        let mut any = false;
        let mut round = 0;
        loop {
            round += 1;
            if round > STABILIZE_ROUNDS {
                let message = format!(
                    "n{id} still has a Ready after {STABILIZE_ROUNDS} in a row (livelock):\n{}",
                    self.state_lines()
                );
                self.findings
                    .push(finding("sim.no_quiescence", message.clone()));
                self.halted = Some(message);
                return any;
            }
            if self.halted.is_some() {
                return any;
            }
            let inject = self.inject;
            let Some(node) = self.nodes.get_mut(&id) else {
                return any;
            };
            let Node { raft, disk, sm, .. } = node;
            let Some(raw) = raft.as_mut() else {
                return any;
            };
            if !raw.has_ready() {
                return any;
            }
            any = true;
            let mut effects = Effects::default();
            handle_ready(id, raw, disk, sm, inject, &mut effects);
            self.clock += 1;
            let removed = effects.removed_self;
            self.absorb(id, effects);
            if removed {
                let node = self.nodes.get_mut(&id).expect("present");
                node.raft = None;
                node.removed = true;
                node.down_files = Some(node.disk.files());
                node.sm.pending.clear();
                return true;
            }
        }
    }

    fn absorb(&mut self, id: u64, effects: Effects) {
        for m in effects.messages {
            self.net.send(m);
        }
        for (request, index, read, succeeded) in effects.acks {
            if let Some(op) = self.history.ops.get_mut(&request) {
                if op.outcome == Outcome::Pending {
                    op.outcome = Outcome::Acked {
                        at: self.clock,
                        index,
                        read,
                        succeeded,
                    };
                    self.stats.acked += 1;
                }
            }
        }
        if let Some(term) = effects.leader_of_term {
            match self.leaders.get(&term) {
                Some(&other) if other != id => self.findings.push(finding(
                    "sim.two_leaders_in_term",
                    format!("n{id} and n{other} both became leader in term {term}"),
                )),
                _ => {
                    self.leaders.insert(term, id);
                }
            }
        }
        for (index, kind) in effects.transitions {
            if self.counted_conf.insert((index, kind)) {
                *self.stats.transitions.entry(kind).or_default() += 1;
            }
        }
        self.removed_ids.extend(effects.removed_ids);
        self.findings.extend(effects.findings);
    }

    // ----------------------------------------------------------------------------------
    // Network

    /// Delivers one message (if its endpoints are connected and the target is up).
    pub fn deliver(&mut self, m: eraftpb::Message) -> bool {
        let (from, to) = (m.from, m.to);
        if !self.net.connected(from, to) {
            return false;
        }
        let Some(raw) = self.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()) else {
            return false;
        };
        let _ = raw.step(m);
        self.clock += 1;
        self.stats.messages_delivered += 1;
        true
    }

    /// Processes Readies and delivers messages until nothing is left (bounded).
    pub fn stabilize(&mut self) -> Result<(), String> {
        if let Some(why) = &self.halted {
            return Err(why.clone());
        }
        for _ in 0..STABILIZE_ROUNDS {
            let mut progress = false;
            for id in self.up_ids() {
                progress |= self.process_ready(id);
            }
            let batch = self.net.take_all();
            if !batch.is_empty() {
                progress = true;
            }
            for m in batch {
                self.deliver(m);
            }
            if !progress {
                return Ok(());
            }
        }
        let message = format!(
            "stabilize did not reach quiescence in {STABILIZE_ROUNDS} rounds (livelock):\n{}",
            self.state_lines()
        );
        self.findings
            .push(finding("sim.no_quiescence", message.clone()));
        self.halted = Some(message.clone());
        Err(message)
    }

    pub fn tick(&mut self, only: Option<u64>, times: u32) {
        for _ in 0..times {
            for id in self.up_ids() {
                if only.is_some_and(|o| o != id) {
                    continue;
                }
                if let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) {
                    raw.tick();
                }
            }
            self.clock += 1;
        }
    }

    pub fn campaign(&mut self, id: u64) -> String {
        match self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) {
            // etcd-io/raft refuses MsgHup on an unpromotable node (learner, removed); raft-rs
            // 0.7 does not, and leaves it to the application — which etcd never lets campaign.
            Some(raw) if !raw.raft.promotable() => {
                format!("n{id}: not promotable, cannot campaign")
            }
            Some(raw) => match raw.campaign() {
                Ok(()) => format!("n{id}: campaigning (term {})", raw.raft.term),
                Err(e) => format!("n{id}: {e}"),
            },
            None => format!("n{id}: down"),
        }
    }

    // ----------------------------------------------------------------------------------
    // Clients

    pub fn propose(&mut self, target: Target, kind: OpKind, key: &str) -> String {
        let Some(id) = self.resolve(target) else {
            return "no leader".into();
        };
        let request = self.next_request;
        self.next_request += 1;
        self.stats.proposals += 1;
        self.clock += 1;
        let header = Some(RequestHeader {
            id: request,
            ..Default::default()
        });
        let key_bytes = Bytes::from(key.as_bytes().to_vec());
        let value = format!("v{request}");
        let mut req = InternalRaftRequest {
            header,
            ..Default::default()
        };
        let what = match kind {
            OpKind::Put => {
                req.put = Some(PutRequest {
                    key: key_bytes,
                    value: Bytes::from(value.clone().into_bytes()),
                    ..Default::default()
                });
                format!("put {key}={value}")
            }
            OpKind::Delete => {
                req.delete_range = Some(DeleteRangeRequest {
                    key: key_bytes,
                    ..Default::default()
                });
                format!("delete {key}")
            }
            OpKind::Get => {
                req.range = Some(RangeRequest {
                    key: key_bytes,
                    ..Default::default()
                });
                format!("get {key}")
            }
            OpKind::Cas(expected) => {
                let compare = match expected {
                    // clientv3.Compare(clientv3.CreateRevision(key), "=", 0): absent.
                    None => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Create as i32,
                        key: key_bytes.clone(),
                        target_union: Some(compare::TargetUnion::CreateRevision(0)),
                        ..Default::default()
                    },
                    Some(v) => Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Value as i32,
                        key: key_bytes.clone(),
                        target_union: Some(compare::TargetUnion::Value(Bytes::from(
                            format!("v{v}").into_bytes(),
                        ))),
                        ..Default::default()
                    },
                };
                req.txn = Some(TxnRequest {
                    compare: vec![compare],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: key_bytes,
                            value: Bytes::from(value.clone().into_bytes()),
                            ..Default::default()
                        })),
                    }],
                    failure: Vec::new(),
                });
                format!(
                    "txn if {key}=={} then {key}={value}",
                    expected.map_or("none".into(), |v| format!("v{v}"))
                )
            }
            OpKind::LeaseGrant => {
                req.lease_grant = Some(LeaseGrantRequest {
                    ttl: 60,
                    id: request as i64,
                });
                format!("lease-grant {request}")
            }
            OpKind::LeaseRevoke(lease) => {
                req.lease_revoke = Some(LeaseRevokeRequest { id: lease as i64 });
                format!("lease-revoke {lease}")
            }
        };
        let mut op = ClientOp {
            id: request,
            node: id,
            key: key.to_string(),
            kind,
            invoke: self.clock,
            outcome: Outcome::Failed,
        };
        let result = match self.nodes.get_mut(&id) {
            Some(node) => match node.raft.as_mut() {
                Some(raw) => match raw.propose(Vec::new(), req.encode_to_vec()) {
                    Ok(()) => {
                        node.sm.pending.insert(request);
                        op.outcome = Outcome::Pending;
                        "pending".to_string()
                    }
                    Err(e) => format!("refused: {e}"),
                },
                None => "refused: node down".to_string(),
            },
            None => "refused: no such node".to_string(),
        };
        self.history.ops.insert(request, op);
        format!("r{request}: {what} via n{id}: {result}")
    }

    /// A membership change, validated against the proposer's configuration the way etcd's
    /// server validates before proposing (so a committed change is valid where it applies).
    pub fn propose_conf_change(&mut self, target: Target, spec: &ConfSpec) -> String {
        let Some(id) = self.resolve(target) else {
            return "no leader".into();
        };
        let Some(raw) = self.nodes.get(&id).and_then(|n| n.raft.as_ref()) else {
            return format!("n{id}: down");
        };
        let current = crate::check::conf_model::Config::from_conf_state(
            &translate::conf_state_from_raft(&raw.raft.prs().conf().to_conf_state()),
        );
        let mut removed = self.nodes[&id].sm.membership.removed.clone();
        removed.extend(&self.removed_ids);
        if let Err(reason) = validate(&current, &removed, spec) {
            return format!("n{id}: refused by the client: {reason}");
        }
        // The nodes a change names exist (a member being added is started, empty, first).
        for (_, node_id) in &spec.changes {
            if !self.nodes.contains_key(node_id) {
                self.create_joining(*node_id);
            }
        }
        let raw = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.raft.as_mut())
            .expect("checked above");
        let result = if spec.v1 {
            let (op, node_id) = spec.changes[0];
            let mut cc = eraftpb::ConfChange::default();
            let learner_now = current.learners.contains(&node_id);
            match op {
                ChangeOp::Voter => {
                    cc.set_change_type(eraftpb::ConfChangeType::AddNode);
                    cc.context = Bytes::from(member_context(node_id, false, learner_now));
                }
                ChangeOp::Learner => {
                    cc.set_change_type(eraftpb::ConfChangeType::AddLearnerNode);
                    cc.context = Bytes::from(member_context(node_id, true, false));
                }
                ChangeOp::Remove => cc.set_change_type(eraftpb::ConfChangeType::RemoveNode),
            }
            cc.node_id = node_id;
            raw.propose_conf_change(Vec::new(), cc)
        } else {
            let mut cc = eraftpb::ConfChangeV2::default();
            cc.set_transition(match spec.transition {
                Transition::Auto => eraftpb::ConfChangeTransition::Auto,
                Transition::Implicit => eraftpb::ConfChangeTransition::Implicit,
                Transition::Explicit => eraftpb::ConfChangeTransition::Explicit,
            });
            for (op, node_id) in &spec.changes {
                let mut single = eraftpb::ConfChangeSingle::default();
                single.set_change_type(match op {
                    ChangeOp::Voter => eraftpb::ConfChangeType::AddNode,
                    ChangeOp::Learner => eraftpb::ConfChangeType::AddLearnerNode,
                    ChangeOp::Remove => eraftpb::ConfChangeType::RemoveNode,
                });
                single.node_id = *node_id;
                cc.changes.push(single);
            }
            if spec.changes.is_empty() {
                cc.context = Bytes::from_static(b"explicit-leave");
            }
            raw.propose_conf_change(Vec::new(), cc)
        };
        self.clock += 1;
        match result {
            Ok(()) => format!("n{id}: proposed"),
            Err(e) => format!("n{id}: refused: {e}"),
        }
    }

    // ----------------------------------------------------------------------------------
    // Faults

    /// The node dies; its disk keeps what `mode` says.
    pub fn crash(&mut self, id: u64, mode: CrashMode) -> String {
        let Some(node) = self.nodes.get_mut(&id) else {
            return format!("n{id}: no such node");
        };
        if !node.is_up() {
            return format!("n{id}: already down");
        }
        // A torn write needs a write in flight: if the node has a Ready to persist, the power
        // fails during its WAL.Save — the leader's early messages are out, the entries and
        // HardState reach the OS, the fsync never completes, nothing is acknowledged.
        let mut in_flight = String::new();
        if let (CrashMode::Tear(_), Some(raw)) = (mode, node.raft.as_mut()) {
            if raw.has_ready() {
                let mut rd = raw.ready();
                let early = rd.take_messages();
                let (hs, entries) = to_save(&rd);
                let bytes = node.disk.save_interrupted(&hs, &entries);
                in_flight = format!(
                    ", torn during the save of {} entries ({bytes} bytes)",
                    entries.len()
                );
                for m in early {
                    self.net.send(m);
                }
            }
        }
        let node = self.nodes.get_mut(&id).expect("present");
        let files = node.disk.crash_files(mode);
        let written: u64 = node
            .disk
            .writer
            .segments()
            .iter()
            .map(|s| s.bytes.len() as u64)
            .sum();
        let unsynced = node.disk.unsynced_bytes();
        node.raft = None;
        node.down_files = Some(files);
        node.power_lost = !matches!(mode, CrashMode::Process);
        // Requests waiting at this node stay Pending in the history: indeterminate.
        node.sm.pending.clear();
        let kind = match mode {
            CrashMode::Process => "crash",
            CrashMode::PowerLoss => "lose-unsynced",
            CrashMode::Tear(_) => "tear",
        };
        self.fault(kind);
        format!("n{id}: {kind} ({written} bytes written, {unsynced} not yet fsynced{in_flight})")
    }

    /// How many nodes are down after a power loss right now.
    pub fn power_lost_count(&self) -> u64 {
        self.nodes.values().filter(|n| n.power_lost).count() as u64
    }

    /// The fault atlas's f: at most this many nodes may be down with lost unsynced data at once.
    pub fn atlas_f(&self) -> u64 {
        (self.initial_voters.max(1) - 1) / 2
    }

    // ----------------------------------------------------------------------------------
    // Reporting
}
