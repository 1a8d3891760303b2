//! The gateway as an OAuth 2.1 client of an authorization server: the server's metadata
//! (RFC 8414, or OpenID discovery), an upstream's protected-resource metadata (RFC 9728) that
//! names it, registration (a configured client, else dynamic registration, RFC 7591), the
//! authorization-code request with PKCE (RFC 7636) and resource indicator (RFC 8707), and the
//! token requests that redeem a code or refresh a token. Used twice: to sign the user in to the
//! gateway's own authorization server on the consent page, and to get the user's token from an
//! upstream's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why an OAuth step failed: said to the person on the consent page and in the log, never with
/// a token, a code or a secret.
#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    #[error("{0} could not be reached")]
    Unreachable(String),
    #[error("{what} answered HTTP {status}")]
    Status { what: String, status: u16 },
    #[error("{0} gave an answer that is not what OAuth says")]
    Answer(String),
    #[error("the authorization server refused: {0}")]
    Refused(String),
    #[error("the authorization server offers no way to register the gateway (no registration_endpoint): configure client_id")]
    NoRegistration,
}

/// What the gateway uses of an authorization server's metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
}

/// A registered client at one server.
#[derive(Clone)]
pub struct Client {
    pub server: Server,
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("issuer", &self.server.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a protected resource says about itself.
#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// A token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// The most a metadata or token answer may be.
const MAX_ANSWER: usize = 64 * 1024;

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, OauthError> {
    let resp = http
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|_| OauthError::Unreachable(url.to_string()))?;
    read_json(resp, url).await
}

async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T, OauthError> {
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|_| OauthError::Unreachable(what.to_string()))?;
    if body.len() > MAX_ANSWER {
        return Err(OauthError::Answer(what.to_string()));
    }
    if !(200..300).contains(&status) {
        // An OAuth error answer names its error code; nothing else of the body is repeated.
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["error"]
                    .as_str()
                    .map(|e| e.chars().take(64).collect::<String>())
            });
        return Err(match code {
            Some(c) => OauthError::Refused(c),
            None => OauthError::Status {
                what: what.to_string(),
                status,
            },
        });
    }
    serde_json::from_slice(&body).map_err(|_| OauthError::Answer(what.to_string()))
}

/// `origin/.well-known/NAME/path` (RFC 8414 §3.1, RFC 9728 §3.1), or at the root when `url`
/// has no path.
fn well_known(url: &str, name: &str) -> Option<(String, String)> {
    let u = url::Url::parse(url).ok()?;
    let origin = u.origin().ascii_serialization();
    let path = u.path().trim_end_matches('/');
    Some((
        format!("{origin}/.well-known/{name}{path}"),
        format!("{origin}/.well-known/{name}"),
    ))
}

/// The protected-resource metadata of `resource_url` (at its path first, then at the root).
pub async fn protected_resource(
    http: &reqwest::Client,
    resource_url: &str,
) -> Result<Resource, OauthError> {
    let (at_path, at_root) = well_known(resource_url, "oauth-protected-resource")
        .ok_or_else(|| OauthError::Answer(resource_url.to_string()))?;
    let r: Resource = match get_json(http, &at_path).await {
        Ok(r) => r,
        Err(_) => get_json(http, &at_root).await?,
    };
    if r.authorization_servers.is_empty() {
        return Err(OauthError::Answer(at_path));
    }
    Ok(r)
}

/// An authorization server's metadata: RFC 8414 first, OpenID discovery second; its `issuer`
/// must be the one asked for (RFC 8414 §3.3).
pub async fn server(http: &reqwest::Client, issuer: &str) -> Result<Server, OauthError> {
    let issuer = issuer.trim_end_matches('/');
    let (oauth, oauth_root) = well_known(issuer, "oauth-authorization-server")
        .ok_or_else(|| OauthError::Answer(issuer.to_string()))?;
    let openid = format!("{issuer}/.well-known/openid-configuration");
    let mut last = OauthError::Answer(issuer.to_string());
    for url in [oauth, oauth_root, openid] {
        match get_json::<Server>(http, &url).await {
            Ok(s) if s.issuer.trim_end_matches('/') == issuer => return Ok(s),
            Ok(_) => last = OauthError::Answer(url),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Registers the gateway at `server` for `redirect_uri` (RFC 7591), as a public client using
/// PKCE.
pub async fn register(
    http: &reqwest::Client,
    server: Server,
    redirect_uri: &str,
    name: &str,
) -> Result<Client, OauthError> {
    let url = server
        .registration_endpoint
        .clone()
        .ok_or(OauthError::NoRegistration)?;
    let body = serde_json::json!({
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let resp = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|_| OauthError::Unreachable(url.clone()))?;
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
        #[serde(default)]
        client_secret: Option<String>,
    }
    let r: Registered = read_json(resp, &url).await?;
    Ok(Client {
        server,
        client_id: r.client_id,
        client_secret: r.client_secret,
    })
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    let verifier = URL_SAFE_NO_PAD.encode(b);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl Client {
    /// Where to send the browser: the authorization request.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: &str,
        resource: &str,
        scope: Option<&str>,
    ) -> String {
        let mut u = match url::Url::parse(&self.server.authorization_endpoint) {
            Ok(u) => u,
            Err(_) => return self.server.authorization_endpoint.clone(),
        };
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("resource", resource);
            if let Some(s) = scope.filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        u.into()
    }

    /// Redeems an authorization code.
    pub async fn redeem(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        resource: &str,
    ) -> Result<Tokens, OauthError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
            ("resource", resource),
        ];
        self.token_request(http, &form).await
    }

    /// A new access token for a refresh token.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &str,
        resource: &str,
    ) -> Result<Tokens, OauthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("resource", resource),
        ];
        self.token_request(http, &form).await
    }

    async fn token_request(
        &self,
        http: &reqwest::Client,
        form: &[(&str, &str)],
    ) -> Result<Tokens, OauthError> {
        let mut form = form.to_vec();
        form.push(("client_id", &self.client_id));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let url = &self.server.token_endpoint;
        let resp = http
            .post(url)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|_| OauthError::Unreachable(url.clone()))?;
        let t: Tokens = read_json(resp, url).await?;
        if t.access_token.is_empty() {
            return Err(OauthError::Answer(url.clone()));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_goes_between_origin_and_path() {
        let (p, r) =
            well_known("http://127.0.0.1:9/vendor/mcp", "oauth-protected-resource").unwrap();
        assert_eq!(
            p,
            "http://127.0.0.1:9/.well-known/oauth-protected-resource/vendor/mcp"
        );
        assert_eq!(r, "http://127.0.0.1:9/.well-known/oauth-protected-resource");
        let (p, _) = well_known("https://idp.example/", "oauth-authorization-server").unwrap();
        assert_eq!(
            p,
            "https://idp.example/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        let (v, c) = pkce();
        assert_eq!(v.len(), 43);
        assert_eq!(c, URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
    }
}
