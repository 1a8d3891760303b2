//! Where the registry lives: PostgreSQL (tables `tool_registry`, `tool_definitions`,
//! `tool_history`, migration `0004`), shared by every instance and by `mcp-gateway tools`; or,
//! without a database, one JSON file beside the audit file, changed only under an exclusive lock
//! on `<file>.lock` and replaced atomically, so the gateway and the command line never lose each
//! other's writes.
//!
//! Every write is a small read-modify-write that says what happened (`Seen`), so two instances
//! seeing the same change record it once.

mod file;
mod postgres;

use crate::error::StorageError;
use file::{blocking, modify};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One scope/tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub scope: String,
    pub tool: String,
    pub active: bool,
    pub current_sha: Option<String>,
    pub approved_sha: Option<String>,
    pub approved_by: Option<String>,
    #[serde(with = "file::ms")]
    pub first_seen: SystemTime,
    #[serde(with = "file::ms")]
    pub last_seen: SystemTime,
    #[serde(with = "file::ms")]
    pub changed_at: SystemTime,
}

/// One event in a tool's history: `first_seen`, `changed`, `approved`, `active`, `inactive`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "file::ms")]
    pub at: SystemTime,
    pub event: String,
    pub sha256: Option<String>,
    pub actor: String,
}

/// What recording a definition changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The tool was not in the registry: this definition is its first, and approved.
    First,
    /// The tool's current definition was another one.
    Changed {
        previous: Option<String>,
    },
    Same,
}

/// Why an approval was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("{0} is not in the registry")]
    UnknownTool(String),
    #[error("{0} has no version with SHA-256 {1}")]
    UnknownVersion(String, String),
    #[error("{0} has no definition seen yet")]
    NothingSeen(String),
    #[error(transparent)]
    Store(#[from] StorageError),
}

/// The history kept per tool in the file store (the oldest events go first).
pub(super) const MAX_FILE_HISTORY: usize = 200;

pub enum Store {
    Postgres(Box<Postgres>),
    File(PathBuf),
}

pub use postgres::Postgres;

impl Store {
    pub fn postgres(url: &str, migrate: bool) -> Result<Self, StorageError> {
        Ok(Store::Postgres(Box::new(Postgres::new(url, migrate)?)))
    }

    /// The store beside the audit trail: its database, or `tool-registry.json` beside its file;
    /// none when auditing is off (the registry then lives in memory only).
    pub fn for_audit(audit: &crate::audit::AuditConfig) -> Result<Option<Self>, StorageError> {
        use crate::audit::SinkConfig;
        Ok(match &audit.sink {
            SinkConfig::Off => None,
            SinkConfig::File(f) => Some(Store::File(
                f.parent()
                    .unwrap_or(Path::new("."))
                    .join("tool-registry.json"),
            )),
            SinkConfig::Postgres { url, .. } => Some(Store::postgres(url, audit.migrate_on_start)?),
        })
    }

    /// Where the store is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Postgres(_) => "the database".into(),
            Store::File(p) => p.display().to_string(),
        }
    }

    pub async fn rows(&self) -> Result<Vec<Row>, StorageError> {
        match self {
            Store::Postgres(p) => p.rows().await,
            Store::File(f) => blocking(f, |doc| Ok(doc.tools.values().cloned().collect())).await,
        }
    }

    pub async fn definition(&self, sha: &str) -> Result<Option<Value>, StorageError> {
        match self {
            Store::Postgres(p) => p.definition(sha).await,
            Store::File(f) => {
                let sha = sha.to_string();
                blocking(f, move |doc| Ok(doc.definitions.get(&sha).cloned())).await
            }
        }
    }

    pub async fn history(&self, scope: &str, tool: &str) -> Result<Vec<Event>, StorageError> {
        match self {
            Store::Postgres(p) => p.history(scope, tool).await,
            Store::File(f) => {
                let key = key(scope, tool);
                blocking(f, move |doc| {
                    Ok(doc.history.get(&key).cloned().unwrap_or_default())
                })
                .await
            }
        }
    }

    /// Records that `scope/tool` is offered with this definition now (and so is active).
    pub async fn seen(
        &self,
        scope: &str,
        tool: &str,
        sha: &str,
        definition: &Value,
        actor: &str,
    ) -> Result<Seen, StorageError> {
        match self {
            Store::Postgres(p) => p.seen(scope, tool, sha, definition, actor).await,
            Store::File(f) => {
                let (scope, tool, sha, def, actor) = (
                    scope.to_string(),
                    tool.to_string(),
                    sha.to_string(),
                    definition.clone(),
                    actor.to_string(),
                );
                modify(f, move |doc| Ok(doc.seen(&scope, &tool, &sha, def, &actor))).await
            }
        }
    }

    /// Marks the tools of `scope` active or not; only rows that change get an event. Rows of the
    /// scope not in `active` become inactive.
    pub async fn set_active(
        &self,
        scope: &str,
        active: &[String],
        actor: &str,
    ) -> Result<(), StorageError> {
        match self {
            Store::Postgres(p) => p.set_active(scope, active, actor).await,
            Store::File(f) => {
                let (scope, active, actor) =
                    (scope.to_string(), active.to_vec(), actor.to_string());
                modify(f, move |doc| {
                    doc.set_active(&scope, &active, &actor);
                    Ok(())
                })
                .await
            }
        }
    }

    /// Approves a version of `scope/tool`: `sha`, or the current one. Returns the approved SHA.
    pub async fn approve(
        &self,
        scope: &str,
        tool: &str,
        sha: Option<&str>,
        actor: &str,
    ) -> Result<String, ApproveError> {
        match self {
            Store::Postgres(p) => p.approve(scope, tool, sha, actor).await,
            Store::File(f) => {
                let (scope, tool, sha, actor) = (
                    scope.to_string(),
                    tool.to_string(),
                    sha.map(str::to_string),
                    actor.to_string(),
                );
                modify(f, move |doc| {
                    Ok(doc.approve(&scope, &tool, sha.as_deref(), &actor))
                })
                .await?
            }
        }
    }
}

pub(super) fn key(scope: &str, tool: &str) -> String {
    format!("{scope}/{tool}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_file_keeps_history_activity_and_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::File(dir.path().join("var/registry.json"));
        let d = json!({"name": "t"});
        assert_eq!(s.seen("a", "t", "11", &d, "i1").await.unwrap(), Seen::First);
        assert_eq!(s.seen("a", "t", "11", &d, "i1").await.unwrap(), Seen::Same);
        assert_eq!(
            s.seen("a", "t", "22", &d, "i1").await.unwrap(),
            Seen::Changed {
                previous: Some("11".into())
            }
        );
        s.set_active("a", &[], "i1").await.unwrap();
        let rows = s.rows().await.unwrap();
        assert!(!rows[0].active);
        assert_eq!(rows[0].approved_sha.as_deref(), Some("11"));
        s.set_active("a", &["t".into()], "i1").await.unwrap();
        assert!(matches!(
            s.approve("a", "t", Some("99"), "op").await,
            Err(ApproveError::UnknownVersion(..))
        ));
        assert_eq!(s.approve("a", "t", None, "op").await.unwrap(), "22");
        let events: Vec<String> = s
            .history("a", "t")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(
            events,
            ["first_seen", "changed", "inactive", "active", "approved"]
        );
        assert!(s.definition("22").await.unwrap().is_some());
    }
}
