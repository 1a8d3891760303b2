//! The list filter: JSON and SSE, whole and cut into chunks.

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

/// Mutated list answers, cut into chunks anywhere: the filter never panics, the output does
/// not depend on where the chunks were cut, and no event it passes as a list names a tool the
/// caller may not see.
#[test]
fn mutated_streams_are_filtered_whatever_the_chunking() {
    let sse = format!("event: message\ndata: {LIST}\n\nid: 2\ndata: {LIST}\r\n\r\n");
    let seeds: [&[u8]; 2] = [sse.as_bytes(), LIST.as_bytes()];
    let run = |content_type: &str, input: &[u8], cut: usize| -> Vec<u8> {
        let mut r = ResponseRewrite::ListPending;
        r.start(content_type, allowed());
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = if cut == 0 {
            vec![input]
        } else {
            input.chunks(cut).collect()
        };
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut chunk = Some(Bytes::copy_from_slice(piece));
            r.body(&mut chunk, i == last);
            out.extend_from_slice(chunk.as_deref().unwrap_or_default());
        }
        out
    };
    for (i, input) in crate::mutate::mutations(&seeds, 4_000, 5).enumerate() {
        for content_type in ["text/event-stream", "application/json"] {
            let whole = run(content_type, &input, 0);
            let cut = 1 + i % 13;
            assert_eq!(
                run(content_type, &input, cut),
                whole,
                "cut every {cut}: {:?}",
                String::from_utf8_lossy(&input)
            );
            let text = String::from_utf8_lossy(&whole);
            // What a client reads: SSE data lines from a stream, the whole body from JSON.
            let lines = text
                .split(['\n', '\r'])
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|_| content_type == "text/event-stream");
            let whole_body = Some(text.as_ref()).filter(|_| content_type == "application/json");
            for data in lines.chain(whole_body) {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    if let Some(tools) = v["result"]["tools"].as_array() {
                        assert!(
                            tools.iter().all(|t| t["name"] == "a"),
                            "{text}\n{:?}",
                            String::from_utf8_lossy(&input)
                        );
                    }
                }
            }
        }
    }
}

/// A list cut down for one caller never stays cacheable for others (2026-07-28 hints), and a
/// discover result advertises only what the caller may use.
#[test]
fn filtered_results_are_private_and_short_lived() {
    let list = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","ttlMs":3600000,"cacheScope":"public","tools":[{"name":"a"},{"name":"b"}]}}"#;
    let out = match filter_json(list, allowed().as_ref()) {
        Filtered::Changed(b) => serde_json::from_slice::<Value>(&b).unwrap(),
        _ => panic!("a list is rewritten"),
    };
    assert_eq!(out["result"]["cacheScope"], "private");
    assert_eq!(out["result"]["ttlMs"], MAX_FILTERED_TTL_MS);
    assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 1);
    let discover = br#"{"jsonrpc":"2.0","id":2,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{},"prompts":{},"resources":{}},"ttlMs":5,"cacheScope":"public"}}"#;
    let out = match filter_json(discover, allowed().as_ref()) {
        Filtered::Changed(b) => serde_json::from_slice::<Value>(&b).unwrap(),
        _ => panic!("a discover result is rewritten"),
    };
    assert_eq!(
        out["result"]["capabilities"],
        serde_json::json!({"tools": {}})
    );
    assert_eq!(out["result"]["cacheScope"], "private");
    assert_eq!(out["result"]["ttlMs"], 5);
}
