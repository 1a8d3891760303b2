//! Why a store the gateway keeps beside its audit trail (PostgreSQL, or a file under `var/`) could
//! not be read or written. Shared by the audit writer, the tool registry and the job store; the
//! text names the database's or the file's own reason and never a connection string.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database settings do not make a pool (e.g. a malformed URL).
    #[error("{0}")]
    Settings(#[from] deadpool_postgres::CreatePoolError),
    /// No connection within the pool's timeouts.
    #[error("{0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that is there but does not hold what the store wrote.
    #[error("{}: {source}", path.display())]
    Document {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The blocking task that held the file's lock ended abnormally.
    #[error("{0}")]
    Worker(#[from] tokio::task::JoinError),
}

impl StorageError {
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::File {
            path: path.into(),
            source,
        }
    }
}
