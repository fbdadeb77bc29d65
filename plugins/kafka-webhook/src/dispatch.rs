//! The consumer loop of a subscription: records of a key are delivered one after the
//! other (in offset order); different keys run concurrently up to `concurrency`, so a key
//! being retried does not hold up the others. An offset is committed only when it and
//! every earlier offset of its partition are done (delivered, or acknowledged by the
//! dead-letter topic), so a crash redelivers instead of skipping.
//!
//! Rebalances: work is tied to the epoch of its partition's assignment
//! ([`Assignment`]). After a partition is revoked nothing more is committed for it and
//! its queued records are dropped (the new owner delivers them from the committed
//! offset); deliveries already in flight finish, and may be delivered again by the new
//! owner (at least once). A partition assigned again starts from a clean state.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::context::{Assignment, PartitionId, SubscriptionContext};
use crate::Subscription;

/// Records read but not yet finished, at most (memory bound).
const MAX_BUFFERED: usize = 1000;

type KeyId = (String, i32, Vec<u8>);
/// A record and the assignment epoch it was read under (`None`: read while not owned,
/// delivered but never committed).
type Work = (OwnedMessage, Option<u64>);
/// What a delivery task reports: its key, offset, epoch and whether it finished.
type Done = (KeyId, i64, Option<u64>, bool);

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

struct Dispatcher {
    sub: Arc<Subscription>,
    consumer: StreamConsumer<SubscriptionContext>,
    assignment: Arc<Assignment>,
    partitions: HashMap<PartitionId, Partition>,
    waiting: HashMap<KeyId, VecDeque<Work>>,
    active: HashSet<KeyId>,
    tasks: JoinSet<Done>,
    buffered: usize,
}

/// Consume and deliver until `stop` is set.
pub async fn run(
    sub: Arc<Subscription>,
    consumer: StreamConsumer<SubscriptionContext>,
    stop: watch::Receiver<bool>,
) {
    let assignment = consumer.context().assignment.clone();
    let mut d = Dispatcher {
        sub,
        consumer,
        assignment,
        partitions: HashMap::new(),
        waiting: HashMap::new(),
        active: HashSet::new(),
        tasks: JoinSet::new(),
        buffered: 0,
    };
    loop {
        let can_read = d.buffered < MAX_BUFFERED && d.tasks.len() < d.sub.concurrency;
        tokio::select! {
            biased;
            _ = crate::stopped(&stop) => break,
            Some(done) = d.tasks.join_next(), if !d.tasks.is_empty() => {
                let Ok(done) = done else { continue };
                d.finished(done, &stop);
            }
            m = d.consumer.recv(), if can_read => {
                match m {
                    Ok(m) => {
                        let m = m.detach();
                        d.read(m, &stop);
                    }
                    Err(e) => {
                        log::warn!("webhook subscription `{}`: consuming failed: {e}", d.sub.id);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }
    // Stopping: deliveries in retry give up at once (and are redelivered later);
    // whatever finishes is committed.
    while let Some(done) = d.tasks.join_next().await {
        if let Ok((key, offset, epoch, true)) = done {
            d.settle(&(key.0, key.1), offset, epoch);
        }
    }
    let _ = d.consumer.commit_consumer_state(CommitMode::Sync);
    let left: usize = d.partitions.values().map(|p| p.pending.len()).sum();
    log::info!(
        "webhook subscription `{}`: stopped ({left} unfinished record(s) will be redelivered)",
        d.sub.id
    );
}

impl Dispatcher {
    /// A record was read: start it, or queue it behind its key.
    fn read(&mut self, m: OwnedMessage, stop: &watch::Receiver<bool>) {
        let pid = (m.topic().to_string(), m.partition());
        let epoch = self.assignment.epoch(&pid);
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
            spawn(&mut self.tasks, &self.sub, key, (m, epoch), stop);
        }
    }

    /// A delivery task ended: settle it, then start the next record of its key that is
    /// still ours.
    fn finished(&mut self, (key, offset, epoch, done): Done, stop: &watch::Receiver<bool>) {
        self.buffered -= 1;
        let pid = (key.0.clone(), key.1);
        if done {
            self.settle(&pid, offset, epoch);
        }
        self.active.remove(&key);
        while let Some((next, e)) = self.waiting.get_mut(&key).and_then(VecDeque::pop_front) {
            if e.is_some() && self.assignment.epoch(&pid) != e {
                // Revoked while queued: the new owner delivers it.
                self.buffered -= 1;
                continue;
            }
            self.active.insert(key.clone());
            spawn(&mut self.tasks, &self.sub, key.clone(), (next, e), stop);
            break;
        }
        if self.waiting.get(&key).is_some_and(VecDeque::is_empty) {
            self.waiting.remove(&key);
        }
    }

    /// `offset` is done: commit its partition's position if it moved and the partition
    /// is still ours under the same assignment.
    fn settle(&mut self, pid: &PartitionId, offset: i64, epoch: Option<u64>) {
        let Some(e) = epoch else { return };
        let Some(p) = self.partitions.get_mut(pid).filter(|p| p.epoch == e) else {
            return;
        };
        p.pending.remove(&offset);
        if self.assignment.epoch(pid) != Some(e) {
            return;
        }
        let position = p.pending.first().copied().unwrap_or(p.next);
        if p.committed.is_some_and(|c| position <= c) {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&pid.0, pid.1, Offset::Offset(position))
            .is_ok()
            && self.consumer.commit(&tpl, CommitMode::Async).is_ok()
        {
            p.committed = Some(position);
        }
    }
}

fn spawn(
    tasks: &mut JoinSet<Done>,
    sub: &Arc<Subscription>,
    key: KeyId,
    (m, epoch): Work,
    stop: &watch::Receiver<bool>,
) {
    let (sub, stop) = (sub.clone(), stop.clone());
    tasks.spawn(async move {
        let offset = m.offset();
        let finished = sub.handle(&m, &stop).await;
        (key, offset, epoch, finished)
    });
}
