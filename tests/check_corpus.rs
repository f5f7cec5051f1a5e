//! Real etcd 3.4 captures: every capture's members verified together are clean (library and
//! CLI, text / JSON / JUnit), and mutants made from them — by re-encoding their records with a
//! valid CRC chain, or by damaging their bytes — give exactly the expected finding.

mod check_support;
mod common;

use std::path::PathBuf;

use bytes::Bytes;
use check_support::*;
use raft_replay::check::{Severity, INVARIANTS};
use raft_replay::fsio::MemFs;
use raft_replay::proto::raftpb::ConfState;
use raft_replay::proto::walpb::ENTRY_TYPE;

fn member_dir(capture: &str, name: &str) -> PathBuf {
    corpus_members(capture)
        .into_iter()
        .find(|m| m.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("{capture} has no member {name}"))
}

/// All members of a capture installed as they are, except `replace`d ones.
fn capture_fs(capture: &str, replace: &[(&str, Member)]) -> (MemFs, Vec<PathBuf>) {
    let mut fs = MemFs::default();
    let mut paths = Vec::new();
    for dir in corpus_members(capture) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let path = match replace.iter().find(|(n, _)| *n == name) {
            Some((_, m)) => m.install(&mut fs, &name),
            None => install_dir(&mut fs, &dir, &name),
        };
        paths.push(path);
    }
    (fs, paths)
}

#[test]
fn every_capture_verified_together_is_clean() {
    for capture in common::captures() {
        let (fs, paths) = capture_fs(&capture, &[]);
        let findings = verify_fs(&fs, &paths);
        assert!(
            findings.is_empty(),
            "{capture}: a clean capture gives no finding at all:\n{}",
            show(&findings)
        );
    }
}

#[test]
fn every_capture_member_alone_is_clean() {
    for (capture, dir) in common::captures()
        .into_iter()
        .flat_map(|c| corpus_members(&c).into_iter().map(move |m| (c.clone(), m)))
    {
        let mut fs = MemFs::default();
        let path = install_dir(&mut fs, &dir, "m");
        let findings = verify_fs(&fs, &[path]);
        assert!(
            findings.is_empty(),
            "{capture} {}:\n{}",
            dir.display(),
            show(&findings)
        );
    }
}

#[test]
fn re_encoding_a_capture_unchanged_is_still_clean() {
    // The mutants below rely on this: re-encoding alone changes nothing a check sees.
    let m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    let (fs, paths) = capture_fs("cluster-a", &[("m1", m1)]);
    let findings = verify_fs(&fs, &paths);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn the_configuration_is_known_on_every_member_including_the_snapshot_learner() {
    let (fs, paths) = capture_fs("cluster-a", &[]);
    let reports = raft_replay::verify::verify_cluster(&fs, &paths, &Default::default())
        .unwrap()
        .members;
    let manifest = common::manifest("cluster-a");
    let last = manifest["checkpoints"].as_array().unwrap().last().unwrap();
    let mut expected: Vec<u64> = last["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_u64().unwrap())
        .collect();
    expected.sort_unstable();
    for report in &reports {
        let scan = &report.scan;
        if scan.log.last_index() < 5000 {
            continue; // the removed member
        }
        let config = scan
            .timeline
            .at(scan.timeline.applied_through)
            .unwrap_or_else(|| panic!("{}: configuration unknown", scan.member));
        let voters: Vec<u64> = config.voters.iter().copied().collect();
        assert_eq!(voters, expected, "{}", scan.member);
    }
}

#[test]
fn cli_exit_0_on_clean_captures_in_every_format() {
    for capture in common::captures() {
        let members: Vec<String> = corpus_members(&capture)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut args: Vec<&str> = vec!["verify"];
        args.extend(members.iter().map(String::as_str));
        let (code, stdout, stderr) = common::run_cli(&args);
        assert_eq!(code, 0, "{capture}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("OK: 0 failure(s), 0 warning(s)"),
            "{stdout}"
        );

        let mut json_args = args.clone();
        json_args.extend(["--format", "json"]);
        let (code, stdout, _) = common::run_cli(&json_args);
        assert_eq!(code, 0);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(json["verdict"], "ok");
        assert_eq!(json["members"].as_array().unwrap().len(), members.len());

        let mut junit_args = args.clone();
        junit_args.extend(["--format", "junit"]);
        let (code, stdout, _) = common::run_cli(&junit_args);
        assert_eq!(code, 0);
        let cases = stdout.matches("<testcase ").count();
        assert_eq!(
            cases,
            members.len() * INVARIANTS.len(),
            "one testcase per member × invariant"
        );
        assert!(stdout.contains("failures=\"0\""));
    }
}

#[test]
fn cli_exit_1_on_a_violation_with_text_json_and_junit_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    let last = m1
        .records()
        .filter_map(|(_, _, r)| r.entry_index())
        .max()
        .unwrap();
    // The last state commits 5 entries that are not in the log.
    let at = m1
        .records()
        .filter(|(_, _, r)| matches!(r, Rec::State(_)))
        .map(|(s, i, _)| (s, i))
        .last()
        .unwrap();
    if let Rec::State(h) = m1.rec_mut(at) {
        h.commit = last + 5;
    }
    m1.write_dir(dir.path());
    let path = dir.path().display().to_string();
    let (code, stdout, _) = common::run_cli(&["verify", &path]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("[raft.commit_beyond_last]"), "{stdout}");
    assert!(
        stdout.contains(&format!("raft index {}", last + 5)),
        "{stdout}"
    );
    assert!(
        stdout.starts_with(&path) && stdout.contains("VIOLATIONS"),
        "{stdout}"
    );
    let (code, stdout, _) = common::run_cli(&["verify", &path, "--format", "json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let finding = &json["members"][0]["findings"][0];
    assert_eq!(finding["kind"], "raft.commit_beyond_last");
    assert_eq!(finding["severity"], "violation");
    assert_eq!(finding["raft_index"], last + 5);
    assert!(finding["segment"].as_str().unwrap().ends_with(".wal"));
    assert!(finding["offset"].as_u64().is_some());
    assert!(finding["reference"].as_str().unwrap().contains("Raft"));
    let (code, stdout, _) = common::run_cli(&["verify", &path, "--format", "junit"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("name=\"raft.commit_boundary\">\n      <failure"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("<failure").count(), 1, "{stdout}");
}

#[test]
fn cli_exit_2_when_a_path_cannot_be_read() {
    let member = member_dir("cluster-a", "m1").display().to_string();
    let (code, _, stderr) = common::run_cli(&["verify", &member, "/nonexistent/member"]);
    assert_eq!(code, 2, "{stderr}");
}

// --- mutants of real captures -------------------------------------------------------------

fn verify_alone(m: &Member) -> Vec<raft_replay::check::Finding> {
    verify(&[("m1", m)])
}

#[test]
fn real_term_going_backwards() {
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    // An entry in the term-3 stretch claims term 2.
    let index = (200..5000)
        .find(|i| {
            let at = m1.find_entry(*i);
            matches!(m1.rec_mut(at), Rec::Entry(e) if e.term == 3)
                && !m1
                    .records()
                    .any(|(_, _, r)| matches!(r, Rec::Snapshot(s) if s.index == *i))
        })
        .unwrap();
    m1.entry_mut(index).term = 2;
    assert_only(&verify_alone(&m1), "raft.entry_term_regressed", "m1", index);
}

#[test]
fn real_commit_going_backwards() {
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    // A state in the middle whose next record is an entry (no snapshot right after it).
    let recs: Vec<(usize, usize, Rec)> = m1.records().map(|(s, i, r)| (s, i, r.clone())).collect();
    let k = recs
        .iter()
        .enumerate()
        .position(|(k, (_, _, r))| {
            matches!(r, Rec::State(h) if h.commit > 3000)
                && matches!(recs.get(k + 1), Some((_, _, Rec::Entry(_))))
        })
        .unwrap();
    let (s, i, _) = recs[k];
    let Rec::State(previous) = recs[..k]
        .iter()
        .rev()
        .find_map(|(_, _, r)| matches!(r, Rec::State(_)).then_some(r.clone()))
        .unwrap()
    else {
        unreachable!()
    };
    let lowered = previous.commit - 10;
    if let Rec::State(h) = m1.rec_mut((s, i)) {
        h.commit = lowered;
    }
    let f = assert_only(&verify_alone(&m1), "raft.commit_regressed", "m1", lowered);
    assert_eq!(f.len(), 1);
}

#[test]
fn real_vote_changing_within_a_term() {
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    // The last state of a term whose previous state is in the same term with a vote.
    let states: Vec<((usize, usize), raft_replay::proto::raftpb::HardState)> = m1
        .records()
        .filter_map(|(s, i, r)| match r {
            Rec::State(h) => Some(((s, i), *h)),
            _ => None,
        })
        .collect();
    let k = (1..states.len())
        .rev()
        .find(|&k| {
            let (prev, this) = (states[k - 1].1, states[k].1);
            prev.term == this.term
                && prev.vote != 0
                && states.get(k + 1).map_or(true, |n| n.1.term != this.term)
        })
        .expect("a term with two states");
    let (at, state) = states[k];
    let other = common::manifest("cluster-a")["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_u64().unwrap())
        .find(|id| *id != state.vote)
        .unwrap();
    if let Rec::State(h) = m1.rec_mut(at) {
        h.vote = other;
    }
    let findings = verify_alone(&m1);
    let f = failures(&findings);
    assert!(
        f.len() == 1 && f[0].kind == "raft.vote_changed_in_term",
        "{}",
        show(&findings)
    );
    assert_eq!(f[0].term, Some(state.term));
}

#[test]
fn real_committed_entry_rewritten() {
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    let last = m1
        .records()
        .filter_map(|(_, _, r)| r.entry_index())
        .max()
        .unwrap();
    // After the final state (commit = last), a "leader" of a later term rewrites the last entry.
    let mut rewritten = m1.entry_mut(last).clone();
    rewritten.term += 10;
    rewritten.data = Some(Bytes::from_static(b"not what was committed"));
    m1.push(Rec::Entry(rewritten));
    let f = assert_only(
        &verify_alone(&m1),
        "raft.committed_entry_rewritten",
        "m1",
        last,
    );
    assert_eq!(f.len(), 1);
}

#[test]
fn real_entry_gap() {
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    let at = m1.find_entry(1234);
    m1.segments[at.0].1.remove(at.1);
    let findings = verify_alone(&m1);
    let f = assert_only(&findings, "wal.index_gap", "m1", 1235);
    assert_eq!(f[0].severity, Severity::Corruption);
    assert_eq!(
        f.len(),
        1,
        "ReadAll's and the scan's report of one gap are one finding"
    );
}

#[test]
fn real_snap_conf_state_disagreeing_with_the_conf_change_history() {
    let mut m1 = Member::from_dir(&member_dir("cluster-a", "m1"));
    // The oldest .snap: rewrite its ConfState without one voter (valid file, valid CRC).
    let (name, bytes) = m1.snaps[0].clone();
    let snapshot = raft_replay::snap::read_snap(bytes).unwrap();
    let mut cs: ConfState = snapshot.metadata.conf_state.clone();
    cs.voters.sort_unstable();
    cs.voters.pop();
    let (new_name, new_bytes) = snap_file(snapshot.metadata.index, snapshot.metadata.term, cs);
    assert_eq!(new_name, name);
    m1.snaps[0] = (name, new_bytes);
    let findings = verify_alone(&m1);
    let f = assert_only(
        &findings,
        "raft.conf_state_mismatch",
        "m1",
        snapshot.metadata.index,
    );
    assert_eq!(f.len(), 1);
}

#[test]
fn real_3_5_wal_snapshot_conf_state_is_checked_against_the_replayed_membership() {
    // etcd 3.5 writes the ConfState into every WAL snapshot record (walpb.Snapshot field 3).
    let mut d1 = Member::from_dir(&member_dir("cluster-d", "d1"));
    let with_conf_state: Vec<(usize, usize)> = d1
        .records()
        .filter_map(|(s, r, rec)| match rec {
            Rec::Snapshot(snap) if snap.index > 0 => {
                assert!(snap.conf_state.is_some(), "3.5 record at {}", snap.index);
                Some((s, r))
            }
            _ => None,
        })
        .collect();
    assert!(with_conf_state.len() >= 2, "{with_conf_state:?}");
    assert!(failures(&verify_alone(&d1)).is_empty());
    // The newest record claims one voter less than the conf changes give.
    let at = *with_conf_state.last().unwrap();
    let Rec::Snapshot(snap) = d1.rec_mut(at) else {
        unreachable!()
    };
    let index = snap.index;
    let cs = snap.conf_state.as_mut().unwrap();
    cs.voters.sort_unstable();
    cs.voters.pop();
    // Two invariants see it: the replayed membership, and the `.snap` the record names.
    let findings = verify_alone(&d1);
    let mut kinds = failing_kinds(&findings);
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["raft.conf_state_mismatch", "snap.wal_mismatch"],
        "{}",
        show(&findings)
    );
    let f = findings
        .iter()
        .find(|f| f.kind == "raft.conf_state_mismatch")
        .unwrap();
    assert_eq!(f.location.raft_index, Some(index));
    assert!(f.message.contains("WAL snapshot record"), "{}", f.message);
}

#[test]
fn real_member_diverging_from_the_others() {
    let mut m4 = Member::from_dir(&member_dir("cluster-a", "m4"));
    let index = 50;
    m4.entry_mut(index).data = Some(Bytes::from_static(b"a different put"));
    let (fs, paths) = capture_fs("cluster-a", &[("m4", m4)]);
    let findings = verify_fs(&fs, &paths);
    let f = assert_only(&findings, "cluster.entry_conflict", "m4", index);
    assert_eq!(f.len(), 1, "one finding, on the diverging member only");
}

#[test]
fn real_flipped_bit_is_a_record_crc_corruption_at_that_entry() {
    let dir = member_dir("cluster-a", "m1");
    let frame = frames(&dir)
        .into_iter()
        .find(|f| f.entry_index == Some(777))
        .unwrap();
    let mut fs = MemFs::default();
    let path = install_dir(&mut fs, &dir, "m1");
    let seg = path.join("member/wal").join(&frame.segment);
    let mut bytes = fs.files[&seg].to_vec();
    bytes[(frame.offset + frame.frame_len - 12) as usize] ^= 0x10;
    fs.insert(seg, bytes);
    let findings = verify_fs(&fs, &[path]);
    let f = assert_only(&findings, "wal.record_crc", "m1", 777);
    assert_eq!(f[0].severity, Severity::Corruption);
    assert_eq!(f[0].location.offset, Some(frame.offset));
}

#[test]
fn real_zeroed_sector_in_a_non_last_segment() {
    let dir = member_dir("cluster-b", "b1");
    let frames = frames(&dir);
    let first_segment = frames[0].segment.clone();
    let in_first: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.segment == first_segment)
        .collect();
    assert!(
        frames.iter().any(|f| f.segment != first_segment),
        "b1 has a cut segment"
    );
    // The sector holding the length word of an entry in the middle of the first segment.
    let victim = in_first
        .iter()
        .filter(|f| f.record_type == ENTRY_TYPE)
        .nth(in_first.len() / 4)
        .unwrap();
    let sector = victim.offset / 512 * 512;
    let mut fs = MemFs::default();
    let path = install_dir(&mut fs, &dir, "b1");
    let seg = path.join("member/wal").join(&first_segment);
    let mut bytes = fs.files[&seg].to_vec();
    bytes[sector as usize..sector as usize + 512].fill(0);
    fs.insert(seg, bytes);
    let findings = verify_fs(&fs, &[path]);
    let failing = failures(&findings);
    assert!(
        !failing.is_empty(),
        "a zeroed sector in a closed segment is never benign"
    );
    for f in &failing {
        assert!(
            f.kind.starts_with("wal."),
            "no Raft violation from damage:\n{}",
            show(&findings)
        );
        assert_eq!(f.severity, Severity::Corruption);
    }
    let first = failing
        .iter()
        .find(|f| f.location.segment.as_deref() == Some(first_segment.as_str()))
        .unwrap_or_else(|| panic!("damage named in the first segment:\n{}", show(&findings)));
    let offset = first.location.offset.unwrap();
    assert!(
        (sector.saturating_sub(victim.frame_len)..sector + 512).contains(&offset),
        "located at the damaged sector ({sector}): {first}"
    );
    let damaged_entry = victim.entry_index.unwrap();
    let named = first.location.raft_index.unwrap();
    assert!(
        named + 1 >= damaged_entry && named <= damaged_entry,
        "raft index {named} names the damaged entry {damaged_entry} or the last good one"
    );
}

#[test]
fn real_torn_tail_is_a_warning_only() {
    let dir = member_dir("cluster-a", "m1");
    let last = frames(&dir).pop().unwrap();
    let mut fs = MemFs::default();
    let path = install_dir(&mut fs, &dir, "m1");
    let seg = path.join("member/wal").join(&last.segment);
    let mut bytes = fs.files[&seg].to_vec();
    // The last record's length word survives, its body is zeros: a torn write.
    let body = (last.offset + 8) as usize..(last.offset + last.frame_len) as usize;
    bytes[body].fill(0);
    fs.insert(seg, bytes);
    let findings = verify_fs(&fs, std::slice::from_ref(&path));
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
    assert_eq!(findings.len(), 1, "{}", show(&findings));
    assert_eq!(findings[0].kind, "wal.torn_tail");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_eq!(findings[0].location.offset, Some(last.offset));
    // And with all the other members: still no failure.
    let (mut fs2, mut paths) = capture_fs("cluster-a", &[]);
    for (p, b) in fs.files.iter() {
        fs2.insert(p.clone(), b.clone());
    }
    paths.push(path);
    let findings = verify_fs(&fs2, &paths);
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
}

#[test]
fn real_gap_in_segment_sequence_numbers() {
    let dir = member_dir("cluster-b", "b1");
    let mut fs = MemFs::default();
    let path = install_dir(&mut fs, &dir, "b1");
    let wal = path.join("member/wal");
    let second = fs
        .files
        .keys()
        .filter(|p| p.starts_with(&wal))
        .nth(1)
        .cloned()
        .unwrap();
    let name = second.file_name().unwrap().to_string_lossy().into_owned();
    let parsed = raft_replay::wal::name::parse_wal_name(&name).unwrap();
    let renamed = raft_replay::wal::name::wal_name(parsed.seq + 1, parsed.raft_index);
    let bytes = fs.files.remove(&second).unwrap();
    fs.insert(wal.join(&renamed), bytes);
    let findings = verify_fs(&fs, &[path]);
    let failing = failures(&findings);
    assert!(
        failing.iter().all(|f| f.kind == "wal.segment_sequence"),
        "{}",
        show(&findings)
    );
    assert_eq!(failing.len(), 1, "{}", show(&findings));
    assert_eq!(
        failing[0].location.segment.as_deref(),
        Some(renamed.as_str())
    );
}
