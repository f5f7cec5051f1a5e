//! Deterministic cluster simulation: raft-rs nodes persisting through etcd's WAL writer onto
//! simulated disks, a faulty network, clients, crashes that lose unsynced data or tear
//! sectors, and recovery through the same read path as `verify`. Runs are scripted
//! ([`script`], the files in `scenarios/`) or generated and shrunk by proptest ([`gen`]).
//!
//! Single-threaded and seeded: a scenario's output depends only on its text.
//!
//! # The fault atlas
//!
//! Faults are bounded so that the unmodified code is always safe, and any failed check is a
//! real bug (in raft-rs, in the simulated etcd layer, or in a checker):
//!
//! * storage never loses or damages fsynced bytes. A process crash (`crash`) keeps what reached
//!   the OS, a power loss (`lose-unsynced`) keeps what was fsynced, a torn write (`tear`) is a
//!   power loss during a `WAL.Save` whose fsync never returned: any subset of the 512-byte
//!   sectors of that write survives, nothing of it was acknowledged;
//! * at most f = (initial voters − 1) / 2 nodes (at least one) are down after a power loss at
//!   once (a restart ends it); process crashes are unbounded;
//! * the network may drop, delay, reorder, duplicate and partition anything, except that a
//!   proposal forwarded to the leader is never duplicated (that would be a second client
//!   request, which etcd's TCP transport never makes);
//! * the application behaves as etcd does: conf changes are validated before they are
//!   proposed (etcd's `ValidateConfigurationChange` for v1, raft's `Changer` rules for v2, and
//!   an empty ConfChangeV2 only with transition auto), unpromotable nodes never campaign, and a
//!   member that applies its own removal shuts down, and a removed id is never added again;
//! * a `check` heals the network and restarts every node first. Liveness is not guaranteed
//!   after lost unsynced data (a cluster can be left without a quorum that knows its commit);
//!   such a run is reported as stuck, not failed.

mod apply;
pub mod cluster;
pub mod disk;
pub mod entry;
pub mod gen;
pub mod history;
pub mod net;
mod ready;
mod render;
pub mod script;
pub mod shard;
pub mod verdict;

pub use cluster::{Inject, Options, Sim};
pub use script::{run_script, Command, Runner};
pub use verdict::Verdict;
