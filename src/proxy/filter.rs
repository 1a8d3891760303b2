//! Step 7, the response: list answers (`tools/list`, `resources/list`, `resources/templates/list`,
//! `prompts/list`) are cut down to what the caller may use, whether the upstream answered
//! `application/json` (collected, rewritten at the end) or `text/event-stream` (rewritten event by
//! event as each arrives, so streams stay unbuffered).

use bytes::{Bytes, BytesMut};
use serde_json::Value;

pub use super::visible::Visible;

type Allowed = Box<dyn Visible>;

/// How the response body of this request is rewritten.
#[derive(Default)]
pub enum ResponseRewrite {
    #[default]
    None,
    /// A list request: the form is known when the response header arrives.
    ListPending,
    Json {
        allowed: Allowed,
        buf: BytesMut,
    },
    Sse {
        allowed: Allowed,
        buf: BytesMut,
    },
}

impl ResponseRewrite {
    pub fn pending_list() -> Self {
        ResponseRewrite::ListPending
    }

    /// Chooses the form from the response's content type. Returns whether the body changes length
    /// (so `Content-Length` must go).
    pub fn start(&mut self, content_type: &str, allowed: Allowed) -> bool {
        if !matches!(self, ResponseRewrite::ListPending) {
            return false;
        }
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        *self = match ct.as_str() {
            "application/json" => ResponseRewrite::Json {
                allowed,
                buf: BytesMut::new(),
            },
            "text/event-stream" => ResponseRewrite::Sse {
                allowed,
                buf: BytesMut::new(),
            },
            _ => ResponseRewrite::None,
        };
        !matches!(self, ResponseRewrite::None)
    }

    /// Rewrites one chunk of the response body in place.
    pub fn body(&mut self, body: &mut Option<Bytes>, end: bool) {
        match self {
            ResponseRewrite::None | ResponseRewrite::ListPending => {}
            ResponseRewrite::Json { allowed, buf } => {
                if let Some(b) = body.take() {
                    buf.extend_from_slice(&b);
                }
                if end {
                    let whole = std::mem::take(buf).freeze();
                    *body = Some(
                        filter_json(&whole, allowed.as_ref())
                            .map(Bytes::from)
                            .unwrap_or(whole),
                    );
                }
            }
            ResponseRewrite::Sse { allowed, buf } => {
                if let Some(b) = body.take() {
                    buf.extend_from_slice(&b);
                }
                let mut out = BytesMut::new();
                while let Some((event_len, sep_len)) = next_event(buf) {
                    let event = buf.split_to(event_len + sep_len).freeze();
                    match rewrite_event(&event[..event_len], allowed.as_ref()) {
                        Some(new) => {
                            out.extend_from_slice(&new);
                            out.extend_from_slice(b"\n\n");
                        }
                        None => out.extend_from_slice(&event),
                    }
                }
                if end && !buf.is_empty() {
                    out.extend_from_slice(&std::mem::take(buf));
                }
                // An empty chunk keeps the stream open; `None` would not be sent anyway.
                *body = Some(out.freeze());
            }
        }
    }
}

/// Length of the first complete event and of its terminating blank line.
fn next_event(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = find(buf, b"\n\n").map(|i| (i, 2));
    let crlf = find(buf, b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Rewrites an SSE event whose data is a list result; `None` leaves it as it was.
fn rewrite_event(event: &[u8], allowed: &dyn Visible) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data = String::new();
    let mut others = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        } else {
            others.push(line);
        }
    }
    if data.is_empty() {
        return None;
    }
    let new = filter_json(data.as_bytes(), allowed)?;
    let mut out = Vec::with_capacity(new.len() + 64);
    for l in others {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&new);
    Some(out)
}

/// Filters the lists in the result of a JSON-RPC response (or of each response of a batch).
fn filter_json(body: &[u8], allowed: &dyn Visible) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
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
    if !changed {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// The lists a result may carry: the key, the field naming each entry, and who may see it.
type Check = fn(&dyn Visible, &str) -> bool;
const LISTS: [(&str, &str, Check); 4] = [
    ("tools", "name", |v, n| v.tool(n)),
    ("resources", "uri", |v, n| v.resource(n)),
    ("resourceTemplates", "uriTemplate", |v, n| v.resource(n)),
    ("prompts", "name", |v, n| v.prompt(n)),
];

fn filter_one(msg: &mut Value, allowed: &dyn Visible) -> bool {
    let Some(result) = msg.get_mut("result").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut changed = false;
    for (key, field, check) in LISTS {
        if let Some(items) = result.get_mut(key).and_then(Value::as_array_mut) {
            items.retain(|t| {
                t.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|n| check(allowed, n))
            });
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Allowed {
        Box::new(vec!["a".to_string()])
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#;

    #[test]
    fn json_collected_and_filtered() {
        let mut r = ResponseRewrite::ListPending;
        assert!(r.start("application/json", allowed()));
        let (x, y) = LIST.split_at(20);
        let mut chunk = Some(Bytes::from(x.to_string()));
        r.body(&mut chunk, false);
        assert!(chunk.is_none());
        let mut chunk = Some(Bytes::from(y.to_string()));
        r.body(&mut chunk, true);
        let v: Value = serde_json::from_slice(&chunk.unwrap()).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["result"]["tools"][0]["name"], "a");
    }

    #[test]
    fn sse_events_split_across_chunks() {
        let mut r = ResponseRewrite::ListPending;
        assert!(r.start("text/event-stream", allowed()));
        let stream = format!("event: message\nid: 1\ndata: {LIST}\n\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"x\"}}\n\n");
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            let mut chunk = Some(Bytes::copy_from_slice(piece));
            r.body(&mut chunk, false);
            out.extend_from_slice(&chunk.unwrap());
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("event: message\nid: 1\ndata: "), "{text}");
        assert!(!text.contains(r#""name":"b""#), "{text}");
        assert!(text.contains(r#""name":"a""#));
        assert!(
            text.ends_with("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n"),
            "{text}"
        );
    }
}
