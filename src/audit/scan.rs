//! Reads the outcome of a call from the response as it streams by, without parsing it: a tool
//! result with `"isError":true` is a tool error; a JSON-RPC error response (`"error":{"code":N`)
//! is an rpc error with its code. Chunks can split a marker, so a short tail is carried over.

use memchr::memmem::Finder;
use std::sync::LazyLock;

const IS_ERROR: &[u8] = b"\"isError\":true";
const RPC_ERROR: &[u8] = b"\"error\":{\"code\":";
/// Built once: building a searcher costs more than searching a small answer.
static FIND_IS_ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(IS_ERROR));
static FIND_RPC_ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(RPC_ERROR));

/// The tail carried to the next chunk: a marker and a code's digits.
const KEEP: usize = RPC_ERROR.len() + 12;

#[derive(Debug, Default)]
pub struct ResponseScan {
    pub tool_error: bool,
    pub rpc_error_code: Option<i32>,
    /// The last `carried` bytes of what was scanned (kept inline: no allocation per answer).
    carry: [u8; KEEP],
    carried: usize,
}

impl ResponseScan {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.tool_error && self.rpc_error_code.is_some() {
            return;
        }
        let joined;
        let hay: &[u8] = if self.carried == 0 {
            chunk
        } else {
            joined = [&self.carry[..self.carried], chunk].concat();
            &joined
        };
        if !self.tool_error && FIND_IS_ERROR.find(hay).is_some() {
            self.tool_error = true;
        }
        if self.rpc_error_code.is_none() {
            if let Some(at) = FIND_RPC_ERROR.find(hay) {
                let rest = &hay[at + RPC_ERROR.len()..];
                let end = rest
                    .iter()
                    .position(|b| !(b.is_ascii_digit() || *b == b'-'))
                    .unwrap_or(rest.len());
                if end < rest.len() {
                    self.rpc_error_code = std::str::from_utf8(&rest[..end])
                        .ok()
                        .and_then(|s| s.parse().ok());
                }
            }
        }
        let tail = &hay[hay.len().saturating_sub(KEEP)..];
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carried = tail.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_split_across_chunks() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#;
        for cut in 1..body.len() {
            let mut s = ResponseScan::default();
            s.feed(&body[..cut]);
            s.feed(&body[cut..]);
            assert!(s.tool_error, "cut {cut}");
        }
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}"#;
        for cut in 1..err.len() {
            let mut s = ResponseScan::default();
            s.feed(&err[..cut]);
            s.feed(&err[cut..]);
            assert_eq!(s.rpc_error_code, Some(-32602), "cut {cut}");
        }
        // One byte at a time: the carried tail spans many chunks.
        let bytewise = |answer: &[u8]| {
            let mut s = ResponseScan::default();
            answer.chunks(1).for_each(|b| s.feed(b));
            (s.tool_error, s.rpc_error_code)
        };
        assert_eq!(bytewise(body), (true, None));
        assert_eq!(bytewise(err), (false, Some(-32602)));
        let mut s = ResponseScan::default();
        s.feed(br#"{"result":{"content":[{"type":"text","text":"{\"isError\":true}"}],"isError":false}}"#);
        assert!(!s.tool_error);
    }
}
