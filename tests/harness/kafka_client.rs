//! Independent Kafka clients for tests (plain librdkafka, no Sluice code): read a
//! topic back with every partition assigned directly (no consumer group), produce
//! records in multi-record batches, read a group's committed offsets.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// A record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Timestamp (ms).
    pub timestamp: Option<i64>,
}

impl Record {
    /// The value as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).unwrap()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// A plain consumer of `bootstrap` (group `sluice-e2e`, never committing).
pub(crate) fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-e2e")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Read every record of `topic` from the beginning until `expect` records arrived, then
/// keep polling for `settle` to catch extra records. Panics after `limit`.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    expect: usize,
    settle: Duration,
    limit: Duration,
) -> Vec<Record> {
    let c = consumer(bootstrap);
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    let mut reached: Option<Instant> = None;
    loop {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis(),
            });
        }
        if out.len() >= expect && reached.is_none() {
            reached = Some(Instant::now());
        }
        if reached.is_some_and(|r| r.elapsed() >= settle) {
            return out;
        }
        assert!(
            start.elapsed() < limit,
            "read {} of {expect} records from `{topic}` within {limit:?}",
            out.len()
        );
    }
}

/// Produce records (partition, key, value) to `topic` and wait until all are acked;
/// `per_batch` records at most in one record batch (a linger gathers them, so resumes
/// land inside multi-record batches).
pub fn produce(bootstrap: &str, topic: &str, records: &[(i32, String, String)], per_batch: usize) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", per_batch.to_string())
        .create()
        .unwrap();
    let start = Instant::now();
    for (part, key, value) in records {
        let mut r = BaseRecord::to(topic)
            .partition(*part)
            .key(key.as_str())
            .payload(value.as_str());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(60),
                        "producing to {topic}: {e}"
                    );
                    p.poll(Duration::from_millis(50));
                    r = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// The offsets group `group` committed for partitions `0..partitions` of `topic` (-1:
/// none), read without joining the group.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}
