//! The typed configuration sections. Field docs are the user documentation of the
//! configuration file (see `conf/reference.yaml`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::limits::RequestLimits;
use super::tls::TlsConfig;
use super::units::{ByteSize, HumanDuration};

/// `server:` — the proxy listeners and runtime.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses the proxy listens on, as `ip:port`. Default `["0.0.0.0:8080"]`.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Worker threads of the proxy. Default `2`.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// After SIGTERM, how long in-flight requests may take to finish. Default `5s`.
    #[serde(default = "default_grace")]
    pub grace_period: HumanDuration,
    /// Idle upstream connections kept for reuse, across all upstreams. Default `128`.
    #[serde(default = "default_pool")]
    pub upstream_keepalive_pool_size: usize,
    /// Let idle worker threads steal work from busy ones (one shared runtime) instead of
    /// one independent runtime per thread (nginx-style workers). Default `true`.
    #[serde(default = "default_true")]
    pub work_stealing: bool,
    /// Reload the configuration when the file changes (checked every second), as well as
    /// on SIGHUP. Default `false`.
    #[serde(default)]
    pub watch_config: bool,
    /// Unix socket through which a new instance started with `-u` takes over the
    /// listeners on SIGQUIT (graceful upgrade). Both instances must use the same one.
    /// Default `/tmp/sluice_upgrade.sock`.
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    /// PID file. Default `/tmp/sluice.pid`.
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
    /// Limits on what clients send (header size and time, connections per IP).
    #[serde(default)]
    pub limits: RequestLimits,
    /// Peers whose forwarding headers are believed (`10.0.0.0/8`, `192.0.2.7`, IPv6
    /// networks): from them, the client address (limits, logs, `{client_ip}`) is the
    /// rightmost untrusted `X-Forwarded-For` entry, and their `X-Forwarded-Proto` /
    /// `-Host` are passed on. From any other peer those headers are replaced. Default
    /// none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How request paths are normalized before routing (encoded slashes, `;`).
    #[serde(default)]
    pub paths: crate::normalize::PathRules,
    /// HTTPS listeners (TLS termination with rustls). Default none.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            threads: default_threads(),
            grace_period: default_grace(),
            upstream_keepalive_pool_size: default_pool(),
            work_stealing: true,
            watch_config: false,
            upgrade_sock: default_upgrade_sock(),
            pid_file: default_pid_file(),
            limits: RequestLimits::default(),
            trusted_proxies: Vec::new(),
            paths: Default::default(),
            tls: None,
        }
    }
}

fn default_listen() -> Vec<String> {
    vec!["0.0.0.0:8080".into()]
}
const fn default_threads() -> usize {
    2
}
const fn default_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
const fn default_pool() -> usize {
    128
}
const fn default_true() -> bool {
    true
}
fn default_upgrade_sock() -> String {
    "/tmp/sluice_upgrade.sock".into()
}
fn default_pid_file() -> String {
    "/tmp/sluice.pid".into()
}

/// `admin:` — the listener for `/metrics`, `/healthz`, `/readyz` and the read-only
/// admin API (`/v1/...`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener, as `ip:port`. Default `127.0.0.1:9180`.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token that `/metrics` and `/v1/...` require (`Authorization: Bearer
    /// <token>`; `/healthz` and `/readyz` stay open for probes). At least 16
    /// characters, from the environment (`${ADMIN_TOKEN}`). Required when `listen` is
    /// not a loopback address.
    #[serde(default)]
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9180".into()
}

/// `upstreams.<name>:` — a group of origin servers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Origin servers as `host:port` (host names are resolved at start-up).
    pub nodes: Vec<String>,
    /// How a node is chosen: `round_robin` (default) or `consistent_hash`.
    #[serde(default)]
    pub balance: Balance,
    /// With `consistent_hash`: the template whose value picks the node, e.g.
    /// `"{client_ip}"` (default) or `"{header.x-user-id}"`.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Timeout for opening a connection to a node. Default `5s`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Timeout for each read from a node (also the wait for the response header).
    /// Default `60s`.
    #[serde(default = "default_io_timeout")]
    pub read_timeout: HumanDuration,
    /// Timeout for each write to a node. Default `60s`.
    #[serde(default = "default_io_timeout")]
    pub write_timeout: HumanDuration,
    /// How long an idle pooled connection is kept. Keep it below the origin's own
    /// keep-alive timeout. Default `55s`.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// How many other nodes to try when a node fails: connection failures for every
    /// method, other failures only for idempotent methods. Default `1`.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The `Host` header sent upstream: `pass` (the client's, default), `node` (the
    /// node's address) or `rewrite` (the value of `upstream_host`).
    #[serde(default)]
    pub pass_host: PassHost,
    /// With `pass_host: rewrite`: the `Host` header to send.
    #[serde(default)]
    pub upstream_host: Option<String>,
    /// Optional active health check; unhealthy nodes are skipped.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
}

/// Node selection.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each node in turn.
    #[default]
    RoundRobin,
    /// Ketama consistent hashing over `hash_key`.
    ConsistentHash,
}

/// Which `Host` header goes upstream.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PassHost {
    /// The client's `Host`.
    #[default]
    Pass,
    /// The chosen node's `ip:port`.
    Node,
    /// `upstream_host`.
    Rewrite,
}

/// `upstreams.<name>.health_check:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// `tcp` (connect only, default) or `http` (a `GET` that must answer 2xx/3xx).
    #[serde(default)]
    pub kind: HealthCheckKind,
    /// With `http`: the path to request. Default `/`.
    #[serde(default = "default_hc_path")]
    pub path: String,
    /// With `http`: the `Host` header. Default `localhost`.
    #[serde(default = "default_hc_host")]
    pub host: String,
    /// Time between checks. Default `5s`.
    #[serde(default = "default_hc_interval")]
    pub interval: HumanDuration,
    /// Consecutive successes before a node counts as healthy again. Default `1`.
    #[serde(default = "default_one")]
    pub healthy_threshold: usize,
    /// Consecutive failures before a node counts as unhealthy. Default `1`.
    #[serde(default = "default_one")]
    pub unhealthy_threshold: usize,
}

/// Health check kind.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// A TCP connect.
    #[default]
    Tcp,
    /// An HTTP GET.
    Http,
}

const fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
const fn default_io_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
const fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(55))
}
const fn default_retries() -> u32 {
    1
}
fn default_hc_path() -> String {
    "/".into()
}
fn default_hc_host() -> String {
    "localhost".into()
}
const fn default_hc_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
const fn default_one() -> usize {
    1
}

/// `routes[]:` — which requests a route takes and what happens to them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique route id; used in metrics labels and events.
    pub id: String,
    /// Which requests the route takes.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// The upstream (by name) requests are proxied to. Optional when a plugin of the
    /// route answers requests itself (e.g. `mocking`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Plugins by name, each with its config (`{}` for defaults).
    #[serde(default)]
    pub plugins: BTreeMap<String, serde_yaml::Value>,
    /// Not in the file: each plugin's config as the plugin reads it, every default
    /// filled in (set when the routes are built; the admin API shows it).
    #[serde(skip)]
    pub effective: BTreeMap<String, serde_yaml::Value>,
    /// Largest request body accepted on the route: a larger `Content-Length` is refused
    /// with `413` before anything is proxied; a chunked body that grows past it ends the
    /// request (`413` when nothing was answered yet). Default: no limit (kafka-divert has
    /// its own `max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
}

/// `routes[].match:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Paths: exact (`/api/orders`) or prefix with a trailing `*` (`/api/orders/*`).
    pub paths: Vec<String>,
    /// HTTP methods; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Host names (`api.example.com`, or `*.example.com`); empty means any.
    #[serde(default)]
    pub hosts: Vec<String>,
}
