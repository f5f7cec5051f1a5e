//! The gate's report: a human summary, JSON, and JUnit XML (one testcase per member × upgrade
//! rule, per member × invariant as `verify` has them, and per member for the baseline).

use serde_json::{json, Value};

use super::facts::MemberFacts;
use super::rehearse::{Rehearsal, SOURCE as REHEARSAL_SOURCE};
use super::rules::{Status, RULES};
use super::v2::{fate, V2Fate};
use super::GateReport;
use crate::check::junit::{invariant_cases, render, TestCase, TestSuite};
use crate::check::Finding;

/// `pass`, `blocked` (an upgrade rule), `findings` (invariants), `changed` (baseline), worst first.
pub fn verdict(r: &GateReport) -> &'static str {
    if r.blocked().next().is_some() || r.rehearsals_blocked().next().is_some() {
        "blocked"
    } else if r.failures() > 0 {
        "findings"
    } else if r.baseline_changes() > 0 {
        "changed"
    } else {
        "ok"
    }
}

fn member_id(m: &MemberFacts) -> String {
    m.node_id
        .map_or_else(|| "(no id)".into(), |id| format!("{id:016x}"))
}

fn headline(r: &GateReport) -> String {
    let blocked = r.blocked().count();
    let warnings = r
        .rules
        .iter()
        .filter(|x| x.status == Status::Warning)
        .count();
    let failures = r.failures();
    let finding_warnings = r.findings().count() - failures;
    let agree = r
        .state_points
        .iter()
        .map(|p| &p.member)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let disagree = r
        .findings()
        .filter(|f| f.kind == crate::check::state_hash::KIND)
        .count();
    let verdict = match verdict(r) {
        "blocked" => format!(
            "BLOCKED — etcd {} cannot start from or replay this data",
            r.target.trim()
        ),
        "findings" => "FAILED — invariant findings".to_string(),
        "changed" => "CHANGED — the data differs from the baseline".to_string(),
        _ => format!("OK — etcd {} can take this data", r.target.trim()),
    };
    let baseline = match &r.baseline {
        None => "no baseline".to_string(),
        Some((_, changes)) if changes.is_empty() => "baseline unchanged".to_string(),
        Some((_, changes)) => format!("baseline: {} change(s)", changes.len()),
    };
    let rehearsal = match &r.rehearsals {
        None => String::new(),
        Some(all) => format!(
            "; rehearsal: {} of {} member(s) blocking",
            r.rehearsals_blocked().count(),
            all.len()
        ),
    };
    format!(
        "{verdict}\n  upgrade rules: {blocked} blocking, {warnings} warning(s); invariants: {failures} failure(s), {finding_warnings} warning(s); hashkv: {} over {agree} replayed member(s); {baseline}{rehearsal}\n",
        if disagree == 0 { "agree".to_string() } else { format!("{disagree} disagreement(s)") },
    )
}

pub fn text(r: &GateReport) -> String {
    let mut t = format!(
        "raft-replay gate: {} member(s) → etcd {}\n",
        r.members.len(),
        r.target
    );
    t.push_str(&headline(r));

    t.push_str("\nmembers\n");
    for m in &r.members {
        let c = &m.read.contents;
        let hs = m.hard_state;
        let range = match (c.first_index(), c.last_index()) {
            (Some(a), Some(b)) => format!("entries {a}..={b}"),
            _ => "no entries".into(),
        };
        let boot = m
            .boot_snapshot
            .as_ref()
            .map_or("no boot snapshot".into(), |s| {
                format!("boot snapshot {} ({})", s.index, s.file)
            });
        t.push_str(&format!(
            "  {} {}: {range}, HardState term {} vote {:x} commit {}, {boot}\n",
            m.label,
            member_id(m),
            hs.term,
            hs.vote,
            hs.commit
        ));
        let cv = m.cluster_version.as_ref().map_or("unknown".into(), |c| {
            format!("{} ({} at raft index {})", c.raw, c.source, c.index)
        });
        let mv = match (&m.log_version.version, &m.log_version.first_at) {
            (Some(v), Some((i, why))) => format!("{v} (raft index {i}: {why})"),
            _ => "none".into(),
        };
        t.push_str(&format!(
            "    cluster version {cv}; minimal etcd version after the boot snapshot {mv}\n"
        ));
        let kv = match &m.kv {
            Ok(k) => format!(
                "HashKV {:#010x} at applied index {} (revision {}, compact revision {})",
                k.hash, k.applied_index, k.revision, k.compact_revision
            ),
            Err(e) => format!("HashKV not computed: {e}"),
        };
        t.push_str(&format!("    {kv}\n"));
    }

    t.push_str(&format!("\nupgrade rules → etcd {}\n", r.target.trim()));
    for rule in RULES {
        let results: Vec<_> = r.rules.iter().filter(|x| x.rule == *rule).collect();
        if results.is_empty() {
            continue;
        }
        t.push_str(&format!("  {rule}  (source: {})\n", results[0].source));
        let mut previous: Option<&Vec<String>> = None;
        for x in results {
            t.push_str(&format!(
                "    {:<8} {}: {}\n",
                x.status.label(),
                x.member,
                x.message
            ));
            if previous == Some(&x.details) && !x.details.is_empty() {
                t.push_str("             (details as above)\n");
            } else {
                for d in &x.details {
                    t.push_str(&format!("             {d}\n"));
                }
            }
            previous = Some(&x.details);
        }
    }

    let findings: Vec<&Finding> = r.findings().collect();
    let failures = r.failures();
    t.push_str(&format!(
        "\ninvariants (as `raft-replay verify`, plus HashKV agreement): {} — {failures} failure(s), {} warning(s)\n",
        if failures == 0 { "OK" } else { "FAILED" },
        findings.len() - failures
    ));
    for f in &findings {
        t.push_str(&format!("  {f}\n"));
    }

    t.push_str("\nhashkv agreement\n");
    match r.common_index {
        Some(common) => t.push_str(&format!(
            "  compared at each member's applied index and at {common}, the lowest one all replayed members reached\n"
        )),
        None => t.push_str("  fewer than two members could be replayed: nothing to compare\n"),
    }
    for p in &r.state_points {
        t.push_str(&format!(
            "  {} at {}: {}\n",
            p.member, p.applied_index, p.what
        ));
    }
    for m in r.members.iter().filter(|m| m.kv.is_err()) {
        t.push_str(&format!(
            "  {}: not replayed ({})\n",
            m.label,
            m.kv.as_ref().err().map(String::as_str).unwrap_or_default()
        ));
    }

    if let Some(rehearsals) = &r.rehearsals {
        t.push_str(&rehearsal_text(rehearsals));
    }
    if let Some((file, changes)) = &r.baseline {
        if changes.is_empty() {
            t.push_str(&format!("\nbaseline {file}: unchanged\n"));
        } else {
            t.push_str(&format!("\nbaseline {file}: {} change(s)\n", changes.len()));
            for c in changes {
                t.push_str(&format!("  {c}\n"));
            }
        }
    }
    t.push_str(&format!(
        "\n{}: exit {}\n",
        verdict(r).to_uppercase(),
        if r.passed() { 0 } else { 1 }
    ));
    t
}

fn rehearsal_text(rehearsals: &[Rehearsal]) -> String {
    let mut t = format!(
        "\nrehearsal (each member's copy booted alone with --force-new-cluster; source: {REHEARSAL_SOURCE})\n"
    );
    for x in rehearsals {
        t.push_str(&format!(
            "  {:<8} {}: {}\n",
            x.status.label(),
            x.member,
            x.message
        ));
        for d in &x.details {
            t.push_str(&format!("           {d}\n"));
        }
    }
    t
}

fn rehearsal_case(x: &Rehearsal) -> TestCase {
    TestCase {
        class_name: x.member.clone(),
        name: "rehearsal".into(),
        failure: (x.status == Status::Blocked).then(|| {
            let mut body = x.message.clone();
            for d in &x.details {
                body.push('\n');
                body.push_str(d);
            }
            (format!("blocked: {}", x.message), body)
        }),
    }
}

fn member_json(m: &MemberFacts, target: super::version::Version) -> Value {
    let c = &m.read.contents;
    let hs = m.hard_state;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    json!({
        "name": m.label,
        "path": m.path.display().to_string(),
        "member_id": m.node_id.map(|id| format!("{id:016x}")),
        "entries": { "first_index": c.first_index(), "last_index": c.last_index(), "count": c.entries.len() },
        "hard_state": { "term": hs.term, "vote": format!("{:x}", hs.vote), "commit": hs.commit },
        "boot_snapshot": m.boot_snapshot,
        "cluster_version": m.cluster_version,
        "minimal_etcd_version": {
            "version": m.log_version.version,
            "first_index": m.log_version.first_at.as_ref().map(|a| a.0),
            "because": m.log_version.first_at.as_ref().map(|a| a.1.clone()),
        },
        "v2_requests_after_boot_snapshot": m.v2_entries.iter().map(|e| {
            let f = fate(target, &e.request, e.wrapped);
            json!({
                "index": e.index,
                "term": e.term,
                "committed": e.committed,
                "wrapped": e.wrapped,
                "method": text(&e.request.method),
                "path": text(&e.request.path),
                "at_target": f,
                "blocks": matches!(f, V2Fate::Refused { .. }),
            })
        }).collect::<Vec<_>>(),
        "v2store_custom_content": m.v2store_custom,
        "conf_changes": m.conf_changes,
        "learners": m.learners,
        "auth_enabled_at": m.auth_enabled_at,
        "hashkv": match &m.kv {
            Ok(k) => json!(k),
            Err(e) => json!({ "error": e }),
        },
        "findings": m.findings,
    })
}

pub fn json_report(r: &GateReport) -> Value {
    let mut report = json_without_rehearsal(r);
    if let (Some(rehearsals), Some(object)) = (&r.rehearsals, report.as_object_mut()) {
        object.insert("rehearsal".into(), json!(rehearsals));
        object["summary"]["rehearsals_blocked"] = json!(r.rehearsals_blocked().count());
    }
    report
}

fn json_without_rehearsal(r: &GateReport) -> Value {
    let failures = r.failures();
    json!({
        "target": r.target,
        "verdict": verdict(r),
        "exit_code": if r.passed() { 0 } else { 1 },
        "summary": {
            "blocked": r.blocked().count(),
            "warnings": r.rules.iter().filter(|x| x.status == Status::Warning).count(),
            "invariant_failures": failures,
            "invariant_warnings": r.findings().count() - failures,
            "baseline_changes": r.baseline_changes(),
        },
        "members": r.members.iter().map(|m| member_json(m, r.target)).collect::<Vec<_>>(),
        "rules": r.rules,
        "hashkv_agreement": {
            "common_index": r.common_index,
            "points": r.state_points.iter().map(|p| json!({
                "member": p.member, "applied_index": p.applied_index, "hash": p.hash, "what": p.what,
            })).collect::<Vec<_>>(),
        },
        "baseline": r.baseline.as_ref().map(|(file, changes)| json!({ "file": file, "changes": changes })),
        "lock": r.lock,
    })
}

pub fn junit(r: &GateReport) -> String {
    let mut suites = Vec::new();
    let upgrade = TestSuite {
        name: format!("upgrade to etcd {}", r.target.trim()),
        cases: r
            .rules
            .iter()
            .map(|x| TestCase {
                class_name: x.member.clone(),
                name: x.rule.to_string(),
                failure: (x.status == Status::Blocked).then(|| {
                    let mut body = x.message.clone();
                    for d in &x.details {
                        body.push('\n');
                        body.push_str(d);
                    }
                    body.push_str(&format!("\nsource: {}", x.source));
                    (format!("blocked: {}", x.message), body)
                }),
            })
            .collect(),
    };
    suites.push(upgrade);
    if let Some(rehearsals) = &r.rehearsals {
        suites.push(TestSuite {
            name: format!("rehearsal on etcd {}", r.target.trim()),
            cases: rehearsals.iter().map(rehearsal_case).collect(),
        });
    }
    for m in &r.members {
        suites.push(TestSuite {
            name: format!("invariants {}", m.label),
            cases: invariant_cases(&m.label, &m.findings),
        });
    }
    if let Some((file, changes)) = &r.baseline {
        suites.push(TestSuite {
            name: format!("baseline {file}"),
            cases: r
                .members
                .iter()
                .map(|m| {
                    let key = super::baseline::member_key(m);
                    let mine: Vec<String> = changes
                        .iter()
                        .filter(|c| c.member.ends_with(&format!("({key})")))
                        .map(|c| c.to_string())
                        .collect();
                    TestCase {
                        class_name: m.label.clone(),
                        name: "baseline".into(),
                        failure: (!mine.is_empty())
                            .then(|| (format!("{} change(s)", mine.len()), mine.join("\n"))),
                    }
                })
                .chain(
                    // Members the baseline has and this run does not.
                    changes
                        .iter()
                        .filter(|c| c.field == "member" && c.now.starts_with("missing"))
                        .map(|c| TestCase {
                            class_name: c.member.clone(),
                            name: "baseline".into(),
                            failure: Some(("member missing".into(), c.to_string())),
                        }),
                )
                .collect(),
        });
    }
    render(&suites)
}
