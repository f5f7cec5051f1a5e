//! Everything the gate knows about one member, gathered in one pass over its resolved log
//! (etcd's `ReadAll`), its boot snapshot, the invariant scan and the KV replay.

use std::path::PathBuf;

use super::membership::{learner_use, ConfChangeUse, LearnerUse};
use super::min_version::{payload_version, LogVersion};
use super::v2::v2store_custom_content;
use super::version::Version;
use crate::check::{Finding, MemberScan};
use crate::member::MemberRead;
use crate::proto::etcdserverpb::Request;
use crate::proto::payload::{decode_payload, Payload};
use crate::proto::raftpb::{Entry, HardState};
use crate::replay::kv::node_id;

/// The `.snap` etcd boots from (the newest one matching a valid WAL snapshot record).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BootSnapshot {
    pub index: u64,
    pub term: u64,
    pub file: String,
}

/// The cluster version the data records last, and where.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterVersion {
    pub version: Version,
    /// As stored (`3.4.0`).
    pub raw: String,
    /// Raft index of the entry that set it, or the boot snapshot's index.
    pub index: u64,
    /// `v2 PUT /0/version`, `ClusterVersionSet`, or `boot snapshot <file>`.
    pub source: String,
}

/// A v2 request after the boot snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Entry {
    pub index: u64,
    pub term: u64,
    pub committed: bool,
    /// Inside `InternalRaftRequest.v2` rather than bare entry data.
    pub wrapped: bool,
    pub request: Request,
}

impl V2Entry {
    /// `PUT /0/members/…/attributes {"name":"m5",…}` (value cut at 80 characters).
    pub fn describe(&self) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let method = text(&self.request.method);
        let method = if method.is_empty() {
            "(no method)".into()
        } else {
            method
        };
        let mut val = text(&self.request.val);
        if val.chars().count() > 80 {
            val = val.chars().take(80).collect::<String>() + "…";
        }
        let mut out = format!("{method} {}", text(&self.request.path));
        if !val.is_empty() {
            out.push_str(&format!(" {val}"));
        }
        if self.wrapped {
            out.push_str(" (wrapped in InternalRaftRequest.v2)");
        }
        if !self.committed {
            out.push_str(" (not committed)");
        }
        out
    }
}

/// The last `DowngradeInfoSet` in the committed log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Downgrade {
    pub index: u64,
    pub enabled: bool,
    pub target: Option<Version>,
}

/// The MVCC state after applying everything committed (etcd's `HashKV` at the current revision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KvState {
    pub applied_index: u64,
    pub hash: u32,
    pub revision: i64,
    pub compact_revision: i64,
}

pub struct MemberFacts {
    /// The member's name in reports: the input's last path component (the full path when two
    /// inputs share one).
    pub label: String,
    pub path: PathBuf,
    pub node_id: Option<u64>,
    pub read: MemberRead,
    pub scan: MemberScan,
    pub hard_state: HardState,
    pub boot_snapshot: Option<BootSnapshot>,
    pub cluster_version: Option<ClusterVersion>,
    /// `MinimalEtcdVersion` over the entries after the boot snapshot.
    pub log_version: LogVersion,
    pub v2_entries: Vec<V2Entry>,
    /// Custom content in the boot snapshot's v2 store (`None`: no boot snapshot, or its data is
    /// not a v2 store).
    pub v2store_custom: Option<Vec<String>>,
    pub conf_changes: ConfChangeUse,
    pub learners: LearnerUse,
    /// Raft index of the `AuthEnable` in effect at the end of the committed log.
    pub auth_enabled_at: Option<u64>,
    pub downgrade: Option<Downgrade>,
    /// Entries after the boot snapshot etcd panics applying: raft index and why.
    pub apply_panics: Vec<(u64, String)>,
    pub kv: Result<KvState, String>,
    /// The backend db the replay read (None: no db, or an unreadable one).
    pub db: Option<crate::replay::from_db::DbSummary>,
    /// Invariant findings: this member's, cross-member ones filed under it, the replay's.
    pub findings: Vec<Finding>,
}

fn cluster_version_of(raw: &str, index: u64, source: String) -> Option<ClusterVersion> {
    Version::parse(raw).map(|version| ClusterVersion {
        version,
        raw: raw.to_string(),
        index,
        source,
    })
}

/// Gathers the facts of one member already read and scanned.
pub fn gather(
    label: String,
    path: PathBuf,
    read: MemberRead,
    scan: MemberScan,
    findings: Vec<Finding>,
) -> MemberFacts {
    let hard_state = read.contents.hard_state;
    let commit = hard_state.commit;
    let id = Some(node_id(&read)).filter(|id| *id != 0).or(scan.node_id);
    let boot_snapshot = read.snapshot.as_ref().map(|s| BootSnapshot {
        index: s.snapshot.metadata.index,
        term: s.snapshot.metadata.term,
        file: s.file_name.clone(),
    });
    let boot_index = boot_snapshot.as_ref().map_or(0, |s| s.index);
    let snap_data = read
        .snapshot
        .as_ref()
        .and_then(|s| s.snapshot.data.clone())
        .unwrap_or_default();
    let mut cluster_version = read.snapshot.as_ref().and_then(|s| {
        let raw = crate::snap::membership::parse_membership(&snap_data)?.cluster_version?;
        cluster_version_of(
            &raw,
            s.snapshot.metadata.index,
            format!("boot snapshot {}", s.file_name),
        )
    });
    let v2store_custom = read
        .snapshot
        .as_ref()
        .and_then(|_| v2store_custom_content(&snap_data));

    let mut log_version = LogVersion::default();
    let mut v2_entries = Vec::new();
    let mut conf_changes = ConfChangeUse::default();
    let mut auth_enabled_at = None;
    let mut downgrade = None;
    let mut apply_panics = Vec::new();
    for entry in &read.contents.entries {
        let payload = decode_payload(entry);
        let committed = entry.index <= commit;
        let after_snapshot = entry.index > boot_index;
        conf_changes.add(entry, &payload, committed, id);
        if after_snapshot {
            log_version.add(entry.index, payload_version(entry, &payload));
            if let Some(reason) = apply_panic(entry, &payload) {
                apply_panics.push((entry.index, reason));
            }
        }
        let (v2, wrapped): (Option<&Request>, bool) = match &payload {
            Payload::V2(r) => (Some(r), false),
            Payload::Internal(irr) => (irr.v2.as_ref(), true),
            _ => (None, false),
        };
        if let Some(request) = v2 {
            if after_snapshot {
                v2_entries.push(V2Entry {
                    index: entry.index,
                    term: entry.term,
                    committed,
                    wrapped,
                    request: request.clone(),
                });
            }
            if committed && request.method == b"PUT" && request.path == b"/0/version" {
                let raw = String::from_utf8_lossy(&request.val).into_owned();
                if cluster_version
                    .as_ref()
                    .map_or(true, |c| entry.index > c.index)
                {
                    cluster_version =
                        cluster_version_of(&raw, entry.index, "v2 PUT /0/version".into())
                            .or(cluster_version);
                }
            }
        }
        if let (Payload::Internal(irr), true) = (&payload, committed) {
            if let Some(set) = &irr.cluster_version_set {
                let raw = String::from_utf8_lossy(&set.ver).into_owned();
                if cluster_version
                    .as_ref()
                    .map_or(true, |c| entry.index > c.index)
                {
                    cluster_version =
                        cluster_version_of(&raw, entry.index, "ClusterVersionSet".into())
                            .or(cluster_version);
                }
            }
            if irr.auth_enable.is_some() {
                auth_enabled_at.get_or_insert(entry.index);
            }
            if irr.auth_disable.is_some() {
                auth_enabled_at = None;
            }
            if let Some(d) = &irr.downgrade_info_set {
                downgrade = Some(Downgrade {
                    index: entry.index,
                    enabled: d.enabled,
                    target: Version::parse(&String::from_utf8_lossy(&d.ver)),
                });
            }
        }
    }
    let learners = learner_use(&scan.timeline);
    MemberFacts {
        label,
        path,
        node_id: id,
        hard_state,
        boot_snapshot,
        cluster_version,
        log_version,
        v2_entries,
        v2store_custom,
        conf_changes,
        learners,
        auth_enabled_at,
        downgrade,
        apply_panics,
        kv: Err("not replayed".into()),
        db: None,
        findings,
        read,
        scan,
    }
}

/// Entries every etcd release panics applying (`EtcdServer.apply`, `applyEntryNormal`).
fn apply_panic(entry: &Entry, payload: &Payload) -> Option<String> {
    match payload {
        Payload::UnknownNormal => Some(
            "EntryNormal data is neither an InternalRaftRequest nor a v2 Request (pbutil.MustUnmarshal panics)".into(),
        ),
        Payload::BadConfChange(e) if entry.r#type == 1 => {
            Some(format!("ConfChange does not unmarshal ({e}): pbutil.MustUnmarshal panics"))
        }
        Payload::UnknownEntryType(t) => Some(format!(
            "entry type {t}: \"unknown entry type; must be either EntryNormal or EntryConfChange\""
        )),
        _ => None,
    }
}
