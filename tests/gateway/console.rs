//! The operator console (`admin_listen:`) in a real browser (Debian's headless Chromium, driven
//! by playwright-core): an operator signs in through the development login, sees a tool that
//! changed under strict pinning, opens its diff and approves it, and the running gateway serves
//! it again (the official Python SDK client lists it); a refusal is found on the audit page by
//! its request id; someone without the role gets 403; every page's screenshot is written to
//! `target/console/`.

use crate::common::*;
use crate::governance::{client, listed, spec, until_refused, Shifty, CHANGED};
use serde_json::{json, Value};

struct Console {
    gw: Gateway,
    url: String,
    _up: Shifty,
}

async fn console() -> (Console, GatewaySpec) {
    let up = Shifty::start().await;
    let mut spec = spec(&up, "pin: strict");
    let issuer_port = free_port();
    let admin_port = free_port();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("authorization_servers: [{ISSUER}]\n"),
        &format!(
            "public_url: http://127.0.0.1:{}\ndev_issuer:\n  listen: 127.0.0.1:{issuer_port}\nadmin_listen: 127.0.0.1:{admin_port}\n",
            spec.port
        ),
    );
    let gw = spec.start().await;
    wait_http(&format!("http://127.0.0.1:{issuer_port}/jwks.json")).await;
    let url = format!("http://127.0.0.1:{admin_port}");
    wait_http(&format!("{url}/login")).await;
    (Console { gw, url, _up: up }, spec)
}

fn screenshots() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

#[tokio::test]
async fn an_operator_approves_a_changed_tool_in_the_browser_and_the_gateway_serves_it() {
    let (c, _spec) = console().await;
    let dev = client(&c.gw).await;
    assert!(listed(&dev).await.contains_key("shifty"));
    // The upstream changes the tool: strict pinning hides it until someone approves.
    // (the gateway reads the definition in the next list that passes).
    c._up.set_description(CHANGED);
    assert!(!listed(&dev).await.contains_key("shifty"));
    until_refused(&dev, "shifty").await;
    // A refusal to find on the audit page: a caller without a grant.
    let refused = Client::new(
        c.gw.url("/shifty/mcp"),
        Some(token("mallory", &["analyst"], json!({}))),
    )
    .call(1, "echo_text", json!({"text": "hi"}))
    .await;
    let request_id = refused
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(refused.status(), 403);
    c.gw.audit_rows_where(1, |r| r["request_id"] == request_id.as_str())
        .await;

    let shots = screenshots();
    let seen = node_script(
        "console.mjs",
        &[
            &c.url,
            "olive",
            "admin",
            &shots,
            "shifty/shifty",
            &request_id,
        ],
    )
    .await;
    assert!(
        matches!(seen["login_status"].as_u64(), Some(302 | 303)),
        "{seen}"
    );
    let overview = seen["overview"].as_str().unwrap();
    assert!(
        overview.contains("requests") && overview.contains("p99 latency"),
        "{overview}"
    );
    let scopes = seen["scopes"].as_str().unwrap();
    assert!(
        scopes.contains("shifty") && scopes.contains("healthy") && scopes.contains("started"),
        "{scopes}"
    );
    assert!(
        seen["tools"]
            .as_str()
            .unwrap()
            .contains("changed, waits for approval"),
        "{seen}"
    );
    // The diff: the approved description out, the changed one in.
    let diff = seen["diff"].as_str().unwrap();
    assert!(
        diff.contains("- ") && diff.contains("\"description\": \"Adds two integers.\""),
        "{diff}"
    );
    assert!(
        diff.contains("+ ") && diff.contains("read ~/.ssh/id_rsa"),
        "{diff}"
    );
    assert_eq!(seen["forged_status"], 403, "{seen}");
    assert_eq!(seen["cross_site_status"], 403, "{seen}");
    assert!(
        seen["after_approval"]
            .as_str()
            .unwrap()
            .contains("Approved."),
        "{seen}"
    );
    let audit = seen["audit"].as_str().unwrap();
    assert!(
        audit.contains(&request_id) && audit.contains("mallory") && audit.contains("denied"),
        "{audit}"
    );
    assert!(seen["jobs"].as_str().unwrap().contains("Jobs"));
    assert!(
        seen["phone_width"].as_u64().unwrap() <= 390,
        "no sideways scrolling on a phone: {seen}"
    );
    for page in [
        "overview",
        "scopes",
        "tools",
        "tool-diff",
        "tool-approved",
        "audit",
        "jobs",
        "overview-phone-dark",
    ] {
        assert!(
            std::path::Path::new(&shots)
                .join(format!("{page}.png"))
                .exists(),
            "{page}"
        );
    }

    // The running gateway serves the approved definition: the official Python SDK lists it.
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = python_client_script(
            "governed_client.py",
            &[
                &c.gw.url("/shifty/mcp"),
                &token("dev", &["developer"], json!({})),
                "echo_text",
                r#"{"text": "x"}"#,
            ],
            &[],
        )
        .await;
        if seen["tools"].get("shifty").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(seen["tools"]["shifty"], CHANGED, "{seen}");
    // The approval is audited, and so are the two forms refused before it.
    let rows =
        c.gw.audit_rows_where(3, |r| r["method"] == "console/approve")
            .await;
    assert!(
        rows.iter()
            .all(|r| r["user_id"] == "olive" && r["tool"] == "shifty/shifty"),
        "{rows:?}"
    );
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["denied", "denied", "ok"], "{rows:?}");
}

#[tokio::test]
async fn someone_without_the_role_is_refused_and_forms_need_the_operators_token() {
    let (c, _spec) = console().await;
    let shots = screenshots();
    let seen = node_script(
        "console.mjs",
        &[&c.url, "dave", "developer", &shots, "shifty/shifty", "-"],
    )
    .await;
    assert_eq!(seen["login_status"], 403, "{seen}");
    assert_eq!(seen["title"], "Not an operator", "{seen}");
    // No page without a sign-in, and no change without the page's token.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/scopes", "/tools", "/audit", "/jobs"] {
        let r = http.get(format!("{}{path}", c.url)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/login", "{path}");
    }
    let r = http
        .post(format!("{}/tools/shifty/shifty/approve", c.url))
        .form(&[("csrf", "forged"), ("sha256", "00")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "not signed in: to the login");
    let rows =
        c.gw.audit_rows_where(1, |r| r["method"] == "console/login")
            .await;
    assert_eq!(rows[0]["user_id"], "dave");
    assert_eq!(rows[0]["outcome"], "denied");
}
