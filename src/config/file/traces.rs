//! `tracing:` in gateway.yaml.

use super::{default_true, duration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `tracing:` in gateway.yaml: OpenTelemetry traces exported over OTLP. The exporter (endpoint,
/// protocol, headers, queue) is built at start and kept; a reload applies the sampling and the
/// user id setting, and names a changed exporter as needing a restart.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingFile {
    /// The collector: `http://host:4318` for `http` (`/v1/traces` is added unless the path
    /// already names it), `http://host:4317` for `grpc`.
    pub otlp_endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The share of new traces recorded (0.0 to 1.0).
    #[serde(default = "one")]
    pub sample_ratio: f64,
    /// A request that continues a trace follows its caller's decision (the `sampled` flag of
    /// `traceparent`); only new traces are sampled by `sample_ratio`.
    #[serde(default = "default_true")]
    pub parent_based: bool,
    /// Headers sent with every export (an API key of a hosted collector; `${VAR}` keeps it out
    /// of the file).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How spans name the caller: `off`, `hashed` (SHA-256, first 16 bytes in hex), `plain`.
    #[serde(default)]
    pub user_id: UserIdInSpans,
    /// `service.name` of the gateway's spans.
    #[serde(default = "default_service")]
    pub service_name: String,
    /// Finished requests waiting for export; past it their spans are dropped and counted
    /// (`mcp_trace_spans_dropped_total`), never waited for.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// How long one export may take before its spans are counted as dropped.
    #[serde(default = "default_export_timeout", with = "duration")]
    pub export_timeout: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies.
    #[default]
    Http,
    Grpc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdInSpans {
    Off,
    #[default]
    Hashed,
    Plain,
}

fn one() -> f64 {
    1.0
}
fn default_service() -> String {
    "mcp-gateway".into()
}
fn default_queue() -> usize {
    4096
}
fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}
