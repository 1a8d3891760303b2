//! The top-level sections of `gateway.yaml` that are not a domain's own: development secrets, the
//! upstream and session secrets, where the gateway listens and what it trusts, and the plain
//! limits. Each function checks one section and reports its problems by field.

use super::file::GatewayFile;
use super::{headers, listeners, secrets, DevIssuer, Problem, Sources};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Development secrets: read when the file exists; otherwise generated here, in memory, and
/// written only by the commands that need them to last (`run`, `token`), as the second value.
pub(super) fn dev_secrets(
    sources: &Sources,
    g: &GatewayFile,
    problems: &mut Vec<Problem>,
) -> (
    Option<secrets::DevSecrets>,
    Option<(PathBuf, secrets::DevSecrets)>,
) {
    let path = sources.path.as_path();
    match g.dev_secrets_file.as_ref().map(|f| sources.base().join(f)) {
        Some(f) if sources.is_missing(&f) => {
            let d = secrets::DevSecrets::generate();
            (Some(d.clone()), Some((f, d)))
        }
        Some(f) => match sources
            .file(&f)
            .and_then(|b| secrets::DevSecrets::parse(&f, b))
        {
            Ok(d) => (Some(d), None),
            Err(e) => {
                problems.push(Problem::new(path, "dev_secrets_file", e));
                (None, None)
            }
        },
        None => (None, None),
    }
}

/// `upstream_shared_secret` and `session_secrets`, from the file, the environment or the
/// development secrets.
pub(super) fn shared_secrets(
    path: &Path,
    g: &GatewayFile,
    dev: Option<&secrets::DevSecrets>,
    problems: &mut Vec<Problem>,
) -> (Option<String>, Vec<Vec<u8>>) {
    let upstream_secret = g
        .upstream_shared_secret
        .clone()
        .or_else(|| dev.map(|d| d.upstream_shared_secret.clone()));
    if upstream_secret.is_none() {
        problems.push(Problem::new(
            path,
            "upstream_shared_secret",
            "not set (set TOOL_GATEWAY_SHARED_SECRET or dev_secrets_file)",
        ));
    }
    let mut session_secrets: Vec<Vec<u8>> = g
        .session_secrets
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    if session_secrets.is_empty() {
        if let Some(d) = dev {
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
    (upstream_secret, session_secrets)
}

/// Where the gateway listens and whom it trusts.
pub(super) struct Network {
    pub listeners: Vec<listeners::Listener>,
    pub upgrade_socket: PathBuf,
    pub forward_headers: headers::ForwardHeaders,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `listen`/`listeners`, `upgrade_socket`, `metrics_listen`, `public_url`, `forward_headers`,
/// `trusted_proxies`.
pub(super) fn network(sources: &Sources, g: &GatewayFile, problems: &mut Vec<Problem>) -> Network {
    let path = sources.path.as_path();
    let listeners = listeners::build(sources, g.listen.as_deref(), &g.listeners, problems);
    let upgrade_socket = g.upgrade_socket.clone().unwrap_or_else(|| {
        let tmp = sources.var("TMPDIR").unwrap_or("/tmp");
        let port = listeners.first().map_or(0, |l| l.address.port());
        Path::new(tmp).join(format!("mcp-gateway-{port}.sock"))
    });
    if let Some(addr) = &g.metrics_listen {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            problems.push(Problem::new(
                path,
                "metrics_listen",
                format!("{addr:?} is not an IP:port address"),
            ));
        }
    }
    // Without a configured public URL the metadata would name whatever `Host` a client sent.
    let exposed = listeners.iter().any(|l| !l.address.ip().is_loopback());
    if exposed && g.public_url.is_none() {
        problems.push(Problem::new(
            path,
            "public_url",
            "required when listen is not a loopback address (the URL clients use, e.g. https://mcp.example.com)",
        ));
    }
    let forward_headers = headers::validate(path, &g.forward_headers, problems);
    let mut trusted_proxies = Vec::new();
    for (i, p) in g.trusted_proxies.iter().enumerate() {
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
    Network {
        listeners,
        upgrade_socket: sources.base().join(upgrade_socket),
        forward_headers,
        trusted_proxies,
    }
}

/// `connections.*`, `limits.max_body_bytes`, `registry.*`: values that must not be zero.
pub(super) fn check_limits(path: &Path, g: &GatewayFile, problems: &mut Vec<Problem>) {
    let c = &g.connections;
    for (field, zero) in [
        ("connections.max", c.max == 0),
        ("connections.max_per_address", c.max_per_address == 0),
        ("connections.head_timeout", c.head_timeout.is_zero()),
        ("connections.idle_timeout", c.idle_timeout.as_secs() == 0),
        ("connections.body_timeout", c.body_timeout.is_zero()),
        ("connections.body_min_rate", c.body_min_rate == 0),
        ("connections.bodies_per_user", c.bodies_per_user == 0),
    ] {
        if zero {
            problems.push(Problem::new(
                path,
                field,
                "must be greater than 0 (whole seconds for idle_timeout)",
            ));
        }
    }
    if g.limits.max_body_bytes == 0 {
        problems.push(Problem::new(
            path,
            "limits.max_body_bytes",
            "must be greater than 0",
        ));
    }
    for (field, d) in [
        ("registry.refresh", g.registry.refresh),
        ("registry.sync", g.registry.sync),
    ] {
        if d < Duration::from_millis(100) {
            problems.push(Problem::new(path, field, "must be at least 100ms"));
        }
    }
    if let Some(store) = &g.rate_limit_store {
        if redis::Client::open(store.redis_url.as_str()).is_err() {
            problems.push(Problem::new(
                path,
                "rate_limit_store.redis_url",
                "not a Redis URL (redis://host:port/db)",
            ));
        }
    }
}

/// `authorization_servers`, or the development issuer when none is named.
pub(super) fn authorization_servers(
    path: &Path,
    g: &GatewayFile,
    dev_issuer: Option<&DevIssuer>,
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    let mut servers = g.authorization_servers.clone();
    if servers.is_empty() {
        servers.extend(dev_issuer.map(|d| d.url.clone()));
    }
    for (i, url) in servers.iter().enumerate() {
        if url::Url::parse(url).is_err() {
            problems.push(Problem::new(
                path,
                format!("authorization_servers[{i}]"),
                format!("{url:?} is not a URL"),
            ));
        }
    }
    servers
}

/// `admin_listen` and `admin_role`: the operator console, which signs operators in at the first
/// authorization server.
pub(super) fn console(
    path: &Path,
    g: &GatewayFile,
    authorization_servers: &[String],
    problems: &mut Vec<Problem>,
) -> Option<super::ConsoleSettings> {
    let listen = g.admin_listen.as_deref()?;
    let Ok(listen) = listen.parse::<std::net::SocketAddr>() else {
        problems.push(Problem::new(
            path,
            "admin_listen",
            "must be IP:port (e.g. 127.0.0.1:8020)",
        ));
        return None;
    };
    if authorization_servers.is_empty() {
        problems.push(Problem::new(
            path,
            "admin_listen",
            "the console signs operators in at the first of authorization_servers (or dev_issuer); none is set",
        ));
    }
    if g.admin_role.trim().is_empty() {
        problems.push(Problem::new(path, "admin_role", "must not be empty"));
    }
    Some(super::ConsoleSettings {
        listen,
        role: g.admin_role.clone(),
    })
}
