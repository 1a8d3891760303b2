//! The Pingora proxy. [`hooks`] implements `ProxyHttp` as a table of Pingora's hooks, each calling
//! one step module, in the order a request travels: `admit` → `authn` → `authz` (the caller) →
//! `body` → `authz` (each message) → `limit` → `upstream` → `answer` → `audit`. A step either
//! enriches the request context (`ctx`) or ends the request with a `GatewayError`, which `respond`
//! renders for the client and `crate::outcome` classifies for the audit row, metrics and log.

pub mod admit;
pub mod answer;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod ctx;
pub mod failure;
pub mod filter;
mod hooks;
pub mod inbound;
pub mod limit;
pub mod names;
pub mod respond;
pub mod upstream;
pub mod visible;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::session::SessionKeys;
use crate::upstream::ScopeUpstreams;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a request runs on; built once from a `Config`.
pub struct Runtime {
    pub config: Config,
    pub auth: Authenticator,
    pub sessions: SessionKeys,
    pub audit: Arc<crate::audit::Audit>,
    pub limits: crate::limits::RateLimits,
    pub user_inflight: Arc<crate::limits::inflight::Inflight>,
    pub upstream_inflight: Arc<crate::limits::inflight::Inflight>,
    pub upstreams: HashMap<String, Arc<ScopeUpstreams>>,
}

/// The gateway proxy.
pub struct Gateway {
    rt: Arc<Runtime>,
}

impl Gateway {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}
