//! The audit trail against a real PostgreSQL: one row per request, refusals included; nothing lost
//! when the database stops mid-stream or the gateway stops while it is down; encrypted arguments;
//! migrations; and metrics that agree with what was sent.

use crate::common::postgres::Postgres;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;

fn with_db(spec: &mut GatewaySpec, pg: &Postgres) {
    spec.env.push(("DATABASE_URL".into(), pg.url.clone()));
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_string()
}

/// Sends one request of each kind; returns request id → (expected outcome, expected status).
async fn one_of_each(gw: &Gateway) -> HashMap<String, (&'static str, i32)> {
    let url = gw.url("/calculator/mcp");
    let analyst = Client::new(
        url.clone(),
        Some(token("bob", &["analyst"], json!({"tenant": "acme"}))),
    );
    let mut sent = HashMap::new();
    let r = analyst
        .call(
            1,
            "exact_calculate",
            json!({"operator":"add","operands":["1","2"]}),
        )
        .await;
    sent.insert(request_id(&r), ("ok", 200));
    let r = analyst
        .call(
            2,
            "exact_calculate",
            json!({"operator":"divide","operands":["1","0"]}),
        )
        .await;
    sent.insert(request_id(&r), ("tool_error", 200));
    let r = analyst
        .call(3, "statistics", json!({"operation":"count","values":[]}))
        .await;
    sent.insert(request_id(&r), ("denied", 200));
    let r = Client::new(url.clone(), Some("garbage".into()))
        .call(4, "exact_calculate", json!({}))
        .await;
    sent.insert(request_id(&r), ("unauthenticated", 401));
    let r = analyst.post_raw("{oops").await;
    sent.insert(request_id(&r), ("invalid", 400));
    let r = analyst
        .post_raw(format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"pad\":\"{}\"}}",
            "x".repeat(300_000)
        ))
        .await;
    sent.insert(request_id(&r), ("denied", 413));
    sent
}

#[tokio::test]
async fn rows_match_the_requests_refusals_included() {
    let pg = Postgres::start();
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_db(&mut spec, &pg);
    let mut gw = spec.start().await;
    let sent = one_of_each(&gw).await;
    gw.stop();
    assert_eq!(pg.wait_rows(sent.len() as i64).await, sent.len() as i64);
    let client = pg.client().await;
    for (rid, (outcome, status)) in &sent {
        let rows = client
            .query("SELECT outcome, http_status, user_id, tenant, roles, scope, tool, reason, rpc_error_code, instance FROM audit_log WHERE request_id = $1", &[rid])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{rid}");
        let row = &rows[0];
        assert_eq!(row.get::<_, String>(0), *outcome, "{rid}");
        assert_eq!(row.get::<_, i32>(1), *status, "{rid}");
        assert_eq!(
            row.get::<_, Option<String>>(5).as_deref(),
            Some("calculator")
        );
        assert!(!row.get::<_, String>(9).is_empty());
        if *outcome != "unauthenticated" && *status != 400 && *status != 413 {
            assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("bob"));
            assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("acme"));
            assert_eq!(row.get::<_, Vec<String>>(4), vec!["analyst"]);
        }
        if *outcome == "denied" && *status == 200 {
            // The client was told "Unknown tool"; the row keeps the real reason.
            assert_eq!(
                row.get::<_, Option<String>>(6).as_deref(),
                Some("statistics")
            );
            assert_eq!(
                row.get::<_, Option<String>>(7).as_deref(),
                Some("tool not granted to any of the caller's roles")
            );
            assert_eq!(row.get::<_, Option<i32>>(8), Some(-32602));
        }
        if *outcome == "unauthenticated" {
            assert_eq!(
                row.get::<_, Option<String>>(7).as_deref(),
                Some("malformed token")
            );
        }
    }
    // Every column of a served call, as an operator reads it.
    let ok = sent.iter().find(|(_, v)| v.0 == "ok").unwrap().0;
    let row = client
        .query_one(
            "SELECT abs(extract(epoch FROM now() - time)) < 300, method, tool, jsonrpc_id, upstream,
                    latency_ms > 0 AND latency_ms >= upstream_latency_ms, request_bytes, response_bytes > 0,
                    client_addr LIKE '127.0.0.1:%', session_hash IS NULL, arguments_mode, arguments IS NULL
             FROM audit_log WHERE request_id = $1",
            &[ok],
        )
        .await
        .unwrap();
    let text = |i: usize| row.get::<_, Option<String>>(i);
    assert!(row.get::<_, bool>(0), "time is now");
    let upstream = format!("127.0.0.1:{}", up.port);
    let expected = ["tools/call", "exact_calculate", "1", upstream.as_str()];
    assert_eq!(
        (1..5).map(text).collect::<Vec<_>>(),
        expected.map(|e| Some(e.to_string()))
    );
    assert!(row.get::<_, bool>(5), "latencies");
    assert!(row.get::<_, i64>(6) > 50, "request bytes");
    assert!(row.get::<_, bool>(7), "response bytes");
    assert!(row.get::<_, bool>(8), "client address");
    assert!(row.get::<_, bool>(9), "stateless call: no session");
    assert_eq!(row.get::<_, String>(10), "none");
    assert!(row.get::<_, bool>(11));
}

#[tokio::test]
async fn database_stopped_mid_stream_loses_nothing() {
    let pg = Postgres::start();
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_db(&mut spec, &pg);
    let gw = spec.start().await;
    let client = gw.developer("alice");
    let mut ids = Vec::new();
    for i in 0..90u64 {
        if i == 30 {
            pg.stop_hard();
        }
        if i == 60 {
            pg.start_again();
        }
        let r = client
            .call(
                i,
                "exact_calculate",
                json!({"operator":"add","operands":[i.to_string(),"1"]}),
            )
            .await;
        assert_eq!(r.status(), 200);
        ids.push(request_id(&r));
    }
    assert_eq!(pg.wait_rows(90).await, 90);
    let db = pg.client().await;
    let rows = db
        .query(
            "SELECT request_id, count(*) FROM audit_log GROUP BY request_id",
            &[],
        )
        .await
        .unwrap();
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for id in &ids {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "request {id} must be stored exactly once"
        );
    }
    let metrics = gw.metrics_text().await;
    assert!(
        metric(&metrics, "mcp_audit_rows_total{result=\"spooled\"}") > 0.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "mcp_audit_rows_total{result=\"replayed\"}") > 0.0);
}

#[tokio::test]
async fn sigterm_while_the_database_is_down_then_restart_replays_the_spool() {
    let pg = Postgres::start();
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_db(&mut spec, &pg);
    let mut gw = spec.start().await;
    let client = gw.developer("alice");
    // The schema exists before the outage.
    client
        .call(
            0,
            "exact_calculate",
            json!({"operator":"add","operands":["1","1"]}),
        )
        .await;
    assert_eq!(pg.wait_rows(1).await, 1);
    pg.stop_hard();
    for i in 1..=20u64 {
        assert_eq!(
            client
                .call(
                    i,
                    "exact_calculate",
                    json!({"operator":"add","operands":["1","1"]})
                )
                .await
                .status(),
            200
        );
    }
    gw.stop();
    let spool = spec.dir.path().join("audit-spool.jsonl");
    let spooled = std::fs::read_to_string(&spool)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(spooled, 20, "every row waits in the spool");
    pg.start_again();
    let _gw = spec.start().await;
    assert_eq!(pg.wait_rows(21).await, 21);
    let db = pg.client().await;
    let distinct: i64 = db
        .query_one("SELECT count(DISTINCT request_id) FROM audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, 21);
}

fn audit_show(spec: &GatewaySpec, key: &str, rid: &str) -> (bool, String, String) {
    let out = Command::new(bin())
        .args([
            "--log-format",
            "text",
            "audit",
            "show",
            "--request-id",
            rid,
            "-c",
        ])
        .arg(spec.dir.path().join("gateway.yaml"))
        .envs(spec.env.iter().cloned())
        .env("MCP_GATEWAY_AUDIT_KEY", key)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn encrypted_arguments_open_with_the_key_only() {
    let pg = Postgres::start();
    let up = calculator(true).await;
    let key = "11".repeat(32);
    let mut spec = GatewaySpec::new(&[up.port]);
    with_db(&mut spec, &pg);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "audit:\n",
        "audit:\n  arguments: encrypted\n  arguments_key_id: k2026\n",
    );
    spec.env.push(("MCP_GATEWAY_AUDIT_KEY".into(), key.clone()));
    let mut gw = spec.start().await;
    let client = gw.developer("alice");
    let args = json!({"operator":"multiply","operands":["6","7"]});
    let r = client.call(1, "exact_calculate", args.clone()).await;
    let rid = request_id(&r);
    gw.stop();
    assert_eq!(pg.wait_rows(1).await, 1);
    let db = pg.client().await;
    let row = db
        .query_one(
            "SELECT arguments_mode, arguments FROM audit_log WHERE request_id = $1",
            &[&rid],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "encrypted");
    let stored: String = row.get(1);
    assert!(stored.starts_with("v1:k2026:"), "{stored}");
    assert!(!stored.contains("multiply"));
    let (ok, out, err) = audit_show(&spec, &key, &rid);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["arguments"], args);
    assert_eq!(v["request_id"], rid);
    // Every column of the row, the job's included (null for a direct call).
    for column in [
        "time",
        "user_id",
        "tool",
        "outcome",
        "client_cert",
        "job_id",
    ] {
        assert!(v.get(column).is_some(), "{column} missing: {v}");
    }
    let (ok, out, err) = audit_show(&spec, &"22".repeat(32), &rid);
    assert!(!ok);
    assert!(err.contains("could not be decrypted"), "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["arguments"], Value::Null);
    assert!(v["arguments_error"].as_str().unwrap().contains("wrong key"));
}

#[tokio::test]
async fn migrate_twice_is_a_no_op() {
    let pg = Postgres::start();
    let mut spec = GatewaySpec::new(&[9]);
    with_db(&mut spec, &pg);
    let path = spec.write();
    let migrate = || cli(&["migrate"], &path, &spec.env);
    assert_eq!(
        migrate().trim(),
        "applied: 0001_audit_log, 0002_client_cert, 0003_jobs, 0004_tool_registry, 0005_upstream_credential, 0006_upstream_logins, 0007_decisions, 0008_trace_id"
    );
    assert_eq!(migrate().trim(), "database is up to date");
    let db = pg.client().await;
    let n: i64 = db
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 8, "each migration recorded once");
    let idx: Vec<String> = db
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_log'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for want in [
        "(user_id, \"time\")",
        "(scope, tool, \"time\")",
        "(request_id)",
        "(trace_id)",
    ] {
        assert!(
            idx.iter().any(|i| i.contains(want)),
            "index on {want}: {idx:?}"
        );
    }
}

#[tokio::test]
async fn metrics_agree_with_the_requests_sent_and_file_rows_without_a_database() {
    let up = calculator(true).await;
    let spec = GatewaySpec::new(&[up.port]);
    let mut gw = spec.start().await;
    let sent = one_of_each(&gw).await;
    let analyst = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("bob", &["analyst"], json!({}))),
    );
    for i in 0..5 {
        analyst
            .call(
                10 + i,
                "exact_calculate",
                json!({"operator":"add","operands":["1","1"]}),
            )
            .await;
    }
    // Requests are counted in the logging hook, just after the answer went out: wait until all
    // 11 are in before reading the rest.
    let mut text = String::new();
    for _ in 0..100 {
        text = gw.metrics_text().await;
        if metric_or_zero(
            &text,
            "mcp_request_duration_seconds_count{scope=\"calculator\"}",
        ) == 11.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let calls = |tool: &str, outcome: &str| {
        metric(&text, &format!("mcp_tool_calls_total{{outcome=\"{outcome}\",scope=\"calculator\",tool=\"{tool}\"}}"))
    };
    assert_eq!(calls("exact_calculate", "ok"), 6.0, "{text}");
    assert_eq!(calls("exact_calculate", "tool_error"), 1.0);
    assert_eq!(calls("statistics", "denied"), 1.0);
    // A refused token is refused before the body is read: no method or tool is known.
    assert_eq!(
        metric(
            &text,
            "mcp_requests_total{method=\"none\",outcome=\"unauthenticated\",scope=\"calculator\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "mcp_auth_failures_total{reason=\"malformed\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "mcp_policy_denials_total{scope=\"calculator\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "mcp_requests_total{method=\"tools/call\",outcome=\"ok\",scope=\"calculator\"}"
        ),
        6.0
    );
    assert_eq!(
        metric(
            &text,
            "mcp_request_duration_seconds_count{scope=\"calculator\"}"
        ),
        11.0
    );
    assert_eq!(
        metric(
            &text,
            &format!(
                "mcp_upstream_healthy{{scope=\"calculator\",upstream=\"127.0.0.1:{}\"}}",
                up.port
            )
        ),
        1.0,
        "{text}"
    );
    assert!(!text.contains("bob"), "no user ids in labels");
    gw.stop();
    let rows = gw.audit_file_rows();
    assert_eq!(rows.len(), 11);
    for (rid, (outcome, _)) in &sent {
        let row = rows.iter().find(|r| r["request_id"] == *rid).unwrap();
        assert_eq!(row["outcome"], *outcome);
    }
}

/// A database that accepts connections and never answers: the writer stalls, the queue fills.
async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    port
}

#[tokio::test]
async fn full_queue_fail_closed_refuses_and_fail_open_counts() {
    let up = calculator(true).await;
    let hole = black_hole().await;
    for policy in ["fail_closed", "fail_open"] {
        let mut spec = GatewaySpec::new(&[up.port]);
        spec.env.push((
            "DATABASE_URL".into(),
            format!("postgres://postgres@127.0.0.1:{hole}/postgres"),
        ));
        spec.gateway_yaml = edit(
            &spec.gateway_yaml,
            "audit:\n",
            &format!("audit:\n  queue_capacity: 1\n  batch_size: 1\n  on_queue_full: {policy}\n"),
        );
        let gw = spec.start().await;
        let client = gw.developer("alice");
        let mut refused = 0;
        for i in 0..6u64 {
            let r = client
                .call(
                    i,
                    "exact_calculate",
                    json!({"operator":"add","operands":["1","1"]}),
                )
                .await;
            if r.status() == 503 {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], -32009);
                refused += 1;
            } else {
                assert_eq!(r.status(), 200);
            }
        }
        if policy == "fail_closed" {
            assert!(
                refused >= 1,
                "fail_closed must refuse while the queue is full"
            );
            // Counted in the request's last step, a moment after its answer.
            let text = gw
                .metrics_when("mcp_audit_refused_total", refused as f64)
                .await;
            assert_eq!(metric(&text, "mcp_audit_refused_total"), refused as f64);
        } else {
            assert_eq!(refused, 0, "fail_open serves");
            let text = gw
                .metrics_when("mcp_audit_rows_total{result=\"dropped\"}", 1.0)
                .await;
            assert!(
                metric(&text, "mcp_audit_rows_total{result=\"dropped\"}") >= 1.0,
                "{text}"
            );
        }
    }
}

#[tokio::test]
async fn retention_removes_old_rows_only() {
    let pg = Postgres::start();
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    with_db(&mut spec, &pg);
    let path = spec.write();
    let out = Command::new(bin())
        .args(["migrate", "-c"])
        .arg(&path)
        .envs(spec.env.iter().cloned())
        .output()
        .unwrap();
    assert!(out.status.success());
    let db = pg.client().await;
    for (i, days) in [(1, 10), (2, 40), (3, 0)] {
        db.execute(
            "INSERT INTO audit_log (time, request_id, instance, outcome, http_status, latency_ms, request_bytes, response_bytes)
             VALUES (now() - make_interval(days => $1), $2, 'test', 'ok', 200, 1, 0, 0)",
            &[&days, &format!("old-{i}")],
        )
        .await
        .unwrap();
    }
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "audit:\n",
        "audit:\n  retention_days: 7\n",
    );
    let _gw = spec.start().await;
    assert_eq!(
        pg.wait_rows(1).await,
        1,
        "rows older than 7 days are deleted"
    );
    let left: String = db
        .query_one("SELECT request_id FROM audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, "old-3");
}

/// The quickstart writes its audit trail to a JSON-lines file: `audit show` reads it, newest first,
/// filtered like the database, rows shaped like the database's (`time` in RFC 3339).
#[tokio::test]
async fn audit_show_reads_the_json_lines_file_without_a_database() {
    let up = calculator(true).await;
    let spec = GatewaySpec::new(&[up.port]);
    let mut gw = spec.start().await;
    let mut rids = Vec::new();
    for (i, user) in ["alice", "bob", "alice", "alice"].iter().enumerate() {
        let r = gw
            .developer(user)
            .call(
                i as u64,
                "exact_calculate",
                json!({"operator":"add","operands":["1","2"]}),
            )
            .await;
        assert_eq!(r.status(), 200);
        rids.push(request_id(&r));
    }
    gw.stop();
    assert_eq!(gw.audit_file_rows().len(), 4);
    let path = spec.dir.path().join("gateway.yaml");
    let out = cli(
        &["audit", "show", "--user", "alice", "--limit", "2"],
        &path,
        &spec.env,
    );
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shown: Vec<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, [rids[3].as_str(), rids[2].as_str()], "{out}");
    for r in &rows {
        assert_eq!(r["user_id"], "alice");
        assert!(r["time"].as_str().unwrap().ends_with('Z'), "{r}");
        assert!(r.get("time_us").is_none());
        assert_eq!(r["tool"], "exact_calculate");
    }
    let out = cli(
        &["audit", "show", "--request-id", &rids[1]],
        &path,
        &spec.env,
    );
    let only: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(only["user_id"], "bob");
}
