//! Known etcd failure shapes, recreated with the etcd-exact writer, must come out as violations
//! (or detected corruption) — and the same members written correctly must not:
//!
//! * acknowledged entries lost → "tocommit(N) is out of range [lastIndex(M)]" on restart;
//! * HardState saved ahead of the snapshot (etcd #10219): commit beyond the last index;
//! * zero sectors followed by data in the tail (etcd #6515): Repair drops fsynced records.

mod common;

use std::path::{Path, PathBuf};

use raft_replay::crash::cluster::QuorumLoss;
use raft_replay::crash::fixture::{
    bootstrap_entries, noop_entry, put_entry, synthetic_member, write_disk, SyntheticMember,
};
use raft_replay::crash::{
    enumerate_cluster, enumerate_member, FaultClass, OnlyState, Options, Outcome, ALL_CLASSES,
};
use raft_replay::fsio::RealFs;
use raft_replay::proto::raftpb::HardState;

fn opts(classes: &[FaultClass]) -> Options {
    Options {
        classes: classes.to_vec(),
        cross_checks: 4,
        kv: true,
        ..Options::default()
    }
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

/// A member of the 3-member cluster {1, 2, 3} (leader 1, term 2) holding entries 1..=`last`,
/// with commit `commit`. Small segments so that it has several.
fn cluster_member(node_id: u64, last: u64, commit: u64) -> SyntheticMember {
    let mut m = SyntheticMember::new(node_id, 0xc1, 4096);
    m.save(hs(1, 0, 3), &bootstrap_entries(&[1, 2, 3]));
    m.save(hs(2, 1, 3), &[noop_entry(2, 4)]);
    for index in 5..=last {
        let c = (index - 1).min(commit);
        m.save(hs(2, 1, c), &[put_entry(2, index, "k", &[b'x'; 300])]);
    }
    m.save(hs(2, 1, commit), &[]);
    m
}

#[test]
fn acknowledged_entries_lost_is_tocommit_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    // Entries through 40 are committed: the leader (1) and follower 2 acknowledged them;
    // follower 3 lags at 20.
    let members = [
        ("leader", cluster_member(1, 40, 40)),
        ("follower2", cluster_member(2, 40, 40)),
        ("follower3", cluster_member(3, 20, 20)),
    ];
    let mut paths: Vec<PathBuf> = Vec::new();
    for (name, m) in &members {
        let path = dir.path().join(name);
        m.write_to(&path).unwrap();
        paths.push(path);
    }
    assert!(members[1].1.writer.segments().len() > 2);
    let before: Vec<_> = paths.iter().map(|p| common::fingerprint(p)).collect();

    // As captured, the cluster is fine; every crash state of follower 2 too.
    let crash = enumerate_cluster(&RealFs, &paths, &opts(&ALL_CLASSES[..5])).unwrap();
    assert!(crash.findings.is_empty(), "{:?}", crash.findings);
    assert_eq!(crash.voters, vec![1, 2, 3]);
    for m in &crash.members {
        assert_eq!(m.count(Outcome::Violation), 0);
    }

    // Follower 2 loses its last segment (a storage fault): entries it acknowledged are gone,
    // and with follower 3 lagging, committed entries no longer live on a quorum. etcd cannot
    // tell this damage from a torn tail, so it is a cluster-wide undetected loss (FAST '18),
    // not a crash-recovery violation: counted, shown with its reproducer, failing with --strict.
    let run = enumerate_cluster(
        &RealFs,
        &paths,
        &opts(&[FaultClass::LastSegmentMissing, FaultClass::ZeroedSector]),
    )
    .unwrap();
    // (The same holds for a fault on the leader: with follower 3 lagging, either one alone
    // holds entries 21..=40.)
    assert!(
        run.findings_of(QuorumLoss::Violation).next().is_none(),
        "storage faults alone are not violations: {:?}",
        run.findings
    );
    let finding = run
        .findings_of(QuorumLoss::Undetected)
        .find(|f| f.crashed.iter().all(|(m, _)| *m == 1))
        .unwrap_or_else(|| panic!("{:?}", run.findings));
    assert_eq!(finding.kind, "cluster.committed_lost_undetected");
    assert!(
        finding
            .message
            .contains("tocommit(40) is out of range [lastIndex("),
        "{}",
        finding.message
    );
    // The member-level finding carries raft-rs's own panic for the same restart.
    let f2 = &run.members[1];
    let undetected = f2
        .results
        .iter()
        .find(|r| {
            r.outcome == Outcome::UndetectedLoss
                && r.detail.as_deref().unwrap_or("").contains("raft-rs")
        })
        .expect("an undetected loss with raft-rs's verdict");
    assert!(
        undetected
            .detail
            .as_deref()
            .unwrap()
            .contains("to_commit 40 is out of range [last_index"),
        "{:?}",
        undetected.detail
    );
    // Reproduce it from the printed command: shown, exit 0; with --strict, exit 1.
    let only = finding.only.clone().unwrap();
    let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let (code, stdout, stderr) = common::run_cli(&["crash", &p[0], &p[1], &p[2], "--only", &only]);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(
        stdout.contains("UNDETECTED LOSS [cluster.committed_lost_undetected]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("first cluster-wide undetected loss: raft-replay crash"),
        "{stdout}"
    );
    let (code, stdout, stderr) =
        common::run_cli(&["crash", &p[0], &p[1], &p[2], "--only", &only, "--strict"]);
    assert_eq!(code, 1, "{stderr}\n{stdout}");

    // The same data as etcd would find it after the fault: follower 2 without its last segment.
    let damaged = dir.path().join("follower2-after");
    let mut state = members[1].1.disk();
    state.segments.pop();
    write_disk(&state, &damaged).unwrap();
    let after = vec![paths[0].clone(), damaged, paths[2].clone()];
    let run = enumerate_cluster(&RealFs, &after, &opts(&[FaultClass::RecordBoundary])).unwrap();
    let finding = run
        .findings
        .iter()
        .find(|f| f.kind == "cluster.committed_not_on_quorum")
        .unwrap_or_else(|| panic!("{:?}", run.findings));
    assert!(
        finding.message.contains("tocommit(40) is out of range"),
        "{}",
        finding.message
    );
    let (code, _, _) = common::run_cli(&[
        "crash",
        &after[0].display().to_string(),
        &after[1].display().to_string(),
        &after[2].display().to_string(),
        "--classes",
        "b",
    ]);
    assert_eq!(code, 1);
    let after_fp: Vec<_> = paths.iter().map(|p| common::fingerprint(p)).collect();
    assert_eq!(after_fp, before, "inputs changed");
}

/// A follower, offline while the cluster moved on, receives a leader snapshot at 30.
fn follower_before_snapshot() -> SyntheticMember {
    let mut m = SyntheticMember::new(3, 0xc1, 64 * 1000 * 1000);
    m.save(hs(1, 0, 3), &bootstrap_entries(&[1, 2, 3]));
    m.save(hs(2, 1, 3), &[noop_entry(2, 4)]);
    m.save(hs(2, 1, 4), &[put_entry(2, 5, "a", b"1")]);
    m.save(hs(2, 1, 5), &[]);
    m
}

#[test]
fn hardstate_saved_ahead_of_the_snapshot_is_etcd_10219() {
    let dir = tempfile::tempdir().unwrap();
    // etcd before #11888: the HardState (commit 30) is saved first, then .snap + WAL record.
    let mut buggy = follower_before_snapshot();
    buggy.save(hs(2, 1, 30), &[]);
    buggy.save_snap(30, 2, &[1, 2, 3], true);
    buggy.save(hs(2, 1, 31), &[put_entry(2, 31, "b", b"2")]);
    let buggy_path = dir.path().join("buggy");
    buggy.write_to(&buggy_path).unwrap();
    let run = enumerate_member(&RealFs, &buggy_path, &opts(&ALL_CLASSES[..5])).unwrap();
    let v: Vec<_> = run
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Violation)
        .collect();
    assert!(!v.is_empty());
    let first = v
        .iter()
        .find(|r| r.class == FaultClass::RecordBoundary)
        .expect("a record-boundary cut between the HardState and the snapshot");
    assert_eq!(first.kind, Some("crash.commit_beyond_last"));
    let detail = first.detail.as_deref().unwrap();
    assert!(
        detail.contains("commit 30 is beyond the last recovered index 5"),
        "{detail}"
    );
    assert!(
        detail.contains("raft-rs"),
        "raft-rs's own panic is attached: {detail}"
    );
    // The printed command reproduces it.
    let cmd = format!(
        "b:{}",
        first.spec.render(first.class).trim_start_matches("b:")
    );
    let (code, stdout, _) =
        common::run_cli(&["crash", &buggy_path.display().to_string(), "--only", &cmd]);
    assert_eq!(code, 1);
    assert!(stdout.contains("crash.commit_beyond_last"), "{stdout}");

    // The data dir as the killed etcd left it (HardState saved, no snapshot yet): refused to
    // restart as is — the input itself is flagged.
    let mut killed = follower_before_snapshot();
    killed.save(hs(2, 1, 30), &[]);
    let killed_path = dir.path().join("killed");
    killed.write_to(&killed_path).unwrap();
    let run =
        enumerate_member(&RealFs, &killed_path, &opts(&[FaultClass::RecordBoundary])).unwrap();
    let (kind, message) = run.baseline_finding.clone().expect("flagged as captured");
    assert_eq!(kind, "crash.commit_beyond_last", "{message}");
    let (code, _, _) = common::run_cli(&["crash", &killed_path.display().to_string()]);
    assert_eq!(code, 1);

    // etcd 3.4.23's order (.snap, WAL record, HardState, Sync): every crash state is safe.
    let mut fixed = follower_before_snapshot();
    fixed.save_snap(30, 2, &[1, 2, 3], true);
    fixed.save(hs(2, 1, 30), &[]);
    fixed.sync();
    fixed.save(hs(2, 1, 31), &[put_entry(2, 31, "b", b"2")]);
    let fixed_path = dir.path().join("fixed");
    fixed.write_to(&fixed_path).unwrap();
    let run = enumerate_member(&RealFs, &fixed_path, &opts(&ALL_CLASSES[..5])).unwrap();
    assert_eq!(
        run.count(Outcome::Violation),
        0,
        "{:?}",
        run.results.iter().find(|r| r.outcome == Outcome::Violation)
    );
    assert!(run.baseline_finding.is_none());
}

fn zero_sector(state: &mut raft_replay::crash::recover::DiskState, seg: usize, at: usize) {
    let (_, bytes) = &mut state.segments[seg];
    let mut v = bytes.to_vec();
    v[at..at + 512].fill(0);
    *bytes = v.into();
}

#[test]
fn zero_sectors_followed_by_data_in_the_tail_is_etcd_6515() {
    let dir = tempfile::tempdir().unwrap();
    let m = synthetic_member(2, 200, 64 * 1000 * 1000, 50);
    let mut state = m.disk();
    let len = state.segments[0].1.len();
    // A sector in the middle of fsynced data, 2 KiB-aligned.
    let at = (len / 2) / 2048 * 2048;
    zero_sector(&mut state, 0, at);
    let path = dir.path().join("m");
    write_disk(&state, &path).unwrap();
    let run = enumerate_member(&RealFs, &path, &opts(&[FaultClass::RecordBoundary])).unwrap();
    let (kind, message) = run.baseline_finding.clone().expect("flagged as captured");
    assert_eq!(kind, "crash.repair_discards_fsynced", "{message}");
    assert!(message.contains("#6515"), "{message}");
    let (code, stdout, _) =
        common::run_cli(&["crash", &path.display().to_string(), "--classes", "b"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("crash.repair_discards_fsynced"), "{stdout}");

    // Zeros followed by data only inside the last, unsynced write: a torn in-flight write.
    let healthy = synthetic_member(2, 30, 64 * 1000 * 1000, 0);
    let run = enumerate_member(
        &RealFs,
        &{
            let p = dir.path().join("healthy");
            healthy.write_to(&p).unwrap();
            p
        },
        &opts(&[FaultClass::TornSector, FaultClass::ReorderedSectors]),
    )
    .unwrap();
    assert_eq!(run.count(Outcome::Violation), 0);
    assert_eq!(run.count(Outcome::Refused), 0);
    assert!(run.count(Outcome::ExpectedLoss) > 0);
}

/// A healthy synthetic member with several segments and snapshots: every class runs; crash
/// states recover or lose only unsynced writes; storage faults are refused or undetected; every
/// printed command reproduces its outcome.
#[test]
fn a_healthy_member_through_every_class() {
    let dir = tempfile::tempdir().unwrap();
    let m = synthetic_member(2, 160, 8192, 40);
    assert!(m.writer.segments().len() >= 3);
    let path = dir.path().join("m");
    m.write_to(&path).unwrap();
    let run = enumerate_member(&RealFs, &path, &opts(&ALL_CLASSES)).unwrap();
    assert_eq!(run.count(Outcome::Violation), 0);
    assert!(
        run.cross_checks.iter().all(|c| c.ok),
        "{:?}",
        run.cross_checks
    );
    assert!(run.cross_checks.iter().any(|c| c.kv_checked));
    for r in &run.results {
        if r.class.is_crash() {
            assert!(
                matches!(r.outcome, Outcome::Recovered | Outcome::ExpectedLoss),
                "{} {:?}",
                r.spec.render(r.class),
                r.detail
            );
        }
    }
    let tally = run.tally();
    let get = |c, o| tally.get(&(c, o)).copied().unwrap_or(0);
    assert!(
        get(FaultClass::ZeroedSector, Outcome::Refused) > 0,
        "middle segments"
    );
    assert!(get(FaultClass::BitFlip, Outcome::Refused) > 0);
    assert_eq!(
        get(FaultClass::SnapFile, Outcome::Recovered),
        2,
        "an older .snap serves"
    );
    assert_eq!(
        get(FaultClass::LastSegmentMissing, Outcome::UndetectedLoss),
        1
    );
    // etcd's CRC covers a record's data, not its type: with type bits flipped too, some damage
    // is accepted as valid (a HardState read as an entry…) — a limit of the format, opt-in.
    let flips = enumerate_member(
        &RealFs,
        &path,
        &Options {
            flip_unprotected: true,
            ..opts(&[FaultClass::BitFlip])
        },
    )
    .unwrap();
    assert!(flips.count(Outcome::Violation) > 0);
    assert!(
        flips.results.len()
            > run
                .tally()
                .iter()
                .filter(|((c, _), _)| *c == FaultClass::BitFlip)
                .map(|(_, n)| n)
                .sum::<usize>()
    );
    // One state per outcome, re-run from its command.
    let mut seen = std::collections::BTreeSet::new();
    for r in &run.results {
        if !seen.insert((r.class, r.outcome)) {
            continue;
        }
        let spec = r.spec.render(r.class);
        let sub = enumerate_member(
            &RealFs,
            Path::new(&path),
            &Options {
                only: Some(OnlyState::parse(&spec, 1).unwrap()),
                ..opts(&[r.class])
            },
        )
        .unwrap();
        assert_eq!(sub.results.len(), 1, "{spec}");
        assert_eq!(sub.results[0].outcome, r.outcome, "{spec}");
    }
}

/// The first segment re-encoded (valid CRC chain) without the records `drop` says to drop.
fn without_records(
    state: &raft_replay::crash::recover::DiskState,
    drop: impl Fn(usize, &raft_replay::proto::walpb::Record) -> bool,
) -> raft_replay::crash::recover::DiskState {
    let mut out = state.clone();
    let records = common::damage::records_of(&state.segments[0].1);
    let mut crc = 0;
    let bytes = raft_replay::wal::writer::encode_records(
        &mut crc,
        records
            .iter()
            .enumerate()
            .filter(|(i, r)| !drop(*i, &r.record))
            .map(|(_, r)| (r.record.r#type, r.record.data.as_deref())),
    );
    out.segments[0].1 = bytes.into();
    out
}

/// etcd 3.4's ReadAll in write mode loses ErrSnapshotNotFound (newFileEncoder's result
/// overwrites it), so a WAL that lacks the record of the snapshot it is read from boots: the
/// crash model and the real recovery path agree with etcd. What stops etcd is a WAL read with no
/// metadata record (readWAL's member ID is then 0 and raft.RestartNode panics).
#[test]
fn a_start_snapshot_without_its_wal_record_boots() {
    use raft_replay::crash::recover::recover;
    use raft_replay::proto::walpb::{METADATA_TYPE, SNAPSHOT_TYPE};
    let dir = tempfile::tempdir().unwrap();
    let m = synthetic_member(2, 30, 64 * 1000 * 1000, 0);
    assert_eq!(m.writer.segments().len(), 1);
    let full = m.disk();
    let (expected, _) = recover(&full);
    assert_eq!(expected.refused, None);
    // wal.Create's snapshot{0,0} gone: etcd boots from {0,0} and reads every entry.
    let state = without_records(&full, |_, r| r.r#type == SNAPSHOT_TYPE);
    let (real, _) = recover(&state);
    assert_eq!(real.refused, None, "etcd boots");
    assert_eq!(real.start_index, 0);
    assert_eq!(real.hard_state, expected.hard_state);
    assert_eq!(real.entries, expected.entries);
    let path = dir.path().join("m");
    write_disk(&state, &path).unwrap();
    if let Ok(tool) = std::env::var("RAFT_REPLAY_ETCD_REF") {
        let tool = common::repo_dir().join(tool);
        let out = std::process::Command::new(tool)
            .arg("boot")
            .arg(&path)
            .output()
            .unwrap();
        let etcd: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(etcd["error"].is_null(), "etcd: {etcd}");
        assert_eq!(
            etcd["entries"].as_array().unwrap().len(),
            real.entries.len()
        );
    }
    // The prefix model, cross-checked against the real path at every sample: every record
    // boundary recovers, and so do the files as written.
    let run = enumerate_member(&RealFs, &path, &opts(&[FaultClass::RecordBoundary])).unwrap();
    assert!(run.baseline_finding.is_none(), "{:?}", run.baseline_finding);
    assert!(
        run.cross_checks.iter().all(|c| c.ok),
        "{:?}",
        run.cross_checks
    );
    assert_eq!(run.count(Outcome::Violation), 0);
    assert_eq!(run.count(Outcome::Refused), 0);
    // Without the metadata record as well, the member ID is 0.
    let no_metadata = without_records(&full, |_, r| {
        r.r#type == SNAPSHOT_TYPE || r.r#type == METADATA_TYPE
    });
    let (real, _) = recover(&no_metadata);
    let refused = real.refused.expect("raft.RestartNode panics");
    assert!(refused.contains("cannot use none as id"), "{refused}");
}

/// A member whose oldest segments and `.snap` files were purged (`--max-wals`,
/// `--max-snapshots`): the crash states before the first prefix etcd can boot from the files
/// left are not modelled — the real recovery path refuses exactly those ("file not found":
/// no snapshot record naming a `.snap` present, no segment at raft index 0) — and every state
/// from that prefix on is judged and recovers.
#[test]
fn purged_segments_and_snap_files_leave_early_states_not_modelled() {
    use raft_replay::crash::history::History;
    use raft_replay::crash::recover::{recover, DiskState};
    let dir = tempfile::tempdir().unwrap();
    let m = synthetic_member(2, 400, 8 * 1024, 50);
    let mut state = m.disk();
    assert!(state.segments.len() > 4, "{}", state.segments.len());
    assert!(state.snaps.len() > 3, "{}", state.snaps.len());
    state.segments.drain(..3);
    let kept = state.snaps.len() - 2;
    state.snaps.drain(..kept);
    let path = dir.path().join("purged");
    write_disk(&state, &path).unwrap();

    let classes = [
        FaultClass::FsyncPoint,
        FaultClass::RecordBoundary,
        FaultClass::LostUnsynced,
    ];
    let run = enumerate_member(&RealFs, &path, &opts(&classes)).unwrap();
    let h: &History = &run.history;
    let first = run.first_modelled.expect("states before a bootable prefix");
    assert!(first > h.first_cut());
    assert!(run.not_modelled_count() > 0);
    assert_eq!(
        run.not_modelled[&FaultClass::RecordBoundary],
        first - h.first_cut()
    );
    assert!(run.baseline_finding.is_none(), "{:?}", run.baseline_finding);
    assert_eq!(run.count(Outcome::Violation), 0);
    assert_eq!(run.count(Outcome::Refused), 0);
    assert!(
        run.cross_checks.iter().all(|c| c.ok),
        "{:?}",
        run.cross_checks
    );
    // The boundary is etcd's: one record short, the files do not boot; at it, they do.
    let (before, _) = recover(&DiskState::prefix(h, first - 1));
    let refused = before
        .refused
        .expect("no bootable snapshot one record earlier");
    assert!(refused.contains("file not found"), "{refused}");
    let (at, _) = recover(&DiskState::prefix(h, first));
    assert_eq!(at.refused, None);
    assert!(at.snap_file.is_some(), "boots from a .snap still present");

    // The same member with its files unpurged: every state is modelled.
    let whole = dir.path().join("whole");
    m.write_to(&whole).unwrap();
    let run = enumerate_member(&RealFs, &whole, &opts(&classes)).unwrap();
    assert_eq!(run.not_modelled_count(), 0);
    assert_eq!(run.first_modelled, None);
}
