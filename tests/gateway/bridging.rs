//! 2026-07-28 clients on an upstream that speaks only 2025-11-25 (`upstream_version:`): the
//! gateway opens the upstream session itself, answers `server/discover`, and the official SDKs
//! pinned to 2026-07-28 list and call tools, filtered per role.

use crate::common::*;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the old server saw: (method, session header, protocol version header).
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

#[derive(Clone, Default)]
struct Old {
    seen: Seen,
    inits: Arc<AtomicUsize>,
    forget: Arc<AtomicBool>,
}

/// A server of the 2025-11-25 revision only, with sessions: 2026-07-28 requests get 400, requests
/// outside its session 404. It keeps one session at a time; the gateway's tool registry reads
/// (marked by their `User-Agent`) are answered apart, so that what is counted here is the
/// bridged traffic alone.
async fn old_server(state: Old, headers: HeaderMap, body: String) -> axum::response::Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_string();
    if h("user-agent").as_deref() == Some(mcp_gateway::registry::fetch::USER_AGENT) {
        let result = match method.as_str() {
            "initialize" => {
                json!({"protocolVersion": "2025-11-25", "serverInfo": {"name": "old-server", "version": "1"},
                "capabilities": {"tools": {}}})
            }
            "tools/list" => {
                json!({"tools": [{"name": "exact_calculate", "inputSchema": {"type": "object"}},
                {"name": "statistics", "inputSchema": {"type": "object"}}]})
            }
            _ => return StatusCode::ACCEPTED.into_response(),
        };
        let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
        return ([("mcp-session-id", "registry")], axum::Json(reply)).into_response();
    }
    state.seen.lock().unwrap().push((
        method.clone(),
        h("mcp-session-id"),
        h("mcp-protocol-version"),
    ));
    if h("mcp-protocol-version").as_deref() == Some("2026-07-28") {
        return (StatusCode::BAD_REQUEST, "unsupported version").into_response();
    }
    let session = format!("old-{}", state.inits.load(Ordering::SeqCst));
    if method == "initialize" {
        let n = state.inits.fetch_add(1, Ordering::SeqCst) + 1;
        let result = json!({"protocolVersion": "2025-11-25", "serverInfo": {"name": "old-server", "version": "1"},
            "capabilities": {"tools": {}, "prompts": {}}, "instructions": "speaks 2025 only"});
        let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
        return ([("mcp-session-id", format!("old-{n}"))], axum::Json(reply)).into_response();
    }
    if state.forget.swap(false, Ordering::SeqCst)
        || h("mcp-session-id").as_deref() != Some(session.as_str())
    {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    }
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match method.as_str() {
        "tools/list" => json!({"tools": [
            {"name": "exact_calculate", "inputSchema": {"type": "object"}},
            {"name": "statistics", "inputSchema": {"type": "object"}}]}),
        "tools/call" => {
            let sum = sum_of_operands(&msg);
            json!({"content": [{"type": "text", "text": sum.to_string()}],
                   "structuredContent": {"result": sum.to_string()}, "isError": false})
        }
        _ => {
            let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}});
            return axum::Json(err).into_response();
        }
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

/// Serves `handler` (with its `state`) as an MCP endpoint, `POST /mcp`, beside `GET /health`.
async fn serve_mcp<S, F, Fut>(state: S, handler: F) -> u16
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, HeaderMap, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = axum::response::Response> + Send + 'static,
{
    serve_router(move |_| {
        axum::Router::new()
            .route(
                "/mcp",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    handler(state.clone(), headers, body)
                }),
            )
            .route("/health", axum::routing::get(|| async { "ok" }))
    })
    .await
}

/// The test servers' `exact_calculate`: the sum of the integer operands.
fn sum_of_operands(msg: &Value) -> i64 {
    msg["params"]["arguments"]["operands"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str()?.parse::<i64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn sdk_clients_pinned_to_2026_reach_a_2025_only_server() {
    let old = Old::default();
    let port = serve_mcp(old.clone(), old_server).await;
    let mut spec = GatewaySpec::new(&[port]);
    spec.scope_setting("upstream_version: 2025-11-25");
    let gw = spec.start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    let url = gw.url("/calculator/mcp");
    let seen = python_client_script("modern_client.py", &[&url, &analyst, "2026-07-28"], &[]).await;
    assert_eq!(seen["protocol"], "2026-07-28", "{seen}");
    assert_analyst_view(&seen, "python, 2026-07-28");
    let ts = node_client(&url, &analyst, "2026-07-28").await;
    assert_analyst_view(&ts, "typescript, 2026-07-28");

    // One upstream session for everyone; every request in it, in the upstream's revision.
    assert_eq!(old.inits.load(Ordering::SeqCst), 1);
    let requests = old.seen.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|(_, _, v)| v.as_deref() != Some("2026-07-28")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|(m, _, _)| m != "initialize")
            .all(|(_, s, v)| s.as_deref() == Some("old-1") && v.as_deref() == Some("2025-11-25")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|(m, _, _)| m == "server/discover"),
        "the gateway answers discover"
    );

    // server/discover from what the upstream's initialize said, cut to the caller's grants.
    let mut c = Client::new(url.clone(), Some(analyst.clone()));
    c.version = Some("2026-07-28");
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let discover = c
        .request(reqwest::Method::POST)
        .header("mcp-method", "server/discover")
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "server/discover", "params": {"_meta": meta}}))
        .send()
        .await
        .unwrap();
    let d = rpc_body(discover).await;
    assert_eq!(d["id"], 5);
    // What the scope serves (every revision, this one bridged), as -32022 would name them.
    assert_eq!(
        d["result"]["supportedVersions"],
        json!(["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]),
        "{d}"
    );
    assert_eq!(
        d["result"]["capabilities"],
        // The gateway runs tasks for the analyst's tool: the tasks extension is advertised.
        json!({"tools": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}}),
        "prompts are not the analyst's: {d}"
    );
    assert_eq!(d["result"]["instructions"], "speaks 2025 only");

    // The upstream forgets the session: that request gets a 502, the next one a new session.
    old.forget.store(true, Ordering::SeqCst);
    let call = |id: u64| {
        c.request(reqwest::Method::POST)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "exact_calculate")
            .json(
                &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                "name": "exact_calculate", "arguments": {"operands": ["2", "2"]}, "_meta": meta}}),
            )
            .send()
    };
    let lost = call(6).await.unwrap();
    assert_eq!(lost.status(), 502);
    assert_eq!(rpc_body(lost).await["error"]["code"], -32008);
    let again = rpc_body(call(7).await.unwrap()).await;
    assert_eq!(
        again["result"]["structuredContent"]["result"], "4",
        "{again}"
    );
    assert_eq!(again["result"]["resultType"], "complete", "{again}");
    assert_eq!(old.inits.load(Ordering::SeqCst), 2);
}

/// What the new server saw: (method, protocol version header, Mcp-Name header, `_meta` version).
type SeenNew = Arc<Mutex<Vec<(String, Option<String>, Option<String>, Option<String>)>>>;

/// A server of 2026-07-28 only: no `initialize`, every request with its envelope and headers.
async fn new_server(seen: SeenNew, headers: HeaderMap, body: String) -> axum::response::Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_string();
    let meta = msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
        .as_str()
        .map(str::to_string);
    seen.lock().unwrap().push((
        method.clone(),
        h("mcp-protocol-version"),
        h("mcp-name"),
        meta.clone(),
    ));
    let id = msg["id"].clone();
    let error = |code: i64, message: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
            ),
        )
            .into_response()
    };
    if h("mcp-protocol-version").as_deref() != Some("2026-07-28") {
        return error(-32022, "Unsupported protocol version");
    }
    if h("mcp-method").as_deref() != Some(method.as_str()) || meta.as_deref() != Some("2026-07-28")
    {
        return error(-32020, "Header mismatch");
    }
    let result = match method.as_str() {
        "server/discover" => json!({"resultType": "complete", "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}, "prompts": {}, "logging": {}}, "ttlMs": 0, "cacheScope": "private",
            "instructions": "speaks 2026 only",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "new-server", "version": "2"}}}),
        "tools/list" => {
            json!({"resultType": "complete", "ttlMs": 60000, "cacheScope": "public", "tools": [
            {"name": "exact_calculate", "inputSchema": {"type": "object"}},
            {"name": "statistics", "inputSchema": {"type": "object"}}]})
        }
        "tools/call" if h("mcp-name").as_deref() == msg["params"]["name"].as_str() => {
            let sum = sum_of_operands(&msg);
            json!({"resultType": "complete", "content": [{"type": "text", "text": sum.to_string()}],
                   "structuredContent": {"result": sum.to_string()}, "isError": false})
        }
        "tools/call" => return error(-32020, "Mcp-Name mismatch"),
        _ => return error(-32601, "Method not found"),
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

#[tokio::test]
async fn sdk_clients_in_2025_reach_a_2026_only_server() {
    let seen = SeenNew::default();
    let port = serve_mcp(seen.clone(), new_server).await;
    let mut spec = GatewaySpec::new(&[port]);
    spec.scope_setting("upstream_version: 2026-07-28");
    let gw = spec.start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    let url = gw.url("/calculator/mcp");
    let py = python_client_script("modern_client.py", &[&url, &analyst, "legacy"], &[]).await;
    let ts = node_client(&url, &analyst, "2025").await;
    assert_analyst_view(&py, "python, 2025");
    assert_analyst_view(&ts, "typescript, 2025");
    // The legacy transport too: what the gateway answers itself (initialize) reaches the stream.
    let sse = gw.url("/calculator/sse");
    let legacy = python_client_script("legacy_client.py", &[&sse, &analyst], &[]).await;
    assert_analyst_view(&legacy, "python sse_client, 2024-11-05");
    assert_eq!(ts["protocol"], "2025-11-25", "{ts}");
    let requests = seen.lock().unwrap().clone();
    // The upstream saw only 2026-07-28 requests, each with its envelope, and no initialize.
    assert!(
        requests
            .iter()
            .all(|(_, v, _, meta)| v.as_deref() == Some("2026-07-28")
                && meta.as_deref() == Some("2026-07-28")),
        "{requests:?}"
    );
    assert!(!requests
        .iter()
        .any(|(m, ..)| m == "initialize" || m.starts_with("notifications/")));
    assert!(requests
        .iter()
        .any(|(m, _, name, _)| m == "tools/call" && name.as_deref() == Some("exact_calculate")));
    // The initialize the gateway made, from discover, cut to the analyst's grants; no `logging`
    // (a 2025 client's `logging/setLevel` has nowhere to go on a stateless upstream).
    let mut c = Client::new(url, Some(analyst));
    let init = c.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "new-server", "{init}");
    assert_eq!(
        init["result"]["capabilities"],
        json!({"tools": {}, "tasks": {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}}),
        "{init}"
    );
    assert_eq!(init["result"]["instructions"], "speaks 2026 only");
}

/// The bundled calculator, keeping sessions, reached in 2025-11-25 by a client pinned to
/// 2026-07-28 (the same tool that the other tests reach in 2026-07-28 directly).
#[tokio::test]
async fn the_bundled_tool_reached_in_2025_by_a_2026_client() {
    let up = calculator(false).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.scope_setting("upstream_version: 2025-11-25");
    let gw = spec.start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    let url = gw.url("/calculator/mcp");
    let seen = python_client_script("modern_client.py", &[&url, &analyst, "2026-07-28"], &[]).await;
    assert_eq!(seen["protocol"], "2026-07-28", "{seen}");
    assert_analyst_view(&seen, "python, 2026-07-28");
    // Unauthenticated discovery learns nothing: 401 with the way to log in.
    let anonymous = Client::new(url, None)
        .request(reqwest::Method::POST)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("resource_metadata="));
    assert_eq!(rpc_body(anonymous).await["error"]["code"], -32001);
}

/// A 2025 server that asks its client back in the middle of a call (the official Python SDK's
/// elicitation and sampling), behind a scope bridged for 2026-07-28 clients: the official Python
/// SDK pinned to 2026-07-28 is handed the server's questions as `input_required`, answers them,
/// and gets the tool's answer built on its answers: one question, two in a row, a sampling. A
/// client that did not declare sampling gets -32021 naming it; a `requestState` the gateway did
/// not make is refused with the request's id.
#[tokio::test]
async fn a_2025_server_asking_back_reaches_2026_clients_as_input_required() {
    let up = python_server("asking_server.py", &[]).await;
    let gw = GatewaySpec::for_sdk_server(
        up.port,
        "[ask, ask_twice, draft, whoami]\n    upstream_version: 2025-11-25",
        "roles:\n  developer:\n    allow: [\"calculator/*\"]\n",
    )
    .start()
    .await;
    let dev = token("dev", &["developer"], json!({}));
    let url = gw.url("/calculator/mcp");
    let calls = [
        "ask:{\"question\":\"favourite colour?\"}",
        "ask_twice",
        "draft:{\"topic\":\"the sea\"}",
    ];
    let mut args = vec![
        url.as_str(),
        dev.as_str(),
        "2026-07-28",
        "elicitation,sampling",
    ];
    args.extend(calls);
    let seen = python_client_script("asking_client.py", &args, &[]).await;
    assert_eq!(seen["protocol"], "2026-07-28", "{seen}");
    assert_eq!(
        seen["asked"],
        json!(["favourite colour?", "first?", "second?", "sampling"]),
        "{seen}"
    );
    let text = |i: usize| seen["calls"][i]["result"]["content"][0]["text"].clone();
    assert_eq!(text(0), "you said ANSWER-1", "{seen}");
    assert_eq!(text(1), "ANSWER-2 then ANSWER-3", "{seen}");
    assert_eq!(text(2), "model wrote: a poem", "{seen}");
    // The upstream hears who calls, tenant included, as on the way through.
    let acme = token("dev", &["developer"], json!({"tenant": "acme"}));
    let args = [
        url.as_str(),
        acme.as_str(),
        "2026-07-28",
        "elicitation",
        "whoami",
    ];
    let seen = python_client_script("asking_client.py", &args, &[]).await;
    assert_eq!(
        seen["calls"][0]["result"]["content"][0]["text"], "dev/acme",
        "{seen}"
    );

    let args = [
        url.as_str(),
        dev.as_str(),
        "2026-07-28",
        "elicitation",
        calls[2],
    ];
    let seen = python_client_script("asking_client.py", &args, &[]).await;
    assert_eq!(seen["calls"][0]["code"], -32021, "{seen}");
    assert!(
        seen["calls"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("sampling"),
        "{seen}"
    );
    assert_eq!(seen["asked"], json!([]), "{seen}");

    let forged = Client::new(url, Some(dev));
    let r = forged
        .request(reqwest::Method::POST)
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "ask")
        .json(
            &json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
            "name": "ask", "arguments": {"question": "?"}, "requestState": "not-one-of-ours",
            "inputResponses": {"elicitation-1": {"action": "accept", "content": {"answer": "x"}}},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(77), json!(-32602)),
        "{v}"
    );
}
