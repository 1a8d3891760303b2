//! Step 7, the response: list answers (`tools/list`, `resources/list`, `resources/templates/list`,
//! `prompts/list`) and the `initialize` result's capabilities are cut down to what the caller may
//! use, whether the upstream answered `application/json` (collected, rewritten at the end) or
//! `text/event-stream` (rewritten event by event as each arrives, so streams stay unbuffered).
//! Results a scope's guards inspect (`crate::guard`) take the same two paths.

pub mod cache;

use crate::guard::results::ResultGuard;
use crate::guard::Hits;
use crate::sse::next_event;
use bytes::{Bytes, BytesMut};
use serde_json::Value;

pub use super::visible::Visible;

type Allowed = Box<dyn Visible>;

/// What rewrites each JSON-RPC message of an answer: the list cut, or the result guard.
pub enum Cutter {
    List(Allowed),
    Guard(ResultGuard),
}

impl Cutter {
    fn json(&mut self, data: &[u8]) -> Filtered {
        match self {
            Cutter::List(allowed) => filter_json(data, allowed.as_ref()),
            Cutter::Guard(g) => match g.message(data) {
                None => Filtered::Unchanged,
                Some(new) => Filtered::Changed(new),
            },
        }
    }

    /// The most of one message held (results only: lists are bounded by the upstream).
    fn limit(&self) -> Option<usize> {
        match self {
            Cutter::List(_) => None,
            Cutter::Guard(g) => Some(g.limit()),
        }
    }
}

/// How the response body of this request is rewritten.
#[derive(Default)]
pub enum ResponseRewrite {
    #[default]
    None,
    /// A list request: the form is known when the response header arrives.
    ListPending,
    /// A result the scope's guards inspect, once the form is known.
    GuardPending(ResultGuard),
    Json {
        cut: Cutter,
        buf: BytesMut,
        /// The answer outgrew what is held for inspection: it is replaced.
        over: bool,
        /// The upstream's `Content-Length`, kept for a guarded answer: what goes out is padded
        /// to it (JSON allows trailing spaces), so the framing stays as announced.
        length: Option<usize>,
    },
    Sse {
        cut: Cutter,
        buf: BytesMut,
        over: bool,
    },
}

impl ResponseRewrite {
    pub fn pending_list() -> Self {
        ResponseRewrite::ListPending
    }

    pub fn guard(g: ResultGuard) -> Self {
        ResponseRewrite::GuardPending(g)
    }

    /// The traced step this rewrite is: the list cut, or the result guards; none when the
    /// answer passes as it is.
    pub fn step(&self) -> Option<crate::trace::Step> {
        match self {
            ResponseRewrite::Json { cut, .. } | ResponseRewrite::Sse { cut, .. } => {
                Some(match cut {
                    Cutter::List(_) => crate::trace::Step::FilterList,
                    Cutter::Guard(_) => crate::trace::Step::GuardAnswer,
                })
            }
            _ => None,
        }
    }

    /// Whether an answer to come is rewritten (the header decides how).
    pub fn pending(&self) -> bool {
        matches!(
            self,
            ResponseRewrite::ListPending | ResponseRewrite::GuardPending(_)
        )
    }

    /// Chooses the form from the response's content type (`list` gives the list cut). Returns
    /// whether the body changes length (so `Content-Length` must go).
    pub fn start(&mut self, content_type: &str, list: impl FnOnce() -> Allowed) -> bool {
        let cut = match std::mem::take(self) {
            ResponseRewrite::ListPending => Cutter::List(list()),
            ResponseRewrite::GuardPending(g) => Cutter::Guard(g),
            other => {
                *self = other;
                return false;
            }
        };
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        *self = match ct.as_str() {
            "application/json" => ResponseRewrite::Json {
                cut,
                buf: BytesMut::new(),
                over: false,
                length: None,
            },
            "text/event-stream" => ResponseRewrite::Sse {
                cut,
                buf: BytesMut::new(),
                over: false,
            },
            // A result in any other form is inspected whole all the same: nothing a guard
            // watches goes out uninspected.
            _ if matches!(cut, Cutter::Guard(_)) => ResponseRewrite::Json {
                cut,
                buf: BytesMut::new(),
                over: false,
                length: None,
            },
            _ => ResponseRewrite::None,
        };
        !matches!(self, ResponseRewrite::None)
    }

    /// Keeps the upstream's `Content-Length` for a guarded JSON answer held whole (`true`: the
    /// header stays): a clean answer goes out exactly as it came, framing included.
    pub fn keep_length(&mut self, announced: u64) -> bool {
        match self {
            ResponseRewrite::Json {
                cut: Cutter::Guard(g),
                length,
                ..
            } if announced <= g.limit() as u64 => {
                *length = Some(announced as usize);
                true
            }
            _ => false,
        }
    }

    /// The result guard's hits so far (taken: counted once).
    pub fn take_hits(&mut self) -> Hits {
        match self {
            ResponseRewrite::GuardPending(g)
            | ResponseRewrite::Json {
                cut: Cutter::Guard(g),
                ..
            }
            | ResponseRewrite::Sse {
                cut: Cutter::Guard(g),
                ..
            } => std::mem::take(&mut g.hits),
            _ => Hits::default(),
        }
    }

    /// Rewrites one chunk of the response body in place.
    pub fn body(&mut self, body: &mut Option<Bytes>, end: bool) {
        match self {
            ResponseRewrite::None
            | ResponseRewrite::ListPending
            | ResponseRewrite::GuardPending(_) => {}
            ResponseRewrite::Json {
                cut,
                buf,
                over,
                length,
            } => {
                if let Some(b) = body.take() {
                    if !*over {
                        buf.extend_from_slice(&b);
                    }
                }
                if cut.limit().is_some_and(|max| buf.len() > max) {
                    *over = true;
                    buf.clear();
                }
                if end {
                    let whole = std::mem::take(buf).freeze();
                    let out = match (&*over, &*cut) {
                        (true, Cutter::Guard(g)) => Bytes::from(g.too_large()),
                        _ => match cut.json(&whole) {
                            Filtered::Unchanged => whole,
                            Filtered::Changed(new) => Bytes::from(new),
                            Filtered::Unreadable => Bytes::from(unreadable_list()),
                            Filtered::Hidden => Bytes::new(),
                        },
                    };
                    *body = Some(match (&*length, &*cut) {
                        (Some(n), Cutter::Guard(g)) => fit(out, *n, g),
                        _ => out,
                    });
                }
            }
            ResponseRewrite::Sse { cut, buf, over } => {
                if let Some(b) = body.take() {
                    if !*over {
                        buf.extend_from_slice(&b);
                    }
                }
                let mut out = BytesMut::new();
                while let Some((event_len, sep_len)) = next_event(buf) {
                    let event = buf.split_to(event_len + sep_len).freeze();
                    match rewrite_event(&event[..event_len], cut) {
                        Some(new) => {
                            out.extend_from_slice(&new);
                            out.extend_from_slice(b"\n\n");
                        }
                        None => out.extend_from_slice(&event),
                    }
                }
                // An event that never ends within the limit is not passed on in pieces.
                if !*over && cut.limit().is_some_and(|max| buf.len() > max) {
                    *over = true;
                    buf.clear();
                    if let Cutter::Guard(g) = &*cut {
                        out.extend_from_slice(b"event: message\ndata: ");
                        out.extend_from_slice(&g.too_large());
                        out.extend_from_slice(b"\n\n");
                    }
                }
                // An unterminated last event is filtered like the others: a lenient client may
                // still read it.
                if end && !buf.is_empty() {
                    let rest = std::mem::take(buf);
                    match rewrite_event(&rest, cut) {
                        Some(new) => out.extend_from_slice(&new),
                        None => out.extend_from_slice(&rest),
                    }
                }
                // An empty chunk keeps the stream open; `None` would not be sent anyway.
                *body = Some(out.freeze());
            }
        }
    }
}

/// A guarded answer at the length the upstream announced: padded with spaces, or, when what the
/// guards made of it no longer fits, replaced by a refusal that does (or `{}` at the least).
fn fit(out: Bytes, n: usize, g: &ResultGuard) -> Bytes {
    let mut fitted = if out.len() <= n {
        out.to_vec()
    } else {
        let refusal = g.too_long();
        if refusal.len() <= n {
            refusal
        } else {
            b"{}".to_vec()
        }
    };
    fitted.resize(n, b' ');
    Bytes::from(fitted)
}

/// Rewrites an SSE event whose data is a list result; `None` leaves it as it was. An event whose
/// data the gateway cannot read is dropped (an empty event): a lenient client might read what the
/// filter could not. Bytes that are not UTF-8 are read as clients decode them (replaced).
fn rewrite_event(event: &[u8], cut: &mut Cutter) -> Option<Vec<u8>> {
    let (data, others) = crate::sse::split_event(event);
    let data = String::from_utf8_lossy(data.as_deref().filter(|d| !d.is_empty())?);
    let new = match cut.json(data.as_bytes()) {
        Filtered::Unchanged => return None,
        Filtered::Changed(new) => new,
        Filtered::Unreadable | Filtered::Hidden => return Some(Vec::new()),
    };
    let mut out = Vec::with_capacity(new.len() + 64);
    for l in others {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&new);
    Some(out)
}

/// One JSON-RPC message from a legacy upstream's stream, filtered for the caller; `None` when it
/// cannot be read (it is then not passed on).
pub fn filter_message(data: &[u8], allowed: &dyn Visible) -> Option<Vec<u8>> {
    match filter_json(data, allowed) {
        Filtered::Unchanged => Some(data.to_vec()),
        Filtered::Changed(new) => Some(new),
        Filtered::Unreadable | Filtered::Hidden => None,
    }
}

/// What filtering made of a JSON document.
enum Filtered {
    Unchanged,
    Changed(Vec<u8>),
    /// A notification about something the caller cannot see: it does not go out.
    Hidden,
    /// Not JSON: nothing can be said about what it lists, so it does not go out.
    Unreadable,
}

/// The answer in place of a list the gateway cannot read.
fn unreadable_list() -> Vec<u8> {
    crate::error::GatewayError::UpstreamFailed("the upstream's answer is not valid JSON".into())
        .body(None)
}

/// Filters the lists in the result of a JSON-RPC response (or of each response of a batch).
/// A single response is cut once per (result, caller's view) and then served from the cache.
fn filter_json(body: &[u8], allowed: &dyn Visible) -> Filtered {
    if let Some((lists, view)) = allowed.cached() {
        match lists.filter(body, view, |result| filter_result_text(result, allowed)) {
            Some(cache::Cached::Unchanged) => return Filtered::Unchanged,
            Some(cache::Cached::Changed(new)) => return Filtered::Changed(new),
            None => {}
        }
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return Filtered::Unreadable;
    };
    if !shown(&value, allowed) {
        return Filtered::Hidden;
    }
    let changed = match &mut value {
        // Every response of a batch is filtered (no short-circuit).
        Value::Array(items) => {
            items
                .iter_mut()
                .map(|v| filter_one(v, allowed))
                .filter(|changed| *changed)
                .count()
                > 0
        }
        v => filter_one(v, allowed),
    };
    match serde_json::to_vec(&value) {
        Ok(new) if changed => Filtered::Changed(new),
        _ => Filtered::Unchanged,
    }
}

/// The lists a result may carry: the key, the field naming each entry, and who may see it.
type Check = fn(&dyn Visible, &str, &Value) -> bool;
const LISTS: [(&str, &str, Check); 4] = [
    ("tools", "name", |v, n, t| v.tool(n) && v.tool_definition(t)),
    ("resources", "uri", |v, n, _| v.resource(n)),
    ("resourceTemplates", "uriTemplate", |v, n, _| v.resource(n)),
    ("prompts", "name", |v, n, _| v.prompt(n)),
];

/// Whether the caller may learn of a server notification: a change of a list it can see nothing
/// of, or an update of a resource it may not read, is theirs to keep. Anything else is shown.
fn shown(msg: &Value, allowed: &dyn Visible) -> bool {
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return true;
    };
    match method {
        "notifications/tools/list_changed" => allowed.capability("tools"),
        "notifications/prompts/list_changed" => allowed.capability("prompts"),
        "notifications/resources/list_changed" => allowed.capability("resources"),
        "notifications/resources/updated" => msg["params"]["uri"]
            .as_str()
            .is_some_and(|uri| allowed.resource(uri)),
        _ => true,
    }
}

fn filter_one(msg: &mut Value, allowed: &dyn Visible) -> bool {
    msg.get_mut("result")
        .and_then(Value::as_object_mut)
        .is_some_and(|result| filter_result(result, allowed))
}

/// A result as the upstream wrote it, cut for the caller; `None` when the cut leaves it as it was.
fn filter_result_text(result: &str, allowed: &dyn Visible) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_str(result).ok()?;
    let changed = filter_result(value.as_object_mut()?, allowed);
    changed.then(|| serde_json::to_vec(&value).ok()).flatten()
}

/// Cuts one result's lists (and an `initialize` result's capabilities) to what the caller may
/// see. Returns whether it changed.
fn filter_result(result: &mut serde_json::Map<String, Value>, allowed: &dyn Visible) -> bool {
    let mut changed = false;
    for (key, field, check) in LISTS {
        if let Some(items) = result.get_mut(key).and_then(Value::as_array_mut) {
            items.retain(|t| {
                t.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|n| check(allowed, n, t))
            });
            changed = true;
        }
    }
    changed |= super::visible::trim_capabilities(result, allowed);
    if allowed.stamps_result_type() {
        changed |= stamp(result);
    }
    if changed {
        keep_private(result);
    }
    changed
}

/// A result from an older upstream as 2026-07-28 clients need it: `resultType`, and on the
/// results of cacheable methods (lists, `resources/read`) the required `ttlMs` / `cacheScope`,
/// as "do not reuse" (0, private): the upstream said nothing about freshness.
pub fn stamp(result: &mut serde_json::Map<String, Value>) -> bool {
    let mut changed = false;
    if !result.contains_key("resultType") {
        result.insert("resultType".into(), Value::from("complete"));
        changed = true;
    }
    let cacheable = [
        "tools",
        "resources",
        "resourceTemplates",
        "prompts",
        "contents",
    ]
    .iter()
    .any(|k| result.contains_key(*k));
    if cacheable && !result.contains_key("ttlMs") {
        result.insert("ttlMs".into(), Value::from(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| Value::from("private"));
        changed = true;
    }
    changed
}

/// The longest a filtered result may be cached by a client (`ttlMs`), so that a change of the
/// caller's grants shows within a minute.
pub const MAX_FILTERED_TTL_MS: u64 = 60_000;

/// A result cut down for one caller is theirs alone (2026-07-28 cache hints): `cacheScope`
/// `private` (never `public`, which lets a client or cache serve it to other users) and a `ttlMs`
/// of at most [`MAX_FILTERED_TTL_MS`]. Results without hints are left alone: clients treat a
/// missing `cacheScope` as private.
fn keep_private(result: &mut serde_json::Map<String, Value>) {
    if let Some(scope) = result.get_mut("cacheScope") {
        *scope = Value::from("private");
    }
    if let Some(ttl) = result.get_mut("ttlMs") {
        let clamped = ttl.as_u64().unwrap_or(0).min(MAX_FILTERED_TTL_MS);
        *ttl = Value::from(clamped);
        result
            .entry("cacheScope")
            .or_insert_with(|| Value::from("private"));
    }
}

#[cfg(test)]
mod tests;
