//! Where jobs live: PostgreSQL when the gateway has a database (every instance sees every job;
//! results sealed with the audit key), else memory (capped; lost on restart).
//!
//! Every statement is scoped to the job's owner where a caller is involved, so a job id alone
//! never reveals or touches another user's job.

use super::{Job, Kind, Owner, Status};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long an expired job still answers `expired` before its row goes.
const EXPIRED_KEPT: Duration = Duration::from_secs(86_400);
/// The most rows one sweep statement touches.
const SWEEP_BATCH: i64 = 1000;

/// Which of the owner's jobs a list shows.
#[derive(Clone, Copy, Default)]
pub struct Filter<'a> {
    pub status: Option<Status>,
    pub scope: Option<&'a str>,
}

pub enum Store {
    Memory(Memory),
    Postgres(Box<Postgres>),
}

/// Why the store could not do what was asked.
#[derive(Debug)]
pub enum StoreError {
    /// The owner has `max` jobs queued or running already.
    TooMany,
    /// Memory only: every slot holds a job not finished yet.
    Full,
    Unavailable(String),
}

impl Store {
    pub fn memory(capacity: usize) -> Self {
        Store::Memory(Memory {
            jobs: Mutex::new(HashMap::new()),
            capacity,
        })
    }

    pub fn postgres(url: &str, key: (String, [u8; 32]), migrate: bool) -> Result<Self, String> {
        Ok(Store::Postgres(Box::new(Postgres {
            db: crate::audit::migrate::Database::new(url, 8, migrate)?,
            sealer: crate::audit::ArgumentsMode::encrypted(&key.0, &key.1),
            key,
        })))
    }

    /// Stores a new job unless its owner has `max` (non-zero) queued or running already.
    pub async fn insert(
        &self,
        job: &Job,
        max: u32,
        lease: (&str, SystemTime),
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => m.insert(job, max),
            Store::Postgres(p) => p.insert(job, max, lease).await,
        }
    }

    /// The job, when it exists and belongs to `owner`.
    pub async fn get(&self, id: &str, owner: &Owner) -> Result<Option<Job>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lock().get(id).filter(|j| &j.owner == owner).cloned()),
            Store::Postgres(p) => p.get(id, owner).await,
        }
    }

    /// The owner's jobs, newest first, without their results.
    pub async fn list(
        &self,
        owner: &Owner,
        filter: Filter<'_>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        match self {
            Store::Memory(m) => {
                let jobs = m.lock();
                let mut mine: Vec<Job> = jobs
                    .values()
                    .filter(|j| {
                        &j.owner == owner
                            && filter.status.is_none_or(|s| j.status == s)
                            && filter.scope.is_none_or(|s| j.scope == s)
                    })
                    .map(|j| Job {
                        outcome: None,
                        ..j.clone()
                    })
                    .collect();
                mine.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
                Ok(mine.into_iter().skip(offset).take(limit).collect())
            }
            Store::Postgres(p) => p.list(owner, filter, offset, limit).await,
        }
    }

    /// Marks a queued job working (not one cancelled meanwhile). `false`: leave it alone.
    pub async fn start(&self, id: &str) -> Result<bool, StoreError> {
        self.transition(id, &[Status::Queued], Status::Working, None, None)
            .await
    }

    /// Records how a job ended, unless it was cancelled (or failed by a sweep) first.
    pub async fn finish(
        &self,
        id: &str,
        status: Status,
        message: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.transition(
            id,
            &[Status::Queued, Status::Working],
            status,
            message,
            outcome,
        )
        .await
    }

    /// Cancels the owner's job if it has not ended; returns the job as it is afterwards.
    pub async fn cancel(&self, id: &str, owner: &Owner) -> Result<Option<Job>, StoreError> {
        let Some(job) = self.get(id, owner).await? else {
            return Ok(None);
        };
        if !job.status.is_final() {
            self.transition(
                id,
                &[Status::Queued, Status::Working],
                Status::Cancelled,
                Some("cancelled by its owner"),
                None,
            )
            .await?;
        }
        self.get(id, owner).await
    }

    async fn transition(
        &self,
        id: &str,
        from: &[Status],
        to: Status,
        message: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => {
                let mut jobs = m.lock();
                let Some(j) = jobs.get_mut(id).filter(|j| from.contains(&j.status)) else {
                    return Ok(false);
                };
                j.status = to;
                j.updated = SystemTime::now();
                if let Some(msg) = message {
                    j.message = Some(msg.to_string());
                }
                if let Some(o) = outcome {
                    j.outcome = Some(o.to_string());
                }
                Ok(true)
            }
            Store::Postgres(p) => p.transition(id, from, to, message, outcome).await,
        }
    }

    /// Extends the lease of every unfinished job `instance` holds; returns the ids still live
    /// (a job missing from it was cancelled elsewhere, or failed by a sweep).
    pub async fn renew(
        &self,
        instance: &str,
        until: SystemTime,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => {
                let jobs = m.lock();
                Ok(ids
                    .iter()
                    .filter(|id| jobs.get(*id).is_some_and(|j| !j.status.is_final()))
                    .cloned()
                    .collect())
            }
            Store::Postgres(p) => p.renew(instance, until, ids).await,
        }
    }

    /// Fails jobs whose instance stopped renewing their lease, marks finished jobs past their TTL
    /// `expired` (their results deleted), and deletes long-expired rows; bounded per call.
    /// Returns the number of jobs each step touched.
    pub async fn sweep(&self) -> Result<(u64, u64), StoreError> {
        match self {
            Store::Memory(m) => Ok(m.sweep()),
            Store::Postgres(p) => p.sweep().await,
        }
    }

    /// How many jobs are in the store, by status.
    pub async fn counts(&self) -> Result<Vec<(Status, i64)>, StoreError> {
        match self {
            Store::Memory(m) => {
                let jobs = m.lock();
                let mut n: HashMap<Status, i64> = HashMap::new();
                for j in jobs.values() {
                    *n.entry(j.status).or_default() += 1;
                }
                Ok(n.into_iter().collect())
            }
            Store::Postgres(p) => p.counts().await,
        }
    }
}

pub struct Memory {
    jobs: Mutex<HashMap<String, Job>>,
    capacity: usize,
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, job: &Job, max: u32) -> Result<(), StoreError> {
        let mut jobs = self.lock();
        let active = jobs
            .values()
            .filter(|j| j.owner == job.owner && !j.status.is_final())
            .count();
        if max > 0 && active >= max as usize {
            return Err(StoreError::TooMany);
        }
        if jobs.len() >= self.capacity {
            // Room is made by dropping the oldest finished job; running ones are never dropped.
            let oldest = jobs
                .values()
                .filter(|j| j.status.is_final())
                .min_by_key(|j| j.updated)
                .map(|j| j.id.clone());
            match oldest {
                Some(id) => {
                    jobs.remove(&id);
                }
                None => return Err(StoreError::Full),
            }
        }
        jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }

    fn sweep(&self) -> (u64, u64) {
        let now = SystemTime::now();
        let mut jobs = self.lock();
        let mut expired = 0;
        for j in jobs.values_mut() {
            if j.status.is_final() && j.status != Status::Expired && j.expires <= now {
                j.status = Status::Expired;
                j.outcome = None;
                j.updated = now;
                expired += 1;
            }
        }
        let before = jobs.len();
        jobs.retain(|_, j| j.status != Status::Expired || j.expires + EXPIRED_KEPT > now);
        (expired, (before - jobs.len()) as u64)
    }
}

pub struct Postgres {
    db: crate::audit::migrate::Database,
    sealer: crate::audit::ArgumentsMode,
    key: (String, [u8; 32]),
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

const COLUMNS: &str =
    "id, user_id, tenant, scope, tool, kind, status, status_message, created_at, \
    updated_at, expires_at, ttl_ms";

impl Postgres {
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.db.client().await.map_err(StoreError::Unavailable)
    }

    async fn insert(
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

    async fn get(&self, id: &str, owner: &Owner) -> Result<Option<Job>, StoreError> {
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

    async fn list(
        &self,
        owner: &Owner,
        filter: Filter<'_>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE user_id = $1 AND tenant = $2
                     AND ($3::text IS NULL OR status = $3) AND ($6::text IS NULL OR scope = $6)
                     ORDER BY created_at DESC, id DESC OFFSET $4 LIMIT $5"
                ),
                &[
                    &owner.user,
                    &owner.tenant,
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

    async fn transition(
        &self,
        id: &str,
        from: &[Status],
        to: Status,
        message: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<bool, StoreError> {
        let sealed = match outcome {
            Some(o) => Some(
                self.sealer
                    .seal(o)
                    .ok_or_else(|| unavailable("the result cannot be sealed"))?,
            ),
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

    async fn renew(
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

    async fn sweep(&self) -> Result<(u64, u64), StoreError> {
        let client = self.client().await?;
        let lost = client
            .execute(
                "UPDATE jobs SET status = 'failed', updated_at = now(), status_message = $1
                 WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'working')
                     AND lease_until < now() LIMIT $2)",
                &[&super::LOST, &SWEEP_BATCH],
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

    async fn counts(&self) -> Result<Vec<(Status, i64)>, StoreError> {
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
