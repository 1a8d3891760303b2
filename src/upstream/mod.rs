//! The upstream MCP servers of each scope: a [`pool::Pool`] per scope (a pingora-load-balancing
//! `LoadBalancer` with the configured strategy, weights and health check, kept across reloads
//! while the scope's upstreams stay the same); `spawn` runs the tool processes the gateway starts
//! itself.

pub mod client;
mod error;
pub mod exchange;
pub mod own;
pub mod pool;
pub mod spawn;
pub mod token;

pub use error::{Cause, SetupError};

use crate::config::upstream_tls::UpstreamTls;
use crate::config::{Config, ScopeConfig, UpstreamTarget};
use pingora_load_balancing::Backend;
use pool::{Balancer, Pool, PoolSpec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// The upstreams of one scope, as one configuration sees them.
pub struct ScopeUpstreams {
    pub scope: Arc<ScopeConfig>,
    pub pool: Arc<Pool>,
    /// The gateway's secret as the `X-Gateway-Auth` value (marked sensitive).
    pub auth_header: http::HeaderValue,
    /// The scope's request metrics, each series looked up once.
    pub metrics: crate::metrics::ScopeMetrics,
}

/// Consecutive failures of one upstream, and until when it is out of rotation (used when the
/// scope configures `outlier`).
#[derive(Debug, Default)]
struct Outlier {
    failures: AtomicU32,
    ejected_until_ms: AtomicU64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An upstream picked for a request: shared, built once per backend.
pub type Picked = Arc<Endpoint>;

/// One backend with everything the request path needs, computed when the config is loaded so
/// that picking it and rewriting a request for it format nothing.
#[derive(Debug)]
pub struct Endpoint {
    /// `ip:port`, the stable name of the backend (also what session ids carry).
    pub addr: String,
    pub sock: std::net::SocketAddr,
    pub target: UpstreamTarget,
    /// The upstream's MCP path, parsed.
    pub uri: http::Uri,
    /// `Host` as the upstream expects it.
    pub host_header: http::HeaderValue,
    /// The gateway's machine token for it (`auth: oauth_client_credentials`).
    pub token: Option<Arc<token::MachineToken>>,
    /// Its exchanged tokens (`auth: token_exchange`).
    pub exchange: Option<Arc<exchange::Exchanger>>,
    outlier: Outlier,
}

impl Endpoint {
    /// Whether each user's own login is sent (`auth: per_user_oauth`).
    pub fn per_user(&self) -> Option<&crate::config::credentials::PerUserOauth> {
        match &self.target.auth {
            Some(crate::config::credentials::UpstreamAuth::PerUser(p)) => Some(p),
            _ => None,
        }
    }

    /// A request of the gateway's own to this upstream, with the headers configured for it and
    /// its machine token while one is held (the pool renews it in the background).
    pub fn with_headers(&self, mut r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, secret) in &self.target.headers {
            r = r.header(name.clone(), secret.0.clone());
        }
        if let Some(bearer) = self.token.as_ref().and_then(|t| t.cached()) {
            r = r.header(http::header::AUTHORIZATION, bearer);
        }
        r
    }
}

impl ScopeUpstreams {
    /// A healthy upstream, skipping those in `exclude` (already failed for this request).
    pub fn select(&self, key: &[u8], exclude: &[Picked]) -> Option<Picked> {
        let outliers = self.scope.outlier.is_some();
        let now = if outliers { now_ms() } else { 0 };
        let accept = |b: &Backend, healthy: bool| {
            if !healthy {
                return false;
            }
            if exclude.is_empty() && !outliers {
                return true;
            }
            let Some(e) = self.endpoint(b) else {
                return false;
            };
            let tried = exclude.iter().any(|x| Arc::ptr_eq(x, e));
            let ejected = outliers && e.outlier.ejected_until_ms.load(Ordering::Relaxed) > now;
            !tried && !ejected
        };
        let backend = match &self.pool.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, 64, accept),
            Balancer::Random(lb) => lb.select_with(key, 64, accept),
            Balancer::Consistent(lb) => lb.select_with(key, 64, accept),
        }?;
        self.endpoint(&backend).cloned()
    }

    fn endpoint(&self, b: &Backend) -> Option<&Picked> {
        let sock = b.addr.as_inet()?;
        self.pool.endpoints.iter().find(|e| e.sock == *sock)
    }

    /// The named upstream if it is still configured and healthy (for sessions pinned to it).
    pub fn get_healthy(&self, addr: &str) -> Option<Picked> {
        let e = self.pool.endpoints.iter().find(|e| e.addr == addr)?;
        let backends = self.pool.backends();
        let healthy = backends
            .get_backend()
            .iter()
            .any(|b| b.addr.as_inet() == Some(&e.sock) && backends.ready(b));
        healthy.then(|| e.clone())
    }

    /// Records how a request to `e` went. After `consecutive_failures` failures in a row the
    /// upstream is ejected for `cooldown`; after that it is on probation: one success resets it,
    /// one more failure ejects it again. The active health check stays the authority for readiness.
    pub fn record(&self, e: &Endpoint, ok: bool) {
        let Some(config) = &self.scope.outlier else {
            return;
        };
        let o = &e.outlier;
        if ok {
            o.failures.store(0, Ordering::Relaxed);
            return;
        }
        let n = o.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= config.consecutive_failures {
            let until = now_ms() + config.cooldown.as_millis() as u64;
            if o.ejected_until_ms.swap(until, Ordering::Relaxed) < now_ms() {
                crate::metrics::UPSTREAM_EJECTIONS
                    .with_label_values(&[&self.scope.name, &e.addr])
                    .inc();
                tracing::warn!(scope = %self.scope.name, upstream = %e.addr, failures = n, cooldown_ms = config.cooldown.as_millis() as u64, "upstream ejected");
            }
        }
    }

    /// Every upstream with its health.
    pub fn health(&self) -> Vec<(String, bool)> {
        let backends = self.pool.backends();
        backends
            .get_backend()
            .iter()
            .map(|b| (b.addr.to_string(), backends.ready(b)))
            .collect()
    }

    /// Whether any upstream is healthy.
    pub fn any_healthy(&self) -> bool {
        let backends = self.pool.backends();
        backends.get_backend().iter().any(|b| backends.ready(b))
    }
}

/// Puts a scope's upstream TLS settings on a peer: its CAs, its client certificate, the name
/// checked and sent as SNI.
pub fn apply_tls(peer: &mut pingora::upstreams::peer::HttpPeer, tls: &UpstreamTls) {
    if let Some(ca) = &tls.ca {
        peer.options.ca = Some(ca.clone());
    }
    if let Some(c) = &tls.client {
        peer.client_cert_key = Some(c.clone());
    }
    if let Some(n) = &tls.server_name {
        peer.sni.clone_from(n);
    }
}

/// The upstreams of every scope: the pool of `previous` (the running configuration's) where a
/// scope's upstreams, strategy and health check did not change, a new (not yet started) pool
/// elsewhere. Blocks briefly (each new load balancer's first update): call it where blocking is
/// allowed.
pub fn build(
    config: &Config,
    previous: Option<&HashMap<String, Arc<ScopeUpstreams>>>,
) -> Result<HashMap<String, Arc<ScopeUpstreams>>, SetupError> {
    build_all(config, config.scopes.values(), previous)
}

/// The upstreams of every server of the composed scopes, by `scope/server`, kept or built as
/// [`build`] does.
pub fn build_members(
    config: &Config,
    previous: Option<&HashMap<String, Arc<ScopeUpstreams>>>,
) -> Result<HashMap<String, Arc<ScopeUpstreams>>, SetupError> {
    let members = config
        .scopes
        .values()
        .filter_map(|s| s.composed.as_ref())
        .flat_map(|c| c.servers.iter().map(|s| s.scope.as_ref()));
    build_all(config, members, previous)
}

fn build_all<'a>(
    config: &Config,
    scopes: impl Iterator<Item = &'a ScopeConfig>,
    previous: Option<&HashMap<String, Arc<ScopeUpstreams>>>,
) -> Result<HashMap<String, Arc<ScopeUpstreams>>, SetupError> {
    let mut auth_header =
        http::HeaderValue::from_str(&config.upstream_secret).map_err(|_| SetupError::Secret)?;
    auth_header.set_sensitive(true);
    let mut built = HashMap::new();
    for scope in scopes {
        let spec = PoolSpec::resolve(scope)?;
        let kept = previous
            .and_then(|p| p.get(&scope.name))
            .filter(|p| p.pool.spec == spec)
            .map(|p| p.pool.clone());
        let pool = match kept {
            Some(p) => p,
            None => Arc::new(Pool::new(spec, &config.upstream_secret)?),
        };
        built.insert(
            scope.name.clone(),
            Arc::new(ScopeUpstreams {
                scope: Arc::new(scope.clone()),
                pool,
                auth_header: auth_header.clone(),
                metrics: crate::metrics::ScopeMetrics::new(&scope.name, &scope.tools),
            }),
        );
    }
    Ok(built)
}
