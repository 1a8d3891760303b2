//! Schema migrations: the numbered files of `migrations/`, compiled in, applied in order inside one
//! transaction under an advisory lock (so two instances starting together do not race), and
//! recorded in `schema_migrations` so running them again is a no-op. Also the connection pool the
//! stores beside the audit trail (jobs, the tool registry) share the setup of.

use crate::error::StorageError;
use deadpool_postgres::{Pool, PoolConfig, Runtime, Timeouts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// A pool of at most `max_size` connections to `url`; `timeout` bounds waiting for one,
/// connecting and recycling.
pub fn pool(url: &str, max_size: usize, timeout: Duration) -> Result<Pool, StorageError> {
    let mut pg = deadpool_postgres::Config::new();
    pg.url = Some(url.to_string());
    let t = Some(timeout);
    pg.pool = Some(PoolConfig {
        max_size,
        timeouts: Timeouts {
            wait: t,
            create: t,
            recycle: t,
        },
        ..Default::default()
    });
    Ok(pg.create_pool(Some(Runtime::Tokio1), NoTls)?)
}

/// The gateway's database as a store sees it: a pool whose first connection brings the schema up
/// to date (when `audit.migrate_on_start`), so a store works whichever part of the gateway
/// reaches the database first.
pub struct Database {
    pool: Pool,
    migrate: bool,
    migrated: AtomicBool,
}

impl Database {
    pub fn new(url: &str, max_size: usize, migrate: bool) -> Result<Self, StorageError> {
        Ok(Self {
            pool: pool(url, max_size, Duration::from_secs(3))?,
            migrate,
            migrated: AtomicBool::new(false),
        })
    }

    /// A pooled connection, on a migrated schema.
    pub async fn client(&self) -> Result<deadpool_postgres::Client, StorageError> {
        let mut client = self.pool.get().await?;
        if self.migrate && !self.migrated.load(Ordering::Acquire) {
            migrate(&mut client).await?;
            self.migrated.store(true, Ordering::Release);
        }
        Ok(client)
    }
}

/// Every migration, in order. A test checks this list against the `migrations/` folder.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_audit_log",
        include_str!("../../migrations/0001_audit_log.sql"),
    ),
    (
        "0002_client_cert",
        include_str!("../../migrations/0002_client_cert.sql"),
    ),
    ("0003_jobs", include_str!("../../migrations/0003_jobs.sql")),
    (
        "0004_tool_registry",
        include_str!("../../migrations/0004_tool_registry.sql"),
    ),
    (
        "0005_upstream_credential",
        include_str!("../../migrations/0005_upstream_credential.sql"),
    ),
    (
        "0006_upstream_logins",
        include_str!("../../migrations/0006_upstream_logins.sql"),
    ),
    (
        "0007_decisions",
        include_str!("../../migrations/0007_decisions.sql"),
    ),
    (
        "0008_trace_id",
        include_str!("../../migrations/0008_trace_id.sql"),
    ),
];

/// Applies the migrations not applied yet; returns their names.
pub async fn migrate(client: &mut Client) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(724300101);
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<String> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for (version, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        done.push(*version);
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_string())
            .collect();
        files.sort();
        let listed: Vec<String> = super::MIGRATIONS
            .iter()
            .map(|(v, _)| v.to_string())
            .collect();
        assert_eq!(files, listed);
    }
}
