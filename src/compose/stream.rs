//! Streams between the servers and the client: a routed answer passes as it arrives (an event
//! stream event by event), and the client's stream merges the servers' own streams with the
//! composer's `list_changed` when a server goes down or comes back.
//!
//! A server's own request to the client (sampling, elicitation, roots) gets the id
//! `server~original`, so the client's answer (`to_server`) goes back to the server that asked,
//! with the id it gave.

use super::serve::{error, Incoming};
use super::session::MemberSession;
use super::Composed;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the client's stream looks at the servers' health, and says it is alive.
const HEALTH_EVERY: Duration = Duration::from_millis(500);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// One event's data as it goes to the client: a server's request renamed to say who asked.
fn outgoing(server: &str, data: String) -> String {
    if !data.contains("\"method\"") {
        return data;
    }
    let Ok(mut msg) = serde_json::from_str::<Value>(&data) else {
        return data;
    };
    match (msg.get("method"), msg.get("id")) {
        (Some(_), Some(id)) => {
            msg["id"] = format!("{server}~{id}").into();
            msg.to_string()
        }
        _ => data,
    }
}

/// One event, framed.
fn event(data: &str) -> String {
    format!(
        "event: message\ndata: {}\n\n",
        data.replace('\n', "\ndata: ")
    )
}

/// A server's answer on its way to the client: its status and type kept, an event stream passed
/// event by event with the server's requests renamed.
pub(super) fn relay(server: &str, resp: reqwest::Response) -> Response {
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let sse = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let server = server.to_string();
    let mut events = crate::sse::Events::default();
    let chunks = futures_util::stream::unfold(resp, |mut resp| async move {
        match resp.chunk().await {
            Ok(Some(b)) => Some((Ok::<Bytes, std::io::Error>(b), resp)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.without_url())), resp)),
        }
    });
    let body = match sse {
        false => Body::from_stream(chunks),
        true => Body::from_stream(futures_util::StreamExt::map(chunks, move |chunk| {
            chunk.map(|b| {
                let framed: String = events
                    .feed(&b)
                    .into_iter()
                    .map(|d| event(&outgoing(&server, d)))
                    .collect();
                Bytes::from(framed)
            })
        })),
    };
    let mut out = Response::new(body);
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(t) = content_type {
        out.headers_mut().insert("content-type", t);
    }
    out
}

/// The client's answer to a server's request: back to the server that asked, with its id.
pub(super) async fn to_server(
    c: &Composed,
    inc: &Incoming,
    sessions: &[MemberSession],
    mut msg: Value,
) -> Response {
    let renamed = msg["id"].as_str().and_then(|id| {
        let (server, original) = id.split_once('~')?;
        Some((
            server.to_string(),
            serde_json::from_str::<Value>(original).ok()?,
        ))
    });
    let Some((server, original)) = renamed else {
        return error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "an answer to no request of this session",
        );
    };
    msg["id"] = original;
    let resp = super::serve::forward(c, inc, sessions, &server, &msg).await;
    match resp.status().is_success() {
        true => StatusCode::ACCEPTED.into_response(),
        false => resp,
    }
}

/// The client's stream: every server's stream of the session merged, and `list_changed` whenever
/// a server goes down or comes back (its tools leave or rejoin the list).
pub(super) fn listen(c: Arc<Composed>, inc: Incoming, sessions: Vec<MemberSession>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    for (m, s, picked) in c.reachable(&sessions) {
        let Some(id) = s.id.clone() else { continue };
        let request = c
            .request(m, &picked, reqwest::Method::GET, &inc)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", s.version.as_str())
            .header("mcp-session-id", id);
        let (tx, server) = (tx.clone(), m.server.name.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = pass_stream(request, &server, &tx) => {}
                _ = tx.closed() => {}
            }
        });
    }
    tokio::spawn(watch_health(c, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    let mut out = Response::new(Body::from_stream(body));
    out.headers_mut().insert(
        "content-type",
        "text/event-stream".parse().expect("a valid header value"),
    );
    out
}

/// One server's stream into the client's, for as long as both are open.
async fn pass_stream(request: reqwest::RequestBuilder, server: &str, tx: &mpsc::Sender<Bytes>) {
    let Ok(mut resp) = request.send().await else {
        return;
    };
    if !resp.status().is_success() {
        return;
    }
    let mut events = crate::sse::Events::default();
    while let Ok(Some(chunk)) = resp.chunk().await {
        for d in events.feed(&chunk) {
            if tx
                .send(Bytes::from(event(&outgoing(server, d))))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Announces `notifications/tools/list_changed` when a server's health changes, and keeps the
/// stream alive, until the client's stream closes.
async fn watch_health(c: Arc<Composed>, tx: mpsc::Sender<Bytes>) {
    let up = |c: &Composed| -> Vec<bool> {
        c.members
            .iter()
            .map(|m| m.upstreams.any_healthy())
            .collect()
    };
    let mut was = up(&c);
    let mut quiet = Duration::ZERO;
    let changed = event(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_EVERY) => {}
            _ = tx.closed() => return,
        }
        quiet += HEALTH_EVERY;
        let now = up(&c);
        let sent = if now != was {
            was = now;
            tx.send(Bytes::from(changed.clone())).await
        } else if quiet >= KEEPALIVE_EVERY {
            tx.send(Bytes::from_static(b": keepalive\n\n")).await
        } else {
            continue;
        };
        quiet = Duration::ZERO;
        if sent.is_err() {
            return;
        }
    }
}
