//! The last configurations this process loaded or refused, for the operator console: when, the
//! running configuration's hash, and a refused one's problems. Bounded (the newest 50).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

const KEPT: usize = 50;

/// One load: the first at start, then each reload.
#[derive(Debug, Clone)]
pub struct Load {
    pub at: SystemTime,
    /// `started`, `applied` or `refused`.
    pub result: &'static str,
    /// The running configuration's hash after it (a refused load leaves the previous one).
    pub hash: String,
    /// Why a load was refused: `file field: reason`, each.
    pub problems: Vec<String>,
}

static LOADS: Mutex<VecDeque<Load>> = Mutex::new(VecDeque::new());

pub(super) fn record(result: &'static str, hash: String, problems: Vec<String>) {
    let mut loads = LOADS.lock().unwrap_or_else(|p| p.into_inner());
    if loads.len() == KEPT {
        loads.pop_front();
    }
    loads.push_back(Load {
        at: SystemTime::now(),
        result,
        hash,
        problems,
    });
}

/// The loads kept, newest first.
pub fn loads() -> Vec<Load> {
    let loads = LOADS.lock().unwrap_or_else(|p| p.into_inner());
    loads.iter().rev().cloned().collect()
}

/// The running configuration's hash, as last loaded.
pub fn running_hash() -> Option<String> {
    let loads = LOADS.lock().unwrap_or_else(|p| p.into_inner());
    loads.back().map(|l| l.hash.clone())
}
