//! A synthetic member dir for benchmarks and profiles: a long log of small puts, written with
//! [`WalWriter`] so the bytes are exactly etcd's (frames, CRC chain, segment cuts at 64 MB).
//!
//! The log is what a fresh single-member etcd 3.4 cluster writes under a put load: the bootstrap
//! `ConfChange{AddNode}` at index 1 (term 1, HardState commit 1), the new leader's empty entry at
//! index 2 (term 2), then `InternalRaftRequest{header: {id}, put: {key, value}}` entries saved in
//! batches, each batch's HardState committing the batch before it (a leader commits after the
//! quorum acknowledged), and a final HardState committing everything.
//!
//! Like a cluster run with etcd's revision auto-compaction (`--auto-compaction-mode=revision`),
//! the log also holds a `compaction{revision}` request every [`SynthSpec::compact_every`] puts,
//! keeping the last [`SynthSpec::compact_retention`] revisions, so the MVCC history the replay
//! rebuilds stays bounded however long the log is.
//!
//! The issue-17 workload mixes in what `etcdctl txn` and `etcdctl del` propose
//! ([`SynthSpec::txn_every`], [`SynthSpec::delete_every`]): a request is a txn or a delete with
//! probability 1 / n each, chosen by a hash of its number so every key sees all three kinds. A
//! txn compares the key's version (or, every other txn, its value) with what the log wrote last
//! and puts on success, as `etcdctl txn` sends `Compare{EQUAL, VERSION|VALUE, key}` and a success
//! `RequestOp{put}`; the writer tracks each key's version and last value (O(keys)), so every
//! compare holds and every delete removes a live key. The compactions target the revision the
//! store really reached (a delete of a live key is a revision too).
//!
//! Memory stays bounded while writing: each closed segment goes to disk at the cut and the
//! writer continues from the new tail ([`WalWriter::resume`] with empty placeholders for the
//! segments already written, so sequence numbers and the CRC chain continue exactly).

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, CompareResult, CompareTarget,
    DeleteRangeRequest, InternalRaftRequest, Metadata, PutRequest, RequestHeader, RequestOp,
    TxnRequest,
};
use crate::proto::raftpb::{ConfChange, Entry, HardState};
use crate::wal::writer::WalWriter;
use crate::wal::SEGMENT_SIZE_BYTES;

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    /// Number of KV request entries: puts, and txns and deletes when [`Self::txn_every`] /
    /// [`Self::delete_every`] ask for them (the log also holds the bootstrap conf change, the
    /// leader's empty entry and the compaction requests).
    pub puts: u64,
    /// Distinct keys, written round-robin (`key/000042`).
    pub keys: u64,
    /// Value length in bytes.
    pub value_len: usize,
    /// Entries per `Save` (etcd batches proposals under load).
    pub batch: usize,
    pub segment_size: u64,
    /// Pad the last segment with zeros to the segment size, as etcd's preallocation does.
    pub preallocate_tail: bool,
    /// A compaction request after every this many puts (0: never; the MVCC history then grows
    /// with `puts`).
    pub compact_every: u64,
    /// Revisions each compaction keeps: it compacts at `current revision - compact_retention`.
    pub compact_retention: u64,
    /// One request in this many is a txn (compare on the key's version or value, put on
    /// success); 0: none.
    pub txn_every: u64,
    /// One request in this many is a delete of a live key; 0: none.
    pub delete_every: u64,
}

impl SynthSpec {
    /// The issue-17 workload: 10,000 keys, 100-byte values, 1 in 50 a txn, 1 in 50 a delete,
    /// no compaction (the MVCC history grows with the log).
    pub fn issue17(requests: u64) -> SynthSpec {
        SynthSpec {
            puts: requests,
            keys: 10_000,
            value_len: 100,
            compact_every: 0,
            txn_every: 50,
            delete_every: 50,
            ..Default::default()
        }
    }
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            puts: 1_000_000,
            keys: 10_000,
            value_len: 16,
            batch: 64,
            segment_size: SEGMENT_SIZE_BYTES,
            preallocate_tail: true,
            compact_every: 100_000,
            compact_retention: 10_000,
            txn_every: 0,
            delete_every: 0,
        }
    }
}

pub const NODE_ID: u64 = 0x8e9e05c52164694d;
pub const CLUSTER_ID: u64 = 0xcdf818194e3a8c32;

/// What was written.
#[derive(Clone, Debug)]
pub struct SynthLog {
    /// The data dir (holding `member/wal` and `member/snap`).
    pub data_dir: PathBuf,
    pub entries: u64,
    pub last_index: u64,
    pub segments: usize,
    pub wal_bytes: u64,
}

fn bootstrap_entry() -> Entry {
    let context = crate::proto::member::Member {
        id: NODE_ID,
        peer_urls: vec!["http://127.0.0.1:2380".into()],
        name: "synthetic".into(),
        client_urls: Vec::new(),
        is_learner: false,
        is_promote: false,
    };
    let cc = ConfChange {
        id: 0,
        r#type: 0, // AddNode
        node_id: NODE_ID,
        context: Some(serde_json::to_vec(&context).expect("member JSON")),
    };
    Entry {
        r#type: 1,
        term: 1,
        index: 1,
        data: Some(Bytes::from(cc.encode_to_vec())),
    }
}

fn key_of(n: u64, spec: &SynthSpec) -> u64 {
    n % spec.keys.max(1)
}

fn key_bytes(key: u64) -> Bytes {
    Bytes::from(format!("key/{key:06}"))
}

/// The value request number `n` writes.
fn value_of(n: u64, spec: &SynthSpec) -> Bytes {
    let mut value = vec![b'v'; spec.value_len];
    // Vary the value so the bucket holds distinct bytes.
    for (i, b) in n.to_le_bytes().iter().enumerate().take(spec.value_len) {
        value[i] = b'a' + b % 26;
    }
    Bytes::from(value)
}

fn header(n: u64) -> Option<RequestHeader> {
    Some(RequestHeader {
        id: 0x1000_0000 + n,
        ..Default::default()
    })
}

fn put(n: u64, spec: &SynthSpec) -> PutRequest {
    PutRequest {
        key: key_bytes(key_of(n, spec)),
        value: value_of(n, spec),
        ..Default::default()
    }
}

/// The put request of entry number `n` (0-based).
pub fn put_request(n: u64, spec: &SynthSpec) -> InternalRaftRequest {
    InternalRaftRequest {
        header: header(n),
        put: Some(put(n, spec)),
        ..Default::default()
    }
}

/// SplitMix64: a fixed, well-mixed choice of each request's kind from its number.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the writer knows of each key, to write compares that hold and deletes of live keys:
/// the key's version (0: absent) and the request number whose value it holds.
struct KeyStates {
    version: Vec<i64>,
    written_by: Vec<u64>,
}

impl KeyStates {
    fn new(spec: &SynthSpec) -> KeyStates {
        let keys = spec.keys.max(1) as usize;
        KeyStates {
            version: vec![0; keys],
            written_by: vec![0; keys],
        }
    }

    /// The request number `n` (0-based): a put, a txn or a delete (see the module docs). Every
    /// request advances the store's revision by exactly one.
    fn request(&mut self, n: u64, spec: &SynthSpec) -> InternalRaftRequest {
        let key = key_of(n, spec) as usize;
        let h = mix(n);
        let txn = spec.txn_every != 0 && h % spec.txn_every == 0;
        let delete = !txn
            && spec.delete_every != 0
            && (h >> 32) % spec.delete_every == 0
            && self.version[key] != 0;
        if delete {
            self.version[key] = 0;
            return InternalRaftRequest {
                header: header(n),
                delete_range: Some(DeleteRangeRequest {
                    key: key_bytes(key as u64),
                    ..Default::default()
                }),
                ..Default::default()
            };
        }
        let request = if txn {
            InternalRaftRequest {
                header: header(n),
                txn: Some(self.txn(n, key, spec)),
                ..Default::default()
            }
        } else {
            put_request(n, spec)
        };
        self.version[key] += 1;
        self.written_by[key] = n;
        request
    }

    /// `etcdctl txn`'s shape: one compare that holds (the version, or every other txn the value
    /// of a live key), the put on success, nothing on failure.
    fn txn(&self, n: u64, key: usize, spec: &SynthSpec) -> TxnRequest {
        let version = self.version[key];
        let on_value = version != 0 && (mix(n) >> 8) % 2 == 0;
        let (target, target_union) = if on_value {
            (
                CompareTarget::Value,
                compare::TargetUnion::Value(value_of(self.written_by[key], spec)),
            )
        } else {
            (
                CompareTarget::Version,
                compare::TargetUnion::Version(version),
            )
        };
        TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: target as i32,
                key: key_bytes(key as u64),
                target_union: Some(target_union),
                range_end: Bytes::new(),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(put(n, spec))),
            }],
            failure: Vec::new(),
        }
    }
}

/// The auto-compaction request due after put number `puts_done` (1-based), if one is: at the
/// revision `compact_retention` below the current one (put k is revision k + 1).
pub fn compaction_request(puts_done: u64, spec: &SynthSpec) -> Option<InternalRaftRequest> {
    if spec.compact_every == 0 || puts_done % spec.compact_every != 0 {
        return None;
    }
    let current_revision = puts_done + 1;
    let revision = current_revision.checked_sub(spec.compact_retention)?;
    if revision < 2 {
        return None;
    }
    Some(InternalRaftRequest {
        header: Some(RequestHeader {
            id: 0x2000_0000 + puts_done,
            ..Default::default()
        }),
        compaction: Some(CompactionRequest {
            revision: revision as i64,
            physical: false,
        }),
        ..Default::default()
    })
}

fn write_segment(wal_dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    std::fs::write(wal_dir.join(name), bytes)
}

/// Writes the synthetic member under `data_dir` (created; must not hold a member already).
pub fn write_synthetic(data_dir: &Path, spec: &SynthSpec) -> io::Result<SynthLog> {
    let wal_dir = data_dir.join("member").join("wal");
    let snap_dir = data_dir.join("member").join("snap");
    std::fs::create_dir_all(&wal_dir)?;
    std::fs::create_dir_all(&snap_dir)?;
    let metadata = Metadata {
        node_id: NODE_ID,
        cluster_id: CLUSTER_ID,
    }
    .encode_to_vec();
    let mut writer = WalWriter::create_with_segment_size(&metadata, spec.segment_size);
    let mut written_segments = 0usize;
    let mut wal_bytes = 0u64;
    // Bootstrap: the conf change is committed at once (etcd's bootstrap commits its own entries).
    let mut state = HardState {
        term: 1,
        vote: 0,
        commit: 1,
    };
    writer.save(&state, &[bootstrap_entry()]);
    // Election: term 2, vote for self; the leader's empty entry.
    state = HardState {
        term: 2,
        vote: NODE_ID,
        commit: 1,
    };
    writer.save(&state, &[]);
    let mut last_index = 2;
    writer.save(
        &state,
        &[Entry {
            r#type: 0,
            term: 2,
            index: 2,
            data: None,
        }],
    );
    let mut batch = Vec::with_capacity(spec.batch.max(1));
    let mut keys = KeyStates::new(spec);
    let mut n = 0u64;
    while n < spec.puts {
        batch.clear();
        let committed_before = last_index;
        while batch.len() < spec.batch.max(1) && n < spec.puts {
            last_index += 1;
            batch.push(Entry {
                r#type: 0,
                term: 2,
                index: last_index,
                data: Some(Bytes::from(keys.request(n, spec).encode_to_vec())),
            });
            n += 1;
            if let Some(request) = compaction_request(n, spec) {
                last_index += 1;
                batch.push(Entry {
                    r#type: 0,
                    term: 2,
                    index: last_index,
                    data: Some(Bytes::from(request.encode_to_vec())),
                });
            }
        }
        state.commit = committed_before;
        let outcome = writer.save(&state, &batch);
        if outcome.cut {
            // Every segment but the new tail is closed: write them out and keep only the tail.
            let segments = writer.segments();
            let tail = segments.len() - 1;
            for segment in &segments[written_segments..tail] {
                write_segment(&wal_dir, &segment.name, &segment.bytes)?;
                wal_bytes += segment.bytes.len() as u64;
            }
            written_segments = tail;
            let mut kept: Vec<(String, Vec<u8>)> = segments[..tail]
                .iter()
                .map(|s| (s.name.clone(), Vec::new()))
                .collect();
            kept.push((segments[tail].name.clone(), segments[tail].bytes.clone()));
            writer = WalWriter::resume(
                kept,
                writer.running_crc(),
                &metadata,
                writer.last_raft_index(),
                spec.segment_size,
            );
        }
    }
    // The last batch is committed too.
    state.commit = last_index;
    writer.save(&state, &[]);
    let files = writer.files(spec.preallocate_tail);
    for (name, bytes) in &files[written_segments..] {
        write_segment(&wal_dir, name, bytes)?;
        wal_bytes += bytes.len() as u64;
    }
    Ok(SynthLog {
        data_dir: data_dir.to_path_buf(),
        entries: last_index,
        last_index,
        segments: files.len(),
        wal_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::RealFs;
    use crate::member::{read_member, MemberFiles};
    use crate::wal::DecoderMode;

    #[test]
    fn synthetic_log_reads_back_across_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SynthSpec {
            puts: 3_000,
            keys: 100,
            batch: 7,
            segment_size: 64 * 1024,
            ..Default::default()
        };
        let log = write_synthetic(dir.path(), &spec).unwrap();
        assert!(log.segments > 2, "{log:?}");
        let files = MemberFiles::open(&RealFs, dir.path()).unwrap();
        let read = read_member(&files, DecoderMode::Strict);
        assert!(
            read.contents.errors.is_empty(),
            "{:?}",
            read.contents.errors
        );
        assert_eq!(read.contents.entries.len() as u64, 3_002);
        assert_eq!(read.contents.hard_state.commit, 3_002);
        let kv = crate::replay::kv::replay_kv("m", &read, None, &mut |_| {}).unwrap();
        assert!(kv.raft.findings.is_empty(), "{:?}", kv.raft.findings);
        assert_eq!(kv.applied_index, 3_002);
        assert_eq!(kv.store.current_revision(), 3_001);
        let check = crate::check::check_member("m", &files, &read);
        assert!(
            check.findings.iter().all(|f| !f.severity.is_failure()),
            "{:?}",
            check.findings
        );
    }

    #[test]
    fn compactions_keep_the_mvcc_history_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SynthSpec {
            puts: 20_000,
            keys: 100,
            segment_size: 256 * 1024,
            compact_every: 3_000,
            compact_retention: 500,
            ..Default::default()
        };
        let log = write_synthetic(dir.path(), &spec).unwrap();
        // 20,000 puts, 6 compactions, the bootstrap and the leader's entry.
        assert_eq!(log.entries, 20_008);
        let files = MemberFiles::open(&RealFs, dir.path()).unwrap();
        let read = read_member(&files, DecoderMode::Strict);
        assert!(
            read.contents.errors.is_empty(),
            "{:?}",
            read.contents.errors
        );
        let kv = crate::replay::kv::replay_kv("m", &read, None, &mut |_| {}).unwrap();
        assert!(kv.panicking_entries.is_empty());
        assert_eq!(kv.applied_index, 20_008);
        assert_eq!(kv.store.current_revision(), 20_001);
        assert_eq!(kv.store.compact_revision(), 18_001 - 500);
        assert_eq!(kv.store.stats().compactions, 6);
        // What is left: the history after the last compaction, and one revision per key.
        let summary = kv.store.summary();
        assert!(summary.bucket_entries <= 2_000 + 500 + 100, "{summary:?}");
        let check = crate::check::check_member("m", &files, &read);
        assert!(
            check.findings.iter().all(|f| !f.severity.is_failure()),
            "{:?}",
            check.findings
        );
    }

    #[test]
    fn txn_and_delete_mix_applies_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SynthSpec {
            segment_size: 256 * 1024,
            keys: 200,
            ..SynthSpec::issue17(20_000)
        };
        let log = write_synthetic(dir.path(), &spec).unwrap();
        assert_eq!(log.entries, 20_002);
        let files = MemberFiles::open(&RealFs, dir.path()).unwrap();
        let read = read_member(&files, DecoderMode::Strict);
        assert!(
            read.contents.errors.is_empty(),
            "{:?}",
            read.contents.errors
        );
        let (mut txns, mut deletes, mut value_compares) = (0, 0, 0);
        for entry in &read.contents.entries[2..] {
            let data = entry.data.as_deref().unwrap_or_default();
            let request = InternalRaftRequest::decode(data).unwrap();
            if let Some(txn) = &request.txn {
                txns += 1;
                assert_eq!(txn.compare.len(), 1);
                assert_eq!(txn.success.len(), 1);
                if txn.compare[0].target == CompareTarget::Value as i32 {
                    value_compares += 1;
                }
            }
            deletes += usize::from(request.delete_range.is_some());
        }
        // 1 in 50 each (±30% on 20,000 draws), both compare targets present.
        assert!((280..=520).contains(&txns), "{txns} txns");
        assert!((280..=520).contains(&deletes), "{deletes} deletes");
        assert!(
            value_compares > 0 && value_compares < txns,
            "{value_compares}"
        );
        let kv = crate::replay::kv::replay_kv("m", &read, None, &mut |_| {}).unwrap();
        assert!(kv.panicking_entries.is_empty());
        // One revision per request: every compare held and every delete removed a live key.
        assert_eq!(kv.store.current_revision(), 20_001);
        let summary = kv.store.summary();
        assert!(summary.live_keys < 200, "{summary:?}");
        assert_eq!(summary.bucket_entries, 20_000);
    }
}
