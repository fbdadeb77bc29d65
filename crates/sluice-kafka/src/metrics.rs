//! Kafka-side Prometheus metrics (`sluice_kafka_*`): event outcomes per route and
//! plugin, producer queue depth and broker state from librdkafka statistics.

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use sluice_core::metric_set::{MetricSet, MetricsError};

/// The Kafka metrics.
pub struct KafkaMetrics {
    /// `sluice_kafka_events_attempted_total{route,plugin}`: events a plugin tried to send.
    pub attempted: IntCounterVec,
    /// `sluice_kafka_events_total{route,plugin,outcome,reason}`: final outcomes
    /// (`acked`, `failed`, `discarded`), with a reason for the last two.
    pub outcomes: IntCounterVec,
    /// `sluice_kafka_events_in_flight{route,plugin}`: enqueued, not yet acked or failed.
    pub in_flight: IntGaugeVec,
    /// `sluice_kafka_producer_queue_messages{cluster}` (librdkafka `msg_cnt`).
    pub queue_messages: IntGaugeVec,
    /// `sluice_kafka_producer_queue_bytes{cluster}` (librdkafka `msg_size`).
    pub queue_bytes: IntGaugeVec,
    /// `sluice_kafka_producer_queue_max_messages{cluster}` (librdkafka `msg_max`).
    pub queue_max_messages: IntGaugeVec,
    /// `sluice_kafka_producer_queue_max_bytes{cluster}` (librdkafka `msg_size_max`).
    pub queue_max_bytes: IntGaugeVec,
    /// `sluice_kafka_broker_up{cluster,broker}`: 1 when the connection is up.
    pub broker_up: IntGaugeVec,
    /// `sluice_kafka_broker_rtt_seconds_p99{cluster,broker}` as a gauge (microsecond
    /// precision from librdkafka).
    pub broker_rtt_p99: prometheus::GaugeVec,
    /// `sluice_kafka_client_errors_total{cluster,code}`: errors librdkafka reported.
    pub client_errors: IntCounterVec,
    /// `sluice_kafka_producer_replacements_total{cluster,reason}`: producers replaced
    /// after a fatal error (the reason is the fatal error's code).
    pub producer_replacements: IntCounterVec,
    /// `sluice_spool_records{cluster}`: events in the disk spool, not yet delivered.
    pub spool_records: IntGaugeVec,
    /// `sluice_spool_bytes{cluster}`: bytes of the spool on disk.
    pub spool_bytes: IntGaugeVec,
    /// `sluice_spool_oldest_record_age_seconds{cluster}`.
    pub spool_oldest_age: prometheus::GaugeVec,
    /// `sluice_spool_appended_total{cluster}`: events written to the spool.
    pub spool_appended: IntCounterVec,
    /// `sluice_spool_replayed_total{cluster}`: spooled events delivered to Kafka.
    pub spool_replayed: IntCounterVec,
    /// `sluice_spool_corrupted_tails_total{cluster}`: torn or corrupted tails cut off.
    pub spool_corrupted_tails: IntCounterVec,
    /// `sluice_spool_corrupted_bytes_total{cluster}`: bytes in those tails.
    pub spool_corrupted_bytes: IntCounterVec,
    /// `sluice_spool_write_errors_total{cluster}`: failed writes or syncs (e.g. ENOSPC).
    pub spool_write_errors: IntCounterVec,
    /// `sluice_spool_refused_total{cluster}`: appends refused (spool or buffer full).
    pub spool_refused: IntCounterVec,
    /// `sluice_spool_quarantined_total{cluster,reason}`: spooled events set aside in the
    /// quarantine file because Kafka will not take them.
    pub spool_quarantined: IntCounterVec,
}

impl KafkaMetrics {
    fn register() -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["cluster"]);
        let m = Self {
            attempted: IntCounterVec::new(
                Opts::new("sluice_kafka_events_attempted_total", "Events plugins tried to send to Kafka"),
                &["route", "plugin"],
            )?,
            outcomes: IntCounterVec::new(
                Opts::new(
                    "sluice_kafka_events_total",
                    "Final outcomes of events: acked, failed (broker or timeout) or discarded (never handed to the producer)",
                ),
                &["route", "plugin", "outcome", "reason"],
            )?,
            in_flight: gauge(
                "sluice_kafka_events_in_flight",
                "Events in the producer, not yet acknowledged or failed",
                &["route", "plugin"],
            )?,
            queue_messages: gauge("sluice_kafka_producer_queue_messages", "Messages in the producer queue", &["cluster"])?,
            queue_bytes: gauge("sluice_kafka_producer_queue_bytes", "Bytes in the producer queue", &["cluster"])?,
            queue_max_messages: gauge(
                "sluice_kafka_producer_queue_max_messages",
                "Message capacity of the producer queue",
                &["cluster"],
            )?,
            queue_max_bytes: gauge(
                "sluice_kafka_producer_queue_max_bytes",
                "Byte capacity of the producer queue",
                &["cluster"],
            )?,
            broker_up: gauge("sluice_kafka_broker_up", "1 when the broker connection is up", &["cluster", "broker"])?,
            broker_rtt_p99: prometheus::GaugeVec::new(
                Opts::new("sluice_kafka_broker_rtt_p99_seconds", "p99 broker round-trip time over the last statistics window"),
                &["cluster", "broker"],
            )?,
            client_errors: IntCounterVec::new(
                Opts::new("sluice_kafka_client_errors_total", "Errors reported by the Kafka client"),
                &["cluster", "code"],
            )?,
            producer_replacements: IntCounterVec::new(
                Opts::new(
                    "sluice_kafka_producer_replacements_total",
                    "Producers replaced after a fatal error, by the error's code",
                ),
                &["cluster", "reason"],
            )?,
            spool_records: gauge("sluice_spool_records", "Events in the disk spool, not yet delivered", &["cluster"])?,
            spool_bytes: gauge("sluice_spool_bytes", "Bytes of the disk spool", &["cluster"])?,
            spool_oldest_age: prometheus::GaugeVec::new(
                Opts::new("sluice_spool_oldest_record_age_seconds", "Age of the oldest event in the disk spool"),
                &["cluster"],
            )?,
            spool_appended: counter("sluice_spool_appended_total", "Events written to the disk spool")?,
            spool_replayed: counter("sluice_spool_replayed_total", "Spooled events delivered to Kafka")?,
            spool_corrupted_tails: counter(
                "sluice_spool_corrupted_tails_total",
                "Torn or corrupted spool tails cut off during recovery",
            )?,
            spool_corrupted_bytes: counter(
                "sluice_spool_corrupted_bytes_total",
                "Bytes in torn or corrupted spool tails",
            )?,
            spool_write_errors: counter("sluice_spool_write_errors_total", "Failed spool writes or syncs")?,
            spool_refused: counter("sluice_spool_refused_total", "Spool appends refused (spool or buffer full)")?,
            spool_quarantined: IntCounterVec::new(
                Opts::new(
                    "sluice_spool_quarantined_total",
                    "Spooled events Kafka will not take, set aside in the quarantine file",
                ),
                &["cluster", "reason"],
            )?,
        };
        let r = prometheus::default_registry();
        for c in [
            &m.spool_appended,
            &m.spool_replayed,
            &m.spool_corrupted_tails,
            &m.spool_corrupted_bytes,
            &m.spool_write_errors,
            &m.spool_refused,
        ] {
            r.register(Box::new(c.clone()))?;
        }
        r.register(Box::new(m.spool_records.clone()))?;
        r.register(Box::new(m.spool_bytes.clone()))?;
        r.register(Box::new(m.spool_oldest_age.clone()))?;
        r.register(Box::new(m.attempted.clone()))?;
        r.register(Box::new(m.outcomes.clone()))?;
        r.register(Box::new(m.in_flight.clone()))?;
        r.register(Box::new(m.queue_messages.clone()))?;
        r.register(Box::new(m.queue_bytes.clone()))?;
        r.register(Box::new(m.queue_max_messages.clone()))?;
        r.register(Box::new(m.queue_max_bytes.clone()))?;
        r.register(Box::new(m.broker_up.clone()))?;
        r.register(Box::new(m.broker_rtt_p99.clone()))?;
        r.register(Box::new(m.client_errors.clone()))?;
        r.register(Box::new(m.producer_replacements.clone()))?;
        r.register(Box::new(m.spool_quarantined.clone()))?;
        Ok(m)
    }
}

static KAFKA: MetricSet<KafkaMetrics> = MetricSet::new("kafka", KafkaMetrics::register);

/// The Kafka metrics, or `None` if registration failed (reported by [`init`]).
pub fn kafka() -> Option<&'static KafkaMetrics> {
    KAFKA.get()
}

/// Register now; the binary refuses to start if this fails.
pub fn init() -> Result<(), MetricsError> {
    KAFKA.init()
}
