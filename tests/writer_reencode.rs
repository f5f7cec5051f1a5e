//! Our writer produces etcd's exact bytes: re-encoding every record of every real segment (with
//! the chain carried from the segment's crc record) reproduces the file byte for byte up to the
//! end of its data, and everything after that is the preallocated zero tail. Every entry,
//! HardState and snapshot payload also re-encodes to the bytes etcd wrote.

mod common;

use bytes::Bytes;
use prost::Message;
use raft_replay::proto::raftpb::{Entry, HardState};
use raft_replay::proto::walpb::{Record, WalSnapshot};
use raft_replay::wal::frame::decode_frame_size;
use raft_replay::wal::writer::encode_records;

#[test]
fn reencoding_real_segments_is_byte_identical() {
    let mut segments_checked = 0;
    let mut records_checked = 0;
    for (_, member) in common::all_members() {
        for segment in common::segments(&member) {
            let bytes = std::fs::read(&segment).unwrap();
            let mut records: Vec<Record> = Vec::new();
            let mut offset = 0usize;
            while offset + 8 <= bytes.len() {
                let word = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
                if word == 0 {
                    break;
                }
                let (len, pad) = decode_frame_size(word);
                records
                    .push(Record::decode(&bytes[offset + 8..offset + 8 + len as usize]).unwrap());
                offset += 8 + (len + pad) as usize;
            }
            assert_eq!(
                records[0].r#type, 4,
                "every segment starts with a crc record"
            );
            let mut crc = records[0].crc;
            let encoded = encode_records(
                &mut crc,
                records.iter().map(|r| (r.r#type, r.data.as_deref())),
            );
            assert_eq!(encoded.len(), offset, "{}", segment.display());
            assert!(
                encoded == bytes[..offset],
                "{}: re-encoded bytes differ",
                segment.display()
            );
            assert!(
                bytes[offset..].iter().all(|b| *b == 0),
                "{}: tail after the data is zero",
                segment.display()
            );
            for record in &records {
                let data = record.data.clone().unwrap_or_else(Bytes::new);
                let again = match record.r#type {
                    2 => Entry::decode(data.clone()).unwrap().encode_to_vec(),
                    3 => HardState::decode(data.clone()).unwrap().encode_to_vec(),
                    5 => WalSnapshot::decode(data.clone()).unwrap().encode_to_vec(),
                    _ => data.to_vec(),
                };
                assert_eq!(
                    again,
                    data.to_vec(),
                    "{}: payload re-encoding differs",
                    segment.display()
                );
            }
            segments_checked += 1;
            records_checked += records.len();
        }
    }
    assert!(
        segments_checked >= 9 && records_checked > 20_000,
        "{segments_checked} segments, {records_checked} records"
    );
}
