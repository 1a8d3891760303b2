//! Steps 1–5 for a request on a scoped endpoint, in order: admit, authenticate, the caller's
//! grant in the scope, the user's in-flight slot, the session, then (for POST) the body, its
//! decision and the rate limits. `inspect` runs them from `request_filter`; a body too large for
//! the early buffer is decided later by `decide`, from `request_body_filter`.

use super::authz::Decision;
use super::ctx::RequestCtx;
use super::discovery::{self, Found};
use super::{admit, authn, authz, body, legacy, limit, modern, respond, translate};
use crate::error::GatewayError;
use crate::jsonrpc;
use pingora_proxy::Session;

/// Steps 1–5. `Ok(true)` means the gateway answered (a batch it refused part of).
pub async fn inspect(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool, GatewayError> {
    if ctx.rt.audit.saturated() {
        return Err(GatewayError::AuditUnavailable);
    }
    if let Err(e) = admit::check_scoped(session, ctx) {
        // Whatever body the request carries stays unread: the connection is not reused.
        session.set_keepalive(None);
        return Err(e);
    }
    let clock = ctx.step_clock();
    let verified = authn::authenticate(session, ctx).await;
    ctx.step_done(crate::trace::Step::Authenticate, clock);
    verified?;
    authz::admit_caller(ctx)?;
    limit::hold_user_slot(ctx)?;
    if let Some(refusal) = ctx.refused_head.take() {
        return Err(Box::pin(with_id(session, ctx, refusal)).await);
    }
    if legacy::is_message_path(session.req_header().uri.path()) {
        legacy::open_message(session, ctx)?;
    } else if legacy::opens_stream(session) && !ctx.is_modern() {
        Box::pin(legacy::serve(session, ctx)).await?;
        return Ok(true);
    } else if legacy::is_legacy_scope(ctx) {
        return Err(GatewayError::InvalidRequest(
            "this scope's upstreams speak only the legacy HTTP+SSE transport: open GET /S/sse"
                .into(),
        ));
    } else if !ctx.is_modern() {
        // 2026-07-28 has no sessions: an `Mcp-Session-Id` is ignored, never opened.
        authn::open_session(session, ctx)?;
    }
    translate::prepare(ctx).await?;
    if session.req_header().method != "POST" {
        // The session's server stream: its notifications are cut to what the caller sees.
        if session.req_header().method == "GET" {
            ctx.answer.rewrite = super::filter::ResponseRewrite::pending_list();
        }
        return Ok(false);
    }
    if let Err(e) = limit::hold_body_slot(ctx) {
        // The body stays unread: the connection is not reused.
        session.set_keepalive(None);
        return Err(e);
    }
    let early = body::read_early(session, ctx).await?;
    match early {
        Some(bytes) => decide(session, ctx, &bytes).await,
        None => Ok(false),
    }
}

/// `refusal`, once the request's id is known: the body is read (if it fits the early buffer) for
/// the id alone, so the answer names it as JSON-RPC wants.
async fn with_id(
    session: &mut Session,
    ctx: &mut RequestCtx,
    refusal: GatewayError,
) -> GatewayError {
    let read = match limit::hold_body_slot(ctx) {
        Ok(()) => body::read_early(session, ctx).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(Some(bytes)) => match jsonrpc::parse(&bytes, false, false) {
            Ok(rpc) => keep_id(ctx, Ok(rpc)),
            Err(r) => keep_id(ctx, Err(&r)),
        },
        // Unread or too large for the early buffer: the connection is not reused.
        _ => session.set_keepalive(None),
    }
    refusal
}

/// Keeps what a refused request's body said (its id for the error answer, its method for the
/// audit row): the parsed request, or what a refusal of the body could still read.
fn keep_id(ctx: &mut RequestCtx, parsed: Result<jsonrpc::Rpc, &jsonrpc::Refusal>) {
    ctx.rpc = match parsed {
        Ok(rpc) => Some(rpc),
        Err(r) if r.id.is_none() && r.method.is_none() => None,
        Err(r) => Some(jsonrpc::Rpc::Single(jsonrpc::Message {
            id: r.id.clone(),
            method: r.method.clone(),
            ..Default::default()
        })),
    };
}

/// Parses the whole body once and applies policy and limits. `Ok(true)` means a batch was
/// answered here.
pub async fn decide(
    session: &mut Session,
    ctx: &mut RequestCtx,
    bytes: &[u8],
) -> Result<bool, GatewayError> {
    ctx.body.bytes = bytes.len() as u64;
    // Arguments are kept for the audit trail, a condition that reads them, or the schema check.
    let keep_arguments = ctx.rt.audit.config.arguments.wants_arguments()
        || ctx.rt.config.policy.reads_arguments
        || ctx
            .caller
            .as_ref()
            .is_some_and(|c| (c.scope.scope.guards.as_ref()).is_some_and(|g| g.on_arguments()))
        || ctx
            .caller
            .as_ref()
            .is_some_and(|c| c.scope.scope.validate_arguments);
    let rpc = match jsonrpc::parse(bytes, ctx.batches_allowed(), keep_arguments) {
        Ok(rpc) => rpc,
        Err(refusal) => {
            // The refusal names the request's id when that could be read.
            keep_id(ctx, Err(&refusal));
            let removed = (refusal.method.as_deref())
                .filter(|_| ctx.is_modern())
                .and_then(modern::removed);
            return Err(removed.unwrap_or(refusal.error));
        }
    };
    let checked = modern::check(session, &rpc, ctx.is_modern())
        .and_then(|()| normal_body(&rpc, bytes, ctx.is_modern()));
    let normal = match checked {
        Ok(normal) => normal,
        Err(e) => {
            ctx.rpc = Some(rpc);
            return Err(e);
        }
    };
    let (rpc, normal) = match discovery::apply(ctx, &rpc, bytes) {
        Ok(Found::Pass) => (rpc, normal),
        Ok(Found::Answer(body)) => {
            ctx.rpc = Some(rpc);
            limit::check(ctx).await?;
            respond::json(session, ctx, 200, body, &[])
                .await
                .map_err(|_| GatewayError::Internal)?;
            return Ok(true);
        }
        Ok(Found::Call(body)) => {
            let called = match jsonrpc::parse(&body, false, keep_arguments) {
                Ok(called) => called,
                Err(refusal) => {
                    ctx.rpc = Some(rpc);
                    return Err(refusal.error);
                }
            };
            let route = ctx.is_modern().then(|| {
                let tool = called.first().and_then(|m| m.tool.clone());
                (crate::protocol::method::TOOLS_CALL.to_string(), tool)
            });
            let body = translate::up::Rewritten {
                body: body.into(),
                route,
                sent: false,
            };
            (called, Some(body))
        }
        Err(e) => {
            ctx.rpc = Some(rpc);
            return Err(e);
        }
    };
    continue_trace(ctx, &rpc);
    let clock = ctx.step_clock();
    let decision = authz::decide(ctx, &rpc);
    ctx.step_done(crate::trace::Step::Authorize, clock);
    ctx.rpc = Some(rpc);
    match decision {
        Decision::Forward => {
            let (bytes, normal) = match &normal {
                Some(t) => (&t.body[..], normal.as_ref()),
                None => (bytes, None),
            };
            limit::check(ctx).await?;
            let clock = ctx.step_clock();
            let guarded = super::guarded::check(ctx, bytes).await;
            ctx.step_done(crate::trace::Step::Guards, clock);
            let guarded = guarded?;
            let bytes = guarded.as_deref().unwrap_or(bytes);
            if let Some(answer) = super::tasks::answer(ctx, bytes).await? {
                respond::json(session, ctx, 200, answer, &[])
                    .await
                    .map_err(|_| GatewayError::Internal)?;
                return Ok(true);
            }
            if let Some((version, upstream_session)) = translate::asking(ctx) {
                Box::pin(translate::asked::exchange(
                    session,
                    ctx,
                    bytes,
                    version,
                    upstream_session,
                ))
                .await?;
                return Ok(true);
            }
            let Some((status, body)) = translate::answer_here(ctx, bytes).await? else {
                // Bridging rewrote the request from the normal body already, or this is it.
                if let (None, Some(t)) = (&ctx.body.rewritten, normal) {
                    ctx.body.rewritten = Some(translate::up::Rewritten {
                        body: t.body.clone(),
                        route: t.route.clone(),
                        sent: false,
                    });
                }
                // Arguments a guard redacted (a tools/call, whose body nothing else rewrote).
                if let (None, Some(body)) = (&ctx.body.rewritten, guarded.clone()) {
                    ctx.body.rewritten = Some(translate::up::Rewritten {
                        body,
                        route: None,
                        sent: false,
                    });
                }
                super::traced::meta(ctx, bytes);
                return Ok(false);
            };
            respond::json(session, ctx, status, body, &[])
                .await
                .map_err(|_| GatewayError::Internal)?;
            Ok(true)
        }
        Decision::Refuse(e) => Err(e),
        Decision::Answer(body) => {
            respond::json(session, ctx, 200, body, &[])
                .await
                .map_err(|_| GatewayError::Internal)?;
            Ok(true)
        }
    }
}

/// The body as it goes on when a resource URI was not in its normal form: that URI replaced by
/// its normal form (the one the grant was matched against), and for 2026-07-28 the routing
/// headers to match. A batch must spell its URIs normally: it is not rewritten.
fn normal_body(
    rpc: &jsonrpc::Rpc,
    bytes: &[u8],
    modern: bool,
) -> Result<Option<translate::up::Rewritten>, GatewayError> {
    use jsonrpc::{Rpc, Target};
    match rpc {
        Rpc::Single(m) if m.uri_normalized => {
            let Some(Target::Resource(uri)) = &m.target else {
                return Err(GatewayError::Internal);
            };
            let method = m.method.clone().unwrap_or_default();
            let route = modern.then(|| {
                let name = modern::routed_name(&method, m).map(str::to_string);
                (method.clone(), name)
            });
            Ok(Some(translate::up::Rewritten {
                body: jsonrpc::with_normal_uri(bytes, uri)?.into(),
                route,
                sent: false,
            }))
        }
        Rpc::Batch(ms) if ms.iter().any(|m| m.uri_normalized) => Err(GatewayError::InvalidParams(
            "a resource URI in a batch must be in its normal form (no dot segments, no escaped unreserved characters, lower-case scheme and host)".into(),
        )),
        _ => Ok(None),
    }
}

/// A request whose `params._meta` names its caller's span continues that trace (the MCP
/// conventions prefer it to the header's), unless the upstream has the request's head already
/// (a body too large for the early buffer).
fn continue_trace(ctx: &mut RequestCtx, rpc: &jsonrpc::Rpc) {
    let (Some(tracer), Some(active)) = (ctx.rt.tracer.clone(), ctx.trace.as_mut()) else {
        return;
    };
    if ctx.body.was_held {
        return;
    }
    let Some(meta) = rpc.first().and_then(|m| m.envelope.as_ref()) else {
        return;
    };
    if let Some(parent) = &meta.traceparent {
        tracer.continue_from_meta(active, parent, meta.tracestate.as_deref());
    }
}
