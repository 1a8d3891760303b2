//! Development secrets: generated once into a local, git-ignored file so the shipped configuration
//! starts with no environment set. Production deployments leave `dev_secrets_file` unset and pass
//! real secrets through the environment.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSecrets {
    pub jwt_secret: String,
    pub upstream_shared_secret: String,
    pub session_secret: String,
}

impl DevSecrets {
    /// The secrets a file holds.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes)
            .map_err(|e| format!("{}: not a secrets file: {e}", path.display()))
    }

    /// Fresh random secrets (kept in memory until [`DevSecrets::persist`]).
    pub fn generate() -> Self {
        DevSecrets {
            jwt_secret: random_hex(32),
            upstream_shared_secret: random_hex(32),
            session_secret: random_hex(32),
        }
    }

    /// Writes the secrets to a new file (mode 0600): complete or not at all (written beside it,
    /// then linked into place), and never over an existing one. `Ok(false)` when another process
    /// (a `token` command next to a starting gateway) wrote the file first: its secrets are the
    /// ones to use, so the caller loads the configuration again.
    pub fn persist(&self, path: &Path) -> Result<bool, PersistError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let failed = |source| PersistError {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(failed)?;
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        // A temporary file is created with mode 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(failed)?;
        match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(failed(e.error)),
        }
        tracing::warn!(
            file = %path.display(),
            "generated development secrets (JWT signing key, upstream secret, session key); do not use them in production"
        );
        Ok(true)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The development secrets could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct PersistError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}
