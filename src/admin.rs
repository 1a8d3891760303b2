//! Operator commands that talk to the audit database: `migrate` and `audit show`.

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
        for pair in old.split(',').filter(|p| !p.trim().is_empty()) {
            let (id, key) = pair
                .split_once(':')
                .ok_or_else(|| anyhow!("MCP_GATEWAY_AUDIT_OLD_KEYS: write id:key,…"))?;
            keys.push((
                id.trim().to_string(),
                arguments::parse_key(key)
                    .map_err(|e| anyhow!("MCP_GATEWAY_AUDIT_OLD_KEYS: {e}"))?,
            ));
        }
    }
    Ok(keys)
}

pub async fn show(
    config: &Config,
    request_id: Option<String>,
    user: Option<String>,
    limit: i64,
) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let keys = keys(config)?;
    let rows = client
        .query(
            "SELECT to_json(a)::text FROM (
               SELECT time, request_id, instance, user_id, tenant, roles, scope, method, tool, jsonrpc_id, outcome,
                      reason, rpc_error_code, http_status, upstream, latency_ms, upstream_latency_ms, request_bytes,
                      response_bytes, client_addr, session_hash, arguments_mode, arguments, client_cert
               FROM audit_log
               WHERE ($1::text IS NULL OR request_id = $1) AND ($2::text IS NULL OR user_id = $2)
               ORDER BY time DESC, id DESC LIMIT $3) a",
            &[&request_id, &user, &limit],
        )
        .await
        .context("cannot read audit_log")?;
    let mut failures = 0;
    for row in rows {
        let text: String = row.get(0);
        let mut v: Value = serde_json::from_str(&text)?;
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
