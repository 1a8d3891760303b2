//! Grants with conditions (`when:`, CEL): on the arguments, on the token's claims, on the tenant
//! (resources of another tenant), on rate limits; what a caller sees in lists; the audit row's
//! rule; and the configuration problems a bad expression gives.

use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::{json, Value};

const POLICY: &str = r#"
roles:
  analyst:
    allow:
      - { tool: "calculator/exact_calculate", when: 'args.repository.startsWith(claims.org + "/")' }
      - { tool: "calculator/statistics", when: 'claims.acr == "mfa"' }
      - { resource: "calculator/document://*", when: 'resource.startsWith("document://" + tenant + "/")' }
rate_limits:
  - { name: big-jobs, key: user, rate: 1/min, match: { when: 'args.size == "big"' } }
"#;

async fn gateway(recorder: &Recorder) -> Gateway {
    let mut spec = GatewaySpec::new(&[recorder.port]);
    spec.policy_yaml = POLICY.into();
    spec.without_health_check();
    spec.start().await
}

fn analyst(gw: &Gateway, claims: Value) -> Client {
    Client::new(
        gw.url("/calculator/mcp"),
        Some(token("ann", &["analyst"], claims)),
    )
}

async fn call(c: &Client, id: u64, tool: &str, args: Value) -> Value {
    let r = c.call(id, tool, args).await;
    assert_eq!(r.status(), 200);
    rpc_body(r).await
}

fn arrived(recorder: &Recorder, needle: &str) -> bool {
    recorder
        .received()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains(needle))
}

#[tokio::test]
async fn a_condition_on_the_arguments_allows_one_repository_and_refuses_another() {
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder).await;
    let ann = analyst(&gw, json!({"org": "acme", "tenant": "public"}));
    let ok = call(
        &ann,
        1,
        "exact_calculate",
        json!({"repository": "acme/app"}),
    )
    .await;
    assert!(ok.get("result").is_some(), "{ok}");
    assert!(arrived(&recorder, "acme/app"));

    let refused = call(
        &ann,
        2,
        "exact_calculate",
        json!({"repository": "evil/app"}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "Not permitted: roles.analyst.allow[0] does not allow this call"
    );
    assert!(
        !arrived(&recorder, "evil/app"),
        "a refused call never reaches the upstream"
    );

    // An expression that cannot be evaluated (no such argument) denies.
    let broken = call(&ann, 3, "exact_calculate", json!({"path": "x"})).await;
    assert_eq!(broken["error"]["code"], -32003, "{broken}");

    // The audit rows name the rule and its condition, never the values.
    let rows = gw
        .audit_rows_where(3, |r| r["tool"] == "exact_calculate")
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let rule = "roles.analyst.allow[0] when args.repository.startsWith(claims.org + \"/\")";
    assert!(rows.iter().all(|r| r["policy_rule"] == rule), "{rows:?}");
    let denied: Vec<&Value> = rows.iter().filter(|r| r["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 2, "{rows:?}");
    assert!(denied[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("roles.analyst.allow[0] (when: "));
    assert!(!serde_json::to_string(&rows).unwrap().contains("evil/app"));
}

#[tokio::test]
async fn a_condition_on_a_claim_decides_calls_and_what_lists_show() {
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder).await;
    let list = |c: Client| async move {
        let v = rpc_body(
            c.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
                .await,
        )
        .await;
        let mut names: Vec<String> = (v["result"]["tools"].as_array().unwrap().iter())
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    // Without the claim: statistics is not there; exact_calculate (a condition on the arguments)
    // is, since it may be callable.
    let plain = analyst(&gw, json!({"org": "acme"}));
    assert_eq!(
        list(analyst(&gw, json!({"org": "acme"}))).await,
        ["exact_calculate"]
    );
    let refused = call(&plain, 1, "statistics", json!({})).await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    assert!(!arrived(&recorder, "statistics"));
    let mfa = analyst(&gw, json!({"org": "acme", "acr": "mfa"}));
    assert_eq!(
        list(analyst(&gw, json!({"org": "acme", "acr": "mfa"}))).await,
        ["exact_calculate", "statistics"]
    );
    let ok = call(&mfa, 2, "statistics", json!({})).await;
    assert!(ok.get("result").is_some(), "{ok}");
}

/// The tenant recipe: a resource grant that holds within the caller's tenant only.
#[tokio::test]
async fn a_tenant_reads_its_own_resources_only() {
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder).await;
    let read = |c: &Client, uri: &str| {
        let body =
            json!({"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {"uri": uri}});
        let c = Client::new(c.url.clone(), c.token.clone());
        async move { rpc_body(c.post(&body).await).await }
    };
    let public = analyst(&gw, json!({"org": "acme", "tenant": "public"}));
    let own = read(&public, "document://public/readme").await;
    assert!(own.get("result").is_some(), "{own}");
    let other = read(&public, "document://secret/keys").await;
    assert_eq!(other["error"]["code"], -32003, "{other}");
    assert!(!arrived(&recorder, "document://secret/keys"));
    // A caller of tenant `secret` gets the other one and not the first.
    let secret = analyst(&gw, json!({"org": "acme", "tenant": "secret"}));
    assert!(read(&secret, "document://secret/keys")
        .await
        .get("result")
        .is_some());
    assert_eq!(
        read(&secret, "document://public/readme").await["error"]["code"],
        -32003
    );
}

#[tokio::test]
async fn a_rate_limit_with_a_condition_counts_only_the_calls_it_matches() {
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder).await;
    let ann = analyst(&gw, json!({"org": "acme"}));
    let args = |size: &str| json!({"repository": "acme/app", "size": size});
    for i in 0..3 {
        let small = call(&ann, i, "exact_calculate", args("small")).await;
        assert!(small.get("result").is_some(), "{small}");
    }
    assert!(call(&ann, 5, "exact_calculate", args("big"))
        .await
        .get("result")
        .is_some());
    let r = ann.call(6, "exact_calculate", args("big")).await;
    assert_eq!(r.status(), 429);
    let again = call(&ann, 7, "exact_calculate", args("small")).await;
    assert!(again.get("result").is_some(), "{again}");
}

#[test]
fn a_bad_condition_is_a_configuration_problem() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.policy_yaml = r#"
roles:
  analyst:
    allow:
      - { tool: "calculator/exact_calculate", when: 'args.repository.startsWith(' }
      - { tool: "calculator/statistics", when: 'arg.x == 1' }
      - { tool: "calculator/statistics", resource: "calculator/x", when: 'true' }
rate_limits:
  - { name: l, key: user, rate: 1/min, match: { when: 'size(' } }
"#
    .into();
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "roles.analyst.allow[0].when: not a CEL expression",
        "roles.analyst.allow[1].when: unknown variable \"arg\"",
        "roles.analyst.allow[2].tool: name exactly one of tool, resource or prompt",
        "rate_limits[0].match.when: not a CEL expression",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}
