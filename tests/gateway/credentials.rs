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
    with_setting(port, &format!("headers: {headers}"))
}

/// A gateway whose upstream (the one on `port`) has `setting` (`key: value`).
fn with_setting(port: u16, setting: &str) -> GatewaySpec {
    let mut spec = GatewaySpec::new(&[port]);
    spec.tools_yaml = edit(
        &spec.tools_yaml,
        &format!("      - url: http://127.0.0.1:{port}/mcp\n"),
        &format!("      - url: http://127.0.0.1:{port}/mcp\n        {setting}\n"),
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
    // Nowhere else: not in the log, the metrics, the audit rows, or what check prints. The audit
    // row says which kind of credential went with the call.
    let calls = gw
        .audit_rows_where(1, |r| r["tool"] == "exact_calculate")
        .await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["upstream_credential"], "headers", "{calls:?}");
    let rows = gw.audit_file_rows();
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

/// A token endpoint (client credentials, HTTP Basic) and an MCP upstream that takes only its
/// tokens: tokens are `tok-N`, valid for `lifetime` seconds; the upstream can be told to refuse one.
struct Oauth {
    port: u16,
    issued: Arc<AtomicUsize>,
    /// Authorization values the upstream saw on `tools/call`, with the status it answered.
    seen: Arc<Mutex<Vec<(String, u16)>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

use axum::response::IntoResponse;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

async fn oauth(lifetime: u64) -> Oauth {
    let issued = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let (i, s, r) = (issued.clone(), seen.clone(), refused.clone());
    let port = serve_router(move |_| {
        let token = move |headers: axum::http::HeaderMap, form: axum::extract::Form<std::collections::HashMap<String, String>>| {
            let i = i.clone();
            async move {
                // gw-client:gw-secret in HTTP Basic, the grant and scope as configured.
                let basic = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                if basic != "Basic Z3ctY2xpZW50Omd3LXNlY3JldA==" || form.get("grant_type").map(String::as_str) != Some("client_credentials") || form.get("scope").map(String::as_str) != Some("tools") {
                    return (axum::http::StatusCode::UNAUTHORIZED, "bad client").into_response();
                }
                let n = i.fetch_add(1, Ordering::SeqCst) + 1;
                axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": lifetime})).into_response()
            }
        };
        let mcp = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                let msg: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let ok = auth.starts_with("Bearer tok-") && !r.lock().unwrap().contains(&auth);
                if msg["method"] == "tools/call" {
                    s.lock().unwrap().push((auth.clone(), if ok { 200 } else { 401 }));
                }
                if !ok {
                    return (axum::http::StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer")], "").into_response();
                }
                let Some(id) = msg.get("id").cloned() else {
                    return axum::http::StatusCode::ACCEPTED.into_response();
                };
                let result = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "vendor", "version": "1"}}),
                    "tools/list" => json!({"tools": [{"name": "exact_calculate", "inputSchema": {"type": "object"}}, {"name": "statistics", "inputSchema": {"type": "object"}}]}),
                    _ => json!({"content": [{"type": "text", "text": "ok"}], "isError": false}),
                };
                axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
            }
        };
        axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/mcp", axum::routing::post(mcp))
    })
    .await;
    Oauth {
        port,
        issued,
        seen,
        refused,
    }
}

#[tokio::test]
async fn a_client_credentials_upstream_gets_a_machine_token_renewed_on_expiry_and_after_a_401() {
    let o = oauth(2).await;
    let secret = sealed("gw-secret", KEY);
    let mut spec = with_setting(
        o.port,
        &format!("auth: {{ oauth_client_credentials: {{ token_url: \"http://127.0.0.1:{}/token\", client_id: gw-client, client_secret: \"{secret}\", scope: tools }} }}", o.port),
    );
    spec.without_health_check();
    spec.env
        .push(("MCP_GATEWAY_SECRETS_KEY".into(), KEY.into()));
    let (ok, out) = spec.check();
    assert!(ok, "{out}");
    let gw = spec.start().await;
    let mut client = gw.developer("carol");
    client.initialize().await;
    let call = |id: u64| client.call(id, "exact_calculate", json!({}));
    let r = rpc_body(call(1).await).await;
    assert_eq!(r["result"]["content"][0]["text"], "ok", "{r}");
    let first = o.seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        first.0.starts_with("Bearer tok-") && first.1 == 200,
        "{first:?}"
    );

    // After the token's life (2 s), calls carry a newer one: renewed without a refusal.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    rpc_body(call(2).await).await;
    let second = o.seen.lock().unwrap().last().cloned().unwrap();
    assert_ne!(second.0, first.0);
    assert_eq!(second.1, 200);

    // The upstream stops taking the current token: the call is refused once at the upstream,
    // then goes through with a new token, and the client sees only the answer.
    o.refused.lock().unwrap().push(second.0.clone());
    let issued = o.issued.load(Ordering::SeqCst);
    let r = rpc_body(call(3).await).await;
    assert_eq!(r["result"]["content"][0]["text"], "ok", "{r}");
    let seen = o.seen.lock().unwrap().clone();
    let n = seen.len();
    assert_eq!(seen[n - 2], (second.0.clone(), 401), "{seen:?}");
    assert_eq!(seen[n - 1].1, 200, "{seen:?}");
    assert_ne!(seen[n - 1].0, second.0);
    assert!(o.issued.load(Ordering::SeqCst) > issued);
    // The client's token never reached the upstream; the secret and tokens are in no log line.
    assert!(seen.iter().all(|(a, _)| a.starts_with("Bearer tok-")));
    let log = gw.log_text();
    assert!(!log.contains("gw-secret") && !log.contains("tok-"), "{log}");
    let rows = gw
        .audit_rows_where(3, |r| r["tool"] == "exact_calculate")
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["upstream_credential"] == "machine_token"),
        "{rows:?}"
    );
    let metrics = gw.metrics_text().await;
    assert!(
        metric(
            &metrics,
            "mcp_upstream_token_requests_total{result=\"ok\",scope=\"calculator\"}"
        ) >= 3.0,
        "{metrics}"
    );
}

/// `auth:` is checked: per_user_oauth without the consent page's public URL, a token URL that is not one, a secret that cannot be
/// opened, `Authorization` set twice; the secret is never printed.
#[test]
fn upstream_auth_problems_are_named() {
    let mut spec = GatewaySpec::new(&[1, 2, 3]);
    let auth = |port: u16, auth: &str| {
        (
            format!("      - url: http://127.0.0.1:{port}/mcp\n"),
            format!("      - url: http://127.0.0.1:{port}/mcp\n        auth: {auth}\n"),
        )
    };
    for (from, to) in [
        auth(1, "per_user_oauth"),
        auth(2, "{ oauth_client_credentials: { token_url: \"ftp://idp\", client_id: a, client_secret: \"enc:v1:00000000:AAAAAAAAAAAAAAAA:AAAA\" } }"),
        auth(3, "{ oauth_client_credentials: { token_url: \"https://idp/token\", client_id: a, client_secret: s3cr3t-value, scpoe: x } }"),
    ] {
        spec.tools_yaml = edit(&spec.tools_yaml, &from, &to);
    }
    spec.env
        .push(("MCP_GATEWAY_SECRETS_KEY".into(), KEY.into()));
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "public_url: auth: per_user_oauth needs the gateway's public URL",
        "scopes.calculator.upstreams[1].auth.oauth_client_credentials.token_url: not an http(s) URL",
        "scopes.calculator.upstreams[1].auth.oauth_client_credentials.client_secret: the sealed value cannot be opened",
        "unknown field `scpoe`",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("s3cr3t-value"), "{out}");
}

/// The claims of a JWT (its payload, not verified: the test reads what the upstream was given).
fn claims_of(bearer: &str) -> serde_json::Value {
    use base64::Engine;
    let token = bearer.strip_prefix("Bearer ").unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn token_exchange_gives_the_upstream_a_token_for_the_caller_never_the_callers_own() {
    let recorder = Recorder::start().await;
    // The authorization server: the development issuer run alone on a configuration with the
    // same JWT settings, so it verifies the callers' tokens as the gateway does.
    let idp = GatewaySpec::new(&[recorder.port]);
    idp.write();
    let (_idp, idp_url) = crate::login::standalone_issuer(&idp).await;
    let spec = with_setting(
        recorder.port,
        &format!("auth: {{ token_exchange: {{ token_url: \"{idp_url}/token\", audience: \"https://vendor.example/mcp\", scope: tools }} }}"),
    );
    let (ok, out) = spec.check();
    assert!(ok, "{out}");
    let gw = spec.start().await;
    let mut seen_tokens = Vec::new();
    for user in ["alice", "bob"] {
        let mut c = gw.developer(user);
        seen_tokens.push(c.token.clone().unwrap());
        c.initialize().await;
        for id in 1..=2 {
            let r = rpc_body(c.call(id, "exact_calculate", json!({})).await).await;
            assert!(r.get("result").is_some(), "{r}");
        }
    }
    let received = recorder.received();
    assert!(received.len() >= 8, "{}", received.len());
    for x in &received {
        let auth = x.header("authorization").expect("an exchanged token");
        let user = x.header("x-user-id").unwrap();
        let claims = claims_of(&auth);
        assert_eq!(claims["sub"], user.as_str(), "{claims}");
        assert_eq!(claims["aud"], "https://vendor.example/mcp", "{claims}");
        assert!(
            seen_tokens.iter().all(|t| !auth.contains(t.as_str())),
            "a caller's own token reached the upstream"
        );
    }
    let rows = gw
        .audit_rows_where(4, |r| r["tool"] == "exact_calculate")
        .await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["upstream_credential"] == "token_exchange"),
        "{rows:?}"
    );
    // One exchange per caller: the others came from the cache.
    let metrics = gw.metrics_text().await;
    assert_eq!(
        metric(
            &metrics,
            "mcp_upstream_token_requests_total{result=\"ok\",scope=\"calculator\"}"
        ),
        2.0,
        "{metrics}"
    );
}

/// A 2026-07-28 client on a scope bridged to a 2025 upstream: the call the gateway sends itself
/// (so the upstream could ask back) carries the caller's exchanged token as a proxied one does,
/// never the caller's own.
#[tokio::test]
async fn a_bridged_call_carries_the_callers_exchanged_token() {
    let recorder = Recorder::start().await;
    let idp = GatewaySpec::new(&[recorder.port]);
    idp.write();
    let (_idp, idp_url) = crate::login::standalone_issuer(&idp).await;
    let mut spec = with_setting(
        recorder.port,
        &format!("auth: {{ token_exchange: {{ token_url: \"{idp_url}/token\", audience: \"https://vendor.example/mcp\", scope: tools }} }}"),
    );
    spec.scope_setting("upstream_version: 2025-11-25");
    let gw = spec.start().await;
    let mut c = gw.developer("carol");
    let own = c.token.clone().unwrap();
    c.version = Some("2026-07-28");
    let r = c
        .request(reqwest::Method::POST)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "exact_calculate")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "exact_calculate", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    let v = rpc_body(r).await;
    assert!(v["result"].is_object(), "{v}");
    let received = recorder.received();
    let call = (received.iter())
        .find(|x| String::from_utf8_lossy(&x.body).contains("\"tools/call\""))
        .expect("the call reached the upstream");
    let auth = call.header("authorization").expect("an exchanged token");
    assert!(
        !auth.contains(own.as_str()),
        "the caller's own token reached the upstream"
    );
    assert_eq!(claims_of(&auth)["sub"], "carol");
    assert_eq!(call.header("x-user-id").as_deref(), Some("carol"));
}
