//! Schema migrations: the numbered files of `migrations/`, compiled in, applied in order inside one
//! transaction under an advisory lock (so two instances starting together do not race), and
//! recorded in `schema_migrations` so running them again is a no-op.

use tokio_postgres::Client;

/// Every migration, in order. A test checks this list against the `migrations/` folder.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_audit_log",
        include_str!("../../migrations/0001_audit_log.sql"),
    ),
    (
        "0002_client_cert",
        include_str!("../../migrations/0002_client_cert.sql"),
    ),
    ("0003_jobs", include_str!("../../migrations/0003_jobs.sql")),
    (
        "0004_tool_registry",
        include_str!("../../migrations/0004_tool_registry.sql"),
    ),
];

/// Applies the migrations not applied yet; returns their names.
pub async fn migrate(client: &mut Client) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(724300101);
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<String> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for (version, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        done.push(*version);
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_string())
            .collect();
        files.sort();
        let listed: Vec<String> = super::MIGRATIONS
            .iter()
            .map(|(v, _)| v.to_string())
            .collect();
        assert_eq!(files, listed);
    }
}
