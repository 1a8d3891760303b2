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

pub mod asked;
pub mod up;

use super::ctx::RequestCtx;
use super::filter::cache::{ListCache, View};
use super::visible::{self, Visible};
use crate::error::GatewayError;
use crate::protocol::method;
use crate::session::{user_hash, SessionBinding};
pub use crate::upstream::client::{Opened, Pool};
use serde_json::{json, Value};

/// For a 2026-07-28 request on a bridged scope: picks the upstream and puts the request in the
/// gateway's session there. Nothing for other requests.
pub async fn prepare(ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let caller = ctx.admitted()?;
    // Decided before anything is cloned: every request passes here.
    let Some(version) = caller
        .scope
        .scope
        .upstream_version
        .filter(|v| ctx.is_modern() && *v != crate::protocol::MODERN_VERSION)
    else {
        return Ok(());
    };
    // A scope whose upstreams need each user's own login does not list 2026-07-28 when bridged
    // (`ScopeConfig::versions`): its clients were refused at the door.
    let scope = caller.scope.clone();
    let picked = scope
        .select(caller.identity.user.as_bytes(), &ctx.upstream.tried)
        .ok_or_else(|| GatewayError::NoHealthyUpstream(scope.scope.name.clone()))?;
    let hash = user_hash(&caller.identity.user, caller.identity.tenant.as_deref());
    let opened = Box::pin(ctx.rt.bridged.get_asking(&scope, &picked, version)).await?;
    if let (Some(s), Some(caller)) = (&opened.session, ctx.caller.as_mut()) {
        caller.session = Some(SessionBinding {
            scope: scope.scope.name.clone(),
            upstream: picked.addr.clone(),
            upstream_session: s.clone(),
            user_hash: hash,
        });
    }
    ctx.upstream.picked = Some(picked);
    ctx.mode = super::ctx::Mode::Bridged { version, opened };
    Ok(())
}

/// For a 2026-07-28 request on a scope bridged to an older upstream that the upstream may answer
/// by asking the client first: the upstream's revision and the gateway's session there
/// (`asked::exchange` sends it).
pub fn asking(ctx: &RequestCtx) -> Option<(&'static str, Option<String>)> {
    (ctx.bridged())
        .filter(|_| ctx.method().is_some_and(asked::asks))
        .map(|(version, opened)| (version, opened.session.clone()))
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
    Ok(match Box::pin(up::prepare(ctx, body)).await? {
        None => None,
        Some(up::Local::Json(answer)) => Some((200, answer)),
        Some(up::Local::Accepted) => Some((202, Vec::new())),
    })
}

/// `server/discover` on a scope of older upstreams is answered here, from the upstream's
/// `initialize`, with the capabilities cut to the caller's. Every other bridged answer goes
/// through the response rewrite, which stamps its `resultType`.
fn discover_answer(ctx: &mut RequestCtx, body: &[u8]) -> Result<Option<Vec<u8>>, GatewayError> {
    let Some((_, opened)) = ctx.bridged() else {
        return Ok(None);
    };
    if ctx.method() != Some(method::SERVER_DISCOVER) {
        ctx.answer.rewrite = super::filter::ResponseRewrite::pending_list();
        ctx.body.rewritten = Some(up::strip_envelope(body)?);
        return Ok(None);
    }
    let init = &opened.init;
    let mut result = json!({
        "resultType": "complete",
        // Set from the scope's list by `trim_capabilities` below.
        "supportedVersions": [],
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
    fn versions(&self) -> &'static [&'static str] {
        self.0.versions()
    }
    fn cached(&self) -> Option<(&ListCache, View)> {
        self.0.cached().map(|(c, v)| (c, v.part(b"stamped")))
    }
}
