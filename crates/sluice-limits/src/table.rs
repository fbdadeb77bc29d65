//! A sharded map from limit key to limiter state with a bound on the number of keys.
//! When a shard is full, expired states are swept; if it is still full, one live state is
//! evicted (that key starts over) and counted, so spoofed keys cannot grow memory.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const SHARDS: usize = 16;

/// Limiter state that becomes irrelevant after a while.
pub trait Expiring {
    /// True when forgetting the state changes nothing at `now`.
    fn expired(&self, now: Duration) -> bool;
}

/// The keyed state of one limiter.
pub struct Table<S> {
    shards: Vec<Mutex<HashMap<Box<str>, S>>>,
    per_shard: usize,
    hasher: RandomState,
    evicted: AtomicU64,
}

impl<S: Expiring> Table<S> {
    /// A table holding at most about `max_keys` keys (at least one per shard).
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<Box<str>, S>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the state of `key`, created by `new` when absent.
    pub fn with<R>(
        &self,
        key: &str,
        now: Duration,
        new: impl FnOnce() -> S,
        f: impl FnOnce(&mut S) -> R,
    ) -> R {
        let mut shard = self.shard(key);
        if let Some(state) = shard.get_mut(key) {
            return f(state);
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, s| !s.expired(now));
            if shard.len() >= self.per_shard {
                if let Some(victim) = shard.keys().next().cloned() {
                    shard.remove(&victim);
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let state = shard.entry(key.into()).or_insert_with(new);
        f(state)
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live states evicted because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Until(Duration);
    impl Expiring for Until {
        fn expired(&self, now: Duration) -> bool {
            now >= self.0
        }
    }

    #[test]
    fn bounded_sweeps_expired_then_evicts() {
        let t: Table<Until> = Table::new(SHARDS * 2);
        let now = Duration::from_secs(10);
        for i in 0..1000 {
            t.with(
                &format!("k{i}"),
                now,
                || Until(Duration::from_secs(5)),
                |_| (),
            );
        }
        // Every state was already expired: sweeping kept the table at its bound, no
        // live state was evicted.
        assert!(t.len() <= SHARDS * 2, "{}", t.len());
        assert_eq!(t.evicted(), 0);
        for i in 0..1000 {
            t.with(
                &format!("live{i}"),
                now,
                || Until(Duration::from_secs(60)),
                |_| (),
            );
        }
        assert!(t.len() <= SHARDS * 2);
        assert!(t.evicted() >= 1000 - (SHARDS * 2) as u64);
        let hits = t.with("live999", now, || Until(Duration::ZERO), |s| s.0);
        assert_eq!(
            hits,
            Duration::from_secs(60),
            "an existing state is found, not replaced"
        );
    }
}
