//! WAL segments through etcd's boot read (`ValidSnapshotEntries`, segment selection, the
//! decoder, `ReadAll`) in strict and forensic mode, from a `MemFs` (file-backed windows).
//!
//! Properties: no panic; allocations within `Budget::READER` of the input's length; every error,
//! warning and accepted damage names an existing segment and an offset inside it; held entries are
//! contiguous from the start index, one position each; a WAL strict mode reads without any error,
//! warning or damage etcd accepts is clean in forensic mode too (forensic only reads further past
//! damage, it never finds damage in bytes strict read whole).
#![no_main]

use std::path::Path;

use fuzz_support::{assert_wal_error_located, wal_fs, Budget};
use libfuzzer_sys::fuzz_target;
use raft_replay::member::{read_member, MemberFiles};
use raft_replay::wal::DecoderMode;

fuzz_target!(|data: &[u8]| {
    let fs = wal_fs(data);
    Budget::READER.enforce(data.len(), || {
        let Ok(files) = MemberFiles::open(&fs, Path::new("/m")) else {
            return;
        };
        let strict = read_member(&files, DecoderMode::Strict);
        let forensic = read_member(&files, DecoderMode::Forensic);
        for read in [&strict, &forensic] {
            let c = &read.contents;
            for e in c
                .errors
                .iter()
                .chain(&c.warnings)
                .chain(&c.accepted_by_etcd)
            {
                assert_wal_error_located(e, &fs, "/m/member/wal");
            }
            for (_, location) in &c.overwrites {
                assert!(
                    location.segment.is_some() && location.offset.is_some(),
                    "{location:?}"
                );
            }
            // Entries held are contiguous from the start index.
            for (i, e) in c.entries.iter().enumerate() {
                assert_eq!(
                    e.index,
                    c.start_index + 1 + i as u64,
                    "held entries not contiguous"
                );
            }
            assert_eq!(c.entries.len(), c.entry_positions.len());
        }
        let s = &strict.contents;
        if s.errors.is_empty() && s.warnings.is_empty() && s.accepted_by_etcd.is_empty() {
            assert!(
                forensic.contents.errors.is_empty(),
                "forensic finds errors strict does not: {:?}",
                forensic.contents.errors
            );
        }
    });
});
