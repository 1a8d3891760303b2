//! 2026-07-28 clients on upstreams that speak only an older revision (`upstream_version:` on the
//! scope). The client is stateless; the upstream wants an `initialize` and, when it keeps sessions,
//! its session id on every request. So the gateway opens one upstream session per upstream
//! itself (kept in a small pool, opened again when the upstream forgets it), sends each bridged
//! request in it with the upstream's revision in `MCP-Protocol-Version`, answers `server/discover`
//! from what that `initialize` told it, and stamps `resultType: "complete"` on results.
//!
//! Not translated: server-to-client requests (sampling, elicitation, roots) — the gateway's own
//! `initialize` declares no client capabilities, so an upstream that follows the protocol never
//! sends them — and 2025 clients on upstreams that speak only 2026-07-28.

pub mod up;

use super::ctx::RequestCtx;
use super::filter::cache::{ListCache, View};
use super::visible::{self, Visible};
use crate::error::GatewayError;
use crate::session::{user_hash, SessionBinding};
use crate::upstream::{Picked, ScopeUpstreams};
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
    discovered: Mutex<HashMap<String, Arc<Opened>>>,
    http: reqwest::Client,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            opened: Mutex::default(),
            discovered: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
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
        make: impl std::future::Future<Output = Result<Opened, String>>,
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

    /// The session on `picked`, opened now when there is none.
    pub(crate) async fn get(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        version: &str,
    ) -> Result<Arc<Opened>, GatewayError> {
        let make = self.open(scope, picked, version, None);
        self.cached(&self.opened, picked, "initialized", make).await
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
        scope
            .pool
            .own_client()
            .unwrap_or(&self.http)
            .request(method, picked.target.url())
            .header("x-gateway-auth", scope.auth_header.clone())
    }

    /// A POST of the gateway's own to `picked`, as the upstream expects any request.
    pub(crate) fn post(
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
    pub(crate) async fn close(
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

    async fn discover(&self, scope: &ScopeUpstreams, picked: &Picked) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": "mcp-gateway-discover", "method": "server/discover",
            "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": crate::jsonrpc::MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {}}}});
        let resp = self
            .post(scope, picked, &body)
            .header("mcp-protocol-version", crate::jsonrpc::MODERN_VERSION)
            .header("mcp-method", "server/discover")
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("server/discover answered {}", resp.status()));
        }
        let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
        answer_of(&text).ok_or_else(|| "server/discover gave no result".to_string())
    }

    /// Forgets a session the upstream no longer knows; the next request opens a new one.
    pub fn forget(&self, addr: &str) {
        self.lock().remove(addr);
    }

    /// Opens an upstream session of the gateway's own (`initialize`, then
    /// `notifications/initialized`); `agent` is the `User-Agent` its requests carry, when they
    /// must be told apart (the tool registry's reads).
    pub(crate) async fn open(
        &self,
        scope: &ScopeUpstreams,
        picked: &Picked,
        version: &str,
        agent: Option<&'static str>,
    ) -> Result<Opened, String> {
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
        let init = json!({"jsonrpc": "2.0", "id": "mcp-gateway-init", "method": "initialize", "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")}}});
        let resp = post(init, None)
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("initialize answered {}", resp.status()));
        }
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
        let result = answer_of(&text).ok_or("initialize gave no result")?;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(note, session.as_deref())
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok(Opened {
            session,
            init: result,
        })
    }
}

/// The `result` of a JSON-RPC answer given as JSON or as an SSE stream.
pub(crate) fn answer_of(text: &str) -> Option<Value> {
    let whole = serde_json::from_str::<Value>(text).ok();
    let from_events = || {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("result").is_some())
    };
    whole.or_else(from_events)?.get("result").cloned()
}

/// For a 2026-07-28 request on a bridged scope: picks the upstream and puts the request in the
/// gateway's session there. Nothing for other requests.
pub async fn prepare(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let caller = ctx.admitted()?;
    // Decided before anything is cloned: every request passes here.
    let Some(version) = caller
        .scope
        .scope
        .upstream_version
        .filter(|v| ctx.is_modern() && *v != crate::jsonrpc::MODERN_VERSION)
    else {
        return Ok(());
    };
    let scope = caller.scope.clone();
    let picked = scope
        .select(caller.identity.user.as_bytes(), &ctx.tried)
        .ok_or_else(|| GatewayError::NoHealthyUpstream(scope.scope.name.clone()))?;
    let hash = user_hash(&caller.identity.user, caller.identity.tenant.as_deref());
    let opened = ctx.rt.bridged.get(&scope, &picked, version).await?;
    if let (Some(s), Some(caller)) = (&opened.session, ctx.caller.as_mut()) {
        caller.session = Some(SessionBinding {
            scope: scope.scope.name.clone(),
            upstream: picked.addr.clone(),
            upstream_session: s.clone(),
            user_hash: hash,
        });
    }
    ctx.picked = Some(picked);
    ctx.bridged = Some((version, opened));
    Ok(())
}

/// After the body is allowed, for a request bridged either way: the status and body of what the
/// gateway answers itself, or `None` when the (rewritten) request goes to the upstream.
pub async fn answer_here(
    ctx: &mut RequestCtx,
    body: &[u8],
) -> Result<Option<(u16, Vec<u8>)>, GatewayError> {
    if let Some(answer) = discover_answer(ctx, body)? {
        return Ok(Some((200, answer)));
    }
    if !up::applies(ctx) {
        return Ok(None);
    }
    Ok(match up::prepare(ctx, body).await? {
        None => None,
        Some(up::Local::Json(answer)) => Some((200, answer)),
        Some(up::Local::Accepted) => Some((202, Vec::new())),
    })
}

/// `server/discover` on a scope of older upstreams is answered here, from the upstream's
/// `initialize`, with the capabilities cut to the caller's. Every other bridged answer goes
/// through the response rewrite, which stamps its `resultType`.
fn discover_answer(ctx: &mut RequestCtx, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
    let Some((_, opened)) = ctx.bridged.as_ref() else {
        return Ok(None);
    };
    if ctx.method() != Some("server/discover") {
        ctx.rewrite = super::filter::ResponseRewrite::pending_list();
        ctx.rewritten = Some(up::strip_envelope(body)?);
        return Ok(None);
    }
    let init = &opened.init;
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": [crate::jsonrpc::MODERN_VERSION],
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": init.get("serverInfo").cloned().unwrap_or_else(|| json!({}))},
    });
    if let Some(i) = init.get("instructions") {
        result["instructions"] = i.clone();
    }
    if let Some(obj) = result.as_object_mut() {
        visible::trim_capabilities(obj, visible::of(ctx).as_ref());
    }
    let id = ctx.rpc_id().unwrap_or("null");
    Ok(Some(
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes(),
    ))
}

/// What a bridged caller sees: the same as anyone's, and results get `resultType`.
/// How a request of the gateway's own speaks to an upstream: the revision and, toward an older
/// upstream, the gateway's session there (`Some`), or statelessly in 2026-07-28 (`None`).
pub(crate) type OwnSession = Option<(&'static str, Option<String>)>;

/// The headers `session` asks of a request for `method`: the revision and session id, or the
/// 2026-07-28 routing header.
pub(crate) fn in_session(
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
            .header("mcp-protocol-version", crate::jsonrpc::MODERN_VERSION)
            .header("mcp-method", method),
    }
}

pub struct Stamped(pub Box<dyn Visible>);

impl Visible for Stamped {
    fn tool(&self, name: &str) -> bool {
        self.0.tool(name)
    }
    fn resource(&self, uri: &str) -> bool {
        self.0.resource(uri)
    }
    fn prompt(&self, name: &str) -> bool {
        self.0.prompt(name)
    }
    fn tool_definition(&self, tool: &Value) -> bool {
        self.0.tool_definition(tool)
    }
    fn capability(&self, name: &str) -> bool {
        self.0.capability(name)
    }
    fn stamps_result_type(&self) -> bool {
        true
    }
    fn gateway_tasks(&self) -> bool {
        self.0.gateway_tasks()
    }
    fn cached(&self) -> Option<(&ListCache, View)> {
        self.0.cached().map(|(c, v)| (c, v.part(b"stamped")))
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
