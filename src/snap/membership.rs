//! Membership from the v2-store JSON inside a `.snap` (`/0/members/<hex id>/raftAttributes`,
//! `/0/removed_members/<hex id>`, `/0/version`).

use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapMembership {
    /// Member ids with their peer URLs and learner flag, sorted by id.
    pub members: Vec<SnapMember>,
    pub removed: Vec<u64>,
    pub cluster_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SnapMember {
    pub id: u64,
    pub peer_urls: Vec<String>,
    pub is_learner: bool,
    pub name: Option<String>,
}

fn children(node: &Value) -> impl Iterator<Item = (&String, &Value)> {
    node.get("Children")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter())
}

fn child<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    node.get("Children").and_then(|c| c.get(name))
}

/// Parses the v2 store JSON. Returns `None` when the data is not a v2 store.
pub fn parse_membership(data: &[u8]) -> Option<SnapMembership> {
    let store: Value = serde_json::from_slice(data).ok()?;
    let root = store.get("Root")?;
    let mut out = SnapMembership::default();
    let Some(cluster) = child(root, "0") else {
        return Some(out);
    };
    if let Some(members) = child(cluster, "members") {
        for (hex_id, node) in children(members) {
            let Ok(id) = u64::from_str_radix(hex_id, 16) else {
                continue;
            };
            let raft: Value = child(node, "raftAttributes")
                .and_then(|n| n.get("Value")?.as_str().map(str::to_owned))
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or(Value::Null);
            let attrs: Value = child(node, "attributes")
                .and_then(|n| n.get("Value")?.as_str().map(str::to_owned))
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or(Value::Null);
            let peer_urls = raft
                .get("peerURLs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let is_learner = raft
                .get("isLearner")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let name = attrs.get("name").and_then(Value::as_str).map(str::to_owned);
            out.members.push(SnapMember {
                id,
                peer_urls,
                is_learner,
                name,
            });
        }
    }
    if let Some(removed) = child(cluster, "removed_members") {
        out.removed = children(removed)
            .filter_map(|(hex_id, _)| u64::from_str_radix(hex_id, 16).ok())
            .collect();
    }
    out.cluster_version =
        child(cluster, "version").and_then(|v| v.get("Value")?.as_str().map(str::to_owned));
    out.members.sort_by_key(|m| m.id);
    out.removed.sort_unstable();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members_learners_and_removed() {
        let json = r#"{"Root":{"Path":"/","Children":{"0":{"Path":"/0","Children":{
            "members":{"Path":"/0/members","Children":{
                "8e9e05c52164694d":{"Path":"/0/members/8e9e05c52164694d","Children":{
                    "raftAttributes":{"Path":"/0/members/8e9e05c52164694d/raftAttributes","Value":"{\"peerURLs\":[\"http://127.0.0.1:2380\"]}"},
                    "attributes":{"Value":"{\"name\":\"m1\",\"clientURLs\":[\"http://127.0.0.1:2379\"]}"}}},
                "fd422379fda50e48":{"Children":{"raftAttributes":{"Value":"{\"peerURLs\":[\"http://127.0.0.1:2381\"],\"isLearner\":true}"}}}}},
            "removed_members":{"Children":{"1234":{"Value":""}}},
            "version":{"Value":"3.4.0"}}}}}}"#;
        let m = parse_membership(json.as_bytes()).unwrap();
        assert_eq!(m.members.len(), 2);
        assert_eq!(m.members[0].id, 0x8e9e05c52164694d);
        assert_eq!(m.members[0].name.as_deref(), Some("m1"));
        assert!(m.members[1].is_learner);
        assert_eq!(m.removed, vec![0x1234]);
        assert_eq!(m.cluster_version.as_deref(), Some("3.4.0"));
        assert!(parse_membership(b"not json").is_none());
    }
}
