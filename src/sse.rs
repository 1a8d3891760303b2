//! Server-sent events, read in one place for every reader: the list filter (events of an
//! upstream's answer), legacy streams, the bridge (events of the gateway's answer, as they
//! arrive), and the gateway's own calls (a whole answer). An event ends at a blank line; its data
//! is its `data:` lines joined by `\n`, each without the one space that may follow the colon.

/// Length of the first complete event and of its terminating blank line.
pub fn next_event(buf: &[u8]) -> Option<(usize, usize)> {
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

/// One event (without its blank line): its data, when it has `data:` lines, and its other lines
/// (`event:`, `id:`, `retry:`, comments) as written.
pub fn split_event(event: &[u8]) -> (Option<Vec<u8>>, Vec<&[u8]>) {
    let mut data: Option<Vec<u8>> = None;
    let mut others = Vec::new();
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.strip_prefix(b"data:") {
            Some(v) => {
                let v = v.strip_prefix(b" ").unwrap_or(v);
                let d = data.get_or_insert_with(Vec::new);
                if !d.is_empty() {
                    d.push(b'\n');
                }
                d.extend_from_slice(v);
            }
            None => others.push(line),
        }
    }
    (data, others)
}

/// The data of one event; `None` for an event without any (a priming event, a comment).
pub fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    split_event(event).0.filter(|d| !d.is_empty())
}

/// The data of every event of a whole stream (a last event without its blank line counts).
pub fn events_in(stream: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rest = stream;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let event = match next_event(rest) {
            Some((end, sep)) => {
                let e = &rest[..end];
                rest = &rest[end + sep..];
                e
            }
            None => std::mem::take(&mut rest),
        };
        if let Some(d) = event_data(event) {
            return Some(d);
        }
    })
}

/// An event stream as it arrives in chunks: the bytes of the event not yet complete.
#[derive(Default)]
pub struct Events {
    buf: Vec<u8>,
}

impl Events {
    /// Takes a chunk; returns the data of every event it completes (events without data give
    /// nothing). Bytes that are not UTF-8 are replaced, as clients decode them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, sep)) = next_event(&self.buf) {
            if let Some(d) = event_data(&self.buf[..end]) {
                out.push(String::from_utf8_lossy(&d).into_owned());
            }
            self.buf.drain(..end + sep);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_join_and_other_lines_stay() {
        let (data, others) = split_event(b"event: message\r\nid: 7\ndata: {\"a\":\ndata:1}");
        assert_eq!(data.unwrap(), b"{\"a\":\n1}");
        assert_eq!(others, vec![&b"event: message"[..], b"id: 7"]);
        assert_eq!(event_data(b": comment"), None);
        assert_eq!(event_data(b"data:"), None);
    }

    #[test]
    fn a_whole_stream_gives_each_event_with_data() {
        let stream = b"id: 1\n\ndata: one\n\n: c\r\n\r\ndata: two\ndata: lines\n\ndata: last";
        let all: Vec<Vec<u8>> = events_in(stream).collect();
        assert_eq!(
            all,
            vec![b"one".to_vec(), b"two\nlines".to_vec(), b"last".to_vec()]
        );
    }

    #[test]
    fn chunks_give_events_as_they_complete() {
        let mut e = Events::default();
        assert!(e.feed(b"id: 1\ndata: {\"a\":").is_empty());
        assert_eq!(
            e.feed(b"1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\n"),
            vec!["{\"a\":1}".to_string(), "x\ny".to_string()]
        );
    }
}
