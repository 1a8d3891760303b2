//! The legacy HTTP+SSE transport (protocol 2024-11-05) for clients that still speak it, over
//! Streamable HTTP upstreams.
//!
//! `GET /S/sse` (event-stream accepted, no `Mcp-Session-Id`) opens a stream held by the gateway;
//! its first event, `endpoint`, names `/S/messages?session=<id>` inside the scope, never an
//! upstream. Each POST there is an ordinary request through every step (authentication by the
//! stream's owner only, grants, limits, list filtering, one audit row), forwarded to the upstream
//! as Streamable HTTP in the upstream session the stream's `initialize` opened. The POST is
//! answered 202 and the upstream's answer (JSON, or each event of an SSE answer) goes to the
//! stream as `message` events. Streamable HTTP clients keep using `/S/sse` as before: they POST,
//! or GET with a session id.
//!
//! Upstreams may speak the legacy transport too (`transport: sse`): then the stream opens one to
//! the upstream, whose `endpoint` (checked to stay on the upstream's origin) becomes where the
//! stream's POSTs go, and the upstream's `message` events come to the client filtered like any
//! answer (lists cut to the caller's grants). Streamable HTTP clients cannot use such a scope.
//!
//! Streams live in the instance that opened them: behind several instances, route a client's
//! connections to one instance (source-address affinity) or use Streamable HTTP.

mod upstream;

use super::ctx::{Admitted, RequestCtx};
use crate::error::GatewayError;
use crate::session::{user_hash, SessionBinding};
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora_proxy::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Streams open at once in one instance, and per user.
const MAX_STREAMS: usize = 10_000;
const MAX_PER_USER: usize = 32;
/// Messages waiting for a slow client before its stream is closed (it reconnects).
const QUEUE: usize = 256;
/// A comment line this often keeps proxies from closing an idle stream and finds dead clients.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// One client's stream.
pub struct Stream {
    scope: String,
    user_hash: String,
    tx: mpsc::Sender<Bytes>,
    /// The upstream session its `initialize` opened.
    binding: Mutex<Option<SessionBinding>>,
    /// A legacy upstream's stream: its address and the path its `endpoint` event named.
    upstream: Option<(String, http::Uri)>,
}

impl Stream {
    /// Queues a message for the client; a client that does not read loses its stream.
    fn send(&self, message: Bytes) -> bool {
        self.tx.try_send(message).is_ok()
    }
}

/// The streams of this instance, by id.
#[derive(Default)]
pub struct Streams {
    open: Mutex<HashMap<String, Arc<Stream>>>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(
        &self,
        scope: &str,
        user_hash: String,
        upstream: Option<(String, http::Uri)>,
    ) -> Result<(String, mpsc::Receiver<Bytes>), GatewayError> {
        let mut open = self.lock();
        let mine = open.values().filter(|s| s.user_hash == user_hash).count();
        if open.len() >= MAX_STREAMS || mine >= MAX_PER_USER {
            return Err(GatewayError::TooManyConcurrent);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = uuid::Uuid::new_v4().simple().to_string();
        open.insert(
            id.clone(),
            Arc::new(Stream {
                scope: scope.to_string(),
                user_hash,
                tx,
                binding: Mutex::new(None),
                upstream,
            }),
        );
        Ok((id, rx))
    }

    fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.lock().get(id).cloned()
    }

    fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Streams open now (tests, metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a request on a scope opens a legacy stream: `GET /S/sse` accepting an event stream,
/// with no session id (a Streamable HTTP client's GET always carries one).
pub fn opens_stream(session: &Session) -> bool {
    let req = session.req_header();
    req.method == http::Method::GET
        && req.uri.path().ends_with("/sse")
        && !req.headers.contains_key(&super::names::SESSION_ID)
        && super::admit::accepts_event_stream(req)
}

/// Whether the path is a scope's legacy message endpoint.
pub fn is_message_path(path: &str) -> bool {
    path.ends_with("/messages")
}

/// Serves the stream until the client goes away. Returns once it is over.
pub async fn serve(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let Admitted {
        scope, identity, ..
    } = ctx.admitted()?;
    let scope_name = scope.scope.name.clone();
    let owner = user_hash(&identity.user, identity.tenant.as_deref());
    let mut upstream = match is_legacy_scope(ctx) {
        true => Some(Box::pin(upstream::open(ctx)).await?),
        false => None,
    };
    let pinned = upstream
        .as_ref()
        .map(|u| (u.picked.addr.clone(), u.endpoint.clone()));
    let streams = ctx.rt.legacy.clone();
    let (id, mut rx) = streams.open(&scope_name, owner, pinned)?;
    let result = pump(session, ctx, &scope_name, &id, &mut rx, upstream.as_mut()).await;
    streams.close(&id);
    ctx.answer.streaming = true;
    result.map_err(|_| GatewayError::Internal)
}

/// Whether the scope's upstreams speak only the legacy transport.
pub fn is_legacy_scope(ctx: &RequestCtx) -> bool {
    ctx.scope
        .as_ref()
        .is_some_and(|s| s.scope.upstreams.iter().any(|t| t.legacy_sse))
}

async fn pump(
    session: &mut Session,
    ctx: &RequestCtx,
    scope: &str,
    id: &str,
    rx: &mut mpsc::Receiver<Bytes>,
    mut upstream: Option<&mut upstream::Upstream>,
) -> pingora::Result<()> {
    let allowed = super::visible::of(ctx);
    let mut guard = (ctx.scope.as_ref())
        .and_then(|s| s.scope.guards.clone())
        .filter(|g| g.on_results())
        .map(|g| crate::guard::results::ResultGuard::new(g, None));
    let head = super::respond::event_stream_head(ctx)?;
    session.write_response_header(head, false).await?;
    let endpoint = format!("event: endpoint\ndata: /{scope}/messages?session={id}\n\n");
    session
        .write_response_body(Some(Bytes::from(endpoint)), false)
        .await?;
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.tick().await;
    loop {
        let from_upstream = async {
            match upstream.as_mut() {
                Some(u) => {
                    let m = u.next_messages(allowed.as_ref(), guard.as_mut()).await;
                    if let Some(g) = guard.as_mut() {
                        std::mem::take(&mut g.hits).count(scope);
                    }
                    m
                }
                None => std::future::pending().await,
            }
        };
        let chunk = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            m = from_upstream => match m {
                Some(m) => m,
                // The upstream ended its stream: so does the client's.
                None => break,
            },
            _ = tick.tick() => Bytes::from_static(b": keepalive\n\n"),
        };
        // A failed write is the client gone: the stream is over, normally.
        if session
            .write_response_body(Some(chunk), false)
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    session.write_response_body(None, true).await
}

/// For `POST /S/messages?session=<id>`: the stream must exist, be on this scope and belong to the
/// caller (anything else is an unknown session, 404); its upstream session, once there is one,
/// routes the request.
pub fn open_message(session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    if session.req_header().method != http::Method::POST {
        return Err(GatewayError::MethodNotAllowed(
            "the legacy message endpoint takes POST only",
        ));
    }
    let id = session
        .req_header()
        .uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("session="))
        .unwrap_or_default();
    let Admitted {
        scope, identity, ..
    } = ctx.admitted()?;
    let stream = ctx.rt.legacy.get(id).ok_or(GatewayError::UnknownSession)?;
    if stream.scope != scope.scope.name {
        return Err(GatewayError::UnknownSession);
    }
    if stream.user_hash != user_hash(&identity.user, identity.tenant.as_deref()) {
        tracing::warn!(request_id = %ctx.request_id, user = %identity.user, "legacy stream used by another user");
        return Err(GatewayError::UnknownSession);
    }
    let binding = stream
        .binding
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let pinned_to = binding
        .as_ref()
        .map(|b| &b.upstream)
        .or(stream.upstream.as_ref().map(|u| &u.0));
    if let Some(addr) = pinned_to {
        ctx.upstream.picked = Some(
            scope
                .get_healthy(addr)
                .ok_or(GatewayError::UnknownSession)?,
        );
    }
    if let Some(caller) = ctx.caller.as_mut() {
        caller.session = binding;
    }
    ctx.mode = super::ctx::Mode::Legacy(Legacy {
        stream,
        sse: false,
        pending: BytesMut::new(),
        diverting: false,
    });
    Ok(())
}

/// A legacy message on its way: where its answer goes.
pub struct Legacy {
    stream: Arc<Stream>,
    /// The upstream answered with an event stream.
    sse: bool,
    pending: BytesMut,
    /// The answer goes to the stream (a 2xx answer); otherwise it goes to the POST as it is.
    diverting: bool,
}

impl Legacy {
    /// Where a legacy upstream wants this stream's messages.
    pub fn upstream_path(&self) -> Option<&http::Uri> {
        self.stream.upstream.as_ref().map(|u| &u.1)
    }
}

/// The upstream's answer header for a legacy message: its session id is kept for the stream (never
/// shown), and a successful answer becomes 202 with its body diverted to the stream.
pub fn header(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> pingora::Result<()> {
    let super::ctx::Mode::Legacy(legacy) = &mut ctx.mode else {
        return Ok(());
    };
    if let (Some(id), Some(picked), Some(caller)) = (
        resp.headers
            .get(&super::names::SESSION_ID)
            .and_then(|v| v.to_str().ok()),
        &ctx.upstream.picked,
        &ctx.caller,
    ) {
        *legacy
            .stream
            .binding
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(SessionBinding {
            scope: caller.scope.scope.name.clone(),
            upstream: picked.addr.clone(),
            upstream_session: id.to_string(),
            user_hash: legacy.stream.user_hash.clone(),
        });
    }
    resp.remove_header(&super::names::SESSION_ID);
    // A legacy upstream answers on its own stream, which the client's stream relays.
    if !resp.status.is_success() || legacy.stream.upstream.is_some() {
        return Ok(());
    }
    legacy.sse = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    legacy.diverting = true;
    resp.set_status(202)?;
    resp.remove_header(&http::header::CONTENT_TYPE);
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header("X-Accel-Buffering");
    Ok(())
}

/// Moves a legacy answer's body (already filtered) to the client's stream.
pub fn divert(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
    let Some(legacy) = ctx.legacy_mut().filter(|l| l.diverting) else {
        return;
    };
    if let Some(b) = body.take() {
        legacy.pending.extend_from_slice(&b);
    }
    let mut delivered = true;
    if legacy.sse {
        while let Some((end, sep)) = crate::sse::next_event(&legacy.pending) {
            let event = legacy.pending.split_to(end + sep);
            if let Some(data) = crate::sse::event_data(&event[..end]) {
                delivered &= legacy.stream.send(message(&data));
            }
        }
    }
    if end_of_stream {
        let rest = legacy.pending.split();
        let rest = if legacy.sse {
            crate::sse::event_data(&rest)
        } else {
            Some(rest.to_vec())
        };
        if let Some(data) = rest.filter(|d| !d.iter().all(u8::is_ascii_whitespace)) {
            delivered &= legacy.stream.send(message(&data));
        }
    }
    if !delivered {
        tracing::warn!(request_id = %ctx.request_id, "legacy stream is not read; message dropped");
    }
}

/// A `message` event carrying one JSON-RPC message on one line.
fn message(data: &[u8]) -> Bytes {
    let compact;
    let line = if data.contains(&b'\n') {
        compact = serde_json::from_slice::<serde_json::Value>(data)
            .ok()
            .and_then(|v| serde_json::to_vec(&v).ok())
            .unwrap_or_else(|| {
                data.iter()
                    .map(|b| if *b == b'\n' { b' ' } else { *b })
                    .collect()
            });
        &compact[..]
    } else {
        data
    };
    let mut out = BytesMut::with_capacity(line.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(line);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// Also delivers an answer the gateway itself gives a legacy message (a refusal, an answer made
/// here) to its stream: the client waits for it there, not on the POST.
pub fn also_to_stream(ctx: &RequestCtx, body: &[u8]) {
    if let (Some(legacy), Some(_)) = (ctx.legacy(), ctx.rpc_id()) {
        legacy.stream.send(message(body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_and_messages() {
        assert_eq!(
            crate::sse::event_data(b"id: 1\ndata: {\"a\":1}").unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            crate::sse::event_data(b"data: {\"a\":\ndata: 1}").unwrap(),
            b"{\"a\":\n1}"
        );
        assert!(crate::sse::event_data(b"id: 0\ndata:").is_none());
        assert!(crate::sse::event_data(b": comment").is_none());
        assert_eq!(
            &message(b"{\"a\":\n1}")[..],
            b"event: message\ndata: {\"a\":1}\n\n"
        );
    }
}
