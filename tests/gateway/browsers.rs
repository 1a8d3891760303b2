//! Browser clients: CORS answered by the gateway for `allowed_origins` only, and a session that
//! keeps one id.

use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::{json, Value};

const ALLOWED: &str = "https://app.example.com";

async fn preflight(gw: &Gateway, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, gw.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, mcp-session-id, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn preflight_is_answered_for_allowed_origins_only() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    for path in [
        "/calculator/mcp",
        "/.well-known/oauth-protected-resource/calculator/mcp",
    ] {
        let r = preflight(&gw, path, ALLOWED).await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some(ALLOWED)
        );
        let methods = header(&r, "access-control-allow-methods").unwrap();
        assert!(
            methods.contains("POST") && methods.contains("DELETE"),
            "{methods}"
        );
        let allowed = header(&r, "access-control-allow-headers")
            .unwrap()
            .to_lowercase();
        for h in [
            "authorization",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
        ] {
            assert!(allowed.contains(h), "{h} in {allowed}");
        }
        assert!(header(&r, "vary").unwrap().contains("Origin"));

        let r = preflight(&gw, path, "https://evil.example.net").await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(header(&r, "access-control-allow-origin").is_none());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32003);
    }
    assert!(
        rec.received().is_empty(),
        "a preflight reached the upstream"
    );
}

#[tokio::test]
async fn answers_to_an_allowed_origin_are_readable_and_the_upstreams_cors_is_dropped() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    let client = gw.developer("alice");
    let r = client
        .request(reqwest::Method::POST)
        .header("Origin", ALLOWED)
        .header("Content-Type", "application/json")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let exposed = header(&r, "access-control-expose-headers").unwrap();
    assert!(exposed.contains("Mcp-Session-Id") && exposed.contains("WWW-Authenticate"));
    // A refusal is readable by the page too (it must see the 401 to log in).
    let r = Client::new(gw.url("/calculator/mcp"), None)
        .request(reqwest::Method::POST)
        .header("Origin", ALLOWED)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    // Without an Origin (not a browser), no CORS header, and the upstream's `*` never shows.
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "access-control-allow-origin").is_none());
}

/// A session keeps the id it was given: every answer in it repeats that id (the recorder, like
/// many servers, names its session on every answer).
#[tokio::test]
async fn a_session_keeps_one_id() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    let mut client = gw.developer("alice");
    client.initialize().await;
    let id = client.session.clone().expect("a session id");
    for (i, body) in [
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":"sse-2","method":"tools/call","params":{"name":"exact_calculate","arguments":{}}}),
        json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
    ]
    .iter()
    .enumerate()
    {
        let r = client.post(body).await;
        assert_eq!(r.status(), 200, "{i}");
        let again = header(&r, "mcp-session-id").expect("the upstream names its session");
        assert_eq!(again, id, "answer {i} changed the session id");
        let last = rec.received().pop().unwrap();
        assert_eq!(last.header("mcp-session-id").as_deref(), Some("recorder-session-1"));
    }
}
