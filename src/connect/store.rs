//! Where users' upstream logins are kept: PostgreSQL (`upstream_logins`, migration 0006) when the
//! gateway has a database, so every replica and a restart see them; memory otherwise (a restart
//! signs everyone out). Either way the tokens are sealed with AES-256-GCM and the envelope is
//! bound to its row (user, tenant, upstream): a sealed value copied to another row does not open.

use crate::audit::migrate::Database;
use crate::error::StorageError;
use std::collections::HashMap;
use std::sync::Mutex;

/// One user's login at one upstream, as the store holds it.
#[derive(Debug, Clone)]
pub struct Row {
    pub user: String,
    pub tenant: String,
    pub upstream: String,
    /// The sealed tokens (`seal::envelope`).
    pub sealed: String,
    pub refreshable: bool,
    /// Unix seconds.
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whose logins a listing or a revocation covers.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub user: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub upstream: Option<&'a str>,
}

impl Filter<'_> {
    fn matches(&self, r: &Row) -> bool {
        self.user.is_none_or(|u| u == r.user)
            && self.tenant.is_none_or(|t| t == r.tenant)
            && self.upstream.is_none_or(|u| u == r.upstream)
    }
}

pub enum Store {
    Memory(Mutex<HashMap<(String, String, String), Row>>),
    Postgres(Database),
}

impl Store {
    /// The database's store when the audit goes to PostgreSQL, memory otherwise.
    pub fn for_audit(audit: &crate::audit::AuditConfig) -> Result<Self, StorageError> {
        use crate::audit::SinkConfig;
        Ok(match &audit.sink {
            SinkConfig::Postgres { url, .. } => {
                Store::Postgres(Database::new(url, 2, audit.migrate_on_start)?)
            }
            _ => Store::Memory(Mutex::default()),
        })
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Store::Memory(_))
    }

    fn memory(
        m: &Mutex<HashMap<(String, String, String), Row>>,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), Row>> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn get(
        &self,
        user: &str,
        tenant: &str,
        upstream: &str,
    ) -> Result<Option<Row>, StorageError> {
        match self {
            Store::Memory(m) => Ok(Self::memory(m)
                .get(&(user.into(), tenant.into(), upstream.into()))
                .cloned()),
            Store::Postgres(db) => {
                let c = db.client().await?;
                let row = c
                    .query_opt(
                        "SELECT user_id, tenant, upstream, sealed, refreshable, expires_at, \
                         created_at, updated_at FROM upstream_logins \
                         WHERE user_id = $1 AND tenant = $2 AND upstream = $3",
                        &[&user, &tenant, &upstream],
                    )
                    .await?;
                Ok(row.as_ref().map(row_of))
            }
        }
    }

    /// Writes a login (a new one, or a refreshed one keeping its `created_at`).
    pub async fn put(&self, r: Row) -> Result<(), StorageError> {
        match self {
            Store::Memory(m) => {
                let key = (r.user.clone(), r.tenant.clone(), r.upstream.clone());
                let mut map = Self::memory(m);
                let created = map.get(&key).map_or(r.created_at, |old| old.created_at);
                map.insert(
                    key,
                    Row {
                        created_at: created,
                        ..r
                    },
                );
                Ok(())
            }
            Store::Postgres(db) => {
                let c = db.client().await?;
                c.execute(
                    "INSERT INTO upstream_logins (user_id, tenant, upstream, sealed, refreshable, \
                     expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (user_id, tenant, upstream) DO UPDATE SET sealed = $4, \
                     refreshable = $5, expires_at = $6, updated_at = $8",
                    &[
                        &r.user,
                        &r.tenant,
                        &r.upstream,
                        &r.sealed,
                        &r.refreshable,
                        &r.expires_at,
                        &r.created_at,
                        &r.updated_at,
                    ],
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Deletes the logins the filter covers; returns how many went.
    pub async fn delete(&self, f: &Filter<'_>) -> Result<u64, StorageError> {
        match self {
            Store::Memory(m) => {
                let mut map = Self::memory(m);
                let before = map.len();
                map.retain(|_, r| !f.matches(r));
                Ok((before - map.len()) as u64)
            }
            Store::Postgres(db) => {
                let c = db.client().await?;
                Ok(c.execute(
                    "DELETE FROM upstream_logins WHERE ($1::text IS NULL OR user_id = $1) \
                     AND ($2::text IS NULL OR tenant = $2) AND ($3::text IS NULL OR upstream = $3)",
                    &[&f.user, &f.tenant, &f.upstream],
                )
                .await?)
            }
        }
    }

    /// The logins the filter covers, newest first.
    pub async fn list(&self, f: &Filter<'_>) -> Result<Vec<Row>, StorageError> {
        let mut rows = match self {
            Store::Memory(m) => Self::memory(m)
                .values()
                .filter(|r| f.matches(r))
                .cloned()
                .collect(),
            Store::Postgres(db) => {
                let c = db.client().await?;
                c.query(
                    "SELECT user_id, tenant, upstream, sealed, refreshable, expires_at, \
                     created_at, updated_at FROM upstream_logins \
                     WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR tenant = $2) \
                     AND ($3::text IS NULL OR upstream = $3)",
                    &[&f.user, &f.tenant, &f.upstream],
                )
                .await?
                .iter()
                .map(row_of)
                .collect::<Vec<_>>()
            }
        };
        rows.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(a.upstream.cmp(&b.upstream))
        });
        Ok(rows)
    }
}

fn row_of(r: &tokio_postgres::Row) -> Row {
    Row {
        user: r.get(0),
        tenant: r.get(1),
        upstream: r.get(2),
        sealed: r.get(3),
        refreshable: r.get(4),
        expires_at: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}
