//! What a caller may see of its scope: the list filter asks one entry at a time, and the answer
//! is the same policy that decides calls (a tool it may not call is one it cannot see).

use super::ctx::RequestCtx;
use super::filter::cache::{ListCache, View};
use crate::auth::Identity;
use crate::policy::Kind;
use crate::upstream::ScopeUpstreams;
use std::sync::Arc;

/// What the caller may see of a scope; the list filter asks it one entry at a time.
pub trait Visible: Send + Sync {
    fn tool(&self, name: &str) -> bool;
    /// A resource URI or a resource template's `uriTemplate`.
    fn resource(&self, uri: &str) -> bool;
    fn prompt(&self, name: &str) -> bool;
    /// Whether a `tools/list` entry the caller may see by name is shown as defined (the tool
    /// registry hides a version that is not the approved one on `pin: strict` scopes).
    fn tool_definition(&self, _tool: &serde_json::Value) -> bool {
        true
    }
    /// Whether the caller may use anything behind a server capability (`tools`, `resources`,
    /// `prompts`, `completions`); the `initialize` result advertises only those.
    fn capability(&self, name: &str) -> bool;
    /// The revisions the scope serves, directly or bridged: a `server/discover` result lists these
    /// (its upstream's own list may name revisions the gateway does not serve, or miss ones it
    /// bridges), the same list -32022 names.
    fn versions(&self) -> &'static [&'static str] {
        crate::protocol::SUPPORTED_VERSIONS
    }
    /// Whether results get `resultType: "complete"` (2026-07-28 clients on an older upstream).
    fn stamps_result_type(&self) -> bool {
        false
    }
    /// Whether the gateway runs tasks for this caller's tool calls here (the `initialize` result
    /// then advertises the tasks capability, `server/discover` the tasks extension).
    fn gateway_tasks(&self) -> bool {
        false
    }
    /// The cache of filtered results and everything that decides this caller's cut of one
    /// (`None`: filtered every time).
    fn cached(&self) -> Option<(&ListCache, View)> {
        None
    }
}

/// Server capabilities that stand for things a grant gives; anything else (logging, tasks,
/// experimental) is the protocol's and stays.
const GRANTED_CAPABILITIES: [&str; 4] = ["tools", "resources", "prompts", "completions"];

/// Removes from an `initialize` result the capabilities behind which the caller may use nothing,
/// so a caller does not learn that a server has resources or prompts it cannot reach. Returns
/// whether the result changed.
pub fn trim_capabilities(
    result: &mut serde_json::Map<String, serde_json::Value>,
    allowed: &dyn Visible,
) -> bool {
    // An `initialize` result, or a 2026-07-28 `server/discover` result.
    if !result.contains_key("protocolVersion") && !result.contains_key("supportedVersions") {
        return false;
    }
    let initialize = result.contains_key("protocolVersion");
    let mut versions_changed = false;
    if !initialize {
        let ours = allowed.versions();
        let listed = result.get("supportedVersions").and_then(|v| v.as_array());
        if listed.is_none_or(|l| {
            !l.iter()
                .map(|v| v.as_str())
                .eq(ours.iter().map(|v| Some(*v)))
        }) {
            result.insert("supportedVersions".into(), serde_json::json!(ours));
            versions_changed = true;
        }
    }
    let Some(caps) = result
        .get_mut("capabilities")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return versions_changed;
    };
    let before = caps.len();
    caps.retain(|k, _| !GRANTED_CAPABILITIES.contains(&k.as_str()) || allowed.capability(k));
    let trimmed = caps.len() != before || versions_changed;
    if !allowed.gateway_tasks() {
        return trimmed;
    }
    if initialize {
        caps.insert(
            "tasks".into(),
            serde_json::json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}),
        );
    } else if let Some(ext) = caps
        .entry("extensions")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
    {
        ext.insert(
            crate::protocol::TASKS_EXTENSION.into(),
            serde_json::json!({}),
        );
    }
    true
}

/// A plain list of tool names, with no resources or prompts (tests and benchmarks).
impl Visible for Vec<String> {
    fn tool(&self, name: &str) -> bool {
        self.iter().any(|t| t == name)
    }
    fn resource(&self, _: &str) -> bool {
        false
    }
    fn prompt(&self, _: &str) -> bool {
        false
    }
    fn capability(&self, name: &str) -> bool {
        name == "tools" && !self.is_empty()
    }
}

/// What this request's caller may see of its scope, for the list filter (nothing at all
/// without an authenticated caller: fail closed).
pub fn of(ctx: &RequestCtx) -> Box<dyn Visible> {
    match &ctx.caller {
        Some(c) => Box::new(Visibility {
            rt: ctx.rt.clone(),
            identity: c.identity.clone(),
            scope: c.scope.clone(),
            upstream: ctx.upstream.picked.as_ref().map(|p| p.addr.clone()),
            client_cert: ctx.client_cert.clone(),
        }),
        None => Box::new(Nothing),
    }
}

struct Nothing;

impl Visible for Nothing {
    fn tool(&self, _: &str) -> bool {
        false
    }
    fn capability(&self, _: &str) -> bool {
        false
    }
    fn resource(&self, _: &str) -> bool {
        false
    }
    fn prompt(&self, _: &str) -> bool {
        false
    }
}

struct Visibility {
    rt: Arc<super::Runtime>,
    identity: Arc<Identity>,
    scope: Arc<ScopeUpstreams>,
    /// The upstream that answers (its address names it in the registry).
    upstream: Option<String>,
    client_cert: Option<Box<str>>,
}

impl Visibility {
    /// Whether a list shows what `verdict` covers: conditions that read only the caller (not
    /// the arguments) are evaluated as a call would be, without arguments.
    fn shows(&self, verdict: crate::policy::Verdict, method: &str, tool: Option<&str>) -> bool {
        let facts = crate::policy::condition::Facts {
            identity: &self.identity,
            scope: &self.scope.scope.name,
            method,
            tool,
            arguments: None,
            resource: None,
            prompt: None,
            client_cert: self.client_cert.as_deref(),
        };
        self.rt.config.policy.shows(&verdict, &facts)
    }
}

impl Visible for Visibility {
    fn tool_definition(&self, tool: &serde_json::Value) -> bool {
        let upstream = self.upstream.as_deref().unwrap_or("");
        self.rt.registry.listed(&self.scope.scope, upstream, tool)
    }
    fn tool(&self, name: &str) -> bool {
        let (policy, roles, scope) = (
            &self.rt.config.policy,
            &self.identity.roles,
            &self.scope.scope.name,
        );
        self.scope.scope.tools.contains(name)
            && self.shows(
                policy.tool_verdict(roles, scope, name),
                "tools/call",
                Some(name),
            )
    }
    /// Matched in its normal form, as a request for it would be; a URI without one stays hidden.
    fn resource(&self, uri: &str) -> bool {
        crate::uri::normalize(uri).is_ok_and(|uri| {
            let (policy, roles) = (&self.rt.config.policy, &self.identity.roles);
            let v = policy.kind_verdict(roles, &self.scope.scope.name, Kind::Resource, &uri);
            self.shows(v, "resources/read", None)
        })
    }
    fn prompt(&self, name: &str) -> bool {
        let (policy, roles) = (&self.rt.config.policy, &self.identity.roles);
        let v = policy.kind_verdict(roles, &self.scope.scope.name, Kind::Prompt, name);
        self.shows(v, "prompts/get", None)
    }
    fn capability(&self, name: &str) -> bool {
        let (policy, roles, scope) = (
            &self.rt.config.policy,
            &self.identity.roles,
            self.scope.scope.name.as_str(),
        );
        match name {
            "tools" => self.scope.scope.tools.iter().any(|t| self.tool(t)),
            "resources" => policy.grants_kind(roles, scope, Kind::Resource),
            "prompts" => policy.grants_kind(roles, scope, Kind::Prompt),
            "completions" => {
                policy.grants_kind(roles, scope, Kind::Resource)
                    || policy.grants_kind(roles, scope, Kind::Prompt)
            }
            _ => true,
        }
    }
    fn gateway_tasks(&self) -> bool {
        self.gateway_runs_tasks() && self.capability("tools")
    }
    fn versions(&self) -> &'static [&'static str] {
        self.scope.scope.versions()
    }
    /// The registry's state (a strict scope hides versions it has not approved), the scope, the
    /// answering upstream, whether the gateway runs tasks here and the caller's roles: the policy
    /// decides on nothing else. The cache belongs to this runtime (its policy and tools).
    fn cached(&self) -> Option<(&ListCache, View)> {
        // Conditions on the caller (claims, tenant, time…) make the cut the caller's own.
        let policy = &self.rt.config.policy;
        if policy.decides_lists_by_condition(&self.identity.roles, &self.scope.scope.name) {
            return None;
        }
        let mut view = View::default()
            .part(&self.rt.registry.generation().to_le_bytes())
            .part(self.scope.scope.name.as_bytes())
            .part(self.upstream.as_deref().unwrap_or("").as_bytes())
            .part(&[u8::from(self.gateway_runs_tasks())]);
        for role in &self.identity.roles {
            view = view.part(role.as_bytes());
        }
        Some((&self.rt.lists, view))
    }
}

impl Visibility {
    fn gateway_runs_tasks(&self) -> bool {
        self.scope.scope.tasks == crate::config::file::TaskMode::Gateway
            && self.rt.jobs.store.is_some()
    }
}
