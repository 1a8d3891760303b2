//! The official TypeScript SDK (v2) through the gateway, in every transport it offers: pinned to
//! the stateless 2026-07-28 revision, in `auto` negotiation, in its default 2025-11-25, and the
//! legacy `SSEClientTransport`. In each, an analyst sees and calls only `exact_calculate`.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn typescript_sdk_in_every_transport() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let analyst = token("bob", &["analyst"], json!({}));
    for (mode, path, protocol) in [
        ("2026-07-28", "/calculator/mcp", Some("2026-07-28")),
        ("auto", "/calculator/mcp", Some("2026-07-28")),
        ("2025", "/calculator/mcp", Some("2025-11-25")),
        ("sse", "/calculator/sse", None),
    ] {
        let seen = node_client(&gw.url(path), &analyst, mode).await;
        if let Some(p) = protocol {
            assert_eq!(seen["protocol"], p, "{mode}: {seen}");
        }
        assert_analyst_view(&seen, mode);
    }
    // One denied row per client, each with the refused tool.
    let denied = |rows: &[serde_json::Value]| {
        rows.iter()
            .filter(|r| r["tool"] == "statistics" && r["outcome"] == "denied")
            .count()
    };
    for _ in 0..50 {
        if denied(&gw.audit_file_rows()) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(denied(&gw.audit_file_rows()), 4);
}
