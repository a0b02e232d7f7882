//! # geokeeper-conf
//!
//! The configuration model of geokeeper: one typed [`Config`] holding ZooKeeper 3.8's settings
//! with ZooKeeper 3.8's defaults, filled from either of two dialects and validated once, at
//! load, with errors that name the file, the line and the key.
//!
//! * **zoo.cfg** — read exactly as ZooKeeper reads it: `java.util.Properties` syntax, the key
//!   names of `QuorumPeerConfig.parseProperties`, `server.N` lines as `QuorumPeer.QuorumServer`
//!   parses them, `myid` from the data directory, `dynamicConfigFile`. Keys ZooKeeper turns
//!   into `zookeeper.<key>` system properties land in [`Config::system_properties`]; a key
//!   nobody knows is kept there too and reported as a [`Warning`].
//! * **geokeeper.toml** — the same settings in sections (`[server]`, `[session]`, `[limits]`,
//!   `[storage]`, `[autopurge]`, `[quorum]`, `[features]`, `[auth]`, `[relay]`,
//!   `[system_properties]`).
//!
//! Settings ZooKeeper reads from Java system properties are also taken from `-Dname=value`
//! words in `SERVER_JVMFLAGS` and `JVMFLAGS` ([`Config::apply_jvm_flags`],
//! [`Config::from_env_and_file`]); the precedence between those and the file is ZooKeeper's
//! and is described in the `sysprops` module.
//!
//! Nothing here opens a socket. The only I/O is reading the configuration file, the `myid`
//! file and the `dynamicConfigFile` it names, and resolving `clientPortAddress` when it is a
//! host name rather than an IP literal (as ZooKeeper's `InetAddress.getByName` does at load).

mod error;
mod finish;
pub mod hosts;
mod inert;
mod properties;
mod proxy;
mod relay;
mod server;
mod sysprops;
mod toml_dialect;
mod zoo_cfg;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Warning};
pub use proxy::ProxyConfig;
pub use server::{ClientAddress, PeerType, QuorumAddress, ServerSpec};

use error::Loc;
use sysprops::{PropSource, Rank};

/// `ZooKeeperServer.DEFAULT_TICK_TIME`: used when zoo.cfg has no `tickTime`. (The 2000 that
/// most people know comes from `zoo_sample.cfg`, not from the code.)
pub const DEFAULT_TICK_TIME_MS: u32 = 3000;
/// `BinaryInputArchive.maxBuffer` default: 0xfffff bytes, just under 1 MiB.
pub const DEFAULT_JUTE_MAXBUFFER: u32 = 0xfffff;
/// The data directory of `geokeeper serve` without a configuration file.
pub const EMBEDDED_DATA_DIR: &str = "./geokeeper-data";
/// The client port ZooKeeper users expect.
pub const DEFAULT_CLIENT_PORT: u16 = 2181;
/// `zookeeper.snapSizeLimitInKb`'s default: 4 GiB of log between snapshots.
pub const DEFAULT_SNAP_SIZE_LIMIT_KB: i64 = 4 * 1024 * 1024;
/// `PurgeTxnLog` never keeps fewer snapshots than this.
pub const MIN_SNAP_RETAIN_COUNT: u32 = 3;
/// `EphemeralType.MAX_EXTENDED_SERVER_ID`: the largest server id usable with extended types.
pub const MAX_EXTENDED_SERVER_ID: u64 = 0xfe;

/// Which configuration syntax a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// ZooKeeper's `java.util.Properties` file.
    ZooCfg,
    /// geokeeper.toml.
    Toml,
}

impl Dialect {
    /// `.toml` files are TOML; anything else is read as zoo.cfg.
    pub fn for_path(path: &Path) -> Dialect {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Dialect::Toml,
            _ => Dialect::ZooCfg,
        }
    }
}

/// The gateway's quorum TLS material (see [`Config::quorum_tls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumTls {
    pub key_store: PathBuf,
    pub trust_store: PathBuf,
    pub hostname_verification: bool,
}

/// The QUIC relay's settings (see [`Config::relay`]): what this server publishes its committed
/// stream on, and the relay upstreams it follows as a QUIC observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// `relayPort` / `relayAddress` (TOML `relay.port` / `relay.address`): where to publish
    /// over QUIC (UDP). `Some` when `relayPort` is above 0; the address is `relayAddress`,
    /// else `clientPortAddress`, else 0.0.0.0.
    pub listen: Option<SocketAddr>,
    /// `relay.ssl.cert` (`relay.cert`): PEM file of this server's certificate chain, the leaf
    /// naming its relay identity (node id and room); or `relay.keyStore.location`
    /// (`relay.key_store`), one PEM file with the key and the chain, which sets this and `key`.
    pub cert: Option<PathBuf>,
    /// `relay.ssl.key` (`relay.key`): PEM file of this server's private key.
    pub key: Option<PathBuf>,
    /// `relay.ssl.ca` (`relay.ca`), or `relay.trustStore.location` (`relay.trust_store`): PEM
    /// file of the cluster's CA certificates.
    pub ca: Option<PathBuf>,
    /// `room` (`server.room`): the room (data centre) this server runs in; when set, its
    /// relay certificate must name the same room.
    pub room: Option<String>,
    /// `relay.subscribers` (`ID@ROOM,…`; TOML: an array): the observers allowed to subscribe,
    /// as (node id, room).
    pub subscribers: Vec<(u64, String)>,
    /// `relay.upstreams` (`host:port[;weight=N][;room=R],…`, the proxy's weighted-list
    /// syntax; TOML: an array of such strings or `{ address, room, weight }` tables): the
    /// publishers to follow, in order of preference (see [`hosts::attempt_order`]).
    pub upstreams: Vec<hosts::HostEntry>,
    /// `maxLagMs` (`relay.max_lag_ms`): a QUIC observer serves clients once its replica is
    /// within this many milliseconds of the leader. Default 1000.
    pub max_lag_ms: u64,
    /// `relay.retainTxns` (`relay.retain_txns`): transactions kept in memory to send as a
    /// diff. Default 10000.
    pub retain_txns: usize,
    /// `relay.diffMaxTxns` (`relay.diff_max_txns`): a subscriber further behind than this gets
    /// a snapshot instead of a diff. Default 100000.
    pub diff_max_txns: u64,
    /// `relay.bufferBytes` (`relay.buffer_bytes`): bytes queued for one subscriber before it
    /// is dropped. Default 67108864 (64 MiB).
    pub buffer_bytes: usize,
    /// `relay.heartbeatMs` (`relay.heartbeat_ms`): how often a publisher sends a heartbeat
    /// to its subscribers. Default 500.
    pub heartbeat_ms: u64,
}

/// Every setting of a geokeeper server. Field documentation names the zoo.cfg key and, for
/// settings ZooKeeper reads as Java system properties, the property (`-D`) name.
#[derive(Debug, Clone)]
pub struct Config {
    /// `tickTime` — the basic time unit in milliseconds. Default 3000.
    pub tick_time_ms: u32,
    /// `initLimit` — ticks a follower may take to connect and sync to the leader. Default 10
    /// (zoo.cfg, like ZooKeeper, requires it when the ensemble has several voters).
    pub init_limit: u32,
    /// `syncLimit` — ticks a follower may lag behind the leader. Default 5 (required in a
    /// zoo.cfg ensemble, as `initLimit`).
    pub sync_limit: u32,
    /// `dataDir` — where snapshots (`version-2/snapshot.*`) and `myid` live. Required in a
    /// configuration file; [`EMBEDDED_DATA_DIR`] when there is none. Relative paths are
    /// relative to the working directory, as in ZooKeeper.
    pub data_dir: PathBuf,
    /// `dataLogDir` — where transaction logs live; `None` means `data_dir`
    /// (see [`Config::txn_log_dir`]).
    pub data_log_dir: Option<PathBuf>,
    /// `clientPort` — the client port (or the `;port` part of this server's `server.N` line).
    /// Default 2181.
    pub client_port: u16,
    /// `clientPortAddress` — the address to bind the client port to; `None` means every
    /// interface. [`Config::embedded`] binds 127.0.0.1.
    pub client_port_address: Option<IpAddr>,
    /// `maxClientCnxns` — concurrent connections from one IP address; 0 means no limit.
    /// Default 60.
    pub max_client_cnxns: u32,
    /// `maxCnxns` (property `zookeeper.maxCnxns`) — total concurrent client connections; 0
    /// means no limit. Default 0.
    pub max_cnxns: u32,
    /// `minSessionTimeout` in milliseconds; `None` means 2 × tickTime
    /// (see [`Config::min_session_timeout`]).
    pub min_session_timeout_ms: Option<u32>,
    /// `maxSessionTimeout` in milliseconds; `None` means 20 × tickTime
    /// (see [`Config::max_session_timeout`]).
    pub max_session_timeout_ms: Option<u32>,
    /// `globalOutstandingLimit` (property `zookeeper.globalOutstandingLimit`) — queued requests
    /// before clients are throttled. Default 1000.
    pub global_outstanding_limit: u32,
    /// Property `jute.maxbuffer` — the largest packet (and znode) in bytes. Default 0xfffff.
    /// ZooKeeper only reads it as a `-D` flag; geokeeper also accepts it in its config files.
    pub jute_maxbuffer: u32,
    /// `snapCount` (property `zookeeper.snapCount`) — transactions between snapshots; at least
    /// 2 (smaller values are raised to 2 with a warning). Default 100000.
    pub snap_count: u32,
    /// `preAllocSize` (property `zookeeper.preAllocSize`) — transaction log preallocation block,
    /// in KiB; 0 disables preallocation. Default 65536 (64 MiB).
    pub pre_alloc_size_kb: u64,
    /// `forceSync` (property `zookeeper.forceSync`) — fsync the log before acknowledging;
    /// only the value `no` turns it off. Default yes.
    pub force_sync: bool,
    /// `fsync.warningthresholdms` (property `zookeeper.fsync.warningthresholdms`, or
    /// `fsync.warningthresholdms`) — warn when an fsync takes longer. Default 1000.
    pub fsync_warning_threshold_ms: u64,
    /// `autopurge.snapRetainCount` — snapshots (and their logs) kept by the purge task; values
    /// below 3 become 3 with a warning. Default 3.
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval` — hours between purges; 0 disables purging. Default 0.
    pub autopurge_purge_interval_hours: u32,
    /// `4lw.commands.whitelist` (property `zookeeper.4lw.commands.whitelist`) — enabled
    /// four-letter words; `["*"]` means all. `srvr` is always enabled, and `isro` with
    /// read-only mode (see [`Config::four_letter_word_enabled`]). Default `["srvr"]`.
    pub four_letter_whitelist: Vec<String>,
    /// Property `zookeeper.extendedTypesEnabled` (zoo.cfg `extendedTypesEnabled`) — enables
    /// TTL nodes; limits server ids to 254. Default false.
    pub extended_types_enabled: bool,
    /// Property `znode.container.checkIntervalMs` — how often empty containers and expired TTL
    /// nodes are looked for. Default 60000.
    pub container_check_interval_ms: u32,
    /// Property `znode.container.maxPerMinute` — container/TTL deletions per minute.
    /// Default 10000.
    pub container_max_per_minute: u32,
    /// `enforceQuota` (property `zookeeper.enforceQuota`) — reject writes over quota instead of
    /// only logging. Default false.
    pub enforce_quota: bool,
    /// `skipACL` (property `zookeeper.skipACL`) — skip every ACL check; only the value `yes`
    /// turns it on. Default no.
    pub skip_acl: bool,
    /// `DigestAuthenticationProvider.superDigest` (property
    /// `zookeeper.DigestAuthenticationProvider.superDigest`) — `super:<base64 sha1>` digest of
    /// the super user. Default none.
    pub super_digest: Option<String>,
    /// Property `java.security.auth.login.config` — the JAAS file holding SASL credentials.
    /// Default none.
    pub jaas_config: Option<PathBuf>,
    /// Property `readonlymode.enabled` — serve reads when cut off from the quorum.
    /// Default false.
    pub readonly_mode_enabled: bool,
    /// `enforce.auth.enabled` (property `zookeeper.enforce.auth.enabled`) — every request but
    /// auth and sasl needs an identity of a scheme in `enforce.auth.schemes`. Default false.
    pub enforce_auth_enabled: bool,
    /// `enforce.auth.schemes` (property `zookeeper.enforce.auth.schemes`) — comma-separated,
    /// each trimmed, as `AuthenticationHelper` splits it. Default none.
    pub enforce_auth_schemes: Vec<String>,
    /// `sessionRequireClientSASLAuth` (property `zookeeper.sessionRequireClientSASLAuth`) —
    /// the 3.6 name of enforcement: when true it means enabled with schemes `sasl`, and
    /// wins over both settings above. Default false.
    pub session_require_client_sasl_auth: bool,
    /// `snapSizeLimitInKb` (property `zookeeper.snapSizeLimitInKb`) — also snapshot once the
    /// log written since the last snapshot passes half of this plus a random share of the
    /// other half (`SyncRequestProcessor`); zero or negative disables it. Default 4194304
    /// (4 GiB).
    pub snap_size_limit_kb: i64,
    /// This server's id: the `myid` file in `dataDir` (zoo.cfg), or `[server] server_id`
    /// (TOML). 0 for a standalone server without one.
    pub server_id: u64,
    /// `server.N` lines: the ensemble, by id. Empty for a standalone server.
    pub servers: BTreeMap<u64, ServerSpec>,
    /// `peerType` — this server's role. The role in this server's own `server.N` line wins,
    /// as in ZooKeeper (with a warning when they differ). Default participant.
    pub peer_type: PeerType,
    /// `standaloneEnabled` — one voter (or none) means standalone mode. Default true.
    pub standalone_enabled: bool,
    /// `reconfigEnabled` — allow dynamic reconfiguration. Default false.
    pub reconfig_enabled: bool,
    /// `multiAddress.enabled` (property `zookeeper.multiAddress.enabled`) — allow several
    /// `|`-separated addresses per server. Default false.
    pub multi_address_enabled: bool,
    /// `dynamicConfigFile` — the file holding the `server.N` lines (read by [`Config::load`]).
    pub dynamic_config_file: Option<PathBuf>,
    /// Every Java-system-property-style setting seen, by property name: zoo.cfg keys
    /// ZooKeeper turns into `zookeeper.<key>`, full property names written in either file,
    /// `[system_properties]`, the properties behind typed TOML settings, and `-D` flags.
    /// Later features read what they need here (`zookeeper.digest.enabled`, …).
    pub system_properties: BTreeMap<String, String>,
    /// zoo.cfg keys ZooKeeper parses itself that geokeeper does not model (yet), verbatim:
    /// `secureClientPort`, `metricsProvider.*`, `localSessionsEnabled`, `group.N`, …; and
    /// geokeeper's own relay keys (`relayPort`, `relay.upstreams`, …: see [`Config::relay`]).
    pub other_settings: BTreeMap<String, String>,
    prov: Provenance,
}

/// Where each setting came from, for errors found after the line was read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provenance {
    /// The configuration file as named to the parser; empty for [`Config::embedded`].
    pub file: String,
    pub dialect: Option<Dialect>,
    /// Setting (zoo.cfg key name) → where it was written.
    pub keys: BTreeMap<&'static str, Loc>,
    /// Property → who set it, with which precedence.
    pub props: BTreeMap<String, PropSource>,
    /// [`Config::other_settings`] key → where it was written.
    pub other: BTreeMap<String, Loc>,
    /// `server.N` / `[[quorum.servers]]` → where it was written.
    pub servers: BTreeMap<u64, Loc>,
    /// Whether `server_id` was given (TOML `server_id`, or a `myid` file was read).
    pub server_id_known: bool,
    /// Whether `client_port` came from this server's `server.N` line.
    pub client_port_from_server_line: bool,
}

/// zoo.cfg key → geokeeper.toml key, for every typed setting. Used to name a setting in
/// messages in the dialect the user wrote.
pub(crate) const SETTINGS: &[(&str, &str)] = &[
    ("tickTime", "server.tick_time_ms"),
    ("dataDir", "server.data_dir"),
    ("dataLogDir", "server.data_log_dir"),
    ("clientPort", "server.client_port"),
    ("clientPortAddress", "server.client_address"),
    ("myid", "server.server_id"),
    ("peerType", "server.peer_type"),
    ("minSessionTimeout", "session.min_timeout_ms"),
    ("maxSessionTimeout", "session.max_timeout_ms"),
    ("maxClientCnxns", "limits.max_client_cnxns"),
    ("maxCnxns", "limits.max_cnxns"),
    ("globalOutstandingLimit", "limits.global_outstanding_limit"),
    ("jute.maxbuffer", "limits.jute_maxbuffer"),
    ("snapCount", "storage.snap_count"),
    ("preAllocSize", "storage.pre_alloc_size_kb"),
    ("forceSync", "storage.force_sync"),
    (
        "fsync.warningthresholdms",
        "storage.fsync_warning_threshold_ms",
    ),
    ("autopurge.snapRetainCount", "autopurge.snap_retain_count"),
    ("autopurge.purgeInterval", "autopurge.purge_interval_hours"),
    ("initLimit", "quorum.init_limit"),
    ("syncLimit", "quorum.sync_limit"),
    ("standaloneEnabled", "quorum.standalone_enabled"),
    ("reconfigEnabled", "quorum.reconfig_enabled"),
    ("multiAddress.enabled", "quorum.multi_address_enabled"),
    ("4lw.commands.whitelist", "features.four_letter_words"),
    ("extendedTypesEnabled", "features.extended_types"),
    (
        "znode.container.checkIntervalMs",
        "features.container_check_interval_ms",
    ),
    (
        "znode.container.maxPerMinute",
        "features.container_max_per_minute",
    ),
    ("enforceQuota", "features.enforce_quota"),
    ("skipACL", "features.skip_acl"),
    ("readonlymode.enabled", "features.readonly_mode"),
    (
        "DigestAuthenticationProvider.superDigest",
        "auth.super_digest",
    ),
    ("java.security.auth.login.config", "auth.jaas_config"),
];

impl Default for Config {
    /// ZooKeeper 3.8's defaults: what a zoo.cfg holding only `dataDir=./geokeeper-data` and
    /// `clientPort=2181` gives.
    fn default() -> Config {
        Config {
            tick_time_ms: DEFAULT_TICK_TIME_MS,
            init_limit: 10,
            sync_limit: 5,
            data_dir: PathBuf::from(EMBEDDED_DATA_DIR),
            data_log_dir: None,
            client_port: DEFAULT_CLIENT_PORT,
            client_port_address: None,
            max_client_cnxns: 60,
            max_cnxns: 0,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            global_outstanding_limit: 1000,
            jute_maxbuffer: DEFAULT_JUTE_MAXBUFFER,
            snap_count: 100_000,
            pre_alloc_size_kb: 65536,
            force_sync: true,
            fsync_warning_threshold_ms: 1000,
            autopurge_snap_retain_count: MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval_hours: 0,
            four_letter_whitelist: vec!["srvr".to_string()],
            extended_types_enabled: false,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            enforce_quota: false,
            skip_acl: false,
            super_digest: None,
            jaas_config: None,
            readonly_mode_enabled: false,
            enforce_auth_enabled: false,
            enforce_auth_schemes: Vec::new(),
            session_require_client_sasl_auth: false,
            snap_size_limit_kb: DEFAULT_SNAP_SIZE_LIMIT_KB,
            server_id: 0,
            servers: BTreeMap::new(),
            peer_type: PeerType::Participant,
            standalone_enabled: true,
            reconfig_enabled: false,
            multi_address_enabled: false,
            dynamic_config_file: None,
            system_properties: BTreeMap::new(),
            other_settings: BTreeMap::new(),
            prov: Provenance::default(),
        }
    }
}

impl Config {
    /// The configuration of `geokeeper serve` without a configuration file: ZooKeeper's
    /// defaults, data in `./geokeeper-data`, clients on 127.0.0.1:2181 only.
    pub fn embedded() -> Config {
        Config {
            client_port_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ..Config::default()
        }
    }

    /// Reads, parses and validates a configuration file (`.toml` → TOML, anything else →
    /// zoo.cfg), then reads `<dataDir>/myid` and the `dynamicConfigFile` when there are any.
    /// `-D` flags in the environment are not consulted; see [`Config::from_env_and_file`].
    pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        let (mut cfg, mut warnings) = Self::parse_file(path)?;
        finish::finish(&mut cfg, &mut warnings, true)?;
        tracing::debug!(file = %path.display(), warnings = warnings.len(), "configuration loaded");
        Ok((cfg, sorted(warnings)))
    }

    /// What the `geokeeper` binary calls: the file when given (else [`Config::embedded`]), then
    /// the `-D` flags of `SERVER_JVMFLAGS` and `JVMFLAGS` (in that order, as zkServer.sh passes
    /// them to java), then validation.
    pub fn from_env_and_file(path: Option<&Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
        let (mut cfg, mut warnings) = match path {
            Some(path) => Self::parse_file(path)?,
            None => (Config::embedded(), Vec::new()),
        };
        for var in ["SERVER_JVMFLAGS", "JVMFLAGS"] {
            if let Ok(flags) = std::env::var(var) {
                cfg.set_jvm_flags(var, &flags, &mut warnings)?;
            }
        }
        finish::finish(&mut cfg, &mut warnings, path.is_some())?;
        Ok((cfg, sorted(warnings)))
    }

    /// Parses and validates zoo.cfg text. `file_name` is only used in messages. Reads no
    /// files: `myid` and `dynamicConfigFile` are resolved by [`Config::load`].
    pub fn parse_zoo_cfg(
        text: &str,
        file_name: &str,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let (mut cfg, mut warnings) = zoo_cfg::parse(text, file_name)?;
        finish::finish(&mut cfg, &mut warnings, false)?;
        Ok((cfg, sorted(warnings)))
    }

    /// Parses and validates geokeeper.toml text. `file_name` is only used in messages. Reads
    /// no files: `myid` is resolved by [`Config::load`].
    pub fn parse_toml(text: &str, file_name: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        let (mut cfg, mut warnings) = toml_dialect::parse(text, file_name)?;
        finish::finish(&mut cfg, &mut warnings, false)?;
        Ok((cfg, sorted(warnings)))
    }

    /// Applies the `-Dname=value` words of a JVM flags string (other words are ignored), with
    /// ZooKeeper's precedence against what the configuration file set. Every property is
    /// recorded in [`Config::system_properties`]; known ones also set their typed field.
    pub fn apply_jvm_flags(&mut self, flags: &str) -> Result<Vec<Warning>, ConfigError> {
        self.apply_jvm_flags_from("JVM flags", flags)
    }

    /// [`Config::apply_jvm_flags`], naming where the flags came from (`SERVER_JVMFLAGS`) in
    /// errors and warnings.
    pub fn apply_jvm_flags_from(
        &mut self,
        source: &str,
        flags: &str,
    ) -> Result<Vec<Warning>, ConfigError> {
        let mut warnings = Vec::new();
        self.set_jvm_flags(source, flags, &mut warnings)?;
        finish::check_properties(self)?;
        Ok(sorted(warnings))
    }

    fn set_jvm_flags(
        &mut self,
        source: &str,
        flags: &str,
        warnings: &mut Vec<Warning>,
    ) -> Result<(), ConfigError> {
        for (name, value) in sysprops::jvm_flag_properties(flags) {
            let loc = Loc::new(source, None, &format!("-D{name}"));
            sysprops::set_property(self, &name, &value, loc, Rank::JvmFlag, warnings)?;
        }
        Ok(())
    }

    fn parse_file(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let name = path.display().to_string();
        match Dialect::for_path(path) {
            Dialect::Toml => {
                let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
                    file: name.clone(),
                    line: None,
                    message: format!("not UTF-8: {e}"),
                })?;
                toml_dialect::parse(&text, &name)
            }
            Dialect::ZooCfg => zoo_cfg::parse(&properties::decode(&bytes), &name),
        }
    }

    /// The schemes a connection must hold an identity of before any request but auth and
    /// sasl (`AuthenticationHelper`): `sessionRequireClientSASLAuth` means `["sasl"]` and
    /// wins; otherwise `enforce.auth.schemes` when `enforce.auth.enabled`. `None`: off.
    pub fn enforced_auth_schemes(&self) -> Option<Vec<String>> {
        if self.session_require_client_sasl_auth {
            Some(vec!["sasl".to_string()])
        } else if self.enforce_auth_enabled {
            Some(self.enforce_auth_schemes.clone())
        } else {
            None
        }
    }

    /// Recognised settings geokeeper does not act on and that change no guarantee, each as
    /// `key (file:line)`: what the one startup line names. Settings that would weaken
    /// security or durability if ignored never get here: they stop startup.
    pub fn inert_settings(&self) -> Vec<String> {
        inert::harmless(self)
    }

    /// The effective minimum session timeout: `minSessionTimeout`, or 2 × tickTime.
    pub fn min_session_timeout(&self) -> u32 {
        self.min_session_timeout_ms
            .unwrap_or_else(|| self.tick_time_ms.saturating_mul(2))
    }

    /// The effective maximum session timeout: `maxSessionTimeout`, or 20 × tickTime.
    pub fn max_session_timeout(&self) -> u32 {
        self.max_session_timeout_ms
            .unwrap_or_else(|| self.tick_time_ms.saturating_mul(20))
    }

    /// The transaction log directory: `dataLogDir`, or `dataDir` when unset.
    pub fn txn_log_dir(&self) -> &Path {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// The socket address to listen for clients on (every IPv4 interface when
    /// `clientPortAddress` is unset, as `new InetSocketAddress(port)`).
    pub fn client_socket_addr(&self) -> SocketAddr {
        let ip = self
            .client_port_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, self.client_port)
    }

    /// Whether this server runs as part of a quorum (`QuorumPeerConfig.isDistributed`): more
    /// than one voter, or any voter with `standaloneEnabled=false`.
    pub fn is_distributed(&self) -> bool {
        !self.servers.is_empty() && (!self.standalone_enabled || self.voters().count() > 1)
    }

    /// The voting members (participants) of the ensemble.
    pub fn voters(&self) -> impl Iterator<Item = &ServerSpec> {
        self.servers
            .values()
            .filter(|s| s.role == PeerType::Participant)
    }

    /// Quorum TLS for the gateway's link to the leader (`sslQuorum=true`): the PEM files
    /// of `ssl.quorum.keyStore.location` (this server's private key and certificate
    /// chain) and `ssl.quorum.trustStore.location` (the CA certificates the leader's
    /// certificate must chain to), and `ssl.quorum.hostnameVerification` (default true).
    /// `None` without `sslQuorum=true`; an error for what geokeeper cannot honour
    /// (another store type, an encrypted key, a missing file name).
    pub fn quorum_tls(&self) -> Result<Option<QuorumTls>, ConfigError> {
        let prop = |k: &str| self.system_property(&format!("zookeeper.{k}"));
        // zoo.cfg's own `sslQuorum` key, or the system property.
        let on = self
            .other_bool("sslQuorum")
            .or_else(|| prop("sslQuorum").map(|v| v.trim().eq_ignore_ascii_case("true")))
            .unwrap_or(false);
        if !on {
            return Ok(None);
        }
        let err = |k: &str, msg: String| {
            let name = format!("zookeeper.{k}");
            let loc = self
                .prov
                .props
                .get(&name)
                .map(|p| p.loc.clone())
                .unwrap_or_else(|| Loc::new(&self.prov.file, None, &name));
            loc.error(msg)
        };
        let store = |which: &str| -> Result<PathBuf, ConfigError> {
            let loc_key = format!("ssl.quorum.{which}.location");
            let type_key = format!("ssl.quorum.{which}.type");
            let path = prop(&loc_key)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    err(
                        "sslQuorum",
                        format!("sslQuorum=true needs ssl.quorum.{which}.location (a PEM file)"),
                    )
                })?;
            let pem = match prop(&type_key) {
                Some(t) => t.trim().eq_ignore_ascii_case("PEM"),
                None => path.trim().to_ascii_lowercase().ends_with(".pem"),
            };
            if !pem {
                return Err(err(
                    &type_key,
                    format!("geokeeper reads quorum TLS material from PEM files only: set ssl.quorum.{which}.type=PEM"),
                ));
            }
            Ok(PathBuf::from(path.trim()))
        };
        let key_store = store("keyStore")?;
        let trust_store = store("trustStore")?;
        if prop("ssl.quorum.keyStore.password").is_some_and(|p| !p.is_empty()) {
            return Err(err(
                "ssl.quorum.keyStore.password",
                "encrypted PEM private keys are not supported: give the key unencrypted (PKCS#8) and protect the file".into(),
            ));
        }
        Ok(Some(QuorumTls {
            key_store,
            trust_store,
            hostname_verification: !prop("ssl.quorum.hostnameVerification")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
        }))
    }

    /// The QUIC relay's settings, each checked, with the error (file, line, key) of the first
    /// malformed one; also an error for `relayPort` without both PEM stores, and for
    /// `relay.upstreams` without both PEM stores, without `peerType=observer`, or together
    /// with `server.N` lines that make this server a gateway ([`Config::is_distributed`]): a
    /// server follows either an ensemble or relay upstreams, not both. Loading a configuration
    /// already runs these checks once the ensemble is known.
    pub fn relay(&self) -> Result<RelayConfig, ConfigError> {
        relay::read(self)
    }

    /// The client proxy's settings (`geokeeper proxy`), each checked, with the error (file,
    /// line, key) of the first malformed one: `room` and `proxy.upstreams` are required.
    pub fn proxy(&self) -> Result<ProxyConfig, ConfigError> {
        proxy::read(self)
    }

    /// `peerType=observer` with relay upstreams: a QUIC observer, which follows a relay
    /// publisher instead of a ZooKeeper ensemble.
    pub fn is_relay_observer(&self) -> bool {
        self.peer_type == PeerType::Observer
            && self
                .other_settings
                .get(relay::UPSTREAMS)
                .is_some_and(|v| relay::entries(v).next().is_some())
    }

    /// `observerMasterPort`: on an observer, the port of every voter's ObserverMaster
    /// (followers serve observers there, off the leader). `None` when unset or 0.
    pub fn observer_master_port(&self) -> Option<u16> {
        self.other_settings
            .get("observerMasterPort")
            .and_then(|v| v.trim().parse::<u16>().ok())
            .filter(|&p| p > 0)
    }

    /// `localSessionsEnabled` (default false): an observer keeps sessions of its own that
    /// never reach the leader until they need to (an ephemeral).
    pub fn local_sessions_enabled(&self) -> bool {
        self.other_bool("localSessionsEnabled").unwrap_or(false)
    }

    /// `localSessionsUpgradingEnabled` (default true): a local session that creates an
    /// ephemeral becomes global; otherwise the create fails (EphemeralOnLocalSession).
    pub fn local_sessions_upgrading_enabled(&self) -> bool {
        self.other_bool("localSessionsUpgradingEnabled")
            .unwrap_or(true)
    }

    fn other_bool(&self, key: &str) -> Option<bool> {
        self.other_settings
            .get(key)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The observers of the ensemble.
    pub fn observers(&self) -> impl Iterator<Item = &ServerSpec> {
        self.servers
            .values()
            .filter(|s| s.role == PeerType::Observer)
    }

    /// This server's own `server.N` entry, when it has one.
    pub fn this_server(&self) -> Option<&ServerSpec> {
        self.servers.get(&self.server_id)
    }

    /// geokeeper never votes: it joins a ZooKeeper ensemble only as an observer (the
    /// gateway). A configuration that makes this server a voting member of an ensemble (its
    /// own `server.N` line without `:observer`, or `peerType=participant` with several
    /// voters) is refused, naming this server's line, rather than run as a standalone
    /// server with an empty tree beside the ensemble.
    pub fn refuse_voting(&self) -> Result<(), ConfigError> {
        if !self.is_distributed() || self.peer_type == PeerType::Observer {
            return Ok(());
        }
        let loc = self
            .prov
            .servers
            .get(&self.server_id)
            .cloned()
            .unwrap_or_else(|| self.loc("peerType"));
        Err(loc.error(format!(
            "this server (id {}) would be a voting participant of a {}-voter ensemble; \
             geokeeper joins a ZooKeeper ensemble only as an observer: end its server.{} line \
             with :observer (and set peerType=observer)",
            self.server_id,
            self.voters().count(),
            self.server_id
        )))
    }

    /// Whether a four-letter word may run (`FourLetterCommands.isEnabled`): `srvr` always (zkServer.sh
    /// needs it), `isro` in read-only mode, everything with `*`, otherwise the whitelist.
    pub fn four_letter_word_enabled(&self, word: &str) -> bool {
        word == "srvr"
            || (word == "isro" && self.readonly_mode_enabled)
            || self
                .four_letter_whitelist
                .iter()
                .any(|w| w == "*" || w == word)
    }

    /// A Java system property as configured (file, `[system_properties]` or `-D` flag).
    pub fn system_property(&self, name: &str) -> Option<&str> {
        self.system_properties.get(name).map(String::as_str)
    }

    /// Where a setting (named by its zoo.cfg key) was written, or the file with no line.
    pub(crate) fn loc(&self, zk_key: &'static str) -> Loc {
        if let Some(loc) = self.prov.keys.get(zk_key) {
            return loc.clone();
        }
        let key = match self.prov.dialect {
            Some(Dialect::Toml) => SETTINGS
                .iter()
                .find(|(zk, _)| *zk == zk_key)
                .map_or(zk_key, |(_, toml)| toml),
            _ => zk_key,
        };
        let file = if self.prov.file.is_empty() {
            "<embedded>"
        } else {
            &self.prov.file
        };
        Loc::new(file, None, key)
    }

    /// A fresh configuration with ZooKeeper's defaults, attributed to a file.
    pub(crate) fn for_file(file: &str, dialect: Dialect) -> Config {
        let mut cfg = Config::default();
        cfg.prov.file = file.to_string();
        cfg.prov.dialect = Some(dialect);
        cfg
    }
}

/// Resolves `clientPortAddress` as `InetAddress.getByName` would: an IP literal (IPv6 with or
/// without brackets), or a host name looked up now, preferring IPv4 as Java does by default.
pub(crate) fn resolve_ip(host: &str) -> Result<IpAddr, String> {
    if host.is_empty() {
        return Err("is empty".to_string());
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = (literal, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{host}\": {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| format!("cannot resolve \"{host}\""))
}

/// Warnings grouped by source in the order sources were read, each source in line order.
fn sorted(mut warnings: Vec<Warning>) -> Vec<Warning> {
    let mut files: Vec<String> = Vec::new();
    for w in &warnings {
        if !files.contains(&w.file) {
            files.push(w.file.clone());
        }
    }
    warnings.sort_by_key(|w| {
        (
            files.iter().position(|f| *f == w.file),
            w.line.unwrap_or(usize::MAX),
        )
    });
    warnings
}

#[cfg(test)]
mod tests;
