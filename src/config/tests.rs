//! The configuration's validation, as `check` reports it.

use super::scopes::parse_upstream;
use super::*;

/// Upstream TLS problems name the scope's field: `tls` on a scope without an https upstream,
/// a missing CA file, a client certificate without its key, a bad server name; and a scope that
/// would validate no arguments at all (`validate_arguments_max_bytes: 0`).
#[test]
fn scope_problems_are_named() {
    let dir = Path::new("/in-memory");
    let validate_tools = |tools: &str| {
        let files = [
            ("gateway.yaml", "listen: 127.0.0.1:8000\ntools_file: tools.yaml\npolicy_file: policy.yaml\njwt: { algorithms: [HS256], secret: '0123456789abcdef0123456789abcdef' }\nupstream_shared_secret: '0123456789abcdef0123456789abcdef'\nsession_secrets: ['0123456789abcdef0123456789abcdef']\n"),
            ("tools.yaml", tools),
            ("policy.yaml", "roles:\n  dev: { allow: ['calc/*'] }\n"),
        ]
        .map(|(name, text)| (dir.join(name), text.as_bytes().to_vec()));
        let sources = Sources::in_memory(&dir.join("gateway.yaml"), files, source::Env::new());
        validate(&sources)
            .map(|_| ())
            .unwrap_err()
            .0
            .iter()
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect::<Vec<_>>()
    };
    let taken = validate_tools("scopes:\n  calc:\n    upstreams: [{ url: 'http://127.0.0.1:9/mcp' }]\n    tools: [t]\n  connect:\n    upstreams: [{ url: 'http://127.0.0.1:9/mcp' }]\n    tools: [t]\n");
    assert!(
        taken
            .iter()
            .any(|p| p
                .starts_with("scopes.connect: the name is taken by the gateway's consent page")),
        "{taken:?}"
    );
    let plain = validate_tools("scopes:\n  calc:\n    upstreams: [{ url: 'http://127.0.0.1:9/mcp' }]\n    tools: [t]\n    tls: { ca_file: ca.pem }\n");
    assert!(
        plain[0].starts_with("scopes.calc.tls: no upstream"),
        "{plain:?}"
    );
    let https = validate_tools("scopes:\n  calc:\n    upstreams: [{ url: 'https://127.0.0.1:9/mcp' }]\n    tools: [t]\n    tls: { ca_file: ca.pem, client_cert_file: me.pem, server_name: 'not a name' }\n");
    let fields: Vec<&str> = https.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "scopes.calc.tls.ca_file",
            "scopes.calc.tls.client_cert_file",
            "scopes.calc.tls.client_cert_file",
            "scopes.calc.tls.server_name"
        ],
        "{https:?}"
    );
    let unbounded = validate_tools("scopes:\n  calc:\n    upstreams: [{ url: 'http://127.0.0.1:9/mcp' }]\n    tools: [t]\n    validate_arguments_max_bytes: 0\n");
    assert_eq!(
        unbounded,
        ["scopes.calc.validate_arguments_max_bytes: must be at least 1 (to pass arguments unchecked, set validate_arguments: false)"],
    );
}

/// Validation sees only its sources: the environment it is given, files held in memory; a
/// missing development secrets file is generated in memory, a spawned tool gets no port yet.
#[test]
fn validation_reads_only_its_sources() {
    let dir = Path::new("/in-memory");
    let files = [
        ("gateway.yaml", "listen: 127.0.0.1:8000\ntools_file: tools.yaml\npolicy_file: policy.yaml\njwt: { algorithms: [HS256], secret: '${JWT}' }\ndev_secrets_file: dev.json\n"),
        ("tools.yaml", "scopes:\n  calc:\n    upstreams: [{ spawn: [tool, calculator] }]\n    tools: [exact_calculate]\n"),
        ("policy.yaml", "roles:\n  dev: { allow: ['calc/*'] }\n"),
    ]
    .map(|(name, text)| (dir.join(name), text.as_bytes().to_vec()));
    let secret = "s".repeat(40);
    let env = source::Env::from([("JWT".to_string(), secret.clone())]);
    let c = validate(&Sources::in_memory(&dir.join("gateway.yaml"), files, env)).unwrap();
    assert_eq!(c.jwt.secret.as_deref(), Some(secret.as_bytes()));
    let (path, dev) = c.dev_secrets_to_write.as_ref().unwrap();
    assert_eq!(path, &dir.join("dev.json"));
    assert_eq!(c.upstream_secret, dev.upstream_shared_secret);
    assert_eq!(c.scopes["calc"].upstreams[0].port, 0);
    let empty = Sources::in_memory(&dir.join("gateway.yaml"), [], source::Env::new());
    let problems = validate(&empty).unwrap_err().0;
    assert!(
        problems[0].to_string().contains("cannot read"),
        "{problems:?}"
    );
}

/// Mutated copies of the shipped files: validation never panics, and every problem it reports
/// names a file of the configuration (or the environment).
#[test]
fn mutated_configurations_are_reported_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    let (gateway, tools, policy) = (
        read("conf/gateway.yaml"),
        read("conf/tools.yaml"),
        read("policies/policy.yaml"),
    );
    let dir = Path::new("/in-memory/conf");
    let names = ["gateway.yaml", "tools.yaml", "../policies/policy.yaml"];
    for (which, original) in [&gateway, &tools, &policy].into_iter().enumerate() {
        for mutated in crate::mutate::mutations(&[original.as_slice()], 700, which as u64) {
            let mut files: Vec<(PathBuf, Vec<u8>)> = [&gateway, &tools, &policy]
                .iter()
                .zip(names)
                .map(|(b, n)| (dir.join(n), b.to_vec()))
                .collect();
            files[which].1 = mutated;
            let sources = Sources::in_memory(&dir.join("gateway.yaml"), files, source::Env::new());
            if let Err(e) = validate(&sources) {
                for p in &e.0 {
                    // A mutation may rename a file gateway.yaml names: then that file.
                    assert!(
                        p.file.starts_with("/in-memory/") || p.file == "environment",
                        "{p}"
                    );
                }
            }
        }
    }
}

#[test]
fn upstream_urls() {
    let t = parse_upstream("http://127.0.0.1:8091/mcp").unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.path.as_str(), t.tls),
        ("127.0.0.1", 8091, "/mcp", false)
    );
    assert_eq!(
        parse_upstream("https://tools.internal/x").unwrap().port,
        443
    );
    assert!(parse_upstream("ftp://x/").unwrap_err().contains("scheme"));
    assert!(parse_upstream("not a url").is_err());
}
