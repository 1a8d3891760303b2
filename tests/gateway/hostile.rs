//! Hostile input at the door, proven against an upstream that records what it receives: resource
//! URIs that try to leave their grant (dot segments, escapes, double encoding, overlong UTF-8,
//! backslashes, NUL), repeated routing and `Authorization` headers, and routing headers that
//! disagree with the body on every revision.

use crate::common::recorder::{raw_exchange, Recorder};
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const POLICY: &str = r#"
roles:
  filer:
    allow: ["calculator/resource:file:///public/*"]
  developer:
    allow: ["calculator/*"]
"#;

async fn gateway() -> (Recorder, Gateway) {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.policy_yaml = POLICY.into();
    let gw = spec.start().await;
    (rec, gw)
}

fn read(id: u64, uri: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "resources/read", "params": {"uri": uri}})
}

/// The resource URIs that reached the upstream, from `params.uri` and `params.ref.uri`.
fn uris_reached(rec: &Recorder) -> Vec<String> {
    rec.received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|v| {
            let p = &v["params"];
            p["uri"]
                .as_str()
                .or_else(|| p["ref"]["uri"].as_str())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn resource_uris_are_judged_and_forwarded_in_their_normal_form() {
    let (rec, gw) = gateway().await;
    let filer = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("fay", &["filer"], json!({}))),
    );
    // Escapes from file:///public/ that name another file: refused like a resource that does not
    // exist, and named in their normal form.
    for raw in [
        "file:///public/../secret/b.txt",
        "file:///public/%2e%2e/secret/b.txt",
        "file:///public/%2E%2e/secret/b.txt",
        "FILE:///public/../secret/b.txt",
        "file:///public/./a/../../secret/b.txt",
    ] {
        let v = rpc_body(filer.post(&read(1, raw)).await).await;
        assert_eq!(v["error"]["code"], -32002, "{raw}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("public"),
            "{raw}: named in normal form: {v}"
        );
    }
    // Spellings with no safe normal form: refused as invalid params.
    for raw in [
        "file:///public/\u{0}/../secret/b.txt",
        "file:///public/%00/../secret/b.txt",
        "file:///public/..\\secret\\b.txt",
        "file:///public/%5C..%5Csecret",
        "file:///public/%252e%252e/secret/b.txt",
        "file:///public/%c0%ae%c0%ae/secret/b.txt",
        "file:///public/%2F..%2Fsecret/b.txt",
        "file:///public/%2e%2e%2F..",
        "file:///public/%zz",
        "/public/a.txt",
    ] {
        let r = filer.post(&read(2, raw)).await;
        assert_eq!(r.status(), 400, "{raw}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32602, "{raw}: {v}");
        assert_eq!(v["id"], 2, "{raw}: {v}");
    }
    // The same for subscriptions and completion references (URI templates keep their braces).
    for body in [
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": "file:///public/%2e%2e/secret/b.txt"}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "completion/complete", "params": {"ref": {"type": "ref/resource", "uri": "file:///public/../secret/{name}"}, "argument": {"name": "name", "value": "b"}}}),
    ] {
        let v = rpc_body(filer.post(&body).await).await;
        assert_eq!(v["error"]["code"], -32002, "{body}: {v}");
    }
    assert_eq!(uris_reached(&rec), Vec::<String>::new());

    // Granted reads in other spellings go on in the normal form, the rest of the body unchanged.
    let granted = [
        ("file:///public/a/../b.txt", "file:///public/b.txt"),
        ("FILE:///public/%7Euser/notes", "file:///public/~user/notes"),
        ("file:///public/b%2etxt", "file:///public/b.txt"),
        ("file:///public/plain.txt", "file:///public/plain.txt"),
    ];
    for (raw, _) in granted {
        let r = filer.post(&read(5, raw)).await;
        assert_eq!(r.status(), 200, "{raw}");
    }
    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "completion/complete", "params": {"ref": {"type": "ref/resource", "uri": "file:///public/x/../{name}"}, "argument": {"name": "name", "value": "b"}}});
    assert_eq!(filer.post(&body).await.status(), 200);
    let mut want: Vec<String> = granted.iter().map(|(_, n)| n.to_string()).collect();
    want.push("file:///public/{name}".into());
    assert_eq!(uris_reached(&rec), want);
    let first: Value = serde_json::from_slice(&rec.received()[0].body).unwrap();
    assert_eq!(first["id"], 5);
    assert_eq!(first["method"], "resources/read");
}

/// A 2026-07-28 request names its resource in `Mcp-Name` too: compared in normal form, and the
/// upstream gets body and header in normal form.
#[tokio::test]
async fn a_modern_resource_read_goes_on_with_header_and_body_normalized() {
    let (rec, gw) = gateway().await;
    let t = token("fay", &["filer"], json!({}));
    let envelope = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let body = |uri: &str| {
        json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": uri, "_meta": envelope}})
            .to_string()
    };
    let request = |name: &str, body: &str| {
        format!(
            "POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: resources/read\r\nMcp-Name: {name}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let raw = "file:///public/a/%2e%2e/b.txt";
    let answer = raw_exchange(
        gw.proc.port,
        request(raw, &body(raw)).as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let got = rec.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("mcp-name").as_deref(),
        Some("file:///public/b.txt")
    );
    let v: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(v["params"]["uri"], "file:///public/b.txt");
    assert_eq!(
        v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    // A header naming another resource than the body is refused.
    let answer = raw_exchange(
        gw.proc.port,
        request("file:///public/c.txt", &body(raw)).as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("-32020"), "{answer}");
    assert_eq!(rec.received().len(), 1);
}

/// A header the gateway judges by must not come twice: an upstream reading the other value would
/// act on something never judged.
#[tokio::test]
async fn repeated_routing_and_authorization_headers_are_refused() {
    let (rec, gw) = gateway().await;
    let t = token("dev", &["developer"], json!({}));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exact_calculate", "arguments": {}}}).to_string();
    let request = |extra: &str| {
        format!(
            "POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for (extra, status, code) in [
        (
            "MCP-Protocol-Version: 2025-06-18\r\nMCP-Protocol-Version: 2025-11-25\r\n",
            400,
            "-32600",
        ),
        (
            "Mcp-Method: tools/call\r\nMcp-Method: tools/call\r\n",
            400,
            "-32600",
        ),
        (
            "Mcp-Name: exact_calculate\r\nMcp-Name: convert_units\r\n",
            400,
            "-32600",
        ),
        (
            "Mcp-Session-Id: a\r\nMcp-Session-Id: b\r\n",
            400,
            "-32600",
        ),
        ("Content-Type: text/plain\r\n", 400, "-32600"),
        (&format!("Authorization: Bearer {t}\r\n"), 401, "-32001"),
        // Routing headers on a 2025 request must agree with the body.
        ("Mcp-Method: tools/list\r\n", 400, "-32020"),
        (
            "MCP-Protocol-Version: 2025-11-25\r\nMcp-Method: tools/call\r\nMcp-Name: convert_units\r\n",
            400,
            "-32020",
        ),
    ] {
        let answer = raw_exchange(
            gw.proc.port,
            request(extra).as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{extra:?}: {answer}"
        );
        assert!(answer.contains(code), "{extra:?}: {answer}");
        assert!(!answer.contains(&t), "{extra:?}: token echoed");
    }
    assert_eq!(rec.received().len(), 0);
    // Headers that agree with the body pass on a 2025 request.
    let answer = raw_exchange(
        gw.proc.port,
        request("MCP-Protocol-Version: 2025-11-25\r\nMcp-Method: tools/call\r\nMcp-Name: exact_calculate\r\n")
            .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(rec.received().len(), 1);
}

/// What is not a plain, bounded JSON-RPC message never reaches the upstream, and the refusal says
/// which bound it broke.
#[tokio::test]
async fn unusual_messages_are_refused_with_the_bound_they_broke() {
    let (rec, gw) = gateway().await;
    let dev = gw.developer("dan");
    let call = |args: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"exact_calculate","arguments":{args}}}}}"#
        )
    };
    let deep_meta = format!(
        r#"{{"jsonrpc":"2.0","id":4,"method":"ping","params":{{"_meta":{}{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (body, status, code, says) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"notifications/initialized"}"#.to_string(),
            400,
            -32600,
            "notification carries no id",
        ),
        (deep_meta, 400, -32600, "nesting deeper than 64 levels"),
        (
            call(&format!("{}1{}", "[".repeat(70), "]".repeat(70))),
            400,
            -32600,
            "nesting deeper than 64 levels",
        ),
        (
            call(r#"{"operator":"add","operator":"sub"}"#),
            400,
            -32600,
            "duplicate key \"operator\"",
        ),
        (call(r#"{"n":1e999}"#), 400, -32700, "number out of range"),
        (
            call(&format!(r#"{{"n":{}}}"#, "9".repeat(5000))),
            400,
            -32700,
            "number out of range",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#.to_string(),
            400,
            -32700,
            "number out of range",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.to_string(),
            400,
            -32600,
            "integer of at most 64 bits",
        ),
    ] {
        let r = dev.post_raw(body.clone()).await;
        assert_eq!(r.status(), status, "{}", &body[..body.len().min(120)]);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(message.len() < 300, "{message}");
    }
    // A compressed body is refused, whatever it holds.
    let r = dev
        .request(reqwest::Method::POST)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let v: Value = r.json().await.unwrap();
    // Refused from the headers, before the body is read: no id to name.
    assert_eq!(v["id"], Value::Null, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not compressed"));
    // Header values and the tenant claim are bounded before anything is forwarded.
    let r = dev
        .request(reqwest::Method::POST)
        .header("Content-Type", "application/json")
        .header("User-Agent", "u".repeat(9000))
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("longer than 8 KiB"));
    let big_tenant = token("dan", &["developer"], json!({"tenant": "t".repeat(300)}));
    let r = Client::new(gw.url("/calculator/mcp"), Some(big_tenant))
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(rec.received().len(), 0);
}

/// Headers cross by an allow-list, both ways, plus the configured extras.
#[tokio::test]
async fn only_allowed_headers_cross_the_gateway() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.policy_yaml = POLICY.into();
    spec.gateway_yaml
        .push_str("forward_headers:\n  request: [X-Team]\n  response: [X-Upstream-Version]\n");
    let gw = spec.start().await;
    let dev = gw.developer("dan");
    let mut r = dev
        .request(reqwest::Method::POST)
        .header("Content-Type", "application/json");
    let smuggled = [
        "X-Forwarded-Prefix",
        "X-Forwarded-Server",
        "X-Forwarded-Uri",
        "X-Forwarded-Scheme",
        "X-Forwarded-Ssl",
        "X-Forwarded-Email",
        "X-Forwarded-Access-Token",
        "X-Forwarded-Client-Cert",
        "X-Forwarded-Method",
        "X-Forwarded-Path",
        "X-Original-URL",
        "X-Rewrite-URL",
        "True-Client-IP",
        "CF-Connecting-IP",
        "X-Client-IP",
        "X-Remote-User",
        "X-Auth-Request-User",
        "Via",
        "Max-Forwards",
        "X_User_ID",
        "X_Tenant_ID",
        "Cookie",
        "Accept-Encoding",
    ];
    for name in smuggled {
        r = r.header(name, "evil");
    }
    let answer = r
        .header("X-Team", "blue")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("Mcp-Param-Region", "eu")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    for name in ["x-internal-addr", "set-cookie", "server"] {
        assert!(
            answer.headers().get(name).is_none(),
            "{name} reached the client"
        );
    }
    let got = rec.received();
    assert_eq!(got.len(), 1);
    for name in smuggled {
        assert_eq!(got[0].header(name), None, "{name} reached the upstream");
    }
    assert_eq!(got[0].header("x-user-id").as_deref(), Some("dan"));
    assert_eq!(got[0].header("x-team").as_deref(), Some("blue"));
    assert_eq!(got[0].header("mcp-param-region").as_deref(), Some("eu"));
    assert!(got[0].header("traceparent").is_some());

    // The gateway's own names cannot be added.
    let rec2 = Recorder::start().await;
    let mut bad = GatewaySpec::new(&[rec2.port]);
    bad.gateway_yaml
        .push_str("forward_headers:\n  request: [X_User_ID, Authorization, X-Forwarded-Host]\n");
    let (ok, out) = bad.check();
    assert!(!ok, "{out}");
    for field in [
        "forward_headers.request[0]",
        "forward_headers.request[1]",
        "forward_headers.request[2]",
    ] {
        assert!(out.contains(field), "{out}");
    }
}

/// The metrics listener serves `/metrics` only, and the counters of rare events are there at 0
/// before their first event.
#[tokio::test]
async fn metrics_are_served_at_metrics_only_and_rare_counters_start_at_zero() {
    let (rec, gw) = gateway().await;
    let base = gw.metrics.trim_end_matches("/metrics").to_string();
    for path in ["/", "/anything", "/metrics/x", "/admin"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let text = gw.metrics_text().await;
    for series in [
        "mcp_audit_spool_bytes 0",
        "mcp_audit_refused_total 0",
        "mcp_rate_limit_store_errors_total 0",
        "mcp_connections_refused_total{reason=\"max_connections\"} 0",
        "mcp_connections_refused_total{reason=\"max_per_address\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "{series} missing:\n{text}"
        );
    }
    let ejections = format!(
        "mcp_upstream_ejections_total{{scope=\"calculator\",upstream=\"127.0.0.1:{}\"}} 0",
        rec.port
    );
    let healthy = format!(
        "mcp_upstream_healthy{{scope=\"calculator\",upstream=\"127.0.0.1:{}\"}}",
        rec.port
    );
    let text = gw.metrics_when(&healthy, 1.0).await;
    assert!(text.contains(&ejections), "{ejections} missing:\n{text}");
}

/// Every refusal leaves an audit row naming whoever was verified: on the REST API before its
/// scope is known, and for a verified token that lacks a required OAuth scope.
#[tokio::test]
async fn every_refusal_is_audited_with_the_verified_identity() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.policy_yaml = POLICY.into();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("  audience: {AUDIENCE}\n"),
        &format!("  audience: {AUDIENCE}\n  required_scopes: [\"mcp:{{scope}}\"]\n"),
    );
    let gw = spec.start().await;
    let http = reqwest::Client::new();
    let fay = token("fay", &["filer"], json!({"scope": "mcp:calculator"}));
    let dan = token("dan", &["developer"], json!({}));
    let invoke = |t: Option<&str>, body: &str| {
        let mut r = http
            .post(gw.url("/mcp/invoke"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = t {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let mut ids = Vec::new();
    for (t, body, status) in [
        (None, r#"{"tool_name":"exact_calculate"}"#, 401),
        (
            Some("not-a-token"),
            r#"{"tool_name":"exact_calculate"}"#,
            401,
        ),
        (
            Some(fay.as_str()),
            r#"{"tool_name":"exact_calculate","arguments":{}}"#,
            404,
        ),
        (Some(fay.as_str()), r#"{"tool_name":"#, 400),
    ] {
        let r = invoke(t, body).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    let r = http
        .get(gw.url("/mcp/jobs/0123456789abcdef0123456789abcdef"))
        .bearer_auth(&fay)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    // A verified token without the scope's OAuth scope.
    let r = Client::new(gw.url("/calculator/mcp"), Some(dan))
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 403);
    ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());

    let rows = gw
        .audit_rows_where(ids.len(), |r| {
            ids.iter().any(|id| r["request_id"].as_str() == Some(id))
        })
        .await;
    let row = |n: usize| {
        rows.iter()
            .find(|r| r["request_id"].as_str() == Some(&ids[n]))
            .unwrap_or_else(|| panic!("no audit row for refusal {n}: {rows:?}"))
    };
    let want = [
        (Value::Null, "unauthenticated", 401),
        (Value::Null, "unauthenticated", 401),
        (json!("fay"), "denied", 404),
        (json!("fay"), "invalid", 400),
        (json!("fay"), "invalid", 404),
        (json!("dan"), "denied", 403),
    ];
    for (n, (user, outcome, status)) in want.into_iter().enumerate() {
        let r = row(n);
        assert_eq!(r["user_id"], user, "{n}: {r}");
        assert_eq!(r["outcome"], outcome, "{n}: {r}");
        assert_eq!(r["http_status"], status, "{n}: {r}");
    }
    assert_eq!(rec.received().len(), 0);
}

/// An upstream's JSON-RPC error at HTTP 200 keeps its code and the first line of its message; the
/// stack trace, addresses and secrets in the rest of the message and in `data` stay behind the
/// gateway (the full message is in the gateway's log, with the request id).
#[tokio::test]
async fn an_upstream_error_reaches_the_client_scrubbed() {
    let (_rec, gw) = gateway().await;
    let answer = gw
        .developer("dan")
        .call(9, "exact_calculate", json!({"crash": true}))
        .await;
    assert_eq!(answer.status(), 200);
    let request_id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = answer.text().await.unwrap();
    for leak in ["Traceback", "hunter2", "10.9.8.7", "/srv/internal", "stack"] {
        assert!(!text.contains(leak), "{leak} reached the client: {text}");
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], 9);
    assert_eq!(v["error"]["code"], -32603);
    assert_eq!(v["error"]["message"], "database unavailable");
    assert!(v["error"].get("data").is_none(), "{v}");
    let log = gw.log_with("upstream error message shortened").await;
    assert!(
        log.lines()
            .any(|l| l.contains(&request_id) && l.contains("Traceback")),
        "the full message is not in the log:\n{log}"
    );
}
