//! The baseline lock: per member, what the gate saw — a digest of the decoded log, the last
//! HardState, the applied index and HashKV — as deterministic JSON (no paths, no times), so a
//! checked-in file pins a data set and `--baseline` says what changed and where.
//!
//! Log digest: CRC-32C (Castagnoli) chained over each entry's `index`, `term`, `type` (u64/u64/
//! i32 little-endian), data length (u64) and the data's own CRC-32C, in raft-index order, as
//! etcd's `ReadAll` resolves the log. Chunks of [`CHUNK`] entries carry their own CRC so a diff
//! can name the index ranges that differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::facts::MemberFacts;
use crate::proto::raftpb::Entry;

pub const FORMAT: &str = "raft-replay-gate-baseline/1";
pub const CHUNK: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub format: String,
    /// Keyed by member id (16 hex digits), or the member's name when the WAL has no metadata.
    pub members: BTreeMap<String, MemberLock>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLock {
    pub name: String,
    pub log: LogLock,
    pub hard_state: HardStateLock,
    /// The last entry applied: the KV replay's, else the commit index.
    pub applied_index: u64,
    /// HashKV at the current revision after applying; `null` when the member cannot be replayed
    /// from its files alone (a WAL starting after a snapshot).
    pub hashkv: Option<HashLock>,
    pub boot_snapshot_index: u64,
    pub cluster_version: Option<String>,
    pub minimal_etcd_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLock {
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    pub entries: u64,
    pub last_term: Option<u64>,
    /// `crc32c:%08x`.
    pub digest: String,
    pub chunks: Vec<ChunkLock>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLock {
    pub first: u64,
    pub last: u64,
    pub crc32c: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardStateLock {
    pub term: u64,
    /// Member id in hex (0 when no vote).
    pub vote: String,
    pub commit: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashLock {
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

fn entry_bytes(e: &Entry) -> [u8; 32] {
    let data = e.data_bytes();
    let mut b = [0u8; 32];
    b[0..8].copy_from_slice(&e.index.to_le_bytes());
    b[8..16].copy_from_slice(&e.term.to_le_bytes());
    b[16..20].copy_from_slice(&e.r#type.to_le_bytes());
    b[20..28].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b[28..32].copy_from_slice(&crc32c::crc32c(data).to_le_bytes());
    b
}

pub fn log_lock(entries: &[Entry]) -> LogLock {
    let mut digest = 0u32;
    let mut chunks = Vec::new();
    for chunk in entries.chunks(CHUNK) {
        let mut crc = 0u32;
        for e in chunk {
            let b = entry_bytes(e);
            digest = crc32c::crc32c_append(digest, &b);
            crc = crc32c::crc32c_append(crc, &b);
        }
        chunks.push(ChunkLock {
            first: chunk[0].index,
            last: chunk[chunk.len() - 1].index,
            crc32c: format!("{crc:08x}"),
        });
    }
    LogLock {
        first_index: entries.first().map(|e| e.index),
        last_index: entries.last().map(|e| e.index),
        entries: entries.len() as u64,
        last_term: entries.last().map(|e| e.term),
        digest: format!("crc32c:{digest:08x}"),
        chunks,
    }
}

pub fn member_key(m: &MemberFacts) -> String {
    m.node_id
        .map(|id| format!("{id:016x}"))
        .unwrap_or_else(|| m.label.clone())
}

pub fn member_lock(m: &MemberFacts) -> MemberLock {
    let hs = m.hard_state;
    let kv = m.kv.as_ref().ok();
    MemberLock {
        name: m.label.clone(),
        log: log_lock(&m.read.contents.entries),
        hard_state: HardStateLock {
            term: hs.term,
            vote: format!("{:x}", hs.vote),
            commit: hs.commit,
        },
        applied_index: kv.map_or(hs.commit, |k| k.applied_index),
        hashkv: kv.map(|k| HashLock {
            hash: k.hash,
            revision: k.revision,
            compact_revision: k.compact_revision,
        }),
        boot_snapshot_index: m.boot_snapshot.as_ref().map_or(0, |s| s.index),
        cluster_version: m.cluster_version.as_ref().map(|c| c.raw.clone()),
        minimal_etcd_version: m.log_version.version.map(|v| v.to_string()),
    }
}

pub fn baseline(members: &[MemberFacts]) -> Baseline {
    Baseline {
        format: FORMAT.into(),
        members: members
            .iter()
            .map(|m| (member_key(m), member_lock(m)))
            .collect(),
    }
}

/// Why a baseline file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Not JSON of a baseline's shape.
    #[error("not a gate baseline: {0}")]
    NotABaseline(#[from] serde_json::Error),
    /// A baseline of another format version.
    #[error("baseline format {found:?}, this build reads {FORMAT:?}")]
    Format {
        /// The file's `format`.
        found: String,
    },
}

/// Reads a lock file written by [`render`].
pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
    let baseline: Baseline = serde_json::from_str(text)?;
    if baseline.format != FORMAT {
        return Err(BaselineError::Format {
            found: baseline.format,
        });
    }
    Ok(baseline)
}

pub fn render(baseline: &Baseline) -> String {
    let mut text = serde_json::to_string_pretty(baseline).unwrap_or_default();
    text.push('\n');
    text
}

/// One difference between the baseline and now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `m1 (a5b074b7508a1287)`.
    pub member: String,
    /// `hard_state.commit`, `log`, `hashkv.hash`, …
    pub field: String,
    pub was: String,
    pub now: String,
    /// Where, when it can be said (`raft indexes 1025..=2048`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {} → {}",
            self.member, self.field, self.was, self.now
        )?;
        if let Some(at) = &self.at {
            write!(f, " ({at})")?;
        }
        Ok(())
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "none".to_string(), T::to_string)
}

/// Where two logs differ, by chunk: `raft indexes 1025..=2048, 4097..=5120`.
fn log_where(was: &LogLock, now: &LogLock) -> Option<String> {
    let mut ranges = Vec::new();
    let by_first: BTreeMap<u64, &ChunkLock> = was.chunks.iter().map(|c| (c.first, c)).collect();
    for chunk in &now.chunks {
        match by_first.get(&chunk.first) {
            Some(old) if old.last == chunk.last && old.crc32c == chunk.crc32c => {}
            Some(old) => ranges.push(format!("{}..={}", chunk.first, chunk.last.max(old.last))),
            None => ranges.push(format!("{}..={}", chunk.first, chunk.last)),
        }
    }
    for old in &was.chunks {
        if !now.chunks.iter().any(|c| c.first == old.first) {
            ranges.push(format!("{}..={} (gone)", old.first, old.last));
        }
    }
    if ranges.is_empty() {
        return None;
    }
    let shown = ranges.len().min(8);
    let mut text = format!(
        "entries differ in raft indexes {}",
        ranges[..shown].join(", ")
    );
    if ranges.len() > shown {
        text.push_str(&format!(" and {} more chunk(s)", ranges.len() - shown));
    }
    Some(text)
}

/// What changed from `was` to `now`, member by member and field by field.
pub fn diff(was: &Baseline, now: &Baseline) -> Vec<Change> {
    let mut changes = Vec::new();
    let who = |key: &str, lock: &MemberLock| format!("{} ({key})", lock.name);
    for (key, old) in &was.members {
        let member = who(key, old);
        let Some(new) = now.members.get(key) else {
            changes.push(Change {
                member,
                field: "member".into(),
                was: "present".into(),
                now: "missing from this run".into(),
                at: None,
            });
            continue;
        };
        let mut push = |field: &str, a: String, b: String, at: Option<String>| {
            if a != b {
                changes.push(Change {
                    member: member.clone(),
                    field: field.into(),
                    was: a,
                    now: b,
                    at,
                });
            }
        };
        let (lo, ln) = (&old.log, &new.log);
        push(
            "log.first_index",
            opt(&lo.first_index),
            opt(&ln.first_index),
            None,
        );
        push(
            "log.last_index",
            opt(&lo.last_index),
            opt(&ln.last_index),
            None,
        );
        push(
            "log.entries",
            lo.entries.to_string(),
            ln.entries.to_string(),
            None,
        );
        push(
            "log.last_term",
            opt(&lo.last_term),
            opt(&ln.last_term),
            None,
        );
        push(
            "log.digest",
            lo.digest.clone(),
            ln.digest.clone(),
            log_where(lo, ln),
        );
        let (ho, hn) = (&old.hard_state, &new.hard_state);
        push(
            "hard_state.term",
            ho.term.to_string(),
            hn.term.to_string(),
            None,
        );
        push("hard_state.vote", ho.vote.clone(), hn.vote.clone(), None);
        push(
            "hard_state.commit",
            ho.commit.to_string(),
            hn.commit.to_string(),
            None,
        );
        push(
            "applied_index",
            old.applied_index.to_string(),
            new.applied_index.to_string(),
            None,
        );
        match (old.hashkv, new.hashkv) {
            (Some(a), Some(b)) => {
                push(
                    "hashkv.hash",
                    format!("{:#010x}", a.hash),
                    format!("{:#010x}", b.hash),
                    Some(format!("at applied index {}", new.applied_index)),
                );
                push(
                    "hashkv.revision",
                    a.revision.to_string(),
                    b.revision.to_string(),
                    None,
                );
                push(
                    "hashkv.compact_revision",
                    a.compact_revision.to_string(),
                    b.compact_revision.to_string(),
                    None,
                );
            }
            (a, b) => push(
                "hashkv",
                a.map_or("none".into(), |h| format!("{:#010x}", h.hash)),
                b.map_or("none".into(), |h| format!("{:#010x}", h.hash)),
                None,
            ),
        }
        push(
            "boot_snapshot_index",
            old.boot_snapshot_index.to_string(),
            new.boot_snapshot_index.to_string(),
            None,
        );
        push(
            "cluster_version",
            opt(&old.cluster_version),
            opt(&new.cluster_version),
            None,
        );
        push(
            "minimal_etcd_version",
            opt(&old.minimal_etcd_version),
            opt(&new.minimal_etcd_version),
            None,
        );
    }
    for (key, new) in &now.members {
        if !was.members.contains_key(key) {
            changes.push(Change {
                member: who(key, new),
                field: "member".into(),
                was: "not in the baseline".into(),
                now: "present".into(),
                at: None,
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entries(n: u64, twist: Option<u64>) -> Vec<Entry> {
        (1..=n)
            .map(|i| Entry {
                r#type: 0,
                term: 1,
                index: i,
                data: Some(Bytes::from(if Some(i) == twist {
                    b"other".to_vec()
                } else {
                    i.to_le_bytes().to_vec()
                })),
            })
            .collect()
    }

    fn lock(log: LogLock, commit: u64) -> Baseline {
        let member = MemberLock {
            name: "m1".into(),
            log,
            hard_state: HardStateLock {
                term: 2,
                vote: "1".into(),
                commit,
            },
            applied_index: commit,
            hashkv: Some(HashLock {
                hash: 7,
                revision: 3,
                compact_revision: -1,
            }),
            boot_snapshot_index: 0,
            cluster_version: Some("3.4.0".into()),
            minimal_etcd_version: Some("3.1".into()),
        };
        Baseline {
            format: FORMAT.into(),
            members: [("00000000000000aa".to_string(), member)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_changed_entry_is_located_by_chunk() {
        let was = lock(log_lock(&entries(3000, None)), 3000);
        let now = lock(log_lock(&entries(3000, Some(1500))), 3000);
        let changes = diff(&was, &now);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].field, "log.digest");
        assert_eq!(
            changes[0].at.as_deref(),
            Some("entries differ in raft indexes 1025..=2048")
        );
        assert!(changes[0]
            .to_string()
            .starts_with("m1 (00000000000000aa): log.digest crc32c:"));
        assert!(diff(&was, &was).is_empty());
    }

    #[test]
    fn appended_entries_and_hard_state_changes_are_named() {
        let was = lock(log_lock(&entries(1024, None)), 1024);
        let now = lock(log_lock(&entries(1030, None)), 1030);
        let fields: Vec<String> = diff(&was, &now).iter().map(|c| c.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "log.last_index",
                "log.entries",
                "log.digest",
                "hard_state.commit",
                "applied_index"
            ]
        );
        let text = render(&was);
        assert_eq!(parse(&text).unwrap(), was);
        assert!(parse("{}").is_err());
    }
}
