//! How a request on a scoped endpoint ended, as one value, and the one place that turns it into
//! what the audit row, the metrics and the access log line say.
//!
//! A refusal is decided where it happens, as a [`GatewayError`] (which also renders the client's
//! answer: `status()`, `body()`); the upstream's answer is classified from what the response scan
//! saw. Everything downstream reads the [`Outcome`], never the text of a message: a new
//! `GatewayError` variant without a class here does not compile.

use crate::error::GatewayError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// How a request ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The upstream's answer went to the client, without an error in it.
    Ok,
    /// The client closed the connection before the answer was complete: how a client ends its
    /// server-to-client stream or gives up on a call. Not an error of anyone's.
    ClientGone,
    /// The tool ran and reported a failure (`isError: true`).
    ToolError,
    /// The upstream answered with a JSON-RPC error.
    RpcError { code: i32 },
    /// The upstream answered an HTTP error status without a JSON-RPC error.
    UpstreamStatus(u16),
    /// The upstream broke off its answer after it had started (the client got what was sent).
    UpstreamBroke(&'static str),
    /// The gateway refused or failed the request itself (for a batch it answered itself: the
    /// first refusal in it).
    Gateway(&'a GatewayError),
}

/// The outcome as the audit trail and the `outcome` metric label name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Ok,
    ToolError,
    RpcError,
    /// The gateway could not read the request as MCP over HTTP (bad JSON, wrong media type,
    /// unsupported version, wrong verb or path).
    Invalid,
    Denied,
    /// `tools/call` arguments the tool's schema rejects.
    InvalidArguments,
    Unauthenticated,
    RateLimited,
    /// The gateway cannot serve right now (audit queue full, limiter store down, upstream
    /// saturated); the client should retry.
    Unavailable,
    UpstreamError,
    Timeout,
    /// The upstream needs the user's own login there first (`auth: per_user_oauth`).
    SignInRequired,
    Internal,
}

impl Class {
    /// How many classes there are (a class as `usize` indexes tables of this length).
    pub const COUNT: usize = Class::Internal as usize + 1;

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::ToolError => "tool_error",
            Class::RpcError => "rpc_error",
            Class::Invalid => "invalid",
            Class::Denied => "denied",
            Class::InvalidArguments => "invalid_arguments",
            Class::Unauthenticated => "unauthenticated",
            Class::RateLimited => "rate_limited",
            Class::Unavailable => "unavailable",
            Class::UpstreamError => "upstream_error",
            Class::Timeout => "timeout",
            Class::SignInRequired => "sign_in_required",
            Class::Internal => "internal",
        }
    }
}

/// The counter an outcome adds to besides `mcp_requests_total` (and `mcp_tool_calls_total` for a
/// tool call), for alerting on refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// `mcp_auth_failures_total{reason}`.
    AuthFailure(&'static str),
    /// `mcp_policy_denials_total{scope}`.
    PolicyDenial,
    /// `mcp_rate_limited_total{scope}`.
    RateLimited,
    /// `mcp_audit_refused_total`.
    AuditRefused,
}

impl Outcome<'_> {
    /// The class of the audit row and of the `outcome` label.
    pub fn class(&self) -> Class {
        use GatewayError::*;
        match self {
            Outcome::Ok | Outcome::ClientGone => Class::Ok,
            Outcome::ToolError => Class::ToolError,
            Outcome::RpcError { .. } | Outcome::UpstreamStatus(400..=499) => Class::RpcError,
            Outcome::UpstreamStatus(_) | Outcome::UpstreamBroke(_) => Class::UpstreamError,
            Outcome::Gateway(e) => match e {
                ParseError(_)
                | InvalidRequest(_)
                | UnsupportedVersion { .. }
                | HeaderMismatch(_)
                | MissingCapability(_)
                | InvalidParams(_)
                | UnsupportedMediaType
                | NotAcceptable(_)
                | NotFound(_)
                | JobNotFound(_)
                | JobConflict(_)
                | BodyTimeout
                | MethodNotAllowed(_)
                | UpstreamRefused(_) => Class::Invalid,
                InvalidArguments { .. } => Class::InvalidArguments,
                Unauthorized(_) => Class::Unauthenticated,
                Forbidden(_)
                | InsufficientScope(_)
                | NotPermitted { .. }
                | Blocked { .. }
                | Denied(_)
                | UnknownSession
                | PayloadTooLarge { .. } => Class::Denied,
                RateLimited { .. } | TooManyConcurrent | TooManyBodies | TooManyJobs => {
                    Class::RateLimited
                }
                LimiterUnavailable | UpstreamSaturated | AuditUnavailable | JobsUnavailable(_) => {
                    Class::Unavailable
                }
                UpstreamFailed(_) | NoHealthyUpstream(_) => Class::UpstreamError,
                UpstreamTimeout(_) => Class::Timeout,
                SignInRequired { .. } => Class::SignInRequired,
                Internal => Class::Internal,
            },
        }
    }

    /// The real reason, for the audit row and the log (also where the client was told less).
    pub fn reason(&self) -> Option<Cow<'static, str>> {
        match self {
            Outcome::Ok | Outcome::ToolError | Outcome::RpcError { .. } => None,
            Outcome::ClientGone => Some("client went away".into()),
            Outcome::UpstreamStatus(s) => Some(format!("upstream answered {s}").into()),
            Outcome::UpstreamBroke(what) => Some(format!("upstream broke off: {what}").into()),
            Outcome::Gateway(GatewayError::Denied(d)) => Some(d.reason().into()),
            Outcome::Gateway(GatewayError::Unauthorized(a)) => Some(a.to_string().into()),
            // The link is the user's to open: the row and the log say why, not where.
            Outcome::Gateway(GatewayError::NotPermitted {
                rule,
                condition,
                why,
            }) => Some(format!("{rule} (when: {condition}): {why}").into()),
            Outcome::Gateway(GatewayError::SignInRequired { upstream, .. }) => {
                Some(format!("the user has no login at {upstream}").into())
            }
            Outcome::Gateway(e) => Some(e.to_string().into()),
        }
    }

    /// The JSON-RPC error code the client got, when it got one.
    pub fn rpc_code(&self) -> Option<i32> {
        match self {
            Outcome::RpcError { code } => Some(*code),
            Outcome::Gateway(e) => Some(e.code()),
            _ => None,
        }
    }

    /// The refusal counter this outcome adds to, if any.
    pub fn alert(&self) -> Option<Alert> {
        use GatewayError::*;
        match self {
            Outcome::Gateway(Unauthorized(a)) => Some(Alert::AuthFailure(a.label())),
            Outcome::Gateway(
                Denied(_) | Forbidden(_) | InsufficientScope(_) | NotPermitted { .. },
            ) => Some(Alert::PolicyDenial),
            Outcome::Gateway(
                RateLimited { .. } | TooManyConcurrent | TooManyBodies | TooManyJobs,
            ) => Some(Alert::RateLimited),
            Outcome::Gateway(AuditUnavailable) => Some(Alert::AuditRefused),
            _ => None,
        }
    }

    /// The tool the audit row and the tool metric name, given the first message's: a refused
    /// tool is the one that matters (in a batch it need not be the first).
    pub fn tool<'t>(&'t self, first: Option<&'t str>) -> Option<&'t str> {
        match self {
            Outcome::Gateway(GatewayError::Denied(d)) => d.refused_tool().or(first),
            _ => first,
        }
    }

    /// Whether the upstream picked for this request failed it (passive health counts it).
    pub fn upstream_failed(&self) -> bool {
        matches!(self.class(), Class::UpstreamError | Class::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthError;
    use crate::error::Denied;

    /// Every `GatewayError` variant once. The match below has no wildcard: a new variant fails to
    /// compile until it is added here, and then the table test checks all its renderings.
    fn every_refusal() -> Vec<GatewayError> {
        use GatewayError::*;
        let all = vec![
            ParseError("expected value".into()),
            InvalidRequest("params must be an object".into()),
            UnsupportedVersion {
                requested: "1999-01-01".into(),
                supported: crate::protocol::SUPPORTED_VERSIONS,
            },
            HeaderMismatch("Mcp-Method does not match the body's method"),
            MissingCapability("sampling"),
            InvalidParams("params._meta must carry the protocol version".into()),
            UnsupportedMediaType,
            NotAcceptable("send Accept: text/event-stream"),
            Unauthorized(AuthError::Expired),
            Forbidden("no grant in this scope".into()),
            InsufficientScope("mcp:git".into()),
            Denied(crate::error::Denied::tool("rm_rf", "not granted")),
            UnknownSession,
            PayloadTooLarge { limit: 1024 },
            NotFound("/nope".into()),
            MethodNotAllowed("use POST, GET or DELETE"),
            UpstreamFailed("the upstream failed".into()),
            UpstreamRefused(406),
            NoHealthyUpstream("calculator".into()),
            UpstreamTimeout("no answer in time".into()),
            BodyTimeout,
            RateLimited {
                limit: "per-minute".into(),
                retry_after: 12,
            },
            TooManyConcurrent,
            TooManyBodies,
            LimiterUnavailable,
            UpstreamSaturated,
            AuditUnavailable,
            Internal,
            TooManyJobs,
            JobNotFound("8f2c".into()),
            JobConflict("the job is still working".into()),
            JobsUnavailable("the job store cannot be reached"),
            Blocked {
                detector: "secrets.aws_access_key".into(),
            },
            NotPermitted {
                rule: "roles.analyst.allow[1]".into(),
                condition: "args.repository.startsWith(claims.org)".into(),
                why: "its condition is false for this request",
            },
            SignInRequired {
                upstream: "vendor".into(),
                url: "https://gw.example/connect/start?t=x".into(),
                elicitation_id: "e1".into(),
            },
            InvalidArguments {
                tool: "statistics".into(),
                detail: "/values: type (expected array)".into(),
            },
        ];
        for e in &all {
            match e {
                ParseError(_)
                | InvalidRequest(_)
                | UnsupportedVersion { .. }
                | UnsupportedMediaType
                | NotAcceptable(_) => {}
                HeaderMismatch(_) | InvalidParams(_) | MissingCapability(_) => {}
                Unauthorized(_) | Forbidden(_) | Denied(_) | UnknownSession => {}
                InsufficientScope(_) => {}
                PayloadTooLarge { .. } | NotFound(_) | MethodNotAllowed(_) | BodyTimeout => {}
                UpstreamFailed(_) | NoHealthyUpstream(_) | UpstreamTimeout(_) => {}
                UpstreamRefused(_) => {}
                RateLimited { .. } | TooManyConcurrent | TooManyBodies | LimiterUnavailable => {}
                UpstreamSaturated | AuditUnavailable | Internal => {}
                TooManyJobs | JobNotFound(_) | JobConflict(_) | JobsUnavailable(_) => {}
                InvalidArguments { .. } | SignInRequired { .. } | NotPermitted { .. } => {}
                Blocked { .. } => {}
            }
        }
        all
    }

    /// For each of `every_refusal()`: HTTP status, JSON-RPC code, class, alert, reason contains.
    fn expected() -> Vec<(u16, i32, Class, Option<Alert>, &'static str)> {
        use Alert::*;
        vec![
            (400, -32700, Class::Invalid, None, "Parse error"),
            (
                400,
                -32600,
                Class::Invalid,
                None,
                "params must be an object",
            ),
            (400, -32022, Class::Invalid, None, "1999-01-01"),
            (400, -32020, Class::Invalid, None, "Mcp-Method"),
            (400, -32021, Class::Invalid, None, "sampling"),
            (400, -32602, Class::Invalid, None, "params._meta"),
            (415, -32600, Class::Invalid, None, "application/json"),
            (406, -32600, Class::Invalid, None, "text/event-stream"),
            (
                401,
                -32001,
                Class::Unauthenticated,
                Some(AuthFailure("expired")),
                "token expired",
            ),
            (403, -32003, Class::Denied, Some(PolicyDenial), "no grant"),
            (403, -32003, Class::Denied, Some(PolicyDenial), "mcp:git"),
            (
                200,
                -32602,
                Class::Denied,
                Some(PolicyDenial),
                "not granted",
            ),
            (404, -32010, Class::Denied, None, "Session not found"),
            (413, -32005, Class::Denied, None, "1024 bytes"),
            (404, -32600, Class::Invalid, None, "/nope"),
            (405, -32600, Class::Invalid, None, "use POST"),
            (502, -32008, Class::UpstreamError, None, "upstream failed"),
            (406, -32600, Class::Invalid, None, "HTTP 406"),
            (503, -32006, Class::UpstreamError, None, "calculator"),
            (504, -32007, Class::Timeout, None, "no answer in time"),
            (408, -32600, Class::Invalid, None, "not received in time"),
            (
                429,
                -32004,
                Class::RateLimited,
                Some(RateLimited),
                "per-minute",
            ),
            (
                429,
                -32004,
                Class::RateLimited,
                Some(RateLimited),
                "in flight",
            ),
            (
                429,
                -32004,
                Class::RateLimited,
                Some(RateLimited),
                "still arriving",
            ),
            (503, -32011, Class::Unavailable, None, "cannot be checked"),
            (503, -32012, Class::Unavailable, None, "saturated"),
            (
                503,
                -32009,
                Class::Unavailable,
                Some(AuditRefused),
                "audit trail",
            ),
            (500, -32603, Class::Internal, None, "Internal error"),
            (
                429,
                -32004,
                Class::RateLimited,
                Some(RateLimited),
                "Too many jobs",
            ),
            (404, -32602, Class::Invalid, None, "8f2c"),
            (409, -32602, Class::Invalid, None, "still working"),
            (503, -32013, Class::Unavailable, None, "job store"),
            (
                200,
                -32003,
                Class::Denied,
                None,
                "Blocked by guard: secrets.aws_access_key",
            ),
            (
                200,
                -32003,
                Class::Denied,
                Some(PolicyDenial),
                "roles.analyst.allow[1] (when: args.repository",
            ),
            (
                200,
                -32042,
                Class::SignInRequired,
                None,
                "no login at vendor",
            ),
            (200, -32602, Class::InvalidArguments, None, "/values: type"),
        ]
    }

    #[test]
    fn every_refusal_renders_its_answer_row_metrics_and_log() {
        let want = expected();
        let all = every_refusal();
        assert_eq!(all.len(), want.len());
        for (e, (status, code, class, alert, reason)) in all.iter().zip(&want) {
            let o = Outcome::Gateway(e);
            assert_eq!(e.status(), *status, "{e:?}");
            assert_eq!(o.rpc_code(), Some(*code), "{e:?}");
            assert_eq!(o.class(), *class, "{e:?}");
            assert_eq!(o.alert(), *alert, "{e:?}");
            let r = o.reason().unwrap();
            assert!(r.contains(reason), "{e:?}: {r}");
            // The client's body carries the code and never the real reason of a denial.
            let body: serde_json::Value = serde_json::from_slice(&e.body(Some("1"))).unwrap();
            assert_eq!(body["error"]["code"], *code);
            assert_eq!(body["id"], 1);
            if let GatewayError::Denied(d) = e {
                assert!(!body.to_string().contains(d.reason()));
            }
            assert_eq!(
                e.retry_after().is_some(),
                matches!(status, 429) || matches!(*code, -32012 | -32009 | -32013),
                "{e:?}"
            );
        }
    }

    #[test]
    fn upstream_answers_and_client_ends() {
        let cases: &[(Outcome, Class, Option<i32>, Option<&str>)] = &[
            (Outcome::Ok, Class::Ok, None, None),
            (
                Outcome::ClientGone,
                Class::Ok,
                None,
                Some("client went away"),
            ),
            (Outcome::ToolError, Class::ToolError, None, None),
            (
                Outcome::RpcError { code: -32601 },
                Class::RpcError,
                Some(-32601),
                None,
            ),
            (
                Outcome::UpstreamStatus(404),
                Class::RpcError,
                None,
                Some("upstream answered 404"),
            ),
            (
                Outcome::UpstreamStatus(502),
                Class::UpstreamError,
                None,
                Some("upstream answered 502"),
            ),
            (
                Outcome::UpstreamBroke("ReadError"),
                Class::UpstreamError,
                None,
                Some("upstream broke off: ReadError"),
            ),
        ];
        for (o, class, code, reason) in cases {
            assert_eq!(o.class(), *class, "{o:?}");
            assert_eq!(o.rpc_code(), *code, "{o:?}");
            assert_eq!(o.reason().as_deref(), *reason, "{o:?}");
            assert_eq!(o.alert(), None);
        }
        assert!(Outcome::UpstreamBroke("x").upstream_failed());
        assert!(Outcome::Gateway(&GatewayError::UpstreamTimeout("t".into())).upstream_failed());
        assert!(!Outcome::ClientGone.upstream_failed());
    }

    #[test]
    fn a_refused_batch_names_the_refused_tool() {
        let e = GatewayError::Denied(Denied::tool("statistics", "not granted"));
        assert_eq!(
            Outcome::Gateway(&e).tool(Some("exact_calculate")),
            Some("statistics")
        );
        let p = GatewayError::Denied(Denied::prompt("p", "not granted"));
        assert_eq!(Outcome::Gateway(&p).tool(None), None);
        assert_eq!(Outcome::Ok.tool(Some("add")), Some("add"));
    }
}
