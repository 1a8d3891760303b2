//! `mcp-gateway bridge`, launched by the official Python SDK's stdio client: a stdio-only client
//! gets in with a token command, sees and calls only what its role is granted.

use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn python_stdio_client_through_the_bridge() {
    let up = calculator(true).await;
    let spec = GatewaySpec::new(&[up.port]);
    let gw = spec.start().await;
    let config = spec.write();
    let token_command = format!(
        "{} token --user bob --roles analyst --ttl 5m -c {}",
        bin(),
        config.display()
    );
    let endpoint = gw.url("/calculator/mcp");
    let args = [bin(), &endpoint, "--token-command", &token_command];
    let seen = python_client_script("stdio_bridge.py", &args, &spec.env).await;
    assert_eq!(
        seen["tools"],
        serde_json::json!(["exact_calculate"]),
        "{seen}"
    );
    assert_eq!(seen["call"]["structuredContent"]["result"], "3", "{seen}");
    assert_eq!(seen["call"]["isError"], false);
    let refused = seen["refused_error"]
        .as_str()
        .unwrap_or_else(|| panic!("{seen}"));
    assert!(refused.contains("Unknown tool: statistics"), "{refused}");
    // The bridge's calls are the analyst's, audited as such.
    let rows = gw.audit_rows(4).await;
    assert!(rows.iter().all(|r| r["user_id"] == "bob"), "{rows:?}");
    assert!(rows
        .iter()
        .any(|r| r["tool"] == "statistics" && r["outcome"] == "denied"));
}

/// Clients pinned to 2026-07-28 behind the bridge: each request goes up with the revision, method
/// and name its body carries in the headers, so the gateway judges it as the stateless revision
/// (no `initialize`, no session), and the analyst sees and calls only its tool. Both official
/// SDKs, and the Python one in `auto` mode too.
#[tokio::test]
async fn clients_pinned_to_2026_07_28_through_the_bridge() {
    let up = calculator(true).await;
    let spec = GatewaySpec::new(&[up.port]);
    let gw = spec.start().await;
    let endpoint = gw.url("/calculator/mcp");
    let analyst = token("bob", &["analyst"], serde_json::json!({}));
    for mode in ["2026-07-28", "auto"] {
        let mut env = spec.env.clone();
        env.push(("BRIDGE_CLIENT_MODE".into(), mode.into()));
        let args = [bin(), &endpoint, "--token", &analyst];
        let seen = python_client_script("stdio_bridge.py", &args, &env).await;
        assert_eq!(seen["protocol"], "2026-07-28", "python {mode}: {seen}");
        assert_analyst_view(&seen, &format!("python {mode} through the bridge"));
    }
    let seen = node_client(&endpoint, &analyst, "bridge:2026-07-28").await;
    assert_analyst_view(&seen, "typescript pinned to 2026-07-28 through the bridge");
    let rows = gw.audit_rows(9).await;
    assert!(rows.iter().all(|r| r["user_id"] == "bob"), "{rows:?}");
    assert!(
        rows.iter().all(|r| r["method"] != "initialize"),
        "every client spoke the stateless revision: {rows:?}"
    );
}

/// The bridge as a stdio client drives it (JSON lines), across an upstream restart: the upstream
/// forgets the session, the gateway answers 404, the bridge opens a new session with the client's
/// own `initialize` and the client's call still gets its answer. Closing stdin ends the bridge.
#[tokio::test]
async fn the_bridge_reopens_a_session_the_upstream_forgot() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut up = calculator(false).await;
    let port = up.port;
    let gw = GatewaySpec::new(&[port]).start().await;
    let mut bridge = tokio::process::Command::new(bin())
        .args(["--log-format", "text", "bridge", "--endpoint"])
        .arg(gw.url("/calculator/mcp"))
        .args([
            "--token",
            &token("alice", &["developer"], serde_json::json!({})),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = bridge.stdin.take().unwrap();
    let mut lines = BufReader::new(bridge.stdout.take().unwrap()).lines();
    let init = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}});
    let v = exchange(&mut stdin, &mut lines, init).await;
    assert!(v["result"]["serverInfo"].is_object(), "{v}");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();
    let call = |id: u64| {
        serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
        "name":"exact_calculate","arguments":{"operator":"add","operands":["2","2"]}}})
    };
    let v = exchange(&mut stdin, &mut lines, call(2)).await;
    assert_eq!(v["result"]["structuredContent"]["result"], "4", "{v}");

    up.kill();
    let _up = tool_server_on("calculator", false, &[], port).await;
    let v = exchange(&mut stdin, &mut lines, call(3)).await;
    assert_eq!(v["id"], 3);
    assert_eq!(v["result"]["structuredContent"]["result"], "4", "{v}");

    drop(stdin);
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), bridge.wait())
        .await
        .expect("the bridge exits once stdin closes")
        .unwrap();
    assert!(status.success());
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    bridge
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(err.contains("gateway session reopened"), "{err}");
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Writes one message to the bridge and reads the next line it prints.
async fn exchange(stdin: &mut tokio::process::ChildStdin, lines: &mut Lines, v: Value) -> Value {
    use tokio::io::AsyncWriteExt;
    stdin.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("an answer within 20 s")
        .unwrap()
        .expect("the bridge is still running");
    serde_json::from_str(&line).unwrap()
}

/// Starts `mcp-gateway bridge ARGS` in `dir`, its stdin and stdout piped.
fn bridge_in(dir: &std::path::Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(bin())
        .args(["--log-format", "text", "bridge"])
        .args(args)
        .current_dir(dir)
        .env_remove("MCP_GATEWAY_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn initialize() -> Value {
    serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}})
}

/// A client whose token is refused reads why: the gateway's reason, and the token command that
/// failed (a stdio client shows only this message), with the gateway's code for a refused token.
#[tokio::test]
async fn a_refused_token_names_its_cause() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let endpoint = gw.url("/calculator/mcp");
    let here = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &["--token-command", "echo no such config >&2; exit 3"],
            &["token command", "failed", "exit status: 3", "Unauthorized"],
        ),
        (
            &["--token", "not-a-jwt"],
            &["refused the token", "Unauthorized"],
        ),
    ];
    for (args, want) in cases {
        let mut b = bridge_in(
            here.path(),
            &[&["--endpoint", endpoint.as_str()], args].concat(),
        );
        let mut stdin = b.stdin.take().unwrap();
        let mut lines = BufReader::new(b.stdout.take().unwrap()).lines();
        let v = exchange(&mut stdin, &mut lines, initialize()).await;
        assert_eq!(v["id"], 1);
        assert_eq!(v["error"]["code"], -32001, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        for w in want {
            assert!(message.contains(w), "{w:?} missing in {message:?}");
        }
    }
}

/// The editor snippet of docs/clients.md (`--issuer-url` of the development issuer) works from
/// any directory: nothing in it depends on where the client starts the bridge.
#[tokio::test]
async fn the_documented_editor_snippet_works_from_any_directory() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    let issuer_port = free_port();
    spec.gateway_yaml
        .push_str(&format!("dev_issuer:\n  listen: 127.0.0.1:{issuer_port}\n"));
    let gw = spec.start().await;
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    wait_http(&format!("{issuer}/.well-known/oauth-authorization-server")).await;
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/clients.md")).unwrap();
    let snippet = "\"--issuer-url\", \"http://127.0.0.1:8010\", \"--user-id\", \"alice\", \"--roles\", \"developer\"";
    assert!(
        docs.contains(snippet),
        "the snippet changed: update this test"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let endpoint = gw.url("/calculator/mcp");
    let mut b = bridge_in(
        elsewhere.path(),
        &[
            "--endpoint",
            &endpoint,
            "--issuer-url",
            &issuer,
            "--user-id",
            "alice",
            "--roles",
            "developer",
        ],
    );
    let mut stdin = b.stdin.take().unwrap();
    let mut lines = BufReader::new(b.stdout.take().unwrap()).lines();
    let v = exchange(&mut stdin, &mut lines, initialize()).await;
    assert!(v["result"]["serverInfo"].is_object(), "{v}");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();
    let call = serde_json::json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"exact_calculate","arguments":{"operator":"add","operands":["2","3"]}}});
    let v = exchange(&mut stdin, &mut lines, call).await;
    assert_eq!(v["result"]["structuredContent"]["result"], "5", "{v}");
}
