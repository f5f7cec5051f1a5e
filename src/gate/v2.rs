//! v2 (`etcdserverpb.Request`) entries and v2-store content, judged as each etcd release replays
//! them after a restart.
//!
//! * 3.4 / 3.5 apply v2 requests to the v2 store (`applyV2Request`).
//! * 3.6 routes every v2 request — bare, or wrapped in `InternalRaftRequest.v2` — through
//!   `v2ToV3Request` (`server/etcdserver/apply_v2.go`), **before** the `shouldApplyV3` check, so
//!   every v2 entry after the boot snapshot is converted again on restart: a `PUT` whose path
//!   matches `storeMemberAttributeRegexp` (`/0/members/[[:xdigit:]]{1,16}/attributes`,
//!   unanchored) becomes `ClusterMemberAttrSet`, a `PUT` of exactly `/0/version` becomes
//!   `ClusterVersionSet`; anything else panics ("detected disallowed v2 WAL for stage
//!   --v2-deprecation=write-only"). The member id must parse (`MustParseMemberIDFromKey`) and the
//!   attributes must unmarshal into `membership.Attributes`, or it panics too.
//!   `etcdutl check v2store` (3.5.18+, WAL records since PR #21897) applies the same test.
//! * 3.7 dropped v2 requests: `apply.Apply` does `MustUnmarshalMessage(InternalRaftRequest)`,
//!   which panics on a bare v2 request; field 2 (`v2`) is `reserved`, so a wrapped one reaches
//!   the applier empty and panics there ("not implemented apply") when first applied.
//!
//! The v2 store inside a `.snap` (3.4/3.5 full store; 3.6 membership only) is checked with
//! 3.6's `membership.IsMetaStoreOnly` (`AssertNoV2StoreContent` at boot, default
//! `--v2-deprecation=write-only`).

use serde_json::Value;

use super::version::Version;
use crate::proto::etcdserverpb::Request;

/// What a target does with one v2 request on replay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum V2Fate {
    /// 3.4/3.5: applied to the v2 store.
    AppliedToV2Store,
    /// 3.6: converted by `v2ToV3Request` into this InternalRaftRequest.
    Translated { into: &'static str },
    /// The target panics replaying it.
    Refused { reason: String },
}

impl V2Fate {
    pub fn blocks(&self) -> bool {
        matches!(self, V2Fate::Refused { .. })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `storeMemberAttributeRegexp.MatchString(path)`: `/0/members/` + 1–16 hex digits +
/// `/attributes`, anywhere in the path.
pub fn matches_member_attributes(path: &str) -> bool {
    const PREFIX: &str = "/0/members/";
    let mut from = 0;
    while let Some(found) = path[from..].find(PREFIX) {
        let start = from + found + PREFIX.len();
        let digits = path[start..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        if (1..=16).contains(&digits) && path[start + digits..].starts_with("/attributes") {
            return true;
        }
        from = from + found + 1;
    }
    false
}

/// Go's `path.Clean`.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Base(path.Dir(p))`: the member id component `MustParseMemberIDFromKey` parses.
fn base_of_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".into(),
    };
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        return if dir.is_empty() {
            ".".into()
        } else {
            "/".into()
        };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Would Go's `json.Unmarshal(val, &membership.Attributes{})` fail? Keys match
/// case-insensitively; `name` must be a string, `clientURLs` an array of strings (null anywhere
/// is accepted); other keys are ignored.
fn attributes_error(val: &str) -> Option<String> {
    let value: Value = match serde_json::from_str(val) {
        Ok(v) => v,
        Err(e) => return Some(format!("attributes are not JSON ({e})")),
    };
    let object = match value {
        Value::Null => return None,
        Value::Object(o) => o,
        other => {
            return Some(format!(
                "attributes are a JSON {}, not an object",
                match other {
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    _ => "bool",
                }
            ))
        }
    };
    for (key, value) in &object {
        if key.eq_ignore_ascii_case("name") && !matches!(value, Value::String(_) | Value::Null) {
            return Some("attributes.name is not a string".into());
        }
        if key.eq_ignore_ascii_case("clientURLs") {
            let ok = match value {
                Value::Null => true,
                Value::Array(items) => items
                    .iter()
                    .all(|i| matches!(i, Value::String(_) | Value::Null)),
                _ => false,
            };
            if !ok {
                return Some("attributes.clientURLs is not an array of strings".into());
            }
        }
    }
    None
}

/// etcd 3.6's `v2ToV3Request`.
pub fn v2_to_v3(request: &Request) -> V2Fate {
    let method = text(&request.method);
    let path = text(&request.path);
    let member_attr = matches_member_attributes(&path);
    if method != "PUT" || (!member_attr && path != "/0/version") {
        return V2Fate::Refused {
            reason: "etcd 3.6 v2ToV3Request panics: \"detected disallowed v2 WAL for stage --v2-deprecation=write-only\"".into(),
        };
    }
    if member_attr {
        let id = base_of_dir(&path);
        if u64::from_str_radix(&id, 16).is_err() {
            return V2Fate::Refused {
                reason: format!("etcd 3.6 MustParseMemberIDFromKey panics on member id {id:?}"),
            };
        }
        if let Some(e) = attributes_error(&text(&request.val)) {
            return V2Fate::Refused {
                reason: format!("etcd 3.6 v2ToV3Request panics: failed to unmarshal: {e}"),
            };
        }
        return V2Fate::Translated {
            into: "ClusterMemberAttrSet",
        };
    }
    V2Fate::Translated {
        into: "ClusterVersionSet",
    }
}

/// What `target` does replaying this v2 request (`wrapped`: inside `InternalRaftRequest.v2`).
pub fn fate(target: Version, request: &Request, wrapped: bool) -> V2Fate {
    if !target.at_least(3, 6) {
        return V2Fate::AppliedToV2Store;
    }
    if target.at_least(3, 7) {
        return V2Fate::Refused {
            reason: if wrapped {
                "etcd 3.7 reserves InternalRaftRequest field 2 (v2): the request reaches the applier empty and panics (\"not implemented apply\")".into()
            } else {
                "etcd 3.7 no longer decodes v2 requests: apply.Apply's MustUnmarshalMessage(InternalRaftRequest) panics".into()
            },
        };
    }
    v2_to_v3(request)
}

/// 3.6's `membership.IsMetaStoreOnly` over a `.snap`'s v2-store JSON: the top-level nodes that
/// hold custom content (empty when only `/0` membership data, an empty `/1` and bare `/2` auth
/// nodes are there). `None` when the data is not a v2 store.
pub fn v2store_custom_content(data: &[u8]) -> Option<Vec<String>> {
    let store: Value = serde_json::from_slice(data).ok()?;
    let root = store.get("Root")?;
    let visible = |node: &Value| -> Vec<(String, Value)> {
        node.get("Children")
            .and_then(Value::as_object)
            .map(|children| {
                children
                    .iter()
                    .filter(|(name, _)| !name.starts_with('_'))
                    .map(|(name, child)| (name.clone(), child.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut custom = Vec::new();
    for (name, node) in visible(root) {
        let path = node
            .get("Path")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/{name}"));
        if path == "/0" {
            continue;
        }
        let children = visible(&node);
        if path == "/2" {
            // Auth: "/2/enabled", "/2/roles", "/2/users" may stay, as long as they are empty.
            for (child_name, child) in &children {
                let n = visible(child).len();
                if n > 0 {
                    custom.push(format!("/2/{child_name} ({n} children)"));
                }
            }
            continue;
        }
        if !children.is_empty() {
            custom.push(format!("{path} ({} children)", children.len()));
        }
    }
    custom.sort();
    Some(custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, val: &str) -> Request {
        Request {
            method: method.as_bytes().to_vec(),
            path: path.as_bytes().to_vec(),
            val: val.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn the_two_puts_etcd_3_4_writes_are_translated_by_3_6() {
        let attr = req(
            "PUT",
            "/0/members/8960a25f2ea1af07/attributes",
            r#"{"name":"m5","clientURLs":["http://127.0.0.1:23795"]}"#,
        );
        assert_eq!(
            fate(Version::new(3, 6), &attr, false),
            V2Fate::Translated {
                into: "ClusterMemberAttrSet"
            }
        );
        let version = req("PUT", "/0/version", "3.4.0");
        assert_eq!(
            fate(Version::new(3, 6), &version, false),
            V2Fate::Translated {
                into: "ClusterVersionSet"
            }
        );
        assert_eq!(
            fate(Version::new(3, 5), &version, false),
            V2Fate::AppliedToV2Store
        );
        assert!(fate(Version::new(3, 7), &version, false).blocks());
        assert!(fate(Version::new(3, 7), &version, true).blocks());
    }

    #[test]
    fn everything_else_panics_in_3_6() {
        let t = Version::new(3, 6);
        for r in [
            req("DELETE", "/0/members/8960a25f2ea1af07/attributes", ""),
            req("PUT", "/1/foo", "bar"),
            req("PUT", "/0/members/8960a25f2ea1af07/raftAttributes", "{}"),
            req("PUT", "/0/version/", "3.4.0"),
            req("SYNC", "", ""),
            req("", "", ""),
            req("POST", "/0/version", "3.4.0"),
            // 17 hex digits: the regexp needs 1–16.
            req("PUT", "/0/members/18960a25f2ea1af07/attributes", "{}"),
            req("PUT", "/0/members/8960a25f2ea1af07/attributes", "[1]"),
            req(
                "PUT",
                "/0/members/8960a25f2ea1af07/attributes",
                r#"{"Name":5}"#,
            ),
            req("PUT", "/0/members/8960a25f2ea1af07/attributes", "{"),
        ] {
            assert!(fate(t, &r, false).blocks(), "{r:?}");
        }
    }

    #[test]
    fn the_regexp_is_unanchored_and_the_id_comes_from_path_dir() {
        assert!(matches_member_attributes("/x/0/members/ab/attributes"));
        assert!(matches_member_attributes("/0/members/ab/attributesX"));
        assert!(!matches_member_attributes("/0/members//attributes"));
        // Matches the regexp, but path.Base(path.Dir(p)) is "attributes": MustParse panics.
        let r = req("PUT", "/0/members/ab/attributes/cd", "{}");
        assert!(
            matches!(v2_to_v3(&r), V2Fate::Refused { reason } if reason.contains("MustParseMemberIDFromKey"))
        );
        // path.Dir cleans: "/0/members/ab/./attributes" → "/0/members/ab".
        let r = req("PUT", "/0/members/ab/./attributes", "null");
        assert!(!matches_member_attributes("/0/members/ab/./attributes"));
        assert!(v2_to_v3(&r).blocks());
        assert_eq!(base_of_dir("/0/members/ab/attributes"), "ab");
        assert_eq!(base_of_dir("attributes"), ".");
        assert_eq!(base_of_dir("/attributes"), "/");
    }

    #[test]
    fn meta_only_v2_store_passes_and_custom_content_is_named() {
        let meta = br#"{"Root":{"Path":"/","Children":{
            "0":{"Path":"/0","Children":{"members":{"Path":"/0/members","Children":{}},"version":{"Path":"/0/version","Value":"3.4.0","Children":null}}},
            "1":{"Path":"/1","Children":{}},
            "2":{"Path":"/2","Children":{"enabled":{"Path":"/2/enabled","Value":"false","Children":null},"users":{"Path":"/2/users","Children":{}}}}}}}"#;
        assert_eq!(v2store_custom_content(meta), Some(vec![]));
        let custom = br#"{"Root":{"Path":"/","Children":{
            "0":{"Path":"/0","Children":{}},
            "1":{"Path":"/1","Children":{"foo":{"Path":"/1/foo","Value":"bar","Children":null},"_hidden":{"Path":"/1/_hidden","Children":null}}},
            "2":{"Path":"/2","Children":{"users":{"Path":"/2/users","Children":{"root":{"Path":"/2/users/root","Children":null}}}}}}}}"#;
        assert_eq!(
            v2store_custom_content(custom),
            Some(vec![
                "/1 (1 children)".to_string(),
                "/2/users (1 children)".to_string()
            ])
        );
        assert_eq!(v2store_custom_content(b"not json"), None);
    }
}
