//! The `mcp-gateway` command: parse arguments, load configuration, start.

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use mcp_gateway::auth::mint::{mint, TokenRequest};
use mcp_gateway::config;
use std::path::PathBuf;
use std::process::ExitCode;

mod admin;
/// The one module with `unsafe` (an allocator cannot be written without): the binary's, as the
/// library forbids it.
mod alloc;

/// mimalloc, entered by its plain functions where they give the alignment (`alloc`).
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

#[derive(Parser)]
#[command(
    name = "mcp-gateway",
    version,
    about = "An edge gateway for the Model Context Protocol"
)]
struct Cli {
    /// The gateway configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "MCP_GATEWAY_CONFIG",
        default_value = "conf/gateway.yaml"
    )]
    config: PathBuf,
    /// Log format: json (default) or text.
    #[arg(
        long,
        global = true,
        env = "MCP_GATEWAY_LOG_FORMAT",
        default_value = "json"
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Take the listening sockets over from the running gateway (same `upgrade_socket`)
        /// instead of binding them: start this, then send the running one SIGQUIT; it hands
        /// over, drains and exits. No connection is refused on the way.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the configuration, report every problem, and exit.
    Check,
    /// Mint a JWT signed with the configured HS key, for local testing.
    Token {
        #[arg(long, default_value = "dev")]
        user: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',', default_value = "developer")]
        roles: Vec<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. 1h, 30m.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
    },
    /// Apply the database migrations (safe to run again).
    Migrate,
    /// Seal a secret for the configuration (`headers:` values, client secrets): reads it from
    /// standard input (one trailing newline dropped), prints `enc:v1:…` sealed with
    /// MCP_GATEWAY_SECRETS_KEY (64 hex digits). Needs no configuration file.
    Encrypt,
    /// Read the audit trail; encrypted arguments are decrypted with the keys in the environment
    /// (MCP_GATEWAY_AUDIT_KEY for the configured key id, MCP_GATEWAY_AUDIT_OLD_KEYS="id:key,…").
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The tool registry: every scope's tools as their upstreams define them, with history and
    /// approvals (shared by every gateway on the same database or audit folder).
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Users' own logins at upstreams (`auth: per_user_oauth`) in the database: list them
    /// (never their tokens) or revoke them.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Run one of the bundled MCP tool servers.
    Tool {
        /// calculator, docs or git
        name: String,
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: String,
        /// Keep MCP sessions and answer as SSE streams (by default the tool is stateless and
        /// answers application/json).
        #[arg(long, conflicts_with = "sse")]
        sessions: bool,
        /// Stay stateless but answer each request as an SSE stream (text/event-stream).
        #[arg(long)]
        sse: bool,
        /// Exit when the parent process (the gateway that started this tool) is gone.
        #[arg(long)]
        exit_with_parent: bool,
        /// For the git tool: a repository it may read, as NAME=PATH (repeatable).
        #[arg(long = "repo")]
        repos: Vec<String>,
    },
    /// The gateway's adapter for a stdio MCP server (a `command:` upstream): runs the program in
    /// `MCP_GATEWAY_STDIO_PROGRAM` and serves it as Streamable HTTP on a loopback port (needs
    /// `TOOL_GATEWAY_SHARED_SECRET`). The gateway starts it; it is not meant to be run by hand.
    Stdio {
        /// For log lines: the scope and instance it serves.
        #[arg(long, default_value = "stdio")]
        name: String,
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: String,
        /// Exit when the parent process (the gateway that started it) is gone.
        #[arg(long)]
        exit_with_parent: bool,
    },
    /// Run the development authorization server alone (`run` starts it too when `dev_issuer:` is
    /// configured): OAuth login with PKCE, `POST /token`, JWKS. Never for production.
    Issuer {
        /// Address to listen on (default: dev_issuer.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Allow a non-loopback address.
        #[arg(long)]
        insecure_dev: bool,
    },
    /// A stdio MCP server for clients that only launch commands: JSON-RPC lines on stdin and
    /// stdout, forwarded to a gateway endpoint with a bearer token. Logs go to stderr.
    Bridge {
        /// The gateway endpoint, e.g. http://127.0.0.1:8000/calculator/mcp
        #[arg(long)]
        endpoint: String,
        /// A bearer token (or MCP_GATEWAY_TOKEN).
        #[arg(long, env = "MCP_GATEWAY_TOKEN", conflicts_with = "token_command")]
        token: Option<String>,
        /// A shell command that prints a token; run again before the token expires and after a
        /// refusal.
        #[arg(long, conflicts_with = "issuer_url")]
        token_command: Option<String>,
        /// A development issuer (`mcp-gateway issuer`) to ask for tokens, e.g.
        /// http://127.0.0.1:8010 (X-Issuer-Token from MCP_GATEWAY_ISSUER_TOKEN).
        #[arg(long, conflicts_with = "token")]
        issuer_url: Option<String>,
        /// With --issuer-url: the user id to log in as.
        #[arg(long, requires = "issuer_url", default_value = "dev")]
        user_id: String,
        /// With --issuer-url: comma-separated roles.
        #[arg(long, requires = "issuer_url", value_delimiter = ',')]
        roles: Vec<String>,
        /// With --issuer-url: the workspace (tenant).
        #[arg(long, requires = "issuer_url")]
        workspace: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print audit rows as JSON lines, newest first.
    Show {
        #[arg(long)]
        request_id: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// One line per login: user, tenant, upstream, when signed in, updated and expiring,
    /// whether it can be refreshed.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Delete a user's logins (at one upstream, or all): they sign in again at their next call.
    Revoke {
        user: String,
        upstream: Option<String>,
    },
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Every scope/tool: status (approved, changed, inactive), current and approved SHA-256.
    List,
    /// One tool as JSON: its current definition, and the approved one when they differ.
    Show {
        /// SCOPE/TOOL
        name: String,
    },
    /// Every event of one tool: first seen, changed, approved, active, inactive.
    History {
        /// SCOPE/TOOL
        name: String,
    },
    /// Approve a version of a tool: its current one, or the one given (`pin: strict` scopes
    /// serve it again once every upstream offers it).
    Approve {
        /// SCOPE/TOOL
        name: String,
        /// A version from the tool's history (default: the current one).
        #[arg(long)]
        sha256: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Tool processes the gateway starts log in the same format.
    std::env::set_var("MCP_GATEWAY_LOG_FORMAT", &cli.log_format);
    let _logs = mcp_gateway::logs::init(&cli.log_format);
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let path = &cli.config;
    match cli.command {
        Command::Run { upgrade } => {
            let config = load_with_secrets(path)?;
            mcp_gateway::server::run(config, upgrade).map_err(|e| anyhow!(e))
        }
        Command::Check => {
            let config = load(path)?;
            println!(
                "{}: ok ({} scopes: {})",
                path.display(),
                config.scopes.len(),
                config.scopes.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
        Command::Encrypt => encrypt(),
        Command::Migrate => {
            let config = load(path)?;
            current_thread()?.block_on(admin::migrate(&config))
        }
        Command::Audit {
            command:
                AuditCommand::Show {
                    request_id,
                    user,
                    limit,
                },
        } => {
            let config = load(path)?;
            current_thread()?.block_on(admin::show(&config, request_id, user, limit))
        }
        Command::Tools { command } => tools(&load(path)?, command),
        Command::Credentials { command } => credentials(&load(path)?, command),
        Command::Token {
            user,
            roles,
            tenant,
            ttl,
        } => token(&load_with_secrets(path)?, &user, &roles, tenant, ttl),
        Command::Issuer {
            listen,
            insecure_dev,
        } => issuer(&load_with_secrets(path)?, listen, insecure_dev),
        Command::Bridge {
            endpoint,
            token,
            token_command,
            issuer_url,
            user_id,
            roles,
            workspace,
        } => {
            use mcp_gateway::bridge::token::Source;
            let token = match (token, token_command, issuer_url) {
                (Some(t), None, None) => Source::Fixed(t),
                (None, Some(c), None) => Source::Command(c),
                (None, None, Some(u)) => Source::Issuer {
                    url: format!("{}/token", u.trim_end_matches('/')),
                    body: serde_json::json!({"user_id": user_id, "roles": roles, "workspace": workspace}),
                },
                _ => anyhow::bail!("give exactly one of --token, --token-command or --issuer-url"),
            };
            multi_thread(2)?
                .block_on(mcp_gateway::bridge::run(
                    mcp_gateway::bridge::BridgeOptions { endpoint, token },
                ))
                .map_err(|e| anyhow!(e))
        }
        Command::Stdio {
            name,
            listen,
            exit_with_parent,
        } => stdio(&name, &listen, exit_with_parent),
        Command::Tool {
            name,
            listen,
            sessions,
            sse,
            exit_with_parent,
            repos,
        } => {
            use mcp_gateway::tools::Answers;
            let answers = match (sessions, sse) {
                (true, _) => Answers::Sessions,
                (false, true) => Answers::Sse,
                (false, false) => Answers::Json,
            };
            tool(&name, &listen, answers, exit_with_parent, &repos)
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<config::Config> {
    if !path.exists() {
        let here = std::env::current_dir().unwrap_or_default();
        anyhow::bail!(
            "no configuration file at {} (looked in {}): run from the project directory, or name the file with --config or MCP_GATEWAY_CONFIG",
            path.display(),
            here.display()
        );
    }
    config::load(path).map_err(|e| anyhow!("{e}"))
}

/// The configuration, with the development secrets it generated written beside it (commands
/// that sign or verify tokens must agree with the running gateway).
fn load_with_secrets(path: &std::path::Path) -> anyhow::Result<config::Config> {
    let mut config = load(path)?;
    if config.persist_dev_secrets()? {
        return Ok(config);
    }
    // Another process wrote the secrets between our read and our write: use theirs.
    load(path)
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn multi_thread(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?)
}

/// `tools list|show|history|approve`.
fn tools(config: &config::Config, command: ToolsCommand) -> anyhow::Result<()> {
    use mcp_gateway::registry::cli;
    let out = current_thread()?.block_on(async {
        match &command {
            ToolsCommand::List => cli::list(config).await,
            ToolsCommand::Show { name } => cli::show(config, name).await,
            ToolsCommand::History { name } => cli::history(config, name).await,
            ToolsCommand::Approve { name, sha256 } => {
                cli::approve(config, name, sha256.as_deref()).await
            }
        }
    });
    print!("{}", out.map_err(|e| anyhow!(e))?);
    if matches!(
        command,
        ToolsCommand::Show { .. } | ToolsCommand::Approve { .. }
    ) {
        println!();
    }
    Ok(())
}

/// `credentials list|revoke`.
fn credentials(config: &config::Config, command: CredentialsCommand) -> anyhow::Result<()> {
    use mcp_gateway::connect::cli;
    let out = current_thread()?.block_on(async {
        match &command {
            CredentialsCommand::List { user, upstream } => {
                cli::list(config, user.as_deref(), upstream.as_deref()).await
            }
            CredentialsCommand::Revoke { user, upstream } => {
                cli::revoke(config, user, upstream.as_deref()).await
            }
        }
    });
    print!("{}", out.map_err(|e| anyhow!(e))?);
    Ok(())
}

/// `token`: a development token, carrying every scope's OAuth scopes (its roles decide what it
/// may use).
/// `mcp-gateway encrypt`: standard input sealed under the environment's current secrets key.
fn encrypt() -> anyhow::Result<()> {
    use mcp_gateway::config::credentials;
    use std::io::Read;
    let key = std::env::var(credentials::KEY_VAR)
        .map_err(|_| anyhow!("{} is not set (64 hex digits)", credentials::KEY_VAR))?;
    let keys = credentials::keys(Some(&key), None).map_err(|e| anyhow!(e))?;
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value)?;
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        anyhow::bail!("nothing to seal on standard input");
    }
    let sealed = credentials::seal(value, &keys).ok_or_else(|| anyhow!("cannot seal"))?;
    println!("{sealed}");
    Ok(())
}

fn token(
    config: &config::Config,
    user: &str,
    roles: &[String],
    tenant: Option<String>,
    ttl: humantime::Duration,
) -> anyhow::Result<()> {
    let scope = (config.scopes.values())
        .flat_map(|s| s.oauth_scopes.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let request = TokenRequest {
        user,
        roles,
        tenant: tenant.as_deref(),
        ttl: ttl.into(),
        scope: Some(scope),
    };
    let token = mint(&config.jwt, &request).map_err(|e| anyhow!(e))?;
    println!("{token}");
    Ok(())
}

/// `issuer`: the development issuer on its own.
fn issuer(
    config: &config::Config,
    listen: Option<String>,
    insecure_dev: bool,
) -> anyhow::Result<()> {
    let (issuer, listen) = mcp_gateway::issuer::Issuer::standalone(config, listen, insecure_dev)
        .map_err(|e| anyhow!(e))?;
    multi_thread(2)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("mcp-gateway issuer on {}", issuer.url());
        std::sync::Arc::new(issuer)
            .serve(listener)
            .await
            .context("issuer stopped")
    })
}

/// The gateway's secret, which its own processes require of every request.
fn gateway_secret() -> anyhow::Result<String> {
    std::env::var("TOOL_GATEWAY_SHARED_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .context("TOOL_GATEWAY_SHARED_SECRET must be set: the tool answers only the gateway")
}

/// `stdio`: the adapter of a stdio MCP server.
fn stdio(name: &str, listen: &str, exit_with_parent: bool) -> anyhow::Result<()> {
    let secret = gateway_secret()?;
    let rt = multi_thread(2)?;
    if exit_with_parent {
        rt.spawn(exit_when_orphaned());
    }
    rt.block_on(mcp_gateway::stdio::serve(name, listen, secret))
        .map_err(|e| anyhow!(e))
}

/// `tool`: one of the bundled tool servers, answering only the gateway.
fn tool(
    name: &str,
    listen: &str,
    answers: mcp_gateway::tools::Answers,
    exit_with_parent: bool,
    repos: &[String],
) -> anyhow::Result<()> {
    let secret = gateway_secret()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if exit_with_parent {
        rt.spawn(exit_when_orphaned());
    }
    rt.block_on(mcp_gateway::tools::serve(
        name, listen, secret, answers, repos,
    ))
    .map_err(|e| anyhow!(e))
}

/// Exits once this process is re-parented, i.e. the gateway that started it is gone.
async fn exit_when_orphaned() {
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if std::os::unix::process::parent_id() != parent {
            tracing::info!("the gateway is gone; tool exiting");
            std::process::exit(0);
        }
    }
}
