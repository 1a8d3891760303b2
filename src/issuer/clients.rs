//! OAuth clients of the development issuer: registered dynamically (RFC 7591) and kept in a
//! bounded in-memory table, or identified by the URL of a Client ID Metadata Document, fetched
//! when the client starts a login.

use super::{oauth_error, Issuer};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Registrations kept; the oldest is forgotten first.
const MAX_CLIENTS: usize = 1000;
/// Redirect URIs per client, and the largest metadata document read.
const MAX_REDIRECTS: usize = 16;
const MAX_DOCUMENT: usize = 16 * 1024;

/// A client the issuer knows.
#[derive(Debug, Clone)]
pub struct Client {
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
}

#[derive(Default)]
pub struct Clients {
    table: Mutex<(HashMap<String, Client>, VecDeque<String>)>,
}

impl Clients {
    fn insert(&self, id: String, client: Client) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if t.0.len() >= MAX_CLIENTS {
            if let Some(old) = t.1.pop_front() {
                t.0.remove(&old);
            }
        }
        t.1.push_back(id.clone());
        t.0.insert(id, client);
    }

    fn get(&self, id: &str) -> Option<Client> {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.0.get(id).cloned()
    }

    /// The client a `client_id` names: registered here, or a metadata document at that URL.
    pub async fn resolve(&self, id: &str) -> Result<Client, String> {
        if let Some(c) = self.get(id) {
            return Ok(c);
        }
        if !is_document_url(id) {
            return Err("unknown client_id: register first (POST /register) or use the https URL of a client metadata document".into());
        }
        fetch_document(id).await
    }
}

/// A client id that is a metadata document's URL: https with a path, or http on loopback (the
/// issuer is for development).
fn is_document_url(id: &str) -> bool {
    let Ok(u) = url::Url::parse(id) else {
        return false;
    };
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    (u.scheme() == "https" || (u.scheme() == "http" && loopback)) && u.path() != "/"
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    redirect_uris: Vec<String>,
}

async fn fetch_document(id: &str) -> Result<Client, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client
        .get(id)
        .header("accept", "application/json")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            format!(
                "cannot fetch the client metadata document: {}",
                e.without_url()
            )
        })?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        format!(
            "cannot read the client metadata document: {}",
            e.without_url()
        )
    })? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err("the client metadata document is larger than 16 KiB".into());
        }
    }
    let doc: Document = serde_json::from_slice(&body)
        .map_err(|e| format!("not a client metadata document: {e}"))?;
    if doc.client_id != id {
        return Err("the client metadata document's client_id is not its own URL".into());
    }
    check_redirects(&doc.redirect_uris)?;
    Ok(Client {
        name: doc.client_name,
        redirect_uris: doc.redirect_uris,
    })
}

/// Redirect URIs are absolute, without fragment, and few.
fn check_redirects(uris: &[String]) -> Result<(), String> {
    if uris.is_empty() || uris.len() > MAX_REDIRECTS {
        return Err("redirect_uris must list 1 to 16 URIs".into());
    }
    for u in uris {
        match url::Url::parse(u) {
            Ok(p) if p.fragment().is_none() && u.len() <= 2048 => {}
            _ => {
                return Err(format!(
                    "redirect_uri {u:?} is not an absolute URI without fragment"
                ))
            }
        }
    }
    Ok(())
}

/// RFC 7591 registration request (the fields the issuer uses; others are accepted and ignored).
#[derive(Deserialize)]
pub struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// `POST /register`: public clients only (PKCE, no secret).
pub async fn register(State(i): State<Arc<Issuer>>, body: axum::body::Bytes) -> Response {
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &format!("body: {e}"),
            )
        }
    };
    if let Err(e) = check_redirects(&reg.redirect_uris) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &e);
    }
    if reg
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "only public clients (token_endpoint_auth_method none, with PKCE) are supported",
        );
    }
    let name = reg.client_name.map(|n| n.chars().take(100).collect());
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "client_id": id,
        "client_id_issued_at": crate::auth::now(),
        "client_name": name,
        "redirect_uris": reg.redirect_uris,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    i.clients.insert(
        id,
        Client {
            name,
            redirect_uris: reg.redirect_uris,
        },
    );
    (StatusCode::CREATED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_urls() {
        assert!(is_document_url("https://app.example.com/oauth/client.json"));
        assert!(is_document_url("http://127.0.0.1:9000/client.json"));
        assert!(!is_document_url("https://app.example.com/"));
        assert!(!is_document_url("http://app.example.com/client.json"));
        assert!(!is_document_url("some-registered-id"));
    }

    #[test]
    fn the_table_is_bounded() {
        let c = Clients::default();
        for n in 0..MAX_CLIENTS + 5 {
            c.insert(
                n.to_string(),
                Client {
                    name: None,
                    redirect_uris: vec![],
                },
            );
        }
        assert!(c.get("0").is_none());
        assert!(c.get(&(MAX_CLIENTS + 4).to_string()).is_some());
        assert_eq!(c.table.lock().unwrap().0.len(), MAX_CLIENTS);
    }
}
