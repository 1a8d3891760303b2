//! Micro-benchmarks of the request path's pieces: `cargo bench --bench request_path`.
//! JSON-RPC parse, JWT verification (cache hit and miss), the policy decision, `tools/list`
//! filtering (JSON and SSE) and the rate-limit check.

use bytes::Bytes;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mcp_gateway::auth::{Authenticator, Identity};
use mcp_gateway::config::file::{
    ClaimsFile, PolicyFile, RateLimitFile, RateLimitKey, RateLimitMatch, RoleFile,
};
use mcp_gateway::config::JwtSettings;
use mcp_gateway::limits::RateLimits;
use mcp_gateway::policy::Policy;
use mcp_gateway::proxy::filter::ResponseRewrite;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const SECRET: &[u8] = b"bench-jwt-secret-bench-jwt-secret-0123456789";
const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exact_calculate","arguments":{"operator":"add","operands":["1.25","2.5"],"precision":28}}}"#;

fn main() {
    divan::main();
}

fn settings() -> JwtSettings {
    JwtSettings {
        algorithms: vec![Algorithm::HS256],
        secret: Some(SECRET.to_vec()),
        public_key_pem: None,
        jwks_url: None,
        jwks_refresh: Duration::from_secs(300),
        issuer: Some("bench".into()),
        audience: vec!["mcp-gateway".into()],
        max_age: None,
        clock_skew: 60,
        claims: ClaimsFile::default(),
        allowed_api_versions: vec![],
        cache_entries: 100_000,
        cache_bytes: 1 << 30,
        required_scopes: vec![],
        dev_issuer: None,
    }
}

fn token(n: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "alice", "roles": ["developer"], "iss": "bench", "aud": "mcp-gateway", "iat": now, "exp": now + 3600, "n": n});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn scopes() -> mcp_gateway::policy::ScopeTools {
    let tools = [
        "exact_calculate",
        "statistics",
        "convert_units",
        "evaluate_expression",
    ];
    BTreeMap::from([(
        "calculator".to_string(),
        tools.iter().map(|t| t.to_string()).collect(),
    )])
}

#[divan::bench]
fn jsonrpc_parse(b: divan::Bencher) {
    b.bench(|| mcp_gateway::jsonrpc::parse(divan::black_box(CALL), false, false).unwrap());
}

#[divan::bench]
fn jwt_verify_cache_hit(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let auth = Authenticator::new(settings()).unwrap();
    let t = token(0);
    rt.block_on(auth.verify(&t)).unwrap();
    b.bench(|| rt.block_on(auth.verify(divan::black_box(&t))).unwrap());
}

#[divan::bench]
fn jwt_verify_cache_miss(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let auth = Authenticator::new(settings()).unwrap();
    let tokens: Vec<String> = (0..20_000).map(token).collect();
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % tokens.len();
        // A fresh authenticator per 20k calls would be needed for a pure miss; the cache holds
        // 100k, so each token is verified once within the run.
        rt.block_on(auth.verify(&tokens[i])).unwrap()
    });
}

#[divan::bench]
fn policy_decision(b: divan::Bencher) {
    let file = PolicyFile {
        roles: BTreeMap::from([
            (
                "developer".to_string(),
                RoleFile {
                    allow: vec!["calculator/*".into()],
                    client_cert: None,
                },
            ),
            (
                "analyst".to_string(),
                RoleFile {
                    allow: vec!["calculator/exact_calculate".into()],
                    client_cert: None,
                },
            ),
        ]),
        rate_limits: vec![],
    };
    let policy = Policy::compile(Path::new("policy.yaml"), &file, &scopes(), &mut vec![]);
    let roles = vec!["analyst".to_string(), "developer".to_string()];
    b.bench(|| policy.allows(divan::black_box(&roles), "calculator", "statistics"));
}

/// A resource grant is a glob matched per request (resources are not listed in the configuration).
#[divan::bench]
fn policy_resource_decision(b: divan::Bencher) {
    let file = PolicyFile {
        roles: BTreeMap::from([(
            "reader".to_string(),
            RoleFile {
                allow: vec![
                    "calculator/resource:document://public/*".into(),
                    "calculator/prompt:summarize".into(),
                ],
                client_cert: None,
            },
        )]),
        rate_limits: vec![],
    };
    let policy = Policy::compile(Path::new("policy.yaml"), &file, &scopes(), &mut vec![]);
    let roles = vec!["reader".to_string()];
    b.bench(|| {
        policy.allows_kind(
            divan::black_box(&roles),
            "calculator",
            mcp_gateway::policy::Kind::Resource,
            divan::black_box("document://public/reports/2026/q3.md"),
        )
    });
}

fn tools_list() -> String {
    let tool = |n: &str| serde_json::json!({"name": n, "description": "d".repeat(200), "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}});
    serde_json::json!({"jsonrpc":"2.0","id":1,"result":{"tools":[tool("exact_calculate"), tool("statistics"), tool("convert_units"), tool("evaluate_expression")]}}).to_string()
}

#[divan::bench]
fn tools_list_filter_json(b: divan::Bencher) {
    let body = Bytes::from(tools_list());
    b.bench(|| {
        let mut r = ResponseRewrite::pending_list();
        r.start("application/json", || {
            Box::new(vec!["exact_calculate".to_string()])
        });
        let mut chunk = Some(body.clone());
        r.body(&mut chunk, true);
        chunk
    });
}

#[divan::bench]
fn tools_list_filter_sse(b: divan::Bencher) {
    let body = Bytes::from(format!("event: message\nid: 1\ndata: {}\n\n", tools_list()));
    b.bench(|| {
        let mut r = ResponseRewrite::pending_list();
        r.start("text/event-stream", || {
            Box::new(vec!["exact_calculate".to_string()])
        });
        let mut chunk = Some(body.clone());
        r.body(&mut chunk, true);
        chunk
    });
}

#[divan::bench]
fn rate_limit_check_10k_users(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let file = RateLimitFile {
        name: "per-user".into(),
        key: RateLimitKey::User,
        rate: "1000000/s".into(),
        burst: 0,
        methods: vec!["tools/call".into()],
        matches: RateLimitMatch::default(),
    };
    let rules = mcp_gateway::config::rate_limits::compile(
        Path::new("policy.yaml"),
        &[file],
        &scopes(),
        &["developer".into()],
        &mut vec![],
    );
    let limits = RateLimits::new(rules, None);
    let ids: Vec<Identity> = (0..10_000)
        .map(|i| Identity {
            user: format!("user{i}"),
            tenant: None,
            roles: vec!["developer".into()],
            api_version: None,
            valid_until: u64::MAX,
            oauth_scopes: None,
            resources: None,
            claims: Default::default(),
        })
        .collect();
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % ids.len();
        let facts = mcp_gateway::policy::condition::Facts {
            identity: &ids[i],
            scope: "calculator",
            method: "tools/call",
            tool: Some("exact_calculate"),
            arguments: None,
            resource: None,
            prompt: None,
            client_cert: None,
        };
        rt.block_on(limits.check(&facts)).unwrap()
    });
}

/// A guarded scope's result detectors (secrets and personal data, redact) over a result of
/// `size` bytes of plain words: what a clean answer costs the guard.
fn guard_scan(b: divan::Bencher, size: usize) {
    use mcp_gateway::config::file::{GuardAction, GuardsFile};
    let f = GuardsFile {
        results: [
            ("secrets", GuardAction::Redact),
            ("pii", GuardAction::Redact),
        ]
        .into_iter()
        .map(|(k, a)| (k.to_string(), a))
        .collect(),
        ..Default::default()
    };
    let g = mcp_gateway::config::guards::build(Path::new("tools.yaml"), "guards", &f, &mut vec![])
        .expect("the built-in detectors compile");
    let mut text = String::new();
    while text.len() < size {
        text.push_str("the quick brown fox jumps over the lazy dog 1234 ");
    }
    let answer = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}).to_string();
    b.bench_local(|| {
        mcp_gateway::guard::inspect(&g, &answer, mcp_gateway::guard::Direction::Results).unwrap()
    });
}

#[divan::bench]
fn guard_scan_clean_4k(b: divan::Bencher) {
    guard_scan(b, 4096);
}

#[divan::bench]
fn guard_scan_clean_64k(b: divan::Bencher) {
    guard_scan(b, 65536);
}

/// A read's timeout as Pingora arms it when the read must wait: made, polled once (the read is
/// pending, so the timer is registered) and dropped (the read finished first), on one thread and
/// on two at once (the gateway's two proxy threads arming and cancelling side by side). The
/// gateway's upstream reads and pooled connections take one each per request; `fast` is
/// Pingora's 10 ms timer wheel, `tokio` tokio's own timer, which Pingora uses above
/// `fast_timeout_to_tokio_threshold_seconds` (the gateway keeps Pingora's: tokio's is cheaper on
/// one thread and dearer on two, bench/README.md).
fn arm_and_cancel<F: std::future::Future>(armed: F) {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap()
    });
    let _entered = rt.enter();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut armed = std::pin::pin!(armed);
    assert!(armed.as_mut().poll(&mut cx).is_pending());
}

#[divan::bench(threads = [1, 2])]
fn timeout_fast(b: divan::Bencher) {
    b.bench(|| {
        arm_and_cancel(pingora_timeout::timeout(
            Duration::from_secs(60),
            std::future::pending::<()>(),
        ))
    });
}

#[divan::bench(threads = [1, 2])]
fn timeout_tokio(b: divan::Bencher) {
    b.bench(|| {
        arm_and_cancel(pingora_timeout::tokio_timeout(
            Duration::from_secs(60),
            std::future::pending::<()>(),
        ))
    });
}
