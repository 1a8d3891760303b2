//! Configuration in layers:
//! 1. `source`: what it is made of, read once (the YAML files, the files they name, the
//!    environment); `file`: the YAML formats (serde structs that reject unknown fields).
//! 2. `validate`: a pure function from `Sources` to the immutable [`Config`] model (`model.rs`),
//!    reporting every problem at once, each naming the file, the field and the reason (so one
//!    `mcp-gateway check` run shows all that is wrong, and changes nothing). Each section is
//!    validated by its own file: `scopes` (tools.yaml), `policy` and `rate_limits` (the policy
//!    file), `jwt`, `audit`, `jobs`, `listeners`, `gateway` (the rest of gateway.yaml).
//! 3. The runtime built from the model (`reload::runtime`: limiter state, pools, spawned tools),
//!    held by the proxy so that a new one can replace it while requests in flight keep theirs.
//!
//! The model holds every domain's settings as plain values and uses no domain; the domains use
//! it, never the other way round.

pub mod audit;
pub mod compose;
pub mod condition;
pub mod credentials;
pub mod env;
pub mod file;
mod gateway;
pub mod guards;
pub mod headers;
pub mod issuer_key;
mod jobs;
mod jwt;
pub mod listeners;
mod model;
pub mod pem;
pub mod policy;
pub mod problem;
pub mod rate_limits;
mod scopes;
pub mod secrets;
pub mod source;
pub mod traces;
pub mod upstream_tls;

pub use model::{
    Config, ConsoleSettings, DevIssuer, HealthCheck, JobsSettings, JwtSettings, Limits,
    RegistrySettings, ScopeConfig, Spawn, UpstreamTarget,
};
pub use problem::{ConfigErrors, Problem};
pub use scopes::is_tool_name;
pub use source::Sources;

use file::{GatewayFile, PolicyFile, ToolsFile};
use policy::Policy;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Reads (`Sources::read`) and validates `gateway.yaml` and the files it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    validate(&Sources::read(path))
}

/// The three files, each read and parsed when it can be.
struct Files {
    gateway: Option<GatewayFile>,
    tools: Option<(PathBuf, ToolsFile)>,
    policy: Option<(PathBuf, PolicyFile)>,
    /// (file, field) of every `${VAR}` that could not be expanded.
    unexpanded: Vec<(String, String)>,
}

impl Files {
    /// The two other files are read even when gateway.yaml has errors, so one run shows all.
    fn read(sources: &Sources, problems: &mut Vec<Problem>) -> Self {
        let path = sources.path.as_path();
        let mut unexpanded = Vec::new();
        // Every problem of a file that was read and parsed is a `${VAR}` it could not expand.
        let mut read = |p: &Path, problems: &mut Vec<Problem>| {
            let before = problems.len();
            let value = read_value(sources, p, problems);
            if value.is_some() {
                unexpanded.extend(
                    problems[before..]
                        .iter()
                        .map(|p| (p.file.clone(), p.field.clone())),
                );
            }
            value
        };
        let raw = read(path, problems);
        let named = |field: &str, default: &str| -> PathBuf {
            let name = raw
                .as_ref()
                .and_then(|v| v.get(field))
                .and_then(|v| v.as_str());
            sources.base().join(name.unwrap_or(default))
        };
        let (tools_path, policy_path) = (
            named("tools_file", "tools.yaml"),
            named("policy_file", "policy.yaml"),
        );
        // Without a readable gateway.yaml the other files' names are guesses: a guess that is not
        // there is not a problem of its own.
        let guessed = raw.is_none();
        let mut other = |p: &Path, problems: &mut Vec<Problem>| {
            if guessed && sources.file(p).is_err() {
                return None;
            }
            read(p, problems)
        };
        let tools = other(&tools_path, problems);
        let policy = other(&policy_path, problems);
        let gateway = raw.and_then(|v| from_value(path, v, problems));
        let tools = tools
            .and_then(|v| from_value(&tools_path, v, problems))
            .map(|t| (tools_path, t));
        let policy = policy
            .and_then(|v| from_value(&policy_path, v, problems))
            .map(|p| (policy_path, p));
        Files {
            gateway,
            tools,
            policy,
            unexpanded,
        }
    }
}

/// Validates a configuration into the immutable model. Pure: reads only `sources`.
pub fn validate(sources: &Sources) -> Result<Config, ConfigErrors> {
    let path = sources.path.as_path();
    let mut problems = Vec::new();
    let Files {
        gateway,
        tools,
        policy,
        unexpanded,
    } = Files::read(sources, &mut problems);
    let Some(mut g) = gateway else {
        // Still checks the scopes and the policy against them.
        check_without_gateway(sources, tools, policy, &mut problems);
        return Err(ConfigErrors(once(problems, &unexpanded)));
    };
    let overrides = env::apply_overrides(&mut g, &sources.env, &mut problems);
    let mut scopes = tools
        .map(|(p, t)| scopes::build_scopes(sources, &p, t, &g.limits, &mut problems))
        .unwrap_or_default();
    let tools = scopes::scope_tools(&scopes);
    let rate_limits = policy
        .as_ref()
        .map(|(pp, p)| rate_limits(pp, p, &tools, &mut problems))
        .unwrap_or_default();
    let policy = policy.map(|(pp, p)| {
        let mut compiled = Policy::compile(&pp, &p, &tools, &mut problems);
        compiled.reads_arguments |=
            (rate_limits.iter()).any(|r| r.when.as_ref().is_some_and(|c| c.uses_args));
        compiled
    });
    let (dev, dev_secrets_to_write) = gateway::dev_secrets(sources, &g, &mut problems);
    let dev_issuer = jwt::build_dev_issuer(path, &g, dev.as_ref(), &mut problems);
    let jwt = jwt::build_jwt(sources, &g, dev.as_ref(), &mut problems).map(|mut j| {
        j.dev_issuer = dev_issuer.as_ref().map(|d| (d.url.clone(), d.key.clone()));
        j
    });
    for scope in scopes.values_mut() {
        scope.oauth_scopes = (g.jwt.required_scopes.iter())
            .map(|t| t.replace("{scope}", &scope.name))
            .collect();
    }
    let (upstream_secret, session_secrets) =
        gateway::shared_secrets(path, &g, dev.as_ref(), &mut problems);
    let network = gateway::network(sources, &g, &mut problems);
    gateway::check_limits(path, &g, &mut problems);
    let authorization_servers =
        gateway::authorization_servers(path, &g, dev_issuer.as_ref(), &mut problems);
    let audit = audit::build(sources, &g.audit, &mut problems);
    let login_keys = credentials::per_user_needs(
        sources,
        &scopes,
        g.public_url.as_deref(),
        &authorization_servers,
        (audit.as_ref()).is_some_and(|a| matches!(a.sink, audit::SinkConfig::Postgres { .. })),
        &mut problems,
    );
    let jobs = jobs::build(sources, &g.jobs, &g.audit, &mut problems);
    let tracing = traces::build(sources, g.tracing.as_ref(), &mut problems);
    let console = gateway::console(path, &g, &authorization_servers, &mut problems);
    if !problems.is_empty() {
        overrides.blame(path, &mut problems);
        return Err(ConfigErrors(once(problems, &unexpanded)));
    }
    let (Some(policy), Some(jwt), Some(upstream_secret), Some(audit)) =
        (policy, jwt, upstream_secret, audit)
    else {
        let incomplete = Problem::new(path, "", "incomplete configuration");
        return Err(ConfigErrors(vec![incomplete]));
    };
    Ok(Config {
        source: path.to_path_buf(),
        listeners: network.listeners,
        metrics_listen: g.metrics_listen,
        threads: g.threads.unwrap_or(2).max(1),
        upgrade_socket: network.upgrade_socket,
        watch_interval: g.watch_interval,
        shutdown_grace: g.shutdown_grace,
        limits: limits_of(&g.limits),
        jobs,
        registry: RegistrySettings {
            refresh: g.registry.refresh,
            sync: g.registry.sync,
        },
        jwt,
        upstream_secret,
        session_secrets,
        public_url: g.public_url.map(|u| u.trim_end_matches('/').to_string()),
        trusted_proxies: network.trusted_proxies,
        authorization_servers,
        allowed_origins: g.allowed_origins,
        forward_headers: network.forward_headers,
        scopes,
        policy,
        audit: std::sync::Arc::new(audit),
        rate_limits,
        rate_limit_store: g.rate_limit_store,
        connections: connections_of(&g.connections),
        dev_issuer,
        dev_secrets_to_write,
        login_keys,
        tracing,
        console,
    })
}

/// A `${VAR}` left unexpanded is named once, not again by the checks of the value it left.
fn once(problems: Vec<Problem>, unexpanded: &[(String, String)]) -> Vec<Problem> {
    let mut named = std::collections::HashSet::new();
    problems
        .into_iter()
        .filter(|p| {
            let key = (p.file.clone(), p.field.clone());
            !unexpanded.contains(&key) || named.insert(key)
        })
        .collect()
}

/// With gateway.yaml unreadable, the scopes and the policy are still checked, so one run names
/// every problem.
fn check_without_gateway(
    sources: &Sources,
    tools: Option<(PathBuf, file::ToolsFile)>,
    policy: Option<(PathBuf, PolicyFile)>,
    problems: &mut Vec<Problem>,
) {
    let limits = file::LimitsFile::default();
    if let Some((tools_path, t)) = tools {
        let scopes = scopes::build_scopes(sources, &tools_path, t, &limits, problems);
        if let Some((policy_path, p)) = policy {
            let tools = scopes::scope_tools(&scopes);
            rate_limits(&policy_path, &p, &tools, problems);
            Policy::compile(&policy_path, &p, &tools, problems);
        }
    }
}

fn limits_of(l: &file::LimitsFile) -> Limits {
    Limits {
        max_body_bytes: l.max_body_bytes,
        connect_timeout: l.upstream_connect_timeout,
        read_timeout: l.upstream_read_timeout,
        max_concurrent_per_user: l.max_concurrent_per_user,
        max_concurrent_per_upstream: l.max_concurrent_per_upstream,
        max_jobs_per_user: l.max_jobs_per_user,
    }
}

fn connections_of(c: &file::ConnectionsFile) -> listeners::ConnectionLimits {
    listeners::ConnectionLimits {
        max_connections: c.max,
        max_per_address: c.max_per_address,
        head_timeout: c.head_timeout,
        idle_timeout: c.idle_timeout,
        body_timeout: c.body_timeout,
        body_min_rate: c.body_min_rate,
        bodies_per_user: c.bodies_per_user,
    }
}

fn rate_limits(
    path: &Path,
    policy: &PolicyFile,
    tools: &policy::ScopeTools,
    problems: &mut Vec<Problem>,
) -> Vec<rate_limits::Rule> {
    let roles: Vec<String> = policy.roles.keys().cloned().collect();
    rate_limits::compile(path, &policy.rate_limits, tools, &roles, problems)
}

/// Reads a YAML file and expands `${VAR}` in its values.
fn read_value(
    sources: &Sources,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<serde_yaml_ng::Value> {
    let text = match sources.file(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(path, "", format!("cannot read: {e}")));
            return None;
        }
    };
    let mut value: serde_yaml_ng::Value = match serde_yaml_ng::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new(path, "", format!("not valid YAML: {e}")));
            return None;
        }
    };
    // A `${VAR}` that cannot be expanded is named here and its value left as written: the rest
    // of the file is still checked (later problems of the same field are not repeated).
    env::expand(&mut value, path, &mut String::new(), &sources.env, problems);
    Some(value)
}

/// Deserializes a file's value, recording the field path of every error: serde stops at the
/// first, so the value it names is taken out and the rest read again (at most `MAX_PASSES`
/// times), until the file reads or the error is one that taking out cannot get past (a required
/// field: its absence is a consequence, not another problem).
fn from_value<T: DeserializeOwned>(
    path: &Path,
    mut value: serde_yaml_ng::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    const MAX_PASSES: usize = 32;
    let mut removed = Removed::default();
    for _ in 0..MAX_PASSES {
        let e = match serde_path_to_error::deserialize(value.clone()) {
            // Read without what was taken out: the rest is still validated (the problems already
            // named keep the configuration from being used).
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let at = segments(&e.path().to_string());
        let reason = e.into_inner().to_string();
        if reason.starts_with("missing field") && removed.took_out_field(&reason) {
            return None;
        }
        problems.push(Problem::new(path, removed.as_written(&at), reason));
        if at.is_empty() || !remove(&mut value, &at) {
            return None;
        }
        removed.0.push(at);
    }
    None
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `a.b[2].c` (as `serde_path_to_error` prints it; `.` is the root) as steps.
fn segments(field: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        while let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) {
            match rest[open + 1..close].parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => out.push(Seg::Key(rest[open + 1..close].to_string())),
            }
            rest = &rest[close + 1..];
        }
    }
    out
}

/// The values taken out so far, by their path at the time.
#[derive(Default)]
struct Removed(Vec<Vec<Seg>>);

impl Removed {
    /// Whether `missing field `x`` is about a field taken out on an earlier pass.
    fn took_out_field(&self, reason: &str) -> bool {
        self.0.iter().any(|r| match r.last() {
            Some(Seg::Key(k)) => reason.contains(&format!("`{k}`")),
            _ => false,
        })
    }

    /// `at` with the indices of its sequences as the file has them (items taken out of a
    /// sequence moved the later ones up).
    fn as_written(&self, at: &[Seg]) -> String {
        let mut out = String::new();
        for (n, seg) in at.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    // Undo the removals from the latest back, each in the numbering of its time.
                    let mut original = *i;
                    for r in self.0.iter().rev() {
                        if r.len() == n + 1 && r[..n] == at[..n] {
                            if let Seg::Index(j) = r[n] {
                                if j <= original {
                                    original += 1;
                                }
                            }
                        }
                    }
                    out.push_str(&format!("[{original}]"));
                }
            }
        }
        out
    }
}

/// Takes the value at `at` out of the document.
fn remove(value: &mut serde_yaml_ng::Value, at: &[Seg]) -> bool {
    let Some((last, parents)) = at.split_last() else {
        return false;
    };
    let mut here = value;
    for s in parents {
        let next = match s {
            Seg::Key(k) => here.get_mut(k.as_str()),
            Seg::Index(i) => here.get_mut(*i),
        };
        match next {
            Some(n) => here = n,
            None => return false,
        }
    }
    match (last, here) {
        (Seg::Index(i), serde_yaml_ng::Value::Sequence(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        (Seg::Key(k), serde_yaml_ng::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
