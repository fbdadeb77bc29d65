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

use crate::accounting::EventCounters;
use crate::event::reason;
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
    /// The counters to settle.
    pub counters: Arc<EventCounters>,
    /// A request waiting for the report, if any.
    pub reply: Option<oneshot::Sender<DeliveryReport>>,
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
}

pub(crate) struct SluiceContext {
    pub cluster: String,
    /// This producer's slot in `health.stats`.
    pub slot: usize,
    pub health: Arc<ClusterHealth>,
}

impl ClusterHealth {
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
        let report = match result {
            Ok(msg) => {
                ticket.counters.acked();
                Ok(Acked {
                    partition: msg.partition(),
                    offset: msg.offset(),
                })
            }
            Err((e, _)) => {
                ticket.counters.failed(&reason(e));
                Err(e.clone())
            }
        };
        if let Some(tx) = ticket.reply {
            // The waiting request may have given up already; that is fine.
            let _ = tx.send(report);
        }
    }
}
