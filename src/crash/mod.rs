//! Crash and storage-fault enumeration at fsync/commit boundaries.
//!
//! Given what etcd wrote (a member's WAL and `.snap` files), which on-disk states could a power
//! failure or a storage fault have left, and does each recover safely? Per member:
//!
//! 1. [`history`]: decode the WAL once; derive Save batches and fsync points by etcd's rules.
//! 2. [`states`]: plan the crash states of each fault class (a–i, see [`FaultClass`]). States
//!    that damage bytes are decoded with the real decoder over just the damaged stretch
//!    ([`region`]), so each reduces to "etcd recovers the first r records" or "etcd refuses".
//! 3. [`fold`]: etcd's boot over every record prefix, incrementally (O(n) for all prefixes); each
//!    prefix restarted in raft-rs from a checkpoint (the previous prefix's applied state), so all
//!    record-boundary cuts cost O(n) restarts of O(new entries) each ([`member`]).
//! 4. [`recover`]: the real path (files in memory, etcd's boot, Repair, raft-rs from the boot
//!    snapshot, KV replay) for `.snap` faults, a missing segment, and cross-checks of the model.
//! 5. [`cluster`]: with several members, crash up to f voters together and check that every
//!    committed entry survives on a quorum, and that no restarted member is handed a commit
//!    beyond its log ("tocommit out of range").
//!
//! Inputs are read through [`crate::fsio::ReadOnlyFs`] only; crash states live in memory.

mod classify;
pub mod cluster;
mod cross_check;
mod evaluate;
pub mod fixture;
pub mod fold;
pub mod history;
pub mod member;
mod prefix_model;
pub mod recover;
pub mod region;
pub mod report;
pub mod states;

use serde::Serialize;

pub use cluster::{enumerate_cluster, ClusterRun};
pub use member::{enumerate_member, MemberRun};
pub use states::Spec;

/// The fault classes. (a)–(e) are states a crash can leave under the usual model
/// (fsynced data persists; sectors are written atomically); (f)–(i) are storage faults beyond it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FaultClass {
    /// (a) cut at every fsync point.
    FsyncPoint,
    /// (b) cut at every record boundary (process crash: everything written persists).
    RecordBoundary,
    /// (c) the write in flight torn at every 512-byte sector (sectors persisted in order).
    TornSector,
    /// (d) every write since the last fsync lost (LazyFS: the page cache dropped).
    LostUnsynced,
    /// (e) unsynced sectors persisted partially or out of order.
    ReorderedSectors,
    /// (f) a zeroed sector mid-file.
    ZeroedSector,
    /// (g) a flipped bit in a record's CRC-covered data (with `--flip-unprotected`, also in
    /// its type byte, which the CRC does not cover).
    BitFlip,
    /// (h) the newest `.snap` truncated or missing.
    SnapFile,
    /// (i) the last segment missing.
    LastSegmentMissing,
}

pub const ALL_CLASSES: [FaultClass; 9] = [
    FaultClass::FsyncPoint,
    FaultClass::RecordBoundary,
    FaultClass::TornSector,
    FaultClass::LostUnsynced,
    FaultClass::ReorderedSectors,
    FaultClass::ZeroedSector,
    FaultClass::BitFlip,
    FaultClass::SnapFile,
    FaultClass::LastSegmentMissing,
];

impl FaultClass {
    pub fn letter(self) -> char {
        match self {
            FaultClass::FsyncPoint => 'a',
            FaultClass::RecordBoundary => 'b',
            FaultClass::TornSector => 'c',
            FaultClass::LostUnsynced => 'd',
            FaultClass::ReorderedSectors => 'e',
            FaultClass::ZeroedSector => 'f',
            FaultClass::BitFlip => 'g',
            FaultClass::SnapFile => 'h',
            FaultClass::LastSegmentMissing => 'i',
        }
    }

    pub fn from_letter(c: char) -> Option<FaultClass> {
        ALL_CLASSES.iter().copied().find(|f| f.letter() == c)
    }

    pub fn key(self) -> &'static str {
        match self {
            FaultClass::FsyncPoint => "fsync_point",
            FaultClass::RecordBoundary => "record_boundary",
            FaultClass::TornSector => "torn_sector",
            FaultClass::LostUnsynced => "lost_unsynced",
            FaultClass::ReorderedSectors => "reordered_sectors",
            FaultClass::ZeroedSector => "zeroed_sector",
            FaultClass::BitFlip => "bit_flip",
            FaultClass::SnapFile => "snap_file",
            FaultClass::LastSegmentMissing => "last_segment_missing",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            FaultClass::FsyncPoint => "cut at every fsync point",
            FaultClass::RecordBoundary => "cut at every record boundary",
            FaultClass::TornSector => "write in flight torn at each 512-byte sector",
            FaultClass::LostUnsynced => "writes since the last fsync lost (LazyFS)",
            FaultClass::ReorderedSectors => "unsynced sectors persisted partially/out of order",
            FaultClass::ZeroedSector => "a zeroed sector mid-file",
            FaultClass::BitFlip => "a flipped bit in a record's data",
            FaultClass::SnapFile => "newest .snap truncated or missing",
            FaultClass::LastSegmentMissing => "last segment missing",
        }
    }

    /// A state a crash can leave (as opposed to a storage fault).
    pub fn is_crash(self) -> bool {
        matches!(
            self,
            FaultClass::FsyncPoint
                | FaultClass::RecordBoundary
                | FaultClass::TornSector
                | FaultClass::LostUnsynced
                | FaultClass::ReorderedSectors
        )
    }
}

/// What recovery from a state amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything written before the crash is recovered.
    Recovered,
    /// Recovered without writes that were never fsynced (and never acknowledged).
    ExpectedLoss,
    /// etcd refuses to start, with an error naming the damage (corruption detected).
    Refused,
    /// A storage fault etcd cannot detect: it restarts from an older, consistent prefix and
    /// fsynced (acknowledged) entries are gone. Not a crash-recovery bug — etcd's format cannot
    /// tell this damage from a torn write — but the member must not rejoin as if intact (PAR,
    /// FAST'18). Counted as a failure with `--strict`; when it costs a quorum, a cluster-wide
    /// undetected loss (see [`cluster::QuorumLoss`]).
    UndetectedLoss,
    /// Fsynced or committed data lost silently under a crash, raft-rs panics or refuses, the
    /// recovered state diverges from what was written, commit beyond the last index, or a
    /// crash state etcd cannot restart from.
    Violation,
}

pub const ALL_OUTCOMES: [Outcome; 5] = [
    Outcome::Recovered,
    Outcome::ExpectedLoss,
    Outcome::Refused,
    Outcome::UndetectedLoss,
    Outcome::Violation,
];

impl Outcome {
    pub fn key(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::ExpectedLoss => "expected_loss",
            Outcome::Refused => "refused",
            Outcome::UndetectedLoss => "undetected_loss",
            Outcome::Violation => "violation",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::ExpectedLoss => "expected loss",
            Outcome::Refused => "refused",
            Outcome::UndetectedLoss => "undetected loss",
            Outcome::Violation => "VIOLATION",
        }
    }
}

/// How much to enumerate.
#[derive(Clone, Debug)]
pub struct Options {
    pub classes: Vec<FaultClass>,
    /// Real-path cross-checks of the prefix model per member (evenly spread, plus every point
    /// where the boot snapshot or the segment set changes).
    pub cross_checks: usize,
    /// Replay the KV model (HashKV) at the cross-check points.
    pub kv: bool,
    /// (c): sector boundaries per write, (e): sector subsets per write, (f): sectors per
    /// segment, (g): records per segment. `exhaustive` lifts every cap.
    pub max_torn_per_write: usize,
    pub max_subsets_per_write: usize,
    pub max_zeroed_per_segment: usize,
    pub max_flips_per_segment: usize,
    pub exhaustive: bool,
    /// (g) also flips the low bit of each sampled record's type byte, which etcd's CRC does
    /// not cover (a state found this way is a limit of the format, not of the crash recovery).
    pub flip_unprotected: bool,
    /// Cluster mode: at most this many members crashed together (default f = ⌊(voters−1)/2⌋).
    pub max_crashed: Option<usize>,
    /// Evaluate only this state, for reproducing a finding.
    pub only: Option<OnlyState>,
    /// Members enumerated at once in cluster mode: 0 is one per core. The report is the same for
    /// every value (each member's enumeration is independent; results keep input order).
    pub jobs: usize,
    /// A bug planted in the KV side of the recovery path, for tests that show the KV check
    /// catches it (`None` in every real run).
    #[doc(hidden)]
    pub plant: Option<KvPlant>,
}

/// A bug planted in the recovered states' KV replay (never in a real run): the KV check
/// against the uncrashed member must fail on it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvPlant {
    /// A recovery from the db applies the entry at the db's consistent index again (the
    /// consistent index taken one too low): an entry already in the db applied twice.
    ReapplyConsistentIndex,
}

/// One crash state evaluated alone (`--only`), parsed once from its printed form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnlyState {
    /// A state of one member: `SPEC` (e.g. `f:0:3`).
    Member(FaultClass, Spec),
    /// Cluster mode: the state of each crashed member, by input position (`I@SPEC[,J@SPEC…]`).
    Cluster(Vec<(usize, FaultClass, Spec)>),
}

/// Why an `--only` text is not a state.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OnlyError {
    /// Not `CLASS:N[:N…]` as a reproducer prints it.
    #[error("not a state spec")]
    NotASpec,
    /// Several members were given but the text does not say which member each state is of.
    #[error("expected MEMBER@SPEC[,MEMBER@SPEC…] in cluster mode (MEMBER counts PATHs from 0)")]
    NotAClusterSpec,
}

impl OnlyState {
    /// Parses the text of a reproducer for `members` inputs (one: `SPEC`; more: `I@SPEC,…`).
    pub fn parse(text: &str, members: usize) -> Result<OnlyState, OnlyError> {
        if members <= 1 {
            let (class, spec) = Spec::parse(text).ok_or(OnlyError::NotASpec)?;
            return Ok(OnlyState::Member(class, spec));
        }
        let states = text
            .split(',')
            .map(|part| {
                let (member, spec) = part.split_once('@').ok_or(OnlyError::NotAClusterSpec)?;
                let member = member
                    .trim()
                    .parse()
                    .map_err(|_| OnlyError::NotAClusterSpec)?;
                let (class, spec) = Spec::parse(spec.trim()).ok_or(OnlyError::NotASpec)?;
                Ok((member, class, spec))
            })
            .collect::<Result<Vec<_>, OnlyError>>()?;
        Ok(OnlyState::Cluster(states))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            classes: ALL_CLASSES.to_vec(),
            cross_checks: 32,
            kv: true,
            max_torn_per_write: 64,
            max_subsets_per_write: 32,
            max_zeroed_per_segment: 512,
            max_flips_per_segment: 512,
            exhaustive: false,
            flip_unprotected: false,
            max_crashed: None,
            only: None,
            jobs: 0,
            plant: None,
        }
    }
}

impl Options {
    pub fn wants(&self, class: FaultClass) -> bool {
        self.classes.contains(&class)
    }

    pub(crate) fn cap(&self, cap: usize) -> usize {
        if self.exhaustive {
            usize::MAX
        } else {
            cap
        }
    }
}

/// Picks at most `cap` of `items`, evenly spread, always keeping the first and the last.
pub(crate) fn spread<T: Clone>(items: &[T], cap: usize) -> Vec<T> {
    if items.len() <= cap {
        return items.to_vec();
    }
    if cap == 0 {
        return Vec::new();
    }
    if cap == 1 {
        return vec![items[0].clone()];
    }
    let n = items.len();
    let mut out: Vec<T> = Vec::with_capacity(cap);
    let mut last = usize::MAX;
    for i in 0..cap {
        let at = i * (n - 1) / (cap - 1);
        if at != last {
            out.push(items[at].clone());
            last = at;
        }
    }
    out
}

#[cfg(test)]
mod only_tests {
    use super::*;

    #[test]
    fn only_parses_what_a_reproducer_prints_and_names_what_is_wrong() {
        let spec = Spec::Cut { k: 7 };
        let text = spec.render(FaultClass::RecordBoundary);
        assert_eq!(
            OnlyState::parse(&text, 1),
            Ok(OnlyState::Member(FaultClass::RecordBoundary, spec.clone()))
        );
        assert_eq!(
            OnlyState::parse(&format!("0@{text},2@{text}"), 3),
            Ok(OnlyState::Cluster(vec![
                (0, FaultClass::RecordBoundary, spec.clone()),
                (2, FaultClass::RecordBoundary, spec),
            ]))
        );
        assert_eq!(OnlyState::parse("z:1", 1), Err(OnlyError::NotASpec));
        assert_eq!(OnlyState::parse(&text, 2), Err(OnlyError::NotAClusterSpec));
        assert_eq!(
            OnlyState::parse("x@b:1", 2),
            Err(OnlyError::NotAClusterSpec)
        );
        assert_eq!(OnlyState::parse("0@z:1", 2), Err(OnlyError::NotASpec));
    }
}
