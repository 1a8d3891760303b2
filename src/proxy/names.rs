//! Header names the gateway reads and writes, parsed once: a `&str` name is parsed again on every
//! lookup and insert.

use http::HeaderName;

pub const GATEWAY_AUTH: HeaderName = HeaderName::from_static("x-gateway-auth");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const USER_ID: HeaderName = HeaderName::from_static("x-user-id");
pub const TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// 2026-07-28 routing headers: the method, and the tool, prompt or resource it names.
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
/// W3C trace context.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The names the gateway inserts into headers Pingora keeps a case map for (answers it writes
/// itself), in the form Pingora stores for free: for a `HeaderName` outside its short list of
/// titled names it copies the name into a new buffer on every insert, while a static `Bytes` is
/// kept as it is. (Proxied requests and answers get header blocks without a case map.)
pub mod written {
    use bytes::Bytes;

    pub const REQUEST_ID: Bytes = Bytes::from_static(b"x-request-id");
    pub const SESSION_ID: Bytes = Bytes::from_static(b"mcp-session-id");
}

#[cfg(test)]
mod tests {
    #[test]
    fn written_names_match_the_parsed_ones() {
        for (written, parsed) in [
            (super::written::REQUEST_ID, super::REQUEST_ID),
            (super::written::SESSION_ID, super::SESSION_ID),
        ] {
            assert_eq!(&written[..], parsed.as_str().as_bytes());
        }
    }
}
