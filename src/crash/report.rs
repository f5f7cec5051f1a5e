//! The fault-class × outcome table (text and JSON), with a reproducing command per violation.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::cluster::{ClusterRun, QuorumLoss};
use super::member::{MemberRun, StateResult};
use super::{FaultClass, Options, Outcome, ALL_CLASSES, ALL_OUTCOMES};
use crate::check::Finding;

/// Findings listed per member, class and outcome (beyond these, counted only).
const LIST_PER_CLASS: usize = 5;

fn quote(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The command reproducing one member's state.
pub fn reproduce(path: &Path, r: &StateResult) -> String {
    format!(
        "raft-replay crash {} --only {}",
        quote(path),
        r.spec.render(r.class)
    )
}

fn cluster_reproduce(run: &ClusterRun, only: &str) -> String {
    let paths: Vec<String> = run.paths.iter().map(|p| quote(p)).collect();
    format!("raft-replay crash {} --only {only}", paths.join(" "))
}

pub fn tally(members: &[&MemberRun]) -> BTreeMap<(FaultClass, Outcome), usize> {
    let mut t = BTreeMap::new();
    for m in members {
        for (k, v) in m.tally() {
            *t.entry(k).or_insert(0) += v;
        }
    }
    t
}

pub fn violation_count(members: &[&MemberRun], cluster: Option<&ClusterRun>) -> usize {
    members
        .iter()
        .map(|m| m.count(Outcome::Violation))
        .sum::<usize>()
        + members
            .iter()
            .filter(|m| {
                m.baseline_finding
                    .as_ref()
                    .is_some_and(|(k, _)| *k != "crash.baseline_refused")
            })
            .count()
        + cluster.map_or(0, |c| c.findings_of(QuorumLoss::Violation).count())
}

/// Members whose files, as captured, etcd refuses to boot (before any simulated crash): not a
/// crash-induced violation, but the input itself is damaged, which `crash` reports as a finding.
pub fn refused_input_count(members: &[&MemberRun]) -> usize {
    members
        .iter()
        .filter(|m| {
            m.baseline_finding
                .as_ref()
                .is_some_and(|(k, _)| *k == "crash.baseline_refused")
        })
        .count()
}

/// The overall verdict: violations, refused inputs, invariant failures of the input as
/// captured (the verify pipeline's), and (with `--strict`) undetected losses fail.
pub struct Verdict {
    pub violations: usize,
    pub refused_inputs: usize,
    pub captured_failures: usize,
    pub undetected: usize,
    pub strict: bool,
}

impl Verdict {
    pub fn of(
        members: &[&MemberRun],
        cluster: Option<&ClusterRun>,
        captured: &[Finding],
        strict: bool,
    ) -> Verdict {
        Verdict {
            violations: violation_count(members, cluster),
            refused_inputs: refused_input_count(members),
            captured_failures: captured.len(),
            undetected: members
                .iter()
                .map(|m| m.count(Outcome::UndetectedLoss))
                .sum::<usize>()
                + cluster.map_or(0, |c| c.findings_of(QuorumLoss::Undetected).count()),
            strict,
        }
    }

    pub fn failed(&self) -> bool {
        self.violations > 0
            || self.refused_inputs > 0
            || self.captured_failures > 0
            || (self.strict && self.undetected > 0)
    }
}

fn table(t: &BTreeMap<(FaultClass, Outcome), usize>, opts: &Options) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "  {:<58} {:>8} {:>10} {:>9} {:>8} {:>10} {:>10}\n",
        "fault class", "states", "recovered", "exp.loss", "refused", "undetected", "VIOLATION"
    ));
    let mut totals = [0usize; 6];
    for class in ALL_CLASSES {
        if !opts.wants(class) {
            continue;
        }
        let counts: Vec<usize> = ALL_OUTCOMES
            .iter()
            .map(|o| t.get(&(class, *o)).copied().unwrap_or(0))
            .collect();
        let states: usize = counts.iter().sum();
        totals[0] += states;
        for (i, c) in counts.iter().enumerate() {
            totals[i + 1] += c;
        }
        out.push_str(&format!(
            "  ({}) {:<54} {:>8} {:>10} {:>9} {:>8} {:>10} {:>10}\n",
            class.letter(),
            class.title(),
            states,
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4]
        ));
    }
    out.push_str(&format!(
        "  {:<58} {:>8} {:>10} {:>9} {:>8} {:>10} {:>10}\n",
        "total", totals[0], totals[1], totals[2], totals[3], totals[4], totals[5]
    ));
    out
}

fn member_header(m: &MemberRun) -> String {
    let h = &m.history;
    let mut text = format!(
        "{}: member {:x}, {} records ({} entries) in {} segment(s), {} fsync points, {} .snap file(s)\n",
        h.input.display(),
        h.node_id,
        h.records.len(),
        h.entry_count(),
        h.segments.len(),
        h.syncs.len(),
        h.snaps.len()
    );
    let b = &m.baseline;
    if let Some(r) = &b.refused {
        text.push_str(&format!("  as captured: etcd refuses to start: {r}\n"));
    } else {
        text.push_str(&format!(
            "  as captured: recovers ..={} (commit {}) from {}\n",
            b.last_index(),
            b.hard_state.commit,
            b.snap_file
                .as_ref()
                .map(|s| format!("snapshot {} ({s})", b.start_index))
                .unwrap_or_else(|| "the beginning of the WAL".into())
        ));
    }
    if let Some((kind, message)) = &m.baseline_finding {
        text.push_str(&format!("  as captured: [{kind}] {message}\n"));
    }
    let failed = m.cross_checks.iter().filter(|c| !c.ok).count();
    let kv = m.cross_checks.iter().filter(|c| c.kv_checked).count();
    text.push_str(&format!(
        "  model cross-checked against the real recovery path at {} prefixes ({} disagree), KV replayed at {}; {:.2} s\n",
        m.cross_checks.len(),
        failed,
        kv,
        m.elapsed.as_secs_f64()
    ));
    if let Some(line) = not_modelled_line(m) {
        text.push_str(&line);
    }
    if let Some(line) = kv_from_db_line(m) {
        text.push_str(&line);
    }
    for note in &m.notes {
        text.push_str(&format!("  note: {note}\n"));
    }
    text
}

/// The crash states set aside because the files of their moment were purged, by class.
fn not_modelled_line(m: &MemberRun) -> Option<String> {
    let first = m.first_modelled?;
    let by_class: Vec<String> = m
        .not_modelled
        .iter()
        .map(|(class, n)| format!("({}) {n}", class.letter()))
        .collect();
    Some(format!(
        "  not modelled: {} crash state(s) written before record {first}, the first prefix etcd can boot from these files (its WAL snapshot record names a .snap still present): at those moments the purged segments and .snap files were still on disk{}\n",
        m.not_modelled_count(),
        if by_class.is_empty() {
            String::new()
        } else {
            format!(" — {}", by_class.join(", "))
        }
    ))
}

/// Where the KV side starts from the db: its consistent index and the states whose KV state
/// is not modelled because their recovered log ends below it.
fn kv_from_db_line(m: &MemberRun) -> Option<String> {
    let kv = m.kv_from_db.as_ref()?;
    let by_class: Vec<String> = kv
        .db_ahead
        .iter()
        .map(|(class, n)| format!("({}) {n}", class.letter()))
        .collect();
    Some(format!(
        "  KV side: replayed from the db at consistent index {} (the WAL does not reach back to index 1); KV not modelled: {} booted state(s) whose recovered log ends below it (the db is ahead of that log: etcd boots and re-applies nothing at or below it; the db of that moment is not among the files){}\n",
        kv.consistent_index,
        kv.db_ahead_count(),
        if by_class.is_empty() {
            String::new()
        } else {
            format!(" — {}", by_class.join(", "))
        }
    ))
}

/// `captured`: the failing findings of the verify pipeline on the inputs as captured.
pub fn text(
    members: &[&MemberRun],
    cluster: Option<&ClusterRun>,
    captured: &[Finding],
    opts: &Options,
    strict: bool,
) -> String {
    let mut out = String::new();
    for m in members {
        out.push_str(&member_header(m));
    }
    out.push('\n');
    out.push_str(&table(&tally(members), opts));
    for outcome in [
        Outcome::Violation,
        Outcome::UndetectedLoss,
        Outcome::Refused,
    ] {
        let mut section = String::new();
        let mut total = 0usize;
        for m in members {
            let mut by_class: BTreeMap<FaultClass, Vec<&StateResult>> = BTreeMap::new();
            for r in m.results.iter().filter(|r| r.outcome == outcome) {
                by_class.entry(r.class).or_default().push(r);
            }
            for (class, list) in by_class {
                total += list.len();
                section.push_str(&format!(
                    "  {} ({}) {} — {}\n",
                    m.history.input.display(),
                    class.letter(),
                    class.title(),
                    list.len()
                ));
                let shown = if outcome == Outcome::Violation {
                    list.len().min(50)
                } else {
                    list.len().min(LIST_PER_CLASS)
                };
                for r in &list[..shown] {
                    section.push_str(&format!(
                        "    [{}] {}\n      reproduce: {}\n",
                        r.kind.unwrap_or(""),
                        r.detail.as_deref().unwrap_or(""),
                        reproduce(&m.history.input, r)
                    ));
                }
                if shown < list.len() {
                    section.push_str(&format!(
                        "    … {} more (see --format json)\n",
                        list.len() - shown
                    ));
                }
            }
        }
        if total > 0 {
            let title = match outcome {
                Outcome::Violation => "VIOLATIONS",
                Outcome::UndetectedLoss => "UNDETECTED LOSS (storage faults etcd's format cannot detect; the member restarts from an older prefix)",
                _ => "REFUSED (corruption detected: etcd will not start)",
            };
            out.push_str(&format!("\n{title} — {total}\n{section}"));
        }
    }
    if let Some(c) = cluster {
        out.push_str(&format!(
            "\ncluster: {} member(s), {} voter(s) (quorum {}), committed {}, up to {} crashed together: {} combination(s) checked\n",
            c.members.len(),
            c.voters.len(),
            c.quorum,
            c.committed,
            c.max_crashed,
            c.combinations
        ));
        for note in &c.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        for f in &c.findings {
            let label = match f.loss {
                QuorumLoss::Violation => "VIOLATION",
                QuorumLoss::Undetected => "UNDETECTED LOSS",
                QuorumLoss::Detected => "refused",
            };
            out.push_str(&format!(
                "  {label} [{}]{} {}\n",
                f.kind,
                if f.count > 1 {
                    format!(" ×{}", f.count)
                } else {
                    String::new()
                },
                f.message
            ));
            if let Some(only) = &f.only {
                out.push_str(&format!(
                    "      reproduce: {}\n",
                    cluster_reproduce(c, only)
                ));
            }
        }
    }
    if captured.is_empty() {
        out.push_str("\nas captured (raft-replay verify): every invariant holds\n");
    } else {
        out.push_str(&format!(
            "\nas captured (raft-replay verify): {} failure(s)\n",
            captured.len()
        ));
        for f in captured {
            out.push_str(&format!("  {f}\n"));
        }
    }
    let verdict = Verdict::of(members, cluster, captured, strict);
    let states: usize = members.iter().map(|m| m.results.len()).sum();
    let refused = match verdict.refused_inputs {
        0 => String::new(),
        n => format!(", {n} input(s) etcd refuses to boot as captured"),
    };
    let refused = match verdict.captured_failures {
        0 => refused,
        n => format!("{refused}, {n} invariant failure(s) as captured"),
    };
    let refused = match members
        .iter()
        .map(|m| m.not_modelled_count())
        .sum::<usize>()
    {
        0 => refused,
        n => format!(
            "{refused}, {n} crash state(s) not modelled (the files of that time were purged)"
        ),
    };
    let refused = match kv_not_modelled_count(members) {
        0 => refused,
        n => format!(
            "{refused}, {n} state(s) with the KV side not modelled (the db is ahead of their log)"
        ),
    };
    out.push_str(&format!(
        "\n{}: {states} crash state(s), {} violation(s), {} undetected loss(es){refused}{}\n",
        if verdict.failed() { "FAILED" } else { "OK" },
        verdict.violations,
        verdict.undetected,
        if strict {
            " (--strict: undetected losses fail)"
        } else {
            ""
        }
    ));
    // Undetected loss is etcd's behaviour, not a fault of the data: it does not fail the run
    // without --strict, so the summary itself points at one to look at.
    let first_undetected = members.iter().find_map(|m| {
        m.results
            .iter()
            .find(|r| r.outcome == Outcome::UndetectedLoss)
            .map(|r| reproduce(&m.history.input, r))
    });
    if let Some(command) = first_undetected {
        out.push_str(&format!("  first undetected loss: {command}\n"));
    }
    let cluster_undetected = cluster.and_then(|c| {
        c.findings_of(QuorumLoss::Undetected)
            .find_map(|f| f.only.as_ref().map(|only| cluster_reproduce(c, only)))
    });
    if let Some(command) = cluster_undetected {
        out.push_str(&format!(
            "  first cluster-wide undetected loss: {command}\n"
        ));
    }
    out
}

fn result_json(path: &Path, r: &StateResult) -> Value {
    json!({
        "class": r.class.letter().to_string(),
        "spec": r.spec.render(r.class),
        "outcome": r.outcome.key(),
        "kind": r.kind,
        "message": r.detail,
        "recovered_last_index": r.recovered_last,
        "acknowledged_index": r.acked,
        "known_commit": r.known_commit,
        "reproduce": reproduce(path, r),
    })
}

fn classes_json(t: &BTreeMap<(FaultClass, Outcome), usize>, opts: &Options) -> Value {
    let mut classes = serde_json::Map::new();
    for class in ALL_CLASSES {
        if !opts.wants(class) {
            continue;
        }
        let mut outcomes = serde_json::Map::new();
        let mut total = 0;
        for o in ALL_OUTCOMES {
            let c = t.get(&(class, o)).copied().unwrap_or(0);
            total += c;
            outcomes.insert(o.key().into(), json!(c));
        }
        classes.insert(
            class.key().into(),
            json!({
                "letter": class.letter().to_string(),
                "title": class.title(),
                "family": if class.is_crash() { "crash" } else { "storage_fault" },
                "crash_points": total,
                "outcomes": outcomes,
            }),
        );
    }
    Value::Object(classes)
}

pub fn json_report(
    members: &[&MemberRun],
    cluster: Option<&ClusterRun>,
    captured: &[Finding],
    opts: &Options,
    strict: bool,
) -> Value {
    let verdict = Verdict::of(members, cluster, captured, strict);
    let members_json: Vec<Value> = members
        .iter()
        .map(|m| {
            let h = &m.history;
            let mut findings = Vec::new();
            let mut shown: BTreeMap<(FaultClass, Outcome), usize> = BTreeMap::new();
            for r in &m.results {
                if matches!(r.outcome, Outcome::Recovered | Outcome::ExpectedLoss) {
                    continue;
                }
                let n = shown.entry((r.class, r.outcome)).or_insert(0);
                *n += 1;
                if r.outcome == Outcome::Violation || *n <= 20 {
                    findings.push(result_json(&h.input, r));
                }
            }
            json!({
                "path": h.input.display().to_string(),
                "node_id": format!("{:016x}", h.node_id),
                "records": h.records.len(),
                "entries": h.entry_count(),
                "segments": h.segments.len(),
                "fsync_points": h.syncs.len(),
                "record_boundaries_checked": m.record_boundaries_checked(),
                "elapsed_ms": m.elapsed.as_millis() as u64,
                "as_captured": {
                    "refused": m.baseline.refused,
                    "start_index": m.baseline.start_index,
                    "last_index": m.baseline.last_index(),
                    "commit": m.baseline.hard_state.commit,
                    "finding": m.baseline_finding.as_ref().map(|(k, msg)| json!({"kind": k, "message": msg})),
                },
                "cross_checks": {
                    "count": m.cross_checks.len(),
                    "kv_replayed": m.cross_checks.iter().filter(|c| c.kv_checked).count(),
                    "disagreements": m.cross_checks.iter().filter(|c| !c.ok).map(|c| json!({"k": c.k, "message": c.message})).collect::<Vec<_>>(),
                },
                "classes": classes_json(&m.tally(), opts),
                "not_modelled": {
                    "count": m.not_modelled_count(),
                    "first_modelled_record": m.first_modelled,
                    "reason": m.first_modelled.map(|_| "files of that time were purged: the prefix holds no WAL snapshot record naming a .snap still present, and no segment at or below raft index 0"),
                    "by_class": m.not_modelled.iter().map(|(c, n)| (c.key().to_string(), json!(n))).collect::<serde_json::Map<String, Value>>(),
                },
                "kv_from_db": m.kv_from_db.as_ref().map(|kv| json!({
                    "consistent_index": kv.consistent_index,
                    "not_modelled_count": kv.db_ahead_count(),
                    "reason": "the recovered log ends below the db's consistent index: the db is ahead of it (etcd boots and re-applies nothing at or below it); the db of that moment is not among the files",
                    "by_class": kv.db_ahead.iter().map(|(c, n)| (c.key().to_string(), json!(n))).collect::<serde_json::Map<String, Value>>(),
                    "cross_check_points_skipped": kv.db_ahead_points,
                })),
                "findings": findings,
                "notes": m.notes,
            })
        })
        .collect();
    json!({
        "verdict": if verdict.violations > 0 {
            "violations"
        } else if verdict.failed() {
            "findings"
        } else {
            "ok"
        },
        "violation_count": verdict.violations,
        "refused_input_count": verdict.refused_inputs,
        "as_captured_verify": { "failure_count": verdict.captured_failures, "findings": captured },
        "undetected_loss_count": verdict.undetected,
        "not_modelled_count": members.iter().map(|m| m.not_modelled_count()).sum::<usize>(),
        "kv_not_modelled_count": kv_not_modelled_count(members),
        "strict": strict,
        "classes": classes_json(&tally(members), opts),
        "members": members_json,
        "cluster": cluster.map(|c| json!({
            "voters": c.voters.iter().map(|v| format!("{v:016x}")).collect::<Vec<_>>(),
            "quorum": c.quorum,
            "max_crashed": c.max_crashed,
            "committed": c.committed,
            "combinations": c.combinations,
            "unreachable_combinations": c.unreachable,
            "notes": c.notes,
            "findings": c.findings.iter().map(|f| json!({
                "kind": f.kind,
                "loss": f.loss.key(),
                "message": f.message,
                "count": f.count,
                "crashed": f.crashed.iter().map(|(m, s)| json!({"member": m, "path": c.paths[*m].display().to_string(), "spec": s})).collect::<Vec<_>>(),
                "reproduce": f.only.as_ref().map(|o| cluster_reproduce(c, o)),
            })).collect::<Vec<_>>(),
        })),
    })
}

/// States whose KV side is not modelled (the db is ahead of their recovered log), all members.
fn kv_not_modelled_count(members: &[&MemberRun]) -> usize {
    members
        .iter()
        .filter_map(|m| m.kv_from_db.as_ref())
        .map(|kv| kv.db_ahead_count())
        .sum()
}
