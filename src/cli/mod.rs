//! The `raft-replay` command line. Exit codes: 0 everything holds, 1 findings, 2 cannot run.
//! JSON goes to stdout; progress and logs to stderr.

mod crash;
mod db;
mod dump;
mod gate;
mod hashkv;
mod pack;
mod profile;
mod sim;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FINDINGS: i32 = 1;
pub const EXIT_CANNOT_RUN: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "raft-replay",
    version,
    about = "Did Raft's safety hold? Decode, replay and check etcd WAL data."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a member's log as etcd's ReadAll resolves it.
    Dump {
        /// An etcd data dir, its member/ dir, or a wal/ dir.
        path: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Counts, index range, last HardState and segments, without decoding payloads.
        #[arg(long)]
        summary: bool,
        /// Continue past CRC errors and unreadable records, listing every one.
        #[arg(long)]
        forensic: bool,
    },
    /// Read etcd's backend db (bbolt) read-only: metas, pages, schema, the KV model as etcd
    /// restores it, HashKV and `snapshot status`; damage is reported, never a crash.
    Db {
        /// A data dir, its member/ dir, the db file, or an `etcdctl snapshot save` file.
        path: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// The revision to hash at (default: the current revision).
        #[arg(long)]
        rev: Option<i64>,
        /// The etcd release whose restore/HashKV rules to follow (default 3.4.23).
        #[arg(long)]
        etcd_version: Option<String>,
    },
    /// Check one or more members (of one cluster) and report findings.
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// List every bad record instead of stopping at the first, as etcd does.
        #[arg(long)]
        forensic: bool,
        /// Members verified at once (default: one per core); the output is the same for any N.
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        jobs: usize,
    },
    /// HashKV of the state after applying through a raft index.
    Hashkv {
        path: PathBuf,
        #[arg(long)]
        index: Option<u64>,
        #[arg(long)]
        rev: Option<i64>,
    },
    /// Pack one cluster's members (read only, also while etcd runs) into a capture directory in
    /// the corpus layout: data.tar.gz, manifest.json (verify/hashkv/db per member), README.md.
    Pack {
        /// Every member's data dir (or member/ or wal/ dir) of one cluster.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The capture directory to create (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Replace every value by pseudo-random bytes of the same length (keys kept).
        #[arg(long)]
        redact: bool,
        /// With --redact: map every v3 key too, keeping its length and the keys' order.
        #[arg(long, requires = "redact")]
        redact_keys: bool,
        /// The capture's name in the manifest (default: DIR's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Enumerate the on-disk states a crash or a storage fault could leave at fsync/commit
    /// boundaries, recover each as etcd would, and classify: recovered / expected loss /
    /// refused / undetected loss / VIOLATION. Several PATHs: one cluster, up to f crashed.
    Crash {
        /// Every member's data dir (or member/ or wal/ dir).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Fault classes to enumerate, as letters: a fsync points, b record boundaries, c torn
        /// sectors, d lost unsynced writes, e reordered sectors, f zeroed sector, g bit flip,
        /// h .snap truncated/missing, i last segment missing.
        #[arg(long, default_value = "abcdefghi")]
        classes: String,
        /// Evaluate one state only (as printed after "reproduce:"), `MEMBER@SPEC,…` with PATHs.
        #[arg(long)]
        only: Option<String>,
        /// Lift the per-write / per-segment caps of classes c, e, f and g.
        #[arg(long)]
        exhaustive: bool,
        /// Class g also flips a bit of each record's type, which etcd's CRC does not cover.
        #[arg(long)]
        flip_unprotected: bool,
        /// Real-path cross-checks of the prefix model per member.
        #[arg(long, default_value_t = 32)]
        cross_checks: usize,
        /// Skip the KV (HashKV) replay at the cross-check points.
        #[arg(long)]
        no_kv: bool,
        /// Cluster mode: crash at most this many members together (default f).
        #[arg(long)]
        max_crashed: Option<usize>,
        /// Undetected losses (storage faults etcd cannot detect) fail the run too.
        #[arg(long)]
        strict: bool,
    },
    /// Simulate clusters under failure scenarios (generated, shrunk on failure).
    Sim(sim::Args),
    /// Profile decode + replay + checks into flame graphs.
    Profile(profile::Args),
    /// Gate a cluster upgrade: can etcd TARGET start from this data, do the invariants hold, do
    /// the members' HashKV agree, and what changed since a baseline.
    Gate {
        /// Every member's data dir (or member/ or wal/ dir) of one cluster.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The etcd release to upgrade to, e.g. 3.5 or 3.6.1.
        #[arg(long)]
        target: String,
        /// A baseline lock file (from --write-baseline) to diff against: any change fails.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Write this run's baseline lock file here.
        #[arg(long)]
        write_baseline: Option<PathBuf>,
        /// Also write the report as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// etcd 3.6's --max-learners the upgraded members will run with.
        #[arg(long, default_value_t = 1)]
        max_learners: usize,
        /// Rehearse the upgrade on this etcd binary: each member's copy (in a temporary dir) is
        /// booted alone with --force-new-cluster on loopback ports; it must serve the replay's
        /// HashKV.
        #[arg(long, value_name = "ETCD")]
        rehearse: Option<PathBuf>,
        /// How long a rehearsed member may take until it serves.
        #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
        rehearse_timeout: f64,
    },
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_CANNOT_RUN
            } else {
                EXIT_OK
            };
            let _ = e.print();
            return code;
        }
    };
    run(cli)
}

pub fn run(cli: Cli) -> i32 {
    let fs = raft_replay::fsio::RealFs;
    match cli.command {
        Command::Dump {
            path,
            format,
            summary,
            forensic,
        } => dump::run(&fs, &path, format, summary, forensic),
        Command::Verify {
            paths,
            format,
            forensic,
            jobs,
        } => verify::run(&fs, &paths, format, forensic, jobs),
        Command::Db {
            path,
            format,
            rev,
            etcd_version,
        } => db::run(&fs, &path, format, rev, etcd_version.as_deref()),
        Command::Hashkv { path, index, rev } => hashkv::run(&fs, &path, index, rev),
        Command::Pack {
            paths,
            out,
            redact,
            redact_keys,
            name,
        } => pack::run(&fs, &paths, &out, redact, redact_keys, name),
        Command::Crash {
            paths,
            format,
            classes,
            only,
            exhaustive,
            flip_unprotected,
            cross_checks,
            no_kv,
            max_crashed,
            strict,
        } => crash::run(
            &fs,
            &paths,
            format,
            crash::Args {
                classes,
                only,
                exhaustive,
                flip_unprotected,
                cross_checks,
                kv: !no_kv,
                max_crashed,
                strict,
            },
        ),
        Command::Sim(args) => sim::run(args),
        Command::Profile(args) => profile::run(&fs, args),
        Command::Gate {
            paths,
            target,
            baseline,
            write_baseline,
            junit,
            format,
            max_learners,
            rehearse,
            rehearse_timeout,
        } => gate::run(
            &fs,
            gate::GateArgs {
                paths: &paths,
                target: &target,
                baseline: baseline.as_deref(),
                write_baseline: write_baseline.as_deref(),
                junit: junit.as_deref(),
                format,
                max_learners,
                rehearse: rehearse.as_deref(),
                rehearse_timeout,
            },
        ),
    }
}

/// Write to stdout, treating a closed pipe (`| head`) as the end rather than a panic.
pub(crate) fn out(text: &str) -> bool {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes()).is_ok()
}
