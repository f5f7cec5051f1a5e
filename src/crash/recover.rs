//! The real recovery path: a crash state as files (in a [`MemFs`], never on the user's disk),
//! booted exactly as etcd 3.4 boots — `ValidSnapshotEntries`, `LoadNewestAvailable`,
//! `selectWALFiles` + `ReadAll` in write mode, `Repair` once on `io.ErrUnexpectedEOF` and a
//! retry — then restarted in raft-rs. Used for the states the prefix model does not cover
//! (`.snap` faults, a missing segment) and to cross-check the prefix model.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft::eraftpb;
use raft::storage::MemStorage;
use raft::RawNode;

use crate::fsio::{MemFs, ReadOnlyFs};
use crate::member::{MemberFiles, MemberRead, OpenError, ReadFrom, StartChoice};
use crate::proto::raftpb::{ConfState, Entry, HardState};
use crate::proto::translate;
use crate::replay::{discard_logger, replay_config, run_guarded};
use crate::wal::decoder::DecoderMode;
use crate::wal::repair::{repair_last_segment, RepairOutcome};
use crate::wal::{WalContents, WalErrorKind};

use super::history::History;

/// Where crash states are mounted in the in-memory file system.
pub const MOUNT: &str = "/crash-state";

/// Files of one crash state: segments in order, `.snap` files.
#[derive(Clone, Debug, Default)]
pub struct DiskState {
    pub segments: Vec<(String, Bytes)>,
    pub snaps: Vec<(String, Bytes)>,
}

impl DiskState {
    pub fn mount(&self) -> MemFs {
        let mut fs = MemFs::default();
        let root = PathBuf::from(MOUNT).join("member");
        for (name, bytes) in &self.segments {
            fs.insert(root.join("wal").join(name), bytes.clone());
        }
        for (name, bytes) in &self.snaps {
            fs.insert(root.join("snap").join(name), bytes.clone());
        }
        if self.segments.is_empty() {
            // Keep the directory visible: an empty wal dir.
            fs.insert(
                root.join("wal").join("lost+found").join(".keep"),
                Bytes::new(),
            );
        }
        fs
    }

    /// The first `k` records of `h`, as a process crash leaves them (`.snap` files whose WAL
    /// record is among them; later ones were not written yet, purged ones are unknown).
    pub fn prefix(h: &History, k: usize) -> DiskState {
        let segs = h.segments_at(k);
        let mut segments = Vec::with_capacity(segs);
        for seg in 0..segs {
            let info = &h.segments[seg];
            let end_record = k.min(h.segment_end_record(seg)).max(info.first_record);
            let len = h.records[info.first_record..end_record]
                .last()
                .map(|r| r.end())
                .unwrap_or(0);
            segments.push((
                info.name.file_name.clone(),
                info.bytes.slice(..len as usize),
            ));
        }
        let snaps = h
            .snaps
            .iter()
            .filter(|s| s.wal_record.is_some_and(|r| r < k))
            .map(|s| (s.file_name.clone(), s.bytes.clone()))
            .collect();
        DiskState { segments, snaps }
    }

    /// The files as captured (every segment's written data, every `.snap`).
    pub fn full(h: &History) -> DiskState {
        DiskState {
            segments: h
                .segments
                .iter()
                .map(|s| (s.name.file_name.clone(), s.bytes.clone()))
                .collect(),
            snaps: h
                .snaps
                .iter()
                .map(|s| (s.file_name.clone(), s.bytes.clone()))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RealRecovery {
    /// etcd refuses to start: why.
    pub refused: Option<String>,
    /// No `.wal` file at all: etcd would start this member as a new one.
    pub no_wal: bool,
    pub start_index: u64,
    pub start_term: u64,
    pub snap_file: Option<String>,
    pub conf_state: ConfState,
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
    /// Repair truncated the last segment at this offset.
    pub repaired_at: Option<u64>,
}

impl RealRecovery {
    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map(|e| e.index)
            .unwrap_or(self.start_index)
    }
}

fn refused(message: String) -> RealRecovery {
    RealRecovery {
        refused: Some(message),
        ..Default::default()
    }
}

/// etcd 3.4's boot over `state`: the state it restarts from, or why it refuses.
pub fn recover(state: &DiskState) -> (RealRecovery, Option<MemberRead>) {
    let fs = state.mount();
    recover_fs(&fs, Path::new(MOUNT), state, true)
}

fn recover_fs(
    fs: &MemFs,
    root: &Path,
    state: &DiskState,
    may_repair: bool,
) -> (RealRecovery, Option<MemberRead>) {
    let files = match MemberFiles::open(fs, root) {
        Ok(files) => files,
        Err(OpenError::NoWal { .. }) => {
            return (
                RealRecovery {
                    refused: None,
                    no_wal: true,
                    ..Default::default()
                },
                None,
            )
        }
        Err(e) => return (refused(e.to_string()), None),
    };
    let (valid, loaded, skipped) = files.boot_snapshot();
    let valid = match valid {
        Ok(v) => v,
        Err(e) => return (refused(format!("ValidSnapshotEntries: {e}")), None),
    };
    let (start_index, start_term) = loaded
        .as_ref()
        .map(|s| (s.snapshot.metadata.index, s.snapshot.metadata.term))
        .unwrap_or((0, 0));
    let contents: WalContents = files.read_from(start_index, start_term, DecoderMode::Strict);
    if let Some(e) = contents.errors.first() {
        return (refused(e.to_string()), None);
    }
    let torn = contents
        .warnings
        .iter()
        .find(|w| matches!(w.kind, WalErrorKind::UnexpectedEof { .. }));
    if let Some(torn) = torn {
        // Write mode: ErrUnexpectedEOF → Repair the last segment once, then read again.
        if !may_repair {
            return (refused(format!("{torn} again after Repair (fatal)")), None);
        }
        let last = files.segments.last().expect("a segment was read").clone();
        let bytes = fs
            .read(&files.paths.wal_dir.join(&last.file_name))
            .unwrap_or_default();
        match repair_last_segment(last.clone(), bytes.clone()) {
            RepairOutcome::Truncate { truncate_at, .. } => {
                let mut repaired = state.clone();
                if let Some(seg) = repaired
                    .segments
                    .iter_mut()
                    .find(|(n, _)| *n == last.file_name)
                {
                    seg.1 = bytes.slice(..truncate_at as usize);
                }
                let fs2 = repaired.mount();
                let (mut out, read) = recover_fs(&fs2, Path::new(MOUNT), &repaired, false);
                out.repaired_at = Some(truncate_at);
                return (out, read);
            }
            RepairOutcome::Clean => {
                return (
                    refused(format!(
                    "{torn}; Repair finds the last segment clean, so the retry fails again (fatal)"
                )),
                    None,
                )
            }
            RepairOutcome::Unrepairable(e) => {
                return (refused(format!("{torn}; Repair refuses: {e}")), None)
            }
        }
    }
    // A start snapshot without its WAL record is no refusal: in write mode ReadAll's
    // ErrSnapshotNotFound is overwritten by newFileEncoder's result (WalErrorKind::
    // SnapshotNotFound). readWAL then takes the member ID from the metadata; without a metadata
    // record it is 0, and raft.RestartNode panics in newRaft's Config.validate.
    if contents.metadata.is_none() {
        return (
            refused(
                "the WAL read holds no metadata record: readWAL's member ID is 0 and raft.RestartNode panics (cannot use none as id)"
                    .into(),
            ),
            None,
        );
    }
    let recovery = RealRecovery {
        refused: None,
        no_wal: false,
        start_index,
        start_term,
        snap_file: loaded.as_ref().map(|s| s.file_name.clone()),
        conf_state: loaded
            .as_ref()
            .map(|s| s.snapshot.metadata.conf_state.clone())
            .unwrap_or_default(),
        hard_state: contents.hard_state,
        entries: contents.entries.clone(),
        repaired_at: None,
    };
    let read = MemberRead {
        contents,
        start: StartChoice {
            index: start_index,
            term: start_term,
            reason: if loaded.is_some() {
                ReadFrom::Snapshot
            } else {
                ReadFrom::Beginning
            },
            snap_file: loaded.as_ref().map(|s| s.file_name.clone()),
        },
        valid_snapshots: Some(valid),
        snapshot: loaded,
        skipped_snaps: skipped,
    };
    (recovery, Some(read))
}

/// The same state read from index 0 (for the KV replay, which needs the whole history).
pub fn read_from_start(state: &DiskState) -> Option<MemberRead> {
    let fs = state.mount();
    let files = MemberFiles::open(&fs, Path::new(MOUNT)).ok()?;
    let contents = files.read_from(0, 0, DecoderMode::Strict);
    if !contents.errors.is_empty() {
        return None;
    }
    Some(MemberRead {
        contents,
        start: StartChoice {
            index: 0,
            term: 0,
            reason: ReadFrom::Beginning,
            snap_file: None,
        },
        valid_snapshots: None,
        snapshot: None,
        skipped_snaps: Vec::new(),
    })
}

/// A raft-rs storage holding a restarted member's state.
fn storage(
    snapshot: (u64, u64, &ConfState),
    hard_state: &HardState,
    entries: &[Entry],
) -> Result<MemStorage, String> {
    let storage = MemStorage::new();
    {
        let mut core = storage.wl();
        let (index, term, conf) = snapshot;
        if index > 0 {
            let mut snap = eraftpb::Snapshot::default();
            snap.mut_metadata().index = index;
            snap.mut_metadata().term = term;
            snap.mut_metadata()
                .set_conf_state(translate::conf_state(conf));
            core.apply_snapshot(snap).map_err(|e| e.to_string())?;
        } else {
            core.set_conf_state(translate::conf_state(conf));
        }
        let translated: Result<Vec<eraftpb::Entry>, String> = entries
            .iter()
            .map(|e| translate::entry(e).map_err(|e| e.to_string()))
            .collect();
        core.append(&translated?).map_err(|e| e.to_string())?;
        core.set_hardstate(translate::hard_state(hard_state));
    }
    Ok(storage)
}

/// raft-rs's own verdict on restarting from this state, without the pre-flight checks: the
/// panic message if `RawNode::new` panics (e.g. "hs.commit … is out of range").
pub fn raw_restart_panic(
    node_id: u64,
    snapshot: (u64, u64, &ConfState),
    hard_state: &HardState,
    entries: &[Entry],
) -> Option<String> {
    let storage = match storage(snapshot, hard_state, entries) {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    let config = replay_config(node_id.max(1), snapshot.0);
    match run_guarded(|| RawNode::new(&config, storage, &discard_logger()).map(|_| ())) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => Some(panic),
    }
}

/// The member restarted from this state receives its leader's heartbeat carrying `commit`
/// (etcd's leader sends `min(match, committed)`): raft-rs's panic message, if it panics
/// ("to_commit … is out of range [last_index …]", etcd's "tocommit(…) is out of range").
pub fn heartbeat_panic(
    node_id: u64,
    snapshot: (u64, u64, &ConfState),
    hard_state: &HardState,
    entries: &[Entry],
    commit: u64,
) -> Option<String> {
    let storage = match storage(snapshot, hard_state, entries) {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    let config = replay_config(node_id.max(1), snapshot.0);
    let term = hard_state
        .term
        .max(entries.last().map(|e| e.term).unwrap_or(snapshot.1))
        .max(1);
    match run_guarded(|| {
        let mut node = RawNode::new(&config, storage, &discard_logger())?;
        let mut m = eraftpb::Message::default();
        m.set_msg_type(eraftpb::MessageType::MsgHeartbeat);
        m.from = u64::MAX - 7;
        m.to = node.raft.id;
        m.term = term;
        m.commit = commit;
        node.step(m)
    }) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => Some(panic),
    }
}
