//! The consumer's librdkafka context: per-partition consumer lag from the statistics,
//! and which partitions this member owns right now ([`Assignment`]), kept current by
//! the rebalance callbacks so that the dispatcher never commits, nor starts delivering,
//! for a partition that another member owns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;

use crate::metrics::webhook;

/// A topic partition.
pub type PartitionId = (String, i32);

/// The partitions assigned to this member, each with the epoch of its assignment: a
/// partition revoked and assigned again gets a new epoch, so work started under the old
/// one is recognised as stale.
#[derive(Debug, Default)]
pub struct Assignment {
    inner: Mutex<(u64, HashMap<PartitionId, u64>)>,
    /// How many times partitions were given up (revoked, or all lost).
    losses: AtomicU64,
}

impl Assignment {
    /// The epoch of `pid`'s current assignment, if this member owns it.
    pub fn epoch(&self, pid: &PartitionId) -> Option<u64> {
        self.lock().1.get(pid).copied()
    }

    /// `partitions` are now owned (a new epoch for each).
    pub fn assign<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        let mut g = self.lock();
        for (topic, p) in partitions {
            g.0 += 1;
            let epoch = g.0;
            g.1.insert((topic.to_string(), p), epoch);
        }
    }

    /// `partitions` are no longer owned.
    pub fn revoke<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        let mut g = self.lock();
        for (topic, p) in partitions {
            g.1.remove(&(topic.to_string(), p));
        }
        self.losses.fetch_add(1, Ordering::Release);
    }

    /// How many times partitions were given up so far: when it changes, work queued for
    /// them can be dropped.
    pub fn losses(&self) -> u64 {
        self.losses.load(Ordering::Acquire)
    }

    /// The partitions owned now, sorted.
    pub fn owned(&self) -> Vec<PartitionId> {
        let mut v: Vec<PartitionId> = self.lock().1.keys().cloned().collect();
        v.sort();
        v
    }

    /// Nothing is owned any more (an error in the group: librdkafka unassigns all).
    pub fn clear(&self) {
        self.lock().1.clear();
        self.losses.fetch_add(1, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<PartitionId, u64>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The context of one subscription's consumer.
pub struct SubscriptionContext {
    /// The subscription id.
    pub subscription: String,
    /// What this member owns (shared with the [`crate::Subscription`], which reports it).
    pub assignment: std::sync::Arc<Assignment>,
    /// Partitions whose last offset commit failed (e.g. during a rebalance): the
    /// dispatcher commits them again.
    pub failed_commits: Mutex<Vec<PartitionId>>,
}

impl SubscriptionContext {
    /// A context for subscription `id`, keeping what it owns in `assignment`.
    pub fn new(id: &str, assignment: std::sync::Arc<Assignment>) -> Self {
        Self {
            subscription: id.to_string(),
            assignment,
            failed_commits: Mutex::new(Vec::new()),
        }
    }

    /// Take the partitions whose commit failed since the last call.
    pub fn take_failed_commits(&self) -> Vec<PartitionId> {
        std::mem::take(
            &mut *self
                .failed_commits
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }
}

impl ClientContext for SubscriptionContext {
    fn stats(&self, s: Statistics) {
        let Some(m) = webhook() else { return };
        for (topic, t) in &s.topics {
            for (id, p) in &t.partitions {
                if *id >= 0 && p.consumer_lag >= 0 {
                    m.lag
                        .with_label_values(&[&self.subscription, topic, &id.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SubscriptionContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            log::debug!(
                "webhook subscription `{}`: commit failed ({e}); trying again",
                self.subscription
            );
            let mut failed = self
                .failed_commits
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            failed.extend(
                offsets
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition())),
            );
        }
    }

    // Revocations are recorded before librdkafka gives the partitions up (no commit for
    // them after this point); assignments after they took effect. Both protocols call
    // these: `classic` with whole assignments (eager) or increments (cooperative), the
    // KIP-848 `consumer` protocol with increments.
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = tpl.elements();
                self.assignment
                    .revoke(parts.iter().map(|e| (e.topic(), e.partition())));
                log::info!(
                    "webhook subscription `{}`: {} partition(s) revoked",
                    self.subscription,
                    parts.len()
                );
            }
            Rebalance::Error(e) => {
                log::warn!(
                    "webhook subscription `{}`: rebalance error: {e}",
                    self.subscription
                );
                self.assignment.clear();
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // librdkafka keeps an application pause across revocation and assignment: a
            // partition paused (flow control) when it was revoked would come back paused
            // for good. Resuming a partition that is not paused does nothing; the
            // dispatcher pauses again if it still holds too much.
            if let Err(e) = consumer.resume(tpl) {
                log::warn!(
                    "webhook subscription `{}`: resuming assigned partitions failed: {e}",
                    self.subscription
                );
            }
            let parts = tpl.elements();
            self.assignment
                .assign(parts.iter().map(|e| (e.topic(), e.partition())));
            log::info!(
                "webhook subscription `{}`: {} partition(s) assigned",
                self.subscription,
                parts.len()
            );
        }
    }
}
