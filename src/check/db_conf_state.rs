//! The db's `meta/confState` is the raft configuration after the entries up to its consistent
//! index. etcd 3.5+ saves the ConfState raft returns from every applied conf change
//! (`applyConfChange`: `s.beHooks.SetConfState(confState)`, persisted by the backend hook
//! `OnPreCommitUnsafe` in the same transaction as the consistent index), and a snapshot's
//! ConfState when it restores one. Raft (§6, the configuration in use is the latest one in the
//! log) makes that the configuration of the log at CI.
//!
//! etcd also re-applies the conf changes at or below CI after a restart (to raft and the v2
//! store; `shouldApplyV3` only gates the members buckets) and each one marks the ConfState dirty,
//! so a db written between those re-applications and the end of the replay of CI holds the
//! configuration of an earlier conf change: that shape is a warning, any other difference a
//! finding.

use super::conf_model::Config;
use super::{Finding, Severity};
use crate::wal::Location;

pub const KIND: &str = "db.conf_state_mismatch";
pub const EARLIER: &str = "db.conf_state_earlier";
pub const REFERENCE: &str = "etcd 3.5 server/etcdserver/server.go applyConfChange (beHooks.SetConfState), server/etcdserver/backend_hooks.go OnPreCommitUnsafe (confState with the consistent index), membership.MustUnsafeSaveConfStateToBackend; Raft §6";

/// The Go JSON of `raftpb.ConfState` (`voters`, `learners`, `voters_outgoing`, `learners_next`,
/// `auto_leave`, all omitempty) as a [`Config`]; None when it is not that shape.
pub fn parse(json: &serde_json::Value) -> Option<Config> {
    let object = json.as_object()?;
    let ids = |name: &str| -> Option<std::collections::BTreeSet<u64>> {
        match object.get(name) {
            None | Some(serde_json::Value::Null) => Some(Default::default()),
            Some(v) => v
                .as_array()?
                .iter()
                .map(serde_json::Value::as_u64)
                .collect(),
        }
    };
    Some(Config {
        voters: ids("voters")?,
        voters_outgoing: ids("voters_outgoing")?,
        learners: ids("learners")?,
        learners_next: ids("learners_next")?,
        auto_leave: match object.get("auto_leave") {
            None | Some(serde_json::Value::Null) => false,
            Some(v) => v.as_bool()?,
        },
    })
}

fn describe(c: &Config) -> String {
    let list = |s: &std::collections::BTreeSet<u64>| {
        s.iter()
            .map(|id| format!("{id:x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!(
        "voters [{}] learners [{}]",
        list(&c.voters),
        list(&c.learners)
    );
    if !c.voters_outgoing.is_empty() || !c.learners_next.is_empty() || c.auto_leave {
        out.push_str(&format!(
            " outgoing [{}] learners_next [{}] auto_leave {}",
            list(&c.voters_outgoing),
            list(&c.learners_next),
            c.auto_leave
        ));
    }
    out
}

/// `db`: the db's confState JSON; `at_ci`: the configuration of the log at CI; `earlier`: the
/// configurations after each conf change between the boot snapshot and CI.
pub fn check(
    member: &str,
    consistent_index: u64,
    db: &serde_json::Value,
    at_ci: &Config,
    earlier: &[(u64, Config)],
) -> Option<Finding> {
    let location = Location {
        raft_index: Some(consistent_index),
        ..Default::default()
    };
    let Some(db_config) = parse(db) else {
        return Some(Finding::new(
            KIND,
            Severity::Corruption,
            member,
            location,
            None,
            format!("the backend db's meta/confState is not a raft ConfState: {db}"),
            REFERENCE,
        ));
    };
    if &db_config == at_ci {
        return None;
    }
    if let Some((index, _)) = earlier.iter().rev().find(|(_, c)| c == &db_config) {
        return Some(Finding::new(
            EARLIER,
            Severity::Warning,
            member,
            location,
            None,
            format!(
                "the backend db's meta/confState ({}) is the configuration after the conf change at index {index}, not the one at its consistent index {consistent_index} ({}): etcd re-applies conf changes at or below the consistent index after a restart and saves each ConfState with the next backend commit",
                describe(&db_config),
                describe(at_ci)
            ),
            REFERENCE,
        ));
    }
    Some(Finding::new(
        KIND,
        Severity::Corruption,
        member,
        location,
        None,
        format!(
            "the backend db's meta/confState ({}) is not the configuration of the log at its consistent index {consistent_index} ({})",
            describe(&db_config),
            describe(at_ci)
        ),
        REFERENCE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(voters: &[u64], learners: &[u64]) -> Config {
        Config {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().copied().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn equal_earlier_and_different() {
        let db = json!({"auto_leave": false, "voters": [1, 2, 3]});
        assert!(check("m", 9, &db, &config(&[3, 2, 1], &[]), &[]).is_none());
        let earlier = [(4, config(&[1, 2, 3], &[])), (6, config(&[1, 2], &[3]))];
        let f = check("m", 9, &db, &config(&[1, 2, 3, 4], &[]), &earlier).unwrap();
        assert_eq!((f.kind, f.severity.is_failure()), (EARLIER, false));
        assert!(f.message.contains("index 4"), "{}", f.message);
        let f = check("m", 9, &db, &config(&[1, 2], &[3]), &[]).unwrap();
        assert_eq!((f.kind, f.severity.is_failure()), (KIND, true));
        assert!(f.message.contains("learners [3]"), "{}", f.message);
        let f = check("m", 9, &json!({"voters": "x"}), &config(&[1], &[]), &[]).unwrap();
        assert_eq!(f.kind, KIND);
    }
}
