//! A load generator: threads sending requests over fresh connections until stopped,
//! recording every outcome.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The request's sequence number (unique across threads).
    pub n: u64,
    /// The load thread that sent it (each thread sends one request at a time, so its
    /// outcomes are in the order it sent them).
    pub thread: usize,
    /// The path requested.
    pub path: String,
    /// Status, or `None` for a connection error.
    pub status: Option<u16>,
    /// Response body.
    pub body: String,
}

/// The event ids (`id` of the JSON body) of the `202` answers among `outcomes`, in order.
pub fn accepted_ids(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| o.status == Some(202))
        .map(|o| {
            serde_json::from_str::<serde_json::Value>(&o.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A planned request: method, path, headers, body.
pub type Planned = (String, String, Vec<(String, String)>, Vec<u8>);

/// Running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

/// Send one request with `Connection: close` and read the whole response; `None` on
/// any connection error.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

impl Load {
    /// Start `threads` threads; each request `n` goes to `plan(n)` = (method, path,
    /// headers, body), with `pause` between requests of a thread.
    pub fn start<F>(port: u16, threads: usize, pause: Duration, plan: F) -> Self
    where
        F: Fn(u64) -> Planned + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(0));
        let plan = Arc::new(plan);
        let threads = (0..threads)
            .map(|thread| {
                let (stop, outcomes, counter, plan) = (
                    stop.clone(),
                    outcomes.clone(),
                    counter.clone(),
                    plan.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let (method, path, headers, body) = plan(n);
                        let r = try_request(port, &method, &path, &headers, &body);
                        outcomes.lock().unwrap().push(Outcome {
                            n,
                            thread,
                            path,
                            status: r.as_ref().map(|r| r.0),
                            body: r.map(|r| r.1).unwrap_or_default(),
                        });
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Self {
            stop,
            threads,
            outcomes,
        }
    }

    /// Outcomes so far.
    pub fn count(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }

    /// Outcomes so far (a copy).
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    /// Stop and return every outcome.
    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let mut v = self.outcomes.lock().unwrap().clone();
        v.sort_by_key(|o| o.n);
        v
    }
}
