//! `tracing:` validated: where spans go (fixed for the process) and how requests are sampled and
//! named (each configuration's own).

use super::file::{OtlpProtocol, TracingFile, UserIdInSpans};
use super::{Problem, Sources};
use std::time::Duration;

/// `tracing:` as the gateway runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    pub exporter: ExporterSettings,
    pub sample_ratio: f64,
    pub parent_based: bool,
    pub user_id: UserIdInSpans,
}

/// The exporter: built once at start; a reload that changes it is named as needing a restart.
#[derive(Clone, PartialEq)]
pub struct ExporterSettings {
    /// For `http`, the full URL spans are posted to (`…/v1/traces`).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub service_name: String,
    pub queue: usize,
    pub timeout: Duration,
}

/// Header values are secrets (an API key): never printed.
impl std::fmt::Debug for ExporterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExporterSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|h| h.0.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("service_name", &self.service_name)
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub(super) fn build(
    sources: &Sources,
    t: Option<&TracingFile>,
    problems: &mut Vec<Problem>,
) -> Option<TraceSettings> {
    let t = t?;
    let path = sources.path.as_path();
    let before = problems.len();
    let endpoint = match url::Url::parse(&t.otlp_endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            let mut s = t.otlp_endpoint.trim_end_matches('/').to_string();
            if t.protocol == OtlpProtocol::Http && !u.path().ends_with("/v1/traces") {
                s.push_str("/v1/traces");
            }
            s
        }
        _ => {
            problems.push(Problem::new(
                path,
                "tracing.otlp_endpoint",
                "must be an http:// or https:// URL of the collector (e.g. http://127.0.0.1:4318)",
            ));
            String::new()
        }
    };
    for (field, bad, why) in [
        (
            "tracing.sample_ratio",
            !(0.0..=1.0).contains(&t.sample_ratio),
            "must be between 0.0 and 1.0",
        ),
        (
            "tracing.queue",
            t.queue == 0 || t.queue > 1_000_000,
            "must be between 1 and 1000000",
        ),
        (
            "tracing.export_timeout",
            t.export_timeout.is_zero(),
            "must be greater than 0",
        ),
        (
            "tracing.service_name",
            t.service_name.trim().is_empty(),
            "must not be empty",
        ),
    ] {
        if bad {
            problems.push(Problem::new(path, field, why));
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &t.headers {
        let field = format!("tracing.headers.{name}");
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                headers.push((n, v));
            }
            (Err(_), _) => problems.push(Problem::new(path, field, "not a valid header name")),
            (_, Err(_)) => problems.push(Problem::new(
                path,
                field,
                "not a valid header value (printable ASCII only)",
            )),
        }
    }
    (problems.len() == before).then(|| TraceSettings {
        exporter: ExporterSettings {
            endpoint,
            protocol: t.protocol,
            headers,
            service_name: t.service_name.clone(),
            queue: t.queue,
            timeout: t.export_timeout,
        },
        sample_ratio: t.sample_ratio,
        parent_based: t.parent_based,
        user_id: t.user_id,
    })
}
