//! `discovery: search`: a scope whose `tools/list` shows two tools, so an agent with hundreds of
//! tools does not spend its context on their definitions:
//! - `search_tools(query, limit?)`: the caller's tools in the scope (exactly those it may call:
//!   the same policy, the registry's served definitions, hidden versions on `pin: strict` left
//!   out), ranked by the query's words in their names and descriptions, with their schemas;
//! - `call_tool(name, arguments)`: rewritten here into the `tools/call` of `name`, which then
//!   passes every later step as if the client had sent it (grants, registry, argument validation,
//!   limits, audit with the real tool's name): a tool the caller may not call is unknown.
//!
//! Both are answered before the policy step: their own names are no tool of the scope.

use super::ctx::RequestCtx;
use super::visible;
use crate::config::file::Discovery;
use crate::error::GatewayError;
use crate::jsonrpc::{Message, Rpc};
use crate::protocol::method;
use serde_json::{json, Value};

pub const SEARCH_TOOLS: &str = "search_tools";
pub const CALL_TOOL: &str = "call_tool";

/// Most tools one search returns.
const MAX_RESULTS: usize = 50;

/// What discovery makes of a request.
pub enum Found {
    /// Not one of discovery's: it goes on as it is.
    Pass,
    /// Answered here: the JSON-RPC answer's body.
    Answer(Vec<u8>),
    /// A `call_tool`: the `tools/call` it stands for, to be parsed and decided as sent.
    Call(Vec<u8>),
}

/// Whether the request is discovery's, and what becomes of it.
pub fn apply(ctx: &RequestCtx, rpc: &Rpc, bytes: &[u8]) -> Result<Found, GatewayError> {
    let Some(caller) = &ctx.caller else {
        return Ok(Found::Pass);
    };
    if caller.scope.scope.discovery != Discovery::Search {
        return Ok(Found::Pass);
    }
    let Rpc::Single(m) = rpc else {
        return Ok(Found::Pass);
    };
    let id = m.id.as_deref().unwrap_or("null");
    let answer = |mut result: Value| {
        // 2026-07-28 results say they are complete.
        if ctx.is_modern() {
            result["resultType"] = "complete".into();
        }
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes()
    };
    match (m.method.as_deref(), m.tool.as_deref()) {
        (Some(method::TOOLS_LIST), _) => Ok(Found::Answer(answer(listed()))),
        (Some(method::TOOLS_CALL), Some(SEARCH_TOOLS)) => {
            let args = arguments(bytes)?;
            Ok(Found::Answer(answer(search(ctx, &args))))
        }
        (Some(method::TOOLS_CALL), Some(CALL_TOOL)) => call(m, bytes).map(Found::Call),
        _ => Ok(Found::Pass),
    }
}

/// The request's `params.arguments` (an object, or nothing).
fn arguments(bytes: &[u8]) -> Result<Value, GatewayError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| GatewayError::ParseError(e.to_string()))?;
    Ok(v["params"]["arguments"].clone())
}

/// The two tools a `discovery: search` scope lists.
fn listed() -> Value {
    json!({"tools": [
        {"name": SEARCH_TOOLS,
         "description": "Finds the tools you may call here by what they do. Returns each tool's name, description and input schema; call one with call_tool.",
         "inputSchema": {"type": "object", "properties": {
             "query": {"type": "string", "description": "Words to look for in tool names and descriptions; empty for every tool."},
             "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "Most tools returned (default 10)."}},
             "required": ["query"]}},
        {"name": CALL_TOOL,
         "description": "Calls a tool found with search_tools.",
         "inputSchema": {"type": "object", "properties": {
             "name": {"type": "string", "description": "The tool's name, as search_tools gave it."},
             "arguments": {"type": "object", "description": "The tool's arguments, as its input schema says."}},
             "required": ["name"]}}
    ]})
}

/// The caller's tools that match `query`, best first: a word in the name counts three, in the
/// description one; ties by name.
fn search(ctx: &RequestCtx, args: &Value) -> Value {
    let query = args["query"].as_str().unwrap_or("").to_lowercase();
    let words: Vec<&str> = query.split_whitespace().collect();
    let limit = args["limit"]
        .as_u64()
        .map_or(10, |n| n as usize)
        .clamp(1, MAX_RESULTS);
    let Some(caller) = &ctx.caller else {
        return json!({"content": [], "isError": true});
    };
    let seen = visible::of(ctx);
    let scope = &caller.scope.scope;
    let mut found: Vec<(usize, Value)> = scope
        .tools
        .iter()
        .filter(|t| seen.tool(t))
        .filter_map(|t| {
            // A version `pin: strict` holds back is not one the caller can call.
            let served = ctx.rt.registry.call(scope, t).ok()?;
            let definition = served.map_or_else(|| json!({"name": t}), |v| v.definition.clone());
            let name = t.to_lowercase();
            let text = definition["description"]
                .as_str()
                .unwrap_or("")
                .to_lowercase();
            let score = words
                .iter()
                .map(|w| 3 * usize::from(name.contains(w)) + usize::from(text.contains(w)))
                .sum::<usize>();
            (words.is_empty() || score > 0).then_some((score, definition))
        })
        .collect();
    found.sort_by(|(a, x), (b, y)| {
        b.cmp(a)
            .then_with(|| x["name"].to_string().cmp(&y["name"].to_string()))
    });
    let tools: Vec<Value> = found.into_iter().take(limit).map(|(_, d)| d).collect();
    let text = serde_json::to_string(&json!({ "tools": tools })).unwrap_or_default();
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"tools": tools},
        "isError": false,
    })
}

/// The `tools/call` a `call_tool` stands for: its id and `_meta` kept, `name` and `arguments`
/// from the call's arguments.
fn call(m: &Message, bytes: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| GatewayError::ParseError(e.to_string()))?;
    let args = &v["params"]["arguments"];
    let Some(name) = args["name"].as_str() else {
        return Err(GatewayError::InvalidParams(
            "call_tool needs the tool's name in arguments.name".into(),
        ));
    };
    let mut params = json!({"name": name, "arguments": args.get("arguments").cloned().unwrap_or_else(|| json!({}))});
    if let Some(meta) = v["params"].get("_meta") {
        params["_meta"] = meta.clone();
    }
    let id: Value =
        m.id.as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
    Ok(
        json!({"jsonrpc": "2.0", "id": id, "method": method::TOOLS_CALL, "params": params})
            .to_string()
            .into_bytes(),
    )
}
