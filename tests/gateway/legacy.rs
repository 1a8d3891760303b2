//! The legacy HTTP+SSE transport (2024-11-05) on `/S/sse`: the official Python SDK's `sse_client`
//! through the gateway, the stream's ownership, and Streamable HTTP on the same path.

use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::{json, Value};

/// The SDK's legacy client lists and calls what its role allows, with the stream's `endpoint`
/// inside the scope; an upstream with sessions keeps one session for the whole stream.
#[tokio::test]
async fn python_sse_client_through_the_gateway() {
    for stateless in [true, false] {
        let up = calculator(stateless).await;
        let gw = GatewaySpec::new(&[up.port]).start().await;
        let analyst = token("bob", &["analyst"], json!({}));
        let seen = python_client_script(
            "legacy_client.py",
            &[&gw.url("/calculator/sse"), &analyst],
            &[],
        )
        .await;
        assert_eq!(seen["tools"], json!(["exact_calculate"]), "{seen}");
        assert_eq!(seen["call"]["structuredContent"]["result"], "3", "{seen}");
        assert!(
            seen["refused_error"]
                .as_str()
                .is_some_and(|e| e.contains("Unknown tool")),
            "{seen}"
        );
        let rows = gw.audit_rows(4).await;
        assert!(
            rows.iter()
                .any(|r| r["tool"] == "statistics" && r["outcome"] == "denied"),
            "{rows:?}"
        );
        assert!(
            rows.iter()
                .any(|r| r["method"] == "tools/call" && r["outcome"] == "ok"),
            "{rows:?}"
        );
    }
}

/// Reads a legacy stream into `text` until it holds `want` events (or 10 s passed).
async fn read_events(
    resp: &mut reqwest::Response,
    text: &mut String,
    want: usize,
) -> Vec<Vec<(String, String)>> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while sse_events(text).len() < want {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("events in time; so far: {text:?}"))
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    sse_events(text)
}

/// Only the stream's owner can post to it; what a refused caller sends reaches nothing; the
/// endpoint never names an upstream; GET without a token is 401 as anywhere.
#[tokio::test]
async fn a_legacy_stream_belongs_to_its_user() {
    let rec = Recorder::start().await;
    let gw = GatewaySpec::new(&[rec.port]).start().await;
    let http = reqwest::Client::new();
    let stream = |token: Option<String>| {
        let mut r = http
            .get(gw.url("/calculator/sse"))
            .header("accept", "text/event-stream");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(stream(None).await.unwrap().status(), 401);
    let alice = token("alice", &["developer"], json!({}));
    let mut resp = stream(Some(alice.clone())).await.unwrap();
    let mut text = String::new();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = read_events(&mut resp, &mut text, 1).await;
    let endpoint = events[0]
        .iter()
        .find(|(k, _)| k == "data")
        .unwrap()
        .1
        .clone();
    assert_eq!(events[0][0], ("event".into(), "endpoint".into()));
    assert!(
        endpoint.starts_with("/calculator/messages?session="),
        "{endpoint}"
    );
    let post = |token: String, body: Value| {
        http.post(gw.url(&endpoint))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
    // Another user, and a stream id that does not exist: 404, nothing forwarded.
    let mallory = token("mallory", &["developer"], json!({}));
    assert_eq!(post(mallory, list.clone()).await.unwrap().status(), 404);
    let r = http
        .post(gw.url("/calculator/messages?session=nope"))
        .bearer_auth(&alice)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(rec.received().len(), 0, "nothing reached the upstream");
    // The owner: 202, and the (filtered) answer arrives on the stream.
    let r = post(alice.clone(), list).await.unwrap();
    assert_eq!(r.status(), 202);
    let events = read_events(&mut resp, &mut text, 2).await;
    assert_eq!(events[1][0], ("event".into(), "message".into()));
    let answer: Value = serde_json::from_str(&events[1][1].1).unwrap();
    assert_eq!(answer["id"], 7);
    assert_eq!(
        tool_names(&answer),
        vec!["exact_calculate".to_string(), "statistics".to_string()]
    );
    let seen = rec.received();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].header("authorization").is_none());
    assert_eq!(seen[0].uri, "/mcp");
    // A refused call: the JSON-RPC error goes to the stream too, nothing to the upstream.
    let r = post(
        alice,
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "convert_units", "arguments": {}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let events = read_events(&mut resp, &mut text, 3).await;
    let refused: Value = serde_json::from_str(&events[2][1].1).unwrap();
    assert_eq!(refused["id"], 8);
    assert_eq!(refused["error"]["code"], -32602);
    assert_eq!(rec.received().len(), 1);
}

/// A Streamable HTTP client on `/S/sse` is not taken for a legacy one.
#[tokio::test]
async fn streamable_http_on_the_sse_path_still_works() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    let seen = python_client_script(
        "modern_client.py",
        &[&gw.url("/calculator/sse"), &analyst, "legacy"],
        &[],
    )
    .await;
    assert_eq!(seen["tools"], json!(["exact_calculate"]), "{seen}");
}

/// An upstream that speaks only the legacy transport (the official Python SDK's SSE server,
/// `transport: sse`): the SDK's `sse_client` reaches it through the gateway, its endpoint rewritten
/// into the scope and its answers filtered; a Streamable HTTP client is told to use the stream.
#[tokio::test]
async fn legacy_clients_reach_a_legacy_upstream() {
    let mut server = python_server("legacy_sse_server.py", &[]).await;
    let port = server.port;
    let mut spec = GatewaySpec::new(&[port]);
    spec.without_health_check();
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        &format!("      - url: http://127.0.0.1:{port}/mcp\n"),
        &format!("      - url: http://127.0.0.1:{port}/sse\n        transport: sse\n"),
    );
    let gw = spec.start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    let seen = python_client_script(
        "legacy_client.py",
        &[&gw.url("/calculator/sse"), &analyst],
        &[],
    )
    .await;
    server.kill();
    assert_eq!(seen["tools"], json!(["exact_calculate"]), "{seen}");
    let text = seen["call"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("\"3\""), "{seen}");
    assert!(
        seen["refused_error"]
            .as_str()
            .is_some_and(|e| e.contains("Unknown tool")),
        "{seen}"
    );
    let streamable = Client::new(gw.url("/calculator/mcp"), Some(analyst))
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(streamable.status(), 400);
    let body = rpc_body(streamable).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("legacy HTTP+SSE")),
        "{body}"
    );
}
