//! A `.snap` file, redacted: its data is a `raftpb.Snapshot` whose own data (3.4/3.5) is the v2
//! store as JSON (`v2store.Store.Save`: `{"Root":{"Path":"/","Children":{…}}}`, a node's value
//! in `"Value"`). Values under `/1` (user keys) are replaced as the WAL's v2 values are
//! ([`Redactor::text`] of the same bytes); etcd's own `/0` tree (members, cluster version) is
//! kept. The file is rewritten only when something was replaced, with `crc = crc32c(data)`
//! (`snap/snapshotter.go: save`).

use bytes::Bytes;
use prost::Message;
use serde_json::Value;

use super::{RedactError, Redactor};
use crate::proto::raftpb::Snapshot;
use crate::proto::snappb::SnapFile;

/// The redacted file, or `None` when nothing in it is a user value (the file is kept as is;
/// also for a file the snapshot reader rejects, whose findings must stay those of the original).
pub fn redact_snap(bytes: &[u8], redactor: &mut Redactor) -> Result<Option<Vec<u8>>, RedactError> {
    if redactor.collecting() {
        return Ok(None);
    }
    let Ok(mut snapshot) = crate::snap::read_snap(Bytes::copy_from_slice(bytes)) else {
        return Ok(None);
    };
    let Some(data) = snapshot.data.as_ref() else {
        return Ok(None);
    };
    let Ok(mut store) = serde_json::from_slice::<Value>(data) else {
        return Ok(None);
    };
    let mut replaced = 0;
    let user_tree = store
        .get_mut("Root")
        .and_then(|r| r.get_mut("Children"))
        .and_then(|c| c.get_mut("1"));
    if let Some(user_tree) = user_tree {
        replaced += redact_node(user_tree, redactor, 0)?;
    }
    let events = store
        .pointer_mut("/WatcherHub/EventHistory/Queue/Events")
        .and_then(Value::as_array_mut);
    for event in events.into_iter().flatten() {
        for side in ["node", "prevNode"] {
            if let Some(node) = event.get_mut(side) {
                replaced += redact_event_node(node, redactor, 0)?;
            }
        }
    }
    if replaced == 0 {
        return Ok(None);
    }
    redactor.stats.snap_values += replaced;
    let json = serde_json::to_vec(&store).map_err(|e| RedactError::Snap(e.to_string()))?;
    snapshot.data = Some(Bytes::from(json));
    Ok(Some(seal(&snapshot)))
}

/// `snappb.Snapshot{crc, data}` around a marshalled `raftpb.Snapshot`.
fn seal(snapshot: &Snapshot) -> Vec<u8> {
    let data = snapshot.encode_to_vec();
    SnapFile {
        crc: crc32c::crc32c(&data),
        data: Some(Bytes::from(data)),
    }
    .encode_to_vec()
}

/// Replaces the `"Value"` of `node` and of every node below it; returns how many.
fn redact_node(node: &mut Value, redactor: &Redactor, depth: usize) -> Result<u64, RedactError> {
    if depth > 512 {
        return Err(RedactError::Snap("v2 store nested too deep".into()));
    }
    let mut replaced = replace_text(node, "Value", redactor);
    if let Some(Value::Object(children)) = node.get_mut("Children") {
        for child in children.values_mut() {
            replaced += redact_node(child, redactor, depth + 1)?;
        }
    }
    Ok(replaced)
}

/// The watcher history's copy of a node (`v2store.NodeExtern`: `key`, `value`, `nodes`): its
/// value replaced when its key is under `/1`.
fn redact_event_node(
    node: &mut Value,
    redactor: &Redactor,
    depth: usize,
) -> Result<u64, RedactError> {
    if depth > 512 {
        return Err(RedactError::Snap("v2 store nested too deep".into()));
    }
    let user = node
        .get("key")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "/1" || k.starts_with("/1/"));
    let mut replaced = if user {
        replace_text(node, "value", redactor)
    } else {
        0
    };
    if let Some(Value::Array(nodes)) = node.get_mut("nodes") {
        for child in nodes {
            replaced += redact_event_node(child, redactor, depth + 1)?;
        }
    }
    Ok(replaced)
}

/// Replaces the non-empty string `node[field]` by [`Redactor::text`]; 1 if it did.
fn replace_text(node: &mut Value, field: &str, redactor: &Redactor) -> u64 {
    match node.get_mut(field) {
        Some(Value::String(value)) if !value.is_empty() => {
            let new = redactor.text(value.as_bytes());
            // ASCII letters and digits: always UTF-8.
            *value = String::from_utf8_lossy(&new).into_owned();
            1
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::SnapshotMetadata;

    fn snap_file(json: &str) -> Vec<u8> {
        seal(&Snapshot {
            data: Some(Bytes::from(json.to_string())),
            metadata: SnapshotMetadata::default(),
        })
    }

    #[test]
    fn user_values_change_cluster_values_stay() {
        let json = r#"{"Root":{"Path":"/","Children":{
            "0":{"Path":"/0","Children":{"version":{"Path":"/0/version","Value":"3.4.0"}}},
            "1":{"Path":"/1","Value":"","Children":{"foo":{"Path":"/1/foo","Value":"topsecret"}}}}},
            "WatcherHub":{"EventHistory":{"Queue":{"Events":[
                {"action":"set","node":{"key":"/1/foo","value":"topsecret"}},
                {"action":"set","node":{"key":"/0/version","value":"3.4.0"}}]}}}}"#;
        let mut r = Redactor::with_key([3; 32]);
        let out = redact_snap(&snap_file(json), &mut r)
            .unwrap()
            .expect("rewritten");
        let snap = crate::snap::read_snap(Bytes::from(out)).expect("valid CRC");
        let store: Value = serde_json::from_slice(snap.data.as_ref().unwrap()).unwrap();
        let foo = &store["Root"]["Children"]["1"]["Children"]["foo"]["Value"];
        assert_eq!(foo.as_str().unwrap().len(), "topsecret".len());
        assert_ne!(foo, "topsecret");
        assert_eq!(
            foo.as_str().unwrap().as_bytes(),
            &r.text(b"topsecret")[..],
            "the same bytes as the WAL's v2 value"
        );
        assert_eq!(
            store["Root"]["Children"]["0"]["Children"]["version"]["Value"],
            "3.4.0"
        );
        let events = &store["WatcherHub"]["EventHistory"]["Queue"]["Events"];
        assert_eq!(events[0]["node"]["value"], foo.clone());
        assert_eq!(events[1]["node"]["value"], "3.4.0");
        assert_eq!(r.stats.snap_values, 2);
        let only_cluster = r#"{"Root":{"Path":"/","Children":{"0":{"Path":"/0"}}}}"#;
        assert_eq!(redact_snap(&snap_file(only_cluster), &mut r).unwrap(), None);
    }
}
