//! Which headers cross the gateway, each way: an allow-list, not a deny-list. A deny-list misses
//! every name nobody thought of (`X-Original-URL`, `True-Client-IP`, `X_User_ID`, which some
//! frameworks read as `X-User-ID`), so a client could speak to the upstream past the gateway,
//! and an upstream could tell a client its internal addresses. Requests carry content negotiation,
//! the MCP headers and tracing context; answers carry their framing, content type, caching and
//! the MCP session. Operators add names with `forward_headers.request` / `.response` (names the
//! gateway writes itself cannot be added: `config::headers`).

use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};

/// Request headers the upstream gets from the client (the gateway then writes its own: identity,
/// forwarding, request id, session).
const REQUEST: [&str; 16] = [
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
    // Rewritten from the real peer by `upstream::forwarding`, which reads a trusted proxy's chain.
    "x-forwarded-for",
    "forwarded",
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

/// Removes every request header that is neither built in nor in `extra`.
pub fn request(req: &mut RequestHeader, extra: &[HeaderName]) {
    let drop: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| {
            let n = n.as_str();
            !REQUEST.contains(&n) && !n.starts_with(REQUEST_PREFIX) && !extra.iter().any(|e| e == n)
        })
        .cloned()
        .collect();
    for name in &drop {
        req.remove_header(name);
    }
}

/// Removes every answer header that is neither built in nor in `extra`.
pub fn response(resp: &mut ResponseHeader, extra: &[HeaderName]) {
    let drop: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|n| !RESPONSE.contains(&n.as_str()) && !extra.iter().any(|e| e == *n))
        .cloned()
        .collect();
    for name in &drop {
        resp.remove_header(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_request_headers_stay() {
        let mut req = RequestHeader::build("POST", b"/calculator/mcp", None).unwrap();
        for (n, v) in [
            ("Accept", "application/json"),
            ("X_User_ID", "root"),
            ("X-Original-URL", "/admin"),
            ("True-Client-IP", "1.2.3.4"),
            ("Mcp-Param-Region", "eu"),
            ("X-Team", "a"),
            ("Via", "1.1 evil"),
        ] {
            req.insert_header(n.to_string(), v).unwrap();
        }
        request(&mut req, &[HeaderName::from_static("x-team")]);
        let mut kept: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
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
        ] {
            resp.insert_header(n.to_string(), v).unwrap();
        }
        response(&mut resp, &[]);
        let mut kept: Vec<&str> = resp.headers.keys().map(|n| n.as_str()).collect();
        kept.sort();
        assert_eq!(kept, ["content-type", "mcp-session-id"]);
    }
}
