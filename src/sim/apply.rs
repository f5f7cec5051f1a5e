//! etcd's application layer in the simulation: `ValidateConfigurationChange`, applying committed
//! KV requests to the MVCC model, and applying v1 and v2 conf changes as etcd's server does.

use std::collections::BTreeSet;

use prost::Message as _;
use raft::eraftpb::{self};
use raft::storage::MemStorage;
use raft::RawNode;

use super::entry::{request_id, to_etcd};
use crate::check::conf_model::ConfOutcome;
use crate::proto::etcdserverpb::{compare, InternalRaftRequest};
use crate::proto::raftpb::{ConfChange, ConfChangeV2, Entry};
use crate::proto::translate;

use super::cluster::{
    finding, value_of, ChangeOp, ConfSpec, Effects, Inject, StateMachine, Transition,
};

/// etcd's and raft's rules, checked before proposing.
pub fn validate(
    current: &crate::check::conf_model::Config,
    removed: &BTreeSet<u64>,
    spec: &ConfSpec,
) -> Result<(), String> {
    use crate::check::conf_model::{Change, ChangeKind};
    let changes: Vec<Change> = spec
        .changes
        .iter()
        .map(|(op, id)| Change {
            kind: match op {
                ChangeOp::Voter => ChangeKind::AddNode,
                ChangeOp::Learner => ChangeKind::AddLearner,
                ChangeOp::Remove => ChangeKind::Remove,
            },
            node_id: *id,
        })
        .collect();
    for (op, id) in &spec.changes {
        if *op != ChangeOp::Remove && removed.contains(id) {
            return Err(format!(
                "{id} was removed; ids are never reused (etcd: ErrIDRemoved)"
            ));
        }
    }
    if spec.v1 {
        if changes.len() != 1 {
            return Err("a v1 change has exactly one change".into());
        }
        let (op, id) = spec.changes[0];
        let member = current.ids().any(|m| m == id);
        if removed.contains(&id) {
            return Err(format!("{id} was removed (etcd: ErrIDRemoved)"));
        }
        match op {
            ChangeOp::Voter if member && !current.learners.contains(&id) => {
                return Err(format!("{id} is already a voter (etcd: ErrIDExists)"))
            }
            ChangeOp::Learner if member => {
                return Err(format!("{id} is already a member (etcd: ErrIDExists)"))
            }
            ChangeOp::Remove if !member => {
                return Err(format!("{id} is not a member (etcd: ErrIDNotFound)"))
            }
            _ => {}
        }
        return current
            .simple(&changes)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    if changes.is_empty() {
        // raft's proposal filter takes any empty ConfChangeV2 for a leave, but only an *Auto*
        // one is applied as LeaveJoint: an empty Implicit/Explicit one is applied as EnterJoint
        // and refused ("config is already joint") after it committed — etcd would panic.
        if spec.transition != Transition::Auto {
            return Err(
                "an empty ConfChangeV2 leaves the joint config only with transition auto".into(),
            );
        }
        return current.leave_joint().map(|_| ()).map_err(|e| e.to_string());
    }
    let joint = spec.transition != Transition::Auto || changes.len() > 1;
    let result = if joint {
        current.enter_joint(spec.transition != Transition::Explicit, &changes)
    } else {
        current.simple(&changes)
    };
    result.map(|_| ()).map_err(|e| e.to_string())
}

pub(super) fn apply_kv(sm: &mut StateMachine, e: &Entry, effects: &mut Effects) {
    let waiting = request_id(e).filter(|r| sm.pending.contains(r));
    let request = waiting.and_then(|_| InternalRaftRequest::decode(e.data.clone()?).ok());
    // A transaction's compare, judged on the state it applies to (etcd answers the client
    // with `succeeded`).
    let succeeded = request
        .as_ref()
        .and_then(|r| r.txn.as_ref())
        .and_then(|txn| txn.compare.first())
        .map(|c| {
            let current = sm.kv.get(&c.key).and_then(|(_, _, _, v, _)| value_of(&v));
            let present = sm.kv.get(&c.key).is_some();
            match &c.target_union {
                Some(compare::TargetUnion::CreateRevision(0)) => !present,
                Some(compare::TargetUnion::Value(v)) => present && current == value_of(v),
                _ => false,
            }
        })
        .unwrap_or(false);
    sm.kv.apply_entry(e);
    if let Some(request_id) = waiting {
        sm.pending.remove(&request_id);
        let read = request
            .as_ref()
            .and_then(|r| r.range.as_ref())
            .and_then(|range| sm.kv.get(&range.key))
            .and_then(|(_, _, _, value, _)| value_of(&value));
        effects.acks.push((request_id, e.index, read, succeeded));
    }
}

pub(super) fn classify_v1(
    cc: &ConfChange,
    conf: &crate::check::conf_model::Config,
    outcome: &ConfOutcome,
) -> &'static str {
    if matches!(outcome, ConfOutcome::RejectedByEtcd(_)) {
        return "v1-rejected-by-etcd";
    }
    match cc.r#type {
        0 if conf.learners.contains(&cc.node_id) => "v1-promote-learner",
        0 => "v1-add-voter",
        3 if conf.voters.contains(&cc.node_id) => "v1-demote-voter",
        3 => "v1-add-learner",
        1 => "v1-remove",
        _ => "v1-update",
    }
}

pub(super) fn classify_v2(cc: &ConfChangeV2) -> &'static str {
    if cc.changes.is_empty() {
        if cc.context.as_deref() == Some(b"explicit-leave") {
            "leave-joint-explicit"
        } else {
            "leave-joint-auto"
        }
    } else {
        match cc.transition {
            0 if cc.changes.len() == 1 => "v2-simple",
            0 => "enter-joint-auto",
            1 => "enter-joint-implicit",
            _ => "enter-joint-explicit",
        }
    }
}

pub(super) fn apply_entries(
    id: u64,
    raw: &mut RawNode<MemStorage>,
    sm: &mut StateMachine,
    committed: &[eraftpb::Entry],
    inject: Option<Inject>,
    effects: &mut Effects,
) {
    for raft_entry in committed {
        let e = to_etcd(raft_entry);
        match e.r#type {
            1 => apply_v1(id, raw, sm, &e, effects),
            2 => apply_v2(id, raw, sm, &e, inject, effects),
            _ => {}
        }
        if sm.early.get(&e.index) == Some(&e.term) {
            sm.early.remove(&e.index);
        } else {
            apply_kv(sm, &e, effects);
        }
        sm.applied = e.index;
    }
}

/// raft-rs's `ConfChange::into_v2` (its `ConfChangeI` trait is not re-exported by `raft`).
pub(super) fn v1_as_v2(cc: &eraftpb::ConfChange) -> eraftpb::ConfChangeV2 {
    let mut single = eraftpb::ConfChangeSingle::default();
    single.set_change_type(cc.get_change_type());
    single.node_id = cc.node_id;
    let mut v2 = eraftpb::ConfChangeV2::default();
    v2.changes.push(single);
    v2.context = cc.context.clone();
    v2
}

/// `apply_conf_change`, noting when the node was a member before and is not after.
pub(super) fn apply_tracking_self(
    raw: &mut RawNode<MemStorage>,
    cc: &eraftpb::ConfChangeV2,
    id: u64,
    effects: &mut Effects,
) -> raft::Result<()> {
    let old = raw.raft.prs().conf().to_conf_state();
    let cs = raw.apply_conf_change(cc)?;
    if in_conf_state(&old, id) && !in_conf_state(&cs, id) {
        effects.removed_self = true;
    }
    for member in old
        .voters
        .iter()
        .chain(&old.learners)
        .chain(&old.voters_outgoing)
        .chain(&old.learners_next)
    {
        if !in_conf_state(&cs, *member) {
            effects.removed_ids.push(*member);
        }
    }
    Ok(())
}

pub(super) fn in_conf_state(cs: &eraftpb::ConfState, id: u64) -> bool {
    cs.voters
        .iter()
        .chain(&cs.learners)
        .chain(&cs.voters_outgoing)
        .chain(&cs.learners_next)
        .any(|m| *m == id)
}

pub(super) fn live_config(raw: &RawNode<MemStorage>) -> crate::check::conf_model::Config {
    crate::check::conf_model::Config::from_conf_state(&translate::conf_state_from_raft(
        &raw.raft.prs().conf().to_conf_state(),
    ))
}

pub(super) fn apply_v1(
    id: u64,
    raw: &mut RawNode<MemStorage>,
    sm: &mut StateMachine,
    e: &Entry,
    effects: &mut Effects,
) {
    let Ok(cc) = ConfChange::decode(e.data_bytes()) else {
        effects.findings.push(finding(
            "sim.conf_change_undecodable",
            format!("n{id}: entry {} does not decode", e.index),
        ));
        return;
    };
    let before = live_config(raw);
    let outcome = match sm.membership.apply_entry(1, e.data_bytes()) {
        Ok(o) => o,
        Err(err) => {
            effects.findings.push(finding(
                "sim.conf_change_refused",
                format!("n{id}: committed conf change {} refused: {err}", e.index),
            ));
            return;
        }
    };
    effects
        .transitions
        .push((e.index, classify_v1(&cc, &before, &outcome)));
    // etcd applies a change its validation rejected with NodeID = 0: a no-op for raft.
    let mut effective = cc.clone();
    if matches!(outcome, ConfOutcome::RejectedByEtcd(_)) {
        effective.node_id = 0;
    }
    match translate::conf_change(&effective) {
        Ok(Some(raft_cc)) => match apply_tracking_self(raw, &v1_as_v2(&raft_cc), id, effects) {
            Ok(()) => {}
            Err(err) => effects.findings.push(finding(
                "sim.conf_change_refused",
                format!(
                    "n{id}: raft-rs refused committed conf change {}: {err}",
                    e.index
                ),
            )),
        },
        Ok(None) => {}
        Err(err) => effects.findings.push(finding(
            "sim.conf_change_refused",
            format!("n{id}: entry {}: {err}", e.index),
        )),
    }
}

pub(super) fn apply_v2(
    id: u64,
    raw: &mut RawNode<MemStorage>,
    sm: &mut StateMachine,
    e: &Entry,
    inject: Option<Inject>,
    effects: &mut Effects,
) {
    let Ok(cc) = ConfChangeV2::decode(e.data_bytes()) else {
        effects.findings.push(finding(
            "sim.conf_change_undecodable",
            format!("n{id}: entry {} does not decode", e.index),
        ));
        return;
    };
    effects.transitions.push((e.index, classify_v2(&cc)));
    for single in &cc.changes {
        let kind = match single.r#type {
            0 => "change-add-voter",
            3 => "change-add-learner",
            1 => "change-remove",
            _ => "change-update",
        };
        effects.transitions.push((e.index, kind));
    }
    if cc.changes.is_empty() && inject == Some(Inject::SkipLeaveJoint) {
        return;
    }
    let _ = sm.membership.apply_entry(2, e.data_bytes());
    match translate::conf_change_v2(&cc) {
        Ok(None) => {} // a simple change of one UpdateNode: attributes only.
        Ok(Some(raft_cc)) => match apply_tracking_self(raw, &raft_cc, id, effects) {
            Ok(()) => {}
            Err(err) => effects.findings.push(finding(
                "sim.conf_change_refused",
                format!(
                    "n{id}: raft-rs refused committed conf change {}: {err}",
                    e.index
                ),
            )),
        },
        Err(err) => effects.findings.push(finding(
            "sim.conf_change_refused",
            format!("n{id}: entry {}: {err}", e.index),
        )),
    }
}
