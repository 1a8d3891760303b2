//! Per-request state carried through the `ProxyHttp` hooks.

use super::filter::ResponseRewrite;
use super::Runtime;
use crate::audit::scan::ResponseScan;
use crate::auth::Identity;
use crate::error::GatewayError;
use crate::jsonrpc::Rpc;
use crate::limits::inflight::InflightGuard;
use crate::session::SessionBinding;
use crate::upstream::{Picked, ScopeUpstreams};
use std::sync::Arc;
use std::time::Instant;

/// The caller once its token is verified on a scope.
#[derive(Clone)]
pub struct Admitted {
    pub scope: Arc<ScopeUpstreams>,
    pub identity: Arc<Identity>,
    /// The session this request belongs to, opened from the client's `Mcp-Session-Id` and
    /// checked against `identity`.
    pub session: Option<SessionBinding>,
    /// The session id as the client presented it: answers in the same session repeat it, so a
    /// session keeps one id.
    pub session_id: Option<String>,
}

/// How the request travels besides the plain way: each mode's state lives in its variant.
pub enum Mode {
    Plain,
    /// A legacy HTTP+SSE message or stream: its answer goes to the client's stream.
    Legacy(super::legacy::Legacy),
    /// A 2026-07-28 request on an older upstream: its revision and the gateway's session there.
    Bridged {
        version: &'static str,
        opened: Arc<super::translate::Opened>,
    },
}

/// The request body's phase: how it arrived and how it goes on.
#[derive(Default)]
pub struct Body {
    /// A body too large for Pingora's early buffer, held here until it is complete and decided.
    pub held: Option<super::body::HeldBody>,
    /// The body took the held path (whether or not it is still held).
    pub was_held: bool,
    /// The user's place among bodies still arriving; given back when the body is complete.
    pub slot: Option<InflightGuard>,
    /// Its size.
    pub bytes: u64,
    /// The body as it goes to the upstream when the gateway rewrote it (a resource URI in its
    /// normal form, or a request bridged to the other era).
    pub rewritten: Option<super::translate::up::Rewritten>,
}

/// The upstream phase: which upstream, how the attempts went, how long it took.
#[derive(Default)]
pub struct Upstream {
    pub picked: Option<Picked>,
    /// Upstreams that failed to connect for this request (each tried once).
    pub tried: Vec<Picked>,
    /// How the last connect attempt failed, reported when no other upstream is left to try.
    pub connect_error: Option<GatewayError>,
    /// When the request went to the upstream, and how long until its answer was complete.
    pub started: Option<Instant>,
    pub elapsed: Option<std::time::Duration>,
    /// The upstream's in-flight slot, held until the request ends.
    pub slot: Option<InflightGuard>,
    /// The upstream's machine token sent with this attempt (`Authorization`).
    pub bearer: Option<http::HeaderValue>,
    /// The upstream refused the token once; the request was tried again with a new one.
    pub auth_retried: bool,
}

/// What happens to the answer's body on its way to the client.
#[derive(Default)]
pub enum AnswerBody {
    #[default]
    Passing,
    /// An upstream 5xx whose body is replaced by the gateway's own JSON-RPC error.
    Replaced(super::respond::ReplacedBody),
    /// A small JSON answer held until complete, to scrub an upstream error in it.
    Held(super::scrub::HeldAnswer),
}

/// The answer phase.
pub struct Answer {
    pub rewrite: ResponseRewrite,
    pub body: AnswerBody,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// Outcome markers seen in the response (tool error, JSON-RPC error code).
    pub scan: ResponseScan,
    /// The answer is a stream (SSE): only the idle timeout applies, not the total one.
    pub streaming: bool,
    /// The client-visible session id issued on this request (initialize).
    pub issued_session: Option<String>,
    /// The first refusal in a batch the gateway answered itself (for the audit row and metrics).
    pub batch_refusal: Option<GatewayError>,
}

/// Everything the gateway learns about one request, in the order it learns it: what is known
/// from the head, then one value per phase (body, upstream, answer) and the mode's own state.
pub struct RequestCtx {
    pub started: Instant,
    /// The configuration this request runs on, from start to end.
    pub rt: Arc<Runtime>,
    pub request_id: crate::audit::RequestId,
    /// The connection's head clock, restarted for the next request once this one is done.
    pub head_clock: Option<crate::listen::HeadClock>,
    /// The protocol version the request speaks (`MCP-Protocol-Version`, read once in `admit`;
    /// 2025-03-26 when absent).
    pub version: &'static str,
    /// The request's `Origin`, when it is one of `allowed_origins` (answers then carry CORS).
    pub cors_origin: Option<String>,
    /// The scope, for `/S/sse` and `/S/mcp` (known before the caller is).
    pub scope: Option<Arc<ScopeUpstreams>>,
    /// The authenticated caller on that scope; every step after authentication reads this.
    pub caller: Option<Admitted>,
    /// The verified token's holder, also when the request is refused after verification
    /// (insufficient scope, wrong audience, an ungranted tool on the REST API): the audit row
    /// names who was refused.
    pub verified: Option<Arc<crate::auth::Identity>>,
    /// The verified client certificate's subject, when the connection presented one (conditions
    /// read it as `client_cert`).
    pub client_cert: Option<Box<str>>,
    /// The grant with a condition that decided this request (allowed or refused it): its rule
    /// and condition, for the audit row.
    pub decided_by: Option<String>,
    /// What the scope's guards found in the arguments and the result (for the audit row).
    pub guard_hits: crate::guard::Hits,
    pub rpc: Option<Rpc>,
    pub mode: Mode,
    /// In-flight slots (user) held until the request ends.
    pub held: Vec<InflightGuard>,
    pub body: Body,
    pub upstream: Upstream,
    pub answer: Answer,
    /// The job this request submitted (an MCP task, the REST API) or read.
    pub job: Option<String>,
    /// The refusal, when the gateway refused; rendered once, in one place.
    pub error: Option<GatewayError>,
    /// A refusal the head decided (an unsupported protocol version on a POST), given once the
    /// body has been read for the id its answer must carry.
    pub refused_head: Option<GatewayError>,
    /// The request's trace, when the configuration traces (`tracing:`).
    pub trace: Option<Box<crate::trace::Active>>,
}

impl RequestCtx {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self {
            started: Instant::now(),
            rt,
            request_id: crate::audit::RequestId::new(),
            head_clock: None,
            version: crate::protocol::DEFAULT_VERSION,
            cors_origin: None,
            scope: None,
            caller: None,
            verified: None,
            client_cert: None,
            decided_by: None,
            guard_hits: Default::default(),
            rpc: None,
            refused_head: None,
            mode: Mode::Plain,
            held: Vec::new(),
            body: Body::default(),
            upstream: Upstream::default(),
            answer: Answer {
                rewrite: ResponseRewrite::None,
                body: AnswerBody::Passing,
                bytes: 0,
                scan: ResponseScan::default(),
                streaming: false,
                issued_session: None,
                batch_refusal: None,
            },
            job: None,
            error: None,
            trace: None,
        }
    }

    /// The trace a call started by this request continues (a job, a task).
    pub fn call_trace(&self) -> Option<crate::trace::CallTrace> {
        let parent = self.trace.as_ref()?.parent();
        Some(self.rt.tracer.as_ref()?.call_of(parent))
    }

    /// When a traced step starts (only for a sampled request; nothing is read otherwise).
    pub fn step_clock(&self) -> Option<Instant> {
        self.trace.as_ref().and_then(|t| t.clock())
    }

    /// A traced step that started at `start` ended.
    pub fn step_done(&mut self, step: crate::trace::Step, start: Option<Instant>) {
        if let (Some(t), Some(_)) = (self.trace.as_mut(), start) {
            t.step(step, start);
        }
    }

    /// The legacy message or stream this request is, if it is one.
    pub fn legacy(&self) -> Option<&super::legacy::Legacy> {
        match &self.mode {
            Mode::Legacy(l) => Some(l),
            _ => None,
        }
    }

    pub fn legacy_mut(&mut self) -> Option<&mut super::legacy::Legacy> {
        match &mut self.mode {
            Mode::Legacy(l) => Some(l),
            _ => None,
        }
    }

    /// The upstream's revision and the gateway's session there, for a bridged request.
    pub fn bridged(&self) -> Option<(&'static str, &Arc<super::translate::Opened>)> {
        match &self.mode {
            Mode::Bridged { version, opened } => Some((version, opened)),
            _ => None,
        }
    }

    /// The authenticated caller. A step that needs one and finds none fails the request closed
    /// (an internal error), never lets it through.
    pub fn admitted(&self) -> Result<&Admitted, GatewayError> {
        self.caller.as_ref().ok_or(GatewayError::Internal)
    }

    /// The stateless 2026-07-28 revision: no sessions, POST only, envelope and routing headers.
    pub fn is_modern(&self) -> bool {
        self.version == crate::protocol::MODERN_VERSION
    }

    /// Whether JSON-RPC batches are allowed: only in 2025-03-26, which is also what a client that
    /// sends no version header speaks.
    pub fn batches_allowed(&self) -> bool {
        self.version == crate::protocol::DEFAULT_VERSION
    }

    /// Whether the request must go to the upstream already picked (its session lives there).
    pub fn pinned(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| c.session.is_some())
            || self.legacy().is_some_and(|l| l.upstream_path().is_some())
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.caller
            .as_ref()
            .map(|c| c.identity.as_ref())
            .or(self.verified.as_deref())
    }

    /// Why the gateway refused this request: its own refusal, or the first one of a batch it
    /// answered itself.
    pub fn refusal(&self) -> Option<&GatewayError> {
        self.error.as_ref().or(self.answer.batch_refusal.as_ref())
    }

    /// The raw JSON-RPC id of a single request, for error bodies.
    pub fn rpc_id(&self) -> Option<&str> {
        match &self.rpc {
            Some(Rpc::Single(m)) => m.id.as_deref(),
            _ => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        self.rpc
            .as_ref()
            .and_then(|r| r.first())
            .and_then(|m| m.method.as_deref())
    }

    pub fn tool(&self) -> Option<&str> {
        self.rpc
            .as_ref()
            .and_then(|r| r.first())
            .and_then(|m| m.tool.as_deref())
    }
}
