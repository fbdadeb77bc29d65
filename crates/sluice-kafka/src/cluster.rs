//! One Kafka cluster: its producers (shared by every route and plugin that names the
//! cluster), the non-blocking enqueue plugins call, and the shutdown flush.
//!
//! There is one producer with the cluster's `delivery_timeout` and `linger`, plus one per
//! other [`Profile`] that routes asked for before start: a route that answers only after
//! the broker acknowledged wants librdkafka to give up when it gives up, and not to
//! linger; librdkafka's `message.timeout.ms` and `linger.ms` are per producer, not per
//! message.
//!
//! Each producer queue is bounded in bytes and messages from the config, so memory is
//! bounded: when a queue is full an event is discarded and counted, never waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use sluice_core::config::{Acks, ClusterConfig};
use tokio::sync::oneshot;

use crate::accounting::EventCounters;
use crate::context::{ClusterHealth, DeliveryReport, SluiceContext, Ticket};
use crate::dev_broker::{forward, DevBroker};
use crate::event::{reason, OutgoingEvent};

type Sender = ThreadedProducer<SluiceContext>;

/// The per-producer settings a route may need different from the cluster's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Profile {
    /// `message.timeout.ms`: when an undelivered event counts as failed.
    pub delivery_timeout: Duration,
    /// `linger.ms`: how long to wait to fill a batch.
    pub linger: Duration,
}

/// The producers of a started cluster.
struct Producers {
    default: Sender,
    by_profile: BTreeMap<Profile, Sender>,
}

impl Producers {
    fn all(&self) -> impl Iterator<Item = &Sender> {
        std::iter::once(&self.default).chain(self.by_profile.values())
    }
}

/// A configured cluster and, once started, its producers.
pub struct Cluster {
    name: String,
    config: ClusterConfig,
    profiles: Mutex<BTreeSet<Profile>>,
    producers: OnceLock<Producers>,
    bootstrap: OnceLock<String>,
    health: Arc<ClusterHealth>,
    dev: Mutex<Option<DevBroker>>,
    forwarder: Mutex<Option<tokio::task::JoinHandle<()>>>,
    closed: AtomicBool,
}

impl Cluster {
    /// A cluster that is not started yet (no connections, no threads).
    pub fn new(name: &str, config: ClusterConfig) -> Self {
        Self {
            name: name.to_string(),
            config,
            profiles: Mutex::new(BTreeSet::new()),
            producers: OnceLock::new(),
            bootstrap: OnceLock::new(),
            health: Arc::default(),
            dev: Mutex::new(None),
            forwarder: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The cluster's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The bootstrap address in use, once started.
    pub fn bootstrap(&self) -> Option<&str> {
        self.bootstrap.get().map(String::as_str)
    }

    /// True once the producers exist.
    pub fn is_started(&self) -> bool {
        self.producers.get().is_some()
    }

    /// The cluster's own profile (its `delivery_timeout` and `linger`).
    pub fn default_profile(&self) -> Profile {
        Profile {
            delivery_timeout: self.config.delivery_timeout.0,
            linger: self.config.linger.0,
        }
    }

    /// Ask for a producer with `profile` (call before [`Self::start`]; the default
    /// profile needs no registration).
    pub fn register_profile(&self, profile: Profile) {
        if profile != self.default_profile() {
            lock(&self.profiles).insert(profile);
        }
    }

    /// Brokers whose connection was up at the last statistics report.
    pub fn brokers_up(&self) -> usize {
        self.health.brokers_up.load(Ordering::Relaxed)
    }

    /// The librdkafka configuration for `bootstrap`: typed fields, then the
    /// pass-through `properties`.
    pub fn client_config(&self, bootstrap: &str) -> ClientConfig {
        producer_config(&self.config, bootstrap)
    }

    fn create_producer(
        &self,
        bootstrap: &str,
        slot: usize,
        profile: Option<Profile>,
    ) -> Result<Sender, String> {
        let mut cfg = self.client_config(bootstrap);
        if let Some(p) = profile {
            cfg.set(
                "message.timeout.ms",
                p.delivery_timeout.as_millis().max(1).to_string(),
            )
            .set("linger.ms", p.linger.as_millis().to_string());
        }
        let context = SluiceContext {
            cluster: self.name.clone(),
            slot,
            health: self.health.clone(),
        };
        cfg.create_with_context(context).map_err(|e| {
            format!(
                "kafka cluster `{}`: cannot create a producer: {e}",
                self.name
            )
        })
    }

    /// Start the dev broker (if configured) and the producer.
    pub async fn start(&self) -> Result<(), String> {
        let bootstrap = match &self.config.dev_broker {
            None => self.config.brokers.join(","),
            Some(dev) => {
                let broker = DevBroker::start()?;
                let mut addr = broker.bootstrap().to_string();
                if let Some(listen) = &dev.listen {
                    let task = forward(listen, addr.clone())
                        .await
                        .map_err(|e| format!("dev broker: cannot listen on {listen}: {e}"))?;
                    lock(&self.forwarder).replace(task);
                    addr = listen.clone();
                }
                lock(&self.dev).replace(broker);
                addr
            }
        };
        let default = self.create_producer(&bootstrap, 0, None)?;
        let mut by_profile = BTreeMap::new();
        let profiles = lock(&self.profiles).clone();
        for (i, p) in profiles.into_iter().enumerate() {
            by_profile.insert(p, self.create_producer(&bootstrap, i + 1, Some(p))?);
        }
        let _ = self.producers.set(Producers {
            default,
            by_profile,
        });
        let _ = self.bootstrap.set(bootstrap);
        Ok(())
    }

    /// Enqueue an event without waiting. The outcome is counted in `counters`: acked or
    /// failed when the delivery report arrives, discarded at once if the event cannot be
    /// queued (queue full, not started, shutting down, ...).
    pub fn send(&self, event: &OutgoingEvent, counters: &Arc<EventCounters>) {
        let _ = self.enqueue(event, counters, None, None);
    }

    /// Enqueue an event and get a receiver for its delivery report (for routes that
    /// answer only after the broker acknowledged). With `profile`, the event goes through
    /// the producer registered for that profile. `Err` carries the discard
    /// reason (`queue_full`, `not_started`, ...).
    pub fn send_acked(
        &self,
        event: &OutgoingEvent,
        counters: &Arc<EventCounters>,
        profile: Option<Profile>,
    ) -> Result<oneshot::Receiver<DeliveryReport>, String> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(event, counters, Some(tx), profile)
            .map(|()| rx)
    }

    fn enqueue(
        &self,
        event: &OutgoingEvent,
        counters: &Arc<EventCounters>,
        reply: Option<oneshot::Sender<DeliveryReport>>,
        profile: Option<Profile>,
    ) -> Result<(), String> {
        counters.attempted();
        if self.closed.load(Ordering::Acquire) {
            counters.discarded("shutting_down");
            return Err("shutting_down".into());
        }
        let Some(producers) = self.producers.get() else {
            counters.discarded("not_started");
            return Err("not_started".into());
        };
        let producer = profile
            .and_then(|p| producers.by_profile.get(&p))
            .unwrap_or(&producers.default);
        let mut headers = OwnedHeaders::new_with_capacity(event.headers.len());
        for (k, v) in &event.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: Some(v.as_slice()),
            });
        }
        let ticket = Box::new(Ticket {
            counters: counters.clone(),
            reply,
        });
        let mut record: BaseRecord<'_, [u8], [u8], Box<Ticket>> =
            BaseRecord::with_opaque_to(&event.topic, ticket)
                .payload(event.value.as_slice())
                .headers(headers);
        if let Some(k) = &event.key {
            record = record.key(k.as_slice());
        }
        if let Some(ts) = event.timestamp_ms {
            record = record.timestamp(ts);
        }
        // Counted before the send: the delivery report may arrive before `send` returns.
        self.health.in_flight.fetch_add(1, Ordering::AcqRel);
        match producer.send(record) {
            Ok(()) => Ok(()),
            Err((e, _record)) => {
                self.health.in_flight.fetch_sub(1, Ordering::AcqRel);
                let why = reason(&e);
                counters.discarded(&why);
                Err(why)
            }
        }
    }

    /// Stop accepting events, wait up to the cluster's `flush_timeout` for queued events,
    /// then purge what is left (each purged event is counted as failed).
    pub fn shutdown(&self) -> FlushOutcome {
        self.closed.store(true, Ordering::Release);
        let Some(producers) = self.producers.get() else {
            return FlushOutcome::default();
        };
        let queued = || self.health.in_flight.load(Ordering::Acquire);
        let before = queued();
        let deadline = std::time::Instant::now() + self.config.flush_timeout.0;
        let flushed = producers.all().all(|p| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            p.flush(left).is_ok()
        });
        let outcome = if flushed {
            FlushOutcome {
                queued: before,
                purged: 0,
            }
        } else {
            let left = queued();
            log::warn!(
                "kafka cluster `{}`: {left} events still queued after {}; purging them (counted as failed)",
                self.name,
                humantime_secs(self.config.flush_timeout.0)
            );
            for p in producers.all() {
                p.purge(PurgeConfig::default().queue().inflight());
            }
            // Serve the purge reports so every event is counted before exit.
            for p in producers.all() {
                let _ = p.flush(Duration::from_secs(2));
            }
            FlushOutcome {
                queued: before,
                purged: left,
            }
        };
        if let Some(f) = lock(&self.forwarder).take() {
            f.abort();
        }
        outcome
    }
}

/// What a shutdown flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Events queued when the flush started.
    pub queued: u64,
    /// Events purged after the timeout.
    pub purged: u64,
}

fn humantime_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The librdkafka producer properties for a cluster config.
pub fn producer_config(c: &ClusterConfig, bootstrap: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "sluice")
        .set("statistics.interval.ms", "1000")
        // A gateway answers requests while Kafka recovers: reconnect within ~2 s instead
        // of librdkafka's 10 s backoff ceiling (overridable in `properties`).
        .set("reconnect.backoff.max.ms", "2000")
        .set(
            "queue.buffering.max.kbytes",
            (c.queue_max_bytes.0 / 1024).max(1).to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            c.queue_max_messages.to_string(),
        )
        .set(
            "message.timeout.ms",
            c.delivery_timeout.0.as_millis().to_string(),
        )
        .set("linger.ms", c.linger.0.as_millis().to_string());
    match c.acks {
        Acks::All => {
            cfg.set("acks", "all").set("enable.idempotence", "true");
        }
        Acks::Leader => {
            cfg.set("acks", "1");
        }
        Acks::None => {
            cfg.set("acks", "0");
        }
    }
    for (k, v) in &c.properties {
        cfg.set(k, v.to_property());
    }
    cfg
}
