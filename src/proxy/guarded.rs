//! Step 7¼, the scope's guards (`crate::guard`) on a call that is going on: its arguments are
//! inspected (a `block` refuses it with -32003 naming the detector; a `redact` rewrites the body
//! the upstream gets), the optional webhook asked, and the answer set up to be inspected on its
//! way back. Hits go to the request's audit row and metrics.

use super::ctx::RequestCtx;
use super::filter::ResponseRewrite;
use crate::error::GatewayError;
use crate::guard::{inspect, results::ResultGuard, webhook, Direction};
use crate::jsonrpc::Rpc;
use crate::protocol::method;
use bytes::Bytes;
use serde_json::Value;

/// Inspects a forwarded request's arguments and prepares its result's inspection. Returns the
/// body to send instead, when the arguments were redacted.
pub async fn check(ctx: &mut RequestCtx, body: &[u8]) -> Result<Option<Bytes>, GatewayError> {
    let Some(guards) = ctx
        .caller
        .as_ref()
        .and_then(|c| c.scope.scope.guards.clone())
    else {
        return Ok(None);
    };
    let m = match &ctx.rpc {
        Some(Rpc::Single(m)) => m,
        Some(Rpc::Batch(ms)) => {
            let calls = ms
                .iter()
                .any(|m| m.method.as_deref() == Some(method::TOOLS_CALL));
            if calls && (guards.on_arguments() || guards.on_results()) {
                return Err(GatewayError::InvalidRequest(
                    "the scope's guards inspect calls one by one: send each tools/call alone"
                        .into(),
                ));
            }
            return Ok(None);
        }
        None => return Ok(None),
    };
    let name = m.method.as_deref().unwrap_or("");
    if guards.on_results()
        && matches!(
            name,
            method::TOOLS_CALL | method::RESOURCES_READ | method::PROMPTS_GET
        )
    {
        ctx.answer.rewrite = ResponseRewrite::guard(ResultGuard::new(guards.clone(), ctx.rpc_id()));
    }
    if name != method::TOOLS_CALL || !guards.on_arguments() {
        return Ok(None);
    }
    let raw = m.arguments.as_deref().unwrap_or("{}");
    let mut replaced: Option<Value> = None;
    match inspect(&guards, raw, Direction::Arguments) {
        Err(_) => return Err(GatewayError::InvalidParams("arguments must be JSON".into())),
        Ok(None) => {}
        Ok(Some(found)) => {
            let blocked = found.blocked.clone();
            replaced = found.redacted;
            ctx.guard_hits.extend(found.hits);
            if let Some(detector) = blocked {
                return Err(GatewayError::Blocked { detector });
            }
        }
    }
    if let Some(w) = &guards.webhook {
        let arguments = match &replaced {
            Some(v) => v.clone(),
            None => serde_json::from_str(raw).unwrap_or(Value::Null),
        };
        let caller = ctx.admitted()?;
        let call = webhook::Call {
            scope: &caller.scope.scope.name,
            tool: m.tool.as_deref().unwrap_or(""),
            user: &caller.identity.user,
            tenant: caller.identity.tenant.as_deref(),
            roles: &caller.identity.roles,
            arguments: &arguments,
        };
        match Box::pin(webhook::ask(w, &call)).await {
            webhook::Verdict::Allow => {}
            webhook::Verdict::Deny(reason) => {
                tracing::info!(request_id = %ctx.request_id, reason = %reason, "the guard webhook refused a call");
                return Err(GatewayError::Blocked {
                    detector: "webhook".into(),
                });
            }
            webhook::Verdict::Redact(args) => replaced = Some(args),
        }
    }
    let Some(arguments) = replaced else {
        return Ok(None);
    };
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::ParseError(e.to_string()))?;
    if let Some(params) = v.get_mut("params").and_then(Value::as_object_mut) {
        params.insert("arguments".into(), arguments);
    }
    let body = serde_json::to_vec(&v).map_err(|_| GatewayError::Internal)?;
    Ok(Some(Bytes::from(body)))
}
