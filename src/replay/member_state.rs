//! The replay half of `verify`: per member, restart raft-rs and apply (pre-flight findings, raft-rs
//! panics, rejected conf changes), re-execute every persisted batch as a follower, replay the KV
//! model to get etcd's HashKV at the applied index (from the backend db at its consistent index
//! when the WAL starts later: [`super::from_db`]), and run the db ↔ log checks. Members at a
//! common applied index must then hold the same hash.

use serde::Serialize;

use super::binary::start_release;
use super::follower::reexecute;
use super::from_db::{
    last_wal_index, late_start_reason, load_member_db_as_written, replay_kv_from_db, DbRecords,
    DbStartError, DbSummary,
};
use super::kv::{
    needs_history, node_id, replay_kv, replay_kv_from, restart_state, KvReplay, KvReplayError,
};
use super::restart::restart_and_apply;
use super::restart::LogSource;
use super::stream::{replay_kv_streaming, replay_kv_streaming_from_db, streamable};
use crate::check::conf_model::Config;
use crate::check::resolved_log::ResolvedLog;
use crate::check::state_hash::{self, StatePoint};
use crate::check::{
    db_boot_snapshot, db_conf_state, db_kv, db_log_bound, db_members, db_term, Finding, MemberScan,
};
use crate::member::{read_member, MemberFiles, MemberRead};
use crate::wal::name::search_index;
use crate::wal::DecoderMode;

/// What the replay established about one member.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemberState {
    pub applied_index: u64,
    /// Why there is no KV state (a WAL that starts after a snapshot), if there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_unavailable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashkv: Option<u32>,
    pub follower_batches: u64,
    /// Entries whose request etcd's applier panics on (raft indexes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub panicking_entries: Vec<super::kv::PanickingEntry>,
    /// Where the KV replay started when not from an empty store at index 1: "replayed from the
    /// db at consistent index N" and why the WAL starts late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_start: Option<String>,
    /// The release the KV replay started as and the evidence in the files that chose it
    /// ([`super::binary`]), when there is a KV state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_as: Option<super::binary::StartRelease>,
    /// The member's backend db, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<DbSummary>,
    /// Why the db ↔ log checks did not run (no db: a WAL-only copy; an unreadable db).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_checks_skipped: Option<String>,
}

/// [`replay_kv`] of a read that holds its entries; when the WAL does not reach back to index 1,
/// started from the member's backend db at its consistent index ([`replay_kv_from_db`]).
pub fn replay_kv_held(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<KvReplay, KvReplayError> {
    if !needs_history(read) {
        let release = start_release(read, Some(files));
        return replay_kv_from(member, read, &release, LogSource::Held, through, progress);
    }
    let db = load_member_db_as_written(files)?;
    replay_kv_from_db(member, read, db, through, progress)
}

/// [`replay_kv`] of `read`, streamed when it is a summary read (`replay::stream`; `log` is the
/// member's scan's resolved log), else (or when the stream fails) over the held entries, read
/// again when `read` holds none; from the db where the WAL does not reach back to index 1
/// ([`replay_kv_held`]). Also returns the read the entries were held in, if one was made.
/// `progress` gets each applied index (from the start again after a fallback).
pub fn replay_kv_any(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    log: &ResolvedLog,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> (Result<KvReplay, KvReplayError>, Option<MemberRead>) {
    if read.contents.kept_entries {
        return (replay_kv_held(member, files, read, through, progress), None);
    }
    if streamable(files, read, log) {
        // A log read whole from index 1 that still starts from the db: a restored member.
        let streamed = if needs_history(read) {
            match load_member_db_as_written(files) {
                Ok(db) => replay_kv_streaming_from_db(member, files, read, log, db, through),
                Err(e) => return (Err(e.into()), None),
            }
        } else {
            replay_kv_streaming(member, files, read, log, through, progress)
        };
        if let Ok(Ok(kv)) = streamed {
            return (Ok(kv), None);
        }
    }
    // A summary read is only made in strict mode (`read_for_streaming`).
    let full = read_member(files, DecoderMode::Strict);
    (
        replay_kv_held(member, files, &full, through, progress),
        Some(full),
    )
}

/// Replays one member that decoded cleanly. Findings go to `findings`. `scan`: the member's
/// invariant scan (its resolved log is what a summary read is streamed against; its
/// configuration timeline what the db's membership is checked against).
///
/// The two parts are independent ([`FollowerInput::reexecute`], [`replay_state`]); `verify` runs
/// them on separate workers and joins them with [`join_parts`], the same result.
pub fn replay_member(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    scan: &MemberScan,
    findings: &mut Vec<Finding>,
) -> MemberState {
    let follower = FollowerInput::of(read).reexecute(member, files);
    let mut rest = Vec::new();
    let state = replay_state(member, files, read, scan, &mut rest);
    join_parts(state, follower, rest, findings)
}

/// What the follower re-execution of a member needs from its read: where its log starts and the
/// boot snapshot's configuration (owned, so it runs apart from the rest of the replay).
#[derive(Clone, Debug)]
pub struct FollowerInput {
    start_index: u64,
    start_term: u64,
    conf: crate::proto::raftpb::ConfState,
}

impl FollowerInput {
    pub fn of(read: &MemberRead) -> FollowerInput {
        FollowerInput {
            start_index: read.start.index,
            start_term: read.start.term,
            conf: read
                .snapshot
                .as_ref()
                .map(|s| s.snapshot.metadata.conf_state.clone())
                .unwrap_or_default(),
        }
    }

    /// Every persisted batch re-executed as a follower ([`reexecute`]) from the segment holding
    /// the start; `None` when no segment does.
    pub fn reexecute(
        &self,
        member: &str,
        files: &MemberFiles<'_>,
    ) -> Option<super::follower::FollowerOutcome> {
        let from = search_index(&files.segments, self.start_index)?;
        Some(reexecute(
            member,
            files.decoder(from, DecoderMode::Strict),
            self.start_index,
            self.start_term,
            &self.conf,
        ))
    }
}

/// [`replay_member`] without the follower re-execution: the KV replay (or the raft-level one
/// when there is no KV state), its HashKV and the db ↔ log checks.
pub fn replay_state(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    scan: &MemberScan,
    findings: &mut Vec<Finding>,
) -> MemberState {
    let log = &scan.log;
    let mut state = MemberState::default();
    let (kv, full) = replay_kv_any(member, files, read, log, None, &mut |_| {});
    let read = full.as_ref().unwrap_or(read);
    match &kv {
        Ok(kv) => {
            findings.extend(kv.raft.findings.iter().cloned());
            state.applied_index = kv.applied_index;
            state.panicking_entries = kv.panicking_entries.clone();
            state.started_as = Some(kv.start_release.clone());
            if let Ok(h) = kv.store.hash_kv(0) {
                state.revision = Some(h.revision);
                state.compact_revision = Some(h.compact_revision);
                state.hashkv = Some(h.hash);
            }
            if let Some(db) = &kv.from_db {
                state.kv_start = Some(format!(
                    "replayed from the db at consistent index {} ({})",
                    db.consistent_index,
                    late_start_reason(read)
                ));
            }
        }
        Err(e) => {
            // Raft-level replay still runs; only the KV state needs the full history.
            let outcome = restart_and_apply(
                &restart_state(member, read),
                node_id(read),
                u64::MAX,
                &mut |_| {},
            );
            findings.extend(outcome.findings);
            state.applied_index = outcome.applied_index;
            state.kv_unavailable = Some(e.to_string());
        }
    }
    // A replay that started from the db is not compared with it: the checks take the db's
    // summary and membership from it and its store (a key index) is freed, not restored twice.
    let (kv, db) = match kv {
        Ok(KvReplay {
            from_db: Some(summary),
            from_db_records: Some(records),
            ..
        }) => (None, Some((summary, records))),
        kv => (kv.ok(), None),
    };
    db_checks(
        member,
        files,
        read,
        scan,
        kv.as_ref(),
        db,
        &mut state,
        findings,
    );
    state
}

/// The member's state and findings from its two parts: the follower's findings first, then the
/// rest's, as [`replay_member`] files them.
pub fn join_parts(
    mut state: MemberState,
    follower: Option<super::follower::FollowerOutcome>,
    rest: Vec<Finding>,
    findings: &mut Vec<Finding>,
) -> MemberState {
    if let Some(follower) = follower {
        state.follower_batches = follower.batches;
        findings.extend(follower.findings);
    }
    findings.extend(rest);
    state
}

/// The db ↔ log checks of one member (`check::db_log_bound`, `check::db_boot_snapshot`,
/// `check::db_term`, `check::db_conf_state`, `check::db_members`, `check::db_kv`). `kv`: the
/// member's replay through its commit. A member without a db (a WAL-only copy) or with an
/// unreadable one gets no finding here: the state says why the checks did not run
/// (`raft-replay db` reports a damaged db). `started_from`: the db's summary and membership
/// when the KV replay started from it (the db is then not read again).
#[allow(clippy::too_many_arguments)]
fn db_checks(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    scan: &MemberScan,
    kv: Option<&KvReplay>,
    started_from: Option<(DbSummary, DbRecords)>,
    state: &mut MemberState,
    findings: &mut Vec<Finding>,
) {
    let log = &scan.log;
    let (summary, records, db) = match started_from {
        Some((summary, records)) => (summary, records, None),
        None => match load_member_db_as_written(files) {
            Ok(db) => (db.summary.clone(), db.records.clone(), Some(db)),
            Err(DbStartError::Absent) => {
                state.db_checks_skipped = Some(DbStartError::Absent.to_string());
                return;
            }
            Err(e) => {
                state.db_checks_skipped = Some(e.to_string());
                return;
            }
        },
    };
    let ci = summary.consistent_index;
    state.db = Some(summary.clone());
    let last_index = last_wal_index(read);
    findings.extend(db_log_bound::check(member, ci, last_index));
    let (boot_index, _) = read.boot_start();
    let snap_db_present = files.paths.snap_dir.as_ref().is_some_and(|dir| {
        files
            .fs
            .len(&dir.join(format!("{boot_index:016x}.snap.db")))
            .is_ok()
    });
    findings.extend(db_boot_snapshot::check(
        member,
        ci,
        boot_index,
        snap_db_present,
    ));
    if ci <= last_index {
        findings.extend(db_meta_checks(member, read, scan, &summary, &records));
    }
    // The db's state can be compared with the log's only where the log holds it: from index 1
    // through CI. A member whose WAL starts later, or that was restored from a snapshot, was
    // replayed from this db.
    if needs_history(read) || ci > last_index {
        return;
    }
    let (Some(kv), Some(db)) = (kv.filter(|kv| kv.from_db.is_none()), db) else {
        return;
    };
    let replayed_to_ci;
    let at_ci = if kv.applied_index == ci {
        &kv.store
    } else {
        match replay_kv_any(member, files, read, log, Some(ci), &mut |_| {}).0 {
            Ok(r) if r.applied_index == ci => {
                replayed_to_ci = r;
                &replayed_to_ci.store
            }
            _ => return,
        }
    };
    let compacted_above_ci;
    let at_ci = match compaction_above_ci(at_ci, &kv.store, &db.store) {
        Some(store) => {
            compacted_above_ci = store;
            &compacted_above_ci
        }
        None => at_ci,
    };
    if let Some(finding) = db_kv::check(member, ci, &db.store, at_ci) {
        findings.push(finding);
        return;
    }
    // Both ways: entries above CI applied to the db's state with etcd's rules give the state the
    // replay from index 1 reached.
    if kv.applied_index <= ci {
        return;
    }
    let through = Some(kv.applied_index);
    let from_db = if read.contents.kept_entries {
        replay_kv_from_db(member, read, db, through, &mut |_| {}).ok()
    } else if streamable(files, read, log) {
        replay_kv_streaming_from_db(member, files, read, log, db, through)
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let hash = |store: &crate::mvcc::MvccStore| {
        store
            .hash_kv(0)
            .ok()
            .map(|h| (h.hash, h.revision, h.compact_revision))
    };
    if let Some(from_db) = from_db.filter(|r| r.applied_index == kv.applied_index) {
        if let (Some(a), Some(b)) = (hash(&from_db.store), hash(&kv.store)) {
            findings.extend(db_kv::check_both_ways(member, kv.applied_index, a, b));
        }
    }
}

/// The replayed state at CI compacted as the db already is, when a compaction the log applies
/// above CI is in the db. etcd 3.4 moves the consistent index only with KV/auth writes and
/// snapshots, not with a compaction (`etcdserver/apply.go` `Compaction` does not
/// `setConsistentIndex`; `mvcc/kvstore.go` `compact` writes `scheduledCompactRev` and removes
/// the revisions in the backend's own transactions), so a db at CI may hold the compaction of a
/// later entry. Only a compaction the log itself reaches (`full`, the replay through its last
/// applied entry, is compacted at least that far) is applied; a db compacted beyond the log
/// stays a difference.
fn compaction_above_ci(
    at_ci: &crate::mvcc::MvccStore,
    full: &crate::mvcc::MvccStore,
    db: &crate::mvcc::MvccStore,
) -> Option<crate::mvcc::MvccStore> {
    let db_compacted = db.compact_revision();
    if db_compacted <= at_ci.compact_revision() || full.compact_revision() < db_compacted {
        return None;
    }
    let mut compacted = at_ci.clone();
    compacted.compact(db_compacted).ok()?;
    Some(compacted)
}

/// The 3.5+ meta and membership checks: `meta/term` against the WAL's term at CI, `confState`
/// and the `members`/`members_removed` buckets against the log's configuration at CI (the
/// scan's timeline: the boot `.snap` plus the conf changes after it). Each needs what it
/// compares to be known: a 3.4 db has neither term nor confState, and a configuration the
/// member's files do not reach is not guessed.
fn db_meta_checks(
    member: &str,
    read: &MemberRead,
    scan: &MemberScan,
    summary: &DbSummary,
    db: &DbRecords,
) -> Vec<Finding> {
    let ci = summary.consistent_index;
    let wal_term = if ci == read.start.index && ci > 0 {
        Some(read.start.term)
    } else {
        scan.log.term_at(ci)
    };
    let mut out: Vec<Finding> = db_term::check(member, ci, summary.term, wal_term)
        .into_iter()
        .collect();
    if summary.generation == "3.4" {
        return out;
    }
    let Some(at_ci) = config_at(scan, ci) else {
        return out;
    };
    if let Some(conf_state) = &db.conf_state {
        let (boot_index, _) = read.boot_start();
        let earlier: Vec<(u64, Config)> = scan
            .timeline
            .points
            .iter()
            .filter(|(i, _)| *i > boot_index && *i < ci)
            .filter_map(|(i, c)| Some((*i, c.clone()?)))
            .collect();
        out.extend(db_conf_state::check(
            member, ci, conf_state, &at_ci, &earlier,
        ));
    }
    let removed = removed_at(read, scan, ci, &at_ci);
    out.extend(db_members::check(
        member,
        ci,
        &db.members,
        &db.removed_members,
        &at_ci,
        removed.as_ref(),
    ));
    out
}

/// The configuration after the entries up to `index`: the scan's timeline where it has applied
/// them; above its applied (committed) part, when no conf change lies between.
fn config_at(scan: &MemberScan, index: u64) -> Option<Config> {
    let through = scan.timeline.applied_through;
    if index <= through {
        return scan.timeline.at(index).cloned();
    }
    let conf_change = |i: u64| {
        scan.log.get(i).map(|e| {
            e.entry_type == crate::proto::raftpb::EntryType::EntryConfChange as i32
                || e.entry_type == crate::proto::raftpb::EntryType::EntryConfChangeV2 as i32
        })
    };
    (through + 1..=index)
        .all(|i| conf_change(i) == Some(false))
        .then(|| scan.timeline.at(through).cloned())
        .flatten()
}

/// The ids removed by `index`: the boot `.snap`'s `removed_members` (v2 store) plus every id of a
/// configuration the timeline knows up to `index` that `at` no longer has (etcd never re-admits a
/// removed id). None when the boot `.snap` holds no v2 store to read them from.
fn removed_at(
    read: &MemberRead,
    scan: &MemberScan,
    index: u64,
    at: &Config,
) -> Option<std::collections::BTreeSet<u64>> {
    let mut removed: std::collections::BTreeSet<u64> = match &read.snapshot {
        Some(snap) => crate::snap::membership::parse_membership(snap.snapshot.data.as_deref()?)?
            .removed
            .into_iter()
            .collect(),
        None => Default::default(),
    };
    let current: std::collections::BTreeSet<u64> = at.ids().collect();
    removed.extend(
        scan.timeline
            .points
            .iter()
            .filter(|(i, _)| *i <= index)
            .filter_map(|(_, c)| c.as_ref())
            .flat_map(|c| c.ids())
            .filter(|id| !current.contains(id)),
    );
    Some(removed)
}

/// HashKV of `read` after applying through `index` (None when the KV state is unavailable).
pub fn hash_at(member: &str, read: &MemberRead, index: u64) -> Option<u32> {
    let kv = replay_kv(member, read, Some(index), &mut |_| {}).ok()?;
    (kv.applied_index == index)
        .then(|| kv.store.hash_kv(0).ok().map(|h| h.hash))
        .flatten()
}

/// etcd's HashKV of a member after applying through an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashAt {
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

impl HashAt {
    /// What a [`StatePoint`] of this hash says it is.
    pub fn describe(&self) -> String {
        format!(
            "HashKV {:#010x} (revision {}, compact revision {})",
            self.hash, self.revision, self.compact_revision
        )
    }
}

/// [`hash_at`] of a read that may be a summary read (see [`replay_member`]), with the revision
/// and compact revision.
pub fn hash_at_member(
    member: &str,
    files: &MemberFiles<'_>,
    read: &MemberRead,
    log: &ResolvedLog,
    index: u64,
) -> Option<HashAt> {
    let kv = replay_kv_any(member, files, read, log, Some(index), &mut |_| {})
        .0
        .ok()?;
    if kv.applied_index != index {
        return None;
    }
    let h = kv.store.hash_kv(0).ok()?;
    Some(HashAt {
        hash: h.hash,
        revision: h.revision,
        compact_revision: h.compact_revision,
    })
}

/// What the HashKV agreement compared and found.
#[derive(Clone, Debug, Default)]
pub struct Agreement {
    /// Each replayed member's HashKV at its own applied index, then at the common index.
    pub points: Vec<StatePoint>,
    /// The lowest applied index every member with a KV state reached (two or more of them).
    pub common_index: Option<u64>,
    pub findings: Vec<Finding>,
}

/// The lowest applied index of the members with a HashKV, when two or more have one.
fn common_index(members: &[(String, &MemberState)]) -> Option<u64> {
    let with_kv = members.iter().filter(|(_, s)| s.hashkv.is_some());
    (with_kv.clone().count() >= 2)
        .then(|| with_kv.map(|(_, s)| s.applied_index).min())
        .flatten()
}

/// The (position in `members`, raft index) pairs [`agreement`] asks its `hash_at` for, in the
/// order it asks: each member with a HashKV applied past the common index, at that index.
/// Independent of each other, so a caller may compute them at once beforehand.
pub fn agreement_requests(members: &[(String, &MemberState)]) -> Vec<(usize, u64)> {
    let Some(common) = common_index(members) else {
        return Vec::new();
    };
    members
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| s.hashkv.is_some() && s.applied_index > common)
        .map(|(i, _)| (i, common))
        .collect()
}

/// State-hash agreement across members: at each member's own applied index, and at the highest
/// index every member with a KV state has applied (so members that stopped at different points
/// are still compared). `hash_at(i, index)`: member `i`'s HashKV after applying through `index`.
pub fn agreement(
    members: &[(String, &MemberState)],
    hash_at: &dyn Fn(usize, u64) -> Option<HashAt>,
) -> Agreement {
    let with_kv: Vec<(usize, &(String, &MemberState))> = members
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| s.hashkv.is_some())
        .collect();
    let mut points: Vec<StatePoint> = with_kv
        .iter()
        .map(|(_, (name, s))| {
            let own = HashAt {
                hash: s.hashkv.unwrap_or(0),
                revision: s.revision.unwrap_or(0),
                compact_revision: s.compact_revision.unwrap_or(0),
            };
            StatePoint {
                member: name.clone(),
                applied_index: s.applied_index,
                hash: u64::from(own.hash),
                what: own.describe(),
            }
        })
        .collect();
    let common_index = common_index(members);
    for (i, common) in agreement_requests(members) {
        if let Some(at) = hash_at(i, common) {
            points.push(StatePoint {
                member: members[i].0.clone(),
                applied_index: common,
                hash: u64::from(at.hash),
                what: at.describe(),
            });
        }
    }
    let findings = state_hash::check(&points);
    Agreement {
        points,
        common_index,
        findings,
    }
}
