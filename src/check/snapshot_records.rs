//! WAL snapshot records: a snapshot covers only committed entries, and names the term of the
//! entry at its index.
//!
//! * A *local* snapshot (the log holds entry S with term T) is taken of applied state, after the
//!   Save carrying commit ≥ S (etcd's apply loop waits on `notifyc` before `triggerSnapshot`), so
//!   S ≤ the commit persisted before the record.
//! * A *leader* snapshot (the log does not hold S, or holds another term there above the commit)
//!   resets the log; etcd writes the record before the HardState that commits S, so the commit
//!   must reach S afterwards. If it never does, etcd ignores the record at boot
//!   (`ValidSnapshotEntries`): a warning.
//! * A record at an index the member already committed with another term contradicts the log.

use super::{Finding, Severity};
use crate::proto::walpb::WalSnapshot;
use crate::wal::Location;

pub const ABOVE_COMMIT: &str = "raft.snapshot_above_commit";
pub const TERM_MISMATCH: &str = "raft.snapshot_term_mismatch";
pub const UNCONFIRMED: &str = "wal.snapshot_unconfirmed";
pub const REFERENCE_COMMIT: &str =
    "Raft §7 (snapshots hold committed entries only); etcd server/verify (snapshot index ≤ HardState.commit)";
pub const REFERENCE_TERM: &str =
    "Raft §7 (snapshot metadata = last included index and term); etcd wal.ErrSnapshotMismatch";
pub const REFERENCE_UNCONFIRMED: &str =
    "etcd #10219 / wal.ValidSnapshotEntries (records above the last commit are ignored at boot)";

pub fn above_commit(
    member: &str,
    snapshot: &WalSnapshot,
    committed: u64,
    location: Location,
) -> Option<Finding> {
    (snapshot.index > committed).then(|| {
        Finding::new(
            ABOVE_COMMIT,
            Severity::Violation,
            member,
            Location {
                raft_index: Some(snapshot.index),
                ..location
            },
            Some(snapshot.term),
            format!(
                "local snapshot at index {} was written while the persisted commit was {committed}: state was applied beyond the commit",
                snapshot.index
            ),
            REFERENCE_COMMIT,
        )
    })
}

pub fn term_mismatch(
    member: &str,
    index: u64,
    snapshot_term: u64,
    entry_term: u64,
    what: &str,
    location: Location,
) -> Finding {
    Finding::new(
        TERM_MISMATCH,
        Severity::Violation,
        member,
        Location {
            raft_index: Some(index),
            ..location
        },
        Some(snapshot_term),
        format!(
            "{what} at index {index} has term {snapshot_term}, but the committed entry {index} has term {entry_term}"
        ),
        REFERENCE_TERM,
    )
}

pub fn unconfirmed(
    member: &str,
    snapshot: &WalSnapshot,
    commit: u64,
    location: Location,
) -> Finding {
    Finding::new(
        UNCONFIRMED,
        Severity::Warning,
        member,
        Location {
            raft_index: Some(snapshot.index),
            ..location
        },
        Some(snapshot.term),
        format!(
            "snapshot record at index {} is above every commit persisted after it ({commit}); etcd ignores it at boot",
            snapshot.index
        ),
        REFERENCE_UNCONFIRMED,
    )
}
