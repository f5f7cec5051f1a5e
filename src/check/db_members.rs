//! The db's `members` and `members_removed` buckets are the membership of the log at its
//! consistent index: the boot `.snap`'s membership plus the conf changes up to CI. etcd 3.5+
//! writes a member's record when it applies its conf change above CI (`RaftCluster.AddMember`,
//! `PromoteMember`, `RemoveMember` with `shouldApplyV3`, in the transaction that moves the
//! consistent index), so the buckets and CI move together (Raft §6: the configuration is the
//! log's).
//!
//! etcd 3.5.1–3.5.19 could leave a promoted learner with `isLearner: true` in the `members`
//! bucket (`PromoteMember` writes the bucket only with `shouldApplyV3`; etcd-io/etcd#19557; 3.5.20+
//! repairs the bucket from the v2 store when it applies a leader snapshot,
//! `SyncLearnerPromotionIfNeeded`): that shape is reported as the known bug, a warning. Any other
//! difference is a finding.

use std::collections::BTreeSet;

use super::conf_model::Config;
use super::{Finding, Severity};
use crate::backend::etcd::MemberRecord;
use crate::wal::Location;

pub const KIND: &str = "db.members_mismatch";
pub const PROMOTED_LEARNER: &str = "db.promoted_learner_flag";
pub const REFERENCE: &str = "etcd 3.5 server/etcdserver/api/membership/cluster.go AddMember/PromoteMember/RemoveMember (shouldApplyV3), membership/store.go unsafeSaveMemberToBackend; etcd-io/etcd#19557 (3.5.1-3.5.19); Raft §6";

/// What the db's `members` bucket says: member id → `isLearner`. Keys that are not hex ids are
/// left to the schema reader's findings.
fn db_members(records: &[MemberRecord]) -> Vec<(u64, bool)> {
    records
        .iter()
        .filter_map(|m| {
            let id = u64::from_str_radix(&m.id, 16).ok()?;
            let learner = m.record.get("isLearner").and_then(|v| v.as_bool()) == Some(true);
            Some((id, learner))
        })
        .collect()
}

fn ids(set: impl IntoIterator<Item = u64>) -> String {
    let list: Vec<String> = set.into_iter().map(|id| format!("{id:x}")).collect();
    format!("[{}]", list.join(","))
}

/// `records`/`removed`: the db's buckets; `at_ci`: the log's configuration at CI;
/// `removed_at_ci`: the ids removed by then (None: not known, e.g. no v2 store in the `.snap`).
pub fn check(
    member: &str,
    consistent_index: u64,
    records: &[MemberRecord],
    removed: &[String],
    at_ci: &Config,
    removed_at_ci: Option<&BTreeSet<u64>>,
) -> Vec<Finding> {
    let location = Location {
        raft_index: Some(consistent_index),
        ..Default::default()
    };
    let finding = |kind, severity, message| {
        Finding::new(
            kind,
            severity,
            member,
            location.clone(),
            None,
            message,
            REFERENCE,
        )
    };
    let mut out = Vec::new();
    let db = db_members(records);
    let db_ids: BTreeSet<u64> = db.iter().map(|(id, _)| *id).collect();
    let log_ids: BTreeSet<u64> = at_ci.ids().collect();
    if db_ids != log_ids {
        out.push(finding(
            KIND,
            Severity::Corruption,
            format!(
                "the backend db's members bucket holds {} but the log's configuration at its consistent index {consistent_index} has {}",
                ids(db_ids.iter().copied()),
                ids(log_ids.iter().copied())
            ),
        ));
    }
    for (id, db_learner) in db.iter().filter(|(id, _)| log_ids.contains(id)) {
        let log_learner = at_ci.learners.contains(id) || at_ci.learners_next.contains(id);
        match (db_learner, log_learner) {
            (true, false) => out.push(finding(
                PROMOTED_LEARNER,
                Severity::Warning,
                format!(
                    "member {id:x} is a voter in the log at consistent index {consistent_index} but still isLearner in the db's members bucket: the shape of etcd-io/etcd#19557 (etcd 3.5.1-3.5.19 could miss persisting a promotion in the v3 store; 3.5.20+ SyncLearnerPromotionIfNeeded repairs it from the v2 store)"
                ),
            )),
            (false, true) => out.push(finding(
                KIND,
                Severity::Corruption,
                format!(
                    "member {id:x} is a learner in the log at consistent index {consistent_index} but a voter in the db's members bucket"
                ),
            )),
            _ => {}
        }
    }
    if let Some(expected) = removed_at_ci {
        let db_removed: BTreeSet<u64> = removed
            .iter()
            .filter_map(|id| u64::from_str_radix(id, 16).ok())
            .collect();
        if &db_removed != expected {
            out.push(finding(
                KIND,
                Severity::Corruption,
                format!(
                    "the backend db's members_removed bucket holds {} but the log had removed {} by its consistent index {consistent_index}",
                    ids(db_removed),
                    ids(expected.iter().copied())
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: u64, learner: bool) -> MemberRecord {
        let mut record = json!({"id": id, "peerURLs": ["http://x"]});
        if learner {
            record["isLearner"] = json!(true);
        }
        MemberRecord {
            id: format!("{id:x}"),
            record,
        }
    }

    fn config(voters: &[u64], learners: &[u64]) -> Config {
        Config {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn equal_promoted_learner_and_different() {
        let none = BTreeSet::new();
        let records = [record(1, false), record(2, true)];
        assert!(check("m", 5, &records, &[], &config(&[1], &[2]), Some(&none)).is_empty());
        let f = check("m", 5, &records, &[], &config(&[1, 2], &[]), Some(&none));
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].kind, f[0].severity.is_failure()),
            (PROMOTED_LEARNER, false)
        );
        let f = check("m", 5, &records, &[], &config(&[1, 3], &[2]), Some(&none));
        assert_eq!((f[0].kind, f[0].severity.is_failure()), (KIND, true));
        assert!(f[0].message.contains("[1,2]") && f[0].message.contains("[1,2,3]"));
        let f = check(
            "m",
            5,
            &[record(1, false), record(2, false)],
            &[],
            &config(&[1], &[2]),
            None,
        );
        assert_eq!((f.len(), f[0].kind), (1, KIND));
        let removed: BTreeSet<u64> = [9].into();
        let f = check("m", 5, &records, &[], &config(&[1], &[2]), Some(&removed));
        assert!(f[0].message.contains("members_removed"), "{}", f[0].message);
        assert!(check(
            "m",
            5,
            &records,
            &["9".into()],
            &config(&[1], &[2]),
            Some(&removed)
        )
        .is_empty());
    }
}
