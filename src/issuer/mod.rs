//! The development authorization server (`mcp-gateway issuer`, also started by `run` when
//! `dev_issuer:` is configured): what a developer without an identity provider logs in to.
//!
//! - `POST /token` with a JSON body mints a token directly (scripts, the stdio bridge's
//!   `--issuer-url`), guarded by `X-Issuer-Token` when an admin token is configured;
//! - the OAuth 2.1 authorization-code flow with PKCE that MCP clients run (`/authorize` shows a
//!   plain login page where the developer picks user, roles and workspace), with clients
//!   registered dynamically (RFC 7591, `POST /register`) or by Client ID Metadata Document;
//! - RFC 8414 metadata and the JWKS of its signing key.
//!
//! Tokens are EdDSA-signed with a key derived from the gateway's JWT secret ([`key`]), carry the
//! gateway's configured claim names, and are bound to the `resource` the client asked for (as
//! `aud`). State (registered clients, pending codes) is in memory and bounded: a restart forgets
//! registrations, and clients register again.

mod authorize;
mod clients;
mod cors;
mod exchange;
pub use crate::config::issuer_key as key;
mod page;
mod refresh;

use crate::config::{file::ClaimsFile, Config};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The longest token lifetime `POST /token` grants.
const MAX_TTL: u64 = 24 * 3600;

/// The issuer's settings and state.
pub struct Issuer {
    url: String,
    signer: Signer,
    admin_token: Option<String>,
    ttl: Duration,
    claims: ClaimsFile,
    api_versions: Vec<String>,
    /// The audience of tokens that name no resource: the gateway's first configured audience.
    audience: Option<String>,
    /// The scopes and roles of the running configuration: a reload replaces them, so a scope
    /// added at run time can be granted at once.
    known: arc_swap::ArcSwap<Known>,
    clients: clients::Clients,
    codes: authorize::Codes,
    refreshes: refresh::Refreshes,
    /// Verifies subject tokens for the token exchange, as the gateway verifies tokens.
    verifier: Option<Arc<crate::auth::Authenticator>>,
    /// Browser origins that may call it (the gateway's `allowed_origins`).
    allowed_origins: Vec<String>,
}

/// What the issuer offers of the running configuration.
struct Known {
    scopes_supported: Vec<String>,
    roles: Vec<String>,
}

impl Known {
    fn of(config: &Config) -> Self {
        let mut scopes_supported: Vec<String> = config
            .scopes
            .values()
            .flat_map(|s| s.oauth_scopes.iter().cloned())
            .collect();
        scopes_supported.sort();
        scopes_supported.dedup();
        let roles = (config.policy.roles().into_iter())
            .map(String::from)
            .collect();
        Known {
            scopes_supported,
            roles,
        }
    }
}

/// How tokens are signed: always so that the gateway of the same configuration accepts them.
enum Signer {
    /// The issuer's Ed25519 key (derived from the JWT secret), published in its JWKS; the
    /// gateway trusts it for tokens whose `iss` is `dev_issuer.url`.
    Own {
        kid: String,
        jwk: Value,
        key: EncodingKey,
    },
    /// Run alone on a configuration without `dev_issuer:`: the gateway trusts no key of the
    /// issuer's, so tokens are signed as `mcp-gateway token` signs them (the gateway's HS key,
    /// `iss` = `jwt.issuer`); the JWKS is empty (the secret is never published).
    Gateway {
        alg: Algorithm,
        key: EncodingKey,
        iss: Option<String>,
    },
}

/// What a token says about its holder.
#[derive(Debug, Clone)]
pub struct Grant {
    pub user: String,
    pub roles: Vec<String>,
    pub workspace: Option<String>,
    pub api_version: Option<String>,
    pub scope: Vec<String>,
    pub resource: Option<String>,
    pub client_id: Option<String>,
}

/// Why the development issuer cannot run with these settings.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("the configuration has no JWT secret to derive the issuer key from (set JWT_SECRET_KEY or dev_secrets_file)")]
    NoSecret,
    #[error("--listen is required when the configuration has no dev_issuer section")]
    NoListen,
    #[error("the configuration has no dev_issuer section and no HS algorithm in jwt.algorithms: its gateway would accept no token of this issuer")]
    Untrusted,
    #[error("{0:?} is not an IP:port address")]
    BadListen(String),
    #[error("{0} is not a loopback address: anyone who reaches the development issuer can log in as anyone (pass --insecure-dev to allow it)")]
    NotLoopback(std::net::SocketAddr),
    #[error("cannot encode the issuer key: {0}")]
    Key(#[from] ed25519_dalek::pkcs8::Error),
}

impl Issuer {
    /// The issuer a configuration describes, or why there is none.
    pub fn new(config: &Config, d: &crate::config::DevIssuer) -> Result<Self, IssuerError> {
        let signer = Signer::Own {
            kid: d.key.kid.clone(),
            jwk: d.key.jwk(),
            key: d.key.encoding_key()?,
        };
        Issuer::with_signer(config, d, signer)
    }

    fn with_signer(
        config: &Config,
        d: &crate::config::DevIssuer,
        signer: Signer,
    ) -> Result<Self, IssuerError> {
        Ok(Issuer {
            url: d.url.clone(),
            signer,
            admin_token: d.admin_token.clone(),
            ttl: d.token_ttl,
            claims: config.jwt.claims.clone(),
            api_versions: config.jwt.allowed_api_versions.clone(),
            audience: config.jwt.audience.first().cloned(),
            known: arc_swap::ArcSwap::from_pointee(Known::of(config)),
            clients: clients::Clients::new(d.insecure_dev),
            codes: authorize::Codes::default(),
            refreshes: refresh::Refreshes::default(),
            verifier: crate::auth::Authenticator::new(config.jwt.clone())
                .ok()
                .map(Arc::new),
            allowed_origins: config.allowed_origins.clone(),
        })
    }

    /// `mcp-gateway issuer`: the issuer alone, signing tokens the gateway of the same
    /// configuration accepts. With `dev_issuer:` it is that issuer (`--listen` moves its socket;
    /// its URL stays `dev_issuer.url`, which the gateway checks in `iss`); without, it signs as
    /// `mcp-gateway token` does and needs `--listen`. Returns it with the address to bind.
    pub fn standalone(
        config: &Config,
        listen: Option<String>,
        insecure_dev: bool,
    ) -> Result<(Self, String), IssuerError> {
        let (mut d, signer) = match (&config.dev_issuer, &config.jwt.secret) {
            (Some(d), _) => (d.clone(), None),
            (None, Some(secret)) => {
                let alg = (config.jwt.algorithms.iter().copied())
                    .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
                    .ok_or(IssuerError::Untrusted)?;
                let d = crate::config::DevIssuer {
                    listen: String::new(),
                    url: String::new(),
                    admin_token: std::env::var("MCP_GATEWAY_ISSUER_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty()),
                    token_ttl: Duration::from_secs(3600),
                    key: Arc::new(key::IssuerKey::derive(secret)),
                    insecure_dev,
                };
                let signer = Signer::Gateway {
                    alg,
                    key: EncodingKey::from_secret(secret),
                    iss: config.jwt.issuer.clone(),
                };
                (d, Some(signer))
            }
            (None, None) => return Err(IssuerError::NoSecret),
        };
        if let Some(l) = listen {
            if d.url.is_empty() {
                d.url = format!("http://{l}");
            }
            d.listen = l;
        }
        if d.listen.is_empty() {
            return Err(IssuerError::NoListen);
        }
        let addr: std::net::SocketAddr = d
            .listen
            .parse()
            .map_err(|_| IssuerError::BadListen(d.listen.clone()))?;
        d.insecure_dev |= insecure_dev;
        if !addr.ip().is_loopback() && !d.insecure_dev {
            return Err(IssuerError::NotLoopback(addr));
        }
        let issuer = match signer {
            Some(s) => Issuer::with_signer(config, &d, s)?,
            None => Issuer::new(config, &d)?,
        };
        Ok((issuer, d.listen))
    }

    /// Where clients reach it (its `issuer` in the metadata).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/jwks.json", get(jwks))
            .route("/register", post(clients::register))
            .route(
                "/authorize",
                get(authorize::login_page).post(authorize::approve),
            )
            .route("/token", post(token))
            .fallback(|| async {
                oauth_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            })
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                cors::layer,
            ))
            .with_state(self)
    }

    /// Serves until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        tracing::warn!(url = %self.url, "development authorization server listening; anyone who reaches it can log in as anyone");
        axum::serve(listener, self.router()).await
    }

    /// Signs an access token for a grant; returns it with its lifetime in seconds.
    fn sign(&self, g: &Grant, ttl: u64) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = crate::auth::now();
        let names = &self.claims;
        let mut c = Map::new();
        let iss = match &self.signer {
            Signer::Own { .. } => Some(&self.url),
            Signer::Gateway { iss, .. } => iss.as_ref(),
        };
        if let Some(iss) = iss {
            c.insert("iss".into(), iss.clone().into());
        }
        c.insert(names.user_id.clone(), g.user.clone().into());
        c.insert(names.roles.clone(), g.roles.clone().into());
        if let Some(w) = &g.workspace {
            c.insert(names.tenant.clone(), w.clone().into());
        }
        if let (Some(claim), Some(v)) = (&names.api_version, &g.api_version) {
            c.insert(claim.clone(), v.clone().into());
        }
        if let Some(aud) = g.resource.as_ref().or(self.audience.as_ref()) {
            c.insert("aud".into(), aud.clone().into());
        }
        if !g.scope.is_empty() {
            c.insert("scope".into(), g.scope.join(" ").into());
        }
        if let Some(id) = &g.client_id {
            c.insert("client_id".into(), id.clone().into());
        }
        c.insert(names.iat.clone(), now.into());
        c.insert(names.exp.clone(), (now + ttl).into());
        c.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        let (header, key) = match &self.signer {
            Signer::Own { kid, key, .. } => {
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(kid.clone());
                (header, key)
            }
            Signer::Gateway { alg, key, .. } => (Header::new(*alg), key),
        };
        let token = jsonwebtoken::encode(&header, &c, key)?;
        Ok((token, ttl))
    }

    /// The token endpoint's answer for a grant.
    fn token_answer(&self, g: &Grant, ttl: u64, refresh: Option<String>) -> Response {
        match self.sign(g, ttl) {
            Ok((t, ttl)) => token_answer(t, ttl, &g.scope, refresh),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a token");
                oauth_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "cannot sign",
                )
            }
        }
    }

    /// Takes the scopes and roles of a configuration a reload put in place.
    pub fn learn(&self, config: &Config) {
        self.known.store(Arc::new(Known::of(config)));
    }

    /// The roles of the running policy (shown on the login page).
    fn roles(&self) -> String {
        self.known.load().roles.join(", ")
    }

    /// The scopes a request may have: those asked for that this gateway knows, or all of them.
    fn granted_scopes(&self, asked: Option<&str>) -> Vec<String> {
        let known = self.known.load();
        match asked.map(str::split_whitespace) {
            Some(asked) => asked
                .filter(|s| known.scopes_supported.iter().any(|k| k == s))
                .map(String::from)
                .collect(),
            None => known.scopes_supported.clone(),
        }
    }

    /// The API version claim value: the one asked for when allowed, else the newest allowed.
    /// A gateway that checks no API version (`jwt.claims.api_version` unset) gets tokens without
    /// the claim, whatever was asked.
    fn api_version(&self, asked: Option<String>) -> Result<Option<String>, String> {
        if self.claims.api_version.is_none() {
            return Ok(None);
        }
        match asked {
            Some(v) if self.api_versions.contains(&v) => Ok(Some(v)),
            Some(v) => Err(format!(
                "api_version {v:?} is not one the gateway accepts ({})",
                self.api_versions.join(", ")
            )),
            None => Ok(self.api_versions.last().cloned()),
        }
    }
}

/// An OAuth error answer (RFC 6749 5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn token_answer(token: String, ttl: u64, scope: &[String], refresh: Option<String>) -> Response {
    let mut body = json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl});
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    if !scope.is_empty() {
        body["scope"] = scope.join(" ").into();
    }
    (
        StatusCode::OK,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

/// RFC 8414 metadata.
async fn metadata(axum::extract::State(i): axum::extract::State<Arc<Issuer>>) -> Response {
    let u = &i.url;
    Json(json!({
        "issuer": u,
        "authorization_endpoint": format!("{u}/authorize"),
        "token_endpoint": format!("{u}/token"),
        "registration_endpoint": format!("{u}/register"),
        "jwks_uri": format!("{u}/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", exchange::GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": i.known.load().scopes_supported,
        "client_id_metadata_document_supported": true,
    }))
    .into_response()
}

async fn jwks(axum::extract::State(i): axum::extract::State<Arc<Issuer>>) -> Response {
    let keys = match &i.signer {
        Signer::Own { jwk, .. } => vec![jwk.clone()],
        Signer::Gateway { .. } => Vec::new(),
    };
    Json(json!({ "keys": keys })).into_response()
}

/// `POST /token` with JSON: a token for whoever the body names (development scripts).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectRequest {
    user_id: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

/// `POST /token`: JSON for a direct token, a form for the OAuth grant.
async fn token(
    axum::extract::State(i): axum::extract::State<Arc<Issuer>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        if exchange::asks(&body) {
            return exchange::exchange(&i, &body).await;
        }
        if refresh::asks(&body) {
            return refresh::refresh(&i, &body);
        }
        return authorize::exchange(&i, &body);
    }
    if let Some(want) = &i.admin_token {
        let given = headers
            .get("x-issuer-token")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given, want.as_bytes())) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "X-Issuer-Token is missing or wrong",
            );
        }
    }
    let req: DirectRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("body: {e}"),
            )
        }
    };
    if req.user_id.is_empty() || req.user_id.len() > crate::auth::MAX_USER_ID {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "user_id must be 1 to 256 bytes",
        );
    }
    let ttl = req.expires_in_seconds.unwrap_or(i.ttl.as_secs());
    if ttl == 0 || ttl > MAX_TTL {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expires_in_seconds must be between 1 and 86400",
        );
    }
    let api_version = match i.api_version(req.api_version) {
        Ok(v) => v,
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let grant = Grant {
        user: req.user_id,
        roles: req.roles,
        workspace: req.workspace,
        api_version,
        scope: i.granted_scopes(req.scope.as_deref()),
        resource: req.resource,
        client_id: None,
    };
    i.token_answer(&grant, ttl, None)
}
