//! Test harness: starts the real `mcp-gateway` binary and real upstream MCP servers (the bundled
//! calculator, built on the official Rust MCP SDK) on free loopback ports, and talks to them over
//! HTTP the way MCP clients do.
#![allow(dead_code)]

pub mod postgres;
pub mod recorder;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123456789";
pub const UPSTREAM_SECRET: &str = "test-upstream-secret-0123456789";
pub const SESSION_SECRET: &str = "test-session-secret-0123456789";
pub const ISSUER: &str = "https://login.test";
pub const AUDIENCE: &str = "mcp-gateway";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-gateway")
}

/// A port free now, for a process about to listen on it. Picked below the kernel's ephemeral
/// range (32768 and up on Linux): a port from that range (what binding port 0 gives) can be taken
/// by any test's outgoing connection between the pick and the listener's bind. Each pick moves on
/// (no two tests of this process get the same port), starting where the process id points.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub port: u16,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn wait_http(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(1)).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}

/// Starts `tests/servers/SCRIPT PORT ARGS…` (a test MCP server on the official Python SDK) on a
/// free port and waits (up to 60 s) until it accepts connections. A server that exits first (its
/// port taken by another test between picking and binding) is started again on another port, up
/// to three times; the failure names the script and ends with what it printed.
pub async fn python_server(script: &str, args: &[&std::ffi::OsStr]) -> Proc {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(script);
    let mut last_words = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(sdk_python())
            .arg(&path)
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        // A Python server takes seconds to start on a busy machine (the whole suite shares two
        // cores): wait for it, and say so if it never listens, instead of testing against nothing.
        let mut exited = false;
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Proc { child, port };
            }
            if child.try_wait().ok().flatten().is_some() {
                exited = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(stderr.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        last_words = lines[lines.len().saturating_sub(15)..].join("\n");
        if !exited {
            panic!("{script} did not listen on 127.0.0.1:{port} within 60 s; it printed:\n{last_words}");
        }
    }
    panic!("{script} exited before listening, three times; it printed:\n{last_words}");
}

pub async fn calculator(stateless: bool) -> Proc {
    tool_server("calculator", stateless).await
}

/// Starts a bundled tool server as an upstream.
pub async fn tool_server(name: &str, stateless: bool) -> Proc {
    tool_server_with(name, stateless, &[]).await
}

/// Starts a bundled tool server with extra arguments.
pub async fn tool_server_with(name: &str, stateless: bool, extra: &[String]) -> Proc {
    tool_server_on(name, stateless, extra, free_port()).await
}

/// Starts a bundled tool server on `port` (e.g. again where one was stopped).
pub async fn tool_server_on(name: &str, stateless: bool, extra: &[String], port: u16) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args([
        "--log-format",
        "text",
        "tool",
        name,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    if !stateless {
        cmd.arg("--sessions");
    }
    cmd.args(extra);
    let child = cmd
        .env("TOOL_GATEWAY_SHARED_SECRET", UPSTREAM_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_http(&format!("http://127.0.0.1:{port}/health")).await;
    Proc { child, port }
}

/// A gateway configuration in a temporary directory.
pub struct GatewaySpec {
    /// Shared with the gateways started from it, so their files outlive the spec.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    pub gateway_yaml: String,
    pub tools_yaml: String,
    pub policy_yaml: String,
    pub port: u16,
    pub metrics_port: u16,
    pub env: Vec<(String, String)>,
}

pub const POLICY: &str = r#"
roles:
  developer:
    allow: ["calculator/*"]
  analyst:
    allow: ["calculator/exact_calculate"]
"#;

impl GatewaySpec {
    /// A gateway with one `calculator` scope in front of `upstream_ports`, exposing
    /// exact_calculate and statistics (not convert_units, which the upstream also offers).
    pub fn new(upstream_ports: &[u16]) -> Self {
        let port = free_port();
        let metrics_port = free_port();
        let upstreams: String = upstream_ports
            .iter()
            .map(|p| format!("      - url: http://127.0.0.1:{p}/mcp\n"))
            .collect();
        Self {
            dir: std::sync::Arc::new(tempfile::tempdir().unwrap()),
            gateway_yaml: format!(
                r#"listen: 127.0.0.1:{port}
tools_file: tools.yaml
policy_file: policy.yaml
threads: 2
shutdown_grace: 1s
limits:
  max_body_bytes: 262144
jwt:
  algorithms: [HS256]
  secret: ${{TEST_JWT_SECRET}}
  issuer: {ISSUER}
  audience: {AUDIENCE}
upstream_shared_secret: {UPSTREAM_SECRET}
session_secrets: [{SESSION_SECRET}]
authorization_servers: [{ISSUER}]
allowed_origins: [https://app.example.com]
metrics_listen: 127.0.0.1:{metrics_port}
audit:
  file: audit.jsonl
  spool_file: audit-spool.jsonl
"#
            ),
            tools_yaml: format!(
                "scopes:\n  calculator:\n    upstreams:\n{upstreams}    health_check: {{ kind: http, path: /health, interval: 1s }}\n    timeout: 10s\n    tools: [exact_calculate, statistics]\n"
            ),
            policy_yaml: POLICY.into(),
            port,
            metrics_port,
            env: vec![("TEST_JWT_SECRET".into(), JWT_SECRET.into())],
        }
    }

    /// Adds a setting (`key: value`) to the `calculator` scope.
    pub fn scope_setting(&mut self, setting: &str) {
        self.tools_yaml = edit(
            &self.tools_yaml,
            "    timeout: 10s\n",
            &format!("    timeout: 10s\n    {setting}\n"),
        );
    }

    /// A gateway in front of one official SDK server (no active health check: such a server has
    /// no `/health`): the `calculator` scope exposing `tools` (a YAML list, followed by any further
    /// scope settings), and `policy` as the policy file.
    pub fn for_sdk_server(port: u16, tools: &str, policy: &str) -> Self {
        let mut spec = GatewaySpec::new(&[port]);
        spec.without_health_check();
        spec.tools_yaml = edit(
            &spec.tools_yaml,
            "tools: [exact_calculate, statistics]",
            &format!("tools: {tools}"),
        );
        spec.policy_yaml = policy.into();
        spec
    }

    /// Turns the scope's active health check off (`kind: none`), for tests of what a request
    /// meets at an upstream that is down or slow.
    pub fn without_health_check(&mut self) {
        self.tools_yaml = edit(
            &self.tools_yaml,
            "    health_check: { kind: http, path: /health, interval: 1s }\n",
            "    health_check: { kind: none }\n",
        );
    }

    pub fn write(&self) -> PathBuf {
        let d = self.dir.path();
        std::fs::write(d.join("gateway.yaml"), &self.gateway_yaml).unwrap();
        std::fs::write(d.join("tools.yaml"), &self.tools_yaml).unwrap();
        std::fs::write(d.join("policy.yaml"), &self.policy_yaml).unwrap();
        d.join("gateway.yaml")
    }

    /// `mcp-gateway run` (with `extra` arguments) on the files as written, its log in `log`.
    pub fn spawn(&self, extra: &[&str], log: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        Command::new(bin())
            .args(["--log-format", "text", "run"])
            .args(extra)
            .arg("-c")
            .arg(self.dir.path().join("gateway.yaml"))
            .envs(self.env.iter().cloned())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Starts the gateway and waits until it answers.
    pub async fn start(&self) -> Gateway {
        self.write();
        let child = self.spawn(&[], "gateway.log");
        let base = format!("http://127.0.0.1:{}", self.port);
        wait_http(&format!("{base}/healthz")).await;
        wait_http(&format!("http://127.0.0.1:{}/metrics", self.metrics_port)).await;
        wait_http(&format!("http://127.0.0.1:{}/metrics", self.metrics_port)).await;
        Gateway {
            proc: Proc {
                child,
                port: self.port,
            },
            base,
            metrics: format!("http://127.0.0.1:{}/metrics", self.metrics_port),
            log: self.dir.path().join("gateway.log"),
            dir: self.dir.clone(),
        }
    }

    /// Runs `mcp-gateway check` on this configuration: (success, stderr).
    pub fn check(&self) -> (bool, String) {
        let path = self.write();
        check_file(&path, &self.env)
    }
}

/// Runs `mcp-gateway ARGS -c CONFIG` to success; its standard output.
pub fn cli(args: &[&str], config: &Path, env: &[(String, String)]) -> String {
    let out = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn check_file(path: &Path, env: &[(String, String)]) -> (bool, String) {
    let out = Command::new(bin())
        .args(["--log-format", "text", "check", "-c"])
        .arg(path)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

pub struct Gateway {
    pub proc: Proc,
    pub base: String,
    pub metrics: String,
    pub log: PathBuf,
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
    /// A client of the `calculator` scope, as `user` with the developer role.
    pub fn developer(&self, user: &str) -> Client {
        Client::new(
            self.url("/calculator/mcp"),
            Some(token(user, &["developer"], json!({}))),
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it contains `needle` (lines are written by the gateway's log thread, a moment
    /// after the answer went out); panics with the whole log after 5 s.
    pub async fn log_with(&self, needle: &str) -> String {
        for _ in 0..100 {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{needle:?} never appeared in the log:\n{}", self.log_text());
    }

    /// Stops the gateway gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let pid = self.proc.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not stop within 30 s");
    }

    /// Replaces one of the gateway's files (relative to its directory), atomically as editors
    /// and Kubernetes do it (a new file renamed over the old one).
    pub fn write_file(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!(".{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Reloads counted so far, applied and refused.
    pub async fn reloads(&self) -> (f64, f64) {
        let m = self.metrics_text().await;
        (
            metric_or_zero(&m, "mcp_config_reloads_total{result=\"ok\"}"),
            metric_or_zero(&m, "mcp_config_reloads_total{result=\"rejected\"}"),
        )
    }

    /// Waits until a reload after `before` (from [`Gateway::reloads`]) is counted; returns
    /// `"ok"` or `"rejected"`. Panics after 10 s.
    pub async fn next_reload(&self, before: (f64, f64)) -> &'static str {
        for _ in 0..200 {
            let now = self.reloads().await;
            if now.1 > before.1 {
                return "rejected";
            }
            if now.0 > before.0 {
                return "ok";
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reload counted within 10 s:\n{}", self.log_text());
    }

    /// Sends `SIGHUP` and waits for the reload it asks for: `"ok"` or `"rejected"`.
    pub async fn sighup(&self) -> &'static str {
        let before = self.reloads().await;
        let pid = self.proc.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
        self.next_reload(before).await
    }

    /// The gateway's Prometheus page.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(&self.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The Prometheus page once `series` has reached `n` (requests are counted in the logging
    /// step, a moment after their answer is sent); the page as it is after 5 s otherwise.
    pub async fn metrics_when(&self, series: &str, n: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics_text().await;
            if metric_or_zero(&text, series) >= n || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The audit file's rows once there are at least `n` (the writer stores them a moment after
    /// the answers); panics with what is there after 5 s.
    pub async fn audit_rows(&self, n: usize) -> Vec<Value> {
        let rows = self.audit_rows_where(n, |_| true).await;
        assert!(rows.len() >= n, "fewer than {n} audit rows: {rows:?}");
        rows
    }

    /// The audit rows that match, once there are at least `n` (rows of other requests may be
    /// stored before them); what there is after 5 s otherwise.
    pub async fn audit_rows_where(&self, n: usize, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut rows = Vec::new();
        for _ in 0..100 {
            rows = self
                .audit_file_rows()
                .into_iter()
                .filter(&matches)
                .collect();
            if rows.len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rows
    }

    /// The audit rows written to the JSON-lines file.
    pub fn audit_file_rows(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Reads an SSE response until its first complete event, which must come while the stream is
/// still open (within 5 s): the proof that the gateway does not buffer the stream. Returns it.
pub async fn first_event_while_open(r: reqwest::Response) -> String {
    use futures_util::StreamExt;
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("\n\n") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        first,
        Ok(true),
        "no complete event while the stream is open: {seen:?}"
    );
    assert!(!sse_events(&seen).is_empty());
    seen
}

/// A signed HS256 token with the test issuer and audience; `extra` overrides claims.
pub fn token(user: &str, roles: &[&str], extra: Value) -> String {
    let t = now();
    let mut claims = json!({"sub": user, "roles": roles, "iss": ISSUER, "aud": AUDIENCE, "iat": t, "exp": t + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A client posting JSON-RPC as MCP clients do.
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
    pub session: Option<String>,
    pub version: Option<&'static str>,
}

impl Client {
    pub fn new(url: String, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url,
            token,
            session: None,
            version: None,
        }
    }

    pub fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, &self.url)
            .header("Accept", "application/json, text/event-stream")
            .timeout(Duration::from_secs(20));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            r = r.header("Mcp-Session-Id", s);
        }
        if let Some(v) = self.version {
            r = r.header("MCP-Protocol-Version", v);
        }
        r
    }

    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.request(reqwest::Method::POST)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, body: &Value) -> reqwest::Response {
        self.post_raw(body.to_string()).await
    }

    /// Opens the session's server-to-client stream (GET), as a client does after initializing.
    pub async fn open_stream(&self) -> reqwest::Response {
        self.request(reqwest::Method::GET)
            .header("Accept", "text/event-stream")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap()
    }

    /// `initialize` + `notifications/initialized`; keeps the session id.
    pub async fn initialize(&mut self) -> Value {
        let r = self
            .post(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}))
            .await;
        assert_eq!(r.status(), 200);
        self.session = r
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        let v = rpc_body(r).await;
        self.version = Some("2025-06-18");
        let n = self
            .post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(n.status(), 202);
        v
    }

    pub async fn call(&self, id: u64, tool: &str, args: Value) -> reqwest::Response {
        self.post(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})).await
    }
}

/// Splits an SSE body into events (each a list of (field, value) lines).
pub fn sse_events(text: &str) -> Vec<Vec<(String, String)>> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .map(|l| match l.split_once(':') {
                    Some((k, v)) => (k.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                    None => (l.to_string(), String::new()),
                })
                .collect()
        })
        .collect()
}

/// The JSON-RPC message of a response, whether it came as JSON or as an SSE stream (the event
/// whose data is a response).
pub async fn rpc_body(r: reqwest::Response) -> Value {
    let sse = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    if !sse {
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    }
    for event in sse_events(&text) {
        let data: String = event
            .iter()
            .filter(|(k, _)| k == "data")
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(v) = serde_json::from_str::<Value>(&data) {
            if v.get("id").is_some() {
                return v;
            }
        }
    }
    panic!("no JSON-RPC response in SSE stream: {text}");
}

/// The names in a tools/list result.
pub fn tool_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {v}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// A throwaway `redis-server` on a free loopback port, no persistence.
pub struct Redis {
    pub proc: Proc,
    pub url: String,
}

impl Redis {
    pub async fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            proc: Proc { child, port },
            url: format!("redis://127.0.0.1:{port}/"),
        }
    }
}

/// Serves a test upstream's router on a free loopback port; `make` gets the port (for upstreams
/// that name themselves).
pub async fn serve_router(make: impl FnOnce(u16) -> axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = make(port);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// A sample's value from Prometheus text. A series that is absent fails the test: a typo in a
/// label or a counter that was never touched must not read as 0. Use [`metric_or_zero`] where a
/// test means "not counted yet".
pub fn metric(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("metric series {series} is absent:\n{text}"))
}

/// A sample's value, 0 when the series does not exist (yet).
pub fn metric_or_zero(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .filter(|rest| rest.starts_with(' '))
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// `text` with `from` replaced by `to`; a test that edits a configuration key that is not there
/// fails instead of silently testing the unedited file.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the text to edit has no {from:?}:\n{text}"
    );
    text.replace(from, to)
}

/// Runs a client script of `tests/clients/` with the official Python SDK and returns the one JSON
/// object it prints (what the client saw); a failing script fails the test with its stderr.
pub async fn python_client_script(script: &str, args: &[&str], env: &[(String, String)]) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = tokio::process::Command::new(sdk_python())
        .arg(&path)
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .await
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// A Python with the packages of `tests/REQUIREMENTS` at their pinned versions: the machine's
/// `python3` when it has them (`.ci/run` may install them there), else the virtual environment
/// `tests/VENV`, made from the requirements on first use, so `cargo test` sets itself up on a
/// fresh machine. The environment is built under a temporary name and renamed into place, so test
/// processes that start at once (the mutex covers threads, the rename covers processes) never run
/// a half-installed one.
fn python_with(requirements: &str, venv: &str, try_system: bool) -> PathBuf {
    static MAKE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let reqs = root.join("tests").join(requirements);
    let venv = root.join("tests").join(venv);
    let python = venv.join("bin/python");
    let _once = MAKE.lock().unwrap_or_else(|p| p.into_inner());
    if python.exists() {
        return python;
    }
    if try_system && has_pinned(std::path::Path::new("python3"), &reqs) {
        return PathBuf::from("python3");
    }
    let building = venv.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&building)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(building.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&reqs)
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        made,
        "cannot make {} from {}",
        venv.display(),
        reqs.display()
    );
    if std::fs::rename(&building, &venv).is_err() {
        // Another test process finished first: use its environment.
        let _ = std::fs::remove_dir_all(&building);
    }
    assert!(python.exists(), "{} has no bin/python", venv.display());
    python
}

/// Whether `python` has every `name==version` line of `requirements` installed at that version.
fn has_pinned(python: &std::path::Path, requirements: &std::path::Path) -> bool {
    const CHECK: &str = "import sys, importlib.metadata as m\n\
for line in open(sys.argv[1]):\n\
    line = line.split('#')[0].strip()\n\
    if line:\n\
        name, version = line.split('==')\n\
        if m.version(name) != version: sys.exit(1)\n";
    Command::new(python)
        .args(["-c", CHECK])
        .arg(requirements)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python the test clients and test servers run on: the official SDK of
/// `tests/requirements.txt` (see `python_with`).
pub fn sdk_python() -> PathBuf {
    python_with("requirements.txt", ".venv", true)
}

/// The Python of `tests/.venv-mcp1` (the 1.x SDK with its task API, and the OpenAPI validator),
/// made from `tests/requirements-mcp1.txt` on first use.
fn mcp1_python_path() -> PathBuf {
    python_with("requirements-mcp1.txt", ".venv-mcp1", false)
}

/// Runs a client script of `tests/clients` with the 1.x Python SDK; returns what it printed.
pub async fn mcp1_python(script: &str, args: &[&str]) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    run_python(mcp1_python_path(), &[path.to_str().unwrap()], args).await
}

/// Runs Python code in the same environment; returns what it printed (JSON).
pub async fn mcp1_python_code(code: &str, args: &[&str]) -> Value {
    run_python(mcp1_python_path(), &["-c", code], args).await
}

async fn run_python(python: PathBuf, first: &[&str], args: &[&str]) -> Value {
    let out = tokio::process::Command::new(python)
        .args(first)
        .args(args)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{first:?}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// `tests/node/` with its locked npm packages installed (`npm ci` when one is missing, as on a
/// fresh clone): the TypeScript SDK client and the reference MCP servers the stdio tests run.
pub fn node_dir() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let packages = ["client", "server-everything", "server-memory"];
    let installed = packages.iter().all(|p| {
        dir.join("node_modules/@modelcontextprotocol")
            .join(p)
            .exists()
    }) && dir.join("node_modules/playwright-core").exists();
    if !installed {
        let ok = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js and npm: .ci/run installs them)");
        assert!(ok.success(), "npm ci in tests/node failed");
    }
    dir
}

/// Runs the official TypeScript SDK client (`tests/node/client.mjs`) and returns what it saw.
pub async fn node_client(url: &str, token: &str, mode: &str) -> Value {
    let dir = node_dir();
    let out = tokio::process::Command::new("node")
        .arg(dir.join("client.mjs"))
        .args([url, token, mode])
        .env("BRIDGE_BIN", bin())
        .output()
        .await
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node client {mode}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// Runs a script of `tests/node` with `args`; returns what it printed (JSON).
pub async fn node_script(script: &str, args: &[&str]) -> Value {
    let dir = node_dir();
    let out = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .output()
        .await
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node {script}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// What an analyst's client must have seen through the test gateway (policy `analyst`:
/// `calculator/exact_calculate` only): the one tool listed, the call answered `1 + 2 = 3`, and
/// `statistics` refused exactly like a tool that does not exist.
pub fn assert_analyst_view(seen: &Value, label: &str) {
    assert_eq!(seen["tools"], json!(["exact_calculate"]), "{label}: {seen}");
    assert_eq!(
        seen["call"]["structuredContent"]["result"], "3",
        "{label}: {seen}"
    );
    let refused = seen["refused_error"]
        .as_str()
        .unwrap_or_else(|| panic!("{label}: statistics was not refused: {seen}"));
    assert!(
        refused.contains("Unknown tool: statistics"),
        "{label}: {refused}"
    );
}
