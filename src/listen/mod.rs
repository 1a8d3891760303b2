//! The listener's own protection, before any request is read: how many client connections the
//! gateway holds (in all, and per client address), how long a client may take to send a request
//! head, and how long an idle keep-alive connection stays open.
//!
//! Connections without a token cost a file descriptor and a task each; without these limits a few
//! thousand idle or trickling connections exhaust the descriptors and the gateway stops answering
//! everyone. Connections beyond a limit are closed at once (nothing is read from them) and counted
//! in `mcp_connections_refused_total{reason}`.

mod guard;
pub mod tls;

pub use guard::{Evictable, HeadClock, OnRefusedHead, RefusedHead};
pub use tls::Terminators;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::config::listeners::ConnectionLimits;

/// Open connections, in all and per address.
#[derive(Debug, Default)]
struct Counts {
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// HTTP/1 connections in the order they came, to find the oldest one without a request head.
    by_age: Mutex<std::collections::VecDeque<std::sync::Weak<Evictable>>>,
}

/// How many connections one admission looks at to find one to close.
const EVICTION_SCAN: usize = 64;

impl Counts {
    fn register(&self, e: &Arc<Evictable>) {
        let mut q = self.by_age.lock().unwrap_or_else(|p| p.into_inner());
        // Closed connections leave dead entries: drop those at the front as we go.
        while q.front().is_some_and(|w| w.strong_count() == 0) {
            q.pop_front();
        }
        q.push_back(Arc::downgrade(e));
    }

    /// Closes the oldest connection that has no request head; `false` when none was found.
    fn evict_oldest_idle(&self) -> bool {
        let mut q = self.by_age.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..EVICTION_SCAN.min(q.len()) {
            let Some(w) = q.pop_front() else { break };
            let Some(e) = w.upgrade() else { continue };
            if e.busy() {
                // Serving a request: it keeps its place, at the back.
                q.push_back(w);
                continue;
            }
            if e.evict() {
                return true;
            }
        }
        false
    }
}

/// One admitted connection; releases its place when dropped.
struct Admitted {
    counts: Arc<Counts>,
    address: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.address {
            let mut map = self
                .counts
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

/// The proxy application behind connection limits and the head deadline.
pub struct Guarded<A> {
    inner: Arc<A>,
    limits: ConnectionLimits,
    counts: Arc<Counts>,
    on_refused_head: Option<OnRefusedHead>,
    tls: Arc<Terminators>,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, limits: ConnectionLimits) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            counts: Arc::default(),
            on_refused_head: None,
            tls: Arc::default(),
        }
    }

    /// Terminates TLS on the listeners that have it.
    pub fn with_tls(mut self, tls: Arc<Terminators>) -> Self {
        self.tls = tls;
        self
    }

    /// Reports each request head the listener answered itself (see `guard`).
    pub fn on_refused_head(mut self, report: OnRefusedHead) -> Self {
        self.on_refused_head = Some(report);
        self
    }

    fn admit(&self, address: Option<IpAddr>) -> Result<Admitted, &'static str> {
        let total = self.counts.total.fetch_add(1, Ordering::Relaxed);
        // From here on, dropping `admitted` gives the place back, also on refusal.
        let mut admitted = Admitted {
            counts: self.counts.clone(),
            address: None,
        };
        if total >= self.limits.max_connections {
            // Full: room for this one is made by closing the oldest connection without a request
            // head, if any; only a gateway full of requests in progress refuses.
            if !self.counts.evict_oldest_idle() {
                return Err("max_connections");
            }
            crate::metrics::CONNECTIONS_REFUSED
                .with_label_values(&["evicted_idle"])
                .inc();
        }
        if let Some(ip) = address {
            let mut map = self
                .counts
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= self.limits.max_per_address {
                return Err("max_per_address");
            }
            *n += 1;
            admitted.address = Some(ip);
        }
        Ok(admitted)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let address = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _admitted = match self.admit(address) {
            Ok(a) => a,
            Err(reason) => {
                crate::metrics::CONNECTIONS_REFUSED
                    .with_label_values(&[reason])
                    .inc();
                tracing::debug!(?address, reason, "connection refused");
                return None;
            }
        };
        let stream = match self.tls.terminate(stream, self.limits.head_timeout).await {
            Ok(s) => s,
            Err(reason) => {
                crate::metrics::CONNECTIONS_REFUSED
                    .with_label_values(&[reason])
                    .inc();
                return None;
            }
        };
        if stream.selected_alpn_proto() == Some(pingora::protocols::ALPN::H2) {
            // HTTP/2 multiplexes requests and has its own framing and flow control: the head
            // clock below reads HTTP/1 heads, so an h2 connection goes to the proxy as it is.
            return self.inner.process_new(stream, shutdown).await;
        }
        let evictable = Arc::new(Evictable::default());
        self.counts.register(&evictable);
        let mut deadlined = guard::Deadlined::new(
            stream,
            self.limits.head_timeout,
            self.on_refused_head.clone(),
            evictable,
        );
        // Closed, timed out or evicted before its first byte: nothing to answer.
        if !matches!(deadlined.first_byte().await, Ok(true)) {
            return None;
        }
        let stream: Stream = Box::new(deadlined);
        // HTTP/1 keep-alive requests are all served inside this call: the place is held until the
        // connection ends.
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}
