//! Explicit translation from etcd's raftpb to raft-rs `eraftpb`.
//!
//! The numbers differ for conf changes: etcd `UpdateNode=2, AddLearnerNode=3`, raft-rs
//! `AddLearnerNode=2` and no UpdateNode. UpdateNode only changes a member's URLs in etcd's
//! membership store; it is not a Raft membership change and translates to nothing.

use raft::eraftpb;

use super::raftpb::{self, ConfChangeTransition, ConfChangeType, EntryType};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("unknown entry type {0}")]
    EntryType(i32),
    #[error("unknown conf change type {0}")]
    ConfChangeType(i32),
    #[error("unknown conf change transition {0}")]
    Transition(i32),
}

pub fn entry_type(value: i32) -> Result<eraftpb::EntryType, TranslateError> {
    match EntryType::try_from(value) {
        Ok(EntryType::EntryNormal) => Ok(eraftpb::EntryType::EntryNormal),
        Ok(EntryType::EntryConfChange) => Ok(eraftpb::EntryType::EntryConfChange),
        Ok(EntryType::EntryConfChangeV2) => Ok(eraftpb::EntryType::EntryConfChangeV2),
        Err(_) => Err(TranslateError::EntryType(value)),
    }
}

/// The entry for raft-rs. Data is shared, not copied. Unknown entry types are refused rather than
/// guessed: raft-rs would treat them as normal entries and a conf change could be missed.
pub fn entry(e: &raftpb::Entry) -> Result<eraftpb::Entry, TranslateError> {
    let mut out = eraftpb::Entry::default();
    out.set_entry_type(entry_type(e.r#type)?);
    out.term = e.term;
    out.index = e.index;
    out.data = e.data.clone().unwrap_or_default();
    Ok(out)
}

pub fn hard_state(hs: &raftpb::HardState) -> eraftpb::HardState {
    eraftpb::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
        ..Default::default()
    }
}

/// raft-rs's HardState as etcd persists it (the inverse of [`hard_state`]).
pub fn hard_state_from_raft(hs: &eraftpb::HardState) -> raftpb::HardState {
    raftpb::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

pub fn conf_state(cs: &raftpb::ConfState) -> eraftpb::ConfState {
    eraftpb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
        ..Default::default()
    }
}

pub fn conf_state_from_raft(cs: &eraftpb::ConfState) -> raftpb::ConfState {
    raftpb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
    }
}

/// `None` for UpdateNode: not a membership change.
pub fn conf_change_type(value: i32) -> Result<Option<eraftpb::ConfChangeType>, TranslateError> {
    match ConfChangeType::try_from(value) {
        Ok(ConfChangeType::ConfChangeAddNode) => Ok(Some(eraftpb::ConfChangeType::AddNode)),
        Ok(ConfChangeType::ConfChangeRemoveNode) => Ok(Some(eraftpb::ConfChangeType::RemoveNode)),
        Ok(ConfChangeType::ConfChangeAddLearnerNode) => {
            Ok(Some(eraftpb::ConfChangeType::AddLearnerNode))
        }
        Ok(ConfChangeType::ConfChangeUpdateNode) => Ok(None),
        Err(_) => Err(TranslateError::ConfChangeType(value)),
    }
}

/// A v1 conf change for raft-rs, or `None` when it does not change membership (UpdateNode).
pub fn conf_change(cc: &raftpb::ConfChange) -> Result<Option<eraftpb::ConfChange>, TranslateError> {
    let Some(change_type) = conf_change_type(cc.r#type)? else {
        return Ok(None);
    };
    let mut out = eraftpb::ConfChange {
        id: cc.id,
        ..Default::default()
    };
    out.set_change_type(change_type);
    out.node_id = cc.node_id;
    out.context = cc.context.clone().unwrap_or_default().into();
    Ok(Some(out))
}

/// A v2 conf change for raft-rs, with etcd-io/raft's meaning kept. UpdateNode singles change no
/// membership and raft-rs has no such type, so they are dropped — but etcd-io/raft decides between
/// leave-joint, enter-joint and simple on the change list *with* them (`LeaveJoint()`: Auto and no
/// changes; `EnterJoint()`: not Auto or more than one change). raft-rs decides on the list it
/// gets, so the transition is chosen to force the same decision: a joint entry keeps its
/// auto-leave through `Implicit`/`Explicit` even with ≤ 1 change left, and a simple change of
/// UpdateNode alone is `None` (a no-op: nothing to apply).
pub fn conf_change_v2(
    cc: &raftpb::ConfChangeV2,
) -> Result<Option<eraftpb::ConfChangeV2>, TranslateError> {
    let transition = match ConfChangeTransition::try_from(cc.transition) {
        Ok(ConfChangeTransition::ConfChangeTransitionAuto) => eraftpb::ConfChangeTransition::Auto,
        Ok(ConfChangeTransition::ConfChangeTransitionJointImplicit) => {
            eraftpb::ConfChangeTransition::Implicit
        }
        Ok(ConfChangeTransition::ConfChangeTransitionJointExplicit) => {
            eraftpb::ConfChangeTransition::Explicit
        }
        Err(_) => return Err(TranslateError::Transition(cc.transition)),
    };
    let mut out = eraftpb::ConfChangeV2::default();
    for single in &cc.changes {
        if let Some(change_type) = conf_change_type(single.r#type)? {
            let mut s = eraftpb::ConfChangeSingle::default();
            s.set_change_type(change_type);
            s.node_id = single.node_id;
            out.changes.push(s);
        }
    }
    let auto = transition == eraftpb::ConfChangeTransition::Auto;
    let etcd_enters_joint = !auto || cc.changes.len() > 1;
    let transition = if auto && etcd_enters_joint {
        // Auto entering a joint config leaves it automatically, as Implicit does.
        eraftpb::ConfChangeTransition::Implicit
    } else {
        transition
    };
    if auto && !etcd_enters_joint && !cc.changes.is_empty() && out.changes.is_empty() {
        return Ok(None); // a simple change of one UpdateNode
    }
    out.set_transition(transition);
    out.context = cc.context.clone().unwrap_or_default().into();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_learner_and_update_numbers_translate_by_meaning_not_number() {
        // etcd 3 = AddLearnerNode → raft-rs AddLearnerNode (2); etcd 2 = UpdateNode → no change.
        assert_eq!(
            conf_change_type(3).unwrap(),
            Some(eraftpb::ConfChangeType::AddLearnerNode)
        );
        assert_eq!(conf_change_type(2).unwrap(), None);
        assert_eq!(
            conf_change_type(0).unwrap(),
            Some(eraftpb::ConfChangeType::AddNode)
        );
        assert_eq!(
            conf_change_type(1).unwrap(),
            Some(eraftpb::ConfChangeType::RemoveNode)
        );
        assert!(conf_change_type(4).is_err());
    }

    #[test]
    fn v2_drops_update_node_singles() {
        let cc = raftpb::ConfChangeV2 {
            transition: 2,
            changes: vec![
                raftpb::ConfChangeSingle {
                    r#type: 3,
                    node_id: 7,
                },
                raftpb::ConfChangeSingle {
                    r#type: 2,
                    node_id: 8,
                },
            ],
            context: None,
        };
        let out = conf_change_v2(&cc).unwrap().unwrap();
        assert_eq!(
            out.get_transition(),
            eraftpb::ConfChangeTransition::Explicit
        );
        assert_eq!(out.changes.len(), 1);
        assert_eq!(
            out.changes[0].get_change_type(),
            eraftpb::ConfChangeType::AddLearnerNode
        );
        assert_eq!(out.changes[0].node_id, 7);
    }

    /// etcd-io/raft's decision on the raw change list: `Some(None)` leave joint,
    /// `Some(Some(auto_leave))` enter joint, `None` simple.
    fn etcd_decision(transition: i32, changes: usize) -> Option<Option<bool>> {
        let auto = transition == 0;
        if auto && changes == 0 {
            Some(None)
        } else if !auto || changes > 1 {
            Some(Some(transition != 2))
        } else {
            None
        }
    }

    #[test]
    fn v2_keeps_etcd_io_raft_decision_when_update_node_singles_drop() {
        // Every mix of up to three changes of {AddNode, UpdateNode} under every transition: raft-rs
        // must leave / enter (with the same auto-leave) / change simply exactly when etcd-io/raft
        // does, and a simple change of one UpdateNode is nothing to apply.
        for transition in 0..3 {
            for n in 0..=3usize {
                for mask in 0..(1u32 << n) {
                    let changes: Vec<raftpb::ConfChangeSingle> = (0..n)
                        .map(|i| raftpb::ConfChangeSingle {
                            r#type: if mask & (1 << i) != 0 { 2 } else { 0 },
                            node_id: 10 + i as u64,
                        })
                        .collect();
                    let kept = changes.iter().filter(|c| c.r#type != 2).count();
                    let cc = raftpb::ConfChangeV2 {
                        transition,
                        changes,
                        context: None,
                    };
                    let out = conf_change_v2(&cc).unwrap();
                    let case =
                        format!("transition {transition}, {n} change(s), update mask {mask:b}");
                    match (etcd_decision(transition, n), out) {
                        (None, None) => assert_eq!(kept, 0, "{case}"),
                        (None, Some(out)) => {
                            assert_eq!(kept, 1, "{case}");
                            assert!(!out.leave_joint() && out.enter_joint().is_none(), "{case}");
                        }
                        (Some(None), Some(out)) => assert!(out.leave_joint(), "{case}"),
                        (Some(Some(auto_leave)), Some(out)) => {
                            assert!(!out.leave_joint(), "{case}");
                            assert_eq!(out.enter_joint(), Some(auto_leave), "{case}");
                            assert_eq!(out.changes.len(), kept, "{case}");
                        }
                        (decision, out) => panic!("{case}: etcd {decision:?}, raft-rs {out:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn entry_shares_data_and_refuses_unknown_types() {
        let e = raftpb::Entry {
            r#type: 1,
            term: 3,
            index: 9,
            data: Some(bytes::Bytes::from_static(b"x")),
        };
        let t = entry(&e).unwrap();
        assert_eq!(
            (t.term, t.index, t.get_entry_type()),
            (3, 9, eraftpb::EntryType::EntryConfChange)
        );
        assert_eq!(&t.data[..], b"x");
        assert!(entry(&raftpb::Entry { r#type: 9, ..e }).is_err());
    }
}
