//! The streaming replay (`replay::stream`) against the materialised one: the same entries
//! applied, applied index, revision, HashKV, configuration and findings, on every corpus member
//! and on written logs with overwrites, snapshots and segment cuts; the stream never holds more
//! than one decoded entry; a log that differs from its digests is an error, not a panic.

mod common;

use std::path::Path;

use proptest::prelude::*;
use raft_replay::check::check_member;
use raft_replay::crash::fixture::{bootstrap_entries, noop_entry, put_entry, SyntheticMember};
use raft_replay::fsio::{MemFs, ReadOnlyFs, RealFs};
use raft_replay::member::{read_member, read_member_summary, MemberFiles};
use raft_replay::proto::raftpb::{Entry, HardState};
use raft_replay::proto::walpb::WalSnapshot;
use raft_replay::replay::binary::start_release;
use raft_replay::replay::kv::{replay_kv_from, KvReplay};
use raft_replay::replay::restart::LogSource;
use raft_replay::replay::stream::{replay_kv_streaming, streamable, EntryStream};
use raft_replay::wal::DecoderMode;

/// Everything a replay established, comparable.
fn outcome(kv: &KvReplay) -> String {
    let hash = kv.store.hash_kv(0).ok();
    format!(
        "applied {} entries {} beyond {} conf {:?} changes {} started {} findings {:?} panicking {:?} hash {:?}",
        kv.applied_index,
        kv.raft.entries_applied,
        kv.applied_beyond_commit,
        kv.raft.conf_state,
        kv.raft.conf_changes_applied,
        kv.raft.started,
        kv.raft.findings,
        kv.panicking_entries,
        hash.map(|h| (h.hash, h.revision, h.compact_revision)),
    )
}

/// Compares the two paths on one member; returns whether it was streamed.
fn compare(fs: &dyn ReadOnlyFs, path: &Path, through: &[Option<u64>]) -> bool {
    let name = path.display().to_string();
    let files = MemberFiles::open(fs, path).unwrap();
    let full = read_member(&files, DecoderMode::Strict);
    let summary = read_member_summary(&files, DecoderMode::Strict);
    assert!(!summary.contents.kept_entries && summary.contents.entries.is_empty());
    // The summary read is the full read without the entries.
    assert_eq!(
        summary.contents.entry_count,
        full.contents.entries.len(),
        "{name}"
    );
    assert_eq!(summary.contents.first_index(), full.contents.first_index());
    assert_eq!(summary.contents.last_index(), full.contents.last_index());
    assert_eq!(summary.contents.hard_state, full.contents.hard_state);
    assert_eq!(
        format!(
            "{:?}{:?}{:?}",
            summary.contents.errors, summary.contents.warnings, summary.start
        ),
        format!(
            "{:?}{:?}{:?}",
            full.contents.errors, full.contents.warnings, full.start
        )
    );
    // The checks see the same thing.
    let a = check_member(&name, &files, &full);
    let b = check_member(&name, &files, &summary);
    assert_eq!(
        format!("{:?}", a.findings),
        format!("{:?}", b.findings),
        "{name}"
    );
    assert_eq!(a.scan.log.digests(), b.scan.log.digests(), "{name}");
    if !streamable(&files, &summary, &b.scan.log) {
        return false;
    }
    // Both paths start with the rules the member's files show (its db included).
    let release = start_release(&full, Some(&files));
    assert_eq!(release, start_release(&summary, Some(&files)), "{name}");
    for &t in through {
        let held = replay_kv_from(&name, &full, &release, LogSource::Held, t, &mut |_| {}).unwrap();
        let streamed = replay_kv_streaming(&name, &files, &summary, &b.scan.log, t, &mut |_| {})
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome(&held), outcome(&streamed), "{name} through {t:?}");
    }
    // At most one decoded entry alive, however long the log.
    let mut stream = EntryStream::over_member(&files, &b.scan.log);
    let replay = replay_kv_from(
        &name,
        &summary,
        &release,
        LogSource::Stream(&mut stream),
        None,
        &mut |_| {},
    );
    assert!(replay.is_ok() && stream.failed().is_none());
    assert!(stream.max_held <= 1, "{}", stream.max_held);
    true
}

#[test]
fn streaming_replay_equals_materialised_on_the_corpus() {
    let mut streamed = 0;
    for (_, member) in common::all_members() {
        if compare(&RealFs, &member, &[None, Some(3)]) {
            streamed += 1;
        }
    }
    assert!(
        streamed >= 3,
        "only {streamed} corpus members were streamable"
    );
}

fn mem_member(member: &SyntheticMember) -> MemFs {
    let mut fs = MemFs::default();
    let disk = member.disk();
    for (name, bytes) in disk.segments {
        fs.insert(Path::new("/m/member/wal").join(name), bytes);
    }
    for (name, bytes) in disk.snaps {
        fs.insert(Path::new("/m/member/snap").join(name), bytes);
    }
    fs
}

#[derive(Clone, Debug)]
struct Save {
    count: usize,
    rewind: u64,
    term_bump: bool,
    commit_step: u64,
    snapshot: bool,
}

fn save() -> impl Strategy<Value = Save> {
    (
        0usize..24,
        0u64..5,
        any::<bool>(),
        0u64..6,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(count, rewind, term_bump, commit_step, snapshot)| Save {
            count,
            rewind,
            term_bump,
            commit_step,
            snapshot,
        })
}

/// A member written by etcd's writer: bootstrap, then puts saved in batches that overwrite
/// uncommitted tails, with WAL snapshot records and small segments (many cuts).
fn written(saves: &[Save], segment_size: u64) -> MemFs {
    let mut member = SyntheticMember::new(1, 7, segment_size);
    let mut log: Vec<Entry> = bootstrap_entries(&[1]);
    let mut term = 1;
    let mut state = HardState {
        term: 1,
        vote: 1,
        commit: 1,
    };
    member.save(state, &log);
    let mut n = 0u64;
    for s in saves {
        if s.term_bump {
            term += 1;
        }
        let last = log.len() as u64;
        let first = (last + 1).saturating_sub(s.rewind).max(state.commit + 1);
        let entries: Vec<Entry> = (0..s.count as u64)
            .map(|i| {
                n += 1;
                if n % 5 == 0 {
                    noop_entry(term, first + i)
                } else {
                    put_entry(
                        term,
                        first + i,
                        &format!("k{}", n % 7),
                        format!("v{n}").as_bytes(),
                    )
                }
            })
            .collect();
        if !entries.is_empty() {
            log.truncate((first - 1) as usize);
            log.extend(entries.iter().cloned());
        }
        state = HardState {
            term,
            vote: 1,
            commit: (state.commit + s.commit_step).min(log.len() as u64),
        };
        member.save(state, &entries);
        if s.snapshot {
            let index = state.commit;
            member.writer.save_snapshot(&WalSnapshot {
                index,
                term: log[(index - 1) as usize].term,
                conf_state: None,
            });
        }
    }
    mem_member(&member)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn streaming_replay_equals_materialised_on_written_logs(
        saves in prop::collection::vec(save(), 1..80),
        segment_size in prop_oneof![Just(4096u64), Just(8192), Just(64 * 1024 * 1024)],
        through in 1u64..40,
    ) {
        let fs = written(&saves, segment_size);
        prop_assert!(compare(&fs, Path::new("/m"), &[None, Some(through)]));
    }
}

/// A segment whose entry bytes changed after the scan (here: a digest from another log) is a
/// stream error, and the replay stops instead of applying it.
#[test]
fn an_entry_differing_from_its_digest_is_an_error() {
    let saves: Vec<Save> = (0..60)
        .map(|i| Save {
            count: 10,
            rewind: 0,
            term_bump: i == 3,
            commit_step: 10,
            snapshot: false,
        })
        .collect();
    let fs = written(&saves, 4096);
    let other = written(
        &saves
            .iter()
            .map(|s| Save {
                term_bump: false,
                ..s.clone()
            })
            .collect::<Vec<_>>(),
        4096,
    );
    let files = MemberFiles::open(&fs, Path::new("/m")).unwrap();
    let other_files = MemberFiles::open(&other, Path::new("/m")).unwrap();
    let summary = read_member_summary(&files, DecoderMode::Strict);
    let other_read = read_member_summary(&other_files, DecoderMode::Strict);
    let other_scan = check_member("o", &other_files, &other_read).scan;
    // Same shape (same count, same frames), different terms: the stream must notice.
    assert!(streamable(&files, &summary, &other_scan.log));
    {
        let result =
            replay_kv_streaming("m", &files, &summary, &other_scan.log, None, &mut |_| {}).unwrap();
        let error = result.err().expect("a stream error");
        assert!(error.message.contains("differs"), "{error}");
    }
    // A segment gone between the passes: an error too.
    let scan = check_member("m", &files, &summary).scan;
    let mut missing = MemFs::default();
    for (path, bytes) in &fs.files {
        if !path.ends_with(&files.segments[1].file_name) {
            missing.files.insert(path.clone(), bytes.clone());
        }
    }
    assert!(files.segments.len() > 2);
    let mut stream = EntryStream::new(
        &missing,
        files.paths.wal_dir.clone(),
        &files.segments,
        &scan.log,
    );
    let error = stream.verify_rest().expect_err("a stream error");
    assert!(error.message.contains("cannot read"), "{error}");
}
