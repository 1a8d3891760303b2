//! `conf/gateway.yaml`: the top level and its smaller sections (registry, listeners, development
//! issuer, connections, shared rate-limit store, audit, limits).

use super::{default_true, duration, JobsFile, JwtFile};
use serde::Deserialize;
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
    pub forward_headers: crate::config::headers::ForwardHeadersFile,
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
    /// OpenTelemetry traces of every request, exported over OTLP; off when absent.
    #[serde(default)]
    pub tracing: Option<super::TracingFile>,
    /// The operator console's listener (`IP:port`, plain HTTP; keep it on a private address);
    /// off when absent. Operators sign in at the first of `authorization_servers`.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// The role (from the token's roles claim) the console requires.
    #[serde(default = "default_admin_role")]
    pub admin_role: String,
}

fn default_admin_role() -> String {
    "admin".into()
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

fn default_max_body() -> u64 {
    1024 * 1024
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}
