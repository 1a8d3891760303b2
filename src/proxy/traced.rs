//! The request's trace on its way: the trace context the upstream receives (`traceparent` and
//! `tracestate` headers; in `params._meta` of a sampled request, where MCP servers read it), and
//! its spans once it has ended, named from the same outcome as the audit row.

use super::ctx::RequestCtx;
use super::names;
use crate::jsonrpc::{Rpc, Target};
use crate::outcome::Outcome;
use crate::trace::{Finished, SpanOut};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use std::borrow::Cow;
use std::time::Instant;

/// `traceparent` (the gateway's upstream-call span) and the trace's `tracestate` on the
/// upstream request, in place of whatever the client sent.
pub fn headers(
    h: &mut http::HeaderMap,
    ctx: &RequestCtx,
) -> Result<(), http::header::InvalidHeaderValue> {
    let Some(t) = &ctx.trace else {
        return Ok(());
    };
    h.insert(names::TRACEPARENT, t.traceparent().try_into()?);
    match t.tracestate() {
        Some(s) => {
            h.insert(names::TRACESTATE, s.try_into()?);
        }
        None => {
            h.remove(&names::TRACESTATE);
        }
    }
    Ok(())
}

/// A sampled request's body carries the upstream-call span in `params._meta` too, so a tool that
/// reads its parent there (as the MCP conventions say) joins the trace.
pub fn meta(ctx: &mut RequestCtx, bytes: &[u8]) {
    let Some(t) = ctx.trace.as_ref().filter(|t| t.sampled) else {
        return;
    };
    let Some(Rpc::Single(m)) = &ctx.rpc else {
        return;
    };
    let body = ctx.body.rewritten.as_ref().map_or(bytes, |r| &r.body[..]);
    let Some(new) =
        crate::jsonrpc::with_trace_meta(body, &t.traceparent(), t.tracestate().as_deref())
    else {
        return;
    };
    match &mut ctx.body.rewritten {
        Some(r) => r.body = new.into(),
        None => {
            // The routing headers of a 2026-07-28 request still describe the body.
            let route = ctx.is_modern().then(|| {
                let method = m.method.clone().unwrap_or_default();
                let name = super::modern::routed_name(&method, m).map(str::to_string);
                (method, name)
            });
            ctx.body.rewritten = Some(super::translate::up::Rewritten {
                body: new.into(),
                route,
                sent: false,
            });
        }
    }
}

/// Whether this request's spans are recorded.
pub fn sampled(ctx: &RequestCtx) -> bool {
    ctx.trace.as_ref().is_some_and(|t| t.sampled)
}

/// The trace id as the access line and the audit row carry it.
pub fn trace_id(ctx: &RequestCtx) -> Option<String> {
    ctx.trace.as_ref().map(|t| t.trace_id_hex())
}

/// Hands a sampled request's spans to the exporter: the server span (MCP attributes, the
/// scope, the upstream, the caller as configured, the outcome) and the upstream call's.
pub fn finish(ctx: &RequestCtx, outcome: &Outcome<'_>, status: u16, session_hash: Option<&str>) {
    let (Some(t), Some(tracer)) = (&ctx.trace, &ctx.rt.tracer) else {
        return;
    };
    if !t.sampled {
        return;
    }
    let end = Instant::now();
    let first = ctx.rpc.as_ref().and_then(|r| r.first());
    let method = ctx.method();
    let target = match first {
        Some(m) if m.tool.is_some() => m.tool.as_deref(),
        Some(crate::jsonrpc::Message {
            target: Some(Target::Prompt(p)),
            ..
        }) => Some(p.as_str()),
        _ => None,
    };
    let name: Cow<'static, str> = match (method, target) {
        (Some(m), Some(t)) => format!("{} {}", crate::logs::clip(m), crate::logs::clip(t)).into(),
        (Some(m), None) => crate::logs::clip(m).into_owned().into(),
        (None, _) => "mcp".into(),
    };
    let mut attrs = Vec::with_capacity(16);
    let mut both = Vec::with_capacity(4);
    if let Some(m) = method {
        both.push(KeyValue::new(
            "mcp.method.name",
            crate::logs::clip(m).into_owned(),
        ));
    }
    if let Some(m) = first {
        if let Some(tool) = &m.tool {
            both.push(KeyValue::new(
                "gen_ai.tool.name",
                crate::logs::clip(tool).into_owned(),
            ));
            both.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        match &m.target {
            Some(Target::Prompt(p)) => both.push(KeyValue::new(
                "gen_ai.prompt.name",
                crate::logs::clip(p).into_owned(),
            )),
            Some(Target::Resource(uri)) => both.push(KeyValue::new(
                "mcp.resource.uri",
                crate::logs::clip(uri).into_owned(),
            )),
            Some(Target::Task(_)) | None => {}
        }
        if let Some(id) = &m.id {
            attrs.push(KeyValue::new(
                "jsonrpc.request.id",
                crate::logs::clip(id.trim_matches('"')).into_owned(),
            ));
        }
    }
    attrs.extend(both.iter().cloned());
    attrs.push(KeyValue::new("mcp.protocol.version", ctx.version));
    attrs.push(KeyValue::new("network.transport", "tcp"));
    attrs.push(KeyValue::new("network.protocol.name", "http"));
    attrs.push(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    attrs.push(KeyValue::new(
        "mcp_gateway.request_id",
        ctx.request_id.to_string(),
    ));
    attrs.push(KeyValue::new(
        "mcp_gateway.outcome",
        outcome.class().as_str(),
    ));
    if let Some(s) = session_hash {
        attrs.push(KeyValue::new("mcp.session.id", s.to_string()));
    }
    if let Some(scope) = &ctx.scope {
        attrs.push(KeyValue::new("mcp_gateway.scope", scope.scope.name.clone()));
    }
    if let Some(user) = ctx.identity().and_then(|i| tracer.user_id(&i.user)) {
        attrs.push(KeyValue::new("user.id", user));
    }
    if let Some(code) = outcome.rpc_code() {
        attrs.push(KeyValue::new("rpc.response.status_code", code.to_string()));
    }
    let error_type = error_type(outcome);
    if let Some(e) = &error_type {
        attrs.push(KeyValue::new("error.type", e.clone()));
    }
    let upstream = ctx.upstream.started.map(|start| {
        let mut a = both;
        if let Some(p) = &ctx.upstream.picked {
            attrs.push(KeyValue::new("mcp_gateway.upstream", p.addr.clone()));
            a.push(KeyValue::new("server.address", p.target.host.clone()));
            a.push(KeyValue::new("server.port", i64::from(p.sock.port())));
        }
        let upstream_failed = outcome.upstream_failed();
        if upstream_failed {
            if let Some(e) = &error_type {
                a.push(KeyValue::new("error.type", e.clone()));
            }
        }
        SpanOut {
            name: name.clone(),
            kind: SpanKind::Client,
            start,
            end: ctx.upstream.elapsed.map_or(end, |d| start + d),
            attributes: a,
            error: upstream_failed.then(|| outcome.reason().unwrap_or_default()),
        }
    });
    let server = SpanOut {
        name,
        kind: SpanKind::Server,
        start: ctx.started,
        end,
        attributes: attrs,
        // The status of a failed request says why, else what kind of failure it was.
        error: error_type.map(|e| {
            Cow::Owned(
                outcome
                    .reason()
                    .map_or(e, |r| crate::logs::clip(&r).into_owned()),
            )
        }),
    };
    t.finish(tracer, Finished { server, upstream });
}

/// `error.type` as the conventions want it: the JSON-RPC error code, `tool_error`, or the
/// gateway's class of refusal.
fn error_type(outcome: &Outcome<'_>) -> Option<String> {
    match outcome {
        Outcome::Ok | Outcome::ClientGone => None,
        Outcome::ToolError => Some("tool_error".into()),
        Outcome::RpcError { code } => Some(code.to_string()),
        Outcome::UpstreamStatus(s) => Some(s.to_string()),
        Outcome::UpstreamBroke(_) => Some("upstream_error".into()),
        Outcome::Gateway(_) => Some(outcome.class().as_str().into()),
    }
}
