//! Putting the gateway together: load and check the configuration (every error at
//! once), then start Pingora with the Kafka background service, the proxy listeners
//! (which wait for Kafka to be ready), health checks and the admin listener. After
//! Pingora's graceful shutdown, the Kafka producers are flushed and the rest counted.

use std::process::ExitCode;
use std::sync::Arc;

use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use pingora_proxy::ProxyServiceBuilder;
use sluice_core::config::{Config, ConfigDoc};
use sluice_kafka::runtime::{validate_properties, KafkaService};
use sluice_kafka::KafkaRuntime;

use crate::admin::AdminApp;
use crate::proxy::{Gateway, GatewayState};
use crate::upstream::Upstreams;

/// Everything built from one configuration file.
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Kafka clusters (not started).
    pub kafka: Arc<KafkaRuntime>,
    /// Routes and upstreams.
    pub state: GatewayState,
    /// Health-check services.
    pub health_checks: Vec<Box<dyn pingora_core::services::ServiceWithDependents>>,
}

/// Load `file` and build everything from it, or return every error.
pub fn load(file: &str) -> Result<Loaded, sluice_core::config::ConfigErrors> {
    let mut doc = ConfigDoc::load(file)?;
    for e in validate_properties(&doc.config.clusters) {
        doc.error(e);
    }
    let kafka = Arc::new(KafkaRuntime::new(&doc.config.clusters));
    let registry = crate::registry::plugins(kafka.clone());
    let router = doc.build_routes(&registry);
    let upstreams = Upstreams::build(&mut doc);
    let config = doc.finish()?;
    Ok(Loaded {
        config,
        kafka,
        state: GatewayState {
            router,
            upstreams: upstreams.by_name,
        },
        health_checks: upstreams.services,
    })
}

/// `sluice [-t] -c FILE`.
pub fn run(file: &str, test_only: bool) -> ExitCode {
    for init in [
        sluice_core::metrics::init,
        sluice_kafka::metrics::init,
        sluice_plugin_kafka_divert::metrics::init,
    ] {
        if let Err(e) = init() {
            eprintln!("sluice: {e}");
            return ExitCode::FAILURE;
        }
    }
    let loaded = match load(file) {
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
    serve(loaded);
    ExitCode::SUCCESS
}

fn serve(loaded: Loaded) {
    let Loaded {
        config,
        kafka,
        state,
        health_checks,
    } = loaded;
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.0.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        work_stealing: config.server.work_stealing,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let kafka_handle = server.add_service(background_service("kafka", KafkaService(kafka.clone())));

    let mut proxy = ProxyServiceBuilder::new(&server.configuration, Gateway::new(state))
        .name("sluice proxy")
        .build();
    for addr in &config.server.listen {
        proxy.add_tcp(addr);
    }
    let proxy_handle = server.add_service(proxy);
    proxy_handle.add_dependency(&kafka_handle);

    for hc in health_checks {
        server.add_boxed_service(hc);
    }

    let mut admin = Service::new("sluice admin".to_string(), AdminApp::new(kafka.clone()));
    admin.add_tcp(&config.admin.listen);
    admin.threads = Some(1);
    server.add_service(admin);

    log::info!(
        "sluice {} listening on {} (admin {})",
        env!("CARGO_PKG_VERSION"),
        config.server.listen.join(", "),
        config.admin.listen
    );
    server.run(RunArgs::default());

    for (cluster, outcome) in kafka.shutdown() {
        log::info!(
            "kafka cluster `{cluster}`: shutdown flush done ({} queued, {} purged)",
            outcome.queued,
            outcome.purged
        );
    }
}
