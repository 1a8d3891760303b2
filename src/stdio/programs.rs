//! Which process serves a session: the one process every client shares (`session: shared`), or a
//! process of the session's own (`session: per_client`), started at its `initialize` and stopped
//! at its DELETE, after `idle_timeout` without a request, or when the program exits; at most
//! `max_processes` at once, a client beyond them refused with -32013 (try again later).

use super::child::{self, Program};
use super::mux::Mux;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The gateway's code for "unavailable, try again later" (jobs use it too).
const FULL: i64 = -32013;

pub enum Programs {
    Shared(Arc<Mux>),
    PerClient(Arc<PerClient>),
}

pub struct PerClient {
    program: Program,
    max: usize,
    idle: Duration,
    /// One permit per process, taken before it starts: never more than `max`.
    slots: Arc<tokio::sync::Semaphore>,
    running: Mutex<HashMap<Arc<str>, Running>>,
}

struct Running {
    mux: Arc<Mux>,
    task: tokio::task::JoinHandle<()>,
    last: Instant,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Programs {
    /// The session's process, for a request that names it; `None`: an unknown session.
    pub fn session(&self, id: &str) -> Option<(Arc<Mux>, Arc<str>)> {
        match self {
            Programs::Shared(mux) => mux.session(id).map(|s| (mux.clone(), s)),
            Programs::PerClient(p) => {
                let mut running = p.lock();
                let (key, r) = running.get_key_value(id)?;
                let found = (r.mux.clone(), key.clone());
                if let Some(r) = running.get_mut(id) {
                    r.last = Instant::now();
                }
                Some(found)
            }
        }
    }

    /// `initialize`: the session opened and the program's answer, or the error to answer with.
    pub async fn initialize(&self, params: &Value) -> Result<(Arc<str>, Value), Value> {
        match self {
            Programs::Shared(mux) => {
                let result = mux.initialize(params).await?;
                Ok((mux.open_session(&params["capabilities"]), result))
            }
            Programs::PerClient(p) => p.start(params).await,
        }
    }

    /// DELETE: the session ends (per client: its process with it).
    pub fn close(&self, mux: &Mux, session: &str) {
        mux.close_session(session);
        if let Programs::PerClient(p) = self {
            if let Some(r) = p.lock().remove(session) {
                r.task.abort();
            }
        }
    }

    /// Whether the shared process has exited (the adapter is about to exit and be restarted).
    pub fn gone(&self) -> bool {
        matches!(self, Programs::Shared(mux) if mux.gone())
    }
}

impl PerClient {
    pub fn new(program: Program, max: usize, idle: Duration) -> Arc<Self> {
        let max = max.max(1);
        let p = Arc::new(Self {
            program,
            max,
            idle,
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
            running: Mutex::default(),
        });
        let weak = Arc::downgrade(&p);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(p) = weak.upgrade() else { return };
                p.stop_idle();
            }
        });
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Processes idle for longer than `idle` are stopped (their sessions end); a process with a
    /// call in flight is not idle, however long the call takes.
    fn stop_idle(&self) {
        let idle = self.idle;
        self.lock().retain(|session, r| {
            let keep = r.mux.busy() || r.last.elapsed() < idle;
            if !keep {
                tracing::info!(server = %self.program.name, %session, "stdio server of an idle session stopped");
                r.task.abort();
            }
            keep
        });
    }

    async fn start(self: &Arc<Self>, params: &Value) -> Result<(Arc<str>, Value), Value> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Err(json!({"code": FULL, "message": format!(
                "all {} processes of this server are in use: try again later", self.max)}));
        };
        let (to_child, from_mux) = tokio::sync::mpsc::unbounded_channel();
        let mux = Arc::new(Mux::new(to_child));
        let program = self.program.clone();
        let (me, ran) = (Arc::downgrade(self), mux.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = child::run(program, ran.clone(), from_mux).await {
                tracing::error!(error = %e, "cannot start the stdio server");
                ran.child_gone();
            }
            // The process ended: its session goes with it.
            if let Some(p) = me.upgrade() {
                p.lock().retain(|_, r| !Arc::ptr_eq(&r.mux, &ran));
            }
        });
        match mux.initialize(params).await {
            Ok(result) => {
                let session = mux.open_session(&params["capabilities"]);
                let running = Running {
                    mux,
                    task,
                    last: Instant::now(),
                    _slot: slot,
                };
                self.lock().insert(session.clone(), running);
                Ok((session, result))
            }
            Err(e) => {
                task.abort();
                Err(e)
            }
        }
    }
}
