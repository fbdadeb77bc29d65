//! The consumer loop of a subscription: records of a key are delivered one after the
//! other (in offset order); different keys run concurrently up to `concurrency`, so a key
//! being retried does not hold up the others. An offset is committed only when it and
//! every earlier offset of its partition are done (delivered, or acknowledged by the
//! dead-letter topic), so a crash redelivers instead of skipping.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::lag::LagContext;
use crate::Subscription;

/// Records read but not yet finished, at most (memory bound).
const MAX_BUFFERED: usize = 1000;

type PartitionId = (String, i32);
type KeyId = (String, i32, Vec<u8>);

#[derive(Default)]
struct Partition {
    /// Offsets read and not finished.
    pending: BTreeSet<i64>,
    /// One past the highest offset read.
    next: i64,
    /// Last committed position.
    committed: i64,
}

/// Consume and deliver until `stop` is set.
pub async fn run(
    sub: Arc<Subscription>,
    consumer: StreamConsumer<LagContext>,
    stop: watch::Receiver<bool>,
) {
    let mut partitions: HashMap<PartitionId, Partition> = HashMap::new();
    let mut waiting: HashMap<KeyId, VecDeque<OwnedMessage>> = HashMap::new();
    let mut active: HashSet<KeyId> = HashSet::new();
    let mut tasks: JoinSet<(KeyId, i64, bool)> = JoinSet::new();
    let mut buffered = 0usize;
    loop {
        let can_read = buffered < MAX_BUFFERED && tasks.len() < sub.concurrency;
        tokio::select! {
            biased;
            _ = crate::stopped(&stop) => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((key, offset, finished)) = done else { continue };
                buffered -= 1;
                let pid = (key.0.clone(), key.1);
                if finished {
                    if let Some(p) = partitions.get_mut(&pid) {
                        p.pending.remove(&offset);
                        commit(&consumer, &pid, p);
                    }
                }
                active.remove(&key);
                if let Some(next) = waiting.get_mut(&key).and_then(VecDeque::pop_front) {
                    active.insert(key.clone());
                    spawn(&mut tasks, &sub, key.clone(), next, &stop);
                }
                if waiting.get(&key).is_some_and(VecDeque::is_empty) {
                    waiting.remove(&key);
                }
            }
            m = consumer.recv(), if can_read => {
                let m = match m {
                    Ok(m) => m.detach(),
                    Err(e) => {
                        log::warn!("webhook subscription `{}`: consuming failed: {e}", sub.id);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let pid = (m.topic().to_string(), m.partition());
                let p = partitions.entry(pid).or_default();
                p.pending.insert(m.offset());
                p.next = p.next.max(m.offset() + 1);
                buffered += 1;
                // Records without a key have no order to keep: each is its own "key".
                let key_bytes = m.key().map(<[u8]>::to_vec).unwrap_or_else(|| format!("\0{}", m.offset()).into_bytes());
                let key = (m.topic().to_string(), m.partition(), key_bytes);
                if active.contains(&key) {
                    waiting.entry(key).or_default().push_back(m);
                } else {
                    active.insert(key.clone());
                    spawn(&mut tasks, &sub, key, m, &stop);
                }
            }
        }
    }
    // Stopping: deliveries in retry give up at once (and are redelivered later);
    // whatever finishes is committed.
    while let Some(done) = tasks.join_next().await {
        if let Ok((key, offset, true)) = done {
            let pid = (key.0, key.1);
            if let Some(p) = partitions.get_mut(&pid) {
                p.pending.remove(&offset);
                commit(&consumer, &pid, p);
            }
        }
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    let left: usize = partitions.values().map(|p| p.pending.len()).sum();
    log::info!(
        "webhook subscription `{}`: stopped ({left} unfinished record(s) will be redelivered)",
        sub.id
    );
}

fn spawn(
    tasks: &mut JoinSet<(KeyId, i64, bool)>,
    sub: &Arc<Subscription>,
    key: KeyId,
    m: OwnedMessage,
    stop: &watch::Receiver<bool>,
) {
    let (sub, stop) = (sub.clone(), stop.clone());
    tasks.spawn(async move {
        let offset = m.offset();
        let finished = sub.handle(&m, &stop).await;
        (key, offset, finished)
    });
}

/// Commit the partition's position when it moved: the lowest unfinished offset, or one
/// past the highest read when everything is finished.
fn commit(consumer: &StreamConsumer<LagContext>, pid: &PartitionId, p: &mut Partition) {
    let position = p.pending.first().copied().unwrap_or(p.next);
    if position <= p.committed {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(&pid.0, pid.1, Offset::Offset(position))
        .is_ok()
        && consumer.commit(&tpl, CommitMode::Async).is_ok()
    {
        p.committed = position;
    }
}
