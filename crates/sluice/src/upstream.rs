//! Upstreams: a group of nodes behind a Pingora load balancer (round robin or Ketama
//! consistent hashing), optional active health checks (run by the control service, per
//! configuration generation), and the `HttpPeer` (with every timeout set from config)
//! for a chosen node.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::{
    consistent::KetamaHashing, BackendIter, BackendSelection, RoundRobin,
};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use sluice_core::config::decode::FieldError;
use sluice_core::config::{Balance, ConfigDoc, HealthCheckKind, UpstreamConfig};
use sluice_core::template::Template;

enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Hash(Arc<LoadBalancer<KetamaHashing>>),
}

/// One upstream, ready to pick nodes.
pub struct Upstream {
    balancer: Balancer,
    /// The config it was built from.
    pub config: UpstreamConfig,
    /// What consistent hashing hashes (`None` = round robin).
    pub hash_key: Option<Template>,
    nodes: usize,
    /// Each node's address as text (for logs), formatted once.
    names: Vec<(SocketAddr, Arc<str>)>,
    /// The node of a one-node upstream without health checks: nothing to choose.
    only: Option<Backend>,
}

/// Upstreams by name.
pub type Upstreams = BTreeMap<String, Arc<Upstream>>;

/// Build every upstream; resolution failures are reported into `doc`.
pub fn build(doc: &mut ConfigDoc) -> Upstreams {
    {
        let mut by_name = BTreeMap::new();
        let configs = doc.config.upstreams.clone();
        for (name, cfg) in configs {
            let at = ConfigDoc::upstream_path(&name);
            let mut addrs = Vec::new();
            for (i, node) in cfg.nodes.iter().enumerate() {
                match node.to_socket_addrs().map(|mut a| a.next()) {
                    Ok(Some(a)) => addrs.push(a),
                    _ => doc.error(FieldError::value(
                        at.key("nodes").index(i),
                        format!("{node:?} does not resolve to an address"),
                    )),
                }
            }
            if addrs.len() != cfg.nodes.len() || addrs.is_empty() {
                continue;
            }
            let hash_key = cfg
                .hash_key
                .as_deref()
                .map(Template::parse)
                .transpose()
                .ok()
                .flatten()
                .or_else(|| {
                    (cfg.balance == Balance::ConsistentHash)
                        .then(|| Template::parse("{client_ip}").ok())
                        .flatten()
                });
            let balancer = match cfg.balance {
                Balance::RoundRobin => Balancer::RoundRobin(balancer::<RoundRobin>(&addrs, &cfg)),
                Balance::ConsistentHash => Balancer::Hash(balancer::<KetamaHashing>(&addrs, &cfg)),
            };
            let up = Upstream {
                balancer,
                hash_key,
                nodes: addrs.len(),
                names: addrs
                    .iter()
                    .map(|a| (*a, Arc::from(a.to_string())))
                    .collect(),
                only: match (addrs.as_slice(), &cfg.health_check) {
                    ([a], None) => Backend::new(&a.to_string()).ok(),
                    _ => None,
                },
                config: cfg,
            };
            by_name.insert(name, Arc::new(up));
        }
        by_name
    }
}

fn balancer<S>(addrs: &[SocketAddr], cfg: &UpstreamConfig) -> Arc<LoadBalancer<S>>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    let backends: std::collections::BTreeSet<Backend> = addrs
        .iter()
        .filter_map(|a| Backend::new(&a.to_string()).ok())
        .collect();
    let discovery = Static::new(backends);
    let mut lb = LoadBalancer::<S>::from_backends(Backends::new(discovery));
    // Populate the selector now (static discovery resolves immediately).
    let _ = futures_now(lb.update());
    let Some(hc) = &cfg.health_check else {
        return Arc::new(lb);
    };
    let check: Box<dyn HealthCheck + Send + Sync> = match hc.kind {
        HealthCheckKind::Tcp => {
            let mut c = TcpHealthCheck::new();
            c.consecutive_success = hc.healthy_threshold;
            c.consecutive_failure = hc.unhealthy_threshold;
            c.peer_template.options.connection_timeout = Some(cfg.connect_timeout.0);
            c
        }
        HealthCheckKind::Http => {
            let mut c = HttpHealthCheck::new(&hc.host, false);
            c.consecutive_success = hc.healthy_threshold;
            c.consecutive_failure = hc.unhealthy_threshold;
            c.peer_template.options.connection_timeout = Some(cfg.connect_timeout.0);
            c.peer_template.options.read_timeout = Some(cfg.read_timeout.0);
            c.req.set_uri(hc.path.parse().unwrap_or_default());
            Box::new(c)
        }
    };
    lb.set_health_check(check);
    lb.health_check_frequency = Some(hc.interval.0);
    Arc::new(lb)
}

/// Run a future that is known to complete without waiting (static discovery).
fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

impl Upstream {
    /// Run the active health checks until `shutdown` fires (nothing without checks).
    pub async fn run_health_checks(&self, shutdown: ShutdownWatch) {
        if self.config.health_check.is_none() {
            return;
        }
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.start(shutdown).await,
            Balancer::Hash(lb) => lb.start(shutdown).await,
        }
    }

    /// How many nodes the upstream has.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Pick a healthy node not in `tried`.
    pub fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Option<Backend> {
        if let Some(b) = &self.only {
            return b
                .addr
                .as_inet()
                .is_none_or(|a| !tried.contains(a))
                .then(|| b.clone());
        }
        let accept = |b: &Backend, healthy: bool| {
            healthy && b.addr.as_inet().is_none_or(|a| !tried.contains(a))
        };
        let max = 256;
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, max, accept),
            Balancer::Hash(lb) => lb.select_with(key, max, accept),
        }
    }

    /// Each node's address and whether it is healthy (always, without health checks).
    pub fn nodes_health(&self) -> Vec<(String, bool)> {
        let backends = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        };
        backends
            .get_backend()
            .iter()
            .map(|b| {
                let name = match b.addr.as_inet() {
                    Some(a) => self.name_of(a).to_string(),
                    None => b.addr.to_string(),
                };
                (name, backends.ready(b))
            })
            .collect()
    }

    /// `addr` as text.
    pub fn name_of(&self, addr: &SocketAddr) -> Arc<str> {
        self.names
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| Arc::from(addr.to_string()))
    }

    /// The peer for `backend`, with every timeout from the config.
    pub fn peer(&self, backend: &Backend) -> HttpPeer {
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        let c = &self.config;
        peer.options.connection_timeout = Some(c.connect_timeout.0);
        peer.options.read_timeout = Some(c.read_timeout.0);
        peer.options.write_timeout = Some(c.write_timeout.0);
        peer.options.idle_timeout = Some(c.idle_timeout.0);
        peer
    }
}
