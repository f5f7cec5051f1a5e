//! Shared test support: the bundled corpus unpacked once per test binary into a tempdir, copies
//! to damage, and a tree fingerprint to prove inputs are left untouched.
#![allow(dead_code)]

pub mod damage;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of the captures under `corpus/` (directories holding a `data.tar.gz`). With
/// `RAFT_REPLAY_CAPTURES=cluster-d,cluster-e` in the environment, only those (each must exist):
/// a test that stops at its first failing capture then reports on the others too (the floors
/// some tests put on how much they compared assume the whole corpus, and fail under a filter).
pub fn captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_dir().join("corpus"))
        .expect("corpus/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("data.tar.gz").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "the bundled corpus has captures");
    if let Ok(only) = std::env::var("RAFT_REPLAY_CAPTURES") {
        let wanted: Vec<&str> = only
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        for name in &wanted {
            assert!(
                names.iter().any(|n| n == name),
                "RAFT_REPLAY_CAPTURES names {name}, which is not under corpus/"
            );
        }
        names.retain(|n| wanted.contains(&n.as_str()));
    }
    names
}

static UNPACKED: OnceLock<Mutex<HashMap<String, &'static Path>>> = OnceLock::new();

/// The capture unpacked once under cargo's target tmp dir and shared by every test binary (tests
/// that damage files work on their own copies). Unpacking goes to a private directory that is
/// renamed into place, so concurrent test binaries never see half an archive.
pub fn unpacked(capture: &str) -> &'static Path {
    let map = UNPACKED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = map.get(capture) {
        return path;
    }
    let archive = repo_dir().join("corpus").join(capture).join("data.tar.gz");
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("corpus");
    std::fs::create_dir_all(&root).expect("target tmp dir");
    // Keyed by the archive's size and mtime, so a regenerated corpus is unpacked afresh.
    let meta = std::fs::metadata(&archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    let stamp = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = root.join(format!("{capture}-{}-{stamp}", meta.len()));
    if !dir.is_dir() {
        let partial = tempfile::Builder::new()
            .prefix(&format!(".{capture}-"))
            .tempdir_in(&root)
            .expect("tempdir");
        let file = std::fs::File::open(&archive).unwrap();
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(partial.path())
            .expect("unpack corpus");
        let partial = partial.keep();
        if std::fs::rename(&partial, &dir).is_err() {
            // Another test binary got there first.
            let _ = std::fs::remove_dir_all(&partial);
        }
    }
    let path: &'static Path = Box::leak(dir.into_boxed_path());
    map.insert(capture.to_string(), path);
    path
}

pub fn manifest(capture: &str) -> serde_json::Value {
    let path = repo_dir()
        .join("corpus")
        .join(capture)
        .join("manifest.json");
    serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("manifest is JSON")
}

/// The etcd minor version ("3.4", "3.5") that last ran a capture's members: the manifest's
/// `etcd_version` (cluster-e started on 3.4.23 and ended on 3.5.30: "3.5").
pub fn etcd_minor(capture: &str) -> String {
    let version = manifest(capture)["etcd_version"]
        .as_str()
        .expect("manifest etcd_version")
        .to_string();
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => panic!("{capture}: etcd_version {version:?} is not MAJOR.MINOR.PATCH"),
    }
}

/// The term of the entry at raft index `index` in a member's log, as `dump` reads it.
pub fn entry_term(member: &Path, index: u64) -> Option<u64> {
    let (code, out, stderr) = run_cli(&["dump", member.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "dump {}: {stderr}", member.display());
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .find(|e| e["index"].as_u64() == Some(index))
        .and_then(|e| e["term"].as_u64())
}

/// Every member data dir of a capture (a directory holding `member/wal`), sorted: found in
/// the shared unpacked copy by the library's own discovery (`raft_replay::Capture`).
pub fn members(capture: &str) -> Vec<PathBuf> {
    let opened = raft_replay::Capture::open(unpacked(capture))
        .unwrap_or_else(|e| panic!("capture {capture}: {e}"));
    let found: Vec<PathBuf> = opened.members().map(|(_, p)| p.to_path_buf()).collect();
    assert!(!found.is_empty(), "capture {capture} has members");
    found
}

/// corpus/`capture` through the public entry point, as a user's test opens a capture (its
/// archive unpacked into a temp dir of its own, the manifest's checkpoints compared).
pub fn capture(capture: &str) -> raft_replay::Capture {
    raft_replay::Capture::open(repo_dir().join("corpus").join(capture))
        .unwrap_or_else(|e| panic!("capture {capture}: {e}"))
}

/// All members of all captures.
pub fn all_members() -> Vec<(String, PathBuf)> {
    captures()
        .into_iter()
        .flat_map(|c| members(&c).into_iter().map(move |m| (c.clone(), m)))
        .collect()
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A private copy of a member to damage.
pub fn copy_member(member: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(member, dir.path());
    dir
}

/// Path, size, CRC and mtime of every file below `dir`: equal before and after ⇒ untouched.
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
                out.insert(path, (0, 0, meta.modified().unwrap()));
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(
                    path,
                    (
                        bytes.len() as u64,
                        crc32c::crc32c(&bytes),
                        meta.modified().unwrap(),
                    ),
                );
            }
        }
    }
    out
}

/// Sorted `.wal` segment paths of a member data dir.
pub fn segments(member: &Path) -> Vec<PathBuf> {
    let wal = member.join("member").join("wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_raft-replay"))
}

/// Runs the CLI, returning (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    run_cli_env(args, &[])
}

/// [`run_cli`] with extra environment variables.
pub fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = std::process::Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run raft-replay");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Segment size of [`large_wal`].
pub const LARGE_SEGMENT: u64 = 6_000_000;

/// A WAL of segments several times the 1 MB reads of the decoder and the checks' walk: two cut
/// 6 MB segments of small entries and a preallocated last one ending with a 2.5 MB entry (a
/// frame longer than a read), as (names, bytes).
pub fn large_wal() -> (Vec<raft_replay::wal::name::SegmentName>, Vec<bytes::Bytes>) {
    use bytes::Bytes;
    use raft_replay::proto::raftpb::{Entry, HardState};
    use raft_replay::wal::name::parse_wal_name;
    use raft_replay::wal::writer::WalWriter;
    let mut writer = WalWriter::create_with_segment_size(b"meta", LARGE_SEGMENT);
    let mut i = 0u64;
    while writer.segments().len() < 3 || writer.segments()[2].bytes.len() < 2_000_000 {
        i += 1;
        let entry = Entry {
            r#type: 0,
            term: 1,
            index: i,
            data: Some(Bytes::from(vec![
                (i % 251) as u8;
                8_000 + (i as usize * 13) % 500
            ])),
        };
        let state = HardState {
            term: 1,
            vote: 1,
            commit: i - 1,
        };
        writer.save(&state, &[entry]);
    }
    let big = Entry {
        r#type: 0,
        term: 1,
        index: i + 1,
        data: Some(Bytes::from(vec![0x5a; 2_500_000])),
    };
    let mut crc = writer.running_crc();
    let frame = raft_replay::wal::writer::encode_record(
        &mut crc,
        raft_replay::proto::walpb::ENTRY_TYPE,
        Some(&prost::Message::encode_to_vec(&big)),
    );
    let mut files = writer.files(false);
    assert_eq!(files.len(), 3);
    let mut last = files[2].1.to_vec();
    last.extend_from_slice(&frame);
    last.resize(LARGE_SEGMENT as usize, 0);
    files[2].1 = Bytes::from(last);
    (
        files
            .iter()
            .map(|(n, _)| parse_wal_name(n).unwrap())
            .collect(),
        files.into_iter().map(|(_, b)| b).collect(),
    )
}

/// `MemFs` whose lengths overstate the files by `extra` bytes: files that shrank after `len`.
pub struct ShrunkFs {
    pub inner: raft_replay::fsio::MemFs,
    pub extra: u64,
}

impl raft_replay::fsio::ReadOnlyFs for ShrunkFs {
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn read(&self, path: &Path) -> std::io::Result<bytes::Bytes> {
        self.inner.read(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        Ok(self.inner.len(path)? + self.extra)
    }
    fn open_read(&self, path: &Path) -> std::io::Result<(Box<dyn std::io::Read + '_>, u64)> {
        let (reader, len) = self.inner.open_read(path)?;
        Ok((reader, len + self.extra))
    }
}

/// Damage for the window tests; positions wrap around the segment's length.
pub fn flip_bit(s: &mut [u8], at: usize, bit: u8) {
    if !s.is_empty() {
        let i = at % s.len();
        s[i] ^= 1 << bit;
    }
}

/// Zeroes the 512 bytes from `from` (clipped to the segment).
pub fn zero_sector_from(s: &mut [u8], from: usize) {
    let from = from.min(s.len());
    let to = (from + 512).min(s.len());
    s[from..to].fill(0);
}

/// Keeps the first `keep` bytes (wrapping around the length + 1).
pub fn truncate_wrapping(s: &mut Vec<u8>, keep: usize) {
    let keep = keep % (s.len() + 1);
    s.truncate(keep);
}

/// `names` and `bytes` paired as in-memory segments for `Decoder::from_segments`.
pub fn memory_segments(
    names: &[raft_replay::wal::name::SegmentName],
    bytes: &[bytes::Bytes],
) -> Vec<raft_replay::wal::decoder::Segment> {
    names
        .iter()
        .zip(bytes)
        .map(|(name, bytes)| raft_replay::wal::decoder::Segment {
            name: name.clone(),
            bytes: bytes.clone(),
        })
        .collect()
}

/// The Go reference program named by the environment variable `var` (set by `make test`), or
/// None with a note on stderr when it is unset: the differential tests then check nothing.
pub fn reference_tool(var: &str, make_target: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => {
            let path = if Path::new(&path).is_absolute() {
                path
            } else {
                repo_dir().join(path).display().to_string()
            };
            assert!(
                Path::new(&path).is_file(),
                "{var}={path} does not exist: run `make {make_target}`"
            );
            Some(path)
        }
        _ => {
            eprintln!("{var} not set; run {how}");
            None
        }
    }
}

/// A copy of `bytes` whose `meta/scheduledCompactRev` is moved to `at` (every copy of the key in
/// the file: stale ones sit in unreachable pages), so that the restore resumes a compaction.
pub fn with_scheduled_compaction(bytes: &[u8], at: i64) -> Option<Vec<u8>> {
    let key = b"scheduledCompactRev";
    let mut out = bytes.to_vec();
    let mut found = false;
    let mut i = 0;
    while let Some(pos) = out[i..].windows(key.len()).position(|w| w == key) {
        let v = i + pos + key.len();
        if out.get(v + 8) == Some(&b'_') {
            out[v..v + 8].copy_from_slice(&(at as u64).to_be_bytes());
            found = true;
        }
        i = v;
    }
    found.then_some(out)
}

/// etcd 3.5.30's server binary, the target of `gate --rehearse`: `RAFT_REPLAY_ETCD35` (set by
/// `make test`), else `target/etcd/3.5.30/usr/bin/etcd`, fetched with `tools/etcd-bin/fetch.sh
/// 3.5.30 sid` when missing. Panics when it cannot be had, unless `RAFT_REPLAY_ETCD35=skip`
/// (then None, said on stderr: the rehearsal tests check nothing).
pub fn etcd_35() -> Option<PathBuf> {
    static FETCHED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let var = std::env::var("RAFT_REPLAY_ETCD35").unwrap_or_default();
    if var == "skip" {
        eprintln!("RAFT_REPLAY_ETCD35=skip: the etcd 3.5.30 rehearsal is NOT checked");
        return None;
    }
    let path = match var.as_str() {
        "" => repo_dir().join("target/etcd/3.5.30/usr/bin/etcd"),
        p if Path::new(p).is_absolute() => PathBuf::from(p),
        p => repo_dir().join(p),
    };
    let _one_fetch = FETCHED.lock().unwrap_or_else(|e| e.into_inner());
    if !path.is_file() {
        let status = std::process::Command::new(repo_dir().join("tools/etcd-bin/fetch.sh"))
            .args(["3.5.30", "sid"])
            .status();
        assert!(
            path.is_file(),
            "etcd 3.5.30 is needed at {} and `tools/etcd-bin/fetch.sh 3.5.30 sid` did not provide it ({status:?}); run `make etcd35`, or set RAFT_REPLAY_ETCD35=skip to skip the rehearsal tests",
            path.display()
        );
    }
    Some(path)
}

/// The system's etcd 3.4 server and client (Debian 12's `etcd-server`/`etcd-client` 3.4.23,
/// installed by `make deps`), or None with `RAFT_REPLAY_ETCD34=skip` (said on stderr).
pub fn etcd_34() -> Option<(PathBuf, PathBuf)> {
    if std::env::var("RAFT_REPLAY_ETCD34").as_deref() == Ok("skip") {
        eprintln!("RAFT_REPLAY_ETCD34=skip: the checks on a live etcd 3.4 are NOT run");
        return None;
    }
    let find = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    let (Some(etcd), Some(etcdctl)) = (find("etcd"), find("etcdctl")) else {
        panic!("etcd 3.4 (etcd, etcdctl on PATH) is needed: `make deps` installs Debian's etcd-server and etcd-client, or set RAFT_REPLAY_ETCD34=skip");
    };
    let version = std::process::Command::new(&etcd)
        .arg("--version")
        .output()
        .expect("etcd --version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.contains("etcd Version: 3.4."),
        "{} is not etcd 3.4: {version}",
        etcd.display()
    );
    Some((etcd, etcdctl))
}

/// A free loopback port (bound and released: another process may take it first, rarely).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A single-member etcd on loopback in `data_dir`, killed when dropped.
pub struct LiveEtcd {
    pub child: std::process::Child,
    pub client_url: String,
    pub etcdctl: PathBuf,
}

impl LiveEtcd {
    pub fn start(etcd: &Path, etcdctl: &Path, data_dir: &Path) -> LiveEtcd {
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(data_dir.with_extension("log")).expect("etcd log");
        let mut command = std::process::Command::new(etcd);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["--name", "s1", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("s1={peer_url}")])
            .stdout(log.try_clone().expect("etcd log"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let live = LiveEtcd {
            child,
            client_url,
            etcdctl: etcdctl.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while live.ctl(&["endpoint", "health"]).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "etcd did not serve within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        live
    }

    /// etcdctl (v3 API) against this member: its stdout, or its stderr as the error.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let output = std::process::Command::new(&self.etcdctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.client_url, "--command-timeout", "10s"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// SIGTERM, then wait (etcd flushes its backend on a clean stop).
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for LiveEtcd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
