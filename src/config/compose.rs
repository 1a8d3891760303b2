//! Composed scopes (`servers:`): several MCP servers behind one endpoint, each under a name the
//! scope shows. The model says which server each shown tool and prompt name belongs to and what
//! it is called there; the gateway's composer (`src/compose/`) serves the scope from it, so the
//! proxy sees one upstream whose tools have their shown names, and grants, limits, pinning and
//! audit name the shown tool.

use super::file::{self, ScopeFile, ServerFile};
use super::scopes::{self, At};
use super::{HealthCheck, Problem, ScopeConfig, Sources, UpstreamTarget};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The servers of a composed scope.
#[derive(Debug, Clone)]
pub struct Composition {
    pub servers: Vec<ComposedServer>,
}

/// One server of a composed scope.
#[derive(Debug, Clone)]
pub struct ComposedServer {
    pub name: String,
    /// Put before each tool and prompt name (may be empty).
    pub prefix: String,
    /// The server's name of a tool → the name shown, where `rename:` sets one.
    pub rename: BTreeMap<String, String>,
    /// The server's name of a tool → the description shown instead of the server's.
    pub description: BTreeMap<String, String>,
    /// The server's tools the scope exposes, by the server's names.
    pub tools: Vec<String>,
    /// Its upstreams and their settings, as a scope named `scope/server`.
    pub scope: Arc<ScopeConfig>,
}

impl ComposedServer {
    /// The shown name of the server's tool `original`, `None` when the scope does not expose it.
    pub fn shown_tool(&self, original: &str) -> Option<String> {
        if !self.tools.iter().any(|t| t == original) {
            return None;
        }
        Some(match self.rename.get(original) {
            Some(shown) => shown.clone(),
            None => format!("{}{original}", self.prefix),
        })
    }

    /// The server's name of the shown tool `shown`, if it is one of this server's.
    pub fn original_tool<'a>(&'a self, shown: &'a str) -> Option<&'a str> {
        if let Some((original, _)) = self.rename.iter().find(|(_, s)| *s == shown) {
            return Some(original);
        }
        let original = shown.strip_prefix(self.prefix.as_str())?;
        let listed = self.tools.iter().any(|t| t == original);
        (listed && !self.rename.contains_key(original)).then_some(original)
    }

    pub fn shown_prompt(&self, original: &str) -> String {
        format!("{}{original}", self.prefix)
    }

    pub fn original_prompt<'a>(&self, shown: &'a str) -> Option<&'a str> {
        shown.strip_prefix(self.prefix.as_str())
    }
}

impl Composition {
    /// The server of the shown tool and its name there.
    pub fn tool<'a>(&'a self, shown: &'a str) -> Option<(&'a ComposedServer, &'a str)> {
        self.servers
            .iter()
            .find_map(|s| s.original_tool(shown).map(|o| (s, o)))
    }

    /// The server of the shown prompt (the longest prefix that fits) and its name there.
    pub fn prompt<'a>(&'a self, shown: &'a str) -> Option<(&'a ComposedServer, &'a str)> {
        self.servers
            .iter()
            .filter_map(|s| s.original_prompt(shown).map(|o| (s, o)))
            .max_by_key(|(s, _)| s.prefix.len())
    }
}

/// Longest server name (it is part of metric labels and audit rows).
const MAX_SERVER_NAME: usize = 32;

/// Most servers in one composed scope (the client's session id names a session on each).
const MAX_SERVERS: usize = 16;

/// A composed scope: its servers validated, each built as a scope of its own (`scope/server`);
/// the scope itself has one upstream, the composer, whose port the runtime assigns.
pub(super) fn build(
    sources: &Sources,
    path: &Path,
    name: &str,
    mut scope: ScopeFile,
    limits: &file::LimitsFile,
    problems: &mut Vec<Problem>,
) -> ScopeConfig {
    let at = |f: &str| format!("scopes.{name}.{f}");
    for (set, field, why) in [
        (!scope.upstreams.is_empty(), "upstreams", "a scope has either upstreams or servers"),
        (scope.tools.is_some(), "tools", "a composed scope lists its tools under each server"),
        (scope.upstream_version.is_some(), "upstream_version", "a composed scope's servers are reached by the gateway itself; the revision is each server's"),
        (scope.tls.is_some(), "tls", "set tls on each server"),
        (scope.health_check.is_some(), "health_check", "set health_check on each server"),
        (scope.outlier.is_some(), "outlier", "set outlier on each server"),
        (!scope.allow_methods.is_empty(), "allow_methods", "a composed scope passes the MCP methods only"),
        (scope.tasks == file::TaskMode::Upstream, "tasks", "tasks: upstream needs one upstream server; a composed scope's tasks are the gateway's"),
    ] {
        if set {
            problems.push(Problem::new(path, at(field), why));
        }
    }
    if scope.servers.len() > MAX_SERVERS {
        problems.push(Problem::new(
            path,
            at("servers"),
            format!("at most {MAX_SERVERS} servers in one scope"),
        ));
    }
    let servers: Vec<ComposedServer> = std::mem::take(&mut scope.servers)
        .into_iter()
        .enumerate()
        .map(|(i, s)| server(sources, path, name, i, s, limits, problems))
        .collect();
    let mut pins = HashMap::new();
    let mut shown: Vec<String> = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if servers[..i].iter().any(|o| o.name == s.name) {
            problems.push(Problem::new(
                path,
                at(&format!("servers[{i}].name")),
                format!("duplicate server {:?}", s.name),
            ));
        }
        for t in &s.tools {
            let Some(n) = s.shown_tool(t) else { continue };
            if shown.contains(&n) {
                problems.push(Problem::new(
                    path,
                    at(&format!("servers[{i}].tools")),
                    format!(
                        "{n:?} is shown by two servers: give them other prefixes or rename one"
                    ),
                ));
            }
            if let Some(sha) = s.scope.pins.get(t) {
                pins.insert(n.clone(), *sha);
            }
            shown.push(n);
        }
    }
    let (read_timeout, connect_timeout) = (
        scope.timeout.unwrap_or(limits.upstream_read_timeout),
        scope
            .connect_timeout
            .unwrap_or(limits.upstream_connect_timeout),
    );
    ScopeConfig {
        name: name.to_string(),
        // The composer's address, its port assigned by the runtime.
        upstreams: vec![UpstreamTarget::loopback(None)],
        balance: file::Balance::RoundRobin,
        health: Some(HealthCheck {
            kind: file::HealthCheckKind::Http,
            path: "/health".into(),
            interval: std::time::Duration::from_secs(1),
        }),
        read_timeout,
        connect_timeout,
        tools: shown.into_iter().collect(),
        pins,
        pin: scope.pin,
        validate_arguments: scope.validate_arguments,
        validate_max_bytes: scope.validate_arguments_max_bytes,
        allow_methods: Vec::new(),
        outlier: None,
        total_timeout: scope.total_timeout,
        guards: None,
        oauth_scopes: Vec::new(),
        // The composer keeps sessions in the newest revision before 2026-07-28: clients of that
        // revision are bridged to it like to any such upstream.
        upstream_version: Some("2025-11-25"),
        upstream_tls: None,
        tasks: scope.tasks,
        composed: Some(Arc::new(Composition { servers })),
        discovery: scope.discovery,
    }
}

/// One server: its name and naming settings checked, its upstreams built as a scope of its own.
fn server(
    sources: &Sources,
    path: &Path,
    scope: &str,
    i: usize,
    s: ServerFile,
    limits: &file::LimitsFile,
    problems: &mut Vec<Problem>,
) -> ComposedServer {
    let at = |f: &str| format!("scopes.{scope}.servers[{i}].{f}");
    if !scopes::is_name(&s.name) || s.name.len() > MAX_SERVER_NAME {
        problems.push(Problem::new(
            path,
            at("name"),
            "a server name is 1-32 of a-z 0-9 _ -",
        ));
    }
    let prefix = match s.prefix.as_deref() {
        None | Some("auto") => format!("{}_", s.name),
        Some("none") => String::new(),
        Some(p) => {
            if p.len() > 32
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                problems.push(Problem::new(
                    path,
                    at("prefix"),
                    "a prefix is up to 32 of A-Z a-z 0-9 _ . - (or auto, none)",
                ));
            }
            p.to_string()
        }
    };
    let listed = |map: &BTreeMap<String, String>, field: &str, problems: &mut Vec<Problem>| {
        for k in map.keys() {
            if !s.tools.iter().any(|t| t.name() == k) {
                problems.push(Problem::new(
                    path,
                    at(&format!("{field}.{k}")),
                    "not one of this server's tools",
                ));
            }
        }
    };
    listed(&s.rename, "rename", problems);
    listed(&s.description, "description", problems);
    for (k, v) in &s.rename {
        if !scopes::is_tool_name(v) {
            problems.push(Problem::new(
                path,
                at(&format!("rename.{k}")),
                format!("{v:?} is not a valid tool name (1-128 of A-Z a-z 0-9 _ . -)"),
            ));
        }
    }
    let member = ScopeFile {
        upstreams: s.upstreams,
        servers: Vec::new(),
        discovery: file::Discovery::All,
        balance: s.balance,
        health_check: s.health_check,
        outlier: s.outlier,
        timeout: s.timeout,
        connect_timeout: s.connect_timeout,
        total_timeout: None,
        tools: Some(s.tools),
        pin: file::PinMode::Off,
        validate_arguments: false,
        validate_arguments_max_bytes: 0,
        allow_methods: Vec::new(),
        upstream_version: None,
        tls: s.tls,
        tasks: file::TaskMode::Gateway,
        // The composed scope's guards apply at the door, to its shown tools.
        guards: None,
    };
    let member_at: At = &at;
    let built = scopes::build_plain(
        sources,
        path,
        member_at,
        &format!("{scope}/{}", s.name),
        member,
        limits,
        problems,
    );
    if built.upstreams.iter().any(|t| t.legacy_sse) {
        problems.push(Problem::new(
            path,
            at("upstreams"),
            "a composed scope's servers speak Streamable HTTP",
        ));
    }
    ComposedServer {
        name: s.name,
        prefix,
        rename: s.rename,
        description: s.description,
        tools: built.tools.to_vec(),
        scope: Arc::new(built),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, prefix: &str, tools: &[&str], rename: &[(&str, &str)]) -> ComposedServer {
        ComposedServer {
            name: name.into(),
            prefix: prefix.into(),
            rename: rename
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            description: BTreeMap::new(),
            tools: tools.iter().map(|t| t.to_string()).collect(),
            scope: Arc::new(ScopeConfig {
                name: format!("w/{name}"),
                upstreams: Vec::new(),
                balance: file::Balance::RoundRobin,
                health: None,
                read_timeout: std::time::Duration::from_secs(1),
                connect_timeout: std::time::Duration::from_secs(1),
                tools: Default::default(),
                pins: HashMap::new(),
                pin: file::PinMode::Off,
                validate_arguments: false,
                validate_max_bytes: 0,
                allow_methods: Vec::new(),
                outlier: None,
                total_timeout: None,
                oauth_scopes: Vec::new(),
                upstream_version: None,
                upstream_tls: None,
                tasks: file::TaskMode::Gateway,
                guards: None,
                composed: None,
                discovery: file::Discovery::All,
            }),
        }
    }

    #[test]
    fn shown_names_route_back_to_their_server() {
        let c = Composition {
            servers: vec![
                server(
                    "files",
                    "files_",
                    &["read", "search"],
                    &[("search", "find_files")],
                ),
                server("calc", "calc_", &["search", "add"], &[]),
            ],
        };
        assert_eq!(
            c.tool("files_read").map(|(s, t)| (s.name.as_str(), t)),
            Some(("files", "read"))
        );
        assert_eq!(
            c.tool("find_files").map(|(s, t)| (s.name.as_str(), t)),
            Some(("files", "search"))
        );
        assert_eq!(
            c.tool("calc_search").map(|(s, t)| (s.name.as_str(), t)),
            Some(("calc", "search"))
        );
        // A renamed tool is not reachable under its prefixed name; unlisted tools are not at all.
        assert!(c.tool("files_search").is_none());
        assert!(c.tool("files_write").is_none());
        assert!(c.tool("read").is_none());
        assert_eq!(
            c.servers[0].shown_tool("search").as_deref(),
            Some("find_files")
        );
        assert_eq!(c.servers[1].shown_tool("mul"), None);
        assert_eq!(
            c.prompt("calc_explain").map(|(s, p)| (s.name.as_str(), p)),
            Some(("calc", "explain"))
        );
    }
}
