//! The connection behind a [`crate::Redis`]: one server through redis-rs's
//! `ConnectionManager` (multiplexed, reconnecting), or a Redis Cluster through its
//! cluster connection (one multiplexed connection per node, slots discovered and
//! followed), made on first use and again after a failed attempt.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{RedisResult, ScriptInvocation, TlsCertificates, TlsMode, Value};
use sluice_core::config::redis::RedisConfig;
use tokio::sync::OnceCell;

use crate::errors::StoreError;

/// A handle on the connection, cheap to clone into a task.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster: its client, and its connection once made.
    Cluster(Arc<(ClusterClient, OnceCell<ClusterConnection>)>),
}

impl Conn {
    /// The connection for `config`; its tasks run on `runtime`. Nothing is connected yet.
    pub(crate) fn open(
        config: &RedisConfig,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Self, StoreError> {
        let certs = || -> Result<TlsCertificates, StoreError> {
            let root_cert = match config.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
                Some(f) => Some(
                    std::fs::read(f)
                        .map_err(|e| StoreError::Connection(format!("reading {f}: {e}")))?,
                ),
                None => None,
            };
            Ok(TlsCertificates {
                client_tls: None,
                root_cert,
            })
        };
        if !config.cluster.is_empty() {
            let scheme = if config.tls.is_some() {
                "rediss"
            } else {
                "redis"
            };
            let nodes: Vec<String> = config
                .cluster
                .iter()
                .map(|n| format!("{scheme}://{n}"))
                .collect();
            let mut b = ClusterClient::builder(nodes)
                .connection_timeout(config.connect_timeout.0)
                .response_timeout(config.timeout.0)
                .retries(1);
            if let Some(u) = &config.username {
                b = b.username(u);
            }
            if let Some(p) = &config.password {
                b = b.password(p);
            }
            if let Some(tls) = &config.tls {
                b = b.tls(if tls.verify {
                    TlsMode::Secure
                } else {
                    TlsMode::Insecure
                });
                if tls.ca_file.is_some() {
                    b = b.certs(certs()?);
                }
            }
            return Ok(Self::Cluster(Arc::new((b.build()?, OnceCell::new()))));
        }
        let client = match &config.tls {
            None => redis::Client::open(url(config))?,
            Some(_) => redis::Client::build_with_tls(url(config), certs()?)?,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout.0))
            .set_response_timeout(Some(config.timeout.0))
            // Reconnect attempts are the next operations' business: a failed attempt is
            // not retried in the background, so an outage costs one attempt at a time.
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let _inside = runtime.enter();
        Ok(Self::Single(ConnectionManager::new_lazy_with_config(
            client,
            manager_config,
        )?))
    }

    /// Run `invocation` (EVALSHA, loading the script on `NOSCRIPT`: on every primary of
    /// a cluster).
    pub(crate) async fn invoke(self, invocation: ScriptInvocation<'static>) -> RedisResult<Value> {
        match self {
            Self::Single(mut m) => invocation.invoke_async(&mut m).await,
            Self::Cluster(cluster) => {
                let (client, conn) = &*cluster;
                let c = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?;
                invocation.invoke_async(&mut c.clone()).await
            }
        }
    }
}

/// `redis://[user[:password]@]host:port/db` (`rediss://` with TLS, `#insecure` without
/// verification), user and password percent-encoded.
pub(crate) fn url(c: &RedisConfig) -> String {
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
            cluster: Vec::new(),
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
