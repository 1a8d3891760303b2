//! The registry's background service: reads every scope's tools from each healthy upstream at
//! start, after each reload and every `registry.refresh`; writes what the proxy and the reads saw
//! to the store; re-reads approvals every `registry.sync` (so `mcp-gateway tools approve` applies
//! everywhere without a restart); and when the store shows a version of a tool this instance has
//! not seen (another instance saw the upstream change), reads that scope again at once.

use crate::proxy::Runtime;
use crate::registry::{definition, Note, Registry};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RegistryService {
    pub registry: Arc<Registry>,
    pub runtime: Arc<ArcSwap<Runtime>>,
}

/// A scope is read again because of the store at most this often.
const FORCED_REFRESH_EVERY: Duration = Duration::from_secs(10);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for RegistryService {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some(mut notes) = self.registry.take_notes() else {
            return;
        };
        let mut last_rt: Option<Arc<Runtime>> = None;
        let mut next_refresh = Instant::now();
        let mut next_sync = Instant::now();
        let mut forced_at: Option<Instant> = None;
        // Scopes none of whose upstreams answered are read again soon, backing off.
        let mut unread: HashSet<String> = HashSet::new();
        let mut retry = (Instant::now(), Duration::from_secs(1));
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(note) = notes.recv() => self.write(&note).await,
                _ = tick.tick() => {
                    let rt = self.runtime.load_full();
                    let reloaded = !last_rt.as_ref().is_some_and(|l| Arc::ptr_eq(l, &rt));
                    let now = Instant::now();
                    if next_sync <= now {
                        next_sync = now + rt.config.registry.sync;
                        let stale = self.sync(&rt).await;
                        if !stale.is_empty() && forced_at.is_none_or(|t| t.elapsed() >= FORCED_REFRESH_EVERY) {
                            forced_at = Some(now);
                            self.refresh(&rt, Some(&stale)).await;
                        }
                    }
                    if reloaded || next_refresh <= now {
                        next_refresh = now + rt.config.registry.refresh;
                        unread = self.refresh(&rt, None).await;
                        retry = (now + Duration::from_secs(1), Duration::from_secs(1));
                        last_rt = Some(rt);
                    } else if !unread.is_empty() && retry.0 <= now {
                        unread = self.refresh(&rt, Some(&unread)).await;
                        let wait = (retry.1 * 2).min(rt.config.registry.refresh);
                        retry = (now + wait, wait);
                    }
                }
            }
        }
    }
}

impl RegistryService {
    async fn write(&self, note: &Note) {
        let Some(store) = &self.registry.store else {
            return;
        };
        let sha = definition::hex(&note.sha);
        if let Err(e) = store
            .seen(
                &note.scope,
                &note.tool,
                &sha,
                &note.definition,
                &self.registry.instance,
            )
            .await
        {
            tracing::warn!(error = %e, store = %store.describe(), "tool registry not written; retried at the next refresh");
        }
    }

    /// Reads the tools of every scope (or of `only`) from each healthy upstream; returns the
    /// scopes none of whose upstreams answered.
    async fn refresh(&self, rt: &Runtime, only: Option<&HashSet<String>>) -> HashSet<String> {
        let mut unread = HashSet::new();
        for (name, scope) in &rt.upstreams {
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            let addrs: Vec<&str> = scope
                .pool
                .endpoints()
                .iter()
                .map(|e| e.addr.as_str())
                .collect();
            self.registry.keep_upstreams(name, &addrs);
            let healthy: Vec<_> = scope
                .pool
                .endpoints()
                .iter()
                // A per-user upstream serves no one without a user's own login: the gateway
                // has none of its own to read the tools with.
                .filter(|e| !e.target.legacy_sse && e.per_user().is_none())
                .filter(|e| scope.get_healthy(&e.addr).is_some())
                .cloned()
                .collect();
            let reads = healthy.iter().map(|e| async move {
                (
                    e,
                    crate::registry::fetch::tools(&rt.bridged, scope, e).await,
                )
            });
            let mut offered: HashSet<String> = HashSet::new();
            let mut answered = false;
            for (e, read) in futures_util::future::join_all(reads).await {
                let tools = match read {
                    Ok(t) => t,
                    Err(err) => {
                        tracing::warn!(scope = %name, upstream = %e.addr, error = %err, "tool registry: cannot read the upstream's tools");
                        continue;
                    }
                };
                answered = true;
                for tool in &tools {
                    let Some(tool_name) = tool.get("name").and_then(|n| n.as_str()) else {
                        continue;
                    };
                    if !scope.scope.tools.iter().any(|t| t == tool_name) {
                        continue;
                    }
                    self.registry.listed(&scope.scope, &e.addr, tool);
                    // One sighting per tool and read: upstreams that disagree do not make the
                    // stored current version flip at every refresh (the view keeps each one's).
                    if offered.insert(tool_name.to_string()) {
                        self.write_seen(&scope.scope.name, tool_name, tool).await;
                    }
                }
            }
            if !answered {
                unread.insert(name.clone());
                continue;
            }
            crate::metrics::TOOLS_ACTIVE
                .with_label_values(&[name])
                .set(offered.len() as i64);
            if let Some(store) = &self.registry.store {
                let active: Vec<String> = offered.into_iter().collect();
                if let Err(e) = store
                    .set_active(name, &active, &self.registry.instance)
                    .await
                {
                    tracing::warn!(error = %e, "tool registry not written");
                }
            }
        }
        if only.is_none() {
            self.retire_scopes(rt).await;
        }
        unread
    }

    async fn write_seen(&self, scope: &str, tool_name: &str, tool: &serde_json::Value) {
        let (Some(sha), Some(def)) = (definition::digest(tool), definition::stored(tool)) else {
            return;
        };
        self.write(&Note {
            scope: scope.to_string(),
            tool: tool_name.to_string(),
            sha,
            definition: definition::bounded(def),
        })
        .await;
    }

    /// Scopes in the store that the configuration no longer has: all their tools inactive.
    async fn retire_scopes(&self, rt: &Runtime) {
        let Some(store) = &self.registry.store else {
            return;
        };
        let Ok(rows) = store.rows().await else {
            return;
        };
        let gone: HashSet<&str> = rows
            .iter()
            .filter(|r| r.active && !rt.upstreams.contains_key(&r.scope))
            .map(|r| r.scope.as_str())
            .collect();
        for scope in gone {
            crate::metrics::TOOLS_ACTIVE
                .with_label_values(&[scope])
                .set(0);
            if let Err(e) = store.set_active(scope, &[], &self.registry.instance).await {
                tracing::warn!(error = %e, "tool registry not written");
            }
        }
    }

    /// Takes the store's approvals into the view; returns the scopes where the store knows a
    /// current version this instance has not seen.
    async fn sync(&self, rt: &Runtime) -> HashSet<String> {
        let mut stale = HashSet::new();
        let Some(store) = &self.registry.store else {
            return stale;
        };
        let rows = match store.rows().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, store = %store.describe(), "tool registry not read; approvals as last read");
                return stale;
            }
        };
        let mut approved = HashMap::new();
        for r in &rows {
            if let Some(sha) = r.approved_sha.as_deref().and_then(definition::parse_hex) {
                approved.insert((r.scope.clone(), r.tool.clone()), sha);
            }
            let current = r.current_sha.as_deref().and_then(definition::parse_hex);
            let configured = rt
                .upstreams
                .get(&r.scope)
                .is_some_and(|s| s.scope.tools.contains(&r.tool));
            if let (Some(c), true) = (current, r.active && configured) {
                let seen = self.registry.seen(&r.scope, &r.tool);
                if !seen.is_empty() && !seen.contains(&c) {
                    stale.insert(r.scope.clone());
                }
            }
        }
        self.registry.set_approved(&approved);
        stale
    }
}
