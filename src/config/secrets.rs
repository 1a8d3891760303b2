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
    /// Reads the file, or creates it (mode 0600) with fresh random secrets.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a secrets file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secrets = DevSecrets {
                    jwt_secret: random_hex(32),
                    upstream_shared_secret: random_hex(32),
                    session_secret: random_hex(32),
                };
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let text = serde_json::to_string_pretty(&secrets).map_err(|e| e.to_string())?;
                write_private(path, text.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::warn!(
                    file = %path.display(),
                    "generated development secrets (JWT signing key, upstream secret, session key); do not use them in production"
                );
                Ok(secrets)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
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
