//! `POST /mcp/invoke`: the body read within its limits, the tool's scope resolved among the
//! caller's grants, the synthetic `tools/call` put through the MCP door, then run now or as a job.

use super::api::{view, ErrorBody, InvokeRequest, JobView};
use super::{to_vec, Answer};
use crate::error::{Denied, GatewayError};
use crate::jobs::{call::Call, Kind, Owner};
use crate::protocol::method;
use crate::proxy::authz::{self, Decision};
use crate::proxy::ctx::RequestCtx;
use crate::proxy::{authn, limit};
use crate::upstream::ScopeUpstreams;
use pingora_proxy::Session;
use serde_json::{json, Value};
use std::sync::Arc;

/// Run a tool.
#[utoipa::path(
    post,
    path = "/mcp/invoke",
    request_body = InvokeRequest,
    params(("Prefer" = Option<String>, Header, description = "`respond-async` runs the call as a job")),
    responses(
        (status = 200, description = "The tool's result (an MCP CallToolResult; `isError` for failures inside the tool)", body = Object),
        (status = 202, description = "Accepted as a job; poll the `Location`", body = JobView, headers(("Location" = String, description = "/mcp/jobs/{id}"))),
        (status = 400, description = "Malformed body, or a JSON-RPC error from the tool", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Unknown tool (or not granted)", body = ErrorBody),
        (status = 429, description = "Rate limited, too many in flight or too many jobs", body = ErrorBody),
        (status = 502, description = "The upstream failed", body = ErrorBody),
        (status = 503, description = "No healthy upstream, or jobs unavailable", body = ErrorBody),
        (status = 504, description = "The tool did not answer in time", body = ErrorBody),
    )
)]
pub(super) async fn invoke(
    session: &mut Session,
    ctx: &mut RequestCtx,
    identity: Arc<crate::auth::Identity>,
) -> Result<Answer, GatewayError> {
    let raw = read_body(session, ctx, &identity.user).await?;
    let req = request_of(&raw)?;
    let run_async = req.run_async || prefers_async(session);
    let scope = resolve(ctx, &identity, &req)?;
    ctx.scope = Some(scope.clone());
    authn::admit_on(ctx, identity.clone(), scope.clone())?;
    limit::hold_user_slot(ctx)?;
    let arguments = Value::Object(req.arguments.unwrap_or_default());
    let body = serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": 1, "method": method::TOOLS_CALL,
        "params": {"name": req.tool_name, "arguments": arguments}}),
    )
    .map_err(|_| GatewayError::Internal)?;
    ctx.body.bytes = raw.len() as u64;
    let keep = ctx.rt.audit.config.arguments.wants_arguments()
        || ctx.rt.config.policy.reads_arguments
        || scope.scope.validate_arguments;
    let rpc = crate::jsonrpc::parse(&body, false, keep)?;
    let decision = authz::decide(ctx, &rpc);
    ctx.rpc = Some(rpc);
    match decision {
        Decision::Forward => {}
        Decision::Refuse(e) => return Err(e),
        Decision::Answer(_) => return Err(GatewayError::Internal),
    }
    limit::check(ctx).await?;
    // The scope's guards on the arguments (the result is guarded where the call ends).
    let arguments = match super::super::guarded::check(ctx, &body).await? {
        Some(redacted) => {
            let v: Value = serde_json::from_slice(&redacted).map_err(|_| GatewayError::Internal)?;
            v["params"]["arguments"].clone()
        }
        None => arguments,
    };
    ctx.answer.rewrite = Default::default();
    let call = Call {
        scope,
        bridged: ctx.rt.bridged.clone(),
        identity: identity.clone(),
        tool: req.tool_name,
        arguments,
        request_id: ctx.request_id.to_string(),
        trace: ctx.call_trace(),
    };
    if run_async {
        let jobs = ctx.rt.jobs.clone();
        let ttl = jobs.ttl(req.ttl_ms);
        let job = jobs
            .submit(
                Owner::of(&identity),
                Kind::Rest,
                ttl,
                ctx.rt.config.limits.max_jobs_per_user,
                call,
            )
            .await?;
        ctx.job = Some(job.id.clone());
        let location = format!("/mcp/jobs/{}", job.id);
        return Ok((202, to_vec(&view(&job)), vec![("Location", location)]));
    }
    run_now(ctx, call).await
}

/// The body as an `InvokeRequest`; a field of the wrong type is named by its path.
fn request_of(raw: &[u8]) -> Result<InvokeRequest, GatewayError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            GatewayError::ParseError(format!("the body is not valid JSON: {inner}"))
        } else {
            GatewayError::InvalidRequest(format!("{path}: {inner}").into())
        }
    })
}

/// `Prefer: respond-async` (RFC 7240), in any of the request's `Prefer` headers.
fn prefers_async(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get_all("prefer")
        .iter()
        .any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split([',', ';'])
                    .any(|t| t.trim().eq_ignore_ascii_case("respond-async"))
            })
        })
}

/// Runs the call now: the tool's result is the answer (200), its JSON-RPC error a 400 or 502.
async fn run_now(ctx: &mut RequestCtx, call: Call) -> Result<Answer, GatewayError> {
    let started = std::time::Instant::now();
    let ended = call
        .run(
            &ctx.request_id.clone(),
            call.sync_timeout(),
            std::future::pending(),
        )
        .await;
    ctx.upstream.elapsed = Some(started.elapsed());
    ctx.upstream.picked = ended.upstream.clone();
    ctx.answer.scan.tool_error = ended.tool_error;
    ctx.answer.scan.rpc_error_code = ended.rpc_code;
    let text = match ended.result {
        Ok(text) => text,
        Err(crate::jobs::call::Failure::Gateway(e)) => return Err(e),
        Err(crate::jobs::call::Failure::Cancelled) => return Err(GatewayError::Internal),
    };
    let v: Value = serde_json::from_str(&text).map_err(|_| GatewayError::Internal)?;
    match (v.get("result"), v.get("error")) {
        (Some(r), _) => Ok((200, to_vec(r), Vec::new())),
        (None, Some(e)) => {
            let status = match e.get("code").and_then(Value::as_i64) {
                Some(-32602 | -32600) => 400,
                _ => 502,
            };
            Ok((status, to_vec(&json!({ "error": e })), Vec::new()))
        }
        _ => Err(GatewayError::Internal),
    }
}

/// The one scope granted to the caller that offers the tool (or the one it named).
fn resolve(
    ctx: &RequestCtx,
    identity: &crate::auth::Identity,
    req: &InvokeRequest,
) -> Result<Arc<ScopeUpstreams>, GatewayError> {
    let policy = &ctx.rt.config.policy;
    let tool = req.tool_name.as_str();
    let mut found: Vec<&Arc<ScopeUpstreams>> = ctx
        .rt
        .upstreams
        .values()
        .filter(|s| {
            let name = s.scope.name.as_str();
            req.scope.as_deref().is_none_or(|n| n == name)
                && s.scope.tools.contains(tool)
                && policy.tool_verdict(&identity.roles, name, tool).names_it()
        })
        .collect();
    found.sort_by(|a, b| a.scope.name.cmp(&b.scope.name));
    match found.as_slice() {
        [] => Err(GatewayError::Denied(Denied::tool(
            tool,
            "no scope granted to the caller offers this tool",
        ))),
        [one] => Ok((*one).clone()),
        many => Err(GatewayError::InvalidRequest(
            format!(
                "the tool {} is offered by several scopes granted to you ({}): name one in \"scope\"",
                crate::logs::clip(tool),
                many.iter()
                    .map(|s| s.scope.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into(),
        )),
    }
}

/// The request body, within `limits.max_body_bytes`, its deadline
/// (`ConnectionLimits::body_deadline`) and the user's places for bodies still arriving.
async fn read_body(
    session: &mut Session,
    ctx: &RequestCtx,
    user: &str,
) -> Result<Vec<u8>, GatewayError> {
    let limit = ctx.rt.config.limits.max_body_bytes;
    let req = session.req_header();
    if !crate::proxy::admit::is_json(req) {
        session.set_keepalive(None);
        return Err(GatewayError::UnsupportedMediaType);
    }
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        session.set_keepalive(None);
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let Some(_arriving) = ctx.rt.user_bodies.acquire(user) else {
        session.set_keepalive(None);
        return Err(GatewayError::TooManyBodies);
    };
    let deadline = ctx
        .rt
        .config
        .connections
        .body_deadline(declared.unwrap_or(limit));
    match tokio::time::timeout(deadline, read_all(session, limit)).await {
        Ok(body) => body,
        Err(_) => {
            session.set_keepalive(None);
            Err(GatewayError::BodyTimeout)
        }
    }
}

async fn read_all(session: &mut Session, limit: u64) -> Result<Vec<u8>, GatewayError> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit as usize {
                    session.set_keepalive(None);
                    return Err(GatewayError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => {
                session.set_keepalive(None);
                return Err(GatewayError::InvalidRequest(
                    "the request body could not be read".into(),
                ));
            }
        }
    }
}
