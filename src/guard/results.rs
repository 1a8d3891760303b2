//! Guards on the way back: each JSON-RPC message of an answer (the whole JSON body, or each SSE
//! event's data once the event is complete, however the stream was cut into chunks) is inspected
//! before it goes out. A clean message passes as it came; a redaction rewrites its strings; a
//! `block` replaces a result by a tool error naming the detector; what cannot be inspected (too
//! large, or not JSON while a detector may match) does not go out.

use super::{inspect, Direction, Hits};
use crate::config::guards::Guards;
use serde_json::{json, Value};
use std::sync::Arc;

/// The result guard of one answer.
pub struct ResultGuard {
    guards: Arc<Guards>,
    /// The request's JSON-RPC id (raw), for an answer replaced whole.
    id: Option<String>,
    pub hits: Hits,
}

impl ResultGuard {
    pub fn new(guards: Arc<Guards>, id: Option<&str>) -> Self {
        Self {
            guards,
            id: id.map(String::from),
            hits: Hits::default(),
        }
    }

    /// The most of an answer held for inspection.
    pub fn limit(&self) -> usize {
        self.guards.max_result_bytes
    }

    /// The answer that replaces one too large to inspect.
    pub fn too_large(&self) -> Vec<u8> {
        let text = format!(
            "The result is larger than {} bytes and cannot be inspected by the gateway's guards.",
            self.guards.max_result_bytes
        );
        self.replaced(&text)
    }

    /// The answer when a redacted result no longer fits the length the upstream announced.
    pub fn too_long(&self) -> Vec<u8> {
        self.replaced("The result was redacted by the gateway's guards.")
    }

    fn replaced(&self, text: &str) -> Vec<u8> {
        let result = json!({"content": [{"type": "text", "text": text}], "isError": true});
        let id = self.id.as_deref().unwrap_or("null");
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes()
    }

    /// One message: `None` when it goes out as it came.
    pub fn message(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(data);
        let found = match inspect(&self.guards, &text, Direction::Results) {
            Ok(None) => return None,
            Ok(Some(found)) => found,
            Err(_) => {
                return Some(self.replaced(
                    "The result cannot be inspected by the gateway's guards (it is not JSON).",
                ))
            }
        };
        self.hits.extend(found.hits);
        if let Some(detector) = found.blocked {
            let mut v: Value = serde_json::from_str(&text).ok()?;
            let blocked = json!({
                "content": [{"type": "text", "text": format!("Blocked by guard: {detector}")}],
                "isError": true,
            });
            match v.get_mut("result") {
                Some(r) => *r = blocked,
                // A message without a result (a notification, a server request) is redacted
                // where it can be, and goes out without the blocked text otherwise.
                None => return Some(found.redacted.map_or_else(Vec::new, to_vec)),
            }
            return Some(to_vec(v));
        }
        found.redacted.map(to_vec)
    }
}

fn to_vec(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}
