//! Allocation profile (cargo feature `alloc-profile`): `raft-replay profile --alloc`.
//!
//! A counting global allocator (allocations, bytes, live and peak bytes — per phase) wrapped
//! around dhat's, which records every allocation with its backtrace and writes
//! `dhat-heap.json` (viewer: DHAT's `dh_view.html`); the top allocation sites are read back from
//! that file and printed. This build swaps the global allocator and is slower (dhat: about a
//! third); never profile CPU with it — the CPU profile comes from the default build.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::Value;

use super::workload::run_once;
use super::{check_out_dir, ProfileOptions};
use crate::fsio::ReadOnlyFs;

pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

fn on_alloc(size: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    BYTES.fetch_add(size as u64, Relaxed);
    let live = LIVE.fetch_add(size as u64, Relaxed) + size as u64;
    PEAK.fetch_max(live, Relaxed);
}

fn on_free(size: usize) {
    LIVE.fetch_sub(size as u64, Relaxed);
}

// SAFETY: every call is forwarded to dhat's allocator (itself forwarding to the system
// allocator) with the same layout; the counters only observe.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = dhat::Alloc.alloc(layout);
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = dhat::Alloc.alloc_zeroed(layout);
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        dhat::Alloc.dealloc(ptr, layout);
        on_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = dhat::Alloc.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // A resize of the same block (as dhat counts it): bytes move, no new allocation.
            REALLOCS.fetch_add(1, Relaxed);
            on_free(layout.size());
            on_alloc(new_size);
            ALLOCS.fetch_sub(1, Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocation counters so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCounters {
    /// New blocks (a `realloc` is not one).
    pub allocs: u64,
    pub reallocs: u64,
    pub bytes: u64,
    pub live: u64,
    pub peak: u64,
}

pub fn counters() -> AllocCounters {
    AllocCounters {
        allocs: ALLOCS.load(Relaxed),
        reallocs: REALLOCS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
        live: LIVE.load(Relaxed),
        peak: PEAK.load(Relaxed),
    }
}

/// Restarts peak tracking from the current live bytes.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// One allocation site from dhat's output.
#[derive(Clone, Debug)]
pub struct Site {
    pub bytes: u64,
    pub blocks: u64,
    /// The innermost frames in this crate, innermost first.
    pub frames: Vec<String>,
}

fn frame_name(raw: &str) -> String {
    // "0x55d0…: raft_replay::x::y (src/x.rs:12:5)"
    let name = raw.split_once(": ").map(|(_, n)| n).unwrap_or(raw);
    name.to_string()
}

/// The top sites of a dhat JSON by total bytes allocated.
pub fn top_sites(dhat_json: &Value, n: usize) -> Vec<Site> {
    let empty = Vec::new();
    let table: Vec<String> = dhat_json["ftbl"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|f| frame_name(f.as_str().unwrap_or("")))
        .collect();
    let mut sites: Vec<Site> = dhat_json["pps"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|pp| {
            let frames: Vec<String> = pp["fs"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter_map(|i| table.get(i.as_u64()? as usize).cloned())
                .filter(|f| f.contains("raft_replay::") && !f.contains("profile::alloc"))
                .take(3)
                .collect();
            Site {
                bytes: pp["tb"].as_u64().unwrap_or(0),
                blocks: pp["tbk"].as_u64().unwrap_or(0),
                frames,
            }
        })
        .collect();
    // Sites that differ only outside this crate are one site here.
    sites.sort_by(|a, b| a.frames.cmp(&b.frames));
    let mut merged: Vec<Site> = Vec::new();
    for site in sites {
        match merged.last_mut() {
            Some(last) if last.frames == site.frames => {
                last.bytes += site.bytes;
                last.blocks += site.blocks;
            }
            _ => merged.push(site),
        }
    }
    merged.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.blocks.cmp(&a.blocks)));
    merged.truncate(n);
    merged
}

/// Runs the workload under dhat and the counting allocator; writes `dhat-heap.json` and
/// `alloc.txt` into `options.out` and returns the report.
pub fn profile_allocations(
    fs: &dyn ReadOnlyFs,
    options: &ProfileOptions,
) -> Result<String, String> {
    check_out_dir(&options.out, &options.paths)?;
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let json_path = options.out.join("dhat-heap.json");
    let runs = options.repeat.unwrap_or(1).max(1);
    let mut text = String::new();
    // Counted first, without dhat: its own bookkeeping allocates through the same allocator.
    reset_peak();
    let before = counters();
    let run = run_once(fs, &options.paths)?;
    let after = counters();
    {
        let _profiler = dhat::Profiler::builder()
            .file_name(&json_path)
            .trim_backtraces(Some(24))
            .build();
        for _ in 0..runs {
            run_once(fs, &options.paths)?;
        }
    }
    let entries = run.entries().max(1);
    text.push_str(&format!(
        "allocation profile of decode + replay + checks ({runs} run(s), {} entries a run)\n",
        run.entries()
    ));
    text.push_str(&format!(
        "counted run: {} allocations ({:.2} per entry) and {} reallocs, {:.1} MB allocated ({:.0} B per entry), peak live {:.1} MB\n\n",
        after.allocs - before.allocs,
        (after.allocs - before.allocs) as f64 / entries as f64,
        after.reallocs - before.reallocs,
        (after.bytes - before.bytes) as f64 / 1e6,
        (after.bytes - before.bytes) as f64 / entries as f64,
        after.peak.saturating_sub(before.live) as f64 / 1e6,
    ));
    text.push_str(&format!(
        "{:<8} {:>12} {:>12} {:>10}  {}\n",
        "phase", "allocs", "MB", "allocs/ent", ""
    ));
    for (name, a) in [
        ("decode", run.spans.decode_allocs),
        ("replay", run.spans.replay_allocs),
        ("checks", run.spans.checks_allocs),
    ] {
        text.push_str(&format!(
            "{:<8} {:>12} {:>12.1} {:>10.2}\n",
            name,
            a.0,
            a.1 as f64 / 1e6,
            a.0 as f64 / entries as f64
        ));
    }
    let json: Value = std::fs::read(&json_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{}: dhat wrote no readable profile", json_path.display()))?;
    text.push_str(&format!(
        "\ntop allocation sites over all {runs} run(s) (by bytes; innermost raft_replay frames):\n"
    ));
    for site in top_sites(&json, 15) {
        text.push_str(&format!(
            "{:>10.1} MB {:>10} blocks  {}\n",
            site.bytes as f64 / 1e6,
            site.blocks,
            if site.frames.is_empty() {
                "(outside raft_replay)".to_string()
            } else {
                site.frames.join(" <- ")
            }
        ));
    }
    text.push_str(&format!(
        "\nwrote {} (open with DHAT's dh_view.html)\n",
        json_path.display()
    ));
    let report = options.out.join("alloc.txt");
    std::fs::write(&report, &text).map_err(|e| format!("{}: {e}", report.display()))?;
    text.push_str(&format!("wrote {}\n", report.display()));
    Ok(text)
}
