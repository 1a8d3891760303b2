//! Minting tokens with the configured HMAC key, for `mcp-gateway token` (local testing).

use crate::config::JwtSettings;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use std::time::Duration;

/// What goes into a minted token.
pub struct TokenRequest<'a> {
    pub user: &'a str,
    pub roles: &'a [String],
    pub tenant: Option<&'a str>,
    pub ttl: Duration,
    /// OAuth scopes (space-separated) for the `scope` claim.
    pub scope: Option<String>,
}

/// Why no token was signed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(
        "no HS algorithm is configured: tokens for RS/ES/EdDSA come from your identity provider"
    )]
    NoHmacAlgorithm,
    #[error("no JWT secret is configured")]
    NoSecret,
    #[error(transparent)]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token the gateway accepts, with the first configured HS algorithm.
pub fn mint(settings: &JwtSettings, req: &TokenRequest<'_>) -> Result<String, MintError> {
    let alg = settings
        .algorithms
        .iter()
        .copied()
        .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .ok_or(MintError::NoHmacAlgorithm)?;
    let secret = settings.secret.as_deref().ok_or(MintError::NoSecret)?;
    let now = super::now();
    let names = &settings.claims;
    let mut claims = Map::new();
    claims.insert(names.user_id.clone(), Value::from(req.user));
    claims.insert(names.roles.clone(), Value::from(req.roles.to_vec()));
    if let Some(t) = req.tenant {
        claims.insert(names.tenant.clone(), Value::from(t));
    }
    claims.insert(names.iat.clone(), Value::from(now));
    claims.insert(names.exp.clone(), Value::from(now + req.ttl.as_secs()));
    if let Some(s) = req.scope.as_ref().filter(|s| !s.is_empty()) {
        claims.insert("scope".into(), Value::from(s.as_str()));
    }
    if let Some(iss) = &settings.issuer {
        claims.insert("iss".into(), Value::from(iss.as_str()));
    }
    if let Some(aud) = settings.audience.first() {
        claims.insert("aud".into(), Value::from(aud.as_str()));
    }
    if let (Some(claim), Some(v)) = (&names.api_version, settings.allowed_api_versions.last()) {
        claims.insert(claim.clone(), Value::from(v.as_str()));
    }
    Ok(encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}
