//! Generated scenarios (proptest strategies over cluster size, operations, faults and conf
//! changes): a bounded run under `cargo test`, and a check that every injectable bug is still
//! caught. A failing case is shrunk and written to `scenarios/regressions/`, which
//! `tests/sim_scenarios.rs` replays from then on.
//!
//! `RAFT_REPLAY_SIM_CASES` (default 1000) and `RAFT_REPLAY_SIM_SEED` (default 20240601) set the
//! run; `make sim-heavy` runs a large one in release mode.

use std::path::Path;

use proptest::prelude::*;
use raft_replay::sim::gen::{case_strategy, run_cases, scenario_path};
use raft_replay::sim::script::Command;
use raft_replay::sim::Inject;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn generated_cases_hold_on_the_unmodified_code() {
    let cases = env_u64("RAFT_REPLAY_SIM_CASES", 1000);
    let seed = env_u64("RAFT_REPLAY_SIM_SEED", 20240601);
    let summary = run_cases(0..cases, seed, None, jobs(), &|_| {});
    if let Some(failure) = &summary.failure {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/regressions");
        let path = scenario_path(&dir, seed, failure.case, None);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, &failure.script).unwrap();
        panic!(
            "case {} of seed {seed} fails; shrunk scenario written to {}:\n{}",
            failure.case,
            path.display(),
            failure.shrunk_failures.join("\n")
        );
    }
    assert_eq!(summary.cases, cases);
    // The generators reach every kind of fault and of joint-consensus transition.
    for fault in [
        "crash",
        "lose-unsynced",
        "tear",
        "partition",
        "drop",
        "duplicate",
    ] {
        assert!(
            summary.faults.get(fault).copied().unwrap_or(0) > 0,
            "no {fault} in {cases} cases"
        );
    }
    if cases >= 200 {
        for kind in [
            "enter-joint-auto",
            "enter-joint-implicit",
            "enter-joint-explicit",
            "leave-joint-auto",
            "leave-joint-explicit",
            "v1-add-learner",
            "v1-remove",
            "v2-simple",
        ] {
            assert!(
                summary.transitions.get(kind).copied().unwrap_or(0) > 0,
                "no {kind} in {cases} cases: {:?}",
                summary.transitions
            );
        }
    }
}

#[test]
fn every_injected_bug_is_caught_within_2000_cases() {
    for bug in Inject::ALL {
        let summary = run_cases(0..2000, 1, Some(bug), jobs(), &|_| {});
        let failure = summary
            .failure
            .unwrap_or_else(|| panic!("{} not caught in 2000 cases", bug.name()));
        assert!(
            failure.shrunk.commands.len() <= failure.original_commands,
            "shrinking never grows a case"
        );
        assert!(
            !failure.shrunk_failures.is_empty(),
            "{}: the shrunk case must still fail",
            bug.name()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// A generated case is a scenario file as it stands: every command prints and parses back.
    #[test]
    fn generated_commands_round_trip_through_scenario_text(case in case_strategy(None)) {
        for command in &case.commands {
            let text = command.to_string();
            let parsed: Command = text.parse().map_err(TestCaseError::fail)?;
            prop_assert_eq!(&parsed, command);
        }
    }
}
