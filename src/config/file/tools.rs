//! `conf/tools.yaml`: scopes, their upstreams and tools.

use super::{default_true, duration, opt_duration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `conf/tools.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    pub scopes: BTreeMap<String, ScopeFile>,
    /// Guards every scope has unless it sets its own.
    #[serde(default)]
    pub guards: Option<GuardsFile>,
}

/// `guards:`: secrets and personal data found in arguments and results, and what is done.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardsFile {
    /// Detector group (`secrets`, `pii`) or detector name → action on a call's arguments
    /// (`block`, `redact`, `audit`).
    #[serde(default)]
    pub arguments: BTreeMap<String, GuardAction>,
    /// The same on results (`redact`, `block`, `audit`).
    #[serde(default)]
    pub results: BTreeMap<String, GuardAction>,
    #[serde(default)]
    pub custom: Vec<CustomDetectorFile>,
    #[serde(default)]
    pub webhook: Option<GuardWebhookFile>,
    /// Results larger than this are not inspected but replaced by a tool error (default 4 MiB).
    #[serde(default)]
    pub max_result_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    Block,
    Redact,
    Audit,
}

/// A named regular expression of the operator's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorFile {
    pub name: String,
    pub pattern: String,
    #[serde(default)]
    pub arguments: Option<GuardAction>,
    #[serde(default)]
    pub results: Option<GuardAction>,
}

/// An external check of each call's arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardWebhookFile {
    pub url: String,
    #[serde(default = "default_webhook_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub on_error: WebhookOnError,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_millis(200)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOnError {
    #[default]
    Deny,
    Allow,
}

/// One scope: the endpoint `/NAME/sse` and `/NAME/mcp`, its upstreams and the tools it exposes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeFile {
    /// Where the scope's MCP servers are (or `servers:`, for a composed scope).
    #[serde(default)]
    pub upstreams: Vec<UpstreamFile>,
    /// A composed scope: several servers behind this one endpoint, each with its own upstreams
    /// and how its tools are named here. A scope has either `upstreams:` or `servers:`.
    #[serde(default)]
    pub servers: Vec<ServerFile>,
    /// `all` (default): `tools/list` shows every tool the caller may call; `search`: it shows only
    /// `search_tools` and `call_tool`, which find and call the caller's tools through the same
    /// checks as a direct call.
    #[serde(default)]
    pub discovery: Discovery,
    #[serde(default)]
    pub balance: Balance,
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    /// Take an upstream out of rotation after consecutive failures.
    #[serde(default)]
    pub outlier: Option<OutlierFile>,
    /// Longest silence while waiting for upstream bytes (an idle timeout for SSE streams).
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
    /// Longest a non-streaming answer may take in all (SSE streams have only the idle `timeout`).
    #[serde(default, with = "opt_duration")]
    pub total_timeout: Option<Duration>,
    /// The tools this scope exposes; nothing else is ever shown or callable. Each is a name, or
    /// `{name, sha256}` to pin the definition approved for it. A composed scope lists them under
    /// each server instead.
    #[serde(default)]
    pub tools: Option<Vec<ToolFile>>,
    /// What a tool definition other than the approved one gets: `warn` (default: served, logged,
    /// counted), `strict` (hidden from `tools/list` and refused until approved) or `off`.
    #[serde(default)]
    pub pin: PinMode,
    /// Check `tools/call` arguments against the served definition's `inputSchema`.
    #[serde(default = "default_true")]
    pub validate_arguments: bool,
    /// The largest `arguments` validated, in bytes of JSON: a call with larger arguments is
    /// refused (-32602) rather than passed unchecked, and validating builds a tree of the whole
    /// document, so this bounds the memory and time one call can take. A scope taking large
    /// documents raises it (or sets `validate_arguments: false`).
    #[serde(default = "default_validate_max")]
    pub validate_arguments_max_bytes: u64,
    /// JSON-RPC methods beyond the MCP ones the gateway knows that may reach this scope's
    /// upstreams (for callers with a grant in the scope). Any other unknown method is refused.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// The protocol revision this scope's upstreams speak, when they speak only one era: older
    /// than 2026-07-28 (2026-07-28 clients are bridged: the gateway's own upstream sessions, a
    /// gateway-made `server/discover`, `resultType` on results), or `2026-07-28` (2025 clients
    /// are bridged: a gateway-made `initialize`, the `_meta` envelope and routing headers added).
    /// Unset: requests pass in the revision the client speaks.
    #[serde(default)]
    pub upstream_version: Option<String>,
    /// TLS toward this scope's `https` upstreams (files relative to this file).
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
    /// Who runs task-augmented `tools/call`s (`params.task`) and answers `tasks/*`: `gateway`
    /// (default; works with any upstream: the gateway runs the call in the background and keeps
    /// the task, owned by its caller) or `upstream` (the upstream implements tasks itself; the
    /// task methods pass through inside the caller's own session).
    #[serde(default)]
    pub tasks: TaskMode,
    /// Guards of this scope (instead of the file's `guards:`).
    #[serde(default)]
    pub guards: Option<GuardsFile>,
}

/// One server of a composed scope: a named group of upstreams with its own balance, health check,
/// timeouts and TLS, and how its tools and prompts are named in the scope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// 1-32 of a-z 0-9 _ -, unique in the scope (audit rows and metrics name it).
    pub name: String,
    pub upstreams: Vec<UpstreamFile>,
    /// What goes before each of its tool and prompt names: a text (`"files_"`), `auto` (the
    /// server's name and `_`, the default) or `none`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Shown names of single tools, instead of the prefixed name: `{read_text_file: read}`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Descriptions shown instead of the server's own: `{read_text_file: "Reads a shared file"}`.
    #[serde(default)]
    pub description: BTreeMap<String, String>,
    /// The server's tools this scope exposes, by the server's own names (`{name, sha256}` pins
    /// the definition, as on a scope).
    pub tools: Vec<ToolFile>,
    #[serde(default)]
    pub balance: Balance,
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    #[serde(default)]
    pub outlier: Option<OutlierFile>,
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
}

/// `discovery:` of a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    #[default]
    All,
    Search,
}

/// One entry of a scope's `tools:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolFile {
    Name(String),
    Pinned(PinnedToolFile),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedToolFile {
    pub name: String,
    /// The approved definition's SHA-256 (`mcp-gateway tools show SCOPE/TOOL` prints it).
    #[serde(default)]
    pub sha256: Option<String>,
}

impl ToolFile {
    pub fn name(&self) -> &str {
        match self {
            ToolFile::Name(n) => n,
            ToolFile::Pinned(p) => &p.name,
        }
    }
    pub fn sha256(&self) -> Option<&str> {
        match self {
            ToolFile::Name(_) => None,
            ToolFile::Pinned(p) => p.sha256.as_deref(),
        }
    }
}

/// `pin:` of a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    Strict,
    #[default]
    Warn,
    Off,
}

/// `tasks:` of a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskMode {
    #[default]
    Gateway,
    Upstream,
}

/// `tls:` of a scope: how the gateway verifies its `https` upstreams and what it presents to them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// PEM CAs the upstreams' certificates must chain to, instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to upstreams that require a client certificate.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its PEM private key.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The name checked in the upstreams' certificates and sent as SNI, when not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Passive outlier ejection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    /// Failures in a row (connect errors, 5xx, timeouts) that eject an upstream.
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// How long it stays out; then it is on probation (one more failure ejects it again).
    #[serde(default = "default_cooldown", with = "duration")]
    pub cooldown: Duration,
}

fn default_consecutive() -> u32 {
    5
}
fn default_cooldown() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// An MCP server the gateway connects to.
    #[serde(default)]
    pub url: Option<String>,
    /// Or a tool process the gateway starts, supervises and stops: arguments to the gateway's
    /// own binary, e.g. `[tool, calculator]`. It listens on a free loopback port.
    #[serde(default)]
    pub spawn: Option<Vec<String>>,
    /// Or a stdio MCP server: the program and its arguments, e.g.
    /// `[npx, -y, "@modelcontextprotocol/server-everything"]`, run behind the gateway's stdio
    /// adapter (`mcp-gateway stdio`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// The program's environment (besides `PATH`, `HOME`, locale and `TMPDIR`); values may be
    /// `${VAR}` from the gateway's. Nothing else of the gateway's environment is passed.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// The program's working directory (relative to the tools file).
    #[serde(default)]
    pub cwd: Option<std::path::PathBuf>,
    /// How many processes of the program, balanced like any upstreams (default 1).
    #[serde(default)]
    pub instances: Option<usize>,
    /// How clients share a process: `shared` (one process serves every client) or
    /// `per_client` (a process of each client session's own).
    #[serde(default)]
    pub session: Option<StdioSession>,
    /// `per_client`: the most processes at once (default 16); a client beyond them is refused.
    #[serde(default)]
    pub max_processes: Option<usize>,
    /// `per_client`: a session's process stops after this long without a request (default 5m).
    #[serde(default, with = "opt_duration")]
    pub idle_timeout: Option<Duration>,
    /// Each process's resource limits (`rlimit`, set by `prlimit` before the program starts).
    #[serde(default)]
    pub limits: Option<StdioLimitsFile>,
    /// Runs each process in a bubblewrap sandbox (`bwrap` must be installed).
    #[serde(default)]
    pub sandbox: Option<SandboxFile>,
    /// How often each process is pinged once initialized; three pings in a row without an
    /// answer (each waited for up to the interval, 10 s at most) and it is replaced (default 15s;
    /// 0s: never).
    #[serde(default, with = "opt_duration")]
    pub ping_interval: Option<Duration>,
    /// Headers sent to this upstream only: an API key, a team name. Values are `${VAR}` from the
    /// gateway's environment or sealed (`enc:v1:…`, printed by `mcp-gateway encrypt`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How the gateway authenticates to this upstream besides `headers:`.
    #[serde(default, deserialize_with = "upstream_auth")]
    pub auth: Option<UpstreamAuthFile>,
    #[serde(default = "default_weight")]
    pub weight: usize,
    /// How the upstream speaks MCP: `streamable_http` (default) or `sse`, the legacy HTTP+SSE
    /// transport (its `url` is the SSE endpoint, e.g. `http://host:8000/sse`).
    #[serde(default)]
    pub transport: UpstreamTransport,
}

pub use crate::protocol::StdioSession;

/// `auth:` of an upstream: `per_user_oauth`, or a map of one kind to its settings
/// (`{ oauth_client_credentials: {…} }`).
#[derive(Debug, Clone)]
pub enum UpstreamAuthFile {
    /// A machine token of the gateway's own (OAuth client credentials grant), cached and
    /// refreshed before it expires.
    OauthClientCredentials(ClientCredentialsFile),
    /// Each user's own token at the upstream, after their consent.
    PerUserOauth(PerUserOauthFile),
    /// The caller's token exchanged for one bound to the upstream (RFC 8693).
    TokenExchange(TokenExchangeFile),
}

fn upstream_auth<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<UpstreamAuthFile>, D::Error> {
    use serde::de::Error;
    use serde_yaml_ng::Value;
    const KINDS: &str =
        "per_user_oauth, { per_user_oauth: {…} }, { oauth_client_credentials: {…} } or { token_exchange: {…} }";
    let v = Value::deserialize(d)?;
    let (kind, settings) = match &v {
        Value::String(s) if s == "per_user_oauth" => {
            return Ok(Some(UpstreamAuthFile::PerUserOauth(
                PerUserOauthFile::default(),
            )))
        }
        Value::Mapping(m) if m.len() == 1 => m
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .unwrap_or_default(),
        _ => return Err(D::Error::custom(format!("expected {KINDS}"))),
    };
    match kind {
        Some("oauth_client_credentials") => serde_yaml_ng::from_value(settings)
            .map(|c| Some(UpstreamAuthFile::OauthClientCredentials(c)))
            .map_err(|e| D::Error::custom(format!("oauth_client_credentials: {e}"))),
        Some("per_user_oauth") => serde_yaml_ng::from_value(settings)
            .map(|c| Some(UpstreamAuthFile::PerUserOauth(c)))
            .map_err(|e| D::Error::custom(format!("per_user_oauth: {e}"))),
        Some("token_exchange") => serde_yaml_ng::from_value(settings)
            .map(|c| Some(UpstreamAuthFile::TokenExchange(c)))
            .map_err(|e| D::Error::custom(format!("token_exchange: {e}"))),
        _ => Err(D::Error::custom(format!("expected {KINDS}"))),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsFile {
    pub token_url: String,
    pub client_id: String,
    /// `${VAR}` or sealed (`enc:v1:…`).
    pub client_secret: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    /// How the client authenticates at the token endpoint: `basic` (default, HTTP Basic) or
    /// `post` (`client_id` and `client_secret` in the form).
    #[serde(default)]
    pub client_auth: TokenClientAuth,
}

/// `auth: per_user_oauth` or `auth: { per_user_oauth: … }`: each user signs in to the upstream's
/// own authorization server on the gateway's consent page. Without `client_id` the gateway
/// registers itself (dynamic client registration).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerUserOauthFile {
    /// The gateway's client id at the upstream's authorization server, when registered by hand.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `${VAR}` or sealed (`enc:v1:…`); for a confidential client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// OAuth scopes to ask the user for (default: what the upstream's metadata lists).
    #[serde(default)]
    pub scope: Option<String>,
    /// The upstream's authorization server, for an upstream that publishes no protected-resource
    /// metadata (default: found through that metadata).
    #[serde(default)]
    pub authorization_server: Option<String>,
    /// The resource to ask tokens for (default: what the metadata says, else the upstream's URL).
    #[serde(default)]
    pub resource: Option<String>,
}

/// `auth: { token_exchange: … }` (RFC 8693): the caller's token exchanged at `token_url` for one
/// whose audience is `audience`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeFile {
    pub token_url: String,
    pub audience: String,
    #[serde(default)]
    pub scope: Option<String>,
    /// The gateway as a client of the token endpoint, when it asks for one.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `${VAR}` or sealed (`enc:v1:…`).
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_auth: TokenClientAuth,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenClientAuth {
    #[default]
    Basic,
    Post,
}

/// `limits:` of a `command:` upstream, per process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioLimitsFile {
    /// Its data segment and private memory in MiB (`RLIMIT_DATA`); unset: no limit.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Files and sockets it may hold open (`RLIMIT_NOFILE`; default 1024).
    #[serde(default)]
    pub open_files: Option<u64>,
}

/// `sandbox:` of a `command:` upstream: the filesystem read-only except `writable`, a private
/// `/tmp`, the gateway's configuration directory and `hidden` out of sight, no network unless
/// `network: true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    #[serde(default)]
    pub writable: Vec<PathBuf>,
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
    #[serde(default)]
    pub network: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamTransport {
    #[default]
    StreamableHttp,
    Sse,
}

fn default_weight() -> usize {
    1
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    Random,
    /// Ketama consistent hashing on the caller's user id.
    Consistent,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    #[serde(default)]
    pub kind: HealthCheckKind,
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_health_interval", with = "duration")]
    pub interval: Duration,
}

fn default_health_path() -> String {
    "/health".into()
}
fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `GET path` must answer 2xx (the bundled tools serve `/health`).
    #[default]
    Http,
    /// The upstream accepts a connection: works for any server, and is the check a scope gets
    /// when it names none.
    Tcp,
    /// No active check (passive ejection still applies).
    None,
}

fn default_validate_max() -> u64 {
    256 * 1024
}
