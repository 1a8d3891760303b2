//! Upstream choice: load balancing with failover, sessions pinned to their upstream across calls
//! and gateway restarts, refused to other users, and 503 when nothing is healthy.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn add(client: &Client, id: u64) -> reqwest::Response {
    client
        .call(
            id,
            "exact_calculate",
            json!({"operator":"add","operands":[id.to_string(),"1"]}),
        )
        .await
}

async fn assert_added(r: reqwest::Response, id: u64) {
    assert_eq!(r.status(), 200, "call {id}");
    let v = rpc_body(r).await;
    assert_eq!(
        v["result"]["structuredContent"]["result"],
        (id + 1).to_string(),
        "call {id}: {v}"
    );
}

#[tokio::test]
async fn killed_upstream_traffic_moves_to_the_other() {
    let mut a = calculator(true).await;
    let b = calculator(true).await;
    let gw = GatewaySpec::new(&[a.port, b.port]).start().await;
    let client = gw.developer("alice");
    for id in 0..6 {
        assert_added(add(&client, id).await, id).await;
    }
    a.kill();
    // Immediately (before any health check notices) a connect failure is retried on the other
    // upstream; after the check, the dead one is skipped.
    for id in 6..26 {
        assert_added(add(&client, id).await, id).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = reqwest::get(gw.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    for id in 26..36 {
        assert_added(add(&client, id).await, id).await;
    }
    drop(b);
}

#[tokio::test]
async fn no_healthy_upstream_is_503() {
    let mut a = calculator(true).await;
    let gw = GatewaySpec::new(&[a.port]).start().await;
    a.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = reqwest::get(gw.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let client = gw.developer("alice");
    let r = add(&client, 4).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32006);
    assert_eq!(v["id"], 4);
}

#[tokio::test]
async fn sessions_keep_their_upstream_across_calls_and_restarts() {
    // Two stateful upstreams: each knows only its own sessions, so a call routed to the wrong one
    // would fail.
    let a = calculator(false).await;
    let b = calculator(false).await;
    let spec = GatewaySpec::new(&[a.port, b.port]);
    let gw = spec.start().await;
    let url = gw.url("/calculator/mcp");
    let mut alice = Client::new(url.clone(), Some(token("alice", &["developer"], json!({}))));
    alice.initialize().await;
    let sid = alice.session.clone().expect("session id");
    for id in 1..=20 {
        assert_added(add(&alice, id).await, id).await;
    }
    // Another user replaying alice's session id is refused as an unknown session.
    let mut mallory = Client::new(
        url.clone(),
        Some(token("mallory", &["developer"], json!({}))),
    );
    mallory.session = Some(sid.clone());
    mallory.version = Some("2025-06-18");
    let r = add(&mallory, 1).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32010);
    // A forged id likewise.
    mallory.session = Some(format!("{sid}x"));
    assert_eq!(add(&mallory, 1).await.status(), 404);
    // A second gateway instance with the same secrets (as behind one load-balanced address)
    // routes the same session correctly.
    let second = GatewaySpec::new(&[a.port, b.port]);
    let gw2 = second.start().await;
    let mut via_second = gw2.developer("alice");
    via_second.session = Some(sid.clone());
    via_second.version = Some("2025-06-18");
    for id in 100..110 {
        assert_added(add(&via_second, id).await, id).await;
    }
    drop(gw2);
    // The gateway restarts; the session goes on where it was.
    drop(gw);
    let gw = spec.start().await;
    let mut alice = gw.developer("alice");
    alice.session = Some(sid);
    alice.version = Some("2025-06-18");
    for id in 21..=30 {
        assert_added(add(&alice, id).await, id).await;
    }
    // DELETE ends it upstream; the id is then unknown there.
    let r = alice.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = add(&alice, 31).await;
    assert_eq!(r.status(), 404);
}

/// Pids of the tool processes a gateway started.
fn tool_children(gateway_pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(gateway_pid) && cmdline.contains("calculator") {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test]
async fn spawned_tool_comes_back_after_being_killed() {
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = "scopes:\n  calculator:\n    upstreams:\n      - spawn: [tool, calculator]\n    health_check: { kind: http, path: /health, interval: 1s }\n    tools: [exact_calculate, statistics]\n".into();
    let gw = spec.start().await;
    let client = gw.developer("alice");
    assert_added(add(&client, 1).await, 1).await;
    let before = tool_children(gw.proc.child.id());
    assert_eq!(before.len(), 1, "one tool process");
    std::process::Command::new("kill")
        .args(["-9", &before[0].to_string()])
        .status()
        .unwrap();
    let mut back = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = add(&client, 2).await;
        if r.status() == 200 {
            assert_added(r, 2).await;
            back = true;
            break;
        }
    }
    assert!(back, "the tool did not come back");
    let after = tool_children(gw.proc.child.id());
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    gw.log_with("tool process exited; restarting").await;
}

/// The server-to-client stream (GET) passes through event by event: the first event arrives while
/// the stream is still open.
#[tokio::test]
async fn get_stream_is_not_buffered() {
    let up = calculator(false).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let mut client = gw.developer("alice");
    client.initialize().await;
    let r = client.open_stream().await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    first_event_while_open(r).await;
}

/// An upstream named by host name (as in Compose or Kubernetes) is resolved when its pool is
/// built; every address it resolves to is a backend, health-checked like any other.
#[tokio::test]
async fn an_upstream_named_by_host_name() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        &format!("http://127.0.0.1:{}/mcp", up.port),
        &format!("http://localhost:{}/mcp", up.port),
    );
    let gw = spec.start().await;
    for id in 0..4 {
        let r = gw
            .developer("alice")
            .call(
                id,
                "exact_calculate",
                json!({"operator":"add","operands":["2","2"]}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let rows = gw.audit_rows(4).await;
    assert!(
        rows.iter()
            .all(|r| r["upstream"] == format!("127.0.0.1:{}", up.port)),
        "{rows:?}"
    );
}

/// A scope that names no `health_check` gets one that works for any MCP server (TCP, every 5 s):
/// an ordinary SDK server (no `/health`) is healthy, and once it dies `/readyz` says so and calls
/// get 503 (-32006) instead of 502 forever.
#[tokio::test]
async fn without_a_health_check_a_dead_upstream_is_noticed() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut sdk = python_server("slow_server.py", &[log.path().as_os_str()]).await;
    let mut spec = GatewaySpec::new(&[sdk.port]);
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        "    health_check: { kind: http, path: /health, interval: 1s }\n",
        "",
    );
    let gw = spec.start().await;
    let r = reqwest::get(gw.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "an SDK server without /health is healthy");
    let mut client = gw.developer("alice");
    client.initialize().await;
    sdk.kill();
    let mut ready = 200;
    for _ in 0..60 {
        ready = reqwest::get(gw.url("/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(ready, 503, "/readyz still ok 15 s after the upstream died");
    // Its session lived on the dead upstream: the client is told to start a new one.
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 404);
    let mut fresh = gw.developer("alice");
    fresh.version = Some("2025-06-18");
    let r = fresh
        .post(&json!({"jsonrpc":"2.0","id":5,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32006, "{v}");
}
