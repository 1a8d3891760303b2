//! `mcp-gateway bridge`: a stdio MCP server for clients that only launch commands (Claude Desktop,
//! editors, scripts). JSON-RPC lines from stdin are POSTed to a gateway endpoint (Streamable HTTP)
//! with the caller's token; every JSON-RPC message that comes back (a JSON answer, each event of
//! an SSE answer, the session's server-to-client stream) goes to stdout as one line. Nothing else
//! is written to stdout; logs go to stderr.
//!
//! The token is a fixed `--token`, or the output of `--token-command`, run again shortly before the
//! token expires and once after a 401 (the refused message is then sent again). When the gateway
//! says the session is gone (404), the bridge initializes a new one with the client's own
//! `initialize` and sends the message again, so a gateway or upstream restart does not end the
//! client's session. When stdin closes, the bridge ends its session (DELETE) and exits.

pub mod token;

use crate::protocol::method;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use token::Token;
use tokio::sync::mpsc;

/// How the bridge reaches the gateway.
pub struct BridgeOptions {
    pub endpoint: String,
    pub token: token::Source,
}

/// What the bridge learned of its session.
#[derive(Default)]
struct Session {
    id: Option<String>,
    version: Option<String>,
    /// The client's `initialize` and whether it was answered, to open a new session unasked.
    initialize: Option<Value>,
    /// The server-to-client stream's task, while one is open.
    stream: Option<tokio::task::JoinHandle<()>>,
}

struct Bridge {
    http: reqwest::Client,
    endpoint: String,
    token: Token,
    session: Mutex<Session>,
    out: mpsc::UnboundedSender<String>,
}

/// The gateway's code for a refused token, passed on so a client can tell it from a failure.
const UNAUTHENTICATED: i32 = -32001;
const INTERNAL_ERROR: i32 = -32603;

/// Runs the bridge until stdin closes.
pub async fn run(options: BridgeOptions) -> Result<(), reqwest::Error> {
    let token = Token::new(options.token);
    let (out, lines) = mpsc::unbounded_channel::<String>();
    let bridge = Arc::new(Bridge {
        http: reqwest::Client::builder().build()?,
        endpoint: options.endpoint,
        token,
        session: Mutex::new(Session::default()),
        out,
    });
    // One writer: lines from concurrent answers never interleave.
    let writer = tokio::spawn(crate::lines::write(lines, tokio::io::stdout()));
    let mut stdin = crate::lines::Reader::new(tokio::io::stdin());
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(line) = stdin.next().await {
        let message: Value = match line {
            crate::lines::Line::Message(v) => v,
            crate::lines::Line::NotJson(_) => {
                tracing::warn!("ignoring a stdin line that is not JSON");
                continue;
            }
            crate::lines::Line::TooLong => {
                tracing::warn!(
                    limit = crate::lines::MAX_LINE,
                    "ignoring a stdin line over the limit"
                );
                continue;
            }
        };
        let b = bridge.clone();
        // Nothing can be sent before the session exists, and notifications (`initialized`,
        // cancellations) keep their order; requests run side by side.
        if message["method"] == method::INITIALIZE || message.get("id").is_none() {
            b.deliver(message).await;
        } else {
            inflight.spawn(async move { b.deliver(message).await });
        }
    }
    while inflight.join_next().await.is_some() {}
    bridge.end_session().await;
    drop(bridge);
    let _ = writer.await;
    Ok(())
}

impl Bridge {
    /// Sends one message from the client and writes what comes back.
    async fn deliver(self: &Arc<Self>, message: Value) {
        if message["method"] == method::INITIALIZE {
            self.lock().initialize = Some(message.clone());
        }
        let mut retried_auth = false;
        let mut reopened = false;
        loop {
            match self.post(&message).await {
                Ok(Reply::Done) => break,
                Ok(Reply::Unauthorized(_)) if !retried_auth && self.token.refreshable() => {
                    retried_auth = true;
                    self.token.refresh().await;
                }
                Ok(Reply::SessionGone) if !reopened && message["method"] != method::INITIALIZE => {
                    reopened = true;
                    if !self.reopen().await {
                        self.fail(
                            &message,
                            INTERNAL_ERROR,
                            "the gateway session ended and could not be reopened",
                        );
                        break;
                    }
                }
                Ok(Reply::Unauthorized(reason)) => {
                    // The client shows this message: say why, and where a token did not come.
                    let why = match self.token.failure() {
                        Some(f) => format!("the gateway refused the token ({reason}): {f}"),
                        None => format!("the gateway refused the token ({reason})"),
                    };
                    self.fail(&message, UNAUTHENTICATED, &why);
                    break;
                }
                Ok(Reply::SessionGone) => {
                    self.fail(&message, INTERNAL_ERROR, "the gateway session ended");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "gateway unreachable");
                    let why = format!("the gateway cannot be reached at {}", self.endpoint);
                    self.fail(&message, INTERNAL_ERROR, &why);
                    break;
                }
            }
        }
        if message["method"] == method::INITIALIZED {
            self.open_stream();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request to the endpoint with the token and, when known, the session's headers.
    async fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        self.http
            .request(method, &self.endpoint)
            .bearer_auth(self.token.get().await)
            .headers(self.session_headers())
    }

    /// A JSON-RPC message POSTed as Streamable HTTP wants it.
    async fn post_json(&self, message: &Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST)
            .await
            .headers(routing_headers(message))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(message.to_string())
    }

    /// One POST; the answer's messages are written as they arrive.
    async fn post(&self, message: &Value) -> Result<Reply, reqwest::Error> {
        let mut resp = self.post_json(message).await.send().await?;
        match resp.status().as_u16() {
            401 => {
                let body: Value = resp.json().await.unwrap_or_default();
                let reason = body["error"]["message"]
                    .as_str()
                    .unwrap_or("401 Unauthorized");
                return Ok(Reply::Unauthorized(crate::logs::clip(reason).into_owned()));
            }
            404 if self.lock().id.is_some() => return Ok(Reply::SessionGone),
            _ => {}
        }
        if let Some(id) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.lock().id = Some(id.to_string());
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if is_sse {
            let mut events = crate::sse::Events::default();
            while let Some(chunk) = resp.chunk().await? {
                for data in events.feed(&chunk) {
                    self.emit(data);
                }
            }
        } else {
            let body = resp.bytes().await?;
            if !body.is_empty() {
                self.emit(String::from_utf8_lossy(&body).into_owned());
            }
        }
        Ok(Reply::Done)
    }

    /// Writes one message to stdout, noting the protocol version an `initialize` answer names.
    fn emit(&self, text: String) {
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!("the gateway sent something that is not JSON; dropped");
            return;
        };
        if let Some(version) = v["result"]["protocolVersion"].as_str() {
            if v["result"]["serverInfo"].is_object() {
                self.lock().version = Some(version.to_string());
            }
        }
        let _ = self.out.send(v.to_string());
    }

    /// Answers a request the gateway could not take with a JSON-RPC error, so the client is not
    /// left waiting (notifications and answers get nothing).
    fn fail(&self, message: &Value, code: i32, why: &str) {
        if message.get("id").is_none() || message.get("method").is_none() {
            return;
        }
        let error = serde_json::json!({"jsonrpc": "2.0", "id": message["id"],
            "error": {"code": code, "message": why}});
        let _ = self.out.send(error.to_string());
    }

    /// Opens a new session with the client's own `initialize`; its answer is not shown again.
    async fn reopen(&self) -> bool {
        let init = {
            let mut s = self.lock();
            s.id = None;
            if let Some(t) = s.stream.take() {
                t.abort();
            }
            s.initialize.clone()
        };
        let Some(init) = init else { return false };
        let Ok(resp) = self.post_json(&init).await.send().await else {
            return false;
        };
        let id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if !resp.status().is_success() {
            return false;
        }
        let _ = resp.bytes().await;
        self.lock().id = id;
        let done = serde_json::json!({"jsonrpc": "2.0", "method": method::INITIALIZED});
        let _ = self.post_json(&done).await.send().await;
        tracing::info!("gateway session reopened");
        true
    }

    fn session_headers(&self) -> reqwest::header::HeaderMap {
        let s = self.lock();
        let mut h = reqwest::header::HeaderMap::new();
        for (name, value) in [
            ("mcp-session-id", s.id.as_deref()),
            ("mcp-protocol-version", s.version.as_deref()),
        ] {
            if let Some(v) = value.and_then(|v| v.parse().ok()) {
                h.insert(name, v);
            }
        }
        h
    }

    /// The session's server-to-client stream (sampling, elicitation, notifications), when the
    /// session has one; its messages go to stdout like any other.
    fn open_stream(self: &Arc<Self>) {
        let mut s = self.lock();
        if s.id.is_none() || s.stream.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let b = self.clone();
        s.stream = Some(tokio::spawn(async move {
            let req = b.request(reqwest::Method::GET).await;
            let Ok(mut resp) = req.header("Accept", "text/event-stream").send().await else {
                return;
            };
            if !resp.status().is_success() {
                return;
            }
            let mut events = crate::sse::Events::default();
            while let Ok(Some(chunk)) = resp.chunk().await {
                for data in events.feed(&chunk) {
                    b.emit(data);
                }
            }
        }));
    }

    /// Ends the gateway session when the client is done.
    async fn end_session(&self) {
        let stream = self.lock().stream.take();
        if let Some(t) = stream {
            t.abort();
            let _ = t.await;
        }
        if self.lock().id.is_none() {
            return;
        }
        let _ = self.request(reqwest::Method::DELETE).await.send().await;
    }
}

/// A 2026-07-28 request (its `params._meta` names its revision) says on the wire what its body
/// says: `MCP-Protocol-Version` from the envelope (whatever a session said), `Mcp-Method`, and
/// `Mcp-Name` for the methods that name a tool, prompt or resource. Nothing for other messages.
fn routing_headers(message: &Value) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    let params = &message["params"];
    let Some(version) = params["_meta"][crate::protocol::META_PROTOCOL_VERSION].as_str() else {
        return h;
    };
    let Some(m) = message["method"].as_str() else {
        return h;
    };
    let name = match m {
        method::TOOLS_CALL | method::PROMPTS_GET => params["name"].as_str(),
        method::RESOURCES_READ => params["uri"].as_str(),
        _ => None,
    };
    for (key, value) in [
        ("mcp-protocol-version", Some(version.to_string())),
        ("mcp-method", Some(crate::protocol::encode_header_value(m))),
        ("mcp-name", name.map(crate::protocol::encode_header_value)),
    ] {
        if let Some(v) = value.and_then(|v| v.parse().ok()) {
            h.insert(key, v);
        }
    }
    h
}

/// How a POST ended.
enum Reply {
    Done,
    /// 401, with the gateway's reason (its JSON-RPC error message).
    Unauthorized(String),
    SessionGone,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_2026_request_names_its_revision_method_and_target() {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "exact_calculate", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        let h = routing_headers(&call);
        assert_eq!(h["mcp-protocol-version"], "2026-07-28");
        assert_eq!(h["mcp-method"], "tools/call");
        assert_eq!(h["mcp-name"], "exact_calculate");
        let read = json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read",
            "params": {"uri": "file:///tmp/ä b", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        assert_eq!(
            routing_headers(&read)["mcp-name"],
            "=?base64?ZmlsZTovLy90bXAvw6QgYg==?="
        );
        // A 2025 request has no envelope: no routing headers (the session's version stands).
        let old =
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x"}});
        assert!(routing_headers(&old).is_empty());
    }
}
