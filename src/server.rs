//! Assembles the Pingora server: the proxy service on `listen`, one background health-check
//! service per scope, and the JWKS refresher.

use crate::auth::jwks::Jwks;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::proxy::{Gateway, Runtime};
use crate::session::SessionKeys;
use crate::upstream::Services;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::sync::Arc;

/// Builds the runtime the proxy runs on, and the background services it needs.
pub fn runtime(config: Config) -> Result<(Arc<Runtime>, Services), String> {
    let auth = Authenticator::new(config.jwt.clone())?;
    let sessions = SessionKeys::new(&config.session_secrets);
    let (upstreams, mut services) = crate::upstream::build(&config)?;
    if let Some(jwks) = auth.jwks() {
        services
            .background
            .push(Box::new(background_service("jwks", JwksRefresher(jwks))));
    }
    Ok((
        Arc::new(Runtime {
            config,
            auth,
            sessions,
            upstreams,
        }),
        services,
    ))
}

/// Runs the gateway until it is told to stop. Never returns.
pub fn run(config: Config) -> Result<(), String> {
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.shutdown_grace.as_secs().max(1)),
        upstream_keepalive_pool_size: 256,
        ..Default::default()
    };
    let listen = config.listen.clone();
    let (rt, services) = runtime(config)?;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, Gateway::new(rt.clone()));
    proxy.add_tcp(&listen);
    let tools = server.add_services(services.tools);
    let handles = server.add_services(services.background);
    for h in &handles {
        for t in &tools {
            h.add_dependency(t);
        }
    }
    let proxy = server.add_service(proxy);
    for h in &handles {
        proxy.add_dependency(h);
    }
    tracing::info!(%listen, scopes = rt.upstreams.len(), "mcp-gateway listening");
    server.run_forever()
}

struct JwksRefresher(Arc<Jwks>);

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.0.clone().refresh_forever() => {}
            _ = shutdown.changed() => {}
        }
    }
}
