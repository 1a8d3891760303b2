//! The smallest upstream: reads each `POST /mcp` body and answers one fixed `tools/call` result
//! (a server that answers before reading the body makes its HTTP stack close the connection, which
//! no MCP server does). `bench/run.py` measures the proxies against it, so their own cost is not hidden behind
//! a tool's (the bundled calculator spends ~110 µs of CPU per request on the same cores).
//!
//! `/big/4k` and `/big/64k` answer results of about that size with nothing a guard looks for,
//! `/leak/4k` one of 4 KB with a card number and an e-mail address in it (the guard rows).
//! `POST /v1/traces` takes OTLP spans and answers an empty export response (the tracing rows'
//! collector, so its cost is not the gateway's).
//!
//! Usage: minimal-upstream LISTEN [THREADS]

use axum::http::header::CONTENT_TYPE;
use axum::routing::post;

#[global_allocator]
static ALLOC: alloc::Allocator = alloc::Allocator;
#[path = "../src/alloc.rs"]
mod alloc;

const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"result\":\"3.75\"}"}],"structuredContent":{"result":"3.75"},"isError":false}}"#;

const LEAK: &str = " pay with 4111 1111 1111 1111 or write to ann.smith@example.com ";

/// A `tools/call` result of about `size` bytes: plain words, with `planted` in the middle.
fn sized(size: usize, planted: &str) -> &'static str {
    let words = "the quick brown fox jumps over the lazy dog ";
    let mut text = String::with_capacity(size);
    while text.len() + words.len() < size / 2 {
        text.push_str(words);
    }
    text.push_str(planted);
    while text.len() + words.len() < size - 120 {
        text.push_str(words);
    }
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}}}"#
    );
    Box::leak(answer.into_boxed_str())
}

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
        let (kb4, kb64, leak) = (sized(4096, ""), sized(65536, ""), sized(4096, LEAK));
        let answer = |text: &'static str| {
            post(move |_body: axum::body::Bytes| async move {
                ([(CONTENT_TYPE, "application/json")], text)
            })
        };
        let app = axum::Router::new()
            .route("/mcp", answer(ANSWER))
            .route("/big/4k", answer(kb4))
            .route("/big/64k", answer(kb64))
            .route("/leak/4k", answer(leak))
            .route(
                "/v1/traces",
                post(|_body: axum::body::Bytes| async {
                    ([(CONTENT_TYPE, "application/x-protobuf")], "")
                }),
            );
        let listener = tokio::net::TcpListener::bind(listen.as_str())
            .await
            .expect("LISTEN is a free ip:port");
        axum::serve(listener, app).await.expect("serve");
    });
}
