//! Flow control: records read wait in a backlog while every delivery slot is busy. At
//! [`MAX_BUFFERED`] the consumer is no longer polled, so librdkafka's bounded prefetch
//! queue fills and its fetching stops; each delivery that ends lets one more record in.
//! A rebalance is still served soon: librdkafka pauses the assigned partitions when one
//! starts (dropping what it prefetched), so the next poll finds the rebalance first. Only
//! when no delivery has ended for [`STUCK`] (all in retry) are the partitions paused here
//! and the consumer polled freely again, so such a member does not hold up its group;
//! they are resumed below half of the bound. Pausing is the last resort because librdkafka
//! drops a paused partition's prefetched records and fetches them again on resume, and the
//! new fetch waits behind the one in flight (up to `fetch.wait.max.ms`): pausing at every
//! full buffer held delivery to about 1,000 records/s on Apache Kafka 4.
//!
//! Revocations: the records queued for a partition given up are dropped as soon as the
//! dispatcher sees it, so they do not fill the buffer the partitions still owned need.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use tokio::time::Instant;

use super::Dispatcher;

/// Records read but not yet finished, at most (memory bound).
pub(super) const MAX_BUFFERED: usize = 1000;

/// How long the buffer may stay full with no delivery ending before the partitions are
/// paused (so rebalances are served while every delivery is in retry).
pub(super) const STUCK: Duration = Duration::from_secs(1);

impl Dispatcher {
    /// Drop the queued records of partitions given up since the last check (the new owner
    /// delivers them), freeing the buffer for the partitions still owned. Deliveries in
    /// flight finish.
    pub(super) fn drop_revoked(&mut self) {
        let assignment = self.consumer.context().assignment.clone();
        let losses = assignment.losses();
        if losses == self.losses {
            return;
        }
        self.losses = losses;
        let stale = |m: &OwnedMessage, e: Option<u64>| {
            super::is_stale(&assignment, &(m.topic().to_string(), m.partition()), e)
        };
        let mut dropped = 0;
        for queue in self.waiting.values_mut() {
            let before = queue.len();
            queue.retain(|(m, e)| !stale(m, *e));
            dropped += before - queue.len();
        }
        self.waiting.retain(|_, queue| !queue.is_empty());
        let mut freed = Vec::new();
        for (key, (m, e)) in std::mem::take(&mut self.backlog) {
            if stale(&m, e) {
                dropped += 1;
                freed.push(key);
            } else {
                self.backlog.push_back((key, (m, e)));
            }
        }
        self.buffered -= dropped;
        for key in freed {
            self.next_of_key(key);
        }
    }

    /// Pause the assigned partitions: the buffer stayed full with no delivery ending (or
    /// a partition assigned since was resumed by the context). The consumer is then
    /// polled freely (rebalances, errors).
    pub(super) fn pause(&mut self) {
        self.pause_resume(true);
    }

    /// Resume the paused partitions once below half of the bound.
    pub(super) fn resume_if_drained(&mut self) {
        if self.paused && self.buffered < MAX_BUFFERED / 2 {
            self.pause_resume(false);
        }
    }

    fn pause_resume(&mut self, pause: bool) {
        let r = self.consumer.assignment().and_then(|assigned| {
            if pause {
                self.consumer.pause(&assigned)
            } else {
                self.consumer.resume(&assigned)
            }
        });
        match r {
            Ok(()) => self.paused = pause,
            Err(e) => {
                log::warn!(
                    "webhook subscription `{}`: pause/resume failed: {e}",
                    self.sub.id
                );
                // Tried again after `STUCK` (pause) or when the next delivery ends.
                self.full_since = Instant::now();
            }
        }
    }

    /// The buffer gauges.
    pub(super) fn report(&self) {
        if let Some((buffered, paused)) = &self.gauges {
            buffered.set(self.buffered as i64);
            paused.set(i64::from(self.paused));
        }
    }
}
