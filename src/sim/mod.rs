//! Deterministic cluster simulation: raft-rs nodes persisting through etcd's WAL writer onto
//! simulated disks, a faulty network, clients, crashes that lose unsynced data or tear
//! sectors, and recovery through the same read path as `verify`. Runs are scripted
//! ([`script`], the files in `scenarios/`) or generated and shrunk by proptest ([`gen`]).
//!
//! Single-threaded and seeded: a scenario's output depends only on its text.

pub mod cluster;
pub mod disk;
pub mod entry;
pub mod gen;
pub mod history;
pub mod net;
pub mod script;
pub mod verdict;

pub use cluster::{Inject, Options, Sim};
pub use script::{run_script, Command, Runner};
pub use verdict::Verdict;
