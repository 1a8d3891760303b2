//! Browsers: CORS for the origins in `allowed_origins`, answered by the gateway itself. A preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed origin gets 204
//! with the methods and MCP headers a client needs; from any other origin it gets 403 and no CORS
//! header at all. Answers to an allowed origin name it (never `*`: requests carry credentials) and
//! expose `Mcp-Session-Id`, `WWW-Authenticate`, `X-Request-ID` and `Retry-After`. An upstream's
//! own CORS headers never reach the client: the gateway alone decides who may call from a browser.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use pingora::http::ResponseHeader;
use pingora_proxy::Session;

const ALLOW_METHODS: &str = "GET, POST, DELETE";
/// What a client of any revision sends: 2026-07-28 adds the routing headers `Mcp-Method`,
/// `Mcp-Name` and any `Mcp-Param-*` (those the preflight asks for are allowed by name: a wildcard
/// does not hold for requests with credentials).
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";
/// The most `Mcp-Param-*` names one preflight gets allowed.
const MAX_PARAM_HEADERS: usize = 32;
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, WWW-Authenticate, X-Request-ID, Retry-After";
/// How long a browser may reuse a preflight answer.
const MAX_AGE: &str = "600";

/// Reads the request's `Origin` once: kept in the context when it is allowed.
pub fn read_origin(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let Some(origin) = session.req_header().headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let allowed = origin
        .to_str()
        .ok()
        .filter(|o| ctx.rt.config.allowed_origins.iter().any(|a| a == o));
    match allowed {
        Some(o) => {
            ctx.cors_origin = Some(o.to_string());
            Ok(())
        }
        None if loopback_same_origin(session, origin.as_bytes()) => Ok(()),
        None => Err(GatewayError::Forbidden("origin not allowed".into())),
    }
}

/// A page served by this very address on the user's own machine: the `Origin` names a loopback
/// host (`localhost`, `127.0.0.1`, `[::1]`) and is the request's `Host`. A rebinding attack cannot
/// produce it (the attacker's page has the attacker's name as its origin), and a same-origin
/// request needs no CORS answer.
fn loopback_same_origin(session: &Session, origin: &[u8]) -> bool {
    let req = session.req_header();
    let host = (req.headers.get(http::header::HOST))
        .map(|h| h.as_bytes())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()));
    let Some(host) = host else {
        return false;
    };
    let authority = origin
        .strip_prefix(b"http://")
        .or_else(|| origin.strip_prefix(b"https://"));
    let loopback = |a: &[u8]| {
        let end = match a.first() {
            Some(b'[') => a.iter().position(|c| *c == b']').map_or(a.len(), |i| i + 1),
            _ => a.iter().position(|c| *c == b':').unwrap_or(a.len()),
        };
        let name = &a[..end];
        [&b"localhost"[..], b"127.0.0.1", b"[::1]"]
            .iter()
            .any(|l| name.eq_ignore_ascii_case(l))
    };
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host) && loopback(a))
}

/// Notes an allowed `Origin` for public answers (metadata), refusing nobody.
pub fn note_origin(session: &Session, ctx: &mut RequestCtx) {
    let _ = read_origin(session, ctx);
}

/// Whether the request is a CORS preflight.
pub fn is_preflight(session: &Session) -> bool {
    let req = session.req_header();
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The preflight answer's extra headers (the origin was allowed by `read_origin`): the fixed
/// list, and the `Mcp-Param-*` headers the browser asks for.
pub fn preflight_headers(session: &Session) -> [(&'static str, String); 3] {
    let mut allow = ALLOW_HEADERS.to_string();
    let asked = session
        .req_header()
        .headers
        .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| {
            h.len() > 10
                && h.len() <= 128
                && h[..10].eq_ignore_ascii_case("mcp-param-")
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .take(MAX_PARAM_HEADERS);
    for h in asked {
        allow.push_str(", ");
        allow.push_str(h);
    }
    [
        ("Access-Control-Allow-Methods", ALLOW_METHODS.into()),
        ("Access-Control-Allow-Headers", allow),
        ("Access-Control-Max-Age", MAX_AGE.into()),
    ]
}

/// Adds the CORS headers for an allowed origin to an answer. Nothing to remove first: every
/// answer header is built from nothing or by `allowed::response`, whose allow-list never takes an
/// upstream's `Access-Control-*` (the built-in list has none, and `config::headers` refuses them
/// in `forward_headers`), so an upstream's `*` never reaches a client.
pub fn decorate(resp: &mut ResponseHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    if let Some(origin) = &ctx.cors_origin {
        resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.as_str())?;
        resp.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS)?;
        resp.append_header(http::header::VARY, "Origin")?;
    }
    Ok(())
}
