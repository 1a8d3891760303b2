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

    /// Writes the secrets to a new file (mode 0600); an existing file is never overwritten.
    pub fn persist(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        write_private(path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tracing::warn!(
            file = %path.display(),
            "generated development secrets (JWT signing key, upstream secret, session key); do not use them in production"
        );
        Ok(())
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(data)
}
