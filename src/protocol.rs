//! MCP's own names, shared by every layer: the protocol revisions the gateway serves, the keys of
//! the 2026-07-28 request envelope, and the method names the gateway treats specially. One
//! definition, so a typo cannot make a method slip past a check.

use serde_json::{json, Value};

/// Protocol versions the gateway serves.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25", MODERN_VERSION];
/// The revisions with sessions (`initialize`): all but the stateless one.
pub const SESSION_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// The stateless revision: every request carries its protocol version and the client's
/// capabilities in `params._meta`, and names its method (and tool, prompt or resource) in headers.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The `_meta` keys of the 2026-07-28 per-request envelope.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// The 2026-07-28 tasks extension, as clients declare it in `capabilities.extensions`.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// The version a client that sends no `MCP-Protocol-Version` header is assumed to speak.
pub const DEFAULT_VERSION: &str = "2025-03-26";

/// Between the gateway and its stdio adapter (`mcp-gateway stdio`): the variable that carries the
/// program to run, a [`StdioProgram`] as JSON. Its values may be secrets, which never appear on a
/// command line.
pub const STDIO_PROGRAM_VAR: &str = "MCP_GATEWAY_STDIO_PROGRAM";

/// What the gateway hands its stdio adapter in [`STDIO_PROGRAM_VAR`]: written by the
/// configuration, read by the adapter. No `Debug`: `env` may hold secrets.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioProgram {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<std::path::PathBuf>,
    #[serde(default)]
    pub session: StdioSession,
    /// `per_client`: the most processes at once.
    #[serde(default)]
    pub max_processes: Option<usize>,
    /// `per_client`: a session's process stops after this long without a call in flight.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// `RLIMIT_DATA` of each process, in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// `RLIMIT_NOFILE` of each process.
    #[serde(default)]
    pub open_files: Option<u64>,
    /// The bubblewrap sandbox each process runs in.
    #[serde(default)]
    pub sandbox: Option<StdioSandbox>,
    /// How often each process is pinged (0: never).
    #[serde(default)]
    pub ping_ms: Option<u64>,
}

/// A stdio program's sandbox: paths it may write, paths it may not see, whether it has a network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StdioSandbox {
    #[serde(default)]
    pub writable: Vec<std::path::PathBuf>,
    #[serde(default)]
    pub hidden: Vec<std::path::PathBuf>,
    #[serde(default)]
    pub network: bool,
}

/// How the clients of a stdio program share its processes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdioSession {
    /// One process serves every client; requests are multiplexed.
    #[default]
    Shared,
    /// One process per client session, started at its `initialize`.
    PerClient,
}

/// Method names the gateway reads, decides on or sends itself.
pub mod method {
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCE_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    pub const TASKS_GET: &str = "tasks/get";
    pub const TASKS_RESULT: &str = "tasks/result";
    pub const TASKS_CANCEL: &str = "tasks/cancel";
    pub const TASKS_LIST: &str = "tasks/list";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// 2026-07-28: a stream of the server's change notifications (list changes, resource updates).
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
}

/// A value for `Mcp-Name` / `Mcp-Method`: as it is when plain printable ASCII, else
/// `=?base64?…?=` as the revision says.
pub fn encode_header_value(value: &str) -> String {
    use base64::Engine;
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?");
    if plain {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// The 2026-07-28 envelope the gateway sends as a client of its own.
pub fn own_envelope() -> Value {
    json!({
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_CAPABILITIES: {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// A listener of the gateway's own MCP servers (bundled tools, stdio adapters, composers) whose
/// connections send at once (`TCP_NODELAY`): with Nagle's algorithm on, an answer written in
/// several pieces (an event stream) waits for the proxy's delayed ACK, ~40 ms per answer.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    let tap: fn(&mut tokio::net::TcpStream) = |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    };
    listener.tap_io(tap)
}

/// Whether a request carries the gateway's secret in `X-Gateway-Auth` (compared in constant
/// time): what every server of the gateway's own (the bundled tools, the stdio adapter, the
/// composer of a composed scope) asks.
pub fn from_gateway(headers: &http::HeaderMap, secret: &str) -> bool {
    use subtle::ConstantTimeEq;
    let given = headers
        .get("x-gateway-auth")
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    bool::from(given.ct_eq(secret.as_bytes()))
}
