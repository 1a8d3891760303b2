//! `tools.yaml`: each scope's upstreams, tools and settings, validated into [`ScopeConfig`]s.

use super::file::{self, HealthCheckKind, ScopeFile, ToolFile, ToolsFile, UpstreamFile};
use super::{upstream_tls, HealthCheck, Problem, ScopeConfig, Sources, Spawn, UpstreamTarget};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A scope's field path, e.g. `scopes.git.tls`.
pub(super) type At<'a> = &'a dyn Fn(&str) -> String;

/// Each scope's name and tools, for the policy and the rate limits.
pub(super) fn scope_tools(scopes: &BTreeMap<String, ScopeConfig>) -> super::policy::ScopeTools {
    scopes
        .iter()
        .map(|(name, s)| (name.clone(), s.tools.to_vec()))
        .collect()
}

pub(super) fn build_scopes(
    sources: &Sources,
    path: &Path,
    tools: ToolsFile,
    limits: &file::LimitsFile,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, ScopeConfig> {
    if tools.scopes.is_empty() {
        problems.push(Problem::new(path, "scopes", "no scope is defined"));
    }
    let default_guards = tools.guards;
    tools
        .scopes
        .into_iter()
        .map(|(name, mut scope)| {
            // A scope's own `guards:` replaces the file's.
            let (at, guards) = match scope.guards.take() {
                Some(g) => (format!("scopes.{name}.guards"), Some(g)),
                None => ("guards".to_string(), default_guards.clone()),
            };
            let mut built = build_scope(sources, path, &name, scope, limits, problems);
            built.guards = guards
                .and_then(|g| super::guards::build(path, &at, &g, problems))
                .map(std::sync::Arc::new);
            (name, built)
        })
        .collect()
}

fn build_scope(
    sources: &Sources,
    path: &Path,
    name: &str,
    scope: ScopeFile,
    limits: &file::LimitsFile,
    problems: &mut Vec<Problem>,
) -> ScopeConfig {
    if !is_name(name) || name.starts_with('.') {
        problems.push(Problem::new(
            path,
            format!("scopes.{name}"),
            "a scope name is 1-64 of a-z 0-9 _ -",
        ));
    }
    // `/connect/…` is the consent page's (users' own upstream logins).
    if name == "connect" {
        problems.push(Problem::new(
            path,
            format!("scopes.{name}"),
            "the name is taken by the gateway's consent page (/connect): pick another",
        ));
    }
    if scope.validate_arguments && scope.validate_arguments_max_bytes == 0 {
        problems.push(Problem::new(
            path,
            format!("scopes.{name}.validate_arguments_max_bytes"),
            "must be at least 1 (to pass arguments unchecked, set validate_arguments: false)",
        ));
    }
    if !scope.servers.is_empty() {
        return super::compose::build(sources, path, name, scope, limits, problems);
    }
    let at = |f: &str| format!("scopes.{name}.{f}");
    if scope.tools.is_none() {
        problems.push(Problem::new(
            path,
            at("tools"),
            "list the tools this scope exposes (nothing else is ever shown or callable)",
        ));
    }
    build_plain(sources, path, &at, name, scope, limits, problems)
}

/// A scope (or a composed scope's server, named `scope/server`) from its upstreams and settings;
/// `at` names its fields.
pub(super) fn build_plain(
    sources: &Sources,
    path: &Path,
    at: At,
    name: &str,
    scope: ScopeFile,
    limits: &file::LimitsFile,
    problems: &mut Vec<Problem>,
) -> ScopeConfig {
    if scope.upstreams.is_empty() {
        problems.push(Problem::new(
            path,
            at("upstreams"),
            "at least one upstream is needed",
        ));
    }
    let upstream_version = upstream_version(path, at, scope.upstream_version.as_deref(), problems);
    let sealed = scope.upstreams.iter().flat_map(|u| {
        let secret = match &u.auth {
            Some(file::UpstreamAuthFile::OauthClientCredentials(c)) => Some(&c.client_secret),
            Some(file::UpstreamAuthFile::TokenExchange(t)) => t.client_secret.as_ref(),
            Some(file::UpstreamAuthFile::PerUserOauth(p)) => p.client_secret.as_ref(),
            _ => None,
        };
        u.headers.values().chain(secret)
    });
    let keys = match sealed
        .into_iter()
        .any(|v| v.starts_with(super::credentials::SEALED))
    {
        true => super::credentials::keys_of(sources, problems),
        false => Vec::new(),
    };
    let upstreams = upstream_targets(path, at, name, &scope.upstreams, &keys, problems);
    if upstreams.iter().any(|t| t.legacy_sse) && upstreams.iter().any(|t| !t.legacy_sse) {
        problems.push(Problem::new(
            path,
            at("upstreams"),
            "all upstreams of a scope speak one transport (transport: sse on all or none)",
        ));
    }
    if scope.upstream_version.is_some() && upstreams.iter().any(|t| t.legacy_sse) {
        problems.push(Problem::new(
            path,
            at("upstream_version"),
            "bridging 2026-07-28 clients needs Streamable HTTP upstreams",
        ));
    }
    let tools = scope.tools.unwrap_or_default();
    let pins = tool_pins(path, at, &tools, problems);
    allowed_methods(path, at, &scope.allow_methods, problems);
    let upstream_tls = scope.tls.as_ref().and_then(|t| {
        if !upstreams.iter().any(|u| u.tls) {
            problems.push(Problem::new(
                path,
                at("tls"),
                "no upstream of this scope is https://",
            ));
            return None;
        }
        upstream_tls::build(sources, path, &at("tls"), t, problems).map(std::sync::Arc::new)
    });
    if let Some(h) = &scope.health_check {
        health_check(path, at, h, problems);
    }
    ScopeConfig {
        name: name.to_string(),
        upstreams,
        balance: scope.balance,
        health: match scope.health_check {
            // Without one, a dead upstream would get requests (502) forever and /readyz would
            // stay ok: a TCP check every 5 s works for any MCP server.
            None => Some(HealthCheck {
                kind: HealthCheckKind::Tcp,
                path: String::new(),
                interval: DEFAULT_HEALTH_INTERVAL,
            }),
            Some(h) if h.kind == HealthCheckKind::None => None,
            Some(h) => Some(HealthCheck {
                kind: h.kind,
                path: h.path,
                interval: h.interval,
            }),
        },
        read_timeout: scope.timeout.unwrap_or(limits.upstream_read_timeout),
        connect_timeout: scope
            .connect_timeout
            .unwrap_or(limits.upstream_connect_timeout),
        tools: tools.iter().map(|t| t.name().to_string()).collect(),
        pins,
        pin: scope.pin,
        validate_arguments: scope.validate_arguments,
        validate_max_bytes: scope.validate_arguments_max_bytes,
        allow_methods: scope.allow_methods,
        outlier: scope.outlier,
        total_timeout: scope.total_timeout,
        tasks: scope.tasks,
        guards: None,
        oauth_scopes: Vec::new(),
        upstream_version,
        upstream_tls,
        composed: None,
        discovery: scope.discovery,
    }
}

/// `allow_methods`: each a JSON-RPC method name.
fn allowed_methods(
    path: &Path,
    at: &dyn Fn(&str) -> String,
    methods: &[String],
    problems: &mut Vec<Problem>,
) {
    for (i, m) in methods.iter().enumerate() {
        if m.is_empty() || m.len() > crate::jsonrpc::MAX_NAME || m.chars().any(char::is_whitespace)
        {
            problems.push(Problem::new(
                path,
                at(&format!("allow_methods[{i}]")),
                format!("{m:?} is not a JSON-RPC method name (1-128 bytes, no spaces)"),
            ));
        }
    }
}

/// How often a scope without `health_check` is checked (TCP).
const DEFAULT_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// `health_check`: an HTTP check's path, a non-zero interval.
pub(super) fn health_check(
    path: &Path,
    at: &dyn Fn(&str) -> String,
    h: &file::HealthCheckFile,
    problems: &mut Vec<Problem>,
) {
    if h.kind == HealthCheckKind::Http && !h.path.starts_with('/') {
        problems.push(Problem::new(
            path,
            at("health_check.path"),
            "must start with /",
        ));
    }
    if h.interval.is_zero() {
        problems.push(Problem::new(
            path,
            at("health_check.interval"),
            "must be greater than 0",
        ));
    }
}

/// `upstream_version`: one of the revisions the gateway speaks.
fn upstream_version(
    path: &Path,
    at: At,
    version: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<&'static str> {
    match version {
        None => None,
        Some(v) => {
            let known = crate::jsonrpc::SUPPORTED_VERSIONS
                .iter()
                .copied()
                .find(|s| *s == v);
            if known.is_none() {
                problems.push(Problem::new(
                    path,
                    at("upstream_version"),
                    format!("{v:?} is not a revision the gateway speaks (2025-03-26, 2025-06-18, 2025-11-25, 2026-07-28)"),
                ));
            }
            known
        }
    }
}

/// `upstreams:` as targets: each a URL, a tool process or a stdio program (one target per
/// instance), with its weight and transport.
fn upstream_targets(
    path: &Path,
    at: At,
    scope: &str,
    list: &[UpstreamFile],
    keys: &[(String, [u8; 32])],
    problems: &mut Vec<Problem>,
) -> Vec<UpstreamTarget> {
    let mut upstreams = Vec::new();
    for (i, u) in list.iter().enumerate() {
        let here = |f: &str| at(&format!("upstreams[{i}].{f}"));
        let parsed = match (&u.url, &u.spawn, &u.command) {
            (Some(url), None, None) => parse_upstream(url),
            (None, Some(args), None) if !args.is_empty() => spawned_upstream(args, Vec::new()),
            (None, Some(_), None) => Err("spawn needs arguments, e.g. [tool, calculator]".into()),
            (None, None, Some(command)) if !command.is_empty() => {
                stdio_upstream(path, scope, i, u, command)
            }
            (None, None, Some(_)) => Err(
                "command needs the program and its arguments, e.g. [npx, -y, \"@modelcontextprotocol/server-everything\"]"
                    .into(),
            ),
            _ => Err("give exactly one of url, spawn or command".into()),
        };
        let field = match (&u.url, &u.spawn) {
            (Some(_), _) => "url",
            (None, Some(_)) => "spawn",
            (None, None) => "command",
        };
        let per_client = u.session == Some(file::StdioSession::PerClient);
        if !per_client && (u.max_processes.is_some() || u.idle_timeout.is_some()) {
            problems.push(Problem::new(
                path,
                here("session"),
                "max_processes and idle_timeout are settings of session: per_client",
            ));
        }
        if u.max_processes.is_some_and(|n| !(1..=1024).contains(&n)) {
            problems.push(Problem::new(
                path,
                here("max_processes"),
                "must be 1 to 1024",
            ));
        }
        if u.idle_timeout.is_some_and(|d| d.is_zero()) {
            problems.push(Problem::new(
                path,
                here("idle_timeout"),
                "must be greater than 0",
            ));
        }
        if u.command.is_none()
            && (!u.env.is_empty()
                || u.cwd.is_some()
                || u.instances.is_some()
                || u.session.is_some()
                || u.limits.is_some()
                || u.sandbox.is_some()
                || u.ping_interval.is_some())
        {
            problems.push(Problem::new(
                path,
                here("command"),
                "env, cwd, instances, session, limits, sandbox and ping_interval are settings of a command upstream",
            ));
        }
        stdio_bounds(path, &here, u, problems);
        let instances = u.instances.unwrap_or(1);
        if !(1..=64).contains(&instances) {
            problems.push(Problem::new(path, here("instances"), "must be 1 to 64"));
        }
        match parsed {
            Ok(mut t) => {
                t.weight = u.weight;
                t.headers = upstream_headers(path, &here, &u.headers, keys, problems);
                t.auth = u.auth.as_ref().and_then(|a| {
                    super::credentials::upstream_auth(path, &here, a, keys, problems)
                });
                if t.auth.is_some()
                    && t.headers
                        .iter()
                        .any(|(n, _)| n == http::header::AUTHORIZATION)
                {
                    problems.push(Problem::new(
                        path,
                        here("headers.Authorization"),
                        "auth: sends the Authorization header already",
                    ));
                }
                t.legacy_sse = u.transport == file::UpstreamTransport::Sse;
                if t.legacy_sse && t.spawn.is_some() {
                    problems.push(Problem::new(
                        path,
                        here("transport"),
                        "the gateway's own processes speak Streamable HTTP",
                    ));
                }
                if u.weight == 0 {
                    problems.push(Problem::new(path, here("weight"), "must be at least 1"));
                }
                // Spawned processes get their own ports when started: several may run the same.
                if t.spawn.is_none() && upstreams.contains(&t) {
                    problems.push(Problem::new(path, here("url"), "duplicate upstream"));
                }
                for _ in 0..instances.clamp(1, 64) {
                    upstreams.push(t.clone());
                }
            }
            Err(reason) => problems.push(Problem::new(path, here(field), reason)),
        }
    }
    upstreams
}

/// `headers:` of an upstream: names the gateway does not write itself, values opened (a sealed
/// one with the environment's keys). A problem names the header, never its value.
fn upstream_headers(
    path: &Path,
    here: At,
    headers: &BTreeMap<String, String>,
    keys: &[(String, [u8; 32])],
    problems: &mut Vec<Problem>,
) -> Vec<(http::HeaderName, super::credentials::Secret)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let field = here(&format!("headers.{name}"));
        let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(Problem::new(path, field, "not a header name"));
            continue;
        };
        if !super::credentials::settable(&header) {
            problems.push(Problem::new(
                path,
                field,
                "written or judged by the gateway itself",
            ));
            continue;
        }
        let opened = super::credentials::reveal(value, keys).and_then(|v| {
            super::credentials::Secret::new(&v).ok_or_else(|| {
                "the value cannot be a header (a line break or control character)".into()
            })
        });
        match opened {
            Ok(secret) => out.push((header, secret)),
            Err(why) => problems.push(Problem::new(path, field, why)),
        }
    }
    out
}

/// A command upstream's limits and sandbox: sizes in range, sandbox paths absolute.
fn stdio_bounds(path: &Path, here: At, u: &UpstreamFile, problems: &mut Vec<Problem>) {
    if let Some(l) = &u.limits {
        if l.memory_mb.is_some_and(|m| !(16..=1 << 20).contains(&m)) {
            problems.push(Problem::new(
                path,
                here("limits.memory_mb"),
                "must be 16 to 1048576 (MiB)",
            ));
        }
        if l.open_files.is_some_and(|n| !(16..=1 << 20).contains(&n)) {
            problems.push(Problem::new(
                path,
                here("limits.open_files"),
                "must be 16 to 1048576",
            ));
        }
    }
    if let Some(s) = &u.sandbox {
        for (field, list) in [("writable", &s.writable), ("hidden", &s.hidden)] {
            for (i, p) in list.iter().enumerate() {
                if !p.is_absolute() {
                    problems.push(Problem::new(
                        path,
                        here(&format!("sandbox.{field}[{i}]")),
                        format!("{} is not an absolute path", p.display()),
                    ));
                }
            }
        }
    }
    if u.ping_interval
        .is_some_and(|d| !d.is_zero() && d < std::time::Duration::from_millis(100))
    {
        problems.push(Problem::new(
            path,
            here("ping_interval"),
            "must be 0s (never) or at least 100ms",
        ));
    }
}

/// Files open per stdio process unless `limits.open_files` says otherwise.
const DEFAULT_OPEN_FILES: u64 = 1024;
/// How often a shared stdio process is pinged unless `ping_interval` says otherwise.
const DEFAULT_PING: std::time::Duration = std::time::Duration::from_secs(15);

/// A stdio program behind the gateway's stdio adapter: the adapter is the process the gateway
/// runs; the program, its environment and directory reach it in one variable.
fn stdio_upstream(
    path: &Path,
    scope: &str,
    index: usize,
    u: &UpstreamFile,
    command: &[String],
) -> Result<UpstreamTarget, String> {
    if let Some(bad) = u.env.keys().find(|k| {
        k.is_empty() || k.contains('=') || k.as_str() == crate::protocol::STDIO_PROGRAM_VAR
    }) {
        return Err(format!(
            "env: {bad:?} is not a variable name the program can get"
        ));
    }
    let cwd = u
        .cwd
        .as_ref()
        .map(|d| path.parent().unwrap_or(Path::new(".")).join(d));
    let program = crate::protocol::StdioProgram {
        command: command.to_vec(),
        env: u.env.clone(),
        cwd,
        session: u.session.unwrap_or_default(),
        max_processes: u.max_processes,
        idle_timeout_ms: u.idle_timeout.map(|d| d.as_millis() as u64),
        memory_mb: u.limits.as_ref().and_then(|l| l.memory_mb),
        open_files: Some(
            u.limits
                .as_ref()
                .and_then(|l| l.open_files)
                .unwrap_or(DEFAULT_OPEN_FILES),
        ),
        // The gateway's configuration directory (its secrets, keys, certificates) is never seen.
        sandbox: u.sandbox.as_ref().map(|s| crate::protocol::StdioSandbox {
            writable: s.writable.clone(),
            hidden: s
                .hidden
                .iter()
                .cloned()
                .chain(path.parent().and_then(|d| std::path::absolute(d).ok()))
                .collect(),
            network: s.network,
        }),
        ping_ms: Some(u.ping_interval.unwrap_or(DEFAULT_PING).as_millis() as u64),
    };
    let program = serde_json::to_string(&program).map_err(|e| e.to_string())?;
    spawned_upstream(
        &["stdio".into(), "--name".into(), format!("{scope}/{index}")],
        vec![(crate::protocol::STDIO_PROGRAM_VAR.to_string(), program)],
    )
}

/// `tools:`: valid, unique names, and the SHA-256 pinned for some.
pub(super) fn tool_pins(
    path: &Path,
    at: At,
    tools: &[ToolFile],
    problems: &mut Vec<Problem>,
) -> HashMap<String, [u8; 32]> {
    let mut seen = Vec::new();
    let mut pins = HashMap::new();
    for (i, entry) in tools.iter().enumerate() {
        let tool = &entry.name().to_string();
        if let Some(h) = entry.sha256() {
            match sha256_of_hex(h) {
                Some(sha) => {
                    pins.insert(tool.clone(), sha);
                }
                None => problems.push(Problem::new(
                    path,
                    at(&format!("tools[{i}].sha256")),
                    "must be a SHA-256 in 64 hex digits (mcp-gateway tools show SCOPE/TOOL prints it)",
                )),
            }
        }
        if !is_tool_name(tool) {
            problems.push(Problem::new(
                path,
                at(&format!("tools[{i}]")),
                format!("{tool:?} is not a valid tool name (1-128 of A-Z a-z 0-9 _ . -)"),
            ));
        } else if seen.contains(tool) {
            problems.push(Problem::new(
                path,
                at(&format!("tools[{i}]")),
                format!("duplicate tool {tool:?}"),
            ));
        }
        seen.push(tool.clone());
    }
    pins
}

/// A pinned definition's hash as written in the file (64 hex digits).
fn sha256_of_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Tool names as the MCP specification allows them.
pub fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(super) fn parse_upstream(raw: &str) -> Result<UpstreamTarget, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "scheme {other:?} is not supported (use http or https)"
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("{raw:?} has no host"))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{raw:?} has no port"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{raw:?}: an upstream URL has no query, fragment or credentials"
        ));
    }
    Ok(UpstreamTarget {
        host,
        port,
        path: url.path().to_string(),
        tls,
        weight: 1,
        spawn: None,
        legacy_sse: false,
        headers: Vec::new(),
        auth: None,
    })
}

/// A tool process the gateway will run, on a loopback port the runtime picks when it starts the
/// process (`Config::assign_spawn_ports`); 0 until then.
fn spawned_upstream(args: &[String], env: Vec<(String, String)>) -> Result<UpstreamTarget, String> {
    Ok(UpstreamTarget::loopback(Some(Spawn {
        args: args.to_vec(),
        env,
    })))
}
