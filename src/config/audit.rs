//! `audit:` as the gateway runs it: where rows go and how they are batched. The audit domain
//! runs the queue and the writer from these settings.

use super::file::OnQueueFull;
use crate::seal::ArgumentsMode;
use std::path::PathBuf;
use std::time::Duration;

/// Where rows go.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// `audit.enabled: false`.
    Off,
    File(PathBuf),
    Postgres {
        url: String,
        spool: PathBuf,
    },
}

/// The audit settings the gateway runs with.
#[derive(Debug)]
pub struct AuditConfig {
    pub sink: SinkConfig,
    pub queue_capacity: usize,
    pub batch_size: usize,
    /// How long the writer gathers rows for one batch once the first has arrived.
    pub flush_interval: Duration,
    pub on_queue_full: OnQueueFull,
    pub arguments: ArgumentsMode,
    pub retention: Option<Duration>,
    pub migrate_on_start: bool,
    pub instance: String,
}

/// The host name, for the `instance` column.
pub fn default_instance() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("mcp-gateway-{}", std::process::id()))
}
