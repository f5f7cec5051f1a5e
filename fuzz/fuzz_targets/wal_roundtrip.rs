//! What the etcd-exact writer (`src/wal/writer.rs`) writes, the boot read returns unchanged:
//! the entries with ReadAll's overwrite rule applied, the last non-empty HardState, every
//! snapshot record, the metadata — with no error or warning, whether the tail segment is
//! preallocated or not, across segment cuts (a small segment size).
#![no_main]

use std::path::Path;

use arbitrary::Arbitrary;
use bytes::Bytes;
use fuzz_support::Budget;
use libfuzzer_sys::fuzz_target;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::proto::raftpb::{Entry, HardState};
use raft_replay::proto::walpb::WalSnapshot;
use raft_replay::wal::writer::WalWriter;
use raft_replay::wal::DecoderMode;
use raft_replay::MemFs;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Append entries (first rewinding up to `rewind` below the last, never below the commit:
    /// a new leader overwriting an uncommitted tail), then a HardState.
    Save {
        entries: Vec<(u8, Option<Vec<u8>>)>,
        rewind: u8,
        term_bump: bool,
        vote: u8,
        commit_step: u8,
    },
    Snapshot,
}

#[derive(Arbitrary, Debug)]
struct Input {
    metadata: Vec<u8>,
    /// Segment size in 4 KiB pages above the minimum.
    pages: u8,
    preallocate_tail: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mut writer = WalWriter::create_with_segment_size(
        &input.metadata,
        4096 * (1 + u64::from(input.pages % 16)),
    );
    let mut model: Vec<Entry> = Vec::new();
    let mut term = 1u64;
    let mut state = HardState::default();
    let mut snapshots = vec![(0u64, 0u64)];
    for op in input.ops.iter().take(64) {
        match op {
            Op::Save {
                entries,
                rewind,
                term_bump,
                vote,
                commit_step,
            } => {
                let last = model.last().map_or(0, |e| e.index);
                let first = (last + 1)
                    .saturating_sub(u64::from(*rewind % 4))
                    .max(state.commit + 1);
                if *term_bump {
                    term += 1;
                }
                let entries: Vec<Entry> = entries
                    .iter()
                    .take(8)
                    .enumerate()
                    .map(|(i, (kind, data))| Entry {
                        r#type: i32::from(kind % 3),
                        term,
                        index: first + i as u64,
                        data: data.clone().map(Bytes::from),
                    })
                    .collect();
                if !entries.is_empty() {
                    model.truncate((first - 1) as usize);
                    model.extend(entries.iter().cloned());
                }
                let last = model.last().map_or(0, |e| e.index);
                let hs = HardState {
                    term,
                    vote: u64::from(vote % 4),
                    commit: (state.commit + u64::from(commit_step % 3)).min(last),
                };
                writer.save(&hs, &entries);
                if !hs.is_empty() {
                    state = hs;
                }
            }
            Op::Snapshot => {
                let index = state.commit;
                let snap_term = if index == 0 {
                    0
                } else {
                    model[(index - 1) as usize].term
                };
                writer.save_snapshot(&WalSnapshot {
                    index,
                    term: snap_term,
                    conf_state: None,
                });
                snapshots.push((index, snap_term));
            }
        }
    }
    let mut fs = MemFs::default();
    let mut total = 0;
    for (name, bytes) in writer.files(input.preallocate_tail) {
        total += bytes.len();
        fs.insert(Path::new("/m/member/wal").join(name), bytes);
    }
    Budget::READER.enforce(total, || {
        let files = MemberFiles::open(&fs, Path::new("/m")).expect("the writer's member opens");
        let read = read_member(&files, DecoderMode::Strict);
        let c = &read.contents;
        assert!(c.errors.is_empty(), "errors: {:?}", c.errors);
        assert!(c.warnings.is_empty(), "warnings: {:?}", c.warnings);
        assert!(
            c.accepted_by_etcd.is_empty(),
            "accepted: {:?}",
            c.accepted_by_etcd
        );
        assert_eq!(c.start_index, 0);
        assert_eq!(c.entries, model);
        assert_eq!(c.hard_state, state);
        assert_eq!(c.metadata.as_deref(), Some(&input.metadata[..]));
        let seen: Vec<(u64, u64)> = c
            .snapshots
            .iter()
            .map(|s| (s.snapshot.index, s.snapshot.term))
            .collect();
        assert_eq!(seen, snapshots);
    });
});
