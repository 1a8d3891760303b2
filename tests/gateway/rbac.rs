//! Authorization: tools a caller may not call look exactly like tools that do not exist, and
//! `tools/list` shows only what the caller may call, in JSON and in SSE form.

use crate::common::*;
use serde_json::{json, Value};

async fn unknown_tool(r: reqwest::Response, id: u64, tool: &str) {
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":format!("Unknown tool: {tool}")}})
    );
}

#[tokio::test]
async fn refused_tools_look_like_missing_tools() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let analyst = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("bob", &["analyst"], json!({}))),
    );
    // Granted: reaches the tool.
    let r = analyst
        .call(
            1,
            "exact_calculate",
            json!({"operator":"add","operands":["0.1","0.2"]}),
        )
        .await;
    assert_eq!(
        rpc_body(r).await["result"]["structuredContent"]["result"],
        "0.3"
    );
    // In scope but not granted to the role.
    unknown_tool(
        analyst
            .call(2, "statistics", json!({"operation":"count","values":["1"]}))
            .await,
        2,
        "statistics",
    )
    .await;
    // Offered by the upstream but not exposed by the scope: refused even for the widest role.
    let dev = gw.developer("carol");
    unknown_tool(
        dev.call(
            3,
            "convert_units",
            json!({"value":"1","from":"m","to":"cm"}),
        )
        .await,
        3,
        "convert_units",
    )
    .await;
    // Does not exist anywhere.
    unknown_tool(dev.call(4, "rm_rf", json!({})).await, 4, "rm_rf").await;
    // No role at all: no grant in the scope, so nothing there, not even the call's tool name.
    let nobody = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("dave", &[], json!({}))),
    );
    let r = nobody
        .call(
            5,
            "exact_calculate",
            json!({"operator":"add","operands":["1","1"]}),
        )
        .await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32003);
    // The real reasons are in the log, not in the answers.
    gw.log_with("tool not granted to any of the caller's roles")
        .await;
    gw.log_with("tool not exposed by this scope").await;
    // One access line per request, with the decision.
    gw.log_with("method=tools/call tool=rm_rf upstream= status=200 outcome=denied")
        .await;
}

async fn listed(client: &Client) -> Vec<String> {
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 200);
    tool_names(&rpc_body(r).await)
}

#[tokio::test]
async fn tools_list_is_filtered_as_json() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let url = gw.url("/calculator/mcp");
    let r = Client::new(url.clone(), Some(token("bob", &["analyst"], json!({}))))
        .post(&json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}))
        .await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(tool_names(&rpc_body(r).await), vec!["exact_calculate"]);
    assert_eq!(
        listed(&Client::new(
            url.clone(),
            Some(token("carol", &["developer"], json!({})))
        ))
        .await,
        vec!["exact_calculate", "statistics"]
    );
    // A role with no grant in the scope is refused outright.
    let r = Client::new(url, Some(token("dave", &["intern"], json!({}))))
        .post(&json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 403);
}

/// Filtered results are cached per (upstream result, caller's roles): callers with different
/// roles asking in turn, with ids of every kind, each get their own cut under their own id.
#[tokio::test]
async fn repeated_lists_stay_per_caller() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let url = gw.url("/calculator/mcp");
    let analyst = Client::new(url.clone(), Some(token("bob", &["analyst"], json!({}))));
    let developer = Client::new(url, Some(token("carol", &["developer"], json!({}))));
    let ids = [json!(1), json!("a-1"), json!(2), json!("b\"2"), json!(3)];
    for (i, id) in ids.iter().enumerate() {
        for (client, expected) in [
            (&analyst, vec!["exact_calculate"]),
            (&developer, vec!["exact_calculate", "statistics"]),
        ] {
            let r = client
                .post(&json!({"jsonrpc":"2.0","id":id,"method":"tools/list"}))
                .await;
            assert_eq!(r.status(), 200);
            let v = rpc_body(r).await;
            assert_eq!(v["id"], *id, "round {i}");
            assert_eq!(v["jsonrpc"], "2.0");
            assert_eq!(tool_names(&v), expected, "round {i}");
        }
    }
}

#[tokio::test]
async fn tools_list_is_filtered_as_sse() {
    let up = calculator(false).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let mut client = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("bob", &["analyst"], json!({}))),
    );
    client.initialize().await;
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("\"statistics\"") && !text.contains("convert_units"),
        "{text}"
    );
    let events = sse_events(&text);
    let data: Vec<&String> = events
        .iter()
        .flatten()
        .filter(|(k, _)| k == "data")
        .map(|(_, v)| v)
        .collect();
    let list: Value = data
        .iter()
        .find_map(|d| {
            serde_json::from_str::<Value>(d)
                .ok()
                .filter(|v| v["id"] == 9)
        })
        .expect("response event");
    assert_eq!(tool_names(&list), vec!["exact_calculate"]);
    // Other events (ids, priming) pass unchanged.
    assert!(events.iter().flatten().any(|(k, _)| k == "id"), "{text}");
}
