//! Committed prefixes agree: an index every compared member has persisted as committed holds
//! the same entry on each (State Machine Safety, §5.4; TLA+ `LogInv`). A member's commit can lag
//! (commit-only HardStates are not fsynced), which only shortens what is compared. See
//! [`super::cluster`].

pub const KIND: &str = "cluster.committed_prefix";
pub const REFERENCE: &str =
    "Raft §5.4 State Machine Safety; TLA+ LogInv (committed prefixes agree)";
