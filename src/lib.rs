//! raft-replay: decode etcd's WAL and snapshot files, replay them through raft-rs and an
//! etcd MVCC model, and check Raft's safety invariants.
//!
//! The core is pure (bytes in, findings out); file access lives at the edges behind
//! [`fsio::ReadOnlyFs`], which tests can fault.

pub mod check;
pub mod crash;
pub mod fsio;
pub mod gate;
pub mod member;
pub mod mvcc;
pub mod profile;
pub mod proto;
pub mod replay;
pub mod sim;
pub mod snap;
pub mod verify;
pub mod wal;
