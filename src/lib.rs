//! raft-replay: did Raft's safety hold? Decode etcd's WAL and snapshot files bit for bit, replay
//! them through raft-rs and a model of etcd's MVCC store, and check Raft's invariants — for a
//! member, or for every member of a cluster together.
//!
//! # The front door
//!
//! [`Capture`] is a cluster's members as you keep them: a capture directory in this repository's
//! corpus layout (`data.tar.gz` + `manifest.json`, as `corpus/` holds them), or a directory of
//! member data dirs. [`Capture::verify`] runs the pipeline below on all members together and
//! compares each member's HashKV with what the manifest recorded (in the bundled corpus, what
//! etcd itself reported):
//!
//! ```no_run
//! let report = raft_replay::Capture::open("captures/incident-2026-11-30")?.verify()?;
//! report.assert_holds(); // panics with the report's text unless every check held
//! println!("{report}");
//! # Ok::<(), raft_replay::CaptureError>(())
//! ```
//!
//! [`verify_cluster`] is the whole of `raft-replay verify`: etcd's boot read of each member,
//! every invariant per member and across members, the raft-rs replay (restart and apply, a
//! follower re-execution of every persisted batch), the KV replay's HashKV and its agreement
//! across members. `gate`, `sim`, `crash` and `profile` build on the same pipeline.
//!
//! ```no_run
//! use std::path::PathBuf;
//!
//! let members: Vec<PathBuf> = ["m1", "m2", "m3"].iter().map(|m| PathBuf::from("backup").join(m)).collect();
//! let report = raft_replay::verify_cluster(&raft_replay::RealFs, &members, &Default::default())?;
//! report.assert_holds(); // panics with every failing finding
//! for member in &report.members {
//!     println!("{}: HashKV {:?}", member.name, member.replay.as_ref().and_then(|r| r.hashkv));
//! }
//! # Ok::<(), raft_replay::VerifyError>(())
//! ```
//!
//! Input is only ever read, through [`ReadOnlyFs`] (no write operation exists); [`MemFs`] holds
//! files in memory and can fault reads.
//!
//! # Internals
//!
//! The modules below are public for this crate's binary, tests and benchmarks, and are hidden
//! from the documentation: they are not a stable API. The core is pure (bytes in, findings out);
//! file access lives at the edges behind [`ReadOnlyFs`].
#![deny(missing_docs)]

#[doc(hidden)]
pub mod backend;
mod capture;
#[doc(hidden)]
pub mod check;
#[doc(hidden)]
pub mod crash;
#[doc(hidden)]
pub mod fsio;
#[doc(hidden)]
pub mod gate;
#[doc(hidden)]
pub mod member;
#[doc(hidden)]
pub mod mvcc;
#[doc(hidden)]
pub mod pack;
mod pool;
#[doc(hidden)]
pub mod profile;
#[doc(hidden)]
pub mod proto;
#[doc(hidden)]
pub mod replay;
#[doc(hidden)]
pub mod sim;
#[doc(hidden)]
pub mod snap;
#[doc(hidden)]
pub mod verify;
#[doc(hidden)]
pub mod wal;

pub use capture::{Capture, CaptureError, CaptureReport, MemberOutcome, Recorded};
pub use check::{Finding, Severity};
pub use fsio::{MemFs, RangeReader, ReadOnlyFs, RealFs};
pub use gate::version::Version;
pub use gate::{run_gate, GateReport};
pub use member::OpenError;
pub use replay::member_state::MemberState;
pub use verify::{
    verify_cluster, verify_named, ClusterReport, EntryReading, MemberReport, VerifyError,
    VerifyOptions,
};
pub use wal::{DecoderMode, Location};
