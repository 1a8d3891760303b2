//! Step 8, audit: one `AuditRecord` per request on a scoped endpoint, with the real reason of any
//! refusal; the metrics; the access log line. Runs in `logging()`, after the answer is sent.

use super::ctx::RequestCtx;
use super::names;
use crate::audit::{AuditRecord, Outcome};
use crate::error::GatewayError;
use crate::logs::clip;
use crate::metrics;
use pingora::{Error, ErrorSource};
use pingora_proxy::Session;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// The outcome, the real reason, and the JSON-RPC error code of a finished request.
pub fn outcome(
    ctx: &RequestCtx,
    status: u16,
    e: Option<&Error>,
) -> (Outcome, Option<String>, Option<i32>) {
    use GatewayError::*;
    if let Some(err) = ctx.refusal() {
        let code = Some(err.code());
        return match err {
            Denied(d) => (Outcome::Denied, Some(d.reason().to_string()), code),
            Unauthorized(m) => (Outcome::Unauthenticated, Some(m.to_string()), code),
            Forbidden(_) | PayloadTooLarge { .. } | UnknownSession | AuditUnavailable => {
                (Outcome::Denied, Some(err.to_string()), code)
            }
            NoHealthyUpstream(_) | UpstreamFailed(_) => {
                (Outcome::UpstreamError, Some(err.to_string()), code)
            }
            UpstreamTimeout(_) => (Outcome::Timeout, Some(err.to_string()), code),
            RateLimited { .. } | TooManyConcurrent => {
                (Outcome::RateLimited, Some(err.to_string()), code)
            }
            _ => (Outcome::RpcError, Some(err.to_string()), code),
        };
    }
    if let Some(e) = e.filter(|_| status < 500) {
        if *e.esource() == ErrorSource::Downstream {
            return (Outcome::Ok, Some("client went away".into()), None);
        }
        return (
            Outcome::UpstreamError,
            Some(e.etype().as_str().to_string()),
            None,
        );
    }
    if status >= 500 {
        return (
            Outcome::UpstreamError,
            Some(format!("upstream answered {status}")),
            None,
        );
    }
    if ctx.scan.tool_error {
        return (Outcome::ToolError, None, None);
    }
    if let Some(code) = ctx.scan.rpc_error_code {
        return (Outcome::RpcError, None, Some(code));
    }
    if status >= 400 {
        return (
            Outcome::RpcError,
            Some(format!("upstream answered {status}")),
            None,
        );
    }
    (Outcome::Ok, None, None)
}

/// The most roles an audit row lists (a token may carry any number).
const MAX_ROLES: usize = 32;

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
}

/// Records a finished request: audit row, metrics, access log line.
pub fn record(session: &Session, ctx: &RequestCtx, e: Option<&Error>) {
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let (outcome, reason, code) = outcome(ctx, status, e);
    let latency = ctx.started.elapsed();
    let Some(scope) = &ctx.scope else {
        tracing::info!(target: "access", request_id = %ctx.request_id, path = %session.req_header().uri.path(), status, "request");
        return;
    };
    let scope_name = scope.scope.name.as_str();
    // Passive health: connect failures, 5xx and timeouts count against the upstream.
    for e in &ctx.tried {
        scope.record(e, false);
    }
    if let Some(p) = &ctx.picked {
        scope.record(
            p,
            !matches!(outcome, Outcome::UpstreamError | Outcome::Timeout),
        );
    }
    // Everything a client chose is bounded before it is written anywhere (see `logs::clip`).
    let method = clip(
        ctx.method()
            .unwrap_or_else(|| session.req_header().method.as_str()),
    );
    let tool = ctx.tool().map(clip);
    let user = ctx.identity.as_ref().map(|i| clip(&i.user));
    let reason = reason.map(|r| clip(&r).into_owned());

    let method_label = metrics::method_label(ctx.method());
    metrics::REQUESTS
        .with_label_values(&[scope_name, method_label, outcome.as_str()])
        .inc();
    metrics::REQUEST_SECONDS
        .with_label_values(&[scope_name])
        .observe(latency.as_secs_f64());
    if let Some(u) = ctx.upstream_elapsed {
        metrics::UPSTREAM_SECONDS
            .with_label_values(&[scope_name])
            .observe(u.as_secs_f64());
    }
    if let Some(t) = tool.as_deref() {
        let label = if scope.scope.tools.iter().any(|x| x == t) {
            t
        } else {
            "unknown"
        };
        metrics::TOOL_CALLS
            .with_label_values(&[scope_name, label, outcome.as_str()])
            .inc();
    }
    match (ctx.refusal(), outcome) {
        (Some(GatewayError::Unauthorized(m)), _) => metrics::AUTH_FAILURES
            .with_label_values(&[metrics::auth_reason_label(m)])
            .inc(),
        (Some(GatewayError::Denied(_) | GatewayError::Forbidden(_)), _) => metrics::POLICY_DENIALS
            .with_label_values(&[scope_name])
            .inc(),
        (_, Outcome::RateLimited) => metrics::RATE_LIMITED.with_label_values(&[scope_name]).inc(),
        _ => {}
    }

    crate::logs::access(&crate::logs::AccessLine {
        request_id: &ctx.request_id,
        user: user.as_deref().unwrap_or(""),
        scope: scope_name,
        method: &method,
        tool: tool.as_deref().unwrap_or(""),
        upstream: ctx.picked.as_ref().map(|p| p.addr.as_str()).unwrap_or(""),
        status,
        outcome: outcome.as_str(),
        reason: reason.as_deref().unwrap_or(""),
        latency_ms: latency.as_secs_f64() * 1000.0,
    });

    let audit = &ctx.rt.audit;
    if !audit.enabled() {
        return;
    }
    let first = ctx.rpc.as_ref().and_then(|r| r.first());
    let arguments = first
        .and_then(|m| m.arguments.as_deref())
        .and_then(|a| audit.config.arguments.seal(a));
    let session_id = ctx.issued_session.as_deref().or_else(|| {
        session
            .req_header()
            .headers
            .get(&names::SESSION_ID)
            .and_then(|v| v.to_str().ok())
    });
    let time_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    audit.submit(AuditRecord {
        time_us,
        request_id: ctx.request_id.clone(),
        instance: audit.config.instance.clone(),
        user_id: user.map(|u| u.into_owned()),
        tenant: ctx
            .identity
            .as_ref()
            .and_then(|i| i.tenant.as_deref().map(|t| clip(t).into_owned())),
        roles: ctx
            .identity
            .as_ref()
            .map(|i| {
                i.roles
                    .iter()
                    .take(MAX_ROLES)
                    .map(|r| clip(r).into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        scope: Some(scope_name.to_string()),
        method: Some(method.into_owned()),
        tool: tool.map(|t| t.into_owned()),
        jsonrpc_id: first
            .and_then(|m| m.id.as_deref())
            .map(|id| clip(id).into_owned()),
        outcome,
        reason,
        rpc_error_code: code,
        http_status: i32::from(status),
        upstream: ctx.picked.as_ref().map(|p| p.addr.clone()),
        latency_ms: latency.as_secs_f64() * 1000.0,
        upstream_latency_ms: ctx.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
        request_bytes: ctx.request_bytes as i64,
        response_bytes: ctx.response_bytes as i64,
        client_addr: session.client_addr().and_then(|a| a.as_inet()).copied(),
        session_hash: session_id.map(short_hash),
        arguments_mode: audit.config.arguments.name().to_string(),
        arguments,
    });
}
