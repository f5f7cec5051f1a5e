//! One test per reader outcome, each built from real captured files with targeted damage, run
//! through the CLI as a user would: exit code, finding kind, and its location.

mod common;

use std::path::{Path, PathBuf};

use raft_replay::proto::walpb::Record;
use raft_replay::wal::frame::decode_frame_size;
use raft_replay::wal::writer::encode_records;

/// A record as found in a segment file.
#[derive(Clone, Debug)]
struct RawRecord {
    offset: usize,
    frame_len: usize,
    record: Record,
}

/// Walks the frames of a segment up to the first zero length word.
fn records_of(bytes: &[u8]) -> Vec<RawRecord> {
    use prost::Message;
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
        if word == 0 {
            break;
        }
        let (len, pad) = decode_frame_size(word);
        let record = Record::decode(&bytes[offset + 8..offset + 8 + len as usize]).unwrap();
        let frame_len = 8 + (len + pad) as usize;
        out.push(RawRecord {
            offset,
            frame_len,
            record,
        });
        offset += frame_len;
    }
    out
}

fn entry_index(record: &Record) -> Option<u64> {
    use prost::Message;
    (record.r#type == 2).then(|| {
        raft_replay::proto::raftpb::Entry::decode(record.data.clone().unwrap())
            .unwrap()
            .index
    })
}

fn member(capture: &str, name: &str) -> PathBuf {
    common::members(capture)
        .into_iter()
        .find(|m| m.ends_with(name))
        .unwrap_or_else(|| panic!("{capture}/{name}"))
}

/// A damaged copy: `damage` gets the bytes of segment `segment_pos` (0 = first, -1 = last).
fn damaged(
    member: &Path,
    segment_pos: isize,
    damage: impl FnOnce(&mut Vec<u8>),
) -> (tempfile::TempDir, String) {
    let copy = common::copy_member(member);
    let segments = common::segments(copy.path());
    let index = if segment_pos < 0 {
        segments.len() as isize + segment_pos
    } else {
        segment_pos
    } as usize;
    let path = &segments[index];
    let mut bytes = std::fs::read(path).unwrap();
    damage(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
    (
        copy,
        path.file_name().unwrap().to_string_lossy().into_owned(),
    )
}

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
    let m1 = member("cluster-a", "m1");
    let bytes = std::fs::read(&common::segments(&m1)[0]).unwrap();
    let records = records_of(&bytes);
    // An entry record in the middle of the log, damaged inside its data.
    let target = records
        .iter()
        .filter(|r| r.record.r#type == 2)
        .nth(3000)
        .unwrap()
        .clone();
    let index = entry_index(&target.record).unwrap();
    let (copy, segment) = damaged(&m1, -1, |b| b[target.offset + target.frame_len - 9] ^= 0x04);
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.record_crc").clone();
    assert_eq!(f["severity"], "corruption");
    assert_eq!(f["segment"], segment);
    assert_eq!(f["offset"], target.offset as u64);
    assert_eq!(f["raft_index"], index);
}

#[test]
fn torn_last_record_is_a_warning_and_etcd_would_truncate() {
    let m1 = member("cluster-a", "m1");
    let bytes = std::fs::read(&common::segments(&m1)[0]).unwrap();
    let records = records_of(&bytes);
    let last = records.last().unwrap().clone();
    let end = last.offset + last.frame_len;
    // The length word reached the disk, the body did not (zero from there to the end).
    let (copy, segment) = damaged(&m1, -1, |b| b[last.offset + 8..end].fill(0));
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 0, "{report:#}");
    let all = findings(&report);
    let torn = all
        .iter()
        .find(|f| f["kind"] == "wal.torn_tail")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(torn["severity"], "warning");
    assert_eq!(torn["segment"], segment);
    assert!(torn["offset"].as_u64().unwrap() <= last.offset as u64);
}

#[test]
fn zeroed_sector_in_a_non_last_segment_is_corruption() {
    let b1 = member("cluster-b", "b1");
    let (copy, segment) = damaged(&b1, 0, |b| {
        let at = b.len() / 2 / 512 * 512;
        b[at..at + 512].fill(0);
    });
    let (code, report) = verify_json(&[copy.path()]);
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
    let b1 = member("cluster-b", "b1");
    let bytes = std::fs::read(&common::segments(&b1)[0]).unwrap();
    let records = records_of(&bytes);
    let victim = records[records.len() / 2].clone();
    let (copy, segment) = damaged(&b1, 0, |b| b[victim.offset..victim.offset + 8].fill(0));
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    let all = findings(&report);
    let skipped = finding_of(&all, "wal.skipped_bytes");
    assert_eq!(skipped["segment"], segment);
    assert_eq!(skipped["offset"], victim.offset as u64);
    assert!(all.iter().any(|f| f["kind"] == "wal.crc_chain"), "{all:#?}");
}

#[test]
fn bit_flip_in_a_non_last_segment_is_corruption_without_torn_excuse() {
    let b1 = member("cluster-b", "b1");
    let (copy, segment) = damaged(&b1, 0, |b| {
        let at = b.len() / 3;
        b[at] ^= 0x01;
    });
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    let all = findings(&report);
    assert!(all.iter().all(|f| f["kind"] != "wal.torn_tail"));
    assert!(all.iter().any(|f| f["segment"] == segment), "{all:#?}");
}

#[test]
fn truncated_middle_segment_is_corruption() {
    let b1 = member("cluster-b", "b1");
    let (copy, segment) = damaged(&b1, 0, |b| {
        let keep = b.len() - 100;
        b.truncate(keep);
    });
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.unexpected_eof").clone();
    assert_eq!(f["segment"], segment);
}

#[test]
fn oversized_length_word_is_corruption() {
    let m1 = member("cluster-a", "m1");
    let bytes = std::fs::read(&common::segments(&m1)[0]).unwrap();
    let last = records_of(&bytes).last().unwrap().clone();
    let end = last.offset + last.frame_len;
    let (copy, _) = damaged(&m1, -1, |b| {
        b[end..end + 8].copy_from_slice(&(20u64 << 20).to_le_bytes())
    });
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    let f = finding_of(&findings(&report), "wal.record_too_large").clone();
    assert_eq!(f["offset"], end as u64);
}

#[test]
fn garbage_after_the_end_of_data_in_the_last_segment_is_ignored_like_etcd() {
    let m1 = member("cluster-a", "m1");
    let bytes = std::fs::read(&common::segments(&m1)[0]).unwrap();
    let last = records_of(&bytes).last().unwrap().clone();
    let end = last.offset + last.frame_len;
    let (copy, _) = damaged(&m1, -1, |b| b[end + 8..end + 4096].fill(0xab));
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn missing_first_segment_without_a_later_snapshot_record_cannot_boot() {
    // b1's snapshot records all sit in the first segment: without it etcd finds no snapshot to
    // start from and no segment starting at index 0 ("wal: file not found").
    let b1 = member("cluster-b", "b1");
    let copy = common::copy_member(&b1);
    std::fs::remove_file(&common::segments(copy.path())[0]).unwrap();
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "{report:#}");
    finding_of(&findings(&report), "wal.segment_sequence");
}

#[test]
fn segment_sequence_gap_is_reported() {
    let b1 = member("cluster-b", "b1");
    let copy = common::copy_member(&b1);
    let segments = common::segments(copy.path());
    // Sequence 1 renamed to 2: etcd 3.4's isValidSeq treats a last sequence of 0 as unset, so
    // etcd reads every entry and boots (tests/diff_etcd.rs holds etcd to that).
    let name = segments[1]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let (seq, index_hex) = name.trim_end_matches(".wal").split_once('-').unwrap();
    assert_eq!(seq, "0000000000000001");
    let first_index = u64::from_str_radix(index_hex, 16).unwrap();
    let renamed_name = format!("0000000000000002-{index_hex}.wal");
    std::fs::rename(&segments[1], segments[1].with_file_name(&renamed_name)).unwrap();
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(
        code, 1,
        "a lost or renamed segment is still a failure: {report:#}"
    );
    let all = findings(&report);
    let f = finding_of(&all, "wal.segment_sequence").clone();
    assert_eq!(f["segment"], renamed_name.as_str());
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
    let m5 = member("cluster-a", "m5");
    let copy = common::copy_member(&m5);
    let snap_dir = copy.path().join("member").join("snap");
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    snaps.sort();
    let newest = snaps.last().unwrap().clone();
    let len = std::fs::metadata(&newest).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    file.set_len(len / 2).unwrap();
    let (_, report) = verify_json(&[copy.path()]);
    let f = finding_of(&findings(&report), "snap.unusable").clone();
    assert_eq!(f["severity"], "warning");
    assert_eq!(
        f["segment"],
        newest.file_name().unwrap().to_string_lossy().as_ref()
    );
}

/// Re-encode the last segment from record `from` on, with `edit` applied, keeping a valid chain.
fn reencoded(
    member: &Path,
    edit: impl FnOnce(&mut Vec<(i64, Option<Vec<u8>>)>, usize),
) -> tempfile::TempDir {
    let (copy, _) = damaged(member, -1, |b| {
        let records = records_of(b);
        let from = records.len() / 2;
        // The chain value before record `from` is the stored CRC of the record before it.
        let mut crc = records[from - 1].record.crc;
        let mut list: Vec<(i64, Option<Vec<u8>>)> = records[from..]
            .iter()
            .map(|r| (r.record.r#type, r.record.data.as_ref().map(|d| d.to_vec())))
            .collect();
        edit(&mut list, from);
        let encoded = encode_records(&mut crc, list.iter().map(|(t, d)| (*t, d.as_deref())));
        let start = records[from].offset;
        let old_end = records.last().map(|r| r.offset + r.frame_len).unwrap();
        b[start..old_end.max(start + encoded.len())].fill(0);
        b[start..start + encoded.len()].copy_from_slice(&encoded);
    });
    copy
}

#[test]
fn unknown_record_type_is_corruption() {
    let m1 = member("cluster-a", "m1");
    let copy = reencoded(&m1, |list, _| list[2].0 = 9);
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    finding_of(&findings(&report), "wal.unknown_record_type");
}

#[test]
fn entry_payload_that_does_not_decode_is_corruption() {
    let m1 = member("cluster-a", "m1");
    let copy = reencoded(&m1, |list, _| {
        let i = list.iter().position(|(t, _)| *t == 2).unwrap();
        list[i].1 = Some(vec![0xff; 7]);
    });
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1);
    finding_of(&findings(&report), "wal.payload");
}

#[test]
fn entry_gap_is_reported_at_the_index_after_the_gap() {
    use prost::Message;
    let m1 = member("cluster-a", "m1");
    let mut removed_index = 0;
    let copy = reencoded(&m1, |list, _| {
        let i = list.iter().position(|(t, _)| *t == 2).unwrap();
        removed_index = raft_replay::proto::raftpb::Entry::decode(&list[i].1.clone().unwrap()[..])
            .unwrap()
            .index;
        list.remove(i);
    });
    let (code, report) = verify_json(&[copy.path()]);
    assert_eq!(code, 1, "removed {removed_index}: {report:#}");
    let f = finding_of(&findings(&report), "wal.index_gap").clone();
    assert_eq!(f["raft_index"], removed_index + 1);
}

#[test]
fn metadata_conflict_is_corruption() {
    let m1 = member("cluster-a", "m1");
    let copy = reencoded(&m1, |list, _| {
        list.insert(1, (1, Some(b"other metadata".to_vec())))
    });
    let (code, report) = verify_json(&[copy.path()]);
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
    let (copy, _) = damaged(&m1, -1, |b| {
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
