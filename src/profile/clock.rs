//! Wall and CPU clocks for phase boundaries, and a file system wrapper that times every read.
//!
//! CPU time is this thread's (`CLOCK_THREAD_CPUTIME_ID`): the workload is single-threaded, and a
//! thread clock is not disturbed by the profiler's symbolisation or other threads. The sampler's
//! achieved rate is computed against process CPU time (`RUSAGE_SELF`), which is what
//! `ITIMER_PROF` counts.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fsio::ReadOnlyFs;

fn timespec_duration(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux and macOS.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time consumed by the calling thread.
pub fn thread_cpu() -> Duration {
    timespec_duration(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time (user + system) consumed by the whole process.
pub fn process_cpu() -> Duration {
    timespec_duration(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Peak resident set size of this process (`VmHWM`), in bytes, where `/proc` has it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A point in time on both clocks.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    pub wall: Instant,
    pub cpu: Duration,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    /// Time from `self` to now.
    pub fn elapsed(&self) -> Span {
        let now = Stamp::now();
        Span {
            wall: now.wall - self.wall,
            cpu: now.cpu.saturating_sub(self.cpu),
        }
    }
}

/// Wall and CPU time of something.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Span {
    pub wall: Duration,
    pub cpu: Duration,
}

impl std::ops::AddAssign for Span {
    fn add_assign(&mut self, rhs: Span) {
        self.wall += rhs.wall;
        self.cpu += rhs.cpu;
    }
}

impl std::ops::Add for Span {
    type Output = Span;
    fn add(mut self, rhs: Span) -> Span {
        self += rhs;
        self
    }
}

impl Span {
    pub fn saturating_sub(self, rhs: Span) -> Span {
        Span {
            wall: self.wall.saturating_sub(rhs.wall),
            cpu: self.cpu.saturating_sub(rhs.cpu),
        }
    }

    /// `self × fraction`, for apportioning a measured span by sample shares.
    pub fn scale(self, fraction: f64) -> Span {
        let fraction = fraction.clamp(0.0, 1.0);
        Span {
            wall: self.wall.mul_f64(fraction),
            cpu: self.cpu.mul_f64(fraction),
        }
    }
}

thread_local! {
    static READ_TIME: Cell<Span> = const { Cell::new(Span { wall: Duration::ZERO, cpu: Duration::ZERO }) };
    static READ_BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Time spent inside `read` calls on this thread (through [`TimedFs`]) so far, and bytes read.
pub fn read_totals() -> (Span, u64) {
    (READ_TIME.with(Cell::get), READ_BYTES.with(Cell::get))
}

fn add_read(span: Span, bytes: u64) {
    READ_TIME.with(|t| t.set(t.get() + span));
    READ_BYTES.with(|b| b.set(b.get() + bytes));
}

/// A [`ReadOnlyFs`] that adds the time of every read (whole files and streamed segment reads)
/// to this thread's read totals. Everything else is passed through.
pub struct TimedFs<'a> {
    pub inner: &'a dyn ReadOnlyFs,
}

struct TimedReader<R> {
    inner: R,
}

impl<R: io::Read> io::Read for TimedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Stamp::now();
        let result = self.inner.read(buf);
        add_read(start.elapsed(), *result.as_ref().unwrap_or(&0) as u64);
        result
    }
}

impl ReadOnlyFs for TimedFs<'_> {
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        let start = Stamp::now();
        let result = self.inner.read(path);
        add_read(
            start.elapsed(),
            result.as_ref().map(|b| b.len() as u64).unwrap_or(0),
        );
        result
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        self.inner.len(path)
    }

    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + '_>, u64)> {
        let (reader, len) = self.inner.open_read(path)?;
        Ok((Box::new(TimedReader { inner: reader }), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_clock_advances_with_work() {
        let start = Stamp::now();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let span = start.elapsed();
        assert!(span.cpu > Duration::ZERO);
        assert!(span.wall >= span.cpu / 2);
        assert!(process_cpu() >= span.cpu);
    }

    #[test]
    fn timed_fs_counts_streamed_reads() {
        let mut fs = crate::fsio::MemFs::default();
        fs.insert("/d/f", vec![7u8; 10_000]);
        let timed = TimedFs { inner: &fs };
        let (_, before) = read_totals();
        let (mut reader, len) = timed.open_read(Path::new("/d/f")).unwrap();
        let mut out = Vec::new();
        io::Read::read_to_end(&mut reader, &mut out).unwrap();
        assert_eq!(len, 10_000);
        assert_eq!(read_totals().1 - before, 10_000);
    }
}
