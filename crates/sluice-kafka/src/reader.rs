//! A topic reader without a consumer group: a consumer of its own per client stream
//! (kafka-sse, kafka-websocket), its partitions assigned and seeked to where the client
//! starts (`latest`, `earliest`, a time, or the signed positions of a resume token),
//! with a bounded prefetch; and the filter that selects a stream's records.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::config::error::InvalidValue;

use crate::error::ReaderError;
use crate::position::Positions;

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
    /// True when `m` is selected.
    pub fn matches<M: Message>(&self, m: &M) -> bool {
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

/// Create the stream's consumer and position it; the positions and the consumer.
pub async fn open(
    mut config: ClientConfig,
    client: &str,
    topic: &str,
    start: Start,
    resume: Option<Positions>,
) -> Result<(Arc<StreamConsumer>, Positions), ReaderError> {
    config
        .set("group.id", client)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Bound the prefetch per stream: memory stays small whatever the client does.
        .set("queued.max.messages.kbytes", "1024")
        .set("fetch.wait.max.ms", "100")
        // When the bounded prefetch queue is full, librdkafka waits this long before the
        // next fetch (default 1 s): a stream faster than one queue per second would stall.
        .set("fetch.queue.backoff.ms", "10");
    let consumer: Arc<StreamConsumer> = Arc::new(config.create().map_err(ReaderError::Consumer)?);
    let c = consumer.clone();
    let topic = topic.to_string();
    let positions = tokio::task::spawn_blocking(move || resolve(&c, &topic, start, resume))
        .await
        .map_err(|e| ReaderError::Task(e.to_string()))??;
    Ok((consumer, positions))
}

/// Resolve every partition's start offset and assign them.
fn resolve(
    c: &StreamConsumer,
    topic: &str,
    start: Start,
    resume: Option<Positions>,
) -> Result<Positions, ReaderError> {
    let t = Duration::from_secs(5);
    let md = c
        .fetch_metadata(Some(topic), t)
        .map_err(|source| ReaderError::Metadata {
            topic: topic.to_string(),
            source,
        })?;
    let parts: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        return Err(ReaderError::NoPartitions(topic.to_string()));
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
            tpl.add_partition_offset(topic, *p, Offset::Offset(ms))?;
        }
        let found = c.offsets_for_times(tpl, t)?;
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
                let (low, high) = c.fetch_watermarks(topic, p, t)?;
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
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))?;
    }
    c.assign(&tpl)?;
    Ok(positions)
}

/// Partitions of `topic` not in `known` (added since the stream started): assigned at
/// their first offset, and returned with it.
pub fn new_partitions(
    c: &StreamConsumer,
    topic: &str,
    known: &[i32],
) -> Result<Vec<(i32, i64)>, ReaderError> {
    let t = Duration::from_secs(5);
    let md = c
        .fetch_metadata(Some(topic), t)
        .map_err(|source| ReaderError::Metadata {
            topic: topic.to_string(),
            source,
        })?;
    let mut added = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        if known.contains(&p.id()) {
            continue;
        }
        let (low, _) = c.fetch_watermarks(topic, p.id(), t)?;
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
        added.push((p.id(), low));
    }
    if !added.is_empty() {
        c.incremental_assign(&tpl)?;
    }
    Ok(added)
}

/// [`new_partitions`] off the async workers (its metadata and watermark requests block):
/// the partitions of `topic` not in `known`, now assigned from their first offset.
pub async fn added_partitions(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    known: Vec<i32>,
) -> Result<Vec<(i32, i64)>, ReaderError> {
    let (c, t) = (consumer.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || new_partitions(&c, &t, &known))
        .await
        .map_err(|e| ReaderError::Task(e.to_string()))?
}

/// The consumer errors of a client stream in a row: a broker restarting gives a few and
/// the stream goes on (librdkafka reconnects and resumes where it was); errors that keep
/// coming for [`ErrorRun::GIVE_UP`] with no record between them (a topic deleted,
/// access denied, brokers gone for good) end the stream, so it does not hold its slot
/// forever. A run ends with a record, or after [`ErrorRun::QUIET`] without an error
/// (longer than librdkafka's 30 s between two reports of the same broker error).
/// A fatal error ends a stream at once ([`ErrorRun::ends`]).
#[derive(Debug, Default)]
pub struct ErrorRun {
    first: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
}

impl ErrorRun {
    /// How long errors may keep coming before the stream gives up.
    pub const GIVE_UP: Duration = Duration::from_secs(60);
    /// A pause in the errors this long ends the run.
    pub const QUIET: Duration = Duration::from_secs(45);

    /// An error at `now`: true when the stream should give up.
    pub fn error(&mut self, now: std::time::Instant) -> bool {
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) > Self::QUIET)
        {
            self.first = None;
        }
        let first = *self.first.get_or_insert(now);
        self.last = Some(now);
        now.saturating_duration_since(first) >= Self::GIVE_UP
    }

    /// Whether consumer error `e` ends the stream: it is fatal (the consumer can no
    /// longer be used), or errors kept coming for [`Self::GIVE_UP`].
    pub fn ends(&mut self, e: &rdkafka::error::KafkaError) -> bool {
        is_fatal(e) || self.error(std::time::Instant::now())
    }

    /// A record arrived: the run is over.
    pub fn record(&mut self) {
        self.first = None;
        self.last = None;
    }
}

/// Whether a consumer error is fatal (the consumer can no longer be used).
fn is_fatal(e: &rdkafka::error::KafkaError) -> bool {
    matches!(e, rdkafka::error::KafkaError::MessageConsumptionFatal(_))
        || e.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::Fatal)
}

#[cfg(test)]
mod error_run_tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn errors_give_up_only_when_they_keep_coming_without_a_record() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut run = ErrorRun::default();
        // A broker restart: a few errors, then records again.
        assert!(!run.error(at(0)));
        assert!(!run.error(at(5)));
        run.record();
        assert!(!run.error(at(70)), "a new run");
        // The same broker error every 30 s (librdkafka reports it no more often): give
        // up after a minute.
        assert!(!run.error(at(100)));
        assert!(run.error(at(130)), "70 s of errors");
        // A quiet spell ends a run even without a record.
        let mut run = ErrorRun::default();
        assert!(!run.error(at(0)));
        assert!(!run.error(at(50)), "quiet for 50 s: a new run");
        assert!(!run.error(at(80)));
        assert!(run.error(at(110)), "60 s of errors every 30 s");
    }
}
