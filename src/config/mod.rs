//! Configuration: the three YAML files operators edit (`file`), the environment's part (`env`),
//! generated development secrets (`secrets`), and the validated, immutable runtime [`Config`] the
//! proxy runs on. Loading reports every problem at once, each naming the file, the field and the
//! reason, so one `mcp-gateway check` run shows all that is wrong.

pub mod env;
pub mod file;
pub mod secrets;

use crate::policy::Policy;
use file::{Balance, GatewayFile, HealthCheckKind, PolicyFile, ToolsFile};
use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub field: String,
    pub reason: String,
}

impl Problem {
    pub fn new(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }
    pub fn env(name: &str, reason: impl Into<String>) -> Self {
        Self {
            file: "environment".into(),
            field: name.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.field, self.reason)
        }
    }
}

/// Every problem found while loading, in file order.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The validated configuration the gateway runs on. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Config {
    pub source: PathBuf,
    pub listen: String,
    pub metrics_listen: Option<String>,
    pub threads: usize,
    pub shutdown_grace: Duration,
    pub limits: Limits,
    pub jwt: JwtSettings,
    pub upstream_secret: String,
    /// First seals new session ids; all open them.
    pub session_secrets: Vec<Vec<u8>>,
    pub public_url: Option<String>,
    /// Peers whose forwarding headers are kept.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub authorization_servers: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub scopes: BTreeMap<String, ScopeConfig>,
    pub policy: Policy,
    pub audit: std::sync::Arc<crate::audit::AuditConfig>,
    /// Compiled rate limits (moved into the runtime when the gateway starts).
    pub rate_limits: Vec<crate::limits::Rule>,
    pub rate_limit_store: Option<file::RateLimitStoreFile>,
    pub connections: crate::listen::ConnectionLimits,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_concurrent_per_user: u32,
    pub max_concurrent_per_upstream: u32,
}

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub algorithms: Vec<Algorithm>,
    pub secret: Option<Vec<u8>>,
    pub public_key_pem: Option<Vec<u8>>,
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub max_age: Option<Duration>,
    pub clock_skew: u64,
    pub claims: file::ClaimsFile,
    pub allowed_api_versions: Vec<String>,
    pub cache_entries: usize,
    pub cache_bytes: u64,
}

/// One scope as the proxy uses it.
#[derive(Debug, Clone)]
pub struct ScopeConfig {
    pub name: String,
    pub upstreams: Vec<UpstreamTarget>,
    pub balance: Balance,
    pub health: Option<HealthCheck>,
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    pub tools: Vec<String>,
    /// Methods the gateway does not know that may still pass (`allow_methods`).
    pub allow_methods: Vec<String>,
    pub outlier: Option<file::OutlierFile>,
    pub total_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    pub path: String,
    pub interval: Duration,
}

/// An upstream MCP server: where to connect and which path serves MCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub tls: bool,
    pub weight: usize,
    /// For a tool process the gateway runs: its arguments (the port is added).
    pub spawn: Option<Vec<String>>,
}

impl UpstreamTarget {
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Loads and validates `gateway.yaml` and the two files it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let raw = read_value(path, &mut problems);
    // The two other files are checked even when gateway.yaml has errors, so one run shows all.
    let named = |field: &str, default: &str| -> PathBuf {
        raw.as_ref()
            .and_then(|v| v.get(field))
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .into()
    };
    let (tools_file, policy_file) = (
        named("tools_file", "tools.yaml"),
        named("policy_file", "policy.yaml"),
    );
    let gateway: Option<GatewayFile> = raw.and_then(|v| from_value(path, v, &mut problems));
    let base = path.parent().unwrap_or(Path::new("."));
    let tools_path = base.join(&tools_file);
    let policy_path = base.join(&policy_file);
    let tools: Option<ToolsFile> = read_value(&tools_path, &mut problems)
        .and_then(|v| from_value(&tools_path, v, &mut problems));
    let policy: Option<PolicyFile> = read_value(&policy_path, &mut problems)
        .and_then(|v| from_value(&policy_path, v, &mut problems));
    let Some(mut gateway) = gateway else {
        let limits = file::LimitsFile::default();
        if let Some(t) = tools {
            let scopes = build_scopes(&tools_path, t, &limits, &mut problems);
            if let Some(p) = policy {
                rate_limits(&policy_path, &p, &scopes, &mut problems);
                Policy::compile(&policy_path, &p, &scopes, &mut problems);
            }
        }
        return Err(ConfigErrors(problems));
    };
    env::apply_overrides(&mut gateway, &mut problems);
    let scopes = tools
        .map(|t| build_scopes(&tools_path, t, &gateway.limits, &mut problems))
        .unwrap_or_default();
    let rate_limits = policy
        .as_ref()
        .map(|p| rate_limits(&policy_path, p, &scopes, &mut problems))
        .unwrap_or_default();
    if let Some(store) = &gateway.rate_limit_store {
        if redis::Client::open(store.redis_url.as_str()).is_err() {
            problems.push(Problem::new(
                path,
                "rate_limit_store.redis_url",
                "not a Redis URL (redis://host:port/db)",
            ));
        }
    }
    let policy = policy.map(|p| Policy::compile(&policy_path, &p, &scopes, &mut problems));
    let dev = gateway
        .dev_secrets_file
        .as_ref()
        .map(|f| secrets::DevSecrets::load_or_create(&base.join(f)));
    let dev = match dev {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            problems.push(Problem::new(path, "dev_secrets_file", e));
            None
        }
        None => None,
    };
    let jwt = build_jwt(path, base, &gateway, dev.as_ref(), &mut problems);
    let upstream_secret = gateway
        .upstream_shared_secret
        .clone()
        .or_else(|| dev.as_ref().map(|d| d.upstream_shared_secret.clone()));
    if upstream_secret.is_none() {
        problems.push(Problem::new(
            path,
            "upstream_shared_secret",
            "not set (set TOOL_GATEWAY_SHARED_SECRET or dev_secrets_file)",
        ));
    }
    let mut session_secrets: Vec<Vec<u8>> = gateway
        .session_secrets
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    if session_secrets.is_empty() {
        if let Some(d) = &dev {
            session_secrets.push(d.session_secret.as_bytes().to_vec());
        } else {
            problems.push(Problem::new(
                path,
                "session_secrets",
                "not set (set MCP_GATEWAY_SESSION_SECRETS or dev_secrets_file); every instance must share it",
            ));
        }
    }
    for (i, s) in session_secrets.iter().enumerate() {
        if s.len() < 16 {
            problems.push(Problem::new(
                path,
                format!("session_secrets[{i}]"),
                "must be at least 16 bytes",
            ));
        }
    }
    for (field, addr) in [
        ("listen", Some(&gateway.listen)),
        ("metrics_listen", gateway.metrics_listen.as_ref()),
    ] {
        if let Some(addr) = addr {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                problems.push(Problem::new(
                    path,
                    field,
                    format!("{addr:?} is not an IP:port address"),
                ));
            }
        }
    }
    // Without a configured public URL the metadata would name whatever `Host` a client sent.
    let exposed = gateway
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if exposed && gateway.public_url.is_none() {
        problems.push(Problem::new(
            path,
            "public_url",
            "required when listen is not a loopback address (the URL clients use, e.g. https://mcp.example.com)",
        ));
    }
    let mut trusted_proxies = Vec::new();
    for (i, p) in gateway.trusted_proxies.iter().enumerate() {
        let net = p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => problems.push(Problem::new(
                path,
                format!("trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address or CIDR range"),
            )),
        }
    }
    let c = &gateway.connections;
    for (field, zero) in [
        ("connections.max", c.max == 0),
        ("connections.max_per_address", c.max_per_address == 0),
        ("connections.head_timeout", c.head_timeout.is_zero()),
        ("connections.idle_timeout", c.idle_timeout.as_secs() == 0),
    ] {
        if zero {
            problems.push(Problem::new(
                path,
                field,
                "must be greater than 0 (whole seconds for idle_timeout)",
            ));
        }
    }
    if gateway.limits.max_body_bytes == 0 {
        problems.push(Problem::new(
            path,
            "limits.max_body_bytes",
            "must be greater than 0",
        ));
    }
    for (i, url) in gateway.authorization_servers.iter().enumerate() {
        if url::Url::parse(url).is_err() {
            problems.push(Problem::new(
                path,
                format!("authorization_servers[{i}]"),
                format!("{url:?} is not a URL"),
            ));
        }
    }
    let audit = build_audit(path, base, &gateway.audit, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let (Some(policy), Some(jwt), Some(upstream_secret), Some(audit)) =
        (policy, jwt, upstream_secret, audit)
    else {
        return Err(ConfigErrors(vec![Problem::new(
            path,
            "",
            "incomplete configuration",
        )]));
    };
    Ok(Config {
        source: path.to_path_buf(),
        listen: gateway.listen,
        metrics_listen: gateway.metrics_listen,
        threads: gateway.threads.unwrap_or(2).max(1),
        shutdown_grace: gateway.shutdown_grace,
        limits: Limits {
            max_body_bytes: gateway.limits.max_body_bytes,
            connect_timeout: gateway.limits.upstream_connect_timeout,
            read_timeout: gateway.limits.upstream_read_timeout,
            max_concurrent_per_user: gateway.limits.max_concurrent_per_user,
            max_concurrent_per_upstream: gateway.limits.max_concurrent_per_upstream,
        },
        jwt,
        upstream_secret,
        session_secrets,
        public_url: gateway
            .public_url
            .map(|u| u.trim_end_matches('/').to_string()),
        trusted_proxies,
        authorization_servers: gateway.authorization_servers,
        allowed_origins: gateway.allowed_origins,
        scopes,
        policy,
        audit: std::sync::Arc::new(audit),
        rate_limits,
        rate_limit_store: gateway.rate_limit_store,
        connections: crate::listen::ConnectionLimits {
            max_connections: gateway.connections.max,
            max_per_address: gateway.connections.max_per_address,
            head_timeout: gateway.connections.head_timeout,
            idle_timeout: gateway.connections.idle_timeout,
        },
    })
}

fn build_audit(
    path: &Path,
    base: &Path,
    a: &file::AuditFile,
    problems: &mut Vec<Problem>,
) -> Option<crate::audit::AuditConfig> {
    use crate::audit::{arguments, ArgumentsMode, AuditConfig, SinkConfig};
    let start = problems.len();
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| a.database_url.clone());
    let sink = match url {
        _ if !a.enabled => SinkConfig::Off,
        Some(url) => {
            if url.parse::<tokio_postgres::Config>().is_err() {
                problems.push(Problem::new(
                    path,
                    "audit.database_url",
                    "not a PostgreSQL URL (postgres://user@host:port/db)",
                ));
            }
            SinkConfig::Postgres {
                url,
                spool: base.join(&a.spool_file),
            }
        }
        None => SinkConfig::File(base.join(&a.file)),
    };
    let arguments = match a.arguments {
        file::ArgumentsFile::None => ArgumentsMode::None,
        file::ArgumentsFile::Sha256 => ArgumentsMode::Sha256,
        file::ArgumentsFile::Encrypted => match std::env::var("MCP_GATEWAY_AUDIT_KEY") {
            Ok(k) => match arguments::parse_key(&k) {
                Ok(key) => ArgumentsMode::encrypted(&a.arguments_key_id, &key),
                Err(e) => {
                    problems.push(Problem::env("MCP_GATEWAY_AUDIT_KEY", e));
                    ArgumentsMode::None
                }
            },
            Err(_) => {
                problems.push(Problem::new(
                    path,
                    "audit.arguments",
                    "encrypted needs MCP_GATEWAY_AUDIT_KEY (256-bit key, hex or base64) in the environment",
                ));
                ArgumentsMode::None
            }
        },
    };
    if a.queue_capacity == 0 {
        problems.push(Problem::new(
            path,
            "audit.queue_capacity",
            "must be at least 1",
        ));
    }
    if a.batch_size == 0 || a.batch_size > 10_000 {
        problems.push(Problem::new(
            path,
            "audit.batch_size",
            "must be between 1 and 10000",
        ));
    }
    if a.arguments_key_id.is_empty() || a.arguments_key_id.contains(':') {
        problems.push(Problem::new(
            path,
            "audit.arguments_key_id",
            "must be non-empty and without ':'",
        ));
    }
    (problems.len() == start).then(|| AuditConfig {
        sink,
        queue_capacity: a.queue_capacity,
        batch_size: a.batch_size,
        flush_interval: a.flush_interval,
        on_queue_full: a.on_queue_full,
        arguments,
        retention: (a.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(a.retention_days) * 86_400)),
        migrate_on_start: a.migrate_on_start,
        instance: a
            .instance
            .clone()
            .unwrap_or_else(crate::audit::default_instance),
    })
}

fn rate_limits(
    path: &Path,
    policy: &PolicyFile,
    scopes: &BTreeMap<String, ScopeConfig>,
    problems: &mut Vec<Problem>,
) -> Vec<crate::limits::Rule> {
    let roles: Vec<String> = policy.roles.keys().cloned().collect();
    crate::limits::RateLimits::compile(path, &policy.rate_limits, scopes, &roles, problems)
}

/// Reads a YAML file and expands `${VAR}` in its values.
fn read_value(path: &Path, problems: &mut Vec<Problem>) -> Option<serde_yaml_ng::Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(path, "", format!("cannot read: {e}")));
            return None;
        }
    };
    let mut value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new(path, "", format!("not valid YAML: {e}")));
            return None;
        }
    };
    let before = problems.len();
    env::expand(&mut value, path, &mut String::new(), problems);
    (problems.len() == before).then_some(value)
}

/// Deserializes a file's value, recording the field path of any error.
fn from_value<T: DeserializeOwned>(
    path: &Path,
    value: serde_yaml_ng::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            problems.push(Problem::new(path, field, e.into_inner().to_string()));
            None
        }
    }
}

fn build_scopes(
    path: &Path,
    tools: ToolsFile,
    limits: &file::LimitsFile,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, ScopeConfig> {
    let mut scopes = BTreeMap::new();
    if tools.scopes.is_empty() {
        problems.push(Problem::new(path, "scopes", "no scope is defined"));
    }
    for (name, scope) in tools.scopes {
        let at = |f: &str| format!("scopes.{name}.{f}");
        if !is_name(&name) || name.starts_with('.') {
            problems.push(Problem::new(
                path,
                format!("scopes.{name}"),
                "a scope name is 1-64 of a-z 0-9 _ -",
            ));
        }
        if scope.upstreams.is_empty() {
            problems.push(Problem::new(
                path,
                at("upstreams"),
                "at least one upstream is needed",
            ));
        }
        let mut upstreams = Vec::new();
        for (i, u) in scope.upstreams.iter().enumerate() {
            let parsed = match (&u.url, &u.spawn) {
                (Some(url), None) => parse_upstream(url),
                (None, Some(args)) if !args.is_empty() => spawned_upstream(args),
                (None, Some(_)) => Err("spawn needs arguments, e.g. [tool, calculator]".into()),
                _ => Err("give exactly one of url or spawn".into()),
            };
            let field = if u.url.is_some() { "url" } else { "spawn" };
            match parsed {
                Ok(mut t) => {
                    t.weight = u.weight;
                    if u.weight == 0 {
                        problems.push(Problem::new(
                            path,
                            at(&format!("upstreams[{i}].weight")),
                            "must be at least 1",
                        ));
                    }
                    if upstreams.contains(&t) {
                        problems.push(Problem::new(
                            path,
                            at(&format!("upstreams[{i}].url")),
                            "duplicate upstream",
                        ));
                    }
                    upstreams.push(t);
                }
                Err(reason) => problems.push(Problem::new(
                    path,
                    at(&format!("upstreams[{i}].{field}")),
                    reason,
                )),
            }
        }
        let mut seen = Vec::new();
        for (i, tool) in scope.tools.iter().enumerate() {
            if !is_tool_name(tool) {
                problems.push(Problem::new(
                    path,
                    at(&format!("tools[{i}]")),
                    format!("{tool:?} is not a valid tool name (1-128 of A-Z a-z 0-9 _ . -)"),
                ));
            } else if seen.contains(&tool) {
                problems.push(Problem::new(
                    path,
                    at(&format!("tools[{i}]")),
                    format!("duplicate tool {tool:?}"),
                ));
            }
            seen.push(tool);
        }
        for (i, m) in scope.allow_methods.iter().enumerate() {
            if m.is_empty()
                || m.len() > crate::jsonrpc::MAX_NAME
                || m.chars().any(char::is_whitespace)
            {
                problems.push(Problem::new(
                    path,
                    at(&format!("allow_methods[{i}]")),
                    format!("{m:?} is not a JSON-RPC method name (1-128 bytes, no spaces)"),
                ));
            }
        }
        if let Some(h) = &scope.health_check {
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
        scopes.insert(
            name.clone(),
            ScopeConfig {
                name,
                upstreams,
                balance: scope.balance,
                health: scope.health_check.map(|h| HealthCheck {
                    kind: h.kind,
                    path: h.path,
                    interval: h.interval,
                }),
                read_timeout: scope.timeout.unwrap_or(limits.upstream_read_timeout),
                connect_timeout: scope
                    .connect_timeout
                    .unwrap_or(limits.upstream_connect_timeout),
                tools: scope.tools,
                allow_methods: scope.allow_methods,
                outlier: scope.outlier,
                total_timeout: scope.total_timeout,
            },
        );
    }
    scopes
}

fn is_name(s: &str) -> bool {
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

fn parse_upstream(raw: &str) -> Result<UpstreamTarget, String> {
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
    })
}

/// A tool process the gateway will run, on a loopback port picked now.
fn spawned_upstream(args: &[String]) -> Result<UpstreamTarget, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port for the tool process: {e}"))?
        .port();
    Ok(UpstreamTarget {
        host: "127.0.0.1".into(),
        port,
        path: "/mcp".into(),
        tls: false,
        weight: 1,
        spawn: Some(args.to_vec()),
    })
}

fn build_jwt(
    path: &Path,
    base: &Path,
    g: &GatewayFile,
    dev: Option<&secrets::DevSecrets>,
    problems: &mut Vec<Problem>,
) -> Option<JwtSettings> {
    let jwt = &g.jwt;
    let start = problems.len();
    let mut algorithms = Vec::new();
    if jwt.algorithms.is_empty() {
        problems.push(Problem::new(
            path,
            "jwt.algorithms",
            "name at least one algorithm, e.g. [HS256]",
        ));
    }
    for (i, a) in jwt.algorithms.iter().enumerate() {
        match Algorithm::from_str(a.trim()) {
            Ok(alg) => algorithms.push(alg),
            Err(_) => problems.push(Problem::new(
                path,
                format!("jwt.algorithms[{i}]"),
                format!("{a:?} is not supported (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"),
            )),
        }
    }
    let wants_hmac = algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let wants_public = algorithms
        .iter()
        .any(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    let secret = jwt.secret.clone().or_else(|| {
        if wants_hmac {
            dev.map(|d| d.jwt_secret.clone())
        } else {
            None
        }
    });
    if wants_hmac {
        match &secret {
            None => problems.push(Problem::new(
                path,
                "jwt.secret",
                "HS algorithms need a secret (JWT_SECRET_KEY)",
            )),
            Some(s) if s.len() < 32 => problems.push(Problem::new(
                path,
                "jwt.secret",
                "must be at least 32 bytes for HS algorithms",
            )),
            _ => {}
        }
    }
    let public_key_pem = match &jwt.public_key_file {
        Some(f) => match std::fs::read(base.join(f)) {
            Ok(pem) => Some(pem),
            Err(e) => {
                problems.push(Problem::new(
                    path,
                    "jwt.public_key_file",
                    format!("cannot read {}: {e}", f.display()),
                ));
                None
            }
        },
        None => None,
    };
    if wants_public && public_key_pem.is_none() && jwt.jwks_url.is_none() && problems.len() == start
    {
        problems.push(Problem::new(
            path,
            "jwt",
            "RS/PS/ES/EdDSA algorithms need public_key_file or jwks_url",
        ));
    }
    if let Some(u) = &jwt.jwks_url {
        if url::Url::parse(u).is_err() {
            problems.push(Problem::new(
                path,
                "jwt.jwks_url",
                format!("{u:?} is not a URL"),
            ));
        }
    }
    if jwt.claims.api_version.is_some() && jwt.allowed_api_versions.is_empty() {
        problems.push(Problem::new(
            path,
            "jwt.allowed_api_versions",
            "list the accepted versions of claims.api_version",
        ));
    }
    if problems.len() > start {
        return None;
    }
    Some(JwtSettings {
        algorithms,
        secret: secret.map(String::into_bytes),
        public_key_pem,
        jwks_url: jwt.jwks_url.clone(),
        jwks_refresh: jwt.jwks_refresh,
        issuer: jwt.issuer.clone(),
        audience: jwt
            .audience
            .clone()
            .map(|a| a.into_vec())
            .unwrap_or_default(),
        max_age: (jwt.max_token_age_minutes > 0)
            .then(|| Duration::from_secs(jwt.max_token_age_minutes * 60)),
        clock_skew: jwt.clock_skew_seconds,
        claims: jwt.claims.clone(),
        allowed_api_versions: jwt.allowed_api_versions.clone(),
        cache_entries: jwt.cache_entries.max(1),
        cache_bytes: jwt.cache_bytes.max(1024),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
