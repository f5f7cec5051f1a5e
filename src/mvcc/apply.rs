//! The v3 apply path: `etcdserver/server.go: applyEntryNormal` and `etcdserver/apply.go`
//! (`applierV3backend`, the capped / corrupt appliers installed by alarms).
//!
//! The replay is a member that did not propose the entry (no waiter is registered): requests
//! without side effects (`Range`, `AuthUserGet`, `AuthRoleGet`) are not applied at all, and
//! top-level `Range` ops are removed from transactions before applying
//! (`removeNeedlessRangeReqs`), so their revision checks cannot fail the transaction. The
//! member the client talked to keeps them and can therefore reject a transaction every other
//! member applies (etcd issue #18667); [`MvccStore::set_strip_top_level_txn_ranges`] models
//! that member instead.

use bytes::Bytes;

use crate::proto::etcdserverpb::{
    compare::TargetUnion, request_op, AlarmRequest, Compare, CompareResult, CompareTarget,
    DeleteRangeRequest, InternalRaftRequest, PutRequest, RequestOp, TxnRequest,
};
use crate::proto::payload::Payload;

use super::store::{KeyRange, MvccStore, WriteTxn};
use super::{ApplyError, ApplyOutcome, ApplyResult, NotAppliedReason, RequestKind};

/// Which applier etcd's server currently uses (`s.applyV3`), switched by alarms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ApplierMode {
    /// auth → quota → backend (normal operation).
    Full,
    /// `applierV3Capped` after a NOSPACE alarm: puts, lease grants and txns with puts fail
    /// with `ErrNoSpace`. It wraps the bare backend applier, so auth checks are bypassed.
    Capped,
    /// `applierV3Corrupt` after a CORRUPT alarm: every KV request, compaction, lease grant and
    /// lease revoke fails with `ErrCorrupt`.
    Corrupt,
}

const ALARM_ACTION_GET: i32 = 0;
const ALARM_ACTION_ACTIVATE: i32 = 1;
const ALARM_ACTION_DEACTIVATE: i32 = 2;
const ALARM_NONE: i32 = 0;
const ALARM_NOSPACE: i32 = 1;
const ALARM_CORRUPT: i32 = 2;

/// `quota.go: costPut`.
fn put_cost(put: &PutRequest) -> usize {
    256 + put.key.len() + put.value.len()
}

/// `quota.go: costTxn`: top-level puts of the larger branch (nested txns count 0).
fn txn_cost(txn: &TxnRequest) -> usize {
    let branch = |ops: &[RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(p),
                _ => 0,
            })
            .sum()
    };
    branch(&txn.success).max(branch(&txn.failure))
}

/// `v3_server.go: isTxnReadonly`: every top-level op of both branches is a Range (an op with
/// no request, or a nested txn, makes the txn a write txn).
fn is_txn_readonly(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(txn.failure.iter())
        .all(|op| matches!(op.request, Some(request_op::Request::RequestRange(_))))
}

fn branch(txn: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &txn.success
    } else {
        &txn.failure
    }
}

fn compare_i64(a: i64, b: i64) -> std::cmp::Ordering {
    a.cmp(&b)
}

/// `apply.go: compareKV` on one stored key-value (or the zero `KeyValue` for a missing key).
fn compare_key_value(
    compare: &Compare,
    value: &[u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
) -> bool {
    use std::cmp::Ordering;
    let ordering = match CompareTarget::try_from(compare.target) {
        Ok(CompareTarget::Value) => {
            let operand: &[u8] = match &compare.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            value.cmp(operand)
        }
        Ok(CompareTarget::Create) => {
            let operand = match compare.target_union {
                Some(TargetUnion::CreateRevision(v)) => v,
                _ => 0,
            };
            compare_i64(create_revision, operand)
        }
        Ok(CompareTarget::Mod) => {
            let operand = match compare.target_union {
                Some(TargetUnion::ModRevision(v)) => v,
                _ => 0,
            };
            compare_i64(mod_revision, operand)
        }
        Ok(CompareTarget::Version) => {
            let operand = match compare.target_union {
                Some(TargetUnion::Version(v)) => v,
                _ => 0,
            };
            compare_i64(version, operand)
        }
        Ok(CompareTarget::Lease) => {
            let operand = match compare.target_union {
                Some(TargetUnion::Lease(v)) => v,
                _ => 0,
            };
            compare_i64(lease, operand)
        }
        // Unknown target: Go leaves `result` at 0.
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        // Unknown result: Go's switch falls through to `return true`.
        Err(_) => true,
    }
}

impl MvccStore {
    // ---------------------------------------------------------------------------------------
    // Entries

    /// Applies one raft entry the way `EtcdServer.apply` / `applyEntryNormal` would.
    pub fn apply_entry(&mut self, entry: &crate::proto::raftpb::Entry) -> ApplyOutcome {
        // The common case, a v3 request, decoded in place into its box and from the entry's
        // shared bytes: keys and values become slices instead of copies, and the 1.4 kB
        // request is not built on the stack and then moved (the replay profile showed both,
        // docs/perf.md). Anything else, or a request that does not decode, goes through
        // `decode_payload` — the same result, since `decode` is `default` + `merge`.
        if entry.r#type == crate::proto::raftpb::EntryType::EntryNormal as i32 {
            if let Some(data) = entry.data.as_ref().filter(|d| !d.is_empty()) {
                let mut request = Box::<InternalRaftRequest>::default();
                if prost::Message::merge(&mut *request, data.clone()).is_ok() {
                    return self.apply_payload(entry.index, &Payload::Internal(request));
                }
            }
        }
        let payload = crate::proto::payload::decode_payload(entry);
        self.apply_payload(entry.index, &payload)
    }

    /// Applies an already decoded entry payload at `raft_index`.
    pub fn apply_payload(&mut self, raft_index: u64, payload: &Payload) -> ApplyOutcome {
        self.stats.entries += 1;
        if raft_index == 1 && self.follows_log && self.consistent_index == 0 {
            // A log from index 1 holds every conf change: membership is known from here.
            self.members = Some(Default::default());
        }
        // Every entry type etcd applies advances the consistent index first; only v3 requests
        // are gated on it (`shouldApplyV3`).
        let should_apply_v3 = raft_index > self.consistent_index;
        let outcome = match payload {
            Payload::Noop => {
                self.advance_consistent_index(raft_index);
                ApplyOutcome::not_applied(RequestKind::Noop, NotAppliedReason::RaftNoop)
            }
            Payload::V2(request) => {
                self.advance_consistent_index(raft_index);
                self.apply_v2(raft_index, request)
            }
            Payload::ConfChange { change, member } => {
                self.advance_consistent_index(raft_index);
                self.apply_conf_change_to_members(change, member.as_ref());
                ApplyOutcome::not_applied(RequestKind::ConfChange, NotAppliedReason::ConfChange)
            }
            Payload::UnknownNormal => ApplyOutcome::panic(
                RequestKind::Undecodable,
                "entry data is neither an InternalRaftRequest nor a v2 Request (MustUnmarshal)",
            ),
            Payload::ConfChangeV2(_) => ApplyOutcome::panic(
                RequestKind::ConfChangeV2,
                "unknown entry type; must be either EntryNormal or EntryConfChange",
            ),
            Payload::UnknownEntryType(_) => ApplyOutcome::panic(
                RequestKind::UnknownEntryType,
                "unknown entry type; must be either EntryNormal or EntryConfChange",
            ),
            Payload::BadConfChange(_) => ApplyOutcome::panic(
                RequestKind::ConfChange,
                "conf change data does not unmarshal (MustUnmarshal)",
            ),
            Payload::Internal(request) => {
                self.advance_consistent_index(raft_index);
                self.apply_internal(raft_index, request, should_apply_v3)
            }
        };
        self.stats.record(raft_index, &outcome);
        outcome
    }

    fn advance_consistent_index(&mut self, raft_index: u64) {
        if raft_index > self.consistent_index {
            self.consistent_index = raft_index;
        }
    }

    fn apply_internal(
        &mut self,
        raft_index: u64,
        request: &InternalRaftRequest,
        should_apply_v3: bool,
    ) -> ApplyOutcome {
        if let Some(v2) = &request.v2 {
            return self.apply_v2(raft_index, v2);
        }
        let kind = RequestKind::of(request);
        // `id = raftReq.Header.ID` dereferences a nil header: 3.5 reads the id before the
        // applier and its consistent-index gate, 3.4 after that gate.
        let no_id = request.id == 0 && request.header.is_none();
        const NO_ID: &str = "InternalRaftRequest with ID 0 and no header";
        if self.knows_cluster_requests() {
            if no_id {
                return ApplyOutcome::panic(kind, NO_ID);
            }
            if let Some(outcome) = self.apply_cluster_request(raft_index, request) {
                return outcome;
            }
        }
        if !should_apply_v3 {
            return ApplyOutcome::not_applied(kind, NotAppliedReason::AlreadyApplied);
        }
        if no_id {
            return ApplyOutcome::panic(kind, NO_ID);
        }
        // `noSideEffect`: not applied when no client waits on this member.
        if request.range.is_some()
            || request.auth_user_get.is_some()
            || request.auth_role_get.is_some()
            || (request.auth_status.is_some() && self.version.knows_auth_status())
        {
            return ApplyOutcome::not_applied(kind, NotAppliedReason::NoSideEffect);
        }
        self.apply_request_of_kind(request, kind)
    }

    /// `applierV3.Apply` for one request, without the consistent-index gate and the
    /// no-side-effect filter of [`Self::apply_payload`]. Fields are dispatched in etcd's order
    /// (the first one set wins).
    pub fn apply_request(&mut self, request: &InternalRaftRequest) -> ApplyOutcome {
        if self.knows_cluster_requests() {
            if let Some(outcome) = self.apply_cluster_request(self.consistent_index, request) {
                return outcome;
            }
        }
        self.apply_request_of_kind(request, RequestKind::of(request))
    }

    fn apply_request_of_kind(
        &mut self,
        request: &InternalRaftRequest,
        kind: RequestKind,
    ) -> ApplyOutcome {
        let result = if request.range.is_some() {
            // A read: no state change (corrupt mode would return ErrCorrupt to the client).
            match self.applier_mode {
                ApplierMode::Corrupt => ApplyResult::Rejected(ApplyError::Corrupt),
                _ => ApplyResult::Unchanged,
            }
        } else if let Some(put) = &request.put {
            self.apply_put(put)
        } else if let Some(delete) = &request.delete_range {
            self.apply_delete_range(delete)
        } else if let Some(txn) = &request.txn {
            self.apply_txn(txn)
        } else if let Some(compaction) = &request.compaction {
            if self.applier_mode == ApplierMode::Corrupt {
                ApplyResult::Rejected(ApplyError::Corrupt)
            } else {
                match self.compact(compaction.revision) {
                    Ok(()) => ApplyResult::Compacted {
                        compact_revision: compaction.revision,
                    },
                    Err(e) => ApplyResult::Rejected(e),
                }
            }
        } else if let Some(grant) = &request.lease_grant {
            match self.applier_mode {
                ApplierMode::Capped => ApplyResult::Rejected(ApplyError::NoSpace),
                ApplierMode::Corrupt => ApplyResult::Rejected(ApplyError::Corrupt),
                ApplierMode::Full => match self.lease_grant(grant.id, grant.ttl) {
                    Ok(()) => ApplyResult::Unchanged,
                    Err(e) => ApplyResult::Rejected(e),
                },
            }
        } else if let Some(revoke) = &request.lease_revoke {
            if self.applier_mode == ApplierMode::Corrupt {
                ApplyResult::Rejected(ApplyError::Corrupt)
            } else {
                match self.lease_revoke(revoke.id) {
                    Ok(Some(main_revision)) => ApplyResult::Revision { main_revision },
                    Ok(None) => ApplyResult::Unchanged,
                    Err(e) => ApplyResult::Rejected(e),
                }
            }
        } else if let Some(checkpoint) = &request.lease_checkpoint {
            for c in &checkpoint.checkpoints {
                self.lease_checkpoint(c.id, c.remaining_ttl);
            }
            ApplyResult::Unchanged
        } else if let Some(alarm) = &request.alarm {
            self.apply_alarm(alarm)
        } else if kind.is_auth() {
            // The auth store is not modelled. With auth enabled, etcd checks every
            // Put/DeleteRange/Txn/LeaseRevoke against `header.username` at apply time; see
            // `ApplyStats::auth_enable_requests`.
            if kind == RequestKind::AuthStatus && !self.version.knows_auth_status() {
                ApplyResult::EtcdWouldPanic("not implemented (auth_status unknown to this version)")
            } else {
                ApplyResult::Unmodelled
            }
        } else if matches!(
            kind,
            RequestKind::ClusterVersionSet
                | RequestKind::ClusterMemberAttrSet
                | RequestKind::DowngradeInfoSet
        ) {
            // Only a release before 3.5 gets here (3.5 dispatched them first): it skipped the
            // unknown field and finds no request set.
            ApplyResult::EtcdWouldPanic(
                "not implemented: etcd 3.4 skips InternalRaftRequest fields 1300-1302 when decoding and applierV3backend.Apply has no case for the empty request",
            )
        } else {
            ApplyResult::EtcdWouldPanic("not implemented (InternalRaftRequest with no request)")
        };
        ApplyOutcome { kind, result }
    }

    // ---------------------------------------------------------------------------------------
    // Put / DeleteRange

    /// `applierV3backend.Put` with `txn == nil`, behind the current applier mode.
    fn apply_put(&mut self, put: &PutRequest) -> ApplyResult {
        match self.applier_mode {
            ApplierMode::Capped => return ApplyResult::Rejected(ApplyError::NoSpace),
            ApplierMode::Corrupt => return ApplyResult::Rejected(ApplyError::Corrupt),
            ApplierMode::Full => {}
        }
        if put.lease != 0 && !self.lessor.contains(put.lease) {
            return ApplyResult::Rejected(ApplyError::LeaseNotFound);
        }
        let mut txn = self.begin_txn(false);
        let result = match self.put_in_txn(&mut txn, put) {
            Ok(()) => ApplyResult::Unchanged,
            Err(e) => ApplyResult::Rejected(e),
        };
        match self.end_txn(txn) {
            Some(main_revision) => ApplyResult::Revision { main_revision },
            None => result,
        }
    }

    /// The body of `applierV3backend.Put` inside a write txn: `ignore_value` /
    /// `ignore_lease` read the key as the txn sees it and fail if it is missing.
    fn put_in_txn(&mut self, txn: &mut WriteTxn, put: &PutRequest) -> Result<(), ApplyError> {
        let mut lease = put.lease;
        if put.ignore_value || put.ignore_lease {
            let Some(stored) = self.current_key_value(&put.key, txn.read_revision()) else {
                return Err(ApplyError::KeyNotFound);
            };
            let existing = super::bucket::decode_key_value(&stored);
            if put.ignore_lease {
                lease = existing.lease;
            }
            if put.ignore_value {
                // The stored value borrows the key's current value, which the put replaces.
                let value = Bytes::copy_from_slice(existing.value);
                self.txn_put(txn, &put.key, &value, lease);
                return Ok(());
            }
        }
        self.txn_put(txn, &put.key, &put.value, lease);
        Ok(())
    }

    fn apply_delete_range(&mut self, delete: &DeleteRangeRequest) -> ApplyResult {
        if self.applier_mode == ApplierMode::Corrupt {
            return ApplyResult::Rejected(ApplyError::Corrupt);
        }
        let mut txn = self.begin_txn(false);
        self.txn_delete_range(
            &mut txn,
            KeyRange::from_request(&delete.key, &delete.range_end),
        );
        match self.end_txn(txn) {
            Some(main_revision) => ApplyResult::Revision { main_revision },
            None => ApplyResult::Unchanged,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Txn

    /// `applierV3backend.Txn` behind the current applier mode.
    fn apply_txn(&mut self, txn_request: &TxnRequest) -> ApplyResult {
        match self.applier_mode {
            ApplierMode::Corrupt => return ApplyResult::Rejected(ApplyError::Corrupt),
            ApplierMode::Capped if txn_cost(txn_request) > 0 => {
                return ApplyResult::Rejected(ApplyError::NoSpace)
            }
            _ => {}
        }
        let is_write = !is_txn_readonly(txn_request);
        if txn_request.compare.iter().any(|c| !c.range_end.is_empty()) {
            self.index.flush_order(); // range compares walk keys in order
        }

        // All compares, outer and nested on the chosen path, against the pre-txn state.
        let mut path = std::mem::take(&mut self.scratch_path);
        path.clear();
        self.compare_to_path(txn_request, &mut path);

        let checked = (|| {
            if is_write {
                self.check_requests(txn_request, &path, &mut 0, 0, Self::check_put)?;
            }
            self.check_requests(txn_request, &path, &mut 0, 0, Self::check_range)
        })();
        if let Err(e) = checked {
            self.scratch_path = path;
            return ApplyResult::Rejected(e);
        }

        let result = if is_write {
            let mut txn = self.begin_txn(true);
            match self.apply_txn_ops(&mut txn, txn_request, &path, &mut 0) {
                Ok(()) => match self.end_txn(txn) {
                    Some(main_revision) => ApplyResult::Revision { main_revision },
                    None => ApplyResult::Unchanged,
                },
                Err(reason) => {
                    self.abort_txn(txn);
                    ApplyResult::EtcdWouldPanic(reason)
                }
            }
        } else {
            // A read-only txn runs on a read view: no state change possible.
            ApplyResult::Unchanged
        };
        self.scratch_path = path;
        result
    }

    /// `compareToPath`: this txn's compare result, then the nested txns' of the chosen branch,
    /// depth first.
    fn compare_to_path(&self, txn: &TxnRequest, path: &mut Vec<bool>) {
        let succeeded = txn.compare.iter().all(|c| self.apply_compare(c));
        path.push(succeeded);
        for op in branch(txn, succeeded) {
            if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
                self.compare_to_path(nested, path);
            }
        }
    }

    /// `applyCompare` against the current (pre-txn) state: every key alive in the range must
    /// satisfy the compare; an empty range compares as the zero `KeyValue`, except that a
    /// `VALUE` compare on no key is always false.
    fn apply_compare(&self, compare: &Compare) -> bool {
        let range = KeyRange::from_request(&compare.key, &compare.range_end);
        let at = self.current_revision;
        let mut any = false;
        let mut all = true;
        self.for_each_alive(range, at, |_, found, ki| {
            any = true;
            let stored = self.stored_value(ki, found);
            let kv = stored
                .as_deref()
                .map(super::bucket::decode_key_value)
                .unwrap_or_default();
            if !compare_key_value(
                compare,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease,
            ) {
                all = false;
                return false;
            }
            true
        });
        if !any {
            if compare.target == CompareTarget::Value as i32 {
                return false;
            }
            return compare_key_value(compare, &[], 0, 0, 0, 0);
        }
        all
    }

    /// `checkRequests`: runs `check` on every non-txn op of the chosen branches.
    fn check_requests(
        &self,
        txn: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
        depth: usize,
        check: fn(&Self, &RequestOp, usize) -> Result<(), ApplyError>,
    ) -> Result<(), ApplyError> {
        let succeeded = path.get(*cursor).copied().unwrap_or(false);
        *cursor += 1;
        for op in branch(txn, succeeded) {
            if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
                self.check_requests(nested, path, cursor, depth + 1, check)?;
            } else {
                check(self, op, depth)?;
            }
        }
        Ok(())
    }

    /// `checkRequestPut`: ignore flags need the key, a lease must exist.
    fn check_put(&self, op: &RequestOp, _depth: usize) -> Result<(), ApplyError> {
        let Some(request_op::Request::RequestPut(put)) = &op.request else {
            return Ok(());
        };
        if (put.ignore_value || put.ignore_lease)
            && self.key_at(&put.key, self.current_revision).is_none()
        {
            return Err(ApplyError::KeyNotFound);
        }
        if put.lease != 0 && !self.lessor.contains(put.lease) {
            return Err(ApplyError::LeaseNotFound);
        }
        Ok(())
    }

    /// `checkRequestRange`: a range at a future or compacted revision fails the txn.
    fn check_range(&self, op: &RequestOp, depth: usize) -> Result<(), ApplyError> {
        let Some(request_op::Request::RequestRange(range)) = &op.request else {
            return Ok(());
        };
        if depth == 0 && self.strip_top_level_txn_ranges {
            return Ok(()); // removed by removeNeedlessRangeReqs
        }
        if range.revision == 0 {
            Ok(())
        } else if range.revision > self.current_revision {
            Err(ApplyError::FutureRevision)
        } else if range.revision < self.compact_revision {
            Err(ApplyError::Compacted)
        } else {
            Ok(())
        }
    }

    /// `applyTxn`: runs the ops of the chosen branches in order in one write txn. An error
    /// here makes etcd panic ("unexpected error during txn"); it can only happen when an
    /// `ignore_value`/`ignore_lease` put follows a delete of its key in the same txn (the
    /// checks ran against the pre-txn state; etcd's API rejects such txns as duplicate keys).
    fn apply_txn_ops(
        &mut self,
        txn: &mut WriteTxn,
        txn_request: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
    ) -> Result<(), &'static str> {
        let succeeded = path.get(*cursor).copied().unwrap_or(false);
        *cursor += 1;
        for op in branch(txn_request, succeeded) {
            match &op.request {
                // Ranges only produce a response (their errors were excluded by checkRange).
                Some(request_op::Request::RequestRange(_)) | None => {}
                Some(request_op::Request::RequestPut(put)) => {
                    if self.put_in_txn(txn, put).is_err() {
                        return Err("unexpected error during txn: etcdserver: key not found");
                    }
                }
                Some(request_op::Request::RequestDeleteRange(delete)) => {
                    self.txn_delete_range(
                        txn,
                        KeyRange::from_request(&delete.key, &delete.range_end),
                    );
                }
                Some(request_op::Request::RequestTxn(nested)) => {
                    self.apply_txn_ops(txn, nested, path, cursor)?;
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Alarms

    fn alarm_count(&self, alarm: i32) -> usize {
        if alarm == ALARM_NONE {
            self.alarms.len()
        } else {
            self.alarms.range((alarm, 0)..=(alarm, u64::MAX)).count()
        }
    }

    /// `applierV3backend.Alarm`: the first activation of NOSPACE / CORRUPT switches the
    /// applier; deactivating the last alarm of that type restores the full applier (even if
    /// the other type is still active). Activating an alarm of another type: 3.4.23 stores it
    /// and warns ("unimplemented alarm activation"); 3.5.30 ignores NONE and panics on the
    /// first activation of any other type (`lg.Panic`).
    fn apply_alarm(&mut self, request: &AlarmRequest) -> ApplyResult {
        let old_count = self.alarm_count(request.alarm);
        let v3_5 = self.version.knows_v3_5_requests();
        match request.action {
            ALARM_ACTION_GET => {}
            ALARM_ACTION_ACTIVATE => {
                if v3_5 && request.alarm == ALARM_NONE {
                    return ApplyResult::Unchanged;
                }
                if !self.alarms.insert((request.alarm, request.member_id)) {
                    return ApplyResult::Unchanged; // already active for this member
                }
                let activated = old_count == 0 && self.alarm_count(request.alarm) == 1;
                if activated {
                    match request.alarm {
                        ALARM_CORRUPT => self.applier_mode = ApplierMode::Corrupt,
                        ALARM_NOSPACE => self.applier_mode = ApplierMode::Capped,
                        _ if v3_5 => {
                            return ApplyResult::EtcdWouldPanic(
                                "activation of an alarm type other than NOSPACE and CORRUPT: 3.5 panics (\"unimplemented alarm activation\")",
                            )
                        }
                        _ => {}
                    }
                }
            }
            ALARM_ACTION_DEACTIVATE => {
                if !self.alarms.remove(&(request.alarm, request.member_id)) {
                    return ApplyResult::Unchanged;
                }
                let deactivated = old_count > 0 && self.alarm_count(request.alarm) == 0;
                if deactivated && matches!(request.alarm, ALARM_NOSPACE | ALARM_CORRUPT) {
                    self.applier_mode = ApplierMode::Full;
                }
            }
            _ => {}
        }
        ApplyResult::Unchanged
    }

    /// The active alarms as (alarm type, member id).
    pub fn active_alarms(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.alarms.iter().copied()
    }

    pub fn applier_mode(&self) -> ApplierMode {
        self.applier_mode
    }
}
