//! A client connection with a deadline on each request head.
//!
//! Pingora's own read timeouts restart with every read, so a client sending one header line every
//! few seconds holds its connection for ever. Here the clock starts when the connection is accepted
//! (first request) or when the first byte of a keep-alive request arrives, and runs until the proxy
//! says the head is complete (`HeadClock::head_read`, from `early_request_filter`); past the
//! deadline every read fails with `TimedOut` and the connection is closed. Once the answer is done
//! (`HeadClock::request_done`), the next request's first byte starts the clock again.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection is in reading its requests.
const IN_HEAD: u8 = 0;
const IN_REQUEST: u8 = 1;
const BETWEEN: u8 = 2;

/// The proxy's handle on a connection's head clock.
#[derive(Debug, Clone, Default)]
pub struct HeadClock(Arc<AtomicU8>);

impl HeadClock {
    /// The head is complete: no deadline until this request is done.
    pub fn head_read(&self) {
        self.0.store(IN_REQUEST, Ordering::Release);
    }
    /// The answer is done: the next request's first byte starts the clock.
    pub fn request_done(&self) {
        self.0.store(BETWEEN, Ordering::Release);
    }

    /// The clock of the connection a request came on, when the listener put one there.
    pub fn of(stream: Option<&Stream>) -> Option<&HeadClock> {
        stream?
            .as_any()
            .downcast_ref::<Deadlined>()
            .map(|d| &d.clock)
    }
}

#[derive(Debug)]
pub struct Deadlined {
    inner: Stream,
    clock: HeadClock,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Deadlined {
    pub fn new(inner: Stream, timeout: Duration) -> Self {
        Self {
            inner,
            clock: HeadClock::default(),
            timeout,
            // The first request's clock runs from the accept: an idle connection is cut too.
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        }
    }
}

impl AsyncRead for Deadlined {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match this.clock.0.load(Ordering::Acquire) {
            IN_REQUEST => this.deadline = None,
            BETWEEN | IN_HEAD => {
                if let Some(d) = this.deadline.as_mut() {
                    if d.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "request head not complete in time",
                        )));
                    }
                }
            }
            _ => {}
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let between = this
                .clock
                .0
                .compare_exchange(BETWEEN, IN_HEAD, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if between {
                this.deadline = Some(Box::pin(tokio::time::sleep_until(
                    Instant::now() + this.timeout,
                )));
            }
        }
        r
    }
}

impl AsyncWrite for Deadlined {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
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
