//! Tool processes the gateway runs itself (`spawn:` upstreams): started from the gateway's own
//! binary on their loopback port, waited for until healthy before the proxy opens, restarted with
//! backoff when they die, and stopped with the gateway. A spawned tool also exits by itself when
//! the gateway process is gone (`--exit-with-parent`), so none is left behind by a hard kill.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::time::Duration;
use tokio::process::Command;

/// Supervises one tool process.
pub struct Supervisor {
    pub name: String,
    pub args: Vec<String>,
    /// Besides the shared secret (a stdio adapter's program).
    pub env: Vec<(String, String)>,
    pub port: u16,
    pub secret: String,
    pub health_path: String,
}

impl Supervisor {
    fn command(&self) -> std::io::Result<Command> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(&self.args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--exit-with-parent")
            .env("TOOL_GATEWAY_SHARED_SECRET", &self.secret)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true);
        Ok(cmd)
    }

    async fn healthy(&self) -> bool {
        let url = format!("http://127.0.0.1:{}{}", self.port, self.health_path);
        let client = reqwest::Client::new();
        matches!(client.get(url).timeout(Duration::from_secs(1)).send().await, Ok(r) if r.status().is_success())
    }
}

#[async_trait]
impl BackgroundService for Supervisor {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let mut ready = Some(ready);
        let mut failures: u32 = 0;
        loop {
            let child = self.command().and_then(|mut c| c.spawn());
            let mut child = match child {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(tool = %self.name, error = %e, "cannot start tool process");
                    if let Some(r) = ready.take() {
                        r.notify_ready();
                    }
                    return;
                }
            };
            tracing::info!(tool = %self.name, port = self.port, pid = child.id().unwrap_or(0), "tool process started");
            if let Some(r) = ready.take() {
                // The proxy opens once the tool answers (or after 30 s, so a broken tool cannot
                // keep the gateway down: the health check then reports it).
                for _ in 0..300 {
                    if self.healthy().await {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r.notify_ready();
            }
            let started = std::time::Instant::now();
            tokio::select! {
                status = child.wait() => {
                    if started.elapsed() > Duration::from_secs(30) {
                        failures = 0;
                    }
                    failures += 1;
                    let scope = self.name.split('@').next().unwrap_or("");
                    crate::metrics::PROCESS_RESTARTS.with_label_values(&[scope]).inc();
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(7)));
                    tracing::warn!(
                        tool = %self.name,
                        status = %status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                        restart_in_ms = backoff.as_millis() as u64,
                        "tool process exited; restarting"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                _ = shutdown.changed() => {
                    let _ = child.kill().await;
                    tracing::info!(tool = %self.name, "tool process stopped");
                    return;
                }
            }
        }
    }
}
