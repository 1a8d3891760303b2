//! Live reload. One background service owns the running configuration's life: it starts the
//! first runtime's upstream pools (the proxy opens once they can take traffic), then watches the
//! files (`watch_interval`) and listens for `SIGHUP`. A changed configuration is validated in
//! full, exactly as `check` does, and refused as a whole if anything is wrong or a start-only
//! setting changed ([`fixed`]); otherwise its runtime is built ([`runtime`]), its new pools are
//! started and health-checked, and it replaces the running one atomically: a request keeps the
//! runtime it started with. Every second it also publishes upstream health and, every ten,
//! forgets idle rate-limit keys; every thirty it resolves upstream host names again, and one that
//! moved rebuilds its pool as a reload of the running files would.

pub mod fixed;
pub mod history;
pub mod runtime;

use crate::config::{Problem, Sources};
use crate::listen::Terminators;
use crate::metrics;
use crate::proxy::Runtime;
use crate::upstream::pool::Pool;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The background service that starts, reloads and looks after the runtime.
pub struct Reloader {
    pub current: Arc<ArcSwap<Runtime>>,
    /// The TLS listeners, whose certificates a reload replaces.
    pub tls: Arc<Terminators>,
    /// What `/readyz` reads: set here when the process starts to leave.
    pub draining: crate::proxy::Draining,
    /// The development authorization server, told of each new configuration's scopes and roles.
    pub issuer: Option<Arc<crate::issuer::Issuer>>,
}

/// Reads the configuration's files away from the async threads.
async fn read(path: PathBuf) -> Option<Sources> {
    tokio::task::spawn_blocking(move || Sources::read(&path))
        .await
        .ok()
}

/// Starts what `rt` needs that is not running yet: its new upstream pools (tool processes
/// answering, first health check done) and, for a new authenticator, the JWKS refresher.
async fn start(rt: &Runtime, running: Option<&Runtime>) {
    // A composer serves from its servers' pools: those first, the composers, then the scopes
    // (whose first health check asks the composers).
    futures_util::future::join_all(rt.members.values().map(|u| u.pool.start())).await;
    rt.composers.publish(&rt.config, &rt.members);
    futures_util::future::join_all(rt.upstreams.values().map(|u| u.pool.start())).await;
    let new_auth = running.is_none_or(|r| !Arc::ptr_eq(&r.auth, &rt.auth));
    if let (true, Some(jwks)) = (new_auth, rt.auth.jwks()) {
        tokio::spawn(crate::auth::jwks::Jwks::refresh_while_used(Arc::downgrade(
            &jwks,
        )));
    }
}

/// Publishes the running configuration's hash and load time; returns the hash.
fn publish_running(sources: &Sources) -> String {
    let hash = sources.digest();
    metrics::CONFIG_INFO.reset();
    metrics::CONFIG_INFO.with_label_values(&[&hash]).set(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    metrics::CONFIG_LAST_RELOAD_SUCCESS.set(now as i64);
    hash
}

/// Upstream health as a gauge (once a second).
fn publish_health(rt: &Runtime) {
    for (scope, up) in rt.pools() {
        for (addr, healthy) in up.health() {
            metrics::UPSTREAM_HEALTHY
                .with_label_values(&[scope, &addr])
                .set(i64::from(healthy));
            // Shown at 0 before the first ejection, so alerts see the series.
            metrics::UPSTREAM_EJECTIONS.with_label_values(&[scope, &addr]);
        }
    }
}

/// The pools of `old` that `new` no longer uses.
fn removed(old: &Runtime, new: &Runtime) -> Vec<Arc<Pool>> {
    old.pools()
        .filter(|(_, o)| !new.pools().any(|(_, n)| Arc::ptr_eq(&n.pool, &o.pool)))
        .map(|(_, o)| o.pool.clone())
        .collect()
}

/// How often upstream host names are resolved again; a name that moved rebuilds its pool (as a
/// reload with the running files would).
const DNS_REFRESH: Duration = Duration::from_secs(30);

impl Reloader {
    fn start_draining(&self, why: &str) {
        if self.draining.set() {
            tracing::info!(
                reason = why,
                "draining: /readyz answers 503, requests in flight finish"
            );
        }
    }

    /// Whether a host name of a running pool resolves to other addresses now.
    async fn addresses_moved(&self) -> bool {
        let specs: Vec<_> = self
            .current
            .load()
            .pools()
            .filter(|(_, u)| u.pool.spec.has_names())
            .map(|(_, u)| u.pool.spec.clone())
            .collect();
        if specs.is_empty() {
            return false;
        }
        tokio::task::spawn_blocking(move || specs.iter().any(|s| s.moved()))
            .await
            .unwrap_or(false)
    }

    /// Validates and applies `next`; on success the running configuration is `next`.
    async fn apply(&self, running: &Sources, next: &Sources) -> Result<(), Vec<Problem>> {
        let config = crate::config::validate(next).map_err(|e| e.0)?;
        let old = self.current.load_full();
        let fixed = fixed::changed((running, &old.config), (next, &config));
        if !fixed.is_empty() {
            return Err(fixed);
        }
        let path = config.source.clone();
        let base = old.clone();
        let built = tokio::task::spawn_blocking(move || runtime::build(config, Some(&base)))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let new = Arc::new(built.map_err(|e| vec![Problem::new(&path, "", e)])?);
        start(&new, Some(&old)).await;
        self.current.store(new.clone());
        if let Some(i) = &self.issuer {
            i.learn(&new.config);
        }
        let gone = removed(&old, &new);
        for p in &gone {
            for e in p.endpoints() {
                let _ = metrics::UPSTREAM_HEALTHY.remove_label_values(&[&p.spec.scope, &e.addr]);
                let _ = metrics::UPSTREAM_EJECTIONS.remove_label_values(&[&p.spec.scope, &e.addr]);
            }
        }
        publish_health(&new);
        self.tls.update(&new.config.listeners);
        crate::listen::tls::publish_expiry(&new.config.listeners);
        if !gone.is_empty() {
            // Requests already on a removed pool (open SSE streams) may finish for up to
            // `shutdown_grace`; then its health checks and tool processes stop.
            let grace = new.config.shutdown_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                gone.iter().for_each(|p| p.retire());
            });
        }
        Ok(())
    }
}

impl Reloader {
    /// Applies `next`, logs and counts the outcome; false when it was refused (the running
    /// configuration stays).
    async fn apply_logged(&self, running: &Sources, next: &Sources, why: &str) -> bool {
        match self.apply(running, next).await {
            Ok(()) => {
                let hash = publish_running(next);
                history::record("applied", hash.clone(), Vec::new());
                metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
                tracing::info!(reason = why, hash = %hash, "configuration reloaded");
                true
            }
            Err(problems) => {
                metrics::CONFIG_RELOADS
                    .with_label_values(&["rejected"])
                    .inc();
                for p in &problems {
                    tracing::error!(file = %p.file, field = %p.field, reason = %p.reason, "configuration reload refused; the running configuration stays");
                }
                let running = history::running_hash().unwrap_or_default();
                let why = (problems.iter().take(20))
                    .map(|p| {
                        crate::logs::clip(&format!("{} {}: {}", p.file, p.field, p.reason))
                            .into_owned()
                    })
                    .collect();
                history::record("refused", running, why);
                false
            }
        }
    }

    /// At shutdown: the drain is marked; the proxy drains for `shutdown_grace`, and tool
    /// processes serve it until then.
    async fn wind_down(&self) {
        self.start_draining("shutdown");
        let rt = self.current.load_full();
        tokio::time::sleep(rt.config.shutdown_grace).await;
        for (_, u) in rt.pools() {
            u.pool.retire();
        }
    }
}

/// SIGHUP forces a reload; without it reloads follow file changes only.
fn hangup() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads follow file changes only");
            None
        }
    }
}

/// How often the loop wakes: the watch interval within 100 ms..1 s (1 s when watching is off).
fn tick_every(rt: &Runtime) -> Duration {
    let w = rt.config.watch_interval;
    if w.is_zero() {
        Duration::from_secs(1)
    } else {
        w.clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let first = self.current.load_full();
        start(&first, None).await;
        publish_health(&first);
        ready.notify_ready();
        let path = first.config.source.clone();
        drop(first);
        let Some(mut running) = read(path.clone()).await else {
            return;
        };
        history::record("started", publish_running(&running), Vec::new());
        let mut seen = running.clone();
        let mut hangup = hangup();
        // Pingora acts on SIGQUIT (hand over the sockets) and SIGTERM itself; this only marks
        // the drain at once (after an upgrade's hand-over Pingora waits a few seconds more before
        // it tells the services).
        let mut quit = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::quit()).ok();
        let mut every = tick_every(&self.current.load());
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut last_watch, mut last_health, mut last_sweep, mut last_dns) = (
            Instant::now(),
            Instant::now(),
            Instant::now(),
            Instant::now(),
        );
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { hangup.as_mut()?.recv().await } => true,
                Some(()) = async { quit.as_mut()?.recv().await } => {
                    self.start_draining("SIGQUIT");
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            let rt = self.current.load_full();
            if last_health.elapsed() >= Duration::from_secs(1) {
                last_health = Instant::now();
                publish_health(&rt);
            }
            if last_sweep.elapsed() >= Duration::from_secs(10) {
                last_sweep = Instant::now();
                rt.limits.sweep();
            }
            let watch = rt.config.watch_interval;
            drop(rt);
            // A draining process leaves configuration changes to its successor.
            if self.draining.is_set() {
                continue;
            }
            let mut reason = forced.then_some("SIGHUP");
            let mut next = None;
            if forced || (!watch.is_zero() && last_watch.elapsed() >= watch) {
                last_watch = Instant::now();
                if let Some(n) = read(path.clone()).await {
                    if forced || n != seen {
                        reason = reason.or(Some("files changed"));
                        seen = n.clone();
                        next = Some(n);
                    }
                }
            }
            if next.is_none() && last_dns.elapsed() >= DNS_REFRESH {
                last_dns = Instant::now();
                if self.addresses_moved().await {
                    reason = Some("upstream addresses changed");
                    next = Some(running.clone());
                }
            }
            let (Some(why), Some(next)) = (reason, next) else {
                continue;
            };
            if self.apply_logged(&running, &next, why).await {
                running = next;
            }
            let now = tick_every(&self.current.load());
            if now != every {
                every = now;
                tick = tokio::time::interval(every);
            }
        }
        self.wind_down().await;
    }
}
