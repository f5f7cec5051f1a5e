//! The per-member mutation suite: a scripted member log that verifies clean, and for every
//! invariant a copy breaking exactly that invariant, which must give exactly that finding kind at
//! the right raft index. Records are re-encoded with a valid CRC chain, so only the invariant
//! is broken, never the framing.

mod check_support;

use check_support::*;
use raft_replay::check::Severity;
use raft_replay::proto::raftpb::{ConfState, Entry};
use raft_replay::proto::walpb::WalSnapshot;

fn one(m: &Member) -> Vec<raft_replay::check::Finding> {
    verify(&[("m1", m)])
}

#[test]
fn the_scripted_member_is_clean() {
    let findings = one(&scripted(1));
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn the_scripted_members_verified_together_are_clean() {
    let (a, b, c) = (scripted(1), scripted(2), scripted(3));
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn entry_term_going_backwards() {
    let mut m = scripted(1);
    m.entry_mut(17).term = 1;
    assert_only(&one(&m), "raft.entry_term_regressed", "m1", 17);
}

#[test]
fn hardstate_term_going_backwards() {
    let mut m = scripted(1);
    // A later term, then back.
    m.save(hs(3, 1, 60), &[]);
    m.save(hs(2, 1, 60), &[]);
    let f = assert_only(&one(&m), "raft.hardstate_term_regressed", "m1", 60);
    assert_eq!(f[0].term, Some(2));
}

#[test]
fn hardstate_term_behind_the_log() {
    let mut m = scripted(1);
    // Entries of term 3 persisted while the state stays in term 2.
    m.save(hs(2, 1, 60), &[entry(61, 3, b"x"), entry(62, 3, b"y")]);
    assert_only(&one(&m), "raft.hardstate_term_behind_log", "m1", 62);
}

#[test]
fn vote_changing_within_a_term() {
    let mut m = scripted(1);
    m.save(hs(2, 3, 60), &[]);
    let f = assert_only(&one(&m), "raft.vote_changed_in_term", "m1", 60);
    assert_eq!(f[0].term, Some(2));
    assert!(f[0].message.contains("from 1 to 3"), "{}", f[0].message);
}

#[test]
fn a_vote_for_a_new_term_is_fine_and_vote_from_nothing_too() {
    let mut m = scripted(1);
    m.save(hs(3, 0, 60), &[]);
    m.save(hs(3, 2, 60), &[]);
    m.save(hs(4, 3, 60), &[]);
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn vote_for_a_stranger() {
    let mut m = scripted(1);
    m.save(hs(3, 0x99, 60), &[]);
    assert_only(&one(&m), "raft.vote_not_member", "m1", 60);
}

#[test]
fn commit_beyond_the_last_entry() {
    let mut m = scripted(1);
    // The last state commits 3 entries that were never persisted.
    m.save(hs(2, 1, 63), &[]);
    let f = assert_only(&one(&m), "raft.commit_beyond_last", "m1", 63);
    assert_eq!(f.len(), 1);
}

#[test]
fn commit_beyond_the_last_entry_in_the_middle_of_the_log() {
    let mut m = scripted(1);
    // The batch persisting 9..=13 claims commit 16; the next batch brings 14..=18.
    let at = m.find_entry(13);
    match m.rec_mut((at.0, at.1 + 1)) {
        Rec::State(h) => h.commit = 16,
        other => panic!("{other:?}"),
    }
    // …and the state after that batch keeps 16, so the commit never goes back.
    let at = m.find_entry(18);
    match m.rec_mut((at.0, at.1 + 1)) {
        Rec::State(h) => h.commit = 16,
        other => panic!("{other:?}"),
    }
    let f = assert_only(&one(&m), "raft.commit_beyond_last", "m1", 16);
    assert_eq!(f.len(), 1, "only that batch");
}

#[test]
fn commit_going_backwards() {
    let mut m = scripted(1);
    m.save(hs(2, 1, 55), &[]);
    let f = assert_only(&one(&m), "raft.commit_regressed", "m1", 55);
    assert_eq!(f.len(), 1);
}

#[test]
fn a_committed_entry_rewritten() {
    let mut m = scripted(1);
    // Commit is 60. A "new leader" of term 3 rewrites 60 (committed) and appends 61, 62.
    m.save(
        hs(3, 2, 60),
        &[
            entry(60, 3, b"other"),
            entry(61, 3, b"a"),
            entry(62, 3, b"b"),
        ],
    );
    let f = assert_only(&one(&m), "raft.committed_entry_rewritten", "m1", 60);
    assert_eq!(f.len(), 1, "61 and 62 are beyond the commit");
    assert_eq!(f[0].term, Some(3));
}

#[test]
fn overwriting_an_uncommitted_tail_is_fine() {
    let mut m = scripted(1);
    m.save(
        hs(2, 1, 60),
        &[entry(61, 2, b"a"), entry(62, 2, b"b"), entry(63, 2, b"c")],
    );
    m.save(hs(3, 2, 60), &[entry(62, 3, b"B"), entry(63, 3, b"C")]);
    m.save(hs(3, 2, 63), &[]);
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn an_uncommitted_entry_replaced_within_its_own_term() {
    let mut m = scripted(1);
    m.save(hs(2, 1, 60), &[entry(61, 2, b"a"), entry(62, 2, b"b")]);
    m.save(hs(2, 1, 60), &[entry(62, 2, b"not b")]);
    assert_only(&one(&m), "raft.same_term_entry_replaced", "m1", 62);
}

#[test]
fn an_entry_gap() {
    let mut m = scripted(1);
    let at = m.find_entry(22);
    m.segments[at.0].1.remove(at.1);
    let f = assert_only(&one(&m), "wal.index_gap", "m1", 23);
    assert_eq!(f[0].severity, Severity::Corruption);
}

#[test]
fn a_local_snapshot_above_the_commit() {
    let mut m = scripted(1);
    m.save(hs(2, 1, 60), &[entry(61, 2, b"a"), entry(62, 2, b"b")]);
    m.snapshot(62, 2);
    assert_only(&one(&m), "raft.snapshot_above_commit", "m1", 62);
}

#[test]
fn a_snapshot_record_contradicting_a_committed_term() {
    let mut m = scripted(1);
    m.snapshot(50, 1);
    assert_only(&one(&m), "raft.snapshot_term_mismatch", "m1", 50);
}

#[test]
fn a_snap_file_disagreeing_with_the_wal_record() {
    let mut m = scripted(1);
    // A .snap claiming term 1 at the index of the WAL's snapshot record (term 2).
    m.snaps.push(snap_file(40, 1, voters(&[1, 2, 3, 4])));
    let findings = one(&m);
    assert_only(&findings, "snap.wal_mismatch", "m1", 40);
}

#[test]
fn a_snap_conf_state_disagreeing_with_the_conf_change_history() {
    let mut m = scripted(1);
    // Member 4 was promoted at 35: the .snap at 40 still lists it as a learner.
    m.snaps[0] = snap_file(
        40,
        2,
        ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            ..Default::default()
        },
    );
    let f = assert_only(&one(&m), "raft.conf_state_mismatch", "m1", 40);
    assert!(f[0].message.contains("learners=(4)"), "{}", f[0].message);
}

#[test]
fn a_wal_snapshot_conf_state_disagreeing_with_history() {
    let mut m = scripted(1);
    // etcd 3.5+ puts the ConfState in the WAL record too.
    m.save(hs(2, 1, 60), &[]);
    m.push(Rec::Snapshot(WalSnapshot {
        index: 60,
        term: 2,
        conf_state: Some(voters(&[1, 2, 3])),
    }));
    assert_only(&one(&m), "raft.conf_state_mismatch", "m1", 60);
}

#[test]
fn update_node_is_not_a_membership_change() {
    let mut m = scripted(1);
    m.save(hs(2, 1, 60), &[conf_entry(61, 2, 2, 4)]);
    m.save(hs(2, 1, 61), &[]);
    m.snapshot(61, 2);
    m.snaps.push(snap_file(61, 2, voters(&[1, 2, 3, 4])));
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn a_second_conf_change_while_one_is_pending() {
    let mut m = scripted(1);
    // Remove 3 at 61, and in the same term add 5 at 63 while 61 is not committed yet.
    m.save(
        hs(2, 1, 60),
        &[
            conf_entry(61, 2, 1, 3),
            entry(62, 2, b"x"),
            conf_entry(63, 2, 3, 5),
        ],
    );
    m.save(hs(2, 1, 63), &[]);
    assert_only(&one(&m), "raft.conf_change_pending", "m1", 63);
}

#[test]
fn conf_changes_one_at_a_time_are_fine() {
    let mut m = scripted(1);
    m.save(hs(2, 1, 60), &[conf_entry(61, 2, 1, 3), entry(62, 2, b"x")]);
    m.save(hs(2, 1, 62), &[conf_entry(63, 2, 3, 5)]);
    m.save(hs(2, 1, 63), &[]);
    m.snapshot(63, 2);
    m.snaps.push(snap_file(
        63,
        2,
        ConfState {
            voters: vec![1, 2, 4],
            learners: vec![5],
            ..Default::default()
        },
    ));
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn removing_the_last_voter() {
    let mut m = Member::create(1);
    m.save(hs(1, 0, 1), &[conf_entry(1, 1, 0, 1)]);
    m.save(hs(2, 1, 1), &[entry(2, 2, b"x"), conf_entry(3, 2, 1, 1)]);
    m.save(hs(2, 1, 3), &[]);
    assert_only(&one(&m), "raft.removed_last_voter", "m1", 3);
}

/// A member of voters 1, 2, 3 after bootstrap, at term 2, commit 3.
fn v2_base() -> Member {
    let mut m = Member::create(1);
    m.save(
        hs(1, 0, 3),
        &[
            conf_entry(1, 1, 0, 1),
            conf_entry(2, 1, 0, 2),
            conf_entry(3, 1, 0, 3),
        ],
    );
    m.save(hs(2, 1, 3), &[entry(4, 2, b"")]);
    m.save(hs(2, 1, 4), &[]);
    m
}

#[test]
fn joint_consensus_done_right_is_clean() {
    let mut m = v2_base();
    // Enter joint (implicit, auto-leave): replace 3 by 4; the leader leaves once applied.
    m.save(hs(2, 1, 4), &[v2_entry(5, 2, 1, &[(0, 4), (1, 3)])]);
    m.save(hs(2, 1, 5), &[v2_entry(6, 2, 0, &[])]);
    m.save(hs(2, 1, 6), &[]);
    m.snapshot(6, 2);
    m.snaps.push(snap_file(6, 2, voters(&[1, 2, 4])));
    // And an explicit joint, left explicitly.
    m.save(hs(2, 1, 6), &[v2_entry(7, 2, 2, &[(3, 2), (0, 5)])]);
    m.save(hs(2, 1, 7), &[v2_entry(8, 2, 0, &[])]);
    m.save(hs(2, 1, 8), &[]);
    m.snapshot(8, 2);
    m.snaps.push(snap_file(
        8,
        2,
        ConfState {
            voters: vec![1, 4, 5],
            learners: vec![2],
            ..Default::default()
        },
    ));
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn joint_entered_from_a_joint_config() {
    let mut m = v2_base();
    m.save(hs(2, 1, 4), &[v2_entry(5, 2, 2, &[(0, 4)])]);
    m.save(hs(2, 1, 5), &[v2_entry(6, 2, 2, &[(0, 5)])]);
    m.save(hs(2, 1, 6), &[]);
    assert_only(&one(&m), "raft.joint_enter_from_joint", "m1", 6);
}

#[test]
fn joint_left_when_not_joint() {
    let mut m = v2_base();
    m.save(hs(2, 1, 4), &[v2_entry(5, 2, 0, &[])]);
    m.save(hs(2, 1, 5), &[]);
    assert_only(&one(&m), "raft.joint_leave_not_joint", "m1", 5);
}

#[test]
fn a_simple_change_while_joint() {
    let mut m = v2_base();
    m.save(hs(2, 1, 4), &[v2_entry(5, 2, 2, &[(0, 4)])]);
    m.save(hs(2, 1, 5), &[conf_entry(6, 2, 3, 6)]);
    m.save(hs(2, 1, 6), &[]);
    assert_only(&one(&m), "raft.joint_simple_change_in_joint", "m1", 6);
}

#[test]
fn a_snapshot_conf_state_with_a_voter_that_is_a_learner() {
    // A member catching up from a leader snapshot whose ConfState is invalid.
    let mut m = Member::create(5);
    m.save(hs(2, 0, 0), &[]);
    m.snapshot(100, 2);
    m.snaps.push(snap_file(
        100,
        2,
        ConfState {
            voters: vec![1, 2, 3],
            learners: vec![3, 5],
            ..Default::default()
        },
    ));
    m.save(hs(2, 0, 100), &[entry(101, 2, b"x")]);
    m.save(hs(2, 0, 101), &[]);
    assert_only(&one(&m), "raft.voter_and_learner", "m1", 100);
}

#[test]
fn auto_leave_not_honoured_is_a_warning() {
    let mut m = v2_base();
    m.save(hs(2, 1, 4), &[v2_entry(5, 2, 1, &[(0, 4), (1, 3)])]);
    m.save(hs(2, 1, 5), &[entry(6, 2, b"a"), entry(7, 2, b"b")]);
    m.save(hs(2, 1, 7), &[]);
    let findings = one(&m);
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
    assert_eq!(findings.len(), 1, "{}", show(&findings));
    assert_eq!(findings[0].kind, "raft.joint_auto_leave_pending");
    assert_eq!(findings[0].location.raft_index, Some(5));
}

#[test]
fn a_learner_catching_up_from_a_leader_snapshot_is_clean() {
    // WAL = snapshot{0,0}, snapshot{S}, entries S+1…; configuration seeded from the .snap.
    let mut m = Member::create(5);
    m.save(hs(2, 0, 0), &[]);
    m.snaps.push(snap_file(
        100,
        2,
        ConfState {
            voters: vec![1, 2, 3],
            learners: vec![5],
            ..Default::default()
        },
    ));
    m.snapshot(100, 2);
    m.save(hs(2, 0, 100), &[]);
    m.save(
        hs(2, 0, 100),
        &[entry(101, 2, b"x"), promote_entry(102, 2, 5)],
    );
    m.save(hs(2, 0, 102), &[]);
    m.save(hs(3, 1, 102), &[]);
    m.snapshot(102, 2);
    m.snaps.push(snap_file(102, 2, voters(&[1, 2, 3, 5])));
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn a_rewrite_below_a_leader_snapshot() {
    let mut m = Member::create(5);
    m.save(hs(2, 0, 0), &[]);
    m.snaps.push(snap_file(100, 2, voters(&[1, 2, 3, 5])));
    m.snapshot(100, 2);
    m.save(hs(2, 0, 100), &[entry(101, 2, b"x")]);
    m.save(hs(2, 0, 101), &[entry(99, 2, b"old")]);
    assert_only(&one(&m), "raft.committed_entry_rewritten", "m1", 99);
}

#[test]
fn a_purged_wal_start_is_not_a_finding() {
    // etcd purged the first segments: the WAL starts at a cut segment named after index 31,
    // with crc, metadata and the last state in its header.
    let full = scripted(1);
    let mut m = Member {
        segments: vec![(
            "0000000000000003-000000000000001f.wal".into(),
            vec![
                Rec::Crc,
                Rec::Metadata(metadata(1)),
                Rec::State(hs(2, 1, 25)),
            ],
        )],
        snaps: full.snaps.clone(),
    };
    let recs: Vec<Rec> = full
        .records()
        .map(|(_, _, r)| r.clone())
        .skip_while(|r| r.entry_index() != Some(31))
        .collect();
    m.segments[0].1.extend(recs);
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn leader_noop_entries_without_data_are_entries_like_any_other() {
    let mut m = scripted(1);
    m.save(
        hs(3, 2, 60),
        &[Entry {
            r#type: 0,
            term: 3,
            index: 61,
            data: None,
        }],
    );
    m.save(hs(3, 2, 61), &[]);
    let findings = one(&m);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn a_leader_snapshot_never_confirmed_by_a_commit_is_a_warning() {
    // snapshot{100} then the member stopped before the HardState committing 100 was written:
    // etcd ignores the record at boot (and so the .snap).
    let mut m = Member::create(5);
    m.save(hs(2, 0, 0), &[]);
    m.snaps.push(snap_file(100, 2, voters(&[1, 2, 3, 5])));
    m.snapshot(100, 2);
    let findings = one(&m);
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
    let kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
    assert!(
        kinds.contains(&"wal.snapshot_unconfirmed"),
        "{}",
        show(&findings)
    );
    let f = findings
        .iter()
        .find(|f| f.kind == "wal.snapshot_unconfirmed")
        .unwrap();
    assert_eq!(f.location.raft_index, Some(100));
}

#[test]
fn an_orphaned_snap_file_is_a_warning() {
    // A .snap at 30 whose WAL record was never written (crash between the two).
    let mut m = scripted(1);
    m.snaps.push(snap_file(
        30,
        2,
        ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            ..Default::default()
        },
    ));
    let findings = one(&m);
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
    assert_eq!(findings.len(), 1, "{}", show(&findings));
    assert_eq!(findings[0].kind, "snap.orphan");
    assert_eq!(findings[0].location.raft_index, Some(30));
}

#[test]
fn the_newest_snapshot_record_without_its_snap_file_is_a_warning() {
    let mut m = scripted(1);
    m.snaps.clear();
    let mut fs = raft_replay::fsio::MemFs::default();
    let path = m.install(&mut fs, "m1");
    // The snap dir exists (it holds the backend), the .snap does not.
    fs.insert(
        path.join("member/snap/db"),
        bytes::Bytes::from_static(b"bbolt"),
    );
    let findings = verify_fs(&fs, &[path]);
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
    assert_eq!(findings.len(), 1, "{}", show(&findings));
    assert_eq!(findings[0].kind, "snap.missing");
    assert_eq!(findings[0].location.raft_index, Some(40));
}

#[test]
fn a_committed_conf_change_etcd_cannot_decode() {
    let mut m = scripted(1);
    // ConfChange type 7 does not exist: etcd panics applying it.
    let mut cc = conf_entry(61, 2, 0, 5);
    if let Some(data) = &mut cc.data {
        let mut bytes = data.to_vec();
        // ConfChange{id=1: varint, type=2: varint}: the type field follows the id.
        let at = bytes.iter().position(|b| *b == 0x10).unwrap();
        bytes[at + 1] = 7;
        *data = bytes::Bytes::from(bytes);
    }
    m.save(hs(2, 1, 60), &[cc]);
    m.save(hs(2, 1, 61), &[]);
    let f = assert_only(&one(&m), "raft.conf_change_undecodable", "m1", 61);
    assert_eq!(f[0].severity, Severity::Corruption);
}

#[test]
fn entering_joint_consensus_with_no_voters() {
    let mut m = Member::create(1);
    m.save(hs(1, 0, 1), &[v2_entry(1, 1, 1, &[(0, 1), (0, 2)])]);
    assert_only(&one(&m), "raft.joint_enter_zero_voters", "m1", 1);
}

#[test]
fn a_snapshot_conf_state_with_learners_next_outside_joint() {
    let mut m = Member::create(5);
    m.save(hs(2, 0, 0), &[]);
    m.snaps.push(snap_file(
        100,
        2,
        ConfState {
            voters: vec![1, 2, 3],
            learners_next: vec![5],
            ..Default::default()
        },
    ));
    m.snapshot(100, 2);
    m.save(hs(2, 0, 100), &[entry(101, 2, b"x")]);
    m.save(hs(2, 0, 101), &[]);
    assert_only(&one(&m), "raft.invalid_conf_state", "m1", 100);
}
