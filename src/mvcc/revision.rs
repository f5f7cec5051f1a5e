//! etcd's `revision` (`mvcc/revision.go`) and the bucket key bytes derived from it.

use serde::Serialize;

/// A set of revisions (compaction `keep` sets, HashKV's `Keep`), with a keyed fast hash.
pub(crate) type RevisionSet = std::collections::HashSet<Revision, ahash::RandomState>;

/// Length of a bucket key for a put: `BE64(main) '_' BE64(sub)`.
pub const REVISION_KEY_LEN: usize = 17;
/// Length of a bucket key for a tombstone: the revision key followed by `'t'`.
pub const TOMBSTONE_KEY_LEN: usize = 18;
/// The byte etcd appends to a revision key to mark a tombstone (`markTombstone`).
pub const TOMBSTONE_MARK: u8 = b't';

/// A point in etcd's MVCC history. Every write transaction that changes something gets one
/// `main_revision`; its individual changes are numbered by `sub_revision` from 0.
///
/// The derived ordering (main, then sub) is etcd's `GreaterThan` and also the byte order of
/// the bucket keys, because both halves are big-endian and revisions are never negative in a
/// bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Revision {
    pub main_revision: i64,
    pub sub_revision: i64,
}

impl Revision {
    pub const fn new(main_revision: i64, sub_revision: i64) -> Self {
        Revision {
            main_revision,
            sub_revision,
        }
    }

    /// The bucket key etcd stores this revision under (`revToBytes`, plus `appendMarkTombstone`
    /// for deletions). Returns a fixed buffer and the used length (17 or 18).
    pub fn bucket_key(self, tombstone: bool) -> ([u8; TOMBSTONE_KEY_LEN], usize) {
        let mut key = [0u8; TOMBSTONE_KEY_LEN];
        key[0..8].copy_from_slice(&(self.main_revision as u64).to_be_bytes());
        key[8] = b'_';
        key[9..17].copy_from_slice(&(self.sub_revision as u64).to_be_bytes());
        if tombstone {
            key[17] = TOMBSTONE_MARK;
            (key, TOMBSTONE_KEY_LEN)
        } else {
            (key, REVISION_KEY_LEN)
        }
    }

    /// Parses a bucket key (`bytesToRev`); `None` when it is shorter than 17 bytes.
    /// The tombstone flag is true for an 18-byte key ending in `'t'`.
    pub fn from_bucket_key(key: &[u8]) -> Option<(Revision, bool)> {
        if key.len() < REVISION_KEY_LEN {
            return None;
        }
        let main = u64::from_be_bytes(key[0..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(key[9..17].try_into().ok()?) as i64;
        let tombstone = key.len() == TOMBSTONE_KEY_LEN && key[17] == TOMBSTONE_MARK;
        Some((Revision::new(main, sub), tombstone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_key_layout() {
        let (key, len) = Revision::new(5, 1).bucket_key(true);
        assert_eq!(
            hex::encode(&key[..len]),
            "00000000000000055f000000000000000174"
        );
        let (key, len) = Revision::new(2, 0).bucket_key(false);
        assert_eq!(
            hex::encode(&key[..len]),
            "00000000000000025f0000000000000000"
        );
        assert_eq!(
            Revision::from_bucket_key(&key[..len]),
            Some((Revision::new(2, 0), false))
        );
        assert_eq!(Revision::from_bucket_key(b"short"), None);
    }

    #[test]
    fn ordering_is_main_then_sub() {
        assert!(Revision::new(2, 9) < Revision::new(3, 0));
        assert!(Revision::new(3, 0) < Revision::new(3, 1));
    }
}
