//! Keys from a JWKS URL: fetched in the background every `jwks_refresh`, picked by `kid`, and
//! fetched once more on demand when a token names a `kid` not seen yet (the issuer rotated its
//! keys), at most once a second so unknown-`kid` tokens cannot turn the gateway into a fetch loop.

use super::AuthError;
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Key {
    key: DecodingKey,
    alg: Option<String>,
}

/// Why the key set could not be (re)loaded; the keys already loaded stay in use.
#[derive(Debug, thiserror::Error)]
enum JwksError {
    #[error("{0}")]
    Fetch(reqwest::Error),
    #[error("not a JWKS document: {0}")]
    NotJwks(reqwest::Error),
}

/// A cached JWKS document.
pub struct Jwks {
    url: String,
    refresh: Duration,
    client: reqwest::Client,
    keys: ArcSwap<HashMap<String, Key>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(url: String, refresh: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            url,
            refresh,
            client,
            keys: ArcSwap::from_pointee(HashMap::new()),
            last_fetch: Default::default(),
        }
    }

    /// Refreshes forever, every `refresh`; for a background task.
    /// Refreshes every `refresh` for as long as the key set is in use (a reload that changes the
    /// JWT settings drops it once the last request on the old settings is done).
    pub async fn refresh_while_used(this: Weak<Self>) {
        loop {
            let refresh = {
                let Some(jwks) = this.upgrade() else {
                    return;
                };
                if let Err(e) = jwks.fetch().await {
                    tracing::warn!(url = %jwks.url, error = %e, "JWKS refresh failed; keeping the previous keys");
                }
                jwks.refresh
            };
            tokio::time::sleep(refresh).await;
        }
    }

    async fn fetch(&self) -> Result<(), JwksError> {
        *self.last_fetch.lock().await = Some(Instant::now());
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| JwksError::Fetch(e.without_url()))?
            .json()
            .await
            .map_err(|e| JwksError::NotJwks(e.without_url()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    let alg = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
                    keys.insert(kid, Key { key, alg });
                }
                Err(e) => {
                    tracing::warn!(kid, error = %e, "ignoring a JWKS key that cannot be used")
                }
            }
        }
        tracing::info!(url = %self.url, keys = keys.len(), "JWKS loaded");
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// The key a token names; an unknown `kid` triggers one refresh.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let kid = kid.ok_or(AuthError::NoKid)?;
        if let Some(k) = self.lookup(kid, alg)? {
            return Ok(k);
        }
        {
            let mut last = self.last_fetch.lock().await;
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                *last = None;
                drop(last);
                if let Err(e) = self.fetch().await {
                    tracing::warn!(url = %self.url, error = %e, "JWKS fetch for an unknown kid failed");
                }
            }
        }
        self.lookup(kid, alg)?.ok_or(AuthError::UnknownKey)
    }

    fn lookup(&self, kid: &str, alg: Algorithm) -> Result<Option<DecodingKey>, AuthError> {
        let keys = self.keys.load();
        match keys.get(kid) {
            Some(k) => {
                if k.key.family() != alg.family() {
                    return Err(AuthError::AlgorithmMismatch(alg));
                }
                if let Some(a) = &k.alg {
                    if *a != format!("{alg:?}") {
                        return Err(AuthError::AlgorithmMismatch(alg));
                    }
                }
                Ok(Some(k.key.clone()))
            }
            None => Ok(None),
        }
    }
}
