//! One test per reader outcome, each built from real captured files with targeted damage, run
//! through the CLI as a user would: exit code, finding kind, and its location.

mod common;

use std::path::{Path, PathBuf};

use common::damage::{self, member, records_of, RawRecord};

fn verify_json(paths: &[&Path]) -> (i32, serde_json::Value) {
    let mut args = vec!["verify", "--format", "json"];
    let strs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(strs.iter().map(String::as_str));
    let (code, stdout, stderr) = common::run_cli(&args);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify JSON ({e}): {stdout} {stderr}"));
    (code, json)
}

fn findings(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["findings"].as_array().unwrap().clone())
        .collect()
}

fn finding_of<'a>(all: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {all:#?}"))
}

#[test]
fn clean_captures_verify_with_exit_0_all_members_together() {
    for capture in common::captures() {
        let members = common::members(&capture);
        let paths: Vec<&Path> = members.iter().map(PathBuf::as_path).collect();
        let (code, report) = verify_json(&paths);
        assert_eq!(code, 0, "{capture}: {report:#}");
        assert_eq!(report["verdict"], "ok");
        let failures: Vec<_> = findings(&report)
            .into_iter()
            .filter(|f| f["severity"] != "warning")
            .collect();
        assert!(failures.is_empty(), "{capture}: {failures:#?}");
    }
}

#[test]
fn flipped_bit_names_segment_offset_and_raft_index() {
    // An entry record in the middle of the log, damaged inside its data.
    let d = damage::flipped_entry_bit();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.record_crc").clone();
    assert_eq!(f["severity"], "corruption");
    assert_eq!(f["segment"], d.file.as_deref().unwrap());
    assert_eq!(f["offset"], d.offset.unwrap());
    assert_eq!(f["raft_index"], d.raft_index.unwrap());
}

#[test]
fn torn_last_record_is_a_warning_and_etcd_would_truncate() {
    // The length word reached the disk, the body did not (zero from there to the end).
    let d = damage::torn_last_record();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 0, "{report:#}");
    let all = findings(&report);
    let torn = all
        .iter()
        .find(|f| f["kind"] == "wal.torn_tail")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(torn["severity"], "warning");
    assert_eq!(torn["segment"], d.file.as_deref().unwrap());
    assert!(torn["offset"].as_u64().unwrap() <= d.offset.unwrap());
}

#[test]
fn zeroed_sector_in_a_non_last_segment_is_corruption() {
    let d = damage::zeroed_sector_in_non_last_segment();
    let segment = d.file.as_deref().unwrap();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1, "{report:#}");
    let all = findings(&report);
    assert!(
        all.iter()
            .any(|f| f["segment"] == segment && f["severity"] == "corruption"),
        "{all:#?}"
    );
}

#[test]
fn zero_length_word_in_a_non_last_segment_names_the_skipped_bytes() {
    // A zero length word ends a segment for etcd: the rest of a middle segment is silently
    // skipped and only the next segment's crc record notices.
    let d = damage::zero_length_word_in_non_last_segment();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let all = findings(&report);
    let skipped = finding_of(&all, "wal.skipped_bytes");
    assert_eq!(skipped["segment"], d.file.as_deref().unwrap());
    assert_eq!(skipped["offset"], d.offset.unwrap());
    assert!(all.iter().any(|f| f["kind"] == "wal.crc_chain"), "{all:#?}");
}

#[test]
fn bit_flip_in_a_non_last_segment_is_corruption_without_torn_excuse() {
    let d = damage::bit_flip_in_non_last_segment();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let all = findings(&report);
    assert!(all.iter().all(|f| f["kind"] != "wal.torn_tail"));
    assert!(
        all.iter()
            .any(|f| f["segment"] == d.file.as_deref().unwrap()),
        "{all:#?}"
    );
}

#[test]
fn truncated_middle_segment_is_corruption() {
    let d = damage::truncated_middle_segment();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.unexpected_eof").clone();
    assert_eq!(f["segment"], d.file.as_deref().unwrap());
}

#[test]
fn oversized_length_word_is_corruption() {
    let d = damage::oversized_length_word();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.record_too_large").clone();
    assert_eq!(f["offset"], d.offset.unwrap());
}

#[test]
fn garbage_after_the_end_of_data_in_the_last_segment_is_ignored_like_etcd() {
    let d = damage::garbage_after_end_of_data();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn missing_first_segment_without_a_later_snapshot_record_cannot_boot() {
    // b1's snapshot records all sit in the first segment: without it etcd finds no snapshot to
    // start from and no segment starting at index 0 ("wal: file not found").
    let d = damage::missing_first_segment();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1, "{report:#}");
    finding_of(&findings(&report), "wal.segment_sequence");
}

#[test]
fn segment_sequence_gap_is_reported() {
    // Sequence 1 renamed to 2: etcd 3.4's isValidSeq treats a last sequence of 0 as unset, so
    // etcd reads every entry and boots (tests/diff_etcd.rs holds etcd to that).
    let b1 = member("cluster-b", "b1");
    let d = damage::sequence_gap_after_zero();
    let renamed_name = d.file.as_deref().unwrap();
    let first_index = d.raft_index.unwrap();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(
        code, 1,
        "a lost or renamed segment is still a failure: {report:#}"
    );
    let all = findings(&report);
    let f = finding_of(&all, "wal.segment_sequence").clone();
    assert_eq!(f["segment"], renamed_name);
    assert_eq!(f["raft_index"], first_index, "{f:#}");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("raft index {first_index}")),
        "{message}"
    );
    assert!(
        message.contains("etcd reads every segment and boots"),
        "{message}"
    );
    assert!(!message.contains("file not found"), "{message}");
    // The only finding: every entry was read, as etcd reads them.
    assert_eq!(all.len(), 1, "{all:#?}");
    let (_, summary) = verify_json(&[b1.as_path()]);
    for field in ["last_index", "entry_count"] {
        assert_eq!(
            report["members"][0][field], summary["members"][0][field],
            "{report:#}"
        );
    }
}

#[test]
fn truncated_newest_snap_is_skipped_with_a_warning() {
    // An older .snap matches a valid WAL snapshot record: etcd boots from it.
    let d = damage::truncated_newest_snap("cluster-a", "m1");
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 0, "{report:#}");
    let f = finding_of(&findings(&report), "snap.unusable").clone();
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["segment"], d.file.as_deref().unwrap());
}

#[test]
fn the_only_snap_of_a_member_behind_a_leader_snapshot_truncated_cannot_boot() {
    // m5 caught up from a leader snapshot: its WAL has a gap that only its .snap bridges. With
    // no .snap to load, etcd reads from {0,0} (LoadNewestAvailable: ErrNoSnapshot), whatever
    // snapshot records the WAL holds, and ReadAll stops at the gap.
    let d = damage::truncated_newest_snap("cluster-a", "m5");
    assert_eq!(damage::snap_files(d.path()).len(), 1);
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1, "{report:#}");
    let all = findings(&report);
    let gap = finding_of(&all, "wal.index_gap");
    assert_eq!(gap["severity"], "corruption");
    let message = gap["message"].as_str().unwrap();
    assert!(
        message.contains("[etcd: wal: slice bounds out of range]"),
        "{message}"
    );
    assert_eq!(report["members"][0]["read_from"]["index"], 0, "{report:#}");
    // etcd boots from no older snapshot: nothing says it does.
    assert!(
        all.iter()
            .all(|f| f["kind"] != "snap.unusable" && f["kind"] != "snap.missing"),
        "{all:#?}"
    );
}

#[test]
fn garbage_after_a_zero_length_word_is_damage_etcd_reads_past() {
    use raft_replay::wal::{DecoderMode, WalErrorKind};
    // The records of the non-last segment are intact and the CRC chain holds: etcd's
    // decodeRecord ends the segment at the zero word, never reads the bytes after it, and boots
    // with every entry. Still a failure finding, but no refusal.
    let d = damage::garbage_after_zero_word_in_non_last_segment();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1, "{report:#}");
    let all = findings(&report);
    let skipped = finding_of(&all, "wal.skipped_bytes");
    assert_eq!(skipped["severity"], "corruption");
    assert_eq!(skipped["segment"], d.file.as_deref().unwrap());
    assert_eq!(skipped["offset"], d.offset.unwrap());
    assert!(
        skipped["message"]
            .as_str()
            .unwrap()
            .contains("[etcd: none: etcd never reads these bytes"),
        "{skipped:#}"
    );
    let fs = raft_replay::fsio::RealFs;
    let files = raft_replay::member::MemberFiles::open(&fs, d.path()).unwrap();
    let read = raft_replay::member::read_member(&files, DecoderMode::Strict);
    assert!(
        read.contents.errors.is_empty(),
        "{:?}",
        read.contents.errors
    );
    assert!(
        matches!(
            read.contents.accepted_by_etcd[..],
            [raft_replay::wal::WalError {
                kind: WalErrorKind::SkippedBytes { .. },
                ..
            }]
        ),
        "{:?}",
        read.contents.accepted_by_etcd
    );
    assert!(read.etcd_boots(&files));
    let (_, clean) = verify_json(&[member("cluster-b", "b1").as_path()]);
    assert_eq!(
        report["members"][0]["entry_count"], clean["members"][0]["entry_count"],
        "{report:#}"
    );
    // Forensic mode reads into the bytes (a resync) and lists them with the other damage.
    let forensic = raft_replay::member::read_member(&files, DecoderMode::Forensic);
    assert!(
        forensic
            .contents
            .errors
            .iter()
            .any(|e| matches!(e.kind, WalErrorKind::SkippedBytes { .. })),
        "{:?}",
        forensic.contents.errors
    );
}

#[test]
fn a_record_ending_inside_a_varint_is_a_torn_tail_etcd_repairs() {
    // gogo's Unmarshal says io.ErrUnexpectedEOF for it: in the last segment wal.Repair
    // truncates the segment there and etcd boots without the later records.
    let d = damage::record_ending_inside_a_varint();
    let (code, report) = verify_json(&[d.path()]);
    let all = findings(&report);
    assert!(all.iter().all(|f| f["kind"] != "wal.proto"), "{all:#?}");
    let torn = finding_of(&all, "wal.torn_tail");
    assert_eq!(torn["severity"], "warning");
    assert_eq!(torn["offset"], d.offset.unwrap());
    assert!(
        torn["message"]
            .as_str()
            .unwrap()
            .contains("[etcd: unexpected EOF]"),
        "{torn:#}"
    );
    // The copy keeps m1's db, applied through 5510: after the repair the log ends far below
    // that, so the db is ahead of the log — the one failure, and a true one.
    let failures: Vec<_> = all
        .iter()
        .filter(|f| f["severity"] != "warning")
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(failures, ["db.consistent_index_beyond_log"], "{report:#}");
    assert_eq!(code, 1, "{report:#}");
    // The WAL alone is a torn tail etcd repairs.
    std::fs::remove_file(d.path().join("member/snap/db")).unwrap();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn snap_file_claims_follow_etcds_boot() {
    // ValidSnapshotEntries reads past an unknown record type (snapshot and state records only):
    // the .snap files whose records follow it are not orphans, etcd boots from the newest. Its
    // ReadAll then stops at the record: no claim that etcd boots from an older snapshot.
    let d = damage::unknown_record_type();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let all = findings(&report);
    let snap_claims: Vec<_> = all
        .iter()
        .filter(|f| f["kind"].as_str().unwrap().starts_with("snap."))
        .collect();
    assert!(snap_claims.is_empty(), "{snap_claims:#?}");
    // A CRC mismatch: ValidSnapshotEntries fails and etcd never looks at a .snap file.
    let d = damage::flipped_entry_bit();
    let (_, report) = verify_json(&[d.path()]);
    let all = findings(&report);
    assert!(
        all.iter()
            .all(|f| f["kind"] != "snap.missing" && f["kind"] != "snap.unusable"),
        "{all:#?}"
    );
}

#[test]
fn sequence_gap_after_a_later_segment_cannot_boot() {
    // Sequences 1 and 3: isValidSeq only lets a gap after sequence 0 through.
    let d = damage::sequence_gap_elsewhere();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1, "{report:#}");
    let f = finding_of(&findings(&report), "wal.segment_sequence").clone();
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("[etcd: wal: file not found]"), "{message}");
    assert!(
        message.contains(d.file.as_deref().unwrap()),
        "names the segment after the gap: {message}"
    );
}

#[test]
fn record_that_is_not_protobuf_is_corruption() {
    let d = damage::record_not_protobuf();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.proto").clone();
    assert_eq!(f["offset"], d.offset.unwrap());
}

#[test]
fn unknown_record_type_is_corruption() {
    let d = damage::unknown_record_type();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    finding_of(&findings(&report), "wal.unknown_record_type");
}

#[test]
fn entry_payload_that_does_not_decode_is_corruption() {
    let d = damage::undecodable_entry_payload();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    finding_of(&findings(&report), "wal.payload");
}

#[test]
fn entry_gap_is_reported_at_the_index_after_the_gap() {
    let d = damage::entry_index_gap();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1, "{report:#}");
    let f = finding_of(&findings(&report), "wal.index_gap").clone();
    assert_eq!(f["raft_index"], d.raft_index.unwrap());
}

#[test]
fn metadata_conflict_is_corruption() {
    let d = damage::metadata_conflict();
    let (code, report) = verify_json(&[d.path()]);
    assert_eq!(code, 1);
    finding_of(&findings(&report), "wal.metadata_conflict");
}

#[test]
fn snapshot_term_mismatch_at_the_start_index() {
    use raft_replay::wal::{DecoderMode, WalErrorKind};
    let m1 = member("cluster-a", "m1");
    let fs = raft_replay::fsio::RealFs;
    let files = raft_replay::member::MemberFiles::open(&fs, &m1).unwrap();
    let (valid, _, _) = files.boot_snapshot();
    let snap = valid.unwrap().snapshots.last().unwrap().clone();
    let read = files.read_from(snap.index, snap.term + 1, DecoderMode::Strict);
    assert!(
        matches!(read.errors[0].kind, WalErrorKind::SnapshotMismatch { .. }),
        "{:?}",
        read.errors
    );
    let read = files.read_from(snap.index + 1, snap.term, DecoderMode::Strict);
    assert!(
        !read.start_found,
        "no snapshot record at that index: etcd's ErrSnapshotNotFound"
    );
}

#[test]
fn forensic_mode_lists_every_bad_record() {
    let m1 = member("cluster-a", "m1");
    let bytes = std::fs::read(&common::segments(&m1)[0]).unwrap();
    let entries: Vec<RawRecord> = records_of(&bytes)
        .into_iter()
        .filter(|r| r.record.r#type == 2)
        .collect();
    let victims = [
        entries[100].clone(),
        entries[2000].clone(),
        entries[4000].clone(),
    ];
    let copy = damage::damaged(&m1, -1, |b| {
        for v in &victims {
            b[v.offset + v.frame_len - 9] ^= 0x20;
        }
    });
    let (code, stdout, _) = common::run_cli(&[
        "verify",
        "--forensic",
        "--format",
        "json",
        copy.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let crc: Vec<u64> = findings(&report)
        .iter()
        .filter(|f| f["kind"] == "wal.record_crc")
        .map(|f| f["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        crc,
        victims.iter().map(|v| v.offset as u64).collect::<Vec<_>>()
    );
    // Strict mode stops at the first.
    let (_, strict) = verify_json(&[copy.path()]);
    assert_eq!(
        findings(&strict)
            .iter()
            .filter(|f| f["kind"] == "wal.record_crc")
            .count(),
        1
    );
}

/// etcd's raft loop saves entries above a snapshot index before the apply loop writes that
/// snapshot's record. cluster-c's c4 joined through a leader snapshot (its WAL cannot be read
/// from the start) and then took local snapshots of its own: it is read from the newest one,
/// whose record follows higher entries, and must re-execute and verify clean, as etcd boots it.
#[test]
fn a_member_read_from_a_snapshot_whose_record_follows_higher_entries_verifies_clean() {
    let manifest = common::manifest("cluster-c");
    let c4 = manifest["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "c4")
        .expect("c4 in the manifest");
    let (code, report) = verify_json(&[member("cluster-c", "c4").as_path()]);
    assert_eq!(code, 0, "{report:#}");
    let m = &report["members"][0];
    assert!(findings(&report).is_empty(), "{report:#}");
    let start = m["read_from"]["index"].as_u64().unwrap();
    assert!(start > 0, "c4 is read from a snapshot: {m:#}");
    let record = c4["wal_summary"]["snapshot_records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["index"] == start)
        .unwrap_or_else(|| panic!("no WAL snapshot record at {start}"));
    assert!(
        record["preceding_higher_entries"].as_u64().unwrap() > 0,
        "the capture no longer has the shape: {record:#}"
    );
    // Every batch after the snapshot was re-executed, up to the last entry.
    assert!(
        m["replay"]["follower_batches"].as_u64().unwrap() > 0,
        "{m:#}"
    );
    assert_eq!(m["replay"]["applied_index"], m["last_index"], "{m:#}");
}
