//! The composer of composed scopes (`servers:`): for each such scope, a Streamable HTTP MCP server
//! inside the gateway on a loopback port, which the proxy treats as the scope's one upstream. So
//! every request of a composed scope passes the same door as any other (grants on the shown
//! names, limits, validation, pinning, audit); the composer only fans out and routes:
//!
//! - `initialize` opens one session on each server (each picked by its own balancer among its
//!   healthy upstreams) and answers with the merged capabilities; the composer's session id lists
//!   the servers' sessions (`session.rs`), and the proxy seals it into the client's id as with any
//!   upstream, so the composer keeps nothing and another replica continues the session;
//! - lists are read from every server that is up, page by page, renamed and merged into one page;
//! - a call goes to the server of its shown name, under the server's own name (`serve.rs`); its
//!   answer streams back, and the server's own requests to the client get ids that say which
//!   server asked (`stream.rs`), so the client's answer goes back to it;
//! - the client's stream (`GET`) merges the servers' streams and announces `list_changed` when a
//!   server goes down or comes back.
//!
//! Every request must carry the gateway's secret, as the gateway's other servers ask.

mod merge;
mod serve;
mod session;
mod stream;

use crate::config::compose::ComposedServer;
use crate::config::{Config, ScopeConfig};
use crate::upstream::ScopeUpstreams;
use arc_swap::ArcSwapOption;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One server of a composed scope as the composer reaches it.
pub struct Member {
    pub server: ComposedServer,
    pub upstreams: Arc<ScopeUpstreams>,
}

/// What a composer serves: the scope and its servers, as the running configuration has them.
pub struct Composed {
    pub scope: Arc<ScopeConfig>,
    pub members: Vec<Member>,
    secret: String,
    http: reqwest::Client,
}

impl Composed {
    fn member(&self, name: &str) -> Option<(usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .find(|(_, m)| m.server.name == name)
    }
}

/// One composed scope's composer: its port, kept for the life of the process so that sessions
/// stay routable across reloads.
struct Bound {
    port: u16,
    listener: Option<std::net::TcpListener>,
    state: Arc<ArcSwapOption<Composed>>,
}

/// Every composer of the process, by scope name; built once, kept across reloads.
pub struct Composers {
    bound: Mutex<HashMap<String, Bound>>,
    /// For servers without `tls:` settings (those use their pool's own client).
    http: reqwest::Client,
}

impl Default for Composers {
    fn default() -> Self {
        Self {
            bound: Mutex::default(),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Composers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bound>> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives each composed scope of `config` its composer's address: a loopback port bound the
    /// first time the scope is seen, the same one after every reload.
    pub fn bind(&self, config: &mut Config) -> std::io::Result<()> {
        let mut bound = self.lock();
        for scope in config.scopes.values_mut() {
            if scope.composed.is_none() {
                continue;
            }
            let port = match bound.get(&scope.name) {
                Some(b) => b.port,
                None => {
                    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                    listener.set_nonblocking(true)?;
                    let port = listener.local_addr()?.port();
                    bound.insert(
                        scope.name.clone(),
                        Bound {
                            port,
                            listener: Some(listener),
                            state: Arc::default(),
                        },
                    );
                    port
                }
            };
            for t in &mut scope.upstreams {
                t.port = port;
            }
        }
        Ok(())
    }

    /// Serves each composed scope from the servers of the configuration about to run (`members`:
    /// the pools of every `scope/server`), and starts the composers not yet listening (on the
    /// calling Tokio runtime). A scope no longer configured is answered 503 by its composer.
    pub fn publish(&self, config: &Config, members: &HashMap<String, Arc<ScopeUpstreams>>) {
        let mut bound = self.lock();
        for (name, b) in bound.iter_mut() {
            let composed = config.scopes.get(name).and_then(|scope| {
                let composition = scope.composed.as_ref()?;
                let members = composition
                    .servers
                    .iter()
                    .filter_map(|s| {
                        Some(Member {
                            server: s.clone(),
                            upstreams: members.get(&s.scope.name)?.clone(),
                        })
                    })
                    .collect();
                Some(Arc::new(Composed {
                    scope: Arc::new(scope.clone()),
                    members,
                    secret: config.upstream_secret.clone(),
                    http: self.http.clone(),
                }))
            });
            b.state.store(composed);
            if let Some(listener) = b.listener.take() {
                let router = serve::router(b.state.clone());
                let name = name.clone();
                tokio::spawn(async move {
                    let served = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => axum::serve(crate::protocol::no_delay(l), router).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = served {
                        tracing::error!(scope = %name, error = %e, "the composer stopped");
                    }
                });
            }
        }
    }
}
