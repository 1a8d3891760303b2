//! Reading the audit trail back, newest first, for `mcp-gateway audit show` and the operator
//! console: from PostgreSQL, or from the JSON-lines file (read line by line, only a page held).
//! Rows are JSON objects shaped like the database's (`time` in RFC 3339).

use super::SinkConfig;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which rows: every given field must match exactly; `since` bounds the time.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub request_id: Option<String>,
    pub user: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<SystemTime>,
    /// Rows skipped from the newest (paging) and rows returned.
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("auditing is off (audit.enabled: false): there are no rows")]
    Off,
    #[error("cannot read the audit database: {0}")]
    Database(String),
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// The rows `q` asks for, newest first.
pub async fn search(sink: &SinkConfig, q: &Query) -> Result<Vec<Value>, SearchError> {
    match sink {
        SinkConfig::Postgres { url, .. } => from_database(url, q).await,
        SinkConfig::File(path) => {
            let (path, q) = (path.clone(), q.clone());
            tokio::task::spawn_blocking(move || from_file(&path, &q))
                .await
                .map_err(|e| SearchError::Database(e.to_string()))?
        }
        SinkConfig::Off => Err(SearchError::Off),
    }
}

async fn from_database(url: &str, q: &Query) -> Result<Vec<Value>, SearchError> {
    let db = |e: tokio_postgres::Error| SearchError::Database(e.to_string());
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(db)?;
    tokio::spawn(connection);
    let sql = format!(
        "SELECT to_json(a)::text FROM (
           SELECT {} FROM audit_log
           WHERE ($1::text IS NULL OR request_id = $1) AND ($2::text IS NULL OR user_id = $2)
             AND ($3::text IS NULL OR tool = $3) AND ($4::text IS NULL OR outcome = $4)
             AND ($5::timestamptz IS NULL OR time >= $5)
           ORDER BY time DESC, id DESC LIMIT $6 OFFSET $7) a",
        super::column_names()
    );
    let (limit, offset) = (q.limit as i64, q.offset as i64);
    let rows = client
        .query(
            &sql,
            &[
                &q.request_id,
                &q.user,
                &q.tool,
                &q.outcome,
                &q.since,
                &limit,
                &offset,
            ],
        )
        .await
        .map_err(db)?;
    Ok(rows
        .iter()
        .filter_map(|row| serde_json::from_str(row.get::<_, &str>(0)).ok())
        .collect())
}

fn from_file(path: &std::path::Path, q: &Query) -> Result<Vec<Value>, SearchError> {
    use std::io::BufRead;
    let failed = |e: &dyn std::fmt::Display| SearchError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(&e)),
    };
    let keep = q.limit.saturating_add(q.offset);
    let since_us = q
        .since
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64);
    let mut kept = std::collections::VecDeque::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| failed(&e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| failed(&format!("line {}: not an audit row ({e})", n + 1)))?;
        let wanted = |field: &str, want: &Option<String>| {
            want.as_deref().is_none_or(|w| v[field].as_str() == Some(w))
        };
        let recent = since_us.is_none_or(|s| v["time_us"].as_i64().is_some_and(|t| t >= s));
        if !(wanted("request_id", &q.request_id)
            && wanted("user_id", &q.user)
            && wanted("tool", &q.tool)
            && wanted("outcome", &q.outcome)
            && recent)
        {
            continue;
        }
        kept.push_back(v);
        if kept.len() > keep {
            kept.pop_front();
        }
    }
    Ok(kept.into_iter().rev().skip(q.offset).map(shaped).collect())
}

/// A file row as the database shows it: `time` (RFC 3339) first instead of `time_us`.
fn shaped(mut v: Value) -> Value {
    let Some(us) = v.get("time_us").and_then(Value::as_i64) else {
        return v;
    };
    let at = UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    let Some(object) = v.as_object_mut() else {
        return v;
    };
    object.remove("time_us");
    let mut out = serde_json::Map::new();
    out.insert(
        "time".into(),
        json!(humantime::format_rfc3339_micros(at).to_string()),
    );
    out.append(object);
    Value::Object(out)
}
