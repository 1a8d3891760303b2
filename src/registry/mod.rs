//! The tool registry: what each scope's tools *are*, as their upstreams define them, kept with its
//! history (`store.rs`), and what the proxy does about a definition that changed.
//!
//! The proxy reads one in-memory view, swapped whole (`ArcSwap`), never waiting on the store:
//! - a `tools/list` answer: each entry's definition is hashed (`definition::digest`); one this
//!   instance has not seen from that upstream is noted at once (the view changes before the answer
//!   goes out, so a call right after it is judged on it) and queued for the store. On a scope with
//!   `pin: strict` an entry that is not the approved version is left out of the answer;
//! - a `tools/call`: on `pin: strict`, refused as an unknown tool unless every upstream of the
//!   scope offers the approved version (the real reason goes to the log and the audit row); then
//!   its arguments are checked against the served version's compiled `inputSchema`.
//!
//! The approved version is the one in `tools.yaml` (`sha256:`) or else the one the store holds:
//! the first seen, until an operator approves another (`mcp-gateway tools approve`). The
//! background service (`service.rs`) reads the tools from every upstream at start, after each
//! reload and every `registry.refresh`, writes what it saw, and re-reads approvals every
//! `registry.sync`, so an approval made anywhere applies in every instance.

pub mod cli;
pub mod definition;
pub mod fetch;
pub mod store;

use crate::config::file::PinMode;
use crate::config::ScopeConfig;
use arc_swap::ArcSwap;
use definition::Sha;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One version of a tool as the proxy uses it.
pub struct Version {
    pub sha: Sha,
    /// The compiled `inputSchema`; `None` when the tool has none or it does not compile.
    pub validator: Option<jsonschema::Validator>,
    /// The definition as the upstream gave it (what `discovery: search` shows).
    pub definition: Value,
}

impl Version {
    fn new(sha: Sha, definition: &Value) -> Self {
        let validator = match definition::compile(definition) {
            Ok(v) => Some(v),
            Err(e) => {
                let name = definition
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("");
                tracing::warn!(tool = %crate::logs::clip(name), error = %e, "tool arguments cannot be validated");
                None
            }
        };
        Self {
            sha,
            validator,
            definition: definition.clone(),
        }
    }
}

/// What this instance knows of one scope/tool.
#[derive(Clone, Default)]
struct Entry {
    /// From the store (the configured pin wins over it).
    approved: Option<Sha>,
    /// The latest version seen from each upstream (by address).
    seen: Vec<(Arc<str>, Sha)>,
    /// The version seen last: the one callers are served (its schema validates arguments).
    served: Option<Arc<Version>>,
}

type View = HashMap<String, HashMap<String, Entry>>;

/// A definition seen by the proxy, on its way to the store.
pub struct Note {
    pub scope: String,
    pub tool: String,
    pub sha: Sha,
    pub definition: Value,
}

/// Why a call to a tool is held back.
pub const NOT_APPROVED: &str = "tool definition differs from the approved version (pin: strict)";
pub const NOT_SEEN: &str = "tool definition not seen yet (pin: strict)";

pub struct Registry {
    pub store: Option<store::Store>,
    view: ArcSwap<View>,
    /// Counts the view's changes: filtered `tools/list` results are cached per generation.
    generation: AtomicU64,
    notes: tokio::sync::mpsc::Sender<Note>,
    queued: Mutex<Option<tokio::sync::mpsc::Receiver<Note>>>,
    /// The name written as the actor of this instance's events.
    pub instance: String,
}

impl Registry {
    pub fn new(store: Option<store::Store>, instance: String) -> Arc<Self> {
        let (notes, rx) = tokio::sync::mpsc::channel(1024);
        Arc::new(Self {
            store,
            view: ArcSwap::default(),
            generation: AtomicU64::new(0),
            notes,
            queued: Mutex::new(Some(rx)),
            instance,
        })
    }

    fn approved(&self, scope: &ScopeConfig, tool: &str, entry: Option<&Entry>) -> Option<Sha> {
        scope
            .pins
            .get(tool)
            .copied()
            .or_else(|| entry.and_then(|e| e.approved))
    }

    /// Whether a `tools/call` to `tool` may go on, and the version whose schema checks its
    /// arguments. `Err` carries the real reason (for the log and the audit row only).
    pub fn call(
        &self,
        scope: &ScopeConfig,
        tool: &str,
    ) -> Result<Option<Arc<Version>>, &'static str> {
        let view = self.view.load();
        let entry = view.get(&scope.name).and_then(|s| s.get(tool));
        if scope.pin == PinMode::Strict {
            let approved = self.approved(scope, tool, entry);
            let Some(e) = entry.filter(|e| !e.seen.is_empty()) else {
                return Err(NOT_SEEN);
            };
            if approved.is_none() || e.seen.iter().any(|(_, s)| Some(*s) != approved) {
                return Err(NOT_APPROVED);
            }
        }
        Ok(entry.and_then(|e| e.served.clone()))
    }

    /// Whether a `tools/list` entry from `upstream` is shown; notes a definition not seen before.
    pub fn listed(&self, scope: &ScopeConfig, upstream: &str, tool: &Value) -> bool {
        let (Some(name), Some(sha)) = (
            tool.get("name").and_then(Value::as_str),
            definition::digest(tool),
        ) else {
            return false;
        };
        let approved = {
            let view = self.view.load();
            let entry = view.get(&scope.name).and_then(|s| s.get(name));
            let known =
                entry.is_some_and(|e| e.seen.iter().any(|(u, s)| &**u == upstream && *s == sha));
            if known {
                self.approved(scope, name, entry)
            } else {
                drop(view);
                self.note(scope, upstream, name, sha, tool)
            }
        };
        scope.pin != PinMode::Strict || approved == Some(sha)
    }

    /// Takes in a version `upstream` offers: the view first (so the proxy acts on it at once),
    /// then the store (by the service). Returns the approved version.
    pub fn note(
        &self,
        scope: &ScopeConfig,
        upstream: &str,
        name: &str,
        sha: Sha,
        tool: &Value,
    ) -> Option<Sha> {
        let version = Arc::new(Version::new(sha, tool));
        let mut before: Option<Entry> = None;
        self.update(|view| {
            let mut next = (**view).clone();
            let entry = next
                .entry(scope.name.clone())
                .or_default()
                .entry(name.to_string())
                .or_default();
            before = Some(entry.clone());
            match entry.seen.iter_mut().find(|(u, _)| &**u == upstream) {
                Some(slot) => slot.1 = sha,
                None => entry.seen.push((upstream.into(), sha)),
            }
            // Trust on first use: the first version seen is approved until the store says.
            entry.approved.get_or_insert(sha);
            entry.served = Some(version.clone());
            next
        });
        let before = before.unwrap_or_default();
        let previous = before
            .seen
            .iter()
            .find(|(u, _)| &**u == upstream)
            .map(|(_, s)| *s)
            .or_else(|| before.served.as_ref().map(|v| v.sha));
        let approved = self.approved(scope, name, Some(&before)).or(Some(sha));
        if previous.is_some_and(|p| p != sha) || approved != Some(sha) {
            self.changed(scope, upstream, name, previous, sha, approved);
        }
        if let Some(definition) = definition::stored(tool) {
            let note = Note {
                scope: scope.name.clone(),
                tool: name.to_string(),
                sha,
                definition: definition::bounded(definition),
            };
            if self.notes.try_send(note).is_err() {
                tracing::warn!(scope = %scope.name, tool = %name, "tool registry queue full: the definition is written at the next refresh");
            }
        }
        approved
    }

    fn changed(
        &self,
        scope: &ScopeConfig,
        upstream: &str,
        name: &str,
        previous: Option<Sha>,
        sha: Sha,
        approved: Option<Sha>,
    ) {
        if previous.is_some_and(|p| p != sha) {
            crate::metrics::TOOL_DEFINITION_CHANGES
                .with_label_values(&[&scope.name])
                .inc();
        }
        if scope.pin == PinMode::Off {
            return;
        }
        let action = match scope.pin {
            PinMode::Strict => "hidden and refused until approved",
            _ => "served (pin: warn)",
        };
        tracing::warn!(
            scope = %scope.name,
            tool = %name,
            upstream = %upstream,
            previous = %previous.map(|p| definition::hex(&p)).unwrap_or_default(),
            sha256 = %definition::hex(&sha),
            approved = %approved.map(|p| definition::hex(&p)).unwrap_or_default(),
            action,
            "tool definition is not the approved one"
        );
    }

    /// The approvals the store holds now (`scope` → `tool` → approved SHA).
    pub(crate) fn set_approved(&self, approved: &HashMap<(String, String), Sha>) {
        let view = self.view.load();
        let same = approved.iter().all(|((scope, tool), sha)| {
            view.get(scope)
                .and_then(|s| s.get(tool))
                .is_some_and(|e| e.approved == Some(*sha))
        });
        drop(view);
        if same {
            return;
        }
        self.update(|view| {
            let mut next = (**view).clone();
            for ((scope, tool), sha) in approved {
                let e = next
                    .entry(scope.clone())
                    .or_default()
                    .entry(tool.clone())
                    .or_default();
                e.approved = Some(*sha);
            }
            next
        });
    }

    /// Forgets what upstreams no longer in `scope` offered (they left with a reload), so a
    /// version they offered does not hold a tool.
    pub(crate) fn keep_upstreams(&self, scope: &str, addrs: &[&str]) {
        let stale = |e: &Entry| {
            e.seen
                .iter()
                .any(|(u, _)| !u.is_empty() && !addrs.contains(&&**u))
        };
        let view = self.view.load();
        if !view.get(scope).is_some_and(|s| s.values().any(stale)) {
            return;
        }
        drop(view);
        self.update(|view| {
            let mut next = (**view).clone();
            if let Some(tools) = next.get_mut(scope) {
                for e in tools.values_mut() {
                    e.seen
                        .retain(|(u, _)| u.is_empty() || addrs.contains(&&**u));
                }
            }
            next
        });
    }

    /// Which state of the view the proxy reads (it changes after every change of the view).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Changes the view (`ArcSwap::rcu`), then counts the change.
    fn update(&self, change: impl FnMut(&Arc<View>) -> View) {
        self.view.rcu(change);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The definitions waiting for the store (taken once, by the service).
    pub(crate) fn take_notes(&self) -> Option<tokio::sync::mpsc::Receiver<Note>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The versions of the tool this instance last saw, one per upstream.
    pub fn seen(&self, scope: &str, tool: &str) -> Vec<Sha> {
        let view = self.view.load();
        view.get(scope)
            .and_then(|s| s.get(tool))
            .map(|e| e.seen.iter().map(|(_, s)| *s).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
