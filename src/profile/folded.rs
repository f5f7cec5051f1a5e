//! Folded stacks (`root;caller;…;leaf count`, one line a distinct stack): the canonical profile
//! artifact — diffable, and what the flame graph is rendered from — plus the classification of
//! stacks into the phases of the per-phase table.

use std::collections::BTreeMap;

use super::workload::{Step, PHASE_FRAMES};

/// One distinct stack, root first, with its sample count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stack {
    pub frames: Vec<String>,
    pub count: u64,
}

/// A symbol name made safe for the folded format: `;` separates frames (Rust names such as
/// `[u8; 8]` contain one), and a line holds one stack.
pub fn sanitize(name: &str) -> String {
    let name = strip_hash(name.trim());
    name.chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect()
}

/// Drops a trailing legacy-mangling hash (`::h0123456789abcdef`).
fn strip_hash(name: &str) -> &str {
    if let Some(at) = name.rfind("::h") {
        let hash = &name[at + 3..];
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return &name[..at];
        }
    }
    name
}

/// The folded text: one line per distinct stack (identical stacks merged), sorted.
pub fn folded(stacks: &[Stack]) -> String {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for stack in stacks {
        if stack.count == 0 || stack.frames.is_empty() {
            continue;
        }
        *merged.entry(stack.frames.join(";")).or_default() += stack.count;
    }
    let mut out = String::new();
    for (line, count) in merged {
        out.push_str(&line);
        out.push(' ');
        out.push_str(&count.to_string());
        out.push('\n');
    }
    out
}

/// What a sample was spent on, for the per-phase table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// In a file read (`read(2)`, including the kernel's copy out of the page cache).
    Read,
    Crc,
    /// Framing, protobuf decoding and ReadAll's bookkeeping.
    Decode,
    RaftRs,
    Mvcc,
    Checks,
    /// Outside the three measured steps (setup, the profiler itself).
    Other,
}

/// The step a stack was sampled in (its outermost phase frame) and the kind of work.
pub fn classify(frames: &[String]) -> (Option<Step>, Work) {
    let step = frames.iter().find_map(|f| {
        PHASE_FRAMES
            .iter()
            .find(|(name, _)| f.contains(name))
            .map(|(_, step)| *step)
    });
    let has = |needle: &str| frames.iter().any(|f| f.contains(needle));
    let work = match step {
        None => Work::Other,
        Some(Step::Decode) => {
            if has("libc_read") || has("FileDesc>::read") {
                Work::Read
            } else if has("crc32c") {
                Work::Crc
            } else {
                Work::Decode
            }
        }
        Some(Step::Replay) => {
            if has("raft_replay::mvcc") {
                Work::Mvcc
            } else {
                Work::RaftRs
            }
        }
        Some(Step::Checks) => Work::Checks,
    };
    (step, work)
}

/// Sample counts by (step, work).
pub fn tally(stacks: &[Stack]) -> BTreeMap<(Option<Step>, Work), u64> {
    let mut counts = BTreeMap::new();
    for stack in stacks {
        *counts.entry(classify(&stack.frames)).or_default() += stack.count;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(frames: &[&str], count: u64) -> Stack {
        Stack {
            frames: frames.iter().map(|s| s.to_string()).collect(),
            count,
        }
    }

    #[test]
    fn folded_merges_sorts_and_sanitizes() {
        let stacks = vec![
            stack(&["main", "b"], 2),
            stack(&["main", "a"], 1),
            stack(&["main", "b"], 3),
        ];
        assert_eq!(folded(&stacks), "main;a 1\nmain;b 5\n");
        assert_eq!(
            sanitize(" <[u8; 8] as Foo>::bar::h0123456789abcdef "),
            "<[u8: 8] as Foo>::bar"
        );
        assert_eq!(sanitize("core::hash::Hash::hash"), "core::hash::Hash::hash");
    }

    #[test]
    fn stacks_are_classified_by_their_phase_frame() {
        let decode = |leaf: &str| {
            classify(&[
                "main".into(),
                "raft_replay::profile::workload::phase_decode".into(),
                leaf.into(),
            ])
        };
        assert_eq!(decode("crc32c::hw_x86_64::crc32c").1, Work::Crc);
        assert_eq!(decode("prost::encoding::decode_varint").1, Work::Decode);
        let replay = classify(&[
            "raft_replay::profile::workload::phase_replay".into(),
            "raft_replay::mvcc::apply::<impl MvccStore>::apply_entry".into(),
        ]);
        assert_eq!(replay, (Some(Step::Replay), Work::Mvcc));
        let cluster = classify(&["raft_replay::profile::workload::phase_checks_cluster".into()]);
        assert_eq!(cluster, (Some(Step::Checks), Work::Checks));
        assert_eq!(classify(&["main".into()]), (None, Work::Other));
    }
}
