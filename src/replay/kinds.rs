//! The finding kinds of the replay: raft-rs restarting and applying the log as etcd would, and
//! the follower re-execution of every persisted batch. They form the `raft.replay` invariant of
//! the catalogue ([`crate::check::INVARIANTS`]); the pre-flight checks that share a kind with an
//! invariant scan file use that file's constant.

/// The log handed to raft-rs is not contiguous from its first index.
pub const LOG_NOT_CONTIGUOUS: &str = "raft.log_not_contiguous";
/// The HardState commit lies below the snapshot raft-rs restarts from.
pub const COMMIT_BELOW_SNAPSHOT: &str = "raft.commit_below_snapshot";
/// A committed entry of a type etcd's apply loop does not know.
pub const UNKNOWN_ENTRY_TYPE: &str = "raft.unknown_entry_type";
/// raft-rs handed out for applying an entry of an unknown type.
pub const APPLIED_UNKNOWN_ENTRY: &str = "raft.applied_unknown_entry";
/// raft-rs refused to restart from the persisted state.
pub const RESTART_REFUSED: &str = "raft.restart_refused";
/// raft-rs panicked restarting or applying.
pub const PANIC: &str = "raft.panic";
/// raft-rs rejected a committed conf change.
pub const CONF_CHANGE_REJECTED: &str = "raft.conf_change_rejected";

/// A persisted batch does not follow the log so far (Raft §5.3 consistency check).
pub const APPEND_REJECTED: &str = "replay.append_rejected";
/// An entry of a batch cannot be handed to raft-rs.
pub const BAD_ENTRY: &str = "replay.bad_entry";
/// raft-rs refused the batch's message.
pub const STEP_REFUSED: &str = "replay.step_refused";
/// raft-rs's storage refused what raft-rs asked to persist.
pub const APPEND_REFUSED: &str = "replay.append_refused";
/// etcd persisted other entries than a Raft follower would for the same append.
pub const PERSIST_MISMATCH: &str = "replay.persist_mismatch";
/// A commit-only save lands raft-rs on another commit than etcd persisted.
pub const COMMIT_MISMATCH: &str = "replay.commit_mismatch";
/// raft-rs panicked re-executing a batch.
pub const FOLLOWER_PANIC: &str = "replay.raft_panic";

/// Every kind of the `raft.replay` invariant.
pub const ALL: &[&str] = &[
    LOG_NOT_CONTIGUOUS,
    COMMIT_BELOW_SNAPSHOT,
    UNKNOWN_ENTRY_TYPE,
    APPLIED_UNKNOWN_ENTRY,
    RESTART_REFUSED,
    PANIC,
    CONF_CHANGE_REJECTED,
    APPEND_REJECTED,
    BAD_ENTRY,
    STEP_REFUSED,
    APPEND_REFUSED,
    PERSIST_MISMATCH,
    COMMIT_MISMATCH,
    FOLLOWER_PANIC,
];
