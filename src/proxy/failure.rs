//! When proxying fails: a connect failure is retried once on another upstream; any other failure
//! is rendered as the gateway's JSON-RPC error, unless the answer had already started or the
//! client is gone.

use super::ctx::RequestCtx;
use super::respond;
use crate::error::GatewayError;
use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorSource, ErrorType};

/// The error Pingora carries once the gateway has refused; the context holds the real one.
pub fn refused() -> Box<Error> {
    Error::new(ErrorType::Custom("refused by gateway"))
}

impl RequestCtx {
    /// Takes the refusal a step returned, for the answer, the audit row, the metrics and the log
    /// line; gives Pingora the error that stops the request.
    pub fn refuse(&mut self, e: GatewayError) -> Box<Error> {
        self.error = Some(e);
        refused()
    }
}

/// Retries a connect failure once on another upstream: nothing reached a tool yet. A session's
/// upstream is not replaced; the client is told to start a new session.
pub fn connect_failed(ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    if ctx.pinned() {
        ctx.error = Some(GatewayError::UnknownSession);
        return e;
    }
    ctx.upstream.connect_error = Some(classify(&e, ctx));
    if let Some(p) = ctx.upstream.picked.take() {
        tracing::warn!(request_id = %ctx.request_id, upstream = %p.addr, error = %e, "upstream connect failed");
        ctx.upstream.tried.push(p);
    }
    if ctx.upstream.tried.len() <= 1 {
        e.set_retry(true);
    }
    e
}

/// Renders a failure after `request_filter` as a JSON-RPC error, when there is still someone to
/// tell and nothing else was sent.
pub async fn render(session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
    let err = ctx.error.clone().unwrap_or_else(|| classify(e, ctx));
    // A refusal of a held body comes after Pingora started the upstream request: that
    // connection's state is not clean, so it is closed after the answer.
    let reuse = !ctx.body.was_held
        && !matches!(
            err,
            GatewayError::PayloadTooLarge { .. } | GatewayError::BodyTimeout
        );
    let client_gone = *e.esource() == ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
        );
    // Only an interim `100 Continue` may have gone out for the refusal still to get its answer.
    let answered = session
        .response_written()
        .is_some_and(|r| !r.status.is_informational());
    if client_gone || answered {
        // Nothing is rendered: the audit row reads the failure itself.
        return FailToProxy {
            error_code: 0,
            can_reuse_downstream: reuse,
        };
    }
    if !reuse {
        session.set_keepalive(None);
    }
    if let Err(we) = respond::error(session, ctx, &err).await {
        tracing::debug!(error = %we, "could not send the error response");
    }
    let status = err.status();
    ctx.error = Some(err);
    FailToProxy {
        error_code: status,
        can_reuse_downstream: reuse,
    }
}

/// A Pingora failure, as the client is told about it.
pub fn classify(e: &Error, ctx: &RequestCtx) -> GatewayError {
    use ErrorType::*;
    match e.etype() {
        // The client's body stopped before its deadline (`body::hold` set the read timeout).
        ReadTimedout if *e.esource() == ErrorSource::Downstream => GatewayError::BodyTimeout,
        ConnectTimedout | ReadTimedout | WriteTimedout => {
            GatewayError::UpstreamTimeout("no answer in time".into())
        }
        // Never a plain-text fallback: the request fails; the log has rustls's reason.
        TLSHandshakeFailure | InvalidCert | HandshakeError => GatewayError::UpstreamFailed(
            "TLS with the upstream failed (its certificate was not accepted, or it refused ours)"
                .into(),
        ),
        _ if *e.esource() == ErrorSource::Upstream => {
            GatewayError::UpstreamFailed("the upstream failed".into())
        }
        ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure => {
            GatewayError::UpstreamFailed("could not connect to the upstream".into())
        }
        HTTPStatus(413) => GatewayError::PayloadTooLarge {
            limit: ctx.rt.config.limits.max_body_bytes,
        },
        // Pingora's name for a broken chunked encoding (its constant is not public).
        Custom("InvalidChunk") => {
            GatewayError::InvalidRequest("malformed chunked body encoding".into())
        }
        _ if *e.esource() == ErrorSource::Downstream => {
            GatewayError::InvalidRequest("bad request".into())
        }
        _ => GatewayError::Internal,
    }
}
