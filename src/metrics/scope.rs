//! One scope's request metrics, looked up once: `with_label_values` hashes its labels and takes the
//! vector's lock on every call, four times for a tool call. A scope keeps each series it has used
//! and reaches it by index (method, outcome) or by its configured tool's name. A series is made at
//! its first use, as before, so `/metrics` shows the same series at the same moments.
//!
//! Scopes' series are never removed from the vectors (a scope that a reload drops keeps its last
//! counts), so a kept handle always counts into the series `/metrics` shows.

use super::{method_index, METHODS, REQUESTS, REQUEST_SECONDS, TOOL_CALLS, UPSTREAM_SECONDS};
use super::{POLICY_DENIALS, RATE_LIMITED};
use crate::outcome::Class;
use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{Histogram, IntCounter};
use std::collections::HashMap;
use std::sync::OnceLock;

type PerClass = [OnceLock<IntCounter>; Class::COUNT];

const fn per_class() -> PerClass {
    [const { OnceLock::new() }; Class::COUNT]
}

pub struct ScopeMetrics {
    scope: String,
    requests: Box<[PerClass; METHODS.len()]>,
    request_seconds: OnceLock<Histogram>,
    upstream_seconds: OnceLock<Histogram>,
    /// Per configured tool, made at its first call (a scope may list a thousand).
    tools: HashMap<String, OnceLock<Box<PerClass>>, foldhash::fast::RandomState>,
    unknown_tool: PerClass,
    policy_denials: OnceLock<IntCounter>,
    rate_limited: OnceLock<IntCounter>,
}

impl std::fmt::Debug for ScopeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeMetrics")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ScopeMetrics {
    pub fn new(scope: &str, tools: &[String]) -> Self {
        Self {
            scope: scope.to_string(),
            requests: Box::new([const { per_class() }; METHODS.len()]),
            request_seconds: OnceLock::new(),
            upstream_seconds: OnceLock::new(),
            tools: tools.iter().map(|t| (t.clone(), OnceLock::new())).collect(),
            unknown_tool: per_class(),
            policy_denials: OnceLock::new(),
            rate_limited: OnceLock::new(),
        }
    }

    /// `mcp_requests_total{scope, method, outcome}`.
    pub fn requests(&self, method: Option<&str>, class: Class) -> &IntCounter {
        let m = method_index(method);
        self.requests[m][class as usize]
            .get_or_init(|| REQUESTS.with_label_values(&[&self.scope, METHODS[m], class.as_str()]))
    }

    /// `mcp_tool_calls_total{scope, tool, outcome}`; a tool the scope does not list is `unknown`.
    pub fn tool_calls(&self, tool: &str, class: Class) -> &IntCounter {
        let (label, slots) = match self.tools.get_key_value(tool) {
            Some((name, slots)) => (
                name.as_str(),
                &**slots.get_or_init(|| Box::new(per_class())),
            ),
            None => ("unknown", &self.unknown_tool),
        };
        slots[class as usize]
            .get_or_init(|| TOOL_CALLS.with_label_values(&[&self.scope, label, class.as_str()]))
    }

    /// `mcp_request_duration_seconds{scope}`.
    pub fn request_seconds(&self) -> &Histogram {
        self.only_scope(&self.request_seconds, &REQUEST_SECONDS)
    }

    /// `mcp_upstream_duration_seconds{scope}`.
    pub fn upstream_seconds(&self) -> &Histogram {
        self.only_scope(&self.upstream_seconds, &UPSTREAM_SECONDS)
    }

    /// `mcp_policy_denials_total{scope}`.
    pub fn policy_denials(&self) -> &IntCounter {
        self.only_scope(&self.policy_denials, &POLICY_DENIALS)
    }

    /// `mcp_rate_limited_total{scope}`.
    pub fn rate_limited(&self) -> &IntCounter {
        self.only_scope(&self.rate_limited, &RATE_LIMITED)
    }

    /// The series of `vec` (labelled by scope alone) for this scope, kept in `slot`.
    fn only_scope<'a, B: MetricVecBuilder>(
        &self,
        slot: &'a OnceLock<B::M>,
        vec: &MetricVec<B>,
    ) -> &'a B::M {
        slot.get_or_init(|| vec.with_label_values(&[&self.scope]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept handle counts into the very series `with_label_values` reads, for every method label
    /// (known, other, none), for listed and unlisted tools, and for the scope's histograms.
    #[test]
    fn kept_handles_count_into_the_labelled_series() {
        let m = ScopeMetrics::new("scope-metrics-test", &["add".to_string()]);
        let read = |method: &str, class: &str| {
            REQUESTS
                .with_label_values(&["scope-metrics-test", method, class])
                .get()
        };
        m.requests(Some("tools/call"), Class::Ok).inc();
        m.requests(Some("tools/call"), Class::Ok).inc();
        m.requests(Some("x/unheard"), Class::Denied).inc();
        m.requests(None, Class::Invalid).inc();
        assert_eq!(read("tools/call", "ok"), 2);
        assert_eq!(read("other", "denied"), 1);
        assert_eq!(read("none", "invalid"), 1);
        assert_eq!(read("tools/call", "denied"), 0);
        let tool = |name: &str, class: &str| {
            TOOL_CALLS
                .with_label_values(&["scope-metrics-test", name, class])
                .get()
        };
        m.tool_calls("add", Class::ToolError).inc();
        m.tool_calls("rm -rf", Class::Denied).inc();
        assert_eq!(tool("add", "tool_error"), 1);
        assert_eq!(tool("unknown", "denied"), 1);
        assert_eq!(tool("rm -rf", "denied"), 0);
        m.request_seconds().observe(0.5);
        m.upstream_seconds().observe(0.25);
        let count = |h: &prometheus::HistogramVec| {
            h.with_label_values(&["scope-metrics-test"])
                .get_sample_count()
        };
        assert_eq!(count(&REQUEST_SECONDS), 1);
        assert_eq!(count(&UPSTREAM_SECONDS), 1);
        m.policy_denials().inc();
        m.rate_limited().inc_by(2);
        let get =
            |c: &prometheus::IntCounterVec| c.with_label_values(&["scope-metrics-test"]).get();
        assert_eq!((get(&POLICY_DENIALS), get(&RATE_LIMITED)), (1, 2));
    }
}
