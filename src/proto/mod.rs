//! etcd's on-disk and in-log protobuf messages, defined by hand with `prost`.
//!
//! etcd's raft protos are proto2 (gogo): non-nullable scalars are always emitted, `repeated uint64`
//! is unpacked, and `bytes` fields keep presence. We mirror that with prost's `required` label so
//! that re-encoding a decoded message gives etcd's exact bytes. etcd `string` fields are declared
//! as `bytes` because gogo does not validate UTF-8 and prost would; decoding must fail exactly
//! where etcd's fails (this is how etcd tells an InternalRaftRequest from a v2 Request).
//!
//! raft-rs `eraftpb` is *not* wire-compatible for conf changes (ConfChangeType 2 is UpdateNode in
//! etcd, AddLearnerNode in raft-rs); [`translate`] is the only bridge between the two.

pub mod etcdserverpb;
pub mod member;
pub mod payload;
pub mod raftpb;
pub mod snappb;

pub mod translate;
pub mod walpb;
