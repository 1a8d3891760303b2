//! The list filter: JSON and SSE, whole and cut into chunks.

use super::*;

fn allowed() -> Allowed {
    Box::new(vec!["a".to_string()])
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#;

#[test]
fn json_collected_and_filtered() {
    let mut r = ResponseRewrite::ListPending;
    assert!(r.start("application/json", allowed));
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
    assert!(r.start("text/event-stream", allowed));
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
        r.start(content_type, allowed);
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

/// A caller whose cut may be cached: the tools it may see name its view; counts the entries the
/// filter asked about.
struct CachedCaller<'a> {
    lists: &'a cache::ListCache,
    tools: Vec<String>,
    asked: std::sync::atomic::AtomicUsize,
}

impl<'a> CachedCaller<'a> {
    fn new(lists: &'a cache::ListCache, tools: &[&str]) -> Self {
        Self {
            lists,
            tools: tools.iter().map(|t| t.to_string()).collect(),
            asked: Default::default(),
        }
    }
    fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Visible for CachedCaller<'_> {
    fn tool(&self, name: &str) -> bool {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tools.iter().any(|t| t == name)
    }
    fn resource(&self, _: &str) -> bool {
        false
    }
    fn prompt(&self, _: &str) -> bool {
        false
    }
    fn capability(&self, _: &str) -> bool {
        true
    }
    fn cached(&self) -> Option<(&cache::ListCache, cache::View)> {
        let view = self
            .tools
            .iter()
            .fold(cache::View::default(), |v, t| v.part(t.as_bytes()));
        Some((self.lists, view))
    }
}

fn names(body: &[u8]) -> (Value, Vec<String>) {
    let v: Value = serde_json::from_slice(body).unwrap();
    let tools = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    (v["id"].clone(), tools)
}

fn cut(body: &str, caller: &dyn Visible) -> Vec<u8> {
    match filter_json(body.as_bytes(), caller) {
        Filtered::Changed(new) => new,
        Filtered::Unchanged => body.as_bytes().to_vec(),
        Filtered::Unreadable => panic!("unreadable"),
        Filtered::Hidden => Vec::new(),
    }
}

/// A caller hears of changes to what it can see only: a list change where it sees nothing of the
/// kind, or an update of a resource it may not read, is hidden; on a stream the event goes empty.
#[test]
fn notifications_about_what_the_caller_cannot_see_are_hidden() {
    let caller: Box<dyn Visible> = Box::new(vec!["a".to_string()]);
    let shown = |n: &str| !cut(n, caller.as_ref()).is_empty();
    assert!(shown(
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
    ));
    assert!(!shown(
        r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#
    ));
    assert!(!shown(
        r#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}"#
    ));
    assert!(!shown(
        r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"doc://x"}}"#
    ));
    assert!(shown(
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#
    ));
    let mut r = ResponseRewrite::ListPending;
    assert!(r.start("text/event-stream", || Box::new(vec!["a".to_string()])));
    let mut body = Some(bytes::Bytes::from_static(
        b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/prompts/list_changed\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
    ));
    r.body(&mut body, false);
    let out = String::from_utf8(body.unwrap().to_vec()).unwrap();
    assert!(
        !out.contains("prompts") && out.contains("tools/list_changed"),
        "{out}"
    );
}

#[test]
fn cached_cut_keeps_each_callers_id_and_view() {
    let lists = cache::ListCache::default();
    let a = CachedCaller::new(&lists, &["a"]);
    let b = CachedCaller::new(&lists, &["b"]);
    let list = |id: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"a"}},{{"name":"b"}}],"ttlMs":90000,"cacheScope":"public"}}}}"#
        )
    };
    assert_eq!(
        names(&cut(&list("1"), &a)),
        (Value::from(1), vec!["a".into()])
    );
    assert_eq!(a.asked(), 2);
    // Another request of the same caller, another id: served from the cache, its own id.
    let (id, tools) = names(&cut(&list(r#""req-7""#), &a));
    assert_eq!((id, tools), (Value::from("req-7"), vec!["a".to_string()]));
    assert_eq!(a.asked(), 2, "the second cut came from the cache");
    // Another view of the same result is cut for itself.
    assert_eq!(
        names(&cut(&list("2"), &b)),
        (Value::from(2), vec!["b".into()])
    );
    assert_eq!(names(&cut(&list("3"), &b)).1, vec!["b".to_string()]);
    assert_eq!((a.asked(), b.asked()), (2, 2));
    // The cached cut is still private and short-lived.
    let v: Value = serde_json::from_slice(&cut(&list("4"), &a)).unwrap();
    assert_eq!(v["result"]["cacheScope"], "private");
    assert_eq!(v["result"]["ttlMs"], MAX_FILTERED_TTL_MS);
    assert_eq!(v["jsonrpc"], "2.0");
}

#[test]
fn cached_cut_follows_a_changed_result() {
    let lists = cache::ListCache::default();
    let a = CachedCaller::new(&lists, &["a", "c"]);
    let one = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#;
    let two = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c"},{"name":"b"}]}}"#;
    assert_eq!(names(&cut(one, &a)).1, vec!["a".to_string()]);
    assert_eq!(names(&cut(two, &a)).1, vec!["c".to_string()]);
    assert_eq!(names(&cut(one, &a)).1, vec!["a".to_string()]);
    assert_eq!(lists.entries(), 2);
}

#[test]
fn what_the_cache_does_not_handle_is_still_filtered() {
    let lists = cache::ListCache::default();
    let a = CachedCaller::new(&lists, &["a"]);
    // A batch, a response with a member of its own, an error: the full path, nothing kept.
    let batch = format!("[{LIST},{LIST}]");
    let v: Value = serde_json::from_slice(&cut(&batch, &a)).unwrap();
    for r in v.as_array().unwrap() {
        assert_eq!(r["result"]["tools"].as_array().unwrap().len(), 1);
    }
    let extra = r#"{"jsonrpc":"2.0","id":1,"x":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#;
    assert_eq!(names(&cut(extra, &a)).1, vec!["a".to_string()]);
    let twice =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"b"}]}}"#;
    assert!(!String::from_utf8(cut(twice, &a))
        .unwrap()
        .contains(r#""b""#));
    let error = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
    assert_eq!(cut(error, &a), error.as_bytes());
    assert_eq!(lists.entries(), 0);
    assert!(matches!(
        filter_json(b"{not json", &a),
        Filtered::Unreadable
    ));
}
