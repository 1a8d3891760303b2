//! `audit:` as the gateway runs it: where rows go and how they are batched. The audit domain
//! runs the queue and the writer from these settings.

use super::file::{self, OnQueueFull};
use super::{Problem, Sources};
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

/// `audit:` validated.
pub(super) fn build(
    sources: &Sources,
    a: &file::AuditFile,
    problems: &mut Vec<Problem>,
) -> Option<AuditConfig> {
    use crate::seal as arguments;
    let (path, base) = (sources.path.as_path(), sources.base());
    let start = problems.len();
    let url = sources
        .var("DATABASE_URL")
        .map(str::to_string)
        .or_else(|| a.database_url.clone());
    let sink = match url {
        _ if !a.enabled => SinkConfig::Off,
        Some(url) => {
            if url.parse::<tokio_postgres::Config>().is_err() {
                problems.push(Problem::new(
                    path,
                    "audit.database_url",
                    "not a PostgreSQL URL (postgres://user@host:port/db)",
                ));
            }
            SinkConfig::Postgres {
                url,
                spool: base.join(&a.spool_file),
            }
        }
        None => SinkConfig::File(base.join(&a.file)),
    };
    let arguments = match a.arguments {
        file::ArgumentsFile::None => ArgumentsMode::None,
        file::ArgumentsFile::Sha256 => ArgumentsMode::Sha256,
        file::ArgumentsFile::Encrypted => match sources.env.get("MCP_GATEWAY_AUDIT_KEY") {
            Some(k) => match arguments::parse_key(k) {
                Ok(key) => ArgumentsMode::encrypted(&a.arguments_key_id, &key),
                Err(e) => {
                    problems.push(Problem::env("MCP_GATEWAY_AUDIT_KEY", e.to_string()));
                    ArgumentsMode::None
                }
            },
            None => {
                problems.push(Problem::new(
                    path,
                    "audit.arguments",
                    "encrypted needs MCP_GATEWAY_AUDIT_KEY (256-bit key, hex or base64) in the environment",
                ));
                ArgumentsMode::None
            }
        },
    };
    if a.queue_capacity == 0 {
        problems.push(Problem::new(
            path,
            "audit.queue_capacity",
            "must be at least 1",
        ));
    }
    if a.batch_size == 0 || a.batch_size > 10_000 {
        problems.push(Problem::new(
            path,
            "audit.batch_size",
            "must be between 1 and 10000",
        ));
    }
    if a.arguments_key_id.is_empty() || a.arguments_key_id.contains(':') {
        problems.push(Problem::new(
            path,
            "audit.arguments_key_id",
            "must be non-empty and without ':'",
        ));
    }
    (problems.len() == start).then(|| AuditConfig {
        sink,
        queue_capacity: a.queue_capacity,
        batch_size: a.batch_size,
        flush_interval: a.flush_interval,
        on_queue_full: a.on_queue_full,
        arguments,
        retention: (a.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(a.retention_days) * 86_400)),
        migrate_on_start: a.migrate_on_start,
        instance: a.instance.clone().unwrap_or_else(default_instance),
    })
}
