//! `jobs:` in gateway.yaml.

use super::{default_true, duration};
use serde::Deserialize;
use std::time::Duration;

/// `jobs:` in gateway.yaml: tool calls the gateway runs in the background (MCP tasks, REST jobs).
/// Start-only: the store and the workers live as long as the process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    /// Off: `params.task` and the REST job API are refused; `POST /mcp/invoke` still runs calls
    /// synchronously.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Background calls this instance runs at once; more wait `queued`.
    #[serde(default = "default_job_workers")]
    pub workers: usize,
    /// Workers one user's jobs may hold at once (default: half of `workers`, at least 1): the
    /// rest stay free for other users, whose jobs are taken in turn.
    #[serde(default)]
    pub workers_per_user: Option<usize>,
    /// How long a job survives its instance's silence: the running instance renews the lease
    /// every third of it; past it, any instance marks the job `failed` (never runs it again).
    #[serde(default = "default_job_lease", with = "duration")]
    pub lease: Duration,
    /// How long a job and its result are kept from creation when the client asks for nothing else.
    #[serde(default = "default_job_ttl", with = "duration")]
    pub default_ttl: Duration,
    /// The longest retention a client may ask for (`params.task.ttl`, `ttl_ms`).
    #[serde(default = "default_job_max_ttl", with = "duration")]
    pub max_ttl: Duration,
    /// The polling interval suggested to clients.
    #[serde(default = "default_job_poll", with = "duration")]
    pub poll_interval: Duration,
    /// The longest a background call may run (the scope's `total_timeout` when shorter).
    #[serde(default = "default_job_max_run", with = "duration")]
    pub max_run: Duration,
    /// Jobs kept in memory without a database (oldest finished ones are dropped first).
    #[serde(default = "default_job_capacity")]
    pub memory_capacity: usize,
    /// The largest result stored; a bigger one fails the job with that reason.
    #[serde(default = "default_job_result_bytes")]
    pub max_result_bytes: usize,
}

impl Default for JobsFile {
    fn default() -> Self {
        Self {
            enabled: true,
            workers: default_job_workers(),
            workers_per_user: None,
            lease: default_job_lease(),
            default_ttl: default_job_ttl(),
            max_ttl: default_job_max_ttl(),
            poll_interval: default_job_poll(),
            max_run: default_job_max_run(),
            memory_capacity: default_job_capacity(),
            max_result_bytes: default_job_result_bytes(),
        }
    }
}

fn default_job_workers() -> usize {
    8
}
fn default_job_lease() -> Duration {
    Duration::from_secs(15)
}
fn default_job_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_job_max_ttl() -> Duration {
    Duration::from_secs(86_400)
}
fn default_job_poll() -> Duration {
    Duration::from_secs(1)
}
fn default_job_max_run() -> Duration {
    Duration::from_secs(3600)
}
fn default_job_capacity() -> usize {
    10_000
}
fn default_job_result_bytes() -> usize {
    16 * 1024 * 1024
}
