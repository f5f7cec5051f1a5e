//! Decode-level findings: framing, the CRC chain, segment sequence, ReadAll outcomes, `.snap`
//! files. These are the outcomes etcd's own reader produces, named and located.

use super::{Finding, Severity};
use crate::member::MemberRead;
use crate::wal::{WalError, WalErrorKind};

const REF_READALL: &str = "etcd wal.ReadAll / decoder.decodeRecord";

fn wal_finding(member: &str, error: &WalError, severity: Severity) -> Finding {
    let (kind, reference) = match &error.kind {
        WalErrorKind::RecordCrcMismatch { .. } => (
            "wal.record_crc",
            "etcd walpb.Record.Validate (CRC-32C chain)",
        ),
        WalErrorKind::ChainCrcMismatch { .. } => {
            ("wal.crc_chain", "etcd wal.ReadAll crcType check")
        }
        WalErrorKind::Proto { .. } => ("wal.proto", REF_READALL),
        WalErrorKind::UnexpectedEof { .. } if severity == Severity::Warning => (
            "wal.torn_tail",
            "etcd wal.Repair (torn last record, isTornEntry)",
        ),
        WalErrorKind::UnexpectedEof { .. } => (
            "wal.unexpected_eof",
            "etcd wal.Repair only mends the last segment",
        ),
        WalErrorKind::RecordTooLarge { .. } => {
            ("wal.record_too_large", "etcd 3.4.10+ maxWALEntrySizeLimit")
        }
        WalErrorKind::UnknownRecordType { .. } => ("wal.unknown_record_type", REF_READALL),
        WalErrorKind::MetadataConflict => ("wal.metadata_conflict", REF_READALL),
        WalErrorKind::SnapshotMismatch { .. } => ("wal.snapshot_mismatch", REF_READALL),
        WalErrorKind::SnapshotNotFound { .. } => ("wal.snapshot_not_found", REF_READALL),
        WalErrorKind::SliceOutOfRange { .. } => (
            "wal.index_gap",
            "Raft §5.3 log matching; etcd ErrSliceOutOfRange",
        ),
        WalErrorKind::PayloadDecode { .. } => ("wal.payload", "etcd pbutil.MustUnmarshal"),
        WalErrorKind::SkippedBytes { .. } => (
            "wal.skipped_bytes",
            "etcd decoder: zero length word ends a segment",
        ),
        WalErrorKind::FileNotFound { .. }
        | WalErrorKind::NoWalFiles
        | WalErrorKind::SequenceGapAfterZero { .. } => (
            "wal.segment_sequence",
            "etcd wal.selectWALFiles / isValidSeq",
        ),
        WalErrorKind::Io { .. } => ("wal.io", "file read"),
    };
    Finding {
        kind,
        severity,
        member: member.to_string(),
        location: error.location.clone(),
        term: None,
        // The location is the finding's own; the message says what and etcd's words for it.
        message: format!("{} [etcd: {}]", error.kind, error.etcd_error()),
        reference,
    }
}

/// The findings of reading one member. `etcd_boots`: [`MemberRead::etcd_boots`]; a `.snap` etcd
/// skips is "skipped, boots from an older snapshot" only then (when `ValidSnapshotEntries`
/// fails, etcd never looks at a `.snap`; when its ReadAll fails, it boots from none).
pub fn decode_findings(member: &str, read: &MemberRead, etcd_boots: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    for error in &read.contents.errors {
        findings.push(wal_finding(member, error, Severity::Corruption));
    }
    for accepted in &read.contents.accepted_by_etcd {
        findings.push(wal_finding(member, accepted, Severity::Corruption));
    }
    for warning in &read.contents.warnings {
        // Reading from the beginning of a WAL whose first segment was purged finds no {0,0}
        // snapshot record; etcd never reads it that way, so it is not worth a warning.
        if matches!(
            warning.kind,
            WalErrorKind::SnapshotNotFound { index: 0, .. }
        ) && read.start.index == 0
        {
            continue;
        }
        findings.push(wal_finding(member, warning, Severity::Warning));
    }
    for skipped in read.skipped_snaps.iter().filter(|_| etcd_boots) {
        findings.push(Finding {
            kind: "snap.unusable",
            severity: Severity::Warning,
            member: member.to_string(),
            location: crate::wal::Location {
                segment: Some(skipped.file_name.clone()),
                ..Default::default()
            },
            term: None,
            message: format!(
                "{}: {} (etcd skips it and boots from an older snapshot)",
                skipped.file_name, skipped.reason
            ),
            reference: "etcd snap.LoadNewestAvailable",
        });
    }
    findings
}
