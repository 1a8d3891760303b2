//! Traffic control: exact rate limits (local and shared through Redis), in-flight limits, and
//! outlier ejection.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn with_limits(spec: &mut GatewaySpec, limits: &str) {
    spec.policy_yaml = format!("{POLICY}\nrate_limits:\n{limits}");
}

async fn add(client: &Client, id: u64) -> reqwest::Response {
    client
        .call(
            id,
            "exact_calculate",
            json!({"operator":"add","operands":["1","1"]}),
        )
        .await
}

async fn stats(client: &Client, id: u64) -> reqwest::Response {
    client
        .call(
            id,
            "statistics",
            json!({"operation":"count","values":["1"]}),
        )
        .await
}

async fn assert_limited(r: reqwest::Response, limit: &str, retry_after: u64) {
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers()["retry-after"].to_str().unwrap(),
        retry_after.to_string()
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32004);
    assert_eq!(v["error"]["data"]["limit"], limit);
    assert_eq!(v["error"]["data"]["retry_after_seconds"], retry_after);
}

#[tokio::test]
async fn n_pass_then_refused_with_retry_after_then_capacity_returns() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_limits(
        &mut spec,
        "  - { name: per-minute, key: user, rate: 5/min, match: { tools: [exact_calculate] } }\n  - { name: per-second, key: user, rate: 3/s, match: { tools: [statistics] } }\n",
    );
    let gw = spec.start().await;
    let client = gw.developer("alice");
    // tools/list and other methods are not counted.
    for _ in 0..10 {
        assert_eq!(
            client
                .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
                .await
                .status(),
            200
        );
    }
    for i in 0..5 {
        assert_eq!(add(&client, i).await.status(), 200, "call {i}");
    }
    // 5/min: one call comes back every 12 s.
    assert_limited(add(&client, 5).await, "per-minute", 12).await;
    // Another user has a budget of its own.
    let bob = gw.developer("bob");
    assert_eq!(add(&bob, 1).await.status(), 200);
    // 3/s: three pass, the fourth waits ≤ 1 s, and after 1/3 s one more passes.
    for i in 0..3 {
        assert_eq!(stats(&client, i).await.status(), 200);
    }
    assert_limited(stats(&client, 3).await, "per-second", 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(stats(&client, 4).await.status(), 200);
    assert_eq!(stats(&client, 5).await.status(), 429);
}

#[tokio::test]
async fn fifty_parallel_clients_never_exceed_the_limit() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_limits(&mut spec, "  - { name: shared, key: tool, rate: 20/min }\n");
    let gw = spec.start().await;
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let client = Client::new(
            gw.url("/calculator/mcp"),
            Some(token(&format!("user{i}"), &["developer"], json!({}))),
        );
        tasks.push(tokio::spawn(async move {
            add(&client, i).await.status().as_u16()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (20, 30));
}

#[tokio::test]
async fn user_tool_limits_are_independent_per_tool() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_limits(
        &mut spec,
        "  - { name: per-user-tool, key: user_tool, rate: 2/min }\n",
    );
    let gw = spec.start().await;
    let client = gw.developer("alice");
    assert_eq!(add(&client, 1).await.status(), 200);
    assert_eq!(add(&client, 2).await.status(), 200);
    assert_limited(add(&client, 3).await, "per-user-tool", 30).await;
    for i in 0..2 {
        let r = client
            .call(i, "statistics", json!({"operation":"count","values":["1"]}))
            .await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn two_gateways_share_one_budget_through_redis_and_fall_back_when_it_dies() {
    let up = calculator(true).await;
    let mut redis = Redis::start().await;
    let specs: Vec<GatewaySpec> = (0..2)
        .map(|_| {
            let mut spec = GatewaySpec::new(&[up.port]);
            with_limits(&mut spec, "  - { name: global, key: user, rate: 6/min }\n");
            spec.gateway_yaml.push_str(&format!(
                "rate_limit_store:\n  redis_url: {}\n  timeout: 200ms\n  on_error: local\n",
                redis.url
            ));
            spec
        })
        .collect();
    let a = specs[0].start().await;
    let b = specs[1].start().await;
    let tok = token("alice", &["developer"], json!({}));
    let ca = Client::new(a.url("/calculator/mcp"), Some(tok.clone()));
    let cb = Client::new(b.url("/calculator/mcp"), Some(tok.clone()));
    for i in 0..3 {
        assert_eq!(add(&ca, i).await.status(), 200);
        assert_eq!(add(&cb, i).await.status(), 200);
    }
    assert_limited(add(&ca, 7).await, "global", 10).await;
    assert_limited(add(&cb, 7).await, "global", 10).await;
    // Redis dies: each gateway falls back to its own local budget, promptly.
    redis.proc.kill();
    let started = std::time::Instant::now();
    for i in 0..6 {
        assert_eq!(
            add(&ca, 10 + i).await.status(),
            200,
            "local fallback call {i}"
        );
    }
    assert_limited(add(&ca, 20).await, "global", 10).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "requests must not hang on a dead store"
    );
    let metrics = a.metrics_text().await;
    assert!(
        metric(&metrics, "mcp_rate_limit_store_errors_total") > 0.0,
        "{metrics}"
    );
    a.log_with("rate limit store unavailable").await;
}

#[tokio::test]
async fn redis_down_with_refuse_answers_503() {
    let up = calculator(true).await;
    let mut redis = Redis::start().await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_limits(&mut spec, "  - { name: global, key: user, rate: 60/min }\n");
    spec.gateway_yaml.push_str(&format!(
        "rate_limit_store:\n  redis_url: {}\n  timeout: 200ms\n  on_error: refuse\n",
        redis.url
    ));
    let gw = spec.start().await;
    let client = gw.developer("alice");
    assert_eq!(add(&client, 1).await.status(), 200);
    redis.proc.kill();
    let r = add(&client, 2).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32011);
}

/// An upstream that answers after `delay_ms`, or with 500 while `fail` is set; it names itself.
async fn named_upstream(delay_ms: u64, fail: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::sync::atomic::Ordering;
    serve_router(move |port| {
        axum::Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .route(
                "/mcp",
                axum::routing::post(move || {
                    let fail = fail.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        if fail.load(Ordering::Relaxed) {
                            return (
                                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                                axum::Json(json!({"error": "boom"})),
                            );
                        }
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"jsonrpc":"2.0","id":1,"result":{"port": port}})),
                        )
                    }
                }),
            )
    })
    .await
}

#[tokio::test]
async fn concurrency_limit_per_user() {
    let port = named_upstream(800, Default::default()).await;
    let mut spec = GatewaySpec::new(&[port]);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "limits:\n",
        "limits:\n  max_concurrent_per_user: 2\n",
    );
    let gw = spec.start().await;
    let mut tasks = Vec::new();
    for i in 0..3u64 {
        let client = gw.developer("alice");
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            let r = client
                .post(&json!({"jsonrpc":"2.0","id":i,"method":"ping"}))
                .await;
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (status, retry)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results[0].0, 200);
    assert_eq!(results[1].0, 200);
    assert_eq!(results[2], (429, Some("1".to_string())));
    // Slots come back when requests end.
    let client = gw.developer("alice");
    assert_eq!(
        client
            .post(&json!({"jsonrpc":"2.0","id":9,"method":"ping"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn failing_upstream_is_ejected_then_comes_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flaky_fail = std::sync::Arc::new(AtomicBool::new(true));
    let flaky = named_upstream(0, flaky_fail.clone()).await;
    let good = named_upstream(0, Default::default()).await;
    let mut spec = GatewaySpec::new(&[flaky, good]);
    spec.scope_setting("outlier: { consecutive_failures: 3, cooldown: 1s }");
    let gw = spec.start().await;
    let client = gw.developer("alice");
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let mut failures = 0;
    for _ in 0..12 {
        let r = client.post(&ping).await;
        if r.status() == 500 {
            failures += 1;
        }
    }
    // Round robin sends every other request to the flaky one until its third failure ejects it.
    assert_eq!(failures, 3);
    for _ in 0..10 {
        let r = client.post(&ping).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["result"]["port"], good);
    }
    // It recovers; after the cool-down it is back in rotation.
    flaky_fail.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let r = client.post(&ping).await;
        assert_eq!(r.status(), 200);
        seen.insert(
            r.json::<Value>().await.unwrap()["result"]["port"]
                .as_u64()
                .unwrap() as u16,
        );
    }
    assert!(seen.contains(&flaky) && seen.contains(&good), "{seen:?}");
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "mcp_upstream_ejections_total{{scope=\"calculator\",upstream=\"127.0.0.1:{flaky}\"}} 1"
        )),
        "{metrics}"
    );
}

/// A listener whose accept queue is full and never drained: new connections hang in SYN_SENT.
async fn unanswering_listener() -> (u16, Vec<tokio::net::TcpStream>, tokio::net::TcpListener) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut held = Vec::new();
    // Fill the queue; connects beyond it block until they time out.
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            held.push(s);
        }
    }
    (port, held, listener)
}

#[tokio::test]
async fn connect_timeout_is_504_and_audited_as_timeout() {
    let (port, _held, _listener) = unanswering_listener().await;
    let mut spec = GatewaySpec::new(&[port]);
    spec.scope_setting("connect_timeout: 300ms");
    spec.without_health_check();
    let mut gw = spec.start().await;
    let client = gw.developer("alice");
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":3,"method":"ping"}))
        .await;
    assert_eq!(r.status(), 504);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32007);
    assert_eq!(v["id"], 3);
    gw.stop();
    let row = gw
        .audit_file_rows()
        .into_iter()
        .find(|r| r["request_id"] == rid)
        .expect("audited");
    assert_eq!(row["outcome"], "timeout");
}

#[tokio::test]
async fn saturated_upstream_is_503() {
    let port = named_upstream(800, Default::default()).await;
    let mut spec = GatewaySpec::new(&[port]);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "limits:\n",
        "limits:\n  max_concurrent_per_upstream: 1\n",
    );
    let gw = spec.start().await;
    let url = gw.url("/calculator/mcp");
    let slow = {
        let client = Client::new(url.clone(), Some(token("alice", &["developer"], json!({}))));
        tokio::spawn(async move {
            client
                .post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
                .await
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = Client::new(url, Some(token("bob", &["developer"], json!({}))));
    let r = other
        .post(&json!({"jsonrpc":"2.0","id":2,"method":"ping"}))
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32012);
    assert_eq!(slow.await.unwrap(), 200);
}

/// An upstream whose answer trickles in: `chunks` pieces, one every 200 ms, after `delay_ms`.
async fn trickling_upstream(content_type: &'static str, delay_ms: u64, chunks: usize) -> u16 {
    serve_router(move |_| axum::Router::new().route(
        "/mcp",
        axum::routing::post(move || async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let stream = futures_util::stream::unfold(0usize, move |i| async move {
                if i == chunks {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let piece = if content_type == "text/event-stream" {
                    format!("data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"n\":{i}}}}}\n\n")
                } else if i == 0 {
                    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"pad\":\"".to_string()
                } else if i + 1 == chunks {
                    "x\"}}".to_string()
                } else {
                    "x".to_string()
                };
                Some((Ok::<_, std::io::Error>(piece), i + 1))
            });
            ([("content-type", content_type)], axum::body::Body::from_stream(stream))
        }),
    )).await
}

#[tokio::test]
async fn total_timeout_cuts_slow_answers_but_not_streams() {
    let slow_header = trickling_upstream("application/json", 800, 1).await;
    let trickle = trickling_upstream("application/json", 0, 10).await;
    let stream = trickling_upstream("text/event-stream", 0, 5).await;
    for (port, kind) in [
        (slow_header, "slow header"),
        (trickle, "trickle"),
        (stream, "sse"),
    ] {
        let mut spec = GatewaySpec::new(&[port]);
        spec.scope_setting("total_timeout: 500ms");
        spec.without_health_check();
        let mut gw = spec.start().await;
        let client = gw.developer("alice");
        let r = client
            .post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
            .await;
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        match kind {
            "slow header" => {
                assert_eq!(r.status(), 504);
                assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32007);
            }
            "trickle" => {
                // The header was already sent: the answer is cut off.
                assert_eq!(r.status(), 200);
                let body = r.text().await;
                assert!(
                    body.is_err() || !body.unwrap().ends_with("}}"),
                    "a cut answer"
                );
            }
            _ => {
                assert_eq!(r.status(), 200);
                let text = r.text().await.unwrap();
                assert_eq!(
                    sse_events(&text).len(),
                    5,
                    "the stream outlives the total timeout: {text}"
                );
            }
        }
        gw.stop();
        let row = gw
            .audit_file_rows()
            .into_iter()
            .find(|r| r["request_id"] == rid)
            .expect("audited");
        assert_eq!(
            row["outcome"],
            if kind == "sse" { "ok" } else { "timeout" },
            "{kind}: {row}"
        );
    }
}
