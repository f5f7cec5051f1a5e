//! Entries crossing the boundary between raft-rs (in memory) and etcd's WAL (on disk).
//!
//! raft-rs numbers `AddLearnerNode` 2; etcd numbers it 3 (2 is `UpdateNode`). Conf-change data in
//! raft-rs's log uses raft-rs numbering; the WAL, the state machine and the checks see etcd's. The
//! wire format is otherwise the same, so both directions decode with the prost `raftpb` messages
//! and only remap the change type. Both maps are deterministic, so an entry that goes to disk,
//! comes back at a restart and is replicated again is written with the same bytes every time.

use bytes::Bytes;
use prost::Message;
use raft::eraftpb;

use crate::proto::raftpb::{ConfChange, ConfChangeV2, Entry};

const CONF_CHANGE: i32 = 1;
const CONF_CHANGE_V2: i32 = 2;

fn raft_type_to_etcd(t: i32) -> i32 {
    match t {
        2 => 3, // AddLearnerNode
        other => other,
    }
}

fn etcd_type_to_raft(t: i32) -> i32 {
    match t {
        3 => 2,
        other => other,
    }
}

fn remap(data: &[u8], entry_type: i32, map: fn(i32) -> i32) -> Bytes {
    match entry_type {
        CONF_CHANGE => match ConfChange::decode(data) {
            Ok(mut cc) => {
                cc.r#type = map(cc.r#type);
                Bytes::from(cc.encode_to_vec())
            }
            Err(_) => Bytes::copy_from_slice(data),
        },
        CONF_CHANGE_V2 => match ConfChangeV2::decode(data) {
            Ok(mut cc) => {
                for c in &mut cc.changes {
                    c.r#type = map(c.r#type);
                }
                Bytes::from(cc.encode_to_vec())
            }
            Err(_) => Bytes::copy_from_slice(data),
        },
        _ => Bytes::copy_from_slice(data),
    }
}

/// A raft-rs entry as etcd writes it: etcd numbering, nil data for an empty normal entry.
pub fn to_etcd(e: &eraftpb::Entry) -> Entry {
    let entry_type = e.get_entry_type() as i32;
    let data = if entry_type == 0 {
        (!e.data.is_empty()).then(|| e.data.clone())
    } else {
        Some(remap(&e.data, entry_type, raft_type_to_etcd))
    };
    Entry {
        r#type: entry_type,
        term: e.term,
        index: e.index,
        data,
    }
}

/// An etcd entry read back from the WAL, for raft-rs's log.
pub fn to_raft(e: &Entry) -> eraftpb::Entry {
    let mut out = eraftpb::Entry::default();
    out.set_entry_type(match e.r#type {
        CONF_CHANGE => eraftpb::EntryType::EntryConfChange,
        CONF_CHANGE_V2 => eraftpb::EntryType::EntryConfChangeV2,
        _ => eraftpb::EntryType::EntryNormal,
    });
    out.term = e.term;
    out.index = e.index;
    out.data = match e.r#type {
        CONF_CHANGE | CONF_CHANGE_V2 => remap(e.data_bytes(), e.r#type, etcd_type_to_raft),
        _ => e.data.clone().unwrap_or_default(),
    };
    out
}

/// The client request id of a normal entry (`InternalRaftRequest.header.id`), if any.
pub fn request_id(e: &Entry) -> Option<u64> {
    if e.r#type != 0 {
        return None;
    }
    let data = e.data.as_ref()?;
    let request = crate::proto::etcdserverpb::InternalRaftRequest::decode(data.clone()).ok()?;
    request.header.map(|h| h.id).filter(|id| *id != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::ConfChangeType;

    #[test]
    fn learner_numbering_round_trips() {
        let mut cc = eraftpb::ConfChange::default();
        cc.set_change_type(eraftpb::ConfChangeType::AddLearnerNode);
        cc.node_id = 4;
        cc.context = Bytes::from_static(b"{}");
        let mut e = eraftpb::Entry::default();
        e.set_entry_type(eraftpb::EntryType::EntryConfChange);
        e.index = 5;
        e.term = 2;
        // raft-rs (proto3) encoding: AddLearnerNode is 2.
        let raft_bytes = ConfChange {
            id: 0,
            r#type: 2,
            node_id: 4,
            context: Some(b"{}".to_vec()),
        }
        .encode_to_vec();
        drop(cc);
        e.data = Bytes::from(raft_bytes);
        let etcd = to_etcd(&e);
        let decoded = ConfChange::decode(etcd.data_bytes()).unwrap();
        assert_eq!(decoded.r#type, 3);
        assert_eq!(
            decoded.r#type,
            ConfChangeType::ConfChangeAddLearnerNode as i32
        );
        let back = to_raft(&etcd);
        assert_eq!(ConfChange::decode(&back.data[..]).unwrap().r#type, 2);
        assert_eq!(to_etcd(&back), etcd);
    }
}
