//! The floor Sluice's per-request cost is measured against (`benches/load.sh`): a
//! `ProxyHttp` with one fixed peer and nothing else, on the same Pingora version,
//! allocator and server settings (threads, work stealing, upstream keep-alive pool,
//! HTTP/2 options untouched) as `sluice`.
//!
//! Usage: `bare-pingora LISTEN PEER THREADS`, e.g. `bare-pingora 127.0.0.1:18084
//! 127.0.0.1:18081 1`.

use std::process::ExitCode;

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
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.peer.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, peer, threads] = args.as_slice() else {
        eprintln!("usage: bare-pingora LISTEN PEER THREADS");
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
    let mut proxy =
        pingora_proxy::http_proxy_service(&server.configuration, Bare { peer: peer.clone() });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
