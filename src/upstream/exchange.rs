//! The caller's token exchanged for one bound to an upstream (`auth: { token_exchange: … }`,
//! RFC 8693): the token endpoint gets the caller's verified token as the subject and the
//! upstream's `audience`, and gives a token the upstream accepts on the caller's behalf. Kept per
//! caller's token until shortly before it expires (a bounded cache keyed by the SHA-256 of the
//! caller's token, never the token itself); dropped when the upstream refuses it.

use super::token::{ask, TokenError};
use crate::config::credentials::TokenExchange;
use http::HeaderValue;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Exchanged tokens kept per upstream (the callers of one busy upstream).
const CACHED: usize = 10_000;

/// One upstream's exchanged tokens.
pub struct Exchanger {
    config: Arc<TokenExchange>,
    scope: String,
    http: reqwest::Client,
    /// SHA-256 of the caller's token → the exchanged token and when to exchange again.
    held: quick_cache::sync::Cache<[u8; 32], (HeaderValue, Instant)>,
}

impl std::fmt::Debug for Exchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanger")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Exchanger {
    pub fn new(config: Arc<TokenExchange>, scope: &str) -> Self {
        Self {
            config,
            scope: scope.to_string(),
            http: super::token::client(),
            held: quick_cache::sync::Cache::new(CACHED),
        }
    }

    /// The `Authorization` value for a request made with the caller's `subject` token.
    pub async fn bearer(&self, subject: &str) -> Result<HeaderValue, TokenError> {
        let key: [u8; 32] = Sha256::digest(subject.as_bytes()).into();
        if let Some((b, renew_at)) = self.held.get(&key) {
            if Instant::now() < renew_at {
                return Ok(b);
            }
        }
        let c = &self.config;
        let mut form = vec![
            ("grant_type", GRANT),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN),
            ("requested_token_type", ACCESS_TOKEN),
            ("audience", c.audience.as_str()),
        ];
        if let Some(s) = &c.scope {
            form.push(("scope", s));
        }
        let client = c
            .client
            .as_ref()
            .map(|(id, secret)| (id.as_str(), secret.as_str(), c.client_auth));
        let (bearer, lifetime) = ask(&self.http, &c.token_url, form, client, &self.scope).await?;
        let renew_at = Instant::now() + lifetime.mul_f64(0.8);
        self.held.insert(key, (bearer.clone(), renew_at));
        Ok(bearer)
    }

    /// Drops the token exchanged for `subject` (the upstream refused it).
    pub fn refused(&self, subject: &str) {
        let key: [u8; 32] = Sha256::digest(subject.as_bytes()).into();
        self.held.remove(&key);
    }
}
