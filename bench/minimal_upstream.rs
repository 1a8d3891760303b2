//! The smallest upstream: reads each `POST /mcp` body and answers one fixed `tools/call` result
//! (a server that answers before reading the body makes its HTTP stack close the connection, which
//! no MCP server does). `bench/run.py` measures the proxies against it, so their own cost is not hidden behind
//! a tool's (the bundled calculator spends ~110 µs of CPU per request on the same cores).
//!
//! Usage: minimal-upstream LISTEN [THREADS]

use axum::http::header::CONTENT_TYPE;
use axum::routing::post;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"result\":\"3.75\"}"}],"structuredContent":{"result":"3.75"},"isError":false}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(listen) = args.get(1) else {
        eprintln!("usage: minimal-upstream LISTEN [THREADS]");
        std::process::exit(2);
    };
    let threads = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/mcp",
            post(|_body: axum::body::Bytes| async {
                ([(CONTENT_TYPE, "application/json")], ANSWER)
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen.as_str())
            .await
            .expect("LISTEN is a free ip:port");
        axum::serve(listener, app).await.expect("serve");
    });
}
