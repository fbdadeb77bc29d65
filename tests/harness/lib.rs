//! Test harness for Sluice's end-to-end tests: start the real `sluice` binary with a
//! config, a real origin server, an Apache Kafka broker; talk HTTP over plain sockets; read
//! records back from Kafka (partitions assigned directly, no consumer group); scrape
//! and query `/metrics`. Every wait is on a condition, bounded by a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod certs;
pub mod client;
pub mod delivery;
pub mod gateway;
pub mod http_server;
pub mod kafka;
pub mod kafka_client;
pub mod load;
pub mod metrics;
pub mod origin;
pub mod receiver;
pub mod redis;
pub mod sse;
pub mod websocket;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free local TCP port, never one handed out before in this process (the kernel
/// readily returns a just-released port again, which would make parallel tests collide),
/// nor, when `$SLUICE_TEST_PORTS` names a directory, by another test process of the
/// same run: a port is claimed there by creating a file named after it.
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
        if set.insert(port) && claim_across_processes(port) {
            return port;
        }
    }
}

/// Claim `port` for this process in `$SLUICE_TEST_PORTS` (true when that is not set).
fn claim_across_processes(port: u16) -> bool {
    let Some(dir) = std::env::var_os("SLUICE_TEST_PORTS") else {
        return true;
    };
    let _ = std::fs::create_dir_all(&dir);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(std::path::Path::new(&dir).join(port.to_string()))
        .is_ok()
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
