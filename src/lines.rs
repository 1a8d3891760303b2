//! The stdio transport's framing, read and written in one place for both directions: one JSON-RPC
//! message per line. `mcp-gateway bridge` reads its client's stdin and writes its stdout with it
//! (client → gateway); the stdio adapter writes a program's stdin and reads its stdout with it
//! (gateway → program). A line is bounded: a longer one is skipped, never held in memory whole.

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest line read (an answer with a large resource fits; a longer line is skipped).
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// How much of a line that is not JSON is kept to be logged.
const SHOWN: usize = 1024;

/// One line as read.
pub enum Line {
    Message(Value),
    /// Not JSON: its first bytes, to be logged.
    NotJson(String),
    /// Longer than [`MAX_LINE`]: skipped.
    TooLong,
}

/// Lines of JSON from a byte stream, each at most [`MAX_LINE`] bytes; blank lines are skipped.
pub struct Reader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner: BufReader::new(inner),
            line: Vec::new(),
        }
    }

    /// The next line; `None` at the end of the stream (or a read error).
    pub async fn next(&mut self) -> Option<Line> {
        loop {
            self.line.clear();
            let read = (&mut self.inner)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .await;
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) if self.line.len() > MAX_LINE && !self.line.ends_with(b"\n") => {
                    self.skip_rest().await?;
                    return Some(Line::TooLong);
                }
                Ok(_) => {}
            }
            let text = self.line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            return Some(match serde_json::from_slice(text) {
                Ok(v) => Line::Message(v),
                Err(_) => Line::NotJson(
                    String::from_utf8_lossy(&text[..text.len().min(SHOWN)]).into_owned(),
                ),
            });
        }
    }

    /// Reads past the rest of an over-long line, a chunk at a time.
    async fn skip_rest(&mut self) -> Option<()> {
        loop {
            self.line.clear();
            match (&mut self.inner)
                .take(64 * 1024)
                .read_until(b'\n', &mut self.line)
                .await
            {
                Ok(0) | Err(_) => return None,
                Ok(_) if self.line.ends_with(b"\n") => return Some(()),
                Ok(_) => {}
            }
        }
    }
}

/// Writes each line `lines` receives to `out` (one writer, so lines from concurrent senders
/// never interleave) until every sender is dropped or `out` fails.
pub async fn write<W: AsyncWrite + Unpin>(mut lines: mpsc::UnboundedReceiver<String>, mut out: W) {
    while let Some(line) = lines.recv().await {
        let written = async {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
            out.flush().await
        };
        if written.await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_messages_or_named_for_what_they_are() {
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("{{\"a\":1}}\n\n  \nnot json\n{long}\n{{\"b\":2}}\n{{\"c\":3}}");
        let mut r = Reader::new(input.as_bytes());
        assert!(matches!(r.next().await, Some(Line::Message(v)) if v["a"] == 1));
        assert!(matches!(r.next().await, Some(Line::NotJson(t)) if t == "not json"));
        assert!(matches!(r.next().await, Some(Line::TooLong)));
        assert!(matches!(r.next().await, Some(Line::Message(v)) if v["b"] == 2));
        // The last line needs no newline.
        assert!(matches!(r.next().await, Some(Line::Message(v)) if v["c"] == 3));
        assert!(r.next().await.is_none());
    }
}
