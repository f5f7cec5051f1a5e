//! A child process measured by `wait4`: wall time, CPU time (user + system) and peak RSS.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// One run of a child process: wall time, CPU time and peak RSS from `wait4`, its stdout.
pub struct Measured {
    pub wall: f64,
    pub cpu: f64,
    pub rss: u64,
    pub stdout: String,
}

fn timeval_s(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// [`measure_status`] of a child that must exit 0 (panics with its stderr otherwise).
pub fn measure(cmd: &mut Command, scratch: &Path) -> Measured {
    let (measured, code, stderr) = measure_status(cmd, scratch);
    assert!(code == Some(0), "{cmd:?} failed (exit {code:?}): {stderr}");
    measured
}

/// One run of `cmd`: the measurements, its exit code (`None`: killed by a signal), its stderr.
// The child is reaped by `wait4` (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn measure_status(cmd: &mut Command, scratch: &Path) -> (Measured, Option<i32>, String) {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    // Files, not pipes: nothing to drain while the child runs, so the wait is the child's alone.
    cmd.stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: all-zero is a valid `rusage` (integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our own unwaited child; `status` and `usage` outlive the call. std's
    // `Child` is not waited afterwards (dropping it does not wait).
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(rc, child.id() as libc::pid_t, "wait4");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let measured = Measured {
        wall,
        cpu: timeval_s(usage.ru_utime) + timeval_s(usage.ru_stime),
        // Linux reports kilobytes.
        rss: usage.ru_maxrss as u64 * 1024,
        stdout,
    };
    (measured, code, stderr)
}
