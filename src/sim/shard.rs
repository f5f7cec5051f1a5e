//! `sim --shard k/n` and `sim --merge`: one run of cases `0..N` split over machines.
//!
//! Case `i` of seed `S` is generated from `(S, i)` alone (`gen::case_tree`), so a shard runs a
//! contiguous, disjoint block of case numbers and gets exactly the cases an unsharded run gets
//! there. An unsharded run counts the cases up to its first failure (the lowest failing case
//! number) and reports that failure; a shard does the same within its block. [`merge`] adds up
//! the shards in case order through the first one that failed, which is the unsharded run's
//! report: the same cases, fault and request counts, and the same failure with the same
//! shrunk scenario (shrinking is deterministic).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::gen::Summary;
use super::Inject;

/// Shard `index` of `count` (1-based, as `--shard 2/3` says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    pub index: u64,
    /// The number of shards.
    pub count: u64,
}

/// Why shards cannot be run or merged.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// `--shard` is not `K/N` with 1 ≤ K ≤ N.
    #[error("--shard {0:?}: expected K/N with 1 <= K <= N (e.g. 2/3)")]
    Syntax(String),
    /// No report to merge.
    #[error("no shard report to merge")]
    Empty,
    /// Reports of different runs (seed, injected bug, case count or shard count).
    #[error("shard {shard} is of another run: {field} {theirs} differs from {ours}")]
    OtherRun {
        /// The shard that differs.
        shard: String,
        /// The field that differs.
        field: &'static str,
        /// Its value in the first report.
        ours: String,
        /// Its value in this report.
        theirs: String,
    },
    /// A shard's case range is not the one `K/N` of the run's cases is.
    #[error("shard {shard} ran cases {first}..{end}, not its block {expected:?}")]
    WrongRange {
        /// The shard.
        shard: String,
        /// Its first case.
        first: u64,
        /// One past its last case.
        end: u64,
        /// The block `K/N` of the run's cases.
        expected: Range<u64>,
    },
    /// A shard appears twice.
    #[error("shard {0} is given twice")]
    Duplicate(String),
    /// A shard is missing.
    #[error("shard {0} is missing")]
    Missing(String),
}

impl Shard {
    /// The whole run.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Parses `K/N`.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(syntax)?;
        let index: u64 = k.trim().parse().map_err(|_| syntax())?;
        let count: u64 = n.trim().parse().map_err(|_| syntax())?;
        if index == 0 || index > count {
            return Err(syntax());
        }
        Ok(Shard { index, count })
    }

    /// This shard's block of cases `0..total`: `[total·(k−1)/n, total·k/n)`. The blocks of
    /// `1/n ..= n/n` are disjoint and cover `0..total`.
    pub fn cases(&self, total: u64) -> Range<u64> {
        let bound = |k: u64| (u128::from(total) * u128::from(k) / u128::from(self.count)) as u64;
        bound(self.index - 1)..bound(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The first failing case of a run, as `sim --format json` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// Its case number.
    pub case: u64,
    /// The failures of the original case.
    pub failures: Vec<String>,
    /// Commands of the original case.
    pub original_commands: usize,
    /// Commands of the shrunk case.
    pub shrunk_commands: usize,
    /// The failures of the shrunk case.
    pub shrunk_failures: Vec<String>,
    /// The shrunk case as a scenario file.
    pub script: String,
}

/// A run (or a shard of one) as `sim --format json` prints it and `sim --merge` reads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// `--seed`.
    pub seed: u64,
    /// `--inject`'s bug name.
    pub inject: Option<String>,
    /// `--cases`: the whole run's case count.
    pub total_cases: u64,
    /// `K/N`.
    pub shard: String,
    /// The shard's first case.
    pub first_case: u64,
    /// One past the shard's last case.
    pub end_case: u64,
    /// Cases run and counted (through the first failure).
    pub cases: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Conf-change transitions applied, by kind.
    pub transitions: BTreeMap<String, u64>,
    /// Client requests proposed.
    pub proposals: u64,
    /// Client requests acknowledged.
    pub acked: u64,
    /// Cases that ended without a converged leader.
    pub stuck: u64,
    /// The first failing case.
    pub failure: Option<FailureReport>,
    /// Wall time (summed over merged shards); not part of a run's result.
    pub elapsed_seconds: f64,
}

fn strings(map: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    map.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

impl RunReport {
    /// The report of `summary`, the run of `shard`'s cases of `total` cases of `seed`.
    pub fn new(
        summary: &Summary,
        seed: u64,
        inject: Option<Inject>,
        total: u64,
        shard: Shard,
    ) -> RunReport {
        let range = shard.cases(total);
        RunReport {
            seed,
            inject: inject.map(|b| b.name().to_string()),
            total_cases: total,
            shard: shard.to_string(),
            first_case: range.start,
            end_case: range.end,
            cases: summary.cases,
            faults: strings(&summary.faults),
            transitions: strings(&summary.transitions),
            proposals: summary.proposals,
            acked: summary.acked,
            stuck: summary.stuck,
            failure: summary.failure.as_ref().map(|f| FailureReport {
                case: f.case,
                failures: f.failures.clone(),
                original_commands: f.original_commands,
                shrunk_commands: f.shrunk.commands.len(),
                shrunk_failures: f.shrunk_failures.clone(),
                script: f.script.clone(),
            }),
            elapsed_seconds: summary.elapsed.as_secs_f64(),
        }
    }

    /// Adds `other`'s counts (a later block of the same run).
    fn add(&mut self, other: &RunReport) {
        self.cases += other.cases;
        for (k, v) in &other.faults {
            *self.faults.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.transitions {
            *self.transitions.entry(k.clone()).or_default() += v;
        }
        self.proposals += other.proposals;
        self.acked += other.acked;
        self.stuck += other.stuck;
        self.elapsed_seconds += other.elapsed_seconds;
    }
}

/// The unsharded run's report from the reports of its shards `1/N ..= N/N` (any order).
pub fn merge(mut reports: Vec<RunReport>) -> Result<RunReport, ShardError> {
    let first = reports.first().ok_or(ShardError::Empty)?.clone();
    let mut seen = BTreeMap::new();
    for report in &reports {
        let shard = Shard::parse(&report.shard)?;
        same_run(&first, report, shard)?;
        let expected = shard.cases(first.total_cases);
        if (report.first_case, report.end_case) != (expected.start, expected.end) {
            return Err(ShardError::WrongRange {
                shard: report.shard.clone(),
                first: report.first_case,
                end: report.end_case,
                expected,
            });
        }
        if seen.insert(shard.index, ()).is_some() {
            return Err(ShardError::Duplicate(report.shard.clone()));
        }
    }
    let count = Shard::parse(&first.shard)?.count;
    if let Some(k) = (1..=count).find(|k| !seen.contains_key(k)) {
        return Err(ShardError::Missing(format!("{k}/{count}")));
    }
    reports.sort_by_key(|r| r.first_case);
    let mut merged = RunReport {
        shard: Shard::WHOLE.to_string(),
        first_case: 0,
        end_case: first.total_cases,
        cases: 0,
        faults: BTreeMap::new(),
        transitions: BTreeMap::new(),
        proposals: 0,
        acked: 0,
        stuck: 0,
        failure: None,
        elapsed_seconds: 0.0,
        ..first
    };
    for report in &reports {
        merged.add(report);
        if report.failure.is_some() {
            merged.failure = report.failure.clone();
            break;
        }
    }
    Ok(merged)
}

fn same_run(first: &RunReport, report: &RunReport, shard: Shard) -> Result<(), ShardError> {
    let first_count = Shard::parse(&first.shard)?.count;
    let fields = [
        ("seed", first.seed.to_string(), report.seed.to_string()),
        (
            "inject",
            format!("{:?}", first.inject),
            format!("{:?}", report.inject),
        ),
        (
            "cases",
            first.total_cases.to_string(),
            report.total_cases.to_string(),
        ),
        (
            "shard count",
            first_count.to_string(),
            shard.count.to_string(),
        ),
    ];
    for (field, ours, theirs) in fields {
        if ours != theirs {
            return Err(ShardError::OtherRun {
                shard: report.shard.clone(),
                field,
                ours,
                theirs,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocks_of_n_shards_are_disjoint_and_cover_every_case() {
        for total in [0u64, 1, 2, 7, 100, 1_000_003, u64::MAX] {
            for count in 1..=7u64 {
                let mut next = 0;
                for index in 1..=count {
                    let range = Shard { index, count }.cases(total);
                    assert_eq!(range.start, next, "{index}/{count} of {total}");
                    assert!(range.end >= range.start);
                    next = range.end;
                }
                assert_eq!(next, total, "{count} shards of {total}");
            }
        }
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "", "1/3/4"] {
            assert!(
                matches!(Shard::parse(bad), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
    }
}
