//! Authentication: every failed check gets 401, -32001, a message naming the check, and a
//! `WWW-Authenticate` pointing at the protected-resource metadata; the token is never echoed.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::process::Command;

async fn expect_401(client: &Client, want: &str) {
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":5,"method":"tools/list"}))
        .await;
    assert_eq!(r.status(), 401, "{want}");
    let www = r
        .headers()
        .get("www-authenticate")
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        www.starts_with("Bearer resource_metadata=\"http://127.0.0.1:"),
        "{www}"
    );
    assert!(
        www.contains("/.well-known/oauth-protected-resource/calculator/mcp\""),
        "{www}"
    );
    let text = r.text().await.unwrap();
    if let Some(t) = &client.token {
        assert!(!text.contains(t.as_str()), "token echoed back");
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], -32001, "{text}");
    assert_eq!(v["id"], Value::Null);
    let msg = v["error"]["message"].as_str().unwrap();
    assert_eq!(msg, format!("Unauthorized: {want}"));
}

#[tokio::test]
async fn every_failed_token_check_is_named() {
    let up = calculator(true).await;
    let gw = GatewaySpec::new(&[up.port]).start().await;
    let url = gw.url("/calculator/mcp");
    let t = now();
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing bearer token"),
        (Some("not-a-jwt".into()), "malformed token"),
        (
            Some(token("alice", &["developer"], json!({"exp": t - 120}))),
            "token expired",
        ),
        (
            Some(token("alice", &["developer"], json!({"nbf": t + 600}))),
            "token not yet valid (nbf)",
        ),
        (
            Some(token(
                "alice",
                &["developer"],
                json!({"iss": "https://evil.test"}),
            )),
            "wrong issuer",
        ),
        (
            Some(token(
                "alice",
                &["developer"],
                json!({"aud": "someone-else"}),
            )),
            "wrong audience",
        ),
        (
            Some(token("alice", &["developer"], json!({"iat": t + 600}))),
            "token issued in the future (iat)",
        ),
        (
            Some(token("", &["developer"], json!({}))),
            "missing sub claim (user id)",
        ),
    ];
    for (tok, want) in cases {
        expect_401(&Client::new(url.clone(), tok), want).await;
    }
    // alg none: a token with no signature at all.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"sub":"alice","roles":["developer"],"iss":ISSUER,"aud":AUDIENCE,"exp":t+600})
            .to_string(),
    );
    expect_401(
        &Client::new(url.clone(), Some(format!("{header}.{claims}."))),
        "malformed token",
    )
    .await;
    // Signed with another key.
    let claims = json!({"sub":"alice","iss":ISSUER,"aud":AUDIENCE,"exp":t+600});
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    expect_401(&Client::new(url.clone(), Some(forged)), "invalid signature").await;
    // An algorithm that is not configured.
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    expect_401(
        &Client::new(url.clone(), Some(hs512)),
        "algorithm HS512 is not allowed",
    )
    .await;
    // And a good token passes.
    let ok = Client::new(url, Some(token("alice", &["developer"], json!({}))));
    assert_eq!(
        ok.post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
            .await
            .status(),
        200
    );
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With an RS256 public key configured, an HS256 token signed with that public key as the HMAC
/// secret (the classic algorithm confusion) is refused.
#[tokio::test]
async fn hs_token_signed_with_the_public_key_is_refused() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    let d = spec.dir.path().to_path_buf();
    let (key, public) = (d.join("rsa.pem"), d.join("rsa.pub.pem"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "  algorithms: [HS256]\n  secret: ${TEST_JWT_SECRET}\n",
        "  algorithms: [RS256]\n  public_key_file: rsa.pub.pem\n",
    );
    let gw = spec.start().await;
    let url = gw.url("/calculator/mcp");
    let t = now();
    let claims =
        json!({"sub":"alice","roles":["developer"],"iss":ISSUER,"aud":AUDIENCE,"exp":t+600});
    let pem = std::fs::read(&public).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&pem),
    )
    .unwrap();
    expect_401(
        &Client::new(url.clone(), Some(confused)),
        "algorithm HS256 is not allowed",
    )
    .await;
    let good = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap(),
    )
    .unwrap();
    let r = Client::new(url, Some(good))
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    assert_eq!(r.status(), 200);
}

/// JWKS: keys are picked by `kid`; a token with a new `kid` after the issuer rotated its keys makes
/// the gateway fetch the set again, and the retired key stops working.
#[tokio::test]
async fn jwks_key_rotation() {
    use std::sync::{Arc, Mutex};
    let up = calculator(true).await;
    let d = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for name in ["k1", "k2"] {
        let path = d.path().join(format!("{name}.pem"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path.to_str().unwrap(),
        ]);
        let enc = EncodingKey::from_ec_pem(&std::fs::read(&path).unwrap()).unwrap();
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(name.into());
        keys.push((name, enc, jwk));
    }
    let served = Arc::new(Mutex::new(json!({"keys": [keys[0].2]})));
    let s = served.clone();
    let port = serve_router(move |_| {
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let s = s.clone();
                async move { axum::Json(s.lock().unwrap().clone()) }
            }),
        )
    })
    .await;

    let mut spec = GatewaySpec::new(&[up.port]);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "  algorithms: [HS256]\n  secret: ${TEST_JWT_SECRET}\n",
        &format!("  algorithms: [ES256]\n  jwks_url: http://127.0.0.1:{port}/jwks.json\n"),
    );
    let gw = spec.start().await;
    let url = gw.url("/calculator/mcp");
    let sign = |i: usize| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(keys[i].0.to_string());
        let t = now();
        encode(&h, &json!({"sub":"alice","roles":["developer"],"iss":ISSUER,"aud":AUDIENCE,"exp":t+600,"iat":t}), &keys[i].1).unwrap()
    };
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    assert_eq!(
        Client::new(url.clone(), Some(sign(0)))
            .post(&ping)
            .await
            .status(),
        200
    );
    expect_401(
        &Client::new(url.clone(), Some(sign(1))),
        "unknown signing key (kid)",
    )
    .await;
    // The issuer rotates: k2 in, k1 out.
    *served.lock().unwrap() = json!({"keys": [keys[1].2]});
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        Client::new(url.clone(), Some(sign(1)))
            .post(&ping)
            .await
            .status(),
        200
    );
    expect_401(
        &Client::new(url, Some(sign(0))),
        "unknown signing key (kid)",
    )
    .await;
}

/// Maximum token age and the API version claim, configured through the environment.
#[tokio::test]
async fn max_token_age_and_api_version() {
    let up = calculator(true).await;
    let mut spec = GatewaySpec::new(&[up.port]);
    spec.env
        .push(("JWT_MAX_TOKEN_AGE_MINUTES".into(), "10".into()));
    spec.env
        .push(("JWT_API_VERSION_CLAIM".into(), "api".into()));
    spec.env
        .push(("JWT_ALLOWED_API_VERSIONS".into(), "v1,v2".into()));
    spec.env.push(("JWT_ROLES_CLAIM".into(), "scope".into()));
    let gw = spec.start().await;
    let url = gw.url("/calculator/mcp");
    let t = now();
    let ok = token(
        "alice",
        &[],
        json!({"api": "v2", "scope": "developer other"}),
    );
    let r = Client::new(url.clone(), Some(ok))
        .call(
            1,
            "statistics",
            json!({"operation":"count","values":["1","2"]}),
        )
        .await;
    assert_eq!(
        rpc_body(r).await["result"]["structuredContent"]["result"],
        "2",
        "roles from a space-separated claim"
    );
    let old = token(
        "alice",
        &[],
        json!({"api": "v1", "iat": t - 3600, "exp": t + 600}),
    );
    expect_401(
        &Client::new(url.clone(), Some(old)),
        "token too old (iat beyond the maximum token age)",
    )
    .await;
    let no_iat = token("alice", &[], json!({"api": "v1", "iat": null}));
    expect_401(
        &Client::new(url.clone(), Some(no_iat)),
        "missing iat claim (a maximum token age is set)",
    )
    .await;
    let v3 = token("alice", &[], json!({"api": "v3"}));
    expect_401(
        &Client::new(url.clone(), Some(v3)),
        "API version not allowed",
    )
    .await;
    let none = token("alice", &[], json!({}));
    expect_401(&Client::new(url, Some(none)), "API version not allowed").await;
}
