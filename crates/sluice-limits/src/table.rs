//! A sharded map from limit key to limiter state with a bound on the number of keys and
//! on the memory per key: keys are stored as 128-bit digests
//! ([`sluice_core::digest`]), so a 30 KB key costs what a 3-byte one does
//! ([`Table::max_heap_bytes`] is the bound, checked by a test with a counting
//! allocator). A full shard makes room with the CLOCK algorithm (second chance, an
//! approximation of least recently used): the hand reuses the first state that is
//! expired or was not used since the hand last passed; a used one loses its mark and
//! is passed over. A flood of one-off keys therefore pushes out other one-off keys, not
//! a client that keeps sending; a live state pushed out is counted (that key starts
//! over). Each step is O(1) amortized.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sluice_core::digest::KeyDigester;

const SHARDS: usize = 16;

/// Limiter state that becomes irrelevant after a while.
pub trait Expiring {
    /// True when forgetting the state changes nothing at `now`.
    fn expired(&self, now: Duration) -> bool;
}

type Digest = (u64, u64);

/// The index's hasher: a digest is already a keyed hash, so its halves are only mixed,
/// not hashed a second time (the shard was picked by the first half's low bits, so the
/// second half supplies them here).
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `(u64, u64)`; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(32) ^ n;
    }
}

type Index = HashMap<Digest, u32, std::hash::BuildHasherDefault<DigestHasher>>;

struct Slot<S> {
    key: Digest,
    state: S,
    /// Used since the hand last passed.
    referenced: bool,
}

struct Shard<S> {
    index: Index,
    slots: Vec<Slot<S>>,
    hand: usize,
}

/// The keyed state of one limiter.
pub struct Table<S> {
    shards: Vec<Mutex<Shard<S>>>,
    per_shard: usize,
    digester: KeyDigester,
    evicted: AtomicU64,
}

impl<S: Expiring> Table<S> {
    /// The most heap memory this table can hold, whatever the keys: per shard, the
    /// slots (`max_keys / 16`) and an index sized for them (7/8 load, a power of two of
    /// buckets, which removals' tombstones can make grow once more).
    pub fn max_heap_bytes(&self) -> usize {
        let buckets = (self.per_shard * 8).div_ceil(7).next_power_of_two() * 2;
        let index = buckets * (std::mem::size_of::<(Digest, u32)>() + 1) + 64;
        let slots = self.per_shard * std::mem::size_of::<Slot<S>>();
        SHARDS * (index + slots) + SHARDS * std::mem::size_of::<Mutex<Shard<S>>>()
    }

    /// A table holding at most about `max_keys` keys (at least one per shard).
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        index: Index::default(),
                        slots: Vec::new(),
                        hand: 0,
                    })
                })
                .collect(),
            per_shard: max_keys.div_ceil(SHARDS).clamp(1, u32::MAX as usize),
            digester: KeyDigester::new(),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard(&self, digest: Digest) -> MutexGuard<'_, Shard<S>> {
        let i = (digest.0 as usize) % SHARDS;
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
        let d = self.digester.digest(key.as_bytes());
        let digest = ((d >> 64) as u64, d as u64);
        let mut guard = self.shard(digest);
        let shard = &mut *guard;
        if let Some(&i) = shard.index.get(&digest) {
            let slot = &mut shard.slots[i as usize];
            slot.referenced = true;
            return f(&mut slot.state);
        }
        let fresh = Slot {
            key: digest,
            state: new(),
            referenced: false,
        };
        let i = if shard.slots.len() < self.per_shard {
            if shard.slots.len() == shard.slots.capacity() {
                let grow = shard
                    .slots
                    .len()
                    .max(4)
                    .min(self.per_shard - shard.slots.len());
                shard.slots.reserve_exact(grow);
            }
            shard.slots.push(fresh);
            shard.slots.len() - 1
        } else {
            let i = self.clock_victim(shard, now);
            let old = std::mem::replace(&mut shard.slots[i], fresh);
            shard.index.remove(&old.key);
            i
        };
        shard.index.insert(digest, i as u32);
        f(&mut shard.slots[i].state)
    }

    /// Advance the hand to the slot to reuse (see the module docs).
    fn clock_victim(&self, shard: &mut Shard<S>, now: Duration) -> usize {
        let n = shard.slots.len();
        // Two passes at most: the first clears every mark.
        for _ in 0..2 * n {
            let i = shard.hand % n;
            shard.hand = (i + 1) % n;
            let slot = &mut shard.slots[i];
            if slot.state.expired(now) {
                return i;
            }
            if !slot.referenced {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                return i;
            }
            slot.referenced = false;
        }
        self.evicted.fetch_add(1, Ordering::Relaxed);
        shard.hand % n
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).slots.len())
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

    #[test]
    fn a_flood_of_new_keys_does_not_evict_a_client_that_keeps_sending() {
        let t: Table<Until> = Table::new(SHARDS * 64);
        let hour = Duration::from_secs(3600);
        let created = t.with("client", Duration::ZERO, || Until(hour), |s| s.0);
        for i in 1..20_000u64 {
            let now = Duration::from_millis(i);
            if i % 10 == 0 {
                let state = t.with("client", now, || Until(now + hour), |s| s.0);
                assert_eq!(state, created, "the client's state was evicted at {i}");
            }
            t.with(&format!("flood-{i}"), now, || Until(now + hour), |_| ());
        }
        assert!(t.len() <= SHARDS * 64);
        assert!(t.evicted() > 15_000);
    }
}
