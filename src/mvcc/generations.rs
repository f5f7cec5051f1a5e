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

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: CompactionRules = CompactionRules::OLD;
    const NEW: CompactionRules = CompactionRules::NEW;

    /// key_index.go's doc comment example, key 0: put(1.0);put(2.0);tombstone(3.0);put(4.0);
    /// tombstone(5.0); and key 1 put at 2.1 and 6.0.
    fn slots() -> Vec<Slot> {
        let s =
            |main, sub, tombstone, key_id| Slot::bare(Revision::new(main, sub), tombstone, key_id);
        vec![
            s(1, 0, false, 0),
            s(2, 0, false, 0),
            s(2, 1, false, 1),
            s(3, 0, true, 0),
            s(4, 0, false, 0),
            s(5, 0, true, 0),
            s(6, 0, false, 1),
        ]
    }

    fn r(main: i64) -> Option<Revision> {
        Some(Revision::new(main, 0))
    }

    #[test]
    fn the_doc_comment_example_under_both_rules() {
        // compact(2) keeps 2.0; compact(3): the old rules drop the generation (nothing kept),
        // the new ones keep the tombstone; compact(4) keeps 4.0; compact(5) as compact(3).
        for (at, old, new) in [
            (2, r(2), r(2)),
            (3, None, r(3)),
            (4, r(4), r(4)),
            (5, None, r(5)),
            (6, None, None),
        ] {
            let walked = Generations::walk(slots().into_iter(), 2, at, -1, OLD);
            assert_eq!(walked.kept(0), old, "old rules, compact({at})");
            assert_eq!(walked.keep(0), old, "old rules, keep({at})");
            let walked = Generations::walk(slots().into_iter(), 2, at, -1, NEW);
            assert_eq!(walked.kept(0), new, "new rules, compact({at})");
            let live = new.filter(|_| at % 2 == 0);
            assert_eq!(
                walked.keep(0),
                live,
                "new rules: keep({at}) leaves out a tombstone"
            );
        }
        let walked = Generations::walk(slots().into_iter(), 2, 5, -1, NEW);
        assert_eq!(walked.kept(1), Some(Revision::new(2, 1)));
        assert!(walked.any_keep());
        assert!(!Generations::walk(slots().into_iter(), 2, 5, -1, OLD)
            .walks
            .iter()
            .take(1)
            .any(|w| w.candidate.is_some()));
    }

    /// A tombstone at the compaction revision stops the walk (new rules): the later slots of
    /// the key at that revision stay in the index only; a tombstone with no open generation
    /// (one `restoreIntoIndex` skipped) is ignored.
    #[test]
    fn slots_after_a_kept_tombstone_are_index_only() {
        let s = |main, sub, tombstone| Slot::bare(Revision::new(main, sub), tombstone, 0);
        let slots = [
            s(2, 0, false),
            s(3, 0, true),
            s(3, 1, false),
            s(3, 2, true),
            s(3, 3, false),
        ];
        let walked = Generations::walk(slots.iter().copied(), 1, 3, -1, NEW);
        let decided: Vec<_> = slots.iter().map(|slot| walked.compacted(slot)).collect();
        use super::super::bucket::Compacted::*;
        assert_eq!(decided, [Drop, Keep, IndexOnly, IndexOnly, IndexOnly]);
        let walked = Generations::walk(slots.iter().copied(), 1, 3, -1, OLD);
        assert_eq!(walked.kept(0), Some(Revision::new(3, 3)));
        let orphan = [s(4, 0, true), s(5, 0, false)];
        let walked = Generations::walk(orphan.iter().copied(), 1, 4, -1, NEW);
        assert_eq!(walked.kept(0), None, "a skipped tombstone stops nothing");
    }
}
