//! A legacy upstream's own stream, opened for one client stream: its `endpoint` event says where
//! the stream's messages go (kept on the upstream's origin), its `message` events are the answers.

use super::super::ctx::RequestCtx;
use super::super::visible::Visible;
use crate::error::GatewayError;
use crate::upstream::Picked;
use bytes::{Bytes, BytesMut};
use std::time::Duration;

/// How long the upstream may take to name its endpoint.
const ENDPOINT_WAIT: Duration = Duration::from_secs(10);
/// The most an upstream event may hold before the stream is given up.
const MAX_EVENT: usize = 4 << 20;

pub struct Upstream {
    pub picked: Picked,
    /// Path and query of the upstream's message endpoint.
    pub endpoint: http::Uri,
    resp: reqwest::Response,
    buf: BytesMut,
}

/// Opens the stream on an upstream of the caller's scope and waits for its endpoint.
pub async fn open(ctx: &RequestCtx) -> Result<Upstream, GatewayError> {
    let caller = ctx.admitted()?;
    let scope = caller.scope.clone();
    let picked = scope
        .select(caller.identity.user.as_bytes(), &[])
        .ok_or_else(|| GatewayError::NoHealthyUpstream(scope.scope.name.clone()))?;
    let base = picked.target.url();
    let failed = |why: String| {
        tracing::warn!(request_id = %ctx.request_id, upstream = %picked.addr, error = %why, "legacy upstream stream failed");
        GatewayError::UpstreamFailed("the upstream's event stream could not be opened".into())
    };
    let client = match scope.pool.own_client() {
        Some(c) => c.clone(),
        None => reqwest::Client::builder()
            .connect_timeout(scope.scope.connect_timeout)
            .build()
            .map_err(|e| failed(e.to_string()))?,
    };
    let resp = picked
        .with_headers(client.get(&base))
        .header("accept", "text/event-stream")
        .header("x-gateway-auth", scope.auth_header.clone())
        .header("x-user-id", caller.identity.user.as_str())
        .header("x-request-id", ctx.request_id.as_str())
        .send()
        .await
        .map_err(|e| failed(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    let mut up = Upstream {
        picked: picked.clone(),
        endpoint: http::Uri::from_static("/"),
        resp,
        buf: BytesMut::new(),
    };
    let named = tokio::time::timeout(ENDPOINT_WAIT, up.endpoint_event())
        .await
        .map_err(|_| failed("no endpoint event in time".into()))?
        .ok_or_else(|| failed("the stream ended before its endpoint event".into()))?;
    up.endpoint = same_origin(&base, &named).ok_or_else(|| {
        failed(format!(
            "endpoint {named:?} is not on the upstream's origin"
        ))
    })?;
    Ok(up)
}

/// The endpoint as a path on the upstream's own origin; `None` for anything that leaves it.
fn same_origin(base: &str, named: &str) -> Option<http::Uri> {
    let base = url::Url::parse(base).ok()?;
    let to = base.join(named.trim()).ok()?;
    if to.origin() != base.origin() {
        return None;
    }
    let pq = match to.query() {
        Some(q) => format!("{}?{q}", to.path()),
        None => to.path().to_string(),
    };
    pq.parse().ok()
}

impl Upstream {
    /// The next complete event, or `None` when the stream ends.
    async fn next_event(&mut self) -> Option<(Option<String>, Option<Vec<u8>>)> {
        loop {
            if let Some((end, sep)) = crate::sse::next_event(&self.buf) {
                let event = self.buf.split_to(end + sep);
                let kind = event[..end]
                    .split(|b| *b == b'\n')
                    .find_map(|l| l.strip_prefix(b"event:"))
                    .map(|k| String::from_utf8_lossy(k).trim().to_string());
                return Some((kind, crate::sse::event_data(&event[..end])));
            }
            if self.buf.len() > MAX_EVENT {
                return None;
            }
            match self.resp.chunk().await {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                _ => return None,
            }
        }
    }

    async fn endpoint_event(&mut self) -> Option<String> {
        loop {
            let (kind, data) = self.next_event().await?;
            if kind.as_deref() == Some("endpoint") {
                return data.map(|d| String::from_utf8_lossy(&d).into_owned());
            }
        }
    }

    /// The next answers for the client, filtered for the caller, as `message` events; `None`
    /// when the upstream's stream ended.
    pub async fn next_messages(
        &mut self,
        allowed: &dyn Visible,
        mut guard: Option<&mut crate::guard::results::ResultGuard>,
    ) -> Option<Bytes> {
        loop {
            let (kind, data) = self.next_event().await?;
            if !matches!(kind.as_deref(), None | Some("message")) {
                continue;
            }
            let Some(data) = data else { continue };
            let filtered = super::super::filter::filter_message(&data, allowed);
            // The scope's result guards, as on any answer (hits counted as they come).
            let guarded = match (filtered, guard.as_deref_mut()) {
                (Some(m), Some(g)) => Some(g.message(&m).unwrap_or(m)),
                (m, _) => m,
            };
            match guarded {
                Some(m) => return Some(super::message(&m)),
                None => {
                    tracing::warn!(upstream = %self.picked.addr, "unreadable message from a legacy upstream dropped")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn endpoints_stay_on_the_upstream() {
        let base = "http://127.0.0.1:9000/sse";
        assert_eq!(
            same_origin(base, "/messages/?session_id=ab").unwrap(),
            "/messages/?session_id=ab"
        );
        assert_eq!(
            same_origin(base, "message?sessionId=1").unwrap(),
            "/message?sessionId=1"
        );
        assert_eq!(same_origin(base, "http://127.0.0.1:9000/m").unwrap(), "/m");
        assert!(same_origin(base, "http://169.254.169.254/latest").is_none());
        assert!(same_origin(base, "//evil.example/x").is_none());
        assert!(same_origin(base, "http://127.0.0.1:9001/m").is_none());
    }
}
