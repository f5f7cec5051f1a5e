//! Generated scenarios: proptest strategies over cluster size (1–7 voters, optionally a learner),
//! raft options, client operations, network and storage faults, and conf-change sequences (v1,
//! v2 simple, joint with every transition, explicit leave). A case is a list of [`Command`]s,
//! so a failing case is a scenario file as it stands; failures shrink with proptest's value
//! trees, then one command at a time, and the smallest failing case is written out.
//!
//! Case `i` of seed `S` is generated from its own ChaCha stream (seeded from `S` and `i`), so a
//! run's outcome does not depend on how many threads share the cases.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::cluster::{ChangeOp, ConfSpec, Inject, Target, Transition};
use super::history::OpKind;
use super::script::{script_from_commands, Command, Runner};

/// A generated scenario.
#[derive(Clone, Debug)]
pub struct Case {
    pub commands: Vec<Command>,
}

/// An operation before node selectors are mapped onto the case's node ids.
#[derive(Clone, Debug)]
enum RawOp {
    Propose {
        node: Option<u8>,
        kind: u8,
        key: u8,
        arg: u8,
    },
    Leave,
    PromoteInitialLearner(bool),
    Conf {
        v1: bool,
        transition: u8,
        leave: bool,
        changes: Vec<(u8, u8)>,
    },
    Campaign(u8),
    Stabilize,
    ProcessReady(u8),
    DeliverAll,
    DeliverTo(u8),
    DeliverOne(u16),
    DropOne(u16),
    DupOne(u16),
    DropTo(u8),
    Partition(u16),
    Heal,
    Tick(u8),
    TickNode(u8, u8),
    Crash(u8),
    LoseUnsynced(u8),
    Tear(u8, u64),
    Restart(u8),
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    let change = (0u8..3, any::<u8>());
    prop_oneof![
        10 => (prop::option::weighted(0.6, any::<u8>()), 0u8..14, 0u8..4, any::<u8>())
            .prop_map(|(node, kind, key, arg)| RawOp::Propose { node, kind, key, arg }),
        2 => Just(RawOp::Leave),
        1 => any::<bool>().prop_map(RawOp::PromoteInitialLearner),
        4 => (any::<bool>(), 0u8..3, prop::bool::weighted(0.15),
              prop::collection::vec(change, 1..4))
            .prop_map(|(v1, transition, leave, changes)| RawOp::Conf { v1, transition, leave, changes }),
        4 => any::<u8>().prop_map(RawOp::Campaign),
        5 => Just(RawOp::Stabilize),
        4 => any::<u8>().prop_map(RawOp::ProcessReady),
        3 => Just(RawOp::DeliverAll),
        3 => any::<u8>().prop_map(RawOp::DeliverTo),
        8 => any::<u16>().prop_map(RawOp::DeliverOne),
        3 => any::<u16>().prop_map(RawOp::DropOne),
        2 => any::<u16>().prop_map(RawOp::DupOne),
        1 => any::<u8>().prop_map(RawOp::DropTo),
        2 => any::<u16>().prop_map(RawOp::Partition),
        2 => Just(RawOp::Heal),
        4 => (1u8..25).prop_map(RawOp::Tick),
        1 => (any::<u8>(), 1u8..25).prop_map(|(n, t)| RawOp::TickNode(n, t)),
        3 => any::<u8>().prop_map(RawOp::Crash),
        2 => any::<u8>().prop_map(RawOp::LoseUnsynced),
        2 => (any::<u8>(), any::<u64>()).prop_map(|(n, m)| RawOp::Tear(n, m)),
        5 => any::<u8>().prop_map(RawOp::Restart),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    voters: u64,
    learners: u64,
    pre_vote: bool,
    check_quorum: bool,
    segment_size: u64,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        1u64..=7,
        prop::bool::weighted(0.25),
        any::<bool>(),
        prop::bool::weighted(0.3),
        prop::sample::select(vec![4096u64, 8192, 65536]),
    )
        .prop_map(
            |(voters, learner, pre_vote, check_quorum, segment_size)| Shape {
                voters,
                learners: u64::from(learner && voters < 7),
                pre_vote,
                check_quorum,
                segment_size,
            },
        )
}

fn build(inject: Option<Inject>, shape: Shape, ops: &[RawOp]) -> Case {
    let total = shape.voters + shape.learners;
    // Conf changes may add up to two nodes beyond the initial ones (ids up to 9).
    let max_id = (total + 2).min(9);
    let node = |sel: u8| 1 + u64::from(sel) % total;
    let any_id = |sel: u8| 1 + u64::from(sel) % max_id;
    let mut commands = Vec::with_capacity(ops.len() + 3);
    // Request ids are handed out in order; transactions compare against an earlier one.
    let mut proposals = 0u64;
    if let Some(bug) = inject {
        commands.push(Command::Inject(bug));
    }
    commands.push(Command::AddNodes {
        voters: shape.voters,
        learners: shape.learners,
        pre_vote: shape.pre_vote,
        check_quorum: shape.check_quorum,
        segment_size: Some(shape.segment_size),
    });
    for op in ops {
        let command = match op {
            RawOp::Propose {
                node: sel,
                kind,
                key,
                arg,
            } => {
                proposals += 1;
                let earlier = 1 + u64::from(*arg) % proposals;
                let kind = match kind {
                    0..=5 => OpKind::Put,
                    6..=8 => OpKind::Get,
                    9 => OpKind::Delete,
                    10 => OpKind::Cas(None),
                    11 | 12 => OpKind::Cas(Some(earlier)),
                    _ if arg % 2 == 0 => OpKind::LeaseGrant,
                    _ => OpKind::LeaseRevoke(earlier),
                };
                let key = if kind.is_key_op() {
                    format!("k{key}")
                } else {
                    String::new()
                };
                Command::Propose {
                    target: sel.map_or(Target::Leader, |s| Target::Node(node(s))),
                    kind,
                    key,
                }
            }
            RawOp::Leave => Command::ProposeConfChange {
                target: Target::Leader,
                spec: ConfSpec {
                    v1: false,
                    transition: Transition::Auto,
                    changes: Vec::new(),
                },
            },
            RawOp::PromoteInitialLearner(v1) => Command::ProposeConfChange {
                target: Target::Leader,
                spec: ConfSpec {
                    v1: *v1,
                    transition: Transition::Auto,
                    changes: vec![(ChangeOp::Voter, total)],
                },
            },
            RawOp::Conf {
                v1,
                transition,
                leave,
                changes,
            } => {
                let mut changes: Vec<(ChangeOp, u64)> = changes
                    .iter()
                    .map(|(op, sel)| {
                        let op = match op {
                            0 => ChangeOp::Voter,
                            1 => ChangeOp::Learner,
                            _ => ChangeOp::Remove,
                        };
                        (op, any_id(*sel))
                    })
                    .collect();
                let mut seen = std::collections::BTreeSet::new();
                changes.retain(|(_, id)| seen.insert(*id));
                let spec = if *v1 {
                    changes.truncate(1);
                    ConfSpec {
                        v1: true,
                        transition: Transition::Auto,
                        changes,
                    }
                } else {
                    ConfSpec {
                        v1: false,
                        transition: match transition {
                            _ if *leave => Transition::Auto,
                            0 => Transition::Auto,
                            1 => Transition::Implicit,
                            _ => Transition::Explicit,
                        },
                        changes: if *leave { Vec::new() } else { changes },
                    }
                };
                Command::ProposeConfChange {
                    target: Target::Leader,
                    spec,
                }
            }
            RawOp::Campaign(s) => Command::Campaign(node(*s)),
            RawOp::Stabilize => Command::Stabilize,
            RawOp::ProcessReady(s) => Command::ProcessReady(Some(any_id(*s))),
            RawOp::DeliverAll => Command::DeliverMsgs {
                from: None,
                to: None,
            },
            RawOp::DeliverTo(s) => Command::DeliverMsgs {
                from: None,
                to: Some(any_id(*s)),
            },
            RawOp::DeliverOne(k) => Command::DeliverOne(u64::from(*k)),
            RawOp::DropOne(k) => Command::DropOne(u64::from(*k)),
            RawOp::DupOne(k) => Command::DupOne(u64::from(*k)),
            RawOp::DropTo(s) => Command::DropMsgs {
                from: None,
                to: Some(any_id(*s)),
            },
            RawOp::Partition(mask) => {
                let (a, b): (Vec<u64>, Vec<u64>) =
                    (1..=max_id).partition(|id| mask & (1 << (id - 1)) != 0);
                if a.is_empty() || b.is_empty() {
                    Command::Heal
                } else {
                    Command::Partition(vec![a, b])
                }
            }
            RawOp::Heal => Command::Heal,
            RawOp::Tick(t) => Command::Tick {
                times: u32::from(*t),
                node: None,
            },
            RawOp::TickNode(s, t) => Command::Tick {
                times: u32::from(*t),
                node: Some(any_id(*s)),
            },
            RawOp::Crash(s) => Command::Crash(any_id(*s)),
            RawOp::LoseUnsynced(s) => Command::LoseUnsynced(any_id(*s)),
            RawOp::Tear(s, mask) => Command::Tear(any_id(*s), *mask),
            RawOp::Restart(s) => Command::Restart(any_id(*s)),
        };
        commands.push(command);
    }
    commands.push(Command::Check);
    Case { commands }
}

/// Every generated scenario: a cluster shape and 5–80 operations, then `check`.
pub fn case_strategy(inject: Option<Inject>) -> impl Strategy<Value = Case> {
    (shape(), prop::collection::vec(raw_op(), 5..80))
        .prop_map(move |(shape, ops)| build(inject, shape, &ops))
}

/// What running a case showed.
pub struct CaseRun {
    pub holds: bool,
    pub failures: Vec<String>,
    pub stats: super::cluster::Stats,
}

pub fn run_case(case: &Case) -> CaseRun {
    let mut runner = Runner::new();
    for command in &case.commands {
        runner.exec(command);
    }
    let failures: Vec<String> = runner
        .verdicts
        .iter()
        .flat_map(|v| v.failures.iter().cloned())
        .collect();
    CaseRun {
        holds: runner.holds(),
        failures,
        stats: runner.sim.map(|s| s.stats).unwrap_or_default(),
    }
}

fn case_rng(seed: u64, case: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut x = seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in bytes.chunks_mut(8) {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// The value tree of case `case` of `seed`.
pub fn case_tree(seed: u64, case: u64, inject: Option<Inject>) -> impl ValueTree<Value = Case> {
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, case_rng(seed, case));
    case_strategy(inject)
        .new_tree(&mut runner)
        .expect("the strategy never rejects")
}

/// Shrinks a failing case: proptest's simplify/complicate walk, then dropping single commands
/// while the case still fails. Bounded by `budget` runs.
pub fn shrink(tree: &mut impl ValueTree<Value = Case>, budget: usize) -> Case {
    let mut best = tree.current();
    let mut runs = 0;
    if tree.simplify() {
        while runs < budget {
            runs += 1;
            let candidate = tree.current();
            if !run_case(&candidate).holds {
                best = candidate;
                if !tree.simplify() {
                    break;
                }
            } else if !tree.complicate() {
                break;
            }
        }
    }
    minimize_commands(best, budget.saturating_sub(runs))
}

/// Removes commands one at a time (never `inject`, `add-nodes` or the final `check`) while the
/// case keeps failing.
pub fn minimize_commands(mut case: Case, mut budget: usize) -> Case {
    loop {
        let mut changed = false;
        let mut i = case.commands.len();
        while i > 0 && budget > 0 {
            i -= 1;
            if matches!(
                case.commands[i],
                Command::Inject(_) | Command::AddNodes { .. } | Command::Check
            ) {
                continue;
            }
            let mut candidate = case.clone();
            candidate.commands.remove(i);
            budget -= 1;
            if !run_case(&candidate).holds {
                case = candidate;
                changed = true;
            }
        }
        if !changed || budget == 0 {
            return case;
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub cases: u64,
    pub elapsed: Duration,
    pub faults: std::collections::BTreeMap<&'static str, u64>,
    pub transitions: std::collections::BTreeMap<&'static str, u64>,
    pub proposals: u64,
    pub acked: u64,
    /// Cases whose cluster did not converge at the end (liveness after lost data).
    pub stuck: u64,
    /// The first failing case: its number, failures, and the shrunk scenario.
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub case: u64,
    pub failures: Vec<String>,
    pub original_commands: usize,
    pub shrunk: Case,
    pub shrunk_failures: Vec<String>,
    pub script: String,
}

impl Summary {
    fn add(&mut self, stats: &super::cluster::Stats) {
        self.cases += 1;
        for (k, v) in &stats.faults {
            *self.faults.entry(k).or_default() += v;
        }
        for (k, v) in &stats.transitions {
            *self.transitions.entry(k).or_default() += v;
        }
        self.proposals += stats.proposals;
        self.acked += stats.acked;
        self.stuck += u64::from(stats.stuck > 0);
    }
}

/// Runs cases `cases` (case numbers: `0..N` for a whole run, a shard's block of it) of `seed`
/// on `jobs` threads; stops at the first failing case (the lowest-numbered, whatever the thread
/// count), shrinks it and renders its scenario file.
pub fn run_cases(
    cases: std::ops::Range<u64>,
    seed: u64,
    inject: Option<Inject>,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Summary {
    let start = Instant::now();
    let next = AtomicU64::new(cases.start);
    let first_failure = AtomicU64::new(u64::MAX);
    let results: Mutex<Vec<(u64, super::cluster::Stats)>> = Mutex::new(Vec::new());
    let failing: Mutex<Option<(u64, Vec<String>)>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= cases.end || i > first_failure.load(Ordering::SeqCst) {
                    return;
                }
                let tree = case_tree(seed, i, inject);
                let run = run_case(&tree.current());
                results.lock().unwrap().push((i, run.stats));
                progress(i);
                if !run.holds {
                    let previous = first_failure.fetch_min(i, Ordering::SeqCst);
                    if i < previous {
                        *failing.lock().unwrap() = Some((i, run.failures));
                    }
                }
            });
        }
    });
    let limit = first_failure.load(Ordering::SeqCst);
    let mut summary = Summary::default();
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    for (i, stats) in &results {
        if *i <= limit {
            summary.add(stats);
        }
    }
    if let Some((case, failures)) = failing.into_inner().unwrap() {
        let mut tree = case_tree(seed, case, inject);
        let original_commands = tree.current().commands.len();
        let shrunk = shrink(&mut tree, 2000);
        let header = vec![
            format!(
                "# Found by `raft-replay sim --seed {seed}{}` at case {case}; shrunk from {original_commands} to {} commands.",
                inject.map(|b| format!(" --inject {}", b.name())).unwrap_or_default(),
                shrunk.commands.len()
            ),
            format!("# First failure of the original case: {}", failures.first().cloned().unwrap_or_default().replace('\n', " | ")),
        ];
        let (script, runner) = script_from_commands(&header, &shrunk.commands);
        let shrunk_failures = runner
            .verdicts
            .iter()
            .flat_map(|v| v.failures.iter().cloned())
            .collect();
        summary.failure = Some(Failure {
            case,
            failures,
            original_commands,
            shrunk,
            shrunk_failures,
            script,
        });
    }
    summary.elapsed = start.elapsed();
    summary
}

/// Where a failure's scenario file goes: `DIR/sim-<seed>-case<N>[-<bug>].txt`.
pub fn scenario_path(dir: &Path, seed: u64, case: u64, inject: Option<Inject>) -> PathBuf {
    let bug = inject.map(|b| format!("-{}", b.name())).unwrap_or_default();
    dir.join(format!("sim-{seed}-case{case}{bug}.txt"))
}
