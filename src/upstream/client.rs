//! The gateway's own MCP client toward its upstreams: the sessions it opens for itself (bridged
//! 2026-07-28 clients, tool registry reads, background jobs), what a 2026-07-28-only upstream
//! says of itself (`server/discover`), and the headers such a request carries. One HTTP client
//! per scope (its upstream TLS) or a shared one; every request carries the upstream's shared
//! secret, never a client's token.

use super::{Picked, ScopeUpstreams};
use crate::error::GatewayError;
use crate::protocol::method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An upstream session the gateway opened for bridged requests.
pub struct Opened {
    /// The upstream's `Mcp-Session-Id`, when it keeps sessions.
    pub session: Option<String>,
    /// Its `initialize` result (capabilities, server info, instructions).
    pub init: Value,
}

/// The gateway's own upstream sessions (older upstreams) and discovery results (2026-07-28-only
/// upstreams), one per upstream address.
pub struct Pool {
    opened: Mutex<HashMap<String, Arc<Opened>>>,
    /// Sessions that declare what clients can be asked (elicitation, sampling, roots): those
    /// 2026-07-28 clients are bridged in.
    asking: Mutex<HashMap<String, Arc<Opened>>>,
    discovered: Mutex<HashMap<String, Arc<Opened>>>,
    http: reqwest::Client,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            opened: Mutex::default(),
            asking: Mutex::default(),
            discovered: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

/// Why a session of the gateway's own could not be opened or an upstream not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum OwnError {
    /// The request failed (its URL left out: it may carry an internal address).
    #[error("{0}")]
    Http(reqwest::Error),
    #[error("{method} answered {status}")]
    Status {
        method: &'static str,
        status: reqwest::StatusCode,
    },
    #[error("{0} gave no result")]
    NoResult(&'static str),
}

impl From<reqwest::Error> for OwnError {
    fn from(e: reqwest::Error) -> Self {
        OwnError::Http(e.without_url())
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Opened>>> {
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `table` holds for `picked`, made by `make` when it holds nothing (no lock is held
    /// while `make` talks to the upstream). `what` names the step in the client's error.
    async fn cached(
        &self,
        table: &Mutex<HashMap<String, Arc<Opened>>>,
        picked: &Picked,
        what: &'static str,
        make: impl std::future::Future<Output = Result<Opened, OwnError>>,
    ) -> Result<Arc<Opened>, GatewayError> {
        let lock = || table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = lock().get(&picked.addr) {
            return Ok(o.clone());
        }
        let opened = Arc::new(make.await.map_err(|e| {
            tracing::warn!(upstream = %picked.addr, error = %e, step = what, "cannot bridge to an upstream");
            GatewayError::UpstreamFailed(format!("the upstream could not be {what}").into())
        })?);
        lock().insert(picked.addr.clone(), opened.clone());
        Ok(opened)
    }

    /// The session on `picked` for the gateway's own calls (jobs: no one to ask), opened now when
    /// there is none.
    pub async fn get(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        version: &str,
    ) -> Result<Arc<Opened>, GatewayError> {
        let make = self.open(scope, picked, version, None);
        self.cached(&self.opened, picked, "initialized", make).await
    }

    /// The session on `picked` 2026-07-28 clients are bridged in: it declares elicitation,
    /// sampling and roots, which `translate::asked` passes on to the clients.
    pub async fn get_asking(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        version: &str,
    ) -> Result<Arc<Opened>, GatewayError> {
        let make = async {
            let asking =
                json!({"elicitation": {"form": {}, "url": {}}, "sampling": {}, "roots": {}});
            self.open_declaring(scope, picked, version, None, asking)
                .await
        };
        self.cached(&self.asking, picked, "initialized", make).await
    }

    /// What a 2026-07-28-only upstream says of itself (`server/discover`), asked once per upstream.
    pub async fn discovered(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
    ) -> Result<Arc<Opened>, GatewayError> {
        let make = async {
            Ok(Opened {
                session: None,
                init: self.discover(scope, picked).await?,
            })
        };
        self.cached(&self.discovered, picked, "discovered", make)
            .await
    }

    /// A request of the gateway's own to `picked`: the scope's HTTP client (its upstream TLS, or
    /// the shared one) and the upstream's shared secret.
    fn request(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        method: reqwest::Method,
    ) -> reqwest::RequestBuilder {
        let r = scope
            .pool
            .own_client()
            .unwrap_or(&self.http)
            .request(method, picked.target.url())
            .header("x-gateway-auth", scope.auth_header.clone());
        picked.with_headers(r)
    }

    /// A POST of the gateway's own to `picked`, as the upstream expects any request.
    pub fn post(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        self.request(scope, picked, reqwest::Method::POST)
            .timeout(Duration::from_secs(10))
            .header("accept", "application/json, text/event-stream")
            .json(body)
    }

    /// Ends a session the gateway opened for itself (best effort: an upstream may not support
    /// `DELETE`).
    pub async fn close(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        (version, session): (&str, &str),
        agent: &'static str,
    ) {
        let _ = self
            .request(scope, picked, reqwest::Method::DELETE)
            .timeout(Duration::from_secs(5))
            .header("user-agent", agent)
            .header("mcp-protocol-version", version)
            .header("mcp-session-id", session)
            .send()
            .await;
    }

    async fn discover(&self, scope: &ScopeUpstreams, picked: &Picked) -> Result<Value, OwnError> {
        let body = json!({"jsonrpc": "2.0", "id": "mcp-gateway-discover", "method": method::SERVER_DISCOVER,
            "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": crate::protocol::MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {}}}});
        let resp = self
            .post(scope, picked, &body)
            .header("mcp-protocol-version", crate::protocol::MODERN_VERSION)
            .header("mcp-method", method::SERVER_DISCOVER)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(OwnError::Status {
                method: method::SERVER_DISCOVER,
                status: resp.status(),
            });
        }
        let text = resp.text().await?;
        answer_of(&text).ok_or(OwnError::NoResult(method::SERVER_DISCOVER))
    }

    /// Forgets a session the upstream no longer knows; the next request opens a new one.
    pub fn forget(&self, addr: &str) {
        self.lock().remove(addr);
        (self.asking.lock().unwrap_or_else(|p| p.into_inner())).remove(addr);
    }

    /// Opens an upstream session of the gateway's own (`initialize`, then
    /// `notifications/initialized`); `agent` is the `User-Agent` its requests carry, when they
    /// must be told apart (the tool registry's reads).
    pub async fn open(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        version: &str,
        agent: Option<&'static str>,
    ) -> Result<Opened, OwnError> {
        self.open_declaring(scope, picked, version, agent, json!({}))
            .await
    }

    /// [`Pool::open`], declaring `capabilities` as the session's client capabilities.
    async fn open_declaring(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        version: &str,
        agent: Option<&'static str>,
        capabilities: Value,
    ) -> Result<Opened, OwnError> {
        let post = |body: Value, session: Option<&str>| {
            let mut r = self.post(scope, picked, &body);
            if let Some(a) = agent {
                r = r.header("user-agent", a);
            }
            if let Some(s) = session {
                r = r
                    .header("mcp-session-id", s)
                    .header("mcp-protocol-version", version);
            }
            r.send()
        };
        let init = json!({"jsonrpc": "2.0", "id": "mcp-gateway-init", "method": method::INITIALIZE, "params": {
            "protocolVersion": version,
            "capabilities": capabilities,
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")}}});
        let resp = post(init, None).await?;
        if !resp.status().is_success() {
            return Err(OwnError::Status {
                method: method::INITIALIZE,
                status: resp.status(),
            });
        }
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await?;
        let result = answer_of(&text).ok_or(OwnError::NoResult(method::INITIALIZE))?;
        let note = json!({"jsonrpc": "2.0", "method": method::INITIALIZED});
        post(note, session.as_deref()).await?;
        Ok(Opened {
            session,
            init: result,
        })
    }
}

/// The caller a request of the gateway's own is made for, as the upstream hears it on a proxied
/// request: the request id, `X-User-ID`, `X-Tenant-ID` and the trace's `traceparent` (never the
/// client's token).
pub fn for_caller(
    r: reqwest::RequestBuilder,
    request_id: &str,
    user: &str,
    tenant: Option<&str>,
    traceparent: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut r = r
        .header("x-request-id", request_id)
        .header("x-user-id", user);
    if let Some(t) = tenant {
        r = r.header("x-tenant-id", t);
    }
    match traceparent {
        Some(t) => r.header("traceparent", t),
        None => r,
    }
}

/// The `result` of a JSON-RPC answer given as JSON or as an SSE stream.
pub fn answer_of(text: &str) -> Option<Value> {
    let whole = serde_json::from_str::<Value>(text).ok();
    let from_events = || {
        crate::sse::events_in(text.as_bytes())
            .filter_map(|d| serde_json::from_slice::<Value>(&d).ok())
            .find(|v| v.get("result").is_some())
    };
    whole.or_else(from_events)?.get("result").cloned()
}

/// How a request of the gateway's own speaks to an upstream: the revision and, toward an older
/// upstream, the gateway's session there (`Some`), or statelessly in 2026-07-28 (`None`).
pub type OwnSession = Option<(&'static str, Option<String>)>;

/// The headers `session` asks of a request for `method`: the revision and session id, or the
/// 2026-07-28 routing header.
pub fn in_session(
    r: reqwest::RequestBuilder,
    session: &OwnSession,
    method: &str,
) -> reqwest::RequestBuilder {
    match session {
        Some((version, s)) => {
            let r = r.header("mcp-protocol-version", *version);
            match s {
                Some(s) => r.header("mcp-session-id", s.as_str()),
                None => r,
            }
        }
        None => r
            .header("mcp-protocol-version", crate::protocol::MODERN_VERSION)
            .header("mcp-method", method),
    }
}

#[cfg(test)]
mod tests {
    use super::answer_of;

    #[test]
    fn initialize_answers_as_json_or_events() {
        let r = answer_of(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}"#);
        assert_eq!(r.unwrap()["protocolVersion"], "2025-11-25");
        let r = answer_of(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":1}}\n\n",
        );
        assert_eq!(r.unwrap()["a"], 1);
        assert!(answer_of("nonsense").is_none());
    }
}
