//! `mcp-gateway tools list|show|history|approve`: the registry as an operator reads and changes
//! it, straight from the store the running gateways share (an approval applies in every instance
//! at its next `registry.sync`).

use super::store::{ApproveError, Row, Store};
use crate::config::Config;
use crate::error::StorageError;
use serde_json::{json, Value};
use std::time::SystemTime;

/// Why a registry command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("auditing is off (audit.enabled: false), so the tool registry lives only in the gateway's memory")]
    NoStore,
    #[error("{0:?}: name a tool as SCOPE/TOOL")]
    BadName(String),
    #[error("{0} is not in the registry")]
    Unknown(String),
    #[error("{name} is pinned in the tools file (sha256: {sha}); change it there")]
    Pinned { name: String, sha: String },
    #[error("{0:?} is not a SHA-256 in 64 hex digits")]
    BadSha(String),
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error(transparent)]
    Approve(#[from] ApproveError),
}

fn store(config: &Config) -> Result<Store, CliError> {
    Store::for_audit(&config.audit)?.ok_or(CliError::NoStore)
}

/// `SCOPE/TOOL`, split.
fn split(name: &str) -> Result<(&str, &str), CliError> {
    name.split_once('/')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .ok_or_else(|| CliError::BadName(name.to_string()))
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What the gateway makes of a row under the configuration: `approved`, `changed` (the current
/// version is not the approved one), `inactive`.
fn status(config: &Config, r: &Row) -> &'static str {
    if !r.active {
        return "inactive";
    }
    if approved(config, r) == r.current_sha {
        "approved"
    } else {
        "changed"
    }
}

/// The approved version: pinned in tools.yaml, or the store's.
fn approved(config: &Config, r: &Row) -> Option<String> {
    config
        .scopes
        .get(&r.scope)
        .and_then(|s| s.pins.get(&r.tool))
        .map(super::definition::hex)
        .or_else(|| r.approved_sha.clone())
}

fn short(sha: &Option<String>) -> &str {
    sha.as_deref().map(|s| &s[..s.len().min(12)]).unwrap_or("-")
}

pub async fn list(config: &Config) -> Result<String, CliError> {
    let rows = store(config)?.rows().await?;
    let mut out = format!(
        "{:<40} {:<9} {:<13} {:<13} {}\n",
        "TOOL", "STATUS", "CURRENT", "APPROVED", "LAST SEEN"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<40} {:<9} {:<13} {:<13} {}\n",
            format!("{}/{}", r.scope, r.tool),
            status(config, r),
            short(&r.current_sha),
            short(&approved(config, r)),
            time(r.last_seen)
        ));
    }
    Ok(out)
}

async fn row(store: &Store, scope: &str, tool: &str) -> Result<Row, CliError> {
    store
        .rows()
        .await?
        .into_iter()
        .find(|r| r.scope == scope && r.tool == tool)
        .ok_or_else(|| CliError::Unknown(format!("{scope}/{tool}")))
}

pub async fn show(config: &Config, name: &str) -> Result<String, CliError> {
    let (scope, tool) = split(name)?;
    let store = store(config)?;
    let r = row(&store, scope, tool).await?;
    let approved_sha = approved(config, &r);
    let definition = match &r.current_sha {
        Some(s) => store.definition(s).await?,
        None => None,
    };
    let mut out = json!({
        "scope": r.scope,
        "tool": r.tool,
        "status": status(config, &r),
        "active": r.active,
        "sha256": r.current_sha,
        "approved_sha256": approved_sha,
        "approved_by": if config.scopes.get(scope).is_some_and(|s| s.pins.contains_key(tool)) {
            Some("tools.yaml".to_string())
        } else {
            r.approved_by.clone()
        },
        "first_seen": time(r.first_seen),
        "last_seen": time(r.last_seen),
        "changed_at": time(r.changed_at),
        "definition": definition,
    });
    if approved_sha.is_some() && approved_sha != r.current_sha {
        if let Some(a) = &approved_sha {
            out["approved_definition"] = store.definition(a).await?.unwrap_or(Value::Null);
        }
    }
    Ok(serde_json::to_string_pretty(&out).unwrap_or_default())
}

pub async fn history(config: &Config, name: &str) -> Result<String, CliError> {
    let (scope, tool) = split(name)?;
    let store = store(config)?;
    row(&store, scope, tool).await?;
    let mut out = String::new();
    for e in store.history(scope, tool).await? {
        out.push_str(&format!(
            "{}  {:<10} {}  {}\n",
            time(e.at),
            e.event,
            e.sha256.as_deref().unwrap_or("-"),
            e.actor
        ));
    }
    Ok(out)
}

pub async fn approve(config: &Config, name: &str, sha: Option<&str>) -> Result<String, CliError> {
    let (scope, tool) = split(name)?;
    if let Some(pin) = config.scopes.get(scope).and_then(|s| s.pins.get(tool)) {
        return Err(CliError::Pinned {
            name: name.to_string(),
            sha: super::definition::hex(pin),
        });
    }
    let sha = match sha {
        Some(s) => Some(
            super::definition::parse_hex(s)
                .map(|h| super::definition::hex(&h))
                .ok_or_else(|| CliError::BadSha(s.to_string()))?,
        ),
        None => None,
    };
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let approved = store(config)?
        .approve(scope, tool, sha.as_deref(), &actor)
        .await?;
    Ok(format!(
        "{name}: approved {approved}; gateways apply it within registry.sync ({})",
        humantime::format_duration(config.registry.sync)
    ))
}
