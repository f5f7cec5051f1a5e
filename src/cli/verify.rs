//! `raft-replay verify`: findings for one or more members.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::junit::{render, TestCase, TestSuite};
use super::{out, Format, EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK};
use crate::check::decode::decode_findings;
use crate::check::{Finding, Severity};
use crate::fsio::ReadOnlyFs;
use crate::member::{read_member, MemberFiles, MemberRead};
use crate::wal::DecoderMode;

/// The checks `verify` runs, for JUnit's one testcase per member × check.
const CHECKS: &[(&str, &str)] = &[("wal", "wal."), ("snap", "snap.")];

pub struct MemberReport {
    pub path: PathBuf,
    pub read: MemberRead,
    pub findings: Vec<Finding>,
}

pub fn verify_member(
    fs: &dyn ReadOnlyFs,
    path: &Path,
    mode: DecoderMode,
) -> Result<MemberReport, String> {
    let files = MemberFiles::open(fs, path).map_err(|e| e.to_string())?;
    let read = read_member(&files, mode);
    let findings = decode_findings(&path.display().to_string(), &read);
    Ok(MemberReport {
        path: path.to_path_buf(),
        read,
        findings,
    })
}

pub fn run(fs: &dyn ReadOnlyFs, paths: &[PathBuf], format: Format, forensic: bool) -> i32 {
    let mode = if forensic {
        DecoderMode::Forensic
    } else {
        DecoderMode::Strict
    };
    let mut reports = Vec::new();
    for path in paths {
        match verify_member(fs, path, mode) {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("raft-replay verify: {e}");
                return EXIT_CANNOT_RUN;
            }
        }
    }
    let failed = reports
        .iter()
        .flat_map(|r| &r.findings)
        .any(|f| f.severity.is_failure());
    let rendered = match format {
        Format::Text => text(&reports),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json_report(&reports)).unwrap_or_default()
        ),
        Format::Junit => junit(&reports),
    };
    out(&rendered);
    if failed {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}

fn member_json(report: &MemberReport) -> Value {
    let contents = &report.read.contents;
    let hs = contents.hard_state;
    json!({
        "path": report.path.display().to_string(),
        "read_from": { "index": report.read.start.index, "term": report.read.start.term, "reason": report.read.start.reason },
        "entry_count": contents.entries.len(),
        "first_index": contents.first_index(),
        "last_index": contents.last_index(),
        "hard_state": { "term": hs.term, "vote": hs.vote, "commit": hs.commit },
        "findings": report.findings,
    })
}

pub fn json_report(reports: &[MemberReport]) -> Value {
    let findings: Vec<&Finding> = reports.iter().flat_map(|r| &r.findings).collect();
    let failures = findings.iter().filter(|f| f.severity.is_failure()).count();
    json!({
        "verdict": if failures == 0 { "ok" } else { "findings" },
        "failure_count": failures,
        "warning_count": findings.len() - failures,
        "members": reports.iter().map(member_json).collect::<Vec<_>>(),
    })
}

fn text(reports: &[MemberReport]) -> String {
    let mut findings: Vec<&Finding> = reports.iter().flat_map(|r| &r.findings).collect();
    findings.sort_by_key(|f| f.severity);
    let mut text = String::new();
    for report in reports {
        let c = &report.read.contents;
        text.push_str(&format!(
            "{}: {} entries ({:?} ..= {:?}), commit {}, read from {} {}\n",
            report.path.display(),
            c.entries.len(),
            c.first_index(),
            c.last_index(),
            c.hard_state.commit,
            report.read.start.reason,
            report.read.start.index
        ));
    }
    for finding in &findings {
        text.push_str(&format!("{finding}\n"));
    }
    let failures = findings.iter().filter(|f| f.severity.is_failure()).count();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    text.push_str(&format!(
        "{}: {failures} failure(s), {warnings} warning(s) across {} member(s)\n",
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
            let cases = CHECKS
                .iter()
                .map(|(name, prefix)| {
                    let failing: Vec<String> = report
                        .findings
                        .iter()
                        .filter(|f| f.kind.starts_with(prefix) && f.severity.is_failure())
                        .map(|f| f.to_string())
                        .collect();
                    TestCase {
                        class_name: member.clone(),
                        name: (*name).to_string(),
                        failure: (!failing.is_empty())
                            .then(|| (format!("{} finding(s)", failing.len()), failing.join("\n"))),
                    }
                })
                .collect();
            TestSuite {
                name: member,
                cases,
            }
        })
        .collect();
    render(&suites)
}
