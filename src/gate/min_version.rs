//! etcd's `MinimalEtcdVersion` (`server/storage/wal/version.go`, v3.6): the oldest etcd able to
//! interpret a log, from the `etcd_version_msg` / `_field` / `_enum` / `_enum_value` annotations
//! on the protos (`api/etcdserverpb/rpc.proto`, `raft_internal.proto`, `membershippb`).
//!
//! Reproduced exactly, quirks included:
//! * only **set** fields are visited (`protoreflect.Message.Range`: non-zero proto3 scalars,
//!   non-nil messages), each contributing its field annotation, then its message or enum;
//! * **repeated** fields are not descended into (a `List` is neither a `Message` nor an
//!   `EnumNumber`): a txn's compares and ops, and a lease checkpoint's entries, never count, so
//!   a nested txn (3.3) or a `LEASE` compare (3.3) leaves a txn at 3.0;
//! * raft's `Entry` carries no annotation; `ConfChange` counts as 3.0, `ConfChangeV2` as 3.4;
//! * v2 `Request`s carry no annotation at all (they contribute nothing);
//! * an empty `EntryNormal` (raft's no-op) unmarshals as an empty `InternalRaftRequest`: 3.0;
//! * `DowngradeVersionTest` (field 9900, e2e tests only) counts as the version it names;
//! * data that is neither an `InternalRaftRequest` nor a v2 `Request`, an enum number outside
//!   its enum, or an unknown entry type make etcd's walk return an error — `MinimalEtcdVersion`
//!   then **panics** (so does `etcdutl migrate`).

use super::version::Version;
use crate::proto::etcdserverpb::InternalRaftRequest;
use crate::proto::payload::{decode_payload, Payload};
use crate::proto::raftpb::{Entry, EntryType};

/// The annotation that set an entry's version: `etcdserverpb.PutRequest.ignore_value` @ 3.2.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Annotation {
    pub version: Version,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryVersion {
    /// The highest annotation the entry uses; `None` when it uses none (v2 requests).
    Known(Option<Annotation>),
    /// etcd's walk errors here and `MinimalEtcdVersion` panics.
    Panics(String),
}

#[derive(Default)]
struct Visitor {
    best: Option<Annotation>,
}

impl Visitor {
    fn see(&mut self, path: &str, major: u64, minor: u64) {
        let version = Version::new(major, minor);
        // etcd keeps the later of equal versions; the first is kept here, which names the same
        // version and points at the outermost reason.
        if self
            .best
            .as_ref()
            .map_or(true, |b| b.version.minor_lt(version))
        {
            self.best = Some(Annotation {
                version,
                path: path.to_string(),
            });
        }
    }

    /// `visitEnumNumber`: the enum's own annotation, then the value's (error if out of range).
    fn enum_number(
        &mut self,
        enum_path: &str,
        enum_version: Option<(u64, u64)>,
        number: i32,
        values: &[(&str, Option<(u64, u64)>)],
    ) -> Result<(), String> {
        if let Some((major, minor)) = enum_version {
            self.see(enum_path, major, minor);
        }
        let Some((name, version)) = usize::try_from(number).ok().and_then(|n| values.get(n)) else {
            return Err(format!(
                "could not visit EnumNumber [{number}] of {enum_path}"
            ));
        };
        if let Some((major, minor)) = version {
            self.see(name, *major, *minor);
        }
        Ok(())
    }
}

/// The version one entry needs.
pub fn entry_version(entry: &Entry) -> EntryVersion {
    payload_version(entry, &decode_payload(entry))
}

/// The version one entry needs, given its decoded payload.
pub fn payload_version(entry: &Entry, payload: &Payload) -> EntryVersion {
    let mut v = Visitor::default();
    match EntryType::try_from(entry.r#type) {
        Ok(EntryType::EntryNormal) => match payload {
            Payload::Noop => v.see("etcdserverpb.InternalRaftRequest", 3, 0),
            Payload::Internal(irr) => {
                if let Err(e) = visit_irr(&mut v, irr, entry.data_bytes()) {
                    return EntryVersion::Panics(e);
                }
            }
            Payload::V2(_) => {}
            _ => {
                return EntryVersion::Panics(
                    "data is neither an InternalRaftRequest nor a v2 Request".into(),
                )
            }
        },
        Ok(EntryType::EntryConfChange) => {
            // An undecodable ConfChange is skipped (`return nil`), not an error.
            if matches!(payload, Payload::ConfChange { .. }) {
                v.see("raftpb.ConfChange", 3, 0);
            }
        }
        Ok(EntryType::EntryConfChangeV2) => {
            if matches!(payload, Payload::ConfChangeV2(_)) {
                v.see("raftpb.ConfChangeV2", 3, 4);
            }
        }
        Err(_) => {
            return EntryVersion::Panics(format!("unhandled entry type {}", entry.r#type));
        }
    }
    EntryVersion::Known(v.best)
}

fn visit_irr(v: &mut Visitor, r: &InternalRaftRequest, raw: &[u8]) -> Result<(), String> {
    const IRR: &str = "etcdserverpb.InternalRaftRequest";
    v.see(IRR, 3, 0);
    if let Some(h) = &r.header {
        v.see("etcdserverpb.RequestHeader", 3, 0);
        if h.auth_revision != 0 {
            v.see("etcdserverpb.RequestHeader.auth_revision", 3, 1);
        }
    }
    // `v2` (field 2): neither the field nor `etcdserverpb.Request` is annotated.
    if let Some(q) = &r.range {
        v.see("etcdserverpb.RangeRequest", 3, 0);
        if q.sort_order != 0 {
            v.enum_number(
                "etcdserverpb.RangeRequest.SortOrder",
                Some((3, 0)),
                q.sort_order,
                &[("NONE", None), ("ASCEND", None), ("DESCEND", None)],
            )?;
        }
        if q.sort_target != 0 {
            v.enum_number(
                "etcdserverpb.RangeRequest.SortTarget",
                Some((3, 0)),
                q.sort_target,
                &[
                    ("KEY", None),
                    ("VERSION", None),
                    ("CREATE", None),
                    ("MOD", None),
                    ("VALUE", None),
                ],
            )?;
        }
        for (set, name) in [
            (q.min_mod_revision, "min_mod_revision"),
            (q.max_mod_revision, "max_mod_revision"),
            (q.min_create_revision, "min_create_revision"),
            (q.max_create_revision, "max_create_revision"),
        ] {
            if set != 0 {
                v.see(&format!("etcdserverpb.RangeRequest.{name}"), 3, 1);
            }
        }
    }
    if let Some(p) = &r.put {
        v.see("etcdserverpb.PutRequest", 3, 0);
        if p.prev_kv {
            v.see("etcdserverpb.PutRequest.prev_kv", 3, 1);
        }
        if p.ignore_value {
            v.see("etcdserverpb.PutRequest.ignore_value", 3, 2);
        }
        if p.ignore_lease {
            v.see("etcdserverpb.PutRequest.ignore_lease", 3, 2);
        }
    }
    if let Some(d) = &r.delete_range {
        v.see("etcdserverpb.DeleteRangeRequest", 3, 0);
        if d.prev_kv {
            v.see("etcdserverpb.DeleteRangeRequest.prev_kv", 3, 1);
        }
    }
    // compare/success/failure are repeated: not descended into.
    if r.txn.is_some() {
        v.see("etcdserverpb.TxnRequest", 3, 0);
    }
    if r.compaction.is_some() {
        v.see("etcdserverpb.CompactionRequest", 3, 0);
    }
    if r.lease_grant.is_some() {
        v.see("etcdserverpb.LeaseGrantRequest", 3, 0);
    }
    if r.lease_revoke.is_some() {
        v.see("etcdserverpb.LeaseRevokeRequest", 3, 0);
    }
    if let Some(a) = &r.alarm {
        v.see("etcdserverpb.AlarmRequest", 3, 0);
        if a.action != 0 {
            v.enum_number(
                "etcdserverpb.AlarmRequest.AlarmAction",
                Some((3, 0)),
                a.action,
                &[("GET", None), ("ACTIVATE", None), ("DEACTIVATE", None)],
            )?;
        }
        if a.alarm != 0 {
            v.enum_number(
                "etcdserverpb.AlarmType",
                Some((3, 0)),
                a.alarm,
                &[
                    ("etcdserverpb.NONE", None),
                    ("etcdserverpb.NOSPACE", None),
                    ("etcdserverpb.CORRUPT", Some((3, 3))),
                ],
            )?;
        }
    }
    if r.lease_checkpoint.is_some() {
        v.see(&format!("{IRR}.lease_checkpoint"), 3, 4);
        v.see("etcdserverpb.LeaseCheckpointRequest", 3, 4);
    }
    if r.auth_enable.is_some() {
        v.see("etcdserverpb.AuthEnableRequest", 3, 0);
    }
    if r.auth_disable.is_some() {
        v.see("etcdserverpb.AuthDisableRequest", 3, 0);
    }
    if r.auth_status.is_some() {
        v.see(&format!("{IRR}.auth_status"), 3, 5);
        v.see("etcdserverpb.AuthStatusRequest", 3, 5);
    }
    if r.authenticate.is_some() {
        v.see("etcdserverpb.InternalAuthenticateRequest", 3, 0);
    }
    if let Some(a) = &r.auth_user_add {
        v.see("etcdserverpb.AuthUserAddRequest", 3, 0);
        if a.options.is_some() {
            // authpb.UserAddOptions itself carries no annotation.
            v.see("etcdserverpb.AuthUserAddRequest.options", 3, 4);
        }
        if !a.hashed_password.is_empty() {
            v.see("etcdserverpb.AuthUserAddRequest.hashedPassword", 3, 5);
        }
    }
    let plain: [(bool, &str); 11] = [
        (r.auth_user_delete.is_some(), "AuthUserDeleteRequest"),
        (r.auth_user_get.is_some(), "AuthUserGetRequest"),
        (r.auth_user_grant_role.is_some(), "AuthUserGrantRoleRequest"),
        (
            r.auth_user_revoke_role.is_some(),
            "AuthUserRevokeRoleRequest",
        ),
        (r.auth_user_list.is_some(), "AuthUserListRequest"),
        (r.auth_role_list.is_some(), "AuthRoleListRequest"),
        (r.auth_role_add.is_some(), "AuthRoleAddRequest"),
        (r.auth_role_delete.is_some(), "AuthRoleDeleteRequest"),
        (r.auth_role_get.is_some(), "AuthRoleGetRequest"),
        (
            r.auth_role_revoke_permission.is_some(),
            "AuthRoleRevokePermissionRequest",
        ),
        (
            r.auth_user_change_password.is_some(),
            "AuthUserChangePasswordRequest",
        ),
    ];
    for (set, name) in plain {
        if set {
            v.see(&format!("etcdserverpb.{name}"), 3, 0);
        }
    }
    if let Some(c) = &r.auth_user_change_password {
        if !c.hashed_password.is_empty() {
            v.see(
                "etcdserverpb.AuthUserChangePasswordRequest.hashedPassword",
                3,
                5,
            );
        }
    }
    if let Some(g) = &r.auth_role_grant_permission {
        v.see("etcdserverpb.AuthRoleGrantPermissionRequest", 3, 0);
        if let Some(perm) = &g.perm {
            if perm.perm_type != 0 {
                v.enum_number(
                    "authpb.Permission.Type",
                    None,
                    perm.perm_type,
                    &[("READ", None), ("WRITE", None), ("READWRITE", None)],
                )?;
            }
        }
    }
    if r.cluster_version_set.is_some() {
        v.see(&format!("{IRR}.cluster_version_set"), 3, 5);
        v.see("membershippb.ClusterVersionSetRequest", 3, 5);
    }
    if let Some(m) = &r.cluster_member_attr_set {
        v.see(&format!("{IRR}.cluster_member_attr_set"), 3, 5);
        v.see("membershippb.ClusterMemberAttrSetRequest", 3, 5);
        if m.member_attributes.is_some() {
            v.see("membershippb.Attributes", 3, 5);
        }
    }
    if r.downgrade_info_set.is_some() {
        v.see(&format!("{IRR}.downgrade_info_set"), 3, 5);
        v.see("membershippb.DowngradeInfoSetRequest", 3, 5);
    }
    // Field 9900 is not in this crate's InternalRaftRequest (etcd 3.4/3.5 do not know it):
    // find it on the wire.
    if let Some(ver) = downgrade_version_test(raw) {
        v.see(&format!("{IRR}.downgrade_version_test"), 3, 6);
        v.see("etcdserverpb.DowngradeVersionTestRequest", 3, 6);
        let named = Version::parse(&ver)
            .ok_or_else(|| format!("DowngradeVersionTest names an invalid version {ver:?}"))?;
        v.see(
            "etcdserverpb.InternalRaftRequest (DowngradeVersionTest.ver)",
            named.major,
            named.minor,
        );
    }
    Ok(())
}

fn varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The `ver` of a top-level field 9900 (`DowngradeVersionTestRequest{ver = 1}`), if present.
fn downgrade_version_test(data: &[u8]) -> Option<String> {
    let mut at = 0;
    let mut found = None;
    while at < data.len() {
        let key = varint(data, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        let body = match wire {
            0 => {
                varint(data, &mut at)?;
                continue;
            }
            1 => {
                at += 8;
                continue;
            }
            5 => {
                at += 4;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(data, &mut at)?).ok()?;
                let body = data.get(at..at.checked_add(len)?)?;
                at += len;
                body
            }
            _ => return found,
        };
        if field == 9900 {
            let mut inner = 0;
            let mut ver = String::new();
            while inner < body.len() {
                let key = varint(body, &mut inner)?;
                if key == (1 << 3) | 2 {
                    let len = usize::try_from(varint(body, &mut inner)?).ok()?;
                    let bytes = body.get(inner..inner.checked_add(len)?)?;
                    ver = String::from_utf8_lossy(bytes).into_owned();
                    inner += len;
                } else {
                    break;
                }
            }
            found = Some(ver);
        }
    }
    found
}

/// `MinimalEtcdVersion` over a log, keeping where each version came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogVersion {
    /// The highest version any entry needs (`None`: no annotated entry).
    pub version: Option<Version>,
    /// The first entry needing `version`, and why.
    pub first_at: Option<(u64, String)>,
    /// Entries etcd's walk fails on (MinimalEtcdVersion panics): raft index and reason.
    pub panics: Vec<(u64, String)>,
    /// Every entry needing more than 3.0: raft index and annotation (to name the entries a
    /// target is too old for).
    #[serde(skip)]
    pub above_floor: Vec<(u64, Annotation)>,
}

impl LogVersion {
    pub fn add(&mut self, index: u64, version: EntryVersion) {
        match version {
            EntryVersion::Panics(reason) => self.panics.push((index, reason)),
            EntryVersion::Known(None) => {}
            EntryVersion::Known(Some(a)) => {
                if self.version.map_or(true, |v| v.minor_lt(a.version)) {
                    self.version = Some(a.version);
                    self.first_at = Some((index, a.path.clone()));
                }
                if Version::new(3, 0).minor_lt(a.version) {
                    self.above_floor.push((index, a));
                }
            }
        }
    }

    /// Entries needing a newer minor release than `target`.
    pub fn newer_than(&self, target: Version) -> Vec<&(u64, Annotation)> {
        self.above_floor
            .iter()
            .filter(|(_, a)| target.minor_lt(a.version))
            .collect()
    }
}

/// `MinimalEtcdVersion(entries)`.
pub fn log_version(entries: &[Entry]) -> LogVersion {
    let mut out = LogVersion::default();
    for entry in entries {
        out.add(entry.index, entry_version(entry));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb as pb;
    use bytes::Bytes;
    use prost::Message;

    fn normal(index: u64, data: Vec<u8>) -> Entry {
        Entry {
            r#type: 0,
            term: 1,
            index,
            data: Some(Bytes::from(data)),
        }
    }

    fn irr(r: InternalRaftRequest) -> Vec<u8> {
        r.encode_to_vec()
    }

    fn known(e: &Entry) -> Option<(Version, String)> {
        match entry_version(e) {
            EntryVersion::Known(a) => a.map(|a| (a.version, a.path)),
            EntryVersion::Panics(p) => panic!("{p}"),
        }
    }

    #[test]
    fn put_flags_carry_their_annotations() {
        let put = |prev_kv, ignore_value| InternalRaftRequest {
            put: Some(pb::PutRequest {
                prev_kv,
                ignore_value,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            known(&normal(1, irr(put(false, false)))).unwrap().0,
            Version::new(3, 0)
        );
        assert_eq!(
            known(&normal(1, irr(put(true, false)))).unwrap().0,
            Version::new(3, 1)
        );
        let (v, path) = known(&normal(1, irr(put(true, true)))).unwrap();
        assert_eq!(v, Version::new(3, 2));
        assert_eq!(path, "etcdserverpb.PutRequest.ignore_value");
    }

    #[test]
    fn repeated_fields_are_not_descended_into_as_in_etcd() {
        // A txn whose compare targets LEASE (3.3) and whose op is a nested txn (3.3): still 3.0.
        let txn = InternalRaftRequest {
            txn: Some(pb::TxnRequest {
                compare: vec![pb::Compare {
                    target: pb::CompareTarget::Lease as i32,
                    ..Default::default()
                }],
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestTxn(Default::default())),
                }],
                failure: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(known(&normal(1, irr(txn))).unwrap().0, Version::new(3, 0));
    }

    #[test]
    fn membership_requests_need_3_5_and_v2_requests_need_nothing() {
        let cv = InternalRaftRequest {
            cluster_version_set: Some(pb::ClusterVersionSetRequest {
                ver: b"3.5.0".to_vec(),
            }),
            ..Default::default()
        };
        let (v, path) = known(&normal(1, irr(cv))).unwrap();
        assert_eq!(v, Version::new(3, 5));
        assert_eq!(path, "etcdserverpb.InternalRaftRequest.cluster_version_set");
        let v2 = pb::Request {
            method: b"PUT".to_vec(),
            path: b"/0/version".to_vec(),
            val: b"3.4.0".to_vec(),
            ..Default::default()
        };
        assert_eq!(known(&normal(2, v2.encode_to_vec())), None);
        // raft's no-op is an empty InternalRaftRequest.
        let noop = Entry {
            r#type: 0,
            term: 1,
            index: 3,
            data: None,
        };
        assert_eq!(known(&noop).unwrap().0, Version::new(3, 0));
    }

    #[test]
    fn alarm_enum_values_and_out_of_range_numbers() {
        let alarm = |alarm| InternalRaftRequest {
            alarm: Some(pb::AlarmRequest {
                action: 1,
                member_id: 1,
                alarm,
            }),
            ..Default::default()
        };
        assert_eq!(
            known(&normal(1, irr(alarm(1)))).unwrap().0,
            Version::new(3, 0)
        );
        let (v, path) = known(&normal(1, irr(alarm(2)))).unwrap();
        assert_eq!(
            (v, path.as_str()),
            (Version::new(3, 3), "etcdserverpb.CORRUPT")
        );
        assert!(matches!(
            entry_version(&normal(1, irr(alarm(7)))),
            EntryVersion::Panics(_)
        ));
    }

    #[test]
    fn conf_changes_and_undecodable_data() {
        let cc = crate::proto::raftpb::ConfChange {
            id: 0,
            r#type: 0,
            node_id: 1,
            context: None,
        };
        let mut e = normal(1, cc.encode_to_vec());
        e.r#type = 1;
        assert_eq!(known(&e).unwrap().0, Version::new(3, 0));
        let v2 = crate::proto::raftpb::ConfChangeV2 {
            transition: 0,
            changes: vec![],
            context: None,
        };
        let mut e = normal(2, v2.encode_to_vec());
        e.r#type = 2;
        assert_eq!(known(&e).unwrap().0, Version::new(3, 4));
        assert!(matches!(
            entry_version(&normal(3, vec![0xff, 0xff, 0xff])),
            EntryVersion::Panics(_)
        ));
    }

    #[test]
    fn downgrade_version_test_counts_as_the_version_it_names() {
        // field 9900, wire type 2: key = 9900 << 3 | 2 = 79202 → varint e2 ea 04.
        let mut data = irr(InternalRaftRequest {
            header: Some(pb::RequestHeader {
                id: 7,
                ..Default::default()
            }),
            ..Default::default()
        });
        data.extend_from_slice(&[0xe2, 0xea, 0x04, 0x07, 0x0a, 0x05]);
        data.extend_from_slice(b"3.7.0");
        let (v, _) = known(&normal(1, data)).unwrap();
        assert_eq!(v, Version::new(3, 7));
    }

    #[test]
    fn log_version_names_the_first_entry_at_the_maximum() {
        let put = |ignore_lease| {
            irr(InternalRaftRequest {
                put: Some(pb::PutRequest {
                    ignore_lease,
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let log = log_version(&[
            normal(1, put(false)),
            normal(2, put(true)),
            normal(3, put(true)),
        ]);
        assert_eq!(log.version, Some(Version::new(3, 2)));
        assert_eq!(log.first_at.as_ref().map(|a| a.0), Some(2));
        assert_eq!(log.above_floor.len(), 2);
    }
}
