//! Every decoder of entry data: `decode_payload` (v3 `InternalRaftRequest`, v2 `Request`,
//! `ConfChange` with its member JSON context, `ConfChangeV2`), its JSON and text renderings, the
//! bridge to raft-rs (`translate`), the upgrade gate's view of v2 requests (`gate::v2`), the
//! member JSON parser and the cluster-version text parser.
//!
//! Input: byte 0 is the entry type (as i32, values 0..=3 so an unknown type is reached), the rest
//! is the entry's data.
//!
//! Properties: no panic; allocations within `Budget::READER`; what decoded re-encodes and decodes
//! to the same message (prost's encoder is the writer); a member that parsed serialises and
//! parses back to itself; a member JSON error names its line and column.
#![no_main]

use bytes::Bytes;
use fuzz_support::Budget;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use raft_replay::gate::version::Version;
use raft_replay::proto::etcdserverpb::{InternalRaftRequest, Request};
use raft_replay::proto::member::Member;
use raft_replay::proto::payload::{
    decode_payload, internal_kind, payload_json, payload_text, Payload,
};
use raft_replay::proto::raftpb::{ConfChange, ConfChangeV2, Entry};
use raft_replay::proto::translate;

fn round_trips<M: Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let again = M::decode(Bytes::from(m.encode_to_vec())).expect("re-encoded message decodes");
    assert_eq!(&again, m, "decode(encode(m)) != m");
}

fn member(data: &[u8]) {
    match Member::parse(data) {
        Ok(m) => {
            let json = serde_json::to_vec(&m).expect("a member serialises");
            assert_eq!(Member::parse(&json).expect("serialised member parses"), m);
        }
        Err(e) => assert!(
            e.line() >= 1 || e.is_eof(),
            "member JSON error without a line: {e}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let entry = Entry {
        r#type: i32::from(kind % 4),
        term: 1,
        index: 1,
        data: Some(Bytes::copy_from_slice(rest)),
    };
    Budget::READER.enforce(data.len(), || {
        let payload = decode_payload(&entry);
        let _ = payload_json(&payload);
        let _ = payload_text(&payload);
        let _ = translate::entry(&entry);
        match &payload {
            Payload::Internal(r) => {
                round_trips(r.as_ref());
                let _ = internal_kind(r);
                if let Some(v2) = &r.v2 {
                    for target in [Version::new(3, 5), Version::new(3, 6), Version::new(3, 7)] {
                        let _ = raft_replay::gate::v2::fate(target, v2, true);
                    }
                }
            }
            Payload::V2(r) => {
                round_trips::<Request>(r);
                for target in [Version::new(3, 5), Version::new(3, 6), Version::new(3, 7)] {
                    let _ = raft_replay::gate::v2::fate(target, r, false);
                }
                let _ = raft_replay::mvcc::cluster::parse_semver(&r.val);
            }
            Payload::ConfChange { change, member: m } => {
                round_trips::<ConfChange>(change);
                let _ = translate::conf_change(change);
                if let Some(context) = change.context.as_deref() {
                    member(context);
                    assert_eq!(m.as_ref(), Member::parse(context).ok().as_ref());
                }
            }
            Payload::ConfChangeV2(change) => {
                round_trips::<ConfChangeV2>(change);
                let _ = translate::conf_change_v2(change);
            }
            Payload::Noop | Payload::UnknownNormal => {
                // Neither request type decodes (or the data is empty): both decoders agree.
                if !rest.is_empty() {
                    assert!(InternalRaftRequest::decode(rest).is_err());
                    assert!(Request::decode(rest).is_err());
                }
            }
            Payload::BadConfChange(message) => assert!(!message.is_empty()),
            Payload::UnknownEntryType(t) => assert_eq!(*t, entry.r#type),
        }
        member(rest);
    });
});
