//! The gateway's own endpoints, header checks, and what an upstream sees of a request.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn health_readiness_metadata_and_404() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let http = reqwest::Client::new();
    let r = http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["scopes"]["calculator"],
        "ok"
    );
    for ep in ["sse", "mcp"] {
        let r = http
            .get(gw.url(&format!(
                "/.well-known/oauth-protected-resource/calculator/{ep}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["resource"], gw.url(&format!("/calculator/{ep}")));
        assert_eq!(v["authorization_servers"], json!([ISSUER]));
        assert_eq!(v["bearer_methods_supported"], json!(["header"]));
    }
    for path in [
        "/",
        "/nope/sse",
        "/calculator",
        "/calculator/other",
        "/.well-known/oauth-protected-resource/nope/sse",
    ] {
        let r = http
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Not found"),
            "{v}"
        );
    }
    // Both endpoint names of a scope work.
    let tok = token("alice", &["developer"], json!({}));
    for ep in ["sse", "mcp"] {
        let r = Client::new(gw.url(&format!("/calculator/{ep}")), Some(tok.clone()))
            .post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
            .await;
        assert_eq!(r.status(), 200, "{ep}");
    }
}

#[tokio::test]
async fn header_checks() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let client = gw.developer("alice");
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let r = client
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .header("Origin", "https://evil.example")
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32003);
    let r = client
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .header("Origin", "https://app.example.com")
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A page served by this very loopback address (Origin = Host) is no rebinding attack: it
    // passes without CORS. A loopback origin of another port, or a name that only starts like
    // one, does not.
    let here = format!("127.0.0.1:{}", gw.proc.port);
    for (origin, status) in [
        (format!("http://{here}"), 200),
        (format!("http://127.0.0.1:{}", gw.proc.port + 1), 403),
        (format!("http://{here}.evil.example"), 403),
        ("http://localhost".to_string(), 403),
    ] {
        let r = client
            .request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .header("Origin", &origin)
            .body(ping.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{origin}");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    let r = client
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .header("MCP-Protocol-Version", "2099-01-01")
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32022);
    assert_eq!(
        v["error"]["data"]["supported"],
        json!(["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"])
    );
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let r = client
            .request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .header("MCP-Protocol-Version", version)
            .body(ping.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{version}");
    }
    let r = client
        .request(reqwest::Method::PUT)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

/// A plain HTTP upstream that answers every POST with the headers it received.
async fn echo_upstream(delay_ms: u64) -> u16 {
    serve_router(move |_| axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route(
            "/mcp",
            axum::routing::post(move |headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                let h: serde_json::Map<String, Value> =
                    headers.iter().map(|(k, v)| (k.to_string(), Value::from(v.to_str().unwrap_or("")))).collect();
                axum::Json(json!({"jsonrpc":"2.0","id":1,"result":{"headers":h,"path":uri.to_string()}}))
            }),
        )).await
}

#[tokio::test]
async fn upstream_sees_gateway_headers_and_never_the_token() {
    let port = echo_upstream(0).await;
    let gw = GatewaySpec::new(&[port]).start().await;
    let tok = token("alice", &["developer"], json!({"tenant": "acme"}));
    let client = Client::new(gw.url("/calculator/sse?x=1"), Some(tok.clone()));
    let r = client
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .header("X-User-ID", "mallory")
        .header("X-Gateway-Auth", "guess")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let h = &v["result"]["headers"];
    // The client's query string stays at the gateway.
    assert_eq!(v["result"]["path"], "/mcp");
    assert_eq!(h["x-gateway-auth"], UPSTREAM_SECRET);
    assert_eq!(h["x-user-id"], "alice");
    assert_eq!(h["x-tenant-id"], "acme");
    assert_eq!(h["x-request-id"], request_id);
    assert!(h.get("authorization").is_none(), "{h}");
    assert!(!v.to_string().contains(&tok));
}

#[tokio::test]
async fn tool_servers_refuse_requests_without_the_gateway_secret() {
    let up = calculator(true).await;
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/mcp", up.port))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/mcp", up.port))
        .header("x-gateway-auth", "wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn slow_upstream_times_out_with_504() {
    let port = echo_upstream(3000).await;
    let mut spec = GatewaySpec::new(&[port]);
    spec.tools_yaml = edit(&spec.tools_yaml, "timeout: 10s", "timeout: 500ms");
    let gw = spec.start().await;
    let r = gw
        .developer("alice")
        .post(&json!({"jsonrpc":"2.0","id":7,"method":"ping"}))
        .await;
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32007);
    assert_eq!(v["id"], 7);
}
