//! Step 1, admit: what the path names, whether the method fits, and the header checks that need no
//! token (Origin, protocol version, content type, framing).
//!
//! Nothing the gateway does not inspect may reach an upstream: a protocol upgrade (a tunnel the
//! gateway could not read), a body on GET or DELETE (never parsed, so never authorised), and a POST
//! without body framing (its upstream would receive a complete empty request) are refused here,
//! before any token is checked or any upstream contacted.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::jsonrpc::SUPPORTED_VERSIONS;
use pingora_proxy::Session;

/// What a request path names.
pub enum Route {
    Healthz,
    Readyz,
    /// `/.well-known/oauth-protected-resource/S/(sse|mcp)`.
    ResourceMetadata {
        path: String,
    },
    /// `/S/sse` or `/S/mcp`.
    Scoped,
    /// A browser's CORS preflight for a scoped endpoint or its metadata.
    Preflight,
    /// The REST API under `/mcp/` (invoke, jobs, OpenAPI document).
    Rest(super::rest::Route),
    /// The consent page under `/connect` (users' own upstream logins).
    Connect,
}

/// Resolves the path; for a scoped endpoint, sets `ctx.scope`.
pub fn route(session: &Session, ctx: &mut RequestCtx) -> Result<Route, GatewayError> {
    if session.req_header().method == http::Method::CONNECT {
        return Err(GatewayError::MethodNotAllowed("CONNECT is not supported"));
    }
    let path = session.req_header().uri.path();
    match path {
        "/healthz" => return Ok(Route::Healthz),
        "/readyz" => return Ok(Route::Readyz),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/.well-known/oauth-protected-resource") {
        if scope_of(rest).is_some_and(|s| ctx.rt.upstreams.contains_key(s)) {
            if super::cors::is_preflight(session) {
                return Ok(Route::Preflight);
            }
            super::cors::note_origin(session, ctx);
            return Ok(Route::ResourceMetadata {
                path: rest.to_string(),
            });
        }
        return Err(GatewayError::NotFound(format!(
            "no protected resource at {}",
            clip(path)
        )));
    }
    if super::connect::is_connect(path) {
        return Ok(Route::Connect);
    }
    if let Some(r) = super::rest::route(path) {
        return Ok(Route::Rest(r));
    }
    match scope_of(path).and_then(|s| ctx.rt.upstreams.get(s)) {
        Some(scope) => {
            ctx.scope = Some(scope.clone());
            if super::cors::is_preflight(session) {
                return Ok(Route::Preflight);
            }
            Ok(Route::Scoped)
        }
        None => Err(GatewayError::NotFound(format!(
            "no MCP endpoint at {}",
            clip(path)
        ))),
    }
}

/// `/S/sse`, `/S/mcp` or `/S/messages` (legacy HTTP+SSE) → `S`.
fn scope_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (scope, endpoint) = rest.split_once('/')?;
    matches!(endpoint, "sse" | "mcp" | "messages").then_some(scope)
}

fn clip(path: &str) -> String {
    path.chars().take(100).collect()
}

/// Checks a scoped request's method and headers before anything else is spent on it.
pub fn check_scoped(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    // First, so that every answer to an allowed browser origin, refusals included, is readable.
    super::cors::read_origin(session, ctx)?;
    let req = session.req_header();
    let heads = Heads::of(req);
    if heads.too_long {
        return Err(GatewayError::InvalidRequest(
            "a request header value is longer than 8 KiB".into(),
        ));
    }
    if let Some(repeated) = heads.repeated() {
        return Err(GatewayError::InvalidRequest(repeated.into()));
    }
    if !matches!(req.method.as_str(), "POST" | "GET" | "DELETE") {
        return Err(GatewayError::MethodNotAllowed("use POST, GET or DELETE"));
    }
    if heads.upgrade {
        return Err(GatewayError::InvalidRequest(
            "protocol upgrades are not supported".into(),
        ));
    }
    if req.method == "POST" {
        if heads.length.is_none() && !heads.chunked {
            return Err(GatewayError::InvalidRequest(
                "a POST needs a body with Content-Length or chunked transfer encoding".into(),
            ));
        }
    } else {
        let empty = heads.length.is_none_or(|v| v.as_bytes() == b"0");
        if heads.chunked || !empty {
            return Err(GatewayError::InvalidRequest(
                "GET and DELETE requests carry no body".into(),
            ));
        }
    }
    if let Some(v) = heads.version {
        let v = v.to_str().unwrap_or("");
        let supported = (ctx.scope.as_ref()).map_or(SUPPORTED_VERSIONS, |s| s.scope.versions());
        match supported.iter().find(|s| **s == v) {
            Some(known) => ctx.version = known,
            None => {
                let refusal = GatewayError::UnsupportedVersion {
                    requested: v.chars().take(40).collect(),
                    supported,
                };
                // A POST's answer names its request's id: the body is read for it first (after
                // authentication, like any body).
                if req.method != "POST" {
                    return Err(refusal);
                }
                ctx.refused_head = Some(refusal);
            }
        }
    }
    if req.method != "POST" && ctx.is_modern() {
        return Err(GatewayError::MethodNotAllowed(
            "the 2026-07-28 revision takes POST only",
        ));
    }
    if req.method == "POST" && !heads.content_type.is_some_and(json_type) {
        return Err(GatewayError::UnsupportedMediaType);
    }
    // A GET opens the server's event stream (Streamable HTTP) or the legacy one: the client must
    // accept one, else it is told so here instead of getting an upstream's plain-text refusal.
    if req.method == "GET" && !accepts_event_stream(req) {
        return Err(GatewayError::NotAcceptable(
            "a GET opens the server's event stream: send Accept: text/event-stream",
        ));
    }
    // A compressed body would be judged as the bytes it is and read by the upstream as what it
    // inflates to: only plain bodies are taken.
    if heads.encoded {
        return Err(GatewayError::UnsupportedMediaType);
    }
    Ok(())
}

/// Headers that decide where a request goes and how its body is read may appear once: the gateway
/// judges one value, and an upstream that reads another would act on something never judged.
/// (In this order a request repeating several is told of the first.)
const ONCE: [(&str, &str); 5] = [
    (
        "mcp-protocol-version",
        "more than one MCP-Protocol-Version header",
    ),
    ("mcp-method", "more than one Mcp-Method header"),
    ("mcp-name", "more than one Mcp-Name header"),
    ("mcp-session-id", "more than one Mcp-Session-Id header"),
    ("content-type", "more than one Content-Type header"),
];

/// What `check_scoped` judges of a request's headers, read in one pass over them: a request has a
/// handful of headers, and a dozen lookups by name (each hashing the name and probing the map)
/// cost more than reading each once.
#[derive(Default)]
struct Heads<'a> {
    /// A value longer than `MAX_HEADER_VALUE` (whatever is forwarded stays small, and an
    /// upstream's own "header too large" page never reaches the client).
    too_long: bool,
    /// How often each of `ONCE` appears.
    seen: [u8; ONCE.len()],
    /// `Upgrade`, or `Connection: upgrade`.
    upgrade: bool,
    /// The first `Content-Length`.
    length: Option<&'a http::HeaderValue>,
    chunked: bool,
    version: Option<&'a http::HeaderValue>,
    content_type: Option<&'a http::HeaderValue>,
    /// A `Content-Encoding` other than `identity`.
    encoded: bool,
}

impl<'a> Heads<'a> {
    fn of(req: &'a pingora::http::RequestHeader) -> Self {
        let mut h = Heads::default();
        for (name, value) in &req.headers {
            h.too_long |= value.len() > MAX_HEADER_VALUE;
            let name = name.as_str();
            if let Some(i) = ONCE.iter().position(|(n, _)| *n == name) {
                h.seen[i] = h.seen[i].saturating_add(1);
            }
            match name {
                "upgrade" => h.upgrade = true,
                "connection" => h.upgrade |= has_token(value.as_bytes(), b"upgrade"),
                "content-length" => h.length = h.length.or(Some(value)),
                "transfer-encoding" => h.chunked = true,
                "mcp-protocol-version" => h.version = h.version.or(Some(value)),
                "content-type" => h.content_type = h.content_type.or(Some(value)),
                "content-encoding" => {
                    h.encoded |= !value.as_bytes().eq_ignore_ascii_case(b"identity")
                }
                _ => {}
            }
        }
        h
    }

    /// The refusal for the first of `ONCE` that appears more than once.
    fn repeated(&self) -> Option<&'static str> {
        (ONCE.iter().zip(self.seen)).find_map(|((_, refusal), n)| (n > 1).then_some(*refusal))
    }
}

/// Whether the request's `Accept` names `text/event-stream` (among other types, with parameters).
pub fn accepts_event_stream(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get_all(http::header::ACCEPT)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| {
            let media = t.split(|b| *b == b';').next().unwrap_or(t);
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
        })
}

/// The longest request header value accepted (nginx's default buffer for one header line).
const MAX_HEADER_VALUE: usize = 8 * 1024;

/// Whether the request says its body is `application/json` (parameters allowed).
pub fn is_json(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(json_type)
}

/// Whether a `Content-Type` value is `application/json` (parameters allowed).
fn json_type(v: &http::HeaderValue) -> bool {
    v.to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
