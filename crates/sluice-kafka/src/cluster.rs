//! One Kafka cluster: its producers (shared by every route and plugin that names the
//! cluster, see [`crate::producers`]), its optional disk spool, the non-blocking enqueue
//! plugins call (the shutdown flush is in [`crate::shutdown`]).
//!
//! Each producer queue is bounded in bytes and messages from the config, so memory is
//! bounded: when a queue is full an event is discarded and counted (or spooled, for
//! at-least-once routes), never waited for.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use sluice_core::config::{ClusterConfig, SpoolSync};
use sluice_spool::{Spool, SpoolOptions, SyncPolicy};
use tokio::sync::oneshot;

use crate::accounting::EventCounters;
use crate::context::{ClusterHealth, DeliveryReport, Ticket};
use crate::dev_broker::{forward, DevBroker};
use crate::error::{DevBrokerError, Refused, StartError};
use crate::event::{reason, OutgoingEvent};
pub use crate::producers::{producer_config, Profile};
use crate::producers::{Producers, Sender};
use crate::profile_use::{ProfileUse, ProfileUses};
pub use crate::shutdown::FlushOutcome;

/// A configured cluster and, once started, its producers and spool.
pub struct Cluster {
    name: String,
    config: ClusterConfig,
    pub(crate) uses: ProfileUses,
    pub(crate) producers: OnceLock<Producers>,
    pub(crate) spool: OnceLock<Arc<Spool>>,
    bootstrap: OnceLock<String>,
    pub(crate) health: Arc<ClusterHealth>,
    dev: Mutex<Option<DevBroker>>,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub(crate) closed: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// What the spool's instance directories are marked with: events are only ever
    /// replayed into the cluster (name and bootstrap servers) they were accepted for.
    fn spool_identity(&self) -> String {
        let mut brokers = self.config.brokers.clone();
        brokers.sort();
        let brokers = if self.config.dev_broker.is_some() {
            "dev_broker".to_string()
        } else {
            brokers.join(",")
        };
        format!("cluster {}\nbrokers {brokers}", self.name)
    }

    /// A cluster that is not started yet (no connections, no threads).
    pub fn new(name: &str, config: ClusterConfig) -> Self {
        Self {
            name: name.to_string(),
            config,
            uses: ProfileUses::default(),
            producers: OnceLock::new(),
            spool: OnceLock::new(),
            bootstrap: OnceLock::new(),
            health: Arc::default(),
            dev: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
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

    /// The disk spool, once started (if configured).
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.get()
    }

    /// The cluster's own profile (its `delivery_timeout` and `linger`).
    pub fn default_profile(&self) -> Profile {
        Profile {
            delivery_timeout: self.config.delivery_timeout.0,
            linger: self.config.linger.0,
        }
    }

    /// Make sure a producer with `profile` exists (now if started, else at start) while
    /// the returned use is held (it is retired after the last one goes).
    #[must_use = "the profile's producer is retired once no use is held"]
    pub fn register_profile(&self, profile: Profile) -> ProfileUse {
        let held = self.uses.take(profile);
        if let Some(p) = self.producers.get() {
            if let Err(e) = p.get(Some(profile)) {
                log::error!("{e}");
            }
        }
        held
    }

    /// Producers serving now (the default one and one per profile in use).
    pub fn producer_count(&self) -> usize {
        self.producers.get().map_or(0, Producers::serving)
    }

    /// Events handed to this cluster's producers and not yet acknowledged or failed.
    pub fn in_flight(&self) -> u64 {
        self.health.in_flight.load(Ordering::Acquire)
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

    /// A librdkafka consumer configuration for this cluster (bootstrap and the
    /// pass-through properties, without producer-only ones), once started.
    pub fn consumer_config(&self) -> Option<ClientConfig> {
        const PRODUCER_ONLY: &[&str] = &[
            "compression.type",
            "compression.codec",
            "compression.level",
            "batch.num.messages",
            "batch.size",
            "enable.idempotence",
            "enable.gapless.guarantee",
            "retries",
            "message.send.max.retries",
            "sticky.partitioning.linger.ms",
            "partitioner",
        ];
        let bootstrap = self.bootstrap()?;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("client.id", "sluice");
        for (k, v) in self.config.security_properties() {
            cfg.set(k, v);
        }
        for (k, v) in &self.config.properties {
            if !PRODUCER_ONLY.contains(&k.as_str()) && !k.starts_with("queue.buffering") {
                cfg.set(k, v.to_property());
            }
        }
        Some(cfg)
    }

    /// Start the dev broker (if configured), the spool and its replayer (if configured)
    /// and the producers. Call inside a tokio runtime.
    pub async fn start(self: &Arc<Self>) -> Result<(), StartError> {
        let bootstrap = match &self.config.dev_broker {
            None => self.config.brokers.join(","),
            Some(dev) => {
                let dev_error = |source| StartError::DevBroker {
                    cluster: self.name.clone(),
                    source: Box::new(source),
                };
                let broker = DevBroker::start(&dev.topics, dev.partitions).map_err(dev_error)?;
                let mut addr = broker.bootstrap().to_string();
                if let Some(listen) = &dev.listen {
                    let task = forward(listen, addr.clone()).await.map_err(|source| {
                        dev_error(DevBrokerError::Listen {
                            listen: listen.clone(),
                            source,
                        })
                    })?;
                    lock(&self.tasks).push(task);
                    addr = listen.clone();
                }
                lock(&self.dev).replace(broker);
                addr
            }
        };
        let spool = match &self.config.spool {
            None => None,
            Some(sp) => {
                let opts = SpoolOptions {
                    dir: PathBuf::from(&sp.dir),
                    max_bytes: sp.max_bytes.0,
                    buffer_bytes: sp.buffer_bytes.0,
                    segment_bytes: (sp.max_bytes.0 / 16).clamp(64 << 10, 64 << 20),
                    sync: match sp.sync {
                        SpoolSync::Batch => SyncPolicy::Batch,
                        SpoolSync::Interval => SyncPolicy::Interval(sp.sync_interval.0),
                    },
                    identity: self.spool_identity(),
                };
                let s = Spool::open(opts).map_err(|source| StartError::Spool {
                    cluster: self.name.clone(),
                    dir: sp.dir.clone(),
                    source,
                })?;
                Some(Arc::new(s))
            }
        };
        let producers = Producers::start(
            &self.name,
            self.client_config(&bootstrap),
            self.health.clone(),
            spool.clone(),
            self.default_profile(),
        )?;
        for p in self.uses.in_use() {
            let _ = producers.get(Some(p))?;
        }
        let _ = self.producers.set(producers);
        let _ = self.bootstrap.set(bootstrap);
        let task = tokio::spawn(crate::watchdog::run(self.clone()));
        lock(&self.tasks).push(task);
        if let Some(s) = spool {
            let _ = self.spool.set(s);
            let task = tokio::spawn(crate::replay::run(self.clone()));
            lock(&self.tasks).push(task);
        }
        Ok(())
    }

    /// Enqueue an event without waiting. The outcome is counted in `counters`: acked or
    /// failed when the delivery report arrives, discarded at once if the event cannot be
    /// queued (queue full, not started, shutting down, ...).
    pub fn send(&self, event: &OutgoingEvent, counters: &Arc<EventCounters>) {
        let _ = self.enqueue(event, Some(counters), None, None, false);
    }

    /// Enqueue an event and get a receiver for its delivery report (for routes that
    /// answer only after the broker acknowledged). With `profile`, the event goes through
    /// the producer of that profile. `Err` carries the discard reason (`queue_full`,
    /// `not_started`, ...).
    pub fn send_acked(
        &self,
        event: &OutgoingEvent,
        counters: &Arc<EventCounters>,
        profile: Option<Profile>,
    ) -> Result<oneshot::Receiver<DeliveryReport>, Refused> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(event, Some(counters), Some(tx), profile, false)
            .map(|()| rx)
    }

    /// True once the cluster was shut down (at exit, or replaced by a reload and flushed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The producer for `profile`, unless closed or not started (the reason).
    pub(crate) fn producer(&self, profile: Option<Profile>) -> Result<Sender, &'static str> {
        if self.closed.load(Ordering::Acquire) {
            return Err("shutting_down");
        }
        let producers = self.producers.get().ok_or("not_started")?;
        producers.get(profile).map_err(|_| "no_producer")
    }

    /// Hand an event to a producer. Counted in `counters` (when given). With
    /// `spool_on_failure`, a failed delivery goes to the spool and a refusal is returned
    /// without being counted (the caller spools the event).
    pub(crate) fn enqueue(
        &self,
        event: &OutgoingEvent,
        counters: Option<&Arc<EventCounters>>,
        reply: Option<oneshot::Sender<DeliveryReport>>,
        profile: Option<Profile>,
        spool_on_failure: bool,
    ) -> Result<(), Refused> {
        if let Some(c) = counters {
            c.attempted();
        }
        let refused = |why: &str| {
            if let (Some(c), false) = (counters, spool_on_failure) {
                c.discarded(why);
            }
            Refused {
                reason: why.to_string(),
            }
        };
        let producer = self.producer(profile).map_err(refused)?;
        let mut headers = OwnedHeaders::new_with_capacity(event.headers.len());
        for (k, v) in &event.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: Some(v.as_slice()),
            });
        }
        let ticket = Box::new(Ticket {
            counters: counters.cloned(),
            reply,
            spool_on_failure,
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
                Err(refused(&reason(&e)))
            }
        }
    }
}
