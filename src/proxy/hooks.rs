//! The `ProxyHttp` implementation: one line of work per Pingora hook, each calling the step that
//! owns it (see the module list in `proxy`).

use super::admit::Route;
use super::ctx::RequestCtx;
use super::failure::refused;
use super::{
    admit, answer, audit, body, credentials, failure, inbound, respond, upstream, Gateway,
};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, Result};
use std::time::Duration;

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: Pingora keeps the context by value in the request's future, which is moved whole
    /// into its allocation when a request starts (and an async fn's argument is kept twice), so a
    /// context inline costs several copies of its size per request; boxed, a pointer.
    type CTX = Box<RequestCtx>;

    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx::new(self.rt.load_full()))
    }

    /// The head is complete: stops the listener's head clock and sets how idle waits are timed.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        match crate::listen::HeadClock::of(session.as_downstream().stream()) {
            Some(clock) => {
                clock.head_read();
                ctx.head_clock = Some(clock.clone());
                // Keep-alive without Pingora's timer: the listener's clock times the idle wait
                // (`request_done` below), one deadline per connection instead of one per request.
                session.set_keepalive(Some(0));
            }
            None => session.set_keepalive(Some(ctx.rt.config.connections.idle_timeout.as_secs())),
        }
        if let Some(t) = &ctx.rt.tracer {
            ctx.trace = Some(Box::new(
                t.start(&session.req_header().headers, ctx.started),
            ));
        }
        Ok(())
    }

    /// Answers health, metadata and every refusal itself (`Ok(true)`); lets through only requests
    /// that are authenticated, parsed and allowed. The REST API and the sign-in are boxed: an
    /// `async_trait` hook's future is allocated and copied whole for each request, and is as large
    /// as its largest path (theirs were kilobytes; bench/README.md). The gateway's own answers box
    /// their writes in `respond`.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<bool> {
        let answered = match admit::route(session, ctx) {
            Ok(Route::Healthz) => return respond::healthz(session, ctx).await.map(|_| true),
            Ok(Route::Readyz) => {
                return respond::readyz(session, ctx, self.draining.is_set())
                    .await
                    .map(|_| true)
            }
            Ok(Route::ResourceMetadata { path }) => {
                return respond::resource_metadata(session, ctx, &path)
                    .await
                    .map(|_| true)
            }
            Ok(Route::Preflight) => respond::preflight(session, ctx).await,
            Ok(Route::Rest(r)) => {
                return Box::pin(super::rest::serve(session, ctx, r))
                    .await
                    .map(|_| true)
            }
            Ok(Route::Connect) => {
                return Box::pin(super::connect::serve(session, ctx))
                    .await
                    .map(|_| true)
            }
            Ok(Route::Scoped) => inbound::inspect(session, ctx).await,
            Err(e) => {
                session.set_keepalive(None);
                Err(e)
            }
        };
        match answered {
            Ok(answered) => Ok(answered),
            Err(e) => {
                respond::error(session, ctx, &e).await?;
                ctx.error = Some(e);
                Ok(true)
            }
        }
    }

    /// Holds a large body back from the upstream until it is complete and allowed.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        chunk: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        if ctx.body.held.is_none() {
            super::translate::up::replace_body(ctx, chunk);
            return Ok(());
        }
        let decided = match body::hold(session, ctx, chunk.take(), end_of_stream) {
            // An empty chunk sends nothing and does not end the upstream body.
            Ok(None) => {
                *chunk = Some(Bytes::new());
                return Ok(());
            }
            Ok(Some(whole)) => match inbound::decide(session, ctx, &whole).await {
                Ok(false) => {
                    *chunk = Some(whole);
                    super::translate::up::replace_body(ctx, chunk);
                    return Ok(());
                }
                Ok(true) => return Err(refused()),
                Err(e) => e,
            },
            Err(e) => e,
        };
        Err(ctx.refuse(decided))
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Box<HttpPeer>> {
        let peer = upstream::peer(ctx).map_err(|e| ctx.refuse(e))?;
        credentials::take(session, ctx)
            .await
            .map_err(|e| ctx.refuse(e))?;
        // A second attempt sends the (rewritten) body again.
        if let Some(t) = ctx.body.rewritten.as_mut() {
            t.sent = false;
        }
        Ok(peer)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<RequestCtx>,
        client_reused: bool,
    ) -> Box<Error> {
        let e = e.more_context(format!("Peer: {peer}"));
        credentials::retry(session, e, ctx, client_reused)
    }

    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        ctx: &mut Box<RequestCtx>,
        e: Box<Error>,
    ) -> Box<Error> {
        failure::connect_failed(ctx, e)
    }

    /// The upstream's request header, made new instead of edited from a copy of the client's.
    fn upstream_request_header(
        &self,
        session: &Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Option<RequestHeader>> {
        ctx.upstream.started = Some(std::time::Instant::now());
        let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        match upstream::request_header(session.req_header(), ctx, peer) {
            Ok(req) => Ok(Some(req)),
            Err(e) => Err(ctx.refuse(e)),
        }
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        credentials::refused(session, resp, ctx)?;
        answer::header(resp, ctx)
    }

    fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Option<Duration>> {
        answer::body(body, end_of_stream, ctx)?;
        super::legacy::divert(body, end_of_stream, ctx);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<RequestCtx>,
    ) -> FailToProxy {
        failure::render(session, e, ctx).await
    }

    /// Pingora's own ERROR line is for failures nobody else reports: a refusal is in the access
    /// line and the audit row already, and a client that closes its stream ended it normally.
    fn suppress_error_log(&self, _: &Session, ctx: &Box<RequestCtx>, e: &Error) -> bool {
        ctx.refusal().is_some() || *e.esource() == ErrorSource::Downstream
    }

    /// One audit row, the metrics and the access log line for every request.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<RequestCtx>) {
        if let Some(clock) = &ctx.head_clock {
            clock.request_done(ctx.rt.config.connections.idle_timeout);
        }
        audit::record(session, ctx, e);
    }
}
