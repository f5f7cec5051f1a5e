//! The backend db reader on every corpus member (HashKV, revision, compact revision and
//! consistent index equal to what etcd reported at the manifest's last checkpoint), on
//! `snapshot save` files, and on damaged copies: each damage gives its typed finding and exit 1,
//! never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use raft_replay::backend::page::{le16, le32, le64, BRANCH_PAGE, LEAF_PAGE};
use raft_replay::backend::{Damage, Db, DbError, DbReport, Walker};
use raft_replay::fsio::{MemFs, RealFs};
use raft_replay::mvcc::EtcdVersion;

fn report(fs: &dyn raft_replay::fsio::ReadOnlyFs, path: &Path) -> DbReport {
    DbReport::build(fs, path, 0, EtcdVersion::default()).expect("db readable")
}

fn db_file(member: &Path) -> PathBuf {
    member.join("member").join("snap").join("db")
}

#[test]
fn every_corpus_member_matches_etcd() {
    let mut checked_live = 0;
    for capture in common::captures() {
        let manifest = common::manifest(&capture);
        let last = manifest["checkpoints"]
            .as_array()
            .and_then(|c| c.last())
            .expect("checkpoints");
        for member in common::members(&capture) {
            let name = member.file_name().unwrap().to_string_lossy().into_owned();
            let r = report(&RealFs, &member);
            assert!(r.findings.is_empty(), "{capture}/{name}: {:?}", r.findings);
            assert!(!r.meta_newer_lost);
            // etcd 3.5 stores the term of the entry at the consistent index beside it (its
            // `UnsafeUpdateConsistentIndex`); 3.4 stores no term.
            let minor = common::etcd_minor(&capture);
            assert_eq!(r.schema, Some(minor.as_str()), "{capture}/{name}");
            let expected_term = match minor.as_str() {
                "3.4" => None,
                _ => common::entry_term(&member, r.consistent_index.expect("consistent index")),
            };
            assert_eq!(r.term, expected_term, "{capture}/{name} term");
            let ss = r.snapshot_status.expect("snapshot status");
            assert_eq!(ss.total_size, r.high_water_mark.unwrap() * 4096);
            let Some(live) = last["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name.as_str())
            else {
                continue; // removed member: checked against etcd's own code in diff_bbolt
            };
            assert_eq!(
                r.hash,
                live["hash"].as_u64().map(|h| h as u32),
                "{capture}/{name} hash"
            );
            assert_eq!(r.revision, live["revision"].as_i64(), "{capture}/{name}");
            assert_eq!(
                r.compact_revision,
                live["compact_revision"].as_i64(),
                "{capture}/{name}"
            );
            assert_eq!(
                r.consistent_index,
                live["raft_applied_index"].as_u64(),
                "{capture}/{name}"
            );
            assert_eq!(ss.revision, r.revision.unwrap(), "{capture}/{name}");
            checked_live += 1;
        }
    }
    assert!(checked_live >= 11, "{checked_live} live members checked");
}

/// The corpus db of cluster-a's first member, in memory.
fn sample_db() -> (MemFs, PathBuf, Vec<u8>) {
    let member = &common::members("cluster-a")[0];
    let bytes = std::fs::read(db_file(member)).unwrap();
    let path = PathBuf::from("/db");
    let mut fs = MemFs::default();
    fs.insert(&path, bytes.clone());
    (fs, path, bytes)
}

/// The biggest corpus db (cluster-b: overflow values, a multi-level key bucket).
fn big_db() -> Vec<u8> {
    let member = &common::members("cluster-b")[0];
    std::fs::read(db_file(member)).unwrap()
}

fn with(bytes: Vec<u8>) -> (MemFs, PathBuf) {
    let path = PathBuf::from("/db");
    let mut fs = MemFs::default();
    fs.insert(&path, bytes);
    (fs, path)
}

fn damages(r: &DbReport) -> Vec<&Damage> {
    r.findings
        .iter()
        .filter_map(|f| f.damage.as_ref().and_then(DbError::kind))
        .collect()
}

#[test]
fn snapshot_save_trailer_is_checked() {
    use sha2::Digest;
    let (_, _, bytes) = sample_db();
    let clean = report(&with(bytes.clone()).0, Path::new("/db"));
    let size = clean.high_water_mark.unwrap() as usize * 4096;
    let mut snap = bytes[..size].to_vec();
    let sum = sha2::Sha256::digest(&snap);
    snap.extend_from_slice(&sum);
    let r = report(&with(snap.clone()).0, Path::new("/db"));
    assert_eq!(r.snapshot_trailer, Some(true));
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.hash, clean.hash);
    assert_eq!(r.snapshot_status, clean.snapshot_status);
    let last = snap.len() - 1;
    snap[last] ^= 1;
    let r = report(&with(snap).0, Path::new("/db"));
    assert_eq!(r.snapshot_trailer, Some(false));
    assert!(matches!(damages(&r)[..], [Damage::ShaMismatch { .. }]));
}

/// Reachable pages of a clean db with their flags.
fn reachable_pages(bytes: &[u8]) -> Vec<(u64, u16)> {
    let (fs, path) = with(bytes.to_vec());
    let db = Db::open(&fs, &path).unwrap();
    let mut w = Walker::new(&db, true);
    w.mark_all(&db.root_bucket()).unwrap();
    let reached = w.reached.unwrap();
    (2..db.meta.hwm)
        .filter(|p| reached.contains(*p))
        .map(|p| (p, le16(bytes, p as usize * 4096 + 8).unwrap()))
        .collect()
}

#[test]
fn truncated_copies_are_findings() {
    let bytes = big_db();
    let hwm = {
        let (fs, path) = with(bytes.clone());
        let db = Db::open(&fs, &path).unwrap();
        db.meta.hwm as usize
    };
    for keep in [
        0,
        100,
        4096,
        4096 + 80,
        8192 + 100,
        3 * 4096,
        hwm * 4096 / 3,
        hwm * 4096 / 2,
        hwm * 4096 - 1,
    ] {
        let r = report(&with(bytes[..keep].to_vec()).0, Path::new("/db"));
        let d = damages(&r);
        assert!(!d.is_empty(), "truncated at {keep}: no finding");
        assert!(r.has_damage());
        assert!(
            d.iter()
                .any(|d| matches!(d, Damage::Truncated { .. } | Damage::NoValidMeta { .. })),
            "truncated at {keep}: {d:?}"
        );
    }
}

#[test]
fn zeroed_metas_are_findings() {
    let (_, _, bytes) = sample_db();
    let clean = report(&with(bytes.clone()).0, Path::new("/db"));
    let used = clean.meta_used.unwrap() as usize;
    for meta in [0usize, 1] {
        let mut b = bytes.clone();
        b[meta * 4096..(meta + 1) * 4096].fill(0);
        let r = report(&with(b).0, Path::new("/db"));
        assert!(
            damages(&r)
                .iter()
                .any(|d| matches!(d, Damage::MetaInvalid { meta: m, .. } if *m as usize == meta)),
            "meta {meta}: {:?}",
            r.findings
        );
        assert_eq!(r.meta_used, Some(1 - meta as u8));
        if meta != used {
            assert_eq!(
                r.hash, clean.hash,
                "the previous meta still reads the same tree"
            );
        }
    }
    let mut b = bytes.clone();
    b[..8192].fill(0);
    let r = report(&with(b).0, Path::new("/db"));
    assert!(matches!(damages(&r)[..], [Damage::NoValidMeta { .. }]));
    // A flipped checksum bit in the newest meta: the older one is used, newer reported lost.
    let mut b = bytes.clone();
    b[used * 4096 + 72] ^= 1;
    let r = report(&with(b).0, Path::new("/db"));
    assert_eq!(r.meta_used, Some(1 - used as u8));
    assert!(r.meta_newer_lost);
}

#[test]
fn damaged_pages_are_typed_findings() {
    let bytes = big_db();
    let pages = reachable_pages(&bytes);
    let leaf = pages.iter().find(|(_, f)| *f == LEAF_PAGE).unwrap().0 as usize;
    let branch = pages.iter().find(|(_, f)| *f == BRANCH_PAGE).unwrap().0 as usize;
    let hwm = {
        let (fs, path) = with(bytes.clone());
        let db = Db::open(&fs, &path).unwrap();
        db.meta.hwm
    };
    let check = |b: Vec<u8>, what: &str, ok: &dyn Fn(&Damage) -> bool| {
        let r = report(&with(b).0, Path::new("/db"));
        let d = damages(&r);
        assert!(d.iter().any(|d| ok(d)), "{what}: {:?}", r.findings);
        let e = r.findings.iter().find_map(|f| f.damage.clone()).unwrap();
        assert!(matches!(e, DbError::Damage { .. }));
    };
    // A flipped high bit in a leaf element's key size: the key leaves the page.
    let mut b = bytes.clone();
    b[leaf * 4096 + 16 + 8 + 3] ^= 0x40;
    check(b, "leaf ksize", &|d| {
        matches!(d, Damage::ElementOutOfPage { what: "key", .. })
    });
    // A flipped bit in a leaf's page id.
    let mut b = bytes.clone();
    b[leaf * 4096] ^= 0x04;
    check(b, "leaf id", &|d| matches!(d, Damage::IdMismatch { .. }));
    // A flipped bit in a branch element's child id (high bit: far beyond the high-water mark).
    let mut b = bytes.clone();
    b[branch * 4096 + 16 + 8 + 6] ^= 0x10;
    check(b, "branch child", &|d| {
        matches!(d, Damage::BeyondHighWater { .. })
    });
    // A flipped bit in a branch page's flags.
    let mut b = bytes.clone();
    b[branch * 4096 + 8] ^= 0x08;
    check(b, "branch flags", &|d| {
        matches!(d, Damage::UnexpectedFlags { .. })
    });
    // A page id out of range.
    let mut b = bytes.clone();
    b[branch * 4096 + 16 + 8..branch * 4096 + 16 + 16].copy_from_slice(&(hwm + 5).to_le_bytes());
    check(b, "out of range", &|d| {
        matches!(d, Damage::BeyondHighWater { .. })
    });
    // A cycle: a branch's child is the branch itself.
    let mut b = bytes.clone();
    b[branch * 4096 + 16 + 8..branch * 4096 + 16 + 16]
        .copy_from_slice(&(branch as u64).to_le_bytes());
    check(b, "cycle", &|d| matches!(d, Damage::ReachedTwice));
    // A child pointing at a meta page.
    let mut b = bytes.clone();
    b[branch * 4096 + 16 + 8..branch * 4096 + 16 + 16].copy_from_slice(&1u64.to_le_bytes());
    check(b, "meta child", &|d| {
        matches!(d, Damage::MetaReferenced { .. })
    });
    // Two keys swapped out of order: element 1's key offset pointed at element 0's key.
    let mut b = bytes.clone();
    let e0 = leaf * 4096 + 16;
    let pos0 = le32(&b, e0 + 4).unwrap();
    let ksize0 = le32(&b, e0 + 8).unwrap();
    let vsize0 = le32(&b, e0 + 12).unwrap();
    b[e0 + 16 + 4..e0 + 16 + 8].copy_from_slice(&(pos0 - 16).to_le_bytes());
    b[e0 + 16 + 8..e0 + 16 + 12].copy_from_slice(&ksize0.to_le_bytes());
    b[e0 + 16 + 12..e0 + 16 + 16].copy_from_slice(&vsize0.to_le_bytes());
    check(b, "order", &|d| {
        matches!(d, Damage::KeysNotAscending { .. })
    });
    assert!(le64(&bytes, branch * 4096).unwrap() == branch as u64);
}

#[test]
fn cli_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_raft-replay");
    let member = &common::members("cluster-c")[0];
    let out = Command::new(bin)
        .args(["db", "--format", "json"])
        .arg(member)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "page_size",
        "txid",
        "meta_used",
        "meta_newer_lost",
        "consistent_index",
        "term",
        "conf_state",
        "storage_version",
        "cluster_version",
        "revision",
        "compact_revision",
        "hash",
        "snapshot_status",
        "size_in_use",
        "buckets",
        "members",
        "removed_members",
        "leases",
        "alarms",
        "findings",
    ] {
        assert!(json.get(field).is_some(), "{field} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(db_file(member)).unwrap();
    bytes[..8192].fill(0);
    let damaged = dir.path().join("db");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = Command::new(bin).arg("db").arg(&damaged).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin)
        .arg("db")
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin)
        .args(["db", "--rev", "3"])
        .arg(member)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "compacted revision");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic (and never allocate from a count inside them: MemFs would
    /// abort on a multi-GB allocation).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        let _ = report(&with(bytes).0, Path::new("/db"));
    }

    /// Arbitrary damage (byte writes, a truncation) to a real db never panics.
    #[test]
    fn arbitrary_damage_never_panics(
        writes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (_, _, mut bytes) = sample_db();
        for (at, v) in writes {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Some(cut) = cut {
            let keep = cut.index(bytes.len());
            bytes.truncate(keep);
        }
        let _ = report(&with(bytes).0, Path::new("/db"));
    }
}

/// HashKV from the pass's digest (each `key`-bucket entry's CRC, concatenated for the entries
/// HashKV selects) equals a second walk of the bucket feeding HashKV's stream: at every revision
/// from below the compaction to past the current one, under 3.4.23's and 3.5.16+'s rules, on
/// every corpus db and on copies that resume a scheduled compaction at restore; and with the digests
/// spilled to their temporary file past a window of 4 entries.
#[test]
fn hashkv_from_the_digest_equals_a_second_walk() {
    use raft_replay::backend::etcd::{hash_kv, hash_kv_pass2, read_etcd, KeyBucketDigest};
    let check = |bytes: Vec<u8>, name: &str| -> (i64, i64, bool) {
        let (fs, path) = with(bytes);
        let db = Db::open(&fs, &path).unwrap();
        let mut bounds = (0, 0, false);
        for version in [EtcdVersion::V3_4_23, EtcdVersion::new(3, 5, 16)] {
            let read = read_etcd(&db, version).unwrap();
            let store = &read.restored.store;
            let (compact, current) = (store.compact_revision(), store.current_revision());
            assert_eq!(read.key_digest.len(), read.schema.buckets["key"], "{name}");
            // The same entries with a window of 4: all but the last few read back from the file.
            let mut spilled = KeyBucketDigest::with_limit(4);
            read.key_digest.iter().for_each(|e| spilled.push(e));
            assert_eq!(spilled.spilled(), spilled.len() / 4 * 4, "{name}");
            let mut revisions: Vec<i64> = (compact - 2..=current + 1).collect();
            revisions.extend([0, -1, 1]);
            for rev in revisions {
                let ours = hash_kv(&read.restored, &read.key_digest, rev).unwrap();
                let walked = hash_kv_pass2(&db, &read.restored, rev).unwrap();
                assert_eq!(
                    hash_kv(&read.restored, &spilled, rev).unwrap(),
                    ours,
                    "{name} {version:?} rev {rev}, digests spilled"
                );
                assert_eq!(
                    ours.as_ref().map_err(ToString::to_string),
                    walked.as_ref().map_err(ToString::to_string),
                    "{name} {version:?} rev {rev}"
                );
            }
            bounds = (
                compact,
                current,
                read.restored.summary.resumed_compaction.is_some(),
            );
        }
        bounds
    };
    let mut resumed = 0;
    for capture in common::captures() {
        for member in common::members(&capture) {
            let name = format!(
                "{capture}/{}",
                member.file_name().unwrap().to_string_lossy()
            );
            let bytes = std::fs::read(db_file(&member)).unwrap();
            let (compact, current, _) = check(bytes.clone(), &name);
            if current - compact >= 2 {
                let at = compact + (current - compact) / 2;
                if let Some(copy) = common::with_scheduled_compaction(&bytes, at) {
                    let (_, _, was_resumed) = check(copy, &format!("{name} scheduled {at}"));
                    assert!(was_resumed, "{name}: compaction at {at} resumed");
                    resumed += 1;
                }
            }
        }
    }
    assert!(resumed >= 4, "{resumed} copies with a resumed compaction");
}
