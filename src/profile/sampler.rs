//! The CPU sampler (pprof-rs, `setitimer(ITIMER_PROF)` + SIGPROF) and its three outputs: folded
//! stacks, an inferno flame graph, and a gzip'd pprof `profile.proto` for `go tool pprof`.
//!
//! Trust notes (docs/perf.md): ITIMER_PROF counts process CPU time, so this is an on-CPU profile;
//! the kernel tick caps the rate (≈250 Hz on the 2-core VMs), so the achieved rate is measured
//! and written into the pprof file instead of the requested one.
//!
//! The blocklist drops samples whose interrupted PC is in libgcc (its unwinder is what samples
//! the stack: re-entering it from a signal is unsafe), the dynamic loader and the vDSO. libc is
//! *not* blocklisted, unlike pprof-rs's examples: on this workload about 30% of the CPU time is
//! in libc (malloc, free, memcpy, memset, read, munmap and the page faults they take), and
//! dropping those samples made the achieved rate 70 of 99 Hz and shifted every phase share. With
//! glibc ≥ 2.35 and libgcc ≥ 12 (`_dl_find_object`) unwinding from a libc frame takes no lock.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use pprof::protos::Message;

use super::clock::process_cpu;
use super::folded::{sanitize, Stack};

/// Shared objects whose samples are dropped (unwinding from inside them is not signal-safe).
pub const BLOCKLIST: [&str; 3] = ["libgcc", "ld-linux", "vdso"];

pub const UNWINDER: &str = if cfg!(feature = "fp-unwind") {
    "frame-pointer"
} else {
    "libgcc (DWARF)"
};

pub struct Sampler {
    guard: pprof::ProfilerGuard<'static>,
    requested_hz: i32,
    start_cpu: Duration,
    start_wall: Instant,
}

/// A finished CPU profile.
pub struct CpuProfile {
    pub stacks: Vec<Stack>,
    pub samples: u64,
    /// Process CPU time and wall time while sampling.
    pub cpu: Duration,
    pub wall: Duration,
    pub requested_hz: i32,
    /// Samples per CPU-second actually taken.
    pub achieved_hz: f64,
    /// The pprof protobuf, with period and CPU values from the achieved rate.
    pub pprof: pprof::protos::Profile,
    /// Time spent symbolising (after sampling; not in `cpu`).
    pub symbolize: Duration,
}

impl Sampler {
    pub fn start(requested_hz: i32) -> Result<Sampler, String> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(requested_hz)
            .blocklist(&BLOCKLIST)
            .build()
            .map_err(|e| format!("cannot start the CPU profiler: {e}"))?;
        Ok(Sampler {
            guard,
            requested_hz,
            start_cpu: process_cpu(),
            start_wall: Instant::now(),
        })
    }

    /// Process CPU time since sampling started.
    pub fn cpu_so_far(&self) -> Duration {
        process_cpu().saturating_sub(self.start_cpu)
    }

    /// Stops sampling and symbolises (symbolisation is outside the measured window).
    pub fn finish(self) -> Result<CpuProfile, String> {
        let cpu = process_cpu().saturating_sub(self.start_cpu);
        let wall = self.start_wall.elapsed();
        let symbolize_start = Instant::now();
        let report = self
            .guard
            .report()
            .build()
            .map_err(|e| format!("cannot build the profile report: {e}"))?;
        drop(self.guard);
        let mut stacks = Vec::with_capacity(report.data.len());
        let mut samples = 0u64;
        for (frames, count) in &report.data {
            let count = (*count).max(0) as u64;
            samples += count;
            let mut names = Vec::with_capacity(frames.frames.len() + 1);
            let thread = frames.thread_name_or_id();
            names.push(sanitize(&thread));
            // pprof stores the leaf first, and inlined symbols innermost first.
            for frame in frames.frames.iter().rev() {
                for symbol in frame.iter().rev() {
                    names.push(sanitize(&symbol.name()));
                }
            }
            stacks.push(Stack {
                frames: names,
                count,
            });
        }
        let achieved_hz = if cpu.as_secs_f64() > 0.0 {
            samples as f64 / cpu.as_secs_f64()
        } else {
            0.0
        };
        let mut pprof = report
            .pprof()
            .map_err(|e| format!("cannot encode the pprof profile: {e}"))?;
        // pprof-rs writes period = 1e9/requested Hz and cpu = count × that period. With the rate
        // capped by the kernel tick that under-reports CPU time; use the achieved rate.
        if achieved_hz > 0.0 {
            let period = (1e9 / achieved_hz).round() as i64;
            pprof.period = period;
            for sample in pprof.sample.iter_mut() {
                if let (Some(count), Some(nanos)) =
                    (sample.value.first().copied(), sample.value.get_mut(1))
                {
                    *nanos = count * period;
                }
            }
        }
        pprof.duration_nanos = wall.as_nanos() as i64;
        Ok(CpuProfile {
            stacks,
            samples,
            cpu,
            wall,
            requested_hz: self.requested_hz,
            achieved_hz,
            pprof,
            symbolize: symbolize_start.elapsed(),
        })
    }
}

/// Writes the gzip'd pprof protobuf (what `go tool pprof` reads; `-top`, `-web`, `-http`).
pub fn write_pprof(profile: &pprof::protos::Profile, path: &Path) -> Result<(), String> {
    let mut raw = Vec::new();
    profile
        .encode(&mut raw)
        .map_err(|e| format!("cannot encode the pprof profile: {e}"))?;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    gz.write_all(&raw)
        .and_then(|_| gz.finish().map(|_| ()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Renders folded stacks as an SVG flame graph (inferno). Colours are deterministic, so two
/// profiles of the same code are comparable side by side.
pub fn write_flamegraph(
    folded: &str,
    title: &str,
    subtitle: &str,
    path: &Path,
) -> Result<(), String> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.subtitle = Some(subtitle.to_string());
    options.count_name = "samples".to_string();
    options.deterministic = true;
    // Frames narrower than half a pixel are invisible anyway; leaving them out keeps the SVG
    // small enough to open quickly (inferno draws every frame it is given).
    options.min_width = 0.5;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut writer)
        .map_err(|e| format!("cannot render the flame graph: {e}"))?;
    writer
        .flush()
        .map_err(|e| format!("{}: {e}", path.display()))
}
