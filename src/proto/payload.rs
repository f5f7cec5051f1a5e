//! What an entry's `data` holds, decided the way etcd's apply loop decides it.
//!
//! EntryNormal: empty data is raft's no-op; otherwise etcd tries `InternalRaftRequest` first and
//! falls back to the legacy v2 `Request` only when that fails (the two differ by wire types).
//! EntryConfChange carries a v1 `ConfChange` (+ member JSON), EntryConfChangeV2 a `ConfChangeV2`.

use prost::Message;
use serde_json::{json, Map, Value};

use super::etcdserverpb::{self as pb, request_op, InternalRaftRequest, Request};
use super::member::Member;
use super::raftpb::{
    ConfChange, ConfChangeTransition, ConfChangeType, ConfChangeV2, Entry, EntryType,
};

#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// EntryNormal with empty data: the leader's no-op after an election.
    Noop,
    Internal(Box<InternalRaftRequest>),
    V2(Box<Request>),
    /// EntryNormal data that is neither an InternalRaftRequest nor a v2 Request (`???`).
    UnknownNormal,
    ConfChange {
        change: ConfChange,
        member: Option<Member>,
    },
    ConfChangeV2(ConfChangeV2),
    /// A conf-change entry whose data does not parse; etcd would panic applying it.
    BadConfChange(String),
    UnknownEntryType(i32),
}

pub fn decode_payload(entry: &Entry) -> Payload {
    let data = entry.data_bytes();
    match EntryType::try_from(entry.r#type) {
        Ok(EntryType::EntryNormal) => {
            if data.is_empty() {
                return Payload::Noop;
            }
            if let Ok(request) = InternalRaftRequest::decode(data) {
                return Payload::Internal(Box::new(request));
            }
            match Request::decode(data) {
                Ok(request) => Payload::V2(Box::new(request)),
                Err(_) => Payload::UnknownNormal,
            }
        }
        Ok(EntryType::EntryConfChange) => match ConfChange::decode(data) {
            Ok(change) => {
                let member = change
                    .context
                    .as_deref()
                    .and_then(|c| Member::parse(c).ok());
                Payload::ConfChange { change, member }
            }
            Err(e) => Payload::BadConfChange(e.to_string()),
        },
        Ok(EntryType::EntryConfChangeV2) => match ConfChangeV2::decode(data) {
            Ok(change) => Payload::ConfChangeV2(change),
            Err(e) => Payload::BadConfChange(e.to_string()),
        },
        Err(_) => Payload::UnknownEntryType(entry.r#type),
    }
}

/// Bytes as JSON: a string when they are UTF-8, else `{"hex": …}` so nothing is lost.
pub fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "hex": hex::encode(bytes) }),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn conf_change_type_name(value: i32) -> String {
    ConfChangeType::try_from(value)
        .map(|t| t.etcd_name().to_string())
        .unwrap_or_else(|_| format!("ConfChangeType({value})"))
}

fn transition_name(value: i32) -> String {
    match ConfChangeTransition::try_from(value) {
        Ok(ConfChangeTransition::ConfChangeTransitionAuto) => "auto".into(),
        Ok(ConfChangeTransition::ConfChangeTransitionJointImplicit) => "joint_implicit".into(),
        Ok(ConfChangeTransition::ConfChangeTransitionJointExplicit) => "joint_explicit".into(),
        Err(_) => format!("transition({value})"),
    }
}

fn range_json(key: &[u8], range_end: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("key".into(), bytes_json(key));
    if !range_end.is_empty() {
        m.insert("range_end".into(), bytes_json(range_end));
    }
    m
}

fn put_json(p: &pb::PutRequest) -> Value {
    let mut m = range_json(&p.key, &[]);
    m.insert("value_len".into(), json!(p.value.len()));
    m.insert("value_crc32c".into(), json!(crc32c::crc32c(&p.value)));
    if p.lease != 0 {
        m.insert("lease".into(), json!(p.lease));
    }
    for (name, flag) in [
        ("prev_kv", p.prev_kv),
        ("ignore_value", p.ignore_value),
        ("ignore_lease", p.ignore_lease),
    ] {
        if flag {
            m.insert(name.into(), json!(true));
        }
    }
    Value::Object(m)
}

fn compare_json(c: &pb::Compare) -> Value {
    let mut m = range_json(&c.key, &c.range_end);
    let result = match pb::CompareResult::try_from(c.result) {
        Ok(pb::CompareResult::Equal) => "=".to_string(),
        Ok(pb::CompareResult::Greater) => ">".to_string(),
        Ok(pb::CompareResult::Less) => "<".to_string(),
        Ok(pb::CompareResult::NotEqual) => "!=".to_string(),
        Err(_) => format!("result({})", c.result),
    };
    let target = match pb::CompareTarget::try_from(c.target) {
        Ok(pb::CompareTarget::Version) => "version".to_string(),
        Ok(pb::CompareTarget::Create) => "create".to_string(),
        Ok(pb::CompareTarget::Mod) => "mod".to_string(),
        Ok(pb::CompareTarget::Value) => "value".to_string(),
        Ok(pb::CompareTarget::Lease) => "lease".to_string(),
        Err(_) => format!("target({})", c.target),
    };
    m.insert("target".into(), json!(target));
    m.insert("result".into(), json!(result));
    let operand = match &c.target_union {
        Some(pb::compare::TargetUnion::Version(v))
        | Some(pb::compare::TargetUnion::CreateRevision(v))
        | Some(pb::compare::TargetUnion::ModRevision(v))
        | Some(pb::compare::TargetUnion::Lease(v)) => json!(v),
        Some(pb::compare::TargetUnion::Value(v)) => bytes_json(v),
        None => Value::Null,
    };
    m.insert("operand".into(), operand);
    Value::Object(m)
}

fn op_json(op: &pb::RequestOp) -> Value {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => {
            json!({ "range": range_json(&r.key, &r.range_end) })
        }
        Some(request_op::Request::RequestPut(p)) => json!({ "put": put_json(p) }),
        Some(request_op::Request::RequestDeleteRange(d)) => {
            json!({ "delete_range": range_json(&d.key, &d.range_end) })
        }
        Some(request_op::Request::RequestTxn(t)) => json!({ "txn": txn_json(t) }),
        None => json!({ "empty": true }),
    }
}

fn txn_json(t: &pb::TxnRequest) -> Value {
    json!({
        "compare": t.compare.iter().map(compare_json).collect::<Vec<_>>(),
        "success": t.success.iter().map(op_json).collect::<Vec<_>>(),
        "failure": t.failure.iter().map(op_json).collect::<Vec<_>>(),
    })
}

/// The single operation an InternalRaftRequest carries, as `(kind, details)`.
pub fn internal_kind(r: &InternalRaftRequest) -> (&'static str, Value) {
    if let Some(p) = &r.put {
        return ("put", put_json(p));
    }
    if let Some(d) = &r.delete_range {
        return (
            "delete_range",
            Value::Object(range_json(&d.key, &d.range_end)),
        );
    }
    if let Some(t) = &r.txn {
        return ("txn", txn_json(t));
    }
    if let Some(c) = &r.compaction {
        return (
            "compaction",
            json!({ "revision": c.revision, "physical": c.physical }),
        );
    }
    if let Some(l) = &r.lease_grant {
        return ("lease_grant", json!({ "id": l.id, "ttl": l.ttl }));
    }
    if let Some(l) = &r.lease_revoke {
        return ("lease_revoke", json!({ "id": l.id }));
    }
    if let Some(l) = &r.lease_checkpoint {
        let cps: Vec<Value> = l
            .checkpoints
            .iter()
            .map(|c| json!({ "id": c.id, "remaining_ttl": c.remaining_ttl }))
            .collect();
        return ("lease_checkpoint", json!({ "checkpoints": cps }));
    }
    if let Some(r) = &r.range {
        return ("range", Value::Object(range_json(&r.key, &r.range_end)));
    }
    if let Some(a) = &r.alarm {
        return (
            "alarm",
            json!({ "action": a.action, "member_id": format!("{:x}", a.member_id), "alarm": a.alarm }),
        );
    }
    if let Some(v2) = &r.v2 {
        return ("v2", v2_json(v2));
    }
    if let Some(c) = &r.cluster_version_set {
        return ("cluster_version_set", json!({ "ver": text(&c.ver) }));
    }
    if let Some(c) = &r.cluster_member_attr_set {
        let attrs = c.member_attributes.clone().unwrap_or_default();
        return (
            "cluster_member_attr_set",
            json!({ "member_id": format!("{:x}", c.member_id), "name": text(&attrs.name),
                    "client_urls": attrs.client_urls.iter().map(|u| text(u)).collect::<Vec<_>>() }),
        );
    }
    if let Some(d) = &r.downgrade_info_set {
        return (
            "downgrade_info_set",
            json!({ "enabled": d.enabled, "ver": text(&d.ver) }),
        );
    }
    let auth: [(&'static str, bool); 17] = [
        ("auth_enable", r.auth_enable.is_some()),
        ("auth_disable", r.auth_disable.is_some()),
        ("auth_status", r.auth_status.is_some()),
        ("authenticate", r.authenticate.is_some()),
        ("auth_user_add", r.auth_user_add.is_some()),
        ("auth_user_delete", r.auth_user_delete.is_some()),
        ("auth_user_get", r.auth_user_get.is_some()),
        (
            "auth_user_change_password",
            r.auth_user_change_password.is_some(),
        ),
        ("auth_user_grant_role", r.auth_user_grant_role.is_some()),
        ("auth_user_revoke_role", r.auth_user_revoke_role.is_some()),
        ("auth_user_list", r.auth_user_list.is_some()),
        ("auth_role_list", r.auth_role_list.is_some()),
        ("auth_role_add", r.auth_role_add.is_some()),
        ("auth_role_delete", r.auth_role_delete.is_some()),
        ("auth_role_get", r.auth_role_get.is_some()),
        (
            "auth_role_grant_permission",
            r.auth_role_grant_permission.is_some(),
        ),
        (
            "auth_role_revoke_permission",
            r.auth_role_revoke_permission.is_some(),
        ),
    ];
    for (name, present) in auth {
        if present {
            // Auth payloads may hold passwords: name the request, never echo its content.
            return (name, json!({}));
        }
    }
    ("empty", json!({}))
}

fn v2_json(r: &Request) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), json!(text(&r.method)));
    m.insert("path".into(), json!(text(&r.path)));
    if !r.val.is_empty() {
        m.insert("val".into(), json!(text(&r.val)));
    }
    if r.dir {
        m.insert("dir".into(), json!(true));
    }
    if r.time != 0 {
        m.insert("time".into(), json!(r.time));
    }
    if r.expiration != 0 {
        m.insert("expiration".into(), json!(r.expiration));
    }
    Value::Object(m)
}

/// The decoded request of an entry as JSON: `{"kind": …, "id": …, …details}`.
pub fn payload_json(payload: &Payload) -> Value {
    match payload {
        Payload::Noop => json!({ "kind": "noop" }),
        Payload::Internal(r) => {
            let (kind, details) = internal_kind(r);
            let id = r
                .header
                .as_ref()
                .map(|h| h.id)
                .filter(|id| *id != 0)
                .unwrap_or(r.id);
            json!({ "kind": kind, "id": id, kind: details })
        }
        Payload::V2(r) => json!({ "kind": "v2", "id": r.id, "v2": v2_json(r) }),
        Payload::UnknownNormal => json!({ "kind": "unknown" }),
        Payload::ConfChange { change, member } => json!({
            "kind": "conf_change",
            "id": change.id,
            "conf_change": {
                "type": conf_change_type_name(change.r#type),
                "node_id": format!("{:x}", change.node_id),
                "member": member,
            }
        }),
        Payload::ConfChangeV2(change) => json!({
            "kind": "conf_change_v2",
            "conf_change_v2": {
                "transition": transition_name(change.transition),
                "changes": change.changes.iter().map(|c| json!({
                    "type": conf_change_type_name(c.r#type),
                    "node_id": format!("{:x}", c.node_id),
                })).collect::<Vec<_>>(),
            }
        }),
        Payload::BadConfChange(error) => json!({ "kind": "bad_conf_change", "error": error }),
        Payload::UnknownEntryType(t) => json!({ "kind": "unknown_entry_type", "entry_type": t }),
    }
}

/// One line in the spirit of etcd-dump-logs' data column.
pub fn payload_text(payload: &Payload) -> String {
    match payload {
        Payload::Noop => String::new(),
        Payload::Internal(r) => {
            let (kind, details) = internal_kind(r);
            let id = r.header.as_ref().map(|h| h.id).unwrap_or(r.id);
            format!("ID:{id} {kind}:{details}")
        }
        Payload::V2(r) => {
            if r.method.is_empty() {
                "noop".into()
            } else if r.method == b"SYNC" {
                format!("method=SYNC time={}", r.time)
            } else if r.val.is_empty() {
                format!("method={} path={}", text(&r.method), text(&r.path))
            } else {
                format!(
                    "method={} path={} val={}",
                    text(&r.method),
                    text(&r.path),
                    text(&r.val)
                )
            }
        }
        Payload::UnknownNormal => "???".into(),
        Payload::ConfChange { change, .. } => {
            format!(
                "method={} id={:x}",
                conf_change_type_name(change.r#type),
                change.node_id
            )
        }
        Payload::ConfChangeV2(change) => {
            let singles: Vec<String> = change
                .changes
                .iter()
                .map(|c| format!("{}:{:x}", conf_change_type_name(c.r#type), c.node_id))
                .collect();
            format!(
                "transition={} changes=[{}]",
                transition_name(change.transition),
                singles.join(" ")
            )
        }
        Payload::BadConfChange(_) => "???".into(),
        Payload::UnknownEntryType(t) => format!("entry type {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn normal(data: Vec<u8>) -> Entry {
        Entry {
            r#type: 0,
            term: 1,
            index: 1,
            data: Some(Bytes::from(data)),
        }
    }

    #[test]
    fn empty_normal_entry_is_noop() {
        let e = Entry {
            r#type: 0,
            term: 2,
            index: 2,
            data: None,
        };
        assert_eq!(decode_payload(&e), Payload::Noop);
    }

    #[test]
    fn v2_request_is_not_mistaken_for_internal_request() {
        // Request always emits Dir (tag 5, varint), which collides with IRR delete_range (tag 5, bytes).
        let req = Request {
            id: 7,
            method: b"PUT".to_vec(),
            path: b"/0/version".to_vec(),
            val: b"3.4.0".to_vec(),
            ..Default::default()
        };
        let payload = decode_payload(&normal(req.encode_to_vec()));
        assert!(
            matches!(&payload, Payload::V2(r) if r.path == b"/0/version"),
            "got {payload:?}"
        );
    }

    #[test]
    fn internal_put_decodes() {
        let irr = InternalRaftRequest {
            header: Some(pb::RequestHeader {
                id: 9,
                ..Default::default()
            }),
            put: Some(pb::PutRequest {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            }),
            ..Default::default()
        };
        let payload = decode_payload(&normal(irr.encode_to_vec()));
        let v = payload_json(&payload);
        assert_eq!(v["kind"], "put");
        assert_eq!(v["id"], 9);
        assert_eq!(v["put"]["key"], "k");
    }

    #[test]
    fn garbage_normal_data_is_unknown() {
        assert_eq!(
            decode_payload(&normal(vec![0xff, 0xff, 0xff])),
            Payload::UnknownNormal
        );
    }
}
