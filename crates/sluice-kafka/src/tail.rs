//! `sluice tail`: print the records of a topic, one block per record, from the start of
//! each partition (assigned directly, no consumer group).

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// What to print.
pub struct TailOptions {
    /// Bootstrap brokers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Stop after this many records.
    pub max: Option<usize>,
    /// Start from the end instead of the beginning.
    pub from_end: bool,
}

/// Print records until `max` is reached or the process is interrupted.
pub fn run(opts: &TailOptions, out: &mut dyn Write) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", "sluice-tail")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create a consumer: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(&opts.topic), Duration::from_secs(5))
            .map_err(|e| format!("cannot read metadata from {}: {e}", opts.brokers))?;
        let n = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if n > 0 {
            break n;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "topic `{}` has no partitions (does it exist?)",
                opts.topic
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut tpl = TopicPartitionList::new();
    let start = if opts.from_end {
        Offset::End
    } else {
        Offset::Beginning
    };
    for p in 0..partitions {
        tpl.add_partition_offset(&opts.topic, p as i32, start)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut seen = 0usize;
    while opts.max.is_none_or(|m| seen < m) {
        let Some(res) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = res.map_err(|e| e.to_string())?;
        let _ = writeln!(
            out,
            "--- {}/{}@{} key={}",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            msg.key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_else(|| "(none)".into())
        );
        if let Some(h) = msg.headers() {
            for header in h.iter() {
                let v = header
                    .value
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let _ = writeln!(out, "{}: {}", header.key, v);
            }
        }
        let _ = writeln!(
            out,
            "{}",
            String::from_utf8_lossy(msg.payload().unwrap_or_default())
        );
        let _ = out.flush();
        seen += 1;
    }
    Ok(())
}
