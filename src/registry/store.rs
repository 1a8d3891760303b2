//! Where the registry lives: PostgreSQL (tables `tool_registry`, `tool_definitions`,
//! `tool_history`, migration `0004`), shared by every instance and by `mcp-gateway tools`; or,
//! without a database, one JSON file beside the audit file, changed only under an exclusive lock
//! on `<file>.lock` and replaced atomically, so the gateway and the command line never lose each
//! other's writes.
//!
//! Every write is a small read-modify-write that says what happened (`Seen`), so two instances
//! seeing the same change record it once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
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
    #[serde(with = "ms")]
    pub first_seen: SystemTime,
    #[serde(with = "ms")]
    pub last_seen: SystemTime,
    #[serde(with = "ms")]
    pub changed_at: SystemTime,
}

/// One event in a tool's history: `first_seen`, `changed`, `approved`, `active`, `inactive`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "ms")]
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
    #[error("{0}")]
    Store(String),
}

/// The history kept per tool in the file store (the oldest events go first).
const MAX_FILE_HISTORY: usize = 200;

pub enum Store {
    Postgres(Box<Postgres>),
    File(PathBuf),
}

pub struct Postgres {
    db: crate::audit::migrate::Database,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Store {
    pub fn postgres(url: &str, migrate: bool) -> Result<Self, String> {
        Ok(Store::Postgres(Box::new(Postgres {
            db: crate::audit::migrate::Database::new(url, 2, migrate)?,
        })))
    }

    /// The store beside the audit trail: its database, or `tool-registry.json` beside its file;
    /// none when auditing is off (the registry then lives in memory only).
    pub fn for_audit(audit: &crate::audit::AuditConfig) -> Result<Option<Self>, String> {
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

    pub async fn rows(&self) -> Result<Vec<Row>, String> {
        match self {
            Store::Postgres(p) => p.rows().await,
            Store::File(f) => blocking(f, |doc| Ok(doc.tools.values().cloned().collect())).await,
        }
    }

    pub async fn definition(&self, sha: &str) -> Result<Option<Value>, String> {
        match self {
            Store::Postgres(p) => p.definition(sha).await,
            Store::File(f) => {
                let sha = sha.to_string();
                blocking(f, move |doc| Ok(doc.definitions.get(&sha).cloned())).await
            }
        }
    }

    pub async fn history(&self, scope: &str, tool: &str) -> Result<Vec<Event>, String> {
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
    ) -> Result<Seen, String> {
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
    ) -> Result<(), String> {
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
                .await
                .map_err(ApproveError::Store)?
            }
        }
    }
}

fn key(scope: &str, tool: &str) -> String {
    format!("{scope}/{tool}")
}

// ---- the JSON file ----

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    tools: BTreeMap<String, Row>,
    #[serde(default)]
    definitions: BTreeMap<String, Value>,
    #[serde(default)]
    history: BTreeMap<String, Vec<Event>>,
}

impl Doc {
    fn event(&mut self, scope: &str, tool: &str, event: &str, sha: Option<&str>, actor: &str) {
        let h = self.history.entry(key(scope, tool)).or_default();
        h.push(Event {
            at: SystemTime::now(),
            event: event.into(),
            sha256: sha.map(str::to_string),
            actor: actor.into(),
        });
        if h.len() > MAX_FILE_HISTORY {
            h.drain(..h.len() - MAX_FILE_HISTORY);
        }
    }

    fn seen(&mut self, scope: &str, tool: &str, sha: &str, def: Value, actor: &str) -> Seen {
        self.definitions.entry(sha.to_string()).or_insert(def);
        let now = SystemTime::now();
        let k = key(scope, tool);
        let Some(row) = self.tools.get_mut(&k) else {
            self.tools.insert(
                k,
                Row {
                    scope: scope.into(),
                    tool: tool.into(),
                    active: true,
                    current_sha: Some(sha.into()),
                    approved_sha: Some(sha.into()),
                    approved_by: Some("first seen".into()),
                    first_seen: now,
                    last_seen: now,
                    changed_at: now,
                },
            );
            self.event(scope, tool, "first_seen", Some(sha), actor);
            return Seen::First;
        };
        row.last_seen = now;
        let reactivated = !row.active;
        row.active = true;
        let previous = row.current_sha.clone();
        let changed = previous.as_deref() != Some(sha);
        if changed {
            row.current_sha = Some(sha.into());
            row.changed_at = now;
        }
        if reactivated {
            self.event(scope, tool, "active", Some(sha), actor);
        }
        if changed {
            self.event(scope, tool, "changed", Some(sha), actor);
            return Seen::Changed { previous };
        }
        Seen::Same
    }

    fn set_active(&mut self, scope: &str, active: &[String], actor: &str) {
        let mut flips = Vec::new();
        for row in self.tools.values_mut().filter(|r| r.scope == scope) {
            let want = active.contains(&row.tool);
            if row.active != want {
                row.active = want;
                flips.push((row.tool.clone(), want, row.current_sha.clone()));
            }
        }
        for (tool, want, sha) in flips {
            let event = if want { "active" } else { "inactive" };
            self.event(scope, &tool, event, sha.as_deref(), actor);
        }
    }

    fn approve(
        &mut self,
        scope: &str,
        tool: &str,
        sha: Option<&str>,
        actor: &str,
    ) -> Result<String, ApproveError> {
        let k = key(scope, tool);
        let known = |s: &str| {
            self.history
                .get(&k)
                .is_some_and(|h| h.iter().any(|e| e.sha256.as_deref() == Some(s)))
        };
        let sha = match sha {
            Some(s) if known(s) => s.to_string(),
            Some(s) => return Err(ApproveError::UnknownVersion(k, s.into())),
            None => {
                let row = self
                    .tools
                    .get(&k)
                    .ok_or_else(|| ApproveError::UnknownTool(k.clone()))?;
                row.current_sha
                    .clone()
                    .ok_or_else(|| ApproveError::NothingSeen(k.clone()))?
            }
        };
        let row = self
            .tools
            .get_mut(&k)
            .ok_or_else(|| ApproveError::UnknownTool(k.clone()))?;
        row.approved_sha = Some(sha.clone());
        row.approved_by = Some(actor.into());
        self.event(scope, tool, "approved", Some(&sha), actor);
        Ok(sha)
    }
}

/// Reads the file under its lock and answers from it.
async fn blocking<T: Send + 'static>(
    file: &Path,
    f: impl FnOnce(Doc) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _lock = lock(&file)?;
        f(read(&file)?)
    })
    .await
    .map_err(err)?
}

/// Changes the file under its lock: read, change, write a temporary file, rename it over.
async fn modify<T: Send + 'static>(
    file: &Path,
    f: impl FnOnce(&mut Doc) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let _lock = lock(&file)?;
        let mut doc = read(&file)?;
        let out = f(&mut doc)?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        serde_json::to_writer_pretty(&mut tmp, &doc).map_err(err)?;
        tmp.persist(&file).map_err(err)?;
        Ok(out)
    })
    .await
    .map_err(err)?
}

fn lock(file: &Path) -> Result<std::fs::File, String> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    let l = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(|e| format!("{}: {e}", Path::new(&name).display()))?;
    l.lock().map_err(err)?;
    Ok(l)
}

fn read(file: &Path) -> Result<Doc, String> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Doc::default()),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// Times in the file: milliseconds since 1970.
mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        s.serialize_u64(ms)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_millis(u64::deserialize(d)?))
    }
}

// ---- PostgreSQL ----

const ROW: &str = "scope, tool, active, current_sha, approved_sha, approved_by, first_seen, \
    last_seen, changed_at";

fn row_of(r: &tokio_postgres::Row) -> Row {
    Row {
        scope: r.get(0),
        tool: r.get(1),
        active: r.get(2),
        current_sha: r.get(3),
        approved_sha: r.get(4),
        approved_by: r.get(5),
        first_seen: r.get(6),
        last_seen: r.get(7),
        changed_at: r.get(8),
    }
}

impl Postgres {
    async fn client(&self) -> Result<deadpool_postgres::Client, String> {
        self.db.client().await
    }

    async fn rows(&self) -> Result<Vec<Row>, String> {
        let c = self.client().await?;
        let sql = format!("SELECT {ROW} FROM tool_registry ORDER BY scope, tool");
        Ok(c.query(&sql, &[])
            .await
            .map_err(err)?
            .iter()
            .map(row_of)
            .collect())
    }

    async fn definition(&self, sha: &str) -> Result<Option<Value>, String> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                "SELECT definition FROM tool_definitions WHERE sha256 = $1",
                &[&sha],
            )
            .await
            .map_err(err)?;
        Ok(r.map(|r| r.get(0)))
    }

    async fn history(&self, scope: &str, tool: &str) -> Result<Vec<Event>, String> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT at, event, sha256, actor FROM tool_history
                 WHERE scope = $1 AND tool = $2 ORDER BY id",
                &[&scope, &tool],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Event {
                at: r.get(0),
                event: r.get(1),
                sha256: r.get(2),
                actor: r.get(3),
            })
            .collect())
    }

    async fn seen(
        &self,
        scope: &str,
        tool: &str,
        sha: &str,
        def: &Value,
        actor: &str,
    ) -> Result<Seen, String> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        tx.execute(
            "INSERT INTO tool_definitions (sha256, definition) VALUES ($1, $2)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha, def],
        )
        .await
        .map_err(err)?;
        // The row locked, so that two instances seeing the same change record it once.
        let before = tx
            .query_opt(
                "SELECT current_sha, active FROM tool_registry
                 WHERE scope = $1 AND tool = $2 FOR UPDATE",
                &[&scope, &tool],
            )
            .await
            .map_err(err)?;
        let event = |e: &'static str| {
            let tx = &tx;
            async move {
                tx.execute(
                    "INSERT INTO tool_history (scope, tool, event, sha256, actor)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&scope, &tool, &e, &sha, &actor],
                )
                .await
                .map_err(err)
            }
        };
        let seen = match before {
            None => {
                let n = tx
                    .execute(
                        "INSERT INTO tool_registry (scope, tool, current_sha, approved_sha, approved_by, approved_at)
                         VALUES ($1, $2, $3, $3, 'first seen', now()) ON CONFLICT DO NOTHING",
                        &[&scope, &tool, &sha],
                    )
                    .await
                    .map_err(err)?;
                if n == 1 {
                    event("first_seen").await?;
                }
                Seen::First
            }
            Some(r) => {
                let previous: Option<String> = r.get(0);
                let was_active: bool = r.get(1);
                let changed = previous.as_deref() != Some(sha);
                tx.execute(
                    "UPDATE tool_registry SET last_seen = now(), active = true,
                        changed_at = CASE WHEN $4 THEN now() ELSE changed_at END,
                        current_sha = $3
                     WHERE scope = $1 AND tool = $2",
                    &[&scope, &tool, &sha, &changed],
                )
                .await
                .map_err(err)?;
                if !was_active {
                    event("active").await?;
                }
                if changed {
                    event("changed").await?;
                    Seen::Changed { previous }
                } else {
                    Seen::Same
                }
            }
        };
        tx.commit().await.map_err(err)?;
        Ok(seen)
    }

    async fn set_active(&self, scope: &str, active: &[String], actor: &str) -> Result<(), String> {
        let c = self.client().await?;
        c.execute(
            "WITH flipped AS (
                UPDATE tool_registry SET active = (tool = ANY($2))
                WHERE scope = $1 AND active <> (tool = ANY($2))
                RETURNING tool, active, current_sha)
             INSERT INTO tool_history (scope, tool, event, sha256, actor)
             SELECT $1, tool, CASE WHEN active THEN 'active' ELSE 'inactive' END, current_sha, $3
             FROM flipped",
            &[&scope, &active, &actor],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn approve(
        &self,
        scope: &str,
        tool: &str,
        sha: Option<&str>,
        actor: &str,
    ) -> Result<String, ApproveError> {
        let name = key(scope, tool);
        let store = |e: tokio_postgres::Error| ApproveError::Store(e.to_string());
        let mut c = self.client().await.map_err(ApproveError::Store)?;
        let tx = c.transaction().await.map_err(store)?;
        let row = tx
            .query_opt(
                "SELECT current_sha FROM tool_registry WHERE scope = $1 AND tool = $2 FOR UPDATE",
                &[&scope, &tool],
            )
            .await
            .map_err(store)?
            .ok_or_else(|| ApproveError::UnknownTool(name.clone()))?;
        let sha = match sha {
            Some(s) => {
                let known = tx
                    .query_opt(
                        "SELECT 1 FROM tool_history WHERE scope = $1 AND tool = $2 AND sha256 = $3 LIMIT 1",
                        &[&scope, &tool, &s],
                    )
                    .await
                    .map_err(store)?;
                if known.is_none() {
                    return Err(ApproveError::UnknownVersion(name, s.into()));
                }
                s.to_string()
            }
            None => row
                .get::<_, Option<String>>(0)
                .ok_or(ApproveError::NothingSeen(name))?,
        };
        tx.execute(
            "UPDATE tool_registry SET approved_sha = $3, approved_by = $4, approved_at = now()
             WHERE scope = $1 AND tool = $2",
            &[&scope, &tool, &sha, &actor],
        )
        .await
        .map_err(store)?;
        tx.execute(
            "INSERT INTO tool_history (scope, tool, event, sha256, actor) VALUES ($1, $2, 'approved', $3, $4)",
            &[&scope, &tool, &sha, &actor],
        )
        .await
        .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok(sha)
    }
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
