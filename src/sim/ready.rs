//! Ready persistence: what a node's `Ready` asks for, handled in raft-rs 0.7's documented order
//! (messages, committed entries, entries + HardState through etcd's `WAL.Save` with its fsync
//! rule, raft storage append, persisted messages, `advance`, the light ready).

use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage};

use super::disk::Disk;
use super::entry::to_etcd;
use crate::proto::raftpb::{Entry, HardState};
use crate::proto::translate;

use super::apply::{apply_entries, apply_kv};
use super::cluster::{finding, Effects, Inject, StateMachine};

pub(super) fn handle_ready(
    id: u64,
    raw: &mut RawNode<MemStorage>,
    disk: &mut Disk,
    sm: &mut StateMachine,
    inject: Option<Inject>,
    effects: &mut Effects,
) {
    let mut rd = raw.ready();
    if let Some(ss) = rd.ss() {
        if ss.raft_state == StateRole::Leader {
            effects.leader_of_term = Some(raw.raft.term);
        }
    }
    effects.messages.extend(rd.take_messages());
    if !rd.snapshot().is_empty() {
        effects.findings.push(finding(
            "sim.unexpected_snapshot",
            format!("n{id} received a snapshot (the simulation never compacts)"),
        ));
    }
    let committed = rd.take_committed_entries();
    // Persist: WAL first, then raft's storage (etcd: wal.Save, then raftStorage.Append).
    let (hs, entries) = to_save(&rd);
    let stored_last = raw.store().last_index().unwrap_or(0);
    persist(raw, disk, &hs, &entries, stored_last, inject);
    {
        let store = raw.mut_store();
        let mut core = store.wl();
        if !rd.entries().is_empty() {
            core.append(rd.entries())
                .expect("raft-rs hands out appendable entries");
        }
        if let Some(hs) = rd.hs() {
            core.set_hardstate(hs.clone());
        }
    }
    effects.messages.extend(rd.take_persisted_messages());
    let mut light = raw.advance_append(rd);
    if let Some(commit) = light.commit_index() {
        let hs = raw.raft.hard_state();
        let state = HardState {
            term: hs.term,
            vote: hs.vote,
            commit,
        };
        persist(raw, disk, &state, &[], u64::MAX, inject);
        raw.mut_store().wl().mut_hard_state().commit = commit;
    }
    effects.messages.extend(light.take_messages());
    // Apply after persisting (etcd applies concurrently with the Save; both orders are legal).
    // Applying first, as raft-rs's docs list it, makes a leader that applies its own removal
    // panic in `on_persist_entries` (raft-rs 0.7 unwraps the leader's own progress) when the
    // same Ready also carries new entries.
    apply_entries(id, raw, sm, &committed, inject, effects);
    let committed = light.take_committed_entries();
    apply_entries(id, raw, sm, &committed, inject, effects);
    if inject == Some(Inject::ApplyBeforeCommit) {
        for e in &entries {
            if e.r#type == 0 && e.index > sm.applied {
                apply_kv(sm, e, effects);
                sm.early.insert(e.index, e.term);
            }
        }
    }
    raw.advance_apply();
}

pub(super) fn persist(
    raw: &RawNode<MemStorage>,
    disk: &mut Disk,
    hs: &HardState,
    entries: &[Entry],
    stored_last: u64,
    inject: Option<Inject>,
) {
    if hs.is_empty() && entries.is_empty() {
        return;
    }
    match inject {
        Some(Inject::AckBeforeFsync) => {
            // The previous Ready's fsync completes now; this one's comes later.
            disk.refresh();
            disk.save(hs, entries, true);
        }
        Some(Inject::PersistHardStateBeforeEntries) => {
            disk.refresh();
            if entries.is_empty() {
                disk.save(hs, entries, false);
            } else {
                if !hs.is_empty() {
                    disk.save(hs, &[], false);
                    disk.sync();
                }
                disk.save(&HardState::default(), entries, true);
            }
        }
        Some(Inject::TruncateCommittedOnConflict)
            if !entries.is_empty() && entries[0].index <= stored_last =>
        {
            // Truncate from the commit index: re-writing entry commit-1 drops every entry
            // after it (ReadAll's overwrite rule), then the new entries follow a gap.
            let commit = raw.raft.raft_log.committed;
            if commit >= 2 && commit < entries[0].index {
                let context = raft::GetEntriesContext::empty(false);
                if let Ok(before) = raw.raft.raft_log.slice(commit - 1, commit, None, context) {
                    let before: Vec<Entry> = before.iter().map(to_etcd).collect();
                    disk.save(&HardState::default(), &before, false);
                }
            }
            disk.save(hs, entries, false);
        }
        _ => {
            disk.save(hs, entries, false);
        }
    }
}

/// What etcd's `WAL.Save` gets from a Ready: the HardState (empty when unchanged) and the
/// entries in etcd's numbering.
pub(super) fn to_save(rd: &raft::Ready) -> (HardState, Vec<Entry>) {
    let hs = rd
        .hs()
        .map(translate::hard_state_from_raft)
        .unwrap_or_default();
    (hs, rd.entries().iter().map(to_etcd).collect())
}
