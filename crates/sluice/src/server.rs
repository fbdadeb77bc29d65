//! Putting the gateway together: load and check the configuration (every error at
//! once), then start Pingora with the Kafka background service, the proxy listeners
//! (which wait for Kafka to be ready), health checks, the webhook subscriptions and the
//! admin listener. After
//! Pingora's graceful shutdown, the Kafka producers are flushed and the rest counted.

use std::process::ExitCode;
use std::sync::Arc;

use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;

use sluice_core::config::{Config, ConfigDoc};
use sluice_kafka::runtime::{validate_properties, KafkaService};
use sluice_kafka::KafkaRuntime;

use crate::admin::AdminApp;
use crate::control::ControlService;
use crate::guard::GuardedApp;
use crate::live::Live;
use crate::proxy::{Gateway, GatewayState};
use crate::subscriptions::{Built, SubscriptionService};
use crate::tls::SniResolver;

/// Everything built from one configuration file.
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Kafka clusters (new ones not started).
    pub kafka: Arc<KafkaRuntime>,
    /// Routes and upstreams.
    pub state: GatewayState,
    /// Subscriptions (not started).
    pub subscriptions: Vec<Built>,
    /// Certificates of the HTTPS listeners (read at start; a reload checks them only).
    pub tls: Option<Arc<SniResolver>>,
}

/// The shared-store clients, one per `redis:` section, kept across reloads.
static STORES: once_cell::sync::Lazy<Arc<sluice_store::Stores>> =
    once_cell::sync::Lazy::new(Default::default);

/// The shared-store runtime of this process.
pub fn stores() -> &'static sluice_store::Stores {
    &STORES
}

/// Load `file` and build everything from it, or return every error. With `running`,
/// clusters whose settings did not change are reused (hot reload).
pub fn load(
    file: &str,
    running: Option<&KafkaRuntime>,
) -> Result<Loaded, sluice_core::config::ConfigErrors> {
    let mut doc = ConfigDoc::load(file)?;
    for e in validate_properties(&doc.config.clusters) {
        doc.error(e);
    }
    let kafka = Arc::new(KafkaRuntime::reusing(&doc.config.clusters, running));
    let registry = crate::registry::plugins(kafka.clone(), STORES.clone());
    let router = doc.build_routes(&registry);
    let upstreams = crate::upstream::build(&mut doc);
    let subscriptions = doc.build_subscriptions(&registry);
    let tls = match doc.config.server.tls.clone() {
        None => None,
        Some(t) => {
            let at = sluice_core::config::path::FieldPath::root()
                .key("server")
                .key("tls");
            match SniResolver::load(&t, &at) {
                Ok(r) => Some(r),
                Err(errors) => {
                    errors.into_iter().for_each(|e| doc.error(e));
                    None
                }
            }
        }
    };
    let config = doc.finish()?;
    Ok(Loaded {
        config,
        kafka,
        state: GatewayState { router, upstreams },
        subscriptions,
        tls,
    })
}

/// `sluice [-t] [-u] -c FILE`.
pub fn run(file: &str, test_only: bool, upgrade: bool) -> ExitCode {
    for init in [
        sluice_core::metrics::init,
        sluice_kafka::metrics::init,
        sluice_store::init,
        crate::control::init,
        || crate::registry::plugins(Default::default(), Default::default()).init_metrics(),
    ] {
        if let Err(e) = init() {
            eprintln!("sluice: {e}");
            return ExitCode::FAILURE;
        }
    }
    let loaded = match load(file, None) {
        Ok(l) => l,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "sluice: {file}: {} error(s); nothing started",
                errors.0.len()
            );
            return ExitCode::FAILURE;
        }
    };
    if test_only {
        println!("sluice: configuration file {file} is valid");
        return ExitCode::SUCCESS;
    }
    serve(file, loaded, upgrade)
}

fn serve(file: &str, loaded: Loaded, upgrade: bool) -> ExitCode {
    // A SIGHUP before the control service listens for it (`systemctl reload` right
    // after start) must not end the process, as its default action would.
    // SAFETY: `signal` with `SIG_IGN` installs no handler code; it only changes the
    // disposition, before any thread of the server exists.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let Loaded {
        config,
        kafka,
        state,
        subscriptions,
        tls,
    } = loaded;
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.0.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        work_stealing: config.server.work_stealing,
        upgrade_sock: config.server.upgrade_sock.clone(),
        pid_file: config.server.pid_file.clone(),
        ..ServerConf::default()
    };
    let opt = pingora_core::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let listen = config.server.listen.clone();
    let config_limits = config.server.limits;
    let server_config = config.server.clone();
    let tls_config = config.server.tls.clone();
    let admin_listen = config.admin.listen.clone();
    let live = Live::new(file, config, kafka.clone(), state);
    live.subscriptions.set_pending(subscriptions);

    let kafka_handle = server.add_service(background_service("kafka", KafkaService(kafka)));

    let mut proxy_app = pingora_proxy::http_proxy(
        &server.configuration,
        Gateway::new(live.clone(), &server_config),
    );
    let mut h2 = pingora_core::protocols::http::v2::server::default_h2_options();
    h2.max_concurrent_streams(config_limits.http2_max_concurrent_streams);
    proxy_app.h2_options = Some(h2);
    // An HTTP/2 connection without open streams is closed after a minute, as an idle
    // HTTP/1 keep-alive connection is.
    let mut server_options = pingora_core::apps::HttpServerOptions::default();
    server_options.h2_idle_timeout = Some(std::time::Duration::from_secs(60));
    proxy_app.server_options = Some(server_options);
    let mut proxy = Service::new(
        "sluice proxy".to_string(),
        GuardedApp::new(proxy_app, config_limits),
    );
    // Every client connection holds its read buffer for its whole life.
    let buffers = L4BufferSettings::new(
        config_limits.read_buffer.0 as usize,
        pingora_core::listeners::DEFAULT_L4_WRITE_BUFFER_SIZE,
    );
    for addr in &listen {
        proxy.add_listener(ListenerConfig::tcp(addr.as_str()).l4_buffer(buffers));
    }
    if let (Some(resolver), Some(t)) = (&tls, &tls_config) {
        for addr in &t.listen {
            match resolver.settings(t.http2) {
                Ok(s) => {
                    proxy.add_listener(ListenerConfig::tcp(addr.as_str()).tls(s).l4_buffer(buffers))
                }
                Err(e) => {
                    eprintln!("sluice: TLS listener {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let proxy_handle = server.add_service(proxy);
    proxy_handle.add_dependency(&kafka_handle);

    let control = server.add_service(background_service(
        "control",
        ControlService::new(live.clone()),
    ));
    control.add_dependency(&kafka_handle);

    let subs = server.add_service(background_service(
        "subscriptions",
        SubscriptionService(live.subscriptions.clone()),
    ));
    subs.add_dependency(&kafka_handle);

    let mut admin = Service::new("sluice admin".to_string(), AdminApp::new(live.clone()));
    admin.add_tcp(&admin_listen);
    admin.threads = Some(1);
    server.add_service(admin);

    log::info!(
        "sluice {} listening on {} (admin {})",
        env!("CARGO_PKG_VERSION"),
        listen
            .iter()
            .chain(tls_config.iter().flat_map(|t| t.listen.iter()))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        admin_listen
    );
    server.run(RunArgs::default());
    live.shutdown_kafka();
    ExitCode::SUCCESS
}
