//! `raft-replay profile`: in-process CPU sampling of decode + replay + checks, with the outputs
//! Go's pprof workflow expects, and a per-phase table measured at the phase boundaries.
//!
//! Outputs (all in the `--out` directory; the inputs are only read):
//!
//! * `flamegraph.svg` — inferno flame graph of the sampled stacks;
//! * `profile.pb` — gzip'd pprof `profile.proto` (`go tool pprof -top DIR/profile.pb`);
//! * `stacks.folded` — folded stacks, the diffable artifact the SVG is rendered from;
//! * `phases.txt` — the per-phase table; `profile.json` — the same with the run's metadata.
//!
//! How the phase table is measured: the three steps (decode, replay, checks) are timed at their
//! boundaries on the thread CPU clock and the wall clock; the split of a step into its parts
//! (read / CRC / protobuf decode, raft-rs / MVCC apply) is apportioned from the CPU samples taken
//! inside that step, classified by their frames ([`folded::classify`]). Reads are not timed by
//! wrapping the reader: a wrapper without `read_buf` (unstable) makes std zero every buffer
//! before reading into it, a cost the real run does not have.

#[cfg(feature = "alloc-profile")]
pub mod alloc;
pub mod clock;
pub mod folded;
#[cfg(feature = "profile")]
pub mod sampler;
pub mod synth;
pub mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use clock::Span;
use folded::{Stack, Work};
use workload::{Step, StepSpans, WorkloadRun};

/// Default sampling rate: below the kernel tick, off the 100 Hz grid (lockstep with timers).
pub const DEFAULT_HZ: i32 = 99;
/// Above this ITIMER_PROF is capped by the kernel tick on the reference VMs (docs/perf.md).
pub const MAX_TRUSTED_HZ: i32 = 250;
/// Enough samples for ±0.7 points on a 10% share.
pub const DEFAULT_MIN_SAMPLES: u64 = 2_000;
/// The default repeat-until-enough-samples loop never runs longer than this (CPU time).
pub const MAX_AUTO_CPU: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct ProfileOptions {
    pub paths: Vec<PathBuf>,
    pub out: PathBuf,
    /// Run the workload exactly this many times while sampling.
    pub repeat: Option<u32>,
    /// Repeat the workload until this much CPU time was sampled.
    pub seconds: Option<f64>,
    pub frequency: i32,
    /// Without `repeat`/`seconds`: repeat until about this many samples were taken.
    pub min_samples: u64,
}

/// One row of the phase table.
#[derive(Clone, Debug)]
pub struct PhaseRow {
    pub name: &'static str,
    /// 0 for a step, 1 for its parts.
    pub depth: u8,
    pub span: Span,
    /// Samples this row's CPU time was apportioned from (None: measured directly).
    pub samples: Option<u64>,
    pub how: &'static str,
}

/// The per-phase table from measured step spans and the samples taken in each step.
pub fn phase_rows(spans: &StepSpans, stacks: &[Stack]) -> Vec<PhaseRow> {
    let counts = folded::tally(stacks);
    let count = |step: Step, work: Work| counts.get(&(Some(step), work)).copied().unwrap_or(0);
    let split = |total: Span, a: u64, b: u64| -> (Span, Span) {
        if a + b == 0 {
            return (Span::default(), total);
        }
        let fa = a as f64 / (a + b) as f64;
        let first = total.scale(fa);
        (first, total.saturating_sub(first))
    };
    let read_n = count(Step::Decode, Work::Read);
    let (crc_n, dec_n) = (
        count(Step::Decode, Work::Crc),
        count(Step::Decode, Work::Decode),
    );
    let (read, decode_rest) = split(spans.decode, read_n, crc_n + dec_n);
    let (crc, protobuf) = split(decode_rest, crc_n, dec_n);
    let (raft_n, mvcc_n) = (
        count(Step::Replay, Work::RaftRs),
        count(Step::Replay, Work::Mvcc),
    );
    let (raft, mvcc) = split(spans.replay, raft_n, mvcc_n);
    vec![
        PhaseRow {
            name: "decode",
            depth: 0,
            span: spans.decode,
            samples: None,
            how: "boundary",
        },
        PhaseRow {
            name: "read",
            depth: 1,
            span: read,
            samples: Some(read_n),
            how: "samples in read(2)",
        },
        PhaseRow {
            name: "CRC",
            depth: 1,
            span: crc,
            samples: Some(crc_n),
            how: "samples in crc32c",
        },
        PhaseRow {
            name: "protobuf decode",
            depth: 1,
            span: protobuf,
            samples: Some(dec_n),
            how: "the rest: framing, prost, ReadAll",
        },
        PhaseRow {
            name: "replay",
            depth: 0,
            span: spans.replay,
            samples: None,
            how: "boundary",
        },
        PhaseRow {
            name: "raft-rs",
            depth: 1,
            span: raft,
            samples: Some(raft_n),
            how: "samples outside mvcc",
        },
        PhaseRow {
            name: "MVCC apply",
            depth: 1,
            span: mvcc,
            samples: Some(mvcc_n),
            how: "samples in raft_replay::mvcc",
        },
        PhaseRow {
            name: "checks",
            depth: 0,
            span: spans.checks,
            samples: Some(count(Step::Checks, Work::Checks)),
            how: "boundary (incl. its own WAL pass)",
        },
    ]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The phase table as text.
pub fn render_phases(rows: &[PhaseRow], total: Span) -> String {
    let mut out = format!(
        "{:<20} {:>10} {:>10} {:>7} {:>8}  {}\n",
        "phase", "CPU s", "wall s", "share", "samples", "measured by"
    );
    let share = |s: Span| {
        if total.cpu.is_zero() {
            0.0
        } else {
            100.0 * secs(s.cpu) / secs(total.cpu)
        }
    };
    for row in rows {
        let name = format!("{}{}", "  ".repeat(row.depth as usize), row.name);
        out.push_str(&format!(
            "{:<20} {:>10.3} {:>10.3} {:>6.1}% {:>8}  {}\n",
            name,
            secs(row.span.cpu),
            secs(row.span.wall),
            share(row.span),
            row.samples.map(|n| n.to_string()).unwrap_or_default(),
            row.how
        ));
    }
    out.push_str(&format!(
        "{:<20} {:>10.3} {:>10.3} {:>6.1}%\n",
        "total",
        secs(total.cpu),
        secs(total.wall),
        100.0
    ));
    out
}

pub fn rows_json(rows: &[PhaseRow], total: Span) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "phase": r.name,
                    "depth": r.depth,
                    "cpu_s": secs(r.span.cpu),
                    "wall_s": secs(r.span.wall),
                    "cpu_share": if total.cpu.is_zero() { 0.0 } else { secs(r.span.cpu) / secs(total.cpu) },
                    "samples": r.samples,
                    "measured_by": r.how,
                })
            })
            .collect(),
    )
}

/// Refuses an output directory inside one of the inputs: profiling never writes into PATH.
pub fn check_out_dir(out: &Path, paths: &[PathBuf]) -> Result<(), String> {
    let resolved = resolve_nearest(out);
    for path in paths {
        let input = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if resolved.starts_with(&input) {
            return Err(format!(
                "--out {} is inside the input {}: profile output never goes into an input",
                out.display(),
                path.display()
            ));
        }
    }
    Ok(())
}

/// `path` canonicalised through its nearest existing ancestor (the rest appended as given).
fn resolve_nearest(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// What a profile run found and wrote.
pub struct ProfileSummary {
    pub runs: u32,
    pub spans: StepSpans,
    pub last_run: WorkloadRun,
    pub rows: Vec<PhaseRow>,
    pub table: String,
    pub samples: u64,
    pub achieved_hz: f64,
    pub sampled_cpu: Duration,
    pub sampled_wall: Duration,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// When to stop repeating the workload.
pub fn stop_after(options: &ProfileOptions, runs: u32, cpu: Duration) -> bool {
    if let Some(repeat) = options.repeat {
        return runs >= repeat.max(1);
    }
    if let Some(seconds) = options.seconds {
        return runs >= 1 && secs(cpu) >= seconds;
    }
    // Expect at most the kernel-tick rate and a few percent of dropped samples.
    let expected_hz = (options.frequency.min(MAX_TRUSTED_HZ) as f64 * 0.93).max(1.0);
    runs >= 1 && (secs(cpu) * expected_hz >= options.min_samples as f64 || cpu >= MAX_AUTO_CPU)
}

#[cfg(feature = "profile")]
fn meta_json(
    options: &ProfileOptions,
    summary: &ProfileSummary,
    unwinder: &str,
    blocklist: &[&str],
) -> Value {
    let run = &summary.last_run;
    json!({
        "tool": format!("raft-replay {}", env!("CARGO_PKG_VERSION")),
        "build": if cfg!(debug_assertions) { "debug" } else { "optimised" },
        "unwinder": unwinder,
        "blocklist": blocklist,
        "requested_hz": options.frequency,
        "achieved_hz": summary.achieved_hz,
        "samples": summary.samples,
        "sampled_cpu_s": secs(summary.sampled_cpu),
        "sampled_wall_s": secs(summary.sampled_wall),
        "runs": summary.runs,
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
        "paths": options.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "entries_per_run": run.entries(),
        "applied_per_run": run.applied(),
        "members": run.members.iter().map(|m| json!({
            "path": m.path.display().to_string(),
            "entries": m.entries,
            "applied": m.applied,
            "replay": format!("{:?}", m.replay),
            "findings": m.findings,
            "failures": m.failures,
        })).collect::<Vec<_>>(),
        "phases": rows_json(&summary.rows, summary.spans.total()),
        "warnings": summary.warnings,
    })
}

/// Runs the workload under the CPU sampler and writes every output into `options.out`.
#[cfg(feature = "profile")]
pub fn profile(
    fs: &dyn crate::fsio::ReadOnlyFs,
    options: &ProfileOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ProfileSummary, String> {
    check_out_dir(&options.out, &options.paths)?;
    // An unsampled run first: fails fast on unreadable input, warms the page cache.
    workload::run_once(fs, &options.paths)?;
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let mut warnings = Vec::new();
    if options.frequency > MAX_TRUSTED_HZ {
        warnings.push(format!(
            "{} Hz requested: ITIMER_PROF is capped by the kernel tick (≈250 Hz here); \
             repeat the workload (--repeat/--seconds) for more samples instead",
            options.frequency
        ));
    }
    let sampler = sampler::Sampler::start(options.frequency)?;
    let mut spans = StepSpans::default();
    let mut runs = 0u32;
    let mut last_run;
    loop {
        let run = workload::run_once(fs, &options.paths)?;
        spans += run.spans;
        runs += 1;
        last_run = run;
        if stop_after(options, runs, sampler.cpu_so_far()) {
            break;
        }
        if runs % 50 == 0 {
            progress(&format!(
                "{runs} runs, {:.1} CPU-s sampled",
                secs(sampler.cpu_so_far())
            ));
        }
    }
    let cpu = sampler.finish()?;
    if cpu.samples < options.min_samples && options.repeat.is_none() && options.seconds.is_none() {
        warnings.push(format!(
            "only {} samples (wanted {}): shares under ~2% are noise",
            cpu.samples, options.min_samples
        ));
    } else if cpu.samples < DEFAULT_MIN_SAMPLES {
        warnings.push(format!(
            "{} samples: fewer than {DEFAULT_MIN_SAMPLES}, so shares carry a few points of noise \
             (raise --repeat or --seconds)",
            cpu.samples
        ));
    }
    if cpu.achieved_hz < 0.8 * options.frequency.min(MAX_TRUSTED_HZ) as f64 {
        warnings.push(format!(
            "achieved {:.0} samples/CPU-s of {} requested: samples were dropped or the timer is capped",
            cpu.achieved_hz, options.frequency
        ));
    }
    let rows = phase_rows(&spans, &cpu.stacks);
    let table = render_phases(&rows, spans.total());
    let folded_text = folded::folded(&cpu.stacks);
    let out = &options.out;
    let files = vec![
        out.join("flamegraph.svg"),
        out.join("profile.pb"),
        out.join("stacks.folded"),
        out.join("phases.txt"),
        out.join("profile.json"),
    ];
    std::fs::write(&files[2], &folded_text).map_err(|e| format!("{}: {e}", files[2].display()))?;
    let inputs: Vec<String> = options
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let subtitle = format!(
        "{} runs over {} · {} samples at {:.0} Hz achieved ({} requested) · {:.2} CPU-s · unwinder {}",
        runs,
        inputs.join(" "),
        cpu.samples,
        cpu.achieved_hz,
        options.frequency,
        secs(cpu.cpu),
        sampler::UNWINDER
    );
    sampler::write_flamegraph(
        &folded_text,
        "raft-replay: decode + replay + checks",
        &subtitle,
        &files[0],
    )?;
    sampler::write_pprof(&cpu.pprof, &files[1])?;
    std::fs::write(&files[3], &table).map_err(|e| format!("{}: {e}", files[3].display()))?;
    let mut summary = ProfileSummary {
        runs,
        spans,
        last_run,
        rows,
        table,
        samples: cpu.samples,
        achieved_hz: cpu.achieved_hz,
        sampled_cpu: cpu.cpu,
        sampled_wall: cpu.wall,
        files,
        warnings,
    };
    let meta = meta_json(options, &summary, sampler::UNWINDER, &sampler::BLOCKLIST);
    std::fs::write(
        &summary.files[4],
        serde_json::to_string_pretty(&meta).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", summary.files[4].display()))?;
    summary.files.retain(|f| f.exists());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_inside_an_input_is_refused() {
        let input = tempfile::tempdir().unwrap();
        let inside = input.path().join("member").join("prof");
        assert!(check_out_dir(&inside, &[input.path().to_path_buf()]).is_err());
        assert!(!inside.exists(), "nothing created");
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(check_out_dir(&elsewhere.path().join("p"), &[input.path().to_path_buf()]).is_ok());
    }

    #[test]
    fn repeat_rules() {
        let mut o = ProfileOptions {
            paths: vec![],
            out: PathBuf::new(),
            repeat: Some(3),
            seconds: None,
            frequency: 99,
            min_samples: 2000,
        };
        assert!(!stop_after(&o, 2, Duration::from_secs(100)));
        assert!(stop_after(&o, 3, Duration::ZERO));
        o.repeat = None;
        o.seconds = Some(2.0);
        assert!(!stop_after(&o, 5, Duration::from_secs(1)));
        assert!(stop_after(&o, 5, Duration::from_secs(2)));
        o.seconds = None;
        assert!(!stop_after(&o, 5, Duration::from_secs(10)));
        assert!(stop_after(&o, 5, Duration::from_secs(22)));
    }

    #[test]
    fn phase_table_apportions_by_samples_within_a_step() {
        let ms = |n| Span {
            wall: Duration::from_millis(n),
            cpu: Duration::from_millis(n),
        };
        let spans = StepSpans {
            decode: ms(100),
            replay: ms(200),
            checks: ms(50),
            ..Default::default()
        };
        let stack = |frames: &[&str], count| Stack {
            frames: frames.iter().map(|s| s.to_string()).collect(),
            count,
        };
        let stacks = vec![
            stack(
                &[
                    "raft_replay::profile::workload::phase_decode",
                    "__GI___libc_read",
                ],
                1,
            ),
            stack(
                &["raft_replay::profile::workload::phase_decode", "crc32c::x"],
                1,
            ),
            stack(
                &["raft_replay::profile::workload::phase_decode", "prost::y"],
                3,
            ),
            stack(
                &["raft_replay::profile::workload::phase_replay", "raft::z"],
                1,
            ),
            stack(
                &[
                    "raft_replay::profile::workload::phase_replay",
                    "raft_replay::mvcc::w",
                ],
                1,
            ),
        ];
        let rows = phase_rows(&spans, &stacks);
        let get = |name| rows.iter().find(|r| r.name == name).unwrap().span.cpu;
        assert_eq!(get("read"), Duration::from_millis(20));
        assert_eq!(get("CRC"), Duration::from_millis(20));
        assert_eq!(get("protobuf decode"), Duration::from_millis(60));
        assert_eq!(get("raft-rs"), Duration::from_millis(100));
        assert_eq!(get("MVCC apply"), Duration::from_millis(100));
        let table = render_phases(&rows, spans.total());
        assert!(table.contains("MVCC apply"), "{table}");
    }
}
