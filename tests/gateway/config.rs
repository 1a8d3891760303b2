//! `mcp-gateway check`: every problem at once, each with file, field and reason; the shipped
//! configuration is valid as it is.

use crate::common::*;

#[test]
fn check_reports_every_problem_at_once() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "threads: 2\n",
        "threads: 2\nthreds: 3\n",
    );
    spec.tools_yaml = "scopes:\n  calculator:\n    upstreams:\n      - url: ftp://127.0.0.1:9/mcp\n    tools: [exact_calculate, exact_calculate, 'bad name']\n".into();
    spec.policy_yaml =
        "roles:\n  dev:\n    allow: [\"calculater/*\", \"calculator/nope\"]\n".into();
    let (ok, out) = spec.check();
    assert!(!ok, "{out}");
    assert!(
        out.contains("gateway.yaml: threds: unknown field `threds`"),
        "{out}"
    );
    for want in [
        "tools.yaml: scopes.calculator.upstreams[0].url: scheme \"ftp\" is not supported",
        "tools.yaml: scopes.calculator.tools[1]: duplicate tool \"exact_calculate\"",
        "tools.yaml: scopes.calculator.tools[2]: \"bad name\" is not a valid tool name",
        "policy.yaml: roles.dev.allow[0]: \"calculater/*\" names no scope of the tools file",
        "policy.yaml: roles.dev.allow[1]: \"calculator/nope\" names no tool",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(out.contains("6 configuration problem(s)"), "{out}");
}

#[test]
fn missing_environment_variable_is_named() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.env.clear();
    let (ok, out) = spec.check();
    assert!(!ok);
    assert!(
        out.contains("gateway.yaml: jwt.secret: environment variable TEST_JWT_SECRET is not set"),
        "{out}"
    );
}

#[test]
fn environment_overrides_and_bad_values() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.env
        .push(("JWT_MAX_TOKEN_AGE_MINUTES".into(), "ten".into()));
    spec.env
        .push(("JWT_ALLOWED_ALGORITHMS".into(), "HS256,XX999".into()));
    let (ok, out) = spec.check();
    assert!(!ok);
    assert!(
        out.contains(
            "environment: JWT_MAX_TOKEN_AGE_MINUTES: expected a whole number, got \"ten\""
        ),
        "{out}"
    );
    // A value the environment set is blamed on the variable, not on the file.
    assert!(
        out.contains("environment: JWT_ALLOWED_ALGORITHMS: \"XX999\" is not supported"),
        "{out}"
    );
}

#[test]
fn shipped_configuration_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, out) = check_file(&root.join("conf/gateway.yaml"), &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok (3 scopes: calculator, docs, git)"),
        "{out}"
    );
}

/// `check` validates and changes nothing: on a fresh copy of the shipped configuration it leaves
/// the tree as it was (no development secrets written); `token`, which needs the secrets to last,
/// writes them once, private to the user, and reuses them.
#[test]
fn check_touches_nothing_and_token_keeps_its_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = shipped_copy();
    let listing = || {
        let mut all: Vec<String> = walk(dir.path());
        all.sort();
        all
    };
    let before = listing();
    let config = dir.path().join("conf/gateway.yaml");
    let (ok, out) = check_file(&config, &[]);
    assert!(ok, "{out}");
    assert_eq!(listing(), before, "check changed the disk");
    let secrets = dir.path().join("var/dev-secrets.json");
    let token = || {
        cli(
            &["token", "--user", "alice", "--roles", "developer"],
            &config,
            &[],
        );
        std::fs::read(&secrets).unwrap()
    };
    let first = token();
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(token(), first, "the secrets are generated once");
}

/// Run outside the project directory without `--config`, a command says where it looked and how
/// to name the file, instead of a list of unreadable files.
#[test]
fn a_command_without_a_configuration_says_where_it_looked() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .arg("token")
        .current_dir(elsewhere.path())
        .env_remove("MCP_GATEWAY_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no configuration file at conf/gateway.yaml")
            && err.contains(&elsewhere.path().display().to_string())
            && err.contains("--config"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A fresh copy of the shipped `conf/` and `policies/`, as a new clone has them.
fn shipped_copy() -> tempfile::TempDir {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for sub in ["conf", "policies"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for f in std::fs::read_dir(root.join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// On a fresh checkout, `run &` followed at once by `token` races to create the development
/// secrets: every process succeeds, and every token is signed with the one secret on disk.
#[test]
fn processes_starting_together_agree_on_one_set_of_development_secrets() {
    let dir = shipped_copy();
    let config = dir.path().join("conf/gateway.yaml");
    let spawned: Vec<std::process::Child> = (0..8)
        .map(|i| {
            std::process::Command::new(bin())
                .args(["token", "--user", &format!("u{i}"), "-c"])
                .arg(&config)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let tokens: Vec<String> = spawned
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("var/dev-secrets.json")).unwrap())
            .unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_secret(secrets["jwt_secret"].as_str().unwrap().as_bytes());
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    for t in &tokens {
        jsonwebtoken::decode::<serde_json::Value>(t, &key, &v)
            .unwrap_or_else(|e| panic!("a token not signed with the secret on disk: {e}"));
    }
    let leftovers: Vec<String> = walk(&dir.path().join("var"));
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn rate_limit_problems_are_named() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.policy_yaml = format!(
        "{POLICY}\nrate_limits:\n  - {{ name: a, key: user, rate: 5/fortnight }}\n  - {{ name: b, key: user, rate: 5/min, match: {{ roles: [ghost], tools: [nope] }} }}\n  - {{ name: b, key: planet, rate: 1/s }}\n"
    );
    let (ok, out) = spec.check();
    assert!(!ok);
    assert!(
        out.contains("policy.yaml: rate_limits[2].key: unknown variant `planet`"),
        "{out}"
    );
    spec.policy_yaml = edit(
        &spec.policy_yaml,
        "  - { name: b, key: planet, rate: 1/s }\n",
        "  - { name: b, key: tool, rate: 1/s }\n",
    );
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "policy.yaml: rate_limits[0].rate: unknown unit \"fortnight\"",
        "policy.yaml: rate_limits[1].match.tools: names no tool",
        "policy.yaml: rate_limits[1].match.roles[0]: unknown role \"ghost\"",
        "policy.yaml: rate_limits[2].name: \"b\" must be a unique, non-empty name",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// The settings of the default-deny work are validated with file, field and reason.
#[test]
fn exposure_forwarding_connection_and_method_settings_are_checked() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.gateway_yaml = edit(&spec.gateway_yaml, "listen: 127.0.0.1:", "listen: 0.0.0.0:");
    spec.gateway_yaml.push_str(
        "trusted_proxies: [10.0.0.0/8, 192.168.1.7, not-an-ip]\nconnections:\n  max: 0\n  head_timeout: 0s\n",
    );
    spec.scope_setting("allow_methods: [\"has space\", x/ok]");
    let (ok, out) = spec.check();
    assert!(!ok, "{out}");
    for want in [
        "gateway.yaml: public_url: required when listen is not a loopback address",
        "gateway.yaml: trusted_proxies[2]: \"not-an-ip\" is not an IP address or CIDR range",
        "gateway.yaml: connections.max: must be greater than 0",
        "gateway.yaml: connections.head_timeout: must be greater than 0",
        "tools.yaml: scopes.calculator.allow_methods[0]: \"has space\" is not a JSON-RPC method name",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(out.contains("5 configuration problem(s)"), "{out}");
}

/// One `check` names every problem of gateway.yaml: type, duration and unknown-field errors
/// together, a missing `${VAR}` without hiding the rest (nor a "cannot read" for a file it does
/// not name), and a bad value from the environment as the variable's.
#[test]
fn one_check_names_every_problem_of_gateway_yaml() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "threads: 2\n",
        "threads: two\nthreds: 3\n",
    );
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "shutdown_grace: 1s\n",
        "shutdown_grace: 5 parsecs\npublic_url: ${SURELY_UNSET_URL}\n",
    );
    spec.gateway_yaml = edit(
        &spec.gateway_yaml,
        "tools_file: tools.yaml\n",
        "tools_file: my-tools.yaml\n",
    );
    std::fs::write(spec.dir.path().join("my-tools.yaml"), &spec.tools_yaml).unwrap();
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "gateway.yaml: threads: invalid type",
        "gateway.yaml: threds: unknown field `threds`",
        "gateway.yaml: shutdown_grace: bad duration",
        "gateway.yaml: public_url: environment variable SURELY_UNSET_URL is not set",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("cannot read"), "{out}");
    assert!(out.contains("4 configuration problem(s)"), "{out}");

    let mut spec = GatewaySpec::new(&[9]);
    spec.env.push(("JWT_SECRET_KEY".into(), "short".into()));
    let (ok, out) = spec.check();
    assert!(!ok);
    assert!(
        out.contains("environment: JWT_SECRET_KEY: must be at least 32 bytes"),
        "{out}"
    );
    assert!(!out.contains("jwt.secret"), "{out}");
}

/// `command:` upstreams are checked like the others: an empty command, settings of a command on a
/// URL upstream, a count of instances out of range and a sharing mode not offered are named.
#[test]
fn command_upstream_problems_are_named() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.tools_yaml = "scopes:\n  calculator:\n    upstreams:\n      - command: []\n      - url: http://127.0.0.1:9/mcp\n        env: { A: b }\n      - command: [cat]\n        instances: 0\n      - command: [cat]\n        session: per_request\n      - command: [cat]\n        max_processes: 3\n    tools: [exact_calculate]\n".into();
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "tools.yaml: scopes.calculator.upstreams[0].command: command needs the program",
        "tools.yaml: scopes.calculator.upstreams[1].command: env, cwd, instances, session, limits, sandbox and ping_interval are settings of a command upstream",
        "tools.yaml: scopes.calculator.upstreams[2].instances: must be 1 to 64",
        "tools.yaml: scopes.calculator.upstreams[3].session: unknown variant `per_request`",
        "tools.yaml: scopes.calculator.upstreams[4].session: max_processes and idle_timeout are settings of session: per_client",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// A command upstream's bounds: limits in range, sandbox paths absolute, pings not too often.
#[test]
fn stdio_bounds_problems_are_named() {
    let mut spec = GatewaySpec::new(&[9]);
    spec.tools_yaml = "scopes:\n  calculator:\n    upstreams:\n      - command: [cat]\n        limits: { memory_mb: 1, open_files: 4 }\n        sandbox: { writable: [srv], hidden: [/ok, etc] }\n        ping_interval: 10ms\n    tools: [exact_calculate]\n".into();
    let (ok, out) = spec.check();
    assert!(!ok);
    for want in [
        "scopes.calculator.upstreams[0].limits.memory_mb: must be 16 to 1048576 (MiB)",
        "scopes.calculator.upstreams[0].limits.open_files: must be 16 to 1048576",
        "scopes.calculator.upstreams[0].sandbox.writable[0]: srv is not an absolute path",
        "scopes.calculator.upstreams[0].sandbox.hidden[1]: etc is not an absolute path",
        "scopes.calculator.upstreams[0].ping_interval: must be 0s (never) or at least 100ms",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}
