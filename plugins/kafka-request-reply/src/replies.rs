//! The reply side of a route: its own reader of every partition of the reply topic (no
//! consumer group, so every instance sees every reply and no rebalance can take a
//! partition from the instance that waits), started on the first request (or status
//! URL) and positioned at the partition ends before that request is produced, with a
//! second reader beside it reading back the last `async_ttl` of replies once (for
//! asynchronous requests still kept); the table of requests waiting
//! for a reply, bounded; and what became of replies nobody waits for here: `late` (the
//! request timed out), `duplicate` (already answered), or `other` (another instance's).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sluice_kafka::reader::{self, Start};
use sluice_kafka::{Cluster, ReaderError};
use tokio::sync::oneshot;

use sluice_core::kept::Kept;

use crate::async_id;
use crate::matching::{read, read_back};
use crate::metrics;
pub use crate::results::Status;
use crate::results::{Recent, Results};

/// The header carrying the correlation id, on requests and replies.
pub const CORRELATION: &str = "sluice-correlation-id";
/// The header naming the reply topic, on requests.
pub const REPLY_TO: &str = "sluice-reply-to";
/// The header carrying the HTTP status, on replies (default `200`).
pub const STATUS: &str = "sluice-status";

/// A reply record, as the request gets it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Record headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The value.
    pub body: Bytes,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Publish how many requests of `route` wait (`sluice_request_reply_pending`).
pub(crate) fn pending_now(route: &str, n: usize) {
    if let Some(m) = metrics::metrics() {
        m.pending
            .with_label_values(&[route])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// What a reply was matched to.
pub(crate) enum Waiter {
    /// A request waiting on its connection.
    Sync(oneshot::Sender<Reply>),
    /// A `respond-async` request: the reply is kept for its status URL.
    Async,
}

/// Shared between the route and its reader task.
pub(crate) struct Table {
    pub(crate) route: String,
    pub(crate) waiting: Mutex<HashMap<String, Waiter>>,
    pub(crate) recent: Mutex<Recent>,
    /// This instance's asynchronous requests.
    pub(crate) results: Mutex<Results>,
    /// Replies to other instances' asynchronous requests (a table of their own, so they
    /// never push this instance's out).
    pub(crate) others: Mutex<Results>,
    /// How long asynchronous results are kept at most.
    pub(crate) ttl: Duration,
    max_pending: usize,
}

/// Bounds of the asynchronous results (each table: this instance's, the others').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncBounds {
    /// How long a result is kept.
    pub ttl: Duration,
    /// Results kept at most.
    pub max_entries: usize,
    /// Bytes of results kept, about.
    pub max_bytes: usize,
}

/// The reply side of one route.
pub struct Replies {
    pub(crate) table: Arc<Table>,
    topic: String,
    cluster: Arc<Cluster>,
    started: AtomicBool,
    starting: tokio::sync::Mutex<()>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The reading back of recent replies at start.
    back: Mutex<Option<tokio::task::JoinHandle<()>>>,
    last_expiry: Mutex<Instant>,
    failed_at: Mutex<Option<Instant>>,
}

/// How long after a failed start of the reply reader requests are refused at once.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// Why a request cannot wait for a reply.
pub enum NotWaiting {
    /// `max_pending` requests already wait.
    Full,
}

impl Replies {
    /// The reply side of `route`, reading `topic` on `cluster`.
    pub fn new(
        route: &str,
        cluster: Arc<Cluster>,
        topic: &str,
        max_pending: usize,
        bounds: AsyncBounds,
    ) -> Self {
        let table = || Mutex::new(Results::new(bounds.max_entries, bounds.max_bytes));
        Self {
            table: Arc::new(Table {
                route: route.to_string(),
                waiting: Mutex::default(),
                recent: Mutex::default(),
                results: table(),
                others: table(),
                ttl: bounds.ttl,
                max_pending,
            }),
            topic: topic.to_string(),
            cluster,
            started: AtomicBool::new(false),
            starting: tokio::sync::Mutex::new(()),
            task: Mutex::new(None),
            back: Mutex::new(None),
            last_expiry: Mutex::new(Instant::now()),
            failed_at: Mutex::new(None),
        }
    }

    /// Start the reader if it is not running: positioned at the partition ends, so any
    /// reply to a request produced after this returns is read.
    /// One attempt at a time, bounded by `limit`; after a failure, requests are refused
    /// at once for [`RETRY_AFTER_FAILURE`] instead of each trying again.
    pub async fn ensure_started(&self, limit: Duration) -> Result<(), ReaderError> {
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let failed_recently =
            |at: &Option<Instant>| at.is_some_and(|t| t.elapsed() < RETRY_AFTER_FAILURE);
        if failed_recently(&lock(&self.failed_at)) {
            return Err(ReaderError::Task(
                "the reply reader failed to start moments ago".into(),
            ));
        }
        let Ok(_one) = tokio::time::timeout(limit, self.starting.lock()).await else {
            return Err(ReaderError::Task(
                "the reply reader is still starting".into(),
            ));
        };
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        if failed_recently(&lock(&self.failed_at)) {
            return Err(ReaderError::Task(
                "the reply reader failed to start moments ago".into(),
            ));
        }
        let cfg = self
            .cluster
            .consumer_config()
            .ok_or_else(|| ReaderError::Task("the cluster is not started".into()))?;
        let opened = tokio::time::timeout(
            limit,
            reader::open(
                cfg.clone(),
                "sluice-reply",
                &self.topic,
                Start::Latest,
                None,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(ReaderError::Task("positioning took too long".into())));
        let (consumer, positions) = match opened {
            Ok(o) => o,
            Err(e) => {
                *lock(&self.failed_at) = Some(Instant::now());
                return Err(e);
            }
        };
        let known: Vec<i32> = positions.keys().copied().collect();
        let task = tokio::spawn(read(
            consumer,
            self.topic.clone(),
            known,
            self.table.clone(),
        ));
        // Beside it, once: the replies of the last `async_ttl` up to where it started, for
        // asynchronous requests whichever instance took them (this one restarted, or has
        // not read this topic before). Synchronous replies never wait behind these.
        let now = SystemTime::now();
        let from = Start::Time(now.checked_sub(self.async_ttl()).unwrap_or(now));
        let (topic, table) = (self.topic.clone(), self.table.clone());
        let mut cfg = cfg;
        cfg.set("enable.partition.eof", "true");
        let back = tokio::spawn(async move {
            match reader::open(cfg, "sluice-reply-back", &topic, from, None).await {
                Ok((c, start)) => read_back(c, start, positions, table).await,
                Err(e) => log::warn!(
                    "request-reply route `{}`: reading back replies of `{topic}`: {e}",
                    table.route
                ),
            }
        });
        *lock(&self.back) = Some(back);
        *lock(&self.task) = Some(task);
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Wait for the reply to `id` (registered before the request is produced).
    pub fn wait(&self, id: &str) -> Result<oneshot::Receiver<Reply>, NotWaiting> {
        self.expire();
        let mut waiting = lock(&self.table.waiting);
        if waiting.len() >= self.table.max_pending {
            return Err(NotWaiting::Full);
        }
        let (tx, rx) = oneshot::channel();
        waiting.insert(id.to_string(), Waiter::Sync(tx));
        pending_now(&self.table.route, waiting.len());
        Ok(rx)
    }

    /// Keep the reply to `id` (an [`async_id`]) for its status URL instead of waiting on
    /// the connection; `owner` is the [`async_id::owner_tag`] of the consumer who asked.
    pub fn wait_async(&self, id: &str, owner: String) -> Result<(), NotWaiting> {
        self.expire();
        let mut waiting = lock(&self.table.waiting);
        if waiting.len() >= self.table.max_pending {
            return Err(NotWaiting::Full);
        }
        waiting.insert(id.to_string(), Waiter::Async);
        pending_now(&self.table.route, waiting.len());
        let ttl = self.table.ttl;
        let until = async_id::parse(id)
            .and_then(|a| a.expires(ttl))
            .unwrap_or_else(|| Instant::now() + ttl);
        lock(&self.table.results).put(id, None, owner, until);
        Ok(())
    }

    /// Stop waiting for `id` (timed out, or its request was not produced).
    pub fn give_up(&self, id: &str) {
        let mut waiting = lock(&self.table.waiting);
        if waiting.remove(id).is_some() {
            pending_now(&self.table.route, waiting.len());
            lock(&self.table.recent).add(id.to_string(), false);
        }
    }

    /// Drop expired results of asynchronous requests, and stop waiting for replies
    /// whose result is gone (expired or pushed out). At most once a second.
    fn expire(&self) {
        let now = Instant::now();
        {
            let mut last = lock(&self.last_expiry);
            if now.duration_since(*last) < Duration::from_secs(1) {
                return;
            }
            *last = now;
        }
        lock(&self.table.others).expire(now);
        // Lock order everywhere: waiting, results, recent.
        let mut waiting = lock(&self.table.waiting);
        let mut results = lock(&self.table.results);
        results.expire(now);
        let entries = &results.entries;
        let mut recent = lock(&self.table.recent);
        waiting.retain(|id, w| {
            let keep = !matches!(w, Waiter::Async) || entries.contains_key(id);
            if !keep {
                recent.add(id.clone(), false);
            }
            keep
        });
        pending_now(&self.table.route, waiting.len());
    }

    /// The status of asynchronous request `id`, for `consumer` (on an authenticated
    /// route): another consumer's request is unknown to it. A request another instance
    /// took is pending here until its reply is read (every instance reads every reply).
    pub fn status(&self, id: &str, consumer: Option<&str>) -> Status {
        self.expire();
        let owner = async_id::owner_tag(consumer);
        let known = |r: &Results| {
            r.entries.get(id).map(|(_, reply, o)| match reply {
                _ if *o != owner => Status::Unknown,
                None => Status::Pending,
                Some(r) => Status::Done(r.clone()),
            })
        };
        let here = known(&lock(&self.table.results));
        if let Some(s) = here.or_else(|| known(&lock(&self.table.others))) {
            return s;
        }
        match async_id::parse(id) {
            Some(a) if a.owner == owner && a.expires(self.async_ttl()).is_some() => Status::Pending,
            _ => Status::Unknown,
        }
    }

    /// How long asynchronous results are kept.
    pub fn async_ttl(&self) -> Duration {
        self.table.ttl
    }

    /// Requests waiting now.
    pub fn pending(&self) -> usize {
        lock(&self.table.waiting).len()
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        for t in [lock(&self.task).take(), lock(&self.back).take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
    }
}

/// The replies of the process, by route and settings: a reload that keeps a route's reply
/// topic, bounds and cluster keeps its table (pending and asynchronous requests carry on)
/// and its running reader.
static TABLES: Kept<(String, String, usize, AsyncBounds), Replies> = Kept::new();

/// The reply side for these settings (and the same cluster): the running one, or a new
/// one.
pub fn replies_for(
    route: &str,
    cluster: Arc<Cluster>,
    topic: &str,
    max_pending: usize,
    bounds: AsyncBounds,
) -> Arc<Replies> {
    let key = (route.to_string(), topic.to_string(), max_pending, bounds);
    TABLES.get_or_start(
        key,
        |r| Arc::ptr_eq(&r.cluster, &cluster),
        || Replies::new(route, cluster.clone(), topic, max_pending, bounds),
    )
}

/// Match `m` on `replies`' table, for tests.
#[cfg(test)]
pub fn matched_for_tests<M: rdkafka::message::Message>(replies: &Replies, m: &M) {
    crate::matching::matched(&replies.table, m, false);
}
