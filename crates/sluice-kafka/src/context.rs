//! The librdkafka client context of a cluster's producer: delivery reports settle each
//! event's accounting (and wake a waiting request, for acknowledged modes); statistics
//! become the queue and broker gauges; client errors are counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Shared state the context updates for readiness checks.
#[derive(Default, Debug)]
pub struct ClusterHealth {
    /// Brokers with an UP connection in the last statistics report.
    pub brokers_up: AtomicUsize,
    /// Whether a statistics report arrived at all.
    pub reported: std::sync::atomic::AtomicBool,
    /// Events handed to the producer whose delivery report has not arrived yet.
    pub in_flight: std::sync::atomic::AtomicU64,
}

pub(crate) struct SluiceContext {
    pub cluster: String,
    pub health: Arc<ClusterHealth>,
}

impl ClientContext for SluiceContext {
    fn stats(&self, s: Statistics) {
        let Some(m) = kafka() else { return };
        let c = self.cluster.as_str();
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.queue_messages.with_label_values(&[c]).set(g(s.msg_cnt));
        m.queue_bytes.with_label_values(&[c]).set(g(s.msg_size));
        m.queue_max_messages
            .with_label_values(&[c])
            .set(g(s.msg_max));
        m.queue_max_bytes
            .with_label_values(&[c])
            .set(g(s.msg_size_max));
        let mut up = 0;
        for b in s.brokers.values().filter(|b| b.nodeid >= 0) {
            let is_up = b.state == "UP";
            up += usize::from(is_up);
            let name = b.nodename.as_str();
            m.broker_up
                .with_label_values(&[c, name])
                .set(i64::from(is_up));
            if let Some(rtt) = &b.rtt {
                m.broker_rtt_p99
                    .with_label_values(&[c, name])
                    .set(rtt.p99 as f64 / 1e6);
            }
        }
        self.health.brokers_up.store(up, Ordering::Relaxed);
        self.health.reported.store(true, Ordering::Relaxed);
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
