//! The backends of one scope as a unit that outlives a configuration: its load balancer, its
//! endpoints (with their outlier state), its health checks and the tool processes it runs. A
//! reload that leaves a scope's upstreams, strategy and health check as they were keeps the pool,
//! so its health, counters and processes carry over; a changed scope gets a new pool, which is
//! started (tools answering, one health check done) before any request can pick it.

use super::spawn::Supervisor;
use super::{Cause, Endpoint, Outlier, Picked, SetupError};
use crate::config::file::{Balance, HealthCheckKind};
use crate::config::upstream_tls::UpstreamTls;
use crate::config::{HealthCheck, ScopeConfig, UpstreamTarget};
use pingora::http::RequestHeader;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::{Consistent, Random, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

pub(super) enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Consistent(LoadBalancer<Consistent>),
}

/// What a pool is built from: a scope whose spec is equal keeps the running pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub scope: String,
    /// As configured (a spawned tool's port still 0).
    pub upstreams: Vec<UpstreamTarget>,
    pub balance: Balance,
    pub health: Option<HealthCheck>,
    pub tls: Option<Arc<UpstreamTls>>,
    /// What each upstream's host resolved to (empty for a spawned tool): a name that now
    /// resolves differently makes a different spec, so a reload builds a new pool for it.
    pub addresses: Vec<Vec<std::net::SocketAddr>>,
}

impl PoolSpec {
    /// The spec of `scope`, its host names resolved (blocking: call it where that is allowed).
    pub fn resolve(scope: &ScopeConfig) -> Result<Self, SetupError> {
        let addresses = scope
            .upstreams
            .iter()
            .map(|t| match t.spawn {
                Some(_) => Ok(Vec::new()),
                None => resolve(t).map_err(|e| SetupError::upstream(&scope.name, t.authority(), e)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            scope: scope.name.clone(),
            upstreams: scope.upstreams.clone(),
            balance: scope.balance,
            health: scope.health.clone(),
            tls: scope.upstream_tls.clone(),
            addresses,
        })
    }

    /// Whether an upstream is named by host name (its addresses can change).
    pub fn has_names(&self) -> bool {
        self.upstreams
            .iter()
            .any(|t| t.spawn.is_none() && t.host.parse::<std::net::IpAddr>().is_err())
    }

    /// Whether its host names resolve to other addresses now (blocking).
    pub fn moved(&self) -> bool {
        self.upstreams
            .iter()
            .zip(&self.addresses)
            .any(|(t, was)| t.spawn.is_none() && resolve(t).is_ok_and(|now| &now != was))
    }
}

/// The upstreams of one scope, shared by every runtime whose scope has the same [`PoolSpec`].
pub struct Pool {
    pub spec: PoolSpec,
    pub(super) balancer: Balancer,
    /// Every backend, with what the request path needs precomputed (a scope has a handful: a
    /// linear search beats hashing a formatted address).
    pub(super) endpoints: Vec<Picked>,
    supervisors: Vec<Arc<Supervisor>>,
    /// Machine tokens of its upstreams, renewed while the pool runs.
    tokens: Vec<Arc<super::token::MachineToken>>,
    /// For the gateway's own requests when the scope has `tls:` settings.
    own: Option<reqwest::Client>,
    started: AtomicBool,
    /// Retiring the pool (or dropping it) stops its health checks and tool processes.
    stop: watch::Sender<bool>,
}

/// The addresses of an upstream: its IP, or every address its host name resolves to when the pool
/// is built (a Compose service with replicas, a Kubernetes Service), each its own backend.
fn resolve(t: &UpstreamTarget) -> Result<Vec<std::net::SocketAddr>, Cause> {
    use std::net::ToSocketAddrs;
    if let Ok(ip) = t.host.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, t.port)]);
    }
    let mut addrs: Vec<_> = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("{} resolves to no address", t.host).into());
    }
    Ok(addrs)
}

/// Picks a free loopback port for a tool process the gateway runs itself.
fn free_port() -> Result<u16, SetupError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(SetupError::NoPort)
}

impl Pool {
    /// Builds the pool: binds nothing and starts nothing (see [`Pool::start`]), but picks the
    /// ports of its tool processes.
    pub fn new(spec: PoolSpec, secret: &str) -> Result<Self, SetupError> {
        let name = &spec.scope;
        let mut set = BTreeSet::new();
        let mut endpoints = Vec::new();
        let mut supervisors = Vec::new();
        let mut tokens = Vec::new();
        for (t, addresses) in spec.upstreams.iter().zip(&spec.addresses) {
            let mut t = t.clone();
            // One token per configured upstream, shared by the addresses it resolves to.
            use crate::config::credentials::UpstreamAuth;
            let (mut token, mut exchange) = (None, None);
            match &t.auth {
                Some(UpstreamAuth::ClientCredentials(c)) => {
                    let made = Arc::new(super::token::MachineToken::new(c.clone(), name));
                    tokens.push(made.clone());
                    token = Some(made);
                }
                Some(UpstreamAuth::TokenExchange(x)) => {
                    exchange = Some(Arc::new(super::exchange::Exchanger::new(x.clone(), name)));
                }
                Some(UpstreamAuth::PerUser(_)) | None => {}
            }
            if let Some(spawn) = &t.spawn {
                if t.port == 0 {
                    t.port = free_port()?;
                }
                // The gateway's own processes (bundled tools, the stdio adapter) serve /health.
                let health_path = match &spec.health {
                    Some(h) if h.kind == HealthCheckKind::Http => h.path.clone(),
                    _ => "/health".into(),
                };
                supervisors.push(Arc::new(Supervisor {
                    name: format!("{name}@{}", t.port),
                    args: spawn.args.clone(),
                    env: spawn.env.clone(),
                    port: t.port,
                    secret: secret.to_string(),
                    health_path,
                }));
            }
            let uri = t.path.parse::<http::Uri>().map_err(|e| {
                SetupError::upstream(name, t.authority(), format!("path {:?}: {e}", t.path))
            })?;
            let host_header = http::HeaderValue::from_str(&t.authority())
                .map_err(|e| SetupError::upstream(name, t.authority(), e))?;
            let spawned = [std::net::SocketAddr::from(([127, 0, 0, 1], t.port))];
            let socks = if t.spawn.is_some() {
                &spawned[..]
            } else {
                &addresses[..]
            };
            for &sock in socks {
                let backend = Backend::new_with_weight(&sock.to_string(), t.weight)
                    .map_err(|e| SetupError::upstream(name, sock, e))?;
                endpoints.push(Arc::new(Endpoint {
                    addr: backend.addr.to_string(),
                    sock,
                    target: t.clone(),
                    uri: uri.clone(),
                    host_header: host_header.clone(),
                    token: token.clone(),
                    exchange: exchange.clone(),
                    outlier: Outlier::default(),
                }));
                set.insert(backend);
            }
        }
        let mut backends = Backends::new(Static::new(set));
        if let Some(h) = &spec.health {
            match h.kind {
                HealthCheckKind::Tcp => backends.set_health_check(TcpHealthCheck::new()),
                // Not built: `kind: none` is no health check at all.
                HealthCheckKind::None => {}
                HealthCheckKind::Http => {
                    let first = &spec.upstreams[0];
                    let mut hc = HttpHealthCheck::new(&first.host, first.tls);
                    // The same TLS settings as the requests: a check that trusted more would
                    // report healthy an upstream no request can reach.
                    if let Some(t) = &spec.tls {
                        super::apply_tls(&mut hc.peer_template, t);
                    }
                    let check = |e: Box<pingora::Error>| SetupError::HealthCheck {
                        scope: name.clone(),
                        cause: e,
                    };
                    let mut req =
                        RequestHeader::build("GET", h.path.as_bytes(), None).map_err(check)?;
                    req.insert_header("Host", first.authority())
                        .map_err(check)?;
                    hc.req = req;
                    backends.set_health_check(Box::new(hc));
                }
            }
        }
        macro_rules! lb {
            ($variant:ident) => {{
                let lb = LoadBalancer::from_backends(backends);
                // Static discovery cannot fail; the first update fills the selector.
                first_update(&lb);
                Balancer::$variant(lb)
            }};
        }
        let balancer = match spec.balance {
            Balance::RoundRobin => lb!(RoundRobin),
            Balance::Random => lb!(Random),
            Balance::Consistent => lb!(Consistent),
        };
        let own = match &spec.tls {
            Some(t) => Some(super::own::client(t).map_err(|cause| SetupError::Tls {
                scope: name.clone(),
                cause,
            })?),
            None => None,
        };
        Ok(Self {
            spec,
            balancer,
            endpoints,
            supervisors,
            tokens,
            own,
            started: AtomicBool::new(false),
            stop: watch::channel(false).0,
        })
    }

    /// The client for the gateway's own requests to these upstreams, when the scope has `tls:`
    /// settings (otherwise any client with the system roots will do).
    pub fn own_client(&self) -> Option<&reqwest::Client> {
        self.own.as_ref()
    }

    /// Every backend of the pool.
    pub fn endpoints(&self) -> &[Picked] {
        &self.endpoints
    }

    pub(super) fn backends(&self) -> &Backends {
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Random(lb) => lb.backends(),
            Balancer::Consistent(lb) => lb.backends(),
        }
    }

    /// Starts the pool's tool processes and health checks on the current tokio runtime, and
    /// returns once it can take traffic: every tool process answers (or 30 s passed, so a broken
    /// tool cannot hold the gateway back: the health check then reports it) and the first health
    /// check is done. A pool already started returns at once.
    pub async fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut ready = Vec::new();
        for s in &self.supervisors {
            let (tx, mut rx) = watch::channel(false);
            let (s, stop) = (s.clone(), self.stop.subscribe());
            tokio::spawn(async move {
                s.start_with_ready_notifier(stop, ServiceReadyNotifier::new(tx))
                    .await
            });
            ready.push(async move {
                let _ = rx.wait_for(|r| *r).await;
            });
        }
        futures_util::future::join_all(ready).await;
        for t in &self.tokens {
            tokio::spawn(t.clone().renew_while(self.stop.subscribe()));
        }
        if let Some(h) = &self.spec.health {
            self.backends().run_health_check(true).await;
            tokio::spawn(check_health(
                Arc::downgrade(self),
                h.interval,
                self.stop.subscribe(),
            ));
        }
    }

    /// Stops the pool's health checks and tool processes (a retired pool's requests in flight
    /// may still finish on it if its upstreams are not processes of its own).
    pub fn retire(&self) {
        let _ = self.stop.send(true);
    }
}

/// Health-checks a pool every `interval` for as long as it exists and is not retired.
async fn check_health(pool: Weak<Pool>, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let Some(pool) = pool.upgrade() else {
            return;
        };
        tokio::select! {
            _ = pool.backends().run_health_check(true) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs the load balancer's first discovery update (static discovery never waits) from
/// synchronous code: on a thread without a tokio runtime, or one where blocking is allowed.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, addresses: Vec<std::net::SocketAddr>) -> PoolSpec {
        PoolSpec {
            scope: "s".into(),
            upstreams: vec![UpstreamTarget {
                host: host.into(),
                port: 8091,
                ..UpstreamTarget::loopback(None)
            }],
            balance: Balance::RoundRobin,
            health: None,
            tls: None,
            addresses: vec![addresses],
        }
    }

    /// A host name is watched for new addresses; an IP address is not.
    #[test]
    fn a_host_name_that_resolves_elsewhere_has_moved() {
        let now = resolve(&spec("localhost", vec![]).upstreams[0]).unwrap();
        assert!(spec("localhost", now.clone()).has_names());
        assert!(!spec("localhost", now).moved());
        let elsewhere = vec!["192.0.2.7:8091".parse().unwrap()];
        assert!(spec("localhost", elsewhere.clone()).moved());
        assert!(!spec("192.0.2.7", elsewhere).has_names());
    }
}
