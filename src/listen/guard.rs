//! A client connection with a deadline on each request head.
//!
//! Pingora's own read timeouts restart with every read, so a client sending one header line every
//! few seconds holds its connection for ever. Here the clock starts when the connection is accepted
//! (first request) or when the first byte of a keep-alive request arrives, and runs until the proxy
//! says the head is complete (`HeadClock::head_read`, from `early_request_filter`); past the
//! deadline every read fails with `TimedOut` and the connection is closed. Once the answer is done
//! (`HeadClock::request_done`), the next request's first byte starts the clock again.
//!
//! The wait between keep-alive requests is timed by the same clock: from the end of an answer the
//! connection has the idle time the proxy gave with `request_done`, after which it ends quietly
//! (the read sees the end of the stream, as if the client had closed). Pingora's own keep-alive
//! timeout would start a timer for every request; this one deadline per connection is moved
//! instead.
//!
//! The same clock tells who is writing: while a head is being read, the proxy has not seen the
//! request, so any bytes written are Pingora's own answer to a head it could not parse (an empty
//! 400). Those bytes are replaced by the gateway's refusal (a JSON-RPC error with an
//! `X-Request-ID`) and reported, so the request leaves an audit row like every other refusal.

use crate::error::GatewayError;
use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection is in reading its requests.
const IN_HEAD: u8 = 0;
const IN_REQUEST: u8 = 1;
const BETWEEN: u8 = 2;

/// A connection the listener may close to make room for a new one while it has no complete
/// request head (fresh, trickling, or idle between keep-alive requests): when the gateway is at
/// `connections.max`, the oldest such connection goes first, so idle floods cannot lock out a
/// client that sends its request at once.
#[derive(Debug, Default)]
pub struct Evictable {
    clock: HeadClock,
    evicted: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl Evictable {
    /// Closes the connection if it is still without a request head; `false` if it has one.
    pub fn evict(&self) -> bool {
        if self.clock.stage() == IN_REQUEST {
            return false;
        }
        self.evicted.store(true, Ordering::Release);
        self.waker.wake();
        true
    }

    /// Whether a request is being served on it (then it is not evicted).
    pub fn busy(&self) -> bool {
        self.clock.stage() == IN_REQUEST
    }
}

/// The proxy's handle on a connection's head clock.
#[derive(Debug, Clone, Default)]
pub struct HeadClock(Arc<ClockState>);

#[derive(Debug, Default)]
struct ClockState {
    stage: AtomicU8,
    /// The keep-alive idle time the proxy gave with the last `request_done`, in milliseconds.
    idle_ms: AtomicU64,
}

impl HeadClock {
    /// The head is complete: no deadline until this request is done.
    pub fn head_read(&self) {
        self.0.stage.store(IN_REQUEST, Ordering::Release);
    }
    /// The answer is done: the connection may wait `idle` for its next request, whose first
    /// byte starts the head clock. (The proxy passes its current configuration's idle time, so a
    /// reload applies from the next answer on.)
    pub fn request_done(&self, idle: Duration) {
        let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        self.0.idle_ms.store(ms, Ordering::Relaxed);
        self.0.stage.store(BETWEEN, Ordering::Release);
    }

    fn stage(&self) -> u8 {
        self.0.stage.load(Ordering::Acquire)
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.0.idle_ms.load(Ordering::Relaxed))
    }

    /// The clock of the connection a request came on, when the listener put one there.
    pub fn of(stream: Option<&Stream>) -> Option<&HeadClock> {
        stream?
            .as_any()
            .downcast_ref::<Deadlined>()
            .map(|d| &d.clock)
    }
}

/// A request head the proxy never saw, answered by the listener.
#[derive(Debug, Clone)]
pub struct RefusedHead {
    pub request_id: crate::audit::RequestId,
    pub peer: Option<SocketAddr>,
    /// What the client was told (the `GatewayError` the answer renders).
    pub error: GatewayError,
}

/// Told of every refused head (the server records it in the audit trail).
pub type OnRefusedHead = Arc<dyn Fn(RefusedHead) + Send + Sync>;

/// Now plus `d`, for any configured `d`: a duration past ten years (whatever a file says) is ten
/// years, where adding it to the clock could overflow.
fn deadline_in(d: Duration) -> Instant {
    const LONGEST: Duration = Duration::from_secs(10 * 365 * 86_400);
    Instant::now() + d.min(LONGEST)
}

/// What a connection's deadline times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    /// A request is being served: nothing.
    Off,
    /// A request head being read: past it, reads fail.
    Head,
    /// The wait for the next keep-alive request: past it, the connection ends quietly.
    Idle,
}

pub struct Deadlined {
    inner: Stream,
    clock: HeadClock,
    evictable: Arc<Evictable>,
    timeout: Duration,
    /// The deadline, made once per connection and moved for each keep-alive request's head and
    /// each wait between requests (no allocation or timer per request); `armed` says what it
    /// times now, and `due` when that ends. The timer is moved to `due` only when a read has to
    /// wait: a head that arrives whole, the common case, never touches it.
    deadline: Pin<Box<Sleep>>,
    armed: Armed,
    due: Option<Instant>,
    peer: Option<SocketAddr>,
    on_refused: Option<OnRefusedHead>,
    /// The gateway's answer in place of Pingora's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// The replacement is out: the rest of Pingora's answer is dropped.
    replaced: bool,
    /// The first byte, read before the proxy is given the connection (`first_byte`).
    first: Option<u8>,
}

impl std::fmt::Debug for Deadlined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlined")
            .field("inner", &self.inner)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Deadlined {
    pub fn new(
        inner: Stream,
        timeout: Duration,
        on_refused: Option<OnRefusedHead>,
        evictable: Arc<Evictable>,
    ) -> Self {
        let peer = inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let due = deadline_in(timeout);
        Self {
            inner,
            clock: evictable.clock.clone(),
            evictable,
            timeout,
            // The first request's clock runs from the accept: an idle connection is cut too.
            deadline: Box::pin(tokio::time::sleep_until(due)),
            armed: Armed::Head,
            due: Some(due),
            peer,
            on_refused,
            replacement: None,
            replaced: false,
            first: None,
        }
    }

    /// Waits for the client's first byte (under the head deadline and eviction), so that a
    /// connection that never sends anything costs only its socket, this wrapper and one small
    /// task: the proxy's session, its header buffer and its state machine are made once there is
    /// something to read. `false` when the client closed first.
    pub async fn first_byte(&mut self) -> std::io::Result<bool> {
        let mut one = [0u8; 1];
        let mut buf = ReadBuf::new(&mut one);
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_read(cx, &mut buf)).await?;
        let got = buf.filled().first().copied();
        self.first = got;
        Ok(got.is_some())
    }

    /// Whether the armed deadline has passed; otherwise the timer is set to it (moved only when it
    /// changed) and wakes this task then.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(due) = self.due.filter(|_| self.armed != Armed::Off) else {
            return false;
        };
        if self.deadline.deadline() != due {
            self.deadline.as_mut().reset(due);
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// Whether what is written now is Pingora's answer to a head the proxy never saw. Only
    /// HTTP/1 connections get a head clock (`Guarded` hands HTTP/2 ones to the proxy as they are:
    /// they write their own frames before any request).
    fn writing_for_pingora(&self) -> bool {
        self.replacement.is_some() || self.replaced || self.clock.stage() == IN_HEAD
    }

    /// Writes the gateway's refusal in place of `buf` (Pingora's own answer); `buf` counts as
    /// written once the refusal is.
    fn poll_replace(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.replaced {
            return Poll::Ready(Ok(buf.len()));
        }
        if self.replacement.is_none() {
            let refused = RefusedHead {
                request_id: crate::audit::RequestId::new(),
                peer: self.peer,
                error: GatewayError::InvalidRequest("malformed HTTP request head".into()),
            };
            self.replacement = Some((refusal(&refused), 0));
            if let Some(report) = &self.on_refused {
                report(refused);
            }
        }
        if let Some((bytes, written)) = self.replacement.as_mut() {
            while *written < bytes.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                    }
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        self.replacement = None;
        self.replaced = true;
        Poll::Ready(Ok(buf.len()))
    }
}

/// The gateway's answer to a head it could not read; the connection closes after it.
fn refusal(r: &RefusedHead) -> Vec<u8> {
    let body = r.error.body(None);
    let mut out = format!(
        "HTTP/1.1 {} Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Request-ID: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.error.status(),
        body.len(),
        r.request_id
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl AsyncRead for Deadlined {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(b) = this.first.take_if(|_| buf.remaining() > 0) {
            buf.put_slice(&[b]);
            return Poll::Ready(Ok(()));
        }
        let stage = this.clock.stage();
        match stage {
            IN_REQUEST => this.armed = Armed::Off,
            BETWEEN | IN_HEAD => {
                this.evictable.waker.register(cx.waker());
                if this.evictable.evicted.load(Ordering::Acquire) {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "closed to make room: no request head while the gateway was full",
                    )));
                }
                if stage == BETWEEN && this.armed != Armed::Idle {
                    // The answer is out: the wait for the next request starts at the first read
                    // that has to wait.
                    this.armed = Armed::Idle;
                    this.due = None;
                }
                // A head read in more than one piece: its deadline holds before every read, so
                // bytes trickling in never keep it open.
                if stage == IN_HEAD && this.expired(cx) {
                    return Poll::Ready(Err(head_timed_out()));
                }
            }
            _ => {}
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let between = this
                    .clock
                    .0
                    .stage
                    .compare_exchange(BETWEEN, IN_HEAD, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if between {
                    // The next head's first bytes: its clock starts now, and the timer is set
                    // only if a read of it has to wait (most heads arrive in one piece).
                    this.due = Some(deadline_in(this.timeout));
                    this.armed = Armed::Head;
                }
            }
            Poll::Pending if stage == BETWEEN && this.armed == Armed::Idle => {
                if this.due.is_none() {
                    this.due = Some(deadline_in(this.clock.idle()));
                }
                if this.expired(cx) {
                    // Idle past its time: the end of the stream, so the proxy closes the
                    // connection as after a client's close, with nothing to answer or record.
                    return Poll::Ready(Ok(()));
                }
            }
            _ => {}
        }
        r
    }
}

fn head_timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "request head not complete in time",
    )
}

impl AsyncWrite for Deadlined {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.writing_for_pingora() {
            return self.poll_replace(cx, buf);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.writing_for_pingora() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_replace(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Deadlined {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Deadlined {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Deadlined {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Deadlined {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Deadlined {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Deadlined {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Deadlined {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head or idle time of any length gives a deadline (the clock cannot overflow).
    #[test]
    fn any_configured_time_makes_a_deadline() {
        let far = deadline_in(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(9 * 365 * 86_400));
        let near = deadline_in(Duration::from_secs(3));
        assert!(near <= Instant::now() + Duration::from_secs(3));
    }
}
