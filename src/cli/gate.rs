//! `raft-replay gate` (being built; see its issue).

pub fn not_yet() -> i32 {
    super::not_yet("gate")
}
