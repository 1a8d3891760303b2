//! Step 7, the answer on its way back: the upstream's software and error pages stay behind the
//! gateway, a new upstream session id is sealed into the gateway's own, list answers are filtered
//! to what the caller may see, an upstream JSON-RPC error is scrubbed (`scrub`), streams go out
//! unbuffered, and a non-streaming answer that takes longer than the scope's total timeout is cut.

use super::ctx::{AnswerBody, RequestCtx};
use super::filter::ResponseRewrite;
use super::{names, respond, visible};
use crate::error::GatewayError;
use crate::session::{user_hash, SessionBinding};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType, Result};

/// The answer's header, before it goes to the client.
pub fn header(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    *resp = super::allowed::response(
        resp,
        &ctx.rt.config.forward_headers.response,
        ctx.request_id.header(),
    );
    super::cors::decorate(resp, ctx)?;
    if let Some((err, status)) = replaced(resp, ctx) {
        respond::replace_upstream_answer(resp, ctx, err)?;
        if let Some(s) = status {
            resp.set_status(s)?;
        }
        return Ok(());
    }
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ctx.answer.streaming = content_type.starts_with("text/event-stream");
    // An owned copy of the content type only when a list answer or a guarded result is
    // rewritten.
    let guarded = matches!(ctx.answer.rewrite, ResponseRewrite::GuardPending(_));
    let rewrite_as = ((resp.status == 200 || guarded) && ctx.answer.rewrite.pending())
        .then(|| content_type.to_string());
    if rewrite_as.is_none() && !ctx.answer.streaming && content_type.starts_with("application/json")
    {
        let held = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .and_then(super::scrub::HeldAnswer::for_length);
        if let Some(h) = held {
            ctx.answer.body = AnswerBody::Held(h);
        }
    }
    check_total_timeout(ctx)?;
    super::legacy::header(resp, ctx)?;
    seal_session(resp, ctx)?;
    if ctx.answer.streaming {
        resp.insert_header("X-Accel-Buffering", "no")?;
    }
    if let Some(content_type) = rewrite_as {
        let announced = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut rewrite = std::mem::take(&mut ctx.answer.rewrite);
        let allowed = || -> Box<dyn visible::Visible> {
            match ctx.bridged() {
                Some(_) => Box::new(super::translate::Stamped(visible::of(ctx))),
                None => visible::of(ctx),
            }
        };
        if rewrite.start(&content_type, allowed)
            && !announced.is_some_and(|n| rewrite.keep_length(n))
        {
            resp.remove_header("content-length");
        }
        ctx.answer.rewrite = rewrite;
    }
    Ok(())
}

/// The refusal that replaces an upstream answer the client must not get as it is (every answer
/// a client gets is JSON-RPC), and the status it gets instead of the upstream's, when another.
fn replaced(resp: &ResponseHeader, ctx: &RequestCtx) -> Option<(GatewayError, Option<u16>)> {
    let status = resp.status.as_u16();
    let failed =
        || GatewayError::UpstreamFailed(format!("the upstream answered HTTP {status}").into());
    if resp.status.is_server_error() {
        return Some((failed(), None));
    }
    if status == 404 && ctx.bridged().is_some() {
        // The upstream forgot the gateway's session: the next request opens a new one. A 404
        // means "method not found" to a 2026-07-28 client, so this one gets a 502 (-32008).
        if let Some(p) = &ctx.upstream.picked {
            ctx.rt.bridged.forget(&p.addr);
        }
        return Some((failed(), Some(502)));
    }
    if status == 404 && ctx.caller.as_ref().is_some_and(|c| c.session.is_some()) {
        // The upstream forgot the client's session (it restarted): the client is told as the
        // gateway tells it of an unknown session, and initializes again.
        return Some((GatewayError::UnknownSession, None));
    }
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let rpc = content_type.starts_with("application/json")
        || content_type.starts_with("text/event-stream");
    // An upstream's plain-text 405, 406 or 415 keeps its status with a JSON-RPC error.
    (resp.status.is_client_error() && !rpc).then_some((GatewayError::UpstreamRefused(status), None))
}

/// A chunk of the answer's body: replaced, filtered, counted and scanned for the outcome.
pub fn body(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) -> Result<()> {
    if !end_of_stream {
        check_total_timeout(ctx)?;
    }
    match &mut ctx.answer.body {
        AnswerBody::Passing => {}
        AnswerBody::Replaced(r) => r.swallow(body, end_of_stream, &ctx.request_id),
        AnswerBody::Held(h) => h.take(body, end_of_stream, &ctx.request_id),
    }
    // The cut of a held answer happens at its end: that call is the step's span.
    let step = (end_of_stream && ctx.trace.is_some())
        .then(|| ctx.answer.rewrite.step())
        .flatten();
    let clock = step.and_then(|_| ctx.step_clock());
    ctx.answer.rewrite.body(body, end_of_stream);
    if let Some(step) = step {
        ctx.step_done(step, clock);
    }
    if end_of_stream {
        let hits = ctx.answer.rewrite.take_hits();
        ctx.guard_hits.extend(hits);
    }
    if let Some(b) = body.as_deref() {
        ctx.answer.bytes += b.len() as u64;
        ctx.answer.scan.feed(b);
    }
    if end_of_stream {
        ctx.upstream.elapsed = ctx.upstream.started.map(|t| t.elapsed());
    }
    Ok(())
}

/// The upstream's `Mcp-Session-Id` never reaches the client as it is: it is sealed with the
/// upstream and the caller into the gateway's own id, once per session (later answers in the same
/// session repeat the id the client presented). Without an admitted caller it is dropped.
fn seal_session(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let Some(id) = resp
        .headers
        .get(&names::SESSION_ID)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    // The same upstream session as the client presented: the same id goes back.
    let same = ctx.caller.as_ref().and_then(|c| {
        let b = c.session.as_ref()?;
        let picked = ctx.upstream.picked.as_ref()?;
        let here = b.upstream == picked.addr || c.scope.scope.composed.is_some();
        (b.upstream_session == id && here)
            .then(|| c.session_id.clone())
            .flatten()
    });
    if let Some(presented) = same {
        resp.insert_header(names::written::SESSION_ID, presented)?;
        return Ok(());
    }
    let sealed = match (ctx.caller.as_ref(), &ctx.upstream.picked) {
        (Some(caller), Some(picked)) => ctx.rt.sessions.seal(&SessionBinding {
            scope: caller.scope.scope.name.clone(),
            upstream: picked.addr.clone(),
            upstream_session: id.to_string(),
            user_hash: user_hash(&caller.identity.user, caller.identity.tenant.as_deref()),
        }),
        _ => None,
    };
    match sealed {
        Some(s) => {
            resp.insert_header(names::written::SESSION_ID, s.as_str())?;
            ctx.answer.issued_session = Some(s);
        }
        None => {
            resp.remove_header(&names::SESSION_ID);
        }
    }
    Ok(())
}

/// The scope's total deadline for non-streaming answers, checked when the answer's header and
/// each of its chunks arrive (silence in between is bounded by the idle `timeout`).
fn check_total_timeout(ctx: &mut RequestCtx) -> Result<()> {
    let total = ctx.scope.as_ref().and_then(|s| s.scope.total_timeout);
    if let (Some(total), Some(started), false) = (total, ctx.upstream.started, ctx.answer.streaming)
    {
        if started.elapsed() > total {
            ctx.error = Some(GatewayError::UpstreamTimeout(
                "the answer took longer than the total timeout".into(),
            ));
            return Err(Error::explain(ErrorType::ReadTimedout, "total timeout"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::testing::{admitted, TestRuntime};

    #[test]
    fn an_upstream_session_id_is_sealed_for_the_caller() {
        let rt = TestRuntime::new().build();
        let mut ctx = admitted(&rt, "alice", &["analyst"]);
        crate::proxy::upstream::peer(&mut ctx).unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-type", "text/event-stream")
            .unwrap();
        resp.insert_header("mcp-session-id", "upstream-42").unwrap();
        resp.insert_header("server", "tool/1.0").unwrap();
        header(&mut resp, &mut ctx).unwrap();
        let sealed = resp.headers["mcp-session-id"].to_str().unwrap().to_string();
        assert_ne!(sealed, "upstream-42");
        let binding = rt.sessions.open(&sealed).unwrap();
        assert_eq!(binding.upstream_session, "upstream-42");
        assert_eq!(binding.user_hash, user_hash("alice", None));
        assert!(resp.headers.get("server").is_none());
        assert_eq!(resp.headers["x-accel-buffering"], "no");
        assert!(ctx.answer.streaming);
    }

    #[test]
    fn without_a_caller_the_session_id_is_dropped() {
        let rt = TestRuntime::new().build();
        let mut ctx = crate::proxy::ctx::RequestCtx::new(rt);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("mcp-session-id", "upstream-42").unwrap();
        header(&mut resp, &mut ctx).unwrap();
        assert!(resp.headers.get("mcp-session-id").is_none());
        assert!(ctx.answer.issued_session.is_none());
    }

    #[test]
    fn an_upstream_5xx_is_replaced_and_is_the_outcome() {
        let rt = TestRuntime::new().build();
        let mut ctx = admitted(&rt, "alice", &["analyst"]);
        let mut resp = ResponseHeader::build(500, None).unwrap();
        resp.insert_header("x-powered-by", "Express").unwrap();
        header(&mut resp, &mut ctx).unwrap();
        assert!(resp.headers.get("x-powered-by").is_none());
        assert!(matches!(ctx.error, Some(GatewayError::UpstreamFailed(_))));
        let mut chunk = Some(Bytes::from_static(b"Traceback: /srv/app.py line 3"));
        body(&mut chunk, true, &mut ctx).unwrap();
        let text = String::from_utf8(chunk.unwrap().to_vec()).unwrap();
        assert!(
            text.contains("-32008") && !text.contains("Traceback"),
            "{text}"
        );
    }
}
