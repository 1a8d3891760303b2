//! One request's place in a trace: the caller's span it continues (W3C `traceparent` in the
//! header, or in `params._meta` where MCP clients put it), the gateway's own span ids, whether it
//! is sampled, and the instants of its steps.

use super::Tracer;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use std::time::{Instant, SystemTime};

/// A step of the request that gets its own span when the request is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A token verified (not one found in the verified-token cache).
    Authenticate,
    /// The policy decision for the message.
    Authorize,
    /// The scope's guards on the arguments.
    Guards,
    /// A list answer cut to what the caller may see.
    FilterList,
    /// The scope's guards on the answer (the end of a held answer).
    GuardAnswer,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Authenticate => "authenticate",
            Step::Authorize => "authorize",
            Step::Guards => "guards",
            Step::FilterList => "filter list",
            Step::GuardAnswer => "guard answer",
        }
    }
}

/// The span a call started by a request (a job, a task) continues: the request's server span.
#[derive(Debug, Clone)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    pub state: TraceState,
}

impl Parent {
    /// A new span of this trace under the parent, for a call the gateway makes itself: its id
    /// and the `traceparent` the upstream gets.
    pub fn child(&self) -> (SpanId, String) {
        let id = RandomIdGenerator::default().new_span_id();
        (id, traceparent(self.trace_id, id, self.sampled))
    }
}

/// The trace of a call a request started and the gateway makes itself (a job, a task): its own
/// span under the request's server span, whose id the upstream receives.
pub struct CallTrace {
    pub tracer: std::sync::Arc<Tracer>,
    pub parent: Parent,
    pub span: SpanId,
    /// `traceparent` for the upstream.
    pub traceparent: String,
}

impl Tracer {
    /// The trace of a call started by the request whose server span is `parent`.
    pub fn call_of(self: &std::sync::Arc<Self>, parent: Parent) -> CallTrace {
        let (span, traceparent) = parent.child();
        CallTrace {
            tracer: self.clone(),
            parent,
            span,
            traceparent,
        }
    }
}

/// One request's trace.
pub struct Active {
    pub trace_id: TraceId,
    /// The caller's span, when the request continues a trace.
    pub(super) parent: Option<SpanContext>,
    /// The header's context when `params._meta` named another parent (the span is linked to it).
    pub(super) link: Option<SpanContext>,
    /// The gateway's server span.
    pub server: SpanId,
    /// The upstream call's span: its id is the one the upstream receives.
    pub client: SpanId,
    pub sampled: bool,
    pub(super) state: TraceState,
    /// The wall clock when the request started (the instant is the request context's own).
    pub(super) wall: SystemTime,
    pub(super) started: Instant,
    pub(super) steps: Vec<(Step, Instant, Instant)>,
}

const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// `params._meta`'s `traceparent` and `tracestate`, read by the propagator.
struct Meta<'a>(&'a str, Option<&'a str>);

impl Extractor for Meta<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.0),
            "tracestate" => self.1,
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

fn remote(extractor: &dyn Extractor) -> Option<SpanContext> {
    let cx = TraceContextPropagator::new().extract(extractor);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// A trace id as logs and audit rows carry it: 32 hex digits.
pub fn hex_id(trace_id: TraceId) -> String {
    hex::encode(trace_id.to_bytes())
}

/// The W3C `traceparent` value of a span: `00-{trace}-{span}-{flags}`, hex written into one
/// buffer (no formatting machinery on the request path).
pub fn traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> String {
    let mut b = [0u8; 55];
    b[..3].copy_from_slice(b"00-");
    hex::encode_to_slice(trace_id.to_bytes(), &mut b[3..35]).ok();
    b[35] = b'-';
    hex::encode_to_slice(span_id.to_bytes(), &mut b[36..52]).ok();
    b[52..].copy_from_slice(if sampled { b"-01" } else { b"-00" });
    String::from_utf8_lossy(&b).into_owned()
}

impl Tracer {
    /// A request starts: it continues the caller's trace (`traceparent` header) or starts one,
    /// and is sampled or not.
    pub fn start(&self, headers: &http::HeaderMap, started: Instant) -> Active {
        let parent = headers
            .contains_key(&TRACEPARENT)
            .then(|| remote(&opentelemetry_http::HeaderExtractor(headers)))
            .flatten();
        let ids = RandomIdGenerator::default();
        let mut a = Active {
            trace_id: TraceId::INVALID,
            parent: None,
            link: None,
            server: ids.new_span_id(),
            client: ids.new_span_id(),
            sampled: false,
            state: TraceState::NONE,
            wall: SystemTime::now(),
            started,
            steps: Vec::new(),
        };
        self.continue_from(&mut a, parent);
        a
    }

    /// The request's body named a parent in `params._meta`: that one is the server span's
    /// parent (the MCP conventions prefer it), the header's is linked.
    pub fn continue_from_meta(&self, a: &mut Active, traceparent: &str, tracestate: Option<&str>) {
        let Some(meta) = remote(&Meta(traceparent, tracestate)) else {
            return;
        };
        if a.parent
            .as_ref()
            .is_some_and(|p| p.span_id() == meta.span_id())
        {
            return;
        }
        a.link = a.parent.take();
        self.continue_from(a, Some(meta));
    }

    fn continue_from(&self, a: &mut Active, parent: Option<SpanContext>) {
        a.trace_id = match &parent {
            Some(p) => p.trace_id(),
            None => RandomIdGenerator::default().new_trace_id(),
        };
        let cx = parent
            .as_ref()
            .map(|p| opentelemetry::Context::new().with_remote_span_context(p.clone()));
        let (sampled, state) = self.sample(cx.as_ref(), a.trace_id);
        a.sampled = sampled;
        a.state = state;
        a.parent = parent;
    }
}

impl Active {
    /// The instant a step starts, when the request is sampled (nothing is read otherwise).
    pub fn clock(&self) -> Option<Instant> {
        self.sampled.then(Instant::now)
    }

    /// A step ended that started at `start` (from [`Active::clock`]).
    pub fn step(&mut self, step: Step, start: Option<Instant>) {
        if let Some(start) = start {
            self.steps.push((step, start, Instant::now()));
        }
    }

    /// `traceparent` for the upstream: the upstream call's span.
    pub fn traceparent(&self) -> String {
        traceparent(self.trace_id, self.client, self.sampled)
    }

    /// `tracestate` for the upstream, when the trace has one.
    pub fn tracestate(&self) -> Option<String> {
        (self.state != TraceState::NONE)
            .then(|| self.state.header())
            .filter(|s| !s.is_empty())
    }

    /// The trace id as logs and audit rows carry it.
    pub fn trace_id_hex(&self) -> String {
        hex_id(self.trace_id)
    }

    /// The parent of calls this request starts (jobs, tasks): its server span.
    pub fn parent(&self) -> Parent {
        Parent {
            trace_id: self.trace_id,
            span_id: self.server,
            sampled: self.sampled,
            state: self.state.clone(),
        }
    }

    /// The wall-clock time of an instant of this request.
    pub(super) fn wall(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_the_w3c_form() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let s = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(
            traceparent(t, s, true),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert!(traceparent(t, s, false).ends_with("-00"));
    }
}
