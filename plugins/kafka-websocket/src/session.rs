//! One WebSocket connection after the `101`: client bytes through the [`Socket`],
//! published messages produced and acknowledged, records of the subscription sent with
//! their position, pings, the idle timeout, the slow-client cut-off, and a clean close
//! on shutdown or when a reload retired the cluster.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use serde_json::Value;
use sluice_core::plugin::Upgrade;
use sluice_kafka::position::{Positions, Signer};
use sluice_kafka::reader::{added_partitions, ErrorRun, Filter};
use sluice_kafka::{Cluster, EventCounters, OutgoingEvent, Profile};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tungstenite::Message;

use crate::config::Format;
use crate::envelope::{self, Publish};
use crate::metrics;
use crate::socket::{Closing, Socket};

/// The subscription side of a connection.
pub struct Subscribed<'a> {
    /// The connection's own reader, positioned.
    pub consumer: Arc<StreamConsumer>,
    /// The topic.
    pub topic: &'a str,
    /// Next offset per partition (what the position token says).
    pub positions: Positions,
    /// Record selection.
    pub filter: Filter,
    /// Signs the position tokens.
    pub signer: &'a Signer,
    /// Frame layout.
    pub format: Format,
}

/// The publish side of a connection (templates rendered at the upgrade).
pub struct Publisher {
    /// Where records go.
    pub cluster: Arc<Cluster>,
    /// The topic.
    pub topic: String,
    /// The key from the route's template, if it has one (messages may not set their own).
    pub key: Option<Option<Vec<u8>>>,
    /// Counts every record.
    pub counters: Arc<EventCounters>,
    /// The producer profile (delivery timeout).
    pub profile: Profile,
    /// Wait for the acknowledgement at most this long.
    pub timeout: Duration,
    /// Messages awaiting acknowledgement at most.
    pub max_in_flight: usize,
    /// Message layout.
    pub format: Format,
}

/// Timers of a connection.
pub struct Limits {
    /// Ping after this long.
    pub ping: Duration,
    /// Close after this long without a frame from the client.
    pub idle: Duration,
    /// Cut a client that does not take a write within this time.
    pub slow: Duration,
}

/// An acknowledgement (or its failure) for message `id`.
type Settled = (Value, Result<(i32, i64), (&'static str, String)>);

/// How the loop ends: the close frame is already queued (or cannot be sent), or is to be
/// sent once the messages in flight are answered.
enum Ending {
    /// Nothing more to send.
    Now(Closing),
    /// Answer what is in flight first, then close.
    AfterAcks(Closing),
}

/// The publish side's bookkeeping.
struct Publishing<'a> {
    route: &'a str,
    publisher: Option<&'a Publisher>,
    acks: mpsc::Sender<Settled>,
    in_flight: usize,
    max_in_flight: usize,
    seq: u64,
    sent: u64,
}

impl Publishing<'_> {
    /// Handle the complete messages the client sent, up to `max_in_flight` awaiting
    /// acknowledgement; the rest stays in the socket until acknowledgements come back.
    fn received(&mut self, socket: &mut Socket) -> Result<(), Closing> {
        while self.in_flight < self.max_in_flight {
            let Some(m) = socket.next_message()? else {
                return Ok(());
            };
            if !matches!(m, Message::Text(_) | Message::Binary(_)) {
                continue;
            }
            metrics::messages(self.route, "in", 1);
            self.seq += 1;
            let Some(p) = self.publisher else {
                return Err(socket.close(Closing::new(1003, "this route does not take messages")));
            };
            let failed = match envelope::publish(m, self.seq, p.format) {
                Ok(msg) => match produce(p, msg, &self.acks) {
                    Ok(()) => {
                        self.in_flight += 1;
                        None
                    }
                    Err(failed) => Some(failed),
                },
                Err((id, invalid)) => Some((id, invalid.0, invalid.1)),
            };
            if let Some((id, reason, detail)) = failed {
                metrics::published(self.route, reason);
                self.sent += 1;
                socket.send(envelope::error(&id, reason, &detail))?;
            }
        }
        Ok(())
    }

    /// The frame answering an acknowledgement.
    fn settled(&mut self, (id, settled): Settled) -> Message {
        self.in_flight -= 1;
        self.sent += 1;
        let topic = self.publisher.map_or("", |p| p.topic.as_str());
        match settled {
            Ok((partition, offset)) => {
                metrics::published(self.route, "acked");
                envelope::ack(&id, topic, partition, offset)
            }
            Err((reason, detail)) => {
                metrics::published(self.route, reason);
                envelope::error(&id, reason, &detail)
            }
        }
    }
}

/// Record frames written together at most (bytes, roughly).
const BATCH_BYTES: usize = 64 * 1024;

/// Advance the positions past `m` and queue its frame when it passes the filter.
fn record<M: rdkafka::Message>(
    s: &mut Subscribed<'_>,
    m: &M,
    socket: &mut Socket,
    sent: &mut u64,
) -> Option<Ending> {
    s.positions.insert(m.partition(), m.offset() + 1);
    if !s.filter.matches(m) {
        return None;
    }
    *sent += 1;
    let position = s.signer.encode(&s.positions);
    socket
        .send(envelope::record(m, &position, s.format))
        .err()
        .map(Ending::Now)
}

/// How often a shutdown is looked for.
const SHUTDOWN_CHECK: Duration = Duration::from_secs(1);

/// Run the connection until it closes; how it closed.
pub async fn run(
    route: &str,
    up: &mut Upgrade<'_>,
    socket: &mut Socket,
    mut sub: Option<Subscribed<'_>>,
    publisher: Option<Publisher>,
    limits: &Limits,
    retired: &(dyn Fn() -> bool + Sync),
) -> Closing {
    let (acks_tx, mut acks) = mpsc::channel::<Settled>(1024);
    let mut p = Publishing {
        route,
        publisher: publisher.as_ref(),
        acks: acks_tx,
        in_flight: 0,
        max_in_flight: publisher.as_ref().map_or(usize::MAX, |p| p.max_in_flight),
        seq: 0,
        sent: 0,
    };
    let mut idle = Instant::now() + limits.idle;
    let mut ping = tokio::time::interval(limits.ping);
    ping.tick().await;
    let mut check = tokio::time::interval(SHUTDOWN_CHECK.min(limits.ping));
    check.tick().await;
    let mut refreshed = Instant::now();
    let mut errors = ErrorRun::default();
    let consumer = sub.as_ref().map(|s| s.consumer.clone());
    let ending = loop {
        if let Err(c) = flush(up, socket, limits.slow).await {
            break Ending::Now(c);
        }
        metrics::messages(route, "out", std::mem::take(&mut p.sent));
        let ending = tokio::select! {
            bytes = up.read(), if p.in_flight < p.max_in_flight => match bytes {
                Ok(Some(bytes)) => {
                    idle = Instant::now() + limits.idle;
                    socket.feed(&bytes);
                    p.received(socket).err().map(Ending::Now)
                }
                Ok(None) | Err(_) => Some(Ending::Now(Closing::new(1006, "client gone"))),
            },
            Some(settled) = acks.recv() => {
                let frame = p.settled(settled);
                idle = Instant::now() + limits.idle;
                // Messages held back at the limit go out now.
                match socket.send(frame).and_then(|()| p.received(socket)) {
                    Ok(()) => None,
                    Err(c) => Some(Ending::Now(c)),
                }
            }
            m = next_record(consumer.as_deref()) => match (m, sub.as_mut()) {
                (Ok(m), Some(s)) => {
                    errors.record();
                    let mut ending = record(s, &m, socket, &mut p.sent);
                    // Records already fetched go out in the same write (a zero timeout
                    // polls once).
                    while let (None, Some(c)) = (&ending, consumer.as_deref()) {
                        if socket.pending() >= BATCH_BYTES {
                            break;
                        }
                        match tokio::time::timeout(Duration::ZERO, c.recv()).await {
                            Ok(Ok(m)) => ending = record(s, &m, socket, &mut p.sent),
                            _ => break,
                        }
                    }
                    ending
                }
                (Err(e), _) if errors.ends(&e) => {
                    log::warn!("websocket route `{route}`: consuming failed: {e}");
                    Some(Ending::AfterAcks(Closing::new(1011, "kafka error")))
                }
                (Err(e), _) => {
                    // Transient (a broker restarting): librdkafka reconnects by itself.
                    log::debug!("websocket route `{route}`: {e}");
                    None
                }
                (Ok(_), None) => None,
            },
            _ = check.tick() => {
                if up.shutting_down() {
                    Some(Ending::AfterAcks(Closing::new(1001, "going away")))
                } else if retired() {
                    Some(Ending::AfterAcks(Closing::new(1012, "configuration reloaded")))
                } else {
                    None
                }
            }
            _ = ping.tick() => {
                if let Some(s) = sub.as_mut() {
                    refresh(s, &mut refreshed).await;
                }
                socket.send(Message::Ping(Default::default())).err().map(Ending::Now)
            }
            // A client waiting for acknowledgements is not idle.
            _ = sleep_until(idle), if p.in_flight == 0 => {
                Some(Ending::AfterAcks(Closing::new(1001, "idle timeout")))
            }
        };
        if let Some(e) = ending {
            break e;
        }
    };
    let closing = match ending {
        Ending::Now(c) => c,
        Ending::AfterAcks(c) => {
            // Answer what is in flight (each within its own timeout), then close.
            while p.in_flight > 0 {
                let Some(settled) = acks.recv().await else {
                    break;
                };
                let frame = p.settled(settled);
                if socket.send(frame).is_err() || flush(up, socket, limits.slow).await.is_err() {
                    break;
                }
            }
            metrics::messages(route, "out", std::mem::take(&mut p.sent));
            socket.close(c)
        }
    };
    // The close frame, then the end; a client that does not take them is cut.
    let ended = match flush(up, socket, limits.slow).await {
        Ok(()) => tokio::time::timeout(limits.slow, up.finish())
            .await
            .is_ok_and(|r| r.is_ok()),
        Err(_) => false,
    };
    if !ended {
        up.abort();
    }
    closing
}

/// The next record of the subscription; never resolves without one.
async fn next_record(
    consumer: Option<&StreamConsumer>,
) -> rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>> {
    match consumer {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// Write what the socket has for the client; a client that does not take it in time is
/// cut (`1008`).
async fn flush(up: &mut Upgrade<'_>, socket: &mut Socket, slow: Duration) -> Result<(), Closing> {
    let Some(bytes) = socket.output() else {
        return Ok(());
    };
    match tokio::time::timeout(slow, up.write(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Closing::new(1006, "client gone")),
        Err(_) => Err(Closing::new(1008, "slow consumer")),
    }
}

/// Hand a message to the producer; its acknowledgement arrives on `acks`.
fn produce(
    p: &Publisher,
    msg: Publish,
    acks: &mpsc::Sender<Settled>,
) -> Result<(), (Value, &'static str, String)> {
    let key = match (&p.key, msg.key) {
        (Some(_), Some(_)) => {
            return Err((
                msg.id,
                "key_not_allowed",
                "this route sets the record key".into(),
            ))
        }
        (Some(route_key), None) => route_key.clone(),
        (None, key) => key,
    };
    let event = OutgoingEvent {
        topic: p.topic.clone(),
        key,
        value: msg.value,
        headers: msg.headers,
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64),
    };
    let rx = match p.cluster.send_acked(&event, &p.counters, Some(p.profile)) {
        Ok(rx) => rx,
        Err(refused) => {
            let reason = if refused.reason == "queue_full" {
                "queue_full"
            } else {
                "not_queued"
            };
            return Err((
                msg.id,
                reason,
                format!("not queued for Kafka: {}", refused.reason),
            ));
        }
    };
    let (acks, timeout, id) = (acks.clone(), p.timeout, msg.id);
    tokio::spawn(async move {
        let settled = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(a))) => Ok((a.partition, a.offset)),
            Ok(Ok(Err(e))) => Err(("broker_error", e.to_string())),
            Ok(Err(_)) => Err(("broker_error", "no delivery report".to_string())),
            Err(_) => Err((
                "timeout",
                "no acknowledgement in time; the record may still be stored".to_string(),
            )),
        };
        let _ = acks.send((id, settled)).await;
    });
    Ok(())
}

/// How often a subscription looks for partitions added to its topic.
const REFRESH: Duration = Duration::from_secs(5);

/// Every [`REFRESH`] (at ping ticks): read partitions added to the topic from their start.
async fn refresh(s: &mut Subscribed<'_>, last: &mut Instant) {
    if last.elapsed() < REFRESH {
        return;
    }
    *last = Instant::now();
    let known: Vec<i32> = s.positions.keys().copied().collect();
    if let Ok(added) = added_partitions(&s.consumer, s.topic, known).await {
        s.positions.extend(added);
    }
}
