//! The spans of a finished request, built once it has ended and only when it was sampled.

use super::context::{Active, Parent};
use super::Tracer;
use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceFlags};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

/// One span as the request path describes it.
pub struct SpanOut {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start: Instant,
    pub end: Instant,
    pub attributes: Vec<KeyValue>,
    /// Set when the operation failed: the span's status description.
    pub error: Option<Cow<'static, str>>,
}

/// A finished request's spans: the server span, and the upstream call's when there was one.
pub struct Finished {
    pub server: SpanOut,
    pub upstream: Option<SpanOut>,
}

fn scope() -> InstrumentationScope {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE
        .get_or_init(|| {
            InstrumentationScope::builder("mcp-gateway")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build()
        })
        .clone()
}

struct Built<'a> {
    trace: &'a Parent,
    id: SpanId,
    parent: SpanId,
    remote_parent: bool,
    start: SystemTime,
    end: SystemTime,
}

fn data(b: Built<'_>, s: SpanOut, links: SpanLinks) -> SpanData {
    let flags = if b.trace.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanData {
        span_context: SpanContext::new(b.trace.trace_id, b.id, flags, false, b.trace.state.clone()),
        parent_span_id: b.parent,
        parent_span_is_remote: b.remote_parent,
        span_kind: s.kind,
        name: s.name,
        start_time: b.start,
        end_time: b.end.max(b.start),
        attributes: s.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links,
        status: s.error.map_or(Status::Unset, Status::error),
        instrumentation_scope: scope(),
    }
}

impl Active {
    /// Hands the request's spans to the exporter, when the request was sampled.
    pub fn finish(&self, tracer: &Tracer, f: Finished) {
        if !self.sampled {
            return;
        }
        let trace = self.parent();
        let mut links = SpanLinks::default();
        if let Some(l) = &self.link {
            links.links.push(Link::with_context(l.clone()));
        }
        let mut out = Vec::with_capacity(2 + self.steps.len());
        let server = Built {
            trace: &trace,
            id: self.server,
            parent: self
                .parent
                .as_ref()
                .map_or(SpanId::INVALID, |p| p.span_id()),
            remote_parent: self.parent.is_some(),
            start: self.wall(f.server.start),
            end: self.wall(f.server.end),
        };
        out.push(data(server, f.server, links));
        let child = |id, start, end| Built {
            trace: &trace,
            id,
            parent: self.server,
            remote_parent: false,
            start: self.wall(start),
            end: self.wall(end),
        };
        for (step, start, end) in &self.steps {
            let id = opentelemetry_sdk::trace::IdGenerator::new_span_id(
                &opentelemetry_sdk::trace::RandomIdGenerator::default(),
            );
            let s = SpanOut {
                name: Cow::Borrowed(step.name()),
                kind: SpanKind::Internal,
                start: *start,
                end: *end,
                attributes: Vec::new(),
                error: None,
            };
            out.push(data(child(id, *start, *end), s, SpanLinks::default()));
        }
        if let Some(u) = f.upstream {
            let b = child(self.client, u.start, u.end);
            out.push(data(b, u, SpanLinks::default()));
        }
        tracer.exporting.submit(out);
    }
}

impl Parent {
    /// Hands one span of a call this trace's request started (a job) to the exporter, when the
    /// trace is sampled; `id` is the span's own (from [`Parent::child`]).
    pub fn finish(&self, tracer: &Tracer, id: SpanId, span: SpanOut, wall_start: SystemTime) {
        if !self.sampled {
            return;
        }
        let elapsed = span.end.saturating_duration_since(span.start);
        let b = Built {
            trace: self,
            id,
            parent: self.span_id,
            remote_parent: false,
            start: wall_start,
            end: wall_start + elapsed,
        };
        tracer
            .exporting
            .submit(vec![data(b, span, SpanLinks::default())]);
    }
}
