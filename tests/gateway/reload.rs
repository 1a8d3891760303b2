//! Live reload: edits to the three YAML files apply without a restart (by the file watcher and on
//! `SIGHUP`), a broken or start-only edit keeps the running configuration, and what must not
//! reset (rate-limit budgets, upstreams that stay, traffic in flight) carries over.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn list(client: &Client) -> Vec<String> {
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 200);
    tool_names(&rpc_body(r).await)
}

fn config_hash(metrics: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_config_info{hash=\""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no mcp_config_info in\n{metrics}"))
        .to_string()
}

/// A client of the `calculator` scope with the analyst role (exact_calculate only).
fn analyst(gw: &Gateway) -> Client {
    Client::new(
        gw.url("/calculator/mcp"),
        Some(token("ann", &["analyst"], json!({}))),
    )
}

/// The test policy, with statistics granted to analysts too.
fn analyst_with_statistics() -> String {
    edit(
        POLICY,
        r#"allow: ["calculator/exact_calculate"]"#,
        r#"allow: ["calculator/exact_calculate", "calculator/statistics"]"#,
    )
}

/// A gateway in front of `ports` that checks its files every `watch` (`0s`: on SIGHUP only).
async fn reloading(ports: &[u16], watch: &str) -> (GatewaySpec, Gateway) {
    let mut spec = GatewaySpec::new(ports);
    spec.gateway_yaml
        .push_str(&format!("watch_interval: {watch}\n"));
    let gw = spec.start().await;
    (spec, gw)
}

/// Granting a tool in policy.yaml shows it in the next `tools/list`, found by the file watcher
/// alone; the reload is counted and the configuration hash changes.
#[tokio::test]
async fn a_granted_tool_is_visible_without_restart() {
    let up = calculator(true).await;
    let (_spec, gw) = reloading(&[up.port], "200ms").await;
    let analyst = analyst(&gw);
    assert_eq!(list(&analyst).await, ["exact_calculate"]);
    let before_hash = config_hash(&gw.metrics_text().await);
    let before = gw.reloads().await;

    gw.write_file("policy.yaml", &analyst_with_statistics());
    assert_eq!(gw.next_reload(before).await, "ok");
    assert_eq!(list(&analyst).await, ["exact_calculate", "statistics"]);
    let m = gw.metrics_text().await;
    assert_ne!(config_hash(&m), before_hash, "the hash follows the files");
    assert!(metric(&m, "mcp_config_last_reload_success_timestamp_seconds") >= (now() - 60) as f64);
    gw.log_with("configuration reloaded").await;
}

/// A broken edit (an unknown field, a grant of a scope that does not exist) and an edit of a
/// start-only setting are refused as a whole: the old configuration keeps serving, the metric
/// says `rejected`, the log names the file, the field and the reason.
#[tokio::test]
async fn a_broken_edit_keeps_the_running_configuration() {
    let up = calculator(true).await;
    let (spec, gw) = reloading(&[up.port], "0s").await;
    let analyst = analyst(&gw);

    // Unknown field in a role, plus a grant on a scope that does not exist.
    let broken = format!(
        "{}  auditor:\n    allow: [\"nowhere/*\"]\n    colour: blue\n",
        analyst_with_statistics()
    );
    gw.write_file("policy.yaml", &broken);
    assert_eq!(gw.sighup().await, "rejected");
    let log = gw.log_with("configuration reload refused").await;
    assert!(
        log.contains("policy.yaml") && log.contains("roles.auditor") && log.contains("colour"),
        "the log names file and field:\n{log}"
    );
    assert_eq!(
        list(&analyst).await,
        ["exact_calculate"],
        "nothing of the broken edit applies"
    );

    // A start-only setting: refused with the field named and a restart asked for, and the valid
    // policy edit that came with it is not applied either.
    gw.write_file("policy.yaml", &spec.policy_yaml);
    gw.write_file(
        "gateway.yaml",
        &edit(&spec.gateway_yaml, "threads: 2\n", "threads: 3\n"),
    );
    gw.write_file("policy.yaml", &analyst_with_statistics());
    assert_eq!(gw.sighup().await, "rejected");
    let log = gw.log_with("field=threads").await;
    assert!(log.contains("restart"), "{log}");
    assert_eq!(list(&analyst).await, ["exact_calculate"]);

    // Put threads back: the policy edit now applies.
    gw.write_file("gateway.yaml", &spec.gateway_yaml);
    assert_eq!(gw.sighup().await, "ok");
    assert_eq!(list(&analyst).await, ["exact_calculate", "statistics"]);
    let r = analyst
        .call(
            1,
            "exact_calculate",
            json!({"operator":"add","operands":["1","1"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// A rate limit keeps its spent budget across a reload that leaves it as it was; a reload that
/// changes it starts it afresh.
#[tokio::test]
async fn a_rate_limit_budget_survives_a_reload_that_keeps_it() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.gateway_yaml.push_str("watch_interval: 0s\n");
    let limit = "rate_limits:\n  - { name: per-user, key: user, rate: 3/min, match: { tools: [exact_calculate] } }\n";
    spec.policy_yaml = format!("{POLICY}{limit}");
    let gw = spec.start().await;
    let alice = gw.developer("alice");
    let add = |id| {
        alice.call(
            id,
            "exact_calculate",
            json!({"operator":"add","operands":["1","1"]}),
        )
    };
    for id in 1..=3 {
        assert_eq!(add(id).await.status(), 200);
    }
    // Another role is added; the limit stays as written.
    gw.write_file(
        "policy.yaml",
        &format!("{POLICY}  viewer:\n    allow: [\"calculator/statistics\"]\n{limit}"),
    );
    assert_eq!(gw.sighup().await, "ok");
    assert_eq!(add(4).await.status(), 429, "the spent budget carried over");

    // The limit itself changes: a new budget.
    gw.write_file(
        "policy.yaml",
        &format!("{POLICY}{}", limit.replace("3/min", "5/min")),
    );
    assert_eq!(gw.sighup().await, "ok");
    assert_eq!(add(5).await.status(), 200);
}

/// Fixed-count load runs while an upstream is added and the first one removed: no request fails
/// and the added upstream serves. Then a session that lives on an upstream that a reload removes
/// gets 404 (-32010), so its client starts a new one.
#[tokio::test]
async fn upstreams_added_and_removed_under_load_lose_nothing() {
    let a = calculator(true).await;
    let b = calculator(true).await;
    let (spec, gw) = reloading(&[a.port], "0s").await;
    let line = |p: u16| format!("      - url: http://127.0.0.1:{p}/mcp\n");
    let upstreams = |ports: &[u16]| {
        let lines: String = ports.iter().map(|p| line(*p)).collect();
        edit(&spec.tools_yaml, &line(a.port), &lines)
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (url, stop) = (gw.url("/calculator/mcp"), stop.clone());
        workers.push(tokio::spawn(async move {
            let c = Client::new(
                url,
                Some(token(&format!("load{w}"), &["developer"], json!({}))),
            );
            let (mut ok, mut failed) = (0u32, Vec::new());
            // Bounded: at most 5000 calls per worker; the test stops them well before.
            for id in 0..5000u64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let r = c
                    .call(
                        id,
                        "exact_calculate",
                        json!({"operator":"add","operands":["2","2"]}),
                    )
                    .await;
                let status = r.status();
                let body = rpc_body(r).await;
                if status == 200
                    && body["result"]["isError"] != true
                    && body.to_string().contains('4')
                {
                    ok += 1;
                } else {
                    failed.push(format!("{status} {body}"));
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.write_file("tools.yaml", &upstreams(&[a.port, b.port]));
    assert_eq!(gw.sighup().await, "ok");
    tokio::time::sleep(Duration::from_millis(700)).await;
    gw.write_file("tools.yaml", &upstreams(&[b.port]));
    assert_eq!(gw.sighup().await, "ok");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut total, mut failures) = (0, Vec::new());
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        total += ok;
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed: {:?}",
        failures.len(),
        total as usize + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total > 40, "the load ran ({total} calls)");
    let rows = gw.audit_rows(total as usize).await;
    let served = |p: u16| {
        rows.iter()
            .filter(|r| r["upstream"] == format!("127.0.0.1:{p}"))
            .count()
    };
    assert!(served(a.port) > 0 && served(b.port) > 0, "both served");

    // A stateful upstream holds a session; a reload removes it.
    let c = calculator(false).await;
    gw.write_file("tools.yaml", &upstreams(&[c.port]));
    assert_eq!(gw.sighup().await, "ok");
    let mut pinned = gw.developer("pinned");
    pinned.initialize().await;
    let add = json!({"operator":"add","operands":["1","1"]});
    assert_eq!(
        pinned
            .call(1, "exact_calculate", add.clone())
            .await
            .status(),
        200
    );
    gw.write_file("tools.yaml", &upstreams(&[b.port]));
    assert_eq!(gw.sighup().await, "ok");
    let r = pinned.call(2, "exact_calculate", add).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32010, "{v}");
}
