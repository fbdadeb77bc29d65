//! The floor Sluice's per-request cost is measured against (`benches/load.sh`): a
//! `ProxyHttp` with one fixed peer and nothing else, on the same Pingora version,
//! allocator and server settings (threads, work stealing, upstream keep-alive pool,
//! HTTP/2 options untouched) as `sluice`.
//!
//! Usage: `bare-pingora [--timeouts] LISTEN PEER THREADS`, e.g. `bare-pingora 127.0.0.1:18084
//! 127.0.0.1:18081 1`.

use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    peer: String,
    /// Sluice's default upstream timeouts on the peer (connect 5 s, read/write 60 s,
    /// idle 55 s), to price Pingora's per-read timers apart from the rest.
    timeouts: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.peer.as_str(), false, String::new());
        if self.timeouts {
            peer.options.connection_timeout = Some(Duration::from_secs(5));
            peer.options.read_timeout = Some(Duration::from_secs(60));
            peer.options.write_timeout = Some(Duration::from_secs(60));
            peer.options.idle_timeout = Some(Duration::from_secs(55));
        }
        Ok(Box::new(peer))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (timeouts, args) = match args.split_first() {
        Some((first, rest)) if first == "--timeouts" => (true, rest),
        _ => (false, args.as_slice()),
    };
    let [listen, peer, threads] = args else {
        eprintln!("usage: bare-pingora [--timeouts] LISTEN PEER THREADS");
        return ExitCode::from(2);
    };
    let Ok(threads) = threads.parse() else {
        eprintln!("bare-pingora: THREADS must be a number");
        return ExitCode::from(2);
    };
    // Sluice's defaults: `server.work_stealing: true`, `upstream_keepalive_pool_size: 128`.
    let conf = ServerConf {
        threads,
        work_stealing: true,
        upstream_keepalive_pool_size: 128,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(
        &server.configuration,
        Bare {
            peer: peer.clone(),
            timeouts,
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
