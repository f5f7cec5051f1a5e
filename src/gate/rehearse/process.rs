//! The rehearsal's edge: a copy of the member in a temporary dir, the target etcd started on it
//! in a process group of its own on loopback ports, polled until it serves, asked what it holds,
//! and stopped (SIGTERM to the group, SIGKILL after the stop timeout).
//!
//! Every process started is stopped: by `Running`'s `Drop` on every return path, and on
//! SIGINT/SIGTERM by a handler that SIGKILLs the running group and makes the wait return
//! [`RehearseError::Interrupted`]. Every wait has a deadline. The input is only read; the copy,
//! etcd's log and everything etcd writes live in the temporary dir, removed afterwards.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{request, Response};
use super::{
    classify, reasons, BootOutcome, BootRequest, EtcdHash, EtcdRunner, HashError, LineKind,
    Observed, RehearseError, RehearseOptions,
};

/// How often the boot is polled.
const POLL: Duration = Duration::from_millis(100);
/// Deadline of one HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines shown for a failed boot.
const KEEP_LINES: usize = 8;

/// Runs the real binary.
pub struct ProcessRunner {
    pub options: RehearseOptions,
}

impl EtcdRunner for ProcessRunner {
    fn boot(&self, request: &BootRequest) -> Result<BootOutcome, RehearseError> {
        let outcome = self.boot_once(request)?;
        // Another process may take a port between its probe and etcd's bind: once more.
        let port_taken = |log: &[String]| log.iter().any(|l| l.contains("address already in use"));
        match &outcome {
            BootOutcome::Refused { log, .. } if port_taken(log) => self.boot_once(request),
            _ => Ok(outcome),
        }
    }
}

impl ProcessRunner {
    fn boot_once(&self, request: &BootRequest) -> Result<BootOutcome, RehearseError> {
        if interrupted() {
            return Err(RehearseError::Interrupted);
        }
        let temp = tempfile::Builder::new()
            .prefix("raft-replay-rehearse-")
            .tempdir()
            .map_err(|e| RehearseError::Copy {
                what: request.input.clone(),
                message: e.to_string(),
            })?;
        let data = temp.path().join("data");
        copy_member(request, &data)?;
        let (client, peer) = (free_port()?, free_port()?);
        let log_path = temp.path().join("etcd.log");
        let mut running = self.spawn(request, &data, client, peer, &log_path)?;
        eprintln!(
            "raft-replay gate: rehearsing {}: {} (pid {}) on 127.0.0.1:{client}, copy in {}",
            request.label,
            self.options.etcd.display(),
            running.child.id(),
            data.display()
        );
        let mut log = LogTail::open(&log_path);
        let client = SocketAddr::from((Ipv4Addr::LOCALHOST, client));
        let waited = wait_until_served(&mut running, &mut log, client, self.options.boot_timeout)?;
        let served = match waited {
            Waited::Ready(took) => Ok(observe(client, request, took)),
            Waited::Failed(failure) => Err(failure),
        };
        running.stop();
        // The handler killed etcd mid-way: what was observed is not the member's.
        if interrupted() {
            return Err(RehearseError::Interrupted);
        }
        log.drain();
        Ok(match served {
            Err(failure) => failure.outcome(&log),
            // A panic or fatal line while it served or stopped blocks as one during the boot.
            Ok(_) if log.decisive == Some(LineKind::Fatal) => BootOutcome::Refused {
                why: "etcd logged a panic or fatal line while it served or stopped".into(),
                log: log.reasons(),
            },
            Ok(observed) => BootOutcome::Served(observed),
        })
    }

    fn spawn(
        &self,
        request: &BootRequest,
        data: &Path,
        client: u16,
        peer: u16,
        log_path: &Path,
    ) -> Result<Running, RehearseError> {
        let spawn_error = |e: std::io::Error| RehearseError::Spawn {
            etcd: self.options.etcd.clone(),
            message: e.to_string(),
        };
        let log = File::create(log_path).map_err(spawn_error)?;
        let log_err = log.try_clone().map_err(spawn_error)?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(&self.options.etcd);
        command
            .arg("--name")
            .arg(&request.label)
            .arg("--data-dir")
            .arg(data)
            .arg("--force-new-cluster")
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        // etcd reads every flag from an ETCD_* variable too: only the flags above apply.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(name);
            }
        }
        let child = command.spawn().map_err(spawn_error)?;
        RUNNING_GROUP.store(child.id() as i32, Ordering::SeqCst);
        Ok(Running {
            child,
            stop_timeout: self.options.stop_timeout,
            stopped: false,
        })
    }
}

/// Copies the member's WAL and snap dirs into `data/member/` (dirs 0700, as etcd wants them).
fn copy_member(request: &BootRequest, data: &Path) -> Result<(), RehearseError> {
    let member = data.join("member");
    copy_dir(&request.wal_dir, &member.join("wal"))?;
    match &request.snap_dir {
        Some(snap) => copy_dir(snap, &member.join("snap")),
        None => Ok(()),
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), RehearseError> {
    let error = |what: &Path, e: std::io::Error| RehearseError::Copy {
        what: what.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .map_err(|e| error(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| error(from, e))? {
        if interrupted() {
            return Err(RehearseError::Interrupted);
        }
        let entry = entry.map_err(|e| error(from, e))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| error(&path, e))?;
        }
    }
    Ok(())
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, RehearseError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| RehearseError::Ports(e.to_string()))
}

/// A started etcd, leader of its own process group; stopped when dropped.
struct Running {
    child: Child,
    stop_timeout: Duration,
    stopped: bool,
}

impl Running {
    /// The exit status once the child has exited (and been reaped): from then on its pid is no
    /// longer ours, so the signal handler forgets it.
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        if status.is_some() {
            RUNNING_GROUP.store(0, Ordering::SeqCst);
        }
        status
    }

    /// SIGTERM to the group, SIGKILL to it after the stop timeout; reaps the child. Signals go
    /// only to a group whose leader has not been reaped (its pid is still ours).
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        let group = self.child.id() as i32;
        if self.exited().is_none() {
            signal_group(group, libc::SIGTERM);
            let deadline = Instant::now() + self.stop_timeout;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.exited().is_none() {
                signal_group(group, libc::SIGKILL);
            }
        }
        RUNNING_GROUP.store(0, Ordering::SeqCst);
        let _ = self.child.wait();
        self.stopped = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(group: i32, signal: libc::c_int) {
    if group > 0 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// The group the signal handler kills (0: none).
static RUNNING_GROUP: AtomicI32 = AtomicI32::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    let group = RUNNING_GROUP.load(Ordering::SeqCst);
    // kill(2) and atomics are async-signal-safe.
    signal_group(group, libc::SIGKILL);
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether SIGINT or SIGTERM arrived while a [`SignalGuard`] was installed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// SIGINT and SIGTERM handled for the length of a rehearsal (the running etcd's group is
/// killed, [`interrupted`] turns true); the previous handlers restored when dropped.
pub struct SignalGuard {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    pub fn install() -> SignalGuard {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let mut previous = Vec::new();
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handler only
            // touches atomics and calls kill(2); `old` is written by sigaction.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut old) == 0 {
                    previous.push((signal, old));
                }
            }
        }
        SignalGuard { previous }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restores the sigaction sigaction itself returned.
            unsafe {
                libc::sigaction(*signal, old, std::ptr::null_mut());
            }
        }
    }
}

/// Why the wait for a served member ended without one.
enum Failure {
    Exited(ExitStatus),
    Logged(LineKind),
    TimedOut(Duration),
}

impl Failure {
    fn outcome(self, log: &LogTail) -> BootOutcome {
        let lines = log.reasons();
        match self {
            Failure::Exited(status) => BootOutcome::Refused {
                why: format!("etcd exited ({status}) before it served"),
                log: lines,
            },
            Failure::Logged(LineKind::IdRemoved) => BootOutcome::Removed { log: lines },
            Failure::Logged(_) => BootOutcome::Refused {
                why: "etcd logged a panic or fatal line before it served".into(),
                log: lines,
            },
            Failure::TimedOut(after) => BootOutcome::TimedOut { after, log: lines },
        }
    }
}

enum Waited {
    Ready(Duration),
    Failed(Failure),
}

/// Polls until `GET /health` says true, the process exits or logs a fatal line, or the timeout.
fn wait_until_served(
    running: &mut Running,
    log: &mut LogTail,
    client: SocketAddr,
    timeout: Duration,
) -> Result<Waited, RehearseError> {
    let start = Instant::now();
    loop {
        if interrupted() {
            return Err(RehearseError::Interrupted);
        }
        let _ = log.read_new();
        if let Some(kind) = log.decisive {
            return Ok(Waited::Failed(Failure::Logged(kind)));
        }
        if let Some(status) = running.exited() {
            return Ok(Waited::Failed(Failure::Exited(status)));
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(Waited::Failed(Failure::TimedOut(timeout)));
        }
        let health = request(client, "GET", "/health", None, left.min(HTTP_TIMEOUT));
        if health.is_ok_and(|r| healthy(&r)) {
            return Ok(Waited::Ready(start.elapsed()));
        }
        std::thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())));
    }
}

fn healthy(r: &Response) -> bool {
    r.status == 200
        && serde_json::from_str::<Value>(&r.body)
            .is_ok_and(|v| v.get("health").and_then(Value::as_str) == Some("true"))
}

/// Status, HashKV at the request's revision and the versions, from a member that serves.
fn observe(client: SocketAddr, request: &BootRequest, took: Duration) -> Observed {
    let post = |path: &str, body: String| call(client, "POST", path, Some(body));
    let status = post("/v3/maintenance/status", "{}".into());
    let hash = hash_kv(client, request.hash_revision);
    let version = call(client, "GET", "/version", None);
    let int = |v: &Value, path: &[&str]| -> Option<i64> {
        let field = path.iter().try_fold(v, |v, k| v.get(k))?;
        field
            .as_i64()
            .or_else(|| field.as_str().and_then(|s| s.parse().ok()))
    };
    let text = |v: &Result<Value, String>, key: &str| {
        v.as_ref()
            .ok()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string()
    };
    let (revision, applied) = match &status {
        Ok(s) => (
            int(s, &["header", "revision"]).unwrap_or(-1),
            int(s, &["raftAppliedIndex"]).unwrap_or(0) as u64,
        ),
        Err(_) => (-1, 0),
    };
    let hash = hash.and_then(
        |h| match (int(&h, &["hash"]), int(&h, &["compact_revision"])) {
            (Some(hash), compact) => Ok(EtcdHash {
                hash: hash as u32,
                compact_revision: compact.unwrap_or(0),
                at_revision: request.hash_revision,
            }),
            _ => Err(HashError::Failed(format!("no hash in {h}"))),
        },
    );
    Observed {
        revision,
        raft_applied_index: applied,
        hash,
        server_version: text(&version, "etcdserver"),
        cluster_version: text(&version, "etcdcluster"),
        boot_millis: took.as_millis() as u64,
    }
}

/// `HashKV` through the gateway: `/v3/maintenance/hashkv` (etcd 3.5+). etcd 3.4's gateway
/// registers HashKV and Hash under one path, `/v3/maintenance/hash` (3.4
/// `etcdserverpb/gw/rpc.pb.gw.go`), and Hash answers there (etcd 3.4.23: a hash of the whole db,
/// without `compact_revision`): HashKV cannot be had over 3.4's gateway.
fn hash_kv(client: SocketAddr, revision: i64) -> Result<Value, HashError> {
    let body = format!("{{\"revision\":{revision}}}");
    match call(client, "POST", "/v3/maintenance/hashkv", Some(body.clone())) {
        Ok(h) => Ok(h),
        Err(e) if e.ends_with("HTTP 404") => {
            let h = call(client, "POST", "/v3/maintenance/hash", Some(body))
                .map_err(HashError::Failed)?;
            match h.get("compact_revision") {
                Some(_) => Ok(h),
                None => Err(HashError::NoGateway(format!(
                    "{e}; /v3/maintenance/hash answers Hash (no compact_revision), not HashKV"
                ))),
            }
        }
        Err(e) => Err(HashError::Failed(e)),
    }
}

/// One request whose answer must be JSON with status 200; etcd's gRPC error message otherwise.
fn call(
    client: SocketAddr,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<Value, String> {
    let r = request(client, method, path, body.as_deref(), HTTP_TIMEOUT)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    if r.status == 404 {
        return Err(format!("{method} {path}: HTTP 404"));
    }
    let value: Value = serde_json::from_str(&r.body)
        .map_err(|e| format!("{method} {path}: HTTP {}: {e}: {:?}", r.status, r.body))?;
    if r.status != 200 {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(format!("{method} {path}: HTTP {}: {message}", r.status));
    }
    Ok(value)
}

/// etcd's log file, read forward as it grows: the notable lines (fatal, removal, error; at most
/// [`MAX_NOTABLE`]) and the last [`TAIL`] lines. Bounded whatever etcd writes.
struct LogTail {
    file: Option<File>,
    partial: Vec<u8>,
    notable: Vec<String>,
    tail: VecDeque<String>,
    decisive: Option<LineKind>,
    read: u64,
}

const MAX_LOG: u64 = 256 << 20;
const MAX_NOTABLE: usize = 64;
const TAIL: usize = 12;
const MAX_LINE: usize = 64 * 1024;

impl LogTail {
    fn open(path: &Path) -> LogTail {
        LogTail {
            file: File::open(path).ok(),
            partial: Vec::new(),
            notable: Vec::new(),
            tail: VecDeque::new(),
            decisive: None,
            read: 0,
        }
    }

    /// The lines that say why the boot failed.
    fn reasons(&self) -> Vec<String> {
        let tail: Vec<String> = self.tail.iter().cloned().collect();
        reasons(&self.notable, &tail, KEEP_LINES)
    }

    /// Reads what the stopped process left, up to [`MAX_LOG`] bytes in all.
    fn drain(&mut self) {
        while self.read_new() && self.read < MAX_LOG {}
    }

    /// Reads up to 16 chunks (a flood of output cannot hold the wait loop); true when there may
    /// be more.
    fn read_new(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        for _ in 0..16 {
            let n = match self.file.as_mut().map(|f| f.read(&mut chunk)) {
                Some(Ok(n)) if n > 0 => n,
                _ => return false,
            };
            self.read += n as u64;
            for &b in &chunk[..n] {
                if b == b'\n' || self.partial.len() >= MAX_LINE {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    self.line(line);
                }
                if b != b'\n' {
                    self.partial.push(b);
                }
            }
        }
        true
    }

    fn line(&mut self, line: String) {
        let kind = classify(&line);
        if matches!(kind, LineKind::Fatal | LineKind::IdRemoved) && self.decisive.is_none() {
            self.decisive = Some(kind);
        }
        if kind != LineKind::Other && self.notable.len() < MAX_NOTABLE {
            self.notable.push(line.clone());
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}
