//! Where jobs live: PostgreSQL when the gateway has a database (every instance sees every job;
//! results sealed with the audit key), else memory (capped; lost on restart).
//!
//! Every statement is scoped to the job's owner where a caller is involved, so a job id alone
//! never reveals or touches another user's job.

mod postgres;

use super::{Job, Owner, Status};
use crate::error::StorageError;
pub use postgres::Postgres;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long an expired job still answers `expired` before its row goes.
pub(super) const EXPIRED_KEPT: Duration = Duration::from_secs(86_400);
/// The most rows one sweep statement touches.
pub(super) const SWEEP_BATCH: i64 = 1000;

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
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The owner has `max` jobs queued or running already.
    #[error("too many jobs queued or running")]
    TooMany,
    /// Memory only: every slot holds a job not finished yet.
    #[error("the in-memory job store is full")]
    Full,
    #[error(transparent)]
    Unavailable(#[from] StorageError),
    /// A result that the audit key could not seal (it is not stored in the clear).
    #[error("the result cannot be sealed")]
    Unsealable,
}

impl Store {
    pub fn memory(capacity: usize) -> Self {
        Store::Memory(Memory {
            jobs: Mutex::new(HashMap::new()),
            capacity,
        })
    }

    pub fn postgres(
        url: &str,
        key: (String, [u8; 32]),
        migrate: bool,
    ) -> Result<Self, StorageError> {
        Ok(Store::Postgres(Box::new(Postgres::new(url, key, migrate)?)))
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

    /// The owner's jobs (every owner's, for the operator console), newest first, without their
    /// results.
    pub async fn list(
        &self,
        owner: Option<&Owner>,
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
                        owner.is_none_or(|o| &j.owner == o)
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
