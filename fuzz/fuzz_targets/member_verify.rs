//! A whole member directory in a `MemFs` through the one verify pipeline (`verify_cluster`):
//! etcd's boot read, every invariant, the raft-rs replay, the KV replay (from the db where the
//! WAL starts late) and the db ↔ log checks.
//!
//! Input: a packed member (`fuzz_support::unpack`): tag 0 a WAL segment (named by its position and
//! `arg` as its first raft index), tag 1 a `.snap` file (`arg`: term << 32 | index), tag 2
//! `member/snap/db`.
//!
//! Properties: no panic (a panic inside the replay is a finding, `run_guarded`; anywhere else a
//! crash); allocations within `Budget::PIPELINE` of the input's length; a member with a WAL is a
//! report, never an error; every finding names the member; every `wal.*` finding that names a
//! segment names one that exists, with a byte offset inside it; every `snap.*` finding names its
//! file or raft index; streaming and holding the entries give the same findings.
#![no_main]

use std::path::{Path, PathBuf};

use fuzz_support::{member_fs, Budget};
use libfuzzer_sys::fuzz_target;
use raft_replay::{verify_cluster, EntryReading, Finding, MemFs, VerifyOptions};

fn check_finding(f: &Finding, fs: &MemFs) {
    assert_eq!(f.member, "/m", "{f:?}");
    if f.kind.starts_with("wal.") {
        if let Some(segment) = &f.location.segment {
            let path = Path::new("/m/member/wal").join(segment);
            let len = fs
                .files
                .get(&path)
                .unwrap_or_else(|| panic!("{} names {segment}, not a file: {f:?}", f.kind))
                .len() as u64;
            if let Some(offset) = f.location.offset {
                assert!(offset <= len, "{} at byte {offset} of {len}: {f:?}", f.kind);
            }
        }
    }
    if f.kind.starts_with("snap.") {
        assert!(
            f.location.segment.is_some()
                || f.location.raft_index.is_some()
                || f.message.contains(".snap"),
            "{} without a file or index: {f:?}",
            f.kind
        );
    }
}

fn summary(findings: &[Finding]) -> Vec<(&'static str, String)> {
    let mut s: Vec<_> = findings
        .iter()
        .map(|f| (f.kind, f.location.to_string()))
        .collect();
    s.sort();
    s
}

fuzz_target!(|data: &[u8]| {
    let fs = member_fs(data);
    if !fs.files.keys().any(|p| p.starts_with("/m/member/wal")) {
        return;
    }
    let members = [PathBuf::from("/m")];
    Budget::PIPELINE.enforce(data.len(), || {
        let mut all = Vec::new();
        for entries in [EntryReading::Stream, EntryReading::Hold] {
            let options = VerifyOptions {
                entries,
                jobs: 1,
                ..Default::default()
            };
            let report = verify_cluster(&fs, &members, &options)
                .unwrap_or_else(|e| panic!("a member with a WAL gives a report: {e}"));
            let findings: Vec<Finding> = report.findings().cloned().collect();
            for f in &findings {
                check_finding(f, &fs);
            }
            let _ = report.to_json();
            let _ = report.to_text();
            all.push(findings);
        }
        assert_eq!(
            summary(&all[0]),
            summary(&all[1]),
            "stream and hold disagree"
        );
    });
});
