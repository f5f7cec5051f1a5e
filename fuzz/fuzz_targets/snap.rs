//! `.snap` files: etcd's `snap.Read` (`read_snap`), `LoadNewestAvailable` over them, the
//! membership and custom-content readers of the v2-store JSON inside.
//!
//! Input: a packed list of `.snap` files (`arg`: term << 32 | index of the name); the WAL's valid
//! snapshot records are the names' (term, index) with the low bit of `tag` set.
//!
//! Properties: no panic; allocations within `Budget::READER`; every skipped file is named with a
//! reason; a file read is the one chosen only when the WAL lists its metadata; re-encoding what
//! was read (`snappb.snapshot{crc32c(data), data}`) reads back unchanged.
#![no_main]

use bytes::Bytes;
use fuzz_support::{unpack, Budget};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use raft_replay::proto::snappb::SnapFile;
use raft_replay::proto::walpb::WalSnapshot;
use raft_replay::snap::{load_newest_available, read_snap};

fuzz_target!(|data: &[u8]| {
    let parts = unpack(data);
    let files: Vec<(String, Bytes)> = parts
        .iter()
        .map(|f| {
            (
                format!("{:016x}-{:016x}.snap", f.arg >> 32, f.arg & 0xffff_ffff),
                Bytes::copy_from_slice(f.bytes),
            )
        })
        .collect();
    let wal: Vec<WalSnapshot> = parts
        .iter()
        .filter(|f| f.tag & 1 == 1)
        .map(|f| WalSnapshot {
            index: f.arg & 0xffff_ffff,
            term: f.arg >> 32,
            conf_state: None,
        })
        .collect();
    Budget::READER.enforce(data.len(), || {
        for (_, bytes) in &files {
            if let Ok(snapshot) = read_snap(bytes.clone()) {
                let encoded = snapshot.encode_to_vec();
                let file = SnapFile {
                    crc: crc32c::crc32c(&encoded),
                    data: Some(Bytes::from(encoded)),
                };
                let again = read_snap(Bytes::from(file.encode_to_vec()))
                    .expect("a re-encoded snapshot reads");
                assert_eq!(again, snapshot);
                if let Some(d) = snapshot.data.as_deref() {
                    let _ = raft_replay::snap::membership::parse_membership(d);
                    let _ = raft_replay::gate::v2::v2store_custom_content(d);
                }
            }
        }
        let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
        let bytes_of = |name: &str| {
            let file = files.iter().find(|(n, _)| n == name);
            file.map(|(_, b)| b.clone()).unwrap_or_default()
        };
        let (loaded, skipped) = load_newest_available(&names, &bytes_of, &wal);
        for s in &skipped {
            assert!(
                files.iter().any(|(n, _)| *n == s.file_name),
                "skipped {s:?} is no file"
            );
            assert!(!s.reason.is_empty());
        }
        if let Some(l) = &loaded {
            let m = &l.snapshot.metadata;
            assert!(wal.iter().any(|w| (w.index, w.term) == (m.index, m.term)));
            assert!(!skipped.iter().any(|s| s.file_name == l.file_name));
        }
    });
});
