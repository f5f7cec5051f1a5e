//! The part of etcd's lessor (`lease/lessor.go`) that affects the key space.
//!
//! Expiry is not modelled: only the leader's lessor tracks time, and it turns expiries into
//! ordinary `LeaseRevoke` entries in the WAL, which the replay applies like any other.

use std::collections::{BTreeSet, HashMap};

/// `lease.MaxLeaseTTL`: grants above this fail with `ErrLeaseTTLTooLarge`.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// The TTL in the grant request. etcd raises it to its configured minimum TTL, which is
    /// not in the WAL; it never affects the key space.
    pub requested_ttl: i64,
    /// Last checkpointed remaining TTL (`LeaseCheckpoint`), 0 if never checkpointed.
    pub remaining_ttl: i64,
    /// Attached keys, in bytewise order: the order a revoke deletes them in.
    pub keys: BTreeSet<Box<[u8]>>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Lessor {
    pub leases: HashMap<i64, Lease>,
}

impl Lessor {
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// `lessor.Attach`; false if the lease does not exist (etcd returns `ErrLeaseNotFound`).
    pub fn attach(&mut self, id: i64, key: &[u8]) -> bool {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                if !lease.keys.contains(key) {
                    lease.keys.insert(key.into());
                }
                true
            }
            None => false,
        }
    }

    /// `lessor.Detach`; a missing lease is a no-op here (etcd errors, which cannot happen
    /// for a key that is attached).
    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
        }
    }
}
