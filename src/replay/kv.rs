//! The full replay of one member: raft-rs restart + apply, feeding every committed entry to the
//! etcd MVCC model, so that `HashKV` at any applied index can be compared with etcd's.

use prost::Message;

use super::binary::{start_release, StartRelease};
use super::from_db::{DbRecords, DbStartError, DbSummary};
use super::preflight::RestartState;
use super::restart::{restart_and_apply_from, LogSource, RestartOutcome};
use crate::member::MemberRead;
use crate::mvcc::{ApplyResult, MvccStore};
use crate::proto::etcdserverpb::Metadata;
use crate::proto::raftpb::{Entry, EntryType};

#[derive(Debug, thiserror::Error)]
pub enum KvReplayError {
    /// The KV state is a function of the whole history: a WAL that starts after a snapshot (a
    /// learner that caught up from a leader snapshot, a purged WAL) cannot rebuild it alone; the
    /// history before it lives in the backend db ([`super::from_db`]).
    #[error(
        "the KV replay needs the log from raft index 1, but this member's WAL starts after snapshot index {start_index} \
         (first entry {first_index:?}); the history before it lives only in the backend db (member/snap/db)"
    )]
    NeedsHistory {
        start_index: u64,
        first_index: Option<u64>,
    },
    /// The WAL does not reach back to index 1 and the start from the backend db is not possible.
    #[error(
        "the WAL does not reach back to index 1 and the KV replay cannot start from the db: {0}"
    )]
    FromDb(#[from] DbStartError),
}

pub struct KvReplay {
    pub store: MvccStore,
    pub raft: RestartOutcome,
    /// The last entry applied to the KV model.
    pub applied_index: u64,
    /// Entries applied beyond the persisted commit (only when asked for with `through`).
    pub applied_beyond_commit: u64,
    /// Entries whose request etcd would have panicked on.
    pub panicking_entries: Vec<PanickingEntry>,
    /// The db the replay started from (at its consistent index), when the WAL does not reach
    /// back to index 1.
    pub from_db: Option<DbSummary>,
    /// The membership that db records (the db ↔ log checks read it from here rather than
    /// restoring the db a second time).
    pub from_db_records: Option<DbRecords>,
    /// The release the replay started with, and the evidence in the files that chose it
    /// ([`super::binary`]).
    pub start_release: StartRelease,
}

/// An entry etcd's applier panics on, as the release in force at its index applies it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PanickingEntry {
    pub index: u64,
    /// The request kind (`downgrade_info_set`, `undecodable`, …).
    pub kind: &'static str,
    pub reason: &'static str,
    /// The release whose apply path panics (`3.4.23`), from the cluster version in force.
    pub release: String,
}

/// The member id from the WAL metadata (0 if it does not decode).
pub fn node_id(read: &MemberRead) -> u64 {
    read.contents
        .metadata
        .as_ref()
        .and_then(|m| Metadata::decode(m.clone()).ok())
        .map(|m| m.node_id)
        .unwrap_or(0)
}

/// The raft-level restart state of a member read.
pub fn restart_state<'a>(member: &'a str, read: &'a MemberRead) -> RestartState<'a> {
    let conf_state = read
        .snapshot
        .as_ref()
        .map(|s| s.snapshot.metadata.conf_state.clone())
        .unwrap_or_default();
    RestartState {
        member,
        snapshot_index: read.start.index,
        snapshot_term: read.start.term,
        conf_state,
        hard_state: read.contents.hard_state,
        entries: &read.contents.entries,
    }
}

/// Replays `read` through raft-rs into the MVCC model, applying entries up to `through`
/// (`None`: everything committed). `progress` is called with each applied raft index.
pub fn replay_kv(
    member: &str,
    read: &MemberRead,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<KvReplay, KvReplayError> {
    debug_assert!(
        read.contents.kept_entries,
        "a summary read holds no entries"
    );
    let release = start_release(read, None);
    replay_kv_from(member, read, &release, LogSource::Held, through, progress)
}

/// Whether the KV replay of `read` needs history the WAL lacks: the log does not start at
/// index 1 (a start snapshot, or a first entry above 1), or the member was restored from a
/// snapshot ([`restored_from_snapshot`]).
pub fn needs_history(read: &MemberRead) -> bool {
    read.start.index != 0
        || read.contents.first_index().is_some_and(|i| i != 1)
        || restored_from_snapshot(read)
}

/// Whether `read` has the shape `etcdutl snapshot restore` (3.5) and `etcdctl snapshot restore`
/// (3.4) give a member: etcd boots it from a `.snap` at index S ≥ 1 and every WAL entry from
/// index 1 through S is a conf change. The restore writes one `ConfChangeAddNode` per member at
/// term 1, a snapshot at the last of them, and the saved db with its consistent index set to
/// that index (3.5.30 `etcdutl/snapshot/v3_snapshot.go: saveWALAndSnap, updateCIndex`; 3.4.23
/// `clientv3/snapshot/v3_snapshot.go: saveDB, saveWALAndSnap`): the db's keys were written by
/// another cluster's log. etcd boots from the db and applies only the entries above its
/// consistent index, so the KV replay starts from the db; for a log that did write its own
/// history, no entry up to S writes a key, and the db start gives the same state.
pub fn restored_from_snapshot(read: &MemberRead) -> bool {
    let (boot_index, _) = read.boot_start();
    let contents = &read.contents;
    if boot_index == 0 || contents.start_index != 0 {
        return false;
    }
    // Positions count the held entries from index 1 (start_index 0).
    let mut runs = contents.entry_type_runs.iter();
    let Some(&(0, first_type)) = runs.next() else {
        return false;
    };
    let run_end = runs.next().map_or(contents.entry_count, |&(p, _)| p) as u64;
    let conf_change = first_type == EntryType::EntryConfChange as i32
        || first_type == EntryType::EntryConfChangeV2 as i32;
    conf_change && run_end >= boot_index
}

/// [`replay_kv`] with the entries from `source` (`LogSource::Stream`: see `replay::stream`,
/// whose `replay_kv_streaming` checks that the stream did not fail), starting with `release`'s
/// rules ([`super::binary::start_release`]: [`replay_kv`] sees only the WAL's evidence, a
/// caller with the member's files also the db's).
pub fn replay_kv_from(
    member: &str,
    read: &MemberRead,
    release: &StartRelease,
    source: LogSource<'_, '_>,
    through: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<KvReplay, KvReplayError> {
    if needs_history(read) {
        return Err(KvReplayError::NeedsHistory {
            start_index: read.start.index,
            first_index: read.contents.first_index(),
        });
    }
    Ok(replay_into(
        member,
        read,
        (release.store(), release.clone()),
        source,
        through,
        0,
        progress,
    ))
}

/// Restarts `read` in raft-rs and applies its committed entries up to `through` (`None`:
/// everything committed) to `store` (started with the rules of `start_release`), which gates v3
/// requests on its consistent index. The
/// commit handed to raft-rs is raised to `commit_floor` when that is higher (a db whose
/// consistent index is above the persisted commit: see [`super::from_db`]; 0 otherwise).
pub(crate) fn replay_into(
    member: &str,
    read: &MemberRead,
    (mut store, start_release): (MvccStore, StartRelease),
    mut source: LogSource<'_, '_>,
    through: Option<u64>,
    commit_floor: u64,
    progress: &mut dyn FnMut(u64),
) -> KvReplay {
    let mut panicking_entries = Vec::new();
    let mut state = restart_state(member, read);
    if commit_floor > state.hard_state.commit {
        state.hard_state.commit = commit_floor;
    }
    let through_index = through.unwrap_or(state.hard_state.commit);
    let mut apply = |entry: &Entry| {
        let outcome = store.apply_entry(entry);
        if let ApplyResult::EtcdWouldPanic(reason) = outcome.result {
            panicking_entries.push(PanickingEntry {
                index: entry.index,
                kind: outcome.kind.name(),
                reason,
                release: store.etcd_version().to_string(),
            });
        }
        progress(entry.index);
    };
    let raft = restart_and_apply_from(
        &state,
        match &mut source {
            LogSource::Held => LogSource::Held,
            LogSource::Stream(stream) => LogSource::Stream(stream),
        },
        node_id(read),
        through_index,
        &mut apply,
    );
    let mut applied_index = raft.applied_index;
    let mut applied_beyond_commit = 0;
    // Entries past the persisted commit: commit-only HardStates are not fsynced, so a checkpoint's
    // applied index can lie beyond the last commit on disk. Applied only when asked for.
    if raft.started && through_index > applied_index {
        let from = applied_index;
        match source {
            LogSource::Held => {
                for entry in read
                    .contents
                    .entries
                    .iter()
                    .filter(|e| e.index > from && e.index <= through_index)
                {
                    apply(entry);
                    applied_index = entry.index;
                    applied_beyond_commit += 1;
                }
            }
            LogSource::Stream(stream) => {
                let last = stream.log().last_index().min(through_index);
                for index in from + 1..=last {
                    let Ok(Some(entry)) = stream.entry(index) else {
                        break; // the stream says why; the caller falls back
                    };
                    apply(&entry);
                    applied_index = entry.index;
                    applied_beyond_commit += 1;
                }
            }
        }
    }
    KvReplay {
        store,
        raft,
        applied_index,
        applied_beyond_commit,
        panicking_entries,
        from_db: None,
        from_db_records: None,
        start_release,
    }
}
