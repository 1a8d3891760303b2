//! The stdio server's process: started with only the environment it is given (plus what any
//! program needs to start: `PATH`, `HOME`, locale, `TMPDIR`), in its own process group, its stdout
//! read as JSON-RPC lines (bounded; anything else logged and dropped), its stderr logged line by
//! line, tagged with the scope.

use super::mux::Mux;
use crate::lines::Line;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Variables passed on from the adapter's environment: what starting a program needs, no secret.
const BASE_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// What to run.
#[derive(Clone)]
pub struct Program {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// For log lines: the scope (and instance) it serves.
    pub name: String,
    /// `RLIMIT_DATA` in MiB and `RLIMIT_NOFILE`.
    pub memory_mb: Option<u64>,
    pub open_files: Option<u64>,
    pub sandbox: Option<crate::protocol::StdioSandbox>,
    /// How often the process is pinged once initialized.
    pub ping: Option<std::time::Duration>,
}

impl Program {
    /// What is executed: the command, inside `bwrap` when sandboxed, under `prlimit` when
    /// limited (set before the program's first instruction, inherited by the sandbox).
    pub fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = Vec::new();
        if self.memory_mb.is_some() || self.open_files.is_some() {
            argv.push("prlimit".into());
            if let Some(m) = self.memory_mb {
                argv.push(format!("--data={}", m * 1024 * 1024));
            }
            if let Some(n) = self.open_files {
                argv.push(format!("--nofile={n}"));
            }
            argv.push("--".into());
        }
        if let Some(s) = &self.sandbox {
            argv.extend(sandboxed(s));
        }
        argv.extend(self.command.iter().cloned());
        argv
    }
}

/// The sandboxed program's own temporary directory (an empty tmpfs over the host's).
const PRIVATE_TMP: &str = "/var/tmp";

/// `bwrap` and its arguments: everything read-only (`/tmp` too: a program may live there), `/dev`,
/// `/proc` and a temporary directory its own (`/var/tmp`, its `TMPDIR`), the hidden paths empty (a
/// directory) or `/dev/null` (a file), the writable ones bound as they are, no network namespace
/// of the host's unless allowed, and it dies with the adapter.
fn sandboxed(s: &crate::protocol::StdioSandbox) -> Vec<String> {
    let mut a: Vec<String> = [
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    .map(String::from)
    .into();
    if std::path::Path::new(PRIVATE_TMP).is_dir() {
        a.extend(["--tmpfs", PRIVATE_TMP, "--setenv", "TMPDIR", PRIVATE_TMP].map(String::from));
    }
    for h in &s.hidden {
        let h = h.display().to_string();
        match std::path::Path::new(&h).is_dir() {
            true => a.extend(["--tmpfs".into(), h]),
            false if std::path::Path::new(&h).exists() => {
                a.extend(["--ro-bind".into(), "/dev/null".into(), h])
            }
            false => {}
        }
    }
    for w in &s.writable {
        let w = w.display().to_string();
        a.extend(["--bind".into(), w.clone(), w]);
    }
    if !s.network {
        a.push("--unshare-net".into());
    }
    a.extend(["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--"].map(String::from));
    a
}

/// Starts the process and its I/O tasks; resolves when it has exited (its stdout closed).
pub async fn run(
    program: Program,
    mux: Arc<Mux>,
    to_child: mpsc::UnboundedReceiver<String>,
) -> std::io::Result<std::process::ExitStatus> {
    let argv = program.argv();
    let (exe, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("an empty command"))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(args)
        .env_clear()
        .envs(
            BASE_ENV
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
        )
        .envs(program.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &program.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    tracing::info!(server = %program.name, pid, "stdio server started");
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("the process's pipes are missing"));
    };
    tokio::spawn(crate::lines::write(to_child, stdin));
    let stop = Arc::new(tokio::sync::Notify::new());
    if let Some(every) = program.ping {
        tokio::spawn(watch(
            mux.clone(),
            every,
            stop.clone(),
            program.name.clone(),
        ));
    }
    let name = program.name.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let cut = crate::logs::clip(&line);
            tracing::info!(server = %name, line = %cut, "stdio server stderr");
        }
    });
    tokio::select! {
        () = read_stdout(stdout, &mux, &program.name) => {}
        () = stop.notified() => {
            let _ = child.start_kill();
        }
    }
    mux.child_gone();
    let status = child.wait().await?;
    tracing::warn!(server = %program.name, pid, %status, "stdio server exited");
    Ok(status)
}

/// Pings in a row without an answer after which a process is replaced.
const MISSED_PINGS: u32 = 3;

/// Pings the process every `every` once it is initialized; after [`MISSED_PINGS`] without
/// an answer (each waited for up to `every`, 10 s at most) it is stopped, so its calls get
/// -32008 at once (a shared process is started again, a client's process ends its session).
async fn watch(
    mux: Arc<Mux>,
    every: std::time::Duration,
    stop: Arc<tokio::sync::Notify>,
    name: String,
) {
    let wait = every.min(std::time::Duration::from_secs(10));
    let mut missed = 0;
    loop {
        tokio::time::sleep(every).await;
        if mux.gone() {
            return;
        }
        if !mux.initialized() || mux.ping(wait).await {
            missed = 0;
            continue;
        }
        missed += 1;
        tracing::warn!(server = %name, missed, "stdio server did not answer a ping");
        if missed >= MISSED_PINGS {
            tracing::error!(server = %name, "stdio server stopped answering; replacing it");
            stop.notify_one();
            return;
        }
    }
}

/// Reads JSON-RPC messages, one per line, until the process closes stdout.
async fn read_stdout(stdout: tokio::process::ChildStdout, mux: &Mux, name: &str) {
    let mut lines = crate::lines::Reader::new(stdout);
    while let Some(line) = lines.next().await {
        match line {
            Line::Message(msg) => mux.received(msg),
            Line::TooLong => {
                tracing::warn!(server = %name, limit = crate::lines::MAX_LINE, "a stdout line over the limit; dropped")
            }
            Line::NotJson(shown) => {
                tracing::warn!(server = %name, line = %shown, "stdout line that is not JSON-RPC; dropped")
            }
        }
    }
}
