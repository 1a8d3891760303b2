//! stdio MCP servers as upstreams (`command:`): the reference servers from npm, run by the gateway
//! behind its stdio adapter and reached through the same door as any upstream.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A gateway whose `everything` scope runs `@modelcontextprotocol/server-everything` over stdio
/// (`instances` processes), with `GREETING` from the gateway's environment; developers may use
/// its tools, analysts only `echo`.
fn everything(instances: usize) -> GatewaySpec {
    let server = node_dir().join("node_modules/.bin/mcp-server-everything");
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        r#"scopes:
  everything:
    upstreams:
      - command: ["{}"]
        env: {{ GREETING: "${{STDIO_TEST_GREETING}}" }}
        instances: {instances}
    timeout: 30s
    tools: [echo, get-env, get-sum, trigger-long-running-operation]
"#,
        server.display()
    );
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"everything/*\"]\n  analyst:\n    allow: [\"everything/echo\"]\n".into();
    spec.env
        .push(("STDIO_TEST_GREETING".into(), "hello".into()));
    spec
}

/// The official Python SDK lists and calls through the gateway, filtered by role; the program
/// gets the environment it was given and nothing of the gateway's (its secrets stay).
#[tokio::test]
async fn a_stdio_server_is_an_upstream_like_any_other() {
    let spec = everything(1);
    let gw = spec.start().await;
    let url = gw.url("/everything/mcp");
    let analyst = token("ana", &["analyst"], json!({}));
    let seen = python_client_script(
        "governed_client.py",
        &[&url, &analyst, "echo", r#"{"message": "hi"}"#],
        &[],
    )
    .await;
    let tools: Vec<&String> = seen["tools"].as_object().unwrap().keys().collect();
    assert_eq!(tools, ["echo"], "{seen}");
    assert_eq!(seen["call"]["content"][0]["text"], "Echo: hi", "{seen}");

    let developer = token("dev", &["developer"], json!({}));
    let seen = python_client_script(
        "governed_client.py",
        &[&url, &developer, "get-env", "{}"],
        &[],
    )
    .await;
    assert_eq!(seen["tools"].as_object().unwrap().len(), 4, "{seen}");
    let env: Value = serde_json::from_str(seen["call"]["content"][0]["text"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("get-env: {e}: {seen}"));
    assert_eq!(env["GREETING"], "hello", "{env}");
    for secret in [
        "TEST_JWT_SECRET",
        "TOOL_GATEWAY_SHARED_SECRET",
        "MCP_GATEWAY_STDIO_PROGRAM",
        "STDIO_TEST_GREETING",
    ] {
        assert!(
            env.get(secret).is_none(),
            "{secret} reached the program: {env}"
        );
    }
    // An analyst's call of a tool it may not use never reaches the program.
    let mut client = Client::new(url.clone(), Some(analyst));
    client.initialize().await;
    let v = rpc_body(client.call(2, "get-env", json!({})).await).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    // The tool registry reads the program's tools like any upstream's.
    let config = spec.dir.path().join("gateway.yaml");
    let mut listed = String::new();
    for _ in 0..100 {
        listed = cli(&["tools", "list"], &config, &spec.env);
        if listed.contains("everything/echo") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed.contains("everything/echo"), "{listed}");
    assert!(listed.contains("everything/get-sum"), "{listed}");
}

/// Five clients, ten calls each at once, all with the same ids 1..10, on one shared process:
/// every answer reaches its own caller.
#[tokio::test]
async fn fifty_concurrent_calls_from_five_clients_each_get_their_own_answer() {
    let gw = everything(1).start().await;
    let mut clients = Vec::new();
    for c in 0..5u64 {
        let mut client = developer(&gw, &format!("user{c}"));
        client.initialize().await;
        clients.push((c, client));
    }
    let calls = clients.iter().flat_map(|(c, client)| {
        (1..=10u64).map(move |i| async move {
            let r = client
                .call(i, "get-sum", json!({"a": c * 100, "b": i}))
                .await;
            let v = rpc_body(r).await;
            (c * 100, i, v)
        })
    });
    let answers = futures_util::future::join_all(calls).await;
    assert_eq!(answers.len(), 50);
    for (a, b, v) in answers {
        assert_eq!(v["id"], b, "{v}");
        let want = format!("The sum of {a} and {b} is {}.", a + b);
        assert_eq!(v["result"]["content"][0]["text"], want, "{v}");
    }
}

/// Progress travels to the client whose call it is, under the client's own token, even when two
/// clients use the same token at once.
#[tokio::test]
async fn progress_reaches_its_own_client() {
    let gw = everything(1).start().await;
    let call = |client: Client| async move {
        let r = client
            .post(
                &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
                "name":"trigger-long-running-operation","arguments":{"duration":1,"steps":2},
                "_meta":{"progressToken":"same"}}}),
            )
            .await;
        r.text().await.unwrap()
    };
    let (mut a, mut b) = (developer(&gw, "a"), developer(&gw, "b"));
    a.initialize().await;
    b.initialize().await;
    let (ta, tb) = tokio::join!(call(a), call(b));
    for text in [ta, tb] {
        let messages: Vec<Value> = sse_events(&text)
            .iter()
            .filter_map(|e| e.iter().find(|(k, _)| k == "data"))
            .map(|(_, d)| serde_json::from_str(d).unwrap())
            .collect();
        let progress: Vec<&Value> = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 2, "{text}");
        assert!(
            progress
                .iter()
                .all(|p| p["params"]["progressToken"] == "same"),
            "{text}"
        );
        assert!(messages.last().unwrap()["result"].is_object(), "{text}");
    }
}

/// A developer's client of the `everything` scope.
fn developer(gw: &Gateway, user: &str) -> Client {
    Client::new(
        gw.url("/everything/mcp"),
        Some(token(user, &["developer"], json!({}))),
    )
}

/// The pid the adapter logged for the program it started last.
fn program_pid(log: &str) -> Option<u32> {
    log.lines()
        .rev()
        .find(|l| l.contains("stdio server started"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

/// A program killed in the middle of a call: the call is answered with -32008 at once (it never
/// hangs), the adapter and the program are started again, and a new session works.
#[tokio::test]
async fn a_killed_program_fails_its_call_at_once_and_comes_back() {
    let gw = everything(1).start().await;
    let mut client = developer(&gw, "alice");
    client.initialize().await;
    let pid = program_pid(&gw.log_with("stdio server started").await).expect("the program's pid");
    let long = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
        "name":"trigger-long-running-operation","arguments":{"duration":30,"steps":3}}});
    let slow = client.post(&long);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    let (r, ()) = tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(10), slow)
                .await
                .expect("the call never ended")
        },
        kill
    );
    let v = rpc_body(r).await;
    assert_eq!(v["id"], 5, "{v}");
    assert_eq!(v["error"]["code"], -32008, "{v}");
    // The session lived in the adapter that exited: the client is told to start a new one.
    let mut again = None;
    for _ in 0..100 {
        let mut fresh = developer(&gw, "alice");
        let r = fresh
            .post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
            .await;
        if r.status() == 200 {
            fresh.session = r
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().into());
            fresh.version = Some("2025-06-18");
            again = Some(fresh);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = again.expect("the program came back within 10 s");
    let v = rpc_body(fresh.call(6, "echo", json!({"message": "back"})).await).await;
    assert_eq!(v["result"]["content"][0]["text"], "Echo: back", "{v}");
    // The restart is counted.
    let series = "mcp_process_restarts_total{scope=\"everything\"}";
    let text = gw.metrics_when(series, 1.0).await;
    assert_eq!(metric(&text, series), 1.0, "{text}");
}

/// A gateway whose `pytools` scope runs `tests/servers/stdio_tools.py` (the official Python SDK
/// over stdio), noting its calls in `log`.
fn pytools(log: &std::path::Path) -> GatewaySpec {
    pytools_with(log, "", "slow, ask, remember, recall")
}

/// The same with `settings` on the command upstream and `tools` exposed.
pub fn pytools_with(log: &std::path::Path, settings: &str, tools: &str) -> GatewaySpec {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/stdio_tools.py");
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        "scopes:\n  pytools:\n    upstreams:\n      - command: [\"{}\", \"{}\", \"{}\"]\n{settings}    timeout: 30s\n    tools: [{tools}]\n",
        sdk_python().display(),
        script.display(),
        log.display()
    );
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"pytools/*\"]\n".into();
    spec
}

/// A request of the program's (elicitation) reaches the client whose call it is, and its answer
/// goes back; a client's cancellation reaches the program (the call stops there) and ends the
/// client's stream.
#[tokio::test]
async fn requests_of_the_program_and_cancellations_reach_their_side() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let gw = pytools(log.path()).start().await;
    let url = gw.url("/pytools/mcp");
    let dev = token("dev", &["developer"], json!({}));
    let seen = python_client_script(
        "elicited_client.py",
        &[&url, &dev, "what is six times seven?", "forty-two"],
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
    let notes = cancel_reaches_the_program(&client, "slow", log.path()).await;
    assert!(!notes.contains("end c1"), "{notes}");
}

/// Starts `tool` (stdio_tools.py's `slow`, under its shown name) for 20 s with the tag `c1`, and
/// once the program noted its start, cancels it: the call's stream ends within 10 s and the
/// program notes the cancellation. Returns the program's notes.
pub async fn cancel_reaches_the_program(
    client: &Client,
    tool: &str,
    log: &std::path::Path,
) -> String {
    let call = json!({"jsonrpc":"2.0","id":"c1","method":"tools/call",
        "params":{"name":tool,"arguments":{"ms":20000,"tag":"c1"}}});
    let notes = || std::fs::read_to_string(log).unwrap_or_default();
    let cancel = async {
        for _ in 0..200 {
            if notes().contains("start c1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = client
            .post(&json!({"jsonrpc":"2.0","method":"notifications/cancelled",
                "params":{"requestId":"c1","reason":"the user gave up"}}))
            .await;
        assert_eq!(r.status(), 202);
    };
    let (ended, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(10), async {
            client.post(&call).await.text().await
        }),
        cancel
    );
    ended
        .expect("the cancelled call's stream did not end")
        .unwrap();
    for _ in 0..100 {
        if notes().contains("cancelled c1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(notes().contains("cancelled c1"), "{}", notes());
    notes()
}

/// `@modelcontextprotocol/server-memory` over stdio, shared: what one client stores, another
/// reads (one process serves both), in the file its `env:` names and nowhere else.
#[tokio::test]
async fn a_shared_memory_server_keeps_one_graph_for_its_clients() {
    let server = node_dir().join("node_modules/.bin/mcp-server-memory");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memory.jsonl");
    let mut spec = GatewaySpec::new(&[]);
    spec.tools_yaml = format!(
        "scopes:\n  memory:\n    upstreams:\n      - command: [\"{}\"]\n        env: {{ MEMORY_FILE_PATH: \"{}\" }}\n    tools: [create_entities, read_graph]\n",
        server.display(),
        file.display()
    );
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"memory/*\"]\n".into();
    let gw = spec.start().await;
    let client = |user: &str| {
        Client::new(
            gw.url("/memory/mcp"),
            Some(token(user, &["developer"], json!({}))),
        )
    };
    let (mut a, mut b) = (client("a"), client("b"));
    a.initialize().await;
    b.initialize().await;
    let stored = rpc_body(
        a.call(
            1,
            "create_entities",
            json!({"entities": [{"name": "gateway", "entityType": "service", "observations": ["speaks MCP"]}]}),
        )
        .await,
    )
    .await;
    assert!(stored["result"].is_object(), "{stored}");
    let graph = rpc_body(b.call(1, "read_graph", json!({})).await).await;
    let text = graph["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("speaks MCP"), "{graph}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("gateway"));
}

/// Posts `initialize` as a client of `url`; the answer and the session id it opened.
async fn open(url: &str, user: &str) -> (Value, Option<Client>) {
    let mut c = Client::new(
        url.to_string(),
        Some(token(user, &["developer"], json!({}))),
    );
    let r = c
        .post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await;
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let v = rpc_body(r).await;
    c.session = session.clone();
    c.version = Some("2025-06-18");
    (v, session.map(|_| c))
}

fn text(v: &Value) -> String {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `session: per_client`: each client session has a process of its own (what one keeps, another
/// does not see), at most `max_processes` at once (one more is refused with -32013 until one
/// ends), stopped at DELETE and after `idle_timeout` (its client is then told to start anew).
#[tokio::test]
async fn per_client_processes_keep_clients_apart_and_end_with_their_sessions() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut spec = pytools(log.path());
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        "    timeout: 30s\n",
        "        session: per_client\n        max_processes: 2\n        idle_timeout: 3s\n    timeout: 30s\n",
    );
    let gw = spec.start().await;
    let url = gw.url("/pytools/mcp");
    // The tool registry reads the tools at start in a session (and a process) of its own: wait
    // until it has, so its process does not hold one of the two places.
    let config = spec.dir.path().join("gateway.yaml");
    for _ in 0..100 {
        if cli(&["tools", "list"], &config, &spec.env).contains("pytools/recall") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, a) = open(&url, "a").await;
    let (_, b) = open(&url, "b").await;
    let (a, b) = (a.expect("a session"), b.expect("b session"));
    assert_eq!(
        text(&rpc_body(a.call(1, "remember", json!({"value": "a-only"})).await).await),
        "kept"
    );
    assert_eq!(
        text(&rpc_body(b.call(1, "recall", json!({})).await).await),
        ""
    );
    assert_eq!(
        text(&rpc_body(a.call(2, "recall", json!({})).await).await),
        "a-only"
    );

    let (refused, none) = open(&url, "c").await;
    assert!(none.is_none(), "{refused}");
    assert_eq!(refused["error"]["code"], -32013, "{refused}");

    let r = a.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (_, c) = open(&url, "c").await;
    let c = c.expect("a process is free again after a's DELETE");
    assert_eq!(
        text(&rpc_body(c.call(1, "recall", json!({})).await).await),
        ""
    );

    // b stays idle past idle_timeout: its process stops, its client is told to start anew.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = rpc_body(b.call(2, "recall", json!({})).await).await;
    assert_eq!(v["error"]["code"], -32010, "{v}");
}

/// A 2025-03-26 batch reaches a stdio server: each request answered, under its own id, on the
/// batch's one stream.
#[tokio::test]
async fn a_batch_reaches_a_stdio_server() {
    let gw = everything(1).start().await;
    let mut client = developer(&gw, "alice");
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await;
    assert_eq!(r.status(), 200);
    client.session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().into());
    client.version = Some("2025-03-26");
    let r = client
        .post(&json!([
            {"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"message":"one"}}},
            {"jsonrpc":"2.0","method":"notifications/initialized"},
            {"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{"message":"two"}}}
        ]))
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut answers: Vec<(String, String)> = sse_events(&text)
        .iter()
        .flat_map(|e| e.iter().filter(|(k, _)| k == "data"))
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            let id = v["id"].as_str()?.to_string();
            let text = v["result"]["content"][0]["text"].as_str()?.to_string();
            Some((id, text))
        })
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        [
            ("a".to_string(), "Echo: one".to_string()),
            ("b".to_string(), "Echo: two".to_string())
        ],
        "{text}"
    );
}
