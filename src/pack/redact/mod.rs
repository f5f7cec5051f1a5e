//! `pack --redact`: every user value replaced by pseudo-random bytes of the same length.
//!
//! The replacement is a keyed hash of the value (SHA-256 of a per-run random key, a domain byte
//! and the value, expanded to the value's length): the same value becomes the same bytes on every
//! member, in the WAL, in the db and in `.snap` files, so the members still agree with each other
//! and with their own db, and an `Equal`/`NotEqual` value compare of a txn keeps its outcome. The
//! key is drawn from the OS for each run and never stored.
//!
//! What is replaced (etcd 3.4/3.5 messages, `etcdserverpb/raft_internal.proto`, `rpc.proto`,
//! `mvccpb/kv.proto`, `authpb/auth.proto`): `PutRequest.value` (also inside txns, nested txns
//! included), `Compare.value`, the v2 `Request.val` outside etcd's own `/0` tree (user keys live
//! under `/1`, `etcdserver/api/v2store`'s `StoreKeysPrefix`), v2 store node values under `/1` in
//! `.snap` files, `mvccpb.KeyValue.value` in the db's `key` bucket, and passwords
//! (`AuthUserAddRequest.password`/`hashedPassword`, `AuthUserChangePasswordRequest`'s, the
//! `authUsers` bucket's `User.password`). Keys are kept, or with `--redact-keys` mapped by
//! [`keys::KeyMap`] (order-, prefix- and length-preserving). Kept: lease IDs and TTLs,
//! revisions, member names and URLs (etcd's membership is what `verify` checks; they name
//! hosts, not data), the cluster version, v2 paths, auth user and role names.

pub mod db;
pub mod keys;
pub mod snap;
pub mod wal;
pub mod wire;

use serde::Serialize;
use sha2::{Digest, Sha256};

use wire::{fields, WireError};

/// Why a copy could not be redacted.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// A message inside a record or db value does not parse as protobuf.
    #[error("{file} at byte offset {offset}: {source}")]
    Wire {
        /// The segment or db file.
        file: String,
        /// Where the record or value starts.
        offset: u64,
        /// What is wrong.
        source: WireError,
    },
    /// The WAL could not be read to its end.
    #[error("WAL: {0}")]
    Wal(String),
    /// The db could not be walked.
    #[error("db: {0}")]
    Db(String),
    /// A `.snap` file could not be re-encoded.
    #[error(".snap: {0}")]
    Snap(String),
    /// Reading or writing the copy failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        message: String,
    },
}

impl RedactError {
    fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        RedactError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// Nested messages deeper than this are refused (a txn inside a txn inside …).
const MAX_DEPTH: usize = 64;

/// The messages whose fields redaction knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    /// `etcdserverpb.InternalRaftRequest`.
    Internal,
    /// The v2 `etcdserverpb.Request`.
    V2,
    /// `PutRequest`.
    Put,
    /// `RangeRequest`.
    Range,
    /// `DeleteRangeRequest`.
    DeleteRange,
    /// `AuthRoleGrantPermissionRequest`.
    RoleGrant,
    /// `AuthRoleRevokePermissionRequest`.
    RoleRevoke,
    /// `authpb.Permission`.
    Permission,
    /// `authpb.Role` (the db's `authRoles` bucket).
    Role,
    /// `TxnRequest`.
    Txn,
    /// `Compare`.
    Compare,
    /// `RequestOp`.
    RequestOp,
    /// `AuthUserAddRequest`.
    UserAdd,
    /// `AuthUserChangePasswordRequest`.
    ChangePassword,
    /// `mvccpb.KeyValue` (the db's `key` bucket).
    KeyValue,
    /// `authpb.User` (the db's `authUsers` bucket).
    User,
}

enum Action {
    Key,
    Value,
    Password,
    Sub(Msg),
    Keep,
}

fn action(msg: Msg, number: u64) -> Action {
    use Action::*;
    match (msg, number) {
        (Msg::Internal, 2) => Sub(Msg::V2),
        (Msg::Internal, 3) | (Msg::RequestOp, 1) => Sub(Msg::Range),
        (Msg::Internal, 5) | (Msg::RequestOp, 3) => Sub(Msg::DeleteRange),
        (Msg::Internal, 1203) => Sub(Msg::RoleGrant),
        (Msg::Internal, 1204) => Sub(Msg::RoleRevoke),
        (Msg::RoleGrant, 2) | (Msg::Role, 2) => Sub(Msg::Permission),
        (Msg::Put, 1)
        | (Msg::Range | Msg::DeleteRange, 1 | 2)
        | (Msg::RoleRevoke | Msg::Permission, 2 | 3)
        | (Msg::Compare, 3 | 64)
        | (Msg::KeyValue, 1) => Key,
        (Msg::Internal, 4) | (Msg::RequestOp, 2) => Sub(Msg::Put),
        (Msg::Internal, 6) | (Msg::RequestOp, 4) => Sub(Msg::Txn),
        (Msg::Internal, 1100) => Sub(Msg::UserAdd),
        (Msg::Internal, 1103) => Sub(Msg::ChangePassword),
        (Msg::Txn, 1) => Sub(Msg::Compare),
        (Msg::Txn, 2 | 3) => Sub(Msg::RequestOp),
        (Msg::Put, 2) | (Msg::Compare, 7) | (Msg::KeyValue, 5) => Value,
        (Msg::UserAdd, 2 | 4) | (Msg::ChangePassword, 2 | 3) | (Msg::User, 2) => Password,
        _ => Keep,
    }
}

/// What a redaction replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RedactStats {
    /// v3 values in WAL entries (puts, txn puts, compare values).
    pub wal_values: u64,
    /// v2 request values outside `/0`.
    pub wal_v2_values: u64,
    /// Passwords in auth requests and the `authUsers` bucket.
    pub passwords: u64,
    /// Txn value compares with `Less`/`Greater`: a keyed hash keeps equality, not order, so
    /// these may take the other branch (`pack` then refuses: the verdict would differ).
    pub ordered_value_compares: u64,
    /// `key`-bucket entries rewritten in dbs (a value or, with keys mapped, a key changed).
    pub db_values: u64,
    /// Unreachable db pages zeroed (old versions of values).
    pub db_pages_zeroed: u64,
    /// v2 store node values in `.snap` files.
    pub snap_values: u64,
    /// WAL records re-encoded.
    pub wal_records: u64,
    /// Keys mapped (`--redact-keys`; every occurrence counted).
    pub keys: u64,
}

/// The keyed value map of one `pack --redact` run.
pub struct Redactor {
    key: [u8; 32],
    /// `--redact-keys`: collecting every key first, then mapping them.
    keys: Option<keys::KeyMap>,
    /// What was replaced so far.
    pub stats: RedactStats,
}

impl Redactor {
    /// A redactor with a fresh key from the OS (`/dev/urandom`). With `redact_keys` it starts
    /// collecting keys: every member is walked once so ([`Redactor::collecting`]: nothing is
    /// written), then [`Redactor::seal_keys`], then the redacting walk.
    pub fn new(redact_keys: bool) -> std::io::Result<Redactor> {
        use std::io::Read;
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        let mut redactor = Redactor::with_key(key);
        if redact_keys {
            redactor.keys = Some(keys::KeyMap::new());
        }
        Ok(redactor)
    }

    /// A redactor with a given key (tests: reproducible output), keys kept.
    pub fn with_key(key: [u8; 32]) -> Redactor {
        Redactor {
            key,
            keys: None,
            stats: RedactStats::default(),
        }
    }

    /// Whether this walk only collects keys (and must write nothing).
    pub fn collecting(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| !k.is_sealed())
    }

    /// Ends key collection: the key map is fixed from now on.
    pub fn seal_keys(&mut self) {
        let secret = self.key;
        if let Some(keys) = self.keys.as_mut() {
            keys.seal(&secret);
        }
    }

    /// `len` pseudo-random bytes determined by the key, `domain` and `input`.
    fn stream(&self, domain: u8, input: &[u8], len: usize) -> Vec<u8> {
        let seed = Sha256::new()
            .chain_update(self.key)
            .chain_update([domain])
            .chain_update((input.len() as u64).to_le_bytes())
            .chain_update(input)
            .finalize();
        let mut out = Vec::with_capacity(len);
        let mut block = 0u64;
        while out.len() < len {
            let chunk = Sha256::new()
                .chain_update(seed)
                .chain_update(block.to_le_bytes())
                .finalize();
            out.extend_from_slice(&chunk[..(len - out.len()).min(chunk.len())]);
            block += 1;
        }
        out
    }

    /// A v3 value's replacement: arbitrary bytes, same length.
    pub fn value(&self, value: &[u8]) -> Vec<u8> {
        self.stream(b'v', value, value.len())
    }

    /// A v2 value's replacement: ASCII letters and digits, same length (v2 values are strings,
    /// stored as JSON strings in `.snap` files).
    pub fn text(&self, value: &[u8]) -> Vec<u8> {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        self.stream(b't', value, value.len())
            .into_iter()
            .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()])
            .collect()
    }

    /// Replaces, in place, every value of `msg` (see the module documentation) in `buf`.
    pub fn redact(&mut self, buf: &mut [u8], msg: Msg) -> Result<(), WireError> {
        self.redact_at(buf, msg, 0)
    }

    fn redact_at(&mut self, buf: &mut [u8], msg: Msg, depth: usize) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError("messages nested too deep"));
        }
        let list = fields(buf)?;
        if msg == Msg::V2 {
            return self.redact_v2(buf, &list);
        }
        let collecting = self.collecting();
        if msg == Msg::Compare && !collecting && is_ordered_value_compare(buf, &list) {
            self.stats.ordered_value_compares += 1;
        }
        for f in list.iter().filter(|f| f.wire == 2) {
            let span = f.start..f.end;
            match action(msg, f.number) {
                Action::Key => self.key(&mut buf[span])?,
                Action::Value | Action::Password if collecting => {}
                Action::Value => {
                    let new = self.value(&buf[span.clone()]);
                    buf[span].copy_from_slice(&new);
                    if msg != Msg::KeyValue {
                        self.stats.wal_values += 1;
                    }
                }
                Action::Password => {
                    let new = self.value(&buf[span.clone()]);
                    buf[span].copy_from_slice(&new);
                    self.stats.passwords += 1;
                }
                Action::Sub(sub) => self.redact_at(&mut buf[span], sub, depth + 1)?,
                Action::Keep => {}
            }
        }
        Ok(())
    }

    /// A key: collected, or replaced by its image, or kept (no `--redact-keys`).
    fn key(&mut self, key: &mut [u8]) -> Result<(), WireError> {
        let Some(map) = self.keys.as_mut() else {
            return Ok(());
        };
        if !map.is_sealed() {
            map.insert(key);
            return Ok(());
        }
        let image = map
            .map(key)
            .ok_or(WireError("a key the collecting walk did not see"))?;
        key.copy_from_slice(&image);
        self.stats.keys += 1;
        Ok(())
    }

    /// The v2 `Request`: `Val` (field 4) unless `Path` (field 3) is in etcd's own `/0` tree.
    fn redact_v2(&mut self, buf: &mut [u8], list: &[wire::Field]) -> Result<(), WireError> {
        let path = list
            .iter()
            .rfind(|f| f.number == 3 && f.wire == 2)
            .map(|f| &buf[f.start..f.end]);
        if self.collecting() || path.is_some_and(|p| p == b"/0" || p.starts_with(b"/0/")) {
            return Ok(());
        }
        for f in list.iter().filter(|f| f.number == 4 && f.wire == 2) {
            let new = self.text(&buf[f.start..f.end]);
            buf[f.start..f.end].copy_from_slice(&new);
            self.stats.wal_v2_values += 1;
        }
        Ok(())
    }
}

/// A `Compare` on the value (target 3) with result `Greater` (1) or `Less` (2).
fn is_ordered_value_compare(buf: &[u8], list: &[wire::Field]) -> bool {
    let varint_field = |n: u64| {
        list.iter()
            .rfind(|f| f.number == n && f.wire == 0)
            .and_then(|f| buf.get(f.start).copied())
    };
    varint_field(2) == Some(3) && matches!(varint_field(1), Some(1 | 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{
        compare, request_op, Compare, InternalRaftRequest, PutRequest, RequestOp, TxnRequest,
    };
    use bytes::Bytes;
    use prost::Message;

    fn put(key: &str, value: &[u8]) -> PutRequest {
        PutRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value),
            ..Default::default()
        }
    }

    #[test]
    fn values_in_puts_and_txns_change_keys_and_lengths_do_not() {
        let secret = b"s3cret-value".to_vec();
        let request = InternalRaftRequest {
            id: 9,
            put: Some(put("a", &secret)),
            txn: Some(TxnRequest {
                compare: vec![Compare {
                    result: 0,
                    target: 3,
                    key: Bytes::from_static(b"a"),
                    target_union: Some(compare::TargetUnion::Value(Bytes::from(secret.clone()))),
                    range_end: Bytes::new(),
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(put("b", &secret))),
                }],
                failure: vec![],
            }),
            ..Default::default()
        };
        let mut buf = request.encode_to_vec();
        let before = buf.clone();
        let mut r = Redactor::with_key([1; 32]);
        r.redact(&mut buf, Msg::Internal).unwrap();
        assert_eq!(buf.len(), before.len());
        let after = InternalRaftRequest::decode(&buf[..]).unwrap();
        let new_value = after.put.as_ref().unwrap().value.clone();
        assert_ne!(new_value.as_ref(), &secret[..]);
        assert_eq!(new_value.len(), secret.len());
        assert_eq!(after.put.unwrap().key.as_ref(), b"a");
        let txn = after.txn.unwrap();
        assert_eq!(
            txn.compare[0].target_union,
            Some(compare::TargetUnion::Value(new_value.clone())),
            "the same value maps to the same bytes everywhere"
        );
        match &txn.success[0].request {
            Some(request_op::Request::RequestPut(p)) => {
                assert_eq!(p.value, new_value);
                assert_eq!(p.key.as_ref(), b"b");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.stats.wal_values, 3);
        assert_eq!(r.stats.ordered_value_compares, 0);
        assert!(!buf.windows(secret.len()).any(|w| w == secret));
    }

    #[test]
    fn different_keys_give_different_bytes_and_v2_cluster_paths_are_kept() {
        let (a, b) = (Redactor::with_key([1; 32]), Redactor::with_key([2; 32]));
        assert_ne!(a.value(b"hello world"), b.value(b"hello world"));
        assert_eq!(a.value(b"hello world"), a.value(b"hello world"));
        assert!(a.text(b"0123456789").iter().all(u8::is_ascii_alphanumeric));
        let v2 = |path: &str| crate::proto::etcdserverpb::Request {
            path: path.as_bytes().to_vec(),
            val: b"{\"name\":\"m1\"}".to_vec(),
            ..Default::default()
        };
        let mut r = Redactor::with_key([1; 32]);
        let mut kept = v2("/0/members/8e9e05c52164694d/attributes").encode_to_vec();
        let original = kept.clone();
        r.redact(&mut kept, Msg::V2).unwrap();
        assert_eq!(kept, original);
        let mut user = v2("/1/foo").encode_to_vec();
        r.redact(&mut user, Msg::V2).unwrap();
        assert_ne!(user, v2("/1/foo").encode_to_vec());
        assert_eq!(r.stats.wal_v2_values, 1);
    }
}
