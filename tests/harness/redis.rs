//! Redis for tests: Debian's `redis-server` on a loopback port of its own, without
//! persistence, in a scratch directory; stopped, restarted on the same port and
//! queried with raw RESP over a socket (not through Sluice's client), so that the
//! tests read the store independently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, scratch_dir, wait_for};

/// A running `redis-server`; killed when dropped.
pub struct Redis {
    /// The port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// With TLS only: the CA that signed the server's certificate (for IP 127.0.0.1).
    pub ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

impl Redis {
    /// Start a server on a free port; returns once it answers `PING`.
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            dir: scratch_dir("redis"),
            child: None,
            ca: None,
            cert: None,
            key: None,
        };
        r.restart();
        r
    }

    /// Start a server that speaks TLS only, with a certificate for IP 127.0.0.1 signed
    /// by a test CA (`ca`); returns once it listens.
    pub fn start_tls() -> Self {
        let dir = scratch_dir("redis-tls");
        let (ca, cert, key) = crate::certs::ca_and_certificate(&dir, "redis");
        let mut r = Self {
            port: free_port(),
            dir,
            child: None,
            ca: Some(ca),
            cert: Some(cert),
            key: Some(key),
        };
        r.restart();
        r
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port, empty; waits until it answers `PING`.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let bin = ["/usr/bin/redis-server", "redis-server"]
            .into_iter()
            .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
            .unwrap();
        let port = self.port.to_string();
        let listen: Vec<&str> = match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => vec![
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                ca,
                "--tls-auth-clients",
                "no",
            ],
            _ => vec!["--port", &port],
        };
        let child = Command::new(bin)
            .args(&listen)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &self.dir.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server: {e} (scripts/ensure-deps --test installs it)")
            });
        self.child = Some(child);
        if self.cert.is_some() {
            wait_for(
                "redis-server to listen (TLS)",
                Duration::from_secs(30),
                || TcpStream::connect(("127.0.0.1", self.port)).ok(),
            );
            return;
        }
        wait_for(
            "redis-server to answer PING",
            Duration::from_secs(30),
            || self.command(&["PING"]).ok().filter(|r| r == "+PONG"),
        );
    }

    /// Kill the server (SIGKILL); its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send `sig` to the server (`SIGSTOP` makes it a server that accepts and never
    /// answers; `SIGCONT` resumes it).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Send one command; the first line of the answer (`+OK`, `:3`, `$5` ...).
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req += &format!("${}\r\n{a}\r\n", a.len());
        }
        s.write_all(req.as_bytes())?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        Ok(text.lines().next().unwrap_or("").to_string())
    }

    /// The ids of the clients connected now, this query's own connection left out
    /// (`CLIENT LIST`).
    pub fn client_ids(&self) -> Vec<u64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            let Some((head, body)) = text.split_once("\r\n") else {
                continue;
            };
            let len: usize = head.trim_start_matches('$').parse().unwrap();
            if body.len() < len || n == 0 {
                continue;
            }
            let mut ids: Vec<u64> = body[..len]
                .lines()
                .filter(|l| !l.contains("cmd=client|list"))
                .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
                .collect();
            ids.sort();
            return ids;
        }
    }

    /// The server's clock (`TIME`) in milliseconds.
    pub fn time_ms(&self) -> u64 {
        let v = self
            .command(&[
                "EVAL",
                "local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000)",
                "0",
            ])
            .unwrap();
        v.trim_start_matches(':').parse().unwrap()
    }

    /// The keys matching `pattern` (`KEYS`), counted.
    pub fn key_count(&self, pattern: &str) -> usize {
        let first = self
            .command(&["EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern])
            .unwrap();
        first.trim_start_matches(':').parse().unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` primaries (no replicas) on loopback, each node a
/// `redis-server` with a cluster bus port of its own, the slots assigned by
/// `redis-cli --cluster create`; killed when dropped.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Start `n` nodes and join them; returns once every node reports `cluster_state:ok`.
    pub fn start(n: usize) -> Self {
        let nodes: Vec<Redis> = (0..n)
            .map(|_| {
                let mut r = Redis {
                    port: free_port(),
                    dir: scratch_dir("redis-cluster"),
                    child: None,
                    ca: None,
                    cert: None,
                    key: None,
                };
                let bus = free_port().to_string();
                let port = r.port.to_string();
                let conf = r.dir.join("nodes.conf").display().to_string();
                let dir = r.dir.display().to_string();
                let child = Command::new("redis-server")
                    .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "no", "--dir", &dir])
                    .args(["--cluster-enabled", "yes", "--cluster-port", &bus])
                    .args(["--cluster-config-file", &conf])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                r.child = Some(child);
                wait_for(
                    "a cluster node to answer PING",
                    Duration::from_secs(30),
                    || r.command(&["PING"]).ok().filter(|a| a == "+PONG"),
                );
                r
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(Redis::address).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (Debian's redis-tools, installed with redis-server)");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for node in &nodes {
            wait_for("cluster_state:ok", Duration::from_secs(60), || {
                let mut s = TcpStream::connect(("127.0.0.1", node.port)).ok()?;
                s.write_all(b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n").ok()?;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).ok()?;
                String::from_utf8_lossy(&buf[..n])
                    .contains("cluster_state:ok")
                    .then_some(())
            });
        }
        Self { nodes }
    }

    /// The keys matching `pattern` on every node, counted.
    pub fn key_count(&self, pattern: &str) -> usize {
        self.nodes.iter().map(|n| n.key_count(pattern)).sum()
    }
}
