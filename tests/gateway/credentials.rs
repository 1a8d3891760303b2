//! Secrets the gateway holds for upstreams: `headers:` values from the environment or sealed in the
//! file (`enc:v1:…`, `mcp-gateway encrypt`), sent to their upstream only and found nowhere else.

use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::json;

const KEY: &str = "3f1c9a7e5b2d4068a1c3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
const OTHER_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const API_KEY: &str = "sk-live-7f3a9c1e5d2b4a68";

/// `value` sealed by `mcp-gateway encrypt` under `key`.
fn sealed(value: &str, key: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(bin())
        .arg("encrypt")
        .env("MCP_GATEWAY_SECRETS_KEY", key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn with_headers(port: u16, headers: &str) -> GatewaySpec {
    let mut spec = GatewaySpec::new(&[port]);
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        &format!("      - url: http://127.0.0.1:{port}/mcp\n"),
        &format!("      - url: http://127.0.0.1:{port}/mcp\n        headers: {headers}\n"),
    );
    spec
}

#[tokio::test]
async fn a_sealed_api_key_reaches_its_upstream_and_nothing_else() {
    let recorder = Recorder::start().await;
    let secret = sealed(API_KEY, KEY);
    assert!(secret.starts_with("enc:v1:") && !secret.contains(API_KEY));
    let mut spec = with_headers(
        recorder.port,
        &format!("{{ X-Api-Key: \"{secret}\", X-Team: \"${{TEAM_NAME}}\" }}"),
    );
    spec.env
        .push(("MCP_GATEWAY_SECRETS_KEY".into(), KEY.into()));
    spec.env.push(("TEAM_NAME".into(), "blue".into()));
    let (ok, check) = spec.check();
    assert!(ok, "{check}");
    let gw = spec.start().await;
    let mut client = gw.developer("alice");
    client.initialize().await;
    let r = rpc_body(client.call(1, "exact_calculate", json!({"x": 1})).await).await;
    assert!(r.get("result").is_some(), "{r}");
    let received = recorder.received();
    assert!(!received.is_empty());
    for x in &received {
        assert_eq!(x.header("x-api-key").as_deref(), Some(API_KEY), "{}", x.uri);
        assert_eq!(x.header("x-team").as_deref(), Some("blue"));
        assert!(x.header("authorization").is_none());
    }
    // Nowhere else: not in the log, the metrics, the audit rows, or what check prints.
    let rows = gw.audit_rows(2).await;
    let metrics = gw.metrics_text().await;
    for (what, text) in [
        ("log", gw.log_text()),
        ("metrics", metrics),
        ("audit", format!("{rows:?}")),
        ("check", check),
    ] {
        assert!(!text.contains(API_KEY), "the key is in the {what}");
        assert!(!text.contains("sk-live"), "the key is in the {what}");
    }
}

#[tokio::test]
async fn sealed_values_open_after_a_key_rotation_and_check_names_those_that_do_not() {
    let recorder = Recorder::start().await;
    let secret = sealed(API_KEY, KEY);
    // Rotated: a new current key, the old one listed under the id the value names.
    let id = secret.split(':').nth(2).unwrap().to_string();
    let mut spec = with_headers(recorder.port, &format!("{{ X-Api-Key: \"{secret}\" }}"));
    spec.env
        .push(("MCP_GATEWAY_SECRETS_KEY".into(), OTHER_KEY.into()));
    spec.env
        .push(("MCP_GATEWAY_SECRETS_OLD_KEYS".into(), format!("{id}:{KEY}")));
    let gw = spec.start().await;
    let client = {
        let mut c = gw.developer("bob");
        c.initialize().await;
        c
    };
    rpc_body(client.call(1, "exact_calculate", json!({})).await).await;
    assert!(recorder
        .received()
        .iter()
        .all(|x| x.header("x-api-key").as_deref() == Some(API_KEY)));

    // Without the old key the value cannot be opened: check names the header, never the value.
    let mut spec = with_headers(
        recorder.port,
        &format!("{{ X-Api-Key: \"{secret}\", X-User-ID: admin, \"Bad Name\": x }}"),
    );
    spec.env
        .push(("MCP_GATEWAY_SECRETS_KEY".into(), OTHER_KEY.into()));
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        format!("scopes.calculator.upstreams[0].headers.X-Api-Key: the sealed value cannot be opened: no key with id \"{id}\""),
        "scopes.calculator.upstreams[0].headers.X-User-ID: written or judged by the gateway itself".into(),
        "scopes.calculator.upstreams[0].headers.Bad Name: not a header name".into(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains(API_KEY));
    // No key at all.
    let spec = with_headers(recorder.port, &format!("{{ X-Api-Key: \"{secret}\" }}"));
    let (ok, out) = spec.check();
    assert!(!ok);
    assert!(
        out.contains("a sealed value needs MCP_GATEWAY_SECRETS_KEY"),
        "{out}"
    );
}
