//! The 2026-07-28 revision: the official Python SDK in that mode (and in `auto`, which now settles
//! on it) lists and calls the bundled tools through the gateway, filtered per role; routing headers
//! that disagree with the body, a request without its envelope, and non-POST verbs are refused
//! before anything reaches an upstream.

use crate::common::recorder::{raw_exchange, Recorder};
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn python_sdk_in_2026_07_28_mode_through_the_gateway() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    for mode in ["2026-07-28", "auto"] {
        let url = gw.url("/calculator/mcp");
        let seen = python_client_script("modern_client.py", &[&url, &analyst, mode], &[]).await;
        assert_eq!(seen["protocol"], "2026-07-28", "{mode}: {seen}");
        assert_analyst_view(&seen, mode);
    }
    let rows = gw.audit_rows(6).await;
    assert!(rows
        .iter()
        .any(|r| r["tool"] == "statistics" && r["outcome"] == "denied" && r["user_id"] == "bob"));
}

/// What a 2026-07-28 request looks like, with its headers.
fn modern_request(t: &str, method_header: &str, name_header: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method_header}\r\nMcp-Name: {name_header}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn call(tool: &str, meta: Value) -> Value {
    json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":tool,"arguments":{},"_meta":meta}})
}

fn envelope(version: &str) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": version,
           "io.modelcontextprotocol/clientCapabilities": {}})
}

#[tokio::test]
async fn headers_that_disagree_with_the_body_never_reach_an_upstream() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    let t = token("alice", &["developer"], json!({}));
    let cases = [
        // A router trusting the headers would see a harmless list.
        (modern_request(&t, "tools/list", "statistics", &call("statistics", envelope("2026-07-28"))), 400, -32020),
        (modern_request(&t, "tools/call", "exact_calculate", &call("statistics", envelope("2026-07-28"))), 400, -32020),
        (modern_request(&t, "tools/call", "statistics", &call("statistics", envelope("2025-11-25"))), 400, -32020),
        (modern_request(&t, "tools/call", "statistics", &call("statistics", json!({}))), 400, -32602),
        (modern_request(&t, "tools/call", "statistics", &json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"statistics"}})), 400, -32602),
        (format!("GET /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\r\n"), 405, -32600),
    ];
    for (request, status, code) in &cases {
        let answer =
            raw_exchange(gw.proc.port, request.as_bytes(), Duration::from_millis(500)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request}\n---\n{answer}"
        );
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"));
        assert_eq!(v["error"]["code"], *code, "{answer}");
    }
    assert!(rec.received().is_empty(), "{:?}", rec.received());
    // Headers that agree go through; the upstream sees the body and its routing headers.
    let ok = modern_request(
        &t,
        "tools/call",
        "statistics",
        &call("statistics", envelope("2026-07-28")),
    );
    let answer = raw_exchange(gw.proc.port, ok.as_bytes(), Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let got = rec.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("mcp-method").as_deref(), Some("tools/call"));
    assert_eq!(got[0].header("mcp-name").as_deref(), Some("statistics"));
}

/// An unsupported version is refused with what the gateway supports and what was asked for.
#[tokio::test]
async fn unsupported_versions_name_the_supported_ones() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let mut client = gw.developer("alice");
    client.version = Some("1999-01-01");
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32022);
    assert_eq!(v["error"]["data"]["requested"], "1999-01-01");
    let supported = v["error"]["data"]["supported"].as_array().unwrap();
    assert!(supported.contains(&json!("2026-07-28")), "{v}");
}

/// The bundled calculator marks its 2026-07-28 `tools/list` as `cacheScope: public`; through the
/// gateway that list is cut to the caller's grants, so it comes back private and short-lived, and
/// `server/discover` advertises only what the caller may use.
#[tokio::test]
async fn filtered_answers_are_never_publicly_cacheable() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    let mut client = Client::new(gw.url("/calculator/mcp"), Some(analyst));
    client.version = Some("2026-07-28");
    let post = |method: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": envelope("2026-07-28")}});
        client
            .request(reqwest::Method::POST)
            .header("mcp-method", method)
            .json(&body)
            .send()
    };
    let list = rpc_body(post("tools/list").await.unwrap()).await;
    assert_eq!(tool_names(&list), vec!["exact_calculate".to_string()]);
    assert_eq!(list["result"]["cacheScope"], "private", "{list}");
    assert!(
        list["result"]["ttlMs"].as_u64().unwrap() <= 60_000,
        "{list}"
    );
    let discover = rpc_body(post("server/discover").await.unwrap()).await;
    assert_eq!(
        discover["result"]["capabilities"],
        json!({"tools": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}}),
        "{discover}"
    );
    assert_eq!(discover["result"]["cacheScope"], "private", "{discover}");
}

/// 2026-07-28 answers an unknown method, and the methods the revision removed, with HTTP 404 and
/// -32601 carrying the request's id; none of them reaches the upstream.
#[tokio::test]
async fn unknown_and_removed_methods_are_404_in_2026_07_28() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    let t = token("ann", &["developer"], json!({}));
    for method in [
        "foo/bar",
        "ping",
        "initialize",
        "resources/subscribe",
        "logging/setLevel",
    ] {
        let r = reqwest::Client::new()
            .post(gw.url("/calculator/mcp"))
            .bearer_auth(&t)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method)
            .json(&json!({"jsonrpc": "2.0", "id": 101, "method": method,
                "params": {"uri": "document://public/readme", "level": "info", "_meta": envelope("2026-07-28")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], 101, "{method}: {v}");
        assert_eq!(v["error"]["code"], -32601, "{method}: {v}");
    }
    assert!(rec.received().is_empty(), "{:?}", rec.received());
}
