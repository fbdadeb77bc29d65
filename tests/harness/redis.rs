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
}

impl Redis {
    /// Start a server on a free port; returns once it answers `PING`.
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            dir: scratch_dir("redis"),
            child: None,
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
        let child = Command::new(bin)
            .args([
                "--port",
                &self.port.to_string(),
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
