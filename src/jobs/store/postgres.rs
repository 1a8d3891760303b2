//! Jobs in PostgreSQL (table `jobs`): every instance sees every job; arguments and results are
//! sealed with the audit key; every statement that involves a caller is scoped to the owner.

use super::{Filter, StoreError, EXPIRED_KEPT, SWEEP_BATCH};
use crate::error::StorageError;
use crate::jobs::{Job, Kind, Owner, Status};
use std::time::SystemTime;

pub struct Postgres {
    db: crate::audit::migrate::Database,
    sealer: crate::audit::ArgumentsMode,
    key: (String, [u8; 32]),
}

fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(StorageError::Query(e))
}

const COLUMNS: &str =
    "id, user_id, tenant, scope, tool, kind, status, status_message, created_at, \
    updated_at, expires_at, ttl_ms";

impl Postgres {
    pub(super) fn new(
        url: &str,
        key: (String, [u8; 32]),
        migrate: bool,
    ) -> Result<Self, StorageError> {
        Ok(Postgres {
            db: crate::audit::migrate::Database::new(url, 8, migrate)?,
            sealer: crate::audit::ArgumentsMode::encrypted(&key.0, &key.1),
            key,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        Ok(self.db.client().await?)
    }

    pub(super) async fn insert(
        &self,
        job: &Job,
        max: u32,
        lease: (&str, SystemTime),
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        // One statement: the count and the insert cannot be split by another submission.
        let n = client
            .execute(
                "INSERT INTO jobs (id, user_id, tenant, scope, tool, kind, status, created_at,
                    updated_at, expires_at, ttl_ms, lease_owner, lease_until)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12
                 WHERE $13::bigint = 0 OR (SELECT count(*) FROM jobs WHERE user_id = $2 AND tenant = $3
                     AND status IN ('queued', 'working')) < $13::bigint",
                &[
                    &job.id,
                    &job.owner.user,
                    &job.owner.tenant,
                    &job.scope,
                    &job.tool,
                    &job.kind.as_str(),
                    &job.status.as_str(),
                    &job.created,
                    &job.expires,
                    &(job.ttl_ms as i64),
                    &lease.0,
                    &lease.1,
                    &i64::from(max),
                ],
            )
            .await
            .map_err(unavailable)?;
        if n == 0 {
            return Err(StoreError::TooMany);
        }
        Ok(())
    }

    fn row(&self, r: &tokio_postgres::Row, with_outcome: bool) -> Job {
        let outcome = with_outcome
            .then(|| r.get::<_, Option<String>>("outcome"))
            .flatten()
            .and_then(|sealed| {
                crate::seal::open(&sealed, std::slice::from_ref(&self.key))
                    .map_err(
                        |e| tracing::error!(error = %e, "a stored job result cannot be opened"),
                    )
                    .ok()
            });
        Job {
            id: r.get("id"),
            owner: Owner {
                user: r.get("user_id"),
                tenant: r.get("tenant"),
            },
            scope: r.get("scope"),
            tool: r.get("tool"),
            kind: Kind::parse(r.get("kind")),
            status: Status::parse(r.get("status")).unwrap_or(Status::Failed),
            message: r.get("status_message"),
            created: r.get("created_at"),
            updated: r.get("updated_at"),
            expires: r.get("expires_at"),
            ttl_ms: r.get::<_, i64>("ttl_ms").max(0) as u64,
            outcome,
        }
    }

    pub(super) async fn get(&self, id: &str, owner: &Owner) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS}, outcome FROM jobs WHERE id = $1 AND user_id = $2 AND tenant = $3"
                ),
                &[&id, &owner.user, &owner.tenant],
            )
            .await
            .map_err(unavailable)?;
        Ok(row.map(|r| self.row(&r, true)))
    }

    pub(super) async fn list(
        &self,
        owner: Option<&Owner>,
        filter: Filter<'_>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE ($1::text IS NULL OR (user_id = $1 AND tenant = $2))
                     AND ($3::text IS NULL OR status = $3) AND ($6::text IS NULL OR scope = $6)
                     ORDER BY created_at DESC, id DESC OFFSET $4 LIMIT $5"
                ),
                &[
                    &owner.map(|o| o.user.as_str()),
                    &owner.map_or("", |o| o.tenant.as_str()),
                    &filter.status.map(Status::as_str),
                    &(offset as i64),
                    &(limit as i64),
                    &filter.scope,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows.iter().map(|r| self.row(r, false)).collect())
    }

    pub(super) async fn transition(
        &self,
        id: &str,
        from: &[Status],
        to: Status,
        message: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<bool, StoreError> {
        let sealed = match outcome {
            Some(o) => Some(self.sealer.seal(o).ok_or(StoreError::Unsealable)?),
            None => None,
        };
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE jobs SET status = $2, updated_at = now(),
                    status_message = COALESCE($3, status_message), outcome = COALESCE($4, outcome)
                 WHERE id = $1 AND status = ANY($5)",
                &[&id, &to.as_str(), &message, &sealed, &from],
            )
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    pub(super) async fn renew(
        &self,
        instance: &str,
        until: SystemTime,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE jobs SET lease_until = $2
                 WHERE lease_owner = $1 AND id = ANY($3) AND status IN ('queued', 'working')
                 RETURNING id",
                &[&instance, &until, &ids],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn sweep(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let lost = client
            .execute(
                "UPDATE jobs SET status = 'failed', updated_at = now(), status_message = $1
                 WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'working')
                     AND lease_until < now() LIMIT $2)",
                &[&crate::jobs::LOST, &SWEEP_BATCH],
            )
            .await
            .map_err(unavailable)?;
        if lost > 0 {
            tracing::warn!(
                jobs = lost,
                "jobs failed: the instance running them stopped"
            );
        }
        let expired = client
            .execute(
                "UPDATE jobs SET status = 'expired', updated_at = now(), outcome = NULL
                 WHERE id IN (SELECT id FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')
                     AND expires_at < now() LIMIT $1)",
                &[&SWEEP_BATCH],
            )
            .await
            .map_err(unavailable)?;
        let gone = client
            .execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = 'expired'
                     AND expires_at < $1 LIMIT $2)",
                &[&(SystemTime::now() - EXPIRED_KEPT), &SWEEP_BATCH],
            )
            .await
            .map_err(unavailable)?;
        Ok((expired, gone))
    }

    pub(super) async fn counts(&self) -> Result<Vec<(Status, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT status, count(*) FROM jobs GROUP BY status", &[])
            .await
            .map_err(unavailable)?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((Status::parse(r.get(0))?, r.get(1))))
            .collect())
    }
}
