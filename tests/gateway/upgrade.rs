//! Zero-downtime upgrade and drain: a new process takes the listening sockets over (`run
//! --upgrade`, then SIGQUIT to the running one) while a fixed-rate load runs; every request is
//! answered 200 and the audit trail has exactly one row per request. A draining process answers
//! `/readyz` with 503 while it still serves.

use crate::common::*;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts `mcp-gateway run --upgrade` on `spec`'s files; it waits for the running process's sockets.
fn successor(spec: &GatewaySpec) -> Proc {
    Proc {
        child: spec.spawn(&["--upgrade"], "successor.log"),
        port: spec.port,
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[tokio::test]
async fn a_binary_upgrade_under_load_answers_every_request() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.gateway_yaml.push_str("upgrade_socket: upgrade.sock\n");
    let mut old = spec.start().await;

    // 100 calls a second for 12 s, each on a new connection (so every one meets the listener).
    let mut client = Client::new(
        old.url("/calculator/mcp"),
        Some(token("loader", &["developer"], json!({}))),
    );
    client.http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let client = Arc::new(client);
    let load = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut calls = tokio::task::JoinSet::new();
        for id in 0..1200u64 {
            tick.tick().await;
            let c = client.clone();
            calls.spawn(async move {
                let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                    "name": "exact_calculate",
                    "arguments": {"operator": "add", "operands": ["2", "2"]}}});
                let sent = c
                    .request(reqwest::Method::POST)
                    .header("Content-Type", "application/json")
                    .body(call.to_string())
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                // A refused or reset connection is a failure to report, not a panic.
                match sent {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => format!("{e:?}"),
                }
            });
        }
        let mut statuses = Vec::new();
        while let Some(s) = calls.join_next().await {
            statuses.push(s.unwrap());
        }
        statuses
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut new = successor(&spec);
    // The successor binds the upgrade socket and waits for the sockets.
    let sock = spec.dir.path().join("upgrade.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the successor never opened {sock:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(old.proc.child.id(), "-QUIT");

    // The old process hands over, drains and exits on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while old.proc.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the old process did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses = load.await.unwrap();
    let failed: Vec<_> = statuses.iter().filter(|s| *s != "200").collect();
    assert!(
        failed.is_empty(),
        "{} of {} not answered 200: {:?}\nold log:\n{}",
        failed.len(),
        statuses.len(),
        &failed[..failed.len().min(10)],
        old.log_text()
    );
    let ready = reqwest::get(old.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "the successor serves");

    // One audit row per request, from both processes, none doubled.
    let rows = old.audit_rows(statuses.len()).await;
    let mut ids: Vec<_> = rows
        .iter()
        .filter(|r| r["method"] == "tools/call")
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), statuses.len());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), statuses.len(), "no row doubled");
    new.kill();
}

/// Once told to hand over (SIGQUIT), a process still serves while it waits for its successor,
/// but `/readyz` answers 503 so load balancers stop sending to it.
#[tokio::test]
async fn a_draining_process_is_not_ready_but_serves() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.gateway_yaml.push_str("upgrade_socket: upgrade.sock\n");
    let gw = spec.start().await;
    assert_eq!(reqwest::get(gw.url("/readyz")).await.unwrap().status(), 200);
    signal(gw.proc.child.id(), "-QUIT");
    gw.log_with("draining").await;
    let r = reqwest::get(gw.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), r#"{"status":"draining"}"#);
    let call = gw
        .developer("alice")
        .call(
            1,
            "exact_calculate",
            json!({"operator": "add", "operands": ["1", "1"]}),
        )
        .await;
    assert_eq!(
        call.status(),
        200,
        "requests are still served while draining"
    );
}
