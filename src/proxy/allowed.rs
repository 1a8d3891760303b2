//! Which headers cross the gateway, each way: an allow-list, not a deny-list. A deny-list misses
//! every name nobody thought of (`X-Original-URL`, `True-Client-IP`, `X_User_ID`, which some
//! frameworks read as `X-User-ID`), so a client could speak to the upstream past the gateway,
//! and an upstream could tell a client its internal addresses. Requests carry content negotiation,
//! the MCP headers and tracing context; answers carry their framing, content type, caching and
//! the MCP session. Operators add names with `forward_headers.request` / `.response` (names the
//! gateway writes itself cannot be added: `config::headers`).

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;

/// Request headers the upstream gets from the client (the gateway then writes its own: identity,
/// forwarding, request id, session).
const REQUEST: [&str; 14] = [
    "accept",
    "content-type",
    "content-length",
    "transfer-encoding",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "mcp-session-id",
    "last-event-id",
    "user-agent",
    "origin",
    "traceparent",
    "tracestate",
    "baggage",
];

/// The 2026-07-28 revision asks intermediaries to pass its per-parameter routing headers on.
const REQUEST_PREFIX: &str = "mcp-param-";

/// Answer headers the client gets from the upstream (the gateway then writes its own: request
/// id, CORS, the sealed session id).
const RESPONSE: [&str; 8] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "cache-control",
    "mcp-session-id",
    "retry-after",
    "x-accel-buffering",
    "content-encoding",
];

/// Forwarding headers a client may not set for itself: never copied (`upstream::forwarding`
/// writes `X-Forwarded-For` and `Forwarded` from the real peer and a trusted proxy's chain).
const FORWARDING: [&str; 8] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-forwarded-user",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-original-forwarded-for",
];

/// Copies into `to` every request header of `from` that is built in or in `extra`, except the
/// forwarding headers. The upstream's header block is built from nothing, so a name nobody
/// listed cannot reach it by any spelling.
pub fn copy_request(from: &HeaderMap, to: &mut HeaderMap, extra: &[HeaderName]) {
    for (name, value) in from {
        let n = name.as_str();
        let listed = REQUEST.contains(&n) || n.starts_with(REQUEST_PREFIX) || extra.contains(name);
        if listed && !FORWARDING.contains(&n) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The answer's header with only the headers that are built in or in `extra`, and the request's
/// id. Built anew without a second map for the names' case: nothing is copied or parsed per
/// header, and the client gets the names in lower case (HTTP names are case-insensitive; HTTP/2
/// sends them so). The id goes into the new map directly: Pingora's `insert_header` parses every
/// name again, even one already parsed.
pub fn response(
    resp: &ResponseHeader,
    extra: &[HeaderName],
    request_id: HeaderValue,
) -> ResponseHeader {
    let mut headers = HeaderMap::with_capacity(resp.headers.len() + 4);
    for (name, value) in &resp.headers {
        if RESPONSE.contains(&name.as_str()) || extra.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(super::names::REQUEST_ID, request_id);
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = resp.status;
    parts.version = resp.version;
    parts.headers = headers;
    ResponseHeader::from(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_request_headers_are_copied() {
        let mut from = HeaderMap::new();
        for (n, v) in [
            ("accept", "application/json"),
            ("x_user_id", "root"),
            ("x-original-url", "/admin"),
            ("true-client-ip", "1.2.3.4"),
            ("mcp-param-region", "eu"),
            ("x-team", "a"),
            ("x-real-ip", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("via", "1.1 evil"),
        ] {
            from.append(HeaderName::from_static(n), v.parse().unwrap());
        }
        let mut to = HeaderMap::new();
        let extra = [
            HeaderName::from_static("x-team"),
            HeaderName::from_static("x-real-ip"),
        ];
        copy_request(&from, &mut to, &extra);
        let mut kept: Vec<&str> = to.keys().map(|n| n.as_str()).collect();
        kept.sort();
        assert_eq!(kept, ["accept", "mcp-param-region", "x-team"]);
    }

    #[test]
    fn only_allowed_response_headers_stay() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (n, v) in [
            ("Content-Type", "application/json"),
            ("X-Internal-Addr", "10.9.8.7:5432"),
            ("Set-Cookie", "a=b"),
            ("Mcp-Session-Id", "s"),
            // `cors::decorate` adds its own without removing: an upstream's never stays.
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Credentials", "true"),
        ] {
            resp.insert_header(n.to_string(), v).unwrap();
        }
        resp.insert_header("X-Request-Id", "the-upstream-s")
            .unwrap();
        let resp = response(&resp, &[], HeaderValue::from_static("the-gateway-s"));
        let mut kept: Vec<&str> = resp.headers.keys().map(|n| n.as_str()).collect();
        kept.sort();
        assert_eq!(kept, ["content-type", "mcp-session-id", "x-request-id"]);
        assert_eq!(resp.headers["x-request-id"], "the-gateway-s");
    }
}
