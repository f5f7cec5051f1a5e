//! `.snap` files agree with the WAL: a `.snap` and the WAL snapshot record at its index name the
//! same term (and, from 3.5, the same ConfState); a `.snap` with no record where the WAL still
//! covers its index is an orphan (etcd skips it); the newest snapshot record etcd would accept
//! has its `.snap` (otherwise etcd boots from an older one).
//!
//! etcd saves the `.snap` first, then the WAL record ("this makes it possible for the snapshot
//! file to become orphaned, but prevents a WAL snapshot entry from having no corresponding
//! snapshot file", `etcdserver/storage.go`), and matches them by (term, index) at boot.

use super::conf_model::Config;
use super::member_scan::{MemberScan, SnapshotKind};
use super::{snapshot_records, Finding, Severity};
use crate::wal::valid_snapshots::ValidSnapshots;
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
///
/// Judged by the snapshot records etcd's boot judges them by: `ValidSnapshotEntries` (`valid`),
/// which reads every segment for snapshot and state records only, past entry payloads and
/// record types ReadAll stops at. A missing `.snap` means etcd boots from an older snapshot only
/// when its boot gets through the WAL (`etcd_boots`).
pub fn presence(
    scan: &MemberScan,
    valid: &ValidSnapshots,
    etcd_boots: bool,
    already_reported: &[String],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let records = || valid.snapshots.iter().chain(&valid.above_commit);
    let covered_from = records().map(|r| r.index).min().unwrap_or(u64::MAX);
    for snap in &scan.snaps {
        let has_record = records().any(|r| r.index == snap.index && r.term == snap.term);
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
    // `valid.snapshots`: the records at or below the last HardState's commit, in file order.
    let newest = valid
        .snapshots
        .iter()
        .filter(|r| r.index > 0)
        .max_by_key(|r| r.index);
    if let Some(record) = newest.filter(|_| etcd_boots) {
        let name = format!("{:016x}-{:016x}.snap", record.term, record.index);
        if !scan.snap_names.contains(&name) {
            let location = scan
                .wal_snapshots
                .iter()
                .find(|r| r.snapshot.index == record.index && r.snapshot.term == record.term)
                .map(|r| r.location.clone())
                .unwrap_or(Location {
                    raft_index: Some(record.index),
                    ..Default::default()
                });
            findings.push(Finding::new(
                MISSING,
                Severity::Warning,
                &scan.member,
                location,
                Some(record.term),
                format!(
                    "the newest snapshot record (index {}, term {}) has no {name}: etcd boots from an older snapshot",
                    record.index, record.term
                ),
                REFERENCE,
            ));
        }
    }
    findings
}
