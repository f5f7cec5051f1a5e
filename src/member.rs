//! Reading one etcd member the way etcd boots it, read-only.
//!
//! PATH may be a data dir (`PATH/member/wal`), a member dir (`PATH/wal`) or a wal dir. Boot:
//! `ValidSnapshotEntries` over every segment → the newest `.snap` matching one of them → select
//! segments from that snapshot's index → `ReadAll`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::fsio::ReadOnlyFs;
use crate::proto::walpb::WalSnapshot;
use crate::snap::{load_newest_available, LoadedSnap, SkippedSnap};
use crate::wal::decoder::{Decoder, DecoderMode, SegmentSource};
use crate::wal::name::{first_seq_gap, is_valid_seq, search_index, wal_segments, SegmentName};
use crate::wal::read_all::{read_all, ReadAllOptions, WalContents};
use crate::wal::valid_snapshots::{valid_snapshot_entries, ValidSnapshots};
use crate::wal::{Location, WalError, WalErrorKind};

/// The longest cut segment [`MemberFiles`] maps (etcd cuts at 64 MB; a segment passes that by
/// its last record, < 10 MiB): a longer one is read through the decoder's window.
pub const MAX_MAPPED_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;

/// Why a member could not be read at all (exit code 2 territory), as opposed to findings.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("{path}: no etcd WAL found (looked for member/wal, wal, and *.wal files)")]
    NoWal { path: PathBuf },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberPaths {
    /// What the user gave.
    pub input: PathBuf,
    pub wal_dir: PathBuf,
    pub snap_dir: Option<PathBuf>,
}

/// Resolves a data dir, member dir or wal dir.
pub fn resolve(fs: &dyn ReadOnlyFs, input: &Path) -> Result<MemberPaths, OpenError> {
    if !fs.is_dir(input) {
        return Err(OpenError::Unreadable {
            path: input.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    let candidates = [input.join("member"), input.to_path_buf()];
    for member in candidates {
        let wal_dir = member.join("wal");
        if fs.is_dir(&wal_dir) {
            let snap_dir = member.join("snap");
            let snap_dir = fs.is_dir(&snap_dir).then_some(snap_dir);
            return Ok(MemberPaths {
                input: input.to_path_buf(),
                wal_dir,
                snap_dir,
            });
        }
    }
    let names = fs.list_dir(input).map_err(|e| OpenError::Unreadable {
        path: input.to_path_buf(),
        message: e.to_string(),
    })?;
    if names.iter().any(|n| n.ends_with(".wal")) {
        let snap_dir = input
            .parent()
            .map(|p| p.join("snap"))
            .filter(|p| fs.is_dir(p));
        return Ok(MemberPaths {
            input: input.to_path_buf(),
            wal_dir: input.to_path_buf(),
            snap_dir,
        });
    }
    Err(OpenError::NoWal {
        path: input.to_path_buf(),
    })
}

/// Everything known about one member's files before reading records.
pub struct MemberFiles<'fs> {
    pub fs: &'fs dyn ReadOnlyFs,
    pub paths: MemberPaths,
    /// All parseable segments, sorted as etcd sorts them.
    pub segments: Vec<SegmentName>,
    /// Files in the wal dir that are not segments (etcd warns and ignores them).
    pub ignored_files: Vec<String>,
    /// The `.snap` files of the snap dir (names as etcd filters them), each read on first use
    /// ([`Self::snap_bytes`]): etcd's boot reads the newest valid one only.
    pub snap_files: Vec<SnapFile>,
}

/// A `.snap` file of a member's snap dir, read at most once.
pub struct SnapFile {
    pub name: String,
    bytes: OnceLock<Bytes>,
}

impl<'fs> MemberFiles<'fs> {
    pub fn open(fs: &'fs dyn ReadOnlyFs, input: &Path) -> Result<MemberFiles<'fs>, OpenError> {
        let paths = resolve(fs, input)?;
        let names = fs
            .list_dir(&paths.wal_dir)
            .map_err(|e| OpenError::Unreadable {
                path: paths.wal_dir.clone(),
                message: e.to_string(),
            })?;
        let (segments, ignored_files) = wal_segments(names);
        if segments.is_empty() {
            return Err(OpenError::NoWal {
                path: paths.wal_dir.clone(),
            });
        }
        let mut snap_files = Vec::new();
        if let Some(snap_dir) = &paths.snap_dir {
            let names = fs.list_dir(snap_dir).map_err(|e| OpenError::Unreadable {
                path: snap_dir.clone(),
                message: e.to_string(),
            })?;
            snap_files = crate::snap::snap_names(names)
                .into_iter()
                .map(|name| SnapFile {
                    name,
                    bytes: OnceLock::new(),
                })
                .collect();
        }
        Ok(MemberFiles {
            fs,
            paths,
            segments,
            ignored_files,
            snap_files,
        })
    }

    /// The bytes of the `.snap` file `name` of [`Self::snap_files`], read on first use; an
    /// unreadable (or unknown) file is empty, which is a finding about that file, not a reason
    /// to stop.
    pub fn snap_bytes(&self, name: &str) -> Bytes {
        let (Some(snap_dir), Some(file)) = (
            &self.paths.snap_dir,
            self.snap_files.iter().find(|f| f.name == name),
        ) else {
            return Bytes::new();
        };
        file.bytes
            .get_or_init(|| self.fs.read(&snap_dir.join(name)).unwrap_or_default())
            .clone()
    }

    /// Every `.snap` file with its bytes ([`Self::snap_bytes`]), in [`Self::snap_files`]' order.
    pub fn snaps(&self) -> Vec<(String, Bytes)> {
        self.snap_files
            .iter()
            .map(|f| (f.name.clone(), self.snap_bytes(&f.name)))
            .collect()
    }

    /// The newest valid `.snap` as etcd's boot picks it ([`load_newest_available`]).
    fn newest_available(
        &self,
        wal_snapshots: &[WalSnapshot],
    ) -> (Option<LoadedSnap>, Vec<SkippedSnap>) {
        let names: Vec<String> = self.snap_files.iter().map(|f| f.name.clone()).collect();
        load_newest_available(&names, &|name| self.snap_bytes(name), wal_snapshots)
    }

    /// A decoder over `segments[from..]`, loading each segment only when it is reached.
    pub fn decoder(&self, from: usize, mode: DecoderMode) -> Decoder<'fs> {
        let fs = self.fs;
        let wal_dir = self.paths.wal_dir.clone();
        Decoder::new(
            self.segments[from..].to_vec(),
            move |name: &SegmentName| {
                let (reader, len) = fs.open_read(&wal_dir.join(&name.file_name))?;
                Ok(SegmentSource {
                    reader,
                    len,
                    whole: None,
                })
            },
            mode,
        )
    }

    /// [`Self::decoder`] for a read that holds its entries: a cut segment (every segment but
    /// the member's last; etcd never writes one again) of at most [`MAX_MAPPED_SEGMENT_BYTES`]
    /// is mapped whole where the file system can ([`ReadOnlyFs::map_read`]) and decoded in
    /// place as a segment in memory, so held entries of 4 KiB or more share the mapping instead
    /// of a copy of their bytes. The last segment (etcd appends to it, and `Repair` truncates
    /// it) is read as by [`Self::decoder`].
    fn holding_decoder(&self, from: usize, mode: DecoderMode) -> Decoder<'fs> {
        let fs = self.fs;
        let wal_dir = self.paths.wal_dir.clone();
        let last = self.segments.last().map(|s| s.file_name.clone());
        Decoder::new(
            self.segments[from..].to_vec(),
            move |name: &SegmentName| {
                let path = wal_dir.join(&name.file_name);
                if last.as_ref() != Some(&name.file_name) {
                    if let Some(bytes) = fs.map_read(&path, MAX_MAPPED_SEGMENT_BYTES) {
                        return Ok(SegmentSource::from_bytes(bytes));
                    }
                }
                let (reader, len) = fs.open_read(&path)?;
                Ok(SegmentSource {
                    reader,
                    len,
                    whole: None,
                })
            },
            mode,
        )
    }

    /// etcd's `ValidSnapshotEntries` + `LoadNewestAvailable`.
    pub fn boot_snapshot(
        &self,
    ) -> (
        Result<ValidSnapshots, WalError>,
        Option<LoadedSnap>,
        Vec<SkippedSnap>,
    ) {
        let valid = valid_snapshot_entries(self.decoder(0, DecoderMode::Strict));
        let wal_snapshots: &[WalSnapshot] = valid
            .as_ref()
            .map(|v| v.snapshots.as_slice())
            .unwrap_or(&[]);
        let (loaded, skipped) = self.newest_available(wal_snapshots);
        (valid, loaded, skipped)
    }

    /// etcd's `selectWALFiles` + `ReadAll` from the given start snapshot.
    pub fn read_from(&self, start_index: u64, start_term: u64, mode: DecoderMode) -> WalContents {
        self.read_from_with(start_index, start_term, mode, true)
    }

    /// [`Self::read_from`]; `keep_entries: false` only counts the entries held.
    pub fn read_from_with(
        &self,
        start_index: u64,
        start_term: u64,
        mode: DecoderMode,
        keep_entries: bool,
    ) -> WalContents {
        let options = ReadAllOptions {
            start_index,
            start_term,
            mode,
            keep_entries,
        };
        let selection = search_index(&self.segments, start_index);
        let from = match selection {
            Some(from) if is_valid_seq(&self.segments[from..]) => from,
            _ => {
                let reason = match selection {
                    None => format!("no segment starts at or below raft index {start_index}"),
                    Some(from) => {
                        let (at, before, after) =
                            first_seq_gap(&self.segments[from..]).expect("invalid seq has a gap");
                        let segment = &self.segments[from + at];
                        format!(
                            "segment sequence jumps from {before} to {after} at {} (raft index {})",
                            segment.file_name, segment.raft_index
                        )
                    }
                };
                let mut contents = read_all(Decoder::from_segments(Vec::new(), mode), options);
                contents.errors.push(WalError::new(
                    WalErrorKind::FileNotFound { reason },
                    Location::default(),
                ));
                contents.warnings.clear();
                return contents;
            }
        };
        let decoder = if keep_entries {
            self.holding_decoder(from, mode)
        } else {
            self.decoder(from, mode)
        };
        let mut contents = read_all(decoder, options);
        // etcd's isValidSeq lets a gap right after sequence 0 through: etcd reads on (a lost
        // segment's entries then break the CRC chain or the index order, which read_all reports).
        if let Some((at, _, after)) = first_seq_gap(&self.segments[from..]) {
            let segment = &self.segments[from + at];
            contents.accepted_by_etcd.push(WalError::new(
                WalErrorKind::SequenceGapAfterZero {
                    after,
                    first_index: segment.raft_index,
                },
                Location {
                    segment: Some(segment.file_name.clone()),
                    offset: Some(0),
                    raft_index: Some(segment.raft_index),
                },
            ));
        }
        contents
    }
}

/// Why a read starts where it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// The first segment, index 0: the whole WAL.
    Beginning,
    /// The snapshot etcd boots from (its newest loadable `.snap` the WAL confirms).
    Snapshot,
    /// A snapshot past a gap a leader snapshot left: the WAL cannot be read from the start.
    GapFallback,
    /// The snapshot etcd boots from, the segments before it purged (`--max-wals`): the first
    /// segment left does not start at index 0, and etcd reads from its boot snapshot.
    Purged,
}

impl ReadFrom {
    /// The name in JSON and in `dump --summary`.
    pub fn name(self) -> &'static str {
        match self {
            ReadFrom::Beginning => "beginning",
            ReadFrom::Snapshot => "snapshot",
            ReadFrom::GapFallback => "gap_fallback",
            ReadFrom::Purged => "purged",
        }
    }
}

impl std::fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a read chose its start.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StartChoice {
    pub index: u64,
    pub term: u64,
    pub reason: ReadFrom,
    pub snap_file: Option<String>,
}

pub struct MemberRead {
    pub contents: WalContents,
    pub start: StartChoice,
    pub valid_snapshots: Option<ValidSnapshots>,
    pub snapshot: Option<LoadedSnap>,
    pub skipped_snaps: Vec<SkippedSnap>,
}

impl MemberRead {
    /// The snapshot etcd's boot reads the WAL from: the `.snap` `LoadNewestAvailable` chose,
    /// else `{0,0}`.
    pub fn boot_start(&self) -> (u64, u64) {
        self.snapshot
            .as_ref()
            .map(|s| (s.snapshot.metadata.index, s.snapshot.metadata.term))
            .unwrap_or((0, 0))
    }

    /// Whether etcd's boot gets through the WAL: `ValidSnapshotEntries` succeeds, then ReadAll in
    /// write mode from [`Self::boot_start`] reads on (a torn tail of the last segment after
    /// `wal.Repair`; a missing start snapshot record is no error in write mode).
    ///
    /// This read answers when it is that ReadAll, or when it read every segment from the first
    /// without an error: the records from the boot snapshot's segment on are a suffix of those,
    /// so that read fails only on a snapshot record at the boot index with another term. Else
    /// the boot's ReadAll is run (strict, without keeping entries).
    pub fn etcd_boots(&self, files: &MemberFiles<'_>) -> bool {
        if self.valid_snapshots.is_none() {
            return false;
        }
        let (index, term) = self.boot_start();
        let contents = &self.contents;
        if contents.errors.is_empty() {
            if (self.start.index, self.start.term) == (index, term) {
                return true;
            }
            if self.start.index == 0
                && contents.start_index == 0
                && contents.segments == files.segments
                && contents
                    .snapshots
                    .iter()
                    .all(|r| r.snapshot.index != index || r.snapshot.term == term)
            {
                return true;
            }
        }
        files
            .read_from_with(index, term, DecoderMode::Strict, false)
            .errors
            .is_empty()
    }
}

/// Read from the beginning of the WAL; where a leader snapshot left a gap (or the first segments
/// were purged), from the snapshot etcd boots from: the newest `.snap` matching a valid WAL
/// snapshot record. Without one etcd boots from `{0,0}` (`LoadNewestAvailable`:
/// `ErrNoSnapshot`), whatever snapshot records the WAL holds, and its ReadAll stops where the read
/// from the beginning stops: that read and its error stand.
pub fn read_member(files: &MemberFiles<'_>, mode: DecoderMode) -> MemberRead {
    read_member_with(files, mode, true)
}

/// [`read_member`] without keeping the entries (`keep_entries: false`): the same read, errors,
/// HardState, start choice and snapshots, with `contents.entry_count` instead of the entries.
/// For the streaming replay (`replay::stream`), which reads the entries again one at a time.
pub fn read_member_summary(files: &MemberFiles<'_>, mode: DecoderMode) -> MemberRead {
    read_member_with(files, mode, false)
}

fn read_member_with(files: &MemberFiles<'_>, mode: DecoderMode, keep_entries: bool) -> MemberRead {
    let mut start = StartChoice {
        index: 0,
        term: 0,
        reason: ReadFrom::Beginning,
        snap_file: None,
    };
    let mut contents = files.read_from_with(0, 0, mode, keep_entries);
    // A clean ReadAll from the first segment has seen every record ValidSnapshotEntries would
    // (same segments, same order, same end): derive the boot snapshot instead of reading twice.
    let reads_from_first = search_index(&files.segments, 0) == Some(0);
    let (valid, snapshot, skipped_snaps) = if contents.errors.is_empty() && reads_from_first {
        let hard_state = contents.hard_state;
        let (snapshots, above_commit): (Vec<WalSnapshot>, Vec<WalSnapshot>) = contents
            .snapshots
            .iter()
            .map(|s| s.snapshot.clone())
            .partition(|s| s.index <= hard_state.commit);
        let (loaded, skipped) = files.newest_available(&snapshots);
        (
            Ok(ValidSnapshots {
                snapshots,
                above_commit,
                hard_state,
            }),
            loaded,
            skipped,
        )
    } else {
        files.boot_snapshot()
    };
    let mut boot_errors = Vec::new();
    let valid = match valid {
        Ok(v) => Some(v),
        Err(e) => {
            boot_errors.push(e);
            None
        }
    };
    // Fall back only over gaps a leader snapshot explains; a gap nothing explains is lost data.
    let is_bridged_gap = |e: &WalError| {
        matches!(
            e.kind,
            WalErrorKind::SliceOutOfRange {
                bridged_by_snapshot: true,
                ..
            }
        )
    };
    let has_gap = !contents.errors.is_empty() && contents.errors.iter().all(is_bridged_gap);
    let first_missing = files
        .segments
        .first()
        .is_some_and(|s| s.seq != 0 || s.raft_index != 0);
    if has_gap || (first_missing && !contents.start_found) {
        let fallback = snapshot.as_ref().map(|s| {
            (
                s.snapshot.metadata.index,
                s.snapshot.metadata.term,
                s.file_name.clone(),
            )
        });
        if let Some((index, term, snap_file)) = fallback.filter(|(index, _, _)| *index > 0) {
            contents = files.read_from_with(index, term, mode, keep_entries);
            start = StartChoice {
                index,
                term,
                reason: if has_gap {
                    ReadFrom::GapFallback
                } else {
                    ReadFrom::Purged
                },
                snap_file: Some(snap_file),
            };
        }
    }
    for e in boot_errors.into_iter().rev() {
        if !contents.errors.iter().any(|c| c.same_place(&e)) {
            contents.errors.insert(0, e);
        }
    }
    MemberRead {
        contents,
        start,
        valid_snapshots: valid,
        snapshot,
        skipped_snaps,
    }
}
