//! The key index (etcd's `treeIndex`: key → `keyIndex`), organised for replay speed.
//!
//! etcd keeps one B-tree ordered by key. Most requests in a WAL touch single keys (puts,
//! single-key deletes and compares, lease revokes), and in a comparison tree each of those
//! pays for a dozen or more key comparisons, which are slow for etcd's typical keys with long
//! shared prefixes (`/registry/…`). So a hash map owns the per-key histories, and the key
//! order that only range deletes and range compares need is kept beside it in a B-tree set
//! that new keys join lazily: they wait in `unordered` until the next range operation merges
//! them (each key is merged once, so this never costs more than keeping the tree eagerly).
//!
//! Every key has a small id (`u32`), given when the key is first indexed and named by each of
//! its bucket slots; `by_id` maps it back. An id is given back when its key leaves the index
//! and no slot names it any more, so the table is O(keys indexed), not O(keys ever seen).
//! Slots of keys the index does not hold (tombstones `restoreIntoIndex` skips) name ids of
//! their own, `detached` ones.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

/// The histories' hasher: keyed (random per map) and much faster than SipHash on etcd's long
/// keys; restoring a db of 800 k keys spent a fifth of its time hashing them.
type Hasher = ahash::RandomState;
use std::ops::Bound;
use std::sync::Arc;

use super::key_index::KeyState;

#[derive(Clone, Debug, Default)]
pub(crate) struct KeySpace {
    histories: HashMap<Arc<[u8]>, KeyState, Hasher>,
    ordered: BTreeSet<Arc<[u8]>>,
    /// Keys in `histories` not yet in `ordered`.
    unordered: Vec<Arc<[u8]>>,
    /// Id → key, for indexed keys and detached ids; `None` for a free id.
    by_id: Vec<Option<Arc<[u8]>>>,
    free_ids: Vec<u32>,
    /// Ids of keys named by slots but not indexed.
    detached: HashMap<Arc<[u8]>, u32, Hasher>,
}

impl KeySpace {
    pub fn len(&self) -> usize {
        self.histories.len()
    }

    pub fn get(&self, key: &[u8]) -> Option<&KeyState> {
        self.histories.get(key)
    }

    /// The index's own copy of the key with its history.
    pub fn get_key_value(&self, key: &[u8]) -> Option<(&[u8], &KeyState)> {
        self.histories.get_key_value(key).map(|(k, ki)| (&**k, ki))
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut KeyState> {
        self.histories.get_mut(key)
    }

    /// The history of `key`, created empty if the key was never seen (or compacted away).
    /// The flag tells whether it was created. (Always `Some`; an `Option` only because the
    /// borrow checker cannot return a `get_mut` borrow conditionally without a second probe.)
    pub fn get_or_insert(&mut self, key: &[u8]) -> Option<(&mut KeyState, bool)> {
        // The entry API would need an owned key, an allocation on every call; known keys are
        // the common case, so probe first and allocate only for new keys.
        if self.histories.contains_key(key) {
            return self.histories.get_mut(key).map(|ki| (ki, false));
        }
        Some((self.insert_new(key, KeyState::new), true))
    }

    /// A fresh id for `key`.
    fn allocate(&mut self, key: &Arc<[u8]>) -> u32 {
        match self.free_ids.pop() {
            Some(id) => {
                self.by_id[id as usize] = Some(key.clone());
                id
            }
            None => {
                // More than 4 G distinct keys cannot be indexed in memory anyway.
                let id = u32::try_from(self.by_id.len()).unwrap_or(u32::MAX);
                self.by_id.push(Some(key.clone()));
                id
            }
        }
    }

    /// Bounds every id given so far (the length of a per-id table).
    pub fn id_bound(&self) -> usize {
        self.by_id.len()
    }

    /// The key named by `id` (indexed or detached).
    pub fn key_of(&self, id: u32) -> Option<&[u8]> {
        self.by_id.get(id as usize)?.as_deref()
    }

    /// The id slots of `key` name: its index entry's, else a detached id (given if new).
    pub fn slot_id(&mut self, key: &[u8]) -> u32 {
        if let Some(state) = self.histories.get(key) {
            return state.id;
        }
        if let Some(id) = self.detached.get(key) {
            return *id;
        }
        let key: Arc<[u8]> = Arc::from(key);
        let id = self.allocate(&key);
        self.detached.insert(key, id);
        id
    }

    /// Gives back `id`: no slot names it and its key is not indexed under it.
    fn release(&mut self, id: u32) {
        if let Some(slot) = self.by_id.get_mut(id as usize) {
            if slot.take().is_some() {
                self.free_ids.push(id);
            }
        }
    }

    /// Adds `key` with the state `make` builds from the key's new id, for a caller that knows
    /// the key is not in the index (one hash and one probe, where [`KeySpace::get_or_insert`]
    /// needs a lookup first).
    pub fn insert_new(&mut self, key: &[u8], make: impl FnOnce(u32) -> KeyState) -> &mut KeyState {
        let key: Arc<[u8]> = Arc::from(key);
        let id = self.allocate(&key);
        match self.histories.entry(key) {
            Entry::Vacant(slot) => {
                self.unordered.push(slot.key().clone());
                slot.insert(make(id))
            }
            Entry::Occupied(slot) => {
                debug_assert!(false, "insert_new on a key already indexed");
                let ki = slot.into_mut();
                *ki = make(ki.id);
                ki
            }
        }
    }

    /// Forgets `key` entirely (rolling back its creation: no slot names it).
    pub fn remove(&mut self, key: &[u8]) {
        if let Some(state) = self.histories.remove(key) {
            self.release(state.id);
            if let Some(i) = self.unordered.iter().rposition(|k| &**k == key) {
                self.unordered.swap_remove(i);
            } else {
                self.ordered.remove(key);
            }
        }
    }

    /// Keeps the keys for which `keep` returns true (it may modify them), and gives back the
    /// ids no slot names any more (`referenced`, indexed by id, says which are still named; an
    /// id beyond it is not). A key that leaves while a slot still names it keeps its id,
    /// detached.
    pub fn retain(&mut self, referenced: &[bool], mut keep: impl FnMut(&mut KeyState) -> bool) {
        let before = self.histories.len();
        let named = |id: u32| referenced.get(id as usize).copied().unwrap_or(false);
        let mut left = Vec::new();
        self.histories.retain(|key, ki| {
            let kept = keep(ki);
            if !kept {
                left.push((key.clone(), ki.id));
            }
            kept
        });
        let mut released = Vec::new();
        self.detached.retain(|_, id| {
            let kept = named(*id);
            if !kept {
                released.push(*id);
            }
            kept
        });
        for (key, id) in left {
            if named(id) {
                self.detached.insert(key, id);
            } else {
                released.push(id);
            }
        }
        for id in released {
            self.release(id);
        }
        if self.histories.len() != before {
            let histories = &self.histories;
            self.ordered.retain(|k| histories.contains_key(k));
            self.unordered.retain(|k| histories.contains_key(k));
        }
    }

    /// Every key with its history, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut KeyState)> {
        self.histories.iter_mut().map(|(k, ki)| (&**k, ki))
    }

    pub fn values(&self) -> impl Iterator<Item = &KeyState> {
        self.histories.values()
    }

    /// Merges the keys created since the last range operation into the ordered set.
    pub fn flush_order(&mut self) {
        if self.unordered.is_empty() {
            return;
        }
        if self.unordered.len() * 4 > self.ordered.len() {
            // Many new keys: one sort and a bulk build beat that many tree inserts.
            let ordered = std::mem::take(&mut self.ordered);
            self.ordered = ordered
                .into_iter()
                .chain(self.unordered.drain(..))
                .collect();
        } else {
            for key in self.unordered.drain(..) {
                self.ordered.insert(key);
            }
        }
    }

    /// Calls `f` on every key in `[start, end)` (or `[start, ∞)`) in ascending byte order,
    /// until it returns false. Callers flush first; keys still unordered are handled anyway,
    /// on a slower path.
    pub fn for_each_in_range<'s>(
        &'s self,
        start: &[u8],
        end: Bound<&[u8]>,
        mut f: impl FnMut(&'s [u8], &'s KeyState) -> bool,
    ) {
        let in_range = |k: &[u8]| {
            k >= start
                && match end {
                    Bound::Excluded(e) => k < e,
                    _ => true,
                }
        };
        if let Bound::Excluded(e) = end {
            // BTreeSet::range panics on an inverted range; etcd just finds nothing.
            if e <= start {
                return;
            }
        }
        let range = self
            .ordered
            .range::<[u8], _>((Bound::Included(start), end))
            .map(|k| &**k);
        if self.unordered.is_empty() {
            for key in range {
                if let Some(ki) = self.histories.get(key) {
                    if !f(key, ki) {
                        return;
                    }
                }
            }
            return;
        }
        let mut keys: Vec<&'s [u8]> = range
            .chain(self.unordered.iter().map(|k| &**k).filter(|k| in_range(k)))
            .collect();
        keys.sort_unstable();
        for key in keys {
            if let Some(ki) = self.histories.get(key) {
                if !f(key, ki) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_in(space: &KeySpace, start: &[u8], end: Bound<&[u8]>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        space.for_each_in_range(start, end, |k, _| {
            out.push(k.to_vec());
            true
        });
        out
    }

    #[test]
    fn ranges_see_flushed_and_unflushed_keys_in_order() {
        let mut space = KeySpace::default();
        for k in [&b"c"[..], b"a", b"e"] {
            space.get_or_insert(k);
        }
        space.flush_order();
        for k in [&b"d"[..], b"b", b"\xff"] {
            space.get_or_insert(k);
        }
        let all = keys_in(&space, b"", Bound::Unbounded);
        assert_eq!(
            all,
            vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec(),
                b"d".to_vec(),
                b"e".to_vec(),
                b"\xff".to_vec()
            ]
        );
        assert_eq!(
            keys_in(&space, b"b", Bound::Excluded(b"d")),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert!(keys_in(&space, b"d", Bound::Excluded(b"b")).is_empty());
        space.flush_order();
        assert_eq!(keys_in(&space, b"", Bound::Unbounded), all);
        space.remove(b"c");
        space.get_or_insert(b"z");
        space.remove(b"z");
        assert_eq!(space.len(), 5);
        assert_eq!(
            keys_in(&space, b"c", Bound::Excluded(b"e")),
            vec![b"d".to_vec()]
        );
        space.retain(&[], |_| false);
        assert!(keys_in(&space, b"", Bound::Unbounded).is_empty());
    }
}
