//! Java system properties: the second way ZooKeeper is configured.
//!
//! Many ZooKeeper settings are read with `System.getProperty` rather than from zoo.cfg. They
//! reach the JVM three ways, and geokeeper accepts all three:
//!
//! 1. `-Dname=value` words in `SERVER_JVMFLAGS` / `JVMFLAGS` (zkServer.sh passes
//!    `$SERVER_JVMFLAGS $JVMFLAGS`, so a later word wins, as in Java);
//! 2. a zoo.cfg key that `QuorumPeerConfig.parseProperties` does not know: ZooKeeper calls
//!    `System.setProperty("zookeeper." + key, value)` *after* the JVM started, so the file
//!    overrides a `-Dzookeeper.<key>` flag (`snapCount=…` beats `-Dzookeeper.snapCount=…`);
//! 3. geokeeper's extension: a zoo.cfg key written as the full property name
//!    (`jute.maxbuffer=…`, `zookeeper.enforceQuota=true`, `readonlymode.enabled=true`,
//!    `java.security.auth.login.config=…`). ZooKeeper would store these under
//!    `zookeeper.<name>` and never read them, so a `-D` flag for the same property wins over
//!    them: that is the value ZooKeeper would have used.
//!
//! In geokeeper.toml every setting, in a section or in `[system_properties]`, wins over `-D`.
//!
//! [`Rank`] encodes that order; [`set_property`] applies it and updates the typed field the
//! property feeds, parsing the value the way the ZooKeeper class that reads it does.

use std::path::PathBuf;

use crate::error::{ConfigError, Loc, Warning};
use crate::Config;

/// Who set a property, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// A zoo.cfg line naming the full property (ZooKeeper itself ignores such a line).
    FileFullName,
    /// A `-D` flag from `SERVER_JVMFLAGS` / `JVMFLAGS`.
    JvmFlag,
    /// A zoo.cfg key ZooKeeper turns into `zookeeper.<key>`, or any geokeeper.toml setting.
    File,
}

/// Where a property's current value came from.
#[derive(Debug, Clone)]
pub(crate) struct PropSource {
    pub loc: Loc,
    pub rank: Rank,
}

/// Properties that feed a typed [`Config`] field.
pub(crate) const JUTE_MAXBUFFER: &str = "jute.maxbuffer";
pub(crate) const GLOBAL_OUTSTANDING_LIMIT: &str = "zookeeper.globalOutstandingLimit";
pub(crate) const SNAP_COUNT: &str = "zookeeper.snapCount";
pub(crate) const PRE_ALLOC_SIZE: &str = "zookeeper.preAllocSize";
pub(crate) const FORCE_SYNC: &str = "zookeeper.forceSync";
pub(crate) const FSYNC_WARNING: &str = "zookeeper.fsync.warningthresholdms";
pub(crate) const FSYNC_WARNING_OLD: &str = "fsync.warningthresholdms";
pub(crate) const FOUR_LETTER_WHITELIST: &str = "zookeeper.4lw.commands.whitelist";
pub(crate) const EXTENDED_TYPES: &str = "zookeeper.extendedTypesEnabled";
pub(crate) const CONTAINER_CHECK_INTERVAL: &str = "znode.container.checkIntervalMs";
pub(crate) const CONTAINER_MAX_PER_MINUTE: &str = "znode.container.maxPerMinute";
pub(crate) const ENFORCE_QUOTA: &str = "zookeeper.enforceQuota";
pub(crate) const SKIP_ACL: &str = "zookeeper.skipACL";
pub(crate) const SUPER_DIGEST: &str = "zookeeper.DigestAuthenticationProvider.superDigest";
pub(crate) const JAAS_CONFIG: &str = "java.security.auth.login.config";
pub(crate) const READONLY_MODE: &str = "readonlymode.enabled";
pub(crate) const MAX_CNXNS: &str = "zookeeper.maxCnxns";
pub(crate) const MULTI_ADDRESS: &str = "zookeeper.multiAddress.enabled";
pub(crate) const ENFORCE_AUTH_ENABLED: &str = "zookeeper.enforce.auth.enabled";
pub(crate) const ENFORCE_AUTH_SCHEMES: &str = "zookeeper.enforce.auth.schemes";
pub(crate) const SESSION_REQUIRE_SASL: &str = "zookeeper.sessionRequireClientSASLAuth";
pub(crate) const SNAP_SIZE_LIMIT: &str = "zookeeper.snapSizeLimitInKb";

/// Properties geokeeper reads by name outside [`apply_typed`]: the server, its auth
/// providers and its SASL login look them up in [`Config::system_properties`].
pub(crate) const READ_BY_NAME: &[&str] = &[
    "zookeeper.digest.enabled",
    "zookeeper.snapshot.trust.empty",
    "zookeeper.snapshot.compression.method",
    "zookeeper.jute.maxbuffer.extrasize",
    "zookeeper.nio.sessionlessCnxnTimeout",
    "zookeeper.DigestAuthenticationProvider.enabled",
    "zookeeper.letAnySaslUserDoX",
    "zookeeper.sasl.serverconfig",
    "zookeeper.superUser",
    "zookeeper.SASLAuthenticationProvider.superPassword",
    "zookeeper.allowSaslFailedClients",
    "zookeeper.leaderServes",
];

/// Property families read by name: `authProvider.N` registers a provider.
pub(crate) const READ_BY_PREFIX: &[&str] = &["zookeeper.authProvider."];

/// Properties without the `zookeeper.` prefix that a zoo.cfg line may name in full.
pub(crate) const UNPREFIXED_PROPERTIES: &[&str] = &[
    JUTE_MAXBUFFER,
    READONLY_MODE,
    JAAS_CONFIG,
    CONTAINER_CHECK_INTERVAL,
    CONTAINER_MAX_PER_MINUTE,
    "znode.container.maxNeverUsedIntervalMs",
];

/// Other property names ZooKeeper 3.8 reads without the `zookeeper.` prefix.
const OTHER_UNPREFIXED: &[&str] = &[
    FSYNC_WARNING_OLD,
    "request_throttle_drop_stale",
    "learner.closeSocketAsync",
    "leader.closeSocketAsync",
    "learner.asyncSending",
    "zookeeper.log.dir",
    "zookeeper.log.file",
    "zookeeper.root.logger",
    "java.security.krb5.conf",
    "sun.security.krb5.debug",
    "javax.net.debug",
];

/// zoo.cfg keys (without `zookeeper.`) that ZooKeeper 3.8 documents as settings backed by a
/// `zookeeper.<key>` system property (zookeeperAdmin.md), so that `maxBatchSize=…` in a
/// zoo.cfg is recognised even though geokeeper does not act on it yet.
const KNOWN_PROPERTY_KEYS: &[&str] = &[
    "globalOutstandingLimit",
    "preAllocSize",
    "snapCount",
    "commitLogCount",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "maxCnxns",
    "fsync.warningthresholdms",
    "maxResponseCacheSize",
    "maxGetChildrenResponseCacheSize",
    "extendedTypesEnabled",
    "emulate353TTLNodes",
    "watchManagerName",
    "watcherCleanThreadsNum",
    "watcherCleanThreshold",
    "watcherCleanIntervalInSeconds",
    "maxInProcessingDeadWatchers",
    "bitHashCacheSize",
    "connectionMaxTokens",
    "connectionTokenFillTime",
    "connectionTokenFillCount",
    "connectionFreezeTime",
    "connectionDropIncrease",
    "connectionDropDecrease",
    "connectionDecreaseRatio",
    "serverCnxnFactory",
    "flushDelay",
    "maxWriteQueuePollTime",
    "maxBatchSize",
    "enforceQuota",
    "requestThrottleLimit",
    "requestThrottleStallTime",
    "requestThrottleDropStale",
    "requestStaleLatencyCheck",
    "requestStaleConnectionCheck",
    "advancedFlowControlEnabled",
    "enableEagerACLCheck",
    "maxConcurrentSnapSyncs",
    "maxConcurrentDiffSyncs",
    "digest.enabled",
    "closeSessionTxn.enabled",
    "largeRequestMaxBytes",
    "largeRequestThreshold",
    "throttled_op_wait_time",
    "intBufferStartingSizeBytes",
    "maxTimeToWaitForEpoch",
    "connectToLearnerMasterLimit",
    "leaderServes",
    "cnxTimeout",
    "quorumCnxnTimeoutMs",
    "4lw.commands.whitelist",
    "tcpKeepAlive",
    "clientTcpKeepAlive",
    "electionPortBindRetry",
    "superUser",
    "ensembleAuthName",
    "sessionRequireClientSASLAuth",
    "authProvider",
    "fips-mode",
    "forceSync",
    "skipACL",
    "jute.maxbuffer.extrasize",
    "sslQuorum",
    "serverCnxnFactory",
    "clientCnxnSocket",
    "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "forward_learner_requests_to_commit_processor_disabled",
    "request_throttle_max_requests",
    "request_throttle_stall_time",
    "request_stale_latency_check",
    "request_stale_connection_check",
    "netty.server.outstandingHandshake.limit",
    "netty.server.earlyDropSecureConnectionHandshakes",
    "observer.syncEnabled",
    "datadir.autocreate",
    "db.autocreate",
    "snapshot.trust.empty",
    "snapshot.compression.method",
    "audit.enable",
    "audit.impl.class",
    "follower.skipLearnerRequestToNextProcessor",
    "messageTracker.BufferSize",
    "messageTracker.Enabled",
    "kerberos.removeHostFromPrincipal",
    "kerberos.removeRealmFromPrincipal",
    "kerberos.canonicalizeHostNames",
];

/// Families of documented keys, recognised by prefix.
const KNOWN_PROPERTY_PREFIXES: &[&str] = &[
    "ssl.",
    "admin.",
    "authProvider.",
    "kerberos.",
    "nio.",
    "netty.",
    "commitProcessor.",
    "leader.",
    "learner.",
    "follower.",
    "observer.",
    "fastleader.",
    "messageTracker.",
    "connection_throttle",
    "request_throttler.",
    "audit.",
    "snapshot.",
    "DigestAuthenticationProvider.",
    "X509AuthenticationProvider.",
    "enforce.auth.",
    "client.",
];

/// The four-letter words ZooKeeper 3.8 knows (`FourLetterCommands`).
pub(crate) const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Whether a zoo.cfg key that ZooKeeper turns into `zookeeper.<key>` is one it documents.
pub(crate) fn is_known_property_key(key: &str) -> bool {
    KNOWN_PROPERTY_KEYS.contains(&key) || KNOWN_PROPERTY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether a full property name is one ZooKeeper 3.8 reads.
pub(crate) fn is_known_property(name: &str) -> bool {
    if UNPREFIXED_PROPERTIES.contains(&name) || OTHER_UNPREFIXED.contains(&name) {
        return true;
    }
    name.strip_prefix("zookeeper.")
        .is_some_and(is_known_property_key)
}

/// The zoo.cfg key candidates used to suggest a correction for a misspelt key.
pub(crate) fn property_key_candidates() -> impl Iterator<Item = &'static str> {
    KNOWN_PROPERTY_KEYS
        .iter()
        .copied()
        .chain(UNPREFIXED_PROPERTIES.iter().copied())
}

/// Sets a system property with the precedence described in the module documentation, and
/// updates the typed field it feeds.
pub(crate) fn set_property(
    cfg: &mut Config,
    name: &str,
    value: &str,
    loc: Loc,
    rank: Rank,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    if let Some(existing) = cfg.prov.props.get(name) {
        if existing.rank > rank {
            warnings.push(loc.warning(format!(
                "ignored: {} ({}) sets {name} and takes precedence",
                existing.loc.key,
                existing.loc.place()
            )));
            return Ok(());
        }
        if existing.rank == Rank::File && rank == Rank::File {
            return Err(loc.error(format!(
                "sets {name}, which {} ({}) already sets",
                existing.loc.key,
                existing.loc.place()
            )));
        }
        if existing.rank < rank {
            warnings.push(existing.loc.warning(format!(
                "overridden by {} ({}), which takes precedence for {name}",
                loc.key,
                loc.place()
            )));
        }
    }
    cfg.system_properties
        .insert(name.to_string(), value.to_string());
    cfg.prov.props.insert(
        name.to_string(),
        PropSource {
            loc: loc.clone(),
            rank,
        },
    );
    apply_typed(cfg, name, value, &loc, warnings)
}

/// The properties [`apply_typed`] feeds into typed fields.
pub(crate) const TYPED: &[&str] = &[
    JUTE_MAXBUFFER,
    GLOBAL_OUTSTANDING_LIMIT,
    SNAP_COUNT,
    PRE_ALLOC_SIZE,
    FORCE_SYNC,
    FSYNC_WARNING,
    FSYNC_WARNING_OLD,
    FOUR_LETTER_WHITELIST,
    EXTENDED_TYPES,
    CONTAINER_CHECK_INTERVAL,
    CONTAINER_MAX_PER_MINUTE,
    ENFORCE_QUOTA,
    SKIP_ACL,
    SUPER_DIGEST,
    JAAS_CONFIG,
    READONLY_MODE,
    MAX_CNXNS,
    MULTI_ADDRESS,
    ENFORCE_AUTH_ENABLED,
    ENFORCE_AUTH_SCHEMES,
    SESSION_REQUIRE_SASL,
    SNAP_SIZE_LIMIT,
];

/// Feeds a property into its typed field, parsing the value as the ZooKeeper class reading it
/// does, but refusing values ZooKeeper would silently replace by its default (a non-number
/// `snapCount` becomes 100000 in `Integer.getInteger`; here it is an error).
fn apply_typed(
    cfg: &mut Config,
    name: &str,
    value: &str,
    loc: &Loc,
    warnings: &mut Vec<Warning>,
) -> Result<(), ConfigError> {
    match name {
        // BinaryInputArchive: Integer.getInteger("jute.maxbuffer", 0xfffff).
        JUTE_MAXBUFFER => {
            cfg.jute_maxbuffer = positive(decode_int(value, loc)?, loc)?;
        }
        // ZooKeeperServer.getGlobalOutstandingLimit: Integer.getInteger.
        GLOBAL_OUTSTANDING_LIMIT => {
            cfg.global_outstanding_limit = positive(decode_int(value, loc)?, loc)?;
        }
        // ZooKeeperServer.getSnapCount: values below 2 are reset to 2 with a warning.
        SNAP_COUNT => {
            let n = decode_int(value, loc)?;
            cfg.snap_count = if n < 2 {
                warnings.push(loc.warning(format!(
                    "snapCount should be 2 or more; {n} is reset to 2, as ZooKeeper does"
                )));
                2
            } else {
                to_u32(n)
            };
        }
        // FilePadding: Long.parseLong(size) * 1024; zero or negative disables preallocation.
        PRE_ALLOC_SIZE => {
            let n = java_parse_long(value).ok_or_else(|| loc.error(not_a_number(value)))?;
            cfg.pre_alloc_size_kb = if n < 0 {
                warnings.push(loc.warning(format!(
                    "{n} disables log preallocation, as 0 does (ZooKeeper only pads when it is positive)"
                )));
                0
            } else {
                u64::try_from(n).unwrap_or(0)
            };
        }
        // FileTxnLog: !System.getProperty("zookeeper.forceSync", "yes").equals("no").
        FORCE_SYNC => {
            cfg.force_sync = value != "no";
            if value != "no" && value != "yes" {
                warnings.push(loc.warning(format!(
                    "\"{value}\" is neither \"yes\" nor \"no\"; only \"no\" turns fsync off, so fsync stays on (as in ZooKeeper)"
                )));
            }
        }
        // FileTxnLog: Long.getLong("zookeeper.fsync.warningthresholdms") first, then
        // Long.getLong("fsync.warningthresholdms", 1000).
        FSYNC_WARNING | FSYNC_WARNING_OLD => {
            let n = decode_long(value, loc)?;
            let n = u64::try_from(n).map_err(|_| loc.error(format!("{n} must not be negative")))?;
            let shadowed =
                name == FSYNC_WARNING_OLD && cfg.system_properties.contains_key(FSYNC_WARNING);
            if shadowed {
                warnings.push(loc.warning(format!(
                    "ignored: {FSYNC_WARNING} is also set and is read first"
                )));
            } else {
                cfg.fsync_warning_threshold_ms = n;
            }
        }
        // FourLetterCommands.isEnabled: split on ',', trim, drop empties; "*" means all.
        FOUR_LETTER_WHITELIST => {
            cfg.four_letter_whitelist = parse_four_letter_list(value, loc, warnings);
        }
        // EphemeralType: Boolean.getBoolean.
        EXTENDED_TYPES => cfg.extended_types_enabled = java_boolean(value, loc, warnings),
        // ZooKeeperServerMain / LeaderZooKeeperServer: Integer.getInteger. The timer and the
        // per-minute division fail at start-up on zero or negative values.
        CONTAINER_CHECK_INTERVAL => {
            cfg.container_check_interval_ms = positive(decode_int(value, loc)?, loc)?;
        }
        CONTAINER_MAX_PER_MINUTE => {
            cfg.container_max_per_minute = positive(decode_int(value, loc)?, loc)?;
        }
        // ZooKeeperServer: Boolean.parseBoolean(System.getProperty(ENFORCE_QUOTA, "false")).
        ENFORCE_QUOTA => cfg.enforce_quota = java_boolean(value, loc, warnings),
        // ZooKeeperServer: System.getProperty(SKIP_ACL, "no").equals("yes").
        SKIP_ACL => {
            cfg.skip_acl = value == "yes";
            if value != "yes" && value != "no" {
                warnings.push(loc.warning(format!(
                    "\"{value}\" is neither \"yes\" nor \"no\"; only \"yes\" skips ACL checks, so they stay on (as in ZooKeeper)"
                )));
            }
        }
        // DigestAuthenticationProvider compares "user:base64(sha1)" digests verbatim.
        SUPER_DIGEST => {
            if !value.contains(':') {
                warnings.push(loc.warning(
                    "expected user:base64digest (the output of DigestAuthenticationProvider.generateDigest); no client can match this",
                ));
            }
            cfg.super_digest = (!value.is_empty()).then(|| value.to_string());
        }
        JAAS_CONFIG => cfg.jaas_config = (!value.is_empty()).then(|| PathBuf::from(value)),
        // QuorumPeer: Boolean.getBoolean("readonlymode.enabled").
        READONLY_MODE => cfg.readonly_mode_enabled = java_boolean(value, loc, warnings),
        // ServerCnxnFactory: Integer.getInteger; negative values fall back to 0 (no limit).
        MAX_CNXNS => {
            let n = decode_int(value, loc)?;
            cfg.max_cnxns = if n < 0 {
                warnings.push(loc.warning(format!(
                    "maxCnxns should be greater than or equal to 0; {n} means 0 (no limit), as in ZooKeeper"
                )));
                0
            } else {
                to_u32(n)
            };
        }
        // QuorumPeer.QuorumServer: Boolean.parseBoolean(System.getProperty(...)).
        MULTI_ADDRESS => cfg.multi_address_enabled = java_boolean(value, loc, warnings),
        // AuthenticationHelper: Boolean.parseBoolean; the schemes split on ',' and trimmed
        // (empty pieces are kept, and name no provider, so validation refuses them).
        ENFORCE_AUTH_ENABLED => cfg.enforce_auth_enabled = java_boolean(value, loc, warnings),
        ENFORCE_AUTH_SCHEMES => {
            cfg.enforce_auth_schemes = value
                .split(',')
                .map(|s| crate::properties::java_trim(s).to_string())
                .collect();
        }
        SESSION_REQUIRE_SASL => {
            cfg.session_require_client_sasl_auth = java_boolean(value, loc, warnings);
        }
        // ZooKeeperServer.getSnapSizeLimitInKb: Long.getLong. Zero divides by zero when
        // ZooKeeper draws its random share and stops the server; here it is an error.
        SNAP_SIZE_LIMIT => {
            let n = decode_long(value, loc)?;
            if n == 0 {
                return Err(loc.error(
                    "0 stops ZooKeeper at startup (a division by zero); use a negative value to disable snapshots by log size",
                ));
            }
            cfg.snap_size_limit_kb = n;
        }
        _ => {}
    }
    Ok(())
}

fn parse_four_letter_list(value: &str, loc: &Loc, warnings: &mut Vec<Warning>) -> Vec<String> {
    let mut list = Vec::new();
    for word in value.split(',') {
        let word = crate::properties::java_trim(word);
        if word == "*" {
            // ZooKeeper enables every command and stops reading the list.
            return vec!["*".to_string()];
        }
        if word.is_empty() {
            continue;
        }
        if !FOUR_LETTER_WORDS.contains(&word) {
            warnings.push(loc.warning(format!(
                "\"{word}\" is not a four-letter word ZooKeeper knows ({})",
                FOUR_LETTER_WORDS.join(", ")
            )));
        }
        if !list.iter().any(|w| w == word) {
            list.push(word.to_string());
        }
    }
    list
}

/// `Boolean.parseBoolean`: true only for "true" in any case. Anything else is false, and gets
/// a warning unless it is "false".
pub(crate) fn java_boolean(value: &str, loc: &Loc, warnings: &mut Vec<Warning>) -> bool {
    if value.eq_ignore_ascii_case("true") {
        return true;
    }
    if !value.eq_ignore_ascii_case("false") {
        warnings.push(loc.warning(format!(
            "\"{value}\" is neither \"true\" nor \"false\"; ZooKeeper reads it as false"
        )));
    }
    false
}

/// A count or duration ZooKeeper holds in an `int` that must be at least 1.
pub(crate) fn positive(n: i64, loc: &Loc) -> Result<u32, ConfigError> {
    if n <= 0 {
        return Err(loc.error(format!("must be greater than 0 (got {n})")));
    }
    non_negative(n, loc)
}

/// A count or duration ZooKeeper holds in an `int` that must not be negative.
pub(crate) fn non_negative(n: i64, loc: &Loc) -> Result<u32, ConfigError> {
    if n < 0 {
        return Err(loc.error(format!("must not be negative (got {n})")));
    }
    i32::try_from(n)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| loc.error(format!("must be at most {} (got {n})", i32::MAX)))
}

/// Callers have range-checked `n` to be a non-negative `int`.
fn to_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn not_a_number(value: &str) -> String {
    format!("\"{value}\" is not a number")
}

fn decode_int(value: &str, loc: &Loc) -> Result<i64, ConfigError> {
    java_decode(value, i64::from(i32::MIN), i64::from(i32::MAX)).map_err(|e| loc.error(e))
}

fn decode_long(value: &str, loc: &Loc) -> Result<i64, ConfigError> {
    java_decode(value, i64::MIN, i64::MAX).map_err(|e| loc.error(e))
}

/// `Integer.parseInt`: an optional sign and decimal digits, within `int` range.
pub(crate) fn java_parse_int(s: &str) -> Option<i64> {
    java_parse_long(s).filter(|n| i32::try_from(*n).is_ok())
}

/// `Long.parseLong`: an optional sign and decimal digits, within `long` range.
pub(crate) fn java_parse_long(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse::<i64>().ok()
}

/// `Integer.decode` / `Long.decode` (what `Integer.getInteger` and `Long.getLong` use): an
/// optional sign, then `0x`, `0X` or `#` for hexadecimal, a leading `0` for octal, or decimal.
pub(crate) fn java_decode(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))
        .or_else(|| body.strip_prefix('#'))
    {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(not_a_number(s));
    }
    let magnitude = i128::from_str_radix(digits, radix).map_err(|_| not_a_number(s))?;
    let n = if negative { -magnitude } else { magnitude };
    i64::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{s} is out of range ({min} to {max})"))
}

/// The `-Dname=value` words of a JVM flags string, in order. The shell splits `$JVMFLAGS` on
/// blanks without interpreting quotes, so neither do we. `-Dname` alone sets an empty value,
/// as in Java; other words (`-Xmx1g`, `-XX:…`, `-cp`) are not properties and are skipped.
pub(crate) fn jvm_flag_properties(flags: &str) -> Vec<(String, String)> {
    flags
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix("-D"))
        .map(|prop| match prop.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (prop.to_string(), String::new()),
        })
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_number_parsing() {
        assert_eq!(java_parse_int("2000"), Some(2000));
        assert_eq!(java_parse_int("+5"), Some(5));
        assert_eq!(java_parse_int("-1"), Some(-1));
        assert_eq!(java_parse_int("2147483648"), None);
        assert_eq!(java_parse_int("0x10"), None);
        assert_eq!(java_parse_int(" 1"), None);
        assert_eq!(java_parse_int(""), None);
        assert_eq!(java_parse_long("2147483648"), Some(2_147_483_648));
    }

    #[test]
    fn java_decode_radixes() {
        let int = |s| java_decode(s, i64::from(i32::MIN), i64::from(i32::MAX));
        assert_eq!(int("0xfffff"), Ok(0xfffff));
        assert_eq!(int("0XFFFFF"), Ok(0xfffff));
        assert_eq!(int("#ff"), Ok(255));
        assert_eq!(int("010"), Ok(8));
        assert_eq!(int("0"), Ok(0));
        assert_eq!(int("-0x10"), Ok(-16));
        assert_eq!(int("4194304"), Ok(4_194_304));
        assert_eq!(int("abc"), Err("\"abc\" is not a number".into()));
        assert_eq!(int("0x-1"), Err("\"0x-1\" is not a number".into()));
        assert_eq!(int("09"), Err("\"09\" is not a number".into()));
        assert_eq!(
            int("0x80000000"),
            Err("0x80000000 is out of range (-2147483648 to 2147483647)".into())
        );
    }

    #[test]
    fn jvm_flags_words() {
        assert_eq!(
            jvm_flag_properties(
                "-Xmx1000m  -Djute.maxbuffer=0x400000 -XX:+UseG1GC -Dempty -Da=b=c -D -D=x -cp x"
            ),
            vec![
                ("jute.maxbuffer".to_string(), "0x400000".to_string()),
                ("empty".to_string(), String::new()),
                ("a".to_string(), "b=c".to_string()),
            ]
        );
    }

    #[test]
    fn known_properties() {
        assert!(is_known_property("zookeeper.digest.enabled"));
        assert!(is_known_property("zookeeper.ssl.keyStore.location"));
        assert!(is_known_property("jute.maxbuffer"));
        assert!(is_known_property("fsync.warningthresholdms"));
        assert!(!is_known_property("zookeeper.tickTimeTypo"));
        assert!(!is_known_property("digest.enabled"));
        assert!(is_known_property_key("admin.enableServer"));
        assert!(!is_known_property_key("tikTime"));
    }
}
