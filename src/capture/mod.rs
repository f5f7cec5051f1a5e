//! A capture: the members of one etcd cluster, as a directory in the corpus layout
//! (`data.tar.gz` + `manifest.json`, `corpus/README.md`) or a plain directory holding member
//! data dirs. [`Capture::open`] finds the members (unpacking an archive into a private temp
//! dir: the capture's directory is only read); [`Capture::verify`] runs the one verify
//! pipeline on all of them together and compares each member's HashKV with what the manifest
//! recorded at a checkpoint with the same applied index (etcd's own report in the bundled
//! corpus; the replay's at packing time in a `raft-replay pack` capture).

mod archive;
mod manifest;
mod report;

use std::path::{Path, PathBuf};

pub use report::{CaptureReport, MemberOutcome, Recorded};

use crate::fsio::RealFs;
use crate::verify::{verify_named, VerifyError, VerifyOptions};
use manifest::Manifest;

/// How deep below a plain directory member data dirs are looked for.
const MAX_DEPTH: usize = 4;

/// Why a capture cannot be verified.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A file or directory of the capture cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// The path is not a directory.
    #[error("{0}: not a directory (a capture is a directory: data.tar.gz + manifest.json, or member data dirs)")]
    NotADirectory(PathBuf),
    /// No member data dir (a directory holding `member/wal`) in the capture.
    #[error("{0}: no member data dir (a directory holding member/wal) in this capture")]
    NoMembers(PathBuf),
    /// `data.tar.gz` cannot be unpacked, or holds something a capture does not (links, device
    /// files, names leading outside it).
    #[error("{archive}: {message}")]
    Archive {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `manifest.json` is not a manifest.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The manifest names a member whose data dir is not in the capture.
    #[error("{capture}: the manifest's member {member} has no data dir {data_dir:?} (holding member/wal)")]
    MissingMember {
        /// The capture directory.
        capture: PathBuf,
        /// The member's name in the manifest.
        member: String,
        /// Its `data_dir`.
        data_dir: String,
    },
    /// The verify pipeline could not give a verdict.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// The members of one cluster, ready to verify.
///
/// ```
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/cluster-e");
/// let capture = raft_replay::Capture::open(dir)?;
/// assert_eq!(capture.name(), "cluster-e");
/// let report = capture.verify()?;
/// report.assert_holds(); // panics with the report's text unless every check held
/// for member in &report.members {
///     // each member's HashKV, equal to the manifest's record where it has a checkpoint at the
///     // member's applied index (the bundled corpus records what etcd itself reported)
///     assert_ne!(member.agrees_with_manifest(), Some(false));
///     println!("{}: {:?}", member.name, member.hashkv);
/// }
/// # Ok::<(), raft_replay::CaptureError>(())
/// ```
pub struct Capture {
    name: String,
    dir: PathBuf,
    members: Vec<(String, PathBuf)>,
    manifest: Manifest,
    /// The unpacked archive, removed when the capture is dropped.
    _unpacked: Option<tempfile::TempDir>,
}

impl Capture {
    /// Opens the capture at `dir`: its `data.tar.gz` unpacked into a temp dir (removed when the
    /// `Capture` is dropped), or else the member data dirs below `dir` (up to four levels
    /// down). Members are the manifest's (`members[].data_dir`), in its order, when it lists
    /// them; otherwise every directory holding `member/wal`, sorted, named by its path
    /// relative to `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Capture, CaptureError> {
        let dir = dir.as_ref();
        let meta = std::fs::metadata(dir).map_err(|e| CaptureError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        if !meta.is_dir() {
            return Err(CaptureError::NotADirectory(dir.to_path_buf()));
        }
        let manifest = Manifest::read(&dir.join("manifest.json"))?.unwrap_or_default();
        let archive = dir.join("data.tar.gz");
        let unpacked = match archive.is_file() {
            true => Some(archive::unpack(&archive)?),
            false => None,
        };
        let root = unpacked.as_ref().map_or(dir, |t| t.path());
        let members = match manifest.members.is_empty() {
            false => manifest_members(dir, root, &manifest)?,
            true => discover_members(root, &capture_name(dir))?,
        };
        if members.is_empty() {
            return Err(CaptureError::NoMembers(dir.to_path_buf()));
        }
        Ok(Capture {
            name: capture_name(dir),
            dir: dir.to_path_buf(),
            members,
            manifest,
            _unpacked: unpacked,
        })
    }

    /// The capture's name: its directory's.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The capture directory as given to [`Capture::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Each member's name and data dir (inside the temp dir for an archive).
    pub fn members(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.members.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }

    /// [`Capture::verify_with`] the default options (strict, streamed, one worker per core).
    pub fn verify(&self) -> Result<CaptureReport, CaptureError> {
        self.verify_with(&VerifyOptions::default())
    }

    /// Every member through the verify pipeline together (what `raft-replay verify` does with
    /// all of them), findings named by member, then each member's HashKV against the record at the
    /// manifest's checkpoint with the same applied index.
    pub fn verify_with(&self, options: &VerifyOptions) -> Result<CaptureReport, CaptureError> {
        let cluster = verify_named(&RealFs, &self.members, options)?;
        Ok(CaptureReport::new(&self.name, cluster, &self.manifest))
    }
}

fn capture_name(dir: &Path) -> String {
    let named = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    named
        .or_else(|| {
            let full = std::fs::canonicalize(dir).ok()?;
            Some(full.file_name()?.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| dir.display().to_string())
}

fn is_member_dir(path: &Path) -> bool {
    path.join("member").join("wal").is_dir()
}

fn manifest_members(
    dir: &Path,
    root: &Path,
    manifest: &Manifest,
) -> Result<Vec<(String, PathBuf)>, CaptureError> {
    let mut members = Vec::new();
    for member in &manifest.members {
        let path = root.join(member.dir());
        if !is_member_dir(&path) {
            return Err(CaptureError::MissingMember {
                capture: dir.to_path_buf(),
                member: member.name.clone(),
                data_dir: member.dir().to_string(),
            });
        }
        members.push((member.name.clone(), path));
    }
    Ok(members)
}

/// Directories holding `member/wal` at most [`MAX_DEPTH`] below `root`, sorted by path; `root`
/// itself is one member named `root_name`. A symlink is a member when it leads to a member data
/// dir, and is never descended (no cycles).
fn discover_members(root: &Path, root_name: &str) -> Result<Vec<(String, PathBuf)>, CaptureError> {
    if is_member_dir(root) {
        return Ok(vec![(root_name.to_string(), root.to_path_buf())]);
    }
    let mut found = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| CaptureError::Io {
            path: dir.clone(),
            source: e,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if (kind.is_dir() || kind.is_symlink()) && is_member_dir(&path) {
                found.push(path);
            } else if kind.is_dir() && depth + 1 < MAX_DEPTH {
                stack.push((path, depth + 1));
            }
        }
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(root).unwrap_or(&path);
            let name: Vec<String> = name
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            (name.join("/"), path)
        })
        .collect())
}
