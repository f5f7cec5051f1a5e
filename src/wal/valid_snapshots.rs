//! etcd's `ValidSnapshotEntries` (run at every boot): every snapshot record in all segments,
//! kept only when its index ≤ the last HardState's commit. The newest `.snap` file matching one
//! of these is the snapshot etcd restarts from; an orphaned `.snap` (no record) is skipped.

use prost::Message;

use super::decoder::{DecodeEnd, Decoder};
use super::error::{WalError, WalErrorKind};
use crate::proto::raftpb::HardState;
use crate::proto::walpb::{WalSnapshot, CRC_TYPE, SNAPSHOT_TYPE, STATE_TYPE};

#[derive(Clone, Debug, Default)]
pub struct ValidSnapshots {
    /// In file order; includes `{0,0}` when the first segment still exists.
    pub snapshots: Vec<WalSnapshot>,
    /// Snapshot records dropped because their index is above the last persisted commit.
    pub above_commit: Vec<WalSnapshot>,
    pub hard_state: HardState,
}

/// `decoder` must cover every segment from the first (no start selection, as in etcd).
pub fn valid_snapshot_entries(mut decoder: Decoder<'_>) -> Result<ValidSnapshots, WalError> {
    let mut all = Vec::new();
    let mut hard_state = HardState::default();
    loop {
        let decoded = match decoder.next_record() {
            Ok(decoded) => decoded,
            Err(DecodeEnd::Eof) | Err(DecodeEnd::UnexpectedEof { .. }) => break,
            Err(DecodeEnd::Fatal(error)) => return Err(error),
        };
        let record = &decoded.record;
        let location = || decoder.location(decoded.segment_index, decoded.offset, None);
        let data = record.data.clone().unwrap_or_default();
        match record.r#type {
            SNAPSHOT_TYPE => match WalSnapshot::decode(data) {
                Ok(snapshot) => all.push(snapshot),
                Err(e) => {
                    return Err(WalError::new(
                        WalErrorKind::PayloadDecode {
                            record_type: "snapshot".into(),
                            message: e.to_string(),
                        },
                        location(),
                    ))
                }
            },
            STATE_TYPE => match HardState::decode(data) {
                Ok(state) => hard_state = state,
                Err(e) => {
                    return Err(WalError::new(
                        WalErrorKind::PayloadDecode {
                            record_type: "state".into(),
                            message: e.to_string(),
                        },
                        location(),
                    ))
                }
            },
            CRC_TYPE => {
                let running = decoder.running_crc();
                if running != 0 && record.crc != running {
                    return Err(WalError::new(
                        WalErrorKind::ChainCrcMismatch {
                            stored: record.crc,
                            computed: running,
                        },
                        location(),
                    ));
                }
                decoder.reseed(record.crc);
            }
            // Entries, metadata and unknown types are ignored here, as in etcd.
            _ => {}
        }
    }
    let (snapshots, above_commit) = all.into_iter().partition(|s| s.index <= hard_state.commit);
    Ok(ValidSnapshots {
        snapshots,
        above_commit,
        hard_state,
    })
}
