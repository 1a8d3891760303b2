//! The authorization-code flow with PKCE (OAuth 2.1): `GET /authorize` checks the request and
//! shows the login page, `POST /authorize` (the page's form) issues a one-time code bound to the
//! client, redirect URI, PKCE challenge and resource, and `POST /token` exchanges it.

use super::{oauth_error, page, Grant, Issuer};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a code can be exchanged, and how many can wait at once, in all and per client. When
/// full, the oldest waiting code goes (of that client first): logins that are never exchanged
/// cannot lock everyone else out.
const CODE_LIFETIME: Duration = Duration::from_secs(120);
const MAX_CODES: usize = 1000;
const MAX_CODES_PER_CLIENT: usize = 16;

struct Pending {
    grant: Grant,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
}

#[derive(Default)]
pub struct Codes(Mutex<HashMap<String, Pending>>);

impl Codes {
    fn insert(&self, p: Pending) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| p.issued.elapsed() < CODE_LIFETIME);
        let oldest = |map: &HashMap<String, Pending>, client: Option<&str>| {
            map.iter()
                .filter(|(_, q)| client.is_none_or(|c| q.client_id == c))
                .min_by_key(|(_, q)| q.issued)
                .map(|(k, _)| k.clone())
        };
        let of_client = map.values().filter(|q| q.client_id == p.client_id).count();
        let evict = if of_client >= MAX_CODES_PER_CLIENT {
            oldest(&map, Some(&p.client_id))
        } else if map.len() >= MAX_CODES {
            oldest(&map, None)
        } else {
            None
        };
        if let Some(k) = evict {
            map.remove(&k);
        }
        let code = random_code();
        map.insert(code.clone(), p);
        Some(code)
    }

    /// Takes a code: each works once.
    fn take(&self, code: &str) -> Option<Pending> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(code)
            .filter(|p| p.issued.elapsed() < CODE_LIFETIME)
    }
}

pub(super) fn random_code() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The authorization request's parameters (RFC 6749 4.1.1, RFC 7636, RFC 8707), and on the form
/// post what the developer picked.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub code_challenge: String,
    #[serde(default)]
    pub code_challenge_method: String,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub roles: Option<String>,
    /// Other parameters (e.g. `prompt`) are accepted and ignored.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// What stops a login before the developer sees a page: shown as a page, never redirected, since
/// the redirect URI itself may be what is wrong.
fn bad_request(reason: &str) -> Response {
    framed_never(StatusCode::BAD_REQUEST, page::error(reason))
}

/// A page of the issuer: never shown inside another site's frame, where a click could be stolen.
fn framed_never(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        ],
        Html(html),
    )
        .into_response()
}

/// An error sent back to the client's redirect URI (RFC 6749 4.1.2.1).
fn redirect_error(p: &AuthorizeParams, error: &str, description: &str) -> Response {
    let mut u = match url::Url::parse(&p.redirect_uri) {
        Ok(u) => u,
        Err(_) => return bad_request(description),
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("error", error);
        q.append_pair("error_description", description);
        if let Some(s) = &p.state {
            q.append_pair("state", s);
        }
    }
    redirect(u.as_str())
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Checks client, redirect URI and PKCE; the error answer when something is wrong.
async fn check(i: &Issuer, p: &AuthorizeParams) -> Result<String, Response> {
    let client = i
        .clients
        .resolve(&p.client_id)
        .await
        .map_err(|e| bad_request(&e.to_string()))?;
    if !client
        .redirect_uris
        .iter()
        .any(|r| redirect_matches(r, &p.redirect_uri))
    {
        return Err(bad_request("redirect_uri is not one the client registered"));
    }
    if p.response_type != "code" {
        return Err(redirect_error(
            p,
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if p.code_challenge_method != "S256" || p.code_challenge.len() != 43 {
        return Err(redirect_error(
            p,
            "invalid_request",
            "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256",
        ));
    }
    if let Some(r) = &p.resource {
        if url::Url::parse(r).map_or(true, |u| u.fragment().is_some()) {
            return Err(redirect_error(
                p,
                "invalid_target",
                "resource must be an absolute URI without fragment",
            ));
        }
    }
    Ok(client.name.unwrap_or_else(|| p.client_id.clone()))
}

/// A redirect URI matches the registered one exactly, except that a loopback one may use any port
/// (RFC 8252 7.3, OAuth 2.1: native clients such as editors listen on a port of the moment).
fn redirect_matches(registered: &str, asked: &str) -> bool {
    if registered == asked {
        return true;
    }
    let (Ok(r), Ok(a)) = (url::Url::parse(registered), url::Url::parse(asked)) else {
        return false;
    };
    let loopback = |u: &url::Url| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
    };
    loopback(&r)
        && loopback(&a)
        && r.host_str() == a.host_str()
        && r.path() == a.path()
        && r.query() == a.query()
}

/// `GET /authorize`: the login page.
pub async fn login_page(
    State(i): State<Arc<Issuer>>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    match check(&i, &p).await {
        Ok(client_name) => framed_never(StatusCode::OK, page::login(&i, &p, &client_name)),
        Err(answer) => answer,
    }
}

/// `POST /authorize`: the developer picked a user; redirect back with a code.
pub async fn approve(
    State(i): State<Arc<Issuer>>,
    axum::Form(p): axum::Form<AuthorizeParams>,
) -> Response {
    if let Err(answer) = check(&i, &p).await {
        return answer;
    }
    let user = p.user_id.clone().unwrap_or_default().trim().to_string();
    if user.is_empty() || user.len() > crate::auth::MAX_USER_ID {
        return bad_request("user id must be 1 to 256 bytes");
    }
    let roles = p
        .roles
        .as_deref()
        .unwrap_or_default()
        .split([',', ' '])
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect();
    let workspace = p
        .workspace
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(String::from);
    let grant = Grant {
        user,
        roles,
        workspace,
        api_version: i.api_versions.last().cloned(),
        scope: i.granted_scopes(p.scope.as_deref()),
        resource: p.resource.clone(),
        client_id: Some(p.client_id.clone()),
    };
    let pending = Pending {
        grant,
        client_id: p.client_id.clone(),
        redirect_uri: p.redirect_uri.clone(),
        challenge: p.code_challenge.clone(),
        issued: Instant::now(),
    };
    let Some(code) = i.codes.insert(pending) else {
        return redirect_error(&p, "temporarily_unavailable", "too many logins in progress");
    };
    let mut u = match url::Url::parse(&p.redirect_uri) {
        Ok(u) => u,
        Err(_) => return bad_request("redirect_uri is not a URI"),
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &p.state {
            q.append_pair("state", s);
        }
    }
    redirect(u.as_str())
}

#[derive(Deserialize)]
struct Exchange {
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    resource: Option<String>,
}

/// `POST /token` with a form: the authorization-code grant.
pub fn exchange(i: &Issuer, body: &[u8]) -> Response {
    let req: Exchange = match serde_urlencoded::from_bytes(body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("form: {e}"),
            )
        }
    };
    if req.grant_type != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "authorization_code, refresh_token and token exchange are supported (or POST JSON for a development token)",
        );
    }
    let invalid = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    let Some(p) = i.codes.take(&req.code) else {
        return invalid("unknown, used or expired code");
    };
    if p.client_id != req.client_id || p.redirect_uri != req.redirect_uri {
        return invalid("client_id or redirect_uri differ from the authorization request");
    }
    if !pkce_matches(&req.code_verifier, &p.challenge) {
        return invalid("code_verifier does not match the code_challenge");
    }
    if req.resource.is_some() && req.resource != p.grant.resource {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource differs from the authorization request",
        );
    }
    // Rotated on every use (`refresh`); bound to the client that redeemed the code.
    let refresh = i.refreshes.issue(&p.grant, &p.client_id);
    i.token_answer(&p.grant, i.ttl.as_secs(), Some(refresh))
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge, the verifier 43–128 characters.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    if !(43..=128).contains(&verifier.len()) {
        return false;
    }
    let digest = Sha256::digest(verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    bool::from(subtle::ConstantTimeEq::ct_eq(
        computed.as_bytes(),
        challenge.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_may_change_port() {
        use super::redirect_matches;
        assert!(redirect_matches(
            "http://127.0.0.1:33418/",
            "http://127.0.0.1:40001/"
        ));
        assert!(redirect_matches(
            "https://vscode.dev/redirect",
            "https://vscode.dev/redirect"
        ));
        assert!(!redirect_matches(
            "https://vscode.dev/redirect",
            "https://vscode.dev:444/redirect"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1:1/cb",
            "http://127.0.0.1:2/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1:1/cb",
            "http://localhost:1/cb"
        ));
        assert!(!redirect_matches(
            "http://example.com:1/cb",
            "http://example.com:2/cb"
        ));
    }

    #[test]
    fn pkce_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(&verifier.replace('d', "e"), challenge));
        assert!(!pkce_matches("short", challenge));
    }
}
