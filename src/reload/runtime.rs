//! The runtime a configuration runs on, built for the first start or for a reload. A reload
//! carries over what must not reset under a client: the verified-token cache (when the JWT
//! settings stay), the budgets of rate limits whose name and definition stay, the upstream pools
//! of unchanged scopes (their health, outlier state and tool processes), the calls in flight per
//! user and upstream, the open legacy streams and bridged sessions, the audit queue, the jobs and the tool registry.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::limits::inflight::Inflight;
use crate::limits::{RateLimits, RedisStore};
use crate::proxy::Runtime;
use crate::session::SessionKeys;
use std::sync::Arc;

/// Why a configuration that validated cannot run: a key, an upstream or a store that the runtime
/// could not set up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Key(#[from] crate::auth::KeyError),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::SetupError),
    #[error(transparent)]
    RateLimitStore(#[from] crate::limits::StoreError),
    #[error("a composed scope's composer cannot listen: {0}")]
    Composer(std::io::Error),
    #[error("the tool registry's store: {0}")]
    Registry(#[from] crate::error::StorageError),
    #[error("the store of upstream logins: {0}")]
    Logins(crate::error::StorageError),
}

/// Builds the runtime for `config`; with `running`, keeps what the reload leaves unchanged.
/// New upstream pools are built but not started (`reload::start`). Blocks briefly (a new load
/// balancer's first update): call it where blocking is allowed.
pub fn build(mut config: Config, running: Option<&Runtime>) -> Result<Runtime, BuildError> {
    let auth = match running {
        Some(r) if r.auth.settings() == &config.jwt => r.auth.clone(),
        _ => Arc::new(Authenticator::new(config.jwt.clone())?),
    };
    let sessions = SessionKeys::new(&config.session_secrets);
    let composers = running.map_or_else(Default::default, |r| r.composers.clone());
    composers.bind(&mut config).map_err(BuildError::Composer)?;
    let upstreams = crate::upstream::build(&config, running.map(|r| &r.upstreams))?;
    let members = crate::upstream::build_members(&config, running.map(|r| &r.members))?;
    let rules = std::mem::take(&mut config.rate_limits);
    let l = &config.limits;
    let rt = match running {
        Some(r) => Runtime {
            limits: RateLimits::carried_over(rules, &r.limits),
            user_inflight: Inflight::keep_or_new(&r.user_inflight, l.max_concurrent_per_user),
            user_bodies: Inflight::keep_or_new(&r.user_bodies, config.connections.bodies_per_user),
            upstream_inflight: Inflight::keep_or_new(
                &r.upstream_inflight,
                l.max_concurrent_per_upstream,
            ),
            legacy: r.legacy.clone(),
            bridged: r.bridged.clone(),
            audit: r.audit.clone(),
            jobs: r.jobs.clone(),
            registry: r.registry.clone(),
            vault: {
                r.vault.use_keys(&config.login_keys);
                r.vault.clone()
            },
            lists: Default::default(),
            tracer: tracer(&config, r.exporting.as_ref()),
            exporting: r.exporting.clone(),
            auth,
            sessions,
            upstreams,
            members,
            composers,
            config,
        },
        None => {
            let store = match &config.rate_limit_store {
                Some(s) => Some(RedisStore::new(&s.redis_url, s.timeout, s.on_error)?),
                None => None,
            };
            let audit = crate::audit::Audit::new(config.audit.clone());
            let jobs = crate::jobs::Jobs::new(config.jobs.clone(), &config.audit, audit.clone());
            let registry = crate::registry::Registry::new(
                crate::registry::store::Store::for_audit(&config.audit)?,
                config.audit.instance.clone(),
            );
            let vault = Arc::new(crate::connect::Vault::new(&config).map_err(BuildError::Logins)?);
            let exporting = (config.tracing.as_ref())
                .map(|t| Arc::new(crate::trace::Exporting::new(&t.exporter)));
            Runtime {
                tracer: tracer(&config, exporting.as_ref()),
                exporting,
                vault,
                limits: RateLimits::new(rules, store),
                user_inflight: Inflight::new(l.max_concurrent_per_user),
                user_bodies: Inflight::new(config.connections.bodies_per_user),
                upstream_inflight: Inflight::new(l.max_concurrent_per_upstream),
                legacy: Default::default(),
                bridged: Default::default(),
                audit,
                jobs,
                registry,
                lists: Default::default(),
                auth,
                sessions,
                upstreams,
                members,
                composers,
                config,
            }
        }
    };
    Ok(rt)
}

/// The configuration's tracer, sending to the process's exporter. The exporter is the one built
/// at start: a reload that adds `tracing:` or changes its exporter says it needs a restart.
fn tracer(
    config: &Config,
    exporting: Option<&Arc<crate::trace::Exporting>>,
) -> Option<Arc<crate::trace::Tracer>> {
    let t = config.tracing.as_ref()?;
    let Some(e) = exporting else {
        tracing::warn!("tracing: added by a reload; restart the gateway to export spans");
        return None;
    };
    if e.settings() != &t.exporter {
        tracing::warn!(running = %e.settings().endpoint, "tracing: the exporter's settings (otlp_endpoint, protocol, headers, queue, export_timeout, service_name) changed; they apply after a restart, spans go to the running exporter until then");
    }
    Some(Arc::new(crate::trace::Tracer::new(t, e.clone())))
}
