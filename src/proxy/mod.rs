//! The Pingora proxy: `ProxyHttp` hooks that call one step module each, in the order a request
//! travels (see `admit`, `authn`, `body`, `authz`, `upstream`, `filter`, `respond`). A step either
//! enriches the request context or ends the request with a `GatewayError`, which `respond` renders.

pub mod admit;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod ctx;
pub mod filter;
pub mod names;
pub mod respond;
pub mod upstream;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::GatewayError;
use crate::jsonrpc;
use crate::session::{user_hash, SessionBinding, SessionKeys};
use crate::upstream::ScopeUpstreams;
use admit::Route;
use async_trait::async_trait;
use authz::Decision;
use bytes::Bytes;
use ctx::RequestCtx;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Everything a request runs on; built once from a `Config`.
pub struct Runtime {
    pub config: Config,
    pub auth: Authenticator,
    pub sessions: SessionKeys,
    pub audit: Arc<crate::audit::Audit>,
    pub limits: crate::limits::RateLimits,
    pub user_inflight: Arc<crate::limits::inflight::Inflight>,
    pub upstream_inflight: Arc<crate::limits::inflight::Inflight>,
    pub upstreams: HashMap<String, Arc<ScopeUpstreams>>,
}

/// The gateway proxy.
pub struct Gateway {
    rt: Arc<Runtime>,
}

impl Gateway {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

/// The error Pingora carries once the gateway has refused; the context holds the real one.
fn refused() -> Box<Error> {
    Error::new(ErrorType::Custom("refused by gateway"))
}

impl Gateway {
    /// Steps 1–5 for a scoped request. `Ok(true)` means answered here.
    async fn inspect(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<bool, GatewayError> {
        if ctx.rt.audit.saturated() {
            return Err(GatewayError::AuditUnavailable);
        }
        if let Err(e) = admit::check_scoped(session, ctx) {
            // Whatever body the request carries stays unread: the connection is not reused.
            session.set_keepalive(None);
            return Err(e);
        }
        authn::authenticate(session, ctx).await?;
        authz::admit_caller(ctx)?;
        if ctx.rt.user_inflight.enabled() {
            let user = ctx.identity.as_ref().map(|i| i.user.as_str()).unwrap_or("");
            let guard = ctx
                .rt
                .user_inflight
                .acquire(user)
                .ok_or(GatewayError::TooManyConcurrent)?;
            ctx.held.push(guard);
        }
        authn::open_session(session, ctx)?;
        if session.req_header().method != "POST" {
            return Ok(false);
        }
        match body::read_early(session, ctx).await? {
            Some(bytes) => self.decide(session, ctx, &bytes).await,
            None => Ok(false),
        }
    }

    /// Parses the whole body and applies policy. `Ok(true)` means a batch was answered here.
    async fn decide(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        bytes: &[u8],
    ) -> std::result::Result<bool, GatewayError> {
        ctx.request_bytes = bytes.len() as u64;
        let keep_arguments = ctx.rt.audit.config.arguments.wants_arguments();
        let rpc = jsonrpc::parse(bytes, admit::batches_allowed(session), keep_arguments)?;
        let decision = authz::decide(ctx, &rpc);
        ctx.rpc = Some(rpc);
        match decision {
            Decision::Forward => {
                self.limit(ctx).await?;
                Ok(false)
            }
            Decision::Refuse(e) => Err(e),
            Decision::Answer(body) => {
                respond::json(session, ctx, 200, body, &[])
                    .await
                    .map_err(|_| GatewayError::Internal)?;
                Ok(true)
            }
        }
    }
}

impl Gateway {
    /// The scope's total deadline for non-streaming answers, checked when the answer's header and
    /// each of its chunks arrive (silence in between is bounded by the idle `timeout`).
    fn check_total_timeout(&self, ctx: &mut RequestCtx) -> Result<()> {
        let total = ctx.scope.as_ref().and_then(|s| s.scope.total_timeout);
        if let (Some(total), Some(started), false) = (total, ctx.upstream_started, ctx.streaming) {
            if started.elapsed() > total {
                ctx.error = Some(GatewayError::UpstreamTimeout(
                    "the answer took longer than the total timeout".into(),
                ));
                return Err(Error::explain(ErrorType::ReadTimedout, "total timeout"));
            }
        }
        Ok(())
    }

    /// Step 5: every rate limit that matches each message must pass.
    async fn limit(&self, ctx: &RequestCtx) -> std::result::Result<(), GatewayError> {
        let rt = &ctx.rt;
        if rt.limits.is_empty() {
            return Ok(());
        }
        let (Some(identity), Some(scope), Some(rpc)) = (&ctx.identity, &ctx.scope, &ctx.rpc) else {
            return Ok(());
        };
        for m in rpc.messages() {
            if let Some(method) = &m.method {
                rt.limits
                    .check(identity, &scope.scope.name, method, m.tool.as_deref())
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.rt.clone())
    }

    /// The head is complete: stops the listener's head clock, and sets the keep-alive idle time.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(clock) = crate::listen::HeadClock::of(session.as_downstream().stream()) {
            clock.head_read();
            ctx.head_clock = Some(clock.clone());
        }
        let idle = ctx.rt.config.connections.idle_timeout.as_secs();
        session.set_keepalive(Some(idle));
        Ok(())
    }

    /// Answers health, metadata and every refusal itself (`Ok(true)`); lets through only requests
    /// that are authenticated, parsed and allowed.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let route = match admit::route(session, ctx) {
            Ok(r) => r,
            Err(e) => {
                session.set_keepalive(None);
                respond::error(session, ctx, &e).await?;
                ctx.error = Some(e);
                return Ok(true);
            }
        };
        match route {
            Route::Healthz => respond::healthz(session, ctx).await.map(|_| true),
            Route::Readyz => respond::readyz(session, ctx).await.map(|_| true),
            Route::ResourceMetadata { path } => respond::resource_metadata(session, ctx, &path)
                .await
                .map(|_| true),
            Route::Scoped => match self.inspect(session, ctx).await {
                Ok(answered) => Ok(answered),
                Err(e) => {
                    respond::error(session, ctx, &e).await?;
                    ctx.error = Some(e);
                    Ok(true)
                }
            },
        }
    }

    /// Holds a large body back from the upstream until it is complete and allowed.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.large_body.is_none() {
            return Ok(());
        }
        match body::hold(ctx, body.take(), end_of_stream) {
            Ok(None) => {
                // An empty chunk sends nothing and does not end the upstream body.
                *body = Some(Bytes::new());
                Ok(())
            }
            Ok(Some(whole)) => match self.decide(session, ctx, &whole).await {
                Ok(false) => {
                    *body = Some(whole);
                    Ok(())
                }
                Ok(true) => Err(refused()),
                Err(e) => {
                    ctx.error = Some(e);
                    Err(refused())
                }
            },
            Err(e) => {
                ctx.error = Some(e);
                Err(refused())
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        upstream::peer(ctx).map_err(|e| {
            ctx.error = Some(e);
            refused()
        })
    }

    /// A connect failure is retried once on another upstream: nothing reached a tool yet. A
    /// session's upstream is not replaced; the client is told to start a new session.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if ctx.session.is_some() {
            ctx.error = Some(GatewayError::UnknownSession);
            return e;
        }
        ctx.connect_error = Some(classify(&e, ctx));
        if let Some(p) = ctx.picked.take() {
            tracing::warn!(request_id = %ctx.request_id, upstream = %p.addr, error = %e, "upstream connect failed");
            ctx.tried.push(p);
        }
        if ctx.tried.len() <= 1 {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_started = Some(std::time::Instant::now());
        let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        upstream::rewrite_request(upstream_request, ctx, peer)
    }

    /// Seals a new upstream session id, and prepares `tools/list` filtering.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The upstream's software and its own error pages stay behind the gateway.
        resp.remove_header(&http::header::SERVER);
        resp.remove_header("x-powered-by");
        if resp.status.is_server_error() {
            respond::replace_upstream_error(resp, ctx)?;
            resp.insert_header(names::written::REQUEST_ID, ctx.request_id.as_str())?;
            return Ok(());
        }
        // Read the content type once; an owned copy only when a tools/list answer is rewritten.
        let content_type = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ctx.streaming = content_type.starts_with("text/event-stream");
        let rewrite_as = (resp.status == 200
            && matches!(ctx.rewrite, filter::ResponseRewrite::ListPending))
        .then(|| content_type.to_string());
        self.check_total_timeout(ctx)?;
        if let Some(id) = resp
            .headers
            .get(&names::SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        {
            let sealed = match (&ctx.scope, &ctx.identity, &ctx.picked) {
                (Some(scope), Some(identity), Some(picked)) => {
                    ctx.rt.sessions.seal(&SessionBinding {
                        scope: scope.scope.name.clone(),
                        upstream: picked.addr.clone(),
                        upstream_session: id,
                        user_hash: user_hash(&identity.user, identity.tenant.as_deref()),
                    })
                }
                _ => None,
            };
            match sealed {
                Some(s) => {
                    resp.insert_header(names::written::SESSION_ID, s.as_str())?;
                    ctx.issued_session = Some(s);
                }
                None => {
                    resp.remove_header(&names::SESSION_ID);
                }
            }
        }
        if ctx.streaming {
            resp.insert_header("X-Accel-Buffering", "no")?;
        }
        if let Some((content_type, visible)) = rewrite_as.zip(authz::visibility(ctx)) {
            if ctx.rewrite.start(&content_type, visible) {
                resp.remove_header("content-length");
            }
        }
        resp.insert_header(names::written::REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if !end_of_stream {
            self.check_total_timeout(ctx)?;
        }
        if let Some(replaced) = ctx.upstream_error_body.as_mut() {
            replaced.swallow(body, end_of_stream, &ctx.request_id);
        }
        ctx.rewrite.body(body, end_of_stream);
        if let Some(b) = body.as_deref() {
            ctx.response_bytes += b.len() as u64;
            ctx.scan.feed(b);
        }
        if end_of_stream {
            ctx.upstream_elapsed = ctx.upstream_started.map(|t| t.elapsed());
        }
        Ok(None)
    }

    /// Renders every failure after `request_filter` as a JSON-RPC error.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let err = ctx.error.clone().unwrap_or_else(|| classify(e, ctx));
        // A refusal of a held body comes after Pingora started the upstream request: that
        // connection's state is not clean, so it is closed after the answer.
        let reuse = !ctx.body_held && !matches!(err, GatewayError::PayloadTooLarge { .. });
        let code = match e.esource() {
            ErrorSource::Downstream
                if matches!(
                    e.etype(),
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
                ) =>
            {
                0
            }
            // Only an interim `100 Continue` went out: the refusal still gets its answer.
            _ if session
                .response_written()
                .is_some_and(|r| !r.status.is_informational()) =>
            {
                0
            }
            _ => {
                if !reuse {
                    session.set_keepalive(None);
                }
                if let Err(we) = respond::error(session, ctx, &err).await {
                    tracing::debug!(error = %we, "could not send the error response");
                }
                let status = err.status();
                ctx.error = Some(err);
                status
            }
        };
        // Nothing was rendered: the audit row reads the failure itself (a client that went away
        // after its answer is not a bad request).
        FailToProxy {
            error_code: code,
            can_reuse_downstream: reuse,
        }
    }

    /// Pingora's own ERROR line is for failures nobody else reports: a refusal is in the access
    /// line and the audit row already, and a client that closes its stream ended it normally.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, e: &Error) -> bool {
        ctx.refusal().is_some() || *e.esource() == ErrorSource::Downstream
    }

    /// One audit row, the metrics and the access log line for every request.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(clock) = &ctx.head_clock {
            clock.request_done();
        }
        audit::record(session, ctx, e);
    }
}

/// A Pingora failure, as the client is told about it.
fn classify(e: &Error, ctx: &RequestCtx) -> GatewayError {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout | ReadTimedout | WriteTimedout => {
            GatewayError::UpstreamTimeout("no answer in time".into())
        }
        _ if *e.esource() == ErrorSource::Upstream => {
            GatewayError::UpstreamFailed("the upstream failed".into())
        }
        ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
        | ConnectProxyFailure => {
            GatewayError::UpstreamFailed("could not connect to the upstream".into())
        }
        HTTPStatus(413) => GatewayError::PayloadTooLarge {
            limit: ctx.rt.config.limits.max_body_bytes,
        },
        _ if *e.esource() == ErrorSource::Downstream => {
            GatewayError::InvalidRequest("bad request".into())
        }
        _ => GatewayError::Internal,
    }
}
