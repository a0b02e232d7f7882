//! Settings geokeeper recognises but does not act on, and what ignoring each would cost.
//!
//! Nothing is ignored in silence. A recognised setting that geokeeper does not act on is
//! either harmless (tuning, reporting, a feature of roles this server does not play: ignoring
//! it weakens no guarantee), and then named with the others in one startup line; or it asks
//! for security or durability that geokeeper would not provide, and then startup stops with
//! an error naming its file, line and key, unless its value is the one that leaves the
//! feature off (what ZooKeeper does without the setting).

use crate::error::{ConfigError, Loc};
use crate::{proxy, relay, sysprops, Config};

/// Which values of a refused setting ask for the feature (the others leave it off and
/// may stay).
#[derive(Clone, Copy)]
enum Asks {
    /// `Boolean.parseBoolean`: "true" (any case) turns it on.
    True,
    /// Anything but "true" (any case) turns the safeguard on, as for autocreate.
    NotTrue,
    /// A port or count above zero.
    Positive,
}

impl Asks {
    fn asks(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            Asks::True => v.eq_ignore_ascii_case("true"),
            Asks::NotTrue => !v.eq_ignore_ascii_case("true"),
            Asks::Positive => v.parse::<i64>().map_or(true, |n| n > 0),
        }
    }
}

/// Recognised settings geokeeper does not implement whose absence would weaken security or
/// durability: (system property or zoo.cfg key, the value that asks for nothing, why).
const REFUSED: &[(&str, Asks, &str)] = &[
    (
        "secureClientPort",
        Asks::Positive,
        "TLS on a client port is not implemented: clients configured for TLS could not connect, and an operator would believe client traffic is encrypted",
    ),
    (
        "portUnification",
        Asks::True,
        "TLS on the client port is not implemented",
    ),
    (
        "sslQuorum",
        Asks::True,
        "quorum TLS is not implemented: the quorum port would carry the whole tree in the clear",
    ),
    (
        "zookeeper.sslQuorum",
        Asks::True,
        "quorum TLS is not implemented: the quorum port would carry the whole tree in the clear",
    ),
    (
        "quorum.auth.enableSasl",
        Asks::True,
        "quorum SASL authentication is not implemented",
    ),
    (
        "quorum.auth.serverRequireSasl",
        Asks::True,
        "quorum SASL authentication is not implemented: unauthenticated peers would be accepted",
    ),
    (
        "quorum.auth.learnerRequireSasl",
        Asks::True,
        "quorum SASL authentication is not implemented",
    ),
    (
        "zookeeper.audit.enable",
        Asks::True,
        "audit logging is not implemented: no audit log would be written",
    ),
    (
        "zookeeper.datadir.autocreate",
        Asks::NotTrue,
        "geokeeper creates a missing data directory, where ZooKeeper with this setting refuses to start on an empty one",
    ),
    (
        "zookeeper.db.autocreate",
        Asks::NotTrue,
        "geokeeper starts with an empty database when none exists, where ZooKeeper with this setting refuses to",
    ),
];

/// What a recognised setting is to geokeeper.
enum Verdict {
    /// geokeeper reads it.
    ActedOn,
    /// Not acted on; ignoring it changes no guarantee.
    Harmless,
    /// Not acted on, and ignoring this value would weaken security or durability.
    Refused(&'static str),
}

fn verdict(name: &str, value: &str) -> Verdict {
    if let Some((_, asks, why)) = REFUSED.iter().find(|(n, _, _)| *n == name) {
        return if asks.asks(value) {
            Verdict::Refused(why)
        } else {
            Verdict::Harmless
        };
    }
    let acted_on = relay::is_relay_key(name)
        || proxy::is_proxy_key(name)
        || sysprops::TYPED.contains(&name)
        || sysprops::READ_BY_NAME.contains(&name)
        || sysprops::READ_BY_PREFIX.iter().any(|p| name.starts_with(p));
    if acted_on {
        Verdict::ActedOn
    } else {
        Verdict::Harmless
    }
}

/// Every recognised setting geokeeper does not act on: system properties known to
/// ZooKeeper 3.8, and the zoo.cfg keys it parses itself that geokeeper keeps aside.
/// Unknown names are warned about where they are read, and are not listed here.
fn not_acted_on(cfg: &Config) -> impl Iterator<Item = (&str, &str, Loc)> {
    let props = cfg
        .system_properties
        .iter()
        .filter(|(name, _)| sysprops::is_known_property(name))
        .map(|(name, value)| {
            let loc = cfg
                .prov
                .props
                .get(name)
                .map(|p| p.loc.clone())
                .unwrap_or_else(|| Loc::new(&cfg.prov.file, None, name));
            (name.as_str(), value.as_str(), loc)
        });
    let keys = cfg.other_settings.iter().map(|(key, value)| {
        let loc = cfg
            .prov
            .other
            .get(key)
            .cloned()
            .unwrap_or_else(|| Loc::new(&cfg.prov.file, None, key));
        (key.as_str(), value.as_str(), loc)
    });
    props
        .chain(keys)
        .filter(|(name, value, _)| !matches!(verdict(name, value), Verdict::ActedOn))
        .filter(|(name, _, _)| !(cfg.is_distributed() && observer_acts_on(name)))
}

/// zoo.cfg keys and system properties a gateway (an observer of an ensemble) acts on; a
/// standalone server has no use for them (and refuses `sslQuorum=true`, which would
/// promise a quorum link it does not have).
const OBSERVER_KEYS: &[&str] = &[
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "observerMasterPort",
    "zookeeper.sslQuorum",
    "sslQuorum",
];

fn observer_acts_on(name: &str) -> bool {
    OBSERVER_KEYS.contains(&name) || name.starts_with("zookeeper.ssl.quorum.")
}

/// Stops startup at the first setting whose value asks for security or durability that
/// geokeeper does not provide.
pub(crate) fn refuse(cfg: &Config) -> Result<(), ConfigError> {
    for (name, value, loc) in not_acted_on(cfg) {
        if let Verdict::Refused(why) = verdict(name, value) {
            return Err(loc.error(format!(
                "{name}={value} is not supported by geokeeper: {why}; remove it, or set it off, to start"
            )));
        }
    }
    Ok(())
}

/// The harmless ones, as `key (file:line)`.
pub(crate) fn harmless(cfg: &Config) -> Vec<String> {
    not_acted_on(cfg)
        .map(|(_, _, loc)| format!("{} ({})", loc.key, loc.place()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_setting_stays_when_it_asks_for_nothing() {
        assert!(matches!(verdict("sslQuorum", "true"), Verdict::Refused(_)));
        assert!(matches!(verdict("sslQuorum", "false"), Verdict::Harmless));
        assert!(matches!(
            verdict("secureClientPort", "2281"),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            verdict("secureClientPort", "0"),
            Verdict::Harmless
        ));
        assert!(matches!(
            verdict("zookeeper.datadir.autocreate", "false"),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            verdict("zookeeper.datadir.autocreate", "TRUE"),
            Verdict::Harmless
        ));
        assert!(matches!(
            verdict("zookeeper.snapCount", "10"),
            Verdict::ActedOn
        ));
        assert!(matches!(
            verdict("zookeeper.authProvider.1", "x"),
            Verdict::ActedOn
        ));
        assert!(matches!(
            verdict("metricsProvider.className", "x"),
            Verdict::Harmless
        ));
    }
}
