//! `jobs:` validated: the background-call workers and their limits, and the key that seals stored
//! results.

use super::file;
use super::{JobsSettings, Problem, Sources};
use std::time::Duration;

/// `jobs:` validated; the audit key (`MCP_GATEWAY_AUDIT_KEY`) is read here for the results.
pub(super) fn build(
    sources: &Sources,
    j: &file::JobsFile,
    audit: &file::AuditFile,
    problems: &mut Vec<Problem>,
) -> JobsSettings {
    let path = sources.path.as_path();
    for (field, bad, why) in [
        (
            "jobs.workers",
            j.workers == 0 || j.workers > 1024,
            "must be between 1 and 1024",
        ),
        (
            "jobs.workers_per_user",
            j.workers_per_user.is_some_and(|n| n == 0 || n > j.workers),
            "must be between 1 and jobs.workers",
        ),
        (
            "jobs.lease",
            j.lease < Duration::from_secs(1),
            "must be at least 1s",
        ),
        (
            "jobs.default_ttl",
            j.default_ttl.is_zero() || j.default_ttl > j.max_ttl,
            "must be greater than 0 and at most jobs.max_ttl",
        ),
        (
            "jobs.poll_interval",
            j.poll_interval.is_zero(),
            "must be greater than 0",
        ),
        (
            "jobs.max_run",
            j.max_run.is_zero(),
            "must be greater than 0",
        ),
        (
            "jobs.memory_capacity",
            j.memory_capacity == 0,
            "must be at least 1",
        ),
        (
            "jobs.max_result_bytes",
            j.max_result_bytes < 1024,
            "must be at least 1024",
        ),
    ] {
        if bad {
            problems.push(Problem::new(path, field, why));
        }
    }
    // A key that is set must be a key; an encrypted audit reports it already.
    let key = match sources
        .var("MCP_GATEWAY_AUDIT_KEY")
        .map(crate::seal::parse_key)
    {
        Some(Ok(k)) => Some((audit.arguments_key_id.clone(), k)),
        Some(Err(e)) => {
            if j.enabled && audit.arguments != file::ArgumentsFile::Encrypted {
                problems.push(Problem::env("MCP_GATEWAY_AUDIT_KEY", e.to_string()));
            }
            None
        }
        None => None,
    };
    JobsSettings {
        enabled: j.enabled,
        workers: j.workers,
        workers_per_user: j.workers_per_user.unwrap_or((j.workers / 2).max(1)),
        lease: j.lease,
        default_ttl: j.default_ttl,
        max_ttl: j.max_ttl,
        poll_interval: j.poll_interval,
        max_run: j.max_run,
        memory_capacity: j.memory_capacity,
        max_result_bytes: j.max_result_bytes,
        key,
    }
}
