//! What a route remembers of finished requests: recent ids (to tell a late reply from a
//! duplicate from another instance's) and the results of asynchronous requests for
//! their status URL. Both bounded, oldest dropped first.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

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
/// kept until they expire, oldest dropped first when over `max` entries or `max_bytes`.
pub struct Results {
    /// id → (expiry, the reply once it came, the [`owner_tag`] of the consumer who
    /// asked).
    ///
    /// [`owner_tag`]: crate::async_id::owner_tag
    pub(crate) entries: HashMap<String, (Instant, Option<Reply>, String)>,
    order: VecDeque<String>,
    max: usize,
    max_bytes: usize,
    bytes: usize,
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

/// The bytes an entry is counted for.
fn size(id: &str, reply: Option<&Reply>) -> usize {
    id.len()
        + 64
        + reply.map_or(0, |r| {
            r.body.len()
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
}

impl Results {
    /// At most `max` results (at least one) and about `max_bytes`.
    pub(crate) fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            max_bytes,
            bytes: 0,
        }
    }

    /// Keep `reply` (`None`: pending) for `id` until `until`, dropping the oldest results
    /// to stay within the bounds (one reply larger than `max_bytes` is still kept, alone).
    pub(crate) fn put(&mut self, id: &str, reply: Option<Reply>, owner: String, until: Instant) {
        let new = size(id, reply.as_ref());
        if let Some(e) = self.entries.get_mut(id) {
            // Answered (or replaced) in place: it keeps its place in the order.
            self.bytes = self.bytes - size(id, e.1.as_ref()) + new;
            *e = (until, reply, owner);
            self.evict(Some(id));
            return;
        }
        self.bytes += new;
        self.order.push_back(id.to_string());
        self.entries.insert(id.to_string(), (until, reply, owner));
        self.evict(Some(id));
    }

    /// Drop the oldest results while over a bound, never `keep` (the one just put).
    fn evict(&mut self, keep: Option<&str>) {
        while self.order.len() > 1 && (self.order.len() > self.max || self.bytes > self.max_bytes) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if keep == Some(oldest.as_str()) {
                self.order.push_back(oldest);
                continue;
            }
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= size(&oldest, e.1.as_ref());
            }
        }
    }

    /// Drop the results expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        let before = self.entries.len();
        let mut freed = 0;
        self.entries.retain(|id, (until, reply, _)| {
            let keep = *until > now;
            if !keep {
                freed += size(id, reply.as_ref());
            }
            keep
        });
        if self.entries.len() != before {
            self.bytes -= freed;
            let entries = &self.entries;
            self.order.retain(|id| entries.contains_key(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reply(n: usize) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: bytes::Bytes::from(vec![b'x'; n]),
        }
    }

    #[test]
    fn results_stay_within_their_entries_and_bytes() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut r = Results::new(3, 10_000);
        for id in ["a", "b", "c", "d"] {
            r.put(id, None, "-".into(), later);
        }
        assert!(!r.entries.contains_key("a"), "oldest out at 3 entries");
        // Pending "b" answered: replaced, not counted twice.
        r.put("b", Some(reply(4000)), "-".into(), later);
        r.put("e", Some(reply(4000)), "-".into(), later);
        assert!(r.bytes <= 10_000, "{}", r.bytes);
        assert!(r.entries.contains_key("e"));
        assert_eq!(r.entries.len(), r.order.len());
        r.put("huge", Some(reply(50_000)), "-".into(), later);
        assert_eq!(r.entries.len(), 1, "alone");
        r.expire(later + Duration::from_secs(1));
        assert!(r.entries.is_empty());
        assert_eq!((r.bytes, r.order.len()), (0, 0));
    }
}
