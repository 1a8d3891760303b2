//! The Pingora proxy. [`hooks`] implements `ProxyHttp` as a table of Pingora's hooks, each calling
//! one step module, in the order a request travels: `admit` → `authn` → `authz` (the caller) →
//! `body` → `authz` (each message) → `limit` → `upstream` → `answer` → `audit`. A step either
//! enriches the request context (`ctx`) or ends the request with a `GatewayError`, which `respond`
//! renders for the client and `crate::outcome` classifies for the audit row, metrics and log.

pub mod admit;
pub mod allowed;
pub mod answer;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod connect;
pub mod cors;
pub mod credentials;
pub mod ctx;
pub mod discovery;
pub mod failure;
pub mod filter;
pub mod guarded;
mod hooks;
pub mod inbound;
pub mod legacy;
pub mod limit;
pub mod modern;
pub mod names;
pub mod respond;
pub mod rest;
pub mod scrub;
pub mod tasks;
pub mod traced;
pub mod translate;
pub mod upstream;
pub mod visible;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::session::SessionKeys;
use crate::upstream::ScopeUpstreams;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a request runs on; built once from a `Config`.
pub struct Runtime {
    pub config: Config,
    /// Shared with the next runtime when a reload leaves the JWT settings as they were.
    pub auth: Arc<Authenticator>,
    pub sessions: SessionKeys,
    pub audit: Arc<crate::audit::Audit>,
    pub limits: crate::limits::RateLimits,
    pub user_inflight: Arc<crate::limits::inflight::Inflight>,
    /// Requests per user whose body is still arriving (`connections.bodies_per_user`).
    pub user_bodies: Arc<crate::limits::inflight::Inflight>,
    pub upstream_inflight: Arc<crate::limits::inflight::Inflight>,
    pub upstreams: HashMap<String, Arc<ScopeUpstreams>>,
    /// The servers of composed scopes, by `scope/server` (reached by the composers only).
    pub members: HashMap<String, Arc<ScopeUpstreams>>,
    /// The composers of composed scopes; built once, kept across reloads.
    pub composers: Arc<crate::compose::Composers>,
    /// Legacy HTTP+SSE streams open in this instance.
    pub legacy: Arc<legacy::Streams>,
    /// The gateway's own upstream sessions for 2026-07-28 clients on older upstreams.
    pub bridged: Arc<translate::Pool>,
    /// Background tool calls (MCP tasks, REST jobs); built at start, kept across reloads.
    pub jobs: Arc<crate::jobs::Jobs>,
    /// The tool registry (definitions, approvals); built at start, kept across reloads.
    pub registry: Arc<crate::registry::Registry>,
    /// Users' own logins at upstreams (`auth: per_user_oauth`); built at start, kept across
    /// reloads.
    pub vault: Arc<crate::connect::Vault>,
    /// Filtered list results of this runtime (its policy, its tools).
    pub lists: filter::cache::ListCache,
    /// This configuration's tracing (`tracing:`), when on.
    pub tracer: Option<Arc<crate::trace::Tracer>>,
    /// The process's span exporter, built at start when the first configuration traces; kept
    /// across reloads.
    pub exporting: Option<Arc<crate::trace::Exporting>>,
}

impl Runtime {
    /// Every upstream pool of this runtime: the scopes' and the composed scopes' servers'.
    pub fn pools(&self) -> impl Iterator<Item = (&String, &Arc<ScopeUpstreams>)> {
        self.upstreams.iter().chain(&self.members)
    }
}

/// The gateway proxy. Each request takes the runtime current when it starts and keeps it to the
/// end; a new runtime (`Gateway::swap`) applies to the requests that start after it.
pub struct Gateway {
    rt: Arc<ArcSwap<Runtime>>,
    draining: Draining,
}

/// Set once the process is on its way out (SIGTERM, or SIGQUIT for an upgrade): `/readyz` answers
/// 503 from then on so load balancers stop sending, while requests in flight finish. The runtime
/// that decides it (the reloader) holds a copy handed to it by [`Gateway::draining`].
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets it; `true` the first time.
    pub fn set(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::Relaxed)
    }
}

impl Gateway {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self {
            rt: Arc::new(ArcSwap::new(rt)),
            draining: Draining::default(),
        }
    }

    /// The draining flag `/readyz` reads, for whoever decides the process is leaving.
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    /// The runtime pointer itself, for the reloader that replaces it.
    pub fn shared(&self) -> Arc<ArcSwap<Runtime>> {
        self.rt.clone()
    }

    /// Replaces the runtime for requests that start from now on; returns the one replaced.
    pub fn swap(&self, rt: Arc<Runtime>) -> Arc<Runtime> {
        self.rt.swap(rt)
    }
}

#[cfg(test)]
pub mod testing;

#[cfg(test)]
mod tests {
    use super::testing::TestRuntime;
    use super::*;
    use pingora::proxy::ProxyHttp;

    /// A request keeps the runtime it started with; the next one gets the new runtime.
    #[test]
    fn a_swapped_runtime_applies_to_requests_that_start_after_it() {
        let old = TestRuntime::new().build();
        let new = TestRuntime::new()
            .gateway("allowed_origins: [https://new.example.com]\n")
            .build();
        let gw = Gateway::new(old.clone());
        let before = gw.new_ctx();
        let replaced = gw.swap(new.clone());
        assert!(Arc::ptr_eq(&replaced, &old));
        let after = gw.new_ctx();
        assert!(Arc::ptr_eq(&before.rt, &old));
        assert!(Arc::ptr_eq(&after.rt, &new));
        assert!(after
            .rt
            .config
            .allowed_origins
            .contains(&"https://new.example.com".into()));
    }
}
