//! The body: parsed once, on both sides of Pingora's 64 KiB early buffer and at the cap; malformed
//! and oversized bodies refused with the right codes.

use crate::common::*;
use serde_json::{json, Value};

/// A `statistics count` call whose body is exactly `size` bytes.
fn call_of_size(tool: &str, size: usize) -> String {
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"operation":"count","values":["#
    );
    let tail = "]}}}";
    let mut body = head;
    let mut n = 0;
    while body.len() + tail.len() + 4 <= size {
        if n > 0 {
            body.push(',');
        }
        body.push_str("\"1\"");
        n += 1;
    }
    // Pad with spaces (valid JSON whitespace) to the exact size.
    while body.len() + tail.len() < size {
        body.push(' ');
    }
    body.push_str(tail);
    assert_eq!(body.len(), size);
    body
}

fn count_in(body: &str) -> usize {
    body.matches("\"1\"").count()
}

#[tokio::test]
async fn bodies_on_both_sides_of_64k_and_at_the_cap() {
    let up = calculator(true).await;
    let spec = GatewaySpec::new(&[up.port]);
    let gw = spec.start().await;
    let client = gw.developer("alice");
    let cap = 262144;
    for size in [64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 200_000, cap] {
        let body = call_of_size("statistics", size);
        let r = client.post_raw(body.clone()).await;
        assert_eq!(r.status(), 200, "size {size}");
        let v = rpc_body(r).await;
        assert_eq!(
            v["result"]["structuredContent"]["result"],
            count_in(&body).to_string(),
            "size {size}: {v}"
        );
    }
    // One byte over the cap: 413 before anything is read or forwarded.
    let r = client.post_raw(call_of_size("statistics", cap + 1)).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32005);
    assert_eq!(
        v["error"]["message"],
        format!("Request body too large: the limit is {cap} bytes")
    );
    // A denied tool in a large body is refused exactly as a small one.
    for size in [1000, 100_000] {
        let r = client.post_raw(call_of_size("convert_units", size)).await;
        assert_eq!(r.status(), 200, "size {size}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32602, "size {size}");
        assert_eq!(v["error"]["message"], "Unknown tool: convert_units");
        assert_eq!(v["id"], 3);
    }
}

#[tokio::test]
async fn chunked_body_over_the_cap_is_refused() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let client = gw.developer("alice");
    // A streamed body has no Content-Length: the cap is enforced while it is held.
    let body = call_of_size("statistics", 300_000);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .as_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = client.post_raw(stream).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32005);
    // A streamed body under the cap goes through.
    let body = call_of_size("statistics", 100_000);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .as_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = client
        .post_raw(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        rpc_body(r).await["result"]["structuredContent"]["result"],
        count_in(&body).to_string()
    );
}

#[tokio::test]
async fn malformed_bodies() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let client = gw.developer("alice");
    let cases: &[(&str, u16, i64)] = &[
        ("{not json", 400, -32700),
        (r#"{"jsonrpc":"2.0","id":1,"method":"ping""#, 400, -32700),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, 400, -32600),
        (r#"{"id":1}"#, 400, -32600),
        ("[]", 400, -32600),
        ("42", 400, -32600),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            400,
            -32600,
        ),
        // The tool is named once, as a string, in an object: anything else could make the tool
        // read another name than the one the gateway checked.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["exact_calculate"]}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exact_calculate","name":"statistics"}}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["exact_calculate"]}}"#,
            400,
            -32600,
        ),
    ];
    for (body, status, code) in cases {
        let r = client.post_raw(body.to_string()).await;
        assert_eq!(r.status(), *status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], *code, "{body}: {v}");
        assert_eq!(v["jsonrpc"], "2.0");
    }
    // Not JSON at all.
    let r = client
        .request(reqwest::Method::POST)
        .header("Content-Type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test]
async fn batches_only_in_2025_03_26() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let mut client = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("bob", &["analyst"], json!({}))),
    );
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exact_calculate","arguments":{"operator":"add","operands":["1","2"]}}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"statistics","arguments":{"operation":"count","values":[]}}}
    ]);
    client.version = Some("2025-06-18");
    let r = client.post(&batch).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32600);
    // In 2025-03-26 a batch with a refused call is answered here, never half forwarded.
    client.version = Some("2025-03-26");
    let r = client.post(&batch).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["id"], 1);
    assert_eq!(v[0]["error"]["code"], -32600);
    assert_eq!(v[1]["id"], 2);
    assert_eq!(v[1]["error"]["message"], "Unknown tool: statistics");
}

/// A client that sends `Expect: 100-continue` gets the interim answer at once and its body is read.
#[tokio::test]
async fn expect_100_continue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let body = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"exact_calculate","arguments":{"operator":"add","operands":["2","2"]}}}).to_string();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.proc.port))
        .await
        .unwrap();
    let head = format!(
        "POST /calculator/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        token("alice", &["developer"], json!({})),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_millis(900), s.read(&mut buf))
        .await
        .expect("100 Continue without delay")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(body.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&out).contains("\"result\":\"4\"")
        && tokio::time::Instant::now() < deadline
    {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("200 OK") && text.contains("\"result\":\"4\""),
        "{text}"
    );
}
