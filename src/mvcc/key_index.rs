//! etcd's per-key index entry (`mvcc/key_index.go: keyIndex`), reduced to what apply reads at
//! the current revision.
//!
//! etcd keeps per key a list of generations: a put appends a revision to the last generation
//! (a fresh generation records `created`), a delete appends the tombstone revision and then an
//! empty generation. Apply only ever reads a key at the current revision (a txn's own writes
//! included), where that structure reduces to [`KeyState`]: the current generation's created
//! revision and version, the newest revision, whether the key is alive. Everything that asks
//! about older revisions — compaction's keep set, HashKV's `Keep`, naming the key of a
//! revision — is answered from the bucket's slots, which carry the key's id and hold exactly
//! the revisions etcd's index holds (`super::generations`). So the index grows with the keys,
//! never with the history.
//!
//! Under `cfg(test)` the full history ([`KeyIndex`], ported function by function from
//! `key_index.go`) is kept beside it as the reference the tests compare with.

use super::revision::Revision;
#[cfg(test)]
use super::CompactionRules;

/// One key of the index: what apply needs at the current revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyState {
    /// The key's id, named by every bucket slot of this key (`keyspace::KeySpace::key_of`).
    pub id: u32,
    /// Whether the current generation is non-empty (a put after the last tombstone).
    pub alive: bool,
    /// First revision of the current generation (`generation.created`) while alive.
    pub created: Revision,
    /// Puts in the current generation (`generation.ver`) while alive, 0 while deleted.
    pub version: i64,
    /// The key's newest revision (put or tombstone) in the index; zero when it has none.
    pub newest: Revision,
    /// The lease this key is attached to in the lessor (`lessor.itemMap`), 0 for none. Kept
    /// here rather than in a second map so a put needs a single lookup. Equal to the `lease`
    /// field of the key's current `KeyValue` while the key is alive; 0 while it is deleted.
    pub attached_lease: i64,
    /// The marshaled `KeyValue` of the key's newest revision while the key is alive (what a
    /// txn compares and an `ignore_value` put copies), none while it is deleted. Only the
    /// newest: apply reads keys at the current revision, and HashKV needs no values.
    pub current: CurrentValue,
}

impl KeyState {
    /// A key with no revision yet, named by `id`.
    pub fn new(id: u32) -> Self {
        KeyState {
            id,
            alive: false,
            created: Revision::default(),
            version: 0,
            newest: Revision::default(),
            attached_lease: 0,
            current: CurrentValue::None,
        }
    }

    /// `keyIndex.restore`: a key first seen during a restore from the backend, at `modified`,
    /// created at `created` and with `version` puts in its (possibly compacted) generation,
    /// attached to `lease`.
    pub fn restored(
        id: u32,
        created: Revision,
        modified: Revision,
        version: i64,
        lease: i64,
    ) -> Self {
        KeyState {
            id,
            alive: true,
            created,
            version,
            newest: modified,
            attached_lease: lease,
            current: CurrentValue::None,
        }
    }

    /// Whether the key currently exists (has a put after its last tombstone).
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// The newest revision, if the key is alive (the one [`KeyState::current`] holds).
    pub fn newest_alive(&self) -> Option<Revision> {
        self.alive.then_some(self.newest)
    }

    /// `keyIndex.put`. The caller guarantees `revision` is newer than every revision here.
    pub fn put(&mut self, revision: Revision) {
        if !self.alive {
            self.alive = true;
            self.created = revision;
            self.version = 0;
        }
        self.version += 1;
        self.newest = revision;
    }

    /// `keyIndex.tombstone`: false (etcd's `ErrRevisionNotFound`) if the key is not alive.
    pub fn tombstone(&mut self, revision: Revision) -> bool {
        if !self.alive {
            return false;
        }
        self.alive = false;
        self.created = Revision::default();
        self.version = 0;
        self.newest = revision;
        true
    }

    /// `keyIndex.get` at a revision at or above the newest (the only reads apply makes).
    pub fn current_at(&self, at: i64) -> Option<KeyAt> {
        debug_assert!(
            self.newest.main_revision <= at,
            "a read below the newest revision"
        );
        self.alive.then_some(KeyAt {
            modified: self.newest,
            created: self.created,
            version: self.version,
        })
    }

    /// Whether `keyIndex.compact(at)` leaves the key empty (`isEmpty`, so `treeIndex.Compact`
    /// deletes it). A live key keeps its current generation. A deleted key's generations all
    /// end with tombstones no newer than the last one; `doCompact` skips a generation whose
    /// tombstone is below `at` (at or below under the rules before 3.4.34 / 3.5.16), so the
    /// key empties exactly when its last tombstone is.
    pub fn empties_at(&self, at: i64, keep_tombstone_at_compaction: bool) -> bool {
        let last = self.newest.main_revision;
        !self.alive && (last < at || (!keep_tombstone_at_compaction && last == at))
    }
}

/// Where a live key's current marshaled `KeyValue` is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum CurrentValue {
    /// Deleted, or its newest revision compacted out of the bucket.
    #[default]
    None,
    /// Written by the replay: in memory.
    Inline(Vec<u8>),
    /// Restored from a backend db: in the store's value file (`bucket::ValueFile`), so a db
    /// start holds none of the db's values in memory.
    InFile { offset: u64, len: u32 },
}

/// What `keyIndex.get` returns: the revision visible at the asked revision, the generation's
/// creation revision and the version of that revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

#[cfg(test)]
pub(crate) use reference::KeyIndex;

/// The full per-key history, for tests only: the reference the reduced index is compared with.
#[cfg(test)]
mod reference {
    use super::*;

    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub(crate) struct Generation {
        /// Number of puts in this generation (`ver`); compaction trims `revs` but keeps `ver`, so
        /// versions of the remaining revisions stay correct.
        pub version: i64,
        /// First revision of the generation (its `create_revision` is `created.main_revision`).
        pub created: Revision,
        pub revisions: Vec<Revision>,
    }

    impl Generation {
        /// `generation.walk` looking for the newest revision with `main <= at`: revisions are in
        /// ascending order, so this is the last index satisfying it.
        fn newest_index_at_or_before(&self, at: i64) -> Option<usize> {
            match self.revisions.last() {
                None => None,
                Some(last) if last.main_revision <= at => Some(self.revisions.len() - 1),
                Some(_) => self
                    .revisions
                    .partition_point(|r| r.main_revision <= at)
                    .checked_sub(1),
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(crate) struct KeyIndex {
        pub generations: Vec<Generation>,
    }

    impl Default for KeyIndex {
        fn default() -> Self {
            KeyIndex {
                generations: vec![Generation::default()],
            }
        }
    }

    impl KeyIndex {
        /// `keyIndex.isEmpty`: only one, empty generation left (compaction then drops the key).
        pub fn is_empty(&self) -> bool {
            self.generations.len() == 1 && self.generations[0].revisions.is_empty()
        }

        /// Whether the key currently exists (has a put after its last tombstone).
        pub fn is_alive(&self) -> bool {
            self.generations
                .last()
                .is_some_and(|g| !g.revisions.is_empty())
        }

        /// `keyIndex.put`. The caller guarantees `revision` is newer than every revision here.
        pub fn put(&mut self, revision: Revision) {
            if self.generations.is_empty() {
                self.generations.push(Generation::default());
            }
            let last = self.generations.len() - 1;
            let g = &mut self.generations[last];
            if g.revisions.is_empty() {
                g.created = revision;
            }
            g.revisions.push(revision);
            g.version += 1;
        }

        /// `keyIndex.restore`: a key first seen during a restore from the backend, at `modified`,
        /// created at `created` and with `version` puts in its (possibly compacted) generation.
        pub fn restored(created: Revision, modified: Revision, version: i64) -> Self {
            KeyIndex {
                generations: vec![Generation {
                    version,
                    created,
                    revisions: vec![modified],
                }],
            }
        }

        /// Whether `revision` is in the key's history.
        pub fn holds(&self, revision: Revision) -> bool {
            self.generations
                .iter()
                .any(|g| g.revisions.binary_search(&revision).is_ok())
        }

        /// `keyIndex.tombstone`: false (etcd's `ErrRevisionNotFound`) if the key is not alive.
        pub fn tombstone(&mut self, revision: Revision) -> bool {
            if !self.is_alive() {
                return false;
            }
            self.put(revision);
            self.generations.push(Generation::default());
            true
        }

        /// Undo of the latest `put` (used only to roll back a transaction etcd would crash in).
        pub fn undo_put(&mut self) {
            if let Some(g) = self.generations.last_mut() {
                if g.revisions.pop().is_some() {
                    g.version -= 1;
                    if g.revisions.is_empty() {
                        g.created = Revision::default();
                        g.version = 0;
                    }
                }
            }
        }

        /// Undo of the latest `tombstone`.
        pub fn undo_tombstone(&mut self) {
            if self.generations.len() > 1
                && self
                    .generations
                    .last()
                    .is_some_and(|g| g.revisions.is_empty())
            {
                self.generations.pop();
                self.undo_put();
            }
        }

        /// `keyIndex.findGeneration`: the generation alive at `at`, if the key existed then.
        fn find_generation(&self, at: i64) -> Option<&Generation> {
            let last = self.generations.len().checked_sub(1)?;
            for (ci, g) in self.generations.iter().enumerate().rev() {
                let (Some(first), Some(newest)) = (g.revisions.first(), g.revisions.last()) else {
                    continue;
                };
                if ci != last && newest.main_revision <= at {
                    return None;
                }
                if first.main_revision <= at {
                    return Some(g);
                }
            }
            None
        }

        /// `keyIndex.get`: the key's state at main revision `at`, or `None` if it did not exist.
        pub fn get(&self, at: i64) -> Option<KeyAt> {
            let g = self.find_generation(at)?;
            let n = g.newest_index_at_or_before(at)?;
            Some(KeyAt {
                modified: g.revisions[n],
                created: g.created,
                version: g.version - (g.revisions.len() - n - 1) as i64,
            })
        }

        /// `keyIndex.doCompact`: the generation to keep from and, within it, the index of the
        /// newest revision `<= at` (the one etcd adds to `available`).
        fn do_compact(&self, at: i64, rules: CompactionRules) -> (usize, Option<usize>) {
            let mut gi = 0usize;
            while gi + 1 < self.generations.len() {
                let Some(tomb) = self.generations[gi].revisions.last() else {
                    break;
                };
                let stop = if rules.keep_tombstone_at_compaction {
                    tomb.main_revision >= at
                } else {
                    tomb.main_revision > at
                };
                if stop {
                    break;
                }
                gi += 1;
            }
            let ri = self
                .generations
                .get(gi)
                .and_then(|g| g.newest_index_at_or_before(at));
            (gi, ri)
        }

        /// `keyIndex.compact`: drops history `<= at` except the newest revision of the generation
        /// alive at `at`. Returns that revision (it must survive in the bucket), if any.
        pub fn compact(&mut self, at: i64, rules: CompactionRules) -> Option<Revision> {
            let (mut gi, ri) = self.do_compact(at, rules);
            let last = self.generations.len().saturating_sub(1);
            let mut kept = ri.map(|i| self.generations[gi].revisions[i]);
            if let Some(g) = self.generations.get_mut(gi) {
                if !g.revisions.is_empty() {
                    if let Some(i) = ri {
                        g.revisions.drain(..i);
                    }
                    // Only in <= 3.4.33 / <= 3.5.15 ("remove any tombstone"). Unreachable in
                    // practice: a non-last generation selected there has its tombstone > at.
                    if !rules.keep_tombstone_at_compaction && g.revisions.len() == 1 && gi != last {
                        if kept == Some(g.revisions[0]) {
                            kept = None;
                        }
                        gi += 1;
                    }
                }
            }
            self.generations.drain(..gi.min(self.generations.len()));
            if self.generations.is_empty() {
                self.generations.push(Generation::default());
            }
            kept
        }

        /// `keyIndex.keep`: the revision a compaction at `at` would keep for this key, except a
        /// tombstone (HashKV's `Keep` set holds the current revisions of keys alive at `at`).
        pub fn keep(&self, at: i64, rules: CompactionRules) -> Option<Revision> {
            if self.is_empty() {
                return None;
            }
            let (gi, ri) = self.do_compact(at, rules);
            let g = self.generations.get(gi)?;
            let i = ri?;
            if !g.revisions.is_empty()
                && i == g.revisions.len() - 1
                && gi != self.generations.len() - 1
            {
                return None;
            }
            Some(g.revisions[i])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: CompactionRules = CompactionRules::OLD;
    const NEW: CompactionRules = CompactionRules::NEW;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// The example of key_index.go's doc comment:
    /// put(1.0);put(2.0);tombstone(3.0);put(4.0);tombstone(5.0).
    fn example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(1));
        ki.put(r(2));
        assert!(ki.tombstone(r(3)));
        ki.put(r(4));
        assert!(ki.tombstone(r(5)));
        ki
    }

    fn revs(ki: &KeyIndex) -> Vec<Vec<i64>> {
        ki.generations
            .iter()
            .map(|g| g.revisions.iter().map(|r| r.main_revision).collect())
            .collect()
    }

    #[test]
    fn get_follows_generations() {
        let ki = example();
        assert_eq!(ki.get(0), None);
        assert_eq!(
            ki.get(1),
            Some(KeyAt {
                modified: r(1),
                created: r(1),
                version: 1
            })
        );
        assert_eq!(ki.get(2).unwrap().version, 2);
        assert_eq!(ki.get(3), None);
        assert_eq!(
            ki.get(4),
            Some(KeyAt {
                modified: r(4),
                created: r(4),
                version: 1
            })
        );
        assert_eq!(ki.get(5), None);
        assert_eq!(ki.get(100), None);
        assert!(!ki.is_alive());
        let mut dead = KeyIndex::default();
        assert!(!dead.tombstone(r(1)));
    }

    #[test]
    fn compact_doc_comment_example_old_rules() {
        // compact(2) -> {2.0, 3.0(t)}, {4.0, 5.0(t)}, {}
        let mut ki = example();
        assert_eq!(ki.compact(2, OLD), Some(r(2)));
        assert_eq!(revs(&ki), vec![vec![2, 3], vec![4, 5], vec![]]);
        // compact(4) -> {4.0, 5.0(t)}, {}
        assert_eq!(ki.compact(4, OLD), Some(r(4)));
        assert_eq!(revs(&ki), vec![vec![4, 5], vec![]]);
        // compact(5) -> {} : key should be removed
        assert_eq!(ki.compact(5, OLD), None);
        assert!(ki.is_empty());
    }

    #[test]
    fn compact_new_rules_keep_tombstone_at_revision() {
        let mut ki = example();
        assert_eq!(ki.compact(3, NEW), Some(r(3)));
        assert_eq!(revs(&ki), vec![vec![3], vec![4, 5], vec![]]);
        let mut old = example();
        assert_eq!(old.compact(3, OLD), None);
        assert_eq!(revs(&old), vec![vec![4, 5], vec![]]);
        assert_eq!(ki.compact(6, NEW), None);
        assert!(ki.is_empty());
    }

    #[test]
    fn keep_skips_tombstones_under_both_rules() {
        let ki = example();
        for rules in [OLD, NEW] {
            assert_eq!(ki.keep(2, rules), Some(r(2)));
            assert_eq!(ki.keep(3, rules), None);
            assert_eq!(ki.keep(4, rules), Some(r(4)));
            assert_eq!(ki.keep(5, rules), None);
            assert_eq!(ki.keep(9, rules), None);
        }
    }

    #[test]
    fn undo_restores_previous_state() {
        let mut ki = example();
        let before = ki.clone();
        ki.put(r(6));
        ki.put(r(7));
        assert!(ki.tombstone(r(8)));
        ki.undo_tombstone();
        ki.undo_put();
        ki.undo_put();
        assert_eq!(ki, before);
    }
}
