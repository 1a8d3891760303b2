//! 2025 clients on upstreams that speak only 2026-07-28 (`upstream_version: 2026-07-28`). The
//! client's session is the gateway's alone: `initialize` is answered here from the upstream's
//! `server/discover` (capabilities cut to the caller's grants), `ping`, notifications and the
//! client's responses are answered here (2026-07-28 has none of them), and every other request
//! goes to the upstream with the revision's `_meta` envelope added to its params and its routing
//! headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) set from the body. No session id is
//! issued: the upstream is stateless. Batches are refused (the revision has none).

use super::super::ctx::RequestCtx;
use super::super::{modern, visible};
use crate::error::GatewayError;
use crate::jsonrpc::{Rpc, MODERN_VERSION, SUPPORTED_VERSIONS};
use crate::protocol::method;
use bytes::Bytes;
use serde_json::{json, Value};

/// A request body rewritten for the upstream's revision (either way).
pub struct Rewritten {
    pub body: Bytes,
    /// Toward a 2026-07-28 upstream: the method and name for its routing headers.
    pub route: Option<(String, Option<String>)>,
    /// The body was handed to the upstream already.
    pub sent: bool,
}

/// Toward an older upstream: the body without the 2026-07-28 envelope in `params._meta` (a
/// server that speaks both revisions would take it for a 2026-07-28 request).
pub fn strip_envelope(body: &[u8]) -> Result<Rewritten, GatewayError> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::ParseError(e.to_string()))?;
    strip_meta(&mut v);
    Ok(Rewritten {
        body: Bytes::from(serde_json::to_vec(&v).map_err(|_| GatewayError::Internal)?),
        route: None,
        sent: false,
    })
}

/// Takes the 2026-07-28 envelope out of a request's `params._meta` (and `_meta` when nothing else
/// is left in it).
pub fn strip_meta(v: &mut Value) {
    if let Some(params) = v.get_mut("params").and_then(Value::as_object_mut) {
        if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.retain(|k, _| !ENVELOPE.contains(&k.as_str()));
            if meta.is_empty() {
                params.remove("_meta");
            }
        }
    }
}

/// The per-request envelope of 2026-07-28 in `params._meta`.
const ENVELOPE: [&str; 3] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/clientInfo",
];

/// What the gateway answers itself.
pub enum Local {
    Json(Vec<u8>),
    Accepted,
}

/// Whether this request is a 2025 one on a 2026-07-28-only scope.
pub fn applies(ctx: &RequestCtx) -> bool {
    !ctx.is_modern()
        && ctx
            .scope
            .as_ref()
            .is_some_and(|s| s.scope.upstream_version == Some(MODERN_VERSION))
}

/// After the body is allowed: answers what the revision does not have, or rewrites the request.
pub async fn prepare(ctx: &mut RequestCtx, body: &[u8]) -> Result<Option<Local>, GatewayError> {
    let m = match &ctx.rpc {
        Some(Rpc::Single(m)) => m.clone(),
        _ => {
            return Err(GatewayError::InvalidRequest(
                "JSON-RPC batches cannot reach this scope's upstreams (they speak 2026-07-28)"
                    .into(),
            ))
        }
    };
    let (Some(method), Some(id)) = (m.method.as_deref(), m.id.as_deref()) else {
        // A notification or the client's answer to a server request: nothing to pass on.
        return Ok(Some(Local::Accepted));
    };
    match method {
        method::PING => Ok(Some(Local::Json(
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#).into_bytes(),
        ))),
        method::INITIALIZE => initialize(ctx, body, id)
            .await
            .map(|b| Some(Local::Json(b))),
        _ => {
            let mut v: Value = serde_json::from_slice(body)
                .map_err(|e| GatewayError::ParseError(e.to_string()))?;
            let params = v
                .as_object_mut()
                .ok_or(GatewayError::Internal)?
                .entry("params")
                .or_insert_with(|| json!({}));
            let meta = params
                .as_object_mut()
                .ok_or_else(|| GatewayError::InvalidRequest("params must be an object".into()))?
                .entry("_meta")
                .or_insert_with(|| json!({}));
            let meta = meta.as_object_mut().ok_or_else(|| {
                GatewayError::InvalidRequest("params._meta must be an object".into())
            })?;
            meta.insert(
                "io.modelcontextprotocol/protocolVersion".into(),
                MODERN_VERSION.into(),
            );
            meta.insert(
                "io.modelcontextprotocol/clientCapabilities".into(),
                json!({}),
            );
            let body = serde_json::to_vec(&v).map_err(|_| GatewayError::Internal)?;
            ctx.body.rewritten = Some(Rewritten {
                body: Bytes::from(body),
                route: Some((
                    method.to_string(),
                    modern::routed_name(method, &m).map(str::to_string),
                )),
                sent: false,
            });
            Ok(None)
        }
    }
}

/// The `initialize` result, from the upstream's `server/discover`.
async fn initialize(ctx: &RequestCtx, body: &[u8], id: &str) -> Result<Vec<u8>, GatewayError> {
    let caller = ctx.admitted()?;
    let scope = caller.scope.clone();
    let picked = scope
        .select(caller.identity.user.as_bytes(), &[])
        .ok_or_else(|| GatewayError::NoHealthyUpstream(scope.scope.name.clone()))?;
    let found = ctx.rt.bridged.discovered(&scope, &picked).await?;
    let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let asked = asked["params"]["protocolVersion"].as_str().unwrap_or("");
    let version = SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == asked && **v != MODERN_VERSION)
        .copied()
        .unwrap_or("2025-11-25");
    let d = &found.init;
    let server_info = d["_meta"]["io.modelcontextprotocol/serverInfo"].clone();
    let server_info = if server_info.is_object() {
        server_info
    } else {
        json!({"name": scope.scope.name, "version": "unknown"})
    };
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": d.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": server_info,
    });
    if let Some(i) = d.get("instructions") {
        result["instructions"] = i.clone();
    }
    // What a 2025 session could ask of a 2026-07-28 upstream and cannot: `logging/setLevel` and
    // resource subscriptions (that revision has neither; its log level rides on each request and
    // changes come on `subscriptions/listen`). Not advertised, so a client does not try them.
    if let Some(caps) = result["capabilities"].as_object_mut() {
        caps.remove("logging");
        if let Some(r) = caps.get_mut("resources").and_then(Value::as_object_mut) {
            r.remove("subscribe");
        }
    }
    if let Some(obj) = result.as_object_mut() {
        visible::trim_capabilities(obj, visible::of(ctx).as_ref());
    }
    Ok(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes())
}

/// The routing headers and framing of a rewritten request.
pub fn rewrite_headers(
    h: &mut http::HeaderMap,
    t: &Rewritten,
) -> Result<(), http::header::InvalidHeaderValue> {
    use super::super::names;
    use http::HeaderValue;
    if let Some((method, name)) = &t.route {
        h.insert(
            names::PROTOCOL_VERSION,
            HeaderValue::from_static(MODERN_VERSION),
        );
        h.insert(
            names::MCP_METHOD,
            HeaderValue::try_from(crate::protocol::encode_header_value(method))?,
        );
        match name {
            Some(n) => {
                h.insert(
                    names::MCP_NAME,
                    HeaderValue::try_from(crate::protocol::encode_header_value(n))?,
                );
            }
            None => {
                h.remove(&names::MCP_NAME);
            }
        }
        h.remove(&names::SESSION_ID);
    } else {
        // The body was rewritten for an upstream that routes by body: the client's routing
        // headers described the body before, not the one that goes on.
        h.remove(&names::MCP_METHOD);
        h.remove(&names::MCP_NAME);
    }
    // The body grew: it goes chunked, whatever length the client gave.
    h.remove(http::header::CONTENT_LENGTH);
    h.insert(
        http::header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    Ok(())
}

/// The request body as the upstream gets it: the rewritten body once, nothing of the client's.
pub fn replace_body(ctx: &mut RequestCtx, chunk: &mut Option<Bytes>) {
    if let Some(t) = ctx.body.rewritten.as_mut() {
        *chunk = Some(if t.sent { Bytes::new() } else { t.body.clone() });
        t.sent = true;
    }
}
