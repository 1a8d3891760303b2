//! Step 8, audit: one `AuditRecord` per request on a scoped endpoint, with the real reason of any
//! refusal; the metrics; the access log line. Runs in `logging()`, after the answer is sent.

use super::ctx::RequestCtx;
use super::names;
use crate::audit::AuditRecord;
use crate::logs::clip;
use crate::metrics;
use crate::outcome::{Alert, Outcome};
use pingora::{Error, ErrorSource};
use pingora_proxy::Session;
use sha2::{Digest, Sha256};

/// How a finished request ended: the gateway's refusal when it refused (decided where it
/// happened), else what the upstream's answer and the connection say.
pub fn outcome<'a>(ctx: &'a RequestCtx, status: u16, e: Option<&Error>) -> Outcome<'a> {
    if let Some(err) = ctx.refusal() {
        return Outcome::Gateway(err);
    }
    if let Some(e) = e {
        // A failure the gateway did not render: the client left, or the upstream broke off an
        // answer that had started.
        return match e.esource() {
            ErrorSource::Downstream => Outcome::ClientGone,
            _ => Outcome::UpstreamBroke(e.etype().as_str()),
        };
    }
    if ctx.answer.scan.tool_error {
        return Outcome::ToolError;
    }
    if let Some(code) = ctx.answer.scan.rpc_error_code {
        return Outcome::RpcError { code };
    }
    if status >= 400 {
        return Outcome::UpstreamStatus(status);
    }
    Outcome::Ok
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
}

/// Records a finished request: audit row, metrics, access log line.
pub fn record(session: &Session, ctx: &RequestCtx, e: Option<&Error>) {
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .unwrap_or(0);
    let outcome = outcome(ctx, status, e);
    let class = outcome.class();
    let latency = ctx.started.elapsed();
    // Outside a scope (health, metadata, the REST API before its scope is known, unknown paths)
    // only refusals are audited: every refusal leaves a row, with whatever identity was verified.
    let scope = ctx.scope.as_deref();
    if scope.is_none() && !matches!(outcome, Outcome::Gateway(_)) {
        tracing::info!(target: "access", request_id = %ctx.request_id, path = %clip(session.req_header().uri.path()), status, "request");
        return;
    }
    let session_id = ctx.answer.issued_session.as_deref().or_else(|| {
        session
            .req_header()
            .headers
            .get(&names::SESSION_ID)
            .and_then(|v| v.to_str().ok())
    });
    // Hashed only for those who keep it: the audit row and a sampled request's span.
    let session_hash = session_id
        .filter(|_| ctx.rt.audit.enabled() || super::traced::sampled(ctx))
        .map(short_hash);
    super::traced::finish(ctx, &outcome, status, session_hash.as_deref());
    let trace_id = super::traced::trace_id(ctx);
    let scope_name = scope.map_or("", |s| s.scope.name.as_str());
    ctx.guard_hits.count(scope_name);
    if let Some(scope) = scope {
        // Passive health: connect failures, 5xx and timeouts count against the upstream.
        for e in &ctx.upstream.tried {
            scope.record(e, false);
        }
        if let Some(p) = &ctx.upstream.picked {
            scope.record(p, !outcome.upstream_failed());
        }
    }
    // Everything a client chose is bounded before it is written anywhere (see `logs::clip`).
    let method = clip(
        ctx.method()
            .unwrap_or_else(|| session.req_header().method.as_str()),
    );
    let tool = outcome.tool(ctx.tool()).map(clip);
    let user = ctx.identity().map(|i| clip(&i.user));
    let reason = outcome.reason().map(|r| clip(&r).into_owned());

    count(ctx, scope, &outcome, tool.as_deref(), latency);

    crate::logs::access(&crate::logs::AccessLine {
        request_id: &ctx.request_id,
        user: user.as_deref().unwrap_or(""),
        scope: scope_name,
        method: &method,
        tool: tool.as_deref().unwrap_or(""),
        upstream: ctx
            .upstream
            .picked
            .as_ref()
            .map(|p| p.addr.as_str())
            .unwrap_or(""),
        status,
        outcome: class.as_str(),
        reason: reason.as_deref().unwrap_or(""),
        latency_ms: latency.as_secs_f64() * 1000.0,
        trace_id: trace_id.as_deref().unwrap_or(""),
    });

    let audit = &ctx.rt.audit;
    if !audit.enabled() {
        return;
    }
    let first = ctx.rpc.as_ref().and_then(|r| r.first());
    let arguments = first
        .and_then(|m| m.arguments.as_deref())
        .and_then(|a| audit.config.arguments.seal(a));
    let mut row = AuditRecord::new(
        &audit.config,
        ctx.request_id.clone(),
        class,
        i32::from(status),
    );
    if let Some(i) = ctx.identity() {
        row = row.by(i);
    }
    audit.submit(AuditRecord {
        scope: scope.map(|_| scope_name.to_string()),
        method: Some(method.into_owned()),
        tool: tool.map(|t| t.into_owned()),
        jsonrpc_id: first
            .and_then(|m| m.id.as_deref())
            .map(|id| clip(id).into_owned()),
        reason,
        rpc_error_code: outcome.rpc_code(),
        upstream: upstream_named(ctx, scope),
        latency_ms: latency.as_secs_f64() * 1000.0,
        upstream_latency_ms: ctx.upstream.elapsed.map(|d| d.as_secs_f64() * 1000.0),
        request_bytes: ctx.body.bytes as i64,
        response_bytes: ctx.answer.bytes as i64,
        client_addr: session.client_addr().and_then(|a| a.as_inet()).copied(),
        session_hash,
        trace_id,
        arguments,
        client_cert: crate::listen::tls::client_cert(session).map(|c| c.subject.clone()),
        job_id: ctx.job.clone(),
        upstream_credential: super::credentials::kind(ctx).map(str::to_string),
        policy_rule: ctx.decided_by.clone(),
        guard_hits: ctx.guard_hits.summary(),
        ..row
    });
}

/// The upstream the audit row names: the address picked, or on a composed scope the server of
/// the tool or prompt called (its composer's address says nothing).
fn upstream_named(
    ctx: &RequestCtx,
    scope: Option<&crate::upstream::ScopeUpstreams>,
) -> Option<String> {
    let picked = ctx.upstream.picked.as_ref()?;
    let Some(composed) = scope.and_then(|s| s.scope.composed.as_ref()) else {
        return Some(picked.addr.clone());
    };
    let first = ctx.rpc.as_ref()?.first()?;
    let server = match (&first.tool, &first.target) {
        (Some(tool), _) => composed.tool(tool),
        (None, Some(crate::jsonrpc::Target::Prompt(p))) => composed.prompt(p),
        _ => None,
    };
    Some(server.map_or_else(|| picked.addr.clone(), |(s, _)| s.name.clone()))
}

/// The request's metrics: per scope when it has one; authentication failures and audit refusals
/// wherever they happen.
fn count(
    ctx: &RequestCtx,
    scope: Option<&crate::upstream::ScopeUpstreams>,
    outcome: &Outcome<'_>,
    tool: Option<&str>,
    latency: std::time::Duration,
) {
    let class = outcome.class();
    match outcome.alert() {
        Some(Alert::AuthFailure(reason)) => {
            metrics::AUTH_FAILURES.with_label_values(&[reason]).inc()
        }
        Some(Alert::AuditRefused) => metrics::AUDIT_REFUSED.inc(),
        _ => {}
    }
    let Some(scope) = scope else {
        return;
    };
    let m = &scope.metrics;
    m.requests(ctx.method(), class).inc();
    m.request_seconds().observe(latency.as_secs_f64());
    if let Some(u) = ctx.upstream.elapsed {
        m.upstream_seconds().observe(u.as_secs_f64());
    }
    if let Some(t) = tool {
        m.tool_calls(t, class).inc();
    }
    match outcome.alert() {
        Some(Alert::PolicyDenial) => m.policy_denials().inc(),
        Some(Alert::RateLimited) => m.rate_limited().inc(),
        _ => {}
    }
}

/// Records a request whose head Pingora could not parse, answered by the listener: no scope,
/// user or method is known, only the client's address and what it was told.
pub fn refused_head(audit: &crate::audit::Audit, r: crate::listen::RefusedHead) {
    let outcome = Outcome::Gateway(&r.error);
    let class = outcome.class();
    let reason = outcome.reason().map(|r| r.into_owned());
    let status = r.error.status();
    crate::logs::access(&crate::logs::AccessLine {
        request_id: &r.request_id,
        user: "",
        scope: "",
        method: "",
        tool: "",
        upstream: "",
        status,
        outcome: class.as_str(),
        reason: reason.as_deref().unwrap_or(""),
        latency_ms: 0.0,
        trace_id: "",
    });
    if !audit.enabled() {
        return;
    }
    let row = AuditRecord::new(&audit.config, r.request_id, class, i32::from(status));
    audit.submit(AuditRecord {
        reason,
        rpc_error_code: outcome.rpc_code(),
        client_addr: r.peer,
        ..row
    });
}

#[cfg(test)]
mod tests;
