//! The bundled MCP tool servers, each its own process (`mcp-gateway tool NAME --listen ADDR`), built
//! on the official Rust MCP SDK and served over Streamable HTTP at `/mcp`, with `GET /health`.
//! Every request but the health check must carry the gateway's `X-Gateway-Auth` secret, so only the
//! gateway can reach a tool.

pub mod calculator;
pub mod docs;
pub mod git;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

/// How a tool server answers a POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// Stateless, one `application/json` answer per request: the cheapest for tools that only
    /// compute.
    Json,
    /// Stateless, each answer a `text/event-stream` with one event: how a tool that may stream
    /// progress answers.
    Sse,
    /// MCP sessions (`Mcp-Session-Id`) and SSE answers, with the GET stream.
    Sessions,
}

/// Serves the named tool until the process is stopped.
pub async fn serve(
    name: &str,
    listen: &str,
    secret: String,
    answers: Answers,
    repos: &[String],
) -> Result<(), String> {
    let mut config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let sessions = answers == Answers::Sessions;
    config.legacy_session_mode = sessions;
    config.json_response = answers == Answers::Json;
    let sessions_manager = || LocalSessionManager::default().into();
    match name {
        "calculator" => {
            let mcp = StreamableHttpService::new(
                || Ok(calculator::Calculator::new()),
                sessions_manager(),
                config,
            );
            serve_app(name, listen, secret, sessions, mcp).await
        }
        "docs" => {
            let mcp =
                StreamableHttpService::new(|| Ok(docs::Docs::new()), sessions_manager(), config);
            serve_app(name, listen, secret, sessions, mcp).await
        }
        "git" => {
            let repos = Arc::new(git_repos(repos)?);
            let mcp = StreamableHttpService::new(
                move || Ok(git::Git::new(repos.clone())),
                sessions_manager(),
                config,
            );
            serve_app(name, listen, secret, sessions, mcp).await
        }
        other => Err(format!(
            "unknown tool {other:?} (available: calculator, docs, git)"
        )),
    }
}

/// `NAME=PATH` pairs → the repositories the git tool may read; each must open now.
fn git_repos(
    pairs: &[String],
) -> Result<std::collections::BTreeMap<String, std::path::PathBuf>, String> {
    let mut repos = std::collections::BTreeMap::new();
    for p in pairs {
        let (name, path) = p
            .split_once('=')
            .ok_or_else(|| format!("--repo {p:?}: write NAME=PATH"))?;
        let path = std::fs::canonicalize(path).map_err(|e| format!("--repo {p:?}: {e}"))?;
        git2::Repository::open(&path)
            .map_err(|e| format!("--repo {p:?}: not a git repository: {}", e.message()))?;
        repos.insert(name.to_string(), path);
    }
    if repos.is_empty() {
        return Err("the git tool needs at least one --repo NAME=PATH".into());
    }
    Ok(repos)
}

/// `/mcp` behind the gateway-secret check, and `/health`.
async fn serve_app<S>(
    name: &str,
    listen: &str,
    secret: String,
    sessions: bool,
    mcp: StreamableHttpService<S, LocalSessionManager>,
) -> Result<(), String>
where
    S: rmcp::ServerHandler + Send + 'static,
{
    let secret = Arc::new(secret);
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(
            secret,
            require_gateway,
        ))
        .route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(tool = name, %addr, sessions, "tool server listening");
    axum::serve(crate::protocol::no_delay(listener), app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

pub use crate::protocol::from_gateway;

/// Refuses any request without the gateway's secret.
async fn require_gateway(State(secret): State<Arc<String>>, req: Request, next: Next) -> Response {
    if !from_gateway(req.headers(), &secret) {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"error":"missing or wrong X-Gateway-Auth"}"#,
        )
            .into_response();
    }
    // The fields are read only when debug logging is on.
    tracing::debug!(
        user = req
            .headers()
            .get("x-user-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        method = %req.method(),
        "tool request"
    );
    next.run(req).await
}
