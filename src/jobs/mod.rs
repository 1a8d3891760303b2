//! Jobs: tool calls the gateway runs in the background, reached two ways: MCP tasks (`tools/call`
//! with `params.task`, then `tasks/*`, see [`tasks`]) and the REST API (`POST /mcp/invoke`,
//! `/mcp/jobs`, see [`rest`]). Both go through the same door as a direct call (authentication,
//! grant, rate limits) before a job exists; then a bounded pool of workers runs the call against
//! the scope's upstreams ([`call`]) and the store ([`store`]) keeps the job for its owner only.
//!
//! Durability: with a database every instance reads every job; the instance running a job renews
//! a lease on it, and when that instance dies any instance marks the job `failed` once the lease
//! is over. A job is never started twice: only the instance that accepted it runs it.

pub mod call;
mod queue;
pub mod store;

use crate::config::JobsSettings;
use crate::metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use store::{Store, StoreError};
use tokio::sync::{watch, Semaphore};

/// Why a job failed when the instance running it stopped renewing its lease.
pub const LOST: &str = "the gateway instance running this job stopped before it finished; the \
    call may or may not have reached the tool: submit it again if needed";

/// Where a job is in its life. `queued`/`working` are live; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Working,
    Completed,
    Failed,
    Cancelled,
    Expired,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Working,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Working => "working",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Working)
    }
}

/// How the job was submitted (the answers differ: MCP task shapes or REST JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rest,
    Task,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rest => "rest",
            Kind::Task => "task",
        }
    }
    fn parse(s: &str) -> Kind {
        if s == "task" {
            Kind::Task
        } else {
            Kind::Rest
        }
    }
}

/// Who a job belongs to: the token's user and tenant. Nobody else can see or touch it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub user: String,
    /// Empty without a tenant claim.
    pub tenant: String,
}

impl Owner {
    pub fn of(identity: &crate::auth::Identity) -> Self {
        Owner {
            user: identity.user.clone(),
            tenant: identity.tenant.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub owner: Owner,
    pub scope: String,
    pub tool: String,
    pub kind: Kind,
    pub status: Status,
    pub message: Option<String>,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub expires: SystemTime,
    pub ttl_ms: u64,
    /// Once finished: the call's JSON-RPC `{"result": …}` or `{"error": …}` as JSON text.
    pub outcome: Option<String>,
}

/// A call waiting for a worker.
pub struct Work {
    pub job: Job,
    pub call: call::Call,
}

/// The jobs of this instance: the store, the queue to the workers, and the cancel switches of
/// the calls it runs. Built once at start and kept across reloads.
pub struct Jobs {
    pub settings: JobsSettings,
    pub store: Option<Store>,
    /// Why jobs are off, for the client's error (`store` is `None`).
    pub off: Option<&'static str>,
    instance: String,
    queue: queue::FairQueue,
    /// The workers run once (the first `run` call).
    started: std::sync::atomic::AtomicBool,
    /// Per running (or queued) job of this instance: set to `true` to cancel it.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    audit: Arc<crate::audit::Audit>,
}

/// Why a job cannot be submitted.
#[derive(Debug)]
pub enum SubmitError {
    Off(&'static str),
    TooMany,
    Unavailable,
}

impl From<SubmitError> for crate::error::GatewayError {
    fn from(e: SubmitError) -> Self {
        use crate::error::GatewayError;
        match e {
            SubmitError::Off(why) => GatewayError::JobsUnavailable(why),
            SubmitError::TooMany => GatewayError::TooManyJobs,
            SubmitError::Unavailable => {
                GatewayError::JobsUnavailable("the job store cannot be reached")
            }
        }
    }
}

impl From<StoreError> for crate::error::GatewayError {
    fn from(e: StoreError) -> Self {
        use crate::error::GatewayError;
        match e {
            StoreError::TooMany => GatewayError::TooManyJobs,
            StoreError::Full => GatewayError::JobsUnavailable("the in-memory job store is full"),
            StoreError::Unavailable(_) | StoreError::Unsealable => {
                tracing::error!(error = %e, "job store error");
                GatewayError::JobsUnavailable("the job store cannot be reached")
            }
        }
    }
}

impl Jobs {
    pub fn new(
        settings: JobsSettings,
        audit_config: &crate::audit::AuditConfig,
        audit: Arc<crate::audit::Audit>,
    ) -> Arc<Self> {
        let (store, off) = if !settings.enabled {
            (
                None,
                Some("jobs are disabled on this gateway (jobs.enabled: false)"),
            )
        } else {
            match (&audit_config.sink, &settings.key) {
                (crate::audit::SinkConfig::Postgres { url, .. }, Some(key)) => {
                    match Store::postgres(url, key.clone(), audit_config.migrate_on_start) {
                        Ok(s) => (Some(s), None),
                        Err(e) => {
                            tracing::error!(error = %e, "job store cannot be built");
                            (None, Some("the job store cannot be reached"))
                        }
                    }
                }
                (crate::audit::SinkConfig::Postgres { .. }, None) => {
                    tracing::warn!("jobs are off: results stored in the database are sealed with MCP_GATEWAY_AUDIT_KEY, which is not set");
                    (
                        None,
                        Some("jobs need MCP_GATEWAY_AUDIT_KEY on this gateway"),
                    )
                }
                _ => (Some(Store::memory(settings.memory_capacity)), None),
            }
        };
        let queue =
            queue::FairQueue::new(settings.memory_capacity.max(1), settings.workers_per_user);
        Arc::new(Jobs {
            settings,
            store,
            off,
            instance: format!(
                "{}-{}",
                audit_config.instance,
                uuid::Uuid::new_v4().simple()
            ),
            queue,
            started: Default::default(),
            running: Mutex::default(),
            audit,
        })
    }

    pub fn store(&self) -> Result<&Store, crate::error::GatewayError> {
        self.store
            .as_ref()
            .ok_or(crate::error::GatewayError::JobsUnavailable(
                self.off.unwrap_or("jobs are off"),
            ))
    }

    /// The retention a client asked for (ms), within `max_ttl`; the default when it asked none.
    pub fn ttl(&self, asked_ms: Option<u64>) -> Duration {
        asked_ms
            .map(Duration::from_millis)
            .unwrap_or(self.settings.default_ttl)
            .min(self.settings.max_ttl)
            .max(Duration::from_secs(1))
    }

    /// Stores a new job for `call` and hands it to the workers. The caller passed the door
    /// already (grant, rate limits); this enforces `max_jobs_per_user`.
    pub async fn submit(
        &self,
        owner: Owner,
        kind: Kind,
        ttl: Duration,
        max_per_user: u32,
        call: call::Call,
    ) -> Result<Job, crate::error::GatewayError> {
        let store = self.store()?;
        let now = SystemTime::now();
        let job = Job {
            id: uuid::Uuid::new_v4().simple().to_string(),
            owner,
            scope: call.scope.scope.name.clone(),
            tool: call.tool.clone(),
            kind,
            status: Status::Queued,
            message: None,
            created: now,
            updated: now,
            expires: now + ttl,
            ttl_ms: ttl.as_millis() as u64,
            outcome: None,
        };
        store
            .insert(
                &job,
                max_per_user,
                (&self.instance, now + self.settings.lease),
            )
            .await?;
        let (tx, _) = watch::channel(false);
        self.lock_running().insert(job.id.clone(), tx);
        if self
            .queue
            .push(Work {
                job: job.clone(),
                call,
            })
            .is_err()
        {
            self.lock_running().remove(&job.id);
            let _ = store
                .finish(
                    &job.id,
                    Status::Failed,
                    Some("this gateway instance has too many jobs waiting"),
                    None,
                )
                .await;
            return Err(SubmitError::TooMany.into());
        }
        Ok(job)
    }

    /// Cancels the owner's job; a job this instance runs stops at once, one another instance runs
    /// stops at that instance's next lease renewal.
    pub async fn cancel(
        &self,
        id: &str,
        owner: &Owner,
    ) -> Result<Option<Job>, crate::error::GatewayError> {
        let job = self.store()?.cancel(id, owner).await?;
        if job.as_ref().is_some_and(|j| j.status == Status::Cancelled) {
            if let Some(tx) = self.lock_running().get(id) {
                let _ = tx.send(true);
            }
        }
        Ok(job)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The workers, the lease renewal and the sweep; runs until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        if self.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let workers = Arc::new(Semaphore::new(self.settings.workers));
        let mut tick = tokio::time::interval(self.settings.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = async {
                    let permit = workers.clone().acquire_owned().await.ok()?;
                    Some((permit, self.queue.next().await))
                } => {
                    let Some((permit, (work, share))) = next else { return };
                    let jobs = self.clone();
                    tokio::spawn(async move {
                        jobs.work(work).await;
                        drop(share);
                        drop(permit);
                    });
                }
                _ = tick.tick() => self.upkeep(store).await,
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Renews this instance's leases (and notices jobs cancelled elsewhere), sweeps the store,
    /// and refreshes the `mcp_jobs` gauge.
    async fn upkeep(&self, store: &Store) {
        let mine: Vec<String> = self.lock_running().keys().cloned().collect();
        if !mine.is_empty() {
            let until = SystemTime::now() + self.settings.lease;
            if let Ok(live) = store.renew(&self.instance, until, &mine).await {
                for id in mine.iter().filter(|id| !live.contains(id)) {
                    if let Some(tx) = self.lock_running().get(id) {
                        let _ = tx.send(true);
                    }
                }
            }
        }
        if let Err(e) = store.sweep().await {
            tracing::warn!(error = ?e, "job sweep failed");
        }
        if let Ok(counts) = store.counts().await {
            for s in Status::ALL {
                let n = counts.iter().find(|(x, _)| *x == s).map_or(0, |(_, n)| *n);
                metrics::JOBS.with_label_values(&[s.as_str()]).set(n);
            }
        }
    }

    /// Runs one job: marks it working, calls the tool, stores how it ended, audits the end.
    async fn work(&self, work: Work) {
        let Work { job, call } = work;
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let cancel = self.lock_running().get(&job.id).map(|tx| tx.subscribe());
        let Some(mut cancel) = cancel else {
            return;
        };
        match store.start(&job.id).await {
            Ok(true) => {}
            _ => {
                self.lock_running().remove(&job.id);
                return;
            }
        }
        let started = std::time::Instant::now();
        let timeout = call.timeout(self.settings.max_run);
        let cancelled = async move {
            let _ = cancel.wait_for(|c| *c).await;
        };
        let ended = call.run(&job.id, timeout, cancelled).await;
        let elapsed = started.elapsed();
        metrics::JOB_SECONDS
            .with_label_values(&[&job.scope, &job.tool])
            .observe(elapsed.as_secs_f64());
        let (status, message, outcome) = match &ended.result {
            Ok(text) if text.len() > self.settings.max_result_bytes => (
                Status::Failed,
                Some(format!(
                    "the result is larger than this gateway stores ({} bytes)",
                    self.settings.max_result_bytes
                )),
                None,
            ),
            Ok(text) if ended.rpc_code.is_some() => (
                Status::Failed,
                Some("the tool answered with a JSON-RPC error".to_string()),
                Some(text.as_str()),
            ),
            Ok(text) => (Status::Completed, None, Some(text.as_str())),
            Err(call::Failure::Cancelled) => (Status::Cancelled, None, None),
            Err(call::Failure::Gateway(e)) => (Status::Failed, Some(e.to_string()), None),
        };
        if status != Status::Cancelled {
            if let Err(e) = store
                .finish(&job.id, status, message.as_deref(), outcome)
                .await
            {
                tracing::error!(job = %job.id, error = ?e, "job result could not be stored");
                let _ = store
                    .finish(
                        &job.id,
                        Status::Failed,
                        Some("the result could not be stored"),
                        None,
                    )
                    .await;
            }
        }
        self.lock_running().remove(&job.id);
        call.audit_end(&self.audit, &job, &ended, elapsed, status);
    }
}

/// RFC 3339 time with milliseconds, as MCP and the REST API show times.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The background service that runs the jobs of this instance.
pub struct JobsService(pub Arc<Jobs>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for JobsService {
    async fn start(&self, shutdown: pingora::server::ShutdownWatch) {
        self.0.clone().run(shutdown).await;
    }
}
