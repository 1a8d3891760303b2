//! Assembles the Pingora server: the proxy service on its listeners, the reloader (which starts
//! the upstream pools with their health checks and tool processes, and replaces the runtime when
//! the configuration changes), the audit writer, the metrics listener and the development issuer;
//! and after the server stops, the last audit flush.

mod registry;

use crate::config::Config;
use crate::proxy::{Gateway, Runtime};
use crate::reload::runtime::BuildError;
use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use std::sync::Arc;

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] BuildError),
    #[error("dev_issuer: {0}")]
    Issuer(#[from] crate::issuer::IssuerError),
    #[error("dev_issuer.listen {listen}: {source}")]
    IssuerListen {
        listen: String,
        #[source]
        source: std::io::Error,
    },
}

/// Builds the runtime the proxy starts on (its upstream pools are started by the reloader, a
/// background service of the server).
pub fn runtime(config: Config) -> Result<Arc<Runtime>, BuildError> {
    crate::reload::runtime::build(config, None).map(Arc::new)
}

/// Pingora gives each client connection a 64 KiB read buffer by default, zero-filled when the
/// connection is accepted and kept for its whole life: 16 MB at 256 keep-alive clients. The HTTP
/// layer reads headers into its own buffer and bodies into its own, so the extra layer only copies;
/// without it a small request is still one `recvfrom` (bench/README.md). The write buffer lets a
/// response's header and a short body leave in one `sendto`; at 8 KiB instead of Pingora's 1460
/// bytes that includes a filtered list (chunked: its length is known only once it is cut), whose
/// header the patched Pingora holds until the body (vendor/pingora-core/PATCH.md). Streams are
/// not held back: each chunk of a stream is flushed as it is written.
const DOWNSTREAM_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: Some(8192),
};

/// The connection limits, with `max` kept below the file-descriptor limit (raised first to the hard
/// maximum where the system allows): the gateway needs descriptors for upstreams, the audit
/// database and its logs too, and an exhausted table stops `accept` for everyone.
fn connection_limits(c: &crate::listen::ConnectionLimits) -> crate::listen::ConnectionLimits {
    const RESERVED: u64 = 1024;
    let mut limits = c.clone();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(fds) => {
            let room = fds.saturating_sub(RESERVED).max(64) as usize;
            if room < limits.max_connections {
                tracing::warn!(
                    configured = limits.max_connections,
                    file_descriptors = fds,
                    using = room,
                    "connections.max lowered to fit the file-descriptor limit"
                );
                limits.max_connections = room;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the file-descriptor limit"),
    }
    limits
}

/// Runs the gateway until it is told to stop (SIGTERM: graceful, SIGINT: fast; SIGQUIT: hand the
/// listening sockets to a process started with `upgrade`, then drain). With `upgrade`, the
/// listening sockets are taken over from the running process instead of bound.
pub fn run(config: Config, upgrade: bool) -> Result<(), StartError> {
    let conf = ServerConf {
        upgrade_sock: config.upgrade_socket.display().to_string(),
        threads: config.threads,
        grace_period_seconds: Some(config.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.shutdown_grace.as_secs().max(1)),
        upstream_keepalive_pool_size: 256,
        ..Default::default()
    };
    let listeners = config.listeners.clone();
    let rt = runtime(config)?;
    let audit = rt.audit.clone();
    let tls = Arc::new(crate::listen::Terminators::new(&listeners));
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let limits = connection_limits(&rt.config.connections);
    let gateway = Gateway::new(rt.clone());
    let console = (rt.config.console.clone())
        .map(|settings| crate::console::Console::new(gateway.shared(), settings));
    let registry = registry::RegistryService {
        registry: rt.registry.clone(),
        runtime: gateway.shared(),
    };
    let issuer = match &rt.config.dev_issuer {
        Some(d) => Some((Arc::new(crate::issuer::Issuer::new(&rt.config, d)?), d)),
        None => None,
    };
    let reloader = crate::reload::Reloader {
        current: gateway.shared(),
        tls: tls.clone(),
        draining: gateway.draining(),
        issuer: issuer.as_ref().map(|(i, _)| i.clone()),
    };
    let mut app = pingora::proxy::http_proxy(&server.configuration, gateway);
    // CONNECT reaches the gateway's own refusal (a JSON-RPC 405 with a request id) instead of
    // Pingora's empty one; nothing is ever tunnelled (`admit::route` refuses it first).
    let mut options = pingora::apps::HttpServerOptions::default();
    options.allow_connect_method_proxying = true;
    app.server_options = Some(options);
    let mut proxy = pingora::services::listening::Service::new(
        "mcp-gateway proxy".to_string(),
        crate::listen::Guarded::new(app, limits)
            .with_tls(tls.clone())
            .on_refused_head({
                let audit = rt.audit.clone();
                Arc::new(move |r: crate::listen::RefusedHead| {
                    crate::proxy::audit::refused_head(&audit, r)
                })
            }),
    );
    for l in &listeners {
        proxy
            .add_listener(ListenerConfig::tcp(l.address.to_string()).l4_buffer(DOWNSTREAM_BUFFERS));
    }
    crate::listen::tls::publish_expiry(&listeners);
    // The proxy opens once the upstream pools can take traffic and the audit writer runs.
    let reloader = server.add_service(background_service("reload", reloader));
    let writer = server.add_service(background_service("audit", AuditWriter(rt.audit.clone())));
    server.add_service(background_service(
        "jobs",
        crate::jobs::JobsService(rt.jobs.clone()),
    ));
    if let Some(console) = console {
        server.add_service(background_service(
            "console",
            crate::console::ConsoleService(console),
        ));
    }
    if let Some(e) = &rt.exporting {
        server.add_service(background_service("traces", TraceExport(e.clone())));
    }
    // The registry reads the tools once the upstream pools can take traffic.
    let registry = server.add_service(background_service("registry", registry));
    registry.add_dependency(&reloader);
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&reloader);
    proxy.add_dependency(&writer);
    if let Some(addr) = &rt.config.metrics_listen {
        crate::metrics::register_at_start();
        let mut metrics = crate::metrics::service();
        metrics.add_tcp(addr);
        server.add_service(metrics);
    }
    if let Some((issuer, d)) = issuer {
        add_dev_issuer(&mut server, issuer, d, upgrade)?;
    }
    for l in &listeners {
        let scheme = if l.tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %l.address, scheme, scopes = rt.upstreams.len(), "mcp-gateway listening");
    }
    drop(rt);
    server.run(RunArgs::default());
    final_flush(&audit);
    tracing::info!("mcp-gateway stopped");
    Ok(())
}

/// The development issuer, on its own socket.
fn add_dev_issuer(
    server: &mut Server,
    issuer: Arc<crate::issuer::Issuer>,
    d: &crate::config::DevIssuer,
    upgrade: bool,
) -> Result<(), StartError> {
    // Its socket is not one Pingora hands over: after an upgrade the old process holds it
    // until it exits, so the new one binds it once free; otherwise a taken port is an error
    // at start.
    let listen = if upgrade {
        IssuerListen::Later(d.listen.clone())
    } else {
        IssuerListen::Bound(
            std::net::TcpListener::bind(&d.listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| StartError::IssuerListen {
                    listen: d.listen.clone(),
                    source,
                })?,
        )
    };
    server.add_service(background_service(
        "dev-issuer",
        IssuerService(std::sync::Mutex::new(Some((issuer, listen)))),
    ));
    Ok(())
}

/// Every proxy thread is done: stores what the audit writer had not stored yet.
fn final_flush(audit: &crate::audit::Audit) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(flush) => flush.block_on(audit.finish()),
        Err(e) => tracing::error!(error = %e, "cannot run the final audit flush"),
    }
}

struct AuditWriter(Arc<crate::audit::Audit>);

#[async_trait]
impl BackgroundService for AuditWriter {
    async fn start(&self, shutdown: ShutdownWatch) {
        // Rows of requests that finish during the grace period stay queued and are stored by
        // `Audit::finish` once every proxy thread is done.
        self.0.run(shutdown).await;
    }
}

/// The span exporter (`tracing:`): exports until shutdown, then sends what is queued.
struct TraceExport(Arc<crate::trace::Exporting>);

#[async_trait]
impl BackgroundService for TraceExport {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.0
            .run(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// The development issuer, run beside the proxy (`dev_issuer:`).
type IssuerParts = (Arc<crate::issuer::Issuer>, IssuerListen);
struct IssuerService(std::sync::Mutex<Option<IssuerParts>>);

enum IssuerListen {
    Bound(std::net::TcpListener),
    /// Bound when the address is free (after an upgrade, once the old process let go of it).
    Later(String),
}

impl IssuerListen {
    async fn listener(self) -> std::io::Result<tokio::net::TcpListener> {
        match self {
            IssuerListen::Bound(l) => tokio::net::TcpListener::from_std(l),
            IssuerListen::Later(addr) => {
                let mut tries = 0;
                loop {
                    match tokio::net::TcpListener::bind(&addr).await {
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 600 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        r => return r,
                    }
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for IssuerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let parts = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((issuer, listen)) = parts else {
            return;
        };
        let listener = tokio::select! {
            l = listen.listener() => l,
            _ = shutdown.changed() => return,
        };
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "development issuer cannot listen");
                return;
            }
        };
        tokio::select! {
            r = issuer.serve(listener) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "development issuer stopped");
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}
