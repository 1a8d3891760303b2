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
