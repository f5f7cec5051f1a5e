//! Client operations and what was acknowledged, with the two client-visible checks: no
//! acknowledged operation is lost from the final committed log, and each key's put/get/delete
//! history is linearizable (a single-register Wing–Gong search; values are unique per put).

use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Writes the value `v<request id>`.
    Put,
    Delete,
    Get,
    /// A transaction: if the key holds `v<expected>` (`None`: the key is absent), put
    /// `v<request id>`.
    Cas(Option<u64>),
    /// Lease requests touch no key: checked for durability, not for linearizability.
    LeaseGrant,
    LeaseRevoke(u64),
}

impl OpKind {
    pub fn is_key_op(self) -> bool {
        !matches!(self, OpKind::LeaseGrant | OpKind::LeaseRevoke(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Refused at once (no leader known, node down): never took effect.
    Failed,
    /// No answer: it may or may not have taken effect.
    Pending,
    Acked {
        at: u64,
        index: u64,
        /// For a get: the value id read (`None`: no such key).
        read: Option<u64>,
        /// For a transaction: whether its compare held.
        succeeded: bool,
    },
}

#[derive(Clone, Debug)]
pub struct ClientOp {
    pub id: u64,
    pub node: u64,
    pub key: String,
    pub kind: OpKind,
    pub invoke: u64,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: BTreeMap<u64, ClientOp>,
}

impl History {
    pub fn acked(&self) -> impl Iterator<Item = &ClientOp> {
        self.ops
            .values()
            .filter(|op| matches!(op.outcome, Outcome::Acked { .. }))
    }

    /// One line per request: what it was, through which node, and what its client saw.
    pub fn describe(&self) -> String {
        if self.ops.is_empty() {
            return "no requests".into();
        }
        self.ops
            .values()
            .map(|op| {
                let what = match op.kind {
                    OpKind::Put => format!("put {}=v{}", op.key, op.id),
                    OpKind::Delete => format!("delete {}", op.key),
                    OpKind::Get => format!("get {}", op.key),
                    OpKind::Cas(expected) => format!(
                        "txn if {}=={} then {}=v{}",
                        op.key,
                        expected.map_or("none".into(), |v| format!("v{v}")),
                        op.key,
                        op.id
                    ),
                    OpKind::LeaseGrant => format!("lease-grant {}", op.id),
                    OpKind::LeaseRevoke(lease) => format!("lease-revoke {lease}"),
                };
                let outcome = match &op.outcome {
                    Outcome::Failed => "refused".to_string(),
                    Outcome::Pending => "no answer".to_string(),
                    Outcome::Acked {
                        index,
                        read,
                        succeeded,
                        ..
                    } => {
                        let result = match op.kind {
                            OpKind::Get => {
                                format!(" → {}", read.map_or("(none)".into(), |v| format!("v{v}")))
                            }
                            OpKind::Cas(_) if *succeeded => " → succeeded".into(),
                            OpKind::Cas(_) => " → failed".into(),
                            _ => String::new(),
                        };
                        format!("applied at {index}{result}")
                    }
                };
                format!("r{} via n{}: {what}: {outcome}", op.id, op.node)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Keys whose history no linearization explains, with a short reason.
    pub fn non_linearizable_keys(&self) -> Vec<(String, String)> {
        let mut by_key: BTreeMap<&str, Vec<&ClientOp>> = BTreeMap::new();
        for op in self.ops.values() {
            let keep = op.kind.is_key_op()
                && !matches!(
                    (&op.outcome, op.kind),
                    (Outcome::Failed, _) | (Outcome::Pending, OpKind::Get)
                );
            if keep {
                by_key.entry(op.key.as_str()).or_default().push(op);
            }
        }
        let mut bad = Vec::new();
        for (key, ops) in by_key {
            if let Some(reason) = check_register(&ops) {
                bad.push((key.to_string(), reason));
            }
        }
        bad
    }
}

struct RegOp {
    kind: OpKind,
    value: u64,
    invoke: u64,
    /// `u64::MAX` for an operation never acknowledged.
    complete: u64,
    read: Option<u64>,
    succeeded: bool,
    acked: bool,
}

/// `None` when the history of one register is linearizable.
fn check_register(ops: &[&ClientOp]) -> Option<String> {
    if ops.len() > 63 {
        return None; // beyond the search's bitmask; never produced by the generators
    }
    let reg: Vec<RegOp> = ops
        .iter()
        .map(|op| {
            let (complete, read, succeeded, acked) = match op.outcome {
                Outcome::Acked {
                    at,
                    read,
                    succeeded,
                    ..
                } => (at, read, succeeded, true),
                _ => (u64::MAX, None, false, false),
            };
            RegOp {
                kind: op.kind,
                value: op.id,
                invoke: op.invoke,
                complete,
                read,
                succeeded,
                acked,
            }
        })
        .collect();
    let acked_mask: u64 = reg
        .iter()
        .enumerate()
        .filter(|(_, o)| o.acked)
        .fold(0, |m, (i, _)| m | (1 << i));
    let mut seen = HashSet::new();
    if search(&reg, 0, None, acked_mask, &mut seen) {
        return None;
    }
    let describe: Vec<String> = ops
        .iter()
        .map(|op| {
            let what = match op.kind {
                OpKind::Put => format!("put v{}", op.id),
                OpKind::Delete => "delete".to_string(),
                OpKind::Get => "get".to_string(),
                OpKind::Cas(expected) => format!(
                    "cas {}→v{}",
                    expected.map_or("none".into(), |v| format!("v{v}")),
                    op.id
                ),
                OpKind::LeaseGrant | OpKind::LeaseRevoke(_) => "lease".to_string(),
            };
            match &op.outcome {
                Outcome::Acked { at, read, .. } => match op.kind {
                    OpKind::Get => format!(
                        "{what}→{} [{}..{}]",
                        read.map(|v| format!("v{v}"))
                            .unwrap_or_else(|| "none".into()),
                        op.invoke,
                        at
                    ),
                    OpKind::Cas(_) => format!(
                        "{what} {} [{}..{}]",
                        if matches!(
                            op.outcome,
                            Outcome::Acked {
                                succeeded: true,
                                ..
                            }
                        ) {
                            "ok"
                        } else {
                            "failed"
                        },
                        op.invoke,
                        at
                    ),
                    _ => format!("{what} [{}..{}]", op.invoke, at),
                },
                _ => format!("{what} [{}..?]", op.invoke),
            }
        })
        .collect();
    Some(describe.join(", "))
}

fn search(
    ops: &[RegOp],
    done: u64,
    value: Option<u64>,
    acked_mask: u64,
    seen: &mut HashSet<(u64, Option<u64>)>,
) -> bool {
    if done & acked_mask == acked_mask {
        return true;
    }
    if !seen.insert((done, value)) {
        return false;
    }
    // An operation can go next only if no pending acknowledged one completed before it began.
    let horizon = ops
        .iter()
        .enumerate()
        .filter(|(i, o)| done & (1 << i) == 0 && o.acked)
        .map(|(_, o)| o.complete)
        .min()
        .unwrap_or(u64::MAX);
    for (i, op) in ops.iter().enumerate() {
        if done & (1 << i) != 0 || op.invoke > horizon {
            continue;
        }
        let next = match op.kind {
            OpKind::Get => {
                if op.read != value {
                    continue;
                }
                value
            }
            OpKind::Put => Some(op.value),
            OpKind::Delete => None,
            OpKind::Cas(expected) => {
                let holds = value == expected;
                if op.acked && op.succeeded != holds {
                    continue;
                }
                // A pending transaction whose compare fails changes nothing: same as never.
                if !op.acked && !holds {
                    continue;
                }
                if holds {
                    Some(op.value)
                } else {
                    value
                }
            }
            OpKind::LeaseGrant | OpKind::LeaseRevoke(_) => value,
        };
        if search(ops, done | (1 << i), next, acked_mask, seen) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, kind: OpKind, invoke: u64, outcome: Outcome) -> ClientOp {
        ClientOp {
            id,
            node: 1,
            key: "k".into(),
            kind,
            invoke,
            outcome,
        }
    }

    fn acked(at: u64, read: Option<u64>) -> Outcome {
        Outcome::Acked {
            at,
            index: 0,
            read,
            succeeded: false,
        }
    }

    fn cas(at: u64, succeeded: bool) -> Outcome {
        Outcome::Acked {
            at,
            index: 0,
            read: None,
            succeeded,
        }
    }

    #[test]
    fn register_histories() {
        let mut h = History::default();
        h.ops.insert(1, op(1, OpKind::Put, 1, acked(3, None)));
        h.ops.insert(2, op(2, OpKind::Get, 4, acked(5, Some(1))));
        assert!(h.non_linearizable_keys().is_empty());
        // A read after the put completed that sees nothing: not linearizable.
        h.ops.insert(3, op(3, OpKind::Get, 6, acked(7, None)));
        assert_eq!(h.non_linearizable_keys().len(), 1);
        // ...unless a concurrent delete explains it.
        h.ops.insert(4, op(4, OpKind::Delete, 5, Outcome::Pending));
        assert!(h.non_linearizable_keys().is_empty());
        // A pending put may take effect late.
        let mut h = History::default();
        h.ops.insert(1, op(1, OpKind::Put, 1, Outcome::Pending));
        h.ops.insert(2, op(2, OpKind::Get, 2, acked(3, None)));
        h.ops.insert(3, op(3, OpKind::Get, 4, acked(5, Some(1))));
        assert!(h.non_linearizable_keys().is_empty());
        h.ops.insert(4, op(4, OpKind::Get, 6, acked(7, None)));
        assert_eq!(h.non_linearizable_keys().len(), 1);
        // Transactions: a compare that held must have seen the expected value.
        let mut h = History::default();
        h.ops.insert(1, op(1, OpKind::Put, 1, acked(2, None)));
        h.ops
            .insert(2, op(2, OpKind::Cas(Some(1)), 3, cas(4, true)));
        h.ops.insert(3, op(3, OpKind::Get, 5, acked(6, Some(2))));
        assert!(h.non_linearizable_keys().is_empty());
        h.ops
            .insert(4, op(4, OpKind::Cas(Some(1)), 7, cas(8, true)));
        assert_eq!(
            h.non_linearizable_keys().len(),
            1,
            "v1 was overwritten by then"
        );
        h.ops.remove(&4);
        h.ops.insert(4, op(4, OpKind::Cas(None), 7, cas(8, false)));
        assert!(h.non_linearizable_keys().is_empty());
    }
}
