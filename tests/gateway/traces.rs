//! OpenTelemetry traces (`tracing:`), exported to a real OTLP receiver built on the official
//! protobuf definitions (`tests/servers/otlp_receiver.py`, over HTTP and gRPC), with a recording
//! upstream to see the trace context a tool receives: a call continues its client's trace into
//! the tool; a call without one starts a trace; `params._meta` names the parent where MCP clients
//! put it; refusals are spans with their reason; sampling 0 sends nothing; a dead or stuck
//! collector leaves calls alone and its drops are counted; a job's span joins the trace of the
//! request that started it; the audit row and the access line carry the trace id.

use crate::common::recorder::Recorder;
use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

struct Receiver {
    proc: Proc,
    grpc: u16,
}

impl Receiver {
    async fn start() -> Self {
        let grpc = free_port();
        let proc = python_server(
            "otlp_receiver.py",
            &["--grpc".as_ref(), grpc.to_string().as_ref()],
        )
        .await;
        Receiver { proc, grpc }
    }

    async fn spans(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/spans", self.proc.port);
        let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        v.as_array().unwrap().clone()
    }

    /// The spans of `trace`, once at least `n` have arrived (the gateway exports in batches of
    /// up to a second); what there is after 20 s otherwise.
    async fn trace(&self, trace: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<Value> = (self.spans().await.into_iter())
                .filter(|s| s["trace_id"] == trace)
                .collect();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

async fn gateway(recorder: &Recorder, tracing: &str) -> Gateway {
    let mut spec = GatewaySpec::new(&[recorder.port]);
    spec.without_health_check();
    spec.gateway_yaml.push_str(tracing);
    spec.start().await
}

fn traced_to(receiver: &Receiver) -> String {
    format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 1.0\n",
        receiver.proc.port
    )
}

/// Developer calls with ids `ids`, each answered with the tool's result.
async fn calls(gw: &Gateway, ids: std::ops::RangeInclusive<u64>) {
    let dev = gw.developer("dev");
    for id in ids {
        let r = dev.post(&call_body(id, "exact_calculate", None)).await;
        assert_eq!(r.status(), 200);
        assert!(rpc_body(r).await.get("result").is_some());
    }
}

/// Posts `body` as a call in the client's trace (`traceparent` naming `CLIENT_SPAN` of `TRACE`).
async fn in_trace(c: &Client, body: &Value) -> reqwest::Response {
    c.request(reqwest::Method::POST)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn call_body(id: u64, tool: &str, meta: Option<Value>) -> Value {
    let mut params = json!({"name": tool, "arguments": {"expression": "6*7", "note": "argument-value-never-in-spans"}});
    if let Some(m) = meta {
        params["_meta"] = m;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// The trace context the upstream got: from the header and from `params._meta`.
fn upstream_context(recorder: &Recorder, id: u64) -> (String, Option<String>) {
    let r = recorder
        .received()
        .into_iter()
        .find(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|v| v["id"] == id && v["method"] == "tools/call")
        })
        .unwrap_or_else(|| panic!("call {id} never reached the upstream"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let meta = body["params"]["_meta"]["traceparent"]
        .as_str()
        .map(str::to_string);
    (r.header("traceparent").expect("a traceparent header"), meta)
}

#[tokio::test]
async fn a_call_continues_the_clients_trace_into_the_tool() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder, &traced_to(&receiver)).await;
    let token = token("dev", &["developer"], json!({}));
    let dev = Client::new(gw.url("/calculator/mcp"), Some(token.clone()));
    let r = dev
        .request(reqwest::Method::POST)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .json(&call_body(1, "exact_calculate", None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(rpc_body(r).await.get("result").is_some());

    let spans = receiver.trace(TRACE, 4).await;
    let server = named(&spans, "tools/call exact_calculate");
    assert_eq!(server["kind"], 2, "a server span: {server}");
    assert_eq!(
        server["parent_span_id"], CLIENT_SPAN,
        "the client's span is its parent"
    );
    assert_eq!(server["service"], "mcp-gateway");
    assert_eq!(server["via"], "http");
    let a = &server["attributes"];
    assert_eq!(a["mcp.method.name"], "tools/call");
    assert_eq!(a["gen_ai.tool.name"], "exact_calculate");
    assert_eq!(a["gen_ai.operation.name"], "execute_tool");
    assert_eq!(a["jsonrpc.request.id"], "1");
    assert_eq!(a["mcp_gateway.scope"], "calculator");
    assert_eq!(a["mcp_gateway.outcome"], "ok");
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(
        a["user.id"],
        hex(&Sha256::digest(b"dev")[..16]),
        "the user id is hashed by default"
    );
    assert!(a.get("error.type").is_none(), "{server}");
    let server_id = server["span_id"].as_str().unwrap();
    for step in ["authenticate", "authorize"] {
        assert_eq!(named(&spans, step)["parent_span_id"], server_id, "{step}");
    }
    let upstream = spans
        .iter()
        .find(|s| s["kind"] == 3)
        .unwrap_or_else(|| panic!("no client span: {spans:#?}"));
    assert_eq!(upstream["parent_span_id"], server_id);
    assert_eq!(upstream["attributes"]["server.address"], "127.0.0.1");
    assert_eq!(
        upstream["attributes"]["server.port"],
        i64::from(recorder.port)
    );
    // The tool joins the same trace under the gateway's upstream-call span: header and _meta.
    let upstream_id = upstream["span_id"].as_str().unwrap();
    let (header, meta) = upstream_context(&recorder, 1);
    assert_eq!(header, format!("00-{TRACE}-{upstream_id}-01"));
    assert_eq!(meta.as_deref(), Some(header.as_str()));
    let sent = recorder.received();
    let to_tool = sent
        .iter()
        .find(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .unwrap();
    assert_eq!(to_tool.header("tracestate").as_deref(), Some("vendor=abc"));
    // Never the token or an argument's value.
    let all = serde_json::to_string(&receiver.spans().await).unwrap();
    assert!(!all.contains(&token) && !all.contains("argument-value-never-in-spans"));
    // The audit row and the access line carry the trace id.
    let rows = gw
        .audit_rows_where(1, |r| r["tool"] == "exact_calculate")
        .await;
    assert_eq!(rows[0]["trace_id"], TRACE, "{:?}", rows[0]);
    gw.log_with(&format!("trace_id={TRACE}")).await;
}

#[tokio::test]
async fn a_call_without_a_trace_starts_one_and_meta_names_the_parent() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder, &traced_to(&receiver)).await;
    let dev = gw.developer("dev");
    // No trace context at all: a new trace, and the upstream gets it.
    assert_eq!(
        dev.post(&call_body(1, "exact_calculate", None))
            .await
            .status(),
        200
    );
    let (header, _) = upstream_context(&recorder, 1);
    let new_trace = header.split('-').nth(1).unwrap().to_string();
    assert_ne!(new_trace, TRACE);
    let spans = receiver.trace(&new_trace, 4).await;
    let server = named(&spans, "tools/call exact_calculate");
    assert_eq!(server["parent_span_id"], "", "a root span: {server}");

    // `params._meta.traceparent` (where MCP clients put it) is the parent; the header's is linked.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = dev
        .request(reqwest::Method::POST)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .json(&call_body(
            2,
            "statistics",
            Some(json!({"traceparent": format!("00-{meta_trace}-b7ad6b7169203331-01"), "progressToken": "p"})),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spans = receiver.trace(meta_trace, 4).await;
    let server = named(&spans, "tools/call statistics");
    assert_eq!(server["parent_span_id"], "b7ad6b7169203331");
    assert_eq!(server["links"][0]["trace_id"], TRACE, "{server}");
    let (header, meta) = upstream_context(&recorder, 2);
    assert!(header.starts_with(&format!("00-{meta_trace}-")), "{header}");
    assert_eq!(meta.as_deref(), Some(header.as_str()));
    // The client's other _meta entries pass as they were.
    let to_tool = recorder
        .received()
        .into_iter()
        .find(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["id"] == 2));
    let body: Value = serde_json::from_slice(&to_tool.unwrap().body).unwrap();
    assert_eq!(body["params"]["_meta"]["progressToken"], "p");
}

#[tokio::test]
async fn a_refused_call_is_a_span_with_its_reason_and_no_upstream_call() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder, &traced_to(&receiver)).await;
    let analyst = Client::new(
        gw.url("/calculator/mcp"),
        Some(token("ann", &["analyst"], json!({}))),
    );
    let r = in_trace(&analyst, &call_body(5, "statistics", None)).await;
    let refused = rpc_body(r).await;
    assert!(refused.get("error").is_some(), "{refused}");
    let spans = receiver.trace(TRACE, 3).await;
    let server = named(&spans, "tools/call statistics");
    assert_eq!(server["attributes"]["error.type"], "denied");
    assert_eq!(server["attributes"]["mcp_gateway.outcome"], "denied");
    assert_eq!(
        server["attributes"]["rpc.response.status_code"],
        refused["error"]["code"].to_string()
    );
    assert_eq!(server["status"]["code"], 2, "status ERROR: {server}");
    assert!(!server["status"]["message"].as_str().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spans = receiver.trace(TRACE, 99).await;
    assert!(
        spans.iter().all(|s| s["kind"] != 3),
        "no upstream call: {spans:#?}"
    );
    assert!(recorder
        .received()
        .iter()
        .all(|r| r.rpc_method().as_deref() != Some("tools/call")));
}

#[tokio::test]
async fn sampling_zero_sends_nothing_but_the_context_still_travels() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let tracing = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  sample_ratio: 0.0\n  parent_based: false\n",
        receiver.proc.port
    );
    let gw = gateway(&recorder, &tracing).await;
    let dev = gw.developer("dev");
    for id in 1..=5 {
        let r = in_trace(&dev, &call_body(id, "exact_calculate", None)).await;
        assert_eq!(r.status(), 200);
    }
    // Past the export delay: nothing arrived.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.spans().await, Vec::<Value>::new());
    // The upstream still continues the caller's trace, told it is not sampled; no _meta added.
    let (header, meta) = upstream_context(&recorder, 3);
    assert!(
        header.starts_with(&format!("00-{TRACE}-")) && header.ends_with("-00"),
        "{header}"
    );
    assert_eq!(meta, None);
    let m = gw.metrics_text().await;
    assert_eq!(metric_or_zero(&m, "mcp_trace_spans_exported_total"), 0.0);
}

#[tokio::test]
async fn a_dead_or_stuck_collector_leaves_calls_alone_and_its_drops_are_counted() {
    let recorder = Recorder::start().await;
    // Nothing listens there: every export fails at once.
    let dead = free_port();
    let gw = gateway(
        &recorder,
        &format!("tracing:\n  otlp_endpoint: http://127.0.0.1:{dead}\n"),
    )
    .await;
    calls(&gw, 1..=20).await;
    let series = "mcp_trace_spans_dropped_total{reason=\"export_failed\"}";
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut dropped = 0.0;
    while Instant::now() < deadline && dropped < 60.0 {
        dropped = metric_or_zero(&gw.metrics_text().await, series);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        dropped >= 60.0,
        "20 calls of 3+ spans each dropped, counted: {dropped}"
    );
    gw.log_with("the collector did not take a batch of spans")
        .await;

    // A collector that takes the connection and never answers: the queue fills while an export
    // waits, and what does not fit is dropped and counted, not waited for.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stuck_port = stuck.local_addr().unwrap().port();
    let gw = gateway(
        &recorder,
        &format!("tracing:\n  otlp_endpoint: http://127.0.0.1:{stuck_port}\n  queue: 2\n  export_timeout: 60s\n"),
    )
    .await;
    calls(&gw, 1..=3).await;
    // Past the batch delay the exporter waits on the collector; the next calls fill the queue.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    calls(&gw, 4..=30).await;
    let m = gw
        .metrics_when("mcp_trace_spans_dropped_total{reason=\"queue_full\"}", 1.0)
        .await;
    assert!(metric(&m, "mcp_trace_spans_dropped_total{reason=\"queue_full\"}") >= 1.0);
    drop(stuck);
}

#[tokio::test]
async fn spans_go_over_grpc_too() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let tracing = format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  protocol: grpc\n  user_id: plain\n  service_name: edge-gateway\n",
        receiver.grpc
    );
    let gw = gateway(&recorder, &tracing).await;
    let dev = gw.developer("dev");
    let r = in_trace(&dev, &call_body(1, "exact_calculate", None)).await;
    assert_eq!(r.status(), 200);
    let spans = receiver.trace(TRACE, 4).await;
    let server = named(&spans, "tools/call exact_calculate");
    assert_eq!(server["via"], "grpc");
    assert_eq!(server["service"], "edge-gateway");
    assert_eq!(server["attributes"]["user.id"], "dev");
}

#[tokio::test]
async fn a_jobs_span_joins_the_trace_of_the_call_that_started_it() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder, &traced_to(&receiver)).await;
    let r = reqwest::Client::new()
        .post(gw.url("/mcp/invoke"))
        .bearer_auth(token("dev", &["developer"], json!({})))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .header("prefer", "respond-async")
        .json(&json!({"tool_name": "exact_calculate", "arguments": {"expression": "1+1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap().to_string();
    let spans = receiver.trace(TRACE, 4).await;
    let submitted = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"));
    assert_eq!(submitted["parent_span_id"], CLIENT_SPAN);
    let ran = spans
        .iter()
        .find(|s| s["attributes"]["mcp_gateway.job_id"] == job_id.as_str())
        .unwrap_or_else(|| panic!("no span of job {job_id}: {spans:#?}"));
    assert_eq!(ran["name"], "tools/call exact_calculate");
    assert_eq!(ran["parent_span_id"], submitted["span_id"], "{ran}");
    let to_tool = recorder
        .received()
        .into_iter()
        .find(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .expect("the job reached the upstream");
    assert_eq!(
        to_tool.header("traceparent").unwrap(),
        format!("00-{TRACE}-{}-01", ran["span_id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn an_mcp_tasks_job_span_joins_the_trace_of_its_call() {
    let receiver = Receiver::start().await;
    let recorder = Recorder::start().await;
    let gw = gateway(&recorder, &traced_to(&receiver)).await;
    let mut dev = gw.developer("dev");
    dev.initialize().await;
    let mut body = call_body(7, "exact_calculate", None);
    body["params"]["task"] = json!({"ttl": 60000});
    let v = rpc_body(in_trace(&dev, &body).await).await;
    let task_id = v["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {v}"))
        .to_string();
    let spans = receiver.trace(TRACE, 5).await;
    let call = named(&spans, "tools/call exact_calculate");
    let ran = spans
        .iter()
        .find(|s| s["attributes"]["mcp_gateway.job_id"] == task_id.as_str())
        .unwrap_or_else(|| panic!("no span of task {task_id}: {spans:#?}"));
    assert_eq!(ran["kind"], 3);
    let ids: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == 2)
        .map(|s| &s["span_id"])
        .collect();
    assert!(ids.contains(&&ran["parent_span_id"]), "{ran} under {call}");
}

#[tokio::test]
async fn bad_tracing_settings_are_named() {
    let mut spec = GatewaySpec::new(&[free_port()]);
    spec.gateway_yaml.push_str(
        "tracing:\n  otlp_endpoint: collector:4318\n  sample_ratio: 1.5\n  queue: 0\n  headers: { \"bad name\": x }\n",
    );
    let (ok, err) = spec.check();
    assert!(!ok);
    for field in [
        "tracing.otlp_endpoint",
        "tracing.sample_ratio",
        "tracing.queue",
        "tracing.headers.bad name",
    ] {
        assert!(err.contains(field), "{field} not named in:\n{err}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
