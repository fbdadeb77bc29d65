//! What a route remembers of finished requests: recent ids (to tell a late reply from a
//! duplicate from another instance's) and the results of asynchronous requests for
//! their status URL. Both bounded, oldest dropped first.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::replies::Reply;

/// Ids remembered after they finished, to tell late and duplicate replies apart.
const RECENT: usize = 100_000;

/// Finished ids, oldest dropped first.
#[derive(Default)]
pub(crate) struct Recent {
    order: VecDeque<(String, bool)>,
    pub(crate) ids: HashMap<String, bool>,
}

impl Recent {
    /// Remember `id`; `answered` (else it timed out).
    pub(crate) fn add(&mut self, id: String, answered: bool) {
        if self.order.len() >= RECENT {
            if let Some((old, _)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id.clone(), answered);
        self.order.push_back((id, answered));
    }
}

/// Results of asynchronous requests, for their status URL: pending until the reply,
/// kept until they expire, oldest dropped first when full.
pub struct Results {
    /// id → (expiry, the reply once it came, the [`owner_tag`] of the consumer who
    /// asked).
    ///
    /// [`owner_tag`]: crate::async_id::owner_tag
    pub(crate) entries: HashMap<String, (Instant, Option<Reply>, String)>,
    pub(crate) order: VecDeque<String>,
    max: usize,
    ttl: Duration,
}

/// What a status URL shows.
pub enum Status {
    /// Still waiting for the reply.
    Pending,
    /// The reply.
    Done(Reply),
    /// Unknown here, or expired.
    Unknown,
}

impl Results {
    /// At most `max` results (at least one), each kept for `ttl`.
    pub(crate) fn new(max: usize, ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            ttl,
        }
    }

    /// How long a result is kept at most.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Keep `reply` (`None`: pending) for `id` until `until`.
    pub(crate) fn put(&mut self, id: &str, reply: Option<Reply>, owner: String, until: Instant) {
        if !self.entries.contains_key(id) {
            while self.order.len() >= self.max {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
            self.order.push_back(id.to_string());
        }
        self.entries.insert(id.to_string(), (until, reply, owner));
    }
}
