//! One configuration change pending at a time.
//!
//! raft's leader refuses a conf change while an earlier one is not yet applied
//! (`pendingConfIndex > applied`: the proposal becomes an empty normal entry), and a new leader
//! may not propose one before applying its whole log. So when conf change j of term T is
//! appended by the leader of T, every earlier conf change i < j is committed — and the leader
//! carries that commit in every MsgApp holding j (`commitTo(min(m.Commit, lastnewi))`). Hence:
//! at the end of the batch that persists j, a member whose HardState is in term T has a commit
//! ≥ i. (Entries of an older term re-sent by a later leader are not judged: that leader's
//! commit may lag.)

use super::{Finding, Severity};
use crate::proto::raftpb::HardState;
use crate::wal::Location;

pub const KIND: &str = "raft.conf_change_pending";
pub const REFERENCE: &str =
    "Raft thesis §4.1 (one configuration change at a time); etcd raft pendingConfIndex; raft-rs 'possible unapplied conf change'";

#[derive(Clone, Debug)]
struct Pending {
    index: u64,
    term: u64,
    earlier: u64,
    location: Location,
}

#[derive(Clone, Debug, Default)]
pub struct ConfPending {
    pending: Vec<Pending>,
}

impl ConfPending {
    /// Conf change `index` (term `term`) landed; `earlier` is the previous conf change in the log.
    pub fn on_conf_entry(
        &mut self,
        index: u64,
        term: u64,
        earlier: Option<u64>,
        committed: u64,
        location: impl FnOnce() -> Location,
    ) {
        if let Some(earlier) = earlier.filter(|e| *e > committed) {
            self.pending.push(Pending {
                index,
                term,
                earlier,
                location: location(),
            });
        }
    }

    /// Entries from `index` on were overwritten.
    pub fn truncate(&mut self, index: u64) {
        self.pending.retain(|p| p.index < index);
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// A batch ended; `state` is the HardState in force after it (the batch's own state record,
    /// or the previous one when the batch did not change it).
    pub fn end_batch(
        &mut self,
        member: &str,
        state: Option<&HardState>,
        committed: u64,
        findings: &mut Vec<Finding>,
    ) {
        let Some(state) = state else {
            self.pending.clear();
            return;
        };
        for p in self.pending.drain(..) {
            let commit = state.commit.max(committed);
            if state.term == p.term && commit < p.earlier {
                findings.push(Finding::new(
                    KIND,
                    Severity::Violation,
                    member,
                    p.location,
                    Some(p.term),
                    format!(
                        "conf change {} was appended in term {} while the conf change at {} was still uncommitted (commit {commit})",
                        p.index, p.term, p.earlier
                    ),
                    REFERENCE,
                ));
            }
        }
    }
}
