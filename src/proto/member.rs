//! The membership JSON etcd puts in ConfChange contexts (`json.Marshal(membership.Member)`).

use serde::{Deserialize, Serialize};

/// `{"id":<decimal u64>,"peerURLs":[…],"name":…,"clientURLs":[…],"isLearner":true?}`.
/// `id` exceeds 2^53, so it is parsed as an integer, never through f64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    /// etcd writes `"peerURLs":null` in promotion contexts.
    #[serde(rename = "peerURLs", default, deserialize_with = "null_as_empty")]
    pub peer_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(
        rename = "clientURLs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub client_urls: Vec<String>,
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
    /// Set only in the context of a learner promotion (`membership.ConfigChangeContext`, which
    /// embeds Member): promotion and a fresh add are both ConfChangeAddNode.
    #[serde(
        rename = "isPromote",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_promote: bool,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl Member {
    pub fn parse(context: &[u8]) -> Result<Member, serde_json::Error> {
        serde_json::from_slice(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_member_id_above_2_pow_53_exactly() {
        let json = br#"{"id":12345678901234567890,"peerURLs":["http://127.0.0.1:2380"],"name":"m1","isLearner":true}"#;
        let member = Member::parse(json).unwrap();
        assert_eq!(member.id, 12345678901234567890);
        assert!(member.is_learner);
        assert_eq!(member.peer_urls, vec!["http://127.0.0.1:2380"]);
        assert!(Member::parse(b"{\"id\":-1}").is_err());
        let promote = Member::parse(br#"{"id":7,"peerURLs":null,"isPromote":true}"#).unwrap();
        assert!(promote.peer_urls.is_empty());
        assert!(promote.is_promote);
        assert!(!member.is_promote);
    }
}
