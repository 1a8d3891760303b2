//! Settings a running gateway cannot take in place: its listening sockets, its threads, the
//! audit sink and the other parts built once at start. A reload that changes one is refused as a
//! whole (the rest of the edit is not applied either), with a problem naming the field.

use crate::config::{Config, Problem, Sources};

/// Top-level keys of `gateway.yaml` that only a restart (or an upgrade) applies.
const AT_START: &[&str] = &[
    "metrics_listen",
    "threads",
    "shutdown_grace",
    "upstream_shared_secret",
    "dev_secrets_file",
    "audit",
    "rate_limit_store",
    "connections",
    "dev_issuer",
    "upgrade_socket",
    "jobs",
];

const RESTART: &str = "cannot change while the gateway runs; restart it (or hand over to a new process: README, Upgrades) to apply this edit";

/// The problems that refuse this reload: each changed start-only setting, and a changed set of
/// listeners (addresses, or TLS on/off; a listener's certificate, key, versions and client CAs
/// do reload).
pub fn changed(running: (&Sources, &Config), next: (&Sources, &Config)) -> Vec<Problem> {
    let path = &next.1.source;
    let mut problems = Vec::new();
    let shape = |c: &Config| -> Vec<_> {
        c.listeners
            .iter()
            .map(|l| (l.address, l.tls.is_some()))
            .collect()
    };
    if shape(running.1) != shape(next.1) {
        let field = if next
            .0
            .gateway_yaml()
            .and_then(|v| v.get("listen").cloned())
            .is_some()
        {
            "listen"
        } else {
            "listeners"
        };
        problems.push(Problem::new(path, field, RESTART));
    }
    let (old, new) = (running.0.gateway_yaml(), next.0.gateway_yaml());
    for key in AT_START {
        let get = |v: &Option<serde_yaml_ng::Value>| v.as_ref().and_then(|v| v.get(*key).cloned());
        if get(&old) != get(&new) {
            problems.push(Problem::new(path, *key, RESTART));
        }
    }
    problems
}
