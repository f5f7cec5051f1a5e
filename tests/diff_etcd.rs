//! Differential test against etcd's own reader: `tools/etcd-ref` is a small Go program built on
//! Debian's etcd 3.4.23 source (`make etcd-ref`). For every member of every capture, and for
//! damaged copies, our ReadAll must give what etcd's gives: the same entries (index, term, type,
//! data length, data CRC-32C), the same HardState, and the same class of outcome.
//!
//! Runs when `RAFT_REPLAY_ETCD_REF` names the built program (`make diff-etcd`, `make test`).

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn etcd_ref() -> Option<String> {
    match std::env::var("RAFT_REPLAY_ETCD_REF") {
        Ok(path) if !path.is_empty() => {
            let path = if Path::new(&path).is_absolute() {
                path
            } else {
                common::repo_dir().join(path).display().to_string()
            };
            assert!(
                Path::new(&path).is_file(),
                "RAFT_REPLAY_ETCD_REF={path} does not exist: run `make etcd-ref`"
            );
            Some(path)
        }
        _ => {
            eprintln!("diff_etcd: RAFT_REPLAY_ETCD_REF not set; run `make diff-etcd` (needs Go and golang-etcd-server-dev)");
            None
        }
    }
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
        let etcd = etcd_readall(&tool, &member, true);
        assert!(
            etcd["error"].is_null(),
            "{capture}/{}: etcd reports {}",
            member.display(),
            etcd["error"]
        );
        let (code, entries, summary) = ours(&member);
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

/// Damage a copy of a real member and compare the outcome class with etcd's.
#[test]
fn damaged_members_get_etcds_outcome() {
    let Some(tool) = etcd_ref() else { return };
    let member = common::members("cluster-a")
        .into_iter()
        .find(|m| m.ends_with("m1"))
        .expect("m1");
    let segments = common::segments(&member);
    let last = segments.last().unwrap().clone();
    let bytes = std::fs::read(&last).unwrap();
    let data_end = raft_replay_data_end(&bytes);

    struct Case {
        name: &'static str,
        damage: Box<dyn Fn(&mut Vec<u8>)>,
        etcd_error: Option<&'static str>,
        our_exit: i32,
    }
    let mid = data_end / 2;
    let cases = vec![
        Case {
            name: "bit flip mid-log",
            damage: Box::new(move |b: &mut Vec<u8>| b[mid] ^= 0x10),
            etcd_error: Some("crc mismatch"),
            our_exit: 1,
        },
        Case {
            name: "torn last record (zeroed tail sector)",
            damage: Box::new(move |b: &mut Vec<u8>| {
                let start = (data_end - 1) / 512 * 512;
                b[start..data_end].fill(0);
            }),
            etcd_error: None,
            our_exit: 0,
        },
        Case {
            name: "20 MiB length word after the last record",
            damage: Box::new(move |b: &mut Vec<u8>| {
                b[data_end..data_end + 8].copy_from_slice(&(20u64 << 20).to_le_bytes())
            }),
            etcd_error: Some("max entry size limit exceeded"),
            our_exit: 1,
        },
    ];
    for case in cases {
        let copy = common::copy_member(&member);
        let target = copy.path().join(last.strip_prefix(&member).unwrap());
        let mut damaged = bytes.clone();
        (case.damage)(&mut damaged);
        std::fs::write(&target, &damaged).unwrap();
        let etcd = etcd_readall(&tool, copy.path(), true);
        match case.etcd_error {
            Some(expected) => {
                let error = etcd["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains(expected),
                    "{}: etcd said {error:?}",
                    case.name
                )
            }
            None => assert!(
                etcd["error"].is_null(),
                "{}: etcd said {}",
                case.name,
                etcd["error"]
            ),
        }
        let (code, entries, _) = ours(copy.path());
        assert_eq!(code, case.our_exit, "{}", case.name);
        if case.etcd_error.is_none() {
            assert_eq!(
                project(&entries),
                project(etcd["entries"].as_array().unwrap()),
                "{}",
                case.name
            );
        }
    }
}

/// Offset just past the last record of a segment: where the first zero length word sits.
fn raft_replay_data_end(bytes: &[u8]) -> usize {
    let mut offset = 0usize;
    while offset + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
        if word == 0 {
            break;
        }
        let (len, pad) = raft_replay::wal::frame::decode_frame_size(word);
        offset += 8 + (len + pad) as usize;
    }
    offset
}
