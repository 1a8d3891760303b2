//! `mcp-gateway stdio`: a stdio MCP server (a program started with `npx …`, `uvx …` or any
//! command) made an upstream like any other. The gateway runs this adapter as one of its own tool
//! processes (a `command:` upstream, supervised and restarted like `spawn:`); the adapter starts
//! the program, speaks JSON-RPC lines with it on stdin/stdout, and serves Streamable HTTP with
//! sessions on its loopback port, behind the gateway's `X-Gateway-Auth` secret. Every request
//! therefore passes the gateway's door exactly as for an HTTP upstream.
//!
//! One program serves every client (`mux`): ids and progress tokens are remapped, `initialize`
//! is answered from the program's own answer, and what the program sends finds its client. When
//! the program exits, the requests in flight are answered with -32008 at once and the adapter
//! exits, so the gateway restarts both. A program that stops answering pings is stopped the same
//! way; `limits` and `sandbox` wrap it in `prlimit` and `bwrap` (`child.rs`).

mod child;
mod http;
mod mux;
mod programs;

use programs::Programs;

use std::sync::Arc;

pub use crate::protocol::STDIO_PROGRAM_VAR as PROGRAM_VAR;
use crate::protocol::{StdioProgram, StdioSession};

/// Why the adapter could not serve.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{PROGRAM_VAR} is not set or not a program: {0}")]
    Program(String),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {command:?}: {source}")]
    Start {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the program and serves it on `listen` until the program exits.
pub async fn serve(name: &str, listen: &str, secret: String) -> Result<(), StdioError> {
    let spec: StdioProgram = std::env::var(PROGRAM_VAR)
        .map_err(|e| StdioError::Program(e.to_string()))
        .and_then(|v| serde_json::from_str(&v).map_err(|e| StdioError::Program(e.to_string())))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StdioError::Listen {
            listen: listen.to_string(),
            source,
        })?;
    let command = spec.command.join(" ");
    let program = child::Program {
        command: spec.command,
        env: spec.env.into_iter().collect(),
        cwd: spec.cwd,
        name: name.to_string(),
        memory_mb: spec.memory_mb,
        open_files: spec.open_files,
        sandbox: spec.sandbox,
        ping: spec
            .ping_ms
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis),
    };
    let secret = Arc::new(secret);
    if spec.session == StdioSession::PerClient {
        // Processes come and go with sessions; the adapter serves until it is stopped.
        let idle = std::time::Duration::from_millis(spec.idle_timeout_ms.unwrap_or(300_000));
        let per_client = programs::PerClient::new(program, spec.max_processes.unwrap_or(16), idle);
        let app = http::router(Arc::new(Programs::PerClient(per_client)), secret);
        let _ = axum::serve(crate::protocol::no_delay(listener), app).await;
        return Ok(());
    }
    let (to_child, from_mux) = tokio::sync::mpsc::unbounded_channel();
    let mux = Arc::new(mux::Mux::new(to_child));
    let app = http::router(Arc::new(Programs::Shared(mux.clone())), secret);
    let server = tokio::spawn(async move {
        let _ = axum::serve(crate::protocol::no_delay(listener), app).await;
    });
    let ended = child::run(program, mux, from_mux).await;
    // Let the error answers of the requests in flight reach the gateway before exiting.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.abort();
    match ended {
        Ok(_) => Ok(()),
        Err(source) => Err(StdioError::Start { command, source }),
    }
}
