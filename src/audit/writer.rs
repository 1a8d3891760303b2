//! Where the writer task puts rows: a JSON-lines file, or PostgreSQL with the spool as its safety
//! net. A live batch goes in with one binary `COPY`: new rows cannot be in the table yet, and COPY
//! costs PostgreSQL, which shares the machine with the gateway, less per row than any INSERT
//! (bench/README.md). A spool replay uses one `INSERT … SELECT FROM UNNEST(arrays)` per chunk with
//! `ON CONFLICT (request_id) DO NOTHING` instead, because a spooled batch may have been stored
//! already (a COPY that committed after its timeout), and must never be written twice.

use super::record::AuditRecord;
use super::spool::{append_jsonl, Spool};
use super::{migrate, AuditConfig, SinkConfig};
use crate::metrics;
use deadpool_postgres::Pool;
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

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
                _ if rows.is_empty() => Ok(()),
                Statement::Copy => copy(&client, rows).await,
                Statement::Insert => insert(&client, rows).await,
            }
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
    async fn client(&mut self) -> Result<deadpool_postgres::Client, String> {
        let mut client = self.pool.get().await.map_err(|e| e.to_string())?;
        if self.migrate && !self.migrated {
            let done = migrate::migrate(&mut client)
                .await
                .map_err(|e| e.to_string())?;
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

/// Live rows, with one binary COPY.
async fn copy(client: &deadpool_postgres::Client, rows: &[AuditRecord]) -> Result<(), String> {
    let sink = client.copy_in(COPY).await.map_err(|e| e.to_string())?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, COPY_TYPES));
    for r in rows {
        let time = UNIX_EPOCH + Duration::from_micros(r.time_us.max(0) as u64);
        let client_addr = r.client_addr.map(|a| a.to_string());
        writer
            .as_mut()
            .write(&[
                &time,
                &r.request_id,
                &r.instance,
                &r.user_id,
                &r.tenant,
                &r.roles,
                &r.scope,
                &r.method,
                &r.tool,
                &r.jsonrpc_id,
                &r.outcome.as_str(),
                &r.reason,
                &r.rpc_error_code,
                &r.http_status,
                &r.upstream,
                &r.latency_ms,
                &r.upstream_latency_ms,
                &r.request_bytes,
                &r.response_bytes,
                &client_addr,
                &r.session_hash,
                &r.arguments_mode,
                &r.arguments,
                &r.client_cert,
                &r.job_id,
            ])
            .await
            .map_err(|e| e.to_string())?;
    }
    writer.finish().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Replayed rows, skipping those stored already.
async fn insert(client: &deadpool_postgres::Client, rows: &[AuditRecord]) -> Result<(), String> {
    let stmt = client
        .prepare_cached(INSERT)
        .await
        .map_err(|e| e.to_string())?;
    let c = Columns::from(rows);
    client
        .execute(
            &stmt,
            &[
                &c.time,
                &c.request_id,
                &c.instance,
                &c.user_id,
                &c.tenant,
                &c.roles,
                &c.scope,
                &c.method,
                &c.tool,
                &c.jsonrpc_id,
                &c.outcome,
                &c.reason,
                &c.rpc_error_code,
                &c.http_status,
                &c.upstream,
                &c.latency_ms,
                &c.upstream_latency_ms,
                &c.request_bytes,
                &c.response_bytes,
                &c.client_addr,
                &c.session_hash,
                &c.arguments_mode,
                &c.arguments,
                &c.client_cert,
                &c.job_id,
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The columns both statements fill, in the order their values are given.
macro_rules! columns {
    () => {
        "time, request_id, instance, user_id, tenant, roles, scope, method, tool, jsonrpc_id, outcome,
        reason, rpc_error_code, http_status, upstream, latency_ms, upstream_latency_ms, request_bytes,
        response_bytes, client_addr, session_hash, arguments_mode, arguments, client_cert, job_id"
    };
}

const COPY: &str = concat!(
    "COPY audit_log (",
    columns!(),
    ") FROM STDIN (FORMAT binary)"
);

/// The column types of [`COPY`], in its order.
const COPY_TYPES: &[Type] = &[
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::TEXT,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

const INSERT: &str = concat!(
    "INSERT INTO audit_log (",
    columns!(),
    ")
SELECT 'epoch'::timestamptz + u.t * interval '1 microsecond', u.rid, u.inst, u.uid, u.ten,
    string_to_array(u.roles, E'\\x1f'), u.scope, u.method, u.tool, u.jid, u.outcome, u.reason, u.code, u.status,
    u.upstream, u.lat, u.ulat, u.reqb, u.respb, u.caddr, u.shash, u.amode, u.args, u.ccert, u.job
FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::text[], $12::text[], $13::int4[], $14::int4[], $15::text[], $16::float8[],
    $17::float8[], $18::int8[], $19::int8[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[])
    AS u(t, rid, inst, uid, ten, roles, scope, method, tool, jid, outcome, reason, code, status, upstream, lat,
         ulat, reqb, respb, caddr, shash, amode, args, ccert, job)
ON CONFLICT (request_id) DO NOTHING"
);

/// A batch as one array per column, borrowing from the rows (no copy of any string).
struct Columns<'a> {
    time: Vec<i64>,
    request_id: Vec<&'a str>,
    instance: Vec<&'a str>,
    user_id: Vec<Option<&'a str>>,
    tenant: Vec<Option<&'a str>>,
    roles: Vec<String>,
    scope: Vec<Option<&'a str>>,
    method: Vec<Option<&'a str>>,
    tool: Vec<Option<&'a str>>,
    jsonrpc_id: Vec<Option<&'a str>>,
    outcome: Vec<&'static str>,
    reason: Vec<Option<&'a str>>,
    rpc_error_code: Vec<Option<i32>>,
    http_status: Vec<i32>,
    upstream: Vec<Option<&'a str>>,
    latency_ms: Vec<f64>,
    upstream_latency_ms: Vec<Option<f64>>,
    request_bytes: Vec<i64>,
    response_bytes: Vec<i64>,
    client_addr: Vec<Option<String>>,
    session_hash: Vec<Option<&'a str>>,
    arguments_mode: Vec<&'a str>,
    arguments: Vec<Option<&'a str>>,
    client_cert: Vec<Option<&'a str>>,
    job_id: Vec<Option<&'a str>>,
}

impl<'a> From<&'a [AuditRecord]> for Columns<'a> {
    fn from(rows: &'a [AuditRecord]) -> Self {
        macro_rules! copy {
            ($f:ident) => {
                rows.iter().map(|r| r.$f).collect()
            };
        }
        macro_rules! text {
            ($f:ident) => {
                rows.iter().map(|r| r.$f.as_str()).collect()
            };
        }
        macro_rules! opt_text {
            ($f:ident) => {
                rows.iter().map(|r| r.$f.as_deref()).collect()
            };
        }
        Columns {
            time: copy!(time_us),
            request_id: text!(request_id),
            instance: text!(instance),
            user_id: opt_text!(user_id),
            tenant: opt_text!(tenant),
            roles: rows.iter().map(|r| r.roles.join("\u{1f}")).collect(),
            scope: opt_text!(scope),
            method: opt_text!(method),
            tool: opt_text!(tool),
            jsonrpc_id: opt_text!(jsonrpc_id),
            outcome: rows.iter().map(|r| r.outcome.as_str()).collect(),
            reason: opt_text!(reason),
            rpc_error_code: copy!(rpc_error_code),
            http_status: copy!(http_status),
            upstream: opt_text!(upstream),
            latency_ms: copy!(latency_ms),
            upstream_latency_ms: copy!(upstream_latency_ms),
            request_bytes: copy!(request_bytes),
            response_bytes: copy!(response_bytes),
            client_addr: rows
                .iter()
                .map(|r| r.client_addr.map(|a| a.to_string()))
                .collect(),
            session_hash: opt_text!(session_hash),
            arguments_mode: text!(arguments_mode),
            arguments: opt_text!(arguments),
            client_cert: opt_text!(client_cert),
            job_id: opt_text!(job_id),
        }
    }
}
