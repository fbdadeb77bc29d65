//! One Server-Sent Events stream: a Kafka consumer of its own (partitions assigned and
//! seeked, no consumer group), the resume positions, and the write loop with keep-alives,
//! a slow-client cut-off and a clean end on shutdown. Every 5 s (at a keep-alive tick) the
//! stream looks for partitions added to its topic and reads them from their start.

use sluice_core::config::error::InvalidValue;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::plugin::ResponseWriter;

use crate::frame;
use crate::token::{self, Positions};

/// Where a stream without a resume token starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// New records only.
    Latest,
    /// From the oldest record kept.
    Earliest,
    /// From the first record at or after this time.
    Time(SystemTime),
}

impl Start {
    /// Parse `latest`, `earliest` or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "latest" => Ok(Start::Latest),
            "earliest" => Ok(Start::Earliest),
            t => humantime::parse_rfc3339_weak(t)
                .map(Start::Time)
                .map_err(|_| {
                    format!("{t:?} is not `latest`, `earliest` or an RFC 3339 time").into()
                }),
        }
    }
}

/// What selects the records of a stream (templates already rendered for the request).
pub struct Filter {
    /// Record key must equal this.
    pub key: Option<Vec<u8>>,
    /// Record header (name, value) must be present.
    pub header: Option<(String, Vec<u8>)>,
}

impl Filter {
    fn matches<M: Message>(&self, m: &M) -> bool {
        if let Some(k) = &self.key {
            if m.key() != Some(k.as_slice()) {
                return false;
            }
        }
        if let Some((name, value)) = &self.header {
            let found = m.headers().is_some_and(|h| {
                h.iter()
                    .any(|x| x.key == name && x.value == Some(value.as_slice()))
            });
            if !found {
                return false;
            }
        }
        true
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client went away (a write failed).
    ClientClosed,
    /// The client did not take an event in time.
    SlowClient,
    /// Sluice is shutting down (the stream was ended cleanly; clients resume).
    Shutdown,
    /// A reload replaced the stream's cluster: ended cleanly after the grace period so
    /// the client reconnects to the new configuration.
    Reload,
    /// Kafka failed.
    KafkaError,
}

impl End {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::SlowClient => "slow_client",
            End::Shutdown => "shutdown",
            End::Reload => "reload",
            End::KafkaError => "kafka_error",
        }
    }
}

/// Create the stream's consumer and position it; the positions and the consumer.
pub async fn open(
    mut config: ClientConfig,
    topic: &str,
    start: Start,
    resume: Option<Positions>,
) -> Result<(Arc<StreamConsumer>, Positions), String> {
    config
        .set("group.id", "sluice-sse")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Bound the prefetch per stream: memory stays small whatever the client does.
        .set("queued.max.messages.kbytes", "1024")
        .set("fetch.wait.max.ms", "100");
    let consumer: Arc<StreamConsumer> = Arc::new(
        config
            .create()
            .map_err(|e| format!("cannot create a consumer: {e}"))?,
    );
    let c = consumer.clone();
    let topic = topic.to_string();
    let positions = tokio::task::spawn_blocking(move || resolve(&c, &topic, start, resume))
        .await
        .map_err(|e| e.to_string())??;
    Ok((consumer, positions))
}

/// Resolve every partition's start offset and assign them.
fn resolve(
    c: &StreamConsumer,
    topic: &str,
    start: Start,
    resume: Option<Positions>,
) -> Result<Positions, String> {
    let t = Duration::from_secs(5);
    let md = c
        .fetch_metadata(Some(topic), t)
        .map_err(|e| format!("metadata of `{topic}`: {e}"))?;
    let parts: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        return Err(format!("topic `{topic}` has no partitions"));
    }
    let has_token = resume.is_some();
    let resume = resume.unwrap_or_default();
    let mut by_time = std::collections::HashMap::new();
    if let Start::Time(at) = start {
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut tpl = TopicPartitionList::new();
        for p in &parts {
            tpl.add_partition_offset(topic, *p, Offset::Offset(ms))
                .map_err(|e| e.to_string())?;
        }
        let found = c.offsets_for_times(tpl, t).map_err(|e| e.to_string())?;
        for e in found.elements() {
            if let Offset::Offset(o) = e.offset() {
                by_time.insert(e.partition(), o);
            }
        }
    }
    let mut positions = Positions::new();
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        let offset = match resume.get(&p) {
            Some(o) => *o,
            None => {
                let (low, high) = c.fetch_watermarks(topic, p, t).map_err(|e| e.to_string())?;
                match start {
                    // A partition the client's id does not name was added after the id
                    // was issued: all of it is newer than what the client has seen.
                    _ if has_token => low,
                    Start::Latest => high,
                    Start::Earliest => low,
                    Start::Time(_) => by_time.get(&p).copied().unwrap_or(high),
                }
            }
        };
        positions.insert(p, offset);
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))
            .map_err(|e| e.to_string())?;
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    Ok(positions)
}

/// Partitions of `topic` not in `known` (added since the stream started): assigned at
/// their first offset, and returned with it.
fn new_partitions(
    c: &StreamConsumer,
    topic: &str,
    known: &[i32],
) -> Result<Vec<(i32, i64)>, String> {
    let t = Duration::from_secs(5);
    let md = c
        .fetch_metadata(Some(topic), t)
        .map_err(|e| format!("metadata of `{topic}`: {e}"))?;
    let mut added = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        if known.contains(&p.id()) {
            continue;
        }
        let (low, _) = c
            .fetch_watermarks(topic, p.id(), t)
            .map_err(|e| e.to_string())?;
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
            .map_err(|e| e.to_string())?;
        added.push((p.id(), low));
    }
    if !added.is_empty() {
        c.incremental_assign(&tpl).map_err(|e| e.to_string())?;
    }
    Ok(added)
}

/// How often a stream looks for partitions added to its topic.
const REFRESH: Duration = Duration::from_secs(5);

/// What the loop needs besides the response writer.
pub struct Run<'a> {
    /// The consumer.
    pub consumer: &'a Arc<StreamConsumer>,
    /// The topic.
    pub topic: &'a str,
    /// Positions so far (updated as records go by).
    pub positions: Positions,
    /// Record selection.
    pub filter: Filter,
    /// Header naming the event type.
    pub event_header: Option<&'a str>,
    /// Default event type.
    pub default_event: &'a str,
    /// Keep-alive interval.
    pub keepalive: Duration,
    /// Slow-client cut-off.
    pub slow: Duration,
    /// Called per event sent.
    pub on_event: &'a (dyn Fn() + Sync),
    /// Signs the event ids.
    pub signer: &'a token::Signer,
    /// True once the stream's cluster was retired (replaced by a reload).
    pub retired: &'a (dyn Fn() -> bool + Sync),
}

/// Events written together at most (bytes, roughly).
const BATCH_BYTES: usize = 64 * 1024;

impl Run<'_> {
    /// End the stream cleanly when Sluice shuts down or a reload retired its cluster
    /// (checked on keep-alive ticks and after writes, so busy streams end too).
    async fn ending(&self, out: &mut ResponseWriter<'_>) -> Option<End> {
        let (end, bye) = if out.shutting_down() {
            (End::Shutdown, frame::comment("shutting down, reconnect"))
        } else if (self.retired)() {
            let mut bye = frame::retry(100);
            bye.extend(frame::comment("configuration reloaded, reconnect"));
            (End::Reload, bye)
        } else {
            return None;
        };
        let _ = write(out, bye, self.slow).await;
        let _ = out.finish().await;
        Some(end)
    }

    /// Every [`REFRESH`]: assign partitions added to the topic since the stream started.
    async fn refresh(&mut self, last: &mut std::time::Instant) {
        if last.elapsed() < REFRESH {
            return;
        }
        *last = std::time::Instant::now();
        let (c, topic) = (self.consumer.clone(), self.topic.to_string());
        let known: Vec<i32> = self.positions.keys().copied().collect();
        match tokio::task::spawn_blocking(move || new_partitions(&c, &topic, &known)).await {
            Ok(Ok(added)) => self.positions.extend(added),
            Ok(Err(e)) => log::debug!("sse: looking for new partitions: {e}"),
            Err(e) => log::debug!("sse: looking for new partitions: {e}"),
        }
    }

    /// Advance the positions past `m` and append its event to `out` when it passes the
    /// filter; whether it did.
    fn add(&mut self, m: &BorrowedMessage<'_>, out: &mut Vec<u8>) -> bool {
        self.positions.insert(m.partition(), m.offset() + 1);
        if !self.filter.matches(m) {
            return false;
        }
        let event = self
            .event_header
            .and_then(|h| {
                m.headers()
                    .and_then(|hs| hs.iter().find(|x| x.key == h).and_then(|x| x.value))
            })
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or(self.default_event);
        out.extend(frame::event(
            &self.signer.encode(&self.positions),
            Some(event),
            m.payload().unwrap_or_default(),
        ));
        true
    }
}

async fn write(out: &mut ResponseWriter<'_>, bytes: Vec<u8>, slow: Duration) -> Result<(), End> {
    match tokio::time::timeout(slow, out.write(Bytes::from(bytes))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::ClientClosed),
        Err(_) => Err(End::SlowClient),
    }
}

/// Stream until the client goes, is too slow, Kafka fails or Sluice shuts down.
pub async fn run(out: &mut ResponseWriter<'_>, mut r: Run<'_>) -> End {
    let mut tick = tokio::time::interval(r.keepalive);
    tick.tick().await;
    let mut refreshed = std::time::Instant::now();
    loop {
        tokio::select! {
            m = r.consumer.recv() => {
                // This record and those already fetched behind it go out in one write.
                let mut batch = Vec::new();
                let mut events = 0usize;
                let mut next = Some(m);
                while let Some(m) = next.take() {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            log::warn!("sse: consuming failed: {e}");
                            return End::KafkaError;
                        }
                    };
                    if r.add(&m, &mut batch) {
                        events += 1;
                    }
                    if batch.len() < BATCH_BYTES {
                        // A zero timeout polls once: only records already fetched.
                        next = tokio::time::timeout(Duration::ZERO, r.consumer.recv()).await.ok();
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                if let Err(end) = write(out, batch, r.slow).await {
                    return end;
                }
                for _ in 0..events {
                    (r.on_event)();
                }
                tick.reset();
                r.refresh(&mut refreshed).await;
                if let Some(end) = r.ending(out).await {
                    return end;
                }
            }
            _ = tick.tick() => {
                if let Some(end) = r.ending(out).await {
                    return end;
                }
                r.refresh(&mut refreshed).await;
                if let Err(end) = write(out, frame::comment("keep-alive"), r.slow).await {
                    return end;
                }
            }
        }
    }
}
