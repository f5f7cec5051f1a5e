//! A capture's verification: the verify pipeline's [`ClusterReport`], and per member what the
//! replay established (applied index, revision, HashKV) next to what the manifest recorded at
//! the checkpoint with that applied index: in the bundled corpus etcd's own `endpoint status`
//! and `endpoint hashkv`, in a capture `raft-replay pack` made the replay's at packing time. Its text and JSON name members, never the
//! temp dir an archive was unpacked into, so they are stable across runs and machines.

use serde::Serialize;
use serde_json::{json, Value};

use super::manifest::Manifest;
use crate::check::Finding;
use crate::verify::{ClusterReport, MemberReport};

/// What the capture's manifest recorded for a member at a checkpoint: etcd's own report
/// (`etcdctl endpoint status` and `endpoint hashkv`) in the bundled corpus, the replay's at
/// packing time in a capture `raft-replay pack` made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The checkpoint's label.
    pub checkpoint: String,
    /// `HashKV.hash`.
    pub hashkv: u32,
    /// `Status.header.revision`, where recorded.
    pub revision: Option<i64>,
    /// `HashKV.compact_revision`, where recorded (-1: never compacted).
    pub compact_revision: Option<i64>,
}

/// One member's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct MemberOutcome {
    /// The member's name (the manifest's, or its path below the capture).
    pub name: String,
    /// The last raft index etcd's boot read holds.
    pub last_index: Option<u64>,
    /// The commit index of the last HardState.
    pub commit: u64,
    /// The index the replay applied through (none: the member was not replayed).
    pub applied_index: Option<u64>,
    /// The MVCC revision after the replay.
    pub revision: Option<i64>,
    /// The compacted revision after the replay.
    pub compact_revision: Option<i64>,
    /// etcd's `HashKV` of the replayed KV state.
    pub hashkv: Option<u32>,
    /// The manifest's record at the checkpoint with this applied index, when it has one.
    pub recorded: Option<Recorded>,
}

impl MemberOutcome {
    /// `Some(true)` when HashKV, revision and compact revision equal the checkpoint's record,
    /// `Some(false)` when one differs, `None` when there is nothing to compare.
    pub fn agrees_with_manifest(&self) -> Option<bool> {
        let recorded = self.recorded.as_ref()?;
        Some(
            self.hashkv == Some(recorded.hashkv)
                && recorded.revision.map_or(true, |r| self.revision == Some(r))
                && recorded
                    .compact_revision
                    .map_or(true, |r| self.compact_revision == Some(r)),
        )
    }

    fn new(report: &MemberReport, manifest: &Manifest) -> MemberOutcome {
        let contents = &report.read.contents;
        let replay = report.replay.as_ref();
        let applied_index = replay.map(|r| r.applied_index);
        let recorded = applied_index
            .and_then(|index| manifest.reported_at(&report.name, index))
            .and_then(|(label, m)| {
                Some(Recorded {
                    checkpoint: label.to_string(),
                    hashkv: m.hash?,
                    revision: m.revision,
                    compact_revision: m.compact_revision,
                })
            });
        MemberOutcome {
            name: report.name.clone(),
            last_index: contents.last_index(),
            commit: contents.hard_state.commit,
            applied_index,
            revision: replay.and_then(|r| r.revision),
            compact_revision: replay.and_then(|r| r.compact_revision),
            hashkv: replay.and_then(|r| r.hashkv),
            recorded,
        }
    }

    fn line(&self) -> String {
        let mut line = format!(
            "{}: log through {}, commit {}",
            self.name,
            self.last_index.map_or("-".into(), |i| i.to_string()),
            self.commit
        );
        match (self.applied_index, self.hashkv) {
            (Some(applied), Some(hash)) => line.push_str(&format!(
                ", applied {applied}, revision {}, compact revision {}, hashkv {hash}",
                opt(self.revision),
                opt(self.compact_revision)
            )),
            (Some(applied), None) => line.push_str(&format!(", applied {applied}, no hashkv")),
            (None, _) => line.push_str(", not replayed"),
        }
        match (&self.recorded, self.agrees_with_manifest()) {
            (Some(recorded), Some(true)) => line.push_str(&format!(
                " = checkpoint {} of the manifest",
                recorded.checkpoint
            )),
            (Some(recorded), _) => line.push_str(&format!(
                " != checkpoint {} of the manifest: hashkv {}, revision {}, compact revision {}",
                recorded.checkpoint,
                recorded.hashkv,
                opt(recorded.revision),
                opt(recorded.compact_revision)
            )),
            (None, _) => line.push_str(" (no checkpoint of the manifest at this index)"),
        }
        line
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

/// A capture's verification.
pub struct CaptureReport {
    /// The capture's name.
    pub name: String,
    /// The verify pipeline's report on every member together.
    pub cluster: ClusterReport,
    /// One outcome per member, in the cluster report's order.
    pub members: Vec<MemberOutcome>,
}

impl CaptureReport {
    pub(super) fn new(name: &str, cluster: ClusterReport, manifest: &Manifest) -> CaptureReport {
        let members = cluster
            .members
            .iter()
            .map(|m| MemberOutcome::new(m, manifest))
            .collect();
        CaptureReport {
            name: name.to_string(),
            cluster,
            members,
        }
    }

    /// Every finding (failures and warnings), member by member.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.cluster.findings()
    }

    /// The members whose HashKV, revision or compact revision differ from the manifest's record.
    pub fn manifest_mismatches(&self) -> impl Iterator<Item = &MemberOutcome> {
        self.members
            .iter()
            .filter(|m| m.agrees_with_manifest() == Some(false))
    }

    /// Every invariant held (warnings allowed) and every HashKV the manifest recorded at a
    /// member's applied index was reproduced.
    pub fn holds(&self) -> bool {
        self.cluster.holds() && self.manifest_mismatches().next().is_none()
    }

    /// Panics with the report's text unless [`CaptureReport::holds`]: for a user's own tests.
    #[track_caller]
    pub fn assert_holds(&self) {
        assert!(self.holds(), "raft-replay: {}", self.to_text());
    }

    /// A member's HashKV by name.
    pub fn hashkv(&self, member: &str) -> Option<u32> {
        self.members.iter().find(|m| m.name == member)?.hashkv
    }

    /// The text report: one line per member, every finding, the verdict.
    pub fn to_text(&self) -> String {
        let mut text = format!("capture {}: {} member(s)\n", self.name, self.members.len());
        for member in &self.members {
            text.push_str(&format!("  {}\n", member.line()));
        }
        for finding in self.findings() {
            text.push_str(&format!("{finding}\n"));
        }
        let failures = self.cluster.failures().count();
        let warnings = self.findings().count() - failures;
        let compared = self.members.iter().filter(|m| m.recorded.is_some()).count();
        let mismatches = self.manifest_mismatches().count();
        text.push_str(&format!(
            "{}: {failures} failure(s), {warnings} warning(s), {} of {compared} HashKV equal to the manifest's\n",
            if self.holds() { "OK" } else { "FAILED" },
            compared - mismatches
        ));
        text
    }

    /// The report as JSON: `capture`, `holds`, `members` (each [`MemberOutcome`]) and
    /// `findings`.
    pub fn to_json(&self) -> Value {
        let findings: Vec<&Finding> = self.findings().collect();
        json!({
            "capture": self.name,
            "holds": self.holds(),
            "members": self.members,
            "findings": findings,
        })
    }
}

impl std::fmt::Display for CaptureReport {
    /// The text report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}
