//! Replaying a member's decoded log through raft-rs 0.7, the way etcd restarts a member.
//!
//! raft-rs reports bad state by panicking, so: pre-flight checks first ([`preflight`]), then the
//! replay runs under `catch_unwind` and a panic becomes a finding, never a crash of this tool.

pub mod binary;
pub mod follower;
pub mod from_db;
pub mod kinds;
pub mod kv;
pub mod member_state;
pub mod preflight;
pub mod restart;
pub mod storage;
pub mod stream;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into `Err(message)`. The default panic message is suppressed while
/// `f` runs (on this thread only), since the panic is reported as a finding instead.
pub fn run_guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was_quiet));
    result.map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "raft-rs panicked (no message)".to_string()
        }
    })
}

/// A silent logger: raft-rs logs through slog; findings carry what matters.
pub fn discard_logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// raft-rs configuration for a replayed member. Deterministic election timeouts (min = election,
/// max = election + 1) so replays never depend on a random draw.
pub fn replay_config(id: u64, applied: u64) -> raft::Config {
    raft::Config {
        id,
        applied,
        election_tick: 10,
        min_election_tick: 10,
        max_election_tick: 11,
        heartbeat_tick: 1,
        max_size_per_msg: u64::MAX,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_panic_becomes_an_error() {
        let r: Result<(), String> = run_guarded(|| panic!("to_commit 9 is out of range"));
        assert_eq!(r.unwrap_err(), "to_commit 9 is out of range");
        assert_eq!(run_guarded(|| 7).unwrap(), 7);
    }
}
