//! The list filter on arbitrary upstream answers, cut in two anywhere: it never panics, and the
//! output does not depend on where the answer was cut.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcp_gateway::proxy::filter::ResponseRewrite;

fn run(content_type: &str, pieces: &[&[u8]]) -> Vec<u8> {
    let mut r = ResponseRewrite::pending_list();
    r.start(content_type, Box::new(vec!["a".to_string()]));
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let mut chunk = Some(Bytes::copy_from_slice(piece));
        r.body(&mut chunk, i + 1 == pieces.len());
        out.extend_from_slice(chunk.as_deref().unwrap_or_default());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut).min(body.len());
    for content_type in ["text/event-stream", "application/json"] {
        let whole = run(content_type, &[body]);
        assert_eq!(run(content_type, &[&body[..at], &body[at..]]), whole);
    }
});
