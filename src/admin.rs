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
    let query = mcp_gateway::audit::search::Query {
        request_id,
        user,
        limit: usize::try_from(limit.max(0)).unwrap_or(usize::MAX),
        ..Default::default()
    };
    let rows = mcp_gateway::audit::search::search(&config.audit.sink, &query).await?;
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
