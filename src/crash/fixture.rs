//! Synthetic etcd members written with the etcd-exact writer ([`crate::wal::writer`]), for the
//! crash tests, the benchmark and the known-failure fixtures: the bytes are what etcd's `wal`
//! package writes for the same calls, so a fixture is a member etcd could have left.

use std::io;
use std::path::Path;

use bytes::Bytes;
use prost::Message;

use crate::proto::etcdserverpb::{InternalRaftRequest, Metadata, PutRequest, RequestHeader};
use crate::proto::raftpb::{ConfChange, ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use crate::proto::snappb::SnapFile;
use crate::proto::walpb::WalSnapshot;
use crate::wal::writer::WalWriter;

use super::recover::DiskState;

pub struct SyntheticMember {
    pub writer: WalWriter,
    /// `.snap` files, in the order written.
    pub snaps: Vec<(String, Bytes)>,
}

impl SyntheticMember {
    pub fn new(node_id: u64, cluster_id: u64, segment_size: u64) -> SyntheticMember {
        let metadata = Metadata {
            node_id,
            cluster_id,
        }
        .encode_to_vec();
        SyntheticMember {
            writer: WalWriter::create_with_segment_size(&metadata, segment_size),
            snaps: Vec::new(),
        }
    }

    pub fn save(&mut self, hard_state: HardState, entries: &[Entry]) {
        self.writer.save(&hard_state, entries);
    }

    /// etcd's `storage.SaveSnap`: the `.snap` file first (unless `with_file` is false: purged
    /// or never written), then the WAL snapshot record (fsynced).
    pub fn save_snap(&mut self, index: u64, term: u64, voters: &[u64], with_file: bool) {
        if with_file {
            self.snaps.push(snap_file(index, term, voters));
        }
        self.writer.save_snapshot(&WalSnapshot {
            index,
            term,
            conf_state: None,
        });
    }

    /// The server's explicit `Sync` (after saving a leader snapshot).
    pub fn sync(&mut self) {
        self.writer.sync_now();
    }

    /// The files: every segment's written bytes (no preallocated zero tail: etcd reads a zero
    /// length word and the end of a file alike), every `.snap` file.
    pub fn disk(&self) -> DiskState {
        DiskState {
            segments: self.writer.files(false),
            snaps: self.snaps.clone(),
        }
    }

    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        write_disk(&self.disk(), dir)
    }
}

/// Writes a disk state as an etcd data dir: `dir/member/wal/…`, `dir/member/snap/…`.
pub fn write_disk(state: &DiskState, dir: &Path) -> io::Result<()> {
    let wal = dir.join("member").join("wal");
    let snap = dir.join("member").join("snap");
    std::fs::create_dir_all(&wal)?;
    std::fs::create_dir_all(&snap)?;
    for (name, bytes) in &state.segments {
        std::fs::write(wal.join(name), bytes)?;
    }
    for (name, bytes) in &state.snaps {
        std::fs::write(snap.join(name), bytes)?;
    }
    Ok(())
}

/// A `.snap` file as etcd's snapshotter writes it (name term-first).
pub fn snap_file(index: u64, term: u64, voters: &[u64]) -> (String, Bytes) {
    let snapshot = Snapshot {
        data: Some(Bytes::from_static(b"{\"Root\":{}}")),
        metadata: SnapshotMetadata {
            conf_state: ConfState {
                voters: voters.to_vec(),
                ..Default::default()
            },
            index,
            term,
        },
    };
    let data = snapshot.encode_to_vec();
    let file = SnapFile {
        crc: crc32c::crc32c(&data),
        data: Some(Bytes::from(data)),
    };
    (
        format!("{term:016x}-{index:016x}.snap"),
        Bytes::from(file.encode_to_vec()),
    )
}

/// etcd's bootstrap entries: one `ConfChangeAddNode` per initial member at term 1.
pub fn bootstrap_entries(voters: &[u64]) -> Vec<Entry> {
    voters
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let cc = ConfChange {
                id: 0,
                r#type: 0,
                node_id: *id,
                context: Some(
                    format!(
                        "{{\"id\":{id},\"peerURLs\":[\"http://127.0.0.1:{}\"],\"name\":\"n{id}\"}}",
                        2380 + i
                    )
                    .into_bytes(),
                ),
            };
            Entry {
                r#type: 1,
                term: 1,
                index: i as u64 + 1,
                data: Some(Bytes::from(cc.encode_to_vec())),
            }
        })
        .collect()
}

/// A v3 put as etcd proposes it.
pub fn put_entry(term: u64, index: u64, key: &str, value: &[u8]) -> Entry {
    let request = InternalRaftRequest {
        header: Some(RequestHeader {
            id: index,
            ..Default::default()
        }),
        id: index,
        put: Some(PutRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value),
            ..Default::default()
        }),
        ..Default::default()
    };
    Entry {
        r#type: 0,
        term,
        index,
        data: Some(Bytes::from(request.encode_to_vec())),
    }
}

/// The leader's empty entry at the start of a term.
pub fn noop_entry(term: u64, index: u64) -> Entry {
    Entry {
        r#type: 0,
        term,
        index,
        data: None,
    }
}

/// A member as a follower of a 3-member cluster writes it: bootstrap, an election, then
/// `entries` entries in all (puts of ~100-byte values), each appended in its own Save with the
/// commit trailing by one, a commit-only Save after every fourth, and a local snapshot (a
/// `.snap` file, then the WAL record) every `snapshot_every` applied entries.
pub fn synthetic_member(
    node_id: u64,
    entries: u64,
    segment_size: u64,
    snapshot_every: u64,
) -> SyntheticMember {
    let voters = [1u64, 2, 3];
    let mut m = SyntheticMember::new(node_id, 0xc1, segment_size);
    let boot = bootstrap_entries(&voters);
    let n = boot.len() as u64;
    m.save(
        HardState {
            term: 1,
            vote: 0,
            commit: n,
        },
        &boot,
    );
    let leader = 1;
    m.save(
        HardState {
            term: 2,
            vote: leader,
            commit: n,
        },
        &[],
    );
    m.save(
        HardState {
            term: 2,
            vote: leader,
            commit: n,
        },
        &[noop_entry(2, n + 1)],
    );
    let value = vec![b'v'; 100];
    let mut last_snapshot = 0;
    for index in n + 2..=entries.max(n + 2) {
        let hs = HardState {
            term: 2,
            vote: leader,
            commit: index - 1,
        };
        m.save(
            hs,
            &[put_entry(
                2,
                index,
                &format!("key/{:05}", index % 500),
                &value,
            )],
        );
        if index % 4 == 0 {
            m.save(
                HardState {
                    term: 2,
                    vote: leader,
                    commit: index,
                },
                &[],
            );
        }
        let applied = index - 1;
        if snapshot_every > 0 && applied - last_snapshot >= snapshot_every {
            m.save_snap(applied, 2, &voters, true);
            last_snapshot = applied;
        }
    }
    let last = entries.max(n + 2);
    m.save(
        HardState {
            term: 2,
            vote: leader,
            commit: last,
        },
        &[],
    );
    m
}
