//! Feeding the view: a thread per plugin instance that waits until the cluster's
//! producers exist (librdkafka clients are only created once Pingora runs), then reads
//! every partition of the topic from its beginning with a plain consumer (no consumer
//! group) and applies each record. The partition ends seen at start are the catch-up
//! target: until every partition's position reached its end, the view is not served and
//! `/readyz` waits. Partitions added later are read from their beginning (checked every
//! 5 s). The thread ends when the plugin instance is dropped (a reload that replaced it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::kept::Kept;
use sluice_kafka::Cluster;

use crate::freshness::{FeedContext, Freshness};
use crate::metrics;
use crate::view::View;

/// What the route and the feeding thread share.
pub struct Shared {
    /// The view.
    pub view: RwLock<View>,
    /// When the view was last known current.
    pub freshness: Arc<Freshness>,
    caught_up: AtomicBool,
    progress: Mutex<String>,
    stop: AtomicBool,
    route: String,
    topic: String,
}

impl Shared {
    /// True once the view reached the partition ends seen at start.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Where catching up stands.
    pub fn progress(&self) -> String {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn say(&self, what: String) {
        if let Ok(mut p) = self.progress.lock() {
            *p = what;
        }
    }
}

/// The feeding thread of a route's view; stops it when dropped (when no plugin instance
/// uses it any more).
pub struct Feed {
    /// Shared with the thread.
    pub shared: Arc<Shared>,
    cluster: Arc<Cluster>,
}

/// The views of the process, by (route, topic, max_bytes): a reload that keeps a route's
/// view settings and cluster keeps its view (it goes on serving, caught up), instead of
/// reading the topic again behind a `503`.
static FEEDS: Kept<(String, String, usize), Feed> = Kept::new();

/// The running view for these settings (and the same cluster), or a new one.
pub fn feed_for(route: &str, cluster: Arc<Cluster>, topic: &str, max_bytes: usize) -> Arc<Feed> {
    let key = (route.to_string(), topic.to_string(), max_bytes);
    FEEDS.get_or_start(
        key,
        |f| Arc::ptr_eq(&f.cluster, &cluster),
        || Feed::start(route, cluster.clone(), topic, max_bytes),
    )
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Feed {
    /// Start feeding a view of `max_bytes` from `topic` on `cluster`.
    pub fn start(route: &str, cluster: Arc<Cluster>, topic: &str, max_bytes: usize) -> Self {
        let shared = Arc::new(Shared {
            view: RwLock::new(View::new(max_bytes)),
            freshness: Arc::default(),
            caught_up: AtomicBool::new(false),
            progress: Mutex::new(format!("waiting for cluster `{}`", cluster.name())),
            stop: AtomicBool::new(false),
            route: route.to_string(),
            topic: topic.to_string(),
        });
        let (s, c) = (shared.clone(), cluster.clone());
        let spawned = std::thread::Builder::new()
            .name("sluice-cache".into())
            .spawn(move || run(&c, &s));
        if let Err(e) = spawned {
            log::error!("kafka-cache route `{route}`: cannot start its thread: {e}");
        }
        Self { shared, cluster }
    }
}

fn stopped(s: &Shared) -> bool {
    s.stop.load(Ordering::Acquire)
}

/// Wait for the cluster, then read until stopped.
fn run(cluster: &Cluster, s: &Shared) {
    while !cluster.is_started() {
        if stopped(s) || cluster.is_closed() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    while !stopped(s) {
        match consumer(cluster, s) {
            Some(c) => {
                read(&c, s);
                return;
            }
            None => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn consumer(cluster: &Cluster, s: &Shared) -> Option<BaseConsumer<FeedContext>> {
    let mut cfg = cluster.consumer_config()?;
    cfg.set("group.id", "sluice-cache")
        // Statistics tell how current the view is (see `freshness`); an idle fetch
        // returns after at most this long while the broker answers.
        .set("statistics.interval.ms", "1000")
        // The end of a partition is reported: a transaction's commit marker at the end
        // is never delivered as a record, so the position alone would never get there.
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "500")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Catching up reads as fast as it applies: no 1 s pause when the queue is full.
        .set("fetch.queue.backoff.ms", "10");
    cfg.create_with_context(FeedContext::new(&s.topic, s.freshness.clone()))
        .map_err(|e| log::warn!("kafka-cache: cannot create a consumer: {e}"))
        .ok()
}

/// Assign the partitions not in `known` from their beginning; their ends now. Each
/// broker request waits at most `t`.
fn assign_new(
    c: &BaseConsumer<FeedContext>,
    topic: &str,
    known: &BTreeMap<i32, i64>,
    t: Duration,
) -> Option<BTreeMap<i32, i64>> {
    let md = c.fetch_metadata(Some(topic), t).ok()?;
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        if known.contains_key(&p.id()) {
            continue;
        }
        let (low, high) = c.fetch_watermarks(topic, p.id(), t).ok()?;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .ok()?;
        // An empty partition (never written, or every record deleted) has nothing to
        // catch up with: librdkafka reports no position for it until a record comes.
        ends.insert(p.id(), if low >= high { 0 } else { high });
    }
    if !ends.is_empty() {
        c.incremental_assign(&tpl).ok()?;
    }
    Some(ends)
}

/// True when every partition's position reached its end at start (or the partition's
/// end was reported, `at_end`).
fn reached(
    c: &BaseConsumer<FeedContext>,
    topic: &str,
    targets: &BTreeMap<i32, i64>,
    at_end: &BTreeSet<i32>,
) -> bool {
    let Ok(pos) = c.position() else {
        return false;
    };
    targets.iter().all(|(p, end)| {
        *end == 0
            || at_end.contains(p)
            || pos
                .find_partition(topic, *p)
                .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
    })
}

fn read(c: &BaseConsumer<FeedContext>, s: &Shared) {
    let mut targets = BTreeMap::new();
    // Before the ends are looked up: the view holds at least what the topic had then.
    let mut ends_at = Instant::now();
    while targets.is_empty() {
        if stopped(s) {
            return;
        }
        ends_at = Instant::now();
        match assign_new(c, &s.topic, &targets, Duration::from_secs(5)) {
            Some(ends) if !ends.is_empty() => targets = ends,
            _ => {
                s.say(format!("topic `{}` has no partitions yet", s.topic));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    s.say(format!(
        "reading topic `{}` up to its ends at start",
        s.topic
    ));
    let mut refreshed = Instant::now();
    let mut published = Instant::now();
    let mut checked = Instant::now();
    let mut at_end = BTreeSet::new();
    while !stopped(s) {
        let idle = match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                // With the records already fetched behind it: one write lock for all.
                let mut batch = vec![m];
                while batch.len() < BATCH {
                    match c.poll(Duration::ZERO) {
                        Some(Ok(m)) => batch.push(m),
                        Some(Err(e)) => {
                            note(s, &mut at_end, e);
                            break;
                        }
                        None => break,
                    }
                }
                apply(s, &batch);
                false
            }
            Some(Err(e)) => {
                note(s, &mut at_end, e);
                true
            }
            None => true,
        };
        // The positions are looked at when idle, or every 50 ms while reading.
        let look = !s.caught_up() && (idle || checked.elapsed() >= Duration::from_millis(50));
        if look {
            checked = Instant::now();
        }
        if look && reached(c, &s.topic, &targets, &at_end) {
            // It holds what the topic had when its ends were looked up.
            s.freshness.confirm(ends_at);
            s.caught_up.store(true, Ordering::Release);
            s.say(String::new());
            log::info!(
                "kafka-cache route `{}`: caught up with `{}`",
                s.route,
                s.topic
            );
        }
        if refreshed.elapsed() >= Duration::from_secs(5) {
            refreshed = Instant::now();
            // Briefly: the thread also publishes the view's metrics, staleness included,
            // which must not lag behind while a broker does not answer.
            if let Some(added) = assign_new(c, &s.topic, &targets, Duration::from_secs(1)) {
                targets.extend(added.into_keys().map(|p| (p, 0)));
            }
        }
        if published.elapsed() >= Duration::from_millis(500) {
            published = Instant::now();
            metrics::view(&s.route, s);
        }
    }
}

/// A consumer error: the end of a partition (noted in `at_end`), or logged.
fn note(s: &Shared, at_end: &mut BTreeSet<i32>, e: KafkaError) {
    match e {
        KafkaError::PartitionEOF(p) => {
            at_end.insert(p);
        }
        e => log::debug!("kafka-cache route `{}`: {e}", s.route),
    }
}

/// Records applied under one write lock, at most (readers wait for no more).
const BATCH: usize = 256;

fn apply<M: Message>(s: &Shared, batch: &[M]) {
    let Ok(mut view) = s.view.write() else {
        return;
    };
    let mut dropped = 0;
    for m in batch {
        if !apply_one(&mut view, m) {
            dropped += 1;
        }
    }
    drop(view);
    if dropped > 0 {
        metrics::dropped(&s.route, dropped);
    }
}

/// Apply one record; false when it was not kept.
fn apply_one<M: Message>(view: &mut View, m: &M) -> bool {
    let Some(key) = m.key() else {
        return true; // a record without a key has no place in a view by key
    };
    // A content type that is a valid, short header value (others are not kept).
    let content_type = m.headers().and_then(|h| {
        h.iter()
            .find(|x| x.key.eq_ignore_ascii_case("content-type"))
            .and_then(|x| x.value)
            .filter(|v| v.len() <= 256 && http::HeaderValue::from_bytes(v).is_ok())
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    });
    let value = m.payload().map(Bytes::copy_from_slice);
    let timestamp = m.timestamp().to_millis().unwrap_or(0);
    view.apply(
        key,
        value,
        content_type,
        m.partition(),
        m.offset(),
        timestamp,
    )
}
