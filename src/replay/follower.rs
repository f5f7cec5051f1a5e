//! Re-execute a member's log batch by batch as a raft-rs follower.
//!
//! Each persisted batch (the entries of one etcd `Save` followed by its HardState) is delivered
//! to a fresh raft-rs node as the leader's `MsgAppend` (prev index/term from the log so far,
//! commit from the HardState). What raft-rs then asks to persist must be exactly the batch etcd
//! persisted, and its commit must be the one etcd persisted: etcd's raft and raft-rs implement
//! the same protocol, so a difference means the WAL does not follow from Raft (§5.3, Fig. 2).
//! Votes are not re-executed (elections leave no messages in the WAL).

use super::kinds;
use bytes::Bytes;
use prost::Message as _;
use raft::eraftpb::{self, MessageType};
use raft::storage::MemStorage;
use raft::{RawNode, Storage};

use super::{discard_logger, replay_config, run_guarded};
use crate::check::{Finding, Severity};
use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::proto::translate;
use crate::proto::walpb::{CRC_TYPE, ENTRY_TYPE, STATE_TYPE};
use crate::wal::decoder::{DecodeEnd, Decoder};
use crate::wal::Location;

/// The node's storage is compacted up to its applied commit once this many applied entries
/// pile up below it (a drain moves only the uncommitted tail, so amortised O(1) per entry).
///
/// Compaction is invisible to the re-execution: raft-rs answers an append whose previous index
/// lies below its commit from the commit alone (`handle_append_entries` replies with the
/// commit and persists nothing), and every later append starts at or above the commit, whose
/// entry compaction keeps.
pub const COMPACT_LAG: u64 = 4096;

/// A leader id no etcd member has (etcd ids are random non-zero u64; this one is reserved here).
const SYNTHETIC_LEADER: u64 = u64::MAX;

#[derive(Clone, Debug, Default)]
pub struct FollowerOutcome {
    pub batches: u64,
    pub entries_persisted: u64,
    /// The most entries the node's storage held at once (bounded by the uncommitted tail plus
    /// [`COMPACT_LAG`], however long the log).
    pub peak_stored_entries: u64,
    pub findings: Vec<Finding>,
}

fn finding(
    member: &str,
    kind: &'static str,
    location: Location,
    term: u64,
    message: String,
) -> Finding {
    Finding {
        kind,
        severity: Severity::Violation,
        member: member.to_string(),
        location,
        term: Some(term),
        message,
        reference: "Raft §5.3 AppendEntries receiver rules; etcd-io/raft and raft-rs maybeAppend",
    }
}

/// Re-executes the record stream of `decoder` from the snapshot `(start_index, start_term)`.
pub fn reexecute(
    member: &str,
    mut decoder: Decoder<'_>,
    start_index: u64,
    start_term: u64,
    conf_state: &ConfState,
) -> FollowerOutcome {
    let mut outcome = FollowerOutcome::default();
    let storage = MemStorage::new();
    {
        let mut core = storage.wl();
        if start_index > 0 {
            let mut snapshot = eraftpb::Snapshot::default();
            snapshot.mut_metadata().index = start_index;
            snapshot.mut_metadata().term = start_term;
            snapshot
                .mut_metadata()
                .set_conf_state(translate::conf_state(conf_state));
            if core.apply_snapshot(snapshot).is_err() {
                return outcome;
            }
        }
    }
    let config = replay_config(u64::MAX - 1, start_index);
    let mut node = match run_guarded(|| RawNode::new(&config, storage, &discard_logger())) {
        Ok(Ok(node)) => node,
        _ => return outcome,
    };
    let mut batch: Vec<(Entry, Location)> = Vec::new();
    let mut last_state = HardState::default();
    // The start snapshot's own record is not a boundary: etcd's raft loop saves entries above a
    // snapshot index before the apply loop writes that snapshot's record, and `ReadAll` keeps
    // every entry above the start index wherever it stands in the segment. Only what the
    // snapshot covers (entries at or below its index, commit-only saves at or below it) is
    // skipped.
    loop {
        let decoded = match decoder.next_record() {
            Ok(decoded) => decoded,
            Err(DecodeEnd::Eof) | Err(_) => break,
        };
        let location = decoder.location(decoded.segment_index, decoded.offset, None);
        let data = decoded.record.data.clone().unwrap_or_else(Bytes::new);
        match decoded.record.r#type {
            // A read starting at a later segment (segments before it purged) takes the chain
            // from that segment's crc record, as etcd's decoder does (`updateCRC`); the chain
            // itself is checked by the read the scan and `ReadAll` make.
            CRC_TYPE => decoder.reseed(decoded.record.crc),
            ENTRY_TYPE => {
                if let Ok(entry) = Entry::decode(data) {
                    decoder.last_entry_index = entry.index;
                    if entry.index > start_index {
                        let location = Location {
                            raft_index: Some(entry.index),
                            ..location
                        };
                        batch.push((entry, location));
                    }
                }
            }
            STATE_TYPE => {
                let Ok(state) = HardState::decode(data) else {
                    continue;
                };
                if batch.is_empty() && state == last_state {
                    continue; // the header of a new segment, or a re-save after restart
                }
                if batch.is_empty() && start_index > 0 && state.commit <= start_index {
                    continue; // a commit the start snapshot already covers
                }
                let entries = std::mem::take(&mut batch);
                outcome.batches += 1;
                let step = run_guarded(|| deliver(&mut node, &entries, &state, location.clone()));
                match step {
                    Ok(Ok(persisted)) => {
                        outcome.entries_persisted += persisted;
                        compact_applied(&mut node, &mut outcome);
                    }
                    Ok(Err(f)) => {
                        outcome
                            .findings
                            .push(finding(member, f.0, f.1, state.term, f.2));
                        return outcome;
                    }
                    Err(panic) => {
                        let at = entries.first().map(|(_, l)| l.clone()).unwrap_or(location);
                        outcome.findings.push(finding(
                            member,
                            kinds::FOLLOWER_PANIC,
                            at,
                            state.term,
                            format!("raft-rs panicked re-executing this batch: {panic}"),
                        ));
                        return outcome;
                    }
                }
                last_state = state;
            }
            _ => {}
        }
    }
    outcome
}

/// Drops stored entries below the applied commit once [`COMPACT_LAG`] of them pile up.
fn compact_applied(node: &mut RawNode<MemStorage>, outcome: &mut FollowerOutcome) {
    let stored = |node: &RawNode<MemStorage>| {
        let store = node.store();
        match (store.first_index(), store.last_index()) {
            (Ok(first), Ok(last)) => (first, (last + 1).saturating_sub(first)),
            _ => (0, 0),
        }
    };
    let (first, count) = stored(node);
    outcome.peak_stored_entries = outcome.peak_stored_entries.max(count);
    let log = &node.raft.raft_log;
    let upto = log.applied.min(log.committed).min(log.persisted);
    if upto >= first.saturating_add(COMPACT_LAG) {
        // Keeps `upto` itself: the next append's previous entry may be the commit.
        let _ = node.mut_store().wl().compact(upto);
    }
}

type Mismatch = (&'static str, Location, String);

/// Delivers one batch; returns how many entries raft-rs persisted, or the first mismatch.
fn deliver(
    node: &mut RawNode<MemStorage>,
    batch: &[(Entry, Location)],
    state: &HardState,
    state_location: Location,
) -> Result<u64, Mismatch> {
    let last_index = node.raft.raft_log.last_index();
    let prev_index = batch
        .first()
        .map(|(e, _)| e.index - 1)
        .unwrap_or(last_index);
    if prev_index > last_index {
        let at = batch
            .first()
            .map(|(_, l)| l.clone())
            .unwrap_or(state_location);
        return Err((
            kinds::APPEND_REJECTED,
            at,
            format!("the batch starts at index {} but the log ends at {last_index}: entries are missing", prev_index + 1),
        ));
    }
    let prev_term = node.raft.raft_log.term(prev_index).unwrap_or(0);
    let term = batch
        .iter()
        .map(|(e, _)| e.term)
        .max()
        .unwrap_or(0)
        .max(state.term)
        .max(node.raft.term);
    let mut message = eraftpb::Message::default();
    message.set_msg_type(MessageType::MsgAppend);
    message.from = SYNTHETIC_LEADER;
    message.to = node.raft.id;
    message.term = term;
    message.index = prev_index;
    message.log_term = prev_term;
    message.commit = state.commit;
    for (entry, location) in batch {
        let translated = translate::entry(entry)
            .map_err(|e| (kinds::BAD_ENTRY, location.clone(), e.to_string()))?;
        message.entries.push(translated);
    }
    node.step(message)
        .map_err(|e| (kinds::STEP_REFUSED, state_location.clone(), e.to_string()))?;
    let mut persisted: Vec<eraftpb::Entry> = Vec::new();
    while node.has_ready() {
        let mut ready = node.ready();
        for message in ready
            .take_messages()
            .into_iter()
            .chain(ready.take_persisted_messages())
        {
            if message.get_msg_type() == MessageType::MsgAppendResponse && message.reject {
                let at = batch
                    .first()
                    .map(|(_, l)| l.clone())
                    .unwrap_or(state_location.clone());
                return Err((
                    kinds::APPEND_REJECTED,
                    at,
                    format!("raft-rs rejects the batch: no entry at index {prev_index} with term {prev_term} to follow"),
                ));
            }
        }
        let entries = ready.take_entries();
        if !entries.is_empty() {
            // Stored without their data: this node only compares indexes and terms and drops
            // what it commits, and the data would keep the decoder's segment buffers alive.
            let stored: Vec<eraftpb::Entry> = entries
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e.data = Bytes::new();
                    e
                })
                .collect();
            node.mut_store()
                .wl()
                .append(&stored)
                .map_err(|e| (kinds::APPEND_REFUSED, state_location.clone(), e.to_string()))?;
            persisted.extend(entries);
        }
        if let Some(hs) = ready.hs() {
            node.mut_store().wl().set_hardstate(hs.clone());
        }
        let _ = ready.take_committed_entries();
        let mut light = node.advance(ready);
        let _ = light.take_committed_entries();
        node.advance_apply();
    }
    // What raft-rs asked to persist must be exactly what etcd persisted.
    let expected: Vec<(u64, u64)> = batch.iter().map(|(e, _)| (e.index, e.term)).collect();
    let got: Vec<(u64, u64)> = persisted.iter().map(|e| (e.index, e.term)).collect();
    if got != expected {
        let at = batch
            .first()
            .map(|(_, l)| l.clone())
            .unwrap_or(state_location.clone());
        let why = if got.is_empty() && node.raft.raft_log.committed > prev_index {
            format!(
                " (the append starts below the commit index {}: a committed entry was rewritten)",
                node.raft.raft_log.committed
            )
        } else {
            String::new()
        };
        return Err((
            kinds::PERSIST_MISMATCH,
            at,
            format!("etcd persisted entries {expected:?}, raft-rs would persist {got:?}{why}"),
        ));
    }
    let persisted = persisted.len() as u64;
    if batch.is_empty()
        && node.raft.raft_log.committed != state.commit.min(node.raft.raft_log.last_index())
    {
        // A commit-only save: raft-rs must land on the same commit.
        return Err((
            kinds::COMMIT_MISMATCH,
            Location {
                raft_index: Some(state.commit),
                ..state_location
            },
            format!(
                "etcd persisted commit {}, raft-rs is at {}",
                state.commit, node.raft.raft_log.committed
            ),
        ));
    }
    let _ = node.store().initial_state();
    Ok(persisted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::walpb::WalSnapshot;
    use crate::wal::decoder::{DecoderMode, Segment};
    use crate::wal::name::parse_wal_name;
    use crate::wal::writer::WalWriter;

    fn decoder_of(writer: &WalWriter) -> Decoder<'static> {
        let segments = writer
            .files(false)
            .into_iter()
            .map(|(name, bytes)| Segment {
                name: parse_wal_name(&name).unwrap(),
                bytes,
            })
            .collect();
        Decoder::from_segments(segments, DecoderMode::Strict)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            r#type: 0,
            term,
            index,
            data: Some(Bytes::from(format!("v{index}"))),
        }
    }

    #[test]
    fn a_clean_log_with_an_uncommitted_overwrite_reexecutes() {
        let mut w = WalWriter::create(b"m");
        w.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 1,
            },
            &[entry(1, 1), entry(1, 2), entry(1, 3)],
        );
        // A new leader at term 2 overwrites the uncommitted tail from index 2.
        w.save(
            &HardState {
                term: 2,
                vote: 2,
                commit: 2,
            },
            &[entry(2, 2)],
        );
        let outcome = reexecute("m", decoder_of(&w), 0, 0, &ConfState::default());
        assert!(outcome.findings.is_empty(), "{:?}", outcome.findings);
        assert_eq!(outcome.entries_persisted, 4);
    }

    #[test]
    fn rewriting_a_committed_entry_is_a_finding_at_its_index() {
        let mut w = WalWriter::create(b"m");
        w.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 3,
            },
            &[entry(1, 1), entry(1, 2), entry(1, 3)],
        );
        w.save(
            &HardState {
                term: 2,
                vote: 2,
                commit: 3,
            },
            &[entry(2, 2)],
        );
        let outcome = reexecute("m", decoder_of(&w), 0, 0, &ConfState::default());
        assert_eq!(outcome.findings.len(), 1, "{:?}", outcome.findings);
        assert_eq!(outcome.findings[0].kind, kinds::PERSIST_MISMATCH);
        assert!(
            outcome.findings[0]
                .message
                .contains("committed entry was rewritten"),
            "{}",
            outcome.findings[0].message
        );
        assert_eq!(outcome.findings[0].location.raft_index, Some(2));
    }

    #[test]
    fn an_append_that_does_not_follow_the_log_is_rejected() {
        let mut w = WalWriter::create(b"m");
        w.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 1,
            },
            &[entry(1, 1), entry(1, 2)],
        );
        // Index 4 follows nothing: etcd's raft would never persist it.
        w.save(
            &HardState {
                term: 1,
                vote: 1,
                commit: 1,
            },
            &[entry(1, 4)],
        );
        let outcome = reexecute("m", decoder_of(&w), 0, 0, &ConfState::default());
        assert_eq!(outcome.findings.len(), 1, "{:?}", outcome.findings);
        assert_eq!(
            outcome.findings[0].kind,
            kinds::APPEND_REJECTED,
            "{}",
            outcome.findings[0].message
        );
        assert_eq!(outcome.findings[0].location.raft_index, Some(4));
    }

    /// etcd's real record order around a local snapshot: the raft loop saves entries 11 and 12
    /// before the apply loop writes the record of the snapshot at 10. Re-executed from that
    /// snapshot (a member read from it), every batch follows, as etcd's `ReadAll` agrees.
    #[test]
    fn entries_saved_before_their_snapshot_record_reexecute() {
        let hard = |commit| HardState {
            term: 1,
            vote: 1,
            commit,
        };
        let mut w = WalWriter::create(b"m");
        w.save(
            &hard(10),
            &(1..=10).map(|i| entry(1, i)).collect::<Vec<_>>(),
        );
        w.save(&hard(11), &[entry(1, 11)]);
        w.save(&hard(11), &[entry(1, 12)]);
        w.save_snapshot(&WalSnapshot {
            index: 10,
            term: 1,
            conf_state: None,
        });
        w.save(&hard(12), &[]);
        w.save(&hard(13), &[entry(1, 13)]);
        let outcome = reexecute("m", decoder_of(&w), 10, 1, &ConfState::default());
        assert!(outcome.findings.is_empty(), "{:?}", outcome.findings);
        assert_eq!(outcome.entries_persisted, 3);
        // The same log re-executed from its beginning persists every entry.
        let whole = reexecute("m", decoder_of(&w), 0, 0, &ConfState::default());
        assert!(whole.findings.is_empty(), "{:?}", whole.findings);
        assert_eq!(whole.entries_persisted, 13);
    }

    /// A log long enough to be compacted many times: the storage stays bounded, and a rewrite
    /// of a committed entry far below the tail (long compacted away) is still the same finding,
    /// while an uncommitted overwrite still re-executes.
    #[test]
    fn compaction_bounds_the_storage_and_changes_no_finding() {
        let total = 10 * COMPACT_LAG;
        let write = |rewrite_committed: bool| {
            let mut w = WalWriter::create(b"m");
            let mut index = 0;
            while index < total {
                let batch: Vec<Entry> = (index + 1..=index + 8).map(|i| entry(1, i)).collect();
                index += 8;
                // The commit trails the tail by one batch: the tail is never compacted.
                let state = HardState {
                    term: 1,
                    vote: 1,
                    commit: index - 8,
                };
                w.save(&state, &batch);
            }
            let state = HardState {
                term: 2,
                vote: 2,
                commit: index - 8,
            };
            if rewrite_committed {
                w.save(&state, &[entry(2, 100)]);
            } else {
                w.save(&state, &[entry(2, index - 3)]);
            }
            w
        };
        let clean = reexecute("m", decoder_of(&write(false)), 0, 0, &ConfState::default());
        assert!(clean.findings.is_empty(), "{:?}", clean.findings);
        assert_eq!(clean.entries_persisted, total + 1);
        assert!(
            clean.peak_stored_entries <= COMPACT_LAG + 16,
            "stored {} entries at once",
            clean.peak_stored_entries
        );
        let rewritten = reexecute("m", decoder_of(&write(true)), 0, 0, &ConfState::default());
        assert_eq!(rewritten.findings.len(), 1, "{:?}", rewritten.findings);
        assert_eq!(rewritten.findings[0].kind, kinds::PERSIST_MISMATCH);
        assert!(rewritten.findings[0]
            .message
            .contains("committed entry was rewritten"));
        assert_eq!(rewritten.findings[0].location.raft_index, Some(100));
    }
}
