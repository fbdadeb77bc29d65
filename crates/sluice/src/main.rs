//! The `sluice` binary: `sluice -c FILE` runs the gateway, `sluice -t -c FILE` checks a
//! configuration and exits 0/1, `sluice tail --brokers ADDR TOPIC` prints records.

mod admin;
mod control;
mod guard;
mod live;
mod proxy;
mod registry;
mod server;
mod subscriptions;
mod tls;
mod upstream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the proxy allocates small, short-lived buffers per request; glibc malloc
/// showed up at ~10% of CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sluice: an HTTP ⇄ Kafka event gateway on Pingora.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The configuration file (YAML).
    #[arg(short = 'c', long = "conf", global = true)]
    conf: Option<String>,
    /// Check the configuration and exit (0 when valid, 1 with every error otherwise).
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Graceful upgrade: take over the listeners of the running instance (through
    /// `server.upgrade_sock`) once it gets SIGQUIT.
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the plugins this binary knows: name, priority (request phases run highest
    /// first) and kind (route, authentication, subscription).
    Plugins,
    /// Print the records of a topic, from the beginning of each partition.
    Tail {
        /// Bootstrap brokers (`host:port[,host:port]`).
        #[arg(long)]
        brokers: String,
        /// The topic.
        topic: String,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<usize>,
        /// Only print records produced from now on.
        #[arg(long)]
        from_end: bool,
        /// Print record bytes as they are; by default control characters (terminal
        /// escape sequences) are shown as `\u{..}` escapes.
        #[arg(long)]
        raw: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Some(Command::Plugins) => {
            print!("{}", registry::table());
            ExitCode::SUCCESS
        }
        Some(Command::Tail {
            brokers,
            topic,
            max,
            from_end,
            raw,
        }) => {
            let opts = sluice_kafka::tail::TailOptions {
                brokers,
                topic,
                max,
                from_end,
                raw,
            };
            match sluice_kafka::tail::run(&opts, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluice tail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let Some(conf) = cli.conf else {
                eprintln!("sluice: no configuration file; run `sluice -c FILE` (see --help)");
                return ExitCode::from(2);
            };
            server::run(&conf, cli.test, cli.upgrade)
        }
    }
}
