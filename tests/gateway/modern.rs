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
    // The body was read for the id the answer names.
    assert_eq!(v["id"], 1, "{v}");
    let supported = v["error"]["data"]["supported"].clone();
    // `server/discover` names exactly the same revisions (not the upstream's own list, which
    // names 2024-11-05: that revision is served on the legacy transport only).
    client.version = Some("2026-07-28");
    let discover = rpc_body(
        client
            .request(reqwest::Method::POST)
            .header("mcp-method", "server/discover")
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {"_meta": envelope("2026-07-28")}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        discover["result"]["supportedVersions"], supported,
        "{discover}"
    );
    assert_eq!(
        supported,
        json!(["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"])
    );
    // A 2026-07-28 request of an unknown revision (header and envelope agree): the same answer,
    // with its id.
    client.version = None;
    let r = client
        .request(reqwest::Method::POST)
        .header("MCP-Protocol-Version", "v999.0.0")
        .header("mcp-method", "server/discover")
        .json(&json!({"jsonrpc": "2.0", "id": "three", "method": "server/discover", "params": {"_meta": envelope("v999.0.0")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!("three"), json!(-32022)),
        "{v}"
    );
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
    // With the params they had, and without (a removed method is unknown whatever it carries).
    let full = json!({"uri": "document://public/readme", "level": "info", "_meta": envelope("2026-07-28")});
    let bare = json!({"_meta": envelope("2026-07-28")});
    for (method, params) in [
        ("foo/bar", &full),
        ("ping", &full),
        ("initialize", &full),
        ("resources/subscribe", &full),
        ("resources/subscribe", &bare),
        ("resources/unsubscribe", &bare),
        ("logging/setLevel", &full),
        ("logging/setLevel", &bare),
        ("tasks/list", &bare),
        ("tasks/result", &bare),
    ] {
        let r = reqwest::Client::new()
            .post(gw.url("/calculator/mcp"))
            .bearer_auth(&t)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method)
            .json(&json!({"jsonrpc": "2.0", "id": 101, "method": method, "params": params}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {params}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], 101, "{method}: {v}");
        assert_eq!(v["error"]["code"], -32601, "{method}: {v}");
    }
    assert!(rec.received().is_empty(), "{:?}", rec.received());
}

/// `subscriptions/listen` passes without `allow_methods`, and its stream tells a caller only of
/// changes to what it can see: the upstream (the official Python SDK) announces a tool list
/// change, a prompt list change and updates of two resources; a caller granted the tool and one
/// resource, and no prompt, hears the acknowledgement, the tool list change and its resource's
/// update, each tagged with its subscription id, and nothing else.
#[tokio::test]
async fn subscriptions_listen_tells_only_of_what_the_caller_sees() {
    let up = python_server("listen_server.py", &[]).await;
    let gw = GatewaySpec::for_sdk_server(
        up.port,
        "[touch]",
        "roles:\n  watcher:\n    allow: [\"calculator/touch\", \"calculator/resource:doc://public/*\"]\n",
    )
    .start()
    .await;
    let t = token("wes", &["watcher"], json!({}));
    let post = |id: u64, method: &str, params: Value| {
        let mut params = params;
        params["_meta"] = envelope("2026-07-28");
        let mut r = reqwest::Client::new()
            .post(gw.url("/calculator/mcp"))
            .bearer_auth(&t)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method);
        if method == "tools/call" {
            r = r.header("Mcp-Name", "touch");
        }
        r.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
    };
    let listen = post(
        41,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["doc://public/a", "doc://secret/b"]}}),
    )
    .await
    .unwrap();
    assert_eq!(listen.status(), 200);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        let mut listen = listen;
        let mut buf = String::new();
        while let Ok(Some(chunk)) = listen.chunk().await {
            // SSE lines may end in CRLF (the SDK's server writes them so).
            buf.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                for line in event.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                            let _ = tx.send(v);
                        }
                    }
                }
            }
        }
    });
    let ack = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the listen stream is acknowledged")
        .unwrap();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    let touched = rpc_body(
        post(42, "tools/call", json!({"name": "touch", "arguments": {}}))
            .await
            .unwrap(),
    )
    .await;
    assert!(touched["result"].is_object(), "{touched}");
    let mut heard = Vec::new();
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        heard.push(v);
    }
    reader.abort();
    let methods: Vec<String> = heard
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["method"].as_str().unwrap_or(""),
                v["params"]["uri"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        methods,
        vec![
            "notifications/tools/list_changed ".to_string(),
            "notifications/resources/updated doc://public/a".to_string()
        ],
        "{heard:?}"
    );
    for v in &heard {
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 41,
            "{v}"
        );
    }
}
