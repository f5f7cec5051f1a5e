//! `raftpb` as etcd 3.4–3.6 write it (proto2, gogo). Not raft-rs `eraftpb`: see `translate`.

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EntryType {
    EntryNormal = 0,
    EntryConfChange = 1,
    EntryConfChangeV2 = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(enumeration = "EntryType", required, tag = "1")]
    pub r#type: i32,
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    #[prost(uint64, required, tag = "3")]
    pub index: u64,
    /// `None` for raft's leader no-op (nil Data); presence matters for byte-exact re-encoding.
    #[prost(bytes = "bytes", optional, tag = "4")]
    pub data: Option<Bytes>,
}

impl Entry {
    pub fn data_bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }

    /// The entry kind name used in JSON output; unknown type numbers are kept visible.
    pub fn type_name(&self) -> String {
        match EntryType::try_from(self.r#type) {
            Ok(EntryType::EntryNormal) => "normal".into(),
            Ok(EntryType::EntryConfChange) => "conf_change".into(),
            Ok(EntryType::EntryConfChangeV2) => "conf_change_v2".into(),
            Err(_) => format!("unknown({})", self.r#type),
        }
    }
}

#[derive(
    Clone, Copy, PartialEq, Eq, Hash, prost::Message, serde::Serialize, serde::Deserialize,
)]
pub struct HardState {
    #[prost(uint64, required, tag = "1")]
    pub term: u64,
    #[prost(uint64, required, tag = "2")]
    pub vote: u64,
    #[prost(uint64, required, tag = "3")]
    pub commit: u64,
}

impl HardState {
    /// etcd's `IsEmptyHardState`: such a state is never written.
    pub fn is_empty(&self) -> bool {
        self.term == 0 && self.vote == 0 && self.commit == 0
    }
}

#[derive(Clone, PartialEq, Eq, Hash, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct ConfState {
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    pub voters: Vec<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "2")]
    pub learners: Vec<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub voters_outgoing: Vec<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub learners_next: Vec<u64>,
    #[prost(bool, required, tag = "5")]
    pub auto_leave: bool,
}

impl ConfState {
    /// The same configuration regardless of the order ids were listed in.
    pub fn normalized(&self) -> ConfState {
        let sorted = |v: &Vec<u64>| {
            let mut v = v.clone();
            v.sort_unstable();
            v.dedup();
            v
        };
        ConfState {
            voters: sorted(&self.voters),
            learners: sorted(&self.learners),
            voters_outgoing: sorted(&self.voters_outgoing),
            learners_next: sorted(&self.learners_next),
            auto_leave: self.auto_leave,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMetadata {
    #[prost(message, required, tag = "1")]
    pub conf_state: ConfState,
    #[prost(uint64, required, tag = "2")]
    pub index: u64,
    #[prost(uint64, required, tag = "3")]
    pub term: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub data: Option<Bytes>,
    #[prost(message, required, tag = "2")]
    pub metadata: SnapshotMetadata,
}

/// etcd numbering. raft-rs numbers AddLearnerNode 2 and has no UpdateNode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeType {
    ConfChangeAddNode = 0,
    ConfChangeRemoveNode = 1,
    ConfChangeUpdateNode = 2,
    ConfChangeAddLearnerNode = 3,
}

impl ConfChangeType {
    pub fn etcd_name(self) -> &'static str {
        match self {
            ConfChangeType::ConfChangeAddNode => "ConfChangeAddNode",
            ConfChangeType::ConfChangeRemoveNode => "ConfChangeRemoveNode",
            ConfChangeType::ConfChangeUpdateNode => "ConfChangeUpdateNode",
            ConfChangeType::ConfChangeAddLearnerNode => "ConfChangeAddLearnerNode",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeTransition {
    ConfChangeTransitionAuto = 0,
    ConfChangeTransitionJointImplicit = 1,
    ConfChangeTransitionJointExplicit = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChange {
    #[prost(uint64, required, tag = "1")]
    pub id: u64,
    #[prost(enumeration = "ConfChangeType", required, tag = "2")]
    pub r#type: i32,
    #[prost(uint64, required, tag = "3")]
    pub node_id: u64,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub context: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChangeSingle {
    #[prost(enumeration = "ConfChangeType", required, tag = "1")]
    pub r#type: i32,
    #[prost(uint64, required, tag = "2")]
    pub node_id: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChangeV2 {
    #[prost(enumeration = "ConfChangeTransition", required, tag = "1")]
    pub transition: i32,
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub context: Option<Vec<u8>>,
}
