//! The composer's HTTP side: `POST /mcp` (each message routed to its server or fanned out),
//! `GET /mcp` (the servers' streams merged), `DELETE /mcp` (every server's session ended) and
//! `GET /health` (up while any server is).

use super::session::{self, MemberSession};
use super::{merge, stream, Composed, Member};
use crate::protocol::method;
use crate::upstream::Picked;
use arc_swap::ArcSwapOption;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

type Shared = Arc<ArcSwapOption<Composed>>;

pub(super) fn router(state: Shared) -> axum::Router {
    axum::Router::new()
        .route("/mcp", axum::routing::post(post).get(listen).delete(delete))
        .route("/health", axum::routing::get(health))
        .with_state(state)
}

/// A JSON-RPC error answer.
pub(super) fn error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON-RPC result answer.
pub(super) fn answer(id: &Value, result: Value) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// What every request to a server carries from the client's: the caller and the request id the
/// gateway wrote, and the revision the client speaks.
pub(super) struct Incoming {
    user: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    pub version: String,
}

impl Incoming {
    fn of(headers: &HeaderMap) -> Self {
        Self {
            user: headers.get("x-user-id").cloned(),
            request_id: headers.get("x-request-id").cloned(),
            version: headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(crate::protocol::DEFAULT_VERSION)
                .to_string(),
        }
    }

    /// The balancing key: the caller.
    pub fn key(&self) -> &[u8] {
        self.user.as_ref().map_or(b"", |u| u.as_bytes())
    }
}

impl Composed {
    /// A request of the composer to `picked`, one of `m`'s upstreams: the server's TLS client,
    /// the gateway's secret, the caller and request id, never a client's token.
    pub(super) fn request(
        &self,
        m: &Member,
        picked: &Picked,
        verb: reqwest::Method,
        inc: &Incoming,
    ) -> reqwest::RequestBuilder {
        let client = m.upstreams.pool.own_client().unwrap_or(&self.http);
        let mut r = picked.with_headers(
            client
                .request(verb, picked.target.url())
                .header("x-gateway-auth", m.upstreams.auth_header.clone()),
        );
        if let Some(u) = &inc.user {
            r = r.header("x-user-id", u.clone());
        }
        if let Some(id) = &inc.request_id {
            r = r.header("x-request-id", id.clone());
        }
        r
    }

    /// A POST of one message to a server, in its session when it has one.
    pub(super) fn post(
        &self,
        m: &Member,
        picked: &Picked,
        (version, session): (&str, Option<&str>),
        body: &Value,
        inc: &Incoming,
    ) -> reqwest::RequestBuilder {
        let r = self
            .request(m, picked, reqwest::Method::POST, inc)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", version)
            .body(serde_json::to_vec(body).unwrap_or_default());
        match session {
            Some(s) => r.header("mcp-session-id", s),
            None => r,
        }
    }

    /// Each server of the session that is up now: the server, its session and its upstream.
    pub(super) fn reachable<'a>(
        &'a self,
        sessions: &'a [MemberSession],
    ) -> impl Iterator<Item = (&'a Member, &'a MemberSession, Picked)> + 'a {
        sessions.iter().filter_map(|s| {
            let (_, m) = self.member(&s.server)?;
            let picked = m.upstreams.get_healthy(&s.addr)?;
            Some((m, s, picked))
        })
    }
}

/// A refusal before any message is read: status, JSON-RPC code, message.
type Refused = (StatusCode, i64, &'static str);

fn refused((status, code, message): Refused) -> Response {
    error(status, &Value::Null, code, message)
}

/// The scope still served and the request from the gateway.
fn admit(state: &Shared, headers: &HeaderMap) -> Result<Arc<Composed>, Refused> {
    let Some(c) = state.load_full() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            -32006,
            "this scope is no longer configured",
        ));
    };
    if !crate::protocol::from_gateway(headers, &c.secret) {
        return Err((
            StatusCode::UNAUTHORIZED,
            -32001,
            "missing or wrong X-Gateway-Auth",
        ));
    }
    Ok(c)
}

/// The servers' sessions the request names; `None` without a session id.
fn sessions_of(headers: &HeaderMap) -> Result<Option<Vec<MemberSession>>, Refused> {
    let unknown = (StatusCode::NOT_FOUND, -32010, "unknown session");
    match headers.get("mcp-session-id").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(id)) => session::decode(id).map(Some).ok_or(unknown),
        Some(Err(_)) => Err(unknown),
    }
}

async fn health(State(state): State<Shared>) -> StatusCode {
    match state.load_full() {
        Some(c) if c.members.iter().any(|m| m.upstreams.any_healthy()) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn post(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let c = match admit(&state, &headers) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let inc = Incoming::of(&headers);
    let msg = match serde_json::from_slice::<Value>(&body) {
        Ok(m) if m.is_object() => m,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                -32600,
                "a composed scope takes one message per request",
            )
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, &Value::Null, -32700, "Parse error"),
    };
    let sessions = match sessions_of(&headers) {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    let id = msg.get("id").cloned();
    let name = msg.get("method").and_then(Value::as_str);
    match (name, id, sessions) {
        (Some(method::INITIALIZE), Some(id), _) => merge::initialize(&c, &inc, &msg, id).await,
        (_, id, None) => error(
            StatusCode::BAD_REQUEST,
            &id.unwrap_or_default(),
            -32600,
            "no session: send initialize first",
        ),
        (Some(_), None, Some(s)) => {
            merge::notify(&c, &inc, &s, &msg).await;
            StatusCode::ACCEPTED.into_response()
        }
        (Some(name), Some(id), Some(s)) => {
            let name = name.to_string();
            request(&c, &inc, &s, &name, id, msg).await
        }
        (None, Some(_), Some(s)) => stream::to_server(&c, &inc, &s, msg).await,
        (None, None, Some(_)) => error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "Invalid Request",
        ),
    }
}

/// One request in a session: answered here, merged from every server, or routed to one.
async fn request(
    c: &Composed,
    inc: &Incoming,
    s: &[MemberSession],
    name: &str,
    id: Value,
    msg: Value,
) -> Response {
    let Some(composition) = c.scope.composed.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &id,
            -32006,
            "not a composed scope",
        );
    };
    match name {
        method::PING => answer(&id, json!({})),
        method::TOOLS_LIST
        | method::PROMPTS_LIST
        | method::RESOURCES_LIST
        | method::RESOURCE_TEMPLATES_LIST => merge::list(c, inc, s, name, &id).await,
        method::TOOLS_CALL => {
            let route = |n: &str| {
                composition
                    .tool(n)
                    .map(|(s, o)| (s.name.clone(), o.to_string()))
            };
            by_name(c, inc, s, msg, "/params/name", route, "tool").await
        }
        method::PROMPTS_GET => {
            let route = |n: &str| {
                composition
                    .prompt(n)
                    .map(|(s, o)| (s.name.clone(), o.to_string()))
            };
            by_name(c, inc, s, msg, "/params/name", route, "prompt").await
        }
        method::COMPLETION_COMPLETE if msg["params"]["ref"]["type"] == "ref/prompt" => {
            let route = |n: &str| {
                composition
                    .prompt(n)
                    .map(|(s, o)| (s.name.clone(), o.to_string()))
            };
            by_name(c, inc, s, msg, "/params/ref/name", route, "prompt").await
        }
        method::COMPLETION_COMPLETE
        | method::RESOURCES_READ
        | method::RESOURCES_SUBSCRIBE
        | method::RESOURCES_UNSUBSCRIBE => merge::first_answer(c, inc, s, &msg, &id).await,
        method::LOGGING_SET_LEVEL => {
            merge::notify(c, inc, s, &msg).await;
            answer(&id, json!({}))
        }
        _ => error(StatusCode::OK, &id, -32601, "Method not found"),
    }
}

/// A request for a named tool or prompt (at `pointer` in the message), routed to its server under
/// the server's own name; a name no server has is unknown, as on any scope.
async fn by_name(
    c: &Composed,
    inc: &Incoming,
    s: &[MemberSession],
    mut msg: Value,
    pointer: &str,
    route: impl Fn(&str) -> Option<(String, String)>,
    kind: &str,
) -> Response {
    let shown = msg.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    match (route(shown), msg.pointer_mut(pointer)) {
        (Some((server, original)), Some(name)) => {
            *name = original.into();
            forward(c, inc, s, &server, &msg).await
        }
        _ => {
            let id = msg.get("id").cloned().unwrap_or_default();
            let shown = msg.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            error(
                StatusCode::OK,
                &id,
                -32602,
                &format!("Unknown {kind}: {shown}"),
            )
        }
    }
}

/// A request routed to `server` in the client's session there; its answer streams back.
pub(super) async fn forward(
    c: &Composed,
    inc: &Incoming,
    sessions: &[MemberSession],
    server: &str,
    msg: &Value,
) -> Response {
    let id = msg.get("id").cloned().unwrap_or_default();
    let member = c.member(server).map(|(_, m)| m);
    let session = sessions.iter().find(|s| s.server == server);
    let (Some(m), Some(s)) = (member, session) else {
        return error(
            StatusCode::BAD_GATEWAY,
            &id,
            -32008,
            "this server was not reachable when the session began",
        );
    };
    let Some(picked) = m.upstreams.get_healthy(&s.addr) else {
        // Another upstream of the server may take a new session; none: the server is down.
        return match m.upstreams.any_healthy() {
            true => error(StatusCode::NOT_FOUND, &id, -32010, "unknown session"),
            false => error(StatusCode::BAD_GATEWAY, &id, -32008, "the server is down"),
        };
    };
    let sent = c
        .post(m, &picked, (&s.version, s.id.as_deref()), msg, inc)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            m.upstreams.record(&picked, resp.status().as_u16() < 500);
            stream::relay(server, resp)
        }
        Err(e) => {
            m.upstreams.record(&picked, false);
            tracing::warn!(scope = %c.scope.name, server, upstream = %picked.addr, error = %e.without_url(), "a composed scope's server failed");
            error(StatusCode::BAD_GATEWAY, &id, -32008, "the server failed")
        }
    }
}

async fn listen(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let c = match admit(&state, &headers) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    match sessions_of(&headers) {
        Ok(Some(s)) => stream::listen(c, Incoming::of(&headers), s),
        Ok(None) => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        Err(r) => refused(r),
    }
}

async fn delete(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let c = match admit(&state, &headers) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let sessions = match sessions_of(&headers) {
        Ok(Some(s)) => s,
        Ok(None) => return StatusCode::BAD_REQUEST.into_response(),
        Err(r) => return refused(r),
    };
    let inc = Incoming::of(&headers);
    let ends = c.reachable(&sessions).filter_map(|(m, s, picked)| {
        let id = s.id.as_deref()?;
        Some(
            c.request(m, &picked, reqwest::Method::DELETE, &inc)
                .header("mcp-protocol-version", s.version.as_str())
                .header("mcp-session-id", id)
                .timeout(m.server.scope.read_timeout)
                .send(),
        )
    });
    futures_util::future::join_all(ends).await;
    StatusCode::OK.into_response()
}
