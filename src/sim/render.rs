//! The simulation's text: a node's state line, the cluster's state, message type names (what
//! scenario files expect).

use raft::eraftpb::MessageType;
use raft::StateRole;

use crate::proto::translate;

use super::cluster::Sim;

impl Sim {
    pub fn node_line(&self, id: u64) -> String {
        let node = &self.nodes[&id];
        let Some(raw) = node.raft.as_ref() else {
            return format!(
                "n{id}: down{}",
                if node.broken {
                    " (cannot boot)"
                } else if node.removed {
                    " (removed)"
                } else {
                    ""
                }
            );
        };
        let r = &raw.raft;
        let role = match r.state {
            StateRole::Leader => "leader",
            StateRole::Follower => "follower",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "precandidate",
        };
        let conf = crate::check::conf_model::Config::from_conf_state(
            &translate::conf_state_from_raft(&r.prs().conf().to_conf_state()),
        );
        format!(
            "n{id}: {role} term={} vote={} last={} commit={} applied={} {}",
            r.term,
            r.vote,
            r.raft_log.last_index(),
            r.raft_log.committed,
            node.sm.applied,
            conf
        )
    }

    pub fn state_lines(&self) -> String {
        self.nodes
            .keys()
            .map(|id| self.node_line(*id))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Message types worth naming in a script.
pub fn message_type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::MsgAppend => "MsgApp",
        MessageType::MsgAppendResponse => "MsgAppResp",
        MessageType::MsgRequestVote => "MsgVote",
        MessageType::MsgRequestVoteResponse => "MsgVoteResp",
        MessageType::MsgRequestPreVote => "MsgPreVote",
        MessageType::MsgRequestPreVoteResponse => "MsgPreVoteResp",
        MessageType::MsgHeartbeat => "MsgHeartbeat",
        MessageType::MsgHeartbeatResponse => "MsgHeartbeatResp",
        MessageType::MsgPropose => "MsgProp",
        MessageType::MsgSnapshot => "MsgSnap",
        MessageType::MsgTimeoutNow => "MsgTimeoutNow",
        MessageType::MsgTransferLeader => "MsgTransferLeader",
        MessageType::MsgReadIndex => "MsgReadIndex",
        MessageType::MsgReadIndexResp => "MsgReadIndexResp",
        _ => "Msg",
    }
}
