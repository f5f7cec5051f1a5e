//! `snappb` (etcd `snap/snappb/snap.proto`): the `.snap` file envelope.

use bytes::Bytes;

/// The whole content of a `.snap` file. `crc` is plain (unchained) CRC-32C of `data`,
/// which is a marshalled [`super::raftpb::Snapshot`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapFile {
    #[prost(uint32, required, tag = "1")]
    pub crc: u32,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub data: Option<Bytes>,
}
