//! The network: every message in flight, in send order, and the current partition.
//!
//! Faults are explicit and deterministic: deliver any message (reordering), drop any, duplicate
//! any (except proposals forwarded to the leader: etcd's transport never duplicates, and a
//! duplicated proposal would be a second client request, not a Raft fault), partition into
//! groups, heal. A message whose endpoints are partitioned when it arrives is lost.

use std::collections::BTreeMap;

use raft::eraftpb::{Message, MessageType};

#[derive(Clone, Debug, Default)]
pub struct Network {
    pub queue: Vec<Message>,
    /// Node → group; nodes not listed share group 0.
    pub groups: BTreeMap<u64, u32>,
    pub dropped: u64,
    pub duplicated: u64,
}

/// Bound on messages in flight: the oldest are lost beyond it (a congested link).
const MAX_IN_FLIGHT: usize = 4096;

impl Network {
    pub fn send(&mut self, m: Message) {
        if self.queue.len() >= MAX_IN_FLIGHT {
            self.queue.remove(0);
            self.dropped += 1;
        }
        self.queue.push(m);
    }

    pub fn connected(&self, a: u64, b: u64) -> bool {
        self.groups.get(&a).copied().unwrap_or(0) == self.groups.get(&b).copied().unwrap_or(0)
    }

    pub fn take_all(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.queue)
    }

    /// Removes and returns the messages matching the filter, keeping the others in order.
    pub fn take_matching(&mut self, from: Option<u64>, to: Option<u64>) -> Vec<Message> {
        let (taken, kept): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|m| from.map_or(true, |f| m.from == f) && to.map_or(true, |t| m.to == t));
        self.queue = kept;
        taken
    }

    /// The message at `k` modulo the queue length.
    pub fn take_nth(&mut self, k: u64) -> Option<Message> {
        if self.queue.is_empty() {
            return None;
        }
        let at = (k % self.queue.len() as u64) as usize;
        Some(self.queue.remove(at))
    }

    pub fn duplicate_nth(&mut self, k: u64) -> Option<&Message> {
        if self.queue.is_empty() {
            return None;
        }
        let at = (k % self.queue.len() as u64) as usize;
        if self.queue[at].get_msg_type() == MessageType::MsgPropose {
            return None;
        }
        let copy = self.queue[at].clone();
        self.queue.push(copy);
        self.duplicated += 1;
        self.queue.last()
    }

    pub fn partition(&mut self, groups: &[Vec<u64>]) {
        self.groups.clear();
        for (g, members) in groups.iter().enumerate() {
            for id in members {
                self.groups.insert(*id, g as u32 + 1);
            }
        }
    }

    pub fn heal(&mut self) {
        self.groups.clear();
    }
}
