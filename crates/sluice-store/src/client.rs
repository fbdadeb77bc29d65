//! The connection to Redis. redis-rs's `ConnectionManager` multiplexes every operation
//! of the process over one connection and reconnects after a loss; its tasks run on a
//! one-thread runtime of the store's own, so that no proxy thread drives them and a
//! reload never strands them. Each operation is bounded by `redis.timeout`, whatever
//! the connection is doing (connecting, reconnecting, a server that stopped reading).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use sluice_core::config::redis::RedisConfig;

use crate::errors::StoreError;

/// The shared-store runtime: the plugin factories hold it and ask it for the client of
/// the current `redis:` section.
pub struct Stores {
    /// The client of the last `redis:` section seen, reused while it is unchanged.
    current: Mutex<Option<Arc<Redis>>>,
}

impl Default for Stores {
    fn default() -> Self {
        Self::new()
    }
}

impl Stores {
    /// No client yet: the first plugin with `policy: redis` makes one.
    pub fn new() -> Self {
        Self {
            current: Mutex::new(None),
        }
    }

    /// The client for `config`: the existing one when the section did not change (a
    /// reload keeps its connection), else a new one. Connecting happens on first use.
    pub fn client(&self, config: &RedisConfig) -> Result<Arc<Redis>, StoreError> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = current.as_ref().filter(|r| r.config == *config) {
            return Ok(r.clone());
        }
        let r = Arc::new(Redis::new(config.clone())?);
        *current = Some(r.clone());
        Ok(r)
    }

    /// The client of the last `redis:` section seen, if any.
    pub fn current(&self) -> Option<Arc<Redis>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One Redis server.
pub struct Redis {
    config: RedisConfig,
    manager: ConnectionManager,
    /// Runs the connection's tasks and every operation (taken only when dropped).
    runtime: Option<tokio::runtime::Runtime>,
    /// Whether the last operation got an answer (true until one failed).
    answered: std::sync::atomic::AtomicBool,
}

impl Redis {
    fn new(config: RedisConfig) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-redis")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Connection(format!("starting the Redis runtime: {e}")))?;
        let client = match &config.tls {
            None => redis::Client::open(url(&config))?,
            Some(tls) => {
                let root_cert = match &tls.ca_file {
                    Some(f) => Some(
                        std::fs::read(f)
                            .map_err(|e| StoreError::Connection(format!("reading {f}: {e}")))?,
                    ),
                    None => None,
                };
                redis::Client::build_with_tls(
                    url(&config),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert,
                    },
                )?
            }
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout.0))
            .set_response_timeout(Some(config.timeout.0))
            // Reconnect attempts are the next operations' business: a failed attempt is
            // not retried in the background, so an outage costs one attempt at a time.
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let manager = {
            let _inside = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, manager_config)?
        };
        Ok(Self {
            config,
            manager,
            runtime: Some(runtime),
            answered: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// `key_prefix` + `parts` joined with `:`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.config.key_prefix.clone();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(':');
            }
            k.push_str(p);
        }
        k
    }

    /// Run `script` with `keys` and `args` (atomically, as Redis runs scripts); its
    /// answer, or the error, within `redis.timeout`.
    pub async fn eval(
        &self,
        script: &'static Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(a.as_str());
        }
        let mut conn = self.manager.clone();
        let timeout = self.config.timeout.0;
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Connection("the client is shutting down".into()));
        };
        let task = runtime.spawn(async move { invocation.invoke_async::<Value>(&mut conn).await });
        let result = match tokio::time::timeout(timeout, task).await {
            Err(_) => Err(StoreError::Timeout(timeout)),
            Ok(Err(join)) => Err(StoreError::Connection(format!("operation failed: {join}"))),
            Ok(Ok(Err(e))) if e.is_timeout() => Err(StoreError::Timeout(timeout)),
            Ok(Ok(r)) => r.map_err(StoreError::from),
        };
        // A server error is an answer: the store is reachable.
        let answered = !matches!(
            result,
            Err(StoreError::Timeout(_) | StoreError::Connection(_))
        );
        self.answered
            .store(answered, std::sync::atomic::Ordering::Relaxed);
        result
    }

    /// Whether the last operation got an answer from Redis (`/readyz` reports it).
    pub fn answering(&self) -> bool {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Redis {
    /// Run `script` without waiting for its answer (cleanup from a `Drop`); a failure
    /// is counted for `plugin`. Bounded by `redis.timeout` like every operation.
    pub fn eval_detached(
        &self,
        plugin: &'static str,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let mut conn = self.manager.clone();
        let timeout = self.config.timeout.0;
        runtime.spawn(async move {
            let mut invocation = script.prepare_invoke();
            for k in &keys {
                invocation.key(k.as_str());
            }
            for a in &args {
                invocation.arg(a.as_str());
            }
            let result = tokio::time::timeout(timeout, invocation.invoke_async::<Value>(&mut conn));
            match result.await {
                Err(_) => crate::count_error(plugin, &StoreError::Timeout(timeout)),
                Ok(Err(e)) => crate::count_error(plugin, &StoreError::from(e)),
                Ok(Ok(_)) => {}
            }
        });
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Dropped from inside another runtime (a reload on the control service): do not
        // block that runtime's thread waiting for this one's tasks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `redis://[user[:password]@]host:port/db` (`rediss://` with TLS, `#insecure` without
/// verification), user and password percent-encoded.
fn url(c: &RedisConfig) -> String {
    let mut auth = String::new();
    if c.username.is_some() || c.password.is_some() {
        auth.push_str(&encode(c.username.as_deref().unwrap_or("")));
        if let Some(p) = &c.password {
            auth.push(':');
            auth.push_str(&encode(p));
        }
        auth.push('@');
    }
    match &c.tls {
        None => format!("redis://{auth}{}/{}", c.address, c.database),
        Some(t) if t.verify => format!("rediss://{auth}{}/{}", c.address, c.database),
        Some(_) => format!("rediss://{auth}{}/{}#insecure", c.address, c.database),
    }
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: Option<&str>, password: Option<&str>) -> RedisConfig {
        RedisConfig {
            address: "127.0.0.1:6379".into(),
            database: 2,
            username: user.map(Into::into),
            password: password.map(Into::into),
            timeout: sluice_core::config::units::HumanDuration(Duration::from_millis(100)),
            connect_timeout: sluice_core::config::units::HumanDuration(Duration::from_secs(1)),
            key_prefix: "sluice:".into(),
            tls: None,
        }
    }

    #[test]
    fn urls_encode_credentials() {
        assert_eq!(url(&config(None, None)), "redis://127.0.0.1:6379/2");
        assert_eq!(
            url(&config(Some("gw"), Some("p@ss:w/rd"))),
            "redis://gw:p%40ss%3Aw%2Frd@127.0.0.1:6379/2"
        );
        assert_eq!(url(&config(None, Some("s"))), "redis://:s@127.0.0.1:6379/2");
    }
}
