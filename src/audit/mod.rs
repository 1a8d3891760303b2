//! The audit trail: one [`AuditRecord`] per request on a scoped endpoint, refusals included,
//! handed by the proxy to a bounded queue without waiting, and written off the request path by
//! one writer task in batches: to PostgreSQL (with a local spool while it is down or slow, replayed
//! in order when it is back), or to a JSON-lines file when no database is configured.
//!
//! Nothing is lost on the way out either: a batch stays "pending" until it is stored, and after the
//! server stops, [`Audit::finish`] stores whatever is pending or still queued.

mod columns;
mod line;
pub mod migrate;
pub mod record;
mod request_id;
pub mod scan;
pub mod search;
mod spool;
mod writer;

pub use crate::config::audit::{default_instance, AuditConfig, SinkConfig};
pub use crate::seal::ArgumentsMode;
pub use columns::names as column_names;
pub use record::AuditRecord;
pub use request_id::RequestId;

use crate::config::file::OnQueueFull;
use crate::metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The audit queue and its writer.
pub struct Audit {
    pub config: Arc<AuditConfig>,
    tx: mpsc::Sender<AuditRecord>,
    rx: tokio::sync::Mutex<mpsc::Receiver<AuditRecord>>,
    /// The batch being written: kept until it is stored, so an interrupted write loses nothing.
    pending: Mutex<Option<Arc<Vec<AuditRecord>>>>,
    dropped: AtomicU64,
}

impl Audit {
    pub fn new(config: Arc<AuditConfig>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        Arc::new(Self {
            config,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            pending: Mutex::new(None),
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether rows are recorded at all (`audit.enabled`).
    pub fn enabled(&self) -> bool {
        !matches!(self.config.sink, SinkConfig::Off)
    }

    /// Queues a row; never waits. A full queue drops the row, counted and logged (fail_open), or
    /// makes the gateway refuse new requests until it drains (fail_closed, see [`Self::saturated`]).
    pub fn submit(&self, record: AuditRecord) {
        if !self.enabled() {
            return;
        }
        match self.tx.try_send(record) {
            Ok(()) => metrics::AUDIT_QUEUE_DEPTH.inc(),
            Err(mpsc::error::TrySendError::Full(r)) | Err(mpsc::error::TrySendError::Closed(r)) => {
                metrics::AUDIT_ROWS.with_label_values(&["dropped"]).inc();
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::error!(request_id = %r.request_id, dropped_total = n, "audit queue full: row dropped");
                }
            }
        }
    }

    /// Whether new requests must be refused (fail_closed and the queue is full).
    pub fn saturated(&self) -> bool {
        self.config.on_queue_full == OnQueueFull::FailClosed && self.tx.capacity() == 0
    }

    /// The writer. On the shutdown signal it stores what it holds and returns; rows that arrive
    /// later stay queued for [`Self::finish`].
    pub async fn run(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut rx = self.rx.lock().await;
        let mut sink = writer::Sink::open(&self.config).await;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let mut batch = Vec::with_capacity(self.config.batch_size);
            tokio::select! {
                n = rx.recv_many(&mut batch, self.config.batch_size) => {
                    if n == 0 {
                        return;
                    }
                }
                _ = tick.tick() => {
                    sink.tick().await;
                    continue;
                }
                _ = shutdown.changed() => return,
            }
            // Under load, rows keep coming: let them gather for a moment so one COPY carries
            // many (each statement costs far more than each row). The task sleeps meanwhile
            // instead of waiting on the queue, so the proxy threads do not wake it for every row;
            // a full batch (a backlog) is written at once.
            let mut stopping = false;
            if batch.len() < self.config.batch_size {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.flush_interval) => {}
                    _ = shutdown.changed() => stopping = true,
                }
                while batch.len() < self.config.batch_size {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
            metrics::AUDIT_QUEUE_DEPTH.sub(batch.len() as i64);
            let batch = Arc::new(batch);
            self.set_pending(Some(batch.clone()));
            sink.write(&batch).await;
            self.set_pending(None);
            if stopping {
                return;
            }
        }
    }

    fn set_pending(&self, batch: Option<Arc<Vec<AuditRecord>>>) {
        if let Ok(mut p) = self.pending.lock() {
            *p = batch;
        }
    }

    /// Stores whatever is pending or still queued; for after the server has stopped.
    pub async fn finish(&self) {
        let mut rows: Vec<AuditRecord> = Vec::new();
        if let Some(p) = self.pending.lock().ok().and_then(|mut p| p.take()) {
            rows.extend(p.iter().cloned());
        }
        let mut rx = self.rx.lock().await;
        while let Ok(r) = rx.try_recv() {
            rows.push(r);
        }
        let mut sink = writer::Sink::open(&self.config).await;
        sink.finish(&rows).await;
    }
}
