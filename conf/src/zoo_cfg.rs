//! The zoo.cfg dialect: `QuorumPeerConfig.parseProperties`, key by key.
//!
//! Each key is trimmed, as is each value (`String.trim()`); when a key appears twice the last
//! line wins, as in `java.util.Properties` (with a warning here). Keys ZooKeeper parses itself
//! go to typed fields (or, when geokeeper does not model them yet, to
//! [`Config::other_settings`], validated as ZooKeeper would); every other key becomes the
//! system property `zookeeper.<key>`, as ZooKeeper does, except full property names
//! (`zookeeper.*`, `jute.maxbuffer`, `readonlymode.enabled`, …) which are taken as they are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Loc, Warning};
use crate::properties::{self, java_trim};
use crate::server::ServerSpec;
use crate::sysprops::{
    self, java_parse_int, java_parse_long, non_negative, not_a_number, positive, Rank,
};
use crate::{proxy, relay};
use crate::{resolve_ip, Config, Dialect, PeerType, MIN_SNAP_RETAIN_COUNT};

/// How ZooKeeper parses a key it reads itself but geokeeper does not model.
#[derive(Clone, Copy)]
enum Kind {
    /// `parseBoolean`: "true"/"false" in any case, anything else is an error.
    Bool,
    /// `Integer.parseInt`.
    Int,
    /// `Long.parseLong`.
    Long,
    /// Taken verbatim.
    Text,
}

/// Keys `parseProperties` reads itself that geokeeper keeps in `other_settings`, and
/// geokeeper's own keys kept the same way.
const UNMODELED: &[(&str, Kind)] = &[
    ("localSessionsEnabled", Kind::Bool),
    ("localSessionsUpgradingEnabled", Kind::Bool),
    ("secureClientPort", Kind::Int),
    ("secureClientPortAddress", Kind::Text),
    ("observerMasterPort", Kind::Int),
    ("clientPortListenBacklog", Kind::Int),
    ("connectToLearnerMasterLimit", Kind::Int),
    ("quorumListenOnAllIPs", Kind::Bool),
    ("syncEnabled", Kind::Bool),
    ("sslQuorum", Kind::Bool),
    ("portUnification", Kind::Bool),
    ("sslQuorumReloadCertFiles", Kind::Bool),
    ("quorum.auth.enableSasl", Kind::Bool),
    ("quorum.auth.serverRequireSasl", Kind::Bool),
    ("quorum.auth.learnerRequireSasl", Kind::Bool),
    ("quorum.auth.learner.saslLoginContext", Kind::Text),
    ("quorum.auth.server.saslLoginContext", Kind::Text),
    ("quorum.auth.kerberos.servicePrincipal", Kind::Text),
    ("quorum.cnxn.threads.size", Kind::Int),
    ("jvm.pause.info-threshold.ms", Kind::Long),
    ("jvm.pause.warn-threshold.ms", Kind::Long),
    ("jvm.pause.sleep.time.ms", Kind::Long),
    ("jvm.pause.monitor", Kind::Bool),
    ("metricsProvider.className", Kind::Text),
    ("multiAddress.reachabilityCheckTimeoutMs", Kind::Int),
    ("multiAddress.reachabilityCheckEnabled", Kind::Bool),
    ("oraclePath", Kind::Text),
    // geokeeper's QUIC relay (not ZooKeeper's): read by `Config::relay`, which checks the
    // values this table cannot (ports, addresses, list entries, ranges).
    (relay::PORT, Kind::Int),
    (relay::ADDRESS, Kind::Text),
    (relay::KEY_STORE, Kind::Text),
    (relay::TRUST_STORE, Kind::Text),
    (relay::SSL_CERT, Kind::Text),
    (relay::SSL_KEY, Kind::Text),
    (relay::SSL_CA, Kind::Text),
    (relay::ROOM, Kind::Text),
    (relay::SUBSCRIBERS, Kind::Text),
    (relay::UPSTREAMS, Kind::Text),
    (relay::MAX_LAG_MS, Kind::Long),
    (relay::RETAIN_TXNS, Kind::Long),
    (relay::DIFF_MAX_TXNS, Kind::Long),
    (relay::BUFFER_BYTES, Kind::Long),
    // geokeeper's client proxy: read by `Config::proxy`.
    (proxy::UPSTREAMS, Kind::Text),
    (proxy::PREFER_ROOMS, Kind::Text),
    (proxy::PROBE_MS, Kind::Long),
    (proxy::REATTACH_PER_SECOND, Kind::Long),
    (proxy::RETURN_HOME_MS, Kind::Long),
    (relay::HEARTBEAT_MS, Kind::Long),
];

/// Keys `parseProperties` reads into typed fields.
const MODELED: &[&str] = &[
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "tickTime",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "initLimit",
    "syncLimit",
    "electionAlg",
    "peerType",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "standaloneEnabled",
    "reconfigEnabled",
    "multiAddress.enabled",
    "dynamicConfigFile",
];

/// Parses zoo.cfg text into a configuration (not yet cross-checked: see `finish`).
pub(crate) fn parse(text: &str, file: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    let entries = properties::parse(text).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        line: Some(e.line),
        message: e.message,
    })?;
    let mut warnings = Vec::new();

    // java.util.Properties keeps the last value of a key.
    let mut last_line: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        last_line.insert(java_trim(&e.key).to_string(), e.line);
    }
    let has_dynamic_file = last_line.contains_key("dynamicConfigFile");

    let mut cfg = Config::for_file(file, Dialect::ZooCfg);
    for e in &entries {
        let key = java_trim(&e.key);
        let winner = last_line.get(key).copied().unwrap_or(e.line);
        let loc = Loc::new(file, Some(e.line), key);
        if winner != e.line {
            warnings.push(loc.warning(format!(
                "overridden by line {winner} (the last value wins, as in ZooKeeper)"
            )));
            continue;
        }
        apply_key(
            &mut cfg,
            key,
            java_trim(&e.value),
            loc,
            has_dynamic_file,
            &mut warnings,
        )?;
    }

    // A proxy's configuration (`proxy.*` keys) keeps no data.
    if !cfg.prov.keys.contains_key("dataDir") && !proxy::is_proxy_config(&cfg) {
        return Err(cfg.loc("dataDir").error("is not set"));
    }
    if cfg.prov.keys.contains_key("clientPortAddress") && !cfg.prov.keys.contains_key("clientPort")
    {
        return Err(cfg
            .loc("clientPortAddress")
            .error("clientPortAddress is set but clientPort is not set"));
    }
    Ok((cfg, warnings))
}

fn apply_key(
    cfg: &mut Config,
    key: &str,
    value: &str,
    loc: Loc,
    has_dynamic_file: bool,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    if let Some(zk_key) = MODELED.iter().find(|k| **k == key) {
        cfg.prov.keys.insert(zk_key, loc.clone());
    }
    match key {
        "dataDir" => cfg.data_dir = path(value, &loc, warnings)?,
        "dataLogDir" => cfg.data_log_dir = Some(path(value, &loc, warnings)?),
        "clientPort" => {
            let port = int(value, &loc)?;
            cfg.client_port = u16::try_from(port)
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| loc.error(format!("{port} is not a port number (1-65535)")))?;
        }
        "clientPortAddress" => {
            cfg.client_port_address = Some(resolve_ip(value).map_err(|e| loc.error(e))?);
        }
        "tickTime" => cfg.tick_time_ms = positive(int(value, &loc)?, &loc)?,
        "maxClientCnxns" => cfg.max_client_cnxns = non_negative(int(value, &loc)?, &loc)?,
        "minSessionTimeout" => cfg.min_session_timeout_ms = session_timeout(value, &loc)?,
        "maxSessionTimeout" => cfg.max_session_timeout_ms = session_timeout(value, &loc)?,
        "initLimit" => cfg.init_limit = non_negative(int(value, &loc)?, &loc)?,
        "syncLimit" => cfg.sync_limit = non_negative(int(value, &loc)?, &loc)?,
        "electionAlg" => {
            if int(value, &loc)? != 3 {
                return Err(loc.error("Invalid electionAlg value. Only 3 is supported."));
            }
        }
        "peerType" => {
            cfg.peer_type = PeerType::parse(value)
                .ok_or_else(|| loc.error(format!("Unrecognised peertype: {value}")))?;
        }
        "autopurge.snapRetainCount" => {
            let n = int(value, &loc)?;
            cfg.autopurge_snap_retain_count = if n < i64::from(MIN_SNAP_RETAIN_COUNT) {
                warnings.push(loc.warning(format!(
                    "Invalid autopurge.snapRetainCount: {n}. Defaulting to {MIN_SNAP_RETAIN_COUNT}"
                )));
                MIN_SNAP_RETAIN_COUNT
            } else {
                non_negative(n, &loc)?
            };
        }
        "autopurge.purgeInterval" => {
            let n = int(value, &loc)?;
            cfg.autopurge_purge_interval_hours = if n < 0 {
                warnings.push(loc.warning(format!(
                    "{n} disables purging, as 0 does (ZooKeeper only schedules a positive interval)"
                )));
                0
            } else {
                non_negative(n, &loc)?
            };
        }
        "standaloneEnabled" => cfg.standalone_enabled = strict_bool(key, value, &loc)?,
        "reconfigEnabled" => cfg.reconfig_enabled = strict_bool(key, value, &loc)?,
        "multiAddress.enabled" => {
            let enabled = strict_bool(key, value, &loc)?;
            sysprops::set_property(
                cfg,
                sysprops::MULTI_ADDRESS,
                if enabled { "true" } else { "false" },
                loc,
                Rank::File,
                warnings,
            )?;
        }
        "dynamicConfigFile" => cfg.dynamic_config_file = Some(PathBuf::from(value)),
        _ if key.starts_with("server.") => {
            if has_dynamic_file {
                return Err(dynamic_only(key, &loc));
            }
            server_line(cfg, key, value, loc)?;
        }
        _ if key.starts_with("group") || key.starts_with("weight") => {
            if has_dynamic_file {
                return Err(dynamic_only(key, &loc));
            }
            hierarchical(cfg, key, value, &loc, warnings);
        }
        _ => {
            if let Some((_, kind)) = UNMODELED.iter().find(|(k, _)| *k == key).or_else(|| {
                key.starts_with("metricsProvider.")
                    .then_some(&("", Kind::Text))
            }) {
                unmodeled(cfg, key, value, *kind, loc)?;
            } else {
                property(cfg, key, value, loc, warnings)?;
            }
        }
    }
    Ok(())
}

/// A key ZooKeeper does not parse itself: a system property.
fn property(
    cfg: &mut Config,
    key: &str,
    value: &str,
    loc: Loc,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    if key.starts_with("zookeeper.") || sysprops::UNPREFIXED_PROPERTIES.contains(&key) {
        // geokeeper's extension: a full property name (ZooKeeper would set
        // "zookeeper.<key>" and never read it).
        if !sysprops::is_known_property(key) {
            warnings.push(loc.warning(format!(
                "unknown setting; kept as system property {key}{}",
                suggest(key, zoo_cfg_keys())
            )));
        }
        return sysprops::set_property(cfg, key, value, loc, Rank::FileFullName, warnings);
    }
    let name = format!("zookeeper.{key}");
    if !sysprops::is_known_property_key(key) {
        warnings.push(loc.warning(format!(
            "unknown setting; kept as system property {name}, as ZooKeeper does{}",
            suggest(key, zoo_cfg_keys())
        )));
    }
    sysprops::set_property(cfg, &name, value, loc, Rank::File, warnings)
}

/// Keeps a key ZooKeeper parses itself and geokeeper does not act on, checked as ZooKeeper
/// parses it; [`crate::inert`] decides later whether it may be ignored.
fn unmodeled(
    cfg: &mut Config,
    key: &str,
    value: &str,
    kind: Kind,
    loc: Loc,
) -> Result<(), ConfigError> {
    match kind {
        Kind::Bool => {
            strict_bool(key, value, &loc)?;
        }
        Kind::Int => {
            int(value, &loc)?;
        }
        Kind::Long => {
            java_parse_long(value).ok_or_else(|| loc.error(not_a_number(value)))?;
        }
        Kind::Text => {}
    }
    cfg.other_settings
        .insert(key.to_string(), value.to_string());
    cfg.prov.other.insert(key.to_string(), loc);
    Ok(())
}

fn server_line(cfg: &mut Config, key: &str, value: &str, loc: Loc) -> Result<(), ConfigError> {
    let id_text = &key["server.".len()..];
    let id: u64 = id_text
        .parse()
        .map_err(|_| loc.error(format!("\"{id_text}\" is not a server id")))?;
    let spec = ServerSpec::parse(id, value).map_err(|e| loc.error(e))?;
    if let Some(previous) = cfg.prov.servers.get(&id) {
        return Err(loc.error(format!(
            "server id {id} is already defined by {} ({})",
            previous.key,
            previous.place()
        )));
    }
    cfg.prov.servers.insert(id, loc);
    cfg.servers.insert(id, spec);
    Ok(())
}

/// Hierarchical quorums (`group.N`, `weight.N`) change who forms a majority; geokeeper does not
/// implement them yet, so it says so rather than computing a different quorum silently.
fn hierarchical(cfg: &mut Config, key: &str, value: &str, loc: &Loc, warnings: &mut Vec<Warning>) {
    warnings.push(loc.warning(
        "hierarchical quorums (group/weight) are not supported by geokeeper yet; ignored",
    ));
    cfg.other_settings
        .insert(key.to_string(), value.to_string());
    cfg.prov.other.insert(key.to_string(), loc.clone());
}

/// Applies the `server.N` (and `group`/`weight`) lines of a dynamic configuration file, which
/// may hold nothing else but `version` (`QuorumPeerConfig.parseDynamicConfig`).
pub(crate) fn apply_dynamic_file(
    cfg: &mut Config,
    text: &str,
    file: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    let entries = properties::parse(text).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        line: Some(e.line),
        message: e.message,
    })?;
    for e in entries {
        let key = java_trim(&e.key);
        let loc = Loc::new(file, Some(e.line), key);
        if key.starts_with("server.") {
            server_line(cfg, key, java_trim(&e.value), loc)?;
        } else if key.starts_with("group") || key.starts_with("weight") {
            hierarchical(cfg, key, java_trim(&e.value), &loc, warnings);
        } else if key == "version" {
            return Err(loc.error("dynamic file shouldn't have version inside"));
        } else {
            return Err(loc.error(format!("Unrecognised parameter: {key}")));
        }
    }
    Ok(())
}

fn dynamic_only(key: &str, loc: &Loc) -> ConfigError {
    loc.error(format!(
        "parameter: {key} must be in a separate dynamic config file"
    ))
}

/// `QuorumPeerConfig.parseBoolean`: "true"/"false" in any case; anything else is an error.
fn strict_bool(key: &str, value: &str, loc: &Loc) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(loc.error(format!(
            "Invalid option {value} for {key}. Choose 'true' or 'false.'"
        )))
    }
}

fn int(value: &str, loc: &Loc) -> Result<i64, ConfigError> {
    java_parse_int(value).ok_or_else(|| loc.error(not_a_number(value)))
}

/// `-1` means "not set" in ZooKeeper (the default is derived from tickTime).
fn session_timeout(value: &str, loc: &Loc) -> Result<Option<u32>, ConfigError> {
    match int(value, loc)? {
        -1 => Ok(None),
        n => non_negative(n, loc).map(Some),
    }
}

/// A directory setting, with `VerifyingFileFactory.warnForRelativePath`'s warning. An empty
/// value is refused (ZooKeeper dies on it with a StringIndexOutOfBoundsException).
pub(crate) fn path(
    value: &str,
    loc: &Loc,
    warnings: &mut Vec<Warning>,
) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        return Err(loc.error("is empty"));
    }
    let p = PathBuf::from(value);
    if !p.is_absolute() && !value.starts_with("./") {
        warnings.push(loc.warning(format!(
            "{value} is relative. Prepend ./ to indicate that you're sure!"
        )));
    }
    Ok(p)
}

/// " (did you mean tickTime?)" for a key one or two edits away from a known one (ignoring
/// case), or a prefix of one.
pub(crate) fn suggest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
    let lower = key.to_ascii_lowercase();
    known
        .filter(|k| *k != key)
        .filter_map(|k| {
            let candidate = k.to_ascii_lowercase();
            let d = edit_distance(&lower, &candidate);
            let close = d <= 2 && d < candidate.len() / 2;
            let prefix = lower.len() >= 4 && candidate.starts_with(&lower);
            (close || prefix).then_some((d, k))
        })
        .min_by_key(|(d, _)| *d)
        .map_or_else(String::new, |(_, k)| format!(" (did you mean {k}?)"))
}

/// The candidates for a misspelt zoo.cfg key.
fn zoo_cfg_keys() -> impl Iterator<Item = &'static str> {
    MODELED
        .iter()
        .copied()
        .chain(UNMODELED.iter().map(|(k, _)| *k))
        .chain(sysprops::property_key_candidates())
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(current)
            };
            prev = current;
        }
    }
    row[b.len()]
}

/// Reads `<dataDir>/myid` when it is a file (`QuorumPeerConfig.setupMyId`): its first line is
/// the server id. Surrounding blanks are tolerated (ZooKeeper would refuse them).
pub(crate) fn read_myid(data_dir: &Path) -> Result<Option<u64>, ConfigError> {
    let path = data_dir.join("myid");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
        file: path.clone(),
        source,
    })?;
    let text = properties::decode(&bytes);
    let first = text.lines().next().unwrap_or("");
    let trimmed = java_trim(first);
    trimmed
        .parse::<u64>()
        .map(Some)
        .map_err(|_| ConfigError::Invalid {
            file: path.display().to_string(),
            line: Some(1),
            key: "myid".to_string(),
            message: format!("serverid {trimmed} is not a number"),
        })
}
