//! One audit row: what was asked, by whom, what the gateway decided and what came back.

use crate::auth::Identity;
use crate::config::audit::AuditConfig;
use crate::logs::clip;
use crate::outcome::Class;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A row of `audit_log`. Also the line format of the JSON-lines file and of the spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unix time in microseconds.
    pub time_us: i64,
    pub request_id: super::RequestId,
    pub instance: String,
    pub user_id: Option<String>,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub scope: Option<String>,
    pub method: Option<String>,
    pub tool: Option<String>,
    pub jsonrpc_id: Option<String>,
    pub outcome: crate::outcome::Class,
    /// Why a request was refused (the real reason, also when the client was told less).
    pub reason: Option<String>,
    pub rpc_error_code: Option<i32>,
    pub http_status: i32,
    pub upstream: Option<String>,
    pub latency_ms: f64,
    pub upstream_latency_ms: Option<f64>,
    pub request_bytes: i64,
    pub response_bytes: i64,
    /// Kept as an address: it is formatted by the writer, off the request path (JSON: "ip:port").
    pub client_addr: Option<std::net::SocketAddr>,
    pub session_hash: Option<String>,
    pub arguments_mode: String,
    pub arguments: Option<String>,
    /// Subject of the verified TLS client certificate (mTLS listeners), at most 256 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The job this row belongs to: its submission and its completion carry the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Which credential of the gateway's the upstream got (`machine_token`, `token_exchange`,
    /// `user_login`, `headers`), never its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_credential: Option<String>,
    /// The grant with a condition that decided the request (`roles.R.allow[i] when …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<String>,
    /// The guards' hits: `detector:direction:action:count,…`, never the matched text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_hits: Option<String>,
    /// The request's OpenTelemetry trace id (32 hex digits), when the gateway traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl AuditRecord {
    /// A row with what every row has (the time, this instance, the arguments mode) and nothing
    /// else; each writer of rows sets what it knows on top.
    pub fn new(
        config: &AuditConfig,
        request_id: super::RequestId,
        outcome: Class,
        http_status: i32,
    ) -> Self {
        AuditRecord {
            time_us: now_us(),
            request_id,
            instance: config.instance.clone(),
            user_id: None,
            tenant: None,
            roles: Vec::new(),
            scope: None,
            method: None,
            tool: None,
            jsonrpc_id: None,
            outcome,
            reason: None,
            rpc_error_code: None,
            http_status,
            upstream: None,
            latency_ms: 0.0,
            upstream_latency_ms: None,
            request_bytes: 0,
            response_bytes: 0,
            client_addr: None,
            session_hash: None,
            arguments_mode: config.arguments.name().to_string(),
            arguments: None,
            client_cert: None,
            job_id: None,
            upstream_credential: None,
            policy_rule: None,
            guard_hits: None,
            trace_id: None,
        }
    }

    /// The caller's user, tenant and roles, clipped and bounded as every row keeps them.
    pub fn by(mut self, identity: &Identity) -> Self {
        self.user_id = Some(clip(&identity.user).into_owned());
        self.tenant = identity.tenant.as_deref().map(|t| clip(t).into_owned());
        self.roles = (identity.roles.iter().take(MAX_ROLES))
            .map(|r| clip(r).into_owned())
            .collect();
        self
    }
}

/// Unix time in microseconds, for the audit row.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The most roles an audit row lists (a token may carry any number).
pub const MAX_ROLES: usize = 32;
