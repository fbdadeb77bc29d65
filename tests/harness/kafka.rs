//! Kafka for tests: an Apache Kafka 4 broker (KRaft, one process that is both broker and
//! controller) started from the jars `scripts/kafka-fetch` brings from Maven Central,
//! on loopback ports of its own, with its log directory in a scratch directory so that a
//! restart (after `kill -9`, `SIGSTOP`, `SIGTERM`) finds the acknowledged data again.
//! Optional SASL/SCRAM and TLS listeners. Records are read back and produced with the
//! independent clients of [`crate::kafka_client`] (re-exported here).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;

use crate::kafka_client::consumer;
pub use crate::kafka_client::{committed, produce, read_topic, Record};
use crate::{free_port, scratch_dir, wait_for};

/// How long a broker may take to answer metadata after it was started: a JVM start and,
/// after a kill, log recovery, on a machine whose other core may be busy.
const READY_LIMIT: Duration = Duration::from_secs(120);

/// The directory of Apache Kafka's jars: `$SLUICE_KAFKA_LIBS`, else what
/// `scripts/kafka-fetch` prints (it fetches them once, then only checks).
pub fn kafka_libs() -> PathBuf {
    static LIBS: OnceLock<PathBuf> = OnceLock::new();
    LIBS.get_or_init(|| {
        if let Ok(p) = std::env::var("SLUICE_KAFKA_LIBS") {
            return PathBuf::from(p);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-fetch");
        let out = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(out.status.success(), "{} failed", script.display());
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// What a broker offers besides its plaintext listener.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Users `(name, password)` created with SCRAM-SHA-512 and SCRAM-SHA-256 credentials
    /// at format time; when not empty, a `SASL_PLAINTEXT` listener requires them.
    pub scram_users: Vec<(String, String)>,
    /// PEM certificate (chain) and PKCS#8 key files: an `SSL` listener serves them.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running Apache Kafka broker; killed when dropped.
pub struct Kafka {
    /// `127.0.0.1:PORT` of the plaintext listener.
    pub bootstrap: String,
    /// `127.0.0.1:PORT` of the SASL/SCRAM listener, with [`Options::scram_users`].
    pub sasl_bootstrap: Option<String>,
    /// `127.0.0.1:PORT` of the TLS listener, with [`Options::tls`].
    pub tls_bootstrap: Option<String>,
    port: u16,
    dir: PathBuf,
    cluster_id: String,
    opts: Options,
    child: Option<Child>,
}

impl Kafka {
    /// Start a plaintext broker (topics also auto-create on first use).
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Start a broker with extra listeners.
    pub fn start_with(opts: Options) -> Self {
        let dir = scratch_dir("kafka");
        let port = free_port();
        let controller = free_port();
        let mut listeners = vec![
            format!("PLAINTEXT://127.0.0.1:{port}"),
            format!("CONTROLLER://127.0.0.1:{controller}"),
        ];
        let mut sasl_bootstrap = None;
        let mut tls_bootstrap = None;
        let mut extra = String::new();
        if !opts.scram_users.is_empty() {
            let p = free_port();
            listeners.push(format!("SASL_PLAINTEXT://127.0.0.1:{p}"));
            sasl_bootstrap = Some(format!("127.0.0.1:{p}"));
            extra += "listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256\n";
            for m in ["scram-sha-512", "scram-sha-256"] {
                extra += &format!(
                    "listener.name.sasl_plaintext.{m}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
                );
            }
        }
        if let Some((cert, key)) = &opts.tls {
            let p = free_port();
            listeners.push(format!("SSL://127.0.0.1:{p}"));
            tls_bootstrap = Some(format!("127.0.0.1:{p}"));
            // Kafka's PEM key store: the private key and the certificate chain in one file.
            let store = dir.join("keystore.pem");
            let mut pem = std::fs::read(key).unwrap();
            pem.extend(std::fs::read(cert).unwrap());
            std::fs::write(&store, pem).unwrap();
            extra += &format!(
                "listener.name.ssl.ssl.keystore.type=PEM\nlistener.name.ssl.ssl.keystore.location={}\n",
                store.display()
            );
        }
        let advertised: Vec<_> = listeners
            .iter()
            .filter(|l| !l.starts_with("CONTROLLER"))
            .cloned()
            .collect();
        let props = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listeners={}\n\
             advertised.listeners={}\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL\n\
             log.dirs={}\n\
             {}",
            listeners.join(","),
            advertised.join(","),
            dir.join("data").display(),
            include_str!("kafka-server.properties"),
        ) + &extra;
        std::fs::write(dir.join("server.properties"), props).unwrap();
        std::fs::write(
            dir.join("log4j2.properties"),
            include_str!("kafka-log4j2.properties"),
        )
        .unwrap();
        let mut k = Self {
            bootstrap: format!("127.0.0.1:{port}"),
            sasl_bootstrap,
            tls_bootstrap,
            port,
            cluster_id: cluster_id(),
            dir,
            opts,
            child: None,
        };
        k.format();
        k.spawn();
        k
    }

    fn java(&self, main: &str) -> Command {
        let mut c = Command::new(java());
        c.args([
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            self.dir.join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/*", kafka_libs().display()))
        .arg(main)
        .current_dir(&self.dir);
        c
    }

    /// `kafka-storage format` on an empty log directory (with the SCRAM users).
    fn format(&self) {
        let mut c = self.java("kafka.tools.StorageTool");
        // `--cluster-id=ID`: an id may start with `-`, which would read as an option.
        c.args([
            "format",
            &format!("--cluster-id={}", self.cluster_id),
            "--config",
        ])
        .arg(self.dir.join("server.properties"));
        for (name, password) in &self.opts.scram_users {
            for m in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
                c.args([
                    "--add-scram",
                    &format!("{m}=[name={name},password={password}]"),
                ]);
            }
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "kafka-storage format failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kafka.log"))
            .unwrap();
        let mut c = self.java("kafka.Kafka");
        c.arg(self.dir.join("server.properties"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        // The broker dies with the test thread that started it, even on a panic that
        // skips Drop (the test binary killed by a timeout, say).
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(c.spawn().unwrap());
        self.wait_ready();
    }

    /// Wait until a metadata request answers with this broker in it.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        let c = consumer(&self.bootstrap);
        loop {
            if let Ok(md) = c.fetch_metadata(None, Duration::from_secs(2)) {
                if md.brokers().len() == 1 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "kafka exited ({status}) while starting:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                start.elapsed() < READY_LIMIT,
                "kafka did not answer metadata within {READY_LIMIT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the broker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("kafka.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: a signal to our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGKILL the process (if any) and reap it.
    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` the broker and wait until its port refuses connections.
    pub fn kill(&mut self) {
        self.kill_child();
        self.wait_closed();
    }

    /// Stop the broker as an operator would (SIGTERM, controlled shutdown); `kill -9`
    /// after a minute.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while let Some(Ok(None)) = self.child.as_mut().map(Child::try_wait) {
            if start.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_child();
        self.wait_closed();
    }

    fn wait_closed(&self) {
        let port = self.port;
        wait_for("kafka's port to close", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        });
    }

    /// Freeze the broker (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Let a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Start the broker again on the same ports and log directory (after [`Kafka::kill`],
    /// [`Kafka::terminate`], or killing it now if it runs).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
        self.spawn();
    }

    /// Kill the broker, delete its log directory (every topic, offset and producer id is
    /// gone), format it again and start it: a broker that lost its disk.
    pub fn wipe_and_restart(&mut self) {
        self.kill();
        std::fs::remove_dir_all(self.dir.join("data")).unwrap();
        self.format();
        self.spawn();
    }

    /// An admin client of this broker, a runtime to drive it, and the options to use.
    fn admin(
        &self,
    ) -> (
        AdminClient<DefaultClientContext>,
        tokio::runtime::Runtime,
        AdminOptions,
    ) {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        (admin, rt, opts)
    }

    /// Create a topic and wait until every partition has a leader.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let (admin, rt, opts) = self.admin();
        let topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(1));
        let res = rt.block_on(admin.create_topics([&topic], &opts)).unwrap();
        for r in res {
            if let Err((t, e)) = r {
                assert_eq!(
                    e,
                    rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                    "creating {t}"
                );
            }
        }
        let c = consumer(&self.bootstrap);
        wait_for("topic metadata", Duration::from_secs(60), || {
            let md = c.fetch_metadata(Some(name), Duration::from_secs(2)).ok()?;
            let t = md.topics().first()?;
            (t.error().is_none()
                && t.partitions().len() == partitions as usize
                && t.partitions().iter().all(|p| p.leader() >= 0))
            .then_some(())
        });
    }

    /// Grow `name` to `total` partitions and wait until the metadata shows them.
    pub fn add_partitions(&self, name: &str, total: usize) {
        let (admin, rt, opts) = self.admin();
        let p = rdkafka::admin::NewPartitions::new(name, total);
        for r in rt.block_on(admin.create_partitions([&p], &opts)).unwrap() {
            r.unwrap();
        }
        let c = consumer(&self.bootstrap);
        wait_for("the new partitions", Duration::from_secs(60), || {
            let md = c.fetch_metadata(Some(name), Duration::from_secs(2)).ok()?;
            let t = md.topics().first()?;
            (t.partitions().len() == total && t.partitions().iter().all(|p| p.leader() >= 0))
                .then_some(())
        });
    }

    /// The names of the topics the broker has (internal ones excluded).
    pub fn topics(&self) -> Vec<String> {
        let c = consumer(&self.bootstrap);
        let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
        let mut names: Vec<String> = md
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|n| !n.starts_with("__"))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.kill_child();
    }
}

/// A KRaft cluster id: 16 random bytes, base64url without padding (what
/// `kafka-storage random-uuid` prints).
fn cluster_id() -> String {
    use base64::Engine;
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = format!(
        "{nanos}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let digest = sha2::Sha256::digest(seed.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}
