//! How current the view is, from the feed consumer's librdkafka statistics (every
//! second, no extra requests to the brokers). Each report gives every partition's end as
//! of the last answer from its leader (`rxidle` ago; the consumer's fetches return at
//! least every `fetch.wait.max.ms` while the broker answers). When a later report shows
//! that the feed applied every record up to those ends, the view held everything the
//! topic had at the time of those answers. A view that keeps up with a busy topic stays
//! confirmed; a broker that stops answering (down, or frozen with its connection open)
//! or a feed that falls behind stops the confirmations, and reads are refused once the
//! last one is older than `max_staleness`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

/// When the view was last known current.
#[derive(Debug)]
pub struct Freshness {
    born: Instant,
    /// Milliseconds after `born` of the last confirmation (`u64::MAX`: none yet).
    confirmed_ms: AtomicU64,
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            born: Instant::now(),
            confirmed_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl Freshness {
    /// The view held everything the topic had at `at`.
    pub fn confirm(&self, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.born).as_millis())
            .unwrap_or(u64::MAX - 1);
        let prev = self.confirmed_ms.load(Ordering::Acquire);
        if prev == u64::MAX || ms > prev {
            self.confirmed_ms.store(ms, Ordering::Release);
        }
    }

    /// How long ago the view was last known current (`None`: never).
    pub fn staleness(&self) -> Option<Duration> {
        let ms = self.confirmed_ms.load(Ordering::Acquire);
        (ms != u64::MAX).then(|| {
            self.born
                .elapsed()
                .saturating_sub(Duration::from_millis(ms))
        })
    }
}

/// What a statistics report said: when its partition ends were last answered by their
/// leaders (`None`: one was not connected), and the ends.
type Report = (Option<Instant>, BTreeMap<i32, i64>);

/// The feed consumer's context: turns statistics into confirmations.
pub struct FeedContext {
    topic: String,
    freshness: Arc<Freshness>,
    /// The previous report.
    previous: Mutex<Option<Report>>,
}

impl FeedContext {
    /// The context of a consumer feeding from `topic`.
    pub fn new(topic: &str, freshness: Arc<Freshness>) -> Self {
        Self {
            topic: topic.to_string(),
            freshness,
            previous: Mutex::new(None),
        }
    }
}

impl ClientContext for FeedContext {
    fn stats(&self, s: Statistics) {
        let now = Instant::now();
        let Some(t) = s.topics.get(&self.topic) else {
            return;
        };
        // Microseconds since each connected broker last answered.
        let idle: HashMap<i32, i64> = s
            .brokers
            .values()
            .filter(|b| b.state == "UP" && b.rxidle >= 0)
            .map(|b| (b.nodeid, b.rxidle))
            .collect();
        let parts: Vec<_> = t
            .partitions
            .values()
            .filter(|p| p.partition >= 0 && p.desired)
            .collect();
        // The end a reader can reach: the last stable offset (records of open
        // transactions are not delivered under `read_committed`), else the high watermark.
        let ends: BTreeMap<i32, i64> = parts
            .iter()
            .map(|p| {
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                (p.partition, end)
            })
            .collect();
        // When the oldest of the leaders' last answers came (the ends are that old).
        let answered = parts
            .iter()
            .map(|p| idle.get(&p.leader).copied())
            .try_fold(0i64, |oldest, i| i.map(|i| oldest.max(i)))
            .filter(|_| !parts.is_empty())
            .and_then(|us| now.checked_sub(Duration::from_micros(us.unsigned_abs())));
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((Some(at), before)) = previous.as_ref() {
            // Applied up to the end: the application's position, or the fetch position
            // with nothing fetched left to hand over (a transaction's commit marker at
            // the end is never delivered as a record).
            let applied = parts.iter().all(|p| {
                let end = before.get(&p.partition).copied().unwrap_or(-1);
                end >= 0
                    && (end == 0
                        || p.app_offset >= end
                        || p.lo_offset >= end
                        || (p.next_offset >= end && p.fetchq_cnt == 0))
            });
            if applied {
                self.freshness.confirm(*at);
            }
        }
        *previous = Some((answered, ends));
    }
}

impl ConsumerContext for FeedContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_counts_from_the_latest_confirmation() {
        let f = Freshness::default();
        assert_eq!(f.staleness(), None);
        let t = Instant::now();
        f.confirm(t);
        f.confirm(t - Duration::from_secs(5));
        assert!(
            f.staleness().unwrap() < Duration::from_secs(1),
            "not moved back"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert!(f.staleness().unwrap() >= Duration::from_millis(30));
    }
}
