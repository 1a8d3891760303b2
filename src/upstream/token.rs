//! The gateway's own machine token for an upstream (`auth: oauth_client_credentials`): asked of the
//! token endpoint with the client credentials grant (RFC 6749 §4.4), kept until shortly before it
//! expires, renewed in the background while its pool lives, and dropped when the upstream refuses
//! it (the request is then tried once more with a new one). The token is only ever a sensitive
//! header value; the client secret goes only to the token endpoint.

use crate::config::credentials::ClientCredentials;
use crate::config::file::TokenClientAuth;
use http::HeaderValue;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token's lifetime when the endpoint does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// How long a token endpoint may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client of token requests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// Why no token could be had (never naming a secret or the token).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token endpoint could not be reached: {0}")]
    Http(reqwest::Error),
    #[error("the token endpoint answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the token endpoint's answer has no usable access_token")]
    Answer,
}

struct Held {
    bearer: HeaderValue,
    /// When it should be renewed (before it expires).
    renew_at: Instant,
    expires_at: Instant,
}

/// Asks a token endpoint (RFC 6749 §3.2) with `form`, the client authenticated as configured:
/// the `Authorization` value of the token it gives and the token's lifetime. Counted per scope.
pub async fn ask(
    http: &reqwest::Client,
    url: &str,
    mut form: Vec<(&str, &str)>,
    client: Option<(&str, &str, TokenClientAuth)>,
    scope: &str,
) -> Result<(HeaderValue, Duration), TokenError> {
    let mut req = http.post(url);
    match client {
        Some((id, secret, TokenClientAuth::Basic)) => req = req.basic_auth(id, Some(secret)),
        Some((id, secret, TokenClientAuth::Post)) => {
            form.push(("client_id", id));
            form.push(("client_secret", secret));
        }
        None => {}
    }
    let result = async {
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenError::Http(e.without_url()))?;
        if !resp.status().is_success() {
            return Err(TokenError::Status(resp.status()));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| TokenError::Http(e.without_url()))?;
        let token = body["access_token"].as_str().ok_or(TokenError::Answer)?;
        let mut bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| TokenError::Answer)?;
        bearer.set_sensitive(true);
        let lifetime = body["expires_in"]
            .as_u64()
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        Ok((bearer, lifetime))
    }
    .await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    crate::metrics::UPSTREAM_TOKENS
        .with_label_values(&[scope, outcome])
        .inc();
    result.inspect_err(|e| {
        tracing::warn!(scope, error = %e, "cannot get a token for an upstream");
    })
}

/// One upstream's machine token.
pub struct MachineToken {
    config: Arc<ClientCredentials>,
    /// The scope, for logs and metrics.
    scope: String,
    http: reqwest::Client,
    held: Mutex<Option<Held>>,
    /// One fetch at a time; the others wait for its token.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MachineToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineToken")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl MachineToken {
    pub fn new(config: Arc<ClientCredentials>, scope: &str) -> Self {
        Self {
            config,
            scope: scope.to_string(),
            http: client(),
            held: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token while it has not expired (for requests that cannot wait for a fetch).
    pub fn cached(&self) -> Option<HeaderValue> {
        let held = self.lock();
        let h = held.as_ref()?;
        (Instant::now() < h.expires_at).then(|| h.bearer.clone())
    }

    fn fresh(&self) -> Option<HeaderValue> {
        let held = self.lock();
        let h = held.as_ref()?;
        (Instant::now() < h.renew_at).then(|| h.bearer.clone())
    }

    /// The `Authorization` value to send: the held token, or a new one.
    pub async fn bearer(&self) -> Result<HeaderValue, TokenError> {
        if let Some(b) = self.fresh() {
            return Ok(b);
        }
        let _one = self.fetching.lock().await;
        if let Some(b) = self.fresh() {
            return Ok(b);
        }
        self.fetch().await
    }

    /// Drops `refused` (the upstream answered 401 to it): the next request gets a new token.
    pub fn refused(&self, refused: &HeaderValue) {
        let mut held = self.lock();
        if held.as_ref().is_some_and(|h| h.bearer == refused) {
            *held = None;
        }
    }

    async fn fetch(&self) -> Result<HeaderValue, TokenError> {
        let c = &self.config;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(s) = &c.scope {
            form.push(("scope", s));
        }
        if let Some(a) = &c.audience {
            form.push(("audience", a));
        }
        let client = Some((
            c.client_id.as_str(),
            c.client_secret.as_str(),
            c.client_auth,
        ));
        let (bearer, lifetime) = ask(&self.http, &c.token_url, form, client, &self.scope).await?;
        let now = Instant::now();
        *self.lock() = Some(Held {
            bearer: bearer.clone(),
            // Renewed at 80% of its life: requests never carry one about to expire.
            renew_at: now + lifetime.mul_f64(0.8),
            expires_at: now + lifetime,
        });
        Ok(bearer)
    }

    /// Keeps the token fresh while `alive` (the pool) exists and is not stopped: renewed at 80%
    /// of its life, retried every few seconds while the endpoint fails.
    pub async fn renew_while(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let wait = match self.bearer().await {
                Ok(_) => {
                    let held = self.lock();
                    held.as_ref()
                        .map_or(Duration::from_secs(5), |h| {
                            h.renew_at.saturating_duration_since(Instant::now())
                        })
                        .max(Duration::from_millis(200))
                }
                Err(_) => Duration::from_secs(5),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
