//! The registry in PostgreSQL (tables `tool_registry`, `tool_definitions`, `tool_history`,
//! migration `0004`): each write one transaction that reads the row it changes.

use super::{key, ApproveError, Event, Row, Seen};
use crate::error::StorageError;
use serde_json::Value;

pub struct Postgres {
    db: crate::audit::migrate::Database,
}

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
    pub(super) fn new(url: &str, migrate: bool) -> Result<Self, StorageError> {
        Ok(Postgres {
            db: crate::audit::migrate::Database::new(url, 2, migrate)?,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StorageError> {
        self.db.client().await
    }

    pub(super) async fn rows(&self) -> Result<Vec<Row>, StorageError> {
        let c = self.client().await?;
        let sql = format!("SELECT {ROW} FROM tool_registry ORDER BY scope, tool");
        Ok(c.query(&sql, &[]).await?.iter().map(row_of).collect())
    }

    pub(super) async fn definition(&self, sha: &str) -> Result<Option<Value>, StorageError> {
        let c = self.client().await?;
        let r = c
            .query_opt(
                "SELECT definition FROM tool_definitions WHERE sha256 = $1",
                &[&sha],
            )
            .await?;
        Ok(r.map(|r| r.get(0)))
    }

    pub(super) async fn history(
        &self,
        scope: &str,
        tool: &str,
    ) -> Result<Vec<Event>, StorageError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT at, event, sha256, actor FROM tool_history
                 WHERE scope = $1 AND tool = $2 ORDER BY id",
                &[&scope, &tool],
            )
            .await?;
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

    pub(super) async fn seen(
        &self,
        scope: &str,
        tool: &str,
        sha: &str,
        def: &Value,
        actor: &str,
    ) -> Result<Seen, StorageError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO tool_definitions (sha256, definition) VALUES ($1, $2)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha, def],
        )
        .await?;
        // The row locked, so that two instances seeing the same change record it once.
        let before = tx
            .query_opt(
                "SELECT current_sha, active FROM tool_registry
                 WHERE scope = $1 AND tool = $2 FOR UPDATE",
                &[&scope, &tool],
            )
            .await?;
        let event = |e: &'static str| {
            let tx = &tx;
            async move {
                tx.execute(
                    "INSERT INTO tool_history (scope, tool, event, sha256, actor)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&scope, &tool, &e, &sha, &actor],
                )
                .await
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
                    .await?;
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
                .await?;
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
        tx.commit().await?;
        Ok(seen)
    }

    pub(super) async fn set_active(
        &self,
        scope: &str,
        active: &[String],
        actor: &str,
    ) -> Result<(), StorageError> {
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
        .await?;
        Ok(())
    }

    pub(super) async fn approve(
        &self,
        scope: &str,
        tool: &str,
        sha: Option<&str>,
        actor: &str,
    ) -> Result<String, ApproveError> {
        let name = key(scope, tool);
        let store = |e: tokio_postgres::Error| ApproveError::Store(e.into());
        let mut c = self.client().await?;
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
