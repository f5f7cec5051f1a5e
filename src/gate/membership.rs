//! Membership facts the upgrade rules need: which conf-change kinds the log uses, learner counts
//! along the committed log, promotions, and whether the member removed itself.

use std::collections::BTreeMap;

use crate::check::conf_model::ConfTimeline;
use crate::proto::payload::Payload;
use crate::proto::raftpb::{ConfChangeTransition, ConfChangeType, Entry, EntryType};

/// How many of each conf-change kind a log holds, with the first raft indexes of each.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConfChangeUse {
    /// Kind → (count, first indexes, at most [`KEEP`]).
    pub kinds: BTreeMap<String, (usize, Vec<u64>)>,
    /// Learner promotions (etcd's `AddNode` with `isPromote`): raft index and member id.
    pub promotions: Vec<(u64, u64)>,
    /// `ConfChangeV2` entries (etcd never writes them; every etcd release panics applying one).
    pub v2_entries: Vec<u64>,
    /// The raft index of a committed `RemoveNode` of this member itself.
    pub self_removed_at: Option<u64>,
}

pub const KEEP: usize = 8;

#[derive(serde::Deserialize, Default)]
struct Context {
    #[serde(rename = "isPromote", default)]
    is_promote: bool,
}

impl ConfChangeUse {
    fn note(&mut self, kind: String, index: u64) {
        let slot = self.kinds.entry(kind).or_default();
        slot.0 += 1;
        if slot.1.len() < KEEP {
            slot.1.push(index);
        }
    }

    /// Feeds one entry (with its decoded payload); `committed`: index ≤ the member's commit.
    pub fn add(&mut self, entry: &Entry, payload: &Payload, committed: bool, node_id: Option<u64>) {
        match payload {
            Payload::ConfChange { change, .. } => {
                let promote = change
                    .context
                    .as_deref()
                    .and_then(|c| serde_json::from_slice::<Context>(c).ok())
                    .unwrap_or_default()
                    .is_promote;
                let kind = match ConfChangeType::try_from(change.r#type) {
                    Ok(ConfChangeType::ConfChangeAddNode) if promote => {
                        self.promotions.push((entry.index, change.node_id));
                        "AddNode (promote learner)".to_string()
                    }
                    Ok(ConfChangeType::ConfChangeAddNode) => "AddNode".into(),
                    Ok(ConfChangeType::ConfChangeRemoveNode) => {
                        if committed && node_id.is_some_and(|id| id == change.node_id) {
                            self.self_removed_at = Some(entry.index);
                        }
                        "RemoveNode".into()
                    }
                    Ok(ConfChangeType::ConfChangeUpdateNode) => "UpdateNode".into(),
                    Ok(ConfChangeType::ConfChangeAddLearnerNode) => "AddLearnerNode".into(),
                    Err(_) => format!("ConfChangeType({})", change.r#type),
                };
                self.note(kind, entry.index);
            }
            Payload::ConfChangeV2(cc) => {
                let transition = match ConfChangeTransition::try_from(cc.transition) {
                    Ok(ConfChangeTransition::ConfChangeTransitionAuto) => "auto",
                    Ok(ConfChangeTransition::ConfChangeTransitionJointImplicit) => "joint implicit",
                    Ok(ConfChangeTransition::ConfChangeTransitionJointExplicit) => "joint explicit",
                    Err(_) => "unknown transition",
                };
                let shape = if cc.changes.is_empty() {
                    "leave joint".to_string()
                } else {
                    format!("{transition}, {} change(s)", cc.changes.len())
                };
                self.v2_entries.push(entry.index);
                self.note(format!("ConfChangeV2 ({shape})"), entry.index);
            }
            Payload::BadConfChange(_) => {
                let kind = if entry.r#type == EntryType::EntryConfChangeV2 as i32 {
                    "ConfChangeV2 (undecodable)"
                } else {
                    "ConfChange (undecodable)"
                };
                self.note(kind.into(), entry.index);
            }
            _ => {}
        }
    }

    /// `AddNode ×4 (1, 2, 3, 11), RemoveNode ×1 (93)`.
    pub fn summary(&self) -> String {
        if self.kinds.is_empty() {
            return "none".into();
        }
        self.kinds
            .iter()
            .map(|(kind, (count, first))| {
                let list = first
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = if *count > first.len() { ", …" } else { "" };
                format!("{kind} ×{count} ({list}{more})")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Learners along the committed log (raft's configuration: etcd's `IsLearner` members).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LearnerUse {
    /// Learner ids after the last committed entry; `None` when the configuration is unknown.
    pub now: Option<Vec<u64>>,
    pub now_at: u64,
    /// The most learners at once, and the first index where that many were learners.
    pub max: usize,
    pub max_at: Option<u64>,
}

pub fn learner_use(timeline: &ConfTimeline) -> LearnerUse {
    let learners = |c: &crate::check::conf_model::Config| -> Vec<u64> {
        let mut ids: Vec<u64> = c.learners.iter().chain(&c.learners_next).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut out = LearnerUse {
        now: timeline.at(timeline.applied_through).map(learners),
        now_at: timeline.applied_through,
        ..Default::default()
    };
    for (index, config) in &timeline.points {
        if let Some(config) = config {
            let n = learners(config).len();
            if n > out.max {
                out.max = n;
                out.max_at = Some(*index);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::conf_model::Config;
    use crate::proto::payload::decode_payload;
    use crate::proto::raftpb::ConfChange;
    use prost::Message;

    fn cc(index: u64, kind: ConfChangeType, node: u64, context: Option<&str>) -> Entry {
        Entry {
            r#type: 1,
            term: 1,
            index,
            data: Some(
                ConfChange {
                    id: 0,
                    r#type: kind as i32,
                    node_id: node,
                    context: context.map(|c| c.as_bytes().to_vec()),
                }
                .encode_to_vec()
                .into(),
            ),
        }
    }

    #[test]
    fn counts_kinds_promotions_and_self_removal() {
        let mut use_ = ConfChangeUse::default();
        let entries = [
            cc(
                1,
                ConfChangeType::ConfChangeAddNode,
                1,
                Some(r#"{"id":1,"peerURLs":["a"]}"#),
            ),
            cc(
                2,
                ConfChangeType::ConfChangeAddLearnerNode,
                2,
                Some(r#"{"id":2,"peerURLs":["b"],"isLearner":true}"#),
            ),
            cc(
                3,
                ConfChangeType::ConfChangeAddNode,
                2,
                Some(r#"{"id":2,"peerURLs":null,"isPromote":true}"#),
            ),
            cc(4, ConfChangeType::ConfChangeRemoveNode, 1, None),
        ];
        for e in &entries {
            use_.add(e, &decode_payload(e), true, Some(1));
        }
        assert_eq!(use_.promotions, vec![(3, 2)]);
        assert_eq!(use_.self_removed_at, Some(4));
        assert_eq!(
            use_.summary(),
            "AddLearnerNode ×1 (2); AddNode ×1 (1); AddNode (promote learner) ×1 (3); RemoveNode ×1 (4)"
        );
    }

    #[test]
    fn learners_now_and_at_most() {
        let mut timeline = ConfTimeline::default();
        let config = |learners: &[u64]| Config {
            voters: [1].into_iter().collect(),
            learners: learners.iter().copied().collect(),
            ..Default::default()
        };
        timeline.push(1, Some(config(&[])));
        timeline.push(5, Some(config(&[2, 3])));
        timeline.push(9, Some(config(&[3])));
        timeline.applied_through = 12;
        let l = learner_use(&timeline);
        assert_eq!(l.now, Some(vec![3]));
        assert_eq!((l.max, l.max_at), (2, Some(5)));
    }
}
