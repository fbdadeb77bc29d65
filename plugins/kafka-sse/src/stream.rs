//! One Server-Sent Events stream over a [`sluice_kafka::reader`] (a consumer of its own,
//! partitions assigned and seeked, no consumer group): the write loop with keep-alives,
//! a slow-client cut-off and a clean end on shutdown. Every 5 s (at a keep-alive tick) the
//! stream looks for partitions added to its topic and reads them from their start.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{BorrowedMessage, Message};
use sluice_core::plugin::ResponseWriter;

use crate::frame;
use sluice_kafka::position::{Positions, Signer};
use sluice_kafka::reader::{added_partitions, ErrorRun, Filter};

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
    pub signer: &'a Signer,
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
        let known: Vec<i32> = self.positions.keys().copied().collect();
        match added_partitions(self.consumer, self.topic, known).await {
            Ok(added) => self.positions.extend(added),
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
            .and_then(|h| sluice_kafka::event::header(m, h))
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
    let mut errors = ErrorRun::default();
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
                        Err(e) if errors.ends(&e) => {
                            log::warn!("sse: consuming failed, ending the stream: {e}");
                            return End::KafkaError;
                        }
                        Err(e) => {
                            // Transient (a broker restarting): librdkafka reconnects by
                            // itself and goes on from the position it had.
                            log::debug!("sse: {e}");
                            break;
                        }
                    };
                    errors.record();
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
