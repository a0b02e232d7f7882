//! The `geokeeper` binary: `serve` runs a server; more subcommands come with the data
//! directory, the relay and the proxy.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

mod bench;
mod certs;
mod tools;

/// mimalloc: glibc's per-thread arenas kept ~60 B per znode of freed request, log and
/// snapshot buffers resident after populating a million znodes; mimalloc returns them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use geokeeper_conf::Config;
use geokeeper_core::acl::AuthProviders;
use geokeeper_core::datadir::{restore, version_dir};
use geokeeper_core::four_letter::{ExtraMntr, FourLetterSettings};
use geokeeper_core::net::SnapshotSettings;
use geokeeper_core::net::{serve_replica, NetSettings, Upstream};
use geokeeper_core::prep::PrepSettings;
use geokeeper_core::sasl::SaslConfig;
use geokeeper_core::server::{Clock, Role, Server, Settings};
use geokeeper_core::snapshot;
use geokeeper_core::txnlog::FileTxnLog;
use geokeeper_relay::gateway::{self, GatewaySettings};
use geokeeper_relay::learner_link::LinkSettings;
use geokeeper_relay::publisher::{self, LeaderClock, PublisherSettings, PublisherStats};
use geokeeper_relay::quic::{Identity, RelayTls};
use geokeeper_relay::quic_observer::{self, ObserverSettings, ObserverStats};
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
    /// Run a per-room client proxy: one ZooKeeper endpoint that places each session on a
    /// healthy server of its room by weight (see the README's "The client proxy").
    Proxy {
        /// A geokeeper.toml with a [proxy] section, or a zoo.cfg with proxy.* keys.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Transaction log tools.
    Log {
        #[command(subcommand)]
        cmd: LogCmd,
    },
    /// Snapshot tools.
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Removes old snapshots and logs, keeping the newest COUNT snapshots and the logs they
    /// need (like zkCleanup.sh). Either --config, or the directories.
    Purge {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// dataLogDir (then snapDir; defaults to dataLogDir), as PurgeTxnLog takes them.
        dirs: Vec<PathBuf>,
        #[arg(short = 'n', long = "count", default_value_t = 3)]
        count: usize,
    },
    /// Load generator for any ZooKeeper-compatible endpoint, and the side-by-side
    /// comparison with Apache ZooKeeper 3.8 (`bench compare`).
    Bench(Box<bench::BenchArgs>),
    /// A development CA and relay node certificates (PEM) for a topology: ca.pem (trust
    /// store), ca-key.pem (reused by later runs), NAME.pem (each node's key store).
    Certs(certs::CertsArgs),
}

#[derive(Subcommand)]
enum LogCmd {
    /// Prints each transaction of a log file (like ZooKeeper's TxnLogToolkit).
    Dump {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Checks a data directory as startup does (framing and checksums of every log file,
    /// then the newest good snapshot and the replay after it: decoding, zxid gaps) and
    /// reports the first problem.
    Check {
        dir: PathBuf,
        /// Cut a torn tail (a crash mid-write) back to the last whole transaction.
        #[arg(long)]
        truncate: bool,
        /// Where the snapshots are, when dataLogDir is set apart from dataDir (default: DIR).
        #[arg(long, value_name = "DIR")]
        snap_dir: Option<PathBuf>,
        /// Accept logs without any snapshot (`zookeeper.snapshot.trust.empty=true`).
        #[arg(long)]
        trust_empty: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Prints every znode and session of a snapshot (like ZooKeeper's SnapshotFormatter).
    Dump {
        file: PathBuf,
        #[arg(long)]
        json: bool,
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
        Command::Proxy { config } => run_proxy(&config),
        Command::Bench(args) => bench::main(*args),
        Command::Certs(args) => certs::main(args),
        Command::Log {
            cmd: LogCmd::Dump { file, json },
        } => tools::log_dump(&file, json),
        Command::Log {
            cmd:
                LogCmd::Check {
                    dir,
                    truncate,
                    snap_dir,
                    trust_empty,
                },
        } => tools::log_check(&dir, snap_dir.as_deref(), truncate, trust_empty),
        Command::Snapshot {
            cmd: SnapshotCmd::Dump { file, json },
        } => tools::snapshot_dump(&file, json),
        Command::Purge {
            config,
            dirs,
            count,
        } => {
            let (log_dir, snap_dir) = match (&config, dirs.as_slice()) {
                (Some(c), _) => match Config::load(c) {
                    Ok((cfg, _)) => (cfg.txn_log_dir().to_owned(), cfg.data_dir.clone()),
                    Err(e) => {
                        error!("{e}");
                        return ExitCode::from(2);
                    }
                },
                (None, [l]) => (l.clone(), l.clone()),
                (None, [l, s]) => (l.clone(), s.clone()),
                _ => {
                    error!(
                        "usage: geokeeper purge (--config FILE | dataLogDir [snapDir]) -n count"
                    );
                    return ExitCode::from(2);
                }
            };
            tools::purge_cmd(&log_dir, &snap_dir, count)
        }
    }
}

fn run_serve(config: Option<PathBuf>) -> ExitCode {
    // Every client connection is a descriptor: take what the hard limit allows.
    bench::sys::raise_nofile_limit();
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
    // Never a standalone server with an empty tree beside an ensemble it was configured
    // to be part of: a voting role is refused for good, the observer role until it exists.
    if let Err(e) = cfg.refuse_voting() {
        error!("{e}");
        return ExitCode::from(2);
    }
    // An ensemble configuration that passed refuse_voting makes this server an observer
    // of that ensemble: the gateway.
    let gateway = cfg.is_distributed();
    if gateway {
        info!(
            "observer {} of a {}-voter ensemble: following its leader (the gateway)",
            cfg.server_id,
            cfg.voters().count()
        );
    }
    // Quorum TLS (sslQuorum=true with PEM key and trust stores), for the gateway's link.
    let quorum_tls = match cfg.quorum_tls() {
        Ok(Some(t)) if gateway => {
            match geokeeper_relay::tls::QuorumTls::from_pem_files(
                &t.key_store,
                &t.trust_store,
                t.hostname_verification,
            ) {
                Ok(tls) => {
                    info!(
                        "quorum TLS: key store {}, trust store {}, hostname verification {}",
                        t.key_store.display(),
                        t.trust_store.display(),
                        t.hostname_verification
                    );
                    Some(tls)
                }
                Err(e) => {
                    error!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
        Ok(_) => None,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    // The QUIC relay: a publisher (relayPort), an observer of relay upstreams, or both.
    let relay_cfg = match cfg.relay() {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let relay_observer = cfg.is_relay_observer();
    if relay_observer && !gateway && cfg.server_id == 0 {
        error!("a relay observer needs its server id (myid in dataDir, or server.server_id): the top byte of the session ids it hands out");
        return ExitCode::from(2);
    }
    let relay_tls = match (&relay_cfg.cert, &relay_cfg.key, &relay_cfg.ca) {
        (Some(c), Some(k), Some(ca)) => match RelayTls::from_pem(c, k, ca) {
            Ok(tls) => Some(tls),
            Err(e) => {
                error!("relay TLS: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    // The identity this server shows its relay peers is its certificate's: it must be the
    // node and room the configuration says this server is, or peers would know it as
    // another (an observer's sessions carry its node id).
    if let Some(tls) = &relay_tls {
        let me = match tls.identity() {
            Ok(id) => id,
            Err(e) => {
                error!("relay TLS: this server's own certificate: {e}");
                return ExitCode::from(2);
            }
        };
        if relay_observer && me.node != cfg.server_id {
            error!(
                "relay TLS: this server's certificate names {me}, but its server id (myid) is {}",
                cfg.server_id
            );
            return ExitCode::from(2);
        }
        if let Some(room) = relay_cfg.room.as_ref().filter(|r| **r != me.room) {
            error!("relay TLS: this server's certificate names {me}, but its configuration puts it in room {room}");
            return ExitCode::from(2);
        }
        info!("relay identity: {me}");
    }
    if relay_observer {
        info!(
            "observer {} following relay upstreams {}",
            cfg.server_id,
            relay_cfg
                .upstreams
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let replica = gateway || relay_observer;
    if gateway && quorum_tls.is_none() {
        warn!("the quorum link to the leader is not encrypted (no sslQuorum): it carries the whole tree and every write in the clear");
    }
    let inert = cfg.inert_settings();
    if !inert.is_empty() {
        info!(
            "recognised but not acted on (none of them changes a guarantee): {}",
            inert.join(", ")
        );
    }
    let addr = cfg.client_socket_addr();
    if config.is_none() {
        info!(
            "no --config given: running on embedded defaults (client port {addr}, data directory {}, tickTime {} ms)",
            cfg.data_dir.display(),
            cfg.tick_time_ms
        );
    }
    // Authentication: the providers `authProvider.N` registers, and the SASL login of the
    // JAAS `Server` section, which ZooKeeper also sets up before it serves; a login that
    // cannot work stops the server before it listens.
    let props = &cfg.system_properties;
    let (auth_providers, provider_warnings) =
        AuthProviders::from_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for w in &provider_warnings {
        warn!("{w}");
    }
    // AuthenticationHelper.validateConfiguredProperties: every enforced scheme needs a
    // registered provider (`super` never has one), or the server does not start.
    let enforce_auth_schemes = cfg.enforced_auth_schemes();
    if let Some(schemes) = &enforce_auth_schemes {
        if let Some(s) = schemes.iter().find(|s| auth_providers.get(s).is_none()) {
            error!(
                "Authentication scheme {s} is not available. (zookeeper.enforce.auth.schemes; registered: {})",
                auth_providers.list()
            );
            return ExitCode::from(2);
        }
        info!(
            "zookeeper.enforce.auth.enabled = true, zookeeper.enforce.auth.schemes = [{}]",
            schemes.join(", ")
        );
    }
    let sasl = match SaslConfig::configure(cfg.jaas_config.as_deref(), props) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(file), None) = (&cfg.jaas_config, &sasl) {
        info!(
            "no SASL login section in {}: SASL authentication is off",
            file.display()
        );
    }
    // One thread runs every connection and the core: the core is one task whatever the
    // runtime, and at one request per connection in flight a second worker only added
    // cross-thread wake-ups (measured: 17% more CPU per read, p99 1.9× higher). The log,
    // the snapshot writer, the purge task and four-letter words run on their own threads.
    let rt = match tokio::runtime::Builder::new_current_thread()
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
        // `leaderServes` (zookeeper.leaderServes; only "no" turns it off, as in
        // `Leader.lead`): a leader — a gateway, or a server others follow over the relay —
        // then takes no client sessions. A server with no followers is no leader, and a
        // ZooKeeper standalone server ignores the setting too.
        let leader_serves = cfg.system_property("zookeeper.leaderServes") != Some("no");
        let leads = gateway || (!replica && relay_cfg.listen.is_some());
        if !leader_serves && !leads {
            warn!("leaderServes=no is ignored: this server leads nobody (no relayPort, no ensemble)");
        }
        let serves_clients = leader_serves || !leads;
        if !serves_clients {
            info!("leaderServes=no: client sessions are refused here; clients go to the observers");
        }
        let settings = Settings {
            role: if replica {
                Role::Observer
            } else {
                Role::Standalone
            },
            local_sessions: replica && cfg.local_sessions_enabled(),
            local_sessions_upgrading: cfg.local_sessions_upgrading_enabled(),
            read_only_mode: replica && cfg.readonly_mode_enabled,
            // A standalone server hands out session ids with server id 1, as ZooKeeper's.
            server_id: if replica {
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
                enforce_quota: cfg.enforce_quota,
                auth_providers,
            },
            super_digest: cfg.super_digest.clone(),
            sasl: sasl.map(std::sync::Arc::new),
            enforce_auth_schemes,
            max_reply_bytes: cfg.jute_maxbuffer as usize,
            serves_clients,
        };
        // The data directory: ZooKeeper's version-2 layout, restored before serving.
        let snap_dir = version_dir(&cfg.data_dir);
        let log_dir = version_dir(cfg.txn_log_dir());
        let trust_empty = cfg.system_property("zookeeper.snapshot.trust.empty") == Some("true");
        let compression = snapshot::Compression::from_property(
            cfg.system_property("zookeeper.snapshot.compression.method"),
        );
        if compression == snapshot::Compression::Snappy {
            error!("zookeeper.snapshot.compression.method=snappy is not supported; use gz or leave it unset");
            return ExitCode::from(2);
        }
        let restored = match restore(&snap_dir, &log_dir, trust_empty) {
            Ok(r) => r,
            Err(e) => {
                error!("cannot load the data directory: {e}");
                return ExitCode::from(3);
            }
        };
        // Loading read the whole snapshot into one buffer, now freed: hand it back to the
        // system now rather than whenever the allocator next tidies up.
        // SAFETY: mi_collect only walks mimalloc's own free lists; it takes no pointers.
        unsafe { libmimalloc_sys::mi_collect(true) };
        if restored.snapshot_zxid.is_none() {
            // Like ZooKeeper, a fresh data directory starts with snapshot.0, so that
            // ZooKeeper itself can take the directory over (it refuses logs without one).
            if let Err(e) =
                snapshot::write_tree_as(&snap_dir, &restored.tree, &[], compression)
            {
                error!(
                    "cannot write the initial snapshot in {}: {e}",
                    snap_dir.display()
                );
                return ExitCode::from(3);
            }
        }
        let log = match FileTxnLog::open(
            &log_dir,
            cfg.pre_alloc_size_kb.max(4) * 1024,
            cfg.force_sync,
            cfg.fsync_warning_threshold_ms,
            restored.tree.last_zxid(),
        ) {
            Ok(l) => l,
            Err(e) => {
                error!(
                    "cannot open the transaction log in {}: {e}",
                    log_dir.display()
                );
                return ExitCode::from(3);
            }
        };
        let replayed = restored.replayed;
        let sessions = restored.sessions.clone();
        let start_zxid = restored.tree.last_zxid();
        let mut server = Server::new(settings, restored.tree, now);
        server.restore_sessions(&sessions, now);
        if cfg.enforce_quota {
            // ZooKeeperServer's static initializer says so, in these words.
            info!("zookeeper.enforceQuota = true, Quota Enforce enables");
        }
        let net = NetSettings {
            max_buffer: cfg.jute_maxbuffer as usize,
            container_check_interval: Duration::from_millis(
                cfg.container_check_interval_ms.max(1) as u64
            ),
            snapshots: Some(SnapshotSettings {
                dir: snap_dir.clone(),
                snap_count: cfg.snap_count.max(2) as u64,
                snap_size_limit: u64::try_from(cfg.snap_size_limit_kb)
                    .ok()
                    .filter(|&kb| kb > 0)
                    .map(|kb| kb.saturating_mul(1024)),
                at_start: replayed > 0,
                compression,
            }),
            four_letter: four_letter_settings(&cfg, &snap_dir, &log_dir),
            limits: client_limits(&cfg),
            publish: None,
            own_clock: None,
        };
        let mut net = net;
        // Autopurge (`DatadirCleanupManager`): at start, then every purgeInterval hours.
        info!(
            "autopurge.snapRetainCount set to {}",
            cfg.autopurge_snap_retain_count
        );
        info!(
            "autopurge.purgeInterval set to {}",
            cfg.autopurge_purge_interval_hours
        );
        if cfg.autopurge_purge_interval_hours > 0 {
            let every = Duration::from_secs(cfg.autopurge_purge_interval_hours as u64 * 3600);
            let keep = (cfg.autopurge_snap_retain_count as usize).max(3);
            let (snaps, logs) = (snap_dir.clone(), log_dir.clone());
            std::thread::Builder::new()
                .name("PurgeTask".into())
                .spawn(move || loop {
                    info!("Purge task started.");
                    match geokeeper_core::datadir::purge(&snaps, &logs, keep) {
                        Ok(removed) => {
                            for p in removed {
                                info!("Removing file: {}", p.display());
                            }
                            info!("Purge task completed.");
                        }
                        Err(e) => error!("Error occurred while purging: {e}"),
                    }
                    std::thread::sleep(every);
                })
                .ok();
        } else {
            info!("Purge task is not scheduled.");
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutting down");
            let _ = stop_tx.send(true);
        });
        // The core's link: inputs from the upstream driver and the publisher's
        // subscribers, packets for the upstream.
        let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
        let clock = std::sync::Arc::new(LeaderClock::default());
        let mut extra: Vec<ExtraMntr> = Vec::new();
        if gateway {
            let tick = Duration::from_millis(cfg.tick_time_ms as u64);
            let link = LinkSettings {
                quorum_addrs: learner_masters(&cfg),
                connect_timeout: tick * cfg.init_limit,
                sync_timeout: tick * cfg.init_limit,
                follow_timeout: tick * cfg.sync_limit,
                max_len: cfg.jute_maxbuffer as usize * 2,
                first: 0,
                tls: quorum_tls.clone(),
            };
            let gs = GatewaySettings {
                link,
                server_id: cfg.server_id,
                snap_dir: snap_dir.clone(),
                log_dir: log_dir.clone(),
                compression,
                max_backoff: Duration::from_secs(1),
                // With observer masters, start at a random voter, as ZooKeeper shuffles
                // them: observers spread over the followers.
                spread: cfg.observer_master_port().is_some(),
            };
            tokio::spawn(gateway::run(gs, in_tx.clone(), out_rx, stop_rx.clone()));
        } else if relay_observer {
            let Some(tls) = &relay_tls else {
                error!("a relay observer needs relay.keyStore.location and relay.trustStore.location");
                return ExitCode::from(2);
            };
            let client_config = match tls.client_config() {
                Ok(c) => c,
                Err(e) => {
                    error!("relay TLS: {e}");
                    return ExitCode::from(2);
                }
            };
            let os = ObserverSettings {
                // Its own room's relays first, the first try spread by weight over the
                // room's observers (by node id); the rest as listed.
                upstreams: geokeeper_conf::hosts::attempt_order(
                    &relay_cfg.upstreams,
                    relay_cfg.room.as_deref(),
                    cfg.server_id,
                )
                .into_iter()
                .map(|h| h.address)
                .collect(),
                client_config,
                snap_dir: snap_dir.clone(),
                compression,
                max_backoff: Duration::from_secs(1),
                max_lag_ms: relay_cfg.max_lag_ms,
            };
            let stats = std::sync::Arc::new(ObserverStats::default());
            let st = stats.clone();
            extra.push(ExtraMntr(std::sync::Arc::new(move || st.mntr_lines())));
            tokio::spawn(quic_observer::run(
                os,
                in_tx.clone(),
                out_rx,
                clock.clone(),
                stats,
                stop_rx.clone(),
            ));
        }
        if let Some(listen) = relay_cfg.listen {
            let Some(tls) = &relay_tls else {
                error!("relayPort needs relay.keyStore.location and relay.trustStore.location");
                return ExitCode::from(2);
            };
            let server_config = match tls.server_config(relay_cfg.buffer_bytes as u64) {
                Ok(c) => c,
                Err(e) => {
                    error!("relay TLS: {e}");
                    return ExitCode::from(2);
                }
            };
            let (pub_tx, pub_rx) = tokio::sync::mpsc::unbounded_channel();
            net.publish = Some(pub_tx);
            let mut ps = PublisherSettings::new(listen, snap_dir.clone(), log_dir.clone());
            ps.allowed = relay_cfg
                .subscribers
                .iter()
                .map(|(node, room)| Identity {
                    room: room.clone(),
                    node: *node,
                })
                .collect();
            ps.start_zxid = start_zxid;
            ps.leader = !replica;
            ps.own_clock = !relay_observer;
            if ps.own_clock {
                net.own_clock = Some(clock.clone());
            }
            ps.retain_txns = relay_cfg.retain_txns;
            ps.diff_max_txns = relay_cfg.diff_max_txns;
            ps.buffer_bytes = relay_cfg.buffer_bytes;
            ps.heartbeat = Duration::from_millis(relay_cfg.heartbeat_ms.max(10));
            let stats = std::sync::Arc::new(PublisherStats::default());
            let st = stats.clone();
            extra.push(ExtraMntr(std::sync::Arc::new(move || st.mntr_lines())));
            let (core, clock, stop) = (in_tx.clone(), clock.clone(), stop_rx.clone());
            tokio::spawn(async move {
                if let Err(e) =
                    publisher::run(ps, server_config, pub_rx, core, clock, stats, stop).await
                {
                    error!("the relay publisher cannot listen on {listen}: {e}");
                }
            });
        }
        if !extra.is_empty() {
            net.four_letter.extra_mntr = Some(ExtraMntr(std::sync::Arc::new(move || {
                extra.iter().flat_map(|f| (f.0)()).collect()
            })));
        }
        drop(in_tx);
        let upstream = Some(Upstream {
            inputs: in_rx,
            to_leader: out_tx,
        });
        info!("serving ZooKeeper clients on {addr}");
        match serve_replica(listener, server, Box::new(log), net, upstream, stop_rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Where the gateway looks for its learner master: each voter's quorum port (only the
/// leader listens there), or with `observerMasterPort` each voter's ObserverMaster
/// (followers serve observers there, keeping them off the leader).
fn learner_masters(cfg: &Config) -> Vec<String> {
    let master = cfg.observer_master_port();
    cfg.voters()
        .filter_map(|v| v.primary())
        .map(|a| {
            let port = master.unwrap_or(a.quorum_port);
            if a.host.contains(':') {
                format!("[{}]:{port}", a.host)
            } else {
                format!("{}:{port}", a.host)
            }
        })
        .collect()
}

/// What the four-letter words obey (`4lw.commands.whitelist`) and what `conf` reports.
fn four_letter_settings(
    cfg: &Config,
    snap_dir: &std::path::Path,
    log_dir: &std::path::Path,
) -> FourLetterSettings {
    let mut s = FourLetterSettings::default();
    s.set_whitelist(|w| cfg.four_letter_word_enabled(w));
    s.client_port = cfg.client_port;
    // No secure client port, and the listen backlog is the runtime's default (geokeeper
    // ignores `secureClientPort` and `clientPortListenBacklog`): -1 as ZooKeeper prints both.
    s.secure_client_port = -1;
    s.listen_backlog = -1;
    s.snap_dir = std::path::absolute(snap_dir).unwrap_or_else(|_| snap_dir.to_owned());
    s.log_dir = std::path::absolute(log_dir).unwrap_or_else(|_| log_dir.to_owned());
    s.tick_ms = cfg.tick_time_ms;
    s.max_client_cnxns = cfg.max_client_cnxns;
    s.min_session_timeout_ms = cfg.min_session_timeout();
    s.max_session_timeout_ms = cfg.max_session_timeout();
    s.server_id = cfg.server_id;
    s
}

/// The client port's limits from the configuration (`maxClientCnxns`, `maxCnxns`,
/// `globalOutstandingLimit`, `jute.maxbuffer` + `zookeeper.jute.maxbuffer.extrasize`).
fn client_limits(cfg: &Config) -> geokeeper_core::limits::ClientLimits {
    let extra = cfg
        .system_property("zookeeper.jute.maxbuffer.extrasize")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|v| v.max(0) as usize);
    geokeeper_core::limits::ClientLimits {
        max_client_cnxns: cfg.max_client_cnxns,
        max_cnxns: cfg.max_cnxns,
        global_outstanding_limit: cfg.global_outstanding_limit,
        max_record_len: geokeeper_core::proto::frame::max_record_len(
            cfg.jute_maxbuffer as usize,
            extra,
        ),
        sessionless_cnxn_timeout: Duration::from_millis(
            cfg.system_property("zookeeper.nio.sessionlessCnxnTimeout")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(10_000),
        ),
    }
}

fn run_proxy(path: &std::path::Path) -> ExitCode {
    let cfg = match Config::load(path).and_then(|(cfg, warnings)| {
        for w in &warnings {
            warn!("{w}");
        }
        cfg.proxy()
    }) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    // Two descriptors a session (the client's and its upstream's): as many as allowed.
    bench::sys::raise_nofile_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {}: {e}", cfg.listen);
                return ExitCode::from(1);
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutting down");
            let _ = stop_tx.send(true);
        });
        match geokeeper_proxy::run(cfg, listener, stop_rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("proxy: {e}");
                ExitCode::from(1)
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
