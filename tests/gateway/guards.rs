//! Guards on arguments and results, through the real gateway: a cloud access key in the
//! arguments is blocked before any upstream sees it; card numbers and e-mail addresses in results
//! are redacted in a JSON answer and in an SSE answer whose card number is cut across two chunks;
//! the official SDK client reads the redacted result; a clean result goes out byte for byte; the
//! webhook allows, denies and, when it does not answer in time, denies.

use crate::common::*;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const CARD: &str = "4111 1111 1111 1111";
const MAIL: &str = "ann.smith@example.com";
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// An MCP server whose tools leak: `leaky_json` answers JSON with a card number and an e-mail
/// address (in the text and in `structuredContent`), `leaky_sse` an SSE event cut in two
/// chunks in the middle of the card number, `clean` a result with nothing to find. It records
/// every call's arguments.
async fn leaky() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let port = serve_router(move |_| {
        axum::Router::new().route(
            "/mcp",
            axum::routing::post(move |body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    let msg: Value = serde_json::from_slice(&body).unwrap();
                    let Some(id) = msg.get("id").cloned() else {
                        return axum::http::StatusCode::ACCEPTED.into_response();
                    };
                    let result = match msg["method"].as_str().unwrap_or("") {
                        "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "leaky", "version": "1"}}),
                        "tools/list" => {
                            let tools: Vec<Value> = ["leaky_json", "leaky_sse", "clean"]
                                .iter()
                                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                                .collect();
                            json!({ "tools": tools })
                        }
                        "tools/call" => {
                            s.lock().unwrap().push(msg["params"]["arguments"].clone());
                            match msg["params"]["name"].as_str().unwrap_or("") {
                                "leaky_sse" => {
                                    let event = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": format!("pay with {CARD} today")}]}}).to_string();
                                    let frame = format!("event: message\ndata: {event}\n\n");
                                    let cut = frame.find("1111 1111").unwrap() + 4;
                                    let (a, b) = (frame[..cut].to_string(), frame[cut..].to_string());
                                    let chunks = async_stream(a, b);
                                    return ([("content-type", "text/event-stream")], axum::body::Body::from_stream(chunks)).into_response();
                                }
                                "leaky_json" => json!({"content": [{"type": "text", "text": format!("card {CARD}, write to {MAIL}")}], "structuredContent": {"owner": MAIL, "amount": 12}}),
                                _ => json!({"content": [{"type": "text", "text": "all clear: 3.75"}]}),
                            }
                        }
                        _ => json!({}),
                    };
                    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
                }
            }),
        )
    })
    .await;
    (port, seen)
}

/// Two chunks with a pause between them, so they reach the gateway apart.
fn async_stream(
    a: String,
    b: String,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::unfold(0, move |step| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            match step {
                0 => Some((Ok(axum::body::Bytes::from(a)), 1)),
                1 => {
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    Some((Ok(axum::body::Bytes::from(b)), 2))
                }
                _ => None,
            }
        }
    })
}

/// A webhook that allows, denies or is too slow, as the call's `mode` argument says.
async fn webhook() -> u16 {
    serve_router(|_| {
        axum::Router::new().route(
            "/check",
            axum::routing::post(|axum::Json(call): axum::Json<Value>| async move {
                assert!(
                    call.get("token").is_none() && call["user"] == "ann",
                    "{call}"
                );
                match call["arguments"]["mode"].as_str().unwrap_or("allow") {
                    "deny" => axum::Json(json!({"decision": "deny", "reason": "not today"})),
                    "slow" => {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        axum::Json(json!({"decision": "allow"}))
                    }
                    _ => axum::Json(json!({"decision": "allow"})),
                }
            }),
        )
    })
    .await
}

async fn gateway(upstream: u16, hook: u16) -> Gateway {
    gateway_with(upstream, hook, "pii: audit").await
}

/// The guarded gateway with `pii: ACTION` on arguments.
async fn gateway_with(upstream: u16, hook: u16, pii_on_arguments: &str) -> Gateway {
    let mut spec = GatewaySpec::new(&[upstream]);
    spec.tools_yaml = spec.tools_yaml.replace(
        "tools: [exact_calculate, statistics]",
        "tools: [leaky_json, leaky_sse, clean]",
    );
    spec.tools_yaml.push_str(&format!(
        "guards:\n  arguments: {{ secrets: block, {pii_on_arguments} }}\n  results: {{ secrets: redact, pii: redact }}\n  custom: [ {{ name: ticket, pattern: 'TCK-[0-9]{{6}}', arguments: block, results: redact }} ]\n  webhook: {{ url: \"http://127.0.0.1:{hook}/check\", timeout: 200ms, on_error: deny }}\n"
    ));
    spec.without_health_check();
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"calculator/*\"]\n".into();
    spec.start().await
}

fn client(gw: &Gateway) -> Client {
    Client::new(
        gw.url("/calculator/mcp"),
        Some(token("ann", &["developer"], json!({}))),
    )
}

#[tokio::test]
async fn secrets_in_arguments_are_blocked_before_any_upstream_sees_them() {
    let ((port, seen), hook) = (leaky().await, webhook().await);
    let gw = gateway(port, hook).await;
    let c = client(&gw);
    let v = rpc_body(
        c.call(1, "clean", json!({"note": format!("key {AWS_KEY}")}))
            .await,
    )
    .await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(
        v["error"]["message"],
        "Blocked by guard: secrets.aws_access_key"
    );
    let v = rpc_body(c.call(2, "clean", json!({"ticket": "TCK-123456"})).await).await;
    assert_eq!(v["error"]["message"], "Blocked by guard: custom.ticket");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
    // Personal data in arguments is only counted (pii: audit): the call goes on.
    let v = rpc_body(c.call(3, "clean", json!({"to": MAIL})).await).await;
    assert!(v.get("result").is_some(), "{v}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let rows = gw.audit_rows_where(3, |r| r["tool"] == "clean").await;
    let hits: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["guard_hits"].as_str())
        .collect();
    assert!(
        hits.contains(&"secrets.aws_access_key:arguments:block:1"),
        "{rows:?}"
    );
    assert!(hits.contains(&"pii.email:arguments:audit:1"), "{rows:?}");
    let all = serde_json::to_string(&rows).unwrap();
    assert!(
        !all.contains(AWS_KEY) && !all.contains(MAIL),
        "matched text is never audited"
    );
    let m = gw.metrics_text().await;
    assert_eq!(
        metric(&m, "mcp_guard_hits_total{action=\"block\",detector=\"secrets.aws_access_key\",direction=\"arguments\",scope=\"calculator\"}"),
        1.0
    );
}

/// `redact` on arguments: the upstream gets the call with the match replaced, the rest intact.
#[tokio::test]
async fn personal_data_in_arguments_is_redacted_before_the_upstream_gets_it() {
    let ((port, seen), hook) = (leaky().await, webhook().await);
    let gw = gateway_with(port, hook, "pii: redact").await;
    let v = rpc_body(
        client(&gw)
            .call(1, "clean", json!({"to": MAIL, "n": 3}))
            .await,
    )
    .await;
    assert!(v.get("result").is_some(), "{v}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got, [json!({"to": "[REDACTED:pii.email]", "n": 3})]);
}

#[tokio::test]
async fn results_are_redacted_in_json_and_in_sse_cut_across_chunks() {
    let ((port, _), hook) = (leaky().await, webhook().await);
    let gw = gateway(port, hook).await;
    let c = client(&gw);
    let r = c.call(1, "leaky_json", json!({})).await;
    assert!(
        r.headers().get("content-length").is_some(),
        "a JSON answer keeps its framing"
    );
    let v = rpc_body(r).await;
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "card [REDACTED:pii.card], write to [REDACTED:pii.email]"
    );
    assert_eq!(
        v["result"]["structuredContent"],
        json!({"owner": "[REDACTED:pii.email]", "amount": 12})
    );
    let r = c.call(2, "leaky_sse", json!({})).await;
    let raw = r.text().await.unwrap();
    assert!(!raw.contains("1111"), "{raw}");
    assert!(raw.contains("pay with [REDACTED:pii.card] today"), "{raw}");
    // The official SDK client reads the redacted result as a valid one.
    let url = gw.url("/calculator/mcp");
    let t = token("ann", &["developer"], json!({}));
    let seen = python_client_script(
        "consent_client.py",
        &[&url, &t, "leaky_json", "{}", "legacy"],
        &[],
    )
    .await;
    assert_eq!(
        seen["call"]["structuredContent"]["owner"], "[REDACTED:pii.email]",
        "{seen}"
    );
}

#[tokio::test]
async fn a_clean_result_goes_out_byte_for_byte() {
    let ((port, _), hook) = (leaky().await, webhook().await);
    let gw = gateway(port, hook).await;
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "clean", "arguments": {}}});
    let direct = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let through = client(&gw).post(&body).await;
    // Framed as the upstream framed it, too: the same Content-Length, no chunking.
    assert_eq!(
        through
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_string()),
        Some(direct.len().to_string())
    );
    assert_eq!(through.bytes().await.unwrap(), direct);
}

#[tokio::test]
async fn the_webhook_allows_denies_and_denies_when_it_is_late() {
    let ((port, seen), hook) = (leaky().await, webhook().await);
    let gw = gateway(port, hook).await;
    let c = client(&gw);
    let ok = rpc_body(c.call(1, "clean", json!({"mode": "allow"})).await).await;
    assert!(ok.get("result").is_some(), "{ok}");
    let no = rpc_body(c.call(2, "clean", json!({"mode": "deny"})).await).await;
    assert_eq!(no["error"]["message"], "Blocked by guard: webhook", "{no}");
    let late = rpc_body(c.call(3, "clean", json!({"mode": "slow"})).await).await;
    assert_eq!(
        late["error"]["message"], "Blocked by guard: webhook",
        "{late}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the allowed call arrived"
    );
}

#[test]
fn guard_problems_are_named() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.tools_yaml.push_str("guards:\n  arguments: { secretz: block }\n  custom: [ { name: Bad-Name, pattern: 'x', results: redact }, { name: ok, pattern: '(', results: redact } ]\n  webhook: { url: ftp://x }\n");
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "guards.arguments.secretz: no such detector",
        "guards.custom[0].name: 1 to 64 of a-z, 0-9 and _",
        "guards.custom[1].pattern: not a regular expression",
        "guards.webhook.url: not an http(s) URL",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}
