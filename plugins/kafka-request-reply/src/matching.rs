//! Matching reply records to waiting requests: the route's reader task (every partition
//! of the reply topic, new partitions picked up every 5 s) and what becomes of each
//! reply: to its waiting request, kept for a status URL (also another instance's
//! asynchronous request), or counted as `late`, `duplicate`, `other` or
//! `no_correlation_id`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use sluice_kafka::event::{header, headers};
use sluice_kafka::position::Positions;
use sluice_kafka::reader::added_partitions;

use crate::async_id::{self, AsyncId};
use crate::metrics;
use crate::replies::{lock, pending_now, Reply, Table, Waiter, CORRELATION, STATUS};
use crate::results::Results;

/// Match one reply record; one `read_back` at the start only matters for asynchronous
/// requests (it is nobody's here otherwise, and not counted).
pub(crate) fn matched<M: Message>(table: &Table, m: &M, read_back: bool) {
    let Some(id) = header(m, CORRELATION).and_then(|v| std::str::from_utf8(v).ok()) else {
        metrics::unmatched(&table.route, "no_correlation_id");
        return;
    };
    let id = id.to_string();
    let waiter = {
        let mut waiting = lock(&table.waiting);
        let w = waiting.remove(&id);
        pending_now(&table.route, waiting.len());
        w
    };
    match (waiter, async_id::parse(&id)) {
        (Some(w), _) => answer(table, w, id, reply(m)),
        // Another instance's asynchronous request, or this one's from before a restart:
        // kept for its status URL, which any instance answers.
        (None, Some(a)) => keep_for_status(table, &id, a, read_back, || reply(m)),
        // Read back at the start: not a reply anybody here waited for.
        (None, None) if read_back => {}
        (None, None) => {
            let why = match lock(&table.recent).ids.get(&id).copied() {
                Some(true) => "duplicate",
                Some(false) => "late",
                None => "other",
            };
            metrics::unmatched(&table.route, why);
        }
    }
}

/// Hand `reply` to the request waiting for it here.
fn answer(table: &Table, waiter: Waiter, id: String, reply: Reply) {
    lock(&table.recent).add(id.clone(), true);
    match waiter {
        Waiter::Sync(tx) => {
            if tx.send(reply).is_err() {
                metrics::unmatched(&table.route, "late");
            }
        }
        Waiter::Async => {
            // Its pending entry may have been pushed out meanwhile: the id says how long
            // and for whom the reply is kept.
            let mut results = lock(&table.results);
            let kept = results
                .entries
                .get(&id)
                .map(|e| (e.0, e.2.clone()))
                .or_else(|| {
                    async_id::parse(&id).and_then(|a| Some((a.expires(table.ttl)?, a.owner)))
                });
            if let Some((until, owner)) = kept {
                results.put(&id, Some(reply), owner, until);
            }
        }
    }
}

/// Keep the reply to asynchronous request `id`, which nobody here waits for, for its
/// status URL; a duplicate or an expired one is counted (unless read back at the start).
fn keep_for_status(
    table: &Table,
    id: &str,
    a: AsyncId,
    read_back: bool,
    reply: impl FnOnce() -> Reply,
) {
    let answered = |r: &Results| matches!(r.entries.get(id), Some((_, Some(_), _)));
    let mine = answered(&lock(&table.results));
    let mut others = lock(&table.others);
    let why = match (mine || answered(&others), a.expires(table.ttl)) {
        (false, Some(until)) => {
            others.put(id, Some(reply()), a.owner, until);
            return;
        }
        _ if read_back => return,
        (true, _) => "duplicate",
        (false, None) => "late",
    };
    metrics::unmatched(&table.route, why);
}

/// The reply a record makes: status from `sluice-status` (`200` unless `200..=599`),
/// every header, the value.
fn reply<M: Message>(m: &M) -> Reply {
    let status = header(m, STATUS)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|s| (200..=599).contains(s))
        .unwrap_or(200);
    Reply {
        status,
        headers: headers(m),
        body: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
    }
}

/// How often the reader looks for partitions added to the reply topic.
const REFRESH: Duration = Duration::from_secs(5);

/// Read replies until aborted (when the route's plugin instance goes).
pub(crate) async fn read(
    consumer: Arc<StreamConsumer>,
    topic: String,
    mut known: Vec<i32>,
    table: Arc<Table>,
) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            m = consumer.recv() => match m {
                Ok(m) => matched(&table, &m, false),
                Err(e) => {
                    log::warn!("request-reply route `{}`: reading replies: {e}", table.route);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = tick.tick() => {
                if let Ok(added) = added_partitions(&consumer, &topic, known.clone()).await {
                    known.extend(added.into_iter().map(|(p, _)| p));
                }
            }
        }
    }
}

/// How long reading back may take at most (it normally ends at the partition ends).
const READ_BACK_LIMIT: Duration = Duration::from_secs(120);

/// Read the replies from `start` up to `ends` (where the live reader started) once,
/// keeping those to asynchronous requests. A partition is done at a record at or past its
/// end, or at its end of partition (the consumer reports it: a transaction's commit
/// marker is never delivered as a record). Gives up, saying so, after 10 s without
/// anything or [`READ_BACK_LIMIT`] in all.
pub(crate) async fn read_back(
    consumer: Arc<StreamConsumer>,
    start: Positions,
    ends: Positions,
    table: Arc<Table>,
) {
    let mut left: BTreeSet<i32> = ends
        .iter()
        .filter(|(p, end)| start.get(p).is_some_and(|s| s < end))
        .map(|(p, _)| *p)
        .collect();
    let deadline = tokio::time::Instant::now() + READ_BACK_LIMIT;
    while !left.is_empty() {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_secs(10));
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(m)) => {
                let p = m.partition();
                let Some(end) = ends.get(&p) else { continue };
                if m.offset() < *end {
                    matched(&table, &m, true);
                }
                if m.offset() + 1 >= *end {
                    left.remove(&p);
                }
            }
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                left.remove(&p);
            }
            Ok(Err(e)) => log::debug!("request-reply route `{}`: {e}", table.route),
            Err(_) => {
                log::warn!(
                    "request-reply route `{}`: reading back recent replies stopped early; results of asynchronous requests from before this start may stay pending",
                    table.route
                );
                break;
            }
        }
    }
}
