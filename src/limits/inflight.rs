//! In-flight counters (per user, per upstream) with guards that give the slot back when the request
//! ends, however it ends. Sharded so concurrent requests rarely touch the same lock; no lock is
//! held across an await. A key is stored once, shared by the map and every guard holding a slot on
//! it, so a request whose user or upstream already has a slot in flight copies no string. (The
//! count is a `Cell` so that a lookup that finds the key can also count: the map is behind its
//! shard's lock.)

use foldhash::quality::RandomState;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Slots taken per key.
type Shard = HashMap<Arc<str>, Cell<u32>, RandomState>;

pub struct Inflight {
    limit: u32,
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl std::fmt::Debug for Inflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inflight(limit {})", self.limit)
    }
}

/// A held slot; dropping it frees the slot.
pub struct InflightGuard {
    owner: Arc<Inflight>,
    key: Arc<str>,
}

impl Inflight {
    /// `limit` 0 means unlimited.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            limit,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
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

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Takes a slot, or `None` when `key` already has `limit` in flight.
    pub fn acquire(self: &Arc<Self>, key: &str) -> Option<InflightGuard> {
        let mut map = self.shard(key).lock().ok()?;
        let key = match map.get_key_value(key) {
            Some((_, taken)) if taken.get() >= self.limit => return None,
            Some((shared, taken)) => {
                taken.set(taken.get() + 1);
                shared.clone()
            }
            None if self.limit == 0 => return None,
            None => {
                let shared: Arc<str> = Arc::from(key);
                map.insert(shared.clone(), Cell::new(1));
                shared
            }
        };
        Some(InflightGuard {
            owner: self.clone(),
            key,
        })
    }

    /// Requests `key` has in flight.
    pub fn current(&self, key: &str) -> u32 {
        self.shard(key)
            .lock()
            .ok()
            .and_then(|m| m.get(key).map(Cell::get))
            .unwrap_or(0)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.owner.shard(&self.key).lock() {
            if let Some(taken) = map.get_mut(&*self.key) {
                *taken.get_mut() = taken.get().saturating_sub(1);
                if taken.get() == 0 {
                    map.remove(&*self.key);
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
