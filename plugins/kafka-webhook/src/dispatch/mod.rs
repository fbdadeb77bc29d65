//! The consumer loop of a subscription: records of a key are delivered one after the
//! other (in offset order); different keys run concurrently up to `concurrency`, so a key
//! being retried does not hold up the others. An offset is committed only when it and
//! every earlier offset of its partition are done (delivered, or acknowledged by the
//! dead-letter topic), so a crash redelivers instead of skipping. Positions that moved
//! are committed together every [`COMMIT_EVERY`], and when the subscription stops.
//!
//! Flow control (the bound on records read and not finished) is in [`flow`].
//!
//! Rebalances: work is tied to the epoch of its partition's assignment
//! ([`Assignment`]). After a partition is revoked nothing more is committed for it and
//! its queued records are dropped (the new owner delivers them from the committed
//! offset); deliveries already in flight finish, and may be delivered again by the new
//! owner (at least once). A partition assigned again starts from a clean state.

mod flow;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::context::{Assignment, PartitionId, SubscriptionContext};
use crate::Subscription;

use flow::{MAX_BUFFERED, STUCK};

/// How often the positions that moved are committed (one request for all partitions):
/// a commit per record would be a write to `__consumer_offsets` per delivery.
const COMMIT_EVERY: Duration = Duration::from_millis(100);

type KeyId = (String, i32, Vec<u8>);
/// A record and the assignment epoch it was read under (`None`: read while not owned,
/// delivered but never committed).
type Work = (OwnedMessage, Option<u64>);

#[derive(Default)]
struct Partition {
    /// The assignment epoch this state belongs to.
    epoch: u64,
    /// Offsets read and not finished.
    pending: BTreeSet<i64>,
    /// One past the highest offset read.
    next: i64,
    /// Last committed position (`None`: nothing committed in this epoch).
    committed: Option<i64>,
}

impl Partition {
    /// What may be committed: the lowest unfinished offset, or one past the highest read.
    fn position(&self) -> i64 {
        self.pending.first().copied().unwrap_or(self.next)
    }
}

struct Dispatcher {
    sub: Arc<Subscription>,
    consumer: StreamConsumer<SubscriptionContext>,
    partitions: HashMap<PartitionId, Partition>,
    /// Records queued behind an active record of the same key.
    waiting: HashMap<KeyId, VecDeque<Work>>,
    /// Records whose key is free, waiting for a delivery slot, in read order.
    backlog: VecDeque<(KeyId, Work)>,
    active: HashSet<KeyId>,
    /// Delivery tasks; each reports whether its record finished.
    tasks: JoinSet<bool>,
    /// What each running task works on: key, offset and assignment epoch.
    running: HashMap<tokio::task::Id, (KeyId, i64, Option<u64>)>,
    /// Records read and not finished (running, waiting or in the backlog).
    buffered: usize,
    /// Whether the assigned partitions are paused (too much buffered for too long).
    paused: bool,
    /// Since when the buffer is full with no delivery ending (meaningful while full).
    full_since: Instant,
    /// `sluice_webhook_buffered` and `sluice_webhook_paused` of this subscription.
    gauges: Option<(prometheus::IntGauge, prometheus::IntGauge)>,
    /// [`Assignment::losses`] when queued work was last checked against it.
    losses: u64,
    /// Partitions whose position moved since the last commit.
    dirty: BTreeSet<PartitionId>,
}

/// Consume and deliver until `stop` is set.
pub async fn run(
    sub: Arc<Subscription>,
    consumer: StreamConsumer<SubscriptionContext>,
    stop: watch::Receiver<bool>,
) {
    let gauges = crate::metrics::webhook().map(|w| {
        (
            w.buffered.with_label_values(&[&sub.id]),
            w.paused.with_label_values(&[&sub.id]),
        )
    });
    let mut d = Dispatcher {
        sub,
        consumer,
        partitions: HashMap::new(),
        waiting: HashMap::new(),
        backlog: VecDeque::new(),
        active: HashSet::new(),
        tasks: JoinSet::new(),
        running: HashMap::new(),
        buffered: 0,
        paused: false,
        full_since: Instant::now(),
        gauges,
        losses: 0,
        dirty: BTreeSet::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut commit_tick = tokio::time::interval(COMMIT_EVERY);
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Rebalance callbacks run inside `recv`, which goes on waiting: a revocation is
        // seen here, at the latest after the next tick.
        d.drop_revoked();
        d.resume_if_drained();
        // Full and not paused: the consumer rests until a delivery ends, or pauses the
        // partitions when none ended for `STUCK`.
        let holding = d.buffered >= MAX_BUFFERED && !d.paused;
        tokio::select! {
            biased;
            _ = crate::stopped(&stop) => break,
            _ = tick.tick() => d.retry_failed_commits(),
            _ = commit_tick.tick(), if !d.dirty.is_empty() => d.commit_dirty(),
            Some(done) = d.tasks.join_next_with_id(), if !d.tasks.is_empty() => {
                d.ended(done, &stop);
                d.full_since = Instant::now();
            }
            _ = tokio::time::sleep_until(d.full_since + STUCK), if holding => d.pause(),
            m = d.consumer.recv(), if !holding => {
                match m {
                    Ok(m) => {
                        let m = m.detach();
                        d.read(m, &stop);
                        if d.buffered >= MAX_BUFFERED {
                            if d.paused {
                                // A partition assigned meanwhile (resumed by the context).
                                d.pause();
                            } else if d.buffered == MAX_BUFFERED {
                                d.full_since = Instant::now();
                            }
                        }
                    }
                    Err(e) => {
                        log::warn!("webhook subscription `{}`: consuming failed: {e}", d.sub.id);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        d.report();
    }
    // Stopping: deliveries in retry give up at once (and are redelivered later);
    // whatever finishes is committed (librdkafka waits for outstanding commits when the
    // consumer is closed).
    while let Some(done) = d.tasks.join_next_with_id().await {
        if let Ok((id, true)) = done {
            if let Some((key, offset, epoch)) = d.running.remove(&id) {
                d.settle(&(key.0, key.1), offset, epoch);
            }
        }
    }
    d.commit_dirty();
    d.buffered = 0;
    d.paused = false;
    d.report();
    let left: usize = d.partitions.values().map(|p| p.pending.len()).sum();
    log::info!(
        "webhook subscription `{}`: stopped ({left} unfinished record(s) will be redelivered)",
        d.sub.id
    );
}

impl Dispatcher {
    fn assignment(&self) -> &Assignment {
        &self.consumer.context().assignment
    }

    fn stale(&self, pid: &PartitionId, e: Option<u64>) -> bool {
        is_stale(self.assignment(), pid, e)
    }

    /// A record was read: start it, or queue it behind its key.
    fn read(&mut self, m: OwnedMessage, stop: &watch::Receiver<bool>) {
        let pid = (m.topic().to_string(), m.partition());
        let epoch = self.assignment().epoch(&pid);
        if let Some(e) = epoch {
            let p = self.partitions.entry(pid).or_default();
            if p.epoch != e {
                // Assigned (again) since this state was made: start clean.
                *p = Partition {
                    epoch: e,
                    ..Partition::default()
                };
            }
            p.pending.insert(m.offset());
            p.next = p.next.max(m.offset() + 1);
        }
        self.buffered += 1;
        // Records without a key have no order to keep: each is its own "key".
        let key_bytes = m
            .key()
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| format!("\0{}", m.offset()).into_bytes());
        let key = (m.topic().to_string(), m.partition(), key_bytes);
        if self.active.contains(&key) {
            self.waiting.entry(key).or_default().push_back((m, epoch));
        } else {
            self.active.insert(key.clone());
            self.backlog.push_back((key, (m, epoch)));
            self.start_backlog(stop);
        }
    }

    /// Start backlog records while delivery slots are free (dropping those of revoked
    /// partitions: the new owner delivers them).
    fn start_backlog(&mut self, stop: &watch::Receiver<bool>) {
        while self.tasks.len() < self.sub.concurrency {
            let Some((key, (m, e))) = self.backlog.pop_front() else {
                return;
            };
            if self.stale(&(key.0.clone(), key.1), e) {
                self.buffered -= 1;
                self.next_of_key(key);
                continue;
            }
            self.spawn(key, (m, e), stop);
        }
    }

    fn spawn(&mut self, key: KeyId, (m, epoch): Work, stop: &watch::Receiver<bool>) {
        let (sub, stop) = (self.sub.clone(), stop.clone());
        let offset = m.offset();
        let handle = self.tasks.spawn(async move { sub.handle(&m, &stop).await });
        self.running.insert(handle.id(), (key, offset, epoch));
    }

    /// A delivery task ended: settle its record if it finished (a task that panicked
    /// leaves it unfinished: its partition's commits stop there, so it is delivered again
    /// after a restart), then start the next record of its key that is still ours, and
    /// fill the free slot.
    fn ended(
        &mut self,
        done: Result<(tokio::task::Id, bool), tokio::task::JoinError>,
        stop: &watch::Receiver<bool>,
    ) {
        let (id, finished, failure) = match done {
            Ok((id, finished)) => (id, finished, None),
            Err(e) => (e.id(), false, Some(e)),
        };
        let Some((key, offset, epoch)) = self.running.remove(&id) else {
            return;
        };
        if let Some(e) = failure {
            if let Some(w) = crate::metrics::webhook() {
                w.attempts.with_label_values(&[&self.sub.id, "panic"]).inc();
            }
            log::error!(
                "webhook subscription `{}`: the delivery of {}[{}]@{offset} failed unexpectedly ({e}); it is redelivered after a restart",
                self.sub.id,
                key.0,
                key.1
            );
        }
        self.buffered -= 1;
        if finished {
            self.settle(&(key.0.clone(), key.1), offset, epoch);
        }
        self.next_of_key(key);
        self.start_backlog(stop);
    }

    /// `key` is free again: its next record that is still ours goes to the backlog.
    fn next_of_key(&mut self, key: KeyId) {
        let pid = (key.0.clone(), key.1);
        self.active.remove(&key);
        while let Some((next, e)) = self.waiting.get_mut(&key).and_then(VecDeque::pop_front) {
            if self.stale(&pid, e) {
                // Revoked while queued: the new owner delivers it.
                self.buffered -= 1;
                continue;
            }
            self.active.insert(key.clone());
            self.backlog.push_back((key.clone(), (next, e)));
            break;
        }
        if self.waiting.get(&key).is_some_and(VecDeque::is_empty) {
            self.waiting.remove(&key);
        }
    }

    /// Commit again, at the next [`COMMIT_EVERY`], the partitions whose last commit
    /// failed (if still ours under the same assignment: [`Self::commit_dirty`] checks).
    /// A partition's position never moves back within an assignment, so committing it
    /// again is never below what was committed before.
    fn retry_failed_commits(&mut self) {
        for pid in self.consumer.context().take_failed_commits() {
            if let Some(p) = self.partitions.get_mut(&pid) {
                p.committed = None;
                self.dirty.insert(pid);
            }
        }
    }

    /// `offset` is done: its partition's position is committed at the next
    /// [`COMMIT_EVERY`] if it moved and the partition is still ours under the same
    /// assignment.
    fn settle(&mut self, pid: &PartitionId, offset: i64, epoch: Option<u64>) {
        let Some(e) = epoch else { return };
        let Some(p) = self.partitions.get_mut(pid).filter(|p| p.epoch == e) else {
            return;
        };
        p.pending.remove(&offset);
        let position = p.position();
        if self.consumer.context().assignment.epoch(pid) != Some(e)
            || p.committed.is_some_and(|c| position <= c)
        {
            return;
        }
        self.dirty.insert(pid.clone());
    }

    /// Commit the positions that moved since the last time, in one request
    /// (asynchronously; a failure comes back through the context's commit callback), for
    /// the partitions still ours under the same assignment.
    fn commit_dirty(&mut self) {
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for pid in std::mem::take(&mut self.dirty) {
            let owned = self.assignment().epoch(&pid);
            let Some(p) = self.partitions.get(&pid).filter(|p| owned == Some(p.epoch)) else {
                continue;
            };
            let position = p.position();
            if p.committed.is_some_and(|c| position <= c) {
                continue;
            }
            if tpl
                .add_partition_offset(&pid.0, pid.1, Offset::Offset(position))
                .is_ok()
            {
                moved.push((pid, position));
            }
        }
        if moved.is_empty() {
            return;
        }
        if self.consumer.commit(&tpl, CommitMode::Async).is_ok() {
            for (pid, position) in moved {
                if let Some(p) = self.partitions.get_mut(&pid) {
                    p.committed = Some(position);
                }
            }
        } else {
            // Not even queued: tried again at the next tick.
            self.dirty.extend(moved.into_iter().map(|(pid, _)| pid));
        }
    }
}

/// Whether work read under epoch `e` belongs to a partition that was revoked since
/// (`None`, work read while not owned, is never stale: it is delivered, not committed).
fn is_stale(assignment: &Assignment, pid: &PartitionId, e: Option<u64>) -> bool {
    e.is_some() && assignment.epoch(pid) != e
}
