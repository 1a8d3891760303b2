//! Logging in: the development issuer (`dev_issuer:`), OAuth 2.1 with PKCE through the official
//! Python SDK's OAuth provider, resource-bound tokens, `insufficient_scope` step-up, and the stdio
//! bridge asking the issuer for its tokens.

use crate::common::*;
use serde_json::{json, Value};

/// A gateway with two scopes over one calculator (`calculator`, `twin`), a development issuer,
/// a public URL and `mcp:{scope}` OAuth scopes required.
struct Login {
    gw: Gateway,
    spec: GatewaySpec,
    issuer: String,
    _up: Proc,
}

async fn login_gateway(admin_token: Option<&str>) -> Login {
    login_gateway_with(admin_token, "").await
}

/// `issuer_extra` is added to the `dev_issuer` section (e.g. `"\n  insecure_dev: true"`).
async fn login_gateway_with(admin_token: Option<&str>, issuer_extra: &str) -> Login {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    let issuer_port = free_port();
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    let admin = admin_token
        .map(|t| format!("\n  admin_token: {t}"))
        .unwrap_or_default();
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("authorization_servers: [{ISSUER}]\n"),
        &format!(
            "public_url: http://127.0.0.1:{}\ndev_issuer:\n  listen: 127.0.0.1:{issuer_port}{admin}{issuer_extra}\n",
            spec.port
        ),
    );
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        &format!("  audience: {AUDIENCE}\n"),
        &format!("  audience: {AUDIENCE}\n  required_scopes: [\"mcp:{{scope}}\"]\n"),
    );
    let twin = spec.tools_yaml.replacen("  calculator:", "  twin:", 1);
    let twin = twin.trim_start_matches("scopes:\n");
    spec.tools_yaml = format!("{}{twin}", spec.tools_yaml);
    spec.policy_yaml = edit(
        &spec.policy_yaml,
        "allow: [\"calculator/*\"]",
        "allow: [\"calculator/*\", \"twin/*\"]",
    );
    spec.policy_yaml = edit(
        &spec.policy_yaml,
        "allow: [\"calculator/exact_calculate\"]",
        "allow: [\"calculator/exact_calculate\", \"twin/exact_calculate\"]",
    );
    let gw = spec.start().await;
    wait_http(&format!("{issuer}/jwks.json")).await;
    Login {
        gw,
        spec,
        issuer,
        _up: up,
    }
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// A token the issuer's direct endpoint grants for `body` (asserted granted): its JSON answer.
async fn granted(issuer: &str, body: Value) -> Value {
    let r = direct_token(issuer, body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn direct_token(issuer: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `exact_calculate` 1 + 1 by `c`.
async fn one_plus_one(c: &Client, id: u64) -> reqwest::Response {
    c.call(
        id,
        "exact_calculate",
        json!({"operator": "add", "operands": ["1", "1"]}),
    )
    .await
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The whole OAuth login as MCP clients run it, with the Python SDK's provider: discovery from the
/// 401, registration, the login page, PKCE, the token bound to the endpoint, then the session
/// filtered by the roles picked on the page.
#[tokio::test]
async fn python_sdk_logs_in_with_oauth_and_sees_only_its_tools() {
    let l = login_gateway(None).await;
    let url = l.gw.url("/calculator/mcp");
    let seen = python_client_script("oauth_client.py", &[&url, "carol", "analyst"], &[]).await;
    assert_eq!(seen["logins"], 1, "{seen}");
    assert_eq!(seen["registered"], true, "{seen}");
    assert_eq!(seen["page_title"], "Log in (development)", "{seen}");
    let q = &seen["authorize_query"];
    assert_eq!(q["code_challenge_method"], "S256", "{seen}");
    assert_eq!(q["resource"], url.as_str(), "{seen}");
    assert_eq!(q["scope"], "mcp:calculator", "{seen}");
    // The analyst picked on the login page sees and calls only what analysts may.
    assert_analyst_view(&seen, "oauth");
    let token = seen["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["aud"], url.as_str());
    assert_eq!(c["iss"], l.issuer.as_str());
    assert_eq!(c["sub"], "carol");
    assert_eq!(c["roles"], json!(["analyst"]));
    assert_eq!(c["scope"], "mcp:calculator");
    // Bound to /calculator: the same token on another scope of the gateway is not valid there,
    // even with the OAuth scope that scope needs.
    let twin = Client::new(l.gw.url("/twin/mcp"), Some(token.to_string()))
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(twin.status(), 401);
    assert!(
        www_authenticate(&twin).contains("error=\"invalid_token\""),
        "{}",
        www_authenticate(&twin)
    );
    let audit = l.gw.audit_rows(1).await;
    assert!(
        audit.iter().any(|r| r["user_id"] == "carol"),
        "the OAuth user is audited: {audit:?}"
    );
}

/// The protected-resource metadata names the issuer and the scope's OAuth scope; a token without
/// it gets 403 `insufficient_scope` naming what to ask for, and nothing reaches the upstream.
#[tokio::test]
async fn metadata_scopes_and_step_up() {
    let l = login_gateway(None).await;
    let http = reqwest::Client::new();
    let prm: Value = http
        .get(l.gw.url("/.well-known/oauth-protected-resource/twin/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["authorization_servers"], json!([l.issuer]));
    assert_eq!(prm["scopes_supported"], json!(["mcp:twin"]));
    assert_eq!(prm["resource"], l.gw.url("/twin/mcp"));
    let asm: Value = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            l.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], l.issuer.as_str());
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["client_id_metadata_document_supported"], true);
    assert_eq!(
        asm["scopes_supported"],
        json!(["mcp:calculator", "mcp:twin"])
    );

    let anonymous = Client::new(l.gw.url("/twin/mcp"), None)
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(anonymous.status(), 401);
    assert!(
        www_authenticate(&anonymous).contains("scope=\"mcp:twin\""),
        "{}",
        www_authenticate(&anonymous)
    );

    // A token for calculator only, from the issuer's direct endpoint.
    let t = granted(
        &l.issuer,
        json!({"user_id": "dave", "roles": ["developer"], "scope": "mcp:calculator"}),
    )
    .await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "mcp:calculator");
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&token)["aud"], AUDIENCE);
    let mut calc = Client::new(l.gw.url("/calculator/mcp"), Some(token.clone()));
    calc.initialize().await;
    let ok = one_plus_one(&calc, 2).await;
    assert_eq!(ok.status(), 200);
    let step_up = Client::new(l.gw.url("/twin/mcp"), Some(token))
        .call(
            3,
            "exact_calculate",
            json!({"operator": "add", "operands": ["1", "1"]}),
        )
        .await;
    assert_eq!(step_up.status(), 403);
    let challenge = www_authenticate(&step_up);
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp:twin\"")
            && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    let body = rpc_body(step_up).await;
    assert_eq!(body["error"]["code"], -32003);
    let rows =
        l.gw.audit_rows_where(1, |r| r["scope"] == "twin" && r["outcome"] == "denied")
            .await;
    assert_eq!(rows.len(), 1, "{:?}", l.gw.audit_file_rows());
    // The token verified: the row names who was refused.
    assert_eq!(rows[0]["user_id"], "dave", "{:?}", rows[0]);
    // Unsigned by the issuer's key: refused even with the issuer's kid.
    let forged = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = claims_kid(&calc.token.clone().unwrap());
        jsonwebtoken::encode(
            &h,
            &json!({"sub": "eve", "iss": l.issuer, "aud": AUDIENCE, "exp": now() + 60, "scope": "mcp:calculator"}),
            &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-00"),
        )
        .unwrap()
    };
    let r = Client::new(l.gw.url("/calculator/mcp"), Some(forged))
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(r.status(), 401);
    drop(l.spec);
}

fn claims_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).unwrap().kid
}

/// The issuer's own refusals: admin token, unknown clients and redirect URIs, PKCE, one-time
/// codes; and a client identified by a metadata document completes the flow by hand.
#[tokio::test]
async fn issuer_refuses_what_it_must_and_accepts_metadata_documents() {
    // Metadata documents on loopback are fetched only with insecure_dev.
    let l = login_gateway_with(Some("s3cret-admin"), "\n  insecure_dev: true").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = direct_token(&l.issuer, json!({"user_id": "x"})).await;
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/token", l.issuer))
        .header("x-issuer-token", "s3cret-admin")
        .json(&json!({"user_id": "x", "expires_in_seconds": 999999}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("expires_in_seconds"));

    // A client metadata document served on loopback (insecure_dev: the issuer is for development).
    let redirect = "http://127.0.0.1:9/cb".to_string();
    let doc_port = serve_router({
        let redirect = redirect.clone();
        move |port| {
            let doc = json!({"client_id": format!("http://127.0.0.1:{port}/client.json"), "client_name": "Doc Client", "redirect_uris": [redirect]});
            axum::Router::new().route(
                "/client.json",
                axum::routing::get(move || async move { axum::Json(doc) }),
            )
        }
    })
    .await;
    let client_id = format!("http://127.0.0.1:{doc_port}/client.json");
    let verifier = "v".repeat(50);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&verifier))
    };
    let resource = l.gw.url("/calculator/mcp");
    let params = |client: &str, redirect: &str, challenge: &str| {
        vec![
            ("response_type", "code".to_string()),
            ("client_id", client.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("state", "st8".to_string()),
            ("scope", "mcp:calculator".to_string()),
            ("code_challenge", challenge.to_string()),
            ("code_challenge_method", "S256".to_string()),
            ("resource", resource.clone()),
        ]
    };
    let authorize = format!("{}/authorize", l.issuer);
    // Unknown client, foreign redirect URI: a page, never a redirect.
    let r = http
        .get(&authorize)
        .query(&params("nobody", &redirect, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unknown client_id"));
    let r = http
        .get(&authorize)
        .query(&params(&client_id, "http://127.0.0.1:9/evil", &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // No PKCE: back to the client with an error.
    let r = http
        .get(&authorize)
        .query(&params(&client_id, &redirect, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.contains("error=invalid_request") && loc.contains("state=st8"),
        "{loc}"
    );
    // The page names the client from its document; escaped values only.
    let page = http
        .get(&authorize)
        .query(&params(&client_id, &redirect, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<b>Doc Client</b>"));
    let mut form = params(&client_id, &redirect, &challenge);
    form.push(("user_id", "erin".into()));
    form.push(("roles", "developer".into()));
    let r = http.post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st8");
    let code = q["code"].clone();
    let exchange = |code: String, verifier: String| {
        let http = http.clone();
        let (issuer, client_id, redirect, resource) = (
            l.issuer.clone(),
            client_id.clone(),
            redirect.clone(),
            resource.clone(),
        );
        async move {
            http.post(format!("{issuer}/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("client_id", &client_id),
                    ("code_verifier", &verifier),
                    ("resource", &resource),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = exchange(code.clone(), "w".repeat(50)).await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // A failed exchange spent the code: it is one-time.
    let again = exchange(code, verifier.clone()).await;
    assert_eq!(again.status(), 400);
    // A fresh login, exchanged correctly.
    let r = http.post(&authorize).form(&form).send().await.unwrap();
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let ok = exchange(code, verifier).await;
    assert_eq!(ok.status(), 200);
    let token = ok.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(claims(&token)["client_id"], client_id.as_str());
    let list = Client::new(resource, Some(token))
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(list.status(), 200);
}

/// A stdio-only client runs the bridge, which asks the development issuer for its token.
#[tokio::test]
async fn stdio_bridge_gets_its_token_from_the_issuer() {
    let l = login_gateway(None).await;
    let endpoint = l.gw.url("/calculator/mcp");
    let args = [
        bin(),
        &endpoint,
        "--issuer-url",
        &l.issuer,
        "--user-id",
        "frank",
        "--roles",
        "analyst",
    ];
    let seen = python_client_script("stdio_bridge.py", &args, &[]).await;
    assert_analyst_view(&seen, "stdio bridge");
    let rows = l.gw.audit_rows_where(1, |r| r["user_id"] == "frank").await;
    assert!(!rows.is_empty(), "{:?}", l.gw.audit_file_rows());
}

/// The issuer never listens beyond loopback unless told to.
#[test]
fn issuer_stays_on_loopback() {
    let mut spec = GatewaySpec::new(&[1]);
    spec.gateway_yaml
        .push_str("dev_issuer:\n  listen: 0.0.0.0:18010\n");
    let (ok, out) = spec.check();
    assert!(!ok);
    assert!(
        out.contains("dev_issuer.listen: not a loopback address"),
        "{out}"
    );
    let plain = GatewaySpec::new(&[1]);
    let out = std::process::Command::new(bin())
        .args(["issuer", "--listen", "0.0.0.0:18011", "-c"])
        .arg(plain.write())
        .envs(plain.env.iter().cloned())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

/// The issuer's hostile-input limits: registrations to dangerous redirect URIs, metadata
/// documents on internal addresses (refused without saying what is there), logins that are
/// never exchanged (the oldest make room), and pages that refuse to be framed.
#[tokio::test]
async fn issuer_refuses_unsafe_redirects_documents_and_framing() {
    let l = login_gateway(None).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for bad in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>1</script>",
        "file:///etc/passwd",
        "http://evil.example.com/cb",
    ] {
        let r = http
            .post(format!("{}/register", l.issuer))
            .json(&json!({"redirect_uris": [bad], "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_redirect_uri", "{bad}: {v}");
    }
    let r = http
        .post(format!("{}/register", l.issuer))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb", "com.example.app:/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let client_id = r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A document on loopback without insecure_dev: never fetched, and nothing of it described.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    let doc_port = serve_router(move |_| {
        axum::Router::new().route(
            "/client.json",
            axum::routing::get(move || {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { "internal secret page" }
            }),
        )
    })
    .await;
    let authorize = format!("{}/authorize", l.issuer);
    let verifier = "w".repeat(43);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&verifier))
    };
    let params = |client: &str| {
        vec![
            ("response_type", "code".to_string()),
            ("client_id", client.to_string()),
            ("redirect_uri", "http://127.0.0.1:9/cb".to_string()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
            ("user_id", "ann".to_string()),
        ]
    };
    let r = http
        .get(&authorize)
        .query(&params(&format!("http://127.0.0.1:{doc_port}/client.json")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("unknown client_id"), "{page}");
    assert!(!page.contains("internal secret"), "{page}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The login page cannot be framed.
    let r = http
        .get(&authorize)
        .query(&params(&client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));

    // 40 logins never exchanged: every one still gets a code, the newest works.
    let mut last = String::new();
    for _ in 0..40 {
        let r = http
            .post(&authorize)
            .form(&params(&client_id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.contains("code="), "{loc}");
        last = loc;
    }
    let code = url::Url::parse(&last)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let r = http
        .post(format!("{}/token", l.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["access_token"].is_string(), "{v}");
}

/// Runs `mcp-gateway issuer --listen 127.0.0.1:PORT` on `spec`'s configuration; returns it with
/// its URL once its metadata answers.
pub async fn standalone_issuer(spec: &GatewaySpec) -> (Proc, String) {
    let port = free_port();
    let child = std::process::Command::new(bin())
        .args(["issuer", "--listen", &format!("127.0.0.1:{port}"), "-c"])
        .arg(spec.dir.path().join("gateway.yaml"))
        .envs(spec.env.iter().cloned())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{url}/.well-known/oauth-authorization-server")).await;
    (Proc { child, port }, url)
}

/// A separately run `mcp-gateway issuer` signs tokens the gateway of the same configuration
/// accepts: without `dev_issuer:` as `mcp-gateway token` signs them, with it under the issuer's
/// configured URL (`--listen` moves only its socket). The documented JSON `POST /token` body is
/// accepted as written (its `api_version` is left out when the gateway checks none).
#[tokio::test]
async fn a_separately_run_issuer_issues_tokens_the_gateway_accepts() {
    let up = calculator(true).await;
    let plain = GatewaySpec::new(&[up.port]);
    let mut with_dev_issuer = GatewaySpec::new(&[up.port]);
    let dev_port = free_port();
    with_dev_issuer
        .gateway_yaml
        .push_str(&format!("dev_issuer:\n  listen: 127.0.0.1:{dev_port}\n"));
    // The body docs/clients.md shows for `POST /token`, JSON.
    let documented = json!({"user_id": "demo", "roles": ["developer"], "workspace": "demo",
        "api_version": "1.1", "expires_in_seconds": 3600, "scope": "mcp:git"});
    for spec in [&plain, &with_dev_issuer] {
        let gw = spec.start().await;
        let (_issuer, url) = standalone_issuer(spec).await;
        let r = reqwest::Client::new()
            .post(format!("{url}/token"))
            .json(&documented)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        let token = answer["access_token"].as_str().unwrap().to_string();
        let mut client = Client::new(gw.url("/calculator/mcp"), Some(token));
        let init = client.initialize().await;
        assert!(init.get("result").is_some(), "{init}");
        let r = client
            .post(&json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
            .await;
        assert_eq!(r.status(), 200, "the gateway refused the issuer's token");
        let v = rpc_body(r).await;
        assert!(
            tool_names(&v).contains(&"exact_calculate".to_string()),
            "{v}"
        );
    }
}

/// A reload that adds a scope and a role teaches the development issuer at once: its metadata and
/// login page list them, and it grants the new scope's OAuth scope, which the gateway accepts.
#[tokio::test]
async fn a_reload_teaches_the_issuer_new_scopes_and_roles() {
    let l = login_gateway(None).await;
    let yaml = &l.spec.tools_yaml;
    let calculator = &yaml[yaml.find("  calculator:").unwrap()..yaml.find("  twin:").unwrap()];
    let third = calculator.replacen("  calculator:", "  third:", 1);
    let tools = format!("{yaml}{third}");
    let policy = format!(
        "{}  auditor:\n    allow: [\"third/*\"]\n",
        l.spec.policy_yaml
    );
    l.gw.write_file("tools.yaml", &tools);
    l.gw.write_file("policy.yaml", &policy);
    assert_eq!(l.gw.sighup().await, "ok", "{}", l.gw.log_text());
    // The file watcher may have applied a reload between the two writes: wait for the last one.
    let mut asm = Value::Null;
    for _ in 0..100 {
        asm = reqwest::get(format!(
            "{}/.well-known/oauth-authorization-server",
            l.issuer
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        if asm["scopes_supported"].to_string().contains("mcp:third") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        asm["scopes_supported"],
        json!(["mcp:calculator", "mcp:third", "mcp:twin"]),
        "{asm}"
    );
    let registered: Value = reqwest::Client::new()
        .post(format!("{}/register", l.issuer))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:1/cb"], "client_name": "reload test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = reqwest::get(format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri=http://127.0.0.1:1/cb&code_challenge=0123456789012345678901234567890123456789012&code_challenge_method=S256",
        l.issuer,
        registered["client_id"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("auditor") && page.contains("mcp:third"),
        "{page}"
    );
    let t = granted(
        &l.issuer,
        json!({"user_id": "erin", "roles": ["auditor"], "scope": "mcp:third"}),
    )
    .await;
    assert_eq!(t["scope"], "mcp:third", "{t}");
    let mut third = Client::new(
        l.gw.url("/third/mcp"),
        Some(t["access_token"].as_str().unwrap().to_string()),
    );
    third.initialize().await;
    let r = one_plus_one(&third, 2).await;
    assert_eq!(r.status(), 200);
    let body = rpc_body(r).await;
    assert!(body["result"].is_object(), "{body}");
}
