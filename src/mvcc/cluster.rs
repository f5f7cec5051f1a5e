//! The cluster-level requests etcd applies next to the key space, and the release whose apply
//! semantics are in force at each raft index.
//!
//! An entry is applied as the release running the cluster applies it. The log records that
//! release's minor version as the **cluster version**: `monitorVersions` on the leader sets it
//! to the lowest server version of the members (`decideClusterVersion`) with a v2
//! `PUT /0/version` (3.4.23 and 3.5.30 both: `updateClusterVersion` / `updateClusterVersionV2`)
//! or, from 3.6, a v3 `ClusterVersionSet`. Both are applied whether or not the entry is at or
//! below the consistent index (`applierV2store.Put`, 3.5 `applierV3backend.Apply`), so the
//! version in force is tracked on every entry. A start from a `.snap` or a backend db takes the
//! version they record ([`MvccStore::set_cluster_version`]).
//!
//! What each release does with the three requests added in 3.5 (`raft_internal.proto` fields
//! 1300–1302):
//!
//! * 3.5.30 (`server/etcdserver/apply.go: applierV3backend.Apply`) dispatches on them *first*,
//!   before the `shouldApplyV3` gate, and returns no result: `ClusterVersionSet` →
//!   `cluster.SetVersion(semver.Must(semver.NewVersion(ver)))` (panics on a version that is not
//!   `X.Y.Z`); `ClusterMemberAttrSet` → `cluster.UpdateAttributes(id, {Name, ClientURLs})`
//!   (dereferences `MemberAttributes`: a nil one panics; an unknown member panics, a removed
//!   one is skipped, as for the v2 publish `PUT /0/members/<id>/attributes` in both releases);
//!   `DowngradeInfoSet` →
//!   `cluster.SetDowngradeInfo`. None writes the `key` bucket or takes a revision; their state
//!   lives in the v2 store and the `cluster`/`members` buckets, which HashKV does not cover.
//! * 3.4.23 (`etcdserver/etcdserverpb/raft_internal.pb.go: Unmarshal`) skips the unknown
//!   fields, so the request reaches `applierV3backend.Apply` (`etcdserver/apply.go`) with no
//!   field set and hits `default: panic("not implemented")` — unless it is at or below the
//!   consistent index (`applyEntryNormal` returns before the applier).
//!
//! Membership, for `UpdateAttributes`' unknown-member panic, is tracked from the conf changes
//! when the log starts at raft index 1 (`ValidateConfigurationChange`: an add of a member or of
//! a removed id and a remove of a non-member change nothing); a replay that starts from a
//! snapshot or db does not know it and skips that check.
//!
//! The patch release stands for its minor: cluster version 3.4 applies as 3.4.23 (installed
//! here), 3.5 as 3.5.30 (the binaries the captures use). Releases before 3.4 are not modelled
//! (3.4.23's rules apply).

use std::collections::BTreeSet;

use super::{ApplyOutcome, ApplyResult, EtcdVersion, MvccStore, NotAppliedReason, RequestKind};
use crate::proto::etcdserverpb::{InternalRaftRequest, Request};
use crate::proto::member::Member;
use crate::proto::raftpb::{ConfChange, ConfChangeType};

/// The v2 key etcd keeps the cluster version under (`membership.StoreClusterVersionKey`).
pub const V2_VERSION_PATH: &[u8] = b"/0/version";

/// The cluster version in force and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClusterVersionInForce {
    pub major: u64,
    pub minor: u64,
    /// Raft index of the entry that set it (0: set from a snapshot or db, or by the caller).
    pub index: u64,
}

/// The last `DowngradeInfoSet` applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DowngradeInForce {
    pub enabled: bool,
    /// `TargetVersion`: empty when not enabled (3.5.30 drops `ver` then).
    pub target_version: String,
    pub index: u64,
}

/// The members and removed ids of `RaftCluster`, as far as `UpdateAttributes` needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    pub current: BTreeSet<u64>,
    pub removed: BTreeSet<u64>,
}

impl Members {
    /// `applyConfChange` after `ValidateConfigurationChange`: a rejected change is a no-op.
    fn apply(&mut self, change: &ConfChange, member: Option<&Member>) {
        let id = change.node_id;
        match ConfChangeType::try_from(change.r#type) {
            Ok(ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode) => {
                let promote = member.is_some_and(|m| m.is_promote);
                if !promote && !self.removed.contains(&id) {
                    self.current.insert(id);
                }
            }
            Ok(ConfChangeType::ConfChangeRemoveNode) if self.current.contains(&id) => {
                self.current.remove(&id);
                self.removed.insert(id);
            }
            _ => {}
        }
    }

    /// `UpdateAttributes`: `Err` where etcd panics ("failed to update; member unknown").
    fn update_attributes(&self, id: u64) -> Result<(), &'static str> {
        if self.current.contains(&id) || self.removed.contains(&id) {
            Ok(())
        } else {
            Err("attributes of a member that is neither in the cluster nor removed: UpdateAttributes panics (\"failed to update; member unknown\")")
        }
    }
}

/// The member id of a v2 publish path `/0/members/<hex id>/attributes` (`applierV2store.Put`'s
/// `storeMemberAttributeRegexp`, `MustParseMemberIDFromKey`).
fn v2_attributes_member(path: &[u8]) -> Option<u64> {
    let rest = path.strip_prefix(b"/0/members/")?;
    let hex = rest.strip_suffix(b"/attributes")?;
    if hex.is_empty() || hex.len() > 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// `github.com/coreos/go-semver` `NewVersion`: `MAJOR.MINOR.PATCH`, then an optional
/// `-prerelease` and `+metadata`; each of the three parts an integer. `None` where it errors
/// (etcd's `semver.Must` panics there).
pub fn parse_semver(text: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.split('+').next()?;
    let text = text.split('-').next()?;
    let mut parts = text.split('.');
    let mut next = || -> Option<u64> { parts.next()?.parse::<u64>().ok() };
    let version = (next()?, next()?, next()?);
    parts.next().is_none().then_some(version)
}

impl EtcdVersion {
    /// The release whose apply semantics a cluster at `major.minor` runs (module docs).
    pub fn for_cluster_version(major: u64, minor: u64) -> EtcdVersion {
        match (major, minor) {
            (3, 5) => EtcdVersion::V3_5_30,
            (3, m) if m <= 4 => EtcdVersion::V3_4_23,
            (major, minor) => EtcdVersion::new(
                u32::try_from(major).unwrap_or(u32::MAX),
                u32::try_from(minor).unwrap_or(u32::MAX),
                0,
            ),
        }
    }
}

/// Whether `r` is the v2 request `applierV2store.Put` routes to `cluster.SetVersion`: a plain
/// PUT (no `PrevExist`, `PrevIndex`, `PrevValue`) of `/0/version`.
pub fn is_v2_version_put(r: &Request) -> bool {
    r.method == b"PUT"
        && r.path == V2_VERSION_PATH
        && r.prev_exist.is_none()
        && r.prev_index == 0
        && r.prev_value.is_empty()
}

impl MvccStore {
    /// Sets the cluster version in force, as a `SetVersion` at `raft_index` does (a start from
    /// a snapshot or db passes its index), and with it the release whose rules apply — when it
    /// names a modelled one (3.4 and up). A lower one is `version.MinClusterVersion` ("3.0.0"),
    /// which `monitorVersions` sets when the leader cannot reach every member
    /// (`decideClusterVersion` returns nil; 3.4.23 `etcdserver/server.go`, 3.5.30
    /// `server/etcdserver/server.go`): it says nothing of the binaries, and the release stays
    /// (`replay::binary`).
    pub fn set_cluster_version(&mut self, major: u64, minor: u64, raft_index: u64) {
        if (major, minor) >= (3, 4) {
            self.version = EtcdVersion::for_cluster_version(major, minor);
            self.rules = self.version.compaction_rules();
        }
        self.cluster_version = Some(ClusterVersionInForce {
            major,
            minor,
            index: raft_index,
        });
    }

    /// Makes the release follow the log from here on, as [`MvccStore::following_log`] does.
    pub fn follow_log(&mut self) {
        self.follows_log = true;
    }

    /// [`Self::set_cluster_version`] from the text a snapshot or db stores (`3.5.0`); `false`
    /// (nothing set) when it is not a semantic version.
    pub fn set_cluster_version_text(&mut self, text: &[u8], raft_index: u64) -> bool {
        match parse_semver(text) {
            Some((major, minor, _)) => {
                self.set_cluster_version(major, minor, raft_index);
                true
            }
            None => false,
        }
    }

    /// The cluster version in force (`None`: not yet set by the log, a snapshot or a db).
    pub fn cluster_version(&self) -> Option<&ClusterVersionInForce> {
        self.cluster_version.as_ref()
    }

    /// The last `DowngradeInfoSet` applied.
    pub fn downgrade(&self) -> Option<&DowngradeInForce> {
        self.downgrade.as_ref()
    }

    /// Tracks a conf change in the membership (a no-op while membership is unknown).
    pub(crate) fn apply_conf_change_to_members(
        &mut self,
        change: &ConfChange,
        member: Option<&Member>,
    ) {
        if let Some(members) = &mut self.members {
            members.apply(change, member);
        }
    }

    /// The membership the log established (`None`: the replay did not start at index 1).
    pub fn members(&self) -> Option<&Members> {
        self.members.as_ref()
    }

    fn update_attributes(&self, id: u64) -> Result<(), &'static str> {
        self.members
            .as_ref()
            .map_or(Ok(()), |m| m.update_attributes(id))
    }

    /// Whether the release in force dispatches on the 3.5 cluster requests. Before the log
    /// sets a cluster version, a request a member proposed is one its release knows.
    pub(crate) fn knows_cluster_requests(&self) -> bool {
        self.version.knows_v3_5_requests() || (self.follows_log && self.cluster_version.is_none())
    }

    /// `applyV2Request` (3.4.23 `etcdserver/apply_v2.go`, 3.5.30
    /// `server/etcdserver/apply_v2.go`): only the version PUT reaches state this model keeps.
    pub(crate) fn apply_v2(&mut self, raft_index: u64, r: &Request) -> ApplyOutcome {
        let plain_put = r.method == b"PUT"
            && r.prev_exist.is_none()
            && r.prev_index == 0
            && r.prev_value.is_empty();
        if let Some(id) = v2_attributes_member(&r.path).filter(|_| plain_put) {
            if serde_json::from_slice::<serde_json::Value>(&r.val).is_err() {
                return ApplyOutcome::panic(
                    RequestKind::V2,
                    "v2 member attributes that are not JSON: applierV2store.Put panics (\"failed to unmarshal\")",
                );
            }
            if let Err(why) = self.update_attributes(id) {
                return ApplyOutcome::panic(RequestKind::V2, why);
            }
        }
        if is_v2_version_put(r) {
            match parse_semver(&r.val) {
                Some((major, minor, _)) => self.set_cluster_version(major, minor, raft_index),
                None => {
                    return ApplyOutcome::panic(
                        RequestKind::V2,
                        "v2 PUT /0/version with a value that is not a semantic version: semver.Must panics (applierV2store.Put)",
                    )
                }
            }
        }
        ApplyOutcome::not_applied(RequestKind::V2, NotAppliedReason::V2Request)
    }

    /// 3.5's first `switch` in `applierV3backend.Apply`: the cluster requests, applied
    /// whatever the consistent index. `None`: the request carries none of them.
    pub(crate) fn apply_cluster_request(
        &mut self,
        raft_index: u64,
        request: &InternalRaftRequest,
    ) -> Option<ApplyOutcome> {
        let (kind, result) = if let Some(set) = &request.cluster_version_set {
            let result = match parse_semver(&set.ver) {
                Some((major, minor, _)) => {
                    self.set_cluster_version(major, minor, raft_index);
                    ApplyResult::Unchanged
                }
                None => ApplyResult::EtcdWouldPanic(
                    "ClusterVersionSet with a version that is not X.Y.Z: semver.Must panics",
                ),
            };
            (RequestKind::ClusterVersionSet, result)
        } else if let Some(set) = &request.cluster_member_attr_set {
            let result = if set.member_attributes.is_none() {
                ApplyResult::EtcdWouldPanic(
                    "ClusterMemberAttrSet without member_attributes: nil pointer dereference",
                )
            } else {
                match self.update_attributes(set.member_id) {
                    Ok(()) => ApplyResult::Unchanged,
                    Err(why) => ApplyResult::EtcdWouldPanic(why),
                }
            };
            (RequestKind::ClusterMemberAttrSet, result)
        } else if let Some(set) = &request.downgrade_info_set {
            self.downgrade = Some(DowngradeInForce {
                enabled: set.enabled,
                target_version: if set.enabled {
                    String::from_utf8_lossy(&set.ver).into_owned()
                } else {
                    String::new()
                },
                index: raft_index,
            });
            (RequestKind::DowngradeInfoSet, ApplyResult::Unchanged)
        } else {
            return None;
        };
        Some(ApplyOutcome { kind, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_as_go_semver_parses_it() {
        assert_eq!(parse_semver(b"3.5.0"), Some((3, 5, 0)));
        assert_eq!(parse_semver(b"3.6.0-alpha.0+git"), Some((3, 6, 0)));
        for bad in [&b"3.5"[..], b"v3.5.0", b"3.5.0.1", b"", b"x.y.z", b"3.5.-1"] {
            assert_eq!(parse_semver(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn each_cluster_version_applies_as_its_release() {
        assert_eq!(EtcdVersion::for_cluster_version(3, 4), EtcdVersion::V3_4_23);
        assert_eq!(EtcdVersion::for_cluster_version(3, 0), EtcdVersion::V3_4_23);
        assert_eq!(EtcdVersion::for_cluster_version(3, 5), EtcdVersion::V3_5_30);
        assert_eq!(
            EtcdVersion::for_cluster_version(3, 6),
            EtcdVersion::new(3, 6, 0)
        );
    }
}
