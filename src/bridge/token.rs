//! The bridge's bearer token: fixed, produced by a command, or asked of a development issuer
//! (`POST {issuer}/token`); the last two are produced again before the token expires (the `exp`
//! claim, read without verifying: the gateway verifies) or after a 401.

use crate::auth::now;
use tokio::sync::Mutex;

/// How long before `exp` a token is replaced.
const EARLY: u64 = 60;

/// Where tokens come from.
pub enum Source {
    Fixed(String),
    Command(String),
    /// The issuer's token URL and the JSON body to post.
    Issuer {
        url: String,
        body: serde_json::Value,
    },
}

pub struct Token {
    source: Source,
    http: reqwest::Client,
    current: Mutex<(String, Option<u64>)>,
    /// Why the last attempt to get a token failed, for the client's error message.
    failure: std::sync::Mutex<Option<String>>,
}

impl Token {
    pub fn new(source: Source) -> Self {
        let current = match &source {
            Source::Fixed(t) => (t.clone(), None),
            _ => (String::new(), Some(0)),
        };
        Self {
            source,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            current: Mutex::new(current),
            failure: std::sync::Mutex::new(None),
        }
    }

    /// Why the last attempt to get a token failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failed(&self, why: Option<String>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Whether a refused token can be replaced.
    pub fn refreshable(&self) -> bool {
        !matches!(self.source, Source::Fixed(_))
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
        let got = match &self.source {
            Source::Fixed(_) => return None,
            Source::Command(c) => self.command(c).await,
            Source::Issuer { url, body } => self.ask(url, body).await,
        };
        self.failed(got.as_ref().err().cloned());
        got.ok()
    }

    async fn ask(&self, url: &str, body: &serde_json::Value) -> Result<String, String> {
        let mut req = self.http.post(url).json(body);
        if let Ok(t) = std::env::var("MCP_GATEWAY_ISSUER_TOKEN") {
            req = req.header("x-issuer-token", t);
        }
        let answer = async {
            let r = req.send().await.map_err(|e| e.without_url().to_string())?;
            let status = r.status();
            let v: serde_json::Value = r.json().await.map_err(|e| e.without_url().to_string())?;
            match v["access_token"].as_str() {
                Some(t) if status.is_success() => Ok(t.to_string()),
                _ => Err(format!(
                    "{status}: {}",
                    v["error_description"].as_str().unwrap_or("no token")
                )),
            }
        };
        answer.await.map_err(|e| {
            tracing::warn!(issuer = %url, error = %e, "the issuer gave no token");
            format!("the issuer at {url} gave no token ({e})")
        })
    }

    async fn command(&self, command: &str) -> Result<String, String> {
        let out = tokio::process::Command::new("sh")
            .args(["-c", command])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {
                let t = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if t.is_empty() {
                    return Err(format!("the token command `{command}` printed no token"));
                }
                Ok(t)
            }
            Ok(o) => {
                tracing::warn!(status = %o.status, "the token command failed");
                Err(format!(
                    "the token command `{command}` failed ({}); run it in a shell to see why",
                    o.status
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the token command cannot run");
                Err(format!("the token command `{command}` cannot run ({e})"))
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
