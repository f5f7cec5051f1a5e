//! A model of etcd's v3 key-value store (MVCC, leases, compaction) that replays committed raft
//! entries and reproduces etcd's `HashKV` bit for bit.
//!
//! Source of truth: etcd 3.4.23 (`mvcc/kvstore.go`, `kvstore_txn.go`, `key_index.go`,
//! `index.go`, `kvstore_compaction.go`, `etcdserver/apply.go`, `etcdserver/server.go`,
//! `lease/lessor.go`). Later-version differences are selected by [`EtcdVersion`].
//!
//! The model in one paragraph: the store starts at revision 1 with compact revision -1. Every
//! write transaction that changes something takes the next main revision; its changes (puts,
//! and one tombstone per deleted key) get sub revisions 0, 1, 2, … in execution order. Each
//! change is an entry of the `key` bucket: `BE64(main) '_' BE64(sub)` (+ `'t'` for a
//! tombstone) → marshaled `mvccpb.KeyValue`. Per key, etcd's `key_index` keeps the generations
//! of revisions (here recovered from the bucket when needed). Compaction drops history, HashKV
//! hashes what is left. Requests that fail write
//! nothing and take no revision.
//!
//! ```
//! use raft_replay::mvcc::{MvccStore, EMPTY_HASH};
//! let mut store = MvccStore::new();
//! assert_eq!(store.hash_kv(0).unwrap().hash, EMPTY_HASH);
//! store.put(b"foo", b"bar", 0).unwrap();
//! let h = store.hash_kv(0).unwrap();
//! assert_eq!((h.hash, h.revision, h.compact_revision), (3305255506, 2, -1));
//! ```
//!
//! Not modelled (reported instead): the auth store (with auth enabled etcd may reject writes
//! at apply time: [`ApplyStats::auth_enable_requests`] says whether that can have happened),
//! the db-size quota (only its WAL-visible consequence, the NOSPACE alarm, is modelled), and
//! the 3.5.5+ compaction-hash cache of `HashKV(rev)` for recent compaction revisions.
//!
//! The replay starts from an empty store (genesis, WAL from index 1), or from the store a
//! backend db restores ([`Restore`], the bucket streamed into digests and current values by
//! [`BucketLoader`]) for a member whose WAL starts late (`replay::from_db`); `.snap` files hold
//! only the v2 store.
//!
//! Memory: the key bucket is kept as a [`BucketDigest`] per entry (HashKV combines their
//! CRCs) with the id of its key, the older ones spilled to an unlinked temporary file past
//! [`DEFAULT_HOT_REVISIONS`]; values are kept only as each live key's current `KeyValue`. The
//! key index keeps per key only its state at the current revision; what etcd's `treeIndex`
//! answers about older revisions (compaction's keep set, HashKV's `Keep`) is walked from the
//! bucket's digests. Nothing in memory grows with the history, only with the keys.
//!
//! # etcd 3.5 differences (select with [`EtcdVersion`])
//!
//! A replay ([`MvccStore::following_log`]) applies each entry as the release of the cluster
//! version in force at its index: [`cluster`] tracks it (v2 `PUT /0/version`,
//! `ClusterVersionSet`, or what a snapshot or db records) and maps 3.4 → 3.4.23, 3.5 → 3.5.30.
//!
//! * Tombstone at the compaction revision kept (3.5.16+, also 3.4.34+) and skipped by HashKV;
//!   `HashKV(rev == compact revision)` allowed (3.5.10+, also 3.4.27+).
//! * `auth_status` (also 3.4.31+) and the cluster requests `cluster_version_set`,
//!   `cluster_member_attr_set`, `downgrade_info_set` exist; none touches the key space or takes
//!   a revision. 3.5 dispatches on the cluster requests first, even when `shouldApplyV3` is
//!   false; 3.4.23 does not know them: an entry with only such a field makes it panic with
//!   "not implemented" ([`cluster`]).
//! * 3.5.0–3.5.2 could persist the consistent index ahead of the data and skip an entry after
//!   a crash (fixed in 3.5.3): a correct replay then disagrees with that member.
//! * 3.5.17+ panics on any error inside a write txn (3.4 already did for the ops it checks).
//! * 3.5.5+ answers `HashKV(rev)` for a recent compaction revision from a cache of hashes
//!   computed during compaction (not modelled: compare at other revisions).

mod apply;
mod bucket;
pub mod cluster;
mod generations;
mod key_index;
mod keyspace;
mod lease;
#[cfg(test)]
mod reference;
mod restore;
mod revision;
mod store;

#[cfg(test)]
mod tests;

use serde::ser::SerializeStruct;
use serde::Serialize;

use crate::proto::etcdserverpb::InternalRaftRequest;
use crate::proto::raftpb::Entry;

pub use apply::ApplierMode;
pub(crate) use bucket::hot_limit;
pub use bucket::{
    crc32c_combine, encode_key_value, BucketDigest, Digests, DEFAULT_HOT_REVISIONS,
    HOT_REVISIONS_ENV,
};
pub use cluster::{ClusterVersionInForce, DowngradeInForce};
pub use lease::{Lease, MAX_LEASE_TTL};
pub use restore::{BucketLoader, HashKvStream, Restore, RestoreSummary, RestoredStore};
pub use revision::{Revision, REVISION_KEY_LEN, TOMBSTONE_KEY_LEN, TOMBSTONE_MARK};
pub use store::{HashKv, KeyRange, MvccStore, StoreSummary, EMPTY_HASH};

/// The etcd release whose behaviour to reproduce where releases differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EtcdVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Default for EtcdVersion {
    fn default() -> Self {
        EtcdVersion::V3_4_23
    }
}

impl std::fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl EtcdVersion {
    pub const V3_4_23: EtcdVersion = EtcdVersion::new(3, 4, 23);
    /// The newest 3.5 release modelled: what a db written by "3.5" is read as.
    pub const V3_5_30: EtcdVersion = EtcdVersion::new(3, 5, 30);
    pub const V3_6_0: EtcdVersion = EtcdVersion::new(3, 6, 0);

    /// The release whose rules a db written by etcd `generation` (`3.4`, `3.5`, `3.6`: see
    /// `backend::etcd::generation_of`) is read and replayed with. The db does not record the
    /// patch release: 3.4 is 3.4.23 (Debian's), 3.5 the newest 3.5 modelled.
    pub fn for_generation(generation: &str) -> EtcdVersion {
        match generation {
            "3.5" => EtcdVersion::V3_5_30,
            "3.6" => EtcdVersion::V3_6_0,
            _ => EtcdVersion::V3_4_23,
        }
    }

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        EtcdVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `"3.4.23"` (a leading `v` and a `-suffix` are accepted).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let text = text.split(['-', '+']).next()?;
        let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().unwrap_or(Some(0))?;
        Some(EtcdVersion::new(major, minor, patch))
    }

    /// True from 3.4.`patch_3_4` / 3.5.`patch_3_5`, and for every release after 3.5.
    fn since(self, patch_3_4: u32, patch_3_5: u32) -> bool {
        match (self.major, self.minor) {
            (3, 4) => self.patch >= patch_3_4,
            (3, 5) => self.patch >= patch_3_5,
            (major, minor) => major > 3 || (major == 3 && minor > 5),
        }
    }

    /// 3.4.34+ / 3.5.16+ keep a tombstone that sits exactly at the compaction revision
    /// (`doCompact` stops at `tomb >= at` instead of `tomb > at`; etcd PR #18474), and HashKV
    /// skips it so the hash does not change.
    pub fn keeps_tombstone_at_compaction(self) -> bool {
        self.since(34, 16)
    }

    /// 3.4.27+ / 3.5.10+ answer `HashKV(rev == compact revision)` instead of `ErrCompacted`.
    pub fn hash_allows_compact_revision(self) -> bool {
        self.since(27, 10)
    }

    /// `auth_status` (tag 1013) exists from 3.4.31 and in 3.5.
    pub fn knows_auth_status(self) -> bool {
        self.since(31, 0)
    }

    /// `cluster_version_set` / `cluster_member_attr_set` / `downgrade_info_set` (3.5+).
    pub fn knows_v3_5_requests(self) -> bool {
        self.major > 3 || (self.major == 3 && self.minor >= 5)
    }

    pub fn compaction_rules(self) -> CompactionRules {
        CompactionRules {
            keep_tombstone_at_compaction: self.keeps_tombstone_at_compaction(),
        }
    }
}

/// The version-dependent part of `keyIndex.doCompact` / `compact` / `keep`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionRules {
    pub keep_tombstone_at_compaction: bool,
}

#[cfg(test)]
impl CompactionRules {
    /// A compaction at a tombstone drops it (the older releases).
    pub(crate) const OLD: CompactionRules = CompactionRules {
        keep_tombstone_at_compaction: false,
    };
    /// A compaction at a tombstone keeps it (`keeps_tombstone_at_compaction`).
    pub(crate) const NEW: CompactionRules = CompactionRules {
        keep_tombstone_at_compaction: true,
    };
}

/// Errors of `HashByRev`, with etcd's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum MvccError {
    /// `rev <= compact revision` (3.4.27+ / 3.5.10+: `rev < compact revision`).
    #[error("mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    /// `rev > current revision`.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision { current_revision: i64 },
    /// The store's spill file of older revisions' digests could not be read back (not an
    /// etcd outcome: the temporary directory failed under the replay).
    #[error("the store's temporary spill file could not be read back")]
    SpillUnreadable,
}

/// The error etcd's applier returns to the client for a request that changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ApplyError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: no space")]
    NoSpace,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
}

impl ApplyError {
    pub const ALL: [ApplyError; 8] = [
        ApplyError::Compacted,
        ApplyError::FutureRevision,
        ApplyError::LeaseNotFound,
        ApplyError::LeaseExists,
        ApplyError::LeaseTtlTooLarge,
        ApplyError::KeyNotFound,
        ApplyError::NoSpace,
        ApplyError::Corrupt,
    ];

    fn slot(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            ApplyError::Compacted => "compacted",
            ApplyError::FutureRevision => "future_revision",
            ApplyError::LeaseNotFound => "lease_not_found",
            ApplyError::LeaseExists => "lease_exists",
            ApplyError::LeaseTtlTooLarge => "lease_ttl_too_large",
            ApplyError::KeyNotFound => "key_not_found",
            ApplyError::NoSpace => "no_space",
            ApplyError::Corrupt => "corrupt",
        }
    }
}

macro_rules! request_kinds {
    ($($variant:ident => $name:literal, $auth:literal;)*) => {
        /// What an entry carried, named after the `InternalRaftRequest` field etcd dispatched
        /// on (first set field in etcd's order), or the entry category.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RequestKind { $($variant,)* }

        impl RequestKind {
            pub const ALL: &'static [RequestKind] = &[$(RequestKind::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(RequestKind::$variant => $name,)* }
            }

            /// An auth-store request (not modelled; see the module docs).
            pub fn is_auth(self) -> bool {
                match self { $(RequestKind::$variant => $auth,)* }
            }
        }
    };
}

request_kinds! {
    Noop => "noop", false;
    V2 => "v2", false;
    ConfChange => "conf_change", false;
    ConfChangeV2 => "conf_change_v2", false;
    UnknownEntryType => "unknown_entry_type", false;
    Undecodable => "undecodable", false;
    Range => "range", false;
    Put => "put", false;
    DeleteRange => "delete_range", false;
    Txn => "txn", false;
    Compaction => "compaction", false;
    LeaseGrant => "lease_grant", false;
    LeaseRevoke => "lease_revoke", false;
    LeaseCheckpoint => "lease_checkpoint", false;
    Alarm => "alarm", false;
    Authenticate => "authenticate", true;
    AuthEnable => "auth_enable", true;
    AuthDisable => "auth_disable", true;
    AuthStatus => "auth_status", true;
    AuthUserAdd => "auth_user_add", true;
    AuthUserDelete => "auth_user_delete", true;
    AuthUserChangePassword => "auth_user_change_password", true;
    AuthUserGrantRole => "auth_user_grant_role", true;
    AuthUserGet => "auth_user_get", true;
    AuthUserRevokeRole => "auth_user_revoke_role", true;
    AuthRoleAdd => "auth_role_add", true;
    AuthRoleGrantPermission => "auth_role_grant_permission", true;
    AuthRoleGet => "auth_role_get", true;
    AuthRoleRevokePermission => "auth_role_revoke_permission", true;
    AuthRoleDelete => "auth_role_delete", true;
    AuthUserList => "auth_user_list", true;
    AuthRoleList => "auth_role_list", true;
    ClusterVersionSet => "cluster_version_set", false;
    ClusterMemberAttrSet => "cluster_member_attr_set", false;
    DowngradeInfoSet => "downgrade_info_set", false;
    Empty => "empty", false;
}

impl RequestKind {
    /// The field `applierV3backend.Apply` dispatches on: the first one set, in etcd's order.
    pub fn of(r: &InternalRaftRequest) -> RequestKind {
        // An if-chain rather than a table: this runs for every entry, and puts come first.
        macro_rules! first_set {
            ($($field:ident => $kind:ident),* $(,)?) => {
                $(if r.$field.is_some() { return RequestKind::$kind; })*
            };
        }
        first_set!(
            range => Range,
            put => Put,
            delete_range => DeleteRange,
            txn => Txn,
            compaction => Compaction,
            lease_grant => LeaseGrant,
            lease_revoke => LeaseRevoke,
            lease_checkpoint => LeaseCheckpoint,
            alarm => Alarm,
            authenticate => Authenticate,
            auth_enable => AuthEnable,
            auth_disable => AuthDisable,
            auth_status => AuthStatus,
            auth_user_add => AuthUserAdd,
            auth_user_delete => AuthUserDelete,
            auth_user_change_password => AuthUserChangePassword,
            auth_user_grant_role => AuthUserGrantRole,
            auth_user_get => AuthUserGet,
            auth_user_revoke_role => AuthUserRevokeRole,
            auth_role_add => AuthRoleAdd,
            auth_role_grant_permission => AuthRoleGrantPermission,
            auth_role_get => AuthRoleGet,
            auth_role_revoke_permission => AuthRoleRevokePermission,
            auth_role_delete => AuthRoleDelete,
            auth_user_list => AuthUserList,
            auth_role_list => AuthRoleList,
            cluster_version_set => ClusterVersionSet,
            cluster_member_attr_set => ClusterMemberAttrSet,
            downgrade_info_set => DowngradeInfoSet,
        );
        RequestKind::Empty
    }
}

impl Serialize for RequestKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Serialize for ApplyError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Why an entry did not reach the v3 applier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAppliedReason {
    /// Empty EntryNormal: the leader's no-op after an election.
    RaftNoop,
    /// A v2 request (member publish, cluster version…): v2 store only.
    V2Request,
    /// Membership change: no effect on the key space.
    ConfChange,
    /// Raft index at or below the consistent index (already in the backend).
    AlreadyApplied,
    /// `noSideEffect` request (Range, AuthUserGet, AuthRoleGet): skipped without a waiter.
    NoSideEffect,
}

/// What applying one entry did. Serializes as `{"result": "<snake_case name>", …fields}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyResult {
    /// Changed the key space; all its changes carry this main revision.
    Revision { main_revision: i64 },
    /// Compaction applied (`compact_revision` is now this).
    Compacted { compact_revision: i64 },
    /// Applied, key space unchanged (e.g. a delete that matched nothing, a lease grant).
    Unchanged,
    /// etcd's applier returned this error; nothing changed.
    Rejected(ApplyError),
    /// Did not reach the v3 applier.
    NotApplied(NotAppliedReason),
    /// An auth-store request: recognised, not modelled. The key space is unchanged by it,
    /// but with auth enabled etcd may later reject writes this model applies.
    Unmodelled,
    /// etcd would panic here (and again after every restart). The store is left as it was
    /// before the entry; the replay may continue but the member it models would be down.
    EtcdWouldPanic(&'static str),
}

impl Serialize for ApplyResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match *self {
            ApplyResult::Revision { main_revision } => {
                serde_json::json!({"result": "revision", "main_revision": main_revision})
            }
            ApplyResult::Compacted { compact_revision } => {
                serde_json::json!({"result": "compacted", "compact_revision": compact_revision})
            }
            ApplyResult::Unchanged => serde_json::json!({"result": "unchanged"}),
            ApplyResult::Rejected(error) => {
                serde_json::json!({"result": "rejected", "error": error.name(), "message": error.to_string()})
            }
            ApplyResult::NotApplied(reason) => {
                serde_json::json!({"result": "not_applied", "reason": reason})
            }
            ApplyResult::Unmodelled => serde_json::json!({"result": "unmodelled"}),
            ApplyResult::EtcdWouldPanic(reason) => {
                serde_json::json!({"result": "etcd_would_panic", "reason": reason})
            }
        };
        value.serialize(serializer)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ApplyOutcome {
    pub kind: RequestKind,
    pub result: ApplyResult,
}

impl ApplyOutcome {
    fn not_applied(kind: RequestKind, reason: NotAppliedReason) -> Self {
        ApplyOutcome {
            kind,
            result: ApplyResult::NotApplied(reason),
        }
    }

    fn panic(kind: RequestKind, reason: &'static str) -> Self {
        ApplyOutcome {
            kind,
            result: ApplyResult::EtcdWouldPanic(reason),
        }
    }

    /// The main revision written, if the entry changed the key space.
    pub fn revision(&self) -> Option<i64> {
        match self.result {
            ApplyResult::Revision { main_revision } => Some(main_revision),
            _ => None,
        }
    }
}

/// Counters over every entry applied to a store. Serializes as a JSON object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    /// Write transactions that changed something (= revisions written).
    pub revisions_written: u64,
    /// Individual changes (puts + tombstones = bucket entries written).
    pub changes_written: u64,
    pub compactions: u64,
    pub rejected: u64,
    pub not_applied: u64,
    /// Auth-store requests seen (not modelled).
    pub unmodelled: u64,
    /// `AuthEnable` requests seen, with the raft index of the first. If non-zero, etcd may
    /// have enabled auth and from then on rejected writes this model applies.
    pub auth_enable_requests: u64,
    pub first_auth_enable_index: Option<u64>,
    pub etcd_panics: u64,
    pub first_etcd_panic: Option<(u64, &'static str)>,
    by_kind: Vec<u64>,
    by_error: Vec<u64>,
}

impl ApplyStats {
    fn record(&mut self, raft_index: u64, outcome: &ApplyOutcome) {
        if self.by_kind.is_empty() {
            self.by_kind = vec![0; RequestKind::ALL.len()];
            self.by_error = vec![0; ApplyError::ALL.len()];
        }
        if let Some(slot) = self.by_kind.get_mut(outcome.kind as usize) {
            *slot += 1;
        }
        if outcome.kind == RequestKind::AuthEnable
            && !matches!(outcome.result, ApplyResult::NotApplied(_))
        {
            self.auth_enable_requests += 1;
            self.first_auth_enable_index.get_or_insert(raft_index);
        }
        match outcome.result {
            ApplyResult::Rejected(e) => {
                self.rejected += 1;
                if let Some(slot) = self.by_error.get_mut(e.slot()) {
                    *slot += 1;
                }
            }
            ApplyResult::NotApplied(_) => self.not_applied += 1,
            ApplyResult::Unmodelled => self.unmodelled += 1,
            ApplyResult::EtcdWouldPanic(reason) => {
                self.etcd_panics += 1;
                self.first_etcd_panic.get_or_insert((raft_index, reason));
            }
            _ => {}
        }
    }

    /// How many entries of `kind` were seen.
    pub fn count(&self, kind: RequestKind) -> u64 {
        self.by_kind.get(kind as usize).copied().unwrap_or(0)
    }

    /// How many requests etcd rejected with `error`.
    pub fn rejected_with(&self, error: ApplyError) -> u64 {
        self.by_error.get(error.slot()).copied().unwrap_or(0)
    }

    /// Non-zero counts per request kind, by name.
    pub fn kinds(&self) -> std::collections::BTreeMap<&'static str, u64> {
        RequestKind::ALL
            .iter()
            .map(|k| (k.name(), self.count(*k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Non-zero counts per rejection error, by name.
    pub fn errors(&self) -> std::collections::BTreeMap<&'static str, u64> {
        ApplyError::ALL
            .iter()
            .map(|e| (e.name(), self.rejected_with(*e)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Serialize for ApplyStats {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ApplyStats", 13)?;
        s.serialize_field("entries", &self.entries)?;
        s.serialize_field("revisions_written", &self.revisions_written)?;
        s.serialize_field("changes_written", &self.changes_written)?;
        s.serialize_field("compactions", &self.compactions)?;
        s.serialize_field("rejected", &self.rejected)?;
        s.serialize_field("not_applied", &self.not_applied)?;
        s.serialize_field("unmodelled", &self.unmodelled)?;
        s.serialize_field("auth_enable_requests", &self.auth_enable_requests)?;
        s.serialize_field("first_auth_enable_index", &self.first_auth_enable_index)?;
        s.serialize_field("etcd_panics", &self.etcd_panics)?;
        s.serialize_field(
            "first_etcd_panic",
            &self
                .first_etcd_panic
                .map(|(index, reason)| serde_json::json!({"raft_index": index, "reason": reason})),
        )?;
        s.serialize_field("kinds", &self.kinds())?;
        s.serialize_field("errors", &self.errors())?;
        s.end()
    }
}

/// Applies committed entries in order (the caller is responsible for passing only committed
/// entries, with later WAL records already overriding earlier ones at the same index).
/// Returns how many entries changed the key space. Details accumulate in
/// [`MvccStore::stats`].
pub fn apply_entries<'a>(
    store: &mut MvccStore,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> u64 {
    let mut written = 0;
    for entry in entries {
        if store.apply_entry(entry).revision().is_some() {
            written += 1;
        }
    }
    written
}
