//! Helpers shared by the benchmarks that run on the bundled captures.

use std::path::PathBuf;
use std::process::Command;

#[allow(dead_code)]
pub mod child;
#[allow(dead_code)]
pub mod jobs;

/// The capture `corpus/<capture>/data.tar.gz` unpacked once under `target/bench-corpus/<capture>`
/// (a copy: the archive is never touched). Unpacked into a sibling first and renamed, so an
/// interrupted run never leaves a half-unpacked capture behind for the next one.
pub fn unpack(capture: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-corpus");
    let dir = root.join(capture);
    if dir.exists() {
        return dir;
    }
    let partial = root.join(format!(".{capture}-{}", std::process::id()));
    std::fs::create_dir_all(&partial).expect("create target/bench-corpus");
    let archive = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(capture)
        .join("data.tar.gz");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&partial)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar xzf {}", archive.display());
    if std::fs::rename(&partial, &dir).is_err() {
        // Another bench unpacked it meanwhile.
        let _ = std::fs::remove_dir_all(&partial);
    }
    dir
}
