//! 2026-07-28 clients on older upstreams when the upstream asks something back in the middle of a
//! request (elicitation, sampling, the client's roots). In 2025 the server sends its request on
//! the call's event stream and waits for the answer; in 2026-07-28 the server answers the call
//! with `resultType: "input_required"` and the client calls again with `inputResponses` and the
//! `requestState` it was given (multi round-trip). The gateway makes one out of the other: it
//! sends such a request (`tools/call`, `prompts/get`, `resources/read`) itself, in its session on
//! the upstream, and reads the answer's stream. When the upstream asks, the call is held here
//! (the upstream's stream stays open), the client gets `input_required` with the upstream's
//! requests and a sealed `requestState` naming the held call, and its next call with the answers
//! hands them to the upstream and goes on reading. What the client did not declare it can do is
//! refused with -32021 (`requiredCapabilities`), as the revision asks, and the upstream is told
//! the client cannot.
//!
//! A held call lives in the gateway that holds it, for at most [`HOLD`]: a retry that reaches
//! another replica, comes later, or carries a `requestState` not made for this caller and
//! request is refused (-32602) and the client starts over.

use super::super::ctx::RequestCtx;
use super::super::filter::ResponseRewrite;
use crate::error::GatewayError;
use crate::guard::results::ResultGuard;
use crate::protocol::method;
use crate::upstream::{Picked, ScopeUpstreams};
use pingora_proxy::Session;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a call waits for its client's answers.
const HOLD: Duration = Duration::from_secs(300);
/// Held calls at most (the oldest is given up when full).
const MAX_HELD: usize = 1024;
/// After the upstream's first request, how long more are gathered into the same round.
const GATHER: Duration = Duration::from_millis(50);
/// The notification that goes on to the client while a call runs.
const PROGRESS: &str = "notifications/progress";
/// What a `requestState` is sealed for (the session keys seal other things too).
const PURPOSE: &[u8] = b"mcp-gateway input-required";

/// The methods whose requests the gateway sends itself on a bridged scope: those a server may
/// answer by asking the client first.
pub fn asks(method: &str) -> bool {
    matches!(
        method,
        method::TOOLS_CALL | method::PROMPTS_GET | method::RESOURCES_READ
    )
}

/// What the upstream may ask, and the client capability each needs.
fn capability_for(asked: &str) -> Option<&'static str> {
    match asked {
        "elicitation/create" => Some("elicitation"),
        "sampling/createMessage" => Some("sampling"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// A call held while its client answers the upstream's requests.
struct Held {
    user: String,
    scope: String,
    method: String,
    /// The upstream's requests of this round: the key the client answers under, the request as
    /// the client was given it, and the id the upstream gave it.
    asked: Vec<(String, Value, Value)>,
    call: Call,
    since: Instant,
}

/// The call on the upstream: where it runs and what its stream says.
struct Call {
    picked: Picked,
    version: &'static str,
    session: Option<String>,
    /// The id the gateway gave the call at the upstream.
    id: String,
    events: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What the client holds between rounds (sealed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Ticket {
    n: u64,
}

/// The calls this gateway holds, by the number their `requestState` names.
fn lock() -> std::sync::MutexGuard<'static, HashMap<u64, Held>> {
    static HELD: OnceLock<Mutex<HashMap<u64, Held>>> = OnceLock::new();
    (HELD.get_or_init(Mutex::default))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn next() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends `body` (a 2026-07-28 request the policy allowed) to the bridged upstream, or hands the
/// client's answers to the call its `requestState` names, and answers it: the result, the
/// upstream's error, or `input_required`. Progress the upstream reports on the way goes to the
/// client as it comes (the answer is then an event stream); everything goes through the scope's
/// guards as it would on the way through, and the audit row reads the answer. `Err` only while
/// nothing was written yet (the refusal is then rendered as any other).
pub async fn exchange(
    session: &mut Session,
    ctx: &mut RequestCtx,
    body: &[u8],
    version: &'static str,
    upstream_session: Option<String>,
) -> Result<(), GatewayError> {
    // The upstream's own credentials, as a proxied request gets them (a machine token, or the
    // caller's exchanged for one); never the client's token.
    super::super::credentials::take(session, ctx).await?;
    let guard = match std::mem::take(&mut ctx.answer.rewrite) {
        ResponseRewrite::GuardPending(g) => Some(g),
        other => {
            ctx.answer.rewrite = other;
            None
        }
    };
    let mut out = Out {
        session,
        streaming: false,
        guard,
    };
    let answer = match talk(ctx, &mut out, body, version, upstream_session).await {
        Ok(answer) => answer,
        Err(e) if !out.streaming => return Err(e),
        Err(e) => {
            ctx.error = Some(e.clone());
            e.body(ctx.rpc_id())
        }
    };
    let answer = match out.guard.as_mut() {
        Some(g) if answer.len() > g.limit() => g.too_large(),
        Some(g) => g.message(&answer).unwrap_or(answer),
        None => answer,
    };
    if let Some(g) = out.guard.as_mut() {
        ctx.guard_hits.extend(std::mem::take(&mut g.hits));
    }
    ctx.answer.scan.feed(&answer);
    if !out.streaming {
        return super::super::respond::json(out.session, ctx, 200, answer, &[])
            .await
            .map_err(|_| GatewayError::Internal);
    }
    // The client may be gone by now: the stream is over either way.
    let _ = out.write(ctx, &answer).await;
    let _ = out.session.write_response_body(None, true).await;
    Ok(())
}

/// The client's answer: JSON when it is one message, an event stream once the upstream's
/// progress went ahead of it.
struct Out<'s> {
    session: &'s mut Session,
    streaming: bool,
    guard: Option<ResultGuard>,
}

impl Out<'_> {
    /// Passes a message on as an event (after the guards), opening the stream first.
    async fn note(&mut self, ctx: &RequestCtx, message: &Value) -> Result<(), GatewayError> {
        let bytes = serde_json::to_vec(message).map_err(|_| GatewayError::Internal)?;
        let bytes = match self.guard.as_mut() {
            Some(g) => g.message(&bytes).unwrap_or(bytes),
            None => bytes,
        };
        if bytes.is_empty() {
            return Ok(());
        }
        self.write(ctx, &bytes).await
    }

    async fn write(&mut self, ctx: &RequestCtx, message: &[u8]) -> Result<(), GatewayError> {
        let gone = |_| GatewayError::Internal;
        if !self.streaming {
            let head = super::super::respond::event_stream_head(ctx).map_err(gone)?;
            self.session
                .write_response_header(head, false)
                .await
                .map_err(gone)?;
            self.streaming = true;
        }
        let mut event = Vec::with_capacity(message.len() + 24);
        event.extend_from_slice(b"event: message\ndata: ");
        event.extend_from_slice(message);
        event.extend_from_slice(b"\n\n");
        self.session
            .write_response_body(Some(bytes::Bytes::from(event)), false)
            .await
            .map_err(gone)
    }
}

/// [`exchange`] before the guards: one round with the upstream.
async fn talk(
    ctx: &RequestCtx,
    out: &mut Out<'_>,
    body: &[u8],
    version: &'static str,
    session: Option<String>,
) -> Result<Vec<u8>, GatewayError> {
    let caller = ctx.admitted()?;
    let scope = caller.scope.clone();
    let picked = (ctx.upstream.picked.clone()).ok_or(GatewayError::Internal)?;
    let client_id = ctx.rpc_id().unwrap_or("null").to_string();
    let method = ctx.method().unwrap_or("").to_string();
    let user = crate::session::user_hash(&caller.identity.user, caller.identity.tenant.as_deref());
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| GatewayError::ParseError(e.to_string()))?;
    let params = v.get_mut("params").and_then(Value::as_object_mut);
    let (state, answers, declared) = match params {
        Some(p) => (
            p.remove("requestState"),
            p.remove("inputResponses"),
            p.get("_meta")
                .and_then(|m| m.get(crate::protocol::META_CLIENT_CAPABILITIES))
                .cloned()
                .unwrap_or(Value::Null),
        ),
        None => (None, None, Value::Null),
    };
    let (n, call) = match state {
        Some(state) => {
            let n = state
                .as_str()
                .and_then(|s| ctx.rt.sessions.open_as::<Ticket>(s, PURPOSE))
                .map(|t| t.n)
                .ok_or_else(unknown_state)?;
            // Only the caller and request it was made for take a held call: anyone else's try
            // leaves it where it is.
            let held = {
                let mut all = lock();
                let mine = all.get(&n).is_some_and(|h| {
                    h.user == user && h.scope == scope.scope.name && h.method == method
                });
                mine.then(|| all.remove(&n)).flatten()
            }
            .ok_or_else(unknown_state)?;
            let answers = answers.as_ref().and_then(Value::as_object);
            let Held { asked, call, .. } = held;
            let mut still = Vec::new();
            for (key, request, upstream_id) in asked {
                match answers.and_then(|a| a.get(&key)) {
                    Some(answer) => {
                        let reply = json!({"jsonrpc": "2.0", "id": upstream_id, "result": answer});
                        send(ctx, &scope, &call, &reply).await?;
                    }
                    None => still.push((key, request, upstream_id)),
                }
            }
            if !still.is_empty() {
                // What is still missing is asked for again (not an error: the revision wants the
                // client asked anew).
                return input_required(ctx, n, user, &scope, method, still, call, &client_id);
            }
            (n, call)
        }
        None => {
            let n = next();
            let id = format!("mcp-gateway-{n}");
            super::up::strip_meta(&mut v);
            v["id"] = Value::from(id.clone());
            (
                n,
                start(ctx, &scope, picked, version, session, id, &v).await?,
            )
        }
    };
    let mut call = call;
    match read(&mut call, ctx, out, &scope, &declared).await? {
        Round::Done(answer) => Ok(answer_with(&client_id, answer)),
        Round::Asked(asked) => {
            input_required(ctx, n, user, &scope, method, asked, call, &client_id)
        }
    }
}

/// Holds the call and answers the client `input_required` with the upstream's requests and the
/// state naming the held call.
#[allow(clippy::too_many_arguments)]
fn input_required(
    ctx: &RequestCtx,
    n: u64,
    user: String,
    scope: &ScopeUpstreams,
    method: String,
    asked: Vec<(String, Value, Value)>,
    call: Call,
    client_id: &str,
) -> Result<Vec<u8>, GatewayError> {
    let requests: Map<String, Value> = (asked.iter())
        .map(|(key, request, _)| (key.clone(), request.clone()))
        .collect();
    let state = (ctx.rt.sessions)
        .seal_as(&Ticket { n }, PURPOSE)
        .ok_or(GatewayError::Internal)?;
    park(
        n,
        Held {
            user,
            scope: scope.scope.name.clone(),
            method,
            asked,
            call,
            since: Instant::now(),
        },
    );
    let result = json!({"resultType": "input_required", "inputRequests": requests,
        "requestState": state});
    Ok(format!(r#"{{"jsonrpc":"2.0","id":{client_id},"result":{result}}}"#).into_bytes())
}

fn unknown_state() -> GatewayError {
    GatewayError::InvalidParams(
        "requestState is not one this gateway holds for this caller and request (expired, altered or from another gateway): call again without it".into(),
    )
}

/// Keeps a call for its client's next round, giving up calls held too long (and the oldest when
/// full).
fn park(n: u64, held: Held) {
    let mut all = lock();
    all.retain(|_, h| h.since.elapsed() < HOLD);
    if all.len() >= MAX_HELD {
        if let Some(oldest) = all.iter().min_by_key(|(_, h)| h.since).map(|(k, _)| *k) {
            all.remove(&oldest);
        }
    }
    all.insert(n, held);
}

/// The upstream's final answer with the client's id; a result gets what 2026-07-28 wants of it
/// (`resultType`, and cache hints on a resource read), as on the way through.
fn answer_with(client_id: &str, mut answer: Value) -> Vec<u8> {
    if let Some(result) = answer.get_mut("result").and_then(Value::as_object_mut) {
        super::super::filter::stamp(result);
    }
    let id: Value = serde_json::from_str(client_id).unwrap_or(Value::Null);
    answer["id"] = id;
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// A request of the gateway's own in its session on the upstream.
fn request(
    ctx: &RequestCtx,
    scope: &ScopeUpstreams,
    call: (&Picked, &'static str, Option<&str>),
    body: &Value,
) -> reqwest::RequestBuilder {
    let (picked, version, session) = call;
    let mut r = ctx.rt.bridged.post(scope, picked, body);
    if let Some(identity) = ctx.identity() {
        let tenant = identity.tenant.as_deref();
        let traceparent = ctx.trace.as_ref().map(|t| t.traceparent());
        r = crate::upstream::client::for_caller(
            r,
            &ctx.request_id,
            &identity.user,
            tenant,
            traceparent.as_deref(),
        );
    }
    r = r.header("mcp-protocol-version", version);
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    // Replaces what the upstream's configured headers put there.
    if let Some(bearer) = &ctx.upstream.bearer {
        let mut auth = reqwest::header::HeaderMap::new();
        auth.insert(reqwest::header::AUTHORIZATION, bearer.clone());
        r = r.headers(auth);
    }
    r
}

/// Starts the call and a reader of its answer, message by message.
async fn start(
    ctx: &RequestCtx,
    scope: &ScopeUpstreams,
    picked: Picked,
    version: &'static str,
    session: Option<String>,
    id: String,
    body: &Value,
) -> Result<Call, GatewayError> {
    let resp = request(ctx, scope, (&picked, version, session.as_deref()), body)
        .timeout(HOLD + scope.scope.read_timeout)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(request_id = %ctx.request_id, error = %e.without_url(), "bridged call failed");
            GatewayError::UpstreamFailed("the upstream could not be reached".into())
        })?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        // The upstream forgot the gateway's session: the next request opens a new one.
        ctx.rt.bridged.forget(&picked.addr);
        return Err(GatewayError::UpstreamFailed(
            "the upstream ended the gateway's session; call again".into(),
        ));
    }
    if !resp.status().is_success() {
        return Err(GatewayError::UpstreamFailed(
            format!("the upstream answered HTTP {}", resp.status().as_u16()).into(),
        ));
    }
    let (tx, events) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_messages(resp, tx));
    Ok(Call {
        picked,
        version,
        session,
        id,
        events,
        reader,
    })
}

/// Every JSON-RPC message of an answer (JSON, or each event of a stream), in order.
async fn read_messages(mut resp: reqwest::Response, tx: mpsc::UnboundedSender<Value>) {
    let stream = (resp.headers().get("content-type"))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !stream {
        if let Ok(v) = resp.json::<Value>().await {
            let _ = tx.send(v);
        }
        return;
    }
    let mut events = crate::sse::Events::default();
    while let Ok(Some(chunk)) = resp.chunk().await {
        for data in events.feed(&chunk) {
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    }
}

/// Hands a message (the client's answer to one of the upstream's requests) to the call's session.
async fn send(
    ctx: &RequestCtx,
    scope: &ScopeUpstreams,
    call: &Call,
    message: &Value,
) -> Result<(), GatewayError> {
    let sent = request(
        ctx,
        scope,
        (&call.picked, call.version, call.session.as_deref()),
        message,
    )
    .send()
    .await;
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        _ => Err(GatewayError::UpstreamFailed(
            "the upstream did not take the answer to its request".into(),
        )),
    }
}

/// How a round of reading ended.
enum Round {
    /// The call's answer (result or error).
    Done(Value),
    /// The upstream asks: (key, the request as the client gets it, the upstream's id).
    Asked(Vec<(String, Value, Value)>),
}

/// Reads the call's stream until its answer, or until the upstream asks the client something
/// (gathering what it asks at once); progress on the way goes to the client.
async fn read(
    call: &mut Call,
    ctx: &RequestCtx,
    out: &mut Out<'_>,
    scope: &ScopeUpstreams,
    declared: &Value,
) -> Result<Round, GatewayError> {
    let mut asked: Vec<(String, Value, Value)> = Vec::new();
    loop {
        let wait = if asked.is_empty() {
            scope.scope.read_timeout
        } else {
            GATHER
        };
        let message = match tokio::time::timeout(wait, call.events.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) if asked.is_empty() => {
                return Err(GatewayError::UpstreamFailed(
                    "the upstream ended the call without an answer".into(),
                ))
            }
            Err(_) if asked.is_empty() => {
                return Err(GatewayError::UpstreamTimeout(
                    scope.scope.name.clone().into(),
                ))
            }
            _ => return Ok(Round::Asked(asked)),
        };
        let is_answer = message.get("result").is_some() || message.get("error").is_some();
        if is_answer && message.get("id").and_then(Value::as_str) == Some(call.id.as_str()) {
            return Ok(Round::Done(message));
        }
        let (Some(asked_method), Some(id)) = (
            message.get("method").and_then(Value::as_str),
            message.get("id").cloned(),
        ) else {
            // Progress goes on to the client as it comes (other notifications, such as logs,
            // are not asked for by a 2026-07-28 client here).
            let progress = message.get("method").and_then(Value::as_str) == Some(PROGRESS);
            if progress && asked.is_empty() {
                out.note(ctx, &message).await?;
            }
            continue;
        };
        let Some(capability) = capability_for(asked_method) else {
            // Nothing a client can be asked in 2026-07-28 (a ping is answered here).
            let reply = match asked_method {
                method::PING => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
                _ => json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32601, "message": "Method not found"}}),
            };
            send(ctx, scope, call, &reply).await?;
            continue;
        };
        if declared.get(capability).is_none() {
            let reply = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
                "message": format!("the client did not declare the {capability} capability")}});
            let _ = send(ctx, scope, call, &reply).await;
            return Err(GatewayError::MissingCapability(capability));
        }
        let key = format!("{capability}-{}", asked.len() + 1);
        let request = json!({"method": asked_method,
            "params": message.get("params").cloned().unwrap_or_else(|| json!({}))});
        asked.push((key, request, id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_takes_the_clients_id_and_a_result_type() {
        let out = answer_with(
            r#""c-1""#,
            json!({"jsonrpc": "2.0", "id": "mcp-gateway-7", "result": {"content": []}}),
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "c-1");
        assert_eq!(v["result"]["resultType"], "complete");
        let out = answer_with(
            "9",
            json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -32602, "message": "m"}}),
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!(9), json!(-32602))
        );
    }

    #[test]
    fn only_what_a_client_can_be_asked_needs_a_capability() {
        assert_eq!(capability_for("elicitation/create"), Some("elicitation"));
        assert_eq!(capability_for("sampling/createMessage"), Some("sampling"));
        assert_eq!(capability_for("roots/list"), Some("roots"));
        assert_eq!(capability_for("ping"), None);
    }
}
