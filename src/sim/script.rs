//! Scenario files: a line-oriented, datadriven-style format (etcd-io/raft's interaction tests,
//! the crates.io `datadriven` layout): a command line, `----`, the expected output, a blank line.
//! Lines starting with `#` before a command are comments. `RAFT_REPLAY_REWRITE=1` (or
//! `REWRITE=1`) rewrites the expected output instead of comparing.
//!
//! Commands:
//!
//! ```text
//! inject <bug>                                  (first, before add-nodes)
//! add-nodes <voters> [learners=N] [prevote=true] [checkquorum=true] [segment-size=BYTES]
//! campaign <id>
//! propose <id|leader> put|get|delete <key>
//! propose-conf-change <id|leader> v1 <vN|lN|rN>
//! propose-conf-change <id|leader> v2 [transition=auto|implicit|explicit] <vN|lN|rN>...
//! propose-conf-change <id|leader> v2 leave
//! process-ready <id|all>
//! stabilize
//! deliver-msgs [from=ID] [to=ID]     drop-msgs [from=ID] [to=ID]
//! deliver-one K    drop-one K    dup-one K       (K-th message in flight, modulo their number)
//! partition 1,2 3,4,5    heal
//! tick N [node=ID]
//! crash <id>    lose-unsynced <id>    tear <id> <sector mask, hex>    restart <id>
//! raft-state    history
//! check                                         (heal, restart all, converge, every check)
//! ```

use std::fmt;

use super::cluster::{ChangeOp, ConfSpec, Inject, Options, Sim, Target, Transition};
use super::disk::CrashMode;
use super::history::OpKind;
use super::verdict::Verdict;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Inject(Inject),
    AddNodes {
        voters: u64,
        learners: u64,
        pre_vote: bool,
        check_quorum: bool,
        segment_size: Option<u64>,
    },
    Campaign(u64),
    Propose {
        target: Target,
        kind: OpKind,
        key: String,
    },
    ProposeConfChange {
        target: Target,
        spec: ConfSpec,
    },
    ProcessReady(Option<u64>),
    Stabilize,
    DeliverMsgs {
        from: Option<u64>,
        to: Option<u64>,
    },
    DropMsgs {
        from: Option<u64>,
        to: Option<u64>,
    },
    DeliverOne(u64),
    DropOne(u64),
    DupOne(u64),
    Partition(Vec<Vec<u64>>),
    Heal,
    Tick {
        times: u32,
        node: Option<u64>,
    },
    Crash(u64),
    LoseUnsynced(u64),
    Tear(u64, u64),
    Restart(u64),
    RaftState,
    /// Every client request and what its client saw.
    History,
    Check,
}

fn target_str(t: &Target) -> String {
    match t {
        Target::Node(id) => id.to_string(),
        Target::Leader => "leader".into(),
    }
}

fn change_str(op: ChangeOp, id: u64) -> String {
    match op {
        ChangeOp::Voter => format!("v{id}"),
        ChangeOp::Learner => format!("l{id}"),
        ChangeOp::Remove => format!("r{id}"),
    }
}

fn filter_str(from: &Option<u64>, to: &Option<u64>) -> String {
    let mut s = String::new();
    if let Some(f) = from {
        s.push_str(&format!(" from={f}"));
    }
    if let Some(t) = to {
        s.push_str(&format!(" to={t}"));
    }
    s
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Inject(bug) => write!(f, "inject {}", bug.name()),
            Command::AddNodes {
                voters,
                learners,
                pre_vote,
                check_quorum,
                segment_size,
            } => {
                write!(f, "add-nodes {voters}")?;
                if *learners > 0 {
                    write!(f, " learners={learners}")?;
                }
                if *pre_vote {
                    write!(f, " prevote=true")?;
                }
                if *check_quorum {
                    write!(f, " checkquorum=true")?;
                }
                if let Some(s) = segment_size {
                    write!(f, " segment-size={s}")?;
                }
                Ok(())
            }
            Command::Campaign(id) => write!(f, "campaign {id}"),
            Command::Propose { target, kind, key } => {
                let target = target_str(target);
                match kind {
                    OpKind::Put => write!(f, "propose {target} put {key}"),
                    OpKind::Get => write!(f, "propose {target} get {key}"),
                    OpKind::Delete => write!(f, "propose {target} delete {key}"),
                    OpKind::Cas(None) => write!(f, "propose {target} cas {key} none"),
                    OpKind::Cas(Some(v)) => write!(f, "propose {target} cas {key} v{v}"),
                    OpKind::LeaseGrant => write!(f, "propose {target} lease-grant"),
                    OpKind::LeaseRevoke(id) => write!(f, "propose {target} lease-revoke {id}"),
                }
            }
            Command::ProposeConfChange { target, spec } => {
                write!(f, "propose-conf-change {}", target_str(target))?;
                if spec.v1 {
                    write!(f, " v1")?;
                } else {
                    write!(f, " v2")?;
                    match spec.transition {
                        Transition::Auto => {}
                        Transition::Implicit => write!(f, " transition=implicit")?,
                        Transition::Explicit => write!(f, " transition=explicit")?,
                    }
                    if spec.changes.is_empty() {
                        write!(f, " leave")?;
                    }
                }
                for (op, id) in &spec.changes {
                    write!(f, " {}", change_str(*op, *id))?;
                }
                Ok(())
            }
            Command::ProcessReady(None) => write!(f, "process-ready all"),
            Command::ProcessReady(Some(id)) => write!(f, "process-ready {id}"),
            Command::Stabilize => write!(f, "stabilize"),
            Command::DeliverMsgs { from, to } => {
                write!(f, "deliver-msgs{}", filter_str(from, to))
            }
            Command::DropMsgs { from, to } => write!(f, "drop-msgs{}", filter_str(from, to)),
            Command::DeliverOne(k) => write!(f, "deliver-one {k}"),
            Command::DropOne(k) => write!(f, "drop-one {k}"),
            Command::DupOne(k) => write!(f, "dup-one {k}"),
            Command::Partition(groups) => {
                write!(f, "partition")?;
                for g in groups {
                    let ids: Vec<String> = g.iter().map(|i| i.to_string()).collect();
                    write!(f, " {}", ids.join(","))?;
                }
                Ok(())
            }
            Command::Heal => write!(f, "heal"),
            Command::Tick { times, node } => {
                write!(f, "tick {times}")?;
                if let Some(n) = node {
                    write!(f, " node={n}")?;
                }
                Ok(())
            }
            Command::Crash(id) => write!(f, "crash {id}"),
            Command::LoseUnsynced(id) => write!(f, "lose-unsynced {id}"),
            Command::Tear(id, mask) => write!(f, "tear {id} {mask:x}"),
            Command::Restart(id) => write!(f, "restart {id}"),
            Command::RaftState => write!(f, "raft-state"),
            Command::History => write!(f, "history"),
            Command::Check => write!(f, "check"),
        }
    }
}

fn parse_id(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .ok()
        .filter(|id| (1..=64).contains(id))
        .ok_or_else(|| format!("bad node id {s:?}"))
}

fn parse_target(s: &str) -> Result<Target, String> {
    if s == "leader" {
        Ok(Target::Leader)
    } else {
        parse_id(s).map(Target::Node)
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("bad boolean {s:?}")),
    }
}

fn parse_change(s: &str) -> Result<(ChangeOp, u64), String> {
    let (op, id) = s.split_at(1);
    let op = match op {
        "v" => ChangeOp::Voter,
        "l" => ChangeOp::Learner,
        "r" => ChangeOp::Remove,
        _ => return Err(format!("bad change {s:?} (vN, lN or rN)")),
    };
    Ok((op, parse_id(id)?))
}

fn parse_filter(args: &[&str]) -> Result<(Option<u64>, Option<u64>), String> {
    let (mut from, mut to) = (None, None);
    for a in args {
        match a.split_once('=') {
            Some(("from", v)) => from = Some(parse_id(v)?),
            Some(("to", v)) => to = Some(parse_id(v)?),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    Ok((from, to))
}

fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("bad number {s:?}"))
}

impl std::str::FromStr for Command {
    type Err = String;

    fn from_str(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            return Err("empty command".into());
        };
        let one = |args: &[&str]| -> Result<u64, String> {
            match args {
                [id] => parse_id(id),
                _ => Err(format!("{name} takes one node id")),
            }
        };
        Ok(match name {
            "inject" => match args {
                [bug] => Command::Inject(
                    Inject::parse(bug).ok_or_else(|| format!("unknown bug {bug:?}"))?,
                ),
                _ => return Err("inject takes one bug name".into()),
            },
            "add-nodes" => {
                let Some((n, rest)) = args.split_first() else {
                    return Err("add-nodes needs a voter count".into());
                };
                let voters = parse_u64(n)?;
                let (mut learners, mut pre_vote, mut check_quorum, mut segment_size) =
                    (0, false, false, None);
                for a in rest {
                    match a.split_once('=') {
                        Some(("learners", v)) => learners = parse_u64(v)?,
                        Some(("prevote", v)) => pre_vote = parse_bool(v)?,
                        Some(("checkquorum", v)) => check_quorum = parse_bool(v)?,
                        Some(("segment-size", v)) => segment_size = Some(parse_u64(v)?),
                        _ => return Err(format!("unexpected argument {a:?}")),
                    }
                }
                if voters == 0 || voters + learners > 9 {
                    return Err("1 to 9 nodes".into());
                }
                Command::AddNodes {
                    voters,
                    learners,
                    pre_vote,
                    check_quorum,
                    segment_size,
                }
            }
            "campaign" => Command::Campaign(one(args)?),
            "propose" => {
                let usage = "propose <id|leader> put|get|delete <key> | cas <key> none|vN | lease-grant | lease-revoke <id>";
                let [target, kind, rest @ ..] = args else {
                    return Err(usage.into());
                };
                let target = parse_target(target)?;
                let (kind, key) = match (*kind, rest) {
                    ("put", [key]) => (OpKind::Put, key.to_string()),
                    ("get", [key]) => (OpKind::Get, key.to_string()),
                    ("delete", [key]) => (OpKind::Delete, key.to_string()),
                    ("cas", [key, expected]) => {
                        let expected = match *expected {
                            "none" => None,
                            v => Some(
                                v.strip_prefix('v')
                                    .and_then(|n| n.parse().ok())
                                    .ok_or_else(|| format!("bad expected value {v:?}"))?,
                            ),
                        };
                        (OpKind::Cas(expected), key.to_string())
                    }
                    ("lease-grant", []) => (OpKind::LeaseGrant, String::new()),
                    ("lease-revoke", [id]) => (OpKind::LeaseRevoke(parse_u64(id)?), String::new()),
                    _ => return Err(usage.into()),
                };
                Command::Propose { target, kind, key }
            }
            "propose-conf-change" => {
                let [target, version, rest @ ..] = args else {
                    return Err("propose-conf-change <id|leader> v1|v2 ...".into());
                };
                let target = parse_target(target)?;
                let v1 = match *version {
                    "v1" => true,
                    "v2" => false,
                    _ => return Err(format!("bad version {version:?}")),
                };
                let mut transition = Transition::Auto;
                let mut changes = Vec::new();
                let mut leave = false;
                for a in rest {
                    match a.split_once('=') {
                        Some(("transition", v)) => {
                            transition = match v {
                                "auto" => Transition::Auto,
                                "implicit" => Transition::Implicit,
                                "explicit" => Transition::Explicit,
                                _ => return Err(format!("bad transition {v:?}")),
                            }
                        }
                        Some(_) => return Err(format!("unexpected argument {a:?}")),
                        None if *a == "leave" => leave = true,
                        None => changes.push(parse_change(a)?),
                    }
                }
                if v1 && (changes.len() != 1 || transition != Transition::Auto) {
                    return Err("v1 takes exactly one change and no transition".into());
                }
                if !v1 && leave != changes.is_empty() {
                    return Err("v2 takes changes, or `leave`".into());
                }
                Command::ProposeConfChange {
                    target,
                    spec: ConfSpec {
                        v1,
                        transition,
                        changes,
                    },
                }
            }
            "process-ready" => match args {
                ["all"] => Command::ProcessReady(None),
                [id] => Command::ProcessReady(Some(parse_id(id)?)),
                _ => return Err("process-ready <id|all>".into()),
            },
            "stabilize" => Command::Stabilize,
            "deliver-msgs" => {
                let (from, to) = parse_filter(args)?;
                Command::DeliverMsgs { from, to }
            }
            "drop-msgs" => {
                let (from, to) = parse_filter(args)?;
                Command::DropMsgs { from, to }
            }
            "deliver-one" | "drop-one" | "dup-one" => {
                let [k] = args else {
                    return Err(format!("{name} <k>"));
                };
                let k = parse_u64(k)?;
                match name {
                    "deliver-one" => Command::DeliverOne(k),
                    "drop-one" => Command::DropOne(k),
                    _ => Command::DupOne(k),
                }
            }
            "partition" => {
                let mut groups = Vec::new();
                for g in args {
                    groups.push(
                        g.split(',')
                            .map(parse_id)
                            .collect::<Result<Vec<u64>, String>>()?,
                    );
                }
                Command::Partition(groups)
            }
            "heal" => Command::Heal,
            "tick" => {
                let Some((n, rest)) = args.split_first() else {
                    return Err("tick <n> [node=ID]".into());
                };
                let times = parse_u64(n)? as u32;
                let mut node = None;
                for a in rest {
                    match a.split_once('=') {
                        Some(("node", v)) => node = Some(parse_id(v)?),
                        _ => return Err(format!("unexpected argument {a:?}")),
                    }
                }
                Command::Tick { times, node }
            }
            "crash" => Command::Crash(one(args)?),
            "lose-unsynced" => Command::LoseUnsynced(one(args)?),
            "tear" => match args {
                [id, mask] => Command::Tear(
                    parse_id(id)?,
                    u64::from_str_radix(mask, 16).map_err(|_| format!("bad mask {mask:?}"))?,
                ),
                _ => return Err("tear <id> <hex mask>".into()),
            },
            "restart" => Command::Restart(one(args)?),
            "raft-state" => Command::RaftState,
            "history" => Command::History,
            "check" => Command::Check,
            other => return Err(format!("unknown command {other:?}")),
        })
    }
}

/// A scenario being run: the cluster (once created) and every verdict `check` produced.
pub struct Runner {
    pub sim: Option<Sim>,
    inject: Option<Inject>,
    pub verdicts: Vec<Verdict>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new()
    }
}

impl Runner {
    pub fn new() -> Runner {
        Runner {
            sim: None,
            inject: None,
            verdicts: Vec::new(),
        }
    }

    pub fn inject(&self) -> Option<Inject> {
        self.inject
    }

    /// Runs one command; the output is what a scenario file expects after `----`.
    pub fn exec(&mut self, command: &Command) -> String {
        let out = crate::replay::run_guarded(|| self.exec_inner(command));
        match out {
            Ok(s) => s,
            Err(panic) => {
                let message = format!("raft-rs panicked: {panic}");
                if let Some(sim) = self.sim.as_mut() {
                    sim.findings.push(super::cluster::SimFinding {
                        kind: "sim.raft_panic",
                        message: message.clone(),
                    });
                }
                message
            }
        }
    }

    fn exec_inner(&mut self, command: &Command) -> String {
        if let Command::Inject(bug) = command {
            if self.sim.is_some() {
                return "inject must come before add-nodes".into();
            }
            self.inject = Some(*bug);
            return format!("injected bug: {}", bug.name());
        }
        if let Command::AddNodes {
            voters,
            learners,
            pre_vote,
            check_quorum,
            segment_size,
        } = command
        {
            if self.sim.is_some() {
                return "the cluster already exists".into();
            }
            let mut options = Options {
                pre_vote: *pre_vote,
                check_quorum: *check_quorum,
                ..Options::default()
            };
            if let Some(s) = segment_size {
                options.segment_size = (*s).max(4096);
            }
            let mut sim = Sim::new(options, self.inject);
            if let Err(e) = sim.bootstrap(*voters, *learners) {
                return e;
            }
            let out = sim.state_lines();
            self.sim = Some(sim);
            return out;
        }
        let Some(sim) = self.sim.as_mut() else {
            return "no cluster yet (add-nodes first)".into();
        };
        if let Some(why) = &sim.halted {
            if !matches!(
                command,
                Command::Check | Command::RaftState | Command::History
            ) {
                return format!("halted: {}", why.lines().next().unwrap_or_default());
            }
        }
        let exists = |sim: &Sim, id: u64| sim.nodes.contains_key(&id);
        match command {
            Command::Inject(_) | Command::AddNodes { .. } => unreachable!(),
            Command::Campaign(id) => {
                if !exists(sim, *id) {
                    return format!("n{id}: no such node");
                }
                sim.clock += 1;
                sim.campaign(*id)
            }
            Command::Propose { target, kind, key } => sim.propose(*target, *kind, key),
            Command::ProposeConfChange { target, spec } => sim.propose_conf_change(*target, spec),
            Command::ProcessReady(which) => {
                let ids = match which {
                    Some(id) => vec![*id],
                    None => sim.up_ids(),
                };
                let mut handled = Vec::new();
                for id in ids {
                    if sim.process_ready(id) {
                        handled.push(format!("n{id}"));
                    }
                }
                if handled.is_empty() {
                    "no ready".into()
                } else {
                    format!("handled ready: {}", handled.join(" "))
                }
            }
            Command::Stabilize => match sim.stabilize() {
                Ok(()) => sim.state_lines(),
                Err(e) => e,
            },
            Command::DeliverMsgs { from, to } => {
                let batch = sim.net.take_matching(*from, *to);
                let total = batch.len();
                let delivered = batch.into_iter().filter(|m| sim.deliver(m.clone())).count();
                format!("delivered {delivered} of {total}")
            }
            Command::DropMsgs { from, to } => {
                let n = sim.net.take_matching(*from, *to).len();
                if n > 0 {
                    sim.fault("drop");
                }
                format!("dropped {n}")
            }
            Command::DeliverOne(k) => match sim.net.take_nth(*k) {
                Some(m) => {
                    let what = describe(&m);
                    if sim.deliver(m) {
                        format!("delivered {what}")
                    } else {
                        format!("lost {what}")
                    }
                }
                None => "nothing in flight".into(),
            },
            Command::DropOne(k) => match sim.net.take_nth(*k) {
                Some(m) => {
                    sim.fault("drop");
                    format!("dropped {}", describe(&m))
                }
                None => "nothing in flight".into(),
            },
            Command::DupOne(k) => match sim.net.duplicate_nth(*k).map(describe) {
                Some(what) => {
                    sim.fault("duplicate");
                    format!("duplicated {what}")
                }
                None => "nothing to duplicate".into(),
            },
            Command::Partition(groups) => {
                sim.net.partition(groups);
                sim.fault("partition");
                "partitioned".into()
            }
            Command::Heal => {
                sim.net.heal();
                "healed".into()
            }
            Command::Tick { times, node } => {
                sim.tick(*node, *times);
                format!("ticked {times}")
            }
            Command::Crash(id) => sim.crash(*id, CrashMode::Process),
            Command::LoseUnsynced(id) | Command::Tear(id, _) => {
                let up = sim.nodes.get(id).is_some_and(|n| n.is_up());
                if up && sim.power_lost_count() >= sim.atlas_f().max(1) {
                    return format!(
                        "n{id}: refused by the fault atlas (at most {} node(s) down with lost unsynced data at once)",
                        sim.atlas_f().max(1)
                    );
                }
                let mode = match command {
                    Command::Tear(_, mask) => CrashMode::Tear(*mask),
                    _ => CrashMode::PowerLoss,
                };
                sim.crash(*id, mode)
            }
            Command::Restart(id) => {
                if !exists(sim, *id) {
                    return format!("n{id}: no such node");
                }
                sim.clock += 1;
                sim.boot(*id)
            }
            Command::RaftState => sim.state_lines(),
            Command::History => sim.history.describe(),
            Command::Check => {
                let verdict = sim.verdict();
                let out = verdict_text(sim, &verdict);
                self.verdicts.push(verdict);
                out
            }
        }
    }

    /// Whether every `check` held (and at least one ran).
    pub fn holds(&self) -> bool {
        !self.verdicts.is_empty() && self.verdicts.iter().all(|v| v.holds())
    }
}

fn describe(m: &raft::eraftpb::Message) -> String {
    format!(
        "{}→{} {} term={}",
        m.from,
        m.to,
        super::cluster::message_type_name(m.get_msg_type()),
        m.term
    )
}

pub fn verdict_text(sim: &Sim, verdict: &Verdict) -> String {
    let mut lines = Vec::new();
    if let Some(stuck) = &verdict.stuck {
        lines.push(format!(
            "stuck (liveness, not a failure): {}",
            stuck.replace('\n', " | ")
        ));
    }
    if verdict.holds() {
        let acked = sim.history.acked().count();
        let leader = verdict
            .leader
            .map(|l| format!("leader n{l}, commit {}", verdict.commit))
            .unwrap_or_else(|| "no leader".into());
        lines.push(format!(
            "ok: {} nodes, {leader}, {} of {} requests acknowledged",
            verdict.nodes,
            acked,
            sim.history.ops.len()
        ));
    } else {
        for f in &verdict.failures {
            lines.push(format!("FAIL {}", f.replace('\n', " | ")));
        }
    }
    if !sim.stats.transitions.is_empty() {
        let t: Vec<String> = sim
            .stats
            .transitions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(format!("conf changes: {}", t.join(" ")));
    }
    lines.join("\n")
}

/// One command block of a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub comments: Vec<String>,
    pub command: String,
    pub expected: String,
    /// 1-based line of the command.
    pub line: usize,
}

pub fn parse_script(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    let mut comments = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        // A command is the line trimmed: one that trims to `#…` is a comment, or it would print
        // (`render_script`) as one.
        if line.trim_start().starts_with('#') {
            comments.push(line.to_string());
            i += 1;
            continue;
        }
        let command = line.trim().to_string();
        let at = i + 1;
        i += 1;
        if i >= lines.len() || lines[i].trim() != "----" {
            return Err(format!("line {at}: expected `----` after {command:?}"));
        }
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push(lines[i]);
            i += 1;
        }
        blocks.push(Block {
            comments: std::mem::take(&mut comments),
            command,
            expected: expected.join("\n"),
            line: at,
        });
    }
    Ok(blocks)
}

/// The text [`parse_script`] reads back as `blocks`.
pub fn render_script(blocks: &[Block]) -> String {
    let mut out = String::new();
    for (n, b) in blocks.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for c in &b.comments {
            push_line(&mut out, c);
        }
        push_line(&mut out, &b.command);
        out.push_str("----\n");
        if !b.expected.is_empty() {
            for line in b.expected.split('\n') {
                push_line(&mut out, line);
            }
        }
    }
    out
}

/// `line` and its end, as `str::lines` reads it back: that drops one `\r` before the `\n`, so a
/// line that ends in `\r` itself is ended with `\r\n`.
fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    if line.ends_with('\r') {
        out.push('\r');
    }
    out.push('\n');
}

/// The result of running a scenario file.
pub struct ScriptRun {
    /// Blocks with their actual output as `expected`.
    pub actual: Vec<Block>,
    /// (line, command, expected, actual) for every block whose output differs.
    pub mismatches: Vec<(usize, String, String, String)>,
    pub runner: Runner,
}

impl ScriptRun {
    pub fn rendered(&self) -> String {
        render_script(&self.actual)
    }
}

pub fn run_script(text: &str) -> Result<ScriptRun, String> {
    let blocks = parse_script(text)?;
    let mut runner = Runner::new();
    let mut actual = Vec::with_capacity(blocks.len());
    let mut mismatches = Vec::new();
    for b in &blocks {
        let command: Command = b
            .command
            .parse()
            .map_err(|e| format!("line {}: {e}", b.line))?;
        let out = runner.exec(&command);
        if out != b.expected {
            mismatches.push((b.line, b.command.clone(), b.expected.clone(), out.clone()));
        }
        actual.push(Block {
            expected: out,
            ..b.clone()
        });
    }
    Ok(ScriptRun {
        actual,
        mismatches,
        runner,
    })
}

/// Whether scenario files should be rewritten with the actual output.
pub fn rewrite_requested() -> bool {
    ["RAFT_REPLAY_REWRITE", "REWRITE"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0"))
}

/// A script from commands, with each block's output filled in by running it.
pub fn script_from_commands(header: &[String], commands: &[Command]) -> (String, Runner) {
    let mut runner = Runner::new();
    let mut blocks = Vec::with_capacity(commands.len());
    for (n, c) in commands.iter().enumerate() {
        let out = runner.exec(c);
        blocks.push(Block {
            comments: if n == 0 { header.to_vec() } else { Vec::new() },
            command: c.to_string(),
            expected: out,
            line: 0,
        });
    }
    (render_script(&blocks), runner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_text() {
        let lines = [
            "inject ack-before-fsync",
            "add-nodes 3 learners=1 prevote=true checkquorum=true segment-size=8192",
            "campaign 2",
            "propose leader put k1",
            "propose 3 get k2",
            "propose 2 cas k1 none",
            "propose leader cas k1 v7",
            "propose 1 lease-grant",
            "propose 1 lease-revoke 12",
            "propose-conf-change leader v1 l4",
            "propose-conf-change 1 v2 transition=explicit v4 r2",
            "propose-conf-change leader v2 leave",
            "process-ready all",
            "process-ready 2",
            "stabilize",
            "deliver-msgs from=1 to=2",
            "drop-msgs to=3",
            "deliver-one 7",
            "drop-one 0",
            "dup-one 3",
            "partition 1,2 3",
            "heal",
            "tick 5 node=2",
            "crash 1",
            "lose-unsynced 2",
            "tear 3 f0f",
            "restart 1",
            "raft-state",
            "history",
            "check",
        ];
        for line in lines {
            let c: Command = line.parse().unwrap();
            assert_eq!(c.to_string(), line);
        }
    }

    #[test]
    fn blocks_round_trip() {
        let text = "# a comment\nadd-nodes 1\n----\nn1: follower\n\ncheck\n----\nok\n";
        let blocks = parse_script(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(render_script(&blocks), text);
    }
}
