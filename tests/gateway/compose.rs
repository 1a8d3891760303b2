//! Composed scopes: several servers behind one endpoint, tools under their shown names, each call
//! routed to its server, one server down while the other serves, sessions that continue on another
//! replica.

use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A composed scope `workbench` of two servers that both have `exact_calculate`.
fn composed(alpha: u16, beta: u16) -> String {
    format!(
        r#"scopes:
  workbench:
    servers:
      - name: alpha
        upstreams: [ {{ url: "http://127.0.0.1:{alpha}/mcp" }} ]
        prefix: "alpha_"
        health_check: {{ kind: http, path: /health, interval: 1s }}
        tools: [exact_calculate, statistics]
      - name: beta
        upstreams: [ {{ url: "http://127.0.0.1:{beta}/mcp" }} ]
        health_check: {{ kind: http, path: /health, interval: 1s }}
        tools: [exact_calculate]
        rename: {{ exact_calculate: beta_calc }}
        description: {{ exact_calculate: "Beta's calculator" }}
"#
    )
}

const POLICY: &str = r#"
roles:
  developer:
    allow: ["workbench/*"]
  analyst:
    allow: ["workbench/alpha_exact_calculate", "workbench/beta_calc"]
"#;

fn spec(alpha: u16, beta: u16) -> GatewaySpec {
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = composed(alpha, beta);
    spec.policy_yaml = POLICY.into();
    spec
}

fn client(gw: &Gateway, user: &str, role: &str) -> Client {
    Client::new(
        gw.url("/workbench/mcp"),
        Some(token(user, &[role], json!({}))),
    )
}

async fn list(c: &Client) -> Value {
    rpc_body(
        c.post(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}))
            .await,
    )
    .await
}

/// The `tools/call`s a recorder received, as (tool name, session id, user).
fn calls(r: &Recorder) -> Vec<(String, Option<String>, Option<String>)> {
    r.received()
        .into_iter()
        .filter(|x| x.rpc_method().as_deref() == Some("tools/call"))
        .map(|x| {
            let body: Value = serde_json::from_slice(&x.body).unwrap();
            (
                body["params"]["name"].as_str().unwrap().to_string(),
                x.header("mcp-session-id"),
                x.header("x-user-id"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_composed_scope_shows_both_servers_and_routes_each_call_to_its_own() {
    let (alpha, beta) = (Recorder::start().await, Recorder::start().await);
    let gw = spec(alpha.port, beta.port).start().await;

    let mut dev = client(&gw, "alice", "developer");
    let init = dev.initialize().await;
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    let tools = list(&dev).await;
    assert_eq!(
        tool_names(&tools),
        ["alpha_exact_calculate", "alpha_statistics", "beta_calc"]
    );
    let beta_calc = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "beta_calc")
        .unwrap();
    assert_eq!(beta_calc["description"], "Beta's calculator");

    // The same tool name on both servers: each shown name reaches its own server, by the
    // server's name, in the session the gateway opened there, for the caller.
    let r = rpc_body(dev.call(2, "beta_calc", json!({"x": 1})).await).await;
    assert!(r.get("result").is_some(), "{r}");
    assert_eq!(
        calls(&beta),
        [(
            "exact_calculate".to_string(),
            Some("recorder-session-1".to_string()),
            Some("alice".to_string())
        )]
    );
    assert!(calls(&alpha).is_empty());
    let r = rpc_body(dev.call(3, "alpha_exact_calculate", json!({})).await).await;
    assert!(r.get("result").is_some(), "{r}");
    assert_eq!(calls(&alpha).len(), 1);
    assert_eq!(calls(&alpha)[0].0, "exact_calculate");
    assert_eq!(calls(&beta).len(), 1);
    for received in alpha.received().iter().chain(beta.received().iter()) {
        assert!(received.header("authorization").is_none());
        assert_eq!(
            received.header("x-gateway-auth").as_deref(),
            Some(UPSTREAM_SECRET)
        );
    }

    // The analyst sees and calls only what is granted; the rest is unknown and reaches no server.
    let mut analyst = client(&gw, "bob", "analyst");
    analyst.initialize().await;
    assert_eq!(
        tool_names(&list(&analyst).await),
        ["alpha_exact_calculate", "beta_calc"]
    );
    let refused = rpc_body(analyst.call(4, "alpha_statistics", json!({})).await).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "Unknown tool: alpha_statistics"
    );
    assert!(calls(&alpha).iter().all(|c| c.0 != "statistics"));
    // The server's own name is not a name of the scope.
    let refused = rpc_body(dev.call(5, "exact_calculate", json!({})).await).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");

    // The audit row names the shown tool and its server.
    let rows = gw.audit_rows_where(1, |r| r["tool"] == "beta_calc").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["scope"], "workbench");
    assert_eq!(rows[0]["upstream"], "beta");
}

/// The `list_changed` notifications a stream carries within `wait`.
async fn list_changed_within(stream: reqwest::Response, wait: Duration) -> usize {
    let mut stream = stream;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, stream.chunk()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains("notifications/tools/list_changed") {
            break;
        }
    }
    seen.matches("notifications/tools/list_changed").count()
}

#[tokio::test]
async fn one_server_down_the_other_keeps_serving_and_open_sessions_hear_of_it() {
    let alpha = calculator(false).await;
    let mut beta = calculator(false).await;
    let gw = spec(alpha.port, beta.port).start().await;
    let mut dev = client(&gw, "carol", "developer");
    dev.initialize().await;
    let stream = dev.open_stream().await;
    assert_eq!(stream.status(), 200);
    assert_eq!(tool_names(&list(&dev).await).len(), 3);

    beta.kill();
    assert!(list_changed_within(stream, Duration::from_secs(10)).await >= 1);
    assert_eq!(
        tool_names(&list(&dev).await),
        ["alpha_exact_calculate", "alpha_statistics"]
    );
    let r = rpc_body(
        dev.call(
            7,
            "alpha_exact_calculate",
            json!({"operator": "add", "operands": ["40", "2"]}),
        )
        .await,
    )
    .await;
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("42"),
        "{r}"
    );
    let down = dev
        .call(
            8,
            "beta_calc",
            json!({"operator": "add", "operands": ["1", "1"]}),
        )
        .await;
    assert_eq!(down.status(), 502);
    assert_eq!(rpc_body(down).await["error"]["code"], -32008);
}

#[tokio::test]
async fn a_session_opened_on_one_replica_continues_on_another() {
    let (alpha, beta) = (calculator(false).await, calculator(false).await);
    let one = spec(alpha.port, beta.port).start().await;
    let two = spec(alpha.port, beta.port).start().await;
    let mut first = client(&one, "dave", "developer");
    first.initialize().await;
    // The servers keep sessions (a call outside one is refused by them): the second replica
    // must find the client's session on each server from the id alone.
    let mut second = client(&two, "dave", "developer");
    second.session = first.session.clone();
    second.version = first.version;
    for (id, tool) in [(1, "alpha_exact_calculate"), (2, "beta_calc")] {
        let r = rpc_body(
            second
                .call(id, tool, json!({"operator": "add", "operands": ["2", "3"]}))
                .await,
        )
        .await;
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains('5'),
            "{tool}: {r}"
        );
    }
    // Another user cannot use it.
    let mut other = client(&two, "eve", "developer");
    other.session = first.session.clone();
    other.version = first.version;
    let r = other
        .call(
            3,
            "beta_calc",
            json!({"operator": "add", "operands": ["2", "3"]}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[test]
fn a_composed_scope_is_checked_like_any_other() {
    let mut spec = spec(1, 2);
    spec.tools_yaml = r#"scopes:
  workbench:
    upstreams: [ { url: "http://127.0.0.1:1/mcp" } ]
    servers:
      - name: alpha
        upstreams: [ { url: "http://127.0.0.1:1/mcp" } ]
        prefix: none
        tools: [search]
        rename: { fetch: get }
      - name: beta
        upstreams: [ { url: "http://127.0.0.1:2/mcp" } ]
        prefix: none
        tools: [search]
      - name: Bad Name
        upstreams: [ { url: "http://127.0.0.1:3/mcp" } ]
        tools: [x]
"#
    .into();
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"workbench/*\"]\n".into();
    let (ok, err) = spec.check();
    assert!(!ok);
    for expected in [
        "scopes.workbench.upstreams: a scope has either upstreams or servers",
        "scopes.workbench.servers[0].rename.fetch: not one of this server's tools",
        "scopes.workbench.servers[1].tools: \"search\" is shown by two servers",
        "scopes.workbench.servers[2].name: a server name is 1-32 of a-z 0-9 _ -",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// A composed scope of a stdio program (the official Python SDK over stdio) and an HTTP server:
/// the program's question (elicitation) reaches the official Python client (in a 2025 session:
/// the gateway's bridge for 2026-07-28 clients carries no server requests) through the composer
/// and its answer goes back to the program that asked; a cancellation reaches the program.
#[tokio::test]
async fn a_stdio_server_in_a_composed_scope_asks_its_client_and_hears_cancellations() {
    let calc = calculator(false).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/stdio_tools.py");
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        r#"scopes:
  workbench:
    timeout: 30s
    servers:
      - name: py
        upstreams: [ {{ command: ["{}", "{}", "{}"] }} ]
        tools: [slow, ask]
      - name: calc
        upstreams: [ {{ url: "http://127.0.0.1:{}/mcp" }} ]
        tools: [exact_calculate]
"#,
        sdk_python().display(),
        script.display(),
        log.path().display(),
        calc.port
    );
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"workbench/*\"]\n".into();
    let gw = spec.start().await;
    let url = gw.url("/workbench/mcp");
    let dev = token("dev", &["developer"], json!({}));
    let seen = python_client_script(
        "elicited_client.py",
        &[
            &url,
            &dev,
            "what is six times seven?",
            "forty-two",
            "py_ask",
            "legacy",
        ],
        &[],
    )
    .await;
    assert_eq!(seen["asked"], json!(["what is six times seven?"]), "{seen}");
    assert_eq!(
        seen["call"]["content"][0]["text"], "you said forty-two",
        "{seen}"
    );

    let mut client = Client::new(url, Some(dev));
    client.initialize().await;
    assert_eq!(
        tool_names(&list(&client).await),
        ["calc_exact_calculate", "py_ask", "py_slow"]
    );
    crate::stdio::cancel_reaches_the_program(&client, "py_slow", log.path()).await;
}

/// The official Python and TypeScript clients, in each revision they speak (2026-07-28 through the
/// gateway's bridge, 2025 sessions directly), on a composed scope: the analyst sees and calls
/// only the granted tool of the calculator server (shown without a prefix), and a tool of the
/// other server and the ungranted `statistics` are unknown.
#[tokio::test]
async fn official_clients_in_every_revision_see_a_composed_scope_as_granted() {
    let calc = calculator(false).await;
    let other = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        r#"scopes:
  workbench:
    servers:
      - name: calc
        upstreams: [ {{ url: "http://127.0.0.1:{}/mcp" }} ]
        prefix: none
        tools: [exact_calculate, statistics]
      - name: rec
        upstreams: [ {{ url: "http://127.0.0.1:{}/mcp" }} ]
        tools: [exact_calculate]
"#,
        calc.port, other.port
    );
    spec.policy_yaml = "roles:\n  analyst:\n    allow: [\"workbench/exact_calculate\"]\n".into();
    let gw = spec.start().await;
    let url = gw.url("/workbench/mcp");
    let analyst = token("bob", &["analyst"], json!({}));
    for mode in ["2026-07-28", "legacy", "auto"] {
        let seen = python_client_script("modern_client.py", &[&url, &analyst, mode], &[]).await;
        assert_analyst_view(&seen, &format!("python, {mode}"));
    }
    for mode in ["2026-07-28", "2025-11-25"] {
        let seen = node_client(&url, &analyst, mode).await;
        assert_analyst_view(&seen, &format!("typescript, {mode}"));
    }
    assert!(calls(&other).is_empty(), "{:?}", calls(&other));
}
