//! The exporter: a bounded queue the request path hands finished spans to without waiting, and a
//! background service that sends them in batches over OTLP (HTTP/protobuf or gRPC).
//!
//! The SDK's batch processor is not used because its queue's drops cannot be counted from outside
//! and it would build spans on the request path; the queue here holds spans already built, and
//! counts what it drops (`mcp_trace_spans_dropped_total{reason}`).

use crate::config::file::OtlpProtocol;
use crate::config::traces::ExporterSettings;
use crate::metrics::{TRACE_SPANS_DROPPED, TRACE_SPANS_EXPORTED};
use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Spans per export, at most.
const BATCH: usize = 512;
/// How long spans wait for a batch to fill.
const DELAY: Duration = Duration::from_secs(1);

/// The process's exporter: built at start from the first configuration with `tracing:`, kept
/// across reloads.
pub struct Exporting {
    settings: ExporterSettings,
    tx: mpsc::Sender<Vec<SpanData>>,
    rx: Mutex<Option<mpsc::Receiver<Vec<SpanData>>>>,
}

impl Exporting {
    pub fn new(settings: &ExporterSettings) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue);
        Self {
            settings: settings.clone(),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// The exporter settings it runs with (a reload naming others needs a restart).
    pub fn settings(&self) -> &ExporterSettings {
        &self.settings
    }

    /// Queues one request's spans; drops and counts them when the queue is full.
    pub fn submit(&self, spans: Vec<SpanData>) {
        if let Err(e) = self.tx.try_send(spans) {
            let n = match e {
                mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => {
                    s.len()
                }
            };
            TRACE_SPANS_DROPPED
                .with_label_values(&["queue_full"])
                .inc_by(n as u64);
        }
    }

    /// Exports until `stop` resolves, then sends what is queued (once, bounded by the export
    /// timeout). Runs on a background service's runtime, never on a proxy thread.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let exporter = match build(&self.settings) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, endpoint = %self.settings.endpoint, "tracing: cannot build the OTLP exporter; spans are dropped");
                drain_dropped(rx, stop).await;
                return;
            }
        };
        let mut warned: Option<Instant> = None;
        tokio::pin!(stop);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                s = rx.recv() => s,
                () = &mut stop => None,
            };
            let Some(first) = first else {
                break;
            };
            batch.extend(first);
            let deadline = tokio::time::Instant::now() + DELAY;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(more)) => batch.extend(more),
                    _ => break,
                }
            }
            self.send(&exporter, std::mem::take(&mut batch), &mut warned)
                .await;
        }
        // Stopping: what is queued goes once.
        rx.close();
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        if !batch.is_empty() {
            self.send(&exporter, batch, &mut warned).await;
        }
    }

    async fn send(&self, exporter: &Exporter, batch: Vec<SpanData>, warned: &mut Option<Instant>) {
        let n = batch.len() as u64;
        let result = tokio::time::timeout(self.settings.timeout, exporter.export(batch)).await;
        let error = match result {
            Ok(Ok(())) => {
                TRACE_SPANS_EXPORTED.inc_by(n);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        TRACE_SPANS_DROPPED
            .with_label_values(&["export_failed"])
            .inc_by(n);
        // One warning a minute: a collector that is down is said once, not per batch.
        if warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            tracing::warn!(endpoint = %self.settings.endpoint, error = %crate::logs::clip(&error), spans = n, "tracing: the collector did not take a batch of spans; they are dropped (counted in mcp_trace_spans_dropped_total)");
        }
    }
}

/// Without an exporter, queued spans are counted as dropped.
async fn drain_dropped(
    mut rx: mpsc::Receiver<Vec<SpanData>>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            s = rx.recv() => match s {
                Some(s) => TRACE_SPANS_DROPPED.with_label_values(&["export_failed"]).inc_by(s.len() as u64),
                None => return,
            },
            () = &mut stop => return,
        }
    }
}

type Exporter = opentelemetry_otlp::SpanExporter;

fn build(s: &ExporterSettings) -> Result<Exporter, opentelemetry_otlp::ExporterBuildError> {
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(s.service_name.clone())
        .build();
    let mut exporter = match s.protocol {
        OtlpProtocol::Http => {
            let headers = s
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
                .collect();
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(Http(
                    reqwest::Client::builder()
                        .timeout(s.timeout)
                        .build()
                        .unwrap_or_default(),
                ))
                .with_endpoint(s.endpoint.clone())
                .with_headers(headers)
                .with_timeout(s.timeout)
                .build()?
        }
        OtlpProtocol::Grpc => {
            let headers: http::HeaderMap = s.headers.iter().cloned().collect();
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(s.endpoint.clone())
                .with_metadata(metadata)
                .with_timeout(s.timeout);
            if s.endpoint.starts_with("https://") {
                b = b.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_native_roots(),
                );
            }
            b.build()?
        }
    };
    exporter.set_resource(&resource);
    Ok(exporter)
}

/// The OTLP/HTTP exporter's client: the gateway's own reqwest (one HTTP client in the binary).
#[derive(Debug)]
struct Http(reqwest::Client);

#[async_trait]
impl opentelemetry_http::HttpClient for Http {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let answer = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut out = http::Response::builder().status(answer.status());
        if let Some(h) = out.headers_mut() {
            *h = answer.headers().clone();
        }
        // A collector's answer is small; a larger one is cut (only its status matters).
        let mut body = Vec::new();
        let mut answer = answer;
        while let Some(chunk) = answer.chunk().await? {
            if body.len() + chunk.len() > 64 * 1024 {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(out.body(Bytes::from(body))?)
    }
}
