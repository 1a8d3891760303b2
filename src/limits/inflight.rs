//! In-flight counters (per user, per upstream) with guards that give the slot back when the request
//! ends, however it ends. Sharded so concurrent requests rarely touch the same lock; no lock is
//! held across an await.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

pub struct Inflight {
    limit: u32,
    shards: Vec<Mutex<HashMap<String, u32>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Inflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inflight(limit {})", self.limit)
    }
}

/// A held slot; dropping it frees the slot.
pub struct InflightGuard {
    owner: Arc<Inflight>,
    key: String,
}

impl Inflight {
    /// `limit` 0 means unlimited.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        })
    }

    /// The same limit, or a new one: what a reload keeps, so calls in flight stay counted.
    pub fn keep_or_new(running: &Arc<Self>, limit: u32) -> Arc<Self> {
        if running.limit == limit {
            running.clone()
        } else {
            Self::new(limit)
        }
    }

    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, u32>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Takes a slot, or `None` when `key` already has `limit` in flight.
    pub fn acquire(self: &Arc<Self>, key: &str) -> Option<InflightGuard> {
        let mut map = self.shard(key).lock().ok()?;
        let n = map.entry(key.to_string()).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(InflightGuard {
            owner: self.clone(),
            key: key.to_string(),
        })
    }

    /// Requests `key` has in flight.
    pub fn current(&self, key: &str) -> u32 {
        self.shard(key)
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .unwrap_or(0)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.owner.shard(&self.key).lock() {
            if let Some(n) = map.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back() {
        let f = Inflight::new(2);
        let a = f.acquire("u").unwrap();
        let _b = f.acquire("u").unwrap();
        assert!(f.acquire("u").is_none());
        assert!(f.acquire("v").is_some());
        drop(a);
        assert_eq!(f.current("u"), 1);
        assert!(f.acquire("u").is_some());
    }
}
