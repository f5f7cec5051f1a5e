//! `raft-replay profile` (being built; see its issue).

pub fn not_yet() -> i32 {
    super::not_yet("profile")
}
