//! The local append-only spool: batches that could not reach PostgreSQL, one JSON row per line,
//! synced to disk before the writer moves on. Only the writer task touches it.

use super::record::AuditRecord;
use crate::metrics;
use std::io::{BufRead, Write};
use std::path::PathBuf;

pub struct Spool {
    pub path: PathBuf,
}

impl Spool {
    pub fn new(path: PathBuf) -> Self {
        let s = Self { path };
        s.report_size();
        s
    }

    pub fn has_rows(&self) -> bool {
        self.size() > 0
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn report_size(&self) {
        metrics::AUDIT_SPOOL_BYTES.set(self.size() as i64);
    }

    /// Appends rows and syncs them to disk.
    pub fn append(&self, rows: &[AuditRecord]) -> std::io::Result<()> {
        append_jsonl(&self.path, rows)?;
        self.report_size();
        Ok(())
    }

    /// Every spooled row, in the order written. A torn last line (a crash mid-write) is skipped.
    pub fn read_all(&self) -> std::io::Result<Vec<AuditRecord>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut rows = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(r) => rows.push(r),
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "skipping an unreadable spool line")
                }
            }
        }
        Ok(rows)
    }

    /// Empties the spool once its rows are stored.
    pub fn clear(&self) -> std::io::Result<()> {
        std::fs::File::create(&self.path)?.sync_all()?;
        self.report_size();
        Ok(())
    }
}

/// Appends rows as JSON lines and syncs the file.
pub fn append_jsonl(path: &std::path::Path, rows: &[AuditRecord]) -> std::io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut buf = Vec::with_capacity(rows.len() * 400);
    for r in rows {
        super::line::write(r, &mut buf);
        buf.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&buf)?;
    f.sync_data()
}
