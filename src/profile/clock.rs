//! Wall and CPU clocks for phase boundaries, and the process's peak RSS.
//!
//! CPU time is this thread's (`CLOCK_THREAD_CPUTIME_ID`): the workload is single-threaded, and a
//! thread clock is not disturbed by the profiler's symbolisation or other threads. The sampler's
//! achieved rate is computed against process CPU time (`RUSAGE_SELF`), which is what
//! `ITIMER_PROF` counts.

use std::time::{Duration, Instant};

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
}
