//! A read that holds its entries maps cut segments (`ReadOnlyFs::map_read`) instead of reading
//! them through the decoder's window: it must read exactly what the windowed read gives — the
//! same entries, positions, HardState, snapshots, errors, warnings and etcd-accepted damage — on
//! every corpus member and on copies whose cut segments are damaged (a flipped bit, a zeroed
//! sector, a cut-short file).

mod common;

use std::path::Path;

use raft_replay::fsio::{MemFs, ReadOnlyFs, RealFs};
use raft_replay::member::{read_member, MemberFiles, MemberRead, MAX_MAPPED_SEGMENT_BYTES};
use raft_replay::wal::DecoderMode;

/// The member's files in a `MemFs`, which maps nothing: every segment read through the window.
fn in_memory(member: &Path) -> MemFs {
    let mut fs = MemFs::default();
    let mut stack = vec![member.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                fs.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    fs
}

/// Everything the read reports, with file-system-independent text.
fn observed(read: &MemberRead) -> String {
    let c = &read.contents;
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{} {} {} {:?}\n{:?}\n{:?}",
        c.entries,
        c.entry_positions,
        c.hard_state,
        c.snapshots,
        c.errors,
        c.warnings,
        c.accepted_by_etcd,
        c.metadata,
        c.record_count,
        c.last_good_offset,
        c.entry_count,
        c.overwrites,
        read.start,
        read.snapshot.as_ref().map(|s| &s.file_name),
    )
}

fn read_with(fs: &dyn ReadOnlyFs, member: &Path, mode: DecoderMode) -> String {
    let files = MemberFiles::open(fs, member).unwrap();
    observed(&read_member(&files, mode))
}

fn assert_same(member: &Path, what: &str) {
    let memory = in_memory(member);
    for mode in [DecoderMode::Strict, DecoderMode::Forensic] {
        let mapped = read_with(&RealFs, member, mode);
        let windowed = read_with(&memory, member, mode);
        assert!(
            mapped == windowed,
            "{what} ({mode:?}): a mapped read differs from the windowed one"
        );
    }
}

#[test]
fn every_corpus_member_reads_the_same_mapped() {
    let mut multi_segment = 0;
    for (capture, member) in common::all_members() {
        multi_segment += usize::from(common::segments(&member).len() > 1);
        assert_same(&member, &format!("{capture} {}", member.display()));
    }
    // Members with cut segments (the ones mapped) are among them, and they are mapped.
    assert!(multi_segment >= 3, "{multi_segment}");
    let b1 = common::unpacked("cluster-b").join("b1");
    let first_cut = common::segments(&b1)[0].clone();
    assert!(RealFs
        .map_read(&first_cut, MAX_MAPPED_SEGMENT_BYTES)
        .is_some());
}

#[test]
fn damaged_cut_segments_read_the_same_mapped() {
    let member = common::unpacked("cluster-b").join("b1");
    let first = common::segments(&member)[0].clone();
    let len = std::fs::metadata(&first).unwrap().len() as usize;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damages: [(&str, Damage); 4] = [
        (
            "a flipped bit",
            Box::new(|s| common::flip_bit(s, 3 * 1024 * 1024 + 100, 2)),
        ),
        (
            "a zeroed sector",
            Box::new(|s| common::zero_sector_from(s, 5 * 1024 * 1024)),
        ),
        (
            "a cut-short file",
            Box::new(move |s| s.truncate(len - 700_000)),
        ),
        (
            "a zeroed tail",
            Box::new(move |s| s[len - 2_000_000..].fill(0)),
        ),
    ];
    for (what, damage) in damages {
        let copy = common::copy_member(&member);
        let segment = common::segments(copy.path())[0].clone();
        let mut bytes = std::fs::read(&segment).unwrap();
        damage(&mut bytes);
        std::fs::write(&segment, bytes).unwrap();
        assert_same(copy.path(), what);
    }
}
