//! `.snap` files: `snappb.snapshot{crc, data}` with `crc = crc32c(data)` (not chained) and data
//! a marshalled `raftpb.Snapshot`, whose own data in 3.4/3.5 is the v2 store as JSON (3.6: the
//! membership part only). Names are `%016x-%016x.snap` (term, then index); the metadata inside is
//! authoritative.

pub mod membership;

use bytes::Bytes;
use prost::Message;

use crate::proto::raftpb::Snapshot;
use crate::proto::snappb::SnapFile;
use crate::proto::walpb::WalSnapshot;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnapError {
    /// etcd `ErrEmptySnapshot`: empty file, empty data or a zero CRC.
    #[error("snapshot file is empty (snap: empty snapshot)")]
    Empty,
    #[error("snapshot file is not valid protobuf: {message}")]
    Proto { message: String },
    /// etcd `ErrCRCMismatch` ("snap: crc mismatch").
    #[error("snapshot CRC mismatch: stored {stored:#010x}, computed {computed:#010x} (snap: crc mismatch)")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("snapshot payload is not a raftpb.Snapshot: {message}")]
    Payload { message: String },
}

/// etcd's `snap.Read` on a file's bytes.
pub fn read_snap(bytes: Bytes) -> Result<Snapshot, SnapError> {
    if bytes.is_empty() {
        return Err(SnapError::Empty);
    }
    let file = SnapFile::decode(bytes).map_err(|e| SnapError::Proto {
        message: e.to_string(),
    })?;
    let data = file.data.unwrap_or_default();
    if data.is_empty() || file.crc == 0 {
        return Err(SnapError::Empty);
    }
    let computed = crc32c::crc32c(&data);
    if computed != file.crc {
        return Err(SnapError::CrcMismatch {
            stored: file.crc,
            computed,
        });
    }
    Snapshot::decode(data).map_err(|e| SnapError::Payload {
        message: e.to_string(),
    })
}

/// etcd's `snapNames`: names ending in `.snap`, newest first (reverse byte order: term-major).
pub fn snap_names(mut names: Vec<String>) -> Vec<String> {
    names.retain(|n| n.ends_with(".snap"));
    names.sort();
    names.reverse();
    names
}

/// A `.snap` file that was considered and why it was not used.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedSnap {
    pub file_name: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct LoadedSnap {
    pub file_name: String,
    pub snapshot: Snapshot,
}

/// etcd's `LoadNewestAvailable(walSnaps)`: the newest readable `.snap` whose (term, index) is one
/// of the WAL's valid snapshot records. Unreadable files are reported, never renamed.
/// `bytes_of(name)`: a file's bytes, read only when it is considered (newest first, up to the
/// one used), as etcd reads them.
pub fn load_newest_available(
    names: &[String],
    bytes_of: &dyn Fn(&str) -> Bytes,
    wal_snapshots: &[WalSnapshot],
) -> (Option<LoadedSnap>, Vec<SkippedSnap>) {
    let mut skipped = Vec::new();
    for name in snap_names(names.to_vec()) {
        match read_snap(bytes_of(&name)) {
            Ok(snapshot) => {
                let meta = &snapshot.metadata;
                if wal_snapshots
                    .iter()
                    .any(|w| w.index == meta.index && w.term == meta.term)
                {
                    return (
                        Some(LoadedSnap {
                            file_name: name,
                            snapshot,
                        }),
                        skipped,
                    );
                }
                skipped.push(SkippedSnap {
                    file_name: name,
                    reason: format!(
                        "no valid WAL snapshot record for term {} index {} (orphaned or above the persisted commit)",
                        meta.term, meta.index
                    ),
                });
            }
            Err(e) => skipped.push(SkippedSnap {
                file_name: name,
                reason: e.to_string(),
            }),
        }
    }
    (None, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::{ConfState, SnapshotMetadata};

    /// A 34-byte `.snap` file written by etcd 3.4.23's `snap.Snapshotter.SaveSnap`.
    const REFERENCE_SNAP: &str =
        "08dcb5c6b901121a0a0b7b22526f6f74223a7b7d7d120b0a0508b4242800100318";

    #[test]
    fn reads_the_reference_file() {
        let bytes = hex::decode(format!("{REFERENCE_SNAP}02")).unwrap();
        let snapshot = read_snap(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(snapshot.metadata.index, 3);
        assert_eq!(snapshot.metadata.term, 2);
        assert_eq!(snapshot.metadata.conf_state.voters, vec![0x1234]);
        assert_eq!(snapshot.data.as_deref(), Some(&b"{\"Root\":{}}"[..]));
        // Re-encoding gives etcd's bytes.
        let data = snapshot.encode_to_vec();
        let file = SnapFile {
            crc: crc32c::crc32c(&data),
            data: Some(data.into()),
        };
        assert_eq!(file.encode_to_vec(), bytes);
    }

    #[test]
    fn read_errors_match_etcd() {
        assert_eq!(read_snap(Bytes::new()), Err(SnapError::Empty));
        let mut bytes = hex::decode(format!("{REFERENCE_SNAP}02")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            read_snap(Bytes::from(bytes)),
            Err(SnapError::CrcMismatch { .. })
        ));
        assert!(matches!(
            read_snap(Bytes::from_static(&[0xff, 0xff])),
            Err(SnapError::Proto { .. })
        ));
    }

    #[test]
    fn newest_matching_snapshot_wins_and_orphans_are_skipped() {
        let make = |term: u64, index: u64| {
            let snapshot = Snapshot {
                data: Some(Bytes::from_static(b"{}")),
                metadata: SnapshotMetadata {
                    conf_state: ConfState::default(),
                    index,
                    term,
                },
            };
            let data = snapshot.encode_to_vec();
            let file = SnapFile {
                crc: crc32c::crc32c(&data),
                data: Some(data.into()),
            };
            (
                format!("{term:016x}-{index:016x}.snap"),
                Bytes::from(file.encode_to_vec()),
            )
        };
        let files = [
            make(2, 100),
            make(2, 200),
            make(3, 300),
            (
                "0000000000000004-0000000000000400.snap".into(),
                Bytes::new(),
            ),
        ];
        let wal = vec![
            WalSnapshot {
                index: 100,
                term: 2,
                conf_state: None,
            },
            WalSnapshot {
                index: 200,
                term: 2,
                conf_state: None,
            },
        ];
        let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
        let read = std::cell::RefCell::new(Vec::new());
        let bytes_of = |name: &str| {
            read.borrow_mut().push(name.to_string());
            let file = files.iter().find(|(n, _)| n == name);
            file.map(|(_, b)| b.clone()).unwrap_or_default()
        };
        let (loaded, skipped) = load_newest_available(&names, &bytes_of, &wal);
        assert_eq!(loaded.unwrap().snapshot.metadata.index, 200);
        assert_eq!(
            skipped.len(),
            2,
            "the empty newest file and the orphan at 300"
        );
        // Newest first, and none older than the one used.
        assert_eq!(
            read.into_inner(),
            [
                "0000000000000004-0000000000000400.snap",
                "0000000000000003-000000000000012c.snap",
                "0000000000000002-00000000000000c8.snap",
            ]
        );
    }
}
