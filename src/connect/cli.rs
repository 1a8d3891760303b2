//! `mcp-gateway credentials list|revoke`: users' upstream logins in the database, listed without
//! their tokens and revoked by user (and upstream). Logins kept in memory (no database) live in
//! the running gateway only: users see and revoke theirs on its consent page (`/connect`).

use super::store::{Filter, Row, Store};
use crate::config::Config;
use crate::error::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("the gateway has no database (audit to PostgreSQL): upstream logins live in the running gateway's memory; users see and revoke theirs at {0}/connect")]
    Memory(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn store(config: &Config) -> Result<Store, CliError> {
    let s = Store::for_audit(&config.audit)?;
    if s.is_memory() {
        let url = config
            .public_url
            .clone()
            .unwrap_or_else(|| "the gateway".into());
        return Err(CliError::Memory(url));
    }
    Ok(s)
}

fn time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn line(r: &Row) -> String {
    let tenant = if r.tenant.is_empty() { "-" } else { &r.tenant };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        r.user,
        tenant,
        r.upstream,
        time(r.created_at),
        time(r.updated_at),
        time(r.expires_at),
        if r.refreshable { "yes" } else { "no" }
    )
}

/// `credentials list [--user U] [--upstream S]`: one line per login, never a token.
pub async fn list(
    config: &Config,
    user: Option<&str>,
    upstream: Option<&str>,
) -> Result<String, CliError> {
    let f = Filter {
        user,
        tenant: None,
        upstream,
    };
    let rows = store(config)?.list(&f).await?;
    let mut out =
        String::from("USER\tTENANT\tUPSTREAM\tSIGNED_IN\tUPDATED\tEXPIRES\tREFRESHABLE\n");
    for r in &rows {
        out.push_str(&line(r));
    }
    Ok(out)
}

/// `credentials revoke USER [UPSTREAM]`: deletes the user's logins (at one upstream, or all);
/// the user signs in again at the next call (every gateway re-reads within seconds).
pub async fn revoke(
    config: &Config,
    user: &str,
    upstream: Option<&str>,
) -> Result<String, CliError> {
    let f = Filter {
        user: Some(user),
        tenant: None,
        upstream,
    };
    let n = store(config)?.delete(&f).await?;
    Ok(format!("revoked {n} login(s) of {user}\n"))
}
