//! Findings: what the checks report. One invariant a file; every finding names its location
//! and the rule (Raft paper section, TLA+ invariant or etcd behaviour) it enforces.

pub mod decode;

use serde::Serialize;

use crate::wal::Location;

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
    pub fn is_failure(self) -> bool {
        matches!(self, Severity::Violation | Severity::Corruption)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable identifier, e.g. `wal.record_crc`.
    pub kind: &'static str,
    pub severity: Severity,
    /// The member input path this finding is about.
    pub member: String,
    #[serde(flatten)]
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    pub message: String,
    /// The rule enforced: Raft paper section, TLA+ invariant, or the etcd code path.
    pub reference: &'static str,
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
            "{severity} [{}] {}: {} at {} ({})",
            self.kind, self.member, self.message, self.location, self.reference
        )
    }
}
