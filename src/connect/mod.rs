//! Users' own logins at upstreams (`auth: per_user_oauth`). A vendor's MCP server wants the
//! user's token at that vendor, never the gateway's and never the client's own. The gateway keeps
//! one login per (user, tenant, upstream), obtained on its consent page (`proxy::connect`) with
//! the authorization-code flow and PKCE against the upstream's own authorization server, found
//! through the upstream's protected-resource metadata.
//!
//! On the request path [`Vault::bearer`] gives the user's token from a small in-memory cache
//! (re-read from the store every few seconds, so a revocation by another replica or by `mcp-gateway
//! credentials revoke` takes effect), refreshes it with its refresh token before it expires (at
//! 80% of its life, without the user), and says when there is none: the proxy then answers with
//! the URL the user signs in at. Tokens are sealed with AES-256-GCM under the gateway's secrets
//! key (`MCP_GATEWAY_SECRETS_KEY`; a key of the process's own when they stay in memory), each
//! envelope bound to its row.

pub mod cli;
pub mod link;
pub mod oauth;
pub mod store;

use crate::error::StorageError;
use aes_gcm::KeyInit;
use arc_swap::ArcSwap;
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Filter, Row, Store};

/// How long a cached login is used before the store is asked again (revocations elsewhere).
const RECHECK: Duration = Duration::from_secs(5);
/// How long the store may take on the request path.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Logins cached per instance.
const CACHED: usize = 100_000;
/// A token's lifetime when the authorization server does not say.
const DEFAULT_LIFETIME: i64 = 3600;

/// Why a login could not be used or kept (never naming a token).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the store of upstream logins: {0}")]
    Store(#[from] StorageError),
    #[error("the store of upstream logins did not answer in time")]
    Timeout,
    #[error("a stored login cannot be opened with the configured keys: {0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("no key to seal upstream logins")]
    NoKey,
    #[error(transparent)]
    Oauth(#[from] oauth::OauthError),
}

/// Whose login: the gateway identity of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Who {
    pub user: String,
    /// Empty when the caller has no tenant.
    pub tenant: String,
}

impl Who {
    pub fn of(identity: &crate::auth::Identity) -> Self {
        Who {
            user: identity.user.clone(),
            tenant: identity.tenant.clone().unwrap_or_default(),
        }
    }
}

/// What a row seals: the tokens, and the client and endpoint that refresh them.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access: String,
    #[serde(default)]
    refresh: Option<String>,
    resource: String,
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
}

impl Sealed {
    fn client(&self) -> oauth::Client {
        oauth::Client {
            server: oauth::Server {
                issuer: self.issuer.clone(),
                authorization_endpoint: self.authorization_endpoint.clone(),
                token_endpoint: self.token_endpoint.clone(),
                registration_endpoint: None,
            },
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
        }
    }
}

type Key = (String, String, String);

fn key(who: &Who, upstream: &str) -> Key {
    (who.user.clone(), who.tenant.clone(), upstream.to_string())
}

/// The gateway as a client of one authorization server, for one purpose: signing users in to the
/// gateway itself, or to one upstream (its resource and the scopes to ask for).
#[derive(Debug)]
pub struct Registration {
    pub client: oauth::Client,
    /// The upstream's resource identifier (empty for the gateway's own sign-in).
    pub resource: String,
    pub scope: Option<String>,
}

#[derive(Clone)]
struct Hot {
    bearer: HeaderValue,
    renew_at: i64,
    checked: Instant,
}

/// The gateway's users' upstream logins. Built once, kept across reloads.
pub struct Vault {
    store: Store,
    keys: ArcSwap<Vec<(String, [u8; 32])>>,
    hot: quick_cache::sync::Cache<Key, Hot>,
    /// Logins an upstream refused: refreshed (or dropped) before they are used again.
    stale: Mutex<HashSet<Key>>,
    /// Registered clients, by what they are for (`gateway`, or `upstream:NAME`).
    clients: Mutex<HashMap<String, Arc<Registration>>>,
    http: reqwest::Client,
    /// One refresh at a time (a refresh token works once).
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("memory", &self.store.is_memory())
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    crate::auth::now() as i64
}

fn aad(who: &Who, upstream: &str) -> Vec<u8> {
    let mut a = b"mcp-gateway upstream login v1\0".to_vec();
    for part in [&who.user, &who.tenant, upstream] {
        a.extend_from_slice(part.as_bytes());
        a.push(0);
    }
    a
}

fn bearer_of(access: &str) -> Option<HeaderValue> {
    let mut b = HeaderValue::from_str(&format!("Bearer {access}")).ok()?;
    b.set_sensitive(true);
    Some(b)
}

/// Counts a login event of a scope.
pub fn count(upstream: &str, event: &str) {
    crate::metrics::UPSTREAM_LOGINS
        .with_label_values(&[upstream, event])
        .inc();
}

impl Vault {
    /// The vault for a configuration: in the database when the audit goes there.
    pub fn new(config: &crate::config::Config) -> Result<Self, StorageError> {
        let store = Store::for_audit(&config.audit)?;
        let vault = Vault {
            store,
            keys: ArcSwap::from_pointee(Vec::new()),
            hot: quick_cache::sync::Cache::new(CACHED),
            stale: Mutex::default(),
            clients: Mutex::default(),
            http: crate::upstream::token::client(),
            refreshing: tokio::sync::Mutex::new(()),
        };
        vault.use_keys(&config.login_keys);
        Ok(vault)
    }

    /// Takes the keys of a (re)loaded configuration. Without any, logins kept in memory are
    /// sealed under a key of this process's own.
    pub fn use_keys(&self, keys: &[(String, [u8; 32])]) {
        if !keys.is_empty() {
            self.keys.store(Arc::new(keys.to_vec()));
        } else if self.keys.load().is_empty() && self.store.is_memory() {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            self.keys.store(Arc::new(vec![("process".to_string(), k)]));
        }
    }

    fn seal(&self, who: &Who, upstream: &str, s: &Sealed) -> Result<String, VaultError> {
        let keys = self.keys.load();
        let (id, key) = keys.first().ok_or(VaultError::NoKey)?;
        let plain = serde_json::to_vec(s).map_err(|_| VaultError::NoKey)?;
        let cipher = aes_gcm::Aes256Gcm::new(key.into());
        crate::seal::envelope(id, &cipher, &aad(who, upstream), &plain).ok_or(VaultError::NoKey)
    }

    fn open(&self, r: &Row) -> Result<Sealed, VaultError> {
        let who = Who {
            user: r.user.clone(),
            tenant: r.tenant.clone(),
        };
        let plain = crate::seal::open_for(&r.sealed, &self.keys.load(), &aad(&who, &r.upstream))?;
        serde_json::from_str(&plain).map_err(|_| crate::seal::SealError::NotAnEnvelope.into())
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, VaultError> {
        match tokio::time::timeout(STORE_TIMEOUT, f).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(VaultError::Timeout),
        }
    }

    /// The `Authorization` value for `who` at `upstream`, or `None` when the user has to sign
    /// in (no login, or one that can no longer be refreshed).
    pub async fn bearer(
        &self,
        who: &Who,
        upstream: &str,
    ) -> Result<Option<HeaderValue>, VaultError> {
        let key = key(who, upstream);
        let stale = self.is_stale(&key);
        if !stale {
            if let Some(h) = self.hot.get(&key) {
                if h.checked.elapsed() < RECHECK && now() < h.renew_at {
                    return Ok(Some(h.bearer));
                }
            }
        }
        let Some(row) = self.timed(self.store.get(&key.0, &key.1, &key.2)).await? else {
            self.hot.remove(&key);
            return Ok(None);
        };
        let renew_at = row.updated_at + (row.expires_at - row.updated_at) * 4 / 5;
        let sealed = self.open(&row)?;
        if !stale && now() < renew_at {
            let Some(bearer) = bearer_of(&sealed.access) else {
                return Ok(None);
            };
            let hot = Hot {
                bearer: bearer.clone(),
                renew_at,
                checked: Instant::now(),
            };
            self.hot.insert(key, hot);
            return Ok(Some(bearer));
        }
        self.refresh(who, upstream, row, sealed).await
    }

    /// Refreshes a login due (or refused); drops it when it cannot be refreshed any more.
    async fn refresh(
        &self,
        who: &Who,
        upstream: &str,
        row: Row,
        sealed: Sealed,
    ) -> Result<Option<HeaderValue>, VaultError> {
        let key = key(who, upstream);
        let _one = self.refreshing.lock().await;
        // Another request may have refreshed it meanwhile.
        if let Some(h) = self.hot.get(&key) {
            let stale = self.is_stale(&key);
            if !stale && now() < h.renew_at {
                return Ok(Some(h.bearer));
            }
        }
        let drop = |why: &str| {
            tracing::info!(upstream, user = %who.user, why, "an upstream login ends: the user signs in again");
        };
        let Some(refresh) = sealed.refresh.clone() else {
            if now() < row.expires_at && !self.is_stale(&key) {
                return Ok(bearer_of(&sealed.access));
            }
            drop("expired without a refresh token");
            self.forget(&key).await?;
            return Ok(None);
        };
        match sealed
            .client()
            .refresh(&self.http, &refresh, &sealed.resource)
            .await
        {
            Ok(t) => {
                count(upstream, "refreshed");
                let next = Sealed {
                    access: t.access_token.clone(),
                    refresh: t.refresh_token.or(Some(refresh)),
                    ..sealed
                };
                let bearer = self
                    .keep(who, upstream, &next, t.expires_in, row.created_at)
                    .await?;
                Ok(Some(bearer))
            }
            Err(oauth::OauthError::Refused(code)) => {
                count(upstream, "refresh_refused");
                drop(&format!(
                    "the authorization server refused the refresh ({code})"
                ));
                self.forget(&key).await?;
                Ok(None)
            }
            Err(e) => {
                count(upstream, "refresh_failed");
                tracing::warn!(upstream, error = %e, "cannot refresh an upstream login");
                // Still valid: used until it expires; the next request tries again.
                if now() < row.expires_at && !self.is_stale(&key) {
                    return Ok(bearer_of(&sealed.access));
                }
                Err(e.into())
            }
        }
    }

    fn stale(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        self.stale.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_stale(&self, key: &Key) -> bool {
        self.stale().contains(key)
    }

    async fn forget(&self, key: &Key) -> Result<(), VaultError> {
        self.hot.remove(key);
        self.stale().remove(key);
        let f = Filter {
            user: Some(&key.0),
            tenant: Some(&key.1),
            upstream: Some(&key.2),
        };
        self.timed(self.store.delete(&f)).await?;
        Ok(())
    }

    /// Seals and stores a login; returns its `Authorization` value.
    async fn keep(
        &self,
        who: &Who,
        upstream: &str,
        s: &Sealed,
        expires_in: Option<u64>,
        created_at: i64,
    ) -> Result<HeaderValue, VaultError> {
        let t = now();
        let lifetime = expires_in.map_or(DEFAULT_LIFETIME, |e| e.min(i64::MAX as u64) as i64);
        let row = Row {
            user: who.user.clone(),
            tenant: who.tenant.clone(),
            upstream: upstream.to_string(),
            sealed: self.seal(who, upstream, s)?,
            refreshable: s.refresh.is_some(),
            expires_at: t.saturating_add(lifetime),
            created_at,
            updated_at: t,
        };
        let renew_at = t + lifetime * 4 / 5;
        self.timed(self.store.put(row)).await?;
        let key = key(who, upstream);
        self.stale().remove(&key);
        let bearer = bearer_of(&s.access).ok_or(VaultError::Oauth(oauth::OauthError::Answer(
            "the token endpoint".into(),
        )))?;
        let hot = Hot {
            bearer: bearer.clone(),
            renew_at,
            checked: Instant::now(),
        };
        self.hot.insert(key, hot);
        Ok(bearer)
    }

    /// Keeps the tokens the user's sign-in at `upstream` gave.
    pub async fn signed_in(
        &self,
        who: &Who,
        upstream: &str,
        client: &oauth::Client,
        resource: &str,
        t: oauth::Tokens,
    ) -> Result<(), VaultError> {
        let s = Sealed {
            access: t.access_token,
            refresh: t.refresh_token,
            resource: resource.to_string(),
            issuer: client.server.issuer.clone(),
            authorization_endpoint: client.server.authorization_endpoint.clone(),
            token_endpoint: client.server.token_endpoint.clone(),
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone(),
        };
        self.keep(who, upstream, &s, t.expires_in, now()).await?;
        count(upstream, "signed_in");
        tracing::info!(upstream, user = %who.user, "a user signed in to an upstream");
        Ok(())
    }

    /// The upstream answered 401 to the user's token: refreshed (or dropped) before next use.
    pub fn refused(&self, who: &Who, upstream: &str) {
        let key = key(who, upstream);
        self.hot.remove(&key);
        self.stale().insert(key);
    }

    /// Deletes logins; returns how many went.
    pub async fn revoke(&self, f: &Filter<'_>) -> Result<u64, VaultError> {
        let n = self.timed(self.store.delete(f)).await?;
        // Which cached entries matched is not worth finding out: everyone re-reads the store.
        self.hot.clear();
        if let Some(u) = f.upstream {
            for _ in 0..n {
                count(u, "revoked");
            }
        }
        Ok(n)
    }

    /// The logins `f` covers (the rows, never their tokens).
    pub async fn list(&self, f: &Filter<'_>) -> Result<Vec<Row>, VaultError> {
        self.timed(self.store.list(f)).await
    }

    /// The registration for `purpose`, made with `register` the first time.
    pub async fn client<F, Fut>(
        &self,
        purpose: &str,
        register: F,
    ) -> Result<Arc<Registration>, VaultError>
    where
        F: FnOnce(reqwest::Client) -> Fut,
        Fut: std::future::Future<Output = Result<Registration, oauth::OauthError>>,
    {
        if let Some(c) = self.registered(purpose) {
            return Ok(c);
        }
        let c = Arc::new(register(self.http.clone()).await?);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        Ok(clients.entry(purpose.to_string()).or_insert(c).clone())
    }

    /// The registration for `purpose`, when made.
    pub fn registered(&self, purpose: &str) -> Option<Arc<Registration>> {
        (self.clients.lock().unwrap_or_else(|p| p.into_inner()))
            .get(purpose)
            .cloned()
    }

    /// The HTTP client of the vault's OAuth requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}
