//! `walpb` (etcd `wal/walpb/record.proto`): the WAL frame payload.

use bytes::Bytes;

use super::raftpb::ConfState;

/// Record types (`wal.go`: `metadataType int64 = iota + 1 …`).
pub const METADATA_TYPE: i64 = 1;
pub const ENTRY_TYPE: i64 = 2;
pub const STATE_TYPE: i64 = 3;
pub const CRC_TYPE: i64 = 4;
pub const SNAPSHOT_TYPE: i64 = 5;

/// One WAL record. `data` is covered by the rolling CRC-32C; `type` and `crc` are not.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    #[prost(int64, required, tag = "1")]
    pub r#type: i64,
    #[prost(uint32, required, tag = "2")]
    pub crc: u32,
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub data: Option<Bytes>,
}

/// A WAL snapshot marker (`walpb.Snapshot`). `conf_state` exists from etcd 3.5 on.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct WalSnapshot {
    #[prost(uint64, required, tag = "1")]
    pub index: u64,
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<ConfState>,
}

pub fn record_type_name(record_type: i64) -> &'static str {
    match record_type {
        METADATA_TYPE => "metadata",
        ENTRY_TYPE => "entry",
        STATE_TYPE => "state",
        CRC_TYPE => "crc",
        SNAPSHOT_TYPE => "snapshot",
        _ => "unknown",
    }
}
