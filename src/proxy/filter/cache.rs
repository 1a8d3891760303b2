//! Filtered results, kept per (upstream result, caller's view): an upstream answers `tools/list`
//! with the same result to every caller, and callers with the same roles see the same part of it,
//! so the filter (a parse into a tree, a registry digest per tool, a policy decision per entry,
//! a serialization) runs once per distinct pair instead of once per request.
//!
//! Only the `result` is cached: the response around it (`jsonrpc`, the caller's own `id`) is read
//! without building a tree and written around the cached result. A hit is checked byte for byte
//! against the result it was made from, and the view is compared whole (never by hash), so one
//! caller can never be served another's cut. Anything that is not a single plain response
//! (batches, errors, extra members) takes the full path.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Results larger than this are filtered every time (not worth the memory).
const MAX_RESULT: usize = 256 * 1024;
/// The cache's bounds: entries and bytes (both the original result and the cut are counted).
const ENTRIES: usize = 1024;
const BYTES: u64 = 8 * 1024 * 1024;

/// What decides a caller's cut of a result: see `Visible::view`. Length-prefixed parts, so two
/// different views never write the same bytes.
#[derive(Default, Clone, PartialEq, Eq, Hash)]
pub struct View(Vec<u8>);

impl View {
    pub fn part(mut self, bytes: &[u8]) -> Self {
        self.0
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
}

#[derive(PartialEq, Eq, Hash, Clone)]
struct Key {
    view: View,
    result: u64,
}

struct Entry {
    original: Box<[u8]>,
    /// The cut result; `None`: the filter left it as it was.
    filtered: Option<Box<[u8]>>,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Key, Arc<Entry>> for Weight {
    fn weight(&self, key: &Key, e: &Arc<Entry>) -> u64 {
        (key.view.0.len() + e.original.len() + e.filtered.as_ref().map_or(0, |f| f.len()) + 128)
            as u64
    }
}

/// One per runtime: a reload (new policy, new tools) starts with an empty one.
pub struct ListCache {
    entries: quick_cache::sync::Cache<Key, Arc<Entry>, Weight>,
}

impl Default for ListCache {
    fn default() -> Self {
        Self {
            entries: quick_cache::sync::Cache::with_weighter(ENTRIES, BYTES, Weight),
        }
    }
}

/// A single JSON-RPC response, its members kept as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Response<'a> {
    #[serde(borrow)]
    jsonrpc: &'a RawValue,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// What the cache made of a response body.
pub enum Cached {
    /// The result is left as it was: the body goes out unchanged.
    Unchanged,
    /// The body with the caller's cut of the result.
    Changed(Vec<u8>),
}

impl ListCache {
    /// The caller's cut of `body`, from the cache or made by `filter` (given the result, it
    /// returns the cut result, `None` when unchanged) and kept. `None`: not a plain response the
    /// cache handles.
    pub fn filter(
        &self,
        body: &[u8],
        view: View,
        filter: impl FnOnce(&str) -> Option<Vec<u8>>,
    ) -> Option<Cached> {
        let response: Response = serde_json::from_slice(body).ok()?;
        let result = response.result.get();
        if result.len() > MAX_RESULT {
            return None;
        }
        let key = Key {
            view,
            result: foldhash::quality::FixedState::default().hash_one(result.as_bytes()),
        };
        let entry = match self.entries.get(&key) {
            Some(e) if *e.original == *result.as_bytes() => e,
            _ => {
                let e = Arc::new(Entry {
                    original: result.as_bytes().into(),
                    filtered: filter(result).map(Vec::into_boxed_slice),
                });
                self.entries.insert(key, e.clone());
                e
            }
        };
        let Some(filtered) = &entry.filtered else {
            return Some(Cached::Unchanged);
        };
        let (jsonrpc, id) = (response.jsonrpc.get(), response.id.get());
        let mut out = Vec::with_capacity(filtered.len() + jsonrpc.len() + id.len() + 32);
        out.extend_from_slice(b"{\"jsonrpc\":");
        out.extend_from_slice(jsonrpc.as_bytes());
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b",\"result\":");
        out.extend_from_slice(filtered);
        out.push(b'}');
        Some(Cached::Changed(out))
    }

    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.entries.len()
    }
}
