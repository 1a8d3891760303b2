//! Where the writer task puts rows: a JSON-lines file, or PostgreSQL with the spool as its safety
//! net. A live batch goes in with one binary `COPY`: new rows cannot be in the table yet, and COPY
//! costs PostgreSQL, which shares the machine with the gateway, less per row than any INSERT
//! (bench/README.md). A spool replay uses one `INSERT … SELECT FROM UNNEST(arrays)` per chunk with
//! `ON CONFLICT (request_id) DO NOTHING` instead, because a spooled batch may have been stored
//! already (a COPY that committed after its timeout), and must never be written twice.

use super::columns::{copy, insert};
use super::record::AuditRecord;
use super::spool::{append_jsonl, Spool};
use super::{migrate, AuditConfig, SinkConfig};
use crate::error::StorageError;
use crate::metrics;
use deadpool_postgres::Pool;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const RETENTION_BATCH: i64 = 5000;

pub enum Sink {
    Off,
    File(PathBuf),
    Postgres(Box<PgSink>),
}

pub struct PgSink {
    pool: Pool,
    spool: Spool,
    migrate: bool,
    migrated: bool,
    retention_days: Option<i32>,
    last_retention: Option<Instant>,
}

impl Sink {
    pub async fn open(config: &AuditConfig) -> Sink {
        match &config.sink {
            SinkConfig::Off => Sink::Off,
            SinkConfig::File(path) => Sink::File(path.clone()),
            SinkConfig::Postgres { url, spool } => {
                let pool = match migrate::pool(url, 2, Duration::from_secs(2)) {
                    Ok(p) => p,
                    Err(e) => {
                        // The URL was checked at load time; should it still fail, rows go to the spool.
                        tracing::error!(error = %e, "audit database pool cannot be built; spooling");
                        return Sink::File(spool.clone());
                    }
                };
                let retention_days = config
                    .retention
                    .map(|d| (d.as_secs() / 86_400).max(1) as i32);
                Sink::Postgres(Box::new(PgSink {
                    pool,
                    spool: Spool::new(spool.clone()),
                    migrate: config.migrate_on_start,
                    migrated: false,
                    retention_days,
                    last_retention: None,
                }))
            }
        }
    }

    /// Stores a batch.
    pub async fn write(&mut self, batch: &[AuditRecord]) {
        match self {
            Sink::Off => {}
            Sink::File(path) => match append_jsonl(path, batch) {
                Ok(()) => metrics::AUDIT_ROWS
                    .with_label_values(&["written"])
                    .inc_by(batch.len() as u64),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, rows = batch.len(), "audit rows could not be written")
                }
            },
            Sink::Postgres(pg) => pg.write(batch).await,
        }
    }

    /// Periodic work: replay the spool when the database is back, apply retention.
    pub async fn tick(&mut self) {
        if let Sink::Postgres(pg) = self {
            if pg.spool.has_rows() {
                pg.replay().await;
            }
            pg.retention().await;
        }
    }

    /// The last write at shutdown.
    pub async fn finish(&mut self, rows: &[AuditRecord]) {
        if let Sink::Postgres(pg) = self {
            if pg.spool.has_rows() {
                pg.replay().await;
            }
        }
        self.write(rows).await;
    }
}

impl PgSink {
    async fn write(&mut self, batch: &[AuditRecord]) {
        if self.spool.has_rows() {
            self.replay().await;
        }
        // Rows already waiting keep their place: a new batch goes behind them.
        if self.spool.has_rows() || self.store(batch, Statement::Copy).await.is_err() {
            self.spool_rows(batch);
        } else {
            metrics::AUDIT_ROWS
                .with_label_values(&["written"])
                .inc_by(batch.len() as u64);
        }
    }

    fn spool_rows(&self, batch: &[AuditRecord]) {
        match self.spool.append(batch) {
            Ok(()) => metrics::AUDIT_ROWS
                .with_label_values(&["spooled"])
                .inc_by(batch.len() as u64),
            Err(e) => {
                metrics::AUDIT_ROWS
                    .with_label_values(&["dropped"])
                    .inc_by(batch.len() as u64);
                tracing::error!(file = %self.spool.path.display(), error = %e, rows = batch.len(), "audit spool write failed: rows lost");
            }
        }
    }

    /// Stores the spool in order; empties it only once every row is stored.
    async fn replay(&mut self) {
        let rows = match self.spool.read_all() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(file = %self.spool.path.display(), error = %e, "cannot read the audit spool");
                return;
            }
        };
        for chunk in rows.chunks(1000) {
            if self.store(chunk, Statement::Insert).await.is_err() {
                return;
            }
        }
        if let Err(e) = self.spool.clear() {
            tracing::error!(file = %self.spool.path.display(), error = %e, "cannot empty the audit spool");
            return;
        }
        if !rows.is_empty() {
            metrics::AUDIT_ROWS
                .with_label_values(&["replayed"])
                .inc_by(rows.len() as u64);
            tracing::info!(rows = rows.len(), "audit spool replayed into PostgreSQL");
        }
    }

    async fn store(&mut self, rows: &[AuditRecord], how: Statement) -> Result<(), ()> {
        let attempt = async {
            let client = self.client().await?;
            match how {
                _ if rows.is_empty() => {}
                Statement::Copy => copy(&client, rows).await?,
                Statement::Insert => insert(&client, rows).await?,
            }
            Ok::<(), StorageError>(())
        };
        match tokio::time::timeout(WRITE_TIMEOUT, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, rows = rows.len(), "audit insert failed; spooling");
                Err(())
            }
            Err(_) => {
                tracing::warn!(rows = rows.len(), "audit insert too slow; spooling");
                Err(())
            }
        }
    }

    /// A pooled connection, on a migrated schema.
    async fn client(&mut self) -> Result<deadpool_postgres::Client, StorageError> {
        let mut client = self.pool.get().await?;
        if self.migrate && !self.migrated {
            let done = migrate::migrate(&mut client).await?;
            if !done.is_empty() {
                tracing::info!(applied = ?done, "database migrations applied");
            }
            self.migrated = true;
        }
        Ok(client)
    }

    /// Deletes rows past the retention in bounded batches, at most once an hour.
    async fn retention(&mut self) {
        let Some(days) = self.retention_days else {
            return;
        };
        if self
            .last_retention
            .is_some_and(|t| t.elapsed() < RETENTION_EVERY)
        {
            return;
        }
        self.last_retention = Some(Instant::now());
        let Ok(client) = self.pool.get().await else {
            return;
        };
        let mut total = 0u64;
        loop {
            let deleted = client
                .execute(
                    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE time < now() - make_interval(days => $1) LIMIT $2)",
                    &[&days, &RETENTION_BATCH],
                )
                .await;
            match deleted {
                Ok(n) => {
                    total += n;
                    if (n as i64) < RETENTION_BATCH {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit retention failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(deleted = total, days, "audit retention applied");
        }
    }
}

/// How a batch goes in: see the module's doc.
#[derive(Clone, Copy)]
enum Statement {
    Copy,
    Insert,
}
