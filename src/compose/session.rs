//! The composer's session id: the session the client has on each server (which upstream, the
//! server's own id, the revision agreed there). The proxy seals it into the client's id like any
//! upstream's, so it is never shown, cannot be altered, and needs no state here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The client's session on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSession {
    /// The server's name in the scope.
    #[serde(rename = "s")]
    pub server: String,
    /// The upstream (`ip:port`) the session lives on.
    #[serde(rename = "u")]
    pub addr: String,
    /// The server's `Mcp-Session-Id`, when it keeps sessions.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The revision the server agreed to.
    #[serde(rename = "v")]
    pub version: String,
}

pub fn encode(members: &[MemberSession]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(members).unwrap_or_default())
}

/// `None` for anything that is not an id [`encode`] made.
pub fn decode(id: &str) -> Option<Vec<MemberSession>> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let m = vec![
            MemberSession {
                server: "files".into(),
                addr: "10.0.0.1:8080".into(),
                id: Some("abc".into()),
                version: "2025-06-18".into(),
            },
            MemberSession {
                server: "calc".into(),
                addr: "10.0.0.2:8080".into(),
                id: None,
                version: "2025-11-25".into(),
            },
        ];
        assert_eq!(decode(&encode(&m)), Some(m));
        assert_eq!(decode("not an id"), None);
    }
}
