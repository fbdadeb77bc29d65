//! A bounded in-memory idempotency store with TTL (IETF `Idempotency-Key`).
//!
//! Invariants:
//! - A key is either *in flight* (its first request is being produced) or *done* (its
//!   `202` response is stored until `ttl` after completion).
//! - At most `max_entries` keys are held. When full, the oldest *done* keys are
//!   forgotten first; in-flight keys are never evicted, so a store full of in-flight
//!   keys refuses new ones ([`Begin::Full`]).
//! - A route's store outlives configuration reloads ([`shared_store`]) while the route
//!   id and the store's settings are unchanged, so a replayed key is answered from the
//!   store after a `SIGHUP` too.
//! - Keys are held as 128-bit digests ([`sluice_core::digest`]), so an entry's size does
//!   not depend on the key: [`Store::BYTES_PER_ENTRY`] bounds it (a counting-allocator
//!   test checks it).
//! - Only accepted requests are remembered: a claim dropped without
//!   [`Claim::complete`] (an error answer, a client that went away) frees its key, so a
//!   retry produces again — with the same deterministic event id, so consumers can
//!   deduplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sluice_core::digest::KeyDigester;
use sluice_core::HttpResponse;

mod shared;
pub use shared::{SharedClaim, SharedStore};

/// What to do with a request carrying a key.
pub enum Begin {
    /// First use of the key: go ahead, then complete (or drop) the claim.
    Proceed(Claim),
    /// The key was used before with the same payload: answer this again.
    Replay(HttpResponse),
    /// The key's first request is still being processed (`409`).
    InFlight,
    /// The key was used with a different payload (`422`).
    Mismatch,
    /// The store is full of in-flight keys (`503`).
    Full,
}

enum State {
    InFlight,
    /// Expiry is tracked by the `done` queue.
    Done {
        response: HttpResponse,
    },
}

struct Entry {
    fingerprint: [u8; 32],
    generation: u64,
    state: State,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<u128, Entry>,
    /// Done keys in completion order (oldest first), with their generation.
    done: VecDeque<(u128, u64, Instant)>,
    next_generation: u64,
}

/// The store of one route.
pub struct Store {
    inner: Mutex<Inner>,
    ttl: Duration,
    max_entries: usize,
    digester: KeyDigester,
}

/// The right to process a key's first request.
pub struct Claim {
    store: Arc<Store>,
    key: u128,
    generation: u64,
    completed: bool,
}

impl Store {
    /// A store remembering at most `max_entries` keys for `ttl` each.
    pub fn new(ttl: Duration, max_entries: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            ttl,
            max_entries: max_entries.max(1),
            digester: KeyDigester::new(),
        })
    }

    /// Heap bytes one remembered key may hold at most: the entry with its stored `202`
    /// (status, headers, body of at most 512 bytes), the completion queue slot and the
    /// hash table's share (which can be twice the entries).
    pub const BYTES_PER_ENTRY: usize = 1200;

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys currently held (in flight or done and not expired at the last call).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start processing `key` for a request whose payload hashes to `fingerprint`.
    pub fn begin(self: &Arc<Self>, key: &str, fingerprint: [u8; 32], now: Instant) -> Begin {
        let key = self.digester.digest(key.as_bytes());
        let mut g = self.lock();
        g.expire(now);
        if let Some(e) = g.entries.get(&key) {
            if e.fingerprint != fingerprint {
                return Begin::Mismatch;
            }
            return match &e.state {
                State::InFlight => Begin::InFlight,
                State::Done { response } => Begin::Replay(response.clone()),
            };
        }
        while g.entries.len() >= self.max_entries {
            if !g.evict_oldest_done() {
                return Begin::Full;
            }
        }
        let generation = g.next_generation;
        g.next_generation += 1;
        g.entries.insert(
            key,
            Entry {
                fingerprint,
                generation,
                state: State::InFlight,
            },
        );
        Begin::Proceed(Claim {
            store: self.clone(),
            key,
            generation,
            completed: false,
        })
    }
}

impl Inner {
    /// Forget done keys whose time is up (the queue is in completion order).
    fn expire(&mut self, now: Instant) {
        while let Some((_, _, expires)) = self.done.front() {
            if *expires > now {
                break;
            }
            self.evict_oldest_done();
        }
    }

    /// Forget the oldest done key; false when there is none.
    fn evict_oldest_done(&mut self) -> bool {
        while let Some((key, generation, _)) = self.done.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }
}

impl Claim {
    /// The request was accepted: remember `response` for replays.
    pub fn complete(mut self, response: HttpResponse, now: Instant) {
        self.completed = true;
        let expires = now + self.store.ttl;
        let mut g = self.store.lock();
        if let Some(e) = g.entries.get_mut(&self.key) {
            if e.generation == self.generation {
                e.state = State::Done { response };
                g.done.push_back((self.key, self.generation, expires));
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let mut g = self.store.lock();
        if g.entries
            .get(&self.key)
            .is_some_and(|e| e.generation == self.generation)
        {
            g.entries.remove(&self.key);
        }
    }
}

/// What makes two stores the same key space: header, scope, ttl and size.
pub type StoreKey = (String, String, Duration, usize);

/// Live stores by route id (weak: a store lives as long as a configuration uses it).
static STORES: Mutex<Vec<(String, StoreKey, Weak<Store>)>> = Mutex::new(Vec::new());

/// The store for `route` with `key`: the one a running configuration already uses for
/// that route and key space (a reload keeps the remembered keys), else a new one. A
/// route whose store settings changed says in the log that its store starts empty.
pub fn shared_store(route: &str, key: StoreKey) -> Arc<Store> {
    let mut all = STORES.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|(_, _, w)| w.strong_count() > 0);
    if let Some(store) = all
        .iter()
        .find(|(r, k, _)| r == route && *k == key)
        .and_then(|(_, _, w)| w.upgrade())
    {
        return store;
    }
    if all.iter().any(|(r, _, _)| r == route) {
        log::info!(
            "kafka-divert on route `{route}`: idempotency settings changed; its store starts empty"
        );
    }
    let store = Store::new(key.2, key.3);
    all.push((route.to_string(), key, Arc::downgrade(&store)));
    store
}

/// Where a route's keys live: in this process, or in Redis for every instance.
pub enum Keys {
    /// `policy: local`.
    Local(Arc<Store>),
    /// `policy: redis`.
    Shared(SharedStore),
}

/// A claim on a key, wherever it lives.
pub enum Claimed {
    /// In this process.
    Local(Claim),
    /// In Redis.
    Shared(SharedClaim),
}

/// What to do with a request carrying a key, wherever the keys live.
pub enum Decision {
    /// First use of the key: go ahead, then complete (or drop) the claim.
    Proceed(Claimed),
    /// Used before with the same payload: answer this again.
    Replay(HttpResponse),
    /// The first request is still being processed (`409`).
    InFlight,
    /// Used with a different payload (`422`).
    Mismatch,
    /// The local store is full of in-flight keys (`503`).
    Full,
    /// Redis did not answer (`503`): producing without knowing whether another instance
    /// already did could produce twice.
    Unavailable,
}

impl Keys {
    /// Start processing `key` (already scoped) for a payload hashing to `fingerprint`.
    pub async fn begin(&self, key: &str, fingerprint: [u8; 32], now: Instant) -> Decision {
        match self {
            Self::Local(store) => match store.begin(key, fingerprint, now) {
                Begin::Proceed(c) => Decision::Proceed(Claimed::Local(c)),
                Begin::Replay(r) => Decision::Replay(r),
                Begin::InFlight => Decision::InFlight,
                Begin::Mismatch => Decision::Mismatch,
                Begin::Full => Decision::Full,
            },
            Self::Shared(store) => match store.begin(key, fingerprint).await {
                Ok(d) => d,
                Err(e) => {
                    sluice_store::count_error(shared::PLUGIN, &e);
                    Decision::Unavailable
                }
            },
        }
    }
}

impl Claimed {
    /// The request was accepted: remember `response` for replays. A shared store that
    /// fails here is counted; the key then lapses after its in-flight time, and a retry
    /// produces again, with the same event id.
    pub async fn complete(self, response: &HttpResponse, now: Instant) {
        match self {
            Self::Local(c) => c.complete(response.clone(), now),
            Self::Shared(c) => {
                if let Err(e) = c.complete(response).await {
                    sluice_store::count_error(shared::PLUGIN, &e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
