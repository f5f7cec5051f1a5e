//! What a check reports: a [`Finding`] names its kind, severity, member, location (segment, byte
//! offset, raft index) and the rule it enforces. This file is the ground floor of `check`: every
//! invariant file, the replay and the reports import it; it imports nothing of theirs.

use serde::Serialize;

use crate::wal::Location;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A Raft safety property does not hold.
    Violation,
    /// The files are damaged: etcd would refuse them or silently read less.
    Corruption,
    /// Something etcd handles by itself (a torn tail it repairs) or worth a look.
    Warning,
}

impl Severity {
    /// Violations and corruption fail a run; warnings do not.
    pub fn is_failure(self) -> bool {
        matches!(self, Severity::Violation | Severity::Corruption)
    }
}

/// One thing a check found, about one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable identifier, e.g. `wal.record_crc`.
    pub kind: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The member input path this finding is about.
    pub member: String,
    /// Where: segment, byte offset, raft index.
    #[serde(flatten)]
    pub location: Location,
    /// The term involved, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// What was found, in words (etcd's own words in brackets where it has some).
    pub message: String,
    /// The rule enforced: Raft paper section, TLA+ invariant, or the etcd code path.
    pub reference: &'static str,
}

impl Finding {
    /// A finding about one member.
    pub fn new(
        kind: &'static str,
        severity: Severity,
        member: &str,
        location: Location,
        term: Option<u64>,
        message: String,
        reference: &'static str,
    ) -> Finding {
        Finding {
            kind,
            severity,
            member: member.to_string(),
            location,
            term,
            message,
            reference,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Violation => "VIOLATION",
            Severity::Corruption => "CORRUPTION",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{severity} [{}] {}: {}",
            self.kind, self.member, self.message
        )?;
        if let Some(term) = self.term {
            write!(f, " (term {term})")?;
        }
        write!(f, " at {} ({})", self.location, self.reference)
    }
}

/// Drops exact repeats (same kind, member and location): the invariant scan and ReadAll can both
/// name one index gap.
pub fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| {
        seen.insert((
            f.kind,
            f.member.clone(),
            f.location.segment.clone(),
            f.location.offset,
            f.location.raft_index,
        ))
    });
}

/// Most severe first, then by member, kind, and position.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (
            a.severity,
            &a.member,
            a.kind,
            &a.location.segment,
            a.location.offset,
            a.location.raft_index,
        )
            .cmp(&(
                b.severity,
                &b.member,
                b.kind,
                &b.location.segment,
                b.location.offset,
                b.location.raft_index,
            ))
    });
}
