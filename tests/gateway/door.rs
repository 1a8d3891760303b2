//! Default deny for everything that crosses the gateway, proven against an upstream that records
//! what it receives: methods without a grant, resources and prompts, upgrades, bodies the gateway
//! never reads, `Expect: 100-continue`, forwarding headers, upstream error pages, oversized names.

use crate::common::recorder::{raw_exchange, Recorder};
use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const POLICY: &str = r#"
roles:
  developer:
    allow: ["calculator/*"]
  analyst:
    allow: ["calculator/exact_calculate"]
  reader:
    allow: ["calculator/resource:document://public/*", "calculator/prompt:summarize"]
"#;

/// A gateway whose `calculator` scope is served by a recorder; `boom` is an allowed extra method.
async fn gateway() -> (Recorder, Gateway) {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.policy_yaml = POLICY.into();
    spec.scope_setting("allow_methods: [boom]");
    let gw = spec.start().await;
    (rec, gw)
}

fn client(gw: &Gateway, roles: &[&str]) -> Client {
    Client::new(
        gw.url("/calculator/mcp"),
        Some(token("carol", roles, json!({}))),
    )
}

fn rpc(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// What reached the upstream, as "VERB rpc-method" lines.
fn reached(rec: &Recorder) -> Vec<String> {
    rec.received()
        .iter()
        .map(|r| format!("{} {}", r.method, r.rpc_method().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_caller_without_a_grant_gets_403_for_everything() {
    let (rec, gw) = gateway().await;
    for roles in [&["nobody"][..], &[]] {
        let c = client(&gw, roles);
        let bodies = [
            rpc(
                json!(1),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
            ),
            rpc(json!(2), "ping", json!({})),
            rpc(json!(3), "resources/list", json!({})),
            rpc(
                json!(4),
                "resources/read",
                json!({"uri": "document://public/readme"}),
            ),
            rpc(json!(5), "resources/templates/list", json!({})),
            rpc(
                json!(6),
                "resources/subscribe",
                json!({"uri": "document://public/readme"}),
            ),
            rpc(json!(7), "prompts/list", json!({})),
            rpc(json!(8), "prompts/get", json!({"name": "summarize"})),
            rpc(
                json!(9),
                "completion/complete",
                json!({"ref": {"type": "ref/prompt", "name": "summarize"}, "argument": {"name": "a", "value": "b"}}),
            ),
            rpc(json!(10), "logging/setLevel", json!({"level": "debug"})),
            rpc(json!(11), "tasks/result", json!({"taskId": "t1"})),
            rpc(json!(12), "tools/list", json!({})),
            rpc(json!(13), "made/up", json!({})),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ];
        for body in &bodies {
            let r = c.post(body).await;
            assert_eq!(r.status(), 403, "{roles:?} {body}");
            assert!(r.headers().get("x-request-id").is_some());
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], -32003, "{v}");
            assert_eq!(v["error"]["message"], "Forbidden: no grant for this scope");
        }
        for verb in [Method::GET, Method::DELETE] {
            let r = c.request(verb.clone()).send().await.unwrap();
            assert_eq!(r.status(), 403, "{verb}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], -32003);
        }
    }
    assert_eq!(reached(&rec), Vec::<String>::new());
    let denials = "mcp_policy_denials_total{scope=\"calculator\"}";
    let metrics = gw.metrics_when(denials, 32.0).await;
    assert!(metric(&metrics, denials) >= 32.0, "{metrics}");
}

#[tokio::test]
async fn resources_prompts_and_completions_follow_their_grants() {
    let (rec, gw) = gateway().await;
    let reader = client(&gw, &["reader"]);
    // Lists are filtered, as JSON and as SSE.
    for id in [json!(1), json!("sse-1")] {
        let v = rpc_body(
            reader
                .post(&rpc(id.clone(), "resources/list", json!({})))
                .await,
        )
        .await;
        assert_eq!(
            v["result"]["resources"],
            json!([{"uri": "document://public/readme", "name": "readme"}]),
            "{v}"
        );
        let v = rpc_body(
            reader
                .post(&rpc(id.clone(), "resources/templates/list", json!({})))
                .await,
        )
        .await;
        assert_eq!(
            v["result"]["resourceTemplates"],
            json!([{"uriTemplate": "document://public/{name}", "name": "public"}]),
            "{v}"
        );
        let v = rpc_body(
            reader
                .post(&rpc(id.clone(), "prompts/list", json!({})))
                .await,
        )
        .await;
        assert_eq!(
            v["result"]["prompts"],
            json!([{"name": "summarize"}]),
            "{v}"
        );
        // A reader has no tool grant: the tool list comes back empty.
        let v = rpc_body(reader.post(&rpc(id, "tools/list", json!({}))).await).await;
        assert_eq!(v["result"]["tools"], json!([]), "{v}");
    }
    rec.clear();
    // Granted reads pass; the others look like things that do not exist.
    let allowed = [
        rpc(
            json!(2),
            "resources/read",
            json!({"uri": "document://public/readme"}),
        ),
        rpc(
            json!(3),
            "resources/subscribe",
            json!({"uri": "document://public/readme"}),
        ),
        rpc(json!(4), "prompts/get", json!({"name": "summarize"})),
        rpc(
            json!(5),
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "summarize"}, "argument": {"name": "a", "value": "b"}}),
        ),
        rpc(
            json!(6),
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "document://public/{name}"}, "argument": {"name": "name", "value": "r"}}),
        ),
        rpc(json!(7), "ping", json!({})),
        rpc(json!(8), "boom", json!({})),
    ];
    for body in &allowed {
        let r = reader.post(body).await;
        assert!(r.status() == 200 || r.status() == 500, "{body}");
    }
    let refused = [
        (
            rpc(
                json!(10),
                "resources/read",
                json!({"uri": "document://secret/keys"}),
            ),
            -32002,
            "Resource not found: document://secret/keys",
        ),
        (
            rpc(
                json!(11),
                "resources/subscribe",
                json!({"uri": "document://secret/keys"}),
            ),
            -32002,
            "Resource not found: document://secret/keys",
        ),
        (
            rpc(json!(12), "prompts/get", json!({"name": "leak_secrets"})),
            -32602,
            "Unknown prompt: leak_secrets",
        ),
        (
            rpc(
                json!(13),
                "completion/complete",
                json!({"ref": {"type": "ref/prompt", "name": "leak_secrets"}, "argument": {"name": "a", "value": "b"}}),
            ),
            -32602,
            "Unknown prompt: leak_secrets",
        ),
        (
            rpc(
                json!(14),
                "tools/call",
                json!({"name": "exact_calculate", "arguments": {}}),
            ),
            -32602,
            "Unknown tool: exact_calculate",
        ),
        (
            rpc(json!(15), "made/up", json!({})),
            -32601,
            "Method not found: made/up",
        ),
        (
            // The gateway runs this scope's tasks: a task that is not the caller's is unknown.
            rpc(json!(16), "tasks/get", json!({"taskId": "someone-elses"})),
            -32602,
            "Unknown task: someone-elses",
        ),
    ];
    for (body, code, message) in &refused {
        let r = reader.post(body).await;
        assert_eq!(r.status(), 200, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], *code, "{v}");
        assert_eq!(v["error"]["message"], *message, "{v}");
        assert_eq!(v["id"], body["id"]);
    }
    // A caller with only a tool grant has no resource or prompt methods at all.
    let analyst = client(&gw, &["analyst"]);
    for method in ["resources/list", "prompts/list", "resources/templates/list"] {
        let v: Value = analyst
            .post(&rpc(json!(20), method, json!({})))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["error"]["code"], -32601, "{method}: {v}");
    }
    assert_eq!(
        reached(&rec),
        [
            "POST resources/read",
            "POST resources/subscribe",
            "POST prompts/get",
            "POST completion/complete",
            "POST completion/complete",
            "POST ping",
            "POST boom"
        ]
    );
    // The refusals are audited as denials with the real reason.
    let rows = gw.audit_rows(25).await;
    let boom = rows.iter().find(|r| r["method"] == "boom").unwrap();
    assert_eq!(boom["outcome"], "upstream_error", "{boom}");
    let denied: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 9, "{rows:?}");
    // The foreign task id is answered by the gateway's task store: an error answer, not a denial.
    let task = rows.iter().find(|r| r["method"] == "tasks/get").unwrap();
    assert_eq!(
        (task["outcome"].as_str(), task["rpc_error_code"].as_i64()),
        (Some("rpc_error"), Some(-32602)),
        "{task}"
    );
    assert!(denied
        .iter()
        .any(|r| r["reason"] == "resource not granted to any of the caller's roles"));
}

#[tokio::test]
async fn upgrades_and_uninspected_bodies_never_reach_the_upstream() {
    let (rec, gw) = gateway().await;
    let t = token("carol", &["developer"], json!({}));
    let port = gw.proc.port;
    let requests = [
        format!("GET /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        format!("POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\nContent-Length: 46\r\n\r\n{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}"),
        format!("GET /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 46\r\n\r\n{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}"),
        format!("DELETE /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\n\r\n2e\r\n{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}\r\n0\r\n\r\n"),
        format!("POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\n\r\n"),
    ];
    for req in &requests {
        let answer = raw_exchange(port, req.as_bytes(), Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{req}\n---\n{answer}");
        assert!(!answer.contains("101 Switching"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("x-request-id:"),
            "{answer}"
        );
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"));
        assert_eq!(v["error"]["code"], -32600, "{v}");
    }
    // CONNECT gets the gateway's own refusal, never a tunnel.
    let answer = raw_exchange(
        port,
        format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {t}\r\n\r\n", rec.port, rec.port).as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-request-id:"),
        "{answer}"
    );
    assert!(answer.contains(r#""code":-32600"#), "{answer}");
    assert_eq!(reached(&rec), Vec::<String>::new());
}

#[tokio::test]
async fn expect_continue_refusals_are_answered_once_decided() {
    let (rec, gw) = gateway().await;
    let t = token("carol", &["analyst"], json!({}));
    let port = gw.proc.port;
    // A refused tool in a body over 64 KiB: one 100, then the refusal, nothing upstream.
    let pad = " ".repeat(70_000);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"statistics","arguments":{{}}}}{pad}}}"#
    );
    for chunked in [false, true] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let head = format!("POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nExpect: 100-continue\r\n{framing}\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let interim = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
        if chunked {
            s.write_all(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes())
                .await
                .unwrap();
        } else {
            s.write_all(body.as_bytes()).await.unwrap();
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        rest.extend_from_slice(&buf[..n]);
                        if String::from_utf8_lossy(&rest).contains("Unknown tool") {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        let answer = interim[interim.find("\r\n\r\n").unwrap() + 4..].to_string()
            + &String::from_utf8_lossy(&rest);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "chunked={chunked}: {answer}"
        );
        assert!(
            answer.contains(r#""message":"Unknown tool: statistics""#),
            "{answer}"
        );
        assert!(!answer.contains("HTTP/1.1 100"), "a second 100: {answer}");
    }
    assert_eq!(reached(&rec), Vec::<String>::new());
    // An allowed call with Expect gets exactly one 100, and the upstream never sees Expect.
    let small = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exact_calculate","arguments":{}}}"#;
    let req = format!("POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{small}", small.len());
    let answer = raw_exchange(port, req.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(answer.matches("HTTP/1.1 100").count(), 1, "{answer}");
    assert!(answer.contains("HTTP/1.1 200"), "{answer}");
    let got = rec.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("expect"), None);
    let rows = gw.audit_rows(3).await;
    assert!(rows.iter().all(|r| r["http_status"] != 100), "{rows:?}");
}

#[tokio::test]
async fn forwarding_headers_query_and_upstream_errors() {
    let (rec, gw) = gateway().await;
    let c = gw.developer("carol");
    let r = c
        .http
        .post(gw.url("/calculator/mcp?sessionId=abc&token=x"))
        .bearer_auth(c.token.as_ref().unwrap())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("Forwarded", "for=6.6.6.6")
        .header("X-Real-IP", "6.6.6.6")
        .header("X-Forwarded-User", "admin")
        .header("X-User-ID", "admin")
        .body(rpc(json!(1), "ping", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("server").is_none(), "{:?}", r.headers());
    let got = rec.received();
    assert_eq!(got.len(), 1);
    let up = &got[0];
    assert_eq!(up.uri, "/mcp");
    assert_eq!(up.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(up.header("forwarded").as_deref(), Some("for=127.0.0.1"));
    assert_eq!(up.header("x-real-ip"), None);
    assert_eq!(up.header("x-forwarded-user"), None);
    assert_eq!(up.header("x-user-id").as_deref(), Some("carol"));
    assert_eq!(up.header("authorization"), None);

    // An upstream's 500 page and its software never reach the client.
    let r = c.post(&rpc(json!(2), "boom", json!({}))).await;
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("server").is_none());
    assert!(r.headers().get("x-powered-by").is_none());
    assert!(r.headers().get("x-request-id").is_some());
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("Traceback") && !text.contains("hunter2"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], 2);
    assert_eq!(v["error"]["code"], -32008);
    assert_eq!(
        v["error"]["message"],
        "Upstream failed: the upstream answered HTTP 500"
    );
    // The operator still sees what the upstream said, in the log.
    gw.log_with("upstream error answer replaced").await;
}

/// A proxy named in `trusted_proxies` keeps its forwarding chain; the peer is appended.
#[tokio::test]
async fn a_trusted_proxy_keeps_its_forwarding_chain() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.gateway_yaml
        .push_str("trusted_proxies: [127.0.0.0/8]\n");
    let gw = spec.start().await;
    let c = gw.developer("carol");
    let r = c
        .request(Method::POST)
        .header("Content-Type", "application/json")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("Forwarded", "for=6.6.6.6")
        .header("X-Real-IP", "6.6.6.6")
        .body(rpc(json!(1), "ping", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = rec.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("x-forwarded-for").as_deref(),
        Some("6.6.6.6, 127.0.0.1")
    );
    assert_eq!(
        got[0].header("forwarded").as_deref(),
        Some("for=6.6.6.6, for=127.0.0.1")
    );
    // Headers outside the chain are still the client's own words: dropped.
    assert_eq!(got[0].header("x-real-ip"), None);
}

#[tokio::test]
async fn oversized_names_are_refused_and_records_stay_bounded() {
    let (rec, gw) = gateway().await;
    let c = gw.developer("carol");
    let huge = "x".repeat(900_000);
    let mut spec_limit = rpc(
        json!(1),
        "tools/call",
        json!({"name": huge, "arguments": {}}),
    );
    // The body cap of the test gateway is 256 KiB: stay under it with a 200 KB name.
    spec_limit["params"]["name"] = json!("x".repeat(200_000));
    let r = c.post(&spec_limit).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(
        v["error"]["message"],
        "Invalid request: name longer than 128 bytes"
    );
    let r = c
        .post(&rpc(json!(2), &"m".repeat(200_000), json!({})))
        .await;
    assert_eq!(r.status(), 400);
    // A long JSON-RPC id is echoed to the client but cut in the records.
    let long_id = "i".repeat(100_000);
    let r = c.post(&rpc(json!(long_id), "ping", json!({}))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], json!(long_id));
    let r = c.post(&rpc(json!(3), "ping", json!({}))).await;
    let last_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    gw.log_with(&last_id).await;
    let rows = gw.audit_rows(4).await;
    assert_eq!(rows.len(), 4);
    for row in &rows {
        assert!(
            row.to_string().len() < 2048,
            "unbounded audit row: {} bytes",
            row.to_string().len()
        );
    }
    let cut = rows
        .iter()
        .find(|r| {
            r["jsonrpc_id"]
                .as_str()
                .is_some_and(|i| i.contains("bytes]"))
        })
        .unwrap();
    assert!(
        cut["jsonrpc_id"]
            .as_str()
            .unwrap()
            .ends_with("…[100002 bytes]"),
        "{cut}"
    );
    for line in gw.log_text().lines() {
        assert!(
            line.len() < 4096,
            "unbounded log line: {} bytes",
            line.len()
        );
    }
    assert_eq!(reached(&rec), ["POST ping", "POST ping"]);
}

/// A request head Pingora cannot parse gets the gateway's refusal (JSON-RPC body, `X-Request-ID`),
/// not an empty 400, and leaves an audit row naming the client; nothing reaches the upstream.
#[tokio::test]
async fn unparseable_heads_get_the_gateways_refusal_and_an_audit_row() {
    let (rec, gw) = gateway().await;
    let t = token("carol", &["developer"], json!({}));
    let heads = [
        format!("POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"),
        "GET /calculator/mcp HTTP/1.1\r\nHo st: x\r\n\r\n".to_string(),
        "BLAH\r\n\r\n".to_string(),
    ];
    let mut ids = Vec::new();
    for head in &heads {
        let answer = raw_exchange(gw.proc.port, head.as_bytes(), Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{head}\n---\n{answer}");
        assert!(!answer.contains("Pingora"), "{answer}");
        let id = answer
            .lines()
            .find_map(|l| l.strip_prefix("X-Request-ID: "))
            .unwrap_or_else(|| panic!("no request id: {answer}"))
            .to_string();
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"));
        assert_eq!(v["error"]["code"], -32600);
        assert_eq!(
            v["error"]["message"],
            "Invalid request: malformed HTTP request head"
        );
        assert!(v["id"].is_null());
        ids.push(id);
    }
    let rows = gw.audit_rows(3).await;
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no audit row for {id}: {rows:?}"));
        assert_eq!(row["outcome"], "invalid");
        assert_eq!(row["http_status"], 400);
        assert_eq!(row["rpc_error_code"], -32600);
        assert!(row["scope"].is_null());
        assert!(row["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
    }
    assert!(rec.received().is_empty(), "{:?}", reached(&rec));
}

/// `initialize` advertises only what the caller may use: a caller with a tool grant alone does
/// not learn that the server has resources, prompts or completions (JSON and SSE answers).
#[tokio::test]
async fn initialize_advertises_only_granted_capabilities() {
    let (_rec, gw) = gateway().await;
    let init = |id: &str| {
        json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    };
    let cases: [(&[&str], &[&str]); 3] = [
        // Tasks (run by the gateway) come with a tool grant.
        (&["analyst"], &["logging", "tasks", "tools"]),
        (
            &["reader"],
            &["completions", "logging", "prompts", "resources"],
        ),
        (
            &["developer"],
            &[
                "completions",
                "logging",
                "prompts",
                "resources",
                "tasks",
                "tools",
            ],
        ),
    ];
    for (roles, want) in cases {
        for id in ["json-1", "sse-1"] {
            let v = rpc_body(client(&gw, roles).post(&init(id)).await).await;
            let mut caps: Vec<&str> = v["result"]["capabilities"]
                .as_object()
                .unwrap_or_else(|| panic!("{v}"))
                .keys()
                .map(String::as_str)
                .collect();
            caps.sort();
            assert_eq!(caps, want, "{roles:?} {id}: {v}");
            assert_eq!(v["result"]["serverInfo"]["name"], "recorder");
        }
    }
}
