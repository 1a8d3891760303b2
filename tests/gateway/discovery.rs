//! `discovery: search`: a scope of 40 tools lists two; a caller finds exactly its granted tools
//! and calls them through the same checks as a direct call.

use crate::common::*;
use axum::body::Bytes;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<Value>>>;

/// One of the catalog's 40 tools: most "Tool number N"; 23 and 24 about the weather.
fn definition(i: usize) -> Value {
    let description = match i {
        23 => "Reports the weather for a city".to_string(),
        24 => "Weather alerts for a region".to_string(),
        _ => format!("Tool number {i}"),
    };
    json!({"name": format!("tool_{i:02}"), "description": description,
           "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}})
}

/// A stateless MCP server with 40 tools that records every `tools/call` it receives.
async fn catalog() -> (u16, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let port = serve_router(move |_| {
        axum::Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .route(
                "/mcp",
                axum::routing::post(move |body: Bytes| {
                    let l = l.clone();
                    async move { catalog_answer(&l, &body) }
                }),
            )
    })
    .await;
    (port, log)
}

fn catalog_answer(log: &Log, body: &[u8]) -> axum::response::Response {
    let msg: Value = serde_json::from_slice(body).unwrap();
    let Some(id) = msg.get("id").cloned() else {
        return axum::http::StatusCode::ACCEPTED.into_response();
    };
    let result = match msg["method"].as_str().unwrap_or("") {
        "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                               "serverInfo": {"name": "catalog", "version": "1"}}),
        "tools/list" => json!({"tools": (0..40).map(definition).collect::<Vec<_>>()}),
        "tools/call" => {
            log.lock().unwrap().push(msg.clone());
            let name = msg["params"]["name"].as_str().unwrap_or("");
            json!({"content": [{"type": "text", "text": format!("called {name}")}], "isError": false})
        }
        _ => json!({}),
    };
    (
        [("content-type", "application/json")],
        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
    )
        .into_response()
}

async fn search(c: &Client, query: &str) -> Vec<String> {
    let r = rpc_body(
        c.post(&json!({"jsonrpc":"2.0","id":"s","method":"tools/call",
            "params":{"name":"search_tools","arguments":{"query": query, "limit": 50}}}))
            .await,
    )
    .await;
    r["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_caller_finds_exactly_its_granted_tools_and_calls_them_through_the_same_door() {
    let (port, log) = catalog().await;
    let mut spec = GatewaySpec::new(&[]);
    let tools: Vec<String> = (0..40).map(|i| format!("tool_{i:02}")).collect();
    spec.tools_yaml = format!(
        "scopes:\n  catalog:\n    upstreams:\n      - url: http://127.0.0.1:{port}/mcp\n    discovery: search\n    tools: [{}]\n",
        tools.join(", ")
    );
    spec.policy_yaml = r#"
roles:
  developer:
    allow: ["catalog/*"]
  analyst:
    allow: ["catalog/tool_07", "catalog/tool_23"]
"#
    .into();
    let gw = spec.start().await;
    let client = |user: &str, role: &str| {
        Client::new(
            gw.url("/catalog/mcp"),
            Some(token(user, &[role], json!({}))),
        )
    };
    let mut analyst = client("bob", "analyst");
    analyst.initialize().await;
    let listed = rpc_body(
        analyst
            .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}))
            .await,
    )
    .await;
    assert_eq!(tool_names(&listed), ["call_tool", "search_tools"]);

    // Exactly the 2 granted of 40, whatever the query; descriptions are searched once the
    // registry has read the definitions (at start).
    assert_eq!(search(&analyst, "").await, ["tool_07", "tool_23"]);
    let mut weather = Vec::new();
    for _ in 0..100 {
        weather = search(&analyst, "weather").await;
        if !weather.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(weather, ["tool_23"]);
    let mut dev = client("alice", "developer");
    dev.initialize().await;
    assert_eq!(search(&dev, "weather").await, ["tool_23", "tool_24"]);
    assert_eq!(search(&dev, "").await.len(), 40);

    // call_tool is the real call: the upstream gets tools/call of the tool itself.
    let r = rpc_body(
        analyst
            .post(
                &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"call_tool",
                "arguments":{"name":"tool_23","arguments":{"city":"Oslo"}}}}),
            )
            .await,
    )
    .await;
    assert_eq!(r["result"]["content"][0]["text"], "called tool_23", "{r}");
    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["params"]["name"], "tool_23");
    assert_eq!(calls[0]["params"]["arguments"], json!({"city": "Oslo"}));

    // An ungranted tool is unknown, and never reaches the server; its arguments are checked too.
    let refused = rpc_body(
        analyst
            .post(
                &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"call_tool",
                "arguments":{"name":"tool_24","arguments":{}}}}),
            )
            .await,
    )
    .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(refused["error"]["message"], "Unknown tool: tool_24");
    let invalid = rpc_body(
        analyst
            .post(
                &json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"call_tool",
                "arguments":{"name":"tool_07","arguments":{"city":7}}}}),
            )
            .await,
    )
    .await;
    assert_eq!(invalid["error"]["code"], -32602, "{invalid}");
    assert_eq!(log.lock().unwrap().len(), 1);

    // The audit rows name the real tools.
    let rows = gw
        .audit_rows_where(2, |r| r["tool"] == "tool_23" || r["tool"] == "tool_24")
        .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r["tool"] == "tool_23" && r["outcome"] == "ok"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r["tool"] == "tool_24" && r["outcome"] != "ok"),
        "{rows:?}"
    );
}
