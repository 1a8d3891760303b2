//! Operator commands on the audit trail: `migrate` (the database) and `audit show` (the
//! database, or the JSON-lines file).

use anyhow::{anyhow, bail, Context};
use mcp_gateway::audit::SinkConfig;
use mcp_gateway::config::Config;
use mcp_gateway::seal as arguments;
use serde_json::{json, Value};

async fn connect(config: &Config) -> anyhow::Result<tokio_postgres::Client> {
    let SinkConfig::Postgres { url, .. } = &config.audit.sink else {
        bail!("no database configured (set DATABASE_URL or audit.database_url)");
    };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the audit database")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("mcp-gateway: database connection: {e}");
        }
    });
    Ok(client)
}

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let mut client = connect(config).await?;
    let applied = mcp_gateway::audit::migrate::migrate(&mut client)
        .await
        .context("migration failed")?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        println!("applied: {}", applied.join(", "));
    }
    Ok(())
}

/// The decryption keys: the configured key id with `MCP_GATEWAY_AUDIT_KEY`, plus older ones.
fn keys(config: &Config) -> anyhow::Result<Vec<(String, [u8; 32])>> {
    let mut keys = Vec::new();
    if let Ok(k) = std::env::var("MCP_GATEWAY_AUDIT_KEY") {
        let id = match &config.audit.arguments {
            arguments::ArgumentsMode::Encrypted { key_id, .. } => key_id.clone(),
            _ => "k1".to_string(),
        };
        keys.push((
            id,
            arguments::parse_key(&k).map_err(|e| anyhow!("MCP_GATEWAY_AUDIT_KEY: {e}"))?,
        ));
    }
    if let Ok(old) = std::env::var("MCP_GATEWAY_AUDIT_OLD_KEYS") {
        let old = arguments::parse_key_list(&old)
            .map_err(|e| anyhow!("MCP_GATEWAY_AUDIT_OLD_KEYS: {e}"))?;
        keys.extend(old);
    }
    Ok(keys)
}

/// `audit show`: the newest rows first, from the database, or from the JSON-lines file when the
/// audit trail is written to one (the quickstart's `var/audit.jsonl`).
pub async fn show(
    config: &Config,
    request_id: Option<String>,
    user: Option<String>,
    limit: i64,
) -> anyhow::Result<()> {
    let keys = keys(config)?;
    let rows = match &config.audit.sink {
        SinkConfig::Postgres { .. } => from_database(config, &request_id, &user, limit).await?,
        SinkConfig::File(path) => from_file(path, &request_id, &user, limit)?,
        SinkConfig::Off => bail!("auditing is off (audit.enabled: false): there are no rows"),
    };
    let mut failures = 0;
    for mut v in rows {
        if v["arguments_mode"] == "encrypted" {
            if let Some(env) = v["arguments"].as_str().map(str::to_string) {
                match arguments::open(&env, &keys) {
                    Ok(plain) => {
                        v["arguments"] = serde_json::from_str(&plain).unwrap_or(json!(plain))
                    }
                    Err(e) => {
                        failures += 1;
                        v["arguments"] = Value::Null;
                        v["arguments_error"] = json!(e.to_string());
                    }
                }
            }
        }
        println!("{v}");
    }
    if failures > 0 {
        bail!("{failures} row(s) could not be decrypted with the keys given");
    }
    Ok(())
}

async fn from_database(
    config: &Config,
    request_id: &Option<String>,
    user: &Option<String>,
    limit: i64,
) -> anyhow::Result<Vec<Value>> {
    let client = connect(config).await?;
    let sql = format!(
        "SELECT to_json(a)::text FROM (
           SELECT {} FROM audit_log
           WHERE ($1::text IS NULL OR request_id = $1) AND ($2::text IS NULL OR user_id = $2)
           ORDER BY time DESC, id DESC LIMIT $3) a",
        mcp_gateway::audit::column_names()
    );
    let rows = client
        .query(&sql, &[request_id, user, &limit])
        .await
        .context("cannot read audit_log")?;
    rows.iter()
        .map(|row| Ok(serde_json::from_str(row.get::<_, &str>(0))?))
        .collect()
}

/// The last `limit` matching rows of the JSON-lines file, newest first, each shaped like a
/// database row (`time` in RFC 3339 instead of `time_us`). Read line by line: the file may be
/// large, only `limit` rows are held.
fn from_file(
    path: &std::path::Path,
    request_id: &Option<String>,
    user: &Option<String>,
    limit: i64,
) -> anyhow::Result<Vec<Value>> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    let mut kept = std::collections::VecDeque::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not an audit row", path.display(), n + 1))?;
        let wanted = |field: &str, want: &Option<String>| {
            want.as_deref().is_none_or(|w| v[field].as_str() == Some(w))
        };
        if !wanted("request_id", request_id) || !wanted("user_id", user) {
            continue;
        }
        if let Some(us) = v.get("time_us").and_then(Value::as_i64) {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us.max(0) as u64);
            let object = v.as_object_mut().context("an audit row is a JSON object")?;
            object.remove("time_us");
            let mut shaped = serde_json::Map::new();
            shaped.insert(
                "time".into(),
                json!(humantime::format_rfc3339_micros(at).to_string()),
            );
            shaped.append(object);
            v = Value::Object(shaped);
        }
        kept.push_back(v);
        if kept.len() > limit {
            kept.pop_front();
        }
    }
    Ok(kept.into_iter().rev().collect())
}
