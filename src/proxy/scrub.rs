//! Upstream JSON-RPC errors, scrubbed: an error answered at HTTP 200 keeps its code and the first
//! line of its message (at most `MAX_MESSAGE` bytes, control characters removed); its `data` is
//! dropped, except for the codes whose `data` a client needs (`-32042`, a URL elicitation the user
//! must complete). The full message goes to the log with the request id, bounded like every
//! logged field. A server's stack trace, file paths or internal addresses stay behind the gateway,
//! as its 5xx pages do.
//!
//! Only whole JSON answers with a `Content-Length` up to `MAX_HELD` are held and looked at (an
//! error answer is small; a larger answer is a result and streams as it comes). The scrubbed
//! answer is padded with spaces to the announced length, which JSON allows, so the framing and the
//! header already on its way stay as they are.

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde_json::Value;

/// Largest answer held to be looked at.
pub const MAX_HELD: u64 = 64 * 1024;
/// Longest message kept, in bytes.
pub const MAX_MESSAGE: usize = 256;
/// Codes whose `data` is part of the protocol and goes to the client: a URL elicitation, a missing
/// client capability, an unsupported version.
const DATA_KEPT: &[i64] = &[-32042, -32021, -32022];

/// Whether an upstream error's `data` is what the protocol defines for it (and nothing else):
/// the codes above, and a resource not found (-32602) naming only its `uri` (2026-07-28).
fn protocol_data(code: Option<i64>, data: Option<&Value>) -> bool {
    match (code, data) {
        (Some(c), _) if DATA_KEPT.contains(&c) => true,
        (Some(-32602), Some(Value::Object(d))) => {
            d.len() == 1
                && d.get("uri")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.len() <= 2048)
        }
        _ => false,
    }
}

/// A JSON answer held until complete.
#[derive(Debug)]
pub struct HeldAnswer {
    buf: BytesMut,
    length: usize,
}

impl HeldAnswer {
    /// For an answer of `length` bytes (`Content-Length`), when it is small enough to hold.
    pub fn for_length(length: u64) -> Option<Self> {
        (length > 0 && length <= MAX_HELD).then(|| Self {
            buf: BytesMut::new(),
            length: length as usize,
        })
    }

    /// Takes `chunk`; once the answer is complete, gives it back scrubbed (same length).
    pub fn take(&mut self, chunk: &mut Option<Bytes>, end: bool, request_id: &str) {
        if self.length == 0 {
            // Given back already.
            return;
        }
        if self.buf.is_empty() && chunk.as_ref().is_some_and(|c| c.len() >= self.length) {
            // The usual case: the whole answer in one chunk, looked at where it is.
            if let Some(scrubbed) = chunk.as_deref().and_then(|c| scrub(c, request_id)) {
                *chunk = Some(scrubbed);
            }
            self.length = 0;
            return;
        }
        if let Some(c) = chunk.take() {
            if self.buf.is_empty() {
                self.buf.reserve(self.length);
            }
            self.buf.extend_from_slice(&c);
        }
        if !end && self.buf.len() < self.length {
            return;
        }
        self.length = 0;
        let whole = std::mem::take(&mut self.buf).freeze();
        *chunk = Some(match scrub(&whole, request_id) {
            Some(scrubbed) => scrubbed,
            None => whole,
        });
    }
}

/// The answer with its errors scrubbed and padded to its length; `None` when nothing changed (no
/// error, not JSON, or nothing shorter could be written).
pub fn scrub(answer: &[u8], request_id: &str) -> Option<Bytes> {
    memmem::find(answer, b"\"error\"")?;
    let mut value: Value = serde_json::from_slice(answer).ok()?;
    let changed = match &mut value {
        Value::Array(batch) => batch
            .iter_mut()
            .fold(false, |c, m| scrub_one(m, request_id) | c),
        one => scrub_one(one, request_id),
    };
    if !changed {
        return None;
    }
    let mut out = serde_json::to_vec(&value).ok()?;
    if out.len() > answer.len() {
        return None;
    }
    out.resize(answer.len(), b' ');
    Some(Bytes::from(out))
}

/// Scrubs one response's `error`; whether anything changed.
fn scrub_one(message: &mut Value, request_id: &str) -> bool {
    let Some(error) = message.get_mut("error").and_then(Value::as_object_mut) else {
        return false;
    };
    let code = error.get("code").and_then(Value::as_i64);
    let mut changed = false;
    if !protocol_data(code, error.get("data")) && error.remove("data").is_some() {
        changed = true;
    }
    let original = error.get("message").and_then(Value::as_str).unwrap_or("");
    let short = first_line(original);
    if short != original {
        tracing::warn!(
            request_id,
            code,
            upstream_message = ?crate::logs::clip(original),
            "upstream error message shortened for the client"
        );
        error.insert("message".into(), Value::String(short));
        changed = true;
    } else if changed {
        tracing::warn!(
            request_id,
            code,
            "upstream error data dropped for the client"
        );
    }
    changed
}

/// The first line of `message`, control characters removed, cut at `MAX_MESSAGE` bytes.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or("");
    let mut out = String::with_capacity(line.len().min(MAX_MESSAGE));
    for c in line.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_MESSAGE {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_trace_is_cut_to_its_first_line_and_data_is_dropped() {
        let answer = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"boom\n  at /srv/app/db.js:12 (10.9.8.7:5432)","data":{"stack":"Error: boom\n at x"}}}"#;
        let out = scrub(answer, "r1").unwrap();
        assert_eq!(out.len(), answer.len());
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "boom");
        assert_eq!(v["error"]["code"], -32603);
        assert!(v["error"].get("data").is_none());
        assert_eq!(v["id"], 7);
    }

    #[test]
    fn plain_errors_results_and_elicitations_pass_untouched() {
        let plain =
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: x"}}"#;
        assert!(scrub(plain, "r").is_none());
        let result = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\"error\""}]}}"#;
        assert!(scrub(result, "r").is_none());
        let elicit = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32042,"message":"authorize first","data":{"elicitations":[]}}}"#;
        assert!(scrub(elicit, "r").is_none());
        assert!(scrub(b"not json \"error\"", "r").is_none());
        // A resource not found names its URI (2026-07-28); anything more in `data` goes.
        let missing = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Resource not found","data":{"uri":"test://x"}}}"#;
        assert!(scrub(missing, "r").is_none());
        let more = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Resource not found","data":{"uri":"test://x","path":"/srv/x"}}}"#;
        let v: Value = serde_json::from_slice(&scrub(more, "r").unwrap()).unwrap();
        assert!(v["error"].get("data").is_none(), "{v}");
    }

    #[test]
    fn long_messages_are_bounded_and_batches_scrubbed_each() {
        let long = "x".repeat(5000);
        let answer = format!(
            r#"[{{"jsonrpc":"2.0","id":1,"error":{{"code":-1,"message":"{long}"}}}},{{"jsonrpc":"2.0","id":2,"result":{{}}}}]"#
        );
        let out = scrub(answer.as_bytes(), "r").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v[0]["error"]["message"].as_str().unwrap().len(),
            MAX_MESSAGE
        );
        assert_eq!(v[1]["result"], serde_json::json!({}));
    }

    #[test]
    fn a_held_answer_comes_out_whole_once_complete() {
        let answer = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"a\nb"}}"#;
        let mut held = HeldAnswer::for_length(answer.len() as u64).unwrap();
        let mut first = Some(Bytes::from_static(&answer[..10]));
        held.take(&mut first, false, "r");
        assert!(first.is_none());
        let mut rest = Some(Bytes::from_static(&answer[10..]));
        held.take(&mut rest, false, "r");
        let out = rest.unwrap();
        assert_eq!(out.len(), answer.len());
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "a");
        assert!(HeldAnswer::for_length(MAX_HELD + 1).is_none());
    }
}
