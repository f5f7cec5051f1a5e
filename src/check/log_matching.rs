//! Log matching across members: if two logs hold an entry with the same index and term, they
//! hold the same entries at every index before it (§5.3). Checked on each pair's overlap: below
//! the highest index where both hold the same term, terms must agree everywhere (content at
//! equal terms is [`super::election_safety`]'s entry-conflict rule). See [`super::cluster`].

pub const KIND: &str = "cluster.log_matching";
pub const REFERENCE: &str = "Raft §5.3 Log Matching Property; TLA+ LogMatchingInv";
