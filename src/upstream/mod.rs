//! The upstream MCP servers of each scope: one pingora-load-balancing `LoadBalancer` per scope with
//! the configured strategy and weights, and its health checks running as a background service; `spawn` runs the tool processes the gateway starts itself.

pub mod spawn;

use crate::config::file::{Balance, HealthCheckKind};
use crate::config::{Config, ScopeConfig, UpstreamTarget};
use pingora::http::RequestHeader;
use pingora::services::background::background_service;
use pingora::services::ServiceWithDependents;
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::{Consistent, Random, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Consistent(Arc<LoadBalancer<Consistent>>),
}

/// Background services Pingora runs beside the proxy.
#[derive(Default)]
pub struct Services {
    /// Tool processes; everything else starts once they answer.
    pub tools: Vec<Box<dyn ServiceWithDependents>>,
    /// Health checks and other background work.
    pub background: Vec<Box<dyn ServiceWithDependents>>,
}

/// The upstreams of one scope.
pub struct ScopeUpstreams {
    pub scope: Arc<ScopeConfig>,
    balancer: Balancer,
    /// Every backend, with what the request path needs precomputed (a scope has a handful: a
    /// linear search beats hashing a formatted address).
    endpoints: Vec<Picked>,
    /// The gateway's secret as the `X-Gateway-Auth` value (marked sensitive).
    pub auth_header: http::HeaderValue,
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
    outlier: Outlier,
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
        let backend = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, 64, accept),
            Balancer::Random(lb) => lb.select_with(key, 64, accept),
            Balancer::Consistent(lb) => lb.select_with(key, 64, accept),
        }?;
        self.endpoint(&backend).cloned()
    }

    fn endpoint(&self, b: &Backend) -> Option<&Picked> {
        let sock = b.addr.as_inet()?;
        self.endpoints.iter().find(|e| e.sock == *sock)
    }

    /// The named upstream if it is still configured and healthy (for sessions pinned to it).
    pub fn get_healthy(&self, addr: &str) -> Option<Picked> {
        let e = self.endpoints.iter().find(|e| e.addr == addr)?;
        let backends = self.backends();
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
        let backends = self.backends();
        backends
            .get_backend()
            .iter()
            .map(|b| (b.addr.to_string(), backends.ready(b)))
            .collect()
    }

    /// Whether any upstream is healthy.
    pub fn any_healthy(&self) -> bool {
        let backends = self.backends();
        backends.get_backend().iter().any(|b| backends.ready(b))
    }

    fn backends(&self) -> &Backends {
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Random(lb) => lb.backends(),
            Balancer::Consistent(lb) => lb.backends(),
        }
    }
}

/// Builds the load balancers of every scope, and the background services that health-check them.
pub fn build(config: &Config) -> Result<(HashMap<String, Arc<ScopeUpstreams>>, Services), String> {
    let mut scopes = HashMap::new();
    let mut services = Services::default();
    let mut auth_header = http::HeaderValue::from_str(&config.upstream_secret)
        .map_err(|_| "the upstream shared secret is not a valid header value".to_string())?;
    auth_header.set_sensitive(true);
    for scope in config.scopes.values() {
        let mut set = BTreeSet::new();
        let mut endpoints = Vec::new();
        for t in &scope.upstreams {
            if let Some(args) = &t.spawn {
                let supervisor = spawn::Supervisor {
                    name: format!("{}@{}", scope.name, t.port),
                    args: args.clone(),
                    port: t.port,
                    secret: config.upstream_secret.clone(),
                    health_path: scope
                        .health
                        .as_ref()
                        .map(|h| h.path.clone())
                        .unwrap_or_else(|| "/health".into()),
                };
                services.tools.push(Box::new(background_service(
                    &format!("tool:{}:{}", scope.name, t.port),
                    supervisor,
                )));
            }
            let backend = Backend::new_with_weight(&t.authority(), t.weight)
                .map_err(|e| format!("scope {}: upstream {}: {e}", scope.name, t.authority()))?;
            let sock = *backend.addr.as_inet().ok_or_else(|| {
                format!(
                    "scope {}: upstream {}: not an IP address",
                    scope.name,
                    t.authority()
                )
            })?;
            let uri = t.path.parse::<http::Uri>().map_err(|e| {
                format!(
                    "scope {}: upstream {}: path {:?}: {e}",
                    scope.name,
                    t.authority(),
                    t.path
                )
            })?;
            let host_header = http::HeaderValue::from_str(&t.authority())
                .map_err(|e| format!("scope {}: upstream {}: {e}", scope.name, t.authority()))?;
            endpoints.push(Arc::new(Endpoint {
                addr: backend.addr.to_string(),
                sock,
                target: t.clone(),
                uri,
                host_header,
                outlier: Outlier::default(),
            }));
            set.insert(backend);
        }
        let mut backends = Backends::new(Static::new(set));
        if let Some(h) = &scope.health {
            match h.kind {
                HealthCheckKind::Tcp => backends.set_health_check(TcpHealthCheck::new()),
                HealthCheckKind::Http => {
                    let first = &scope.upstreams[0];
                    let mut hc = HttpHealthCheck::new(&first.host, first.tls);
                    let mut req = RequestHeader::build("GET", h.path.as_bytes(), None)
                        .map_err(|e| e.to_string())?;
                    req.insert_header("Host", first.authority())
                        .map_err(|e| e.to_string())?;
                    hc.req = req;
                    backends.set_health_check(Box::new(hc));
                }
            }
        }
        let interval = scope.health.as_ref().map(|h| h.interval);
        let name = format!("upstreams:{}", scope.name);
        macro_rules! lb {
            ($variant:ident) => {{
                let mut lb = LoadBalancer::from_backends(backends);
                lb.health_check_frequency = interval;
                lb.parallel_health_check = true;
                // Static discovery cannot fail; the first update fills the selector.
                first_update(&lb);
                let svc = background_service(&name, lb);
                let task = svc.task();
                services.background.push(Box::new(svc));
                Balancer::$variant(task)
            }};
        }
        let balancer = match scope.balance {
            Balance::RoundRobin => lb!(RoundRobin),
            Balance::Random => lb!(Random),
            Balance::Consistent => lb!(Consistent),
        };
        scopes.insert(
            scope.name.clone(),
            Arc::new(ScopeUpstreams {
                scope: Arc::new(scope.clone()),
                balancer,
                endpoints,
                auth_header: auth_header.clone(),
            }),
        );
    }
    Ok((scopes, services))
}

/// Runs the load balancer's first discovery update synchronously (static discovery never waits).
fn first_update<S>(lb: &LoadBalancer<S>)
where
    S: pingora_load_balancing::selection::BackendSelection + 'static,
    S::Iter: pingora_load_balancing::selection::BackendIter,
{
    let rt = tokio::runtime::Builder::new_current_thread().build();
    if let Ok(rt) = rt {
        let _ = rt.block_on(lb.update());
    }
}
