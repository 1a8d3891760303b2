//! The gateway's one error type: every refusal the proxy can give, and the single place that turns
//! it into the HTTP status, headers and JSON-RPC error body a client sees.
//!
//! Codes stay outside the range the MCP specification reserves for itself (-32020…-32099), except
//! where the specification names the code the client expects (-32020 for a header mismatch, -32021
//! for a client capability a request needs, -32022 for an unsupported version, -32042 for a URL
//! elicitation the request needs).

mod auth;
mod storage;

pub use auth::AuthError;
use std::borrow::Cow;
pub use storage::StorageError;

/// A reason the gateway refuses or fails a request. The `Display` text is what the client reads: it
/// never contains a token, a secret or an upstream's internal address.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("Parse error: {0}")]
    ParseError(String),
    #[error("Invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// A protocol version this endpoint does not serve; `supported` is what it does serve (the
    /// scope's list, the one `server/discover` gives).
    #[error("Unsupported protocol version: {requested}")]
    UnsupportedVersion {
        requested: String,
        supported: &'static [&'static str],
    },
    /// 2026-07-28: answering the request needs a client capability the client did not declare in
    /// its request (an upstream asks for elicitation, sampling or roots).
    #[error(
        "Missing client capability: the server asks for {0}, which the request does not declare"
    )]
    MissingCapability(&'static str),
    /// 2026-07-28: a routing header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) that does not
    /// say what the body says. Refused, so a header can never route around the body's policy.
    #[error("Header mismatch: {0}")]
    HeaderMismatch(&'static str),
    /// Params the method needs are missing or malformed (2026-07-28: the `_meta` envelope).
    #[error("Invalid params: {0}")]
    InvalidParams(Cow<'static, str>),
    #[error("Unsupported media type: POST bodies must be application/json, not compressed")]
    UnsupportedMediaType,
    /// The request asks for an answer in a form the endpoint does not give (a GET that does not
    /// accept an event stream).
    #[error("Not acceptable: {0}")]
    NotAcceptable(&'static str),
    #[error("Unauthorized: {0}")]
    Unauthorized(AuthError),
    #[error("Forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    /// The token lacks OAuth scopes this endpoint needs (space-separated): 403 with
    /// `WWW-Authenticate: Bearer error="insufficient_scope"` so the client can ask for them.
    #[error("Forbidden: the token lacks the OAuth scope {0}")]
    InsufficientScope(String),
    /// A tool, prompt, resource or method the caller may not use: it looks exactly like one that
    /// does not exist.
    #[error("{0}")]
    Denied(Denied),
    #[error("Session not found: initialize a new session")]
    UnknownSession,
    #[error("Request body too large: the limit is {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("Not found: {0}")]
    NotFound(String),
    #[error("Method not allowed: {0}")]
    MethodNotAllowed(&'static str),
    #[error("Upstream failed: {0}")]
    UpstreamFailed(Cow<'static, str>),
    /// The upstream refused the request with a 4xx that is not JSON-RPC (405 for a method it does
    /// not serve, 406, 415): the client gets the same status with a JSON-RPC error.
    #[error("Invalid request: the upstream answered HTTP {0}")]
    UpstreamRefused(u16),
    #[error("No healthy upstream for scope {0}")]
    NoHealthyUpstream(String),
    #[error("Upstream timed out: {0}")]
    UpstreamTimeout(Cow<'static, str>),
    /// The body did not arrive within `connections.body_timeout` (or at `body_min_rate`).
    #[error("Request body not received in time: send it at once after the headers")]
    BodyTimeout,
    #[error("Rate limit {limit} exceeded: retry in {retry_after} s")]
    RateLimited { limit: String, retry_after: u64 },
    #[error("Too many requests in flight for this user")]
    TooManyConcurrent,
    /// The caller has `connections.bodies_per_user` requests whose body is still arriving.
    #[error("Too many request bodies still arriving for this user: send each body at once")]
    TooManyBodies,
    /// The caller has `limits.max_jobs_per_user` jobs queued or running.
    #[error("Too many jobs queued or running for this user: wait for one to finish")]
    TooManyJobs,
    /// No job (or task) with this id belongs to the caller: it looks exactly like one that does
    /// not exist.
    #[error("Unknown job: {0}")]
    JobNotFound(String),
    /// The job is not in a state that allows this (its result while it runs, cancelling a
    /// finished one).
    #[error("{0}")]
    JobConflict(String),
    /// `tools/call` arguments the tool's approved `inputSchema` rejects: each failing place by
    /// its JSON pointer and keyword, never the value sent.
    #[error("Invalid arguments for tool {tool}: {detail}")]
    InvalidArguments { tool: String, detail: String },
    #[error("Jobs unavailable: {0}")]
    JobsUnavailable(&'static str),
    #[error("Rate limits cannot be checked right now")]
    LimiterUnavailable,
    #[error("Upstream saturated: too many requests in flight")]
    UpstreamSaturated,
    #[error("The audit trail cannot keep up; try again shortly")]
    AuditUnavailable,
    /// The caller's only grants for this call have conditions (`when:`), and none holds: the
    /// client is told which rule, never why in terms of the request's values.
    #[error("Not permitted: {rule} does not allow this call")]
    NotPermitted {
        rule: String,
        condition: String,
        why: &'static str,
    },
    /// A guard of the scope found what it blocks in the call's arguments (or its webhook
    /// refused the call): named by detector, never by what matched.
    #[error("Blocked by guard: {detector}")]
    Blocked { detector: String },
    /// The upstream needs the user's own login there (`auth: per_user_oauth`) and the gateway
    /// holds none: the user signs in at `url` (the MCP URL elicitation, -32042).
    #[error("Sign in to {upstream} to use it: open {url}")]
    SignInRequired {
        upstream: String,
        url: String,
        elicitation_id: String,
    },
    #[error("Internal error")]
    Internal,
}

/// What was refused as if it did not exist, and why (the reason is for logs and audit only; never
/// sent to the client).
#[derive(Debug, Clone)]
pub struct Denied {
    what: DeniedKind,
    name: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeniedKind {
    Tool,
    Prompt,
    Resource,
    Method,
}

impl Denied {
    pub fn tool(name: &str, reason: &'static str) -> Self {
        Self::new(DeniedKind::Tool, name, reason)
    }
    pub fn prompt(name: &str, reason: &'static str) -> Self {
        Self::new(DeniedKind::Prompt, name, reason)
    }
    pub fn resource(uri: &str, reason: &'static str) -> Self {
        Self::new(DeniedKind::Resource, uri, reason)
    }
    pub fn method(method: &str, reason: &'static str) -> Self {
        Self::new(DeniedKind::Method, method, reason)
    }
    fn new(what: DeniedKind, name: &str, reason: &'static str) -> Self {
        Self {
            what,
            name: name.to_string(),
            reason,
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn reason(&self) -> &'static str {
        self.reason
    }
    /// Whether a method was refused (as not found).
    pub fn is_method(&self) -> bool {
        self.what == DeniedKind::Method
    }
    /// The tool refused, when a tool was.
    pub fn refused_tool(&self) -> Option<&str> {
        (self.what == DeniedKind::Tool).then_some(self.name.as_str())
    }
    /// The code a server gives for a thing it does not have.
    fn code(&self) -> i32 {
        match self.what {
            DeniedKind::Tool | DeniedKind::Prompt => -32602,
            DeniedKind::Resource => -32002,
            DeniedKind::Method => -32601,
        }
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.what {
            DeniedKind::Tool => "Unknown tool: ",
            DeniedKind::Prompt => "Unknown prompt: ",
            DeniedKind::Resource => "Resource not found: ",
            DeniedKind::Method => "Method not found: ",
        };
        f.write_str(label)?;
        f.write_str(&self.name)
    }
}

impl GatewayError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            ParseError(_)
            | InvalidRequest(_)
            | UnsupportedVersion { .. }
            | HeaderMismatch(_)
            | MissingCapability(_)
            | InvalidParams(_) => 400,
            UnsupportedMediaType => 415,
            NotAcceptable(_) => 406,
            BodyTimeout => 408,
            Unauthorized(_) => 401,
            Forbidden(_) | InsufficientScope(_) => 403,
            Denied(_)
            | InvalidArguments { .. }
            | SignInRequired { .. }
            | NotPermitted { .. }
            | Blocked { .. } => 200,
            UnknownSession | NotFound(_) | JobNotFound(_) => 404,
            JobConflict(_) => 409,
            MethodNotAllowed(_) => 405,
            PayloadTooLarge { .. } => 413,
            UpstreamFailed(_) => 502,
            UpstreamRefused(status) => *status,
            NoHealthyUpstream(_) | AuditUnavailable | LimiterUnavailable | UpstreamSaturated
            | JobsUnavailable(_) => 503,
            RateLimited { .. } | TooManyConcurrent | TooManyBodies | TooManyJobs => 429,
            UpstreamTimeout(_) => 504,
            Internal => 500,
        }
    }

    /// The JSON-RPC error code of the answer (documented in the README).
    pub fn code(&self) -> i32 {
        use GatewayError::*;
        match self {
            ParseError(_) => -32700,
            InvalidRequest(_) | UnsupportedMediaType | NotAcceptable(_) | NotFound(_)
            | MethodNotAllowed(_) | BodyTimeout | UpstreamRefused(_) => -32600,
            UnsupportedVersion { .. } => -32022,
            SignInRequired { .. } => -32042,
            HeaderMismatch(_) => -32020,
            MissingCapability(_) => -32021,
            InvalidParams(_) | JobNotFound(_) | JobConflict(_) | InvalidArguments { .. } => -32602,
            Unauthorized(_) => -32001,
            Forbidden(_) | InsufficientScope(_) | NotPermitted { .. } | Blocked { .. } => -32003,
            Denied(d) => d.code(),
            UnknownSession => -32010,
            PayloadTooLarge { .. } => -32005,
            UpstreamFailed(_) => -32008,
            NoHealthyUpstream(_) => -32006,
            AuditUnavailable => -32009,
            RateLimited { .. } | TooManyConcurrent | TooManyBodies | TooManyJobs => -32004,
            JobsUnavailable(_) => -32013,
            LimiterUnavailable => -32011,
            UpstreamSaturated => -32012,
            UpstreamTimeout(_) => -32007,
            Internal => -32603,
        }
    }

    /// Seconds a client should wait before trying again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited { retry_after, .. } => Some(*retry_after),
            GatewayError::TooManyConcurrent
            | GatewayError::TooManyBodies
            | GatewayError::TooManyJobs
            | GatewayError::JobsUnavailable(_)
            | GatewayError::UpstreamSaturated
            | GatewayError::AuditUnavailable => Some(1),
            _ => None,
        }
    }

    /// The JSON-RPC error response body. `id` is the raw JSON id of the request when it was read,
    /// `null` otherwise, as JSON-RPC 2.0 requires.
    pub fn body(&self, id: Option<&str>) -> Vec<u8> {
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        match self {
            GatewayError::UnsupportedVersion {
                requested,
                supported,
            } => {
                error["data"] = serde_json::json!({
                    "supported": supported,
                    "requested": requested,
                });
            }
            GatewayError::MissingCapability(capability) => {
                // An extension is named `extensions/NAME` and required under `extensions`.
                let required = match capability.strip_prefix("extensions/") {
                    Some(name) => serde_json::json!({ "extensions": { name: {} } }),
                    None => serde_json::json!({ *capability: {} }),
                };
                error["data"] = serde_json::json!({ "requiredCapabilities": required });
            }
            GatewayError::RateLimited { limit, retry_after } => {
                error["data"] =
                    serde_json::json!({ "limit": limit, "retry_after_seconds": retry_after });
            }
            GatewayError::TooManyConcurrent => {
                error["data"] = serde_json::json!({ "limit": "max_concurrent_per_user", "retry_after_seconds": 1 });
            }
            GatewayError::TooManyBodies => {
                error["data"] = serde_json::json!({ "limit": "connections.bodies_per_user", "retry_after_seconds": 1 });
            }
            GatewayError::SignInRequired {
                upstream,
                url,
                elicitation_id,
            } => {
                error["data"] = serde_json::json!({ "elicitations": [{
                    "mode": "url",
                    "elicitationId": elicitation_id,
                    "url": url,
                    "message": format!("Sign in to {upstream} with your own account to use its tools."),
                }]});
            }
            _ => {}
        }
        let id = id.unwrap_or("null");
        let mut out = Vec::with_capacity(96 + id.len());
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(br#","error":"#);
        // Serializing a Value built here cannot fail.
        serde_json::to_writer(&mut out, &error).unwrap_or_default();
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tool_looks_like_a_missing_tool() {
        let e = GatewayError::Denied(Denied::tool("rm_rf", "not granted"));
        assert_eq!(e.status(), 200);
        let body: serde_json::Value = serde_json::from_slice(&e.body(Some("7"))).unwrap();
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], -32602);
        assert_eq!(body["error"]["message"], "Unknown tool: rm_rf");
        assert!(!String::from_utf8(e.body(None))
            .unwrap()
            .contains("not granted"));
    }

    #[test]
    fn codes_stay_outside_the_reserved_range_except_the_spec_one() {
        for e in [
            GatewayError::Unauthorized(AuthError::Expired),
            GatewayError::UnknownSession,
            GatewayError::PayloadTooLarge { limit: 1 },
            GatewayError::UpstreamTimeout("x".into()),
            GatewayError::NoHealthyUpstream("s".into()),
        ] {
            assert!(!(-32099..=-32020).contains(&e.code()), "{e:?}");
        }
    }
}
