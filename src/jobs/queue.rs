//! The jobs waiting for a worker, served fairly between users: one queue per owner, taken in
//! turn (round robin), and no owner holds more than `per_owner` workers while anyone else waits.
//! A first-come queue let one user's backlog of long calls hold every worker, so another user's
//! instant job waited behind all of it; here it waits at most for one running job to end.

use super::{Owner, Work};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    waiting: HashMap<Owner, VecDeque<Work>>,
    /// Owners with waiting jobs, in the order they are served next.
    turn: VecDeque<Owner>,
    running: HashMap<Owner, usize>,
    len: usize,
}

/// The queue; cloned handles share it.
#[derive(Clone)]
pub struct FairQueue {
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
    capacity: usize,
    per_owner: usize,
}

/// A worker's place, held while its job runs; gives the owner's share back when dropped.
pub struct Running {
    queue: FairQueue,
    owner: Owner,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut s = self.queue.lock();
        if let Some(n) = s.running.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                s.running.remove(&self.owner);
            }
        }
        drop(s);
        // The owner may have a job held back by its share.
        self.queue.ready.notify_one();
    }
}

impl FairQueue {
    pub fn new(capacity: usize, per_owner: usize) -> Self {
        Self {
            state: Arc::default(),
            ready: Arc::default(),
            capacity: capacity.max(1),
            per_owner: per_owner.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job; gives it back when `capacity` jobs wait already.
    pub fn push(&self, work: Work) -> Result<(), Box<Work>> {
        let mut s = self.lock();
        if s.len >= self.capacity {
            return Err(Box::new(work));
        }
        let owner = work.job.owner.clone();
        let queue = s.waiting.entry(owner.clone()).or_default();
        queue.push_back(work);
        if queue.len() == 1 {
            s.turn.push_back(owner);
        }
        s.len += 1;
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job to run, once there is one whose owner is within its share. Call it only with
    /// a free worker: the job counts against its owner's share until `Running` is dropped.
    pub async fn next(&self) -> (Work, Running) {
        loop {
            let notified = self.ready.notified();
            if let Some(taken) = self.take() {
                return taken;
            }
            notified.await;
        }
    }

    fn take(&self) -> Option<(Work, Running)> {
        let mut s = self.lock();
        let pos = s
            .turn
            .iter()
            .position(|o| s.running.get(o).copied().unwrap_or(0) < self.per_owner)?;
        let owner = s.turn.remove(pos)?;
        let queue = s.waiting.get_mut(&owner)?;
        let work = queue.pop_front()?;
        if queue.is_empty() {
            s.waiting.remove(&owner);
        } else {
            // Served: to the back of the line.
            s.turn.push_back(owner.clone());
        }
        s.len -= 1;
        *s.running.entry(owner.clone()).or_default() += 1;
        let more = !s.turn.is_empty();
        drop(s);
        if more {
            // Another worker may take the next one.
            self.ready.notify_one();
        }
        Some((
            work,
            Running {
                queue: self.clone(),
                owner,
            },
        ))
    }
}
