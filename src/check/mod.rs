//! Findings: what the checks report. One invariant a file; every finding names its location
//! and the rule (Raft paper section, TLA+ invariant or etcd behaviour) it enforces.
//!
//! Per member, [`scan`] walks the WAL's records once (every segment, in order, over the
//! zero-copy [`records`] walk) and hands each event to the invariant files; across members,
//! [`cluster`] compares what the scans found. The whole of `verify` — these checks, the replay and
//! the HashKV agreement — is [`crate::verify`].
//!
//! | invariant (JUnit case) | kinds | proven by (tests/) |
//! |---|---|---|
//! | framing and CRC chain | `wal.record_crc` `wal.crc_chain` `wal.skipped_bytes` `wal.torn_tail` (warning) … ([`decode`]) | check_corpus: flipped bit, zeroed sector in a cut segment, torn tail |
//! | segment sequence | `wal.segment_sequence` | check_corpus: renamed segment |
//! | index contiguity | `wal.index_gap` ([`contiguity`]) | check_mutants, check_corpus: entry removed |
//! | entry terms non-decreasing | `raft.entry_term_regressed` ([`term_monotonic`]) | both suites |
//! | HardState term non-decreasing | `raft.hardstate_term_regressed` ([`hardstate_term`]) | check_mutants |
//! | one vote per term, for a member | `raft.vote_changed_in_term` `raft.vote_not_member` ([`vote`]) | both suites; check_cluster (ids other members know) |
//! | commit non-decreasing | `raft.commit_regressed` ([`commit_monotonic`]) | both suites |
//! | commit boundary per batch | `raft.commit_beyond_last` `raft.hardstate_term_behind_log` ([`commit_boundary`]) | check_mutants; check_corpus (CLI exit 1) |
//! | no committed entry rewritten | `raft.committed_entry_rewritten` ([`committed_rewrite`]) | both suites (incl. below a leader snapshot) |
//! | one entry per (index, term) | `raft.same_term_entry_replaced` ([`leader_append_only`]) | check_mutants |
//! | snapshot records | `raft.snapshot_above_commit` `raft.snapshot_term_mismatch` `wal.snapshot_unconfirmed` (warning) ([`snapshot_records`]) | check_mutants |
//! | `.snap` files vs WAL | `snap.wal_mismatch` `snap.orphan` `snap.missing` (warnings but the first) ([`snap_files`]) | check_mutants |
//! | replayed ConfState = snapshot ConfState | `raft.conf_state_mismatch` `raft.conf_change_undecodable` ([`conf_state`], [`conf_model`]) | both suites (.snap and 3.5 WAL record) |
//! | one conf change pending | `raft.conf_change_pending` ([`conf_pending`]) | check_mutants |
//! | joint consensus | `raft.joint_*` `raft.removed_last_voter` `raft.voter_and_learner` `raft.invalid_conf_state` ([`joint`]) | check_mutants |
//! | applied ≤ commit | `raft.applied_beyond_commit` ([`applied`], a hook; local snapshots via [`snapshot_records`]) | check_cluster |
//! | the replay: raft-rs restarts and applies as etcd, a follower persists what etcd persisted | `raft.*` pre-flight and restart kinds, `replay.*` ([`crate::replay::kinds`]) | verify_pipeline, reader_outcomes, replay unit tests |
//! | db ≤ log: consistent index ≤ last WAL index | `db.consistent_index_beyond_log` ([`db_log_bound`]) | db_backend (CI bumped past the log) |
//! | db covers the boot snapshot: consistent index ≥ its index | `db.older_than_snapshot` ([`db_boot_snapshot`]) | db_backend (CI lowered below the `.snap`) |
//! | db = the log's state: key bucket = WAL replayed to the consistent index; replay from the db = replay from index 1 | `db.kv_mismatch` `db.replay_diverged` (`db.kv_unchecked`: a warning, this tool's temp file unreadable) ([`db_kv`]) | db_backend (a value changed in a leaf page) |
//! | db `meta/term` (3.5+) = the WAL's term at the consistent index | `db.term_mismatch` ([`db_term`]) | db_log_checks (term rewritten in cluster-f) |
//! | db `confState` (3.5+) = the log's configuration at the consistent index | `db.conf_state_mismatch` `db.conf_state_earlier` (warning) ([`db_conf_state`]) | db_log_checks (a voter id rewritten) |
//! | db `members`/`members_removed` (3.5+) = `.snap` + conf changes at the consistent index | `db.members_mismatch` `db.promoted_learner_flag` (warning, etcd#19557) ([`db_members`]) | db_log_checks (a member key rewritten; `isLearner` set on a voter) |
//! | cluster identity | `cluster.identity` `cluster.duplicate_member` ([`cluster`]) | check_cluster |
//! | log matching | `cluster.log_matching` ([`log_matching`]) | check_cluster |
//! | committed prefixes agree | `cluster.committed_prefix` ([`committed_prefix`]) | check_cluster |
//! | election safety | `cluster.entry_conflict` `cluster.election_safety` ([`election_safety`]) | check_cluster; check_corpus (one member's entry diverging) |
//! | membership agreement | `cluster.membership` ([`membership`]) | check_cluster |
//! | state-hash agreement | `cluster.state_hash` ([`state_hash`], a hook fed by the replay) | check_cluster |
//!
//! Clean real captures give no finding at all (check_corpus); arbitrary record sequences never
//! panic (check_never_panics); the record walk yields what etcd's reader yields (check_records).
//! Cost: `benches/checks.rs`.

pub mod decode;
pub mod digest_items;
mod finding;
pub mod member_scan;
pub mod resolved_log;

pub mod applied;
pub mod cluster;
pub mod commit_boundary;
pub mod commit_monotonic;
pub mod committed_prefix;
pub mod committed_rewrite;
pub mod conf_model;
pub mod conf_pending;
pub mod conf_state;
pub mod contiguity;
pub mod db_boot_snapshot;
pub mod db_conf_state;
pub mod db_kv;
pub mod db_log_bound;
pub mod db_members;
pub mod db_term;
pub mod election_safety;
pub mod hardstate_term;
pub mod joint;
pub mod junit;
pub mod leader_append_only;
pub mod log_matching;
pub mod membership;
pub mod records;
pub mod scan;
pub mod snap_files;
pub mod snapshot_records;
pub mod state_hash;
pub mod term_monotonic;
pub mod vote;

pub use finding::{dedup, sort, Finding, Severity};
pub use member_scan::MemberScan;
pub use scan::scan_member;

/// One invariant as `verify` reports it: a JUnit testcase per member × invariant, passing when
/// none of its finding kinds failed for that member.
#[derive(Clone, Copy, Debug)]
pub struct Invariant {
    pub name: &'static str,
    pub kinds: &'static [&'static str],
}

/// Every invariant checked, in report order. Kinds not listed here fall under `other`.
pub const INVARIANTS: &[Invariant] = &[
    Invariant {
        name: "wal.framing_and_crc",
        kinds: &[
            "wal.record_crc",
            "wal.crc_chain",
            "wal.proto",
            "wal.unexpected_eof",
            "wal.torn_tail",
            "wal.record_too_large",
            "wal.unknown_record_type",
            "wal.payload",
            "wal.skipped_bytes",
            "wal.io",
        ],
    },
    Invariant {
        name: "wal.segment_sequence",
        kinds: &["wal.segment_sequence"],
    },
    Invariant {
        name: "wal.readall",
        kinds: &[
            "wal.metadata_conflict",
            "wal.snapshot_mismatch",
            "wal.snapshot_not_found",
        ],
    },
    Invariant {
        name: "wal.index_contiguity",
        kinds: &[contiguity::INDEX_GAP],
    },
    Invariant {
        name: "raft.entry_term_monotonic",
        kinds: &[term_monotonic::KIND],
    },
    Invariant {
        name: "raft.hardstate_term_monotonic",
        kinds: &[hardstate_term::KIND],
    },
    Invariant {
        name: "raft.vote",
        kinds: &[vote::CHANGED_IN_TERM, vote::NOT_MEMBER],
    },
    Invariant {
        name: "raft.commit_monotonic",
        kinds: &[commit_monotonic::KIND],
    },
    Invariant {
        name: "raft.commit_boundary",
        kinds: &[
            commit_boundary::BEYOND_LAST,
            commit_boundary::TERM_BEHIND_LOG,
        ],
    },
    Invariant {
        name: "raft.no_committed_rewrite",
        kinds: &[committed_rewrite::KIND],
    },
    Invariant {
        name: "raft.leader_append_only",
        kinds: &[leader_append_only::KIND],
    },
    Invariant {
        name: "raft.snapshot_records",
        kinds: &[
            snapshot_records::ABOVE_COMMIT,
            snapshot_records::TERM_MISMATCH,
            snapshot_records::UNCONFIRMED,
        ],
    },
    Invariant {
        name: "snap.files",
        kinds: &[
            "snap.unusable",
            snap_files::WAL_MISMATCH,
            snap_files::ORPHAN,
            snap_files::MISSING,
        ],
    },
    Invariant {
        name: "raft.conf_state",
        kinds: &[conf_state::MISMATCH, conf_state::UNDECODABLE],
    },
    Invariant {
        name: "raft.conf_change_pending",
        kinds: &[conf_pending::KIND],
    },
    Invariant {
        name: "raft.joint_consensus",
        kinds: &[
            joint::ENTER_FROM_JOINT,
            joint::ENTER_ZERO_VOTERS,
            joint::LEAVE_NOT_JOINT,
            joint::SIMPLE_IN_JOINT,
            joint::SIMPLE_MULTIPLE_VOTERS,
            joint::REMOVED_LAST_VOTER,
            joint::VOTER_AND_LEARNER,
            joint::INVALID_CONF_STATE,
            joint::AUTO_LEAVE_PENDING,
        ],
    },
    Invariant {
        name: "raft.applied_within_commit",
        kinds: &[applied::KIND],
    },
    Invariant {
        name: "raft.replay",
        kinds: crate::replay::kinds::ALL,
    },
    Invariant {
        name: "db.consistent_index_within_log",
        kinds: &[db_log_bound::KIND],
    },
    Invariant {
        name: "db.consistent_index_covers_snapshot",
        kinds: &[db_boot_snapshot::KIND],
    },
    Invariant {
        name: "db.kv_at_consistent_index",
        kinds: &[db_kv::KIND, db_kv::BOTH_WAYS, db_kv::UNCHECKED],
    },
    Invariant {
        name: "db.term_at_consistent_index",
        kinds: &[db_term::KIND],
    },
    Invariant {
        name: "db.conf_state_at_consistent_index",
        kinds: &[db_conf_state::KIND, db_conf_state::EARLIER],
    },
    Invariant {
        name: "db.members_at_consistent_index",
        kinds: &[db_members::KIND, db_members::PROMOTED_LEARNER],
    },
    Invariant {
        name: "cluster.identity",
        kinds: &[cluster::IDENTITY, cluster::DUPLICATE_MEMBER],
    },
    Invariant {
        name: "cluster.log_matching",
        kinds: &[log_matching::KIND],
    },
    Invariant {
        name: "cluster.committed_prefix",
        kinds: &[committed_prefix::KIND],
    },
    Invariant {
        name: "cluster.election_safety",
        kinds: &[election_safety::ENTRY_CONFLICT, election_safety::VOTES],
    },
    Invariant {
        name: "cluster.membership",
        kinds: &[membership::KIND],
    },
    Invariant {
        name: "cluster.state_hash",
        kinds: &[state_hash::KIND],
    },
];

/// The per-member result: what the scan kept (for the cross-member checks) and every finding
/// about this member (decode-level and invariant findings, deduplicated).
pub struct MemberCheck {
    pub scan: MemberScan,
    pub findings: Vec<Finding>,
}

/// Every per-member check: the decode-level findings of etcd's boot read, then the invariant scan
/// over all records.
pub fn check_member(
    member: &str,
    files: &crate::member::MemberFiles<'_>,
    read: &crate::member::MemberRead,
) -> MemberCheck {
    let etcd_boots = read.etcd_boots(files);
    let mut findings = decode::decode_findings(member, read, etcd_boots);
    let mut scan = scan::scan_member_after(member, files, Some(read));
    findings.append(&mut scan.findings);
    if let (Some(_), Some(valid)) = (&files.paths.snap_dir, &read.valid_snapshots) {
        let reported: Vec<String> = read
            .skipped_snaps
            .iter()
            .map(|s| s.file_name.clone())
            .collect();
        findings.extend(snap_files::presence(&scan, valid, etcd_boots, &reported));
    }
    dedup(&mut findings);
    MemberCheck { scan, findings }
}

/// The cross-member checks over members of one cluster.
pub fn check_cluster(scans: &[&MemberScan]) -> Vec<Finding> {
    cluster::check_cluster(scans)
}

#[cfg(test)]
mod catalogue_tests {
    use super::INVARIANTS;

    /// Every finding kind the verify pipeline's sources name as a string literal is in the
    /// catalogue, so JUnit files it under its invariant, not under `other`.
    #[test]
    fn every_kind_literal_is_catalogued() {
        let sources = [
            include_str!("../replay/kinds.rs"),
            include_str!("../replay/preflight.rs"),
            include_str!("../replay/restart.rs"),
            include_str!("../replay/follower.rs"),
            include_str!("decode.rs"),
            include_str!("db_log_bound.rs"),
            include_str!("db_boot_snapshot.rs"),
            include_str!("db_kv.rs"),
            include_str!("db_term.rs"),
            include_str!("db_conf_state.rs"),
            include_str!("db_members.rs"),
            include_str!("mod.rs"),
        ];
        let catalogued: Vec<&str> = INVARIANTS
            .iter()
            .flat_map(|i| i.kinds.iter().copied())
            .collect();
        for source in sources {
            let source = source.split("#[cfg(test)]").next().unwrap_or(source);
            for literal in source.split('"').skip(1).step_by(2) {
                let is_kind = ["raft.", "replay.", "wal.", "snap.", "cluster.", "db."]
                    .iter()
                    .any(|p| literal.starts_with(p))
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
                let is_invariant_name = INVARIANTS.iter().any(|i| i.name == literal);
                if is_kind && !is_invariant_name {
                    assert!(
                        catalogued.contains(&literal),
                        "{literal} is not in INVARIANTS"
                    );
                }
            }
        }
    }
}
