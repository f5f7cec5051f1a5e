//! One pass over a member's WAL records, every segment in order, feeding the per-member
//! invariants.
//!
//! The scan keeps the log as etcd's ReadAll would resolve it at each point (a later record at an
//! index replaces it and everything after), the last HardState and the highest commit persisted,
//! and the configuration, applied at commit from the conf-change entries (seeded from a `.snap`
//! where the log starts after a snapshot). Invariant files judge each event; what the scan
//! leaves behind ([`MemberScan`]) feeds the cross-member checks.
//!
//! The scan stops where etcd's reader stops (a bad record, a broken CRC chain): damage is
//! reported by the decode-level findings, and what follows it is not evidence.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message;

use super::conf_model::{ConfOutcome, Config, Membership};
use super::conf_pending::ConfPending;
use super::member_scan::{MemberScan, SnapInfo, SnapshotKind, VoteRecord, WalSnapshotSeen};
use super::records::{RecordWalk, SegmentBytes};
use super::resolved_log::EntryDigest;
use super::{
    commit_boundary, commit_monotonic, committed_rewrite, conf_state, contiguity, hardstate_term,
    joint, leader_append_only, snap_files, snapshot_records, term_monotonic, vote,
};
use crate::member::MemberFiles;
use crate::proto::etcdserverpb::Metadata;
use crate::proto::raftpb::{Entry, HardState};
use crate::proto::walpb::{WalSnapshot, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE};
use crate::wal::name::SegmentName;
use crate::wal::Location;

const CONF_CHANGE: i32 = 1;
const CONF_CHANGE_V2: i32 = 2;

/// A conf-change entry of the resolved log, kept until the log moves past it.
#[derive(Clone, Debug)]
struct ConfEntry {
    entry_type: i32,
    term: u64,
    data: Bytes,
    segment: u32,
    offset: u64,
}

struct Scanner<'a> {
    out: MemberScan,
    membership: Option<Membership>,
    conf_entries: BTreeMap<u64, ConfEntry>,
    pending: ConfPending,
    in_batch: bool,
    /// Leader snapshots whose index no commit has reached yet.
    unconfirmed: Vec<(WalSnapshot, Location)>,
    seen_votes: BTreeSet<(u64, u64)>,
    _files: std::marker::PhantomData<&'a ()>,
}

fn location(segments: &[String], segment: u32, offset: u64, raft_index: Option<u64>) -> Location {
    Location {
        segment: segments.get(segment as usize).cloned(),
        offset: Some(offset),
        raft_index,
    }
}

/// Scans a member's files: every WAL segment from the first, and its `.snap` files.
pub fn scan_member(member: &str, files: &MemberFiles<'_>) -> MemberScan {
    scan_member_after(member, files, None)
}

/// [`scan_member`], after etcd's boot read `read`: when that read went through every segment
/// from the first without an error, its records are not validated again and the scan ends where
/// it ended.
pub fn scan_member_after(
    member: &str,
    files: &MemberFiles<'_>,
    read: Option<&crate::member::MemberRead>,
) -> MemberScan {
    let snaps = read_snaps(&files.snaps());
    let snap_names = files.snap_files.iter().map(|f| f.name.clone()).collect();
    let mut walk = RecordWalk::new(
        files.segments.clone(),
        SegmentBytes::Files {
            fs: files.fs,
            wal_dir: files.paths.wal_dir.clone(),
        },
    );
    if let Some(read) = read {
        let contents = &read.contents;
        let whole = read.start.index == 0
            && contents.errors.is_empty()
            && contents.segments == files.segments;
        if whole {
            walk = walk.trust(contents.last_good_offset);
            if contents.kept_entries {
                walk = walk.known_entries(&contents.entry_positions);
            }
            let mut scan = scan_records(member, walk, snaps, &contents.entries);
            scan.snap_names = snap_names;
            return scan;
        }
    }
    let mut scan = scan_records(member, walk, snaps, &[]);
    scan.snap_names = snap_names;
    scan
}

pub fn read_snaps(files: &[(String, Bytes)]) -> Vec<SnapInfo> {
    let mut snaps: Vec<SnapInfo> = files
        .iter()
        .filter_map(|(name, bytes)| {
            let snapshot = crate::snap::read_snap(bytes.clone()).ok()?;
            Some(SnapInfo {
                file_name: name.clone(),
                index: snapshot.metadata.index,
                term: snapshot.metadata.term,
                conf_state: snapshot.metadata.conf_state,
                data: snapshot.data.unwrap_or_default(),
            })
        })
        .collect();
    snaps.sort_by_key(|s| (s.index, s.term));
    snaps
}

/// Scans the records of `walk` (which must start at the member's first segment).
/// `known` are the entries a trusted read decoded (see [`RecordWalk::known_entries`]).
pub fn scan_records(
    member: &str,
    mut walk: RecordWalk<'_>,
    snaps: Vec<SnapInfo>,
    known: &[Entry],
) -> MemberScan {
    let names: Vec<SegmentName> = walk.segment_names().to_vec();
    let mut scanner = Scanner {
        out: MemberScan {
            member: member.to_string(),
            segments: names.iter().map(|n| n.file_name.clone()).collect(),
            snaps,
            ..Default::default()
        },
        membership: None,
        conf_entries: BTreeMap::new(),
        pending: ConfPending::default(),
        in_batch: false,
        unconfirmed: Vec::new(),
        seen_votes: BTreeSet::new(),
        _files: std::marker::PhantomData,
    };
    if let Some(first) = names.first() {
        // The first segment names the index expected next: the log starts after it. Only a WAL
        // whose first segment is 0-0 starts at the beginning, with an empty configuration.
        scanner.out.log.positioned = true;
        scanner.out.log.base_index = first.raft_index.saturating_sub(1);
        if first.raft_index == 0 {
            scanner.out.log.base_term = Some(0);
            scanner.membership = Some(Membership::default());
            scanner.out.timeline.push(0, Some(Config::default()));
        }
    }
    for record in walk.by_ref() {
        scanner.out.record_count += 1;
        let (segment, offset, data) = (record.segment, record.offset, record.data);
        if let Some(entry) = record.known_entry.and_then(|k| known.get(k)) {
            scanner.on_entry(entry, segment, offset);
            continue;
        }
        let ok = match record.record_type {
            // etcd's layout takes the fast path (prost's answer, held equal by its proptests).
            ENTRY_TYPE => match crate::wal::decoder::fast::entry(&data)
                .map(Ok)
                .unwrap_or_else(|| Entry::decode(data))
            {
                Ok(entry) => {
                    scanner.on_entry(&entry, segment, offset);
                    true
                }
                Err(_) => false,
            },
            STATE_TYPE => match HardState::decode(data) {
                Ok(state) => {
                    scanner.on_state(state, segment, offset);
                    true
                }
                Err(_) => false,
            },
            SNAPSHOT_TYPE => match WalSnapshot::decode(data) {
                Ok(snapshot) => {
                    scanner.on_snapshot(snapshot, segment, offset);
                    true
                }
                Err(_) => false,
            },
            METADATA_TYPE => {
                scanner.end_batch(None);
                if scanner.out.node_id.is_none() {
                    if let Ok(metadata) = Metadata::decode(data) {
                        scanner.out.node_id = Some(metadata.node_id);
                        scanner.out.cluster_id = Some(metadata.cluster_id);
                    }
                }
                true
            }
            _ => {
                // CRC records (the walk checks the chain) end a batch like any other record.
                scanner.end_batch(None);
                true
            }
        };
        if !ok {
            let at = location(&scanner.out.segments, segment, offset, None);
            scanner.out.stopped = Some(format!(
                "record of type {} at {at} does not decode (etcd panics)",
                record.record_type
            ));
            return scanner.finish();
        }
    }
    scanner.out.stopped = walk.stopped.take();
    scanner.finish()
}

impl Scanner<'_> {
    fn member(&self) -> &str {
        &self.out.member
    }

    /// A batch (the entries of one Save) ends at a state record (`Some`) or at any other record.
    fn end_batch(&mut self, state: Option<&HardState>) {
        if !self.in_batch {
            return;
        }
        self.in_batch = false;
        let state = state.or(self.out.hard_state.as_ref()).copied();
        let committed = self.out.committed;
        let Scanner { out, pending, .. } = self;
        pending.end_batch(&out.member, state.as_ref(), committed, &mut out.findings);
    }

    fn on_entry(&mut self, entry: &Entry, segment: u32, offset: u64) {
        self.out.entry_records += 1;
        self.in_batch = true;
        let index = entry.index;
        let term = entry.term;
        let digest = EntryDigest {
            term,
            entry_type: entry.r#type,
            data_crc: crc32c::crc32c(entry.data_bytes()),
            segment,
            offset,
        };
        let segments = &self.out.segments;
        let here = || location(segments, segment, offset, Some(index));
        let log = &self.out.log;
        let last = log.last_index();
        if index <= log.base_index {
            // Below the base: after a snapshot reset (committed by definition) or, when the
            // oldest segments were purged, an overwrite reaching into the unseen part.
            if index <= self.out.committed {
                let finding = committed_rewrite::check(
                    &self.out.member,
                    index,
                    term,
                    None,
                    self.out.committed,
                    here,
                );
                self.out.findings.extend(finding);
                return;
            }
            self.restart_log(index - 1, None);
        } else if index > last.saturating_add(1) {
            let finding = contiguity::gap(&self.out.member, index, term, last, here);
            self.out.findings.push(finding);
            self.restart_log(index - 1, None);
            self.forget_configuration();
        } else if index <= last {
            let old = log.get(index).unwrap_or(digest);
            if !old.same_entry(&digest) {
                let member = &self.out.member;
                let committed = self.out.committed;
                self.out.findings.extend(committed_rewrite::check(
                    member,
                    index,
                    term,
                    Some(old.term),
                    committed,
                    here,
                ));
                self.out.findings.extend(leader_append_only::check(
                    member, index, term, old.term, false, here,
                ));
            }
            // ReadAll's rule even for an identical entry: everything from `index` is replaced.
            let keep = usize::try_from(index - self.out.log.base_index - 1).unwrap_or(usize::MAX);
            self.out.log.truncate(keep);
            self.conf_entries.split_off(&index);
            self.pending.truncate(index);
        }
        let prev_term = self.out.log.term_at(index.saturating_sub(1));
        let segments = &self.out.segments;
        let here = || location(segments, segment, offset, Some(index));
        self.out.findings.extend(term_monotonic::check(
            &self.out.member,
            index,
            term,
            prev_term,
            here,
        ));
        self.out.log.push(digest);
        if entry.r#type == CONF_CHANGE || entry.r#type == CONF_CHANGE_V2 {
            let earlier = self.conf_entries.keys().next_back().copied();
            let committed = self.out.committed;
            self.pending
                .on_conf_entry(index, term, earlier, committed, here);
            self.note_conf_ids(entry.r#type, entry.data_bytes());
            self.conf_entries.insert(
                index,
                ConfEntry {
                    entry_type: entry.r#type,
                    term,
                    // Copied: a slice would keep the walk's whole read window alive.
                    data: Bytes::copy_from_slice(entry.data_bytes()),
                    segment,
                    offset,
                },
            );
        }
    }

    fn note_conf_ids(&mut self, entry_type: i32, data: &[u8]) {
        if entry_type == CONF_CHANGE {
            if let Ok(cc) = crate::proto::raftpb::ConfChange::decode(data) {
                self.out.conf_change_ids.insert(cc.node_id);
            }
        } else if let Ok(cc) = crate::proto::raftpb::ConfChangeV2::decode(data) {
            self.out
                .conf_change_ids
                .extend(cc.changes.iter().map(|c| c.node_id));
        }
    }

    /// The log continues after `base_index`, whose term may be unknown.
    fn restart_log(&mut self, base_index: u64, base_term: Option<u64>) {
        self.out.log.base_index = base_index;
        self.out.log.base_term = base_term;
        self.out.log.clear();
        self.out.log.positioned = true;
        self.conf_entries.clear();
        self.pending.clear();
    }

    /// Entries are missing: the configuration past what was applied is unknown.
    fn forget_configuration(&mut self) {
        self.membership = None;
        let from = self.out.timeline.applied_through.saturating_add(1);
        self.out.timeline.push(from, None);
    }

    fn on_state(&mut self, state: HardState, segment: u32, offset: u64) {
        self.end_batch(Some(&state));
        let segments = &self.out.segments;
        // A state record is placed in the log by the last entry persisted before it.
        let last = self.out.log.last_index();
        let here = || location(segments, segment, offset, Some(last));
        let member = &self.out.member;
        if let Some(previous) = &self.out.hard_state {
            let findings = &mut self.out.findings;
            findings.extend(hardstate_term::check(member, previous, &state, here));
            findings.extend(vote::changed(member, previous, &state, here));
            findings.extend(commit_monotonic::check(member, previous, &state, here));
        }
        let boundary = commit_boundary::check(member, &state, &self.out.log, here);
        self.out.findings.extend(boundary);
        if state.vote != 0 && self.seen_votes.insert((state.term, state.vote)) {
            let conf_known = self.membership.is_some();
            self.out.votes.push(VoteRecord {
                term: state.term,
                vote: state.vote,
                location: here(),
                conf_known,
            });
        }
        self.out.hard_state = Some(state);
        self.out.commit = self.out.commit.max(state.commit);
        self.out.committed = self.out.committed.max(state.commit);
        let committed = self.out.committed;
        self.unconfirmed.retain(|(s, _)| s.index > committed);
        self.apply_committed(state.commit);
    }

    fn on_snapshot(&mut self, snapshot: WalSnapshot, segment: u32, offset: u64) {
        self.end_batch(None);
        let at = location(&self.out.segments, segment, offset, Some(snapshot.index));
        let (index, term) = (snapshot.index, snapshot.term);
        let kind = if index == 0 && term == 0 {
            if !self.out.log.positioned {
                self.out.log.positioned = true;
                self.out.log.base_term = Some(0);
            }
            SnapshotKind::Initial
        } else {
            match self.out.log.term_at(index) {
                Some(t) if t == term => {
                    self.out.findings.extend(snapshot_records::above_commit(
                        &self.out.member,
                        &snapshot,
                        self.out.committed,
                        at.clone(),
                    ));
                    if self.membership.is_none() {
                        self.seed_local(&snapshot);
                    }
                    SnapshotKind::Local
                }
                Some(t) if index <= self.out.committed => {
                    let finding = snapshot_records::term_mismatch(
                        &self.out.member,
                        index,
                        term,
                        t,
                        "WAL snapshot record",
                        at.clone(),
                    );
                    self.out.findings.push(finding);
                    SnapshotKind::Conflicting
                }
                None if index == self.out.log.base_index => {
                    // The log starts here with an unknown term (purged segments): learn it.
                    self.out.log.base_term = Some(term);
                    if self.membership.is_none() {
                        self.seed_local(&snapshot);
                    }
                    SnapshotKind::Local
                }
                None if index < self.out.log.base_index => SnapshotKind::Unplaced,
                _ => {
                    self.reset_to(&snapshot, at.clone());
                    SnapshotKind::Leader
                }
            }
        };
        self.out.wal_snapshots.push(WalSnapshotSeen {
            snapshot,
            location: at,
            kind,
        });
    }

    /// The configuration a snapshot at (index, term) carries: its `.snap`, else (etcd 3.5+) the
    /// WAL record's own ConfState.
    fn seed_for(&self, snapshot: &WalSnapshot) -> Option<Membership> {
        let snap = self
            .out
            .snaps
            .iter()
            .find(|s| s.index == snapshot.index && s.term == snapshot.term);
        match (snap, &snapshot.conf_state) {
            (Some(snap), _) => Some(Membership::from_snapshot(&snap.conf_state, &snap.data)),
            (None, Some(cs)) => Some(Membership::from_conf_state(cs)),
            (None, None) => None,
        }
    }

    /// A leader snapshot: the log restarts after it, its entries are committed, and the
    /// configuration is the snapshot's.
    fn reset_to(&mut self, snapshot: &WalSnapshot, at: Location) {
        self.restart_log(snapshot.index, Some(snapshot.term));
        self.out.committed = self.out.committed.max(snapshot.index);
        if self.out.commit < snapshot.index {
            self.unconfirmed.push((snapshot.clone(), at));
        }
        let seed = self.seed_for(snapshot);
        let timeline = &mut self.out.timeline;
        if snapshot.index > timeline.applied_through.saturating_add(1) {
            let gap_from = timeline.applied_through.saturating_add(1);
            timeline.push(gap_from, None);
        }
        timeline.push(snapshot.index, seed.as_ref().map(|m| m.config.clone()));
        timeline.applied_through = timeline.applied_through.max(snapshot.index);
        if let Some(seed) = &seed {
            self.check_seed(&seed.config, snapshot.index);
        }
        self.membership = seed;
    }

    /// The configuration was unknown (purged segments); a local snapshot with a `.snap` gives it.
    fn seed_local(&mut self, snapshot: &WalSnapshot) {
        let Some(seed) = self.seed_for(snapshot) else {
            return;
        };
        self.check_seed(&seed.config, snapshot.index);
        let applied = self.out.timeline.applied_through.max(snapshot.index);
        self.out
            .timeline
            .push(snapshot.index, Some(seed.config.clone()));
        self.membership = Some(seed);
        // Conf changes committed after the snapshot were passed over while the configuration
        // was unknown: apply them now.
        self.out.timeline.applied_through = snapshot.index;
        self.apply_committed(applied);
    }

    fn check_seed(&mut self, config: &Config, index: u64) {
        if let Some(error) = config.invariant_error() {
            let finding = joint::invalid_seed(&self.out.member, index, &error);
            self.out.findings.push(finding);
        }
    }

    /// Applies the conf changes of the committed, present part of the log.
    fn apply_committed(&mut self, commit: u64) {
        let upto = commit.min(self.out.log.last_index());
        let from = self.out.timeline.applied_through.saturating_add(1);
        if upto < from {
            return;
        }
        if let Some(membership) = &mut self.membership {
            for (&index, ce) in self.conf_entries.range(from..=upto) {
                match membership.apply_entry(ce.entry_type, &ce.data) {
                    Ok(ConfOutcome::Applied) => {
                        self.out
                            .timeline
                            .push(index, Some(membership.config.clone()));
                    }
                    Ok(ConfOutcome::RejectedByEtcd(_)) => {}
                    Err(error) => {
                        let at = location(&self.out.segments, ce.segment, ce.offset, Some(index));
                        self.out.findings.push(joint::conf_error(
                            &self.out.member,
                            index,
                            ce.term,
                            &error,
                            at,
                        ));
                    }
                }
            }
        }
        self.out.timeline.applied_through = upto;
    }

    fn finish(mut self) -> MemberScan {
        // A batch cut short by the end of the stream is not judged: its state may be lost.
        self.in_batch = false;
        for (snapshot, at) in std::mem::take(&mut self.unconfirmed) {
            let finding =
                snapshot_records::unconfirmed(self.member(), &snapshot, self.out.commit, at);
            self.out.findings.push(finding);
        }
        let mut findings = vote::not_member(&self.out);
        findings.extend(conf_state::check(&self.out));
        findings.extend(snap_files::check(&self.out));
        findings.extend(joint::auto_leave_pending(&self.out));
        self.out.findings.extend(findings);
        self.out
    }
}
