//! Kafka for tests: a Tansu broker process (memory storage, random port) and a reader
//! that assigns every partition of a topic directly and collects records.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::{free_port, scratch_dir, wait_for};

/// Where the `tansu` binary is: `$TANSU_BIN`, `tansu` on `PATH`, or `~/.cargo/bin/tansu`.
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tansu"))
                .find(|p| p.exists())
        })
        .unwrap_or_default();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    on_path
        .or(home.filter(|p| p.exists()))
        .expect("tansu not found: install it with `cargo install tansu --locked --features dynostore,libsql` (scripts/test does this)")
}

/// A running Tansu broker; killed when dropped.
pub struct Tansu {
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    port: u16,
    /// The port advertised to clients (the listening one, or a proxy in front of it).
    advertised: u16,
    storage: String,
    /// Extra `tansu broker` arguments (e.g. `--authentication`).
    extra: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Tansu {
    /// Start a broker with in-memory storage (topics auto-create on produce).
    pub fn start() -> Self {
        Self::start_with("memory://tansu/")
    }

    /// Start a broker whose data survives [`Tansu::restart`] (SQLite in its scratch
    /// directory; topics must be created).
    pub fn start_persistent() -> Self {
        Self::start_with("sqlite://tansu.db")
    }

    fn start_with(storage: &str) -> Self {
        let port = free_port();
        Self::start_advertising(storage, port, port)
    }

    /// Start a broker (in-memory storage) listening on `port` that tells clients to
    /// connect to `advertised` (a TLS proxy in front of it, say).
    pub fn start_advertising(storage: &str, port: u16, advertised: u16) -> Self {
        let mut t = Self {
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            advertised,
            storage: storage.to_string(),
            extra: Vec::new(),
            dir: scratch_dir("tansu"),
            child: None,
        };
        t.spawn();
        t
    }

    /// Create a SCRAM user (`scram256` or `scram512`) with Tansu's CLI.
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let out = Command::new(tansu_bin())
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://{}", self.bootstrap),
            ])
            .args([name, password, "--mechanism", mechanism])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Restart with client authentication (SASL) required; users and topics must have
    /// been created before (persistent storage).
    pub fn restart_requiring_authentication(&mut self) {
        self.extra = vec!["--authentication".into()];
        self.restart();
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .unwrap()
        };
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", &self.storage])
            .args(&self.extra)
            .current_dir(&self.dir)
            .stdout(Stdio::from(log("tansu.log")))
            .stderr(Stdio::from(log("tansu.err")))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        wait_for("tansu to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Kill the broker (SIGKILL) and wait until its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        wait_for("tansu to stop", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        });
    }

    /// Start the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Create a topic (Tansu's CLI), and wait until its metadata shows the partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://{}", self.bootstrap),
            ])
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu topic create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = consumer(&self.bootstrap);
        wait_for("topic metadata", Duration::from_secs(20), || {
            let md = c.fetch_metadata(Some(name), Duration::from_secs(2)).ok()?;
            (md.topics().first()?.partitions().len() == partitions as usize).then_some(())
        });
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

fn consumer(bootstrap: &str) -> BaseConsumer {
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
        .fetch_metadata(Some(topic), Duration::from_secs(5))
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
/// `per_batch` records at most in one record batch.
pub fn produce(bootstrap: &str, topic: &str, records: &[(i32, String, String)], per_batch: usize) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("batch.num.messages", per_batch.to_string())
        .create()
        .unwrap();
    for (part, key, value) in records {
        let mut r = BaseRecord::to(topic)
            .partition(*part)
            .key(key.as_str())
            .payload(value.as_str());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(50));
                    r = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
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
