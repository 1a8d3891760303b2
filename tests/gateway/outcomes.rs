//! How each way a request ends is answered, audited and counted: the cases where the answer, the
//! audit row and the metrics used to disagree.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The audit rows of the `calculator` scope whose method is `method`.
fn rows_for<'a>(rows: &'a [Value], method: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["method"] == method).collect()
}

/// The metrics page once `series` exists (the audit step runs a moment after the answer).
async fn metrics_with(gw: &Gateway, series: &str) -> String {
    for _ in 0..100 {
        let text = gw.metrics_text().await;
        if metric_or_zero(&text, series) > 0.0 {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.metrics_text().await
}

#[tokio::test]
async fn a_rate_limited_call_is_counted_and_audited_with_its_limit() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.policy_yaml = format!(
        "{POLICY}\nrate_limits:\n  - {{ name: per-minute, key: user, rate: 1/min, match: {{ tools: [exact_calculate] }} }}\n"
    );
    let gw = spec.start().await;
    let client = gw.developer("alice");
    let args = json!({"operator":"add","operands":["1","1"]});
    assert_eq!(
        client
            .call(1, "exact_calculate", args.clone())
            .await
            .status(),
        200
    );
    assert_eq!(client.call(2, "exact_calculate", args).await.status(), 429);

    let text = metrics_with(&gw, "mcp_rate_limited_total{scope=\"calculator\"}").await;
    assert_eq!(
        metric(&text, "mcp_rate_limited_total{scope=\"calculator\"}"),
        1.0,
        "{text}"
    );
    let calls = |outcome: &str| {
        metric(
            &text,
            &format!("mcp_tool_calls_total{{outcome=\"{outcome}\",scope=\"calculator\",tool=\"exact_calculate\"}}"),
        )
    };
    assert_eq!(calls("ok"), 1.0);
    assert_eq!(calls("rate_limited"), 1.0);
    let rows = gw.audit_rows(2).await;
    let limited = rows
        .iter()
        .find(|r| r["outcome"] == "rate_limited")
        .expect("a rate_limited row");
    assert_eq!(limited["http_status"], 429);
    assert_eq!(limited["rpc_error_code"], -32004);
    assert!(
        limited["reason"].as_str().unwrap().contains("per-minute"),
        "{limited}"
    );
}

/// A chunked body has no length to check up front: the refusal comes while it streams in, and
/// still names the configured limit.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_told_the_real_limit() {
    let rec = recorder::Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    let t = token("alice", &["developer"], json!({}));
    let chunk = "x".repeat(60_000);
    let mut request = format!(
        "POST /calculator/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..6 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let answer =
        recorder::raw_exchange(gw.proc.port, request.as_bytes(), Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], -32005);
    assert_eq!(
        body["error"]["message"],
        "Request body too large: the limit is 262144 bytes"
    );
    let rows = gw.audit_rows(1).await;
    assert_eq!(rows[0]["http_status"], 413);
    assert_eq!(rows[0]["outcome"], "denied");
    assert_eq!(rows[0]["rpc_error_code"], -32005);
}

/// A batch with a refused call is answered by the gateway; the audit row and the metrics say it
/// was denied, for that tool, whether the batch was small or held back because it was large.
#[tokio::test]
async fn a_refused_batch_is_audited_and_counted_as_denied() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let mut client = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("bob", &["analyst"], json!({}))),
    );
    client.version = Some("2025-03-26");
    let batch = |pad: usize| {
        json!([
            {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exact_calculate","arguments":{"operator":"add","operands":["1","2"],"pad":"p".repeat(pad)}}},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"statistics","arguments":{"operation":"count","values":[]}}}
        ])
    };
    for pad in [0, 100_000] {
        let r = client.post(&batch(pad)).await;
        assert_eq!(r.status(), 200, "pad {pad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[1]["error"]["message"], "Unknown tool: statistics");
    }
    let rows = gw.audit_rows(2).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["outcome"], "denied", "{row}");
        assert_eq!(row["http_status"], 200);
        assert_eq!(row["tool"], "statistics", "the row names the refused tool");
        assert_eq!(row["rpc_error_code"], -32602);
    }
    let text = metrics_with(&gw, "mcp_policy_denials_total{scope=\"calculator\"}").await;
    assert_eq!(
        metric(&text, "mcp_policy_denials_total{scope=\"calculator\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "mcp_tool_calls_total{outcome=\"denied\",scope=\"calculator\",tool=\"statistics\"}"
        ),
        2.0
    );
    assert_eq!(
        metric_or_zero(
            &text,
            "mcp_tool_calls_total{outcome=\"ok\",scope=\"calculator\",tool=\"exact_calculate\"}"
        ),
        0.0,
        "nothing in a refused batch ran: {text}"
    );
}

/// Closing the server-to-client stream is how a client ends it: a normal end, not an error.
#[tokio::test]
async fn a_client_closing_its_get_stream_is_a_normal_end() {
    let up = calculator(false).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let mut client = gw.developer("alice");
    client.initialize().await;
    let r = client.open_stream().await;
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(r);
    let mut row = None;
    for _ in 0..100 {
        row = gw
            .audit_file_rows()
            .into_iter()
            .find(|r| r["request_id"] == request_id.as_str());
        if row.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = row.expect("an audit row for the stream");
    assert_eq!(row["method"], "GET");
    assert_eq!(row["outcome"], "ok", "{row}");
    assert_eq!(row["http_status"], 200);
    assert!(row["rpc_error_code"].is_null(), "{row}");
    let log = gw.log_with(&request_id).await;
    for line in log.lines().filter(|l| l.contains("ERROR")) {
        assert!(
            !line.contains("Downstream") && !line.contains(&request_id),
            "a normal end logged as an error: {line}"
        );
    }
    assert_eq!(rows_for(&gw.audit_file_rows(), "GET").len(), 1);
}

/// Every answer a client gets is JSON-RPC: an upstream's plain-text 405 (GET on a stateless
/// server) and 406 (no `Accept`) keep their status and become JSON-RPC errors with the request's
/// id, audited as invalid; an upstream that forgot the client's session (it restarted) answers
/// as the gateway does for an unknown session, 404 with -32010, so the client initializes again.
#[tokio::test]
async fn upstream_refusals_reach_the_client_as_json_rpc() {
    let stateless = calculator(true).await;
    let gw = GatewaySpec::new(&[stateless.port]).start().await;
    let client = gw.developer("alice");
    let r = client.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("HTTP 405"),
        "{v}"
    );
    let r = client
        .http
        .post(&client.url)
        .bearer_auth(client.token.as_ref().unwrap())
        .header("Content-Type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 9, "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    let rows = gw
        .audit_rows_where(2, |r| r["http_status"] == 405 || r["http_status"] == 406)
        .await;
    assert!(rows.iter().all(|r| r["outcome"] == "invalid"), "{rows:?}");

    let mut with_sessions = calculator(false).await;
    let port = with_sessions.port;
    let gw = GatewaySpec::new(&[port]).start().await;
    let mut client = gw.developer("bob");
    client.initialize().await;
    let add = json!({"operator":"add","operands":["1","1"]});
    assert_eq!(
        client
            .call(2, "exact_calculate", add.clone())
            .await
            .status(),
        200
    );
    with_sessions.kill();
    let _again = tool_server_on("calculator", false, &[], port).await;
    let r = client.call(3, "exact_calculate", add).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 3, "{v}");
    assert_eq!(v["error"]["code"], -32010, "{v}");
}
