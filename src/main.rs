//! The `geokeeper` binary: `serve` runs a server; more subcommands come with the data
//! directory, the relay and the proxy.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use geokeeper_conf::Config;
use geokeeper_core::net::{serve, NetSettings};
use geokeeper_core::prep::PrepSettings;
use geokeeper_core::server::{Clock, Server, Settings};
use geokeeper_core::storage::MemoryLog;
use geokeeper_core::tree::DataTree;
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "geokeeper",
    version,
    about = "A ZooKeeper-compatible coordination server for deployments that span datacenters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. With no --config it runs on embedded defaults: 127.0.0.1:2181 and a
    /// data directory under the working directory.
    Serve {
        /// A zoo.cfg (ZooKeeper's dialect) or a geokeeper.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GEOKEEPER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => run_serve(config),
    }
}

fn run_serve(config: Option<PathBuf>) -> ExitCode {
    let (cfg, warnings) = match &config {
        Some(p) => match Config::from_env_and_file(Some(p)) {
            Ok(c) => c,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        },
        None => match Config::from_env_and_file(None) {
            Ok((c, w)) => (c, w),
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        },
    };
    for w in &warnings {
        warn!("{w}");
    }
    let addr = cfg.client_socket_addr();
    if config.is_none() {
        info!(
            "no --config given: running on embedded defaults (client port {addr}, data directory {}, tickTime {} ms)",
            cfg.data_dir.display(),
            cfg.tick_time_ms
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let now = Clock {
            mono_ms: 0,
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        let settings = Settings {
            // A standalone server hands out session ids with server id 1, as ZooKeeper's.
            server_id: if cfg.is_distributed() {
                cfg.server_id
            } else {
                1
            },
            tick_ms: cfg.tick_time_ms,
            min_session_timeout_ms: cfg.min_session_timeout(),
            max_session_timeout_ms: cfg.max_session_timeout(),
            prep: PrepSettings {
                extended_types: cfg.extended_types_enabled,
                skip_acl: cfg.skip_acl,
                reconfig_enabled: cfg.reconfig_enabled,
                digest_enabled: cfg.system_property("zookeeper.digest.enabled") != Some("false"),
            },
            super_digest: cfg.super_digest.clone(),
        };
        let server = Server::new(settings, DataTree::new(), now);
        let net = NetSettings {
            max_buffer: cfg.jute_maxbuffer as usize,
            container_check_interval: Duration::from_millis(
                cfg.container_check_interval_ms.max(1) as u64
            ),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutting down");
            let _ = stop_tx.send(true);
        });
        info!("serving ZooKeeper clients on {addr}");
        match serve(
            listener,
            server,
            Box::new(MemoryLog::new(10_000)),
            net,
            stop_rx,
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
