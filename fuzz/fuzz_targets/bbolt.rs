//! The bbolt reader and `raft-replay db` (`DbReport`): meta choice, page reads, the bucket walk,
//! reachability and freelist, etcd's schema, the MVCC restore and HashKV — as etcd 3.4.23 and
//! 3.5.30 read them, at the current revision and at one the input names.
//!
//! Input: byte 0 picks the version and the revision asked for HashKV (0: current); the rest is the
//! db file.
//!
//! Properties: no panic; allocations within `Budget::READER` of the file's length (no buffer sized
//! by a count inside the file); a damaged file is findings, never an error (`Err` is for I/O only,
//! and `MemFs` never fails); every error-level finding is typed and located: page damage names
//! its page and a byte offset inside the file (a truncation: the offset of the structure the file
//! ends before, and the byte it needed; a page id that cannot be read — beyond the high-water mark,
//! a meta page referred to as a tree page, a meta page the file is too short for — names that page
//! and where it would be), a schema problem names its bucket and key (a root item: its key).
#![no_main]

use std::path::Path;

use fuzz_support::Budget;
use libfuzzer_sys::fuzz_target;
use raft_replay::backend::error::{Damage, DbError, MetaProblem};
use raft_replay::backend::DbReport;
use raft_replay::mvcc::EtcdVersion;
use raft_replay::MemFs;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let version = if pick & 1 == 0 {
        EtcdVersion::V3_4_23
    } else {
        EtcdVersion::V3_5_30
    };
    let revision = i64::from(pick >> 1);
    let mut fs = MemFs::default();
    fs.insert("/db", bytes::Bytes::copy_from_slice(file));
    let len = file.len() as u64;
    Budget::READER.enforce(data.len(), || {
        let report = DbReport::build(&fs, Path::new("/db"), revision, version)
            .expect("a db in memory is always readable: damage is findings");
        for f in report
            .findings
            .iter()
            .filter(|f| f.level == raft_replay::backend::report::Level::Error)
        {
            match (&f.damage, &f.schema) {
                (
                    Some(DbError::Damage {
                        offset,
                        damage: Damage::Truncated { needed, file_len },
                        ..
                    }),
                    _,
                ) => {
                    // The structure the file ends before: its offset may lie past the end.
                    assert_eq!(*file_len, len, "{f:?}");
                    assert!(*offset < *needed && *needed > len, "{f:?}");
                }
                (
                    Some(DbError::Damage {
                        damage:
                            Damage::MetaInvalid {
                                reason: MetaProblem::Missing,
                                ..
                            }
                            | Damage::BeyondHighWater { overflow: 0, .. }
                            | Damage::MetaReferenced { .. }
                            | Damage::NoValidMeta { .. },
                        ..
                    }),
                    _,
                ) => {
                    // About a page id that is referred to (or a meta page the file is too short
                    // for): the page id is the location, the offset where that page would be.
                }
                (Some(DbError::Damage { offset, .. }), _) => {
                    assert!(
                        *offset < len,
                        "damage at byte {offset} of a {len}-byte file: {f:?}"
                    );
                }
                // MemFs does not fail, and no input this small fills the digests' window.
                (Some(DbError::Io { .. } | DbError::Spill { .. }), _) => {
                    panic!("I/O error from MemFs or the spill file: {f:?}")
                }
                (None, Some(schema)) => {
                    // The root bucket is "": a root item names its key.
                    assert!(!schema.bucket.is_empty() || !schema.key.is_empty(), "{f:?}")
                }
                (None, None) => panic!("error finding without a location: {f:?}"),
            }
        }
        let _ = report.to_json();
        let _ = report.to_text();
    });
});
