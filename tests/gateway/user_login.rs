//! Users' own logins at upstreams (`auth: per_user_oauth`), end to end: a vendor's MCP server
//! (another gateway, with its own development authorization server and its own key, in front of a
//! recording upstream) accepts only its own users' tokens. The official Python SDK client gets
//! the URL elicitation, a browser signs in through the consent page (first at the gateway's
//! authorization server, then at the vendor's), and the retried call reaches the vendor with the
//! user's own vendor token; refresh, revocation (CLI and page) and a link opened by someone else.

use crate::common::postgres::Postgres;
use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashMap;

const KEY: &str = "3f1c9a7e5b2d4068a1c3e5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
const VENDOR_SECRET: &str = "vendor-jwt-secret-vendor-jwt-secret-987654";

struct Setup {
    gw: Gateway,
    spec: GatewaySpec,
    vendor: Gateway,
    recorder: Recorder,
    pg: Postgres,
}

/// The vendor: a gateway whose `calculator` scope (over the recorder) takes tokens of its own
/// development authorization server, issued for 4 s (refresh tokens with them).
async fn vendor(recorder: &Recorder) -> (Gateway, u16) {
    let mut spec = GatewaySpec::new(&[recorder.port]);
    let issuer_port = free_port();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("authorization_servers: [{ISSUER}]\n"),
        &format!(
            "public_url: http://127.0.0.1:{}\ndev_issuer:\n  listen: 127.0.0.1:{issuer_port}\n  token_ttl: 4s\n",
            spec.port
        ),
    );
    spec.without_health_check();
    spec.env = vec![("TEST_JWT_SECRET".into(), VENDOR_SECRET.into())];
    let gw = spec.start().await;
    wait_http(&format!("http://127.0.0.1:{issuer_port}/jwks.json")).await;
    (gw, issuer_port)
}

async fn setup() -> Setup {
    let pg = Postgres::start();
    let recorder = Recorder::start().await;
    let (vendor, _) = vendor(&recorder).await;
    let mut spec = GatewaySpec::new(&[]);
    let issuer_port = free_port();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("authorization_servers: [{ISSUER}]\n"),
        &format!(
            "public_url: http://127.0.0.1:{}\ndev_issuer:\n  listen: 127.0.0.1:{issuer_port}\n",
            spec.port
        ),
    );
    spec.tools_yaml = format!(
        "scopes:\n  vendor:\n    upstreams:\n      - url: {}\n        auth: per_user_oauth\n    health_check: {{ kind: none }}\n    timeout: 10s\n    tools: [exact_calculate, statistics]\n",
        vendor.url("/calculator/mcp")
    );
    spec.policy_yaml = "roles:\n  developer:\n    allow: [\"vendor/*\"]\n".into();
    spec.env.push(("DATABASE_URL".into(), pg.url.clone()));
    spec.env
        .push(("MCP_GATEWAY_SECRETS_KEY".into(), KEY.into()));
    let gw = spec.start().await;
    wait_http(&format!("http://127.0.0.1:{issuer_port}/jwks.json")).await;
    Setup {
        gw,
        spec,
        vendor,
        recorder,
        pg,
    }
}

/// A browser: follows redirects itself, keeps the consent page's cookie, and logs in on the
/// development issuers' pages as the user it is told (per issuer port).
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
    /// Issuer port → (user, roles) to log in as there.
    users: HashMap<u16, (String, String)>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            users: HashMap::new(),
        }
    }

    /// Opens `url` and goes wherever it leads; the last page's status and text.
    async fn open(&mut self, url: &str) -> (u16, String) {
        let mut url = url.to_string();
        for _ in 0..12 {
            let u = url::Url::parse(&url).unwrap();
            let r = if u.path() == "/authorize" {
                // The issuer's login page, then its form posted as a person would.
                let page = self.http.get(&url).send().await.unwrap();
                assert_eq!(page.status(), 200, "{url}");
                assert!(page.text().await.unwrap().contains("Log in"));
                let (user, roles) = self.users[&u.port().unwrap()].clone();
                let mut form: Vec<(String, String)> = u.query_pairs().into_owned().collect();
                form.push(("user_id".into(), user));
                form.push(("roles".into(), roles));
                let post = format!("{}/authorize", u.origin().ascii_serialization());
                self.http.post(&post).form(&form).send().await.unwrap()
            } else {
                let mut req = self.http.get(&url);
                if let Some(c) = &self.cookie {
                    req = req.header("cookie", c);
                }
                req.send().await.unwrap()
            };
            if let Some(c) = r.headers().get("set-cookie") {
                let c = c.to_str().unwrap();
                assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
                self.cookie = Some(c.split(';').next().unwrap().to_string());
            }
            let status = r.status().as_u16();
            if status == 303 || status == 302 {
                let to = r.headers()["location"].to_str().unwrap();
                url = u.join(to).unwrap().to_string();
                continue;
            }
            assert_eq!(r.headers()["referrer-policy"], "no-referrer");
            return (status, r.text().await.unwrap());
        }
        panic!("too many redirects from {url}");
    }
}

fn issuer_port(gw: &Gateway) -> u16 {
    let yaml = std::fs::read_to_string(gw.dir.path().join("gateway.yaml")).unwrap();
    let listen = yaml.split("listen: 127.0.0.1:").nth(2).unwrap();
    listen.lines().next().unwrap().trim().parse().unwrap()
}

/// The official Python SDK client in 2025-11-25 (a per-user scope answers a 2026-07-28 client
/// -32022, which `auto` would first try and fall back from).
async fn python_call(gw: &Gateway, user: &str) -> Value {
    let url = gw.url("/vendor/mcp");
    let t = token(user, &["developer"], json!({}));
    let args = json!({"operator": "add", "operands": ["1", "2"]}).to_string();
    python_client_script(
        "consent_client.py",
        &[&url, &t, "exact_calculate", &args, "legacy"],
        &[],
    )
    .await
}

/// The sign-in link of a Python client's refused call.
fn link_of(seen: &Value) -> String {
    assert_eq!(seen["error"]["code"], -32042, "{seen}");
    seen["elicitations"][0]["url"].as_str().unwrap().to_string()
}

/// A raw `initialize` as `user`: the JSON-RPC answer.
async fn initialize(gw: &Gateway, user: &str) -> Value {
    let c = Client::new(
        gw.url("/vendor/mcp"),
        Some(token(user, &["developer"], json!({}))),
    );
    let r = c
        .post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn logins(pg: &Postgres) -> Vec<(String, String, String)> {
    let c = pg.client().await;
    c.query(
        "SELECT user_id, upstream, sealed FROM upstream_logins ORDER BY user_id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test]
async fn users_sign_in_to_an_upstream_with_their_own_accounts() {
    let s = setup().await;
    let (gw_issuer, vendor_issuer) = (issuer_port(&s.gw), issuer_port(&s.vendor));

    // No login yet: the SDK client gets the URL elicitation, and nothing reached the vendor.
    let seen = python_call(&s.gw, "alice").await;
    let alice_link = link_of(&seen);
    assert!(
        alice_link.starts_with(&s.gw.url("/connect/start?t=")),
        "{alice_link}"
    );
    assert!(
        s.recorder.received().is_empty(),
        "{:?}",
        s.recorder.received()
    );
    let bob_link = link_of(&python_call(&s.gw, "bob").await);
    assert_ne!(alice_link, bob_link);

    // Bob opens Alice's link: he signs in to the gateway as himself, and nothing changes for
    // either of them.
    let mut bob = Browser::new();
    bob.users
        .insert(gw_issuer, ("bob".into(), "developer".into()));
    bob.users
        .insert(vendor_issuer, ("bob@vendor".into(), "developer".into()));
    let (status, page) = bob.open(&alice_link).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("made for another user"), "{page}");
    assert!(logins(&s.pg).await.is_empty());
    assert_eq!(initialize(&s.gw, "alice").await["error"]["code"], -32042);
    assert_eq!(initialize(&s.gw, "bob").await["error"]["code"], -32042);

    // Alice signs in through the page: at the gateway's issuer as alice, at the vendor's as
    // alice@vendor.
    let mut alice = Browser::new();
    alice
        .users
        .insert(gw_issuer, ("alice".into(), "developer".into()));
    alice
        .users
        .insert(vendor_issuer, ("alice@vendor".into(), "developer".into()));
    let (status, page) = alice.open(&alice_link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("signed in to <b>vendor</b>"), "{page}");
    let rows = logins(&s.pg).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("alice", "vendor")
    );
    // An envelope is `v1:kid:nonce:ciphertext` in standard base64, which has no `.`: no JWT
    // (header.payload.signature) can be in it.
    assert!(
        rows[0].2.starts_with("v1:") && !rows[0].2.contains('.'),
        "sealed: {}",
        rows[0].2
    );

    // The retried call goes through with Alice's vendor token: the vendor's upstream sees its
    // own user, and the gateway's token of Alice's never left the gateway.
    let seen = python_call(&s.gw, "alice").await;
    assert_eq!(seen["call"]["isError"], false, "{seen}");
    let calls: Vec<_> = s
        .recorder
        .received()
        .into_iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].header("x-user-id").as_deref(),
        Some("alice@vendor")
    );
    let audit = s.pg.client().await;
    let row = audit
        .query_one(
            "SELECT user_id, upstream_credential FROM audit_log WHERE method = 'tools/call' AND outcome = 'ok'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("user_login")
    );
    let refused: i64 = audit
        .query_one(
            "SELECT count(*) FROM audit_log WHERE outcome = 'sign_in_required'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(refused >= 4, "every refused request is audited: {refused}");

    // Bob still has no login of his own.
    assert_eq!(initialize(&s.gw, "bob").await["error"]["code"], -32042);

    // The vendor's tokens live 4 s: the next call, later, refreshes Alice's without her.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let seen = python_call(&s.gw, "alice").await;
    assert_eq!(seen["call"]["isError"], false, "{seen}");
    let metrics = s.gw.metrics_text().await;
    assert!(
        metric(
            &metrics,
            "mcp_upstream_logins_total{event=\"refreshed\",scope=\"vendor\"}"
        ) >= 1.0,
        "{metrics}"
    );

    // The operator lists (no token values) and revokes; the next request asks again.
    let config = s.spec.dir.path().join("gateway.yaml");
    let listed = cli(&["credentials", "list"], &config, &s.spec.env);
    assert!(listed.contains("alice\t-\tvendor\t"), "{listed}");
    assert!(!listed.contains("eyJ"), "{listed}");
    let revoked = cli(
        &["credentials", "revoke", "alice", "vendor"],
        &config,
        &s.spec.env,
    );
    assert_eq!(revoked.trim(), "revoked 1 login(s) of alice");
    let mut asked = Value::Null;
    for _ in 0..40 {
        asked = initialize(&s.gw, "alice").await;
        if asked["error"]["code"] == -32042 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(asked["error"]["code"], -32042, "{asked}");

    // Bob signs in with his own link, then revokes on his page of sign-ins.
    let (status, page) = bob.open(&bob_link).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        initialize(&s.gw, "bob").await["result"]["serverInfo"]["name"],
        "recorder"
    );
    let (status, page) = bob.open(&s.gw.url("/connect")).await;
    assert_eq!(status, 200, "{page}");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap();
    let csrf = csrf.split('"').next().unwrap().to_string();
    let r = bob
        .http
        .post(s.gw.url("/connect/revoke"))
        .header("cookie", bob.cookie.clone().unwrap())
        .form(&[("upstream", "vendor"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(initialize(&s.gw, "bob").await["error"]["code"], -32042);
    // A form without Bob's cookie revokes nothing.
    let r = reqwest::Client::new()
        .post(s.gw.url("/connect/revoke"))
        .form(&[("upstream", "vendor"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// A client older than URL elicitations gets a tool error whose text carries the link.
#[tokio::test]
async fn an_older_client_gets_the_link_in_a_tool_error() {
    let s = setup().await;
    let mut c = Client::new(
        s.gw.url("/vendor/mcp"),
        Some(token("carol", &["developer"], json!({}))),
    );
    c.version = Some("2025-06-18");
    let r = c
        .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "exact_calculate", "arguments": {}}}))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert_eq!(body["result"]["isError"], true, "{body}");
    let text = body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains(&s.gw.url("/connect/start?t=")), "{text}");
    assert!(s.recorder.received().is_empty());
}
