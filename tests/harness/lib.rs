//! Test harness for Sluice's end-to-end tests: start the real `sluice` binary with a
//! config, a real origin server, an Apache Kafka broker; talk HTTP over plain sockets; read
//! records back from Kafka (partitions assigned directly, no consumer group); scrape
//! and query `/metrics`. Every wait is on a condition, bounded by a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod certs;
pub mod client;
pub mod gateway;
pub mod http_server;
pub mod kafka;
pub mod kafka_client;
pub mod load;
pub mod metrics;
pub mod origin;
pub mod receiver;
pub mod sse;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free local TCP port, never one handed out before in this process (the kernel
/// readily returns a just-released port again, which would make parallel tests collide).
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap();
    let set = given.get_or_insert_with(HashSet::new);
    let mut held = Vec::new();
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        held.push(l);
        if set.insert(port) {
            return port;
        }
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or panic after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique scratch directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("sluice-e2e-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
