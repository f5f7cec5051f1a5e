//! `verify`'s reports as text (grouped by severity, most severe first, then by kind, each
//! finding with its location), JSON, and JUnit (one test case per member × invariant).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{ClusterReport, MemberReport};
use crate::check::junit::{invariant_cases, render, TestSuite};
use crate::check::{Finding, Severity};
use crate::member::ReadFrom;
use crate::replay::member_state::MemberState;

impl std::fmt::Display for ClusterReport {
    /// The text report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl ClusterReport {
    /// The report as `raft-replay verify` prints it.
    pub fn to_text(&self) -> String {
        text(&self.members)
    }

    /// The report as `raft-replay verify --format json` prints it.
    pub fn to_json(&self) -> Value {
        json_report(&self.members)
    }

    /// JUnit XML: one test suite per member, one test case per invariant of the catalogue.
    pub fn to_junit(&self) -> String {
        junit(&self.members)
    }
}

fn member_json(report: &MemberReport) -> Value {
    let contents = &report.read.contents;
    let hs = contents.hard_state;
    let scan = &report.scan;
    json!({
        "path": report.path.display().to_string(),
        "node_id": scan.node_id.map(|id| format!("{id:016x}")),
        "cluster_id": scan.cluster_id.map(|id| format!("{id:016x}")),
        "read_from": { "index": report.read.start.index, "term": report.read.start.term, "reason": report.read.start.reason },
        "entry_count": contents.entry_count,
        "first_index": contents.first_index(),
        "last_index": contents.last_index(),
        "hard_state": { "term": hs.term, "vote": hs.vote, "commit": hs.commit },
        "scan": {
            "records": scan.record_count,
            "entry_records": scan.entry_records,
            "log": { "first_index": scan.log.first_index(), "last_index": scan.log.last_index() },
            "committed": scan.committed_through(),
            "configuration": scan.timeline.at(scan.timeline.applied_through).map(|c| c.to_string()),
            "stopped": scan.stopped,
        },
        "findings": report.findings,
        "replay": report.replay,
    })
}

fn json_report(reports: &[MemberReport]) -> Value {
    let findings: Vec<&Finding> = reports.iter().flat_map(|r| &r.findings).collect();
    let failures = findings.iter().filter(|f| f.severity.is_failure()).count();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &findings {
        *by_kind.entry(f.kind).or_default() += 1;
    }
    json!({
        "verdict": if failures == 0 { "ok" } else { "findings" },
        "failure_count": failures,
        "warning_count": findings.len() - failures,
        "by_kind": by_kind,
        "members": reports.iter().map(member_json).collect::<Vec<_>>(),
    })
}

fn severity_title(severity: Severity) -> &'static str {
    match severity {
        Severity::Violation => "VIOLATIONS (a Raft safety property does not hold)",
        Severity::Corruption => "CORRUPTION (etcd would refuse these files or read less)",
        Severity::Warning => "WARNINGS (handled by etcd, or worth a look)",
    }
}

fn text(reports: &[MemberReport]) -> String {
    let mut text = String::new();
    for report in reports {
        let state = &report.replay;
        let c = &report.read.contents;
        let scan = &report.scan;
        let range = match (c.first_index(), c.last_index()) {
            (Some(first), Some(last)) => format!("raft index {first}..={last}"),
            _ => "none".to_string(),
        };
        let start = match report.read.start.reason {
            ReadFrom::Beginning => "read from the start of the WAL".to_string(),
            ReadFrom::GapFallback => format!(
                "read from the snapshot at index {} (a leader snapshot left a gap)",
                report.read.start.index
            ),
            ReadFrom::Purged => format!(
                "read from the snapshot at index {} (older WAL segments purged)",
                report.read.start.index
            ),
            ReadFrom::Snapshot => format!("read from snapshot {}", report.read.start.index),
        };
        text.push_str(&format!(
            "{}: {} entries ({range}), commit {}, {start}{}\n",
            report.path.display(),
            c.entry_count,
            c.hard_state.commit,
            scan.node_id
                .map(|id| format!(", member id {id:x}"))
                .unwrap_or_default(),
        ));
        match state {
            Some(MemberState {
                hashkv: Some(hash),
                revision,
                applied_index,
                kv_start,
                ..
            }) => text.push_str(&match kv_start {
                Some(start) => format!(
                    "  {start}, through {applied_index}: revision {}, hashkv {hash}\n",
                    revision.unwrap_or(0)
                ),
                None => format!(
                    "  replayed through {applied_index}: revision {}, hashkv {hash}\n",
                    revision.unwrap_or(0)
                ),
            }),
            Some(MemberState {
                applied_index,
                kv_unavailable,
                ..
            }) => text.push_str(&format!(
                "  replayed through {applied_index} (raft only: {})\n",
                kv_unavailable
                    .as_deref()
                    .unwrap_or("the WAL starts after a snapshot")
            )),
            None => {}
        }
    }
    let mut findings: Vec<&Finding> = reports.iter().flat_map(|r| &r.findings).collect();
    findings.sort_by(|a, b| {
        (a.severity, a.kind, &a.member, a.location.raft_index).cmp(&(
            b.severity,
            b.kind,
            &b.member,
            b.location.raft_index,
        ))
    });
    let mut current: Option<(Severity, &str)> = None;
    // Runs of one kind on one member longer than this are cut short (JSON has them all).
    const SHOWN_PER_MEMBER: usize = 5;
    let mut shown: Option<(&str, &str, usize)> = None;
    for (i, finding) in findings.iter().enumerate() {
        if current.map(|(s, _)| s) != Some(finding.severity) {
            let count = findings
                .iter()
                .filter(|f| f.severity == finding.severity)
                .count();
            text.push_str(&format!(
                "\n{} — {count}\n",
                severity_title(finding.severity)
            ));
        }
        if current != Some((finding.severity, finding.kind)) {
            let count = findings
                .iter()
                .filter(|f| f.severity == finding.severity && f.kind == finding.kind)
                .count();
            text.push_str(&format!(
                "  [{}] ×{count} ({})\n",
                finding.kind, finding.reference
            ));
            current = Some((finding.severity, finding.kind));
        }
        let run = match shown {
            Some((kind, member, n)) if kind == finding.kind && member == finding.member => n + 1,
            _ => 1,
        };
        shown = Some((finding.kind, finding.member.as_str(), run));
        if run > SHOWN_PER_MEMBER {
            let last_of_run = findings.get(i + 1).map_or(true, |next| {
                next.kind != finding.kind || next.member != finding.member
            });
            if last_of_run {
                text.push_str(&format!(
                    "    {}: … and {} more [{}] (see --format json)\n",
                    finding.member,
                    run - SHOWN_PER_MEMBER,
                    finding.kind
                ));
            }
            continue;
        }
        let term = finding
            .term
            .map(|t| format!(" (term {t})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "    {}: {}{term}\n      at {}\n",
            finding.member, finding.message, finding.location
        ));
    }
    let failures = findings.iter().filter(|f| f.severity.is_failure()).count();
    let warnings = findings.len() - failures;
    text.push_str(&format!(
        "\n{}: {failures} failure(s), {warnings} warning(s) across {} member(s)\n",
        if failures == 0 { "OK" } else { "FAILED" },
        reports.len()
    ));
    text
}

fn junit(reports: &[MemberReport]) -> String {
    let suites: Vec<TestSuite> = reports
        .iter()
        .map(|report| {
            let member = report.path.display().to_string();
            let cases = invariant_cases(&member, &report.findings);
            TestSuite {
                name: member,
                cases,
            }
        })
        .collect();
    render(&suites)
}
