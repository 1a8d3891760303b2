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
    /// `insecure_dev`: metadata documents may be fetched from loopback addresses.
    loopback_documents: bool,
}

impl Clients {
    pub fn new(loopback_documents: bool) -> Self {
        Clients {
            loopback_documents,
            ..Default::default()
        }
    }

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
    pub async fn resolve(&self, id: &str) -> Result<Client, ClientError> {
        if let Some(c) = self.get(id) {
            return Ok(c);
        }
        if !is_document_url(id, self.loopback_documents) {
            return Err(ClientError::Unknown);
        }
        fetch_document(id).await
    }
}

/// A client id that is a metadata document's URL: https with a path, on a public host. The issuer
/// fetches it, so anything else would let a client make it read internal addresses; loopback
/// (http or https) only with `insecure_dev`.
fn is_document_url(id: &str, loopback_allowed: bool) -> bool {
    let Ok(u) = url::Url::parse(id) else {
        return false;
    };
    if u.path() == "/" || u.port().is_some_and(|p| p == 0) {
        return false;
    }
    match u.host() {
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            loopback_allowed && matches!(u.scheme(), "http" | "https")
        }
        Some(url::Host::Domain(_)) => u.scheme() == "https",
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => {
            loopback_allowed && matches!(u.scheme(), "http" | "https")
        }
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => {
            loopback_allowed && matches!(u.scheme(), "http" | "https")
        }
        Some(url::Host::Ipv4(ip)) => {
            u.scheme() == "https" && !(ip.is_private() || ip.is_link_local() || ip.is_unspecified())
        }
        Some(url::Host::Ipv6(ip)) => {
            u.scheme() == "https" && !ip.is_unspecified() && (ip.segments()[0] & 0xfe00) != 0xfc00
        }
        None => false,
    }
}

/// Why a client cannot log in; the text is the OAuth `error_description` it reads.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown client_id: register first (POST /register) or use the https URL of a client metadata document")]
    Unknown,
    /// The client is told no more than this (the details would describe whatever the URL
    /// points at; they are logged).
    #[error("the client metadata document cannot be used (it must be JSON of at most 16 KiB at its https URL, name itself as client_id and list redirect_uris)")]
    DocumentUnusable,
    #[error("the client metadata document's client_id is not its own URL")]
    NotItsOwnId,
    #[error("redirect_uris must list 1 to 16 URIs")]
    RedirectCount,
    #[error("redirect_uri {0:?} is not an absolute URI without fragment")]
    RedirectNotAbsolute(String),
    #[error("redirect_uri {0:?} must be https, http on a loopback address, or a native app's private-use scheme")]
    RedirectScheme(String),
}

/// Why a fetched metadata document was refused (logged, never shown to the client).
#[derive(Debug, thiserror::Error)]
enum DocumentError {
    #[error("{0}")]
    Http(reqwest::Error),
    #[error("larger than 16 KiB")]
    TooLarge,
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

impl From<reqwest::Error> for DocumentError {
    fn from(e: reqwest::Error) -> Self {
        DocumentError::Http(e.without_url())
    }
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    redirect_uris: Vec<String>,
}

async fn fetch_document(id: &str) -> Result<Client, ClientError> {
    let fetched = tokio::time::timeout(Duration::from_secs(5), read_document(id)).await;
    let doc = match fetched {
        Ok(Ok(doc)) => doc,
        Ok(Err(detail)) => {
            tracing::info!(client_id = %id.chars().take(256).collect::<String>(), %detail, "client metadata document refused");
            return Err(ClientError::DocumentUnusable);
        }
        Err(_) => return Err(ClientError::DocumentUnusable),
    };
    if doc.client_id != id {
        return Err(ClientError::NotItsOwnId);
    }
    check_redirects(&doc.redirect_uris)?;
    Ok(Client {
        name: doc.client_name,
        redirect_uris: doc.redirect_uris,
    })
}

/// The document at `id`, at most `MAX_DOCUMENT` bytes, with no redirects followed.
async fn read_document(id: &str) -> Result<Document, DocumentError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut resp = client
        .get(id)
        .header("accept", "application/json")
        .send()
        .await
        .and_then(|r| r.error_for_status())?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(DocumentError::TooLarge);
        }
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Redirect URIs are absolute, without fragment, few, and go somewhere a login may go: `https:`,
/// `http:` on loopback (native apps listening locally), or a private-use scheme of a native app
/// (RFC 8252 §7.1: `com.example.app:/cb`, `cursor://…`). Never `javascript:`, `data:`, `file:`
/// or other schemes a browser acts on itself, and never plain `http:` to another host.
fn check_redirects(uris: &[String]) -> Result<(), ClientError> {
    if uris.is_empty() || uris.len() > MAX_REDIRECTS {
        return Err(ClientError::RedirectCount);
    }
    for u in uris {
        let shown: String = u.chars().take(200).collect();
        let parsed = match url::Url::parse(u) {
            Ok(p) if p.fragment().is_none() && u.len() <= 2048 => p,
            _ => return Err(ClientError::RedirectNotAbsolute(shown)),
        };
        if !redirect_allowed(&parsed) {
            return Err(ClientError::RedirectScheme(shown));
        }
    }
    Ok(())
}

/// Schemes a browser or the system handles itself: never a login's destination.
const NOT_PRIVATE_USE: [&str; 16] = [
    "http",
    "https",
    "javascript",
    "data",
    "file",
    "vbscript",
    "blob",
    "about",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "filesystem",
    "view-source",
    "chrome",
];

fn redirect_allowed(u: &url::Url) -> bool {
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => loopback,
        scheme => !NOT_PRIVATE_USE.contains(&scheme),
    }
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
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            &e.to_string(),
        );
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
        assert!(is_document_url(
            "https://app.example.com/oauth/client.json",
            false
        ));
        assert!(!is_document_url("http://127.0.0.1:9000/client.json", false));
        assert!(!is_document_url("https://localhost/client.json", false));
        assert!(is_document_url("http://127.0.0.1:9000/client.json", true));
        assert!(!is_document_url("https://10.1.2.3/client.json", true));
        assert!(!is_document_url("https://169.254.169.254/latest", true));
        assert!(!is_document_url("https://app.example.com/", false));
        assert!(!is_document_url("http://app.example.com/client.json", true));
        assert!(!is_document_url("some-registered-id", false));
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:33418/",
            "http://localhost:9/cb",
            "http://[::1]:9/cb",
            "com.example.app:/oauth",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
        ] {
            assert!(check_redirects(&[ok.into()]).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "http://evil.example.com/cb",
            "http://10.0.0.1/cb",
            "https://app.example.com/cb#frag",
            "/relative",
        ] {
            assert!(check_redirects(&[bad.into()]).is_err(), "{bad}");
        }
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
