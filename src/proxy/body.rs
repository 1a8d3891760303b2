//! Step 3, the body: read and parse JSON-RPC once, before an upstream is chosen.
//!
//! Pingora forwards an early-read body only from its retry buffer, which holds 64 KiB. Bodies that
//! fit (by `Content-Length`) are read here and decided before any upstream is contacted. Larger
//! bodies, and bodies of unknown length, take the other path: `request_body_filter` holds every
//! chunk back from the upstream, decides at the end of the stream, and only then releases the
//! whole body at once, so a refused request never reaches an upstream complete.
//!
//! Either way the body has a deadline (`ConnectionLimits::body_deadline`: one second plus its
//! length at `connections.body_min_rate`, at most `connections.body_timeout`): a client that
//! trickles its body is answered 408 and its connection closed, instead of holding a slot, a
//! buffer and the user's in-flight place for as long as it likes.

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use pingora_proxy::Session;
use std::time::Instant;

/// A body too large for the early buffer, held chunk by chunk until its end.
pub struct HeldBody {
    buf: BytesMut,
    deadline: Instant,
}

/// Pingora's early body buffer (`BODY_BUF_LIMIT`).
pub const EARLY_BODY_LIMIT: u64 = 64 * 1024;

/// Reads the body when it fits the early buffer (`Some`), or arranges for it to be held in
/// `request_body_filter` (`None`).
pub async fn read_early(
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Option<Bytes>, GatewayError> {
    let max = ctx.rt.config.limits.max_body_bytes;
    let headers = &session.req_header().headers;
    let expects_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let length = match headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(GatewayError::InvalidRequest("bad Content-Length".into()))?,
        ),
        None => None,
    };
    if length.is_some_and(|n| n > max) {
        // The body stays unread: the connection cannot be reused.
        session.set_keepalive(None);
        return Err(GatewayError::PayloadTooLarge { limit: max });
    }
    if expects_continue {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(|_| GatewayError::InvalidRequest("client went away".into()))?;
    }
    match length {
        Some(n) if n <= EARLY_BODY_LIMIT => {
            session.enable_retry_buffering();
            let deadline = ctx.rt.config.connections.body_deadline(n);
            match tokio::time::timeout(deadline, read_all(session)).await {
                Ok(body) => {
                    ctx.body.slot = None;
                    body.map(Some)
                }
                Err(_) => {
                    session.set_keepalive(None);
                    Err(GatewayError::BodyTimeout)
                }
            }
        }
        _ => {
            let limits = &ctx.rt.config.connections;
            let deadline = Instant::now() + limits.body_deadline(length.unwrap_or(max));
            // Grown as the body arrives: a declared length alone reserves no more than this.
            let capacity = length.unwrap_or(EARLY_BODY_LIMIT).min(EARLY_BODY_LIMIT) as usize;
            ctx.body.held = Some(HeldBody {
                buf: BytesMut::with_capacity(capacity),
                deadline,
            });
            ctx.body.was_held = true;
            // Pingora reads the rest: no single read may wait past the deadline.
            session
                .as_downstream_mut()
                .set_read_timeout(Some(limits.body_deadline(length.unwrap_or(max))));
            Ok(None)
        }
    }
}

/// The whole (early) body.
async fn read_all(session: &mut Session) -> Result<Bytes, GatewayError> {
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    loop {
        let chunk = session
            .read_request_body()
            .await
            .map_err(|_| GatewayError::InvalidRequest("could not read the request body".into()))?;
        let Some(chunk) = chunk else { break };
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    })
}

/// Holds a chunk of a large body. Returns the whole body at the end of the stream. The next read
/// may wait only until the body's deadline.
pub fn hold(
    session: &mut Session,
    ctx: &mut RequestCtx,
    chunk: Option<Bytes>,
    end: bool,
) -> Result<Option<Bytes>, GatewayError> {
    let max = ctx.rt.config.limits.max_body_bytes;
    let Some(held) = ctx.body.held.as_mut() else {
        return Err(GatewayError::Internal);
    };
    let now = Instant::now();
    if now >= held.deadline {
        return Err(GatewayError::BodyTimeout);
    }
    if let Some(chunk) = chunk {
        if held.buf.len() as u64 + chunk.len() as u64 > max {
            return Err(GatewayError::PayloadTooLarge { limit: max });
        }
        held.buf.extend_from_slice(&chunk);
    }
    if end {
        ctx.body.slot = None;
        return Ok(ctx.body.held.take().map(|h| h.buf.freeze()));
    }
    session
        .as_downstream_mut()
        .set_read_timeout(Some(held.deadline - now));
    Ok(None)
}
