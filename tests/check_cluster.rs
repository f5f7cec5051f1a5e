//! Cross-member mutants on the scripted three-voter cluster (plus learner 4, promoted at 35):
//! each breaks one cross-member invariant while every member stays clean on its own, and must
//! be reported on the member that diverges, at the right raft index.

mod check_support;

use check_support::*;
use raft_replay::check::state_hash::{self, StatePoint};
use raft_replay::check::{applied, Severity};
use raft_replay::proto::raftpb::ConfState;

/// Member `node`'s script with every entry from `from` on in `term`, and every state from the
/// batch holding `from` on in that term, voting for `vote`.
fn diverging(node: u64, from: u64, term: u64, vote: u64) -> Member {
    let mut m = scripted(node);
    let mut seen = false;
    for (_, recs) in &mut m.segments {
        for rec in recs.iter_mut() {
            match rec {
                Rec::Entry(e) if e.index >= from => {
                    e.term = term;
                    seen = true;
                }
                Rec::State(h) if seen => {
                    h.term = term;
                    h.vote = vote;
                }
                _ => {}
            }
        }
    }
    m
}

#[test]
fn each_diverging_member_is_clean_on_its_own() {
    // The mutants below are only cross-member: check they break nothing per member.
    for m in [diverging(3, 45, 3, 3), log_matching_members().2] {
        let findings = verify(&[("m", &m)]);
        assert!(findings.is_empty(), "{}", show(&findings));
    }
}

#[test]
fn committed_prefixes_that_disagree() {
    let (a, b, c) = (scripted(1), scripted(2), diverging(3, 45, 3, 3));
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    let f = assert_only(&findings, "cluster.committed_prefix", "m3", 45);
    assert_eq!(
        f.len(),
        1,
        "one finding for the member, counting the indexes"
    );
    assert!(
        f[0].message.contains("and 15 more indexes"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].term, Some(3));
}

/// m1: …60(t2) 61(t3) 62(t4); m3: …60(t2) 61(t2) 62(t4), same entry 62; commit 60 on both.
fn log_matching_members() -> (Member, Member, Member) {
    let mut a = scripted(1);
    a.save(hs(3, 1, 60), &[entry(61, 3, b"from leader 3")]);
    a.save(hs(4, 1, 60), &[entry(62, 4, b"from leader 4")]);
    let b = scripted(2);
    let mut c = scripted(3);
    c.save(hs(2, 1, 60), &[entry(61, 2, b"from leader 2")]);
    c.save(hs(4, 1, 60), &[entry(62, 4, b"from leader 4")]);
    (a, b, c)
}

#[test]
fn logs_that_match_at_an_index_but_not_before_it() {
    let (a, b, c) = log_matching_members();
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    let f = assert_only(&findings, "cluster.log_matching", "m3", 61);
    assert!(f[0].message.contains("same term at 62"), "{}", f[0].message);
}

#[test]
fn divergent_uncommitted_tails_are_fine() {
    let mut a = scripted(1);
    a.save(hs(3, 1, 60), &[entry(61, 3, b"x"), entry(62, 3, b"y")]);
    let mut c = scripted(3);
    c.save(hs(4, 3, 60), &[entry(61, 4, b"z")]);
    let b = scripted(2);
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn two_entries_at_one_index_in_one_term() {
    let (a, b) = (scripted(1), scripted(2));
    let mut c = scripted(3);
    // Uncommitted everywhere: only the same-term rule can tell.
    c.save(hs(2, 1, 60), &[entry(61, 2, b"put x")]);
    let mut a = a;
    a.save(hs(2, 1, 60), &[entry(61, 2, b"put y")]);
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    assert_only(&findings, "cluster.entry_conflict", "m3", 61);
}

#[test]
fn two_candidates_with_a_quorum_in_one_term() {
    // Voters 1..=4 (quorum 3). In term 5, members 2 and 3 each vote twice.
    let mut ms: Vec<Member> = (1..=4).map(scripted).collect();
    ms[0].save(hs(5, 1, 60), &[]);
    ms[1].save(hs(5, 1, 60), &[]).save(hs(5, 3, 60), &[]);
    ms[2].save(hs(5, 1, 60), &[]).save(hs(5, 3, 60), &[]);
    ms[3].save(hs(5, 3, 60), &[]);
    let named: Vec<(&str, &Member)> = ["m1", "m2", "m3", "m4"].into_iter().zip(&ms).collect();
    let findings = verify(&named);
    assert_eq!(
        failing_kinds(&findings),
        vec!["cluster.election_safety", "raft.vote_changed_in_term"],
        "{}",
        show(&findings)
    );
    let election: Vec<_> = failures(&findings)
        .into_iter()
        .filter(|f| f.kind == "cluster.election_safety")
        .collect();
    assert_eq!(election.len(), 1);
    assert_eq!(election[0].term, Some(5));
    assert!(
        election[0].message.contains("1 by 1,2,3; 3 by 2,3,4"),
        "{}",
        election[0].message
    );
}

#[test]
fn a_split_vote_without_a_double_vote_is_fine() {
    let mut ms: Vec<Member> = (1..=4).map(scripted).collect();
    ms[0].save(hs(5, 1, 60), &[]);
    ms[1].save(hs(5, 1, 60), &[]);
    ms[2].save(hs(5, 3, 60), &[]);
    ms[3].save(hs(5, 3, 60), &[]);
    let named: Vec<(&str, &Member)> = ["m1", "m2", "m3", "m4"].into_iter().zip(&ms).collect();
    let findings = verify(&named);
    assert!(findings.is_empty(), "{}", show(&findings));
}

#[test]
fn a_member_whose_snapshot_configuration_disagrees() {
    // m3 caught up from a leader snapshot at 40 whose .snap still has 4 as a learner (it was
    // promoted at 35). m3 cannot tell on its own; the others can.
    let full = scripted(3);
    let mut c = Member::create(3);
    c.save(hs(2, 0, 0), &[]);
    c.snaps.push(snap_file(
        40,
        2,
        ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            ..Default::default()
        },
    ));
    c.snapshot(40, 2);
    c.save(hs(2, 1, 40), &[]);
    // Entries 41..=43 (the rest of the leader's batch), then what the script has after its own
    // snapshot record at 40.
    let entries: Vec<_> = (41..=43)
        .map(
            |i| match full.records().find(|(_, _, r)| r.entry_index() == Some(i)) {
                Some((_, _, Rec::Entry(e))) => e.clone(),
                _ => unreachable!(),
            },
        )
        .collect();
    c.save(hs(2, 1, 40), &entries);
    c.save(hs(2, 1, 43), &[]);
    let after: Vec<Rec> = full
        .records()
        .map(|(_, _, r)| r.clone())
        .skip_while(|r| !matches!(r, Rec::Snapshot(s) if s.index == 40))
        .skip(1)
        .collect();
    for rec in after {
        c.push(rec);
    }
    let alone = verify(&[("m3", &c)]);
    assert!(alone.is_empty(), "clean on its own:\n{}", show(&alone));
    let (a, b) = (scripted(1), scripted(2));
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    let f = assert_only(&findings, "cluster.membership", "m3", 40);
    assert!(f[0].message.contains("learners=(4)"), "{}", f[0].message);
}

#[test]
fn members_of_another_cluster_are_set_aside() {
    let (a, b) = (scripted(1), scripted(2));
    let mut c = scripted(3);
    if let Rec::Metadata(meta) = &mut c.segments[0].1[1] {
        *meta = raft_replay::proto::etcdserverpb::Metadata {
            node_id: 3,
            cluster_id: 0xdead,
        }
        .encode_to_vec_helper();
    }
    let findings = verify(&[("m1", &a), ("m2", &b), ("m3", &c)]);
    let f = failures(&findings);
    assert_eq!(f.len(), 1, "{}", show(&findings));
    assert_eq!(
        (f[0].kind, f[0].severity),
        ("cluster.identity", Severity::Corruption)
    );
    assert!(f[0].member.ends_with("m3"));
}

#[test]
fn the_same_member_twice_is_a_warning() {
    let (a, b) = (scripted(1), scripted(1));
    let findings = verify(&[("m1", &a), ("copy", &b)]);
    assert!(failures(&findings).is_empty(), "{}", show(&findings));
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, "cluster.duplicate_member");
}

#[test]
fn state_hashes_at_a_common_applied_index_must_agree() {
    let point = |member: &str, index, hash| StatePoint {
        member: member.into(),
        applied_index: index,
        hash,
        what: "HashKV".into(),
    };
    let findings = state_hash::check(&[
        point("m1", 5510, 0xabc),
        point("m2", 5510, 0xabc),
        point("m4", 5510, 0xdef),
        point("m3", 93, 0x123),
    ]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, "cluster.state_hash");
    assert_eq!(findings[0].member, "m4");
    assert_eq!(findings[0].location.raft_index, Some(5510));
    assert!(state_hash::check(&[point("m1", 10, 1), point("m2", 10, 1)]).is_empty());
}

#[test]
fn applied_beyond_commit_hook() {
    let f = applied::check("m1", 120, 100, "backend consistent_index").unwrap();
    assert_eq!(f.kind, "raft.applied_beyond_commit");
    assert_eq!(f.location.raft_index, Some(120));
    assert!(applied::check("m1", 100, 100, "backend consistent_index").is_none());
}

trait EncodeHelper {
    fn encode_to_vec_helper(&self) -> Vec<u8>;
}

impl EncodeHelper for raft_replay::proto::etcdserverpb::Metadata {
    fn encode_to_vec_helper(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }
}

#[test]
fn a_vote_for_a_member_only_another_member_knows_of_is_fine() {
    // m2 lags: it never received the AddNode of 5 (at 61), yet 5's log being more up to date,
    // m2 grants it its vote in term 3. Alone, m2 cannot tell who 5 is; with m1 it can.
    let mut a = scripted(1);
    a.save(hs(2, 1, 60), &[conf_entry(61, 2, 0, 5)]);
    a.save(hs(2, 1, 61), &[]);
    a.save(hs(3, 5, 61), &[]);
    let mut b = scripted(2);
    b.save(hs(3, 5, 60), &[]);
    let alone = verify(&[("m2", &b)]);
    assert_only(&alone, "raft.vote_not_member", "m2", 60);
    let together = verify(&[("m1", &a), ("m2", &b)]);
    assert!(together.is_empty(), "{}", show(&together));
}
