//! The per-room client proxy's settings (`geokeeper proxy --config FILE`): the room it
//! serves, the ZooKeeper servers behind it as a weighted host list, and the client-side
//! limits it shares with a server (`clientPort`, `maxClientCnxns`, `jute.maxbuffer`,
//! `globalOutstandingLimit`, `4lw.commands.whitelist`, `room`, `maxLagMs` mean what they
//! mean on a server). ZooKeeper has no proxy: its keys live in
//! [`Config::other_settings`] like the relay's, and geokeeper.toml's `[proxy]` section maps
//! onto them, so both dialects are read here and errors name the key as written.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::ConfigError;
use crate::hosts::{parse_host, HostEntry};
use crate::relay::{self, check_room, entries, loc, name, number};
use crate::Config;

pub(crate) const UPSTREAMS: &str = "proxy.upstreams";
pub(crate) const PREFER_ROOMS: &str = "proxy.preferRooms";
pub(crate) const PROBE_MS: &str = "proxy.probeMs";
pub(crate) const REATTACH_PER_SECOND: &str = "proxy.reattachPerSecond";
pub(crate) const RETURN_HOME_MS: &str = "proxy.returnHomeMs";

/// zoo.cfg key → geokeeper.toml key, for every proxy setting of its own.
pub(crate) const KEYS: &[(&str, &str)] = &[
    (UPSTREAMS, "proxy.upstreams"),
    (PREFER_ROOMS, "proxy.prefer_rooms"),
    (PROBE_MS, "proxy.probe_ms"),
    (REATTACH_PER_SECOND, "proxy.reattach_per_second"),
    (RETURN_HOME_MS, "proxy.return_home_ms"),
];

/// Whether a zoo.cfg key is a proxy setting.
pub(crate) fn is_proxy_key(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

/// Whether a configuration is a proxy's (it names a proxy setting): it needs no dataDir.
pub(crate) fn is_proxy_config(cfg: &Config) -> bool {
    KEYS.iter()
        .any(|(k, _)| cfg.other_settings.contains_key(*k))
}

pub(crate) const DEFAULT_PROBE_MS: u64 = 500;
pub(crate) const DEFAULT_REATTACH_PER_SECOND: u64 = 200;
pub(crate) const DEFAULT_RETURN_HOME_MS: u64 = 10_000;

/// Everything the proxy runs with. See [`Config::proxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `clientPort` / `clientPortAddress` (`server.client_port` / `server.client_address`):
    /// where clients connect.
    pub listen: SocketAddr,
    /// `room` (`server.room`): the room this proxy serves; required.
    pub room: String,
    /// `proxy.upstreams` (`host:port;weight=N;room=R,…`; TOML: an array of such strings or
    /// `{ address, room, weight }` tables): the servers behind the proxy. An entry naming no
    /// room is in the proxy's own.
    pub upstreams: Vec<HostEntry>,
    /// `proxy.preferRooms` (`proxy.prefer_rooms`): the other rooms to use, in order, when
    /// no upstream of the proxy's own room is healthy. Default: the order in which the
    /// upstream list first names them.
    pub prefer_rooms: Vec<String>,
    /// `maxLagMs` (`proxy.max_lag_ms`): an upstream further behind the leader than this is
    /// given no new sessions. Default 1000.
    pub max_lag_ms: u64,
    /// `proxy.probeMs` (`proxy.probe_ms`): how often each upstream is probed. Default 500.
    pub probe_ms: u64,
    /// `proxy.reattachPerSecond` (`proxy.reattach_per_second`): at most this many sessions
    /// are moved to another upstream per second when theirs is lost. Default 200.
    pub reattach_per_second: u64,
    /// `proxy.returnHomeMs` (`proxy.return_home_ms`): a session placed in another room
    /// because its own (or a more preferred one) had no healthy upstream moves back once
    /// that room has been healthy this long, at a moment it has no request in flight,
    /// paced with the re-attachments. 0: sessions stay where they are. Default 10000.
    pub return_home_ms: u64,
    /// `maxClientCnxns`: connections per client address (0: no limit). Default 60.
    pub max_client_cnxns: u32,
    /// `jute.maxbuffer`: the largest frame a client may send. Default 1 MiB - 1.
    pub max_buffer: u32,
    /// `globalOutstandingLimit`: requests in flight through the proxy before it stops
    /// reading from clients. Default 1000.
    pub outstanding_limit: u32,
}

/// The proxy settings, each checked. See [`Config::proxy`].
pub(crate) fn read(cfg: &Config) -> Result<ProxyConfig, ConfigError> {
    let setting = |key: &str| cfg.other_settings.get(key).map(|v| v.trim());
    let room = match setting(relay::ROOM) {
        Some(v) => check_room(v).map_err(|e| {
            loc(cfg, relay::ROOM).error(format!(
                "\"{v}\" is not a room (letters, digits, '.', '_', '-'): {e}"
            ))
        })?,
        None => {
            return Err(loc(cfg, relay::ROOM).error(format!(
                "is not set: a proxy serves one room, and places sessions there first (set {})",
                name(cfg, relay::ROOM)
            )))
        }
    };
    let mut upstreams = Vec::new();
    if let Some(v) = setting(UPSTREAMS) {
        for entry in entries(v) {
            let mut host = parse_host(entry).map_err(|e| loc(cfg, UPSTREAMS).error(e))?;
            if host.room.is_none() {
                host.room = Some(room.clone());
            }
            if upstreams
                .iter()
                .any(|h: &HostEntry| h.address == host.address)
            {
                return Err(loc(cfg, UPSTREAMS).error(format!(
                    "{} is listed twice: give it one weight",
                    host.address
                )));
            }
            upstreams.push(host);
        }
    }
    if upstreams.is_empty() {
        return Err(loc(cfg, UPSTREAMS).error(format!(
            "is not set: the proxy needs the servers behind it ({} = host:port;weight=N;room=R,…)",
            name(cfg, UPSTREAMS)
        )));
    }
    let mut prefer_rooms = Vec::new();
    if let Some(v) = setting(PREFER_ROOMS) {
        for r in entries(v) {
            let r = check_room(r)
                .map_err(|e| loc(cfg, PREFER_ROOMS).error(format!("\"{r}\" is not a room: {e}")))?;
            if r == room || prefer_rooms.contains(&r) {
                return Err(loc(cfg, PREFER_ROOMS).error(format!(
                    "\"{r}\" is {}: list each other room once",
                    if r == room {
                        "the proxy's own room"
                    } else {
                        "listed twice"
                    }
                )));
            }
            prefer_rooms.push(r);
        }
    }
    // Rooms the upstreams name and the preference does not: after it, in list order.
    for h in &upstreams {
        if let Some(r) = &h.room {
            if *r != room && !prefer_rooms.contains(r) {
                prefer_rooms.push(r.clone());
            }
        }
    }
    let address = cfg
        .client_port_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(ProxyConfig {
        listen: SocketAddr::new(address, cfg.client_port),
        room,
        upstreams,
        prefer_rooms,
        max_lag_ms: number(cfg, relay::MAX_LAG_MS, 1)?.unwrap_or(relay::DEFAULT_MAX_LAG_MS),
        probe_ms: number(cfg, PROBE_MS, 1)?.unwrap_or(DEFAULT_PROBE_MS),
        reattach_per_second: number(cfg, REATTACH_PER_SECOND, 1)?
            .unwrap_or(DEFAULT_REATTACH_PER_SECOND),
        return_home_ms: number(cfg, RETURN_HOME_MS, 0)?.unwrap_or(DEFAULT_RETURN_HOME_MS),
        max_client_cnxns: cfg.max_client_cnxns,
        max_buffer: cfg.jute_maxbuffer,
        outstanding_limit: cfg.global_outstanding_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Result<ProxyConfig, ConfigError> {
        let (cfg, _) = Config::parse_toml(text, "proxy.toml")?;
        cfg.proxy()
    }

    fn zoo(text: &str) -> Result<ProxyConfig, ConfigError> {
        let (cfg, _) = Config::parse_zoo_cfg(text, "proxy.cfg")?;
        cfg.proxy()
    }

    #[test]
    fn both_dialects_read_the_same_proxy() {
        let t = toml(
            r#"
[server]
client_port = 2281
client_address = "127.0.0.9"
room = "B"

[limits]
max_client_cnxns = 100

[proxy]
upstreams = [
  { address = "zk-b1.example:2181", room = "B", weight = 10 },
  "zk-b2.example:2181;weight=5",
  { address = "10.0.0.1:2181", room = "A" },
  "10.0.2.1:2181;room=C",
]
prefer_rooms = ["C"]
max_lag_ms = 250
probe_ms = 100
return_home_ms = 0
"#,
        )
        .expect("toml");
        let z = zoo("dataDir=/tmp/x\nclientPort=2281\nclientPortAddress=127.0.0.9\nroom=B\nmaxClientCnxns=100\n\
             proxy.upstreams=zk-b1.example:2181;room=B;weight=10, zk-b2.example:2181;weight=5,10.0.0.1:2181;room=A,10.0.2.1:2181;room=C\n\
             proxy.preferRooms=C\nmaxLagMs=250\nproxy.probeMs=100\nproxy.returnHomeMs=0\n")
        .expect("zoo.cfg");
        assert_eq!(t, z);
        assert_eq!(t.listen, "127.0.0.9:2281".parse().expect("addr"));
        assert_eq!(t.room, "B");
        let rooms: Vec<_> = t.upstreams.iter().map(|h| h.room.as_deref()).collect();
        assert_eq!(rooms, [Some("B"), Some("B"), Some("A"), Some("C")]);
        let weights: Vec<_> = t.upstreams.iter().map(|h| h.weight).collect();
        assert_eq!(weights, [10, 5, 1, 1]);
        // C as preferred, then A as the list first names it.
        assert_eq!(t.prefer_rooms, ["C", "A"]);
        assert_eq!((t.max_lag_ms, t.probe_ms), (250, 100));
        assert_eq!(t.reattach_per_second, DEFAULT_REATTACH_PER_SECOND);
        assert_eq!(
            t.return_home_ms, 0,
            "0 is allowed: sessions stay where they are"
        );
        assert_eq!(t.max_client_cnxns, 100);
    }

    #[test]
    fn mistakes_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [\n  { address = \"a:1\", weight = 0 },\n]\n",
                "proxy.toml:5: proxy.upstreams[0].weight: weight \"0\" is not a whole number",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [\"a:1\",\n \"b:2;colour=red\"]\n",
                "proxy.toml:5: proxy.upstreams[1]: \"b:2;colour=red\": unknown attribute",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [{ room = \"B\" }]\n",
                "proxy.toml:4: proxy.upstreams[0]: a server needs an address",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [{ address = \"a:1\", zone = \"B\" }]\n",
                "proxy.toml:4: proxy.upstreams[0].zone: unknown key \"zone\"",
            ),
            (
                "[proxy]\nupstreams = [\"a:1\"]\n",
                "proxy.toml: server.room: is not set",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nprobe_ms = 5\n",
                "proxy.toml: proxy.upstreams: is not set",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [\"a:1\", \"a:1;weight=2\"]\n",
                "proxy.toml:4: proxy.upstreams: a:1 is listed twice",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [\"a:1\"]\nprefer_rooms = [\"B\"]\n",
                "proxy.toml:5: proxy.prefer_rooms: \"B\" is the proxy's own room",
            ),
            (
                "[server]\nroom = \"B\"\n[proxy]\nupstreams = [\"a:1\"]\nreturn_home_ms = -1\n",
                "proxy.toml:5: proxy.return_home_ms: must not be negative",
            ),
        ];
        for (text, want) in cases {
            let e = toml(text).expect_err(text).to_string();
            assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
        }
        let e = zoo("dataDir=/x\nroom=B\nproxy.upstreams=a:1;weight=-3\n")
            .expect_err("zoo")
            .to_string();
        assert!(
            e.starts_with("proxy.cfg:3: proxy.upstreams: \"a:1;weight=-3\": weight"),
            "{e}"
        );
    }
}
