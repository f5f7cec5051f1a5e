//! Re-executing a member's log batch by batch as a follower (filled in below).
