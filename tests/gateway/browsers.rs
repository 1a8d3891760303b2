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

/// A 2026-07-28 request from a browser sends `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*`: the
/// preflight allows them (the `Mcp-Param-*` ones by name), so the browser lets it go.
#[tokio::test]
async fn the_preflight_allows_the_2026_routing_headers() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, gw.url("/calculator/mcp"))
        .header("Origin", ALLOWED)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, mcp-protocol-version, mcp-method, mcp-name, mcp-param-region, x-evil",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let allowed = header(&r, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "mcp-method",
        "mcp-name",
        "mcp-param-region",
        "mcp-protocol-version",
    ] {
        assert!(allowed.split(", ").any(|a| a == h), "{h} not in {allowed}");
    }
    assert!(!allowed.contains("x-evil"), "{allowed}");
}

/// The development authorization server answers browsers of the allowed origins (metadata, a
/// preflight for the token endpoint) and nobody else.
#[tokio::test]
async fn the_development_issuer_answers_cors_for_allowed_origins() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    let issuer_port = free_port();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("authorization_servers: [{ISSUER}]\n"),
        &format!("dev_issuer:\n  listen: 127.0.0.1:{issuer_port}\n"),
    );
    spec.without_health_check();
    let _gw = spec.start().await;
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    wait_http(&format!("{issuer}/jwks.json")).await;
    let http = reqwest::Client::new();
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{issuer}/token"))
        .header("Origin", ALLOWED)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert!(header(&r, "access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    let meta = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .header("Origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), 200);
    assert_eq!(
        header(&meta, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let other = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&other, "access-control-allow-origin"), None);
}

/// A GET that does not accept an event stream is told so by the gateway, as JSON-RPC, and is
/// never forwarded.
#[tokio::test]
async fn a_get_without_an_event_stream_accept_is_refused_here() {
    let rec = Recorder::start().await;
    let mut spec = GatewaySpec::new(&[rec.port]);
    spec.without_health_check();
    let gw = spec.start().await;
    for path in ["/calculator/mcp", "/calculator/sse"] {
        let r = reqwest::Client::new()
            .get(gw.url(path))
            .bearer_auth(token("ann", &["developer"], json!({})))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 406, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32600);
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Accept: text/event-stream"));
    }
    assert!(rec.received().is_empty(), "{:?}", rec.received());
}
