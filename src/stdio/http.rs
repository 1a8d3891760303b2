//! The adapter's HTTP side: Streamable HTTP with sessions at `/mcp` (POST, GET, DELETE), `/health`,
//! and the gateway's secret on every MCP request. Requests are answered as SSE streams (progress
//! and the program's own requests travel with the answer); `initialize` as JSON with the session id.

use super::mux::{Mux, Outbox};
use super::programs::Programs;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Clone)]
struct App {
    programs: Arc<Programs>,
    secret: Arc<String>,
}

pub fn router(programs: Arc<Programs>, secret: Arc<String>) -> axum::Router {
    axum::Router::new()
        .route("/mcp", axum::routing::post(post).get(get).delete(delete))
        .route("/health", axum::routing::get(|| async { "ok" }))
        .with_state(App { programs, secret })
}

fn rpc_error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refusal: status, JSON-RPC code, message.
type Refused = (StatusCode, i64, &'static str);

/// The process serving a session, and the session.
type Served = (Arc<Mux>, Arc<str>);

fn refused((status, code, message): Refused) -> Response {
    rpc_error(status, &Value::Null, code, message)
}

/// The gateway's secret, then the session the request names.
fn admit(app: &App, headers: &HeaderMap) -> Result<Option<Served>, Refused> {
    if !crate::tools::from_gateway(headers, &app.secret) {
        return Err((
            StatusCode::UNAUTHORIZED,
            -32001,
            "missing or wrong X-Gateway-Auth",
        ));
    }
    match headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
        None => Ok(None),
        Some(id) => match app.programs.session(id) {
            Some(s) => Ok(Some(s)),
            None => Err((StatusCode::NOT_FOUND, -32600, "Session not found")),
        },
    }
}

/// Messages as SSE events, ending when the sender side closes.
fn event_stream(rx: mpsc::UnboundedReceiver<Value>) -> Response {
    events_of(vec![rx])
}

/// The messages of every receiver as one SSE stream, ending when all have closed.
fn events_of(receivers: Vec<mpsc::UnboundedReceiver<Value>>) -> Response {
    let each = receivers.into_iter().map(|rx| {
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            let msg = rx.recv().await?;
            let event = format!("event: message\ndata: {msg}\n\n");
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(event)), rx))
        }))
    });
    let events = futures_util::stream::select_all(each);
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

async fn post(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match admit(&app, &headers) {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    if app.programs.gone() {
        let (code, message) = super::mux::PROCESS_GONE;
        return rpc_error(StatusCode::SERVICE_UNAVAILABLE, &Value::Null, code, message);
    }
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(Value::Array(batch)) if !batch.is_empty() => {
            return match session {
                Some((mux, session)) => batched(&mux, &session, &batch),
                None => rpc_error(
                    StatusCode::BAD_REQUEST,
                    &Value::Null,
                    -32600,
                    "Bad Request: Mcp-Session-Id required (initialize first)",
                ),
            };
        }
        Ok(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                -32600,
                "not a JSON-RPC message or batch",
            )
        }
        Err(_) => return rpc_error(StatusCode::BAD_REQUEST, &Value::Null, -32700, "Parse error"),
    };
    let id = msg.get("id").cloned().filter(|i| !i.is_null());
    let method = msg.get("method").and_then(Value::as_str);
    if method == Some("initialize") {
        let Some(id) = id else {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                -32600,
                "initialize needs an id",
            );
        };
        return match app.programs.initialize(&msg["params"]).await {
            Ok((session, result)) => {
                let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
                (
                    [
                        ("content-type", "application/json"),
                        ("mcp-session-id", &*session),
                    ],
                    body.to_string(),
                )
                    .into_response()
            }
            Err(error) => {
                let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
                ([("content-type", "application/json")], body.to_string()).into_response()
            }
        };
    }
    let Some((mux, session)) = session else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &id.unwrap_or(Value::Null),
            -32600,
            "Bad Request: Mcp-Session-Id required (initialize first)",
        );
    };
    match (method, id) {
        (Some(_), Some(_)) => event_stream(mux.request(&session, &msg)),
        (Some(_), None) => {
            mux.notify(&session, &msg);
            StatusCode::ACCEPTED.into_response()
        }
        (None, Some(_)) => {
            mux.respond(&session, &msg);
            StatusCode::ACCEPTED.into_response()
        }
        (None, None) => rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "not a JSON-RPC message",
        ),
    }
}

/// A batch (2025-03-26) in a session: every request's answers on one event stream, notifications
/// and answers passed on; `initialize` is never batched.
fn batched(mux: &super::mux::Mux, session: &Arc<str>, batch: &[Value]) -> Response {
    let kinds: Option<Vec<(bool, bool)>> = batch
        .iter()
        .map(|m| {
            let method = m.get("method").and_then(Value::as_str);
            let id = m.get("id").is_some_and(|i| !i.is_null());
            (m.is_object() && method != Some("initialize") && (method.is_some() || id))
                .then_some((method.is_some(), id))
        })
        .collect();
    let Some(kinds) = kinds else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "a batch holds requests, notifications and answers, never initialize",
        );
    };
    let mut answers = Vec::new();
    for (msg, kind) in batch.iter().zip(kinds) {
        match kind {
            (true, true) => answers.push(mux.request(session, msg)),
            (true, false) => mux.notify(session, msg),
            _ => mux.respond(session, msg),
        }
    }
    match answers.is_empty() {
        true => StatusCode::ACCEPTED.into_response(),
        false => events_of(answers),
    }
}

async fn get(State(app): State<App>, headers: HeaderMap) -> Response {
    let (mux, session) = match admit(&app, &headers) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                -32600,
                "Bad Request: Mcp-Session-Id required",
            )
        }
        Err(r) => return refused(r),
    };
    let (tx, rx): (Outbox, _) = mpsc::unbounded_channel();
    mux.listen(&session, tx);
    event_stream(rx)
}

async fn delete(State(app): State<App>, headers: HeaderMap) -> Response {
    match admit(&app, &headers) {
        Ok(Some((mux, s))) => {
            app.programs.close(&mux, &s);
            StatusCode::OK.into_response()
        }
        Ok(None) => rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "Bad Request: Mcp-Session-Id required",
        ),
        Err(r) => refused(r),
    }
}
