//! The QUIC relay's settings: a server that publishes its committed stream on a UDP port
//! (`relayPort`), and a QUIC observer that follows relay upstreams (`relay.upstreams`) instead
//! of a ZooKeeper ensemble.
//!
//! ZooKeeper has no such keys. zoo.cfg keeps them in [`Config::other_settings`] (checked as
//! numbers where they are numbers, see `zoo_cfg::UNMODELED`), and geokeeper.toml's `[relay]`
//! section maps onto the same zoo.cfg keys, so [`Config::relay`] reads both dialects from one
//! place and names the key as the user wrote it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::error::{ConfigError, Loc};
use crate::sysprops::{java_parse_long, not_a_number};
use crate::{resolve_ip, Config, Dialect, PeerType, RelayConfig};

pub(crate) const PORT: &str = "relayPort";
pub(crate) const ADDRESS: &str = "relayAddress";
pub(crate) const KEY_STORE: &str = "relay.keyStore.location";
pub(crate) const TRUST_STORE: &str = "relay.trustStore.location";
pub(crate) const SSL_CERT: &str = "relay.ssl.cert";
pub(crate) const SSL_KEY: &str = "relay.ssl.key";
pub(crate) const SSL_CA: &str = "relay.ssl.ca";
pub(crate) const ROOM: &str = "room";
pub(crate) const SUBSCRIBERS: &str = "relay.subscribers";
pub(crate) const UPSTREAMS: &str = "relay.upstreams";
pub(crate) const MAX_LAG_MS: &str = "maxLagMs";
pub(crate) const RETAIN_TXNS: &str = "relay.retainTxns";
pub(crate) const DIFF_MAX_TXNS: &str = "relay.diffMaxTxns";
pub(crate) const BUFFER_BYTES: &str = "relay.bufferBytes";
pub(crate) const HEARTBEAT_MS: &str = "relay.heartbeatMs";

/// zoo.cfg key → geokeeper.toml key, for every relay setting.
pub(crate) const KEYS: &[(&str, &str)] = &[
    (PORT, "relay.port"),
    (ADDRESS, "relay.address"),
    (KEY_STORE, "relay.key_store"),
    (TRUST_STORE, "relay.trust_store"),
    (SSL_CERT, "relay.cert"),
    (SSL_KEY, "relay.key"),
    (SSL_CA, "relay.ca"),
    (ROOM, "server.room"),
    (SUBSCRIBERS, "relay.subscribers"),
    (UPSTREAMS, "relay.upstreams"),
    (MAX_LAG_MS, "relay.max_lag_ms"),
    (RETAIN_TXNS, "relay.retain_txns"),
    (DIFF_MAX_TXNS, "relay.diff_max_txns"),
    (BUFFER_BYTES, "relay.buffer_bytes"),
    (HEARTBEAT_MS, "relay.heartbeat_ms"),
];

pub(crate) const DEFAULT_MAX_LAG_MS: u64 = 1000;
pub(crate) const DEFAULT_RETAIN_TXNS: usize = 10_000;
pub(crate) const DEFAULT_DIFF_MAX_TXNS: u64 = 100_000;
pub(crate) const DEFAULT_BUFFER_BYTES: usize = 64 * 1024 * 1024;
pub(crate) const DEFAULT_HEARTBEAT_MS: u64 = 500;

/// Whether a zoo.cfg key is a relay setting (acted on, so never listed as inert).
pub(crate) fn is_relay_key(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

impl Default for RelayConfig {
    /// No publisher, no upstreams, the defaults of every tuning setting.
    fn default() -> RelayConfig {
        RelayConfig {
            listen: None,
            cert: None,
            key: None,
            ca: None,
            room: None,
            subscribers: Vec::new(),
            upstreams: Vec::new(),
            max_lag_ms: DEFAULT_MAX_LAG_MS,
            retain_txns: DEFAULT_RETAIN_TXNS,
            diff_max_txns: DEFAULT_DIFF_MAX_TXNS,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
        }
    }
}

/// The comma-separated entries of a list setting, trimmed, empty ones skipped (as
/// `4lw.commands.whitelist` is split).
pub(crate) fn entries(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `ID@ROOM`: an observer's node id and the room (data centre) it runs in.
pub(crate) fn parse_subscriber(entry: &str) -> Result<(u64, String), String> {
    let bad = |why: &str| {
        format!("\"{entry}\" is not ID@ROOM (a node id and a room of letters, digits, '.', '_', '-'): {why}")
    };
    let (id, room) = entry.split_once('@').ok_or_else(|| bad("no '@'"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| bad(&format!("\"{id}\" is not a node id")))?;
    let room = check_room(room.trim()).map_err(|e| bad(&e))?;
    Ok((id, room))
}

/// A room's name: letters, digits, '.', '_', '-' (it travels in a certificate's URI SAN).
pub(crate) fn check_room(room: &str) -> Result<String, String> {
    if room.is_empty() {
        return Err("the room is empty".into());
    }
    if let Some(c) = room
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("'{c}' in the room"));
    }
    Ok(room.to_string())
}

/// `host:port`: a host name, an IPv4 literal or a bracketed IPv6 literal (`[::1]:2191`), and
/// a port a publisher can listen on. Names are resolved when connecting, not here: an
/// upstream may come up after this server.
pub(crate) fn check_upstream(entry: &str) -> Result<(), String> {
    let bad = |why: &str| format!("\"{entry}\" is not host:port: {why}");
    let port = if let Some(rest) = entry.strip_prefix('[') {
        let (literal, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("no ']' after the IPv6 address"))?;
        literal
            .parse::<Ipv6Addr>()
            .map_err(|_| bad(&format!("\"{literal}\" is not an IPv6 address")))?;
        after
            .strip_prefix(':')
            .ok_or_else(|| bad("no ':port' after the IPv6 address"))?
    } else {
        let (host, port) = entry.rsplit_once(':').ok_or_else(|| bad("no ':port'"))?;
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.contains(':') {
            return Err(bad("write an IPv6 address in brackets: [::1]:port"));
        }
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(bad(&format!("'{c}' in the host")));
        }
        port
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad(&format!("\"{port}\" is not a port number (1-65535)"))),
    }
}

/// The relay settings, each checked; then the rules between them and the rest of the
/// configuration. See [`Config::relay`].
pub(crate) fn read(cfg: &Config) -> Result<RelayConfig, ConfigError> {
    let setting = |key: &str| cfg.other_settings.get(key).map(|v| v.trim());
    let mut relay = RelayConfig::default();

    let port = match setting(PORT) {
        Some(v) => {
            let n = java_parse_long(v).ok_or_else(|| loc(cfg, PORT).error(not_a_number(v)))?;
            u16::try_from(n).map_err(|_| {
                loc(cfg, PORT).error(format!(
                    "{n} is not a port number (1-65535, or 0 for no publisher)"
                ))
            })?
        }
        None => 0,
    };
    let address = match setting(ADDRESS) {
        Some(v) => {
            if setting(PORT).is_none() {
                // As ZooKeeper refuses clientPortAddress without clientPort.
                return Err(loc(cfg, ADDRESS).error(format!(
                    "{} is set but {} is not set",
                    name(cfg, ADDRESS),
                    name(cfg, PORT)
                )));
            }
            resolve_ip(v).map_err(|e| loc(cfg, ADDRESS).error(e))?
        }
        None => cfg
            .client_port_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    };
    relay.listen = (port > 0).then_some(SocketAddr::new(address, port));
    // This node's certificate chain and key: one PEM holding both (the key store, as the
    // quorum's PEM stores), or two files; and the cluster CA, under either name.
    let key_store = store(cfg, KEY_STORE)?;
    let (cert, key) = (store(cfg, SSL_CERT)?, store(cfg, SSL_KEY)?);
    match (key_store, cert, key) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            let other = if setting(SSL_CERT).is_some() {
                SSL_CERT
            } else {
                SSL_KEY
            };
            return Err(loc(cfg, other).error(format!(
                "{} already names this server's key and certificate chain: set either it or {} and {}",
                name(cfg, KEY_STORE),
                name(cfg, SSL_CERT),
                name(cfg, SSL_KEY)
            )));
        }
        (Some(k), None, None) => {
            relay.cert = Some(k.clone());
            relay.key = Some(k);
        }
        (None, Some(_), None) => {
            return Err(loc(cfg, SSL_CERT).error(format!(
                "is set but {} is not (the file of this server's private key)",
                name(cfg, SSL_KEY)
            )))
        }
        (None, None, Some(_)) => {
            return Err(loc(cfg, SSL_KEY).error(format!(
                "is set but {} is not (the file of this server's certificate chain)",
                name(cfg, SSL_CERT)
            )))
        }
        (None, cert, key) => {
            relay.cert = cert;
            relay.key = key;
        }
    }
    relay.ca = match (store(cfg, TRUST_STORE)?, store(cfg, SSL_CA)?) {
        (Some(_), Some(_)) => {
            return Err(loc(cfg, SSL_CA).error(format!(
                "{} already names the cluster's CA certificates: set one of them",
                name(cfg, TRUST_STORE)
            )))
        }
        (a, b) => a.or(b),
    };
    if let Some(v) = setting(ROOM) {
        relay.room = Some(check_room(v).map_err(|e| {
            loc(cfg, ROOM).error(format!(
                "\"{v}\" is not a room (letters, digits, '.', '_', '-'): {e}"
            ))
        })?);
    }

    if let Some(v) = setting(SUBSCRIBERS) {
        for entry in entries(v) {
            let subscriber = parse_subscriber(entry).map_err(|e| loc(cfg, SUBSCRIBERS).error(e))?;
            relay.subscribers.push(subscriber);
        }
    }
    if let Some(v) = setting(UPSTREAMS) {
        for entry in entries(v) {
            let host = crate::hosts::parse_host(entry).map_err(|e| loc(cfg, UPSTREAMS).error(e))?;
            relay.upstreams.push(host);
        }
    }

    relay.max_lag_ms = number(cfg, MAX_LAG_MS, 1)?.unwrap_or(relay.max_lag_ms);
    relay.heartbeat_ms = number(cfg, HEARTBEAT_MS, 1)?.unwrap_or(relay.heartbeat_ms);
    relay.diff_max_txns = number(cfg, DIFF_MAX_TXNS, 0)?.unwrap_or(relay.diff_max_txns);
    if let Some(n) = number(cfg, RETAIN_TXNS, 0)? {
        relay.retain_txns = in_memory(cfg, RETAIN_TXNS, n)?;
    }
    if let Some(n) = number(cfg, BUFFER_BYTES, 1)? {
        relay.buffer_bytes = in_memory(cfg, BUFFER_BYTES, n)?;
    }

    if !relay.upstreams.is_empty() {
        let at = loc(cfg, UPSTREAMS);
        // One source of truth per server: following an ensemble as a gateway and following
        // relay upstreams would apply two streams of transactions to one tree.
        if cfg.is_distributed() {
            let first = cfg
                .servers
                .keys()
                .next()
                .and_then(|id| cfg.prov.servers.get(id))
                .map_or_else(String::new, |l| format!(" from {} ({})", l.key, l.place()));
            return Err(at.error(format!(
                "a server follows either a ZooKeeper ensemble or relay upstreams, not both: the \
                 server lines{first} make this one a gateway of an ensemble; remove them or {}",
                name(cfg, UPSTREAMS)
            )));
        }
        if cfg.peer_type != PeerType::Observer {
            return Err(at.error(format!(
                "relay upstreams make this server a QUIC observer: set {}=observer",
                if cfg.prov.dialect == Some(Dialect::Toml) {
                    "server.peer_type"
                } else {
                    "peerType"
                }
            )));
        }
        needs_stores(cfg, &relay, at, "a QUIC observer")?;
    }
    if relay.listen.is_some() {
        needs_stores(cfg, &relay, loc(cfg, PORT), "a relay publisher")?;
    }
    Ok(relay)
}

/// The relay always runs over mutually authenticated TLS: this server's certificate and key
/// and the cluster CA are required.
fn needs_stores(cfg: &Config, relay: &RelayConfig, at: Loc, what: &str) -> Result<(), ConfigError> {
    let mut missing = Vec::new();
    if relay.cert.is_none() {
        missing.push(format!(
            "this server's certificate chain and private key ({} and {}, or {} holding both)",
            name(cfg, SSL_CERT),
            name(cfg, SSL_KEY),
            name(cfg, KEY_STORE)
        ));
    }
    if relay.ca.is_none() {
        missing.push(format!(
            "the cluster's CA certificates ({} or {})",
            name(cfg, SSL_CA),
            name(cfg, TRUST_STORE)
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(at.error(format!(
        "{what} needs PEM files of {}; not set",
        missing.join(" and of ")
    )))
}

fn store(cfg: &Config, key: &str) -> Result<Option<PathBuf>, ConfigError> {
    match cfg.other_settings.get(key).map(|v| v.trim()) {
        None => Ok(None),
        Some("") => Err(loc(cfg, key).error("is empty")),
        Some(v) => Ok(Some(PathBuf::from(v))),
    }
}

/// A non-negative `long` setting, at least `min`.
pub(crate) fn number(cfg: &Config, key: &str, min: i64) -> Result<Option<u64>, ConfigError> {
    let Some(v) = cfg.other_settings.get(key).map(|v| v.trim()) else {
        return Ok(None);
    };
    let n = java_parse_long(v).ok_or_else(|| loc(cfg, key).error(not_a_number(v)))?;
    if n < min {
        return Err(loc(cfg, key).error(if min == 0 {
            format!("must not be negative (got {n})")
        } else {
            format!("must be greater than 0 (got {n})")
        }));
    }
    Ok(u64::try_from(n).ok())
}

fn in_memory(cfg: &Config, key: &str, n: u64) -> Result<usize, ConfigError> {
    usize::try_from(n)
        .map_err(|_| loc(cfg, key).error(format!("{n} is too large for this machine")))
}

/// Where a relay setting was written, or the file with no line.
pub(crate) fn loc(cfg: &Config, key: &str) -> Loc {
    cfg.prov.other.get(key).cloned().unwrap_or_else(|| {
        let file = if cfg.prov.file.is_empty() {
            "<embedded>"
        } else {
            &cfg.prov.file
        };
        Loc::new(file, None, name(cfg, key))
    })
}

/// A relay or proxy setting's name in the dialect the configuration was written in.
pub(crate) fn name<'a>(cfg: &Config, key: &'a str) -> &'a str {
    match cfg.prov.dialect {
        Some(Dialect::Toml) => KEYS
            .iter()
            .chain(crate::proxy::KEYS)
            .find(|(k, _)| *k == key)
            .map_or(key, |(_, toml)| toml),
        _ => key,
    }
}
