//! `keyIndex.doCompact` for every key at once, from the bucket's slots.
//!
//! The bucket's slots (index-only ones included, `bucket::Slot`) hold, per key, exactly the
//! revisions etcd's `keyIndex` holds, in revision order, each marked put or tombstone: a
//! compaction deletes a revision from both, except the index-only case the slot marks; a
//! restored store's slots are the db's entries, of which `restoreIntoIndex` skips only
//! tombstones of keys it has not seen alive (`ki.tombstone` fails with `ErrRevisionNotFound`).
//! A key's generations are therefore recoverable from its slots read in order: a put extends
//! the open generation (or opens one), a tombstone closes it.
//!
//! `doCompact(at)` (3.4.23 `mvcc/key_index.go`, 3.5.30 `server/mvcc/key_index.go`) walks the
//! generations from the oldest and stops at the first whose tombstone is newer than `at`
//! (3.4.34+/3.5.16+: not older than `at`), or at the last; within it, the newest revision
//! `<= at` is the one `compact` keeps and `keep` reports (`keep` leaves out a tombstone:
//! HashKV hashes live revisions). Read in order over the slots `<= at`, that is: a put makes
//! itself the candidate; a tombstone at or below `at` ends a generation `doCompact` walks past
//! (candidate cleared) — except under the newer rules a tombstone exactly at `at`, where it
//! stops (candidate frozen: later slots of the key belong to later generations). A tombstone
//! with no open generation is one `restoreIntoIndex` skipped, unless it is the key's first
//! slot at or below the compact revision: a tombstone a previous compaction kept alone in its
//! generation (3.4.34+/3.5.16+), which stops the walk at `at ==` its revision like any other.
//!
//! Cost: one read of the slots `<= at` and 32 bytes per key id. After a compaction at `C` the
//! slots `<= C` are the kept ones (one per key at most, plus index-only ones), so a pass up to
//! a later revision reads O(keys + revisions written since C).

use super::bucket::Slot;
use super::revision::Revision;
use super::CompactionRules;

/// One key's walk.
#[derive(Clone, Copy, Debug, Default)]
struct Walk {
    candidate: Option<Revision>,
    candidate_is_tombstone: bool,
    open: bool,
    seen: bool,
    frozen: bool,
}

/// `doCompact(at)`'s choice for every key id.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    walks: Vec<Walk>,
}

impl Generations {
    /// Walks `slots` (in revision order) up to main revision `at`; `ids` bounds the key ids.
    /// `compact_revision` is the store's (the last compaction's) before this walk.
    pub fn walk(
        slots: impl Iterator<Item = Slot>,
        ids: usize,
        at: i64,
        compact_revision: i64,
        rules: CompactionRules,
    ) -> Self {
        let mut walks = vec![Walk::default(); ids];
        let stop_at_tombstone = rules.keep_tombstone_at_compaction;
        for slot in slots {
            let main = slot.revision.main_revision;
            if main > at {
                break;
            }
            let Some(w) = walks.get_mut(slot.key_id as usize) else {
                debug_assert!(false, "a slot names key id {} of {ids}", slot.key_id);
                continue;
            };
            let first = !w.seen;
            w.seen = true;
            if w.frozen {
                continue;
            }
            if !slot.tombstone {
                w.open = true;
                w.candidate = Some(slot.revision);
                w.candidate_is_tombstone = false;
                continue;
            }
            let kept_alone = !w.open && first && main <= compact_revision;
            if !w.open && !kept_alone {
                continue; // skipped by restoreIntoIndex
            }
            w.open = false;
            if stop_at_tombstone && main == at {
                w.frozen = true;
                w.candidate = Some(slot.revision);
                w.candidate_is_tombstone = true;
            } else {
                w.candidate = None;
            }
        }
        Generations { walks }
    }

    /// The revision `keyIndex.compact(at)` keeps for key `id` (a tombstone included).
    pub fn kept(&self, id: u32) -> Option<Revision> {
        self.walks.get(id as usize)?.candidate
    }

    /// `keyIndex.keep(at)` for key `id`: the kept revision unless it is a tombstone.
    pub fn keep(&self, id: u32) -> Option<Revision> {
        let w = self.walks.get(id as usize)?;
        if w.candidate_is_tombstone {
            return None;
        }
        w.candidate
    }

    /// Whether `keep` is non-empty for some key (`len(keep) > 0` in `HashByRev`).
    pub fn any_keep(&self) -> bool {
        self.walks
            .iter()
            .any(|w| w.candidate.is_some() && !w.candidate_is_tombstone)
    }

    /// What `compact(at)` does with `slot` (main revision `<= at`): kept, deleted from both
    /// bucket and index, or — a revision after a tombstone `doCompact` stopped at — deleted
    /// from the bucket only (`compact` keeps the later generations in the index).
    pub fn compacted(&self, slot: &Slot) -> super::bucket::Compacted {
        use super::bucket::Compacted;
        let Some(w) = self.walks.get(slot.key_id as usize) else {
            return Compacted::Drop;
        };
        match w.candidate {
            Some(kept) if kept == slot.revision => Compacted::Keep,
            Some(kept) if w.frozen && slot.revision > kept => Compacted::IndexOnly,
            _ => Compacted::Drop,
        }
    }
}
