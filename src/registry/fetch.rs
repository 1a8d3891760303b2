//! The gateway asking one upstream for its tools, as a client of its own (the HTTP clients of
//! `upstream::client::Pool`, with the scope's upstream TLS): in a session of its own toward older
//! upstreams, stateless with the `_meta` envelope toward 2026-07-28-only ones; every page of
//! `tools/list`.

use crate::jsonrpc::MODERN_VERSION;
use crate::protocol::method;
use crate::upstream::client::{answer_of, in_session, OwnError, OwnSession, Pool};
use crate::upstream::{Picked, ScopeUpstreams};
use serde_json::{json, Value};

/// Pages read at most from one upstream (a cursor that never ends stops here).
const MAX_PAGES: usize = 50;
/// Tools read at most from one upstream.
const MAX_TOOLS: usize = 10_000;

/// Why an upstream's tools could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Request(#[from] OwnError),
    #[error("tools/list answered HTTP {0}")]
    Status(u16),
    #[error("tools/list gave no result")]
    NoResult,
    #[error("the tools/list result holds no tools")]
    NoTools,
    #[error("the upstream lists more than {MAX_TOOLS} tools")]
    TooMany,
    #[error("tools/list did not end within {MAX_PAGES} pages")]
    Endless,
}

/// Every request of the registry says so, so that an operator (and a test upstream that records
/// what reaches it) can tell the gateway's own reads from its clients' traffic.
pub const USER_AGENT: &str = concat!("mcp-gateway-registry/", env!("CARGO_PKG_VERSION"));

/// Every tool `picked` lists, read in a session of the registry's own (opened for the read and
/// closed after it) toward older upstreams, statelessly toward 2026-07-28-only ones.
pub async fn tools(
    bridged: &Pool,
    scope: &ScopeUpstreams,
    picked: &Picked,
) -> Result<Vec<Value>, ReadError> {
    let session = match scope.scope.upstream_version {
        Some(MODERN_VERSION) => None,
        v => {
            let version = v.unwrap_or("2025-11-25");
            let opened = bridged
                .open(scope, picked, version, Some(USER_AGENT))
                .await?;
            Some((version, opened.session))
        }
    };
    let listed = list(bridged, scope, picked, &session).await;
    if let Some((version, Some(id))) = &session {
        bridged
            .close(scope, picked, (version, id), USER_AGENT)
            .await;
    }
    listed
}

async fn list(
    bridged: &Pool,
    scope: &ScopeUpstreams,
    picked: &Picked,
    session: &OwnSession,
) -> Result<Vec<Value>, ReadError> {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = Value::from(c.as_str());
        }
        if session.is_none() {
            params["_meta"] = crate::protocol::own_envelope();
        }
        let body = json!({"jsonrpc": "2.0", "id": format!("mcp-gateway-registry-{page}"),
            "method": method::TOOLS_LIST, "params": params});
        let post = bridged
            .post(scope, picked, &body)
            .header("user-agent", USER_AGENT);
        let resp = in_session(post, session, method::TOOLS_LIST)
            .send()
            .await
            .map_err(OwnError::from)?;
        if !resp.status().is_success() {
            return Err(ReadError::Status(resp.status().as_u16()));
        }
        let text = resp.text().await.map_err(OwnError::from)?;
        let mut result = answer_of(&text).ok_or(ReadError::NoResult)?;
        let Some(Value::Array(page_tools)) = result.get_mut("tools").map(Value::take) else {
            return Err(ReadError::NoTools);
        };
        tools.extend(page_tools);
        if tools.len() > MAX_TOOLS {
            return Err(ReadError::TooMany);
        }
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        if cursor.is_none() {
            return Ok(tools);
        }
    }
    Err(ReadError::Endless)
}
