//! The YAML file formats operators edit. Every struct rejects unknown fields so a typo is an error
//! that names the field, never a silently ignored setting. `config::validate` turns them into the
//! [`crate::config::Config`] model.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `conf/gateway.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Address of one plain-HTTP listener (shorthand for `listeners: [{address: ...}]`).
    #[serde(default)]
    pub listen: Option<String>,
    /// The proxy's listeners, each plain HTTP or TLS (HTTP/2 and HTTP/1.1 by ALPN).
    #[serde(default)]
    pub listeners: Vec<ListenerFile>,
    /// Address of the Prometheus metrics listener (kept apart from client traffic).
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// The scopes file, relative to this file.
    pub tools_file: PathBuf,
    /// The policy file, relative to this file.
    pub policy_file: PathBuf,
    /// Worker threads of the proxy service.
    #[serde(default)]
    pub threads: Option<usize>,
    /// How often the configuration files (and the files they name) are checked for changes; a
    /// change is validated and applied without a restart. `0s` leaves reloading to `SIGHUP`.
    #[serde(default = "default_watch_interval", with = "duration")]
    pub watch_interval: Duration,
    /// How long a graceful shutdown waits for requests in flight.
    #[serde(default = "default_grace", with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(default)]
    pub limits: LimitsFile,
    pub jwt: JwtFile,
    /// Secret sent to upstream tool servers in `X-Gateway-Auth`.
    #[serde(default)]
    pub upstream_shared_secret: Option<String>,
    /// Key material for the signed session ids clients see; every instance behind one address
    /// must share it. Several can be given: the first seals, all open (key rotation).
    #[serde(default)]
    pub session_secrets: Vec<String>,
    /// A file of generated development secrets, used for any secret not otherwise configured;
    /// created on first start. Leave unset in production so a missing secret is an error.
    #[serde(default)]
    pub dev_secrets_file: Option<PathBuf>,
    /// The public base URL clients use (for the protected-resource metadata); by default derived
    /// from the request's `Host`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Addresses (IP or CIDR) of proxies in front of the gateway whose `X-Forwarded-For` and
    /// `Forwarded` headers are kept (the peer is appended); from anyone else they are replaced.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// OAuth authorization servers named in the protected-resource metadata.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Request and answer headers forwarded beyond the built-in allow-lists.
    #[serde(default)]
    pub forward_headers: super::headers::ForwardHeadersFile,
    /// Browser origins allowed to call; a request with any other `Origin` gets 403.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub audit: AuditFile,
    /// A shared store that makes rate limits hold across gateway instances.
    #[serde(default)]
    pub rate_limit_store: Option<RateLimitStoreFile>,
    /// Client connection limits, enforced before any request is read.
    #[serde(default)]
    pub connections: ConnectionsFile,
    /// The development authorization server (`mcp-gateway issuer`; started by `run` too). Its
    /// tokens are trusted by this gateway; leave it out in production.
    #[serde(default)]
    pub dev_issuer: Option<DevIssuerFile>,
    /// The Unix socket a new process takes the listening sockets over (`run --upgrade`); by
    /// default `$TMPDIR/mcp-gateway-<first listener port>.sock`.
    #[serde(default)]
    pub upgrade_socket: Option<PathBuf>,
    /// Background tool calls: MCP tasks and the REST job API.
    #[serde(default)]
    pub jobs: JobsFile,
    /// The tool registry: how often the gateway reads its upstreams' tools and the approvals.
    #[serde(default)]
    pub registry: RegistryFile,
}

/// `registry:` in gateway.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// How often every scope's tools are read from each healthy upstream (besides at start and
    /// after each reload; the definitions in passing `tools/list` answers are read always).
    #[serde(default = "default_registry_refresh", with = "duration")]
    pub refresh: Duration,
    /// How often approvals (`mcp-gateway tools approve`, any instance) are read from the store.
    #[serde(default = "default_registry_sync", with = "duration")]
    pub sync: Duration,
}

impl Default for RegistryFile {
    fn default() -> Self {
        Self {
            refresh: default_registry_refresh(),
            sync: default_registry_sync(),
        }
    }
}

fn default_registry_refresh() -> Duration {
    Duration::from_secs(60)
}
fn default_registry_sync() -> Duration {
    Duration::from_secs(2)
}

/// One entry of `listeners:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// `IP:port`.
    pub address: String,
    /// TLS termination; without it the listener speaks plain HTTP/1.1.
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

/// `listeners[].tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain, leaf first; relative to gateway.yaml.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_file: PathBuf,
    /// Lowest TLS version accepted: "1.2" (default) or "1.3".
    #[serde(default)]
    pub min_version: Option<String>,
    /// PEM certificates of the CAs that sign client certificates (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `optional` (a client certificate, when sent, must verify) or `required`.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// Whether a TLS listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    Optional,
    Required,
}

/// `dev_issuer:` in gateway.yaml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIssuerFile {
    /// Address it listens on; a loopback address unless `insecure_dev` is set.
    pub listen: String,
    /// Its public URL (the `iss` of its tokens); by default `http://` + `listen`.
    #[serde(default)]
    pub url: Option<String>,
    /// When set, `POST /token` with a JSON body needs `X-Issuer-Token: <this>` (env
    /// `MCP_GATEWAY_ISSUER_TOKEN`).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Allows a non-loopback `listen`: anyone who reaches it can log in as anyone.
    #[serde(default)]
    pub insecure_dev: bool,
    /// Lifetime of the tokens it issues.
    #[serde(default = "default_issuer_ttl", with = "duration")]
    pub token_ttl: Duration,
}

fn default_watch_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_issuer_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// `connections:` in gateway.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    /// Client connections held at once (kept below the file-descriptor limit, which the gateway
    /// raises to its hard maximum at start-up).
    #[serde(default = "default_max_connections")]
    pub max: usize,
    /// Client connections held at once from one IP address.
    #[serde(default = "default_max_per_address")]
    pub max_per_address: usize,
    /// Longest time from a connection's start (or a keep-alive request's first byte) to a
    /// complete request head.
    #[serde(default = "default_head_timeout", with = "duration")]
    pub head_timeout: Duration,
    /// How long an idle keep-alive connection waits for its next request.
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// Longest time from a complete request head to the body's last byte.
    #[serde(default = "default_body_timeout", with = "duration")]
    pub body_timeout: Duration,
    /// Slowest a body may arrive, in bytes per second: a body of N bytes gets
    /// 1 s + N / body_min_rate (at most `body_timeout`), so a trickle is cut long before it.
    #[serde(default = "default_body_min_rate")]
    pub body_min_rate: u64,
    /// Requests of one user whose body is still arriving, at most: beyond it the request is
    /// answered 429 at once, so one token cannot hold thousands of connections on slow bodies.
    #[serde(default = "default_bodies_per_user")]
    pub bodies_per_user: u32,
}

impl Default for ConnectionsFile {
    fn default() -> Self {
        Self {
            max: default_max_connections(),
            max_per_address: default_max_per_address(),
            head_timeout: default_head_timeout(),
            idle_timeout: default_idle_timeout(),
            body_timeout: default_body_timeout(),
            body_min_rate: default_body_min_rate(),
            bodies_per_user: default_bodies_per_user(),
        }
    }
}

fn default_max_connections() -> usize {
    10_000
}
fn default_max_per_address() -> usize {
    1_000
}
fn default_head_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_min_rate() -> u64 {
    4096
}
fn default_bodies_per_user() -> u32 {
    64
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `rate_limit_store:` in gateway.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitStoreFile {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Longest wait for Redis on a request.
    #[serde(default = "default_store_timeout", with = "duration")]
    pub timeout: Duration,
    /// When Redis cannot answer: `local` limits, or `refuse` (503).
    #[serde(default)]
    pub on_error: StoreFallback,
}

fn default_store_timeout() -> Duration {
    Duration::from_millis(50)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFallback {
    #[default]
    Local,
    Refuse,
}

/// `audit:` in gateway.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// `false` records nothing (for benchmarks and throwaway setups).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// PostgreSQL URL; `DATABASE_URL` in the environment wins. Unset: rows go to `file`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// JSON-lines file used when no database is configured.
    #[serde(default = "default_audit_file")]
    pub file: PathBuf,
    /// Where batches wait while PostgreSQL is down or slow; replayed in order when it is back.
    #[serde(default = "default_spool_file")]
    pub spool_file: PathBuf,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long the writer gathers rows for one batch once the first has arrived. Short: the
    /// database's work per batch runs in small bursts instead of long ones that, on a shared
    /// machine, delay the proxy threads (50 ms added ~2 ms to the p99 at half load; 5 ms ~0.5 ms,
    /// for ~18% more database CPU per row).
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// What happens when the queue is full.
    #[serde(default)]
    pub on_queue_full: OnQueueFull,
    /// How tool arguments are recorded.
    #[serde(default)]
    pub arguments: ArgumentsFile,
    /// Key id written into encrypted envelopes; the key itself is `MCP_GATEWAY_AUDIT_KEY`.
    #[serde(default = "default_key_id")]
    pub arguments_key_id: String,
    /// Rows older than this many days are deleted (in bounded batches); 0 keeps everything.
    #[serde(default)]
    pub retention_days: u32,
    /// Apply `migrations/` at start-up.
    #[serde(default = "default_true")]
    pub migrate_on_start: bool,
    /// Name of this gateway instance in the rows (default: the host name).
    #[serde(default)]
    pub instance: Option<String>,
}

impl Default for AuditFile {
    fn default() -> Self {
        Self {
            enabled: true,
            database_url: None,
            file: default_audit_file(),
            spool_file: default_spool_file(),
            queue_capacity: default_queue_capacity(),
            batch_size: default_batch_size(),
            flush_interval: default_flush_interval(),
            on_queue_full: OnQueueFull::default(),
            arguments: ArgumentsFile::default(),
            arguments_key_id: default_key_id(),
            retention_days: 0,
            migrate_on_start: true,
            instance: None,
        }
    }
}

fn default_audit_file() -> PathBuf {
    "../var/audit.jsonl".into()
}
fn default_spool_file() -> PathBuf {
    "../var/audit-spool.jsonl".into()
}
fn default_queue_capacity() -> usize {
    10_000
}
fn default_batch_size() -> usize {
    500
}
fn default_flush_interval() -> Duration {
    Duration::from_millis(5)
}
fn default_key_id() -> String {
    "k1".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnQueueFull {
    /// Serve, and count (metric + log) every row that could not be queued.
    #[default]
    FailOpen,
    /// Refuse new requests with 503 until the queue drains.
    FailClosed,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentsFile {
    #[default]
    None,
    Sha256,
    Encrypted,
}

fn default_grace() -> Duration {
    Duration::from_secs(5)
}

/// `limits:` in gateway.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub upstream_connect_timeout: Duration,
    #[serde(default = "default_read_timeout", with = "duration")]
    pub upstream_read_timeout: Duration,
    /// Requests one user may have in flight at once (0: no limit); over it → 429.
    #[serde(default)]
    pub max_concurrent_per_user: u32,
    /// Requests one upstream may have in flight at once (0: no limit); over it → 503.
    #[serde(default)]
    pub max_concurrent_per_upstream: u32,
    /// Jobs (MCP tasks and REST jobs) one user may have queued or running at once (0: no
    /// limit); over it → 429.
    #[serde(default = "default_max_jobs_per_user")]
    pub max_jobs_per_user: u32,
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            upstream_connect_timeout: default_connect_timeout(),
            upstream_read_timeout: default_read_timeout(),
            max_concurrent_per_user: 0,
            max_concurrent_per_upstream: 0,
            max_jobs_per_user: default_max_jobs_per_user(),
        }
    }
}

fn default_max_jobs_per_user() -> u32 {
    20
}

/// `jobs:` in gateway.yaml: tool calls the gateway runs in the background (MCP tasks, REST jobs).
/// Start-only: the store and the workers live as long as the process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    /// Off: `params.task` and the REST job API are refused; `POST /mcp/invoke` still runs calls
    /// synchronously.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Background calls this instance runs at once; more wait `queued`.
    #[serde(default = "default_job_workers")]
    pub workers: usize,
    /// Workers one user's jobs may hold at once (default: half of `workers`, at least 1): the
    /// rest stay free for other users, whose jobs are taken in turn.
    #[serde(default)]
    pub workers_per_user: Option<usize>,
    /// How long a job survives its instance's silence: the running instance renews the lease
    /// every third of it; past it, any instance marks the job `failed` (never runs it again).
    #[serde(default = "default_job_lease", with = "duration")]
    pub lease: Duration,
    /// How long a job and its result are kept from creation when the client asks for nothing else.
    #[serde(default = "default_job_ttl", with = "duration")]
    pub default_ttl: Duration,
    /// The longest retention a client may ask for (`params.task.ttl`, `ttl_ms`).
    #[serde(default = "default_job_max_ttl", with = "duration")]
    pub max_ttl: Duration,
    /// The polling interval suggested to clients.
    #[serde(default = "default_job_poll", with = "duration")]
    pub poll_interval: Duration,
    /// The longest a background call may run (the scope's `total_timeout` when shorter).
    #[serde(default = "default_job_max_run", with = "duration")]
    pub max_run: Duration,
    /// Jobs kept in memory without a database (oldest finished ones are dropped first).
    #[serde(default = "default_job_capacity")]
    pub memory_capacity: usize,
    /// The largest result stored; a bigger one fails the job with that reason.
    #[serde(default = "default_job_result_bytes")]
    pub max_result_bytes: usize,
}

impl Default for JobsFile {
    fn default() -> Self {
        Self {
            enabled: true,
            workers: default_job_workers(),
            workers_per_user: None,
            lease: default_job_lease(),
            default_ttl: default_job_ttl(),
            max_ttl: default_job_max_ttl(),
            poll_interval: default_job_poll(),
            max_run: default_job_max_run(),
            memory_capacity: default_job_capacity(),
            max_result_bytes: default_job_result_bytes(),
        }
    }
}

fn default_job_workers() -> usize {
    8
}
fn default_job_lease() -> Duration {
    Duration::from_secs(15)
}
fn default_job_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_job_max_ttl() -> Duration {
    Duration::from_secs(86_400)
}
fn default_job_poll() -> Duration {
    Duration::from_secs(1)
}
fn default_job_max_run() -> Duration {
    Duration::from_secs(3600)
}
fn default_job_capacity() -> usize {
    10_000
}
fn default_job_result_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_max_body() -> u64 {
    1024 * 1024
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `jwt:` in gateway.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// HMAC secret for HS* algorithms.
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM public key for RS*, PS*, ES*, EdDSA.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// JWKS document URL; keys are picked by `kid`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh", with = "duration")]
    pub jwks_refresh: Duration,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// Oldest accepted `iat`, in minutes; 0 disables the check.
    #[serde(default)]
    pub max_token_age_minutes: u64,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    #[serde(default)]
    pub claims: ClaimsFile,
    /// Accepted values of the API version claim (when `claims.api_version` is set).
    #[serde(default)]
    pub allowed_api_versions: Vec<String>,
    /// Verified tokens kept in memory, so repeated calls skip the signature check: at most this
    /// many tokens...
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// ...and at most this much memory (estimated per token: its length, its claims and the
    /// cache's own overhead), so that fresh tokens cannot grow the gateway without bound.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
    /// OAuth scopes a token must carry (in its `scope` or `scp` claim) to call a scope, with
    /// `{scope}` standing for the scope's name, e.g. `["mcp:{scope}"]`. Listed as
    /// `scopes_supported` in the protected-resource metadata; a token without them gets 403
    /// `insufficient_scope` naming them (step-up). Empty (the default): not checked.
    #[serde(default)]
    pub required_scopes: Vec<String>,
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_skew() -> u64 {
    60
}
fn default_cache_entries() -> usize {
    20_000
}
fn default_cache_bytes() -> u64 {
    8 << 20
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Claim names, for identity providers that do not use the usual ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsFile {
    #[serde(default = "claim_sub")]
    pub user_id: String,
    #[serde(default = "claim_roles")]
    pub roles: String,
    #[serde(default = "claim_tenant")]
    pub tenant: String,
    #[serde(default = "claim_exp")]
    pub exp: String,
    #[serde(default = "claim_iat")]
    pub iat: String,
    #[serde(default)]
    pub api_version: Option<String>,
}

impl Default for ClaimsFile {
    fn default() -> Self {
        Self {
            user_id: claim_sub(),
            roles: claim_roles(),
            tenant: claim_tenant(),
            exp: claim_exp(),
            iat: claim_iat(),
            api_version: None,
        }
    }
}

fn claim_sub() -> String {
    "sub".into()
}
fn claim_roles() -> String {
    "roles".into()
}
fn claim_tenant() -> String {
    "tenant".into()
}
fn claim_exp() -> String {
    "exp".into()
}
fn claim_iat() -> String {
    "iat".into()
}

/// `conf/tools.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    pub scopes: BTreeMap<String, ScopeFile>,
}

/// One scope: the endpoint `/NAME/sse` and `/NAME/mcp`, its upstreams and the tools it exposes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeFile {
    pub upstreams: Vec<UpstreamFile>,
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
    /// `{name, sha256}` to pin the definition approved for it.
    pub tools: Vec<ToolFile>,
    /// What a tool definition other than the approved one gets: `warn` (default: served, logged,
    /// counted), `strict` (hidden from `tools/list` and refused until approved) or `off`.
    #[serde(default)]
    pub pin: PinMode,
    /// Check `tools/call` arguments against the served definition's `inputSchema`.
    #[serde(default = "default_true")]
    pub validate_arguments: bool,
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
    #[serde(default = "default_weight")]
    pub weight: usize,
    /// How the upstream speaks MCP: `streamable_http` (default) or `sse`, the legacy HTTP+SSE
    /// transport (its `url` is the SSE endpoint, e.g. `http://host:8000/sse`).
    #[serde(default)]
    pub transport: UpstreamTransport,
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
    #[default]
    Http,
    Tcp,
}

/// `policies/policy.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub roles: BTreeMap<String, RoleFile>,
    /// Every matching limit must pass.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitFile>,
}

/// One rate limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub name: String,
    /// What the budget belongs to.
    pub key: RateLimitKey,
    /// `N/s`, `N/min`, `N/h` (or `N/day`).
    pub rate: String,
    /// Calls allowed beyond `N` at once.
    #[serde(default)]
    pub burst: u32,
    /// JSON-RPC methods counted (default: `tools/call` only).
    #[serde(default = "default_limit_methods")]
    pub methods: Vec<String>,
    #[serde(default, rename = "match")]
    pub matches: RateLimitMatch,
}

fn default_limit_methods() -> Vec<String> {
    vec!["tools/call".into()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKey {
    User,
    Tenant,
    Role,
    Tool,
    UserTool,
    Scope,
}

/// Which requests a limit applies to (globs; absent means all).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitMatch {
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// `scope/tool` patterns with `*` globs, e.g. `calculator/*`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// When set, the role counts only on a connection with a verified client certificate whose
    /// subject (RFC 4514, e.g. `CN=ci-7,O=Example`) matches this `*` glob: a token alone does
    /// not carry it.
    #[serde(default)]
    pub client_cert: Option<String>,
}

/// Durations written as `5s`, `250ms`, `1m`.
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration {s:?}: {e} (write e.g. 5s, 250ms, 1m)"
            ))
        })
    }
}

mod opt_duration {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}
