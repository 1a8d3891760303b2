//! The floor of any Pingora proxy here: a pass-through to one upstream with keep-alive, adding the
//! upstream secret header and nothing else. Used by `bench/run.py` as the "bare Pingora" contender.
//!
//! Usage: bare-pingora LISTEN UPSTREAM SSE_UPSTREAM SECRET THREADS [READ_BUFFER]
//!
//! Paths under `/calcsse/` go to SSE_UPSTREAM (a tool answering as SSE), paths under `/min/` to
//! `$BARE_MIN_UPSTREAM` (the minimal upstream) when set, all others to UPSTREAM.
//! READ_BUFFER is the client connections' read buffer in bytes: 0 by default, like the gateway;
//! Pingora's own default is 64 KiB.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// The allocator the gateway uses, so the comparison is about inspection, not allocators.
#[global_allocator]
static ALLOC: alloc::Allocator = alloc::Allocator;
#[path = "../src/alloc.rs"]
mod alloc;

struct Bare {
    upstream: std::net::SocketAddr,
    sse_upstream: std::net::SocketAddr,
    min_upstream: Option<std::net::SocketAddr>,
    secret: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let path = s.req_header().uri.path();
        let addr = match self.min_upstream {
            Some(min) if path.starts_with("/min/") => min,
            _ if path.starts_with("/calcsse/") => self.sse_upstream,
            _ => self.upstream,
        };
        Ok(Box::new(HttpPeer::new(addr, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        req: &mut RequestHeader,
        _c: &mut (),
    ) -> Result<()> {
        req.insert_header("X-Gateway-Auth", self.secret.as_str())?;
        req.set_uri(http::Uri::from_static("/mcp"));
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream, sse_upstream, secret, threads, read_buffer) = match args.as_slice() {
        [_, l, u, s, k, t] => (l, u, s, k, t, 0),
        [_, l, u, s, k, t, r] => (l, u, s, k, t, r.parse().expect("READ_BUFFER is bytes")),
        _ => {
            eprintln!(
                "usage: bare-pingora LISTEN UPSTREAM SSE_UPSTREAM SECRET THREADS [READ_BUFFER]"
            );
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads: threads.parse().unwrap_or(2),
        upstream_keepalive_pool_size: 256,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let bare = Bare {
        upstream: upstream.parse().expect("UPSTREAM is ip:port"),
        sse_upstream: sse_upstream.parse().expect("SSE_UPSTREAM is ip:port"),
        min_upstream: std::env::var("BARE_MIN_UPSTREAM")
            .ok()
            .map(|a| a.parse().expect("BARE_MIN_UPSTREAM is ip:port")),
        secret: secret.clone(),
    };
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, bare);
    let buffers = pingora::listeners::L4BufferSettings {
        read: Some(read_buffer),
        write: None,
    };
    svc.add_listener(pingora::listeners::ListenerConfig::tcp(listen.as_str()).l4_buffer(buffers));
    server.add_service(svc);
    server.run_forever();
}
