//! The librdkafka client context of a cluster's producers: delivery reports settle each
//! event's accounting (and wake a waiting request, for acknowledged modes); statistics
//! become the queue and broker gauges (summed over the cluster's producers); client
//! errors are counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use rdkafka::message::BorrowedMessage;
use sluice_spool::{Spool, SpoolError};

use crate::accounting::EventCounters;
use crate::event::{reason, OutgoingEvent};
use crate::metrics::kafka;

/// Where an acknowledged event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What the delivery report said.
pub type DeliveryReport = Result<Acked, KafkaError>;

/// Travels with each message through librdkafka (the delivery opaque).
pub struct Ticket {
    /// The counters to settle (none for replays from the spool, which the replayer
    /// settles).
    pub counters: Option<Arc<EventCounters>>,
    /// A request (or the replayer) waiting for the report, if any.
    pub reply: Option<oneshot::Sender<DeliveryReport>>,
    /// If delivery fails, write the event to the spool instead of counting it failed.
    pub spool_on_failure: bool,
}

/// The last statistics of one producer of a cluster.
#[derive(Default, Debug, Clone)]
struct ProducerStats {
    msg_cnt: u64,
    msg_size: u64,
    msg_max: u64,
    msg_size_max: u64,
    /// Broker name -> (up, rtt p99 in µs).
    brokers: BTreeMap<String, (bool, Option<i64>)>,
}

/// Shared state the contexts of a cluster's producers update.
#[derive(Default, Debug)]
pub struct ClusterHealth {
    /// Last statistics per producer (index = the producer's slot).
    stats: Mutex<Vec<ProducerStats>>,
    /// Brokers with an UP connection in the last statistics report.
    pub brokers_up: AtomicUsize,
    /// Whether a statistics report arrived at all.
    pub reported: std::sync::atomic::AtomicBool,
    /// Events handed to the producer whose delivery report has not arrived yet.
    pub in_flight: std::sync::atomic::AtomicU64,
    /// Shutting down: every failed (purged) event goes to the spool, if there is one.
    pub spool_everything: std::sync::atomic::AtomicBool,
}

pub(crate) struct SluiceContext {
    pub cluster: String,
    /// This producer's slot in `health.stats`.
    pub slot: usize,
    pub health: Arc<ClusterHealth>,
    /// The cluster's disk spool, if configured.
    pub spool: Option<Arc<Spool>>,
}

impl ClusterHealth {
    /// Forget the statistics of a producer that was dropped (its queue and broker
    /// connections no longer count); the next report publishes the totals.
    pub(crate) fn forget(&self, slot: usize) {
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.get_mut(slot) {
            *s = ProducerStats::default();
        }
    }

    /// Record one producer's statistics and publish the cluster's totals.
    fn publish(&self, cluster: &str, slot: usize, s: ProducerStats) {
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() <= slot {
            all.resize(slot + 1, ProducerStats::default());
        }
        all[slot] = s;
        let sum = |f: fn(&ProducerStats) -> u64| {
            i64::try_from(all.iter().map(f).sum::<u64>()).unwrap_or(i64::MAX)
        };
        let mut brokers: BTreeMap<&str, (bool, Option<i64>)> = BTreeMap::new();
        for p in all.iter() {
            for (name, (up, rtt)) in &p.brokers {
                let e = brokers.entry(name).or_insert((false, None));
                e.0 |= *up;
                e.1 = e.1.max(*rtt);
            }
        }
        let up = brokers.values().filter(|b| b.0).count();
        self.brokers_up.store(up, Ordering::Relaxed);
        self.reported.store(true, Ordering::Relaxed);
        let Some(m) = kafka() else { return };
        m.queue_messages
            .with_label_values(&[cluster])
            .set(sum(|p| p.msg_cnt));
        m.queue_bytes
            .with_label_values(&[cluster])
            .set(sum(|p| p.msg_size));
        m.queue_max_messages
            .with_label_values(&[cluster])
            .set(sum(|p| p.msg_max));
        m.queue_max_bytes
            .with_label_values(&[cluster])
            .set(sum(|p| p.msg_size_max));
        for (name, (is_up, rtt)) in brokers {
            m.broker_up
                .with_label_values(&[cluster, name])
                .set(i64::from(is_up));
            if let Some(rtt) = rtt {
                m.broker_rtt_p99
                    .with_label_values(&[cluster, name])
                    .set(rtt as f64 / 1e6);
            }
        }
    }
}

impl ClientContext for SluiceContext {
    fn stats(&self, s: Statistics) {
        let brokers = s
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0)
            .map(|b| {
                (
                    b.nodename.clone(),
                    (b.state == "UP", b.rtt.as_ref().map(|r| r.p99)),
                )
            })
            .collect();
        let stats = ProducerStats {
            msg_cnt: s.msg_cnt,
            msg_size: s.msg_size,
            msg_max: s.msg_max,
            msg_size_max: s.msg_size_max,
            brokers,
        };
        self.health.publish(&self.cluster, self.slot, stats);
    }

    fn error(&self, error: KafkaError, detail: &str) {
        // librdkafka logs these itself; here they are only counted.
        log::debug!("kafka cluster `{}`: {error}: {detail}", self.cluster);
        if let Some(m) = kafka() {
            m.client_errors
                .with_label_values(&[&self.cluster, &reason(&error)])
                .inc();
        }
    }
}

impl ProducerContext for SluiceContext {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        self.health.in_flight.fetch_sub(1, Ordering::AcqRel);
        let report = match (result, &ticket.counters) {
            (Ok(msg), counters) => {
                if let Some(c) = counters {
                    c.acked();
                }
                Ok(Acked {
                    partition: msg.partition(),
                    offset: msg.offset(),
                })
            }
            (Err((e, _)), None) => Err(e.clone()),
            (Err((e, msg)), Some(counters)) => {
                // A record Kafka will never take is not spooled: counted failed.
                let spool_it = (ticket.spool_on_failure
                    || self.health.spool_everything.load(Ordering::Acquire))
                    && !crate::event::permanent_error(e);
                match (&self.spool, spool_it) {
                    (Some(spool), true) => spool_event(spool, event_of(msg), counters.clone()),
                    _ => counters.failed(&reason(e)),
                }
                Err(e.clone())
            }
        };
        if let Some(tx) = ticket.reply {
            // The waiting request may have given up already; that is fine.
            let _ = tx.send(report);
        }
    }
}

/// The event of a message librdkafka could not deliver.
fn event_of(msg: &BorrowedMessage<'_>) -> OutgoingEvent {
    OutgoingEvent {
        topic: msg.topic().to_string(),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().unwrap_or_default().to_vec(),
        headers: crate::event::headers(msg),
        timestamp_ms: msg.timestamp().to_millis(),
    }
}

/// Write an event to the spool and settle `counters` when the write is done: spooled,
/// or discarded with the reason (full, busy, disk error).
pub fn spool_event(spool: &Spool, event: OutgoingEvent, counters: Arc<EventCounters>) {
    let ts = event.timestamp_ms.unwrap_or_else(now_ms);
    let c = counters.clone();
    let done = Box::new(move |r: Result<(), SpoolError>| match r {
        Ok(()) => c.spooled(),
        Err(e) => c.discarded(spool_reason(&e)),
    });
    if let Err(e) = spool.append(ts, event.encode(), false, done) {
        counters.discarded(spool_reason(&e));
    }
}

/// A metric reason for a spool refusal or failure.
pub fn spool_reason(e: &SpoolError) -> &'static str {
    match e {
        SpoolError::Full => "spool_full",
        SpoolError::Busy => "spool_busy",
        SpoolError::Closed => "spool_closed",
        SpoolError::Io(_) => "spool_error",
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
