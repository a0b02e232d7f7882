//! The geokeeper.toml dialect: ZooKeeper's settings in sections.
//!
//! ```toml
//! [server]
//! tick_time_ms = 2000
//! data_dir = "/var/lib/geokeeper"
//! client_port = 2181
//!
//! [[quorum.servers]]
//! id = 1
//! host = "zk1.example"
//! quorum_port = 2888
//! election_port = 3888
//!
//! [relay]
//! port = 2191
//! key_store = "/etc/geokeeper/node.pem"
//! trust_store = "/etc/geokeeper/ca.pem"
//! subscribers = ["7@eu-west", "8@us-east"]
//!
//! [system_properties]
//! "zookeeper.digest.enabled" = "false"
//! ```
//!
//! The document is read into a tree that keeps every value's span, so that any value can be
//! reported with its line; unknown sections and keys become warnings, never failures. Settings
//! ZooKeeper reads as system properties go through the same code as zoo.cfg and `-D` flags
//! (see `sysprops`), with file precedence: a TOML setting wins over a `-D` flag.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{ConfigError, Loc, Warning};
use crate::hosts::{check_weight, parse_host};
use crate::server::{ClientAddress, QuorumAddress, ServerSpec};
use crate::sysprops::{self, non_negative, positive, Rank};
use crate::zoo_cfg;
use crate::{proxy, relay};
use crate::{resolve_ip, Config, Dialect, PeerType, MIN_SNAP_RETAIN_COUNT};

/// A TOML value that remembers where each of its parts was written.
#[derive(Debug)]
enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<SNode>),
    Table(Vec<(String, SNode)>),
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Str(s) => format!("string \"{s}\""),
            Node::Int(n) => format!("integer {n}"),
            Node::Float(f) => format!("float {f}"),
            Node::Bool(b) => format!("boolean {b}"),
            Node::Datetime(d) => format!("datetime {d}"),
            Node::Array(_) => "an array".to_string(),
            Node::Table(_) => "a table".to_string(),
        }
    }
}

/// The name `toml` gives the one field of a datetime it hands to `deserialize_any`.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

/// The struct name and fields through which `toml` hands out spans (`toml::Spanned` uses
/// them). `toml::Spanned` itself cannot be used: it fails on implicit tables (`quorum` in a
/// document that only has `[[quorum.servers]]`), which have no span; this wrapper accepts both.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

/// A [`Node`] and, when `toml` knows it, the byte range it was written at.
#[derive(Debug)]
struct SNode {
    span: Option<Range<usize>>,
    node: Node,
}

impl SNode {
    fn node_ref(&self) -> &Node {
        &self.node
    }

    /// Where the value starts; for an implicit table, where its first entry starts.
    fn start(&self) -> Option<usize> {
        if let Some(span) = &self.span {
            return Some(span.start);
        }
        match &self.node {
            Node::Table(entries) => entries.iter().find_map(|(_, v)| v.start()),
            Node::Array(items) => items.iter().find_map(SNode::start),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for SNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SNode, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor { spanned: true })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor { spanned: false })
            .map(|s| s.node)
    }
}

/// Builds a [`SNode`]; with `spanned`, first looks for the span fields `toml` provides.
struct NodeVisitor {
    spanned: bool,
}

fn bare(node: Node) -> SNode {
    SNode { span: None, node }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = SNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<SNode, E> {
        Ok(bare(Node::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<SNode, E> {
        Ok(bare(Node::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SNode, E> {
        i64::try_from(v)
            .map(|n| bare(Node::Int(n)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<SNode, E> {
        Ok(bare(Node::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<SNode, E> {
        Ok(bare(Node::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<SNode, E> {
        Ok(bare(Node::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SNode>()? {
            items.push(item);
        }
        Ok(bare(Node::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SNode, A::Error> {
        let mut entries = Vec::new();
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if first && self.spanned && key == SPANNED_START {
                let start: usize = map.next_value()?;
                let _end_key = map.next_key::<String>()?;
                let end: usize = map.next_value()?;
                let _value_key = map.next_key::<String>()?;
                let node: Node = map.next_value()?;
                return Ok(SNode {
                    span: Some(start..end),
                    node,
                });
            }
            if first && key == DATETIME_FIELD {
                return Ok(bare(Node::Datetime(map.next_value::<String>()?)));
            }
            first = false;
            entries.push((key, map.next_value::<SNode>()?));
        }
        Ok(bare(Node::Table(entries)))
    }
}

/// Known keys per section, for "did you mean" suggestions.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "tick_time_ms",
            "data_dir",
            "data_log_dir",
            "client_port",
            "client_address",
            "server_id",
            "peer_type",
            "role",
            "room",
        ],
    ),
    ("session", &["min_timeout_ms", "max_timeout_ms"]),
    (
        "limits",
        &[
            "max_client_cnxns",
            "max_cnxns",
            "global_outstanding_limit",
            "jute_maxbuffer",
        ],
    ),
    (
        "storage",
        &[
            "snap_count",
            "pre_alloc_size_kb",
            "force_sync",
            "fsync_warning_threshold_ms",
        ],
    ),
    ("autopurge", &["snap_retain_count", "purge_interval_hours"]),
    (
        "quorum",
        &[
            "init_limit",
            "sync_limit",
            "standalone_enabled",
            "reconfig_enabled",
            "multi_address_enabled",
            "servers",
            "observer_master_port",
            "local_sessions_enabled",
            "local_sessions_upgrading_enabled",
        ],
    ),
    (
        "features",
        &[
            "extended_types",
            "container_check_interval_ms",
            "container_max_per_minute",
            "four_letter_words",
            "enforce_quota",
            "skip_acl",
            "readonly_mode",
        ],
    ),
    ("auth", &["super_digest", "jaas_config"]),
    (
        "relay",
        &[
            "port",
            "address",
            "key_store",
            "trust_store",
            "cert",
            "key",
            "ca",
            "subscribers",
            "upstreams",
            "max_lag_ms",
            "retain_txns",
            "diff_max_txns",
            "buffer_bytes",
            "heartbeat_ms",
        ],
    ),
    (
        "proxy",
        &[
            "upstreams",
            "prefer_rooms",
            "max_lag_ms",
            "probe_ms",
            "reattach_per_second",
            "return_home_ms",
        ],
    ),
    ("system_properties", &[]),
];

const SERVER_KEYS: &[&str] = &[
    "id",
    "host",
    "quorum_port",
    "election_port",
    "addresses",
    "role",
    "client_port",
    "client_address",
];

/// Parses geokeeper.toml text into a configuration (not yet cross-checked: see `finish`).
pub(crate) fn parse(text: &str, file: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    let root: Node = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim_end().to_string(),
    })?;
    let mut ctx = Ctx {
        text,
        file,
        cfg: Config::for_file(file, Dialect::Toml),
        warnings: Vec::new(),
    };
    let Node::Table(sections) = root else {
        return Err(ConfigError::Syntax {
            file: file.to_string(),
            line: None,
            message: "expected a TOML document".to_string(),
        });
    };
    for (name, node) in &sections {
        let loc = ctx.loc(name, node.start());
        let Some((_, known)) = SECTIONS.iter().find(|(s, _)| s == name) else {
            let hint = zoo_cfg::suggest(name, SECTIONS.iter().map(|(s, _)| *s));
            ctx.warnings
                .push(loc.warning(format!("unknown section; ignored{hint}")));
            continue;
        };
        let Node::Table(entries) = node.node_ref() else {
            return Err(loc.error(format!(
                "expected a table, found {}",
                node.node_ref().describe()
            )));
        };
        for (key, value) in entries {
            let path = if name == "system_properties" {
                format!("{name}.\"{key}\"")
            } else {
                format!("{name}.{key}")
            };
            let loc = ctx.loc(&path, value.start());
            let handled = match name.as_str() {
                "system_properties" => ctx.system_property(key, value, loc.clone())?,
                _ => ctx.setting(name, key, value, loc.clone())?,
            };
            if !handled {
                let hint = zoo_cfg::suggest(key, known.iter().copied());
                ctx.warnings
                    .push(loc.warning(format!("unknown key; ignored{hint}")));
            }
        }
    }
    // A proxy's configuration (a `[proxy]` section) keeps no data.
    if !ctx.cfg.prov.keys.contains_key("dataDir") && !proxy::is_proxy_config(&ctx.cfg) {
        return Err(ctx.cfg.loc("dataDir").error("is not set"));
    }
    Ok((ctx.cfg, ctx.warnings))
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
    cfg: Config,
    warnings: Vec<Warning>,
}

impl Ctx<'_> {
    fn loc(&self, key: &str, start: Option<usize>) -> Loc {
        Loc::new(self.file, start.map(|s| line_of(self.text, s)), key)
    }

    /// Records where a typed setting was written, under its zoo.cfg name.
    fn mark(&mut self, zk_key: &'static str, loc: &Loc) {
        self.cfg.prov.keys.insert(zk_key, loc.clone());
    }

    /// Sets the system property behind a typed setting, with file precedence.
    fn prop(
        &mut self,
        zk_key: &'static str,
        name: &str,
        value: String,
        loc: &Loc,
    ) -> Result<(), ConfigError> {
        self.mark(zk_key, loc);
        sysprops::set_property(
            &mut self.cfg,
            name,
            &value,
            loc.clone(),
            Rank::File,
            &mut self.warnings,
        )
    }

    /// Applies `[section] key = value`; false when the key is unknown.
    /// A zoo.cfg key geokeeper reads from `other_settings` (the gateway's).
    fn other(&mut self, zoo_key: &str, value: String, loc: &Loc) {
        self.cfg.other_settings.insert(zoo_key.to_string(), value);
        self.cfg.prov.other.insert(zoo_key.to_string(), loc.clone());
    }

    fn setting(
        &mut self,
        section: &str,
        key: &str,
        node: &SNode,
        loc: Loc,
    ) -> Result<bool, ConfigError> {
        let v = node.node_ref();
        match (section, key) {
            ("server", "tick_time_ms") => {
                self.cfg.tick_time_ms = positive(int(v, &loc)?, &loc)?;
                self.mark("tickTime", &loc);
            }
            ("server", "data_dir") => {
                self.cfg.data_dir = zoo_cfg::path(&string(v, &loc)?, &loc, &mut self.warnings)?;
                self.mark("dataDir", &loc);
            }
            ("server", "data_log_dir") => {
                let p = zoo_cfg::path(&string(v, &loc)?, &loc, &mut self.warnings)?;
                self.cfg.data_log_dir = Some(p);
                self.mark("dataLogDir", &loc);
            }
            ("server", "client_port") => {
                self.cfg.client_port = port(int(v, &loc)?, &loc)?;
                self.mark("clientPort", &loc);
            }
            ("server", "client_address") => {
                let host = string(v, &loc)?;
                self.cfg.client_port_address = Some(resolve_ip(&host).map_err(|e| loc.error(e))?);
                self.mark("clientPortAddress", &loc);
            }
            ("server", "server_id") => {
                let id = int(v, &loc)?;
                self.cfg.server_id = u64::try_from(id)
                    .map_err(|_| loc.error(format!("must not be negative (got {id})")))?;
                self.cfg.prov.server_id_known = true;
                self.mark("myid", &loc);
            }
            // `role` reads better beside `[relay]` (a QUIC observer); it is the same setting.
            ("server", "peer_type" | "role") => {
                if let Some(previous) = self.cfg.prov.keys.get("peerType") {
                    return Err(loc.error(format!(
                        "sets the peer type, which {} ({}) already sets",
                        previous.key,
                        previous.place()
                    )));
                }
                let s = string(v, &loc)?;
                self.cfg.peer_type = PeerType::parse(&s)
                    .ok_or_else(|| loc.error(format!("Unrecognised peertype: {s}")))?;
                self.mark("peerType", &loc);
            }
            ("session", "min_timeout_ms") => {
                self.cfg.min_session_timeout_ms = Some(non_negative(int(v, &loc)?, &loc)?);
                self.mark("minSessionTimeout", &loc);
            }
            ("session", "max_timeout_ms") => {
                self.cfg.max_session_timeout_ms = Some(non_negative(int(v, &loc)?, &loc)?);
                self.mark("maxSessionTimeout", &loc);
            }
            ("limits", "max_client_cnxns") => {
                self.cfg.max_client_cnxns = non_negative(int(v, &loc)?, &loc)?;
                self.mark("maxClientCnxns", &loc);
            }
            ("limits", "max_cnxns") => {
                self.prop(
                    "maxCnxns",
                    sysprops::MAX_CNXNS,
                    int(v, &loc)?.to_string(),
                    &loc,
                )?;
            }
            ("limits", "global_outstanding_limit") => {
                let n = int(v, &loc)?.to_string();
                self.prop(
                    "globalOutstandingLimit",
                    sysprops::GLOBAL_OUTSTANDING_LIMIT,
                    n,
                    &loc,
                )?;
            }
            ("limits", "jute_maxbuffer") => {
                let n = int(v, &loc)?.to_string();
                self.prop("jute.maxbuffer", sysprops::JUTE_MAXBUFFER, n, &loc)?;
            }
            ("storage", "snap_count") => {
                let n = int(v, &loc)?.to_string();
                self.prop("snapCount", sysprops::SNAP_COUNT, n, &loc)?;
            }
            ("storage", "pre_alloc_size_kb") => {
                let n = int(v, &loc)?.to_string();
                self.prop("preAllocSize", sysprops::PRE_ALLOC_SIZE, n, &loc)?;
            }
            ("storage", "force_sync") => {
                let yes_no = if boolean(v, &loc)? { "yes" } else { "no" };
                self.prop("forceSync", sysprops::FORCE_SYNC, yes_no.to_string(), &loc)?;
            }
            ("storage", "fsync_warning_threshold_ms") => {
                let n = int(v, &loc)?.to_string();
                self.prop("fsync.warningthresholdms", sysprops::FSYNC_WARNING, n, &loc)?;
            }
            ("autopurge", "snap_retain_count") => {
                let n = int(v, &loc)?;
                self.cfg.autopurge_snap_retain_count = if n < i64::from(MIN_SNAP_RETAIN_COUNT) {
                    self.warnings.push(loc.warning(format!(
                        "Invalid autopurge.snapRetainCount: {n}. Defaulting to {MIN_SNAP_RETAIN_COUNT}"
                    )));
                    MIN_SNAP_RETAIN_COUNT
                } else {
                    non_negative(n, &loc)?
                };
                self.mark("autopurge.snapRetainCount", &loc);
            }
            ("autopurge", "purge_interval_hours") => {
                self.cfg.autopurge_purge_interval_hours = non_negative(int(v, &loc)?, &loc)?;
                self.mark("autopurge.purgeInterval", &loc);
            }
            ("quorum", "init_limit") => {
                self.cfg.init_limit = non_negative(int(v, &loc)?, &loc)?;
                self.mark("initLimit", &loc);
            }
            ("quorum", "sync_limit") => {
                self.cfg.sync_limit = non_negative(int(v, &loc)?, &loc)?;
                self.mark("syncLimit", &loc);
            }
            ("quorum", "standalone_enabled") => {
                self.cfg.standalone_enabled = boolean(v, &loc)?;
                self.mark("standaloneEnabled", &loc);
            }
            ("quorum", "reconfig_enabled") => {
                self.cfg.reconfig_enabled = boolean(v, &loc)?;
                self.mark("reconfigEnabled", &loc);
            }
            ("quorum", "multi_address_enabled") => {
                let b = boolean(v, &loc)?.to_string();
                self.prop("multiAddress.enabled", sysprops::MULTI_ADDRESS, b, &loc)?;
            }
            ("quorum", "servers") => self.servers(node, &loc)?,
            // The gateway's zoo.cfg keys, kept as zoo.cfg keeps them.
            ("quorum", "observer_master_port") => {
                let p = port(int(v, &loc)?, &loc)?;
                self.other("observerMasterPort", p.to_string(), &loc);
            }
            ("quorum", "local_sessions_enabled") => {
                let b = boolean(v, &loc)?;
                self.other("localSessionsEnabled", b.to_string(), &loc);
            }
            ("quorum", "local_sessions_upgrading_enabled") => {
                let b = boolean(v, &loc)?;
                self.other("localSessionsUpgradingEnabled", b.to_string(), &loc);
            }
            // The relay's zoo.cfg keys, kept as zoo.cfg keeps them; `Config::relay` checks them.
            ("relay", "port") => {
                let n = int(v, &loc)?;
                self.other(relay::PORT, n.to_string(), &loc);
            }
            ("relay", "address") => {
                let s = string(v, &loc)?;
                self.other(relay::ADDRESS, s, &loc);
            }
            ("relay", "key_store") => {
                let s = string(v, &loc)?;
                self.other(relay::KEY_STORE, s, &loc);
            }
            ("relay", "trust_store") => {
                let s = string(v, &loc)?;
                self.other(relay::TRUST_STORE, s, &loc);
            }
            ("relay", "cert") => {
                let s = string(v, &loc)?;
                self.other(relay::SSL_CERT, s, &loc);
            }
            ("relay", "key") => {
                let s = string(v, &loc)?;
                self.other(relay::SSL_KEY, s, &loc);
            }
            ("relay", "ca") => {
                let s = string(v, &loc)?;
                self.other(relay::SSL_CA, s, &loc);
            }
            ("server", "room") => {
                let s = string(v, &loc)?;
                self.other(relay::ROOM, s, &loc);
            }
            ("relay", "subscribers") => {
                let list = self.list(node, &loc, "ID@ROOM", |e| {
                    relay::parse_subscriber(e).map(drop)
                })?;
                self.other(relay::SUBSCRIBERS, list, &loc);
            }
            ("relay", "upstreams") => {
                let list = self.host_list(node, &loc)?;
                self.other(relay::UPSTREAMS, list, &loc);
            }
            ("proxy", "upstreams") => {
                let list = self.host_list(node, &loc)?;
                self.other(proxy::UPSTREAMS, list, &loc);
            }
            ("proxy", "prefer_rooms") => {
                let list = self.list(node, &loc, "room", |r| relay::check_room(r).map(drop))?;
                self.other(proxy::PREFER_ROOMS, list, &loc);
            }
            ("proxy", "probe_ms") => {
                let n = int(v, &loc)?;
                self.other(proxy::PROBE_MS, n.to_string(), &loc);
            }
            ("proxy", "reattach_per_second") => {
                let n = int(v, &loc)?;
                self.other(proxy::REATTACH_PER_SECOND, n.to_string(), &loc);
            }
            ("proxy", "return_home_ms") => {
                let n = int(v, &loc)?;
                self.other(proxy::RETURN_HOME_MS, n.to_string(), &loc);
            }
            ("relay" | "proxy", "max_lag_ms") => {
                let n = int(v, &loc)?;
                self.other(relay::MAX_LAG_MS, n.to_string(), &loc);
            }
            ("relay", "retain_txns") => {
                let n = int(v, &loc)?;
                self.other(relay::RETAIN_TXNS, n.to_string(), &loc);
            }
            ("relay", "diff_max_txns") => {
                let n = int(v, &loc)?;
                self.other(relay::DIFF_MAX_TXNS, n.to_string(), &loc);
            }
            ("relay", "buffer_bytes") => {
                let n = int(v, &loc)?;
                self.other(relay::BUFFER_BYTES, n.to_string(), &loc);
            }
            ("relay", "heartbeat_ms") => {
                let n = int(v, &loc)?;
                self.other(relay::HEARTBEAT_MS, n.to_string(), &loc);
            }
            ("features", "extended_types") => {
                let b = boolean(v, &loc)?.to_string();
                self.prop("extendedTypesEnabled", sysprops::EXTENDED_TYPES, b, &loc)?;
            }
            ("features", "container_check_interval_ms") => {
                let n = int(v, &loc)?.to_string();
                self.prop(
                    "znode.container.checkIntervalMs",
                    sysprops::CONTAINER_CHECK_INTERVAL,
                    n,
                    &loc,
                )?;
            }
            ("features", "container_max_per_minute") => {
                let n = int(v, &loc)?.to_string();
                self.prop(
                    "znode.container.maxPerMinute",
                    sysprops::CONTAINER_MAX_PER_MINUTE,
                    n,
                    &loc,
                )?;
            }
            ("features", "four_letter_words") => {
                let Node::Array(items) = v else {
                    return Err(loc.error(format!(
                        "expected an array of strings, found {}",
                        v.describe()
                    )));
                };
                let mut words = Vec::new();
                for item in items {
                    words.push(string(item.node_ref(), &loc)?);
                }
                let list = words.join(",");
                self.prop(
                    "4lw.commands.whitelist",
                    sysprops::FOUR_LETTER_WHITELIST,
                    list,
                    &loc,
                )?;
            }
            ("features", "enforce_quota") => {
                let b = boolean(v, &loc)?.to_string();
                self.prop("enforceQuota", sysprops::ENFORCE_QUOTA, b, &loc)?;
            }
            ("features", "skip_acl") => {
                let yes_no = if boolean(v, &loc)? { "yes" } else { "no" };
                self.prop("skipACL", sysprops::SKIP_ACL, yes_no.to_string(), &loc)?;
            }
            ("features", "readonly_mode") => {
                let b = boolean(v, &loc)?.to_string();
                self.prop("readonlymode.enabled", sysprops::READONLY_MODE, b, &loc)?;
            }
            ("auth", "super_digest") => {
                let s = string(v, &loc)?;
                self.prop(
                    "DigestAuthenticationProvider.superDigest",
                    sysprops::SUPER_DIGEST,
                    s,
                    &loc,
                )?;
            }
            ("auth", "jaas_config") => {
                let s = string(v, &loc)?;
                self.prop(
                    "java.security.auth.login.config",
                    sysprops::JAAS_CONFIG,
                    s,
                    &loc,
                )?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An array of strings, each checked where it is written (`relay.subscribers[1]`), joined
    /// with commas as zoo.cfg writes the list.
    fn list(
        &self,
        node: &SNode,
        loc: &Loc,
        what: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<String, ConfigError> {
        let Node::Array(items) = node.node_ref() else {
            return Err(loc.error(format!(
                "expected an array of \"{what}\" strings, found {}",
                node.node_ref().describe()
            )));
        };
        let mut entries = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_loc = self.loc(&format!("{}[{i}]", loc.key), item.start());
            let entry = string(item.node_ref(), &item_loc)?;
            let entry = entry.trim();
            if entry.contains(',') {
                return Err(
                    item_loc.error(format!("\"{entry}\": one {what} per string (no commas)"))
                );
            }
            check(entry).map_err(|e| item_loc.error(e))?;
            entries.push(entry.to_string());
        }
        Ok(entries.join(","))
    }

    /// A weighted host list (`[proxy] upstreams`): each item a connect-string entry
    /// (`"host:port;weight=N;room=R"`) or a table `{ address, room, weight }`; returned in
    /// connect-string form, each entry checked where it is written.
    fn host_list(&self, node: &SNode, loc: &Loc) -> Result<String, ConfigError> {
        let Node::Array(items) = node.node_ref() else {
            return Err(loc.error(format!(
                "expected an array of servers (\"host:port;weight=N;room=R\" or {{ address, room, weight }}), found {}",
                node.node_ref().describe()
            )));
        };
        let mut entries = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_loc = self.loc(&format!("{}[{i}]", loc.key), item.start());
            let entry = match item.node_ref() {
                Node::Str(s) => {
                    let s = s.trim();
                    if s.contains(',') {
                        return Err(item_loc.error(format!("\"{s}\": one server per string (no commas)")));
                    }
                    s.to_string()
                }
                Node::Table(fields) => {
                    let (mut address, mut room, mut weight) = (None, None, None);
                    for (k, v) in fields {
                        let field_loc = self.loc(&format!("{}[{i}].{k}", loc.key), v.start());
                        match k.as_str() {
                            "address" => address = Some(string(v.node_ref(), &field_loc)?),
                            "room" => {
                                let r = string(v.node_ref(), &field_loc)?;
                                relay::check_room(r.trim()).map_err(|e| {
                                    field_loc.error(format!("\"{r}\" is not a room: {e}"))
                                })?;
                                room = Some(r.trim().to_string());
                            }
                            "weight" => {
                                let n = int(v.node_ref(), &field_loc)?;
                                weight = Some(
                                    check_weight(&n.to_string()).map_err(|e| field_loc.error(e))?,
                                );
                            }
                            other => {
                                return Err(field_loc.error(format!(
                                    "unknown key \"{other}\" (address, room, weight)"
                                )))
                            }
                        }
                    }
                    let address = address
                        .ok_or_else(|| item_loc.error("a server needs an address (\"host:port\")".to_string()))?;
                    let mut e = address.trim().to_string();
                    if let Some(w) = weight {
                        e.push_str(&format!(";weight={w}"));
                    }
                    if let Some(r) = room {
                        e.push_str(&format!(";room={r}"));
                    }
                    e
                }
                other => {
                    return Err(item_loc.error(format!(
                        "expected \"host:port;weight=N;room=R\" or {{ address, room, weight }}, found {}",
                        other.describe()
                    )))
                }
            };
            parse_host(&entry).map_err(|e| item_loc.error(e))?;
            entries.push(entry);
        }
        Ok(entries.join(","))
    }

    /// `[system_properties] "name" = value`: any scalar, stored as Java would see it.
    fn system_property(&mut self, name: &str, node: &SNode, loc: Loc) -> Result<bool, ConfigError> {
        let value = match node.node_ref() {
            Node::Str(s) => s.clone(),
            Node::Int(n) => n.to_string(),
            Node::Bool(b) => b.to_string(),
            Node::Float(f) => f.to_string(),
            other => {
                return Err(loc.error(format!("expected a string, found {}", other.describe())))
            }
        };
        if !sysprops::is_known_property(name) {
            self.warnings.push(loc.warning(
                "not a ZooKeeper 3.8 property geokeeper knows; kept in system_properties",
            ));
        }
        sysprops::set_property(
            &mut self.cfg,
            name,
            &value,
            loc,
            Rank::File,
            &mut self.warnings,
        )?;
        Ok(true)
    }

    /// `[[quorum.servers]]`: the same members as `server.N` lines, validated the same way.
    fn servers(&mut self, node: &SNode, loc: &Loc) -> Result<(), ConfigError> {
        let Node::Array(items) = node.node_ref() else {
            return Err(loc.error(format!(
                "expected an array of tables ([[quorum.servers]]), found {}",
                node.node_ref().describe()
            )));
        };
        for (index, item) in items.iter().enumerate() {
            let path = format!("quorum.servers[{index}]");
            let item_loc = self.loc(&path, item.start());
            let Node::Table(fields) = item.node_ref() else {
                return Err(item_loc.error(format!(
                    "expected a table, found {}",
                    item.node_ref().describe()
                )));
            };
            let spec = self.server(&path, fields, &item_loc)?;
            if let Some(previous) = self.cfg.prov.servers.get(&spec.id) {
                return Err(item_loc.error(format!(
                    "server id {} is already defined by {} ({})",
                    spec.id,
                    previous.key,
                    previous.place()
                )));
            }
            self.cfg.prov.servers.insert(spec.id, item_loc);
            self.cfg.servers.insert(spec.id, spec);
        }
        Ok(())
    }

    fn server(
        &mut self,
        path: &str,
        fields: &[(String, SNode)],
        item_loc: &Loc,
    ) -> Result<ServerSpec, ConfigError> {
        let mut id = None;
        let mut primary = PartialAddress::default();
        let mut addresses: Option<Vec<QuorumAddress>> = None;
        let mut role = PeerType::Participant;
        let mut client_port: Option<u16> = None;
        let mut client_host: Option<(String, Loc)> = None;
        for (key, value) in fields {
            let loc = self.loc(&format!("{path}.{key}"), value.start());
            let v = value.node_ref();
            match key.as_str() {
                "id" => {
                    let n = int(v, &loc)?;
                    id = Some(
                        u64::try_from(n)
                            .map_err(|_| loc.error(format!("must not be negative (got {n})")))?,
                    );
                }
                "host" | "quorum_port" | "election_port" => primary.set(key, v, &loc)?,
                "addresses" => {
                    let Node::Array(items) = v else {
                        return Err(loc.error(format!(
                            "expected an array of {{ host, quorum_port, election_port }} tables, found {}",
                            v.describe()
                        )));
                    };
                    let mut list = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let item_path = format!("{path}.addresses[{i}]");
                        let item_loc = self.loc(&item_path, item.start());
                        let Node::Table(parts) = item.node_ref() else {
                            return Err(item_loc.error(format!(
                                "expected a table, found {}",
                                item.node_ref().describe()
                            )));
                        };
                        let mut address = PartialAddress::default();
                        for (k, part) in parts {
                            let part_loc = self.loc(&format!("{item_path}.{k}"), part.start());
                            match k.as_str() {
                                "host" | "quorum_port" | "election_port" => {
                                    address.set(k, part.node_ref(), &part_loc)?;
                                }
                                _ => self.warnings.push(part_loc.warning("unknown key; ignored")),
                            }
                        }
                        list.push(address.finish(&item_loc)?);
                    }
                    addresses = Some(list);
                }
                "role" => {
                    let s = string(v, &loc)?;
                    role = PeerType::parse(&s)
                        .ok_or_else(|| loc.error(format!("Unrecognised peertype: {s}")))?;
                }
                "client_port" => client_port = Some(port(int(v, &loc)?, &loc)?),
                "client_address" => client_host = Some((string(v, &loc)?, loc)),
                _ => {
                    let hint = zoo_cfg::suggest(key, SERVER_KEYS.iter().copied());
                    self.warnings
                        .push(loc.warning(format!("unknown key; ignored{hint}")));
                }
            }
        }
        let id = id.ok_or_else(|| item_loc.error("id is required"))?;
        let addresses = match addresses {
            Some(list) if primary.is_empty() => {
                if list.is_empty() {
                    return Err(item_loc.error("addresses must not be empty"));
                }
                list
            }
            Some(_) => {
                return Err(item_loc
                    .error("give either host/quorum_port/election_port or addresses, not both"))
            }
            None => vec![primary.finish(item_loc)?],
        };
        let client = match (client_port, client_host) {
            (Some(port), host) => Some(ClientAddress {
                host: host.map_or_else(|| "0.0.0.0".to_string(), |(h, _)| h),
                port,
            }),
            (None, Some((_, loc))) => {
                return Err(loc.error("client_address needs client_port"));
            }
            (None, None) => None,
        };
        Ok(ServerSpec {
            id,
            addresses,
            role,
            client,
        })
    }
}

/// host / quorum_port / election_port as they are read, before all three are known.
#[derive(Default)]
struct PartialAddress {
    host: Option<String>,
    quorum_port: Option<u16>,
    election_port: Option<u16>,
}

impl PartialAddress {
    fn is_empty(&self) -> bool {
        self.host.is_none() && self.quorum_port.is_none() && self.election_port.is_none()
    }

    fn set(&mut self, key: &str, v: &Node, loc: &Loc) -> Result<(), ConfigError> {
        match key {
            "host" => {
                let host = string(v, loc)?;
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(&host)
                    .to_string();
                if host.is_empty() {
                    return Err(loc.error("is empty"));
                }
                self.host = Some(host);
            }
            "quorum_port" => self.quorum_port = Some(port(int(v, loc)?, loc)?),
            _ => self.election_port = Some(port(int(v, loc)?, loc)?),
        }
        Ok(())
    }

    fn finish(self, loc: &Loc) -> Result<QuorumAddress, ConfigError> {
        let missing = |what: &str| loc.error(format!("{what} is required"));
        let address = QuorumAddress {
            host: self.host.ok_or_else(|| missing("host"))?,
            quorum_port: self.quorum_port.ok_or_else(|| missing("quorum_port"))?,
            election_port: self.election_port.ok_or_else(|| missing("election_port"))?,
        };
        if address.quorum_port == address.election_port {
            return Err(loc.error(format!(
                "quorum port and election port must be different (both are {})",
                address.quorum_port
            )));
        }
        Ok(address)
    }
}

fn int(v: &Node, loc: &Loc) -> Result<i64, ConfigError> {
    match v {
        Node::Int(n) => Ok(*n),
        other => Err(loc.error(format!("expected an integer, found {}", other.describe()))),
    }
}

fn boolean(v: &Node, loc: &Loc) -> Result<bool, ConfigError> {
    match v {
        Node::Bool(b) => Ok(*b),
        other => Err(loc.error(format!(
            "expected true or false, found {}",
            other.describe()
        ))),
    }
}

fn string(v: &Node, loc: &Loc) -> Result<String, ConfigError> {
    match v {
        Node::Str(s) => Ok(s.clone()),
        other => Err(loc.error(format!("expected a string, found {}", other.describe()))),
    }
}

fn port(n: i64, loc: &Loc) -> Result<u16, ConfigError> {
    u16::try_from(n)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| loc.error(format!("{n} is not a port number (1-65535)")))
}
