//! Differential test against etcd's own reader: `tools/etcd-ref` is a small Go program built on
//! Debian's etcd 3.4.23 source (`make etcd-ref`).
//!
//! * Every member of every capture: our ReadAll and boot read give what etcd's give, entry for
//!   entry (index, term, type, data length, data CRC-32C), with the same HardState.
//! * Every damage class (`tests/common/damage.rs`, the same builders as
//!   `tests/reader_outcomes.rs`): our outcome class, entries, every `[etcd: …]` text and the
//!   `.snap` claims of `verify` are what etcd does with the same bytes — its ReadAll as its boot
//!   runs it (`wal.Open` in write mode, `wal.Repair` on `io.ErrUnexpectedEOF`, `etcd-ref boot
//!   --start-index`) at our start, and its whole boot (`etcd-ref boot`).
//! * `every_reader_outcome_has_a_differential_case` (no etcd needed): every `WalErrorKind`
//!   names the cases that exercise it; the damage test checks each case produces exactly those.
//!
//! The etcd side runs when `RAFT_REPLAY_ETCD_REF` names the built program (`make diff-etcd`,
//! `make test`); without it those tests say so and pass.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn etcd_ref() -> Option<String> {
    common::reference_tool(
        "RAFT_REPLAY_ETCD_REF",
        "etcd-ref",
        "`make diff-etcd` (needs Go and golang-etcd-server-dev)",
    )
}

fn etcd_readall(tool: &str, member: &Path, from_start: bool) -> Value {
    let mut cmd = Command::new(tool);
    cmd.arg("readall").arg(member);
    if from_start {
        cmd.args(["--start-index", "0"]);
    }
    let output = cmd.output().expect("run etcd-ref");
    assert!(
        output.status.success(),
        "etcd-ref failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("etcd-ref prints JSON")
}

fn ours(member: &Path) -> (i32, Vec<Value>, Value) {
    let (code, stdout, stderr) =
        common::run_cli(&["dump", member.to_str().unwrap(), "--format", "json"]);
    let entries: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let (_, summary, _) = common::run_cli(&[
        "dump",
        member.to_str().unwrap(),
        "--summary",
        "--format",
        "json",
    ]);
    let summary: Value = serde_json::from_str(&summary)
        .unwrap_or_else(|e| panic!("summary JSON: {e}; stderr {stderr}"));
    (code, entries, summary)
}

const FIELDS: [&str; 5] = ["index", "term", "type", "data_len", "data_crc32c"];

fn project(entries: &[Value]) -> Vec<Vec<Value>> {
    entries
        .iter()
        .map(|e| FIELDS.iter().map(|f| e[*f].clone()).collect())
        .collect()
}

#[test]
fn readall_matches_etcd_on_every_member_of_every_capture() {
    let Some(tool) = etcd_ref() else { return };
    let mut compared = 0;
    for (capture, member) in common::all_members() {
        let (code, entries, summary) = ours(&member);
        // With its first segments purged, etcd reads from its boot snapshot (from index 0 its
        // ReadAll says "file not found"); so do we.
        let purged = summary["start_reason"] == "purged";
        let etcd = etcd_readall(&tool, &member, !purged);
        assert!(
            etcd["error"].is_null(),
            "{capture}/{}: etcd reports {}",
            member.display(),
            etcd["error"]
        );
        assert_eq!(code, 0, "{}", member.display());
        let etcd_entries = etcd["entries"].as_array().unwrap();
        assert!(!etcd_entries.is_empty());
        assert_eq!(
            project(&entries),
            project(etcd_entries),
            "{}: entries differ from etcd's ReadAll",
            member.display()
        );
        for field in ["term", "vote", "commit"] {
            assert_eq!(
                summary["hard_state"][field],
                etcd["hard_state"][field],
                "{}: hard_state.{field}",
                member.display()
            );
        }
        // Where etcd fell back to a snapshot (leader snapshot gap), we start at the same one.
        if let Some(to) = etcd["start_fallback"].get("to") {
            assert_eq!(
                summary["snapshot"]["index"],
                to["index"],
                "{}",
                member.display()
            );
        }
        compared += entries.len();
    }
    assert!(compared > 10_000, "compared {compared} entries");
}

#[test]
fn boot_read_matches_etcd_on_every_member() {
    // etcd's boot: ValidSnapshotEntries → newest matching .snap → ReadAll from there.
    let Some(tool) = etcd_ref() else { return };
    for (_, member) in common::all_members() {
        let etcd = etcd_readall(&tool, &member, false);
        assert!(etcd["error"].is_null());
        let fs = raft_replay::fsio::RealFs;
        let files = raft_replay::member::MemberFiles::open(&fs, &member).unwrap();
        let (valid, snapshot, _) = files.boot_snapshot();
        valid.unwrap();
        let (index, term) = snapshot
            .as_ref()
            .map(|s| (s.snapshot.metadata.index, s.snapshot.metadata.term))
            .unwrap_or((0, 0));
        assert_eq!(etcd["start"]["index"], index, "{}", member.display());
        assert_eq!(
            etcd["snapshot_file"].as_str(),
            snapshot.as_ref().map(|s| s.file_name.as_str())
        );
        let read = files.read_from(index, term, raft_replay::wal::DecoderMode::Strict);
        assert!(read.errors.is_empty());
        let ours: Vec<(u64, u64, usize)> = read
            .entries
            .iter()
            .map(|e| (e.index, e.term, e.data_bytes().len()))
            .collect();
        let theirs: Vec<(u64, u64, usize)> = etcd["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["index"].as_u64().unwrap(),
                    e["term"].as_u64().unwrap(),
                    e["data_len"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{}", member.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Every reader outcome and damage class against etcd's own boot read
// ---------------------------------------------------------------------------------------------

use common::damage::{self, Damaged};
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::proto::raftpb::Entry;
use raft_replay::wal::{DecoderMode, WalError, WalErrorKind};

/// One damage class: the member to read, and where our read and etcd's start.
struct Case {
    name: &'static str,
    build: fn() -> Damaged,
    /// `None`: where `verify` starts (`read_member`: the beginning, or the snapshot a leader
    /// snapshot gap falls back to). `Some`: this `(index, term)`, read with `read_from`.
    start: fn(&Path) -> Option<(u64, u64)>,
}

/// What is compared, per case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Check {
    /// etcd's ReadAll (as its boot runs it) reads on ⇔ our read has no error.
    ReadAllClass,
    /// When both read on: the same entries and HardState.
    ReadAllEntries,
    /// Every `[etcd: …]` text (ours from `etcd_error()`, and in `verify`'s findings) is what
    /// etcd said; a `none: …` text: etcd read on, or another text explains its error.
    Text,
    /// etcd's whole boot (ValidSnapshotEntries, .snap selection, ReadAll, Repair) succeeds ⇔
    /// ours (`boot_snapshot` + `read_from`) has no error.
    BootClass,
    /// The same `.snap` and start snapshot; etcd's unreadable `.snap` files among our skipped.
    BootSelection,
    /// When both boot: the same entries and HardState.
    BootEntries,
    /// `snap.unusable` / `snap.missing` ("etcd … boots from an older snapshot"): etcd boots, from
    /// an older `.snap` (or none); `snap.orphan` ("etcd ignores it"): etcd did not choose it.
    SnapClaim,
    /// `verify` exits 0 (nothing worse than a warning) only when etcd boots.
    Verdict,
}

fn from_verify(_: &Path) -> Option<(u64, u64)> {
    None
}

fn newest_valid_snapshot(member: &Path) -> (u64, u64) {
    let fs = raft_replay::fsio::RealFs;
    let files = MemberFiles::open(&fs, member).unwrap();
    let snap = files.boot_snapshot().0.unwrap().snapshots.pop().unwrap();
    (snap.index, snap.term)
}

fn m1() -> Damaged {
    Damaged::untouched(&damage::member("cluster-a", "m1"))
}

const CASES: &[Case] = &[
    Case {
        name: "bit flip mid-log",
        build: damage::flipped_entry_bit,
        start: from_verify,
    },
    Case {
        name: "torn last record",
        build: damage::torn_last_record,
        start: from_verify,
    },
    Case {
        name: "zeroed sector in a non-last segment",
        build: damage::zeroed_sector_in_non_last_segment,
        start: from_verify,
    },
    Case {
        name: "zero length word in a non-last segment",
        build: damage::zero_length_word_in_non_last_segment,
        start: from_verify,
    },
    Case {
        name: "garbage after a zero length word in a non-last segment",
        build: damage::garbage_after_zero_word_in_non_last_segment,
        start: from_verify,
    },
    Case {
        name: "bit flip in a non-last segment",
        build: damage::bit_flip_in_non_last_segment,
        start: from_verify,
    },
    Case {
        name: "truncated middle segment",
        build: damage::truncated_middle_segment,
        start: from_verify,
    },
    Case {
        name: "oversized length word",
        build: damage::oversized_length_word,
        start: from_verify,
    },
    Case {
        name: "garbage after the end of data in the last segment",
        build: damage::garbage_after_end_of_data,
        start: from_verify,
    },
    Case {
        name: "missing first segment",
        build: damage::missing_first_segment,
        start: from_verify,
    },
    Case {
        name: "sequence gap after segment 0",
        build: damage::sequence_gap_after_zero,
        start: from_verify,
    },
    Case {
        name: "sequence gap after a later segment",
        build: damage::sequence_gap_elsewhere,
        start: from_verify,
    },
    Case {
        name: "truncated newest .snap, an older one matches",
        build: || damage::truncated_newest_snap("cluster-a", "m1"),
        start: from_verify,
    },
    Case {
        name: "truncated newest .snap, the only one",
        build: || damage::truncated_newest_snap("cluster-a", "m5"),
        start: from_verify,
    },
    Case {
        name: "unknown record type",
        build: damage::unknown_record_type,
        start: from_verify,
    },
    Case {
        name: "undecodable entry payload",
        build: damage::undecodable_entry_payload,
        start: from_verify,
    },
    Case {
        name: "entry index gap",
        build: damage::entry_index_gap,
        start: from_verify,
    },
    Case {
        name: "metadata conflict",
        build: damage::metadata_conflict,
        start: from_verify,
    },
    Case {
        name: "record that is not protobuf",
        build: damage::record_not_protobuf,
        start: from_verify,
    },
    Case {
        name: "record ending inside a varint",
        build: damage::record_ending_inside_a_varint,
        start: from_verify,
    },
    Case {
        name: "snapshot term mismatch at the start index",
        build: m1,
        start: |m| {
            let (index, term) = newest_valid_snapshot(m);
            Some((index, term + 1))
        },
    },
    Case {
        name: "start snapshot without a WAL snapshot record",
        build: m1,
        start: |m| {
            let (index, term) = newest_valid_snapshot(m);
            Some((index + 1, term))
        },
    },
    Case {
        name: "directory named like a segment",
        build: damage::directory_as_segment,
        start: from_verify,
    },
    Case {
        name: "no .wal files",
        build: damage::no_wal_files,
        start: from_verify,
    },
];

/// The variant's name and the cases that produce it. Exhaustive, no wildcard: a new
/// `WalErrorKind` does not compile until it names the differential case(s) that hold its etcd
/// text and outcome class to etcd's.
fn coverage(kind: &WalErrorKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        // MemberFiles::open reports it as OpenError::NoWal (exit 2); the case checks the text
        // `NoWalFiles` carries against etcd on an empty wal dir.
        WalErrorKind::NoWalFiles => ("NoWalFiles", &["no .wal files"]),
        WalErrorKind::FileNotFound { .. } => (
            "FileNotFound",
            &[
                "missing first segment",
                "sequence gap after a later segment",
            ],
        ),
        WalErrorKind::SequenceGapAfterZero { .. } => {
            ("SequenceGapAfterZero", &["sequence gap after segment 0"])
        }
        WalErrorKind::RecordCrcMismatch { .. } => (
            "RecordCrcMismatch",
            &[
                "bit flip mid-log",
                "zeroed sector in a non-last segment",
                "bit flip in a non-last segment",
            ],
        ),
        WalErrorKind::ChainCrcMismatch { .. } => (
            "ChainCrcMismatch",
            &["zero length word in a non-last segment"],
        ),
        WalErrorKind::Proto { .. } => ("Proto", &["record that is not protobuf"]),
        // A message ending inside a varint is cut short, as for gogo's Unmarshal.
        WalErrorKind::UnexpectedEof { .. } => (
            "UnexpectedEof",
            &[
                "torn last record",
                "truncated middle segment",
                "record ending inside a varint",
            ],
        ),
        WalErrorKind::RecordTooLarge { .. } => ("RecordTooLarge", &["oversized length word"]),
        WalErrorKind::UnknownRecordType { .. } => ("UnknownRecordType", &["unknown record type"]),
        WalErrorKind::MetadataConflict => ("MetadataConflict", &["metadata conflict"]),
        WalErrorKind::SnapshotMismatch { .. } => (
            "SnapshotMismatch",
            &["snapshot term mismatch at the start index"],
        ),
        WalErrorKind::SnapshotNotFound { .. } => (
            "SnapshotNotFound",
            &["start snapshot without a WAL snapshot record"],
        ),
        WalErrorKind::SliceOutOfRange { .. } => (
            "SliceOutOfRange",
            &["entry index gap", "truncated newest .snap, the only one"],
        ),
        WalErrorKind::PayloadDecode { .. } => ("PayloadDecode", &["undecodable entry payload"]),
        // Strict mode: non-zero bytes after a zero length word in a non-last segment. (Forensic
        // mode also names the bytes it resyncs over; `verify` without --forensic, compared here,
        // never does.)
        WalErrorKind::SkippedBytes { .. } => (
            "SkippedBytes",
            &[
                "zero length word in a non-last segment",
                "garbage after a zero length word in a non-last segment",
            ],
        ),
        // The operating system's error, compared with the one etcd got on the same file.
        WalErrorKind::Io { .. } => ("Io", &["directory named like a segment"]),
    }
}

/// One instance of every variant (the completeness test checks this list against the enum).
fn every_kind() -> Vec<WalErrorKind> {
    vec![
        WalErrorKind::NoWalFiles,
        WalErrorKind::FileNotFound { reason: "".into() },
        WalErrorKind::SequenceGapAfterZero {
            after: 2,
            first_index: 1,
        },
        WalErrorKind::RecordCrcMismatch {
            stored: 0,
            computed: 1,
        },
        WalErrorKind::ChainCrcMismatch {
            stored: 0,
            computed: 1,
        },
        WalErrorKind::Proto { message: "".into() },
        WalErrorKind::UnexpectedEof { reason: "".into() },
        WalErrorKind::RecordTooLarge { record_len: 0 },
        WalErrorKind::UnknownRecordType { record_type: 9 },
        WalErrorKind::MetadataConflict,
        WalErrorKind::SnapshotMismatch {
            index: 1,
            wal_term: 1,
            start_term: 2,
        },
        WalErrorKind::SnapshotNotFound { index: 1, term: 1 },
        WalErrorKind::SliceOutOfRange {
            expected_at_most: 1,
            found: 3,
            bridged_by_snapshot: false,
        },
        WalErrorKind::PayloadDecode {
            record_type: "entry".into(),
            message: "".into(),
        },
        WalErrorKind::SkippedBytes { length: 1 },
        WalErrorKind::Io { message: "".into() },
    ]
}

/// Runs without etcd-ref: every `WalErrorKind` variant (as declared in src/wal/error.rs) names
/// at least one differential case, and every case named exists.
#[test]
fn every_reader_outcome_has_a_differential_case() {
    let source = std::fs::read_to_string(common::repo_dir().join("src/wal/error.rs")).unwrap();
    let body = source
        .split("pub enum WalErrorKind {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("enum WalErrorKind in src/wal/error.rs");
    let mut declared: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| l.split([' ', ',', '{', '(']).next().unwrap())
        .collect();
    declared.sort();
    let mut listed: Vec<&str> = every_kind().iter().map(|k| coverage(k).0).collect();
    listed.sort();
    assert_eq!(
        listed, declared,
        "every_kind() must hold one instance of each WalErrorKind variant"
    );
    let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    for kind in every_kind() {
        let (variant, cases) = coverage(&kind);
        assert!(!cases.is_empty(), "{variant}: no differential case");
        for case in cases {
            assert!(names.contains(case), "{variant}: no case named {case:?}");
        }
        assert!(!WalError::new(kind.clone(), Default::default())
            .etcd_error()
            .is_empty());
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "case names are unique");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bucket {
    /// WalContents.errors: etcd refuses.
    Error,
    /// WalContents.warnings: etcd handles it (a torn tail it repairs) or a note.
    Warning,
    /// WalContents.accepted_by_etcd: damage etcd reads past.
    Accepted,
}

/// One read of ours, reduced to what etcd's output holds.
struct OurRead {
    start: (u64, u64),
    items: Vec<(Bucket, WalError)>,
    entries: Vec<Vec<Value>>,
    hard_state: Value,
    snap_file: Option<String>,
    skipped_snaps: Vec<String>,
}

impl OurRead {
    fn refused(start: (u64, u64), error: WalError) -> OurRead {
        OurRead {
            start,
            items: vec![(Bucket::Error, error)],
            entries: Vec::new(),
            hard_state: Value::Null,
            snap_file: None,
            skipped_snaps: Vec::new(),
        }
    }

    fn from_contents(start: (u64, u64), contents: &raft_replay::wal::WalContents) -> OurRead {
        let items = contents
            .errors
            .iter()
            .map(|e| (Bucket::Error, e.clone()))
            .chain(
                contents
                    .warnings
                    .iter()
                    .map(|e| (Bucket::Warning, e.clone())),
            )
            .chain(
                contents
                    .accepted_by_etcd
                    .iter()
                    .map(|e| (Bucket::Accepted, e.clone())),
            )
            .collect();
        let hs = &contents.hard_state;
        OurRead {
            start,
            items,
            entries: contents.entries.iter().map(project_entry).collect(),
            hard_state: serde_json::json!({"term": hs.term, "vote": hs.vote, "commit": hs.commit}),
            snap_file: None,
            skipped_snaps: Vec::new(),
        }
    }

    /// We say etcd refuses. (A start snapshot without its record is a warning, `start_found:
    /// false`: etcd 3.4's ReadAll in write mode loses ErrSnapshotNotFound and boots.)
    fn refuses(&self) -> bool {
        self.items.iter().any(|(b, _)| *b == Bucket::Error)
    }
}

fn project_entry(e: &Entry) -> Vec<Value> {
    vec![
        e.index.into(),
        e.term.into(),
        e.type_name().into(),
        e.data_bytes().len().into(),
        crc32c::crc32c(e.data_bytes()).into(),
    ]
}

/// `read_member` (what `verify` reads) or `read_from` at an explicit start.
fn our_readall(path: &Path, start: Option<(u64, u64)>) -> OurRead {
    let fs = raft_replay::fsio::RealFs;
    let files = match MemberFiles::open(&fs, path) {
        Ok(files) => files,
        Err(raft_replay::member::OpenError::NoWal { .. }) => {
            let error = WalError::new(WalErrorKind::NoWalFiles, Default::default());
            return OurRead::refused(start.unwrap_or((0, 0)), error);
        }
        Err(e) => panic!("{e}"),
    };
    match start {
        Some((index, term)) => {
            let contents = files.read_from(index, term, DecoderMode::Strict);
            OurRead::from_contents((index, term), &contents)
        }
        None => {
            let read = read_member(&files, DecoderMode::Strict);
            OurRead::from_contents((read.start.index, read.start.term), &read.contents)
        }
    }
}

/// Our model of etcd's boot: ValidSnapshotEntries + LoadNewestAvailable, then ReadAll from it.
fn our_boot(path: &Path) -> OurRead {
    let fs = raft_replay::fsio::RealFs;
    let files = match MemberFiles::open(&fs, path) {
        Ok(files) => files,
        Err(raft_replay::member::OpenError::NoWal { .. }) => {
            let error = WalError::new(WalErrorKind::NoWalFiles, Default::default());
            return OurRead::refused((0, 0), error);
        }
        Err(e) => panic!("{e}"),
    };
    let (valid, snapshot, skipped) = files.boot_snapshot();
    if let Err(error) = valid {
        return OurRead::refused((0, 0), error);
    }
    let start = snapshot
        .as_ref()
        .map(|s| (s.snapshot.metadata.index, s.snapshot.metadata.term))
        .unwrap_or((0, 0));
    let contents = files.read_from(start.0, start.1, DecoderMode::Strict);
    let mut read = OurRead::from_contents(start, &contents);
    read.snap_file = snapshot.map(|s| s.file_name);
    read.skipped_snaps = skipped.into_iter().map(|s| s.file_name).collect();
    read
}

/// etcd's boot read (`etcd-ref boot`, on a private copy): at `start`, or with etcd's own
/// snapshot selection.
fn etcd_boot(tool: &str, member: &Path, start: Option<(u64, u64)>) -> Value {
    let mut cmd = Command::new(tool);
    cmd.arg("boot").arg(member);
    if let Some((index, term)) = start {
        cmd.args([
            "--start-index",
            &index.to_string(),
            "--start-term",
            &term.to_string(),
        ]);
    }
    let output = cmd.output().expect("run etcd-ref");
    assert!(
        output.status.success(),
        "etcd-ref failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("etcd-ref prints JSON")
}

/// The part of an etcd text that etcd's error string contains: "proto: …" is any protobuf
/// error, "panic: unmarshal" the start of pbutil.MustUnmarshal's panic.
fn comparable(text: &str) -> &str {
    text.trim_end_matches('…').trim_end()
}

/// The operating system's error in one of our I/O messages, as Go prints it ("is a directory").
fn os_error(message: &str) -> String {
    let message = message.split(" (os error").next().unwrap();
    let message = message.rsplit("I/O error: ").next().unwrap();
    message.to_lowercase()
}

/// Whether etcd's outcome bears out one `[etcd: …]` text of ours. `others`: the other
/// non-`none` texts of the same read, which may explain etcd's error instead.
fn text_holds(
    text: &str,
    bucket: Bucket,
    io_message: Option<&str>,
    etcd: &Value,
    others: &[String],
) -> Result<(), String> {
    let error = etcd["error"].as_str();
    let repaired = etcd["repaired_error"].as_str();
    let says = |t: &str| {
        error.is_some_and(|e| e.contains(t))
            || (bucket == Bucket::Warning && repaired.is_some_and(|e| e.contains(t)))
    };
    let holds = if text.starts_with("none:") {
        error.is_none() || others.iter().any(|t| says(comparable(t)))
    } else if let Some(message) = io_message {
        says(&os_error(message))
    } else {
        says(comparable(text))
    };
    if holds {
        Ok(())
    } else {
        Err(format!(
            "[etcd: {text}] ({bucket:?}), but etcd said error {:?}, repaired {:?}",
            error, repaired
        ))
    }
}

/// Our `verify --format json` exit code and findings for a member.
fn verify_findings(path: &Path) -> (i32, Vec<Value>) {
    let (code, stdout, stderr) =
        common::run_cli(&["verify", "--format", "json", path.to_str().unwrap()]);
    if code == 2 {
        return (code, Vec::new()); // the member could not be read at all (no .wal file)
    }
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify JSON ({e}): {stdout} {stderr}"));
    let findings = report["members"][0]["findings"].as_array().unwrap().clone();
    (code, findings)
}

fn verdict_check(code: Option<i32>, findings: &[Value], etcd: &Value) -> Result<(), String> {
    if code != Some(0) || etcd["error"].is_null() {
        return Ok(());
    }
    let kinds: Vec<&str> = findings.iter().filter_map(|f| f["kind"].as_str()).collect();
    Err(format!(
        "verify exits 0 ({kinds:?}), but etcd's boot fails: {} (stage {})",
        etcd["error"], etcd["error_stage"]
    ))
}

/// The `[etcd: …]` text at the end of a finding's message.
fn etcd_text(message: &str) -> Option<&str> {
    let at = message.rfind("[etcd: ")?;
    Some(message[at + "[etcd: ".len()..].trim_end_matches(']'))
}

fn class_check(ours: &OurRead, etcd: &Value) -> Result<(), String> {
    let etcd_reads_on = etcd["error"].is_null();
    if etcd_reads_on != ours.refuses() {
        return Ok(());
    }
    let ours: Vec<String> = ours
        .items
        .iter()
        .map(|(b, e)| format!("{b:?}: {e}"))
        .collect();
    Err(format!(
        "etcd error {} (stage {}), ours {ours:?}",
        etcd["error"], etcd["error_stage"]
    ))
}

fn entries_check(ours: &OurRead, etcd: &Value) -> Result<(), String> {
    if !etcd["error"].is_null() || ours.refuses() {
        return Ok(());
    }
    let theirs: Vec<Vec<Value>> = etcd["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| FIELDS.iter().map(|f| e[*f].clone()).collect())
        .collect();
    if ours.entries != theirs {
        return Err(format!(
            "{} entries ({:?}..{:?}), etcd {} ({:?}..{:?})",
            ours.entries.len(),
            ours.entries.first(),
            ours.entries.last(),
            theirs.len(),
            theirs.first(),
            theirs.last()
        ));
    }
    if ours.hard_state != etcd["hard_state"] {
        return Err(format!(
            "HardState {} , etcd {}",
            ours.hard_state, etcd["hard_state"]
        ));
    }
    Ok(())
}

/// Our texts (library items, and `verify`'s findings when the read is verify's) against etcd.
fn text_check(ours: &OurRead, findings: &[Value], etcd: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    let texts: Vec<String> = ours
        .items
        .iter()
        .map(|(_, e)| e.etcd_error().to_string())
        .filter(|t| !t.starts_with("none:"))
        .collect();
    for (bucket, error) in &ours.items {
        let io = match &error.kind {
            WalErrorKind::Io { message } => Some(message.as_str()),
            _ => None,
        };
        if let Err(e) = text_holds(error.etcd_error(), *bucket, io, etcd, &texts) {
            problems.push(format!("{error}: {e}"));
        }
    }
    for f in findings {
        let kind = f["kind"].as_str().unwrap();
        let message = f["message"].as_str().unwrap();
        let Some(text) = etcd_text(message) else {
            continue;
        };
        let bucket = if f["severity"] == "warning" {
            Bucket::Warning
        } else {
            Bucket::Error
        };
        let io = (kind == "wal.io").then_some(message);
        if let Err(e) = text_holds(text, bucket, io, etcd, &texts) {
            problems.push(format!("verify {kind}: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn selection_check(ours: &OurRead, etcd: &Value) -> Result<(), String> {
    let stage = etcd["error_stage"].as_str();
    if matches!(stage, Some("valid_snapshot_entries" | "load_snapshot")) {
        return Ok(()); // BootClass judges a boot that never got to choose
    }
    let mut problems = Vec::new();
    if etcd["snapshot_file"].as_str() != ours.snap_file.as_deref() {
        problems.push(format!(
            ".snap {:?}, etcd {}",
            ours.snap_file, etcd["snapshot_file"]
        ));
    }
    let start = (
        etcd["start"]["index"].as_u64().unwrap(),
        etcd["start"]["term"].as_u64().unwrap(),
    );
    if start != ours.start {
        problems.push(format!("start {:?}, etcd {start:?}", ours.start));
    }
    for skipped in etcd["skipped_snap_files"].as_array().unwrap() {
        let name = skipped["name"].as_str().unwrap();
        if !ours.skipped_snaps.iter().any(|s| s == name) {
            problems.push(format!("etcd skipped {name} ({})", skipped["error"]));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// `snap.unusable` / `snap.missing` say etcd skips a `.snap` (or lacks one) and boots from an
/// older snapshot; `snap.orphan` that etcd ignores the file.
fn snap_claim_check(findings: &[Value], etcd: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    let chosen = etcd["snapshot_file"].as_str();
    let booted = etcd["error"].is_null();
    for f in findings {
        let kind = f["kind"].as_str().unwrap();
        let message = f["message"].as_str().unwrap();
        let file = match kind {
            "snap.unusable" | "snap.orphan" => f["segment"].as_str().unwrap().to_string(),
            "snap.missing" => message
                .split("has no ")
                .nth(1)
                .and_then(|m| m.split(':').next())
                .unwrap_or_else(|| panic!("snap.missing names its file: {message}"))
                .to_string(),
            _ => continue,
        };
        let holds = match kind {
            "snap.orphan" => chosen != Some(file.as_str()),
            _ => booted && chosen.map_or(true, |c| c < file.as_str()),
        };
        if !holds {
            problems.push(format!(
                "{kind} {file}: {message}; etcd chose {:?} (error {}, stage {})",
                chosen, etcd["error"], etcd["error_stage"]
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The variants our reads produced.
fn variants(reads: &[&OurRead]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = reads
        .iter()
        .flat_map(|r| r.items.iter().map(|(_, e)| coverage(&e.kind).0))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every damage class of tests/reader_outcomes.rs (and a few more), each read by us and by
/// etcd 3.4.23 itself: the outcome class, the entries, every `[etcd: …]` text of ours and the
/// `.snap` claims must be what etcd does.
#[test]
fn every_damage_class_gets_etcds_outcome_and_words() {
    let Some(tool) = etcd_ref() else { return };
    let mut report = Vec::new();
    for case in CASES {
        let damaged = (case.build)();
        let path = damaged.path();
        let start = (case.start)(path);
        let ours = our_readall(path, start);
        let (code, findings) = if start.is_none() {
            let (code, findings) = verify_findings(path);
            (Some(code), findings)
        } else {
            (None, Vec::new())
        };
        let boot = our_boot(path);
        let etcd_read = etcd_boot(&tool, path, Some(ours.start));
        let etcd_booted = etcd_boot(&tool, path, None);

        let results = [
            (Check::ReadAllClass, class_check(&ours, &etcd_read)),
            (Check::ReadAllEntries, entries_check(&ours, &etcd_read)),
            (Check::Text, text_check(&ours, &findings, &etcd_read)),
            (Check::BootClass, class_check(&boot, &etcd_booted)),
            (Check::BootSelection, selection_check(&boot, &etcd_booted)),
            (Check::BootEntries, entries_check(&boot, &etcd_booted)),
            (Check::SnapClaim, snap_claim_check(&findings, &etcd_booted)),
            (Check::Verdict, verdict_check(code, &findings, &etcd_booted)),
        ];
        for (check, result) in results {
            if let Err(e) = result {
                report.push(format!("{}: {check:?}: {e}", case.name));
            }
        }

        let produced = variants(&[&ours, &boot]);
        let mut expected: Vec<&'static str> = every_kind()
            .iter()
            .map(coverage)
            .filter(|(_, cases)| cases.contains(&case.name))
            .map(|(variant, _)| variant)
            .collect();
        expected.sort();
        if produced != expected {
            report.push(format!(
                "{}: produced {produced:?}, coverage() lists it for {expected:?}",
                case.name
            ));
        }
        eprintln!(
            "diff_etcd: {:<55} etcd ReadAll: {:<45} boot: {}",
            case.name,
            etcd_read["error"]
                .as_str()
                .map(str::to_string)
                .or_else(|| etcd_read["repaired_error"]
                    .as_str()
                    .map(|e| format!("none (repaired {e})")))
                .unwrap_or_else(|| "none".into()),
            etcd_booted["error"].as_str().unwrap_or("none"),
        );
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}
