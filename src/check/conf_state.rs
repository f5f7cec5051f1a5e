//! The configuration obtained by replaying conf-change entries equals the ConfState of every
//! snapshot: each `.snap`'s metadata and, from etcd 3.5 on, each WAL snapshot record's
//! `conf_state`. etcd's `server/verify` leaves this as a TODO; raft asserts it on restore
//! (`assertConfStatesEquivalent`, raft-rs "invalid restore").
//!
//! Replay follows etcd → raft semantics ([`super::conf_model`]). It is compared where this
//! member's files determine the configuration: from the beginning of the log, or from a snapshot
//! whose ConfState seeded it.

use super::conf_model::Config;
use super::member_scan::{MemberScan, SnapshotKind};
use super::{Finding, Severity};
use crate::wal::Location;

pub const MISMATCH: &str = "raft.conf_state_mismatch";
pub const UNDECODABLE: &str = "raft.conf_change_undecodable";
pub const REFERENCE: &str =
    "Raft §6 (configuration = the latest conf change in the log); raft assertConfStatesEquivalent; etcd server/verify membership TODO";
pub const REFERENCE_DECODE: &str =
    "etcd pbutil.MustUnmarshal / 'unknown ConfChange type' panic at apply";

fn mismatch(
    member: &str,
    what: &str,
    index: u64,
    term: u64,
    theirs: &Config,
    replayed: &Config,
    location: Location,
) -> Finding {
    Finding::new(
        MISMATCH,
        Severity::Violation,
        member,
        location,
        Some(term),
        format!(
            "{what} at index {index} holds ConfState {theirs}, but the conf changes up to {index} give {replayed}"
        ),
        REFERENCE,
    )
}

pub fn check(scan: &MemberScan) -> Vec<Finding> {
    let mut findings = Vec::new();
    for snap in &scan.snaps {
        let Some(replayed) = scan.timeline.at(snap.index) else {
            continue;
        };
        let theirs = Config::from_conf_state(&snap.conf_state);
        if &theirs != replayed {
            findings.push(mismatch(
                &scan.member,
                &format!("snapshot file {}", snap.file_name),
                snap.index,
                snap.term,
                &theirs,
                replayed,
                Location {
                    segment: Some(snap.file_name.clone()),
                    offset: None,
                    raft_index: Some(snap.index),
                },
            ));
        }
    }
    for record in &scan.wal_snapshots {
        let (Some(cs), false) = (
            &record.snapshot.conf_state,
            record.kind == SnapshotKind::Initial,
        ) else {
            continue;
        };
        let Some(replayed) = scan.timeline.at(record.snapshot.index) else {
            continue;
        };
        let theirs = Config::from_conf_state(cs);
        if &theirs != replayed {
            findings.push(mismatch(
                &scan.member,
                "WAL snapshot record",
                record.snapshot.index,
                record.snapshot.term,
                &theirs,
                replayed,
                record.location.clone(),
            ));
        }
    }
    findings
}
