//! The log as etcd's `ReadAll` resolves it, kept as 8-byte digests an entry (term, type, CRC-32C
//! of the data, where it was read): what the invariant scan builds, the cross-member checks
//! compare, and the replay streams against. Part of `check`'s ground floor: it imports no
//! invariant.

use super::digest_items::DigestItems;

/// What the scan keeps of an entry: enough to compare it with another (term, type, CRC-32C of
/// the data) and to say where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryDigest {
    pub term: u64,
    pub entry_type: i32,
    pub data_crc: u32,
    pub segment: u32,
    pub offset: u64,
}

impl EntryDigest {
    pub fn same_entry(&self, other: &EntryDigest) -> bool {
        self.term == other.term
            && self.entry_type == other.entry_type
            && self.data_crc == other.data_crc
    }
}

/// The log as resolved so far: entries `base_index + 1 ..= last_index()`.
#[derive(Debug, Default)]
pub struct ResolvedLog {
    pub base_index: u64,
    /// The term at `base_index`: the snapshot's, 0 at the very beginning, unknown when the
    /// WAL's first segments were purged.
    pub base_term: Option<u64>,
    /// The entries' digests, compactly (8 bytes an entry instead of 32).
    entries: DigestLog,
    /// False only before anything positioned the log (a WAL with no segment start).
    pub positioned: bool,
}

/// [`EntryDigest`]s in order, stored in two parts: per entry only the data CRC and the offset
/// from its run's base offset; per run of entries sharing term, type and segment (a run also
/// ends where an offset would not fit 32 bits) the rest. Runs are few (a new term, a conf
/// change, a segment cut), so a digest costs 8 bytes instead of 32.
#[derive(Debug, Default)]
struct DigestLog {
    /// Per entry: (data CRC, offset - its run's `base_offset`); the older ones spill to a
    /// temporary file past a bound ([`DigestItems`]).
    items: DigestItems,
    /// Runs in order of `first_position`; the first starts at position 0.
    runs: Vec<DigestRun>,
}

#[derive(Clone, Copy, Debug)]
struct DigestRun {
    /// Position (0-based, in `items`) of the run's first entry.
    first_position: usize,
    term: u64,
    entry_type: i32,
    segment: u32,
    base_offset: u64,
}

impl DigestLog {
    fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn push(&mut self, digest: EntryDigest) {
        let position = self.items.len();
        let fits = |run: &DigestRun| {
            run.term == digest.term
                && run.entry_type == digest.entry_type
                && run.segment == digest.segment
                && digest
                    .offset
                    .checked_sub(run.base_offset)
                    .is_some_and(|d| d <= u64::from(u32::MAX))
        };
        if !self.runs.last().is_some_and(fits) {
            self.runs.push(DigestRun {
                first_position: position,
                term: digest.term,
                entry_type: digest.entry_type,
                segment: digest.segment,
                base_offset: digest.offset,
            });
        }
        let run = self.runs.last().expect("a run was pushed above");
        let delta = u32::try_from(digest.offset - run.base_offset).expect("checked by fits");
        self.items.push((digest.data_crc, delta));
    }

    pub(super) fn truncate(&mut self, len: usize) {
        self.items.truncate(len);
        let keep_runs = self.runs.partition_point(|r| r.first_position < len);
        self.runs.truncate(keep_runs);
    }

    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.runs.clear();
    }

    fn get(&self, position: usize) -> Option<EntryDigest> {
        let (data_crc, delta) = self.items.get(position)?;
        let run_index = self
            .runs
            .partition_point(|r| r.first_position <= position)
            .checked_sub(1)
            .expect("the first run starts at position 0");
        let run = &self.runs[run_index];
        Some(EntryDigest {
            term: run.term,
            entry_type: run.entry_type,
            data_crc,
            segment: run.segment,
            offset: run.base_offset + u64::from(delta),
        })
    }

    fn last_term(&self) -> Option<u64> {
        if self.items.is_empty() {
            return None;
        }
        self.runs.last().map(|r| r.term)
    }
}

impl ResolvedLog {
    pub fn last_index(&self) -> u64 {
        self.base_index.saturating_add(self.entries.len() as u64)
    }

    pub fn last_known(&self) -> bool {
        self.positioned
    }

    pub fn last_term(&self) -> Option<u64> {
        self.entries.last_term().or(self.base_term)
    }

    /// The digest of entry `index`, if the log holds it.
    pub fn get(&self, index: u64) -> Option<EntryDigest> {
        if index <= self.base_index {
            return None;
        }
        let offset = usize::try_from(index - self.base_index - 1).ok()?;
        self.entries.get(offset)
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return self.base_term;
        }
        self.get(index).map(|e| e.term)
    }

    pub fn first_index(&self) -> u64 {
        self.base_index.saturating_add(1)
    }

    /// Why the digests spilled to a temporary file could not be read back, if that happened
    /// (the reads then answered "no entry"): a result computed over this log cannot be trusted.
    pub fn spill_error(&self) -> Option<String> {
        self.entries.items.spill_error()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.items.is_empty()
    }

    /// `(index, entry type)` of the first entry of each run of one type, in index order: every
    /// entry type the log holds, without visiting each entry.
    pub fn type_changes(&self) -> impl Iterator<Item = (u64, i32)> + '_ {
        self.entries
            .runs
            .iter()
            .filter(|r| r.first_position < self.entries.len())
            .map(|r| (self.base_index + 1 + r.first_position as u64, r.entry_type))
    }

    /// Every digest held, in index order (for tests and comparisons).
    pub fn digests(&self) -> Vec<EntryDigest> {
        (0..self.entries.len())
            .filter_map(|p| self.entries.get(p))
            .collect()
    }

    pub(super) fn push(&mut self, digest: EntryDigest) {
        self.entries.push(digest);
    }

    /// A log of `digests` after `base_index` (for tests of its consumers).
    #[cfg(test)]
    pub(crate) fn from_digests(base_index: u64, base_term: u64, digests: &[EntryDigest]) -> Self {
        let mut log = ResolvedLog {
            base_index,
            base_term: Some(base_term),
            positioned: true,
            ..Default::default()
        };
        for d in digests {
            log.push(*d);
        }
        log
    }

    /// Keeps the first `len` entries.
    pub(super) fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Push(EntryDigest),
        Truncate(usize),
        Clear,
    }

    fn digest() -> impl Strategy<Value = EntryDigest> {
        (
            0u64..4,
            prop_oneof![Just(0i32), Just(1), Just(2), any::<i32>()],
            any::<u32>(),
            0u32..3,
            prop_oneof![0u64..10_000, Just(u64::from(u32::MAX) + 7), any::<u64>()],
        )
            .prop_map(
                |(term, entry_type, data_crc, segment, offset)| EntryDigest {
                    term,
                    entry_type,
                    data_crc,
                    segment,
                    offset,
                },
            )
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => digest().prop_map(Op::Push),
            2 => (0usize..40).prop_map(Op::Truncate),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// The compact log answers exactly as a plain vector of digests would.
        #[test]
        fn compact_digests_answer_as_a_vector(ops in prop::collection::vec(op(), 0..120)) {
            let mut log = ResolvedLog { base_index: 10, ..Default::default() };
            let mut plain: Vec<EntryDigest> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(d) => {
                        log.push(d);
                        plain.push(d);
                    }
                    Op::Truncate(n) => {
                        log.truncate(n);
                        plain.truncate(n);
                    }
                    Op::Clear => {
                        log.clear();
                        plain.clear();
                    }
                }
                prop_assert_eq!(log.len(), plain.len());
                prop_assert_eq!(log.last_index(), 10 + plain.len() as u64);
                prop_assert_eq!(log.last_term(), plain.last().map(|d| d.term));
                prop_assert_eq!(log.digests(), plain.clone());
                for (i, d) in plain.iter().enumerate() {
                    prop_assert_eq!(log.get(11 + i as u64), Some(*d));
                }
                prop_assert_eq!(log.get(10), None);
                prop_assert_eq!(log.get(11 + plain.len() as u64), None);
            }
        }
    }
}
