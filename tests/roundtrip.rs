//! Property tests: what the writer writes, the reader reads back with ReadAll's semantics; and
//! no byte sequence makes the reader panic.

mod common;

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use raft_replay::fsio::MemFs;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::proto::raftpb::{Entry, HardState};
use raft_replay::proto::walpb::WalSnapshot;
use raft_replay::wal::writer::WalWriter;
use raft_replay::wal::DecoderMode;

#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries, optionally first rewinding to `last - rewind` (a new leader
    /// overwriting an uncommitted tail), then a HardState.
    Save {
        count: usize,
        rewind: u64,
        term_bump: bool,
        vote: u64,
        commit_step: u64,
        data: Vec<Option<Vec<u8>>>,
    },
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..6, 0u64..4, any::<bool>(), 0u64..4, 0u64..3,
              prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..300)), 6))
            .prop_map(|(count, rewind, term_bump, vote, commit_step, data)| Op::Save { count, rewind, term_bump, vote, commit_step, data }),
        1 => Just(Op::Snapshot),
    ]
}

fn mem_member(files: Vec<(String, Bytes)>) -> MemFs {
    let mut fs = MemFs::default();
    for (name, bytes) in files {
        fs.insert(Path::new("/m/member/wal").join(name), bytes);
    }
    fs
}

/// Every entry record of a member's WAL, by (segment, frame offset).
fn entry_frames(files: &MemberFiles<'_>) -> std::collections::HashMap<(u32, u64), Entry> {
    use prost::Message;
    use raft_replay::check::records::{RecordWalk, SegmentBytes};
    let walk = RecordWalk::new(
        files.segments.clone(),
        SegmentBytes::Files {
            fs: files.fs,
            wal_dir: files.paths.wal_dir.clone(),
        },
    );
    walk.filter(|r| r.record_type == raft_replay::proto::walpb::ENTRY_TYPE)
        .map(|r| ((r.segment, r.offset), Entry::decode(r.data).unwrap()))
        .collect()
}

/// 64 cases by default; `PROPTEST_CASES=N` (e.g. `make proptest-heavy`) for more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn written_wal_reads_back_with_readall_semantics(ops in prop::collection::vec(op(), 1..60), tail in any::<bool>()) {
        let mut writer = WalWriter::create_with_segment_size(b"metadata", 4096);
        // The model of ReadAll: overwrite semantics, last non-empty HardState.
        let mut model: Vec<Entry> = Vec::new();
        let mut term = 1u64;
        let mut state = HardState::default();
        let mut snapshots = vec![(0u64, 0u64)];
        for op in ops {
            match op {
                Op::Save { count, rewind, term_bump, vote, commit_step, data } => {
                    let last = model.last().map(|e| e.index).unwrap_or(0);
                    let committed = state.commit;
                    // Never rewind below the commit: the writer does not judge, but keep the model simple.
                    let first = (last + 1).saturating_sub(rewind).max(committed + 1);
                    if term_bump { term += 1; }
                    let entries: Vec<Entry> = (0..count as u64).map(|i| Entry {
                        r#type: 0, term, index: first + i,
                        data: data[i as usize].clone().map(Bytes::from),
                    }).collect();
                    if !entries.is_empty() {
                        model.truncate((first - 1) as usize);
                        model.extend(entries.iter().cloned());
                    }
                    let last = model.last().map(|e| e.index).unwrap_or(0);
                    let hs = HardState { term, vote, commit: (state.commit + commit_step).min(last) };
                    writer.save(&hs, &entries);
                    if !hs.is_empty() { state = hs; }
                }
                Op::Snapshot => {
                    let index = state.commit;
                    let snap_term = if index == 0 { 0 } else { model[(index - 1) as usize].term };
                    writer.save_snapshot(&WalSnapshot { index, term: snap_term, conf_state: None });
                    snapshots.push((index, snap_term));
                }
            }
        }
        let fs = mem_member(writer.files(tail));
        let files = MemberFiles::open(&fs, Path::new("/m")).unwrap();
        let read = read_member(&files, DecoderMode::Strict);
        prop_assert!(read.contents.errors.is_empty(), "errors: {:?}", read.contents.errors);
        prop_assert!(read.contents.warnings.is_empty(), "warnings: {:?}", read.contents.warnings);
        prop_assert_eq!(&read.contents.entries, &model);
        // Each held entry's position names the frame it was read from (after overwrites too).
        prop_assert_eq!(read.contents.entry_positions.len(), model.len());
        let frames = entry_frames(&files);
        for (i, entry) in model.iter().enumerate() {
            let p = read.contents.entry_positions.get(i).unwrap();
            prop_assert_eq!(frames.get(&(p.segment_index, p.offset)), Some(entry));
        }
        prop_assert_eq!(read.contents.hard_state, state);
        let seen: Vec<(u64, u64)> = read.contents.snapshots.iter().map(|s| (s.snapshot.index, s.snapshot.term)).collect();
        prop_assert_eq!(seen, snapshots);
        // Sync points only move forward.
        let points: Vec<(usize, u64)> = writer.sync_points().iter().map(|p| (p.segment_index, p.durable_len)).collect();
        prop_assert!(points.windows(2).all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 <= w[1].1)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), second in prop::collection::vec(any::<u8>(), 0..512)) {
        let fs = mem_member(vec![
            ("0000000000000000-0000000000000000.wal".into(), Bytes::from(bytes)),
            ("0000000000000001-0000000000000005.wal".into(), Bytes::from(second)),
        ]);
        let files = MemberFiles::open(&fs, Path::new("/m")).unwrap();
        for mode in [DecoderMode::Strict, DecoderMode::Forensic] {
            let _ = read_member(&files, mode);
        }
    }

    #[test]
    fn damaged_real_shaped_wal_never_panics_and_truncation_reads_a_prefix(
        entries in 1u64..80, cut in any::<prop::sample::Index>(), flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
    ) {
        let mut writer = WalWriter::create_with_segment_size(b"m", 4096);
        for i in 1..=entries {
            let e = Entry { r#type: 0, term: 1, index: i, data: Some(Bytes::from(vec![i as u8; (i % 50) as usize])) };
            writer.save(&HardState { term: 1, vote: 1, commit: i - 1 }, &[e]);
        }
        let files = writer.files(false);
        let (name, last) = files.last().unwrap().clone();
        // Truncation anywhere: never a panic, and the entries read are a prefix of the original.
        let at = cut.index(last.len() + 1);
        let mut truncated = files.clone();
        *truncated.last_mut().unwrap() = (name.clone(), last.slice(..at));
        let fs = mem_member(truncated);
        let read = read_member(&MemberFiles::open(&fs, Path::new("/m")).unwrap(), DecoderMode::Strict);
        let ids: Vec<u64> = read.contents.entries.iter().map(|e| e.index).collect();
        prop_assert!(ids.iter().enumerate().all(|(i, idx)| *idx == i as u64 + 1));
        // Bit damage anywhere: never a panic in either mode.
        let mut damaged = last.to_vec();
        for (index, mask) in &flips {
            if !damaged.is_empty() {
                let i = index.index(damaged.len());
                damaged[i] ^= mask;
            }
        }
        let mut files = files;
        *files.last_mut().unwrap() = (name, Bytes::from(damaged));
        let fs = mem_member(files);
        let member = MemberFiles::open(&fs, Path::new("/m")).unwrap();
        let _ = read_member(&member, DecoderMode::Strict);
        let _ = read_member(&member, DecoderMode::Forensic);
    }
}
