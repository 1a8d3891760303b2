//! Server-sent events as they arrive in chunks: the `data` of each complete event.

/// Bytes of an event stream not yet complete.
#[derive(Default)]
pub struct Events {
    buf: Vec<u8>,
}

impl Events {
    /// Takes a chunk; returns the data of every event it completes (events without data, such
    /// as a priming event or a comment, give nothing).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, sep)) = crate::sse::next_event(&self.buf) {
            let event: Vec<u8> = self.buf.drain(..end + sep).take(end).collect();
            let text = String::from_utf8_lossy(&event);
            let data: Vec<&str> = text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks() {
        let mut e = Events::default();
        assert!(e.feed(b"id: 1\ndata: {\"a\":").is_empty());
        assert_eq!(
            e.feed(b"1}\n\n: comment\n\ndata: x\r\ndata: y\r\n\r\n"),
            ["{\"a\":1}", "x\ny"]
        );
        assert!(e.feed(b"id: 2\ndata:\n").is_empty());
    }
}
