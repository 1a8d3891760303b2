//! Answers the gateway gives itself: every refusal (rendered from `GatewayError` in one place),
//! health, readiness and the OAuth protected-resource metadata (RFC 9728).

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::Result;
use pingora_proxy::Session;

/// Writes a complete JSON answer. Keeps the connection open (unlike Pingora's error responses),
/// so a client's next request reuses it. Every answer the gateway gives itself ends here, inside
/// hooks that run for every request: Pingora's writes are boxed, so they are allocated when an
/// answer is written instead of enlarging each caller's future (bench/README.md).
pub async fn json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Vec<u8>,
    extra: &[(&'static str, String)],
) -> Result<()> {
    super::legacy::also_to_stream(ctx, &body);
    let mut h = ResponseHeader::build(status, Some(4 + extra.len()))?;
    h.insert_header("Content-Type", "application/json")?;
    h.insert_header("Content-Length", body.len().to_string())?;
    h.insert_header(super::names::written::REQUEST_ID, ctx.request_id.header())?;
    h.insert_header("Cache-Control", "no-store")?;
    for (k, v) in extra {
        h.insert_header(*k, v.as_str())?;
    }
    super::cors::decorate(&mut h, ctx)?;
    Box::pin(async move {
        session.write_response_header(Box::new(h), false).await?;
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await
    })
    .await
}

/// The head of an event stream the gateway writes itself (a legacy stream, a bridged call's
/// progress): never buffered or cached on the way, with the request id and, for an allowed
/// origin, its CORS headers.
pub fn event_stream_head(ctx: &RequestCtx) -> Result<Box<ResponseHeader>> {
    let mut h = ResponseHeader::build(200, Some(6))?;
    h.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
    h.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
    h.insert_header("X-Accel-Buffering", "no")?;
    h.insert_header(super::names::written::REQUEST_ID, ctx.request_id.header())?;
    super::cors::decorate(&mut h, ctx)?;
    Ok(Box::new(h))
}

/// The most of an upstream error body kept for the log.
const UPSTREAM_ERROR_LOGGED: usize = 1024;

/// An upstream 5xx answer on its way to the client: its body (a stack trace, an internal address)
/// is held back, the first `UPSTREAM_ERROR_LOGGED` bytes go to the log, and the client gets the
/// gateway's JSON-RPC error instead.
pub struct ReplacedBody {
    status: u16,
    replacement: Option<Vec<u8>>,
    original: Vec<u8>,
    original_len: usize,
}

/// Replaces the upstream's answer (status kept) with `err` as a JSON-RPC error; the original body
/// goes to the log only.
pub fn replace_upstream_answer(
    resp: &mut ResponseHeader,
    ctx: &mut RequestCtx,
    err: GatewayError,
) -> Result<()> {
    let status = resp.status.as_u16();
    resp.remove_header("content-length");
    resp.remove_header("content-encoding");
    resp.remove_header("mcp-session-id");
    resp.insert_header("Content-Type", "application/json")?;
    resp.insert_header("Cache-Control", "no-store")?;
    ctx.answer.body = super::ctx::AnswerBody::Replaced(ReplacedBody {
        status,
        replacement: Some(err.body(ctx.rpc_id())),
        original: Vec::new(),
        original_len: 0,
    });
    // What the client is told is what the audit row and the metrics say.
    ctx.error = Some(err);
    Ok(())
}

impl ReplacedBody {
    /// Takes a chunk of the upstream's body; at the end, puts the replacement in its place.
    pub fn swallow(&mut self, body: &mut Option<Bytes>, end: bool, request_id: &str) {
        if let Some(b) = body.take() {
            let room = UPSTREAM_ERROR_LOGGED.saturating_sub(self.original.len());
            self.original.extend_from_slice(&b[..b.len().min(room)]);
            self.original_len += b.len();
        }
        if end {
            tracing::warn!(
                request_id,
                status = self.status,
                body_bytes = self.original_len,
                body = %String::from_utf8_lossy(&self.original),
                "upstream error answer replaced"
            );
            *body = self.replacement.take().map(Bytes::from);
        }
    }
}

/// Renders a refusal: status, headers (`WWW-Authenticate`, `Allow`) and the JSON-RPC error body.
pub async fn error(session: &mut Session, ctx: &RequestCtx, err: &GatewayError) -> Result<()> {
    if let Some(body) = as_tool_error(ctx, err) {
        return json(session, ctx, 200, body, &[]).await;
    }
    let extra = error_headers(session, ctx, err);
    // 2026-07-28 answers an unknown method with HTTP 404 (older revisions: 200 and the error).
    let status = match err {
        GatewayError::Denied(d) if d.is_method() && ctx.is_modern() => 404,
        _ => err.status(),
    };
    json(session, ctx, status, err.body(ctx.rpc_id()), &extra).await
}

/// Refusals a `tools/call` gets as the tool's own failure (`isError`), whose text the model and
/// the user see: arguments the tool's schema rejects, from 2025-11-25 on (the revision wants input
/// errors the model can correct as tool errors, not protocol errors), and the sign-in link for a
/// client older than URL elicitations (2025-11-25). Other requests and revisions get the error.
fn as_tool_error(ctx: &RequestCtx, err: &GatewayError) -> Option<Vec<u8>> {
    let wanted = match err {
        GatewayError::SignInRequired { .. } => ctx.version < "2025-11-25",
        GatewayError::InvalidArguments { .. } => ctx.version >= "2025-11-25",
        _ => false,
    };
    let Some(crate::jsonrpc::Rpc::Single(m)) = ctx.rpc.as_ref().filter(|_| wanted) else {
        return None;
    };
    if m.method.as_deref() != Some(crate::protocol::method::TOOLS_CALL) {
        return None;
    }
    let mut result = serde_json::json!({
        "content": [{"type": "text", "text": err.to_string()}],
        "isError": true,
    });
    if ctx.is_modern() {
        result["resultType"] = "complete".into();
    }
    let id = m.id.as_deref().unwrap_or("null");
    Some(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes())
}

/// The headers a refusal carries: `WWW-Authenticate` for token problems (with the protected
/// resource's metadata on MCP endpoints), `Allow`, `Retry-After`.
pub fn error_headers(
    session: &Session,
    ctx: &RequestCtx,
    err: &GatewayError,
) -> Vec<(&'static str, String)> {
    let mut extra = Vec::new();
    match err {
        // The REST API has no protected-resource metadata of its own.
        GatewayError::Unauthorized(reason) if ctx.scope.is_none() => {
            let value = if *reason == crate::auth::AuthError::Missing {
                "Bearer".to_string()
            } else {
                "Bearer error=\"invalid_token\"".to_string()
            };
            extra.push(("WWW-Authenticate", value));
        }
        GatewayError::Unauthorized(reason) => {
            let metadata = resource_metadata_url(session, ctx);
            let scope = ctx
                .scope
                .as_ref()
                .map(|s| s.scope.oauth_scopes.join(" "))
                .filter(|s| !s.is_empty())
                .map(|s| format!(", scope=\"{s}\""))
                .unwrap_or_default();
            // RFC 6750 3.1: a request without credentials gets no error code.
            let value = if *reason == crate::auth::AuthError::Missing {
                format!("Bearer resource_metadata=\"{metadata}\"{scope}")
            } else {
                format!("Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\"{scope}")
            };
            extra.push(("WWW-Authenticate", value));
        }
        GatewayError::InsufficientScope(scope) => {
            let metadata = resource_metadata_url(session, ctx);
            extra.push((
                "WWW-Authenticate",
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{metadata}\""),
            ));
        }
        GatewayError::MethodNotAllowed(_) => extra.push(("Allow", "GET, POST, DELETE".into())),
        _ => {}
    }
    if let Some(secs) = err.retry_after() {
        extra.push(("Retry-After", secs.to_string()));
    }
    extra
}

/// The public base URL: configured, or from the request's `Host`.
fn base_url(session: &Session, ctx: &RequestCtx) -> String {
    if let Some(u) = &ctx.rt.config.public_url {
        return u.clone();
    }
    let req = session.req_header();
    let host = req
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn resource_metadata_url(session: &Session, ctx: &RequestCtx) -> String {
    let path = session.req_header().uri.path();
    format!(
        "{}/.well-known/oauth-protected-resource{}",
        base_url(session, ctx),
        path
    )
}

/// RFC 9728 metadata for `/S/sse` or `/S/mcp`.
pub async fn resource_metadata(session: &mut Session, ctx: &RequestCtx, path: &str) -> Result<()> {
    let scope = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .and_then(|name| ctx.rt.config.scopes.get(name));
    let mut body = serde_json::json!({
        "resource": format!("{}{}", base_url(session, ctx), path),
        "authorization_servers": ctx.rt.config.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-gateway",
    });
    if let Some(s) = scope.filter(|s| !s.oauth_scopes.is_empty()) {
        body["scopes_supported"] = s.oauth_scopes.clone().into();
    }
    json(session, ctx, 200, body.to_string().into_bytes(), &[]).await
}

/// A CORS preflight: 204 with what an allowed origin may send, or the refusal (403, no CORS).
pub async fn preflight(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool, GatewayError> {
    super::cors::read_origin(session, ctx)?;
    let mut h = ResponseHeader::build(204, Some(8)).map_err(|_| GatewayError::Internal)?;
    let extra = super::cors::preflight_headers(session);
    let mut write = || -> Result<()> {
        h.insert_header(super::names::written::REQUEST_ID, ctx.request_id.header())?;
        super::cors::decorate(&mut h, ctx)?;
        for (k, v) in &extra {
            h.insert_header(*k, v.as_str())?;
        }
        Ok(())
    };
    write().map_err(|_| GatewayError::Internal)?;
    // Boxed as in `json`.
    Box::pin(session.write_response_header(Box::new(h), true))
        .await
        .map_err(|_| GatewayError::Internal)?;
    Ok(true)
}

pub async fn healthz(session: &mut Session, ctx: &RequestCtx) -> Result<()> {
    json(session, ctx, 200, br#"{"status":"ok"}"#.to_vec(), &[]).await
}

/// Ready when every scope has a healthy upstream and the process is not draining.
pub async fn readyz(session: &mut Session, ctx: &RequestCtx, draining: bool) -> Result<()> {
    if draining {
        let body = br#"{"status":"draining"}"#.to_vec();
        return json(session, ctx, 503, body, &[]).await;
    }
    let mut scopes = serde_json::Map::new();
    let mut ready = true;
    for (name, s) in &ctx.rt.upstreams {
        let ok = s.any_healthy();
        ready &= ok;
        scopes.insert(
            name.clone(),
            serde_json::Value::from(if ok { "ok" } else { "no healthy upstream" }),
        );
    }
    let body =
        serde_json::json!({ "status": if ready { "ok" } else { "not ready" }, "scopes": scopes });
    json(
        session,
        ctx,
        if ready { 200 } else { 503 },
        body.to_string().into_bytes(),
        &[],
    )
    .await
}
