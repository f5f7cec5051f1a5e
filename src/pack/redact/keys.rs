//! `--redact-keys`: an order-preserving, prefix-preserving, length-preserving map of every key.
//!
//! etcd's key space is ordered bytewise (`mvcc/index.go`: the btree of `keyIndex` by key;
//! `Range`, `DeleteRange` and compares over `[key, range_end)`, `range_end = "\0"` meaning every
//! key ≥ `key`). A keyed hash of each key would break those ranges. Instead every key, range end
//! and compare key of the capture is first collected into a trie; each trie node's child bytes
//! are then mapped, in order, onto a keyed random increasing choice of bytes (byte 0 onto 0, so
//! `"\0"` keeps its meaning and stays the smallest). Two keys compare as their images compare,
//! and one is a prefix of another exactly when their images are: over the keys the capture holds
//! every range selects the same keys after the map as before. What stays visible is the trie's
//! shape: key lengths and which keys share how long a prefix.

use sha2::{Digest, Sha256};

/// A trie node: children by byte, in byte order, and after [`KeyMap::seal`] their images.
#[derive(Default)]
struct Node {
    children: std::collections::BTreeMap<u8, (usize, u8)>,
}

/// The key map: collecting, then sealed and mapping.
#[derive(Default)]
pub struct KeyMap {
    nodes: Vec<Node>,
    sealed: bool,
}

impl KeyMap {
    /// An empty map, collecting.
    pub fn new() -> KeyMap {
        KeyMap {
            nodes: vec![Node::default()],
            sealed: false,
        }
    }

    /// Whether [`KeyMap::seal`] was called.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Adds a key (collecting phase).
    pub fn insert(&mut self, key: &[u8]) {
        let mut node = 0;
        for &b in key {
            let next = self.nodes.len();
            let (child, _) = *self.nodes[node].children.entry(b).or_insert((next, 0));
            if child == next {
                self.nodes.push(Node::default());
            }
            node = child;
        }
    }

    /// Chooses every node's byte images from `secret`; the map is used from now on.
    pub fn seal(&mut self, secret: &[u8; 32]) {
        for (id, node) in self.nodes.iter_mut().enumerate() {
            let nonzero = node.children.keys().filter(|b| **b != 0).count();
            let mut images = choose_increasing(secret, id as u64, nonzero).into_iter();
            for (byte, (_, image)) in node.children.iter_mut() {
                *image = if *byte == 0 {
                    0
                } else {
                    images.next().unwrap_or(*byte)
                };
            }
        }
        self.sealed = true;
    }

    /// The image of a collected key; `None` for a key never collected.
    pub fn map(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut node = 0;
        let mut out = Vec::with_capacity(key.len());
        for b in key {
            let (child, image) = *self.nodes[node].children.get(b)?;
            out.push(image);
            node = child;
        }
        Some(out)
    }
}

/// `n` (≤ 255) distinct bytes from 1..=255 in increasing order, chosen by a keyed shuffle.
fn choose_increasing(secret: &[u8; 32], node: u64, n: usize) -> Vec<u8> {
    let mut pool: Vec<u8> = (1..=255).collect();
    let mut block = [0u8; 32];
    for i in 0..n.min(pool.len()) {
        if i % 8 == 0 {
            block.copy_from_slice(
                &Sha256::new()
                    .chain_update(secret)
                    .chain_update(b"k")
                    .chain_update(node.to_le_bytes())
                    .chain_update((i as u64).to_le_bytes())
                    .finalize(),
            );
        }
        let r = u32::from_le_bytes(
            block[(i % 8) * 4..(i % 8) * 4 + 4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        let j = i + (r as usize) % (pool.len() - i);
        pool.swap(i, j);
    }
    let mut chosen = pool[..n.min(pool.len())].to_vec();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_prefixes_lengths_and_the_from_key_end_are_kept() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"a",
            b"a/1",
            b"a/10",
            b"a/2",
            b"a0",
            b"b",
            b"foo",
            b"fo\xff",
            b"\xff\xff",
        ];
        let mut map = KeyMap::new();
        for k in &keys {
            map.insert(k);
        }
        map.seal(&[9; 32]);
        let images: Vec<Vec<u8>> = keys.iter().map(|k| map.map(k).unwrap()).collect();
        for (k, i) in keys.iter().zip(&images) {
            assert_eq!(k.len(), i.len());
        }
        assert_eq!(images[1], b"\0");
        assert_eq!(images[0], b"");
        for (a, ia) in keys.iter().zip(&images) {
            for (b, ib) in keys.iter().zip(&images) {
                assert_eq!(a.cmp(b), ia.cmp(ib), "{a:?} vs {b:?}");
                assert_eq!(b.starts_with(a), ib.starts_with(ia));
            }
        }
        assert_ne!(images[8], b"foo");
        assert_eq!(map.map(b"zzz"), None);
    }
}
