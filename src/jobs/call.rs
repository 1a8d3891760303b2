//! One tool call the gateway makes itself (a job, or a synchronous `POST /mcp/invoke`): it picks
//! a healthy upstream of the scope and sends the `tools/call` in the revision that upstream
//! speaks — in the gateway's own upstream session for older upstreams (shared with bridged
//! requests), or stateless with the `_meta` envelope for 2026-07-28-only ones. The caller's
//! identity travels as on a proxied call (`X-User-ID`, `X-Tenant-ID`, `X-Request-ID`); the
//! client's token never does.
//!
//! Cancelling stops the wait and tells the upstream with `notifications/cancelled`.

use crate::audit::AuditRecord;
use crate::auth::Identity;
use crate::error::GatewayError;
use crate::jsonrpc::MODERN_VERSION;
use crate::outcome::Class;
use crate::protocol::method;
use crate::upstream::client::{self, for_caller, in_session, OwnSession};
use crate::upstream::{Picked, ScopeUpstreams};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What the call needs, taken from the request that asked for it (after it was allowed).
pub struct Call {
    pub scope: Arc<ScopeUpstreams>,
    pub bridged: Arc<client::Pool>,
    pub identity: Arc<Identity>,
    pub tool: String,
    /// The `arguments` object as the client sent it.
    pub arguments: Value,
    /// The request that submitted it (the upstream sees it in `X-Request-ID`).
    pub request_id: String,
    /// The trace of the request that submitted it: the call is a span of it, and the upstream
    /// gets that span in `traceparent`.
    pub trace: Option<crate::trace::CallTrace>,
}

/// Why a call has no result.
#[derive(Debug)]
pub enum Failure {
    Cancelled,
    Gateway(GatewayError),
}

/// How a call ended.
pub struct Ended {
    /// The JSON-RPC answer's `{"result": …}` or `{"error": …}`, as JSON text.
    pub result: Result<String, Failure>,
    pub upstream: Option<Picked>,
    /// Whether the result is a tool error (`isError`), or the JSON-RPC error code.
    pub tool_error: bool,
    pub rpc_code: Option<i32>,
    /// What the scope's result guards found (the result is already redacted or replaced).
    pub guard_hits: crate::guard::Hits,
}

impl Call {
    /// A job's time limit: `max_run`, or the scope's `total_timeout` when that is shorter.
    pub fn timeout(&self, max_run: Duration) -> Duration {
        self.scope
            .scope
            .total_timeout
            .map_or(max_run, |t| t.min(max_run))
    }

    /// A synchronous call's time limit: the scope's `total_timeout`, else its read timeout.
    pub fn sync_timeout(&self) -> Duration {
        self.scope
            .scope
            .total_timeout
            .unwrap_or(self.scope.scope.read_timeout)
    }

    /// Makes the call; `cancelled` resolving stops it. A traced call is a span of the trace of
    /// the request that started it.
    pub async fn run(
        &self,
        job_id: &str,
        timeout: Duration,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> Ended {
        let (start, wall) = (std::time::Instant::now(), std::time::SystemTime::now());
        let ended = self.call(job_id, timeout, cancelled).await;
        if let Some(t) = &self.trace {
            self.traced(t, job_id, &ended, start, wall);
        }
        ended
    }

    fn traced(
        &self,
        t: &crate::trace::CallTrace,
        job_id: &str,
        ended: &Ended,
        start: std::time::Instant,
        wall: std::time::SystemTime,
    ) {
        use opentelemetry::KeyValue;
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", method::TOOLS_CALL),
            KeyValue::new("gen_ai.tool.name", self.tool.clone()),
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("mcp_gateway.scope", self.scope.scope.name.clone()),
            KeyValue::new("mcp_gateway.job_id", job_id.to_string()),
            KeyValue::new("mcp_gateway.request_id", self.request_id.clone()),
        ];
        if let Some(p) = &ended.upstream {
            attributes.push(KeyValue::new("mcp_gateway.upstream", p.addr.clone()));
            attributes.push(KeyValue::new("server.address", p.target.host.clone()));
            attributes.push(KeyValue::new("server.port", i64::from(p.sock.port())));
        }
        let error = match &ended.result {
            Err(Failure::Cancelled) => Some("cancelled".to_string()),
            Err(Failure::Gateway(e)) => Some(
                crate::outcome::Outcome::Gateway(e)
                    .class()
                    .as_str()
                    .to_string(),
            ),
            Ok(_) if ended.tool_error => Some("tool_error".to_string()),
            Ok(_) => ended.rpc_code.map(|c| c.to_string()),
        };
        if let Some(code) = ended.rpc_code {
            attributes.push(KeyValue::new("rpc.response.status_code", code.to_string()));
        }
        if let Some(e) = &error {
            attributes.push(KeyValue::new("error.type", e.clone()));
        }
        let span = crate::trace::SpanOut {
            name: format!("{} {}", method::TOOLS_CALL, crate::logs::clip(&self.tool)).into(),
            kind: opentelemetry::trace::SpanKind::Client,
            start,
            end: std::time::Instant::now(),
            attributes,
            error: error.map(Into::into),
        };
        t.parent.finish(&t.tracer, t.span, span, wall);
    }

    async fn call(
        &self,
        job_id: &str,
        timeout: Duration,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> Ended {
        let Some(picked) = self.scope.select(self.identity.user.as_bytes(), &[]) else {
            return self.failed(
                None,
                GatewayError::NoHealthyUpstream(self.scope.scope.name.clone()),
            );
        };
        let rpc_id = format!("\"mcp-gateway-job-{job_id}\"");
        let sent = async {
            match self.send(&picked, &rpc_id, timeout).await {
                // The upstream forgot the gateway's session: open a new one, once.
                Err(Sent::SessionGone) => {
                    self.bridged.forget(&picked.addr);
                    self.send(&picked, &rpc_id, timeout).await
                }
                other => other,
            }
        };
        tokio::select! {
            r = sent => match r {
                Ok(text) => self.ended(&picked, text),
                Err(Sent::Failed(e)) => self.failed(Some(&picked), e),
                Err(Sent::SessionGone) => self.failed(Some(&picked), GatewayError::UpstreamFailed("the upstream lost the session".into())),
            },
            _ = cancelled => {
                self.tell_cancelled(&picked, &rpc_id).await;
                Ended { result: Err(Failure::Cancelled), upstream: Some(picked), tool_error: false, rpc_code: None, guard_hits: Default::default() }
            }
        }
    }

    fn failed(&self, picked: Option<&Picked>, e: GatewayError) -> Ended {
        Ended {
            rpc_code: Some(e.code()),
            result: Err(Failure::Gateway(e)),
            upstream: picked.cloned(),
            tool_error: false,
            guard_hits: Default::default(),
        }
    }

    fn ended(&self, picked: &Picked, answer: Value) -> Ended {
        let tool_error = answer
            .pointer("/result/isError")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let rpc_code = answer
            .pointer("/error/code")
            .and_then(Value::as_i64)
            .map(|c| c as i32);
        let kept = match (answer.get("result"), answer.get("error")) {
            (Some(r), _) => json!({ "result": r }),
            (None, Some(e)) => json!({ "error": e }),
            _ => {
                return self.failed(
                    Some(picked),
                    GatewayError::UpstreamFailed("the upstream's answer holds no result".into()),
                )
            }
        };
        // A job's result passes the scope's result guards before it is kept: whoever reads it
        // later (the REST API, `tasks/result`) gets what a direct answer would have been.
        let mut text = kept.to_string();
        let mut guard_hits = crate::guard::Hits::default();
        if let Some(g) = self.scope.scope.guards.clone().filter(|g| g.on_results()) {
            let mut guard = crate::guard::results::ResultGuard::new(g, None);
            if let Some(new) = guard.message(text.as_bytes()) {
                text = String::from_utf8_lossy(&new).into_owned();
            }
            guard_hits = guard.hits;
        }
        Ended {
            result: Ok(text),
            upstream: Some(picked.clone()),
            tool_error,
            rpc_code,
            guard_hits,
        }
    }

    /// The revision to speak and the gateway's session there (none toward 2026-07-28-only
    /// upstreams, which keep no sessions).
    async fn session(&self, picked: &Picked) -> Result<OwnSession, GatewayError> {
        match self.scope.scope.upstream_version {
            Some(MODERN_VERSION) => Ok(None),
            v => {
                let version = v.unwrap_or("2025-11-25");
                let opened = self.bridged.get(&self.scope, picked, version).await?;
                Ok(Some((version, opened.session.clone())))
            }
        }
    }

    fn request(
        &self,
        picked: &Picked,
        body: &Value,
        session: &OwnSession,
        method: &str,
    ) -> reqwest::RequestBuilder {
        let r = for_caller(
            self.bridged.post(&self.scope, picked, body),
            &self.request_id,
            &self.identity.user,
            self.identity.tenant.as_deref(),
            self.trace.as_ref().map(|t| t.traceparent.as_str()),
        );
        let mut r = in_session(r, session, method);
        if session.is_none() && method == method::TOOLS_CALL {
            r = r.header("mcp-name", crate::protocol::encode_header_value(&self.tool));
        }
        r
    }

    async fn send(&self, picked: &Picked, rpc_id: &str, timeout: Duration) -> Result<Value, Sent> {
        let session = self.session(picked).await.map_err(Sent::Failed)?;
        let mut params = json!({ "name": self.tool, "arguments": self.arguments });
        if session.is_none() {
            params["_meta"] = crate::protocol::own_envelope();
        }
        let id: Value = serde_json::from_str(rpc_id).unwrap_or(Value::Null);
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": method::TOOLS_CALL, "params": params});
        let resp = self
            .request(picked, &body, &session, method::TOOLS_CALL)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Sent::Failed(transport(e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND
            && session.as_ref().is_some_and(|(_, s)| s.is_some())
        {
            return Err(Sent::SessionGone);
        }
        if !status.is_success() {
            return Err(Sent::Failed(GatewayError::UpstreamFailed(
                format!("the upstream answered HTTP {}", status.as_u16()).into(),
            )));
        }
        let text = resp.text().await.map_err(|e| Sent::Failed(transport(e)))?;
        answer_to(&text, &id).ok_or_else(|| {
            Sent::Failed(GatewayError::UpstreamFailed(
                "the upstream's answer is not a JSON-RPC answer to the call".into(),
            ))
        })
    }

    /// `notifications/cancelled` for the call, best effort.
    async fn tell_cancelled(&self, picked: &Picked, rpc_id: &str) {
        let Ok(session) = self.session(picked).await else {
            return;
        };
        let id: Value = serde_json::from_str(rpc_id).unwrap_or(Value::Null);
        let mut params = json!({"requestId": id, "reason": "cancelled by its owner"});
        if session.is_none() {
            params["_meta"] = crate::protocol::own_envelope();
        }
        let body = json!({"jsonrpc": "2.0", "method": method::CANCELLED, "params": params});
        let sent = self
            .request(picked, &body, &session, method::CANCELLED)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Err(e) = sent {
            tracing::info!(error = %e.without_url(), "cancellation not delivered to the upstream");
        }
    }

    /// The row that records a job's end, linked to its submission by the job id.
    pub fn audit_end(
        &self,
        audit: &crate::audit::Audit,
        job: &super::Job,
        ended: &Ended,
        elapsed: Duration,
        status: super::Status,
    ) {
        ended.guard_hits.count(&job.scope);
        if !audit.enabled() {
            return;
        }
        let (outcome, reason) = match (&ended.result, status) {
            (Err(Failure::Cancelled), _) | (_, super::Status::Cancelled) => {
                (Class::Ok, Some("job cancelled by its owner".to_string()))
            }
            (Err(Failure::Gateway(e)), _) => (
                crate::outcome::Outcome::Gateway(e).class(),
                Some(e.to_string()),
            ),
            (Ok(_), super::Status::Failed) => (
                Class::Internal,
                Some("the result could not be stored".to_string()),
            ),
            (Ok(_), _) if ended.tool_error => (Class::ToolError, None),
            (Ok(_), _) if ended.rpc_code.is_some() => (Class::RpcError, None),
            (Ok(_), _) => (Class::Ok, None),
        };
        let ms = elapsed.as_secs_f64() * 1000.0;
        let row = AuditRecord::new(&audit.config, crate::audit::RequestId::new(), outcome, 200)
            .by(&self.identity);
        audit.submit(AuditRecord {
            scope: Some(job.scope.clone()),
            method: Some(crate::protocol::method::TOOLS_CALL.into()),
            tool: Some(job.tool.clone()),
            reason,
            rpc_error_code: ended.rpc_code,
            upstream: ended.upstream.as_ref().map(|p| p.addr.clone()),
            latency_ms: ms,
            upstream_latency_ms: Some(ms),
            response_bytes: ended.result.as_ref().map_or(0, |t| t.len() as i64),
            job_id: Some(job.id.clone()),
            guard_hits: ended.guard_hits.summary(),
            trace_id: (self.trace.as_ref()).map(|t| crate::trace::hex_id(t.parent.trace_id)),
            ..row
        });
    }
}

enum Sent {
    Failed(GatewayError),
    SessionGone,
}

fn transport(e: reqwest::Error) -> GatewayError {
    if e.is_timeout() {
        GatewayError::UpstreamTimeout("the tool did not answer in time".into())
    } else {
        tracing::warn!(error = %e.without_url(), "job call to the upstream failed");
        GatewayError::UpstreamFailed("the upstream could not be reached".into())
    }
}

/// The JSON-RPC answer with `id` in a JSON body or an SSE stream (server requests and
/// notifications on the way are skipped).
fn answer_to(text: &str, id: &Value) -> Option<Value> {
    let is_answer = |v: &Value| {
        v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some())
    };
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return is_answer(&v).then_some(v);
    }
    crate::sse::events_in(text.as_bytes())
        .filter_map(|d| serde_json::from_slice::<Value>(&d).ok())
        .find(is_answer)
}

#[cfg(test)]
mod tests {
    use super::answer_to;
    use serde_json::json;

    #[test]
    fn the_answer_is_found_in_json_or_among_events() {
        let id = json!("j1");
        let v = answer_to(
            r#"{"jsonrpc":"2.0","id":"j1","result":{"content":[]}}"#,
            &id,
        )
        .unwrap();
        assert_eq!(v["result"]["content"], json!([]));
        let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"j1\",\"error\":{\"code\":-32602,\"message\":\"x\"}}\n\n";
        assert_eq!(answer_to(sse, &id).unwrap()["error"]["code"], -32602);
        assert!(answer_to(r#"{"jsonrpc":"2.0","id":"other","result":{}}"#, &id).is_none());
        assert!(answer_to("garbage", &id).is_none());
    }
}
