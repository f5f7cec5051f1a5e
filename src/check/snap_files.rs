//! `.snap` files agree with the WAL: a `.snap` and the WAL snapshot record at its index name the
//! same term (and, from 3.5, the same ConfState); a `.snap` with no record where the WAL still
//! covers its index is an orphan (etcd skips it); the newest snapshot record etcd would accept
//! has its `.snap` (otherwise etcd boots from an older one).
//!
//! etcd saves the `.snap` first, then the WAL record ("this makes it possible for the snapshot
//! file to become orphaned, but prevents a WAL snapshot entry from having no corresponding
//! snapshot file", `etcdserver/storage.go`), and matches them by (term, index) at boot.

use super::conf_model::Config;
use super::scan::{MemberScan, SnapshotKind};
use super::{snapshot_records, Finding, Severity};
use crate::wal::Location;

pub const WAL_MISMATCH: &str = "snap.wal_mismatch";
pub const ORPHAN: &str = "snap.orphan";
pub const MISSING: &str = "snap.missing";
pub const REFERENCE: &str =
    "etcd SaveSnap order (.snap then WAL record) and snap.LoadNewestAvailable (match by term and index)";

fn snap_location(file_name: &str, index: u64) -> Location {
    Location {
        segment: Some(file_name.to_string()),
        offset: None,
        raft_index: Some(index),
    }
}

/// Each readable `.snap` against the WAL records and the log at its index.
pub fn check(scan: &MemberScan) -> Vec<Finding> {
    let mut findings = Vec::new();
    for snap in &scan.snaps {
        let records: Vec<_> = scan
            .wal_snapshots
            .iter()
            .filter(|r| r.snapshot.index == snap.index && r.kind != SnapshotKind::Initial)
            .collect();
        if let Some(record) = records.iter().find(|r| r.snapshot.term != snap.term) {
            findings.push(Finding::new(
                WAL_MISMATCH,
                Severity::Corruption,
                &scan.member,
                snap_location(&snap.file_name, snap.index),
                Some(snap.term),
                format!(
                    "{} has term {} at index {}, the WAL snapshot record at {} has term {}",
                    snap.file_name, snap.term, snap.index, record.location, record.snapshot.term
                ),
                REFERENCE,
            ));
            continue;
        }
        let theirs = Config::from_conf_state(&snap.conf_state);
        let disagreeing = records.iter().find(|r| {
            r.snapshot
                .conf_state
                .as_ref()
                .is_some_and(|cs| Config::from_conf_state(cs) != theirs)
        });
        if let Some(record) = disagreeing {
            let wal = Config::from_conf_state(record.snapshot.conf_state.as_ref().expect("found"));
            findings.push(Finding::new(
                WAL_MISMATCH,
                Severity::Corruption,
                &scan.member,
                snap_location(&snap.file_name, snap.index),
                Some(snap.term),
                format!(
                    "{} holds ConfState {theirs}, the WAL snapshot record at {} holds {wal}",
                    snap.file_name, record.location
                ),
                REFERENCE,
            ));
            continue;
        }
        if records.is_empty() && snap.index <= scan.committed {
            if let Some(entry_term) = scan.log.term_at(snap.index) {
                if entry_term != snap.term {
                    findings.push(snapshot_records::term_mismatch(
                        &scan.member,
                        snap.index,
                        snap.term,
                        entry_term,
                        &format!("snapshot file {}", snap.file_name),
                        snap_location(&snap.file_name, snap.index),
                    ));
                }
            }
        }
    }
    findings
}

/// Orphaned `.snap` files (not already reported as unusable) and a missing `.snap` for the
/// newest snapshot record etcd would boot from. Only meaningful when the member has a snap dir.
pub fn presence(scan: &MemberScan, already_reported: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let covered_from = scan
        .wal_snapshots
        .first()
        .map(|r| r.snapshot.index)
        .unwrap_or(u64::MAX);
    for snap in &scan.snaps {
        let has_record = scan
            .wal_snapshots
            .iter()
            .any(|r| r.snapshot.index == snap.index && r.snapshot.term == snap.term);
        if has_record || snap.index < covered_from || already_reported.contains(&snap.file_name) {
            continue;
        }
        findings.push(Finding::new(
            ORPHAN,
            Severity::Warning,
            &scan.member,
            snap_location(&snap.file_name, snap.index),
            Some(snap.term),
            format!(
                "{} has no WAL snapshot record (orphaned: the member crashed between writing it and the record); etcd ignores it",
                snap.file_name
            ),
            REFERENCE,
        ));
    }
    let newest = scan
        .wal_snapshots
        .iter()
        .filter(|r| r.kind != SnapshotKind::Initial && r.snapshot.index <= scan.commit)
        .max_by_key(|r| r.snapshot.index);
    if let Some(record) = newest {
        let name = format!(
            "{:016x}-{:016x}.snap",
            record.snapshot.term, record.snapshot.index
        );
        if !scan.snap_names.contains(&name) {
            findings.push(Finding::new(
                MISSING,
                Severity::Warning,
                &scan.member,
                record.location.clone(),
                Some(record.snapshot.term),
                format!(
                    "the newest snapshot record (index {}, term {}) has no {name}: etcd boots from an older snapshot",
                    record.snapshot.index, record.snapshot.term
                ),
                REFERENCE,
            ));
        }
    }
    findings
}
