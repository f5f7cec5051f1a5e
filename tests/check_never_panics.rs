//! No input makes the checks panic: arbitrary record sequences with a valid CRC chain (so the
//! scan sees them all), extreme indexes and terms, garbage and valid conf changes in any order,
//! arbitrary snapshot records and `.snap` ConfStates, several members at once.

mod check_support;

use bytes::Bytes;
use check_support::*;
use proptest::prelude::*;
use raft_replay::proto::raftpb::{ConfState, Entry};
use raft_replay::proto::walpb::WalSnapshot;

fn index() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..40,
        1 => Just(u64::MAX),
        1 => u64::MAX - 3..=u64::MAX,
    ]
}

/// Snapshot record indexes stop short of u64::MAX: `wal::read_all` (not part of the checks)
/// computes `snapshot.index + 1` and overflows on a record at u64::MAX (reported to its owner).
fn snapshot_index() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..40, 1 => Just(u64::MAX - 1)]
}

fn conf_state() -> impl Strategy<Value = ConfState> {
    let ids = || prop::collection::vec(0u64..6, 0..4);
    (ids(), ids(), ids(), ids(), any::<bool>()).prop_map(|(v, l, o, n, a)| ConfState {
        voters: v,
        learners: l,
        voters_outgoing: o,
        learners_next: n,
        auto_leave: a,
    })
}

fn rec() -> impl Strategy<Value = Rec> {
    prop_oneof![
        5 => (index(), 0u64..6, prop::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(i, t, d)| Rec::Entry(entry(i, t, &d))),
        2 => (index(), 0u64..6, 0i32..5, 0u64..6)
            .prop_map(|(i, t, c, n)| Rec::Entry(conf_entry(i, t, c, n))),
        1 => (index(), 0u64..6, 0i32..4, prop::collection::vec((0i32..5, 0u64..6), 0..3))
            .prop_map(|(i, t, tr, ch)| Rec::Entry(v2_entry(i, t, tr, &ch))),
        1 => (index(), 0u64..6, 0i32..9, prop::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(i, t, ty, d)| Rec::Entry(Entry { r#type: ty, term: t, index: i, data: Some(Bytes::from(d)) })),
        3 => (0u64..7, 0u64..6, index()).prop_map(|(t, v, c)| Rec::State(hs(t, v, c))),
        1 => (snapshot_index(), 0u64..6, prop::option::of(conf_state()))
            .prop_map(|(i, t, cs)| Rec::Snapshot(WalSnapshot { index: i, term: t, conf_state: cs })),
        1 => Just(Rec::Crc),
        1 => (0u64..4).prop_map(|n| Rec::Metadata(metadata(n))),
    ]
}

fn member() -> impl Strategy<Value = Member> {
    (
        0u64..4,
        prop::collection::vec(rec(), 0..60),
        prop::collection::vec((index(), 0u64..6, conf_state()), 0..3),
        prop_oneof![Just(0u64), 1u64..50, Just(u64::MAX)],
    )
        .prop_map(|(node, recs, snaps, first_index)| {
            let mut m = Member::create(node);
            if first_index != 0 {
                // A WAL whose first segments were purged.
                m.segments[0].0 = raft_replay::wal::name::wal_name(3, first_index);
                m.segments[0].1.truncate(2);
            }
            for r in recs {
                m.push(r);
            }
            for (i, t, cs) in snaps {
                m.snaps.push(snap_file(i, t, cs));
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_members_never_panic(members in prop::collection::vec(member(), 1..4)) {
        let names = ["a", "b", "c"];
        let named: Vec<(&str, &Member)> = names.iter().copied().zip(members.iter()).collect();
        let findings = verify(&named);
        for f in &findings {
            prop_assert!(!f.kind.is_empty() && !f.message.is_empty());
        }
    }
}

#[test]
fn extreme_segment_names_and_indexes_never_panic() {
    for first in [1, u64::MAX - 1, u64::MAX] {
        let mut m = Member::create(1);
        m.segments[0].0 = raft_replay::wal::name::wal_name(u64::MAX, first);
        m.save(
            hs(u64::MAX, u64::MAX, u64::MAX),
            &[entry(u64::MAX, u64::MAX, b"x")],
        );
        m.save(hs(1, 0, 0), &[entry(0, 0, b""), entry(1, 0, b"")]);
        m.snapshot(u64::MAX - 1, 0);
        m.save(hs(u64::MAX, 0, u64::MAX), &[entry(u64::MAX, 1, b"y")]);
        let _ = verify(&[("m", &m), ("n", &m)]);
    }
}
