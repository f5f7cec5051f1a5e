//! What every fuzz target shares: a counting global allocator that enforces an allocation budget
//! derived from the input's length, and the container format that packs several files (WAL
//! segments, `.snap` files, a db) into one fuzz input.
//!
//! # The allocation budget
//!
//! A reader must never size an allocation by a length read from its input: a hostile length
//! word asks for up to 2^64 bytes. [`Budget::enforce`] runs the code under test with two caps,
//! checked inside the allocator at the moment of the request (so a huge request aborts before the
//! system allocator sees it, and libFuzzer saves the input):
//!
//! - one allocation ≤ `SINGLE_FACTOR × input length + SINGLE_SLACK` (a vector of decoded records
//!   may be a few times the bytes they came from; the decoder's 1 MiB read windows and ReadAll's
//!   1 MiB entry-data chunks are the constant part);
//! - bytes live at once ≤ `LIVE_FACTOR × input length + LIVE_SLACK` above what was live before.
//!
//! A breach prints which cap and aborts (libFuzzer reports a crash with the input).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts live bytes and checks each request against the active budget.
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicBool = AtomicBool::new(false);
static SINGLE_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
static LIVE_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn breach(what: &str) -> ! {
    // No allocation here: the allocator is the caller.
    use std::io::Write;
    ACTIVE.store(false, Ordering::SeqCst);
    let _ = std::io::stderr().write_all(what.as_bytes());
    std::process::abort();
}

fn account(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    if ACTIVE.load(Ordering::Relaxed) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        PEAK.fetch_max(live, Ordering::Relaxed);
        if size > SINGLE_CAP.load(Ordering::Relaxed) {
            breach("fuzz budget: one allocation larger than the input's length allows\n");
        }
        if live > LIVE_CAP.load(Ordering::Relaxed) {
            breach("fuzz budget: live bytes beyond what the input's length allows\n");
        }
    }
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            account(new_size - layout.size());
            // The new block is one allocation of `new_size`.
            if ACTIVE.load(Ordering::Relaxed) && new_size > SINGLE_CAP.load(Ordering::Relaxed) {
                breach("fuzz budget: one allocation larger than the input's length allows\n");
            }
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// The allocation caps for one input.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub single_factor: usize,
    pub single_slack: usize,
    pub live_factor: usize,
    pub live_slack: usize,
}

/// Ends the budget when the run returns or unwinds.
struct Deactivate;

impl Drop for Deactivate {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

/// What a run allocated.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub largest: usize,
    pub peak_above_base: usize,
}

const MIB: usize = 1 << 20;

impl Budget {
    /// Parsers of bytes (WAL, `.snap`, payloads, scripts, lock files, bbolt pages).
    pub const READER: Budget = Budget {
        single_factor: 16,
        single_slack: 4 * MIB,
        live_factor: 64,
        live_slack: 16 * MIB,
    };

    /// The whole verify pipeline (raft-rs replay, MVCC model, per-member reports).
    pub const PIPELINE: Budget = Budget {
        single_factor: 16,
        single_slack: 8 * MIB,
        live_factor: 256,
        live_slack: 64 * MIB,
    };

    /// Runs `f` with the caps for an input of `input_len` bytes.
    pub fn enforce<R>(self, input_len: usize, f: impl FnOnce() -> R) -> (R, Usage) {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            // A failed assertion's report (message, backtrace) is not the code under test.
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                ACTIVE.store(false, Ordering::SeqCst);
                report(info)
            }));
        });
        let base = LIVE.load(Ordering::SeqCst);
        let single = input_len
            .saturating_mul(self.single_factor)
            .saturating_add(self.single_slack);
        let live = input_len
            .saturating_mul(self.live_factor)
            .saturating_add(self.live_slack)
            .saturating_add(base);
        SINGLE_CAP.store(single, Ordering::SeqCst);
        LIVE_CAP.store(live, Ordering::SeqCst);
        PEAK.store(base, Ordering::SeqCst);
        LARGEST.store(0, Ordering::SeqCst);
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = Deactivate;
        let result = f();
        drop(guard);
        let usage = Usage {
            largest: LARGEST.load(Ordering::SeqCst),
            peak_above_base: PEAK.load(Ordering::SeqCst).saturating_sub(base),
        };
        (result, usage)
    }
}

/// The separator between files in a packed input: unlikely inside real WAL, `.snap` or db
/// bytes, easy for the fuzzer to insert or remove. `tools/fuzz/seeds.py` packs the seeds.
pub const SEPARATOR: &[u8] = b"\xffRRFUZZ\xfe";

/// A packed input's files, each `tag` (1 byte), `arg` (8 bytes, big-endian), then its bytes up to
/// the next separator. A part shorter than 9 bytes is skipped.
pub struct PackedFile<'a> {
    pub tag: u8,
    pub arg: u64,
    pub bytes: &'a [u8],
}

/// Splits `data` at [`SEPARATOR`].
pub fn unpack(data: &[u8]) -> Vec<PackedFile<'_>> {
    let mut parts = Vec::new();
    let mut rest = data;
    loop {
        let (part, next) = match find(rest, SEPARATOR) {
            Some(at) => (&rest[..at], Some(&rest[at + SEPARATOR.len()..])),
            None => (rest, None),
        };
        if part.len() >= 9 {
            let mut arg = [0u8; 8];
            arg.copy_from_slice(&part[1..9]);
            parts.push(PackedFile {
                tag: part[0],
                arg: u64::from_be_bytes(arg),
                bytes: &part[9..],
            });
        }
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Tags of a packed member directory.
pub const TAG_WAL: u8 = 0;
pub const TAG_SNAP: u8 = 1;
pub const TAG_DB: u8 = 2;

/// The path of a packed file inside member dir `/m` (`None`: a tag this format does not use).
/// WAL segments are named `wal_name(position, arg)`, `.snap` files `arg >> 32` (term) and
/// `arg & 0xffff_ffff` (index).
pub fn member_path(file: &PackedFile<'_>, wal_seq: u64) -> Option<String> {
    match file.tag % 4 {
        TAG_WAL => Some(format!(
            "/m/member/wal/{}",
            raft_replay::wal::name::wal_name(wal_seq, file.arg)
        )),
        TAG_SNAP => Some(format!(
            "/m/member/snap/{:016x}-{:016x}.snap",
            file.arg >> 32,
            file.arg & 0xffff_ffff
        )),
        TAG_DB => Some("/m/member/snap/db".to_string()),
        _ => None,
    }
}

/// A member directory in memory from a packed input; `/m` is its path.
pub fn member_fs(data: &[u8]) -> raft_replay::MemFs {
    let mut fs = raft_replay::MemFs::default();
    let mut seq = 0;
    for file in unpack(data) {
        if let Some(path) = member_path(&file, seq) {
            if file.tag % 4 == TAG_WAL {
                seq += 1;
            }
            fs.insert(path, bytes::Bytes::copy_from_slice(file.bytes));
        }
    }
    fs
}

/// A WAL directory in memory from a packed input: every part is a segment, in order
/// (`wal_name(position, arg)`), whatever its tag. `/m` is the member path.
pub fn wal_fs(data: &[u8]) -> raft_replay::MemFs {
    let mut fs = raft_replay::MemFs::default();
    for (seq, file) in unpack(data).into_iter().enumerate() {
        let name = raft_replay::wal::name::wal_name(seq as u64, file.arg);
        fs.insert(
            format!("/m/member/wal/{name}"),
            bytes::Bytes::copy_from_slice(file.bytes),
        );
    }
    fs
}

/// Every WAL error names a segment that exists and a byte offset inside it (the end of the file
/// at most), except the outcomes about the directory as a whole.
pub fn assert_wal_error_located(
    error: &raft_replay::wal::WalError,
    fs: &raft_replay::MemFs,
    wal_dir: &str,
) {
    use raft_replay::wal::WalErrorKind as K;
    let whole_dir = matches!(
        error.kind,
        K::NoWalFiles | K::FileNotFound { .. } | K::SnapshotNotFound { .. } | K::Io { .. }
    );
    let Some(segment) = &error.location.segment else {
        assert!(whole_dir, "WAL error without a segment: {error:?}");
        return;
    };
    let path = std::path::Path::new(wal_dir).join(segment);
    let len = fs
        .files
        .get(&path)
        .unwrap_or_else(|| panic!("WAL error names segment {segment}, not a file: {error:?}"))
        .len() as u64;
    if whole_dir {
        return;
    }
    let offset = error
        .location
        .offset
        .unwrap_or_else(|| panic!("WAL error without a byte offset: {error:?}"));
    assert!(
        offset <= len,
        "WAL error at byte {offset} of a {len}-byte segment: {error:?}"
    );
}
