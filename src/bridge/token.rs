//! The bridge's bearer token: fixed, or produced by a command and produced again before it
//! expires (the `exp` claim, read without verifying: the gateway verifies) or after a 401.

use crate::auth::now;
use tokio::sync::Mutex;

/// How long before `exp` a command-made token is replaced.
const EARLY: u64 = 60;

pub struct Token {
    command: Option<String>,
    current: Mutex<(String, Option<u64>)>,
}

impl Token {
    pub fn new(fixed: Option<String>, command: Option<String>) -> Result<Self, String> {
        match (fixed, command) {
            (Some(t), None) => Ok(Self {
                command: None,
                current: Mutex::new((t, None)),
            }),
            (None, Some(c)) => Ok(Self {
                command: Some(c),
                current: Mutex::new((String::new(), Some(0))),
            }),
            _ => Err("give exactly one of --token or --token-command".into()),
        }
    }

    /// Whether a refused token can be replaced.
    pub fn refreshable(&self) -> bool {
        self.command.is_some()
    }

    /// The token to send now.
    pub async fn get(&self) -> String {
        let mut cur = self.current.lock().await;
        let due = cur.1.is_some_and(|exp| now() + EARLY >= exp);
        if due {
            if let Some(fresh) = self.run().await {
                *cur = (fresh.clone(), Some(expiry(&fresh)));
            }
        }
        cur.0.clone()
    }

    /// Replaces the token now (after a 401).
    pub async fn refresh(&self) {
        if let Some(fresh) = self.run().await {
            *self.current.lock().await = (fresh.clone(), Some(expiry(&fresh)));
        }
    }

    async fn run(&self) -> Option<String> {
        let command = self.command.as_deref()?;
        let out = tokio::process::Command::new("sh")
            .args(["-c", command])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {
                let t = String::from_utf8_lossy(&o.stdout).trim().to_string();
                (!t.is_empty()).then_some(t)
            }
            Ok(o) => {
                tracing::warn!(status = %o.status, "the token command failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the token command cannot run");
                None
            }
        }
    }
}

/// A JWT's `exp`, or one minute from now when it has none (so a command is asked again soon).
fn expiry(token: &str) -> u64 {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c["exp"].as_u64())
        .unwrap_or_else(|| now() + EARLY + 60)
}
