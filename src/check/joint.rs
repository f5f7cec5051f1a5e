//! Joint consensus and configuration validity, as raft's `confchange.Changer` enforces them at
//! apply time: enter a joint configuration only from a simple one (and not with zero voters),
//! leave only a joint one, no simple change while joint, at most one voter changed by a simple
//! change, voters ∩ learners = ∅, never remove the last voter; and `auto_leave` honoured (a joint
//! configuration entered with auto-leave is left by the leader once the entry is applied).
//!
//! A committed conf change raft refuses makes etcd panic at apply (raft-rs returns an error the
//! node cannot recover from): a violation at that entry. Proposal-time filtering turns such
//! proposals into empty normal entries, so a correct log never contains one.

use super::conf_model::ConfError;
use super::member_scan::MemberScan;
use super::{conf_state, Finding, Severity};
use crate::wal::Location;

pub const ENTER_FROM_JOINT: &str = "raft.joint_enter_from_joint";
pub const ENTER_ZERO_VOTERS: &str = "raft.joint_enter_zero_voters";
pub const LEAVE_NOT_JOINT: &str = "raft.joint_leave_not_joint";
pub const SIMPLE_IN_JOINT: &str = "raft.joint_simple_change_in_joint";
pub const SIMPLE_MULTIPLE_VOTERS: &str = "raft.simple_change_multiple_voters";
pub const REMOVED_LAST_VOTER: &str = "raft.removed_last_voter";
pub const VOTER_AND_LEARNER: &str = "raft.voter_and_learner";
pub const INVALID_CONF_STATE: &str = "raft.invalid_conf_state";
pub const AUTO_LEAVE_PENDING: &str = "raft.joint_auto_leave_pending";

pub const REFERENCE: &str =
    "Raft §6 / thesis §4.3 joint consensus; etcd-io/raft & raft-rs confchange.Changer (EnterJoint, LeaveJoint, Simple, checkInvariants)";
pub const REFERENCE_AUTO_LEAVE: &str =
    "raft-rs/etcd-io raft auto_leave: the leader proposes an empty ConfChangeV2 once the joint entry is applied";

fn kind(error: &ConfError) -> (&'static str, Severity) {
    match error {
        ConfError::AlreadyJoint => (ENTER_FROM_JOINT, Severity::Violation),
        ConfError::ZeroVoterJoint => (ENTER_ZERO_VOTERS, Severity::Violation),
        ConfError::LeaveNotJoint => (LEAVE_NOT_JOINT, Severity::Violation),
        ConfError::SimpleInJoint => (SIMPLE_IN_JOINT, Severity::Violation),
        ConfError::SimpleMultipleVoters => (SIMPLE_MULTIPLE_VOTERS, Severity::Violation),
        ConfError::RemovedAllVoters => (REMOVED_LAST_VOTER, Severity::Violation),
        ConfError::VoterAndLearner(_) => (VOTER_AND_LEARNER, Severity::Violation),
        ConfError::InvalidLearnersNext(_) | ConfError::NotJointButJointFields => {
            (INVALID_CONF_STATE, Severity::Violation)
        }
        ConfError::Undecodable(_) => (conf_state::UNDECODABLE, Severity::Corruption),
    }
}

/// A committed conf change raft refuses.
pub fn conf_error(
    member: &str,
    index: u64,
    term: u64,
    error: &ConfError,
    location: Location,
) -> Finding {
    let (kind, severity) = kind(error);
    let reference = if kind == conf_state::UNDECODABLE {
        conf_state::REFERENCE_DECODE
    } else {
        REFERENCE
    };
    Finding::new(
        kind,
        severity,
        member,
        location,
        Some(term),
        format!("committed conf change {index} cannot be applied: {error} (etcd panics here)"),
        reference,
    )
}

/// A configuration read from a snapshot that raft would refuse to restore.
pub fn invalid_seed(member: &str, index: u64, error: &ConfError) -> Finding {
    let (kind, severity) = kind(error);
    Finding::new(
        kind,
        severity,
        member,
        Location {
            raft_index: Some(index),
            ..Default::default()
        },
        None,
        format!("the snapshot ConfState at index {index} is invalid: {error} (raft: \"invalid restore\")"),
        REFERENCE,
    )
}

/// Still in a joint configuration entered with auto-leave although entries after it are
/// committed: the leader did not (yet) leave.
pub fn auto_leave_pending(scan: &MemberScan) -> Option<Finding> {
    let (index, config) = scan.timeline.points.last()?;
    let config = config.as_ref()?;
    if !(config.is_joint() && config.auto_leave) || scan.timeline.applied_through <= *index {
        return None;
    }
    Some(Finding::new(
        AUTO_LEAVE_PENDING,
        Severity::Warning,
        &scan.member,
        scan.entry_location(*index),
        None,
        format!(
            "joint configuration {config} (auto-leave) entered at {index} is still in force at commit {}",
            scan.timeline.applied_through
        ),
        REFERENCE_AUTO_LEAVE,
    ))
}
