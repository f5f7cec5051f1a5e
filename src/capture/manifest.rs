//! The part of a capture's `manifest.json` a verification uses: where each member's data dir
//! is, and what was recorded for each at each checkpoint: in the bundled corpus what etcd
//! itself reported (`etcdctl endpoint status` and `endpoint hashkv`; `corpus/README.md`
//! documents every field), in a capture `raft-replay pack` made the replay's at packing time.
//! Other fields are ignored.

use std::path::{Component, Path};

use serde::Deserialize;

use super::CaptureError;

/// The manifest's fields read here; every one may be absent.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Manifest {
    #[serde(default)]
    pub members: Vec<ManifestMember>,
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ManifestMember {
    pub name: String,
    /// Relative to the archive's root; the name when absent.
    pub data_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Checkpoint {
    pub label: String,
    #[serde(default)]
    pub members: Vec<CheckpointMember>,
}

/// One member's `endpoint status` + `endpoint hashkv` at a checkpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckpointMember {
    pub name: String,
    /// `Status.raftAppliedIndex`: the index whose KV state `hash` covers.
    pub raft_applied_index: Option<u64>,
    /// `HashKV.hash` (null where etcd refused it: 3.4 learners).
    pub hash: Option<u32>,
    /// `Status.header.revision`.
    pub revision: Option<i64>,
    /// `HashKV.compact_revision` (-1: never compacted).
    pub compact_revision: Option<i64>,
}

impl Manifest {
    /// Reads `path`, if it exists. Its size is the file system's, not a field's.
    pub fn read(path: &Path) -> Result<Option<Manifest>, CaptureError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CaptureError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| CaptureError::Manifest {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        for member in &manifest.members {
            let dir = member.dir();
            if !is_plain_relative(Path::new(dir)) {
                return Err(CaptureError::Manifest {
                    path: path.to_path_buf(),
                    message: format!(
                        "member {}: data_dir {dir:?} is not a relative path inside the capture",
                        member.name
                    ),
                });
            }
        }
        Ok(Some(manifest))
    }

    /// The record for `member` at the latest checkpoint whose applied index is `index` and
    /// that has a HashKV, with that checkpoint's label.
    pub fn reported_at(&self, member: &str, index: u64) -> Option<(&str, &CheckpointMember)> {
        self.checkpoints.iter().rev().find_map(|checkpoint| {
            checkpoint
                .members
                .iter()
                .find(|m| {
                    m.name == member && m.raft_applied_index == Some(index) && m.hash.is_some()
                })
                .map(|m| (checkpoint.label.as_str(), m))
        })
    }
}

impl ManifestMember {
    pub fn dir(&self) -> &str {
        self.data_dir.as_deref().unwrap_or(&self.name)
    }
}

/// Names a directory below the capture's root: no root, no `..`, at least one name.
fn is_plain_relative(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)))
}
