//! OpenTelemetry traces of the gateway's requests (`tracing:` in gateway.yaml).
//!
//! Each request on a scoped endpoint gets one server span, named and attributed after the
//! OpenTelemetry conventions for MCP (`{mcp.method.name} {target}`), with a child span for each
//! step that costs time (verifying a token, the policy decision, guards, the list filter) and a
//! client span for the upstream call, whose id travels to the upstream in `traceparent` (header,
//! and `params._meta` of a sampled request) so the tool's spans join the same trace.
//!
//! Nothing is recorded while a request runs but a few instants; its spans are built once it has
//! ended ([`Active::finish`]) and only when it was sampled, then handed to a bounded queue that a
//! background service exports in batches ([`export`]). A full queue or a failed export drops
//! spans and counts them (`mcp_trace_spans_dropped_total`): an unreachable collector never slows
//! or fails a request.

mod context;
pub mod export;
mod spans;

pub use context::{hex_id, Active, CallTrace, Parent, Step};
pub use export::Exporting;
pub use spans::{Finished, SpanOut};

use crate::config::file::UserIdInSpans;
use crate::config::traces::TraceSettings;
use opentelemetry_sdk::trace::{Sampler, ShouldSample};
use std::sync::Arc;

/// One configuration's tracing: how requests are sampled and named, and where their spans go
/// (the process's exporter, kept across reloads).
pub struct Tracer {
    sampler: Sampler,
    user_id: UserIdInSpans,
    exporting: Arc<Exporting>,
}

impl Tracer {
    /// The tracer of a configuration with `tracing:`, sending to the process's exporter.
    pub fn new(settings: &TraceSettings, exporting: Arc<Exporting>) -> Self {
        let ratio = Sampler::TraceIdRatioBased(settings.sample_ratio);
        let sampler = if settings.parent_based {
            Sampler::ParentBased(Box::new(ratio))
        } else {
            ratio
        };
        Self {
            sampler,
            user_id: settings.user_id,
            exporting,
        }
    }

    fn sample(
        &self,
        parent: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::TraceId,
    ) -> (bool, opentelemetry::trace::TraceState) {
        use opentelemetry_sdk::trace::SamplingDecision;
        let r = self.sampler.should_sample(
            parent,
            trace_id,
            "",
            &opentelemetry::trace::SpanKind::Server,
            &[],
            &[],
        );
        (
            r.decision == SamplingDecision::RecordAndSample,
            r.trace_state,
        )
    }

    /// The caller as spans name it (`user.id`): off, hashed or plain.
    pub fn user_id(&self, user: &str) -> Option<String> {
        use sha2::{Digest, Sha256};
        match self.user_id {
            UserIdInSpans::Off => None,
            UserIdInSpans::Plain => Some(crate::logs::clip(user).into_owned()),
            UserIdInSpans::Hashed => Some(hex::encode(&Sha256::digest(user.as_bytes())[..16])),
        }
    }

    pub fn exporting(&self) -> &Arc<Exporting> {
        &self.exporting
    }
}
