//! The backend db holds the state the log produces: where the WAL reaches back to index 1, the
//! db's `key` bucket (as etcd's boot restores it, a resumed compaction finished) equals the KV
//! model replayed from the WAL up to the db's consistent index, key for key, and its current and
//! compact revisions agree. And where the db is a start for the replay (its consistent index
//! within the log), the state replayed from the db and the state replayed from index 1 agree at
//! the same applied index ("both ways").
//!
//! A difference means the db lost or changed a write (bit rot in a value, the 3.5.0–3.5.2
//! consistent-index-ahead-of-data skip, etcd #13766), or the WAL did. etcd compares the same
//! thing across members (`etcdserver/corrupt.go`: HashKV at a revision); this is the per-member
//! form, naming the first differing revision and key.

use super::{Finding, Severity};
use crate::backend::etcd::display_key;
use crate::mvcc::{BucketDigest, MvccStore};
use crate::wal::Location;

pub const KIND: &str = "db.kv_mismatch";
/// The comparison could not be made: this tool's own temporary file (the spilled digests) could
/// not be read back. Says nothing about the member's files, so it is a warning, never corruption.
pub const UNCHECKED: &str = "db.kv_unchecked";
/// The replay started from the db and the replay from index 1 disagree.
pub const BOTH_WAYS: &str = "db.replay_diverged";
pub const REFERENCE: &str =
    "etcd 3.4 mvcc/kvstore.go restore (the db is the applied state at consistent_index); etcdserver/corrupt.go (HashKV agreement)";

/// The bucket entry `d` of `store`, named: revision, tombstone mark and user key.
fn describe(store: &MvccStore, d: &BucketDigest) -> String {
    let key = store
        .key_of_revision(d.revision)
        .map(|k| display_key(&k))
        .unwrap_or_else(|| "(not in the key index)".into());
    format!(
        "revision {}_{}{} key {key}",
        d.revision.main_revision,
        d.revision.sub_revision,
        if d.tombstone { " (tombstone)" } else { "" }
    )
}

/// The first bucket entry where the two stores differ, described; entries are compared by
/// their digests (revision, tombstone mark, CRC-32C and length of `bucket key ‖ KeyValue`).
/// `Err` when a spilled digest could not be read back before any difference was seen: the
/// entries compared so far agree, the rest were not compared.
fn first_difference(db: &MvccStore, replayed: &MvccStore) -> Result<Option<String>, String> {
    let mut ours = db.bucket_digests();
    let mut theirs = replayed.bucket_digests();
    let difference = loop {
        match (ours.next(), theirs.next()) {
            (None, None) => break None,
            // A side that stopped on an unreadable spill did not end: not a difference.
            (Some(_), None) if theirs.error().is_some() => break None,
            (None, Some(_)) if ours.error().is_some() => break None,
            (Some(d), None) => {
                break Some(format!(
                    "{} is in the db but not in the replay",
                    describe(db, &d)
                ))
            }
            (None, Some(r)) => {
                break Some(format!(
                    "{} is in the replay but not in the db",
                    describe(replayed, &r)
                ))
            }
            (Some(d), Some(r)) => {
                let (dk, rk) = ((d.revision, d.tombstone), (r.revision, r.tombstone));
                if dk < rk {
                    break Some(format!(
                        "{} is in the db but not in the replay",
                        describe(db, &d)
                    ));
                }
                if rk < dk {
                    break Some(format!(
                        "{} is in the replay but not in the db",
                        describe(replayed, &r)
                    ));
                }
                if (d.crc, d.len) != (r.crc, r.len) {
                    break Some(format!(
                        "{}: the stored KeyValue differs from the replayed one (CRC-32C {:#010x} of {} bytes in the db, {:#010x} of {} bytes replayed)",
                        describe(replayed, &r),
                        d.crc,
                        d.value_len(),
                        r.crc,
                        r.value_len()
                    ));
                }
            }
        }
    };
    match (difference, ours.error().or(theirs.error())) {
        (Some(difference), _) => Ok(Some(difference)),
        (None, Some(unreadable)) => Err(unreadable.to_string()),
        (None, None) => Ok(None),
    }
}

/// The db's restored store against the store replayed from the WAL through `consistent_index`.
pub fn check(
    member: &str,
    consistent_index: u64,
    db: &MvccStore,
    replayed: &MvccStore,
) -> Option<Finding> {
    let difference = match first_difference(db, replayed) {
        Ok(difference) => difference,
        Err(unreadable) => return Some(unchecked(member, consistent_index, &unreadable)),
    };
    let difference = difference.or_else(|| {
        let (d, r) = (
            (db.current_revision(), db.compact_revision()),
            (replayed.current_revision(), replayed.compact_revision()),
        );
        (d != r).then(|| {
            format!(
                "revision {} / compact revision {} in the db, {} / {} replayed",
                d.0, d.1, r.0, r.1
            )
        })
    })?;
    Some(Finding::new(
        KIND,
        Severity::Corruption,
        member,
        Location {
            raft_index: Some(consistent_index),
            ..Default::default()
        },
        None,
        format!(
            "the backend db's key bucket differs from the WAL replayed to its consistent index {consistent_index}: {difference}"
        ),
        REFERENCE,
    ))
}

fn unchecked(member: &str, consistent_index: u64, unreadable: &str) -> Finding {
    Finding::new(
        UNCHECKED,
        Severity::Warning,
        member,
        Location {
            raft_index: Some(consistent_index),
            ..Default::default()
        },
        None,
        format!(
            "the backend db's key bucket was not compared with the WAL replayed to its consistent index {consistent_index}: {unreadable} (a temporary file of this tool, not the member's files)"
        ),
        REFERENCE,
    )
}

/// The HashKV (hash, revision, compact revision) of the replay from the db against the replay
/// from index 1, both at `applied_index`.
pub fn check_both_ways(
    member: &str,
    applied_index: u64,
    from_db: (u32, i64, i64),
    from_start: (u32, i64, i64),
) -> Option<Finding> {
    (from_db != from_start).then(|| {
        Finding::new(
            BOTH_WAYS,
            Severity::Corruption,
            member,
            Location {
                raft_index: Some(applied_index),
                ..Default::default()
            },
            None,
            format!(
                "replayed from the db and from index 1 to {applied_index}, the KV states differ: HashKV {:#010x} (revision {}, compact revision {}) from the db, {:#010x} (revision {}, compact revision {}) from the WAL",
                from_db.0, from_db.1, from_db.2, from_start.0, from_start.1, from_start.2
            ),
            REFERENCE,
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::mvcc::MvccStore;

    #[test]
    fn names_the_first_differing_revision_and_key() {
        let mut a = MvccStore::new();
        a.put(b"k1", b"v1", 0).unwrap();
        a.put(b"k2", b"v2", 0).unwrap();
        let mut b = MvccStore::new();
        b.put(b"k1", b"v1", 0).unwrap();
        b.put(b"k2", b"vX", 0).unwrap();
        assert!(super::check("m", 3, &a, &a.clone()).is_none());
        let f = super::check("m", 3, &a, &b).unwrap();
        assert!(
            f.message.contains("revision 3_0") && f.message.contains("key k2"),
            "{}",
            f.message
        );
        let mut c = a.clone();
        c.put(b"k3", b"v3", 0).unwrap();
        let f = super::check("m", 3, &a, &c).unwrap();
        assert!(
            f.message
                .contains("revision 4_0 key k3 is in the replay but not in the db"),
            "{}",
            f.message
        );
    }

    /// A spill file lost under the check is this tool's failure: a warning naming it, never
    /// `db.kv_mismatch`.
    #[test]
    fn an_unreadable_spill_file_is_a_warning_not_a_mismatch() {
        let store = || {
            let mut s = MvccStore::new();
            s.set_bucket_hot_limit(4);
            for i in 0..12u8 {
                s.put(&[b'k', i], b"v", 0).unwrap();
            }
            s
        };
        let (db, replayed) = (store(), store());
        assert!(super::check("m", 13, &db, &replayed).is_none());
        replayed.lose_bucket_spill_file();
        let f = super::check("m", 13, &db, &replayed).unwrap();
        assert_eq!(f.kind, super::UNCHECKED);
        assert_eq!(f.severity, crate::check::Severity::Warning);
        assert!(f.message.contains("spill file"), "{}", f.message);
    }

    #[test]
    fn both_ways_compares_hash_revision_and_compact_revision() {
        assert!(super::check_both_ways("m", 9, (1, 2, 3), (1, 2, 3)).is_none());
        let f = super::check_both_ways("m", 9, (1, 2, 3), (1, 2, 4)).unwrap();
        assert_eq!(f.kind, super::BOTH_WAYS);
        assert_eq!(f.location.raft_index, Some(9));
    }
}
