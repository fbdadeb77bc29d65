//! The connection to Redis. redis-rs's `ConnectionManager` multiplexes every operation
//! of the process over one connection and reconnects after a loss; its tasks run on a
//! one-thread runtime of the store's own, so that no proxy thread drives them and a
//! reload never strands them. Each operation is bounded by `redis.timeout`, whatever
//! the connection is doing (connecting, reconnecting, a server that stopped reading).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use redis::{Script, ScriptInvocation, Value};
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::redis::RedisConfig;

use crate::connection::Conn;
use crate::errors::StoreError;

/// The shared-store runtime: the plugin factories hold it and ask it for the client of
/// a `redis:` section.
#[derive(Default)]
pub struct Stores {
    /// Every client some configuration still uses (the plugins hold them): a reload
    /// that keeps the section gets the same client, so the same connection.
    clients: Mutex<Vec<Weak<Redis>>>,
}

impl Stores {
    /// No client yet: the first plugin with `policy: redis` makes one.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Redis>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client for `config`: one already in use for the same section, else a new
    /// one. Connecting happens on first use.
    pub fn client(&self, config: &RedisConfig) -> Result<Arc<Redis>, StoreError> {
        let mut clients = self.lock();
        clients.retain(|w| w.strong_count() > 0);
        if let Some(r) = in_use(&clients, config) {
            return Ok(r);
        }
        let r = Arc::new(Redis::new(config.clone())?);
        clients.push(Arc::downgrade(&r));
        Ok(r)
    }

    /// The client a plugin asked for with `policy: redis` at `at` (the field naming
    /// the policy) needs: the one for the configuration's `redis:` section, or the
    /// config error saying what is missing.
    pub fn client_for(
        &self,
        redis: Option<&RedisConfig>,
        at: &FieldPath,
    ) -> Result<Arc<Redis>, FieldError> {
        let Some(config) = redis else {
            return Err(FieldError::value(
                at.clone(),
                "`redis` needs a valid top-level `redis:` section",
            ));
        };
        self.client(config)
            .map_err(|e| FieldError::value(at.clone(), e.to_string()))
    }

    /// The client in use for `config`, if a configuration uses one.
    pub fn find(&self, config: &RedisConfig) -> Option<Arc<Redis>> {
        in_use(&self.lock(), config)
    }
}

/// The live client among `clients` made for `config`.
fn in_use(clients: &[Weak<Redis>], config: &RedisConfig) -> Option<Arc<Redis>> {
    clients
        .iter()
        .filter_map(Weak::upgrade)
        .find(|r| r.config == *config)
}

/// One Redis server, or one Redis Cluster.
pub struct Redis {
    config: RedisConfig,
    conn: Conn,
    /// Runs the connection's tasks and every operation (taken only when dropped).
    runtime: Option<tokio::runtime::Runtime>,
    /// Whether the last operation got an answer (true until one failed).
    answered: AtomicBool,
}

impl Redis {
    fn new(config: RedisConfig) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-redis")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Connection(format!("starting the Redis runtime: {e}")))?;
        let conn = Conn::open(&config, &runtime)?;
        Ok(Self {
            config,
            conn,
            runtime: Some(runtime),
            answered: AtomicBool::new(true),
        })
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// `prefix` + a request-controlled `key`: `k:<key>` up to 64 bytes, else
    /// `h:<first 128 bits of its SHA-256>`, so that a client cannot make Sluice write
    /// huge keys and a raw key can never name a hashed one.
    pub fn bounded_key(prefix: &str, key: &str) -> String {
        use sluice_core::digest::{hex, sha256};
        if key.len() <= 64 {
            format!("{prefix}k:{key}")
        } else {
            format!("{prefix}h:{}", hex(&sha256(key.as_bytes())[..16]))
        }
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
        let Some(runtime) = &self.runtime else {
            return Err(StoreError::Connection("the client is shutting down".into()));
        };
        let timeout = self.config.timeout.0;
        // Waited for here, on the caller's runtime: bounded even if this client's
        // runtime is stuck.
        let task = runtime.spawn(self.conn.clone().invoke(invocation(script, keys, args)));
        let result = match tokio::time::timeout(timeout, task).await {
            Err(_) => Err(StoreError::Timeout(timeout)),
            Ok(Err(join)) => Err(StoreError::Connection(format!("operation failed: {join}"))),
            Ok(Ok(r)) => r.map_err(|e| StoreError::of_operation(e, timeout)),
        };
        // A server error is an answer: the store is reachable.
        let answered = !matches!(
            result,
            Err(StoreError::Timeout(_) | StoreError::Connection(_))
        );
        self.answered.store(answered, Ordering::Relaxed);
        result
    }

    /// Run `script` without waiting for its answer (cleanup from a `Drop`); a failure
    /// is counted for `plugin`. Bounded by `redis.timeout` like every operation.
    pub fn eval_detached(
        &self,
        plugin: &'static str,
        script: &'static Script,
        keys: &[&str],
        args: &[String],
    ) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let timeout = self.config.timeout.0;
        let run = self.conn.clone().invoke(invocation(script, keys, args));
        runtime.spawn(async move {
            let e = match tokio::time::timeout(timeout, run).await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => StoreError::of_operation(e, timeout),
                Err(_) => StoreError::Timeout(timeout),
            };
            crate::count_error(plugin, &e);
        });
    }

    /// Whether the last operation got an answer from Redis (`/readyz` reports it).
    pub fn answering(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }
}

/// `script` invoked with `keys` and `args` (owned: it can move into a task).
fn invocation(
    script: &'static Script,
    keys: &[&str],
    args: &[String],
) -> ScriptInvocation<'static> {
    let mut invocation = script.prepare_invoke();
    for k in keys {
        invocation.key(*k);
    }
    for a in args {
        invocation.arg(a.as_str());
    }
    invocation
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
