//! The gateway asking one upstream for its tools, as a client of its own: in its own upstream
//! session (`translate::Pool`, shared with bridged requests and jobs) toward older upstreams,
//! stateless with the `_meta` envelope toward 2026-07-28-only ones; every page of `tools/list`.

use crate::jsonrpc::MODERN_VERSION;
use crate::proxy::translate::{answer_of, Pool};
use crate::upstream::{Picked, ScopeUpstreams};
use serde_json::{json, Value};
use std::time::Duration;

/// Pages read at most from one upstream (a cursor that never ends stops here).
const MAX_PAGES: usize = 50;
/// Tools read at most from one upstream.
const MAX_TOOLS: usize = 10_000;

/// Every tool `picked` lists.
pub async fn tools(
    bridged: &Pool,
    scope: &ScopeUpstreams,
    picked: &Picked,
) -> Result<Vec<Value>, String> {
    match tools_once(bridged, scope, picked).await {
        // The upstream forgot the gateway's session: open a new one, once.
        Err(Gone) => {
            bridged.forget(&picked.addr);
            tools_once(bridged, scope, picked).await.map_err(|_| {
                "the upstream forgot the gateway's session twice in a row".to_string()
            })?
        }
        Ok(r) => r,
    }
}

/// The upstream answered 404 to a request in the gateway's session.
struct Gone;

async fn tools_once(
    bridged: &Pool,
    scope: &ScopeUpstreams,
    picked: &Picked,
) -> Result<Result<Vec<Value>, String>, Gone> {
    let modern = scope.scope.upstream_version == Some(MODERN_VERSION);
    let session = if modern {
        None
    } else {
        let version = scope.scope.upstream_version.unwrap_or("2025-11-25");
        match bridged.get(scope, picked, version).await {
            Ok(o) => Some((version, o.session.clone())),
            Err(e) => return Ok(Err(e.to_string())),
        }
    };
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = Value::from(c.as_str());
        }
        if modern {
            params["_meta"] = crate::jobs::call::envelope();
        }
        let body = json!({"jsonrpc": "2.0", "id": format!("mcp-gateway-tools-{page}"),
            "method": "tools/list", "params": params});
        let mut req = bridged
            .post(scope, picked, &body)
            .timeout(Duration::from_secs(10));
        match &session {
            Some((version, s)) => {
                req = req.header("mcp-protocol-version", *version);
                if let Some(s) = s {
                    req = req.header("mcp-session-id", s.as_str());
                }
            }
            None => {
                req = req
                    .header("mcp-protocol-version", MODERN_VERSION)
                    .header("mcp-method", "tools/list");
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.without_url().to_string())),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND
            && session.as_ref().is_some_and(|(_, s)| s.is_some())
        {
            return Err(Gone);
        }
        if !status.is_success() {
            return Ok(Err(format!("tools/list answered HTTP {}", status.as_u16())));
        }
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Ok(Err(e.without_url().to_string())),
        };
        let Some(mut result) = answer_of(&text) else {
            return Ok(Err("tools/list gave no result".into()));
        };
        let Some(Value::Array(page_tools)) = result.get_mut("tools").map(Value::take) else {
            return Ok(Err("the tools/list result holds no tools".into()));
        };
        tools.extend(page_tools);
        if tools.len() > MAX_TOOLS {
            return Ok(Err(format!(
                "the upstream lists more than {MAX_TOOLS} tools"
            )));
        }
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        if cursor.is_none() {
            return Ok(Ok(tools));
        }
    }
    Ok(Err(format!(
        "tools/list did not end within {MAX_PAGES} pages"
    )))
}
