//! What a caller may see of its scope: the list filter asks one entry at a time, and the answer
//! is the same policy that decides calls (a tool it may not call is one it cannot see).

use super::ctx::RequestCtx;
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
}

/// What this request's caller may see of its scope, for the list filter (nothing at all
/// without an authenticated caller: fail closed).
pub fn of(ctx: &RequestCtx) -> Box<dyn Visible> {
    match &ctx.caller {
        Some(c) => Box::new(Visibility {
            rt: ctx.rt.clone(),
            identity: c.identity.clone(),
            scope: c.scope.clone(),
        }),
        None => Box::new(Nothing),
    }
}

struct Nothing;

impl Visible for Nothing {
    fn tool(&self, _: &str) -> bool {
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
}

impl Visible for Visibility {
    fn tool(&self, name: &str) -> bool {
        self.scope.scope.tools.iter().any(|t| t == name)
            && self
                .rt
                .config
                .policy
                .allows(&self.identity.roles, &self.scope.scope.name, name)
    }
    fn resource(&self, uri: &str) -> bool {
        self.rt.config.policy.allows_kind(
            &self.identity.roles,
            &self.scope.scope.name,
            Kind::Resource,
            uri,
        )
    }
    fn prompt(&self, name: &str) -> bool {
        self.rt.config.policy.allows_kind(
            &self.identity.roles,
            &self.scope.scope.name,
            Kind::Prompt,
            name,
        )
    }
}
