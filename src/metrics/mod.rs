//! Prometheus metrics, served on `metrics_listen` from the default registry. Labels carry only
//! bounded values: scope and tool names from the configuration, known MCP methods, outcome kinds.

use crate::protocol::method;
use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::LazyLock;

mod scope;
pub use scope::ScopeMetrics;

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

macro_rules! metric {
    ($name:ident: $ty:ty = $make:expr) => {
        pub static $name: LazyLock<$ty> = LazyLock::new(|| $make.expect("metric registers once"));
    };
}

metric!(REQUESTS: IntCounterVec = register_int_counter_vec!("mcp_requests_total", "Requests on scoped endpoints", &["scope", "method", "outcome"]));
metric!(TOOL_CALLS: IntCounterVec = register_int_counter_vec!("mcp_tool_calls_total", "tools/call requests", &["scope", "tool", "outcome"]));
metric!(REQUEST_SECONDS: HistogramVec = register_histogram_vec!("mcp_request_duration_seconds", "End-to-end latency", &["scope"], BUCKETS.to_vec()));
metric!(UPSTREAM_SECONDS: HistogramVec = register_histogram_vec!("mcp_upstream_duration_seconds", "Upstream latency (request sent to response done)", &["scope"], BUCKETS.to_vec()));
metric!(AUTH_FAILURES: IntCounterVec = register_int_counter_vec!("mcp_auth_failures_total", "Refused tokens", &["reason"]));
metric!(POLICY_DENIALS: IntCounterVec = register_int_counter_vec!("mcp_policy_denials_total", "tools/call refused by policy or scope", &["scope"]));
metric!(RATE_LIMITED: IntCounterVec = register_int_counter_vec!("mcp_rate_limited_total", "Requests refused by a rate or concurrency limit", &["scope"]));
metric!(UPSTREAM_HEALTHY: IntGaugeVec = register_int_gauge_vec!("mcp_upstream_healthy", "1 when the upstream passes its health check", &["scope", "upstream"]));
metric!(AUDIT_QUEUE_DEPTH: IntGauge = register_int_gauge!("mcp_audit_queue_depth", "Audit rows waiting for the writer"));
metric!(AUDIT_ROWS: IntCounterVec = register_int_counter_vec!("mcp_audit_rows_total", "Audit rows by fate", &["result"]));
metric!(AUDIT_SPOOL_BYTES: IntGauge = register_int_gauge!("mcp_audit_spool_bytes", "Size of the audit spool file"));
metric!(RATE_LIMIT_STORE_ERRORS: IntCounter = register_int_counter!("mcp_rate_limit_store_errors_total", "Rate-limit checks the shared store could not answer (the fallback applied)"));
metric!(UPSTREAM_EJECTIONS: IntCounterVec = register_int_counter_vec!("mcp_upstream_ejections_total", "Upstreams taken out of rotation after consecutive failures", &["scope", "upstream"]));
metric!(UPSTREAM_TOKENS: IntCounterVec = register_int_counter_vec!("mcp_upstream_token_requests_total", "Machine tokens the gateway asked of upstreams' token endpoints (auth: oauth_client_credentials), by result", &["scope", "result"]));
metric!(UPSTREAM_LOGINS: IntCounterVec = register_int_counter_vec!("mcp_upstream_logins_total", "Users' own logins at upstreams (auth: per_user_oauth): signed_in, refreshed, refresh_refused, refresh_failed, revoked, asked (a request answered with the sign-in link)", &["scope", "event"]));
metric!(GUARD_HITS: IntCounterVec = register_int_counter_vec!("mcp_guard_hits_total", "What the scopes' guards found (secrets, personal data, custom patterns), by detector, action and direction (arguments, results)", &["scope", "detector", "action", "direction"]));
metric!(PROCESS_RESTARTS: IntCounterVec = register_int_counter_vec!("mcp_process_restarts_total", "Processes the gateway runs (bundled tools, stdio servers' adapters) started again after they exited", &["scope"]));
metric!(CONFIG_RELOADS: IntCounterVec = register_int_counter_vec!("mcp_config_reloads_total", "Configuration reloads, applied (ok) or refused with the running configuration kept (rejected)", &["result"]));
metric!(CONFIG_LAST_RELOAD_SUCCESS: IntGauge = register_int_gauge!("mcp_config_last_reload_success_timestamp_seconds", "When the running configuration was loaded (Unix seconds)"));
metric!(CONFIG_INFO: IntGaugeVec = register_int_gauge_vec!("mcp_config_info", "1 for the running configuration, labelled with a SHA-256 prefix of its files", &["hash"]));
metric!(TLS_CERT_EXPIRY: IntGaugeVec = register_int_gauge_vec!("mcp_tls_certificate_expiry_timestamp_seconds", "When each TLS listener's certificate expires (Unix seconds)", &["listener"]));
metric!(CONNECTIONS_REFUSED: IntCounterVec = register_int_counter_vec!("mcp_connections_refused_total", "Client connections closed on arrival, by the limit they hit", &["reason"]));
metric!(JOBS: IntGaugeVec = register_int_gauge_vec!("mcp_jobs", "Jobs (MCP tasks and REST jobs) in the store, by status", &["status"]));
metric!(JOB_SECONDS: HistogramVec = register_histogram_vec!("mcp_job_duration_seconds", "How long background tool calls ran", &["scope", "tool"], vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]));
metric!(TOOLS_ACTIVE: IntGaugeVec = register_int_gauge_vec!("mcp_tools_active", "Configured tools the scope's upstreams offer, as last read", &["scope"]));
metric!(TOOL_DEFINITION_CHANGES: IntCounterVec = register_int_counter_vec!("mcp_tool_definition_changes_total", "Tool definitions seen to change (per upstream, as this instance saw them)", &["scope"]));
metric!(AUDIT_REFUSED: IntCounter = register_int_counter!("mcp_audit_refused_total", "Requests refused because the audit queue was full (fail_closed)"));
metric!(TRACE_SPANS_EXPORTED: IntCounter = register_int_counter!("mcp_trace_spans_exported_total", "Spans the collector accepted (tracing:)"));
metric!(TRACE_SPANS_DROPPED: IntCounterVec = register_int_counter_vec!("mcp_trace_spans_dropped_total", "Spans not exported: the queue was full (queue_full) or the collector failed or timed out (export_failed)", &["reason"]));

/// The `method` label's values: the known MCP methods, then `none` and `other`.
pub const METHODS: [&str; 23] = [
    method::INITIALIZE,
    method::PING,
    method::TOOLS_LIST,
    method::TOOLS_CALL,
    method::RESOURCES_LIST,
    method::RESOURCES_READ,
    method::RESOURCE_TEMPLATES_LIST,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_UNSUBSCRIBE,
    method::PROMPTS_LIST,
    method::PROMPTS_GET,
    method::COMPLETION_COMPLETE,
    method::LOGGING_SET_LEVEL,
    method::TASKS_GET,
    method::TASKS_RESULT,
    method::TASKS_LIST,
    method::TASKS_CANCEL,
    method::INITIALIZED,
    method::CANCELLED,
    "notifications/progress",
    "notifications/roots/list_changed",
    "none",
    "other",
];
const NONE: usize = METHODS.len() - 2;
const OTHER: usize = METHODS.len() - 1;

/// The `method` label of a request (an index into `METHODS`): a known MCP method as itself,
/// anything else as `other` (a client's free text never becomes a label), no method as `none`.
pub fn method_index(method: Option<&str>) -> usize {
    match method {
        None => NONE,
        Some(m) => METHODS[..NONE]
            .iter()
            .position(|k| *k == m)
            .unwrap_or(OTHER),
    }
}

/// The metrics listener's one page: `GET /metrics` (as Prometheus scrapes it); every other path
/// is 404. The page names scopes and upstream addresses, so the listener belongs on a private
/// address (README, Security).
pub struct MetricsPage(pingora_prometheus::PrometheusHttpApp);

#[async_trait::async_trait]
impl pingora::apps::http_app::ServeHttp for MetricsPage {
    async fn response(
        &self,
        session: &mut pingora::protocols::http::ServerSession,
    ) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        if req.uri.path() == "/metrics" && matches!(req.method.as_str(), "GET" | "HEAD") {
            return self.0.response(session).await;
        }
        let body = b"not found: metrics are served at /metrics\n".to_vec();
        http::Response::builder()
            .status(404)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

/// The metrics service, gzip-compressed like Pingora's own.
pub fn service(
) -> pingora::services::listening::Service<pingora::apps::http_app::HttpServer<MetricsPage>> {
    let mut app = pingora::apps::http_app::HttpServer::new_app(MetricsPage(
        pingora_prometheus::PrometheusHttpApp,
    ));
    app.add_module(pingora::modules::http::compression::ResponseCompressionBuilder::enable(7));
    pingora::services::listening::Service::new("Prometheus metric HTTP".to_string(), app)
}

/// Registers the series that count rare events, at 0, so dashboards and alerts see them before
/// the first event (a counter Prometheus has never seen reads as "no data", not 0).
pub fn register_at_start() {
    AUDIT_SPOOL_BYTES.set(AUDIT_SPOOL_BYTES.get());
    AUDIT_REFUSED.inc_by(0);
    RATE_LIMIT_STORE_ERRORS.inc_by(0);
    for reason in ["queue_full", "export_failed"] {
        TRACE_SPANS_DROPPED.with_label_values(&[reason]);
    }
    for reason in ["max_connections", "max_per_address", "evicted_idle"] {
        CONNECTIONS_REFUSED.with_label_values(&[reason]);
    }
}
