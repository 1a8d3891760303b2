//! Per-request state carried through the `ProxyHttp` hooks.

use super::filter::ResponseRewrite;
use super::Runtime;
use crate::audit::scan::ResponseScan;
use crate::auth::Identity;
use crate::error::GatewayError;
use crate::jsonrpc::Rpc;
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

/// Everything the gateway learns about one request, in the order it learns it.
pub struct RequestCtx {
    pub started: Instant,
    /// The configuration this request runs on, from start to end.
    pub rt: Arc<Runtime>,
    pub request_id: String,
    /// The scope, for `/S/sse` and `/S/mcp` (known before the caller is).
    pub scope: Option<Arc<ScopeUpstreams>>,
    /// The authenticated caller on that scope; every step after authentication reads this.
    pub caller: Option<Admitted>,
    /// The verified token's holder, also when the request is refused after verification
    /// (insufficient scope, wrong audience, an ungranted tool on the REST API): the audit row
    /// names who was refused.
    pub verified: Option<Arc<crate::auth::Identity>>,
    pub rpc: Option<Rpc>,
    /// A body too large for Pingora's early buffer, held here until it is complete and decided.
    pub large_body: Option<super::body::HeldBody>,
    /// The body took the held path (whether or not it is still held).
    pub body_held: bool,
    pub picked: Option<Picked>,
    /// Upstreams that failed to connect for this request (each tried once).
    pub tried: Vec<Picked>,
    /// How the last connect attempt failed, reported when no other upstream is left to try.
    pub connect_error: Option<GatewayError>,
    /// The refusal, when the gateway refused; rendered once, in one place.
    pub error: Option<GatewayError>,
    /// The first refusal in a batch the gateway answered itself (for the audit row and metrics).
    pub batch_refusal: Option<GatewayError>,
    pub rewrite: ResponseRewrite,
    /// Request body size.
    pub request_bytes: u64,
    /// Response body bytes sent to the client.
    pub response_bytes: u64,
    /// Outcome markers seen in the response (tool error, JSON-RPC error code).
    pub scan: ResponseScan,
    /// When the request went to the upstream, and how long until its answer was complete.
    pub upstream_started: Option<Instant>,
    pub upstream_elapsed: Option<std::time::Duration>,
    /// The client-visible session id issued on this request (initialize).
    pub issued_session: Option<String>,
    /// In-flight slots (user, upstream) held until the request ends.
    pub held: Vec<crate::limits::inflight::InflightGuard>,
    pub upstream_slot: Option<crate::limits::inflight::InflightGuard>,
    /// The user's place among bodies still arriving; given back when the body is complete.
    pub body_slot: Option<crate::limits::inflight::InflightGuard>,
    /// The answer is a stream (SSE): only the idle timeout applies, not the total one.
    pub streaming: bool,
    /// An upstream 5xx whose body is replaced by the gateway's own JSON-RPC error.
    pub upstream_error_body: Option<super::respond::ReplacedBody>,
    /// A small JSON answer held until complete, to scrub an upstream error in it.
    pub held_answer: Option<super::scrub::HeldAnswer>,
    /// The protocol version the request speaks (`MCP-Protocol-Version`, read once in `admit`;
    /// 2025-03-26 when absent).
    pub version: &'static str,
    /// The request's `Origin`, when it is one of `allowed_origins` (answers then carry CORS).
    pub cors_origin: Option<String>,
    /// A 2026-07-28 request on an older upstream: its revision and the gateway's session there.
    pub bridged: Option<(&'static str, Arc<super::translate::Opened>)>,
    /// A request bridged to the other era, its body rewritten for the upstream.
    pub rewritten: Option<super::translate::up::Rewritten>,
    /// A legacy HTTP+SSE message: its answer goes to the client's stream.
    pub legacy: Option<super::legacy::Legacy>,
    /// The job this request submitted (or, for the REST job API, the job it read).
    pub job: Option<String>,
    /// The connection's head clock, restarted for the next request once this one is done.
    pub head_clock: Option<crate::listen::HeadClock>,
}

impl RequestCtx {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self {
            started: Instant::now(),
            rt,
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            scope: None,
            caller: None,
            verified: None,
            rpc: None,
            large_body: None,
            body_held: false,
            picked: None,
            tried: Vec::new(),
            connect_error: None,
            error: None,
            batch_refusal: None,
            rewrite: ResponseRewrite::None,
            request_bytes: 0,
            response_bytes: 0,
            scan: ResponseScan::default(),
            upstream_started: None,
            upstream_elapsed: None,
            issued_session: None,
            held: Vec::new(),
            upstream_slot: None,
            body_slot: None,
            streaming: false,
            upstream_error_body: None,
            held_answer: None,
            head_clock: None,
            job: None,
            legacy: None,
            bridged: None,
            rewritten: None,
            cors_origin: None,
            version: crate::jsonrpc::DEFAULT_VERSION,
        }
    }

    /// The authenticated caller. A step that needs one and finds none fails the request closed
    /// (an internal error), never lets it through.
    pub fn admitted(&self) -> Result<&Admitted, GatewayError> {
        self.caller.as_ref().ok_or(GatewayError::Internal)
    }

    /// The stateless 2026-07-28 revision: no sessions, POST only, envelope and routing headers.
    pub fn is_modern(&self) -> bool {
        self.version == crate::jsonrpc::MODERN_VERSION
    }

    /// Whether JSON-RPC batches are allowed: only in 2025-03-26, which is also what a client that
    /// sends no version header speaks.
    pub fn batches_allowed(&self) -> bool {
        self.version == crate::jsonrpc::DEFAULT_VERSION
    }

    /// Whether the request must go to the upstream already picked (its session lives there).
    pub fn pinned(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| c.session.is_some())
            || self
                .legacy
                .as_ref()
                .is_some_and(|l| l.upstream_path().is_some())
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
        self.error.as_ref().or(self.batch_refusal.as_ref())
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
