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
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/stdio_bridge.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args([bin(), &gw.url("/calculator/mcp"), &token_command])
        .envs(spec.env.iter().cloned())
        .output()
        .await
        .expect("python3 runs (the Python MCP SDK is in tests/requirements.txt)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
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
