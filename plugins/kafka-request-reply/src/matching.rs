//! Matching reply records to waiting requests: the route's reader task (every partition
//! of the reply topic, new partitions picked up every 5 s) and what becomes of each
//! reply: to its waiting request, kept for a status URL (also another instance's
//! asynchronous request), or counted as `late`, `duplicate`, `other` or
//! `no_correlation_id`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{Headers, Message};
use sluice_kafka::reader::added_partitions;

use crate::async_id;
use crate::metrics;
use crate::replies::{lock, pending_now, Reply, Table, Waiter, CORRELATION, STATUS};

/// Match one reply record; replies older than `since_ms` (read back when the reader
/// started) only matter for asynchronous requests.
pub(crate) fn matched<M: Message>(table: &Table, m: &M, since_ms: i64) {
    let header = |name: &str| {
        m.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == name)
                .and_then(|x| x.value)
                .map(<[u8]>::to_vec)
        })
    };
    let Some(id) = header(CORRELATION).and_then(|v| String::from_utf8(v).ok()) else {
        metrics::unmatched(&table.route, "no_correlation_id");
        return;
    };
    let waiter = {
        let mut waiting = lock(&table.waiting);
        let w = waiting.remove(&id);
        pending_now(&table.route, waiting.len());
        w
    };
    if waiter.is_none() {
        if let Some(a) = async_id::parse(&id) {
            // Another instance's asynchronous request, or this one's from before a
            // restart: kept for its status URL, which any instance answers.
            let mut results = lock(&table.results);
            let why = match (results.entries.get(&id), a.expires(results.ttl())) {
                (Some((_, Some(_), _)), _) => "duplicate",
                (_, None) => "late",
                (_, Some(until)) => {
                    results.put(&id, Some(reply(m, &header)), a.owner, until);
                    return;
                }
            };
            metrics::unmatched(&table.route, why);
            return;
        }
        if m.timestamp().to_millis().is_some_and(|t| t < since_ms) {
            // Read back at the start: not a reply anybody here waited for.
            return;
        }
    }
    let Some(waiter) = waiter else {
        let answered = lock(&table.recent).ids.get(&id).copied();
        let why = match answered {
            Some(true) => "duplicate",
            Some(false) => "late",
            None => "other",
        };
        metrics::unmatched(&table.route, why);
        return;
    };
    let reply = reply(m, &header);
    lock(&table.recent).add(id.clone(), true);
    match waiter {
        Waiter::Sync(tx) => {
            if tx.send(reply).is_err() {
                metrics::unmatched(&table.route, "late");
            }
        }
        Waiter::Async => {
            let mut results = lock(&table.results);
            if let Some((until, owner)) = results.entries.get(&id).map(|e| (e.0, e.2.clone())) {
                results.put(&id, Some(reply), owner, until);
            }
        }
    }
}

/// The reply a record makes: status from `sluice-status` (`200` unless `200..=599`),
/// every header, the value.
fn reply<M: Message>(m: &M, header: &impl Fn(&str) -> Option<Vec<u8>>) -> Reply {
    let status = header(STATUS)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|s| (200..=599).contains(s))
        .unwrap_or(200);
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
    }
}

/// How often the reader looks for partitions added to the reply topic.
const REFRESH: Duration = Duration::from_secs(5);

/// Read replies until aborted (when the route's plugin instance goes); those older
/// than `since_ms` were read back for asynchronous requests.
pub(crate) async fn read(
    consumer: Arc<StreamConsumer>,
    topic: String,
    mut known: Vec<i32>,
    table: Arc<Table>,
    since_ms: i64,
) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            m = consumer.recv() => match m {
                Ok(m) => matched(&table, &m, since_ms),
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
