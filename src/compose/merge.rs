//! What the composer asks of every server and merges: `initialize` (one session per server, the
//! capabilities' union), the lists (every page of every server that is up, renamed, in one page),
//! notifications (to every server), and requests only the right server can answer (a resource
//! read: the first server that has it).

use super::serve::{answer, error, Incoming};
use super::session::{self, MemberSession};
use super::{Composed, Member};
use crate::protocol::method;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// Pages read of one server's list at most (a server that pages forever stops here).
const MAX_PAGES: usize = 50;

/// The JSON-RPC answer in a server's reply (JSON, or the answer among the events of a stream).
fn reply_of(text: &str) -> Option<Value> {
    let is_reply = |v: &Value| v.get("result").is_some() || v.get("error").is_some();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return is_reply(&v).then_some(v);
    }
    crate::sse::events_in(text.as_bytes())
        .filter_map(|d| serde_json::from_slice::<Value>(&d).ok())
        .find(is_reply)
}

/// Sends one message to a server and reads its answer (within the server's read timeout).
async fn ask(
    c: &Composed,
    m: &Member,
    picked: &crate::upstream::Picked,
    session: (&str, Option<&str>),
    msg: &Value,
    inc: &Incoming,
) -> Option<(reqwest::header::HeaderMap, Value)> {
    let resp = c
        .post(m, picked, session, msg, inc)
        .timeout(m.server.scope.read_timeout)
        .send()
        .await;
    let resp = match resp {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::debug!(scope = %c.scope.name, server = %m.server.name, status = r.status().as_u16(), "a composed scope's server refused");
            return None;
        }
        Err(e) => {
            m.upstreams.record(picked, false);
            tracing::warn!(scope = %c.scope.name, server = %m.server.name, error = %e.without_url(), "a composed scope's server failed");
            return None;
        }
    };
    let headers = resp.headers().clone();
    let text = resp.text().await.ok()?;
    Some((headers, reply_of(&text)?))
}

/// `initialize`: a session opened on every server that is up; the answer merges theirs and names
/// every session in the composer's own id.
pub(super) async fn initialize(c: &Composed, inc: &Incoming, msg: &Value, id: Value) -> Response {
    let asked = msg["params"]["protocolVersion"]
        .as_str()
        .unwrap_or(&inc.version)
        .to_string();
    let opened: Vec<(MemberSession, Value)> =
        futures_util::future::join_all(c.members.iter().map(|m| open(c, m, inc, msg, &asked)))
            .await
            .into_iter()
            .flatten()
            .collect();
    if opened.is_empty() {
        return error(
            StatusCode::BAD_GATEWAY,
            &id,
            -32008,
            "no server of this scope could be reached",
        );
    }
    // The client's revision when every server agreed to it, else the oldest one agreed.
    let version = match opened.iter().all(|(s, _)| s.version == asked) {
        true => asked.clone(),
        false => opened
            .iter()
            .map(|(s, _)| s.version.clone())
            .min()
            .unwrap_or(asked.clone()),
    };
    let result = merged_init(c, &version, &opened);
    let sessions: Vec<MemberSession> = opened.into_iter().map(|(s, _)| s).collect();
    let mut resp = answer(&id, result);
    if let Ok(v) = session::encode(&sessions).parse() {
        resp.headers_mut().insert("mcp-session-id", v);
    }
    resp
}

/// A session of the client's on one server, when it is up: `initialize` as the client sent it.
async fn open(
    c: &Composed,
    m: &Member,
    inc: &Incoming,
    msg: &Value,
    asked: &str,
) -> Option<(MemberSession, Value)> {
    let picked = m.upstreams.select(inc.key(), &[])?;
    let (headers, reply) = ask(c, m, &picked, (asked, None), msg, inc).await?;
    let result = reply.get("result")?;
    let session = MemberSession {
        server: m.server.name.clone(),
        addr: picked.addr.clone(),
        id: headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        version: result["protocolVersion"]
            .as_str()
            .unwrap_or(asked)
            .to_string(),
    };
    Some((session, result.clone()))
}

/// The merged `initialize` result: the union of the servers' capabilities, each server's
/// instructions under its name.
fn merged_init(c: &Composed, version: &str, opened: &[(MemberSession, Value)]) -> Value {
    let mut caps = Map::new();
    for (_, r) in opened {
        let Some(theirs) = r["capabilities"].as_object() else {
            continue;
        };
        for key in ["tools", "resources", "prompts", "logging", "completions"] {
            if let Some(v) = theirs.get(key) {
                union(caps.entry(key).or_insert_with(|| json!({})), v);
            }
        }
    }
    // A server going down or coming back changes the list.
    caps.entry("tools").or_insert_with(|| json!({}))["listChanged"] = true.into();
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": {"name": format!("mcp-gateway/{}", c.scope.name), "version": env!("CARGO_PKG_VERSION")},
    });
    let instructions: Vec<String> = opened
        .iter()
        .filter_map(|(s, r)| Some(format!("{}: {}", s.server, r["instructions"].as_str()?)))
        .collect();
    if !instructions.is_empty() {
        result["instructions"] = instructions.join("\n\n").into();
    }
    result
}

/// Adds the flags of `from` to `into` (a flag set by either is set).
fn union(into: &mut Value, from: &Value) {
    let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Bool(b)), Value::Bool(w)) => *b |= *w,
            (Some(_), _) => {}
            (None, v) => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The member of a list `method` and how its entries are named.
fn list_key(name: &str) -> &'static str {
    match name {
        method::TOOLS_LIST => "tools",
        method::PROMPTS_LIST => "prompts",
        method::RESOURCES_LIST => "resources",
        _ => "resourceTemplates",
    }
}

/// A list of every server that is up, each entry under its shown name, in one page.
pub(super) async fn list(
    c: &Composed,
    inc: &Incoming,
    sessions: &[MemberSession],
    name: &str,
    id: &Value,
) -> Response {
    let key = list_key(name);
    let reads = c
        .reachable(sessions)
        .map(|(m, s, picked)| async move { (m, read_all(c, m, s, &picked, inc, name, key).await) });
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for (m, entries) in futures_util::future::join_all(reads).await {
        for entry in entries {
            let Some(entry) = shown_entry(m, key, entry) else {
                continue;
            };
            let ident = entry
                .get("name")
                .or_else(|| entry.get("uri"))
                .or_else(|| entry.get("uriTemplate"))
                .map(Value::to_string)
                .unwrap_or_default();
            if seen.insert(ident) {
                items.push(entry);
            }
        }
    }
    answer(id, json!({ key: items }))
}

/// An entry as the scope shows it: a tool the scope exposes under its shown name and description,
/// a prompt with the prefix, a resource as it is. `None` for a tool the scope does not expose.
fn shown_entry(m: &Member, key: &str, mut entry: Value) -> Option<Value> {
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (key, name) {
        ("tools", Some(name)) => {
            entry["name"] = m.server.shown_tool(&name)?.into();
            if let Some(d) = m.server.description.get(&name) {
                entry["description"] = d.clone().into();
            }
        }
        ("tools", None) => return None,
        ("prompts", Some(name)) => entry["name"] = m.server.shown_prompt(&name).into(),
        _ => {}
    }
    Some(entry)
}

/// Every page of one server's list.
async fn read_all(
    c: &Composed,
    m: &Member,
    s: &MemberSession,
    picked: &crate::upstream::Picked,
    inc: &Incoming,
    name: &str,
    key: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let msg = json!({"jsonrpc": "2.0", "id": format!("mcp-gateway-list-{page}"), "method": name, "params": params});
        let Some((_, reply)) = ask(c, m, picked, (&s.version, s.id.as_deref()), &msg, inc).await
        else {
            break;
        };
        let result = &reply["result"];
        if let Some(entries) = result[key].as_array() {
            out.extend(entries.iter().cloned());
        }
        match result.get("nextCursor") {
            Some(next) if !next.is_null() => cursor = Some(next.clone()),
            _ => break,
        }
    }
    out
}

/// A notification (or `logging/setLevel`) sent to every server of the session that is up.
pub(super) async fn notify(c: &Composed, inc: &Incoming, sessions: &[MemberSession], msg: &Value) {
    let sends = c.reachable(sessions).map(|(m, s, picked)| async move {
        let _ = c
            .post(m, &picked, (&s.version, s.id.as_deref()), msg, inc)
            .timeout(m.server.scope.read_timeout)
            .send()
            .await;
    });
    futures_util::future::join_all(sends).await;
}

/// A request any server may answer (a resource's URI names no server): asked of each in turn,
/// the first result returned; otherwise the last server's error.
pub(super) async fn first_answer(
    c: &Composed,
    inc: &Incoming,
    sessions: &[MemberSession],
    msg: &Value,
    id: &Value,
) -> Response {
    let mut last_error = None;
    for (m, s, picked) in c.reachable(sessions) {
        let Some((_, reply)) = ask(c, m, &picked, (&s.version, s.id.as_deref()), msg, inc).await
        else {
            continue;
        };
        if let Some(result) = reply.get("result") {
            return answer(id, result.clone());
        }
        last_error = reply.get("error").cloned();
    }
    match last_error {
        Some(e) => {
            let body = json!({"jsonrpc": "2.0", "id": id, "error": e});
            ([("content-type", "application/json")], body.to_string()).into_response()
        }
        None => error(StatusCode::OK, id, -32002, "Resource not found"),
    }
}
