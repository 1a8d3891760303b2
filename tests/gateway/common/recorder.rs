//! A test upstream that records everything it receives (method, path with query, headers, body) and
//! answers like a small MCP server with tools, resources, templates and prompts. Tests use it to
//! prove what reaches an upstream, and what never does.
//!
//! Answers: the list methods return two entries each, a tool call a text result, one a test grants and one it does not; a
//! request whose JSON-RPC id is a string starting with `sse` is answered as an SSE stream; the
//! method `boom` answers 500 with a stack trace and the headers a careless server sends; the tool
//! call with the argument `crash: true` answers a JSON-RPC error at HTTP 200 whose message and `data` carry a stack trace; JSON
//! answers carry `Access-Control-Allow-Origin: *`, `X-Internal-Addr` and `Set-Cookie`, as a careless
//! server's do. `initialize` opens
//! a session (`recorder-session-1`), and every answer in a session names it again.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let all: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        (!all.is_empty()).then(|| all.join(", "))
    }
    /// The JSON-RPC method of the body, if any.
    pub fn rpc_method(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["method"].as_str().map(str::to_string))
    }
}

/// The recorder's port and what it has received so far (health checks excluded).
pub struct Recorder {
    pub port: u16,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    pub async fn start() -> Self {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let l = log.clone();
        let port = super::serve_router(move |_| {
            axum::Router::new()
                .route("/health", axum::routing::get(|| async { "ok" }))
                .fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let l = l.clone();
                        async move {
                            let session = headers
                                .get("mcp-session-id")
                                .map(|v| v.to_str().unwrap().to_string());
                            l.lock().unwrap().push(Received {
                                method: method.to_string(),
                                uri: uri.to_string(),
                                headers,
                                body: body.to_vec(),
                            });
                            answer(&method, &body, session)
                        }
                    },
                )
        })
        .await;
        Self { port, log }
    }

    /// What reached the upstream, except the gateway's own reads of its tools (the tool registry,
    /// marked by its `User-Agent`; no test client sends that).
    pub fn received(&self) -> Vec<Received> {
        let registry = mcp_gateway::registry::fetch::USER_AGENT;
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.headers.get("user-agent").and_then(|v| v.to_str().ok()) != Some(registry))
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

fn answer(method: &Method, body: &[u8], session: Option<String>) -> Response {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let rpc_method = msg["method"].as_str().unwrap_or("");
    let result = match rpc_method {
        "boom" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [
                    ("server", "Werkzeug/3.0.1 Python/3.11"),
                    ("x-powered-by", "Express"),
                    ("content-type", "text/plain"),
                ],
                "Traceback (most recent call last):\n  File \"/srv/internal/app.py\", line 42\nKeyError: 'db_password=hunter2'\n",
            )
                .into_response();
        }
        "initialize" => json!({
            "protocolVersion": "2025-06-18",
            "serverInfo": {"name": "recorder", "version": "1"},
            "capabilities": {"tools": {}, "resources": {"subscribe": true}, "prompts": {},
                             "completions": {}, "logging": {}}}),
        "tools/list" => json!({"tools": [
            {"name": "exact_calculate", "inputSchema": {"type": "object"}},
            {"name": "statistics", "inputSchema": {"type": "object"}}]}),
        "resources/list" => json!({"resources": [
            {"uri": "document://public/readme", "name": "readme"},
            {"uri": "document://secret/keys", "name": "keys"}]}),
        "resources/templates/list" => json!({"resourceTemplates": [
            {"uriTemplate": "document://public/{name}", "name": "public"},
            {"uriTemplate": "document://secret/{name}", "name": "secret"}]}),
        "prompts/list" => json!({"prompts": [
            {"name": "summarize"}, {"name": "leak_secrets"}]}),
        "tools/call" => {
            json!({"content": [{"type": "text", "text": "recorded"}], "isError": false})
        }
        other => json!({"echo": other}),
    };
    let crash = rpc_method == "tools/call" && msg["params"]["arguments"]["crash"] == true;
    let reply = if crash {
        json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": -32603,
            "message": "database unavailable\nTraceback (most recent call last):\n  File \"/srv/internal/db.py\", line 7\nConnectionError: 10.9.8.7:5432 password=hunter2",
            "data": {"stack": "/srv/internal/db.py:7", "dsn": "postgres://app:hunter2@10.9.8.7/app"}}})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "result": result})
    }
    .to_string();
    // Like a stateful server: a session from `initialize` on, named again on every answer in it.
    let session = match rpc_method {
        "initialize" => Some("recorder-session-1".to_string()),
        _ => session,
    };
    let sse = id.as_str().is_some_and(|s| s.starts_with("sse"));
    let mut response = if sse {
        (
            [("content-type", "text/event-stream"), ("server", "uvicorn")],
            format!("event: message\ndata: {reply}\n\n"),
        )
            .into_response()
    } else {
        (
            [
                ("content-type", "application/json"),
                ("server", "uvicorn"),
                ("access-control-allow-origin", "*"),
                ("x-internal-addr", "10.9.8.7:5432"),
                ("set-cookie", "upstream=1"),
            ],
            reply,
        )
            .into_response()
    };
    if let Some(id) = session {
        response
            .headers_mut()
            .insert("mcp-session-id", id.parse().unwrap());
    }
    response
}

/// Sends raw bytes on a fresh connection and returns everything read until the server closes or
/// `wait` passes without a byte.
pub async fn raw_exchange(port: u16, request: &[u8], wait: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
