//! The public entry point for a user's own captures, `raft_replay::Capture`: a capture
//! directory (archive + manifest) and a plain directory of member data dirs give the same
//! verdict and HashKV; a HashKV other than the manifest recorded fails the report; the capture's directory
//! is only read; bad input is a typed error, never a panic.

mod common;

use std::path::Path;

use raft_replay::{Capture, CaptureError};

/// A copy of corpus/`capture` (archive + manifest) to alter.
fn capture_copy(capture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["data.tar.gz", "manifest.json"] {
        let from = common::repo_dir().join("corpus").join(capture).join(file);
        std::fs::copy(from, dir.path().join(file)).unwrap();
    }
    dir
}

#[test]
fn an_archive_and_its_unpacked_members_verify_alike_and_are_only_read() {
    let archived = common::repo_dir().join("corpus/cluster-e");
    let before = common::fingerprint(&archived);
    let capture = common::capture("cluster-e");
    let unpacked_to: Vec<_> = capture.members().map(|(_, p)| p.to_path_buf()).collect();
    assert!(unpacked_to.iter().all(|p| !p.starts_with(&archived)));
    let from_archive = capture.verify().unwrap();
    drop(capture);
    assert!(unpacked_to.iter().all(|p| !p.exists()), "temp dir removed");
    assert_eq!(
        common::fingerprint(&archived),
        before,
        "capture dir untouched"
    );

    // The same members as a plain directory (no manifest): found by their member/wal.
    let plain = common::unpacked("cluster-e");
    let before = common::fingerprint(plain);
    let capture = Capture::open(plain).unwrap();
    let names: Vec<&str> = capture.members().map(|(n, _)| n).collect();
    assert_eq!(names, ["e1", "e2", "e3"]);
    let from_dir = capture.verify().unwrap();
    assert_eq!(common::fingerprint(plain), before);
    assert!(from_archive.holds() && from_dir.holds());
    for name in ["e1", "e2", "e3"] {
        assert!(from_archive.hashkv(name).is_some());
        assert_eq!(from_archive.hashkv(name), from_dir.hashkv(name), "{name}");
    }
    // Without a manifest there is no record to compare with.
    assert!(from_dir.members.iter().all(|m| m.recorded.is_none()));
    assert!(from_archive
        .members
        .iter()
        .all(|m| m.agrees_with_manifest() == Some(true)));

    // A directory of links to member data dirs (backups kept elsewhere) is a capture too.
    let links = tempfile::tempdir().unwrap();
    for name in ["e1", "e2", "e3"] {
        std::os::unix::fs::symlink(plain.join(name), links.path().join(name)).unwrap();
    }
    std::os::unix::fs::symlink(links.path(), links.path().join("loop")).unwrap();
    let linked = Capture::open(links.path()).unwrap();
    assert_eq!(linked.members().map(|(n, _)| n).collect::<Vec<_>>(), names);
    assert_eq!(linked.verify().unwrap().hashkv("e3"), from_dir.hashkv("e3"));

    // One member data dir is a capture of one member.
    let one = Capture::open(plain.join("e2")).unwrap();
    assert_eq!(one.members().count(), 1);
    assert_eq!(one.verify().unwrap().hashkv("e2"), from_dir.hashkv("e2"));
}

#[test]
fn a_hashkv_other_than_the_manifests_fails_the_capture() {
    let dir = capture_copy("cluster-e");
    let path = dir.path().join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let last = manifest["checkpoints"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap();
    let e2 = last["members"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["name"] == "e2")
        .unwrap();
    let hash = e2["hash"].as_u64().unwrap();
    e2["hash"] = (hash ^ 1).into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();

    let report = Capture::open(dir.path()).unwrap().verify().unwrap();
    assert!(report.cluster.holds(), "the invariants still hold");
    assert!(!report.holds());
    let mismatches: Vec<&str> = report
        .manifest_mismatches()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(mismatches, ["e2"]);
    assert_eq!(report.hashkv("e2"), Some(hash as u32));
    let text = report.to_text();
    assert!(
        text.contains(&format!(
            "!= checkpoint final of the manifest: hashkv {}",
            hash ^ 1
        )),
        "{text}"
    );
    assert!(text.contains("FAILED"), "{text}");
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report.assert_holds()))
        .expect_err("assert_holds panics");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains(&text), "{message}");
    assert_eq!(report.to_json()["holds"], false);
}

fn open_err(path: &Path) -> CaptureError {
    match Capture::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

/// A gzip'd tar whose single entry is `header` (name written raw, unchecked) with `data`.
fn archive_with(name: &[u8], kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc").unwrap();
    }
    header.set_cksum();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.append(&header, data).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn bad_captures_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(matches!(
        open_err(&root.join("absent")),
        CaptureError::Io { .. }
    ));
    std::fs::write(root.join("file"), b"x").unwrap();
    assert!(matches!(
        open_err(&root.join("file")),
        CaptureError::NotADirectory(_)
    ));
    assert!(matches!(open_err(root), CaptureError::NoMembers(_)));

    let case = |name: &str, files: &[(&str, Vec<u8>)]| {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        for (file, bytes) in files {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        let before = common::fingerprint(&dir);
        let err = open_err(&dir);
        assert_eq!(common::fingerprint(&dir), before, "{name}: only read");
        assert!(!err.to_string().is_empty());
        err
    };
    let err = case("not-json", &[("manifest.json", b"{".to_vec())]);
    assert!(matches!(err, CaptureError::Manifest { .. }), "{err}");
    let outside = br#"{"members": [{"name": "m1", "data_dir": "../../etc"}]}"#.to_vec();
    let err = case("outside", &[("manifest.json", outside)]);
    assert!(
        err.to_string().contains("not a relative path inside"),
        "{err}"
    );
    let err = case(
        "not-gzip",
        &[("data.tar.gz", b"not a gzip stream".to_vec())],
    );
    assert!(matches!(err, CaptureError::Archive { .. }), "{err}");
    let link = archive_with(b"m1/member", tar::EntryType::Symlink, b"");
    let err = case("symlink", &[("data.tar.gz", link)]);
    assert!(err.to_string().contains("Symlink"), "{err}");
    let escape = archive_with(b"../escaped", tar::EntryType::Regular, b"data");
    let err = case("escape", &[("data.tar.gz", escape)]);
    assert!(matches!(err, CaptureError::Archive { .. }), "{err}");
    assert!(!root.join("escaped").exists());
    // The manifest names a member the archive does not hold.
    let mut files = vec![];
    for file in ["data.tar.gz", "manifest.json"] {
        files.push((
            file,
            std::fs::read(common::repo_dir().join("corpus/cluster-e").join(file)).unwrap(),
        ));
    }
    let mut manifest: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
    manifest["members"][0]["data_dir"] = "no-such-member".into();
    files[1].1 = serde_json::to_vec(&manifest).unwrap();
    let err = case("missing-member", &files);
    assert!(matches!(err, CaptureError::MissingMember { .. }), "{err}");
}
