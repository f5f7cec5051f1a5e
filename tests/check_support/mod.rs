//! Support for the `check_*` tests: members built record by record (a scripted cluster log, or a
//! real capture decoded and re-encoded with a valid CRC chain), run through `verify` in memory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;
use raft_replay::check::Finding;
use raft_replay::fsio::MemFs;
use raft_replay::proto::etcdserverpb::Metadata;
use raft_replay::proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeV2, ConfState, Entry, HardState, Snapshot,
    SnapshotMetadata,
};
use raft_replay::proto::snappb::SnapFile;
use raft_replay::proto::walpb::{
    WalSnapshot, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE,
};
use raft_replay::wal::decoder::{Decoder, DecoderMode, Segment};
use raft_replay::wal::name::parse_wal_name;
use raft_replay::wal::writer::encode_record;

pub const CLUSTER_ID: u64 = 0xc1;

/// One WAL record, editable.
#[derive(Clone, Debug, PartialEq)]
pub enum Rec {
    Crc,
    Metadata(Vec<u8>),
    Entry(Entry),
    State(HardState),
    Snapshot(WalSnapshot),
}

impl Rec {
    pub fn entry_index(&self) -> Option<u64> {
        match self {
            Rec::Entry(e) => Some(e.index),
            _ => None,
        }
    }
}

/// A member as segments of records, plus `.snap` files.
#[derive(Clone, Debug, Default)]
pub struct Member {
    pub segments: Vec<(String, Vec<Rec>)>,
    pub snaps: Vec<(String, Bytes)>,
}

pub fn metadata(node_id: u64) -> Vec<u8> {
    Metadata {
        node_id,
        cluster_id: CLUSTER_ID,
    }
    .encode_to_vec()
}

pub fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: Some(Bytes::copy_from_slice(data)),
    }
}

/// An etcd v1 conf change entry (0 AddNode, 1 RemoveNode, 2 UpdateNode, 3 AddLearnerNode) with
/// the context etcd writes.
pub fn conf_entry(index: u64, term: u64, change: i32, node_id: u64) -> Entry {
    let context = match change {
        0 | 3 => format!(
            r#"{{"id":{node_id},"peerURLs":["http://n{node_id}:2380"]{}}}"#,
            if change == 3 {
                r#","isLearner":true"#
            } else {
                ""
            }
        ),
        _ => String::new(),
    };
    let cc = ConfChange {
        id: index,
        r#type: change,
        node_id,
        context: Some(context.into_bytes()),
    };
    Entry {
        r#type: 1,
        term,
        index,
        data: Some(cc.encode_to_vec().into()),
    }
}

/// etcd's promotion: AddNode of a learner with `isPromote`.
pub fn promote_entry(index: u64, term: u64, node_id: u64) -> Entry {
    let cc = ConfChange {
        id: index,
        r#type: 0,
        node_id,
        context: Some(
            format!(r#"{{"id":{node_id},"peerURLs":null,"isPromote":true}}"#).into_bytes(),
        ),
    };
    Entry {
        r#type: 1,
        term,
        index,
        data: Some(cc.encode_to_vec().into()),
    }
}

/// A ConfChangeV2 entry: transition 0 auto, 1 implicit, 2 explicit; changes (type, node).
pub fn v2_entry(index: u64, term: u64, transition: i32, changes: &[(i32, u64)]) -> Entry {
    let cc = ConfChangeV2 {
        transition,
        changes: changes
            .iter()
            .map(|(t, id)| ConfChangeSingle {
                r#type: *t,
                node_id: *id,
            })
            .collect(),
        context: None,
    };
    Entry {
        r#type: 2,
        term,
        index,
        data: Some(cc.encode_to_vec().into()),
    }
}

pub fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

pub fn snap_file(index: u64, term: u64, conf_state: ConfState) -> (String, Bytes) {
    let snapshot = Snapshot {
        data: Some(Bytes::from_static(br#"{"Root":{}}"#)),
        metadata: SnapshotMetadata {
            conf_state,
            index,
            term,
        },
    };
    let data = snapshot.encode_to_vec();
    let file = SnapFile {
        crc: crc32c::crc32c(&data),
        data: Some(data.into()),
    };
    (
        format!("{term:016x}-{index:016x}.snap"),
        Bytes::from(file.encode_to_vec()),
    )
}

pub fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    }
}

impl Member {
    /// A new WAL as `wal.Create` starts it: crc, metadata, snapshot {0,0}.
    pub fn create(node_id: u64) -> Member {
        Member {
            segments: vec![(
                "0000000000000000-0000000000000000.wal".into(),
                vec![
                    Rec::Crc,
                    Rec::Metadata(metadata(node_id)),
                    Rec::Snapshot(WalSnapshot::default()),
                ],
            )],
            snaps: Vec::new(),
        }
    }

    fn tail(&mut self) -> &mut Vec<Rec> {
        &mut self.segments.last_mut().expect("a segment").1
    }

    /// etcd's `Save`: entries, then the state (an empty state is not written).
    pub fn save(&mut self, state: HardState, entries: &[Entry]) -> &mut Self {
        for e in entries {
            self.tail().push(Rec::Entry(e.clone()));
        }
        if !state.is_empty() {
            self.tail().push(Rec::State(state));
        }
        self
    }

    pub fn snapshot(&mut self, index: u64, term: u64) -> &mut Self {
        self.tail().push(Rec::Snapshot(WalSnapshot {
            index,
            term,
            conf_state: None,
        }));
        self
    }

    pub fn push(&mut self, rec: Rec) -> &mut Self {
        self.tail().push(rec);
        self
    }

    /// Every record, in order, with (segment, position).
    pub fn records(&self) -> impl Iterator<Item = (usize, usize, &Rec)> {
        self.segments
            .iter()
            .enumerate()
            .flat_map(|(s, (_, recs))| recs.iter().enumerate().map(move |(i, r)| (s, i, r)))
    }

    /// (segment, position) of the last record holding entry `index`.
    pub fn find_entry(&self, index: u64) -> (usize, usize) {
        self.records()
            .filter(|(_, _, r)| r.entry_index() == Some(index))
            .map(|(s, i, _)| (s, i))
            .last()
            .unwrap_or_else(|| panic!("no entry {index}"))
    }

    pub fn rec_mut(&mut self, at: (usize, usize)) -> &mut Rec {
        &mut self.segments[at.0].1[at.1]
    }

    pub fn entry_mut(&mut self, index: u64) -> &mut Entry {
        let at = self.find_entry(index);
        match self.rec_mut(at) {
            Rec::Entry(e) => e,
            _ => unreachable!(),
        }
    }

    /// Segment files with a valid CRC chain; `tail_padding` zero bytes after the last one (the
    /// preallocated tail).
    pub fn encode(&self, tail_padding: usize) -> Vec<(String, Vec<u8>)> {
        let mut crc = 0u32;
        let last = self.segments.len() - 1;
        self.segments
            .iter()
            .enumerate()
            .map(|(s, (name, recs))| {
                let mut bytes = Vec::new();
                for rec in recs {
                    let (t, data) = match rec {
                        Rec::Crc => (CRC_TYPE, None),
                        Rec::Metadata(m) => (METADATA_TYPE, Some(m.clone())),
                        Rec::Entry(e) => (ENTRY_TYPE, Some(e.encode_to_vec())),
                        Rec::State(h) => (STATE_TYPE, Some(h.encode_to_vec())),
                        Rec::Snapshot(w) => (SNAPSHOT_TYPE, Some(w.encode_to_vec())),
                    };
                    bytes.extend(encode_record(&mut crc, t, data.as_deref()));
                }
                if s == last {
                    bytes.resize(bytes.len() + tail_padding, 0);
                }
                (name.clone(), bytes)
            })
            .collect()
    }

    /// Decodes a real member data dir into records (every record must be valid).
    pub fn from_dir(dir: &Path) -> Member {
        let wal = dir.join("member").join("wal");
        let mut names: Vec<String> = std::fs::read_dir(&wal)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wal"))
            .collect();
        names.sort();
        let segments: Vec<Segment> = names
            .iter()
            .map(|n| Segment {
                name: parse_wal_name(n).unwrap(),
                bytes: Bytes::from(std::fs::read(wal.join(n)).unwrap()),
            })
            .collect();
        let mut decoder = Decoder::from_segments(segments, DecoderMode::Strict);
        let mut out: Vec<(String, Vec<Rec>)> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        while let Ok(d) = decoder.next_record() {
            let data = d.record.data.clone().unwrap_or_default();
            let rec = match d.record.r#type {
                CRC_TYPE => {
                    decoder.reseed(d.record.crc);
                    Rec::Crc
                }
                METADATA_TYPE => Rec::Metadata(data.to_vec()),
                ENTRY_TYPE => Rec::Entry(Entry::decode(data).unwrap()),
                STATE_TYPE => Rec::State(HardState::decode(data).unwrap()),
                SNAPSHOT_TYPE => Rec::Snapshot(WalSnapshot::decode(data).unwrap()),
                t => panic!("record type {t}"),
            };
            out[d.segment_index].1.push(rec);
        }
        let snap_dir = dir.join("member").join("snap");
        let mut snaps = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&snap_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".snap") {
                    snaps.push((name, Bytes::from(std::fs::read(e.path()).unwrap())));
                }
            }
        }
        snaps.sort();
        Member {
            segments: out,
            snaps,
        }
    }

    /// Puts this member under `/cluster/<name>` in `fs`, its tail padded as etcd preallocates.
    pub fn install(&self, fs: &mut MemFs, name: &str) -> PathBuf {
        self.install_bytes(fs, name, self.encode(4096))
    }

    pub fn install_bytes(
        &self,
        fs: &mut MemFs,
        name: &str,
        segments: Vec<(String, Vec<u8>)>,
    ) -> PathBuf {
        let root = PathBuf::from("/cluster").join(name);
        for (seg, bytes) in segments {
            fs.insert(root.join("member/wal").join(seg), bytes);
        }
        for (snap, bytes) in &self.snaps {
            fs.insert(root.join("member/snap").join(snap), bytes.clone());
        }
        root
    }

    pub fn write_dir(&self, dir: &Path) {
        let wal = dir.join("member/wal");
        let snap = dir.join("member/snap");
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::create_dir_all(&snap).unwrap();
        for (name, bytes) in self.encode(4096) {
            std::fs::write(wal.join(name), bytes).unwrap();
        }
        for (name, bytes) in &self.snaps {
            std::fs::write(snap.join(name), bytes).unwrap();
        }
    }
}

/// `verify` over these members together: every finding.
pub fn verify(members: &[(&str, &Member)]) -> Vec<Finding> {
    let mut fs = MemFs::default();
    let paths: Vec<PathBuf> = members
        .iter()
        .map(|(name, m)| m.install(&mut fs, name))
        .collect();
    verify_fs(&fs, &paths)
}

/// The whole of `verify` (the one pipeline: checks, replay, HashKV agreement) in memory.
pub fn verify_fs(fs: &MemFs, paths: &[PathBuf]) -> Vec<Finding> {
    let report =
        raft_replay::verify::verify_cluster(fs, paths, &Default::default()).expect("verify runs");
    report
        .members
        .into_iter()
        .flat_map(|r| r.findings)
        .collect()
}

pub fn failures(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity.is_failure())
        .collect()
}

/// The set of failing kinds.
pub fn failing_kinds(findings: &[Finding]) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = failures(findings).iter().map(|f| f.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

pub fn show(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts the failing findings are exactly of `kind` (one or more), all about `member`, the
/// first at `raft_index`; returns them.
#[track_caller]
pub fn assert_only(
    findings: &[Finding],
    kind: &str,
    member: &str,
    raft_index: u64,
) -> Vec<Finding> {
    let failing: Vec<Finding> = failures(findings).into_iter().cloned().collect();
    assert!(
        !failing.is_empty() && failing.iter().all(|f| f.kind == kind),
        "expected only {kind}, got:\n{}",
        show(findings)
    );
    assert!(
        failing.iter().all(|f| f.member.ends_with(member)),
        "expected findings about {member}:\n{}",
        show(findings)
    );
    assert_eq!(
        failing[0].location.raft_index,
        Some(raft_index),
        "{kind} at the wrong index:\n{}",
        show(findings)
    );
    failing
}

/// A three-voter cluster log (ids 1, 2, 3) as member `node_id` persists it: etcd's bootstrap
/// conf changes at term 1, an election in term 2 won by 1, the leader's no-op, batches of normal
/// entries (each batch's state commits the previous batch), a learner 4 added at 25 and promoted
/// at 35, and a local snapshot at 40 with its `.snap`. Ends with entries 1..=60, commit 60.
pub fn scripted(node_id: u64) -> Member {
    let mut m = Member::create(node_id);
    m.save(
        hs(1, 0, 3),
        &[
            conf_entry(1, 1, 0, 1),
            conf_entry(2, 1, 0, 2),
            conf_entry(3, 1, 0, 3),
        ],
    );
    m.save(hs(2, 1, 3), &[]);
    let mut index = 4;
    let mut commit = 3;
    let mut snapshotted = false;
    while index <= 60 {
        let end = (index + 4).min(60);
        let batch: Vec<Entry> = (index..=end)
            .map(|i| match i {
                4 => Entry {
                    r#type: 0,
                    term: 2,
                    index: 4,
                    data: None,
                },
                25 => conf_entry(25, 2, 3, 4),
                35 => promote_entry(35, 2, 4),
                i => entry(i, 2, format!("put k{i}").as_bytes()),
            })
            .collect();
        m.save(hs(2, 1, commit), &batch);
        commit = end;
        index = end + 1;
        if !snapshotted && commit >= 40 {
            // A local snapshot of applied index 40, after the Save that committed it.
            m.save(hs(2, 1, commit), &[]);
            m.snapshot(40, 2);
            m.snaps.push(snap_file(40, 2, voters(&[1, 2, 3, 4])));
            snapshotted = true;
        }
    }
    m.save(hs(2, 1, 60), &[]);
    m
}

/// One record frame of a real member: where it is and what it holds.
#[derive(Clone, Debug)]
pub struct Frame {
    pub segment: String,
    pub offset: u64,
    pub frame_len: u64,
    pub record_type: i64,
    pub entry_index: Option<u64>,
}

/// Every record frame of a member data dir, in order.
pub fn frames(dir: &Path) -> Vec<Frame> {
    let wal = dir.join("member").join("wal");
    let mut names: Vec<String> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    let segments: Vec<Segment> = names
        .iter()
        .map(|n| Segment {
            name: parse_wal_name(n).unwrap(),
            bytes: Bytes::from(std::fs::read(wal.join(n)).unwrap()),
        })
        .collect();
    let mut decoder = Decoder::from_segments(segments, DecoderMode::Strict);
    let mut out = Vec::new();
    while let Ok(d) = decoder.next_record() {
        if d.record.r#type == CRC_TYPE {
            decoder.reseed(d.record.crc);
        }
        let entry_index = (d.record.r#type == ENTRY_TYPE)
            .then(|| Entry::decode(d.record.data.clone().unwrap_or_default()).ok())
            .flatten()
            .map(|e| e.index);
        out.push(Frame {
            segment: names[d.segment_index].clone(),
            offset: d.offset,
            frame_len: d.frame_len,
            record_type: d.record.r#type,
            entry_index,
        });
    }
    out
}

/// A member's dir copied into `fs` as is (real bytes), under `/cluster/<name>`.
pub fn install_dir(fs: &mut MemFs, dir: &Path, name: &str) -> PathBuf {
    let root = PathBuf::from("/cluster").join(name);
    for sub in ["wal", "snap"] {
        let from = dir.join("member").join(sub);
        let Ok(rd) = std::fs::read_dir(&from) else {
            continue;
        };
        for e in rd.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if file == "db" {
                continue;
            }
            fs.insert(
                root.join("member").join(sub).join(file),
                Bytes::from(std::fs::read(e.path()).unwrap()),
            );
        }
    }
    root
}

/// A corpus capture unpacked once under the cargo target dir and reused by every run (the
/// unpack goes to a temp dir renamed into place, so concurrent test binaries do not race).
pub fn corpus_capture(capture: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check-corpus");
    let dir = root.join(capture);
    if dir.join(".complete").exists() {
        return dir;
    }
    std::fs::create_dir_all(&root).unwrap();
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{capture}-"))
        .tempdir_in(&root)
        .unwrap();
    let archive = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(capture)
        .join("data.tar.gz");
    let file = std::fs::File::open(&archive).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(staging.path())
        .unwrap();
    std::fs::write(staging.path().join(".complete"), b"").unwrap();
    let staged = staging.keep();
    if std::fs::rename(&staged, &dir).is_err() {
        // Another test binary got there first.
        let _ = std::fs::remove_dir_all(&staged);
    }
    dir
}

/// Member data dirs (holding `member/wal`) of a capture, sorted.
pub fn corpus_members(capture: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![corpus_capture(capture)];
    while let Some(dir) = stack.pop() {
        if dir.join("member").join("wal").is_dir() {
            found.push(dir);
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}
