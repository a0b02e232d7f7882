//! Behaviour of the configuration model as a ZooKeeper user sees it: defaults, both dialects,
//! `-D` flags and their precedence, the ensemble, and the exact text of every message.

use super::*;

/// The public fields, for comparing two configurations regardless of where they came from.
fn public(cfg: &Config) -> String {
    let mut cfg = cfg.clone();
    cfg.prov = Provenance::default();
    format!("{cfg:#?}")
}

fn zoo(text: &str) -> (Config, Vec<Warning>) {
    Config::parse_zoo_cfg(text, "zoo.cfg").unwrap_or_else(|e| panic!("zoo.cfg rejected: {e}"))
}

fn toml(text: &str) -> (Config, Vec<Warning>) {
    Config::parse_toml(text, "geokeeper.toml")
        .unwrap_or_else(|e| panic!("geokeeper.toml rejected: {e}"))
}

fn zoo_err(text: &str) -> String {
    match Config::parse_zoo_cfg(text, "zoo.cfg") {
        Ok(_) => panic!("zoo.cfg accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn toml_err(text: &str) -> String {
    match Config::parse_toml(text, "geokeeper.toml") {
        Ok(_) => panic!("geokeeper.toml accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn shown(warnings: &[Warning]) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Defaults

#[test]
fn defaults_are_zookeeper_38s() {
    let c = Config::default();
    // ZooKeeperServer.DEFAULT_TICK_TIME; zoo_sample.cfg's 2000 is a sample, not the default.
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(c.init_limit, 10);
    assert_eq!(c.sync_limit, 5);
    assert_eq!(c.data_dir, PathBuf::from("./geokeeper-data"));
    assert_eq!(c.data_log_dir, None);
    assert_eq!(c.txn_log_dir(), Path::new("./geokeeper-data"));
    assert_eq!(c.client_port, 2181);
    assert_eq!(c.client_port_address, None);
    assert_eq!(c.max_client_cnxns, 60);
    assert_eq!(c.max_cnxns, 0);
    assert_eq!(c.min_session_timeout_ms, None);
    assert_eq!(c.max_session_timeout_ms, None);
    assert_eq!(c.min_session_timeout(), 6000);
    assert_eq!(c.max_session_timeout(), 60000);
    assert_eq!(c.global_outstanding_limit, 1000);
    assert_eq!(c.jute_maxbuffer, 0xfffff);
    assert_eq!(c.snap_count, 100_000);
    assert_eq!(c.pre_alloc_size_kb, 65536);
    assert!(c.force_sync);
    assert_eq!(c.fsync_warning_threshold_ms, 1000);
    assert_eq!(c.autopurge_snap_retain_count, 3);
    assert_eq!(c.autopurge_purge_interval_hours, 0);
    assert_eq!(c.four_letter_whitelist, vec!["srvr".to_string()]);
    assert!(!c.extended_types_enabled);
    assert_eq!(c.container_check_interval_ms, 60_000);
    assert_eq!(c.container_max_per_minute, 10_000);
    assert!(!c.enforce_quota);
    assert!(!c.skip_acl);
    assert_eq!(c.super_digest, None);
    assert_eq!(c.jaas_config, None);
    assert!(!c.readonly_mode_enabled);
    assert_eq!(c.server_id, 0);
    assert!(c.servers.is_empty());
    assert_eq!(c.peer_type, PeerType::Participant);
    assert!(c.standalone_enabled);
    assert!(!c.reconfig_enabled);
    assert!(!c.multi_address_enabled);
    assert_eq!(c.dynamic_config_file, None);
    assert!(c.system_properties.is_empty());
    assert!(c.other_settings.is_empty());
    assert!(!c.is_distributed());
    assert!(c.four_letter_word_enabled("srvr"));
    assert!(!c.four_letter_word_enabled("stat"));
    assert!(!c.four_letter_word_enabled("isro"));
}

#[test]
fn embedded_is_loopback_2181_in_geokeeper_data() {
    let c = Config::embedded();
    assert_eq!(
        c.client_socket_addr(),
        "127.0.0.1:2181".parse().expect("addr")
    );
    assert_eq!(c.data_dir, PathBuf::from("./geokeeper-data"));
    // The same as a zoo.cfg that says only that.
    let (from_cfg, warnings) =
        zoo("dataDir=./geokeeper-data\nclientPort=2181\nclientPortAddress=127.0.0.1\n");
    assert_eq!(public(&from_cfg), public(&c));
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_zoo_cfg_with_only_data_dir_gets_every_default() {
    let (c, _) = zoo("dataDir=./geokeeper-data\n");
    assert_eq!(public(&c), public(&Config::default()));
}

// ---------------------------------------------------------------------------------------------
// Both dialects, every key

const FULL_ZOO_CFG: &str = r#"# every setting geokeeper models
tickTime=2000
initLimit=20
syncLimit=7
dataDir=/var/lib/zookeeper
dataLogDir=/var/log/zookeeper
clientPort=2182
clientPortAddress=10.1.2.3
maxClientCnxns=0
maxCnxns=5000
minSessionTimeout=4000
maxSessionTimeout=90000
globalOutstandingLimit=2000
jute.maxbuffer=0x400000
snapCount=50000
preAllocSize=16384
forceSync=no
fsync.warningthresholdms=250
autopurge.snapRetainCount=5
autopurge.purgeInterval=24
4lw.commands.whitelist=stat, ruok, conf, isro
extendedTypesEnabled=true
znode.container.checkIntervalMs=30000
znode.container.maxPerMinute=500
enforceQuota=true
skipACL=yes
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
java.security.auth.login.config=/etc/zookeeper/jaas.conf
readonlymode.enabled=true
peerType=participant
standaloneEnabled=true
reconfigEnabled=true
multiAddress.enabled=true
zookeeper.digest.enabled=false
"#;

const FULL_TOML: &str = r#"
[server]
tick_time_ms = 2000
data_dir = "/var/lib/zookeeper"
data_log_dir = "/var/log/zookeeper"
client_port = 2182
client_address = "10.1.2.3"
peer_type = "participant"

[session]
min_timeout_ms = 4000
max_timeout_ms = 90000

[limits]
max_client_cnxns = 0
max_cnxns = 5000
global_outstanding_limit = 2000
jute_maxbuffer = 0x400000

[storage]
snap_count = 50000
pre_alloc_size_kb = 16384
force_sync = false
fsync_warning_threshold_ms = 250

[autopurge]
snap_retain_count = 5
purge_interval_hours = 24

[quorum]
init_limit = 20
sync_limit = 7
standalone_enabled = true
reconfig_enabled = true
multi_address_enabled = true

[features]
extended_types = true
container_check_interval_ms = 30000
container_max_per_minute = 500
four_letter_words = ["stat", "ruok", "conf", "isro"]
enforce_quota = true
skip_acl = true
readonly_mode = true

[auth]
super_digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
jaas_config = "/etc/zookeeper/jaas.conf"

[system_properties]
"zookeeper.digest.enabled" = "false"
"#;

fn assert_full(c: &Config) {
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!(c.init_limit, 20);
    assert_eq!(c.sync_limit, 7);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/zookeeper"));
    assert_eq!(c.data_log_dir, Some(PathBuf::from("/var/log/zookeeper")));
    assert_eq!(c.txn_log_dir(), Path::new("/var/log/zookeeper"));
    assert_eq!(
        c.client_socket_addr(),
        "10.1.2.3:2182".parse().expect("addr")
    );
    assert_eq!(c.max_client_cnxns, 0);
    assert_eq!(c.max_cnxns, 5000);
    assert_eq!(c.min_session_timeout(), 4000);
    assert_eq!(c.max_session_timeout(), 90000);
    assert_eq!(c.global_outstanding_limit, 2000);
    assert_eq!(c.jute_maxbuffer, 0x400000);
    assert_eq!(c.snap_count, 50000);
    assert_eq!(c.pre_alloc_size_kb, 16384);
    assert!(!c.force_sync);
    assert_eq!(c.fsync_warning_threshold_ms, 250);
    assert_eq!(c.autopurge_snap_retain_count, 5);
    assert_eq!(c.autopurge_purge_interval_hours, 24);
    assert_eq!(c.four_letter_whitelist, ["stat", "ruok", "conf", "isro"]);
    assert!(c.four_letter_word_enabled("conf"));
    assert!(!c.four_letter_word_enabled("dump"));
    assert!(c.extended_types_enabled);
    assert_eq!(c.container_check_interval_ms, 30000);
    assert_eq!(c.container_max_per_minute, 500);
    assert!(c.enforce_quota);
    assert!(c.skip_acl);
    assert_eq!(
        c.super_digest.as_deref(),
        Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
    );
    assert_eq!(
        c.jaas_config,
        Some(PathBuf::from("/etc/zookeeper/jaas.conf"))
    );
    assert!(c.readonly_mode_enabled);
    assert_eq!(c.peer_type, PeerType::Participant);
    assert!(c.standalone_enabled);
    assert!(c.reconfig_enabled);
    assert!(c.multi_address_enabled);
    assert_eq!(c.system_property("zookeeper.digest.enabled"), Some("false"));
}

#[test]
fn zoo_cfg_every_key() {
    let (c, warnings) = zoo(FULL_ZOO_CFG);
    assert_full(&c);
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    // Keys ZooKeeper turns into zookeeper.<key>, and full names kept as they are.
    assert_eq!(c.system_property("zookeeper.snapCount"), Some("50000"));
    assert_eq!(c.system_property("zookeeper.forceSync"), Some("no"));
    assert_eq!(
        c.system_property("zookeeper.4lw.commands.whitelist"),
        Some("stat, ruok, conf, isro")
    );
    assert_eq!(c.system_property("jute.maxbuffer"), Some("0x400000"));
    assert_eq!(c.system_property("readonlymode.enabled"), Some("true"));
}

#[test]
fn toml_every_key() {
    let (c, warnings) = toml(FULL_TOML);
    assert_full(&c);
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.system_property("zookeeper.forceSync"), Some("no"));
    assert_eq!(c.system_property("zookeeper.skipACL"), Some("yes"));
    assert_eq!(c.system_property("jute.maxbuffer"), Some("4194304"));
}

#[test]
fn both_dialects_agree_on_typed_settings() {
    let (from_zoo, _) = zoo(FULL_ZOO_CFG);
    let (from_toml, _) = toml(FULL_TOML);
    let mut a = from_zoo.clone();
    let mut b = from_toml.clone();
    // The raw property text differs (0x400000 vs 4194304; "stat, ruok" vs "stat,ruok").
    a.system_properties.clear();
    b.system_properties.clear();
    assert_eq!(public(&a), public(&b));
}

#[test]
fn zoo_cfg_java_properties_syntax() {
    let (c, warnings) = zoo(concat!(
        "! bang comment\n",
        "   # indented comment\n",
        "tickTime : 2500   \n",
        "dataDir /var/lib/zk\n",
        "clientPort\t=\t2181\n",
        "4lw.commands.whitelist=stat,\\\n",
        "    ruok\n",
    ));
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.tick_time_ms, 2500);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/zk"));
    assert_eq!(c.four_letter_whitelist, ["stat", "ruok"]);
}

#[test]
fn session_timeout_minus_one_means_unset() {
    let (c, _) = zoo(
        "dataDir=/d\nclientPort=2181\ntickTime=1000\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n",
    );
    assert_eq!(c.min_session_timeout_ms, None);
    assert_eq!(
        (c.min_session_timeout(), c.max_session_timeout()),
        (2000, 20000)
    );
}

#[test]
fn four_letter_words_star_and_read_only_isro() {
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\n4lw.commands.whitelist=stat, *, ruok\n");
    assert_eq!(c.four_letter_whitelist, ["*"]);
    assert!(c.four_letter_word_enabled("dump"));

    let (c, _) = zoo("dataDir=/d\nclientPort=2181\nreadonlymode.enabled=true\n");
    assert!(c.four_letter_word_enabled("isro"));
    assert!(c.four_letter_word_enabled("srvr"));

    let (c, warnings) =
        zoo("dataDir=/d\nclientPort=2181\n4lw.commands.whitelist=stat,,ruok,stta\n");
    assert_eq!(c.four_letter_whitelist, ["stat", "ruok", "stta"]);
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:3: 4lw.commands.whitelist: \"stta\" is not a four-letter word ZooKeeper knows \
          (conf, cons, crst, dirs, dump, envi, gtmk, ruok, stmk, srst, srvr, stat, wchc, wchp, wchs, mntr, isro, hash)"]
    );
}

#[test]
fn unmodeled_zookeeper_keys_are_kept_and_validated() {
    let (c, warnings) = zoo(concat!(
        "dataDir=/d\nclientPort=2181\n",
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n",
        "metricsProvider.httpPort=7000\n",
        "clientPortListenBacklog=100\n",
        "secureClientPort=0\n",
        "admin.enableServer=false\n",
        "txnLogSizeLimitInKb=1024\n",
        "snapCount=5000\n",
    ));
    assert_eq!(
        c.other_settings
            .get("metricsProvider.httpPort")
            .map(String::as_str),
        Some("7000")
    );
    assert_eq!(
        c.system_property("zookeeper.admin.enableServer"),
        Some("false")
    );
    assert!(shown(&warnings).is_empty(), "{warnings:?}");
    // Not acted on and harmless: named together (the startup line), with where each is.
    assert_eq!(
        c.inert_settings(),
        [
            "admin.enableServer (zoo.cfg:7)",
            "txnLogSizeLimitInKb (zoo.cfg:8)",
            "clientPortListenBacklog (zoo.cfg:5)",
            "metricsProvider.className (zoo.cfg:3)",
            "metricsProvider.httpPort (zoo.cfg:4)",
            "secureClientPort (zoo.cfg:6)",
        ]
    );
    assert_eq!(
        zoo_err("dataDir=/d\nclientPort=2181\nlocalSessionsEnabled=yes\n"),
        "zoo.cfg:3: localSessionsEnabled: Invalid option yes for localSessionsEnabled. Choose 'true' or 'false.'"
    );
    assert_eq!(
        zoo_err("dataDir=/d\nclientPort=2181\nclientPortListenBacklog=many\n"),
        "zoo.cfg:3: clientPortListenBacklog: \"many\" is not a number"
    );
}

#[test]
fn settings_that_would_weaken_security_or_durability_if_ignored_stop_startup() {
    for (line, key) in [
        ("secureClientPort=2281", "secureClientPort"),
        ("sslQuorum=true", "sslQuorum"),
        ("portUnification=true", "portUnification"),
        (
            "quorum.auth.serverRequireSasl=true",
            "quorum.auth.serverRequireSasl",
        ),
        ("audit.enable=true", "audit.enable"),
        (
            "zookeeper.datadir.autocreate=false",
            "zookeeper.datadir.autocreate",
        ),
        ("db.autocreate=false", "db.autocreate"),
    ] {
        let e = zoo_err(&format!("dataDir=/d\nclientPort=2181\n{line}\n"));
        assert!(
            e.starts_with(&format!("zoo.cfg:3: {key}: "))
                && e.contains("not supported by geokeeper"),
            "{line}: {e}"
        );
    }
    // As -D flags too, named as such.
    let (mut c, _) = zoo("dataDir=/d\nclientPort=2181\n");
    let e = c
        .apply_jvm_flags_from("SERVER_JVMFLAGS", "-Dzookeeper.sslQuorum=true")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("SERVER_JVMFLAGS: -Dzookeeper.sslQuorum: "),
        "{e}"
    );
    // Off is fine.
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\nsslQuorum=false\naudit.enable=false\n");
    assert_eq!(
        c.inert_settings(),
        ["audit.enable (zoo.cfg:4)", "sslQuorum (zoo.cfg:3)"]
    );
}

#[test]
fn enforce_auth_is_read_as_authentication_helper_reads_it() {
    let (c, w) = zoo(
        "dataDir=/d\nclientPort=2181\nenforce.auth.enabled=TRUE\nenforce.auth.schemes= digest , sasl\n",
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.enforced_auth_schemes(),
        Some(vec!["digest".to_string(), "sasl".to_string()])
    );
    assert!(c.inert_settings().is_empty(), "{:?}", c.inert_settings());
    // sessionRequireClientSASLAuth wins and means sasl.
    let (c, _) = zoo(
        "dataDir=/d\nclientPort=2181\nenforce.auth.enabled=true\nenforce.auth.schemes=digest\nsessionRequireClientSASLAuth=true\n",
    );
    assert_eq!(c.enforced_auth_schemes(), Some(vec!["sasl".to_string()]));
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\nenforce.auth.schemes=digest\n");
    assert_eq!(
        c.enforced_auth_schemes(),
        None,
        "schemes alone enforce nothing"
    );
    assert_eq!(
        zoo_err("dataDir=/d\nclientPort=2181\nenforce.auth.enabled=true\n"),
        "zoo.cfg:3: enforce.auth.enabled: zookeeper.enforce.auth.enabled is true zookeeper.enforce.auth.schemes must be  configured."
    );
    assert_eq!(
        zoo_err("dataDir=/d\nclientPort=2181\nsnapSizeLimitInKb=0\n"),
        "zoo.cfg:3: snapSizeLimitInKb: 0 stops ZooKeeper at startup (a division by zero); use a negative value to disable snapshots by log size"
    );
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\nsnapSizeLimitInKb=-1\n");
    assert_eq!(c.snap_size_limit_kb, -1);
    assert_eq!(Config::default().snap_size_limit_kb, 4_194_304);
}

// ---------------------------------------------------------------------------------------------
// Errors name file, line and key

#[test]
fn zoo_cfg_errors_name_file_line_and_key() {
    let err = Config::parse_zoo_cfg(
        "# zoo\n\ndataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\ntickTime=abc\n",
        "geokeeper.cfg",
    )
    .expect_err("bad tickTime");
    assert_eq!(
        err.to_string(),
        "geokeeper.cfg:7: tickTime: \"abc\" is not a number"
    );
    assert_eq!(
        (err.file(), err.line(), err.key()),
        ("geokeeper.cfg".to_string(), Some(7), Some("tickTime"))
    );

    let cases: &[(&str, &str)] = &[
        ("clientPort=2181\n", "zoo.cfg: dataDir: is not set"),
        ("dataDir=\nclientPort=2181\n", "zoo.cfg:1: dataDir: is empty"),
        ("dataDir=/d\ntickTime=0\n", "zoo.cfg:2: tickTime: must be greater than 0 (got 0)"),
        ("dataDir=/d\ntickTime=-5\n", "zoo.cfg:2: tickTime: must be greater than 0 (got -5)"),
        (
            "dataDir=/d\ntickTime=99999999999\n",
            "zoo.cfg:2: tickTime: \"99999999999\" is not a number",
        ),
        (
            "dataDir=/d\nclientPort=70000\n",
            "zoo.cfg:2: clientPort: 70000 is not a port number (1-65535)",
        ),
        (
            "dataDir=/d\nclientPort=0\n",
            "zoo.cfg:2: clientPort: 0 is not a port number (1-65535)",
        ),
        (
            "dataDir=/d\nclientPortAddress=10.0.0.1\n",
            "zoo.cfg:2: clientPortAddress: clientPortAddress is set but clientPort is not set",
        ),
        (
            "dataDir=/d\nclientPort=2181\nmaxClientCnxns=-1\n",
            "zoo.cfg:3: maxClientCnxns: must not be negative (got -1)",
        ),
        (
            "dataDir=/d\nclientPort=2181\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n",
            "zoo.cfg:3: minSessionTimeout: minSessionTimeout must not be larger than maxSessionTimeout (5000 > 4000)",
        ),
        (
            "dataDir=/d\nclientPort=2181\ntickTime=1000\nminSessionTimeout=30000\n",
            "zoo.cfg:4: minSessionTimeout: minSessionTimeout must not be larger than maxSessionTimeout (30000 > 20000)",
        ),
        (
            "dataDir=/d\nclientPort=2181\nstandaloneEnabled=yes\n",
            "zoo.cfg:3: standaloneEnabled: Invalid option yes for standaloneEnabled. Choose 'true' or 'false.'",
        ),
        (
            "dataDir=/d\nclientPort=2181\nelectionAlg=1\n",
            "zoo.cfg:3: electionAlg: Invalid electionAlg value. Only 3 is supported.",
        ),
        (
            "dataDir=/d\nclientPort=2181\npeerType=leader\n",
            "zoo.cfg:3: peerType: Unrecognised peertype: leader",
        ),
        (
            "dataDir=/d\nclientPort=2181\njute.maxbuffer=0\n",
            "zoo.cfg:3: jute.maxbuffer: must be greater than 0 (got 0)",
        ),
        (
            "dataDir=/d\nclientPort=2181\nsnapCount=lots\n",
            "zoo.cfg:3: snapCount: \"lots\" is not a number",
        ),
        (
            "dataDir=/d\nclientPort=2181\npreAllocSize=0x10\n",
            "zoo.cfg:3: preAllocSize: \"0x10\" is not a number",
        ),
        (
            "dataDir=/d\nclientPort=2181\nznode.container.maxPerMinute=0\n",
            "zoo.cfg:3: znode.container.maxPerMinute: must be greater than 0 (got 0)",
        ),
        (
            "dataDir=/d\nclientPort=2181\nfsync.warningthresholdms=-1\n",
            "zoo.cfg:3: fsync.warningthresholdms: -1 must not be negative",
        ),
        (
            "dataDir=/d\nclientPort=2181\nbad=\\u12x4\n",
            "zoo.cfg:3: Malformed \\uxxxx encoding.",
        ),
        (
            "dataDir=/d\nclientPort=2181\nextendedTypesEnabled=true\n",
            "",
        ),
    ];
    for (text, expected) in cases {
        if expected.is_empty() {
            zoo(text);
        } else {
            assert_eq!(&zoo_err(text), expected, "for:\n{text}");
        }
    }
}

#[test]
fn toml_errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[server]\ndata_dir = \"/d\"\ntick_time_ms = \"abc\"\n",
            "geokeeper.toml:3: server.tick_time_ms: expected an integer, found string \"abc\"",
        ),
        (
            "[server]\ndata_dir = \"/d\"\ntick_time_ms = 0\n",
            "geokeeper.toml:3: server.tick_time_ms: must be greater than 0 (got 0)",
        ),
        (
            "[server]\ndata_dir = \"/d\"\ntick_time_ms = 3000000000\n",
            "geokeeper.toml:3: server.tick_time_ms: must be at most 2147483647 (got 3000000000)",
        ),
        ("[server]\nclient_port = 2181\n", "geokeeper.toml: server.data_dir: is not set"),
        (
            "[server]\ndata_dir = \"/d\"\nclient_port = 65536\n",
            "geokeeper.toml:3: server.client_port: 65536 is not a port number (1-65535)",
        ),
        (
            "[server]\ndata_dir = \"/d\"\n[storage]\nforce_sync = \"no\"\n",
            "geokeeper.toml:4: storage.force_sync: expected true or false, found string \"no\"",
        ),
        (
            "[server]\ndata_dir = \"/d\"\n[session]\nmin_timeout_ms = 9000\nmax_timeout_ms = 8000\n",
            "geokeeper.toml:4: session.min_timeout_ms: minSessionTimeout must not be larger than maxSessionTimeout (9000 > 8000)",
        ),
        (
            "[server]\ndata_dir = \"/d\"\n[limits]\njute_maxbuffer = -1\n",
            "geokeeper.toml:4: limits.jute_maxbuffer: must be greater than 0 (got -1)",
        ),
        (
            "[server]\ndata_dir = \"/d\"\n[features]\nfour_letter_words = \"stat\"\n",
            "geokeeper.toml:4: features.four_letter_words: expected an array of strings, found string \"stat\"",
        ),
        ("server = 5\n", "geokeeper.toml:1: server: expected a table, found integer 5"),
        (
            "[server]\ndata_dir = \"/d\"\n[features]\nenforce_quota = true\n[system_properties]\n\"zookeeper.enforceQuota\" = \"false\"\n",
            "geokeeper.toml:6: system_properties.\"zookeeper.enforceQuota\": sets zookeeper.enforceQuota, which features.enforce_quota (geokeeper.toml:4) already sets",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&toml_err(text), expected, "for:\n{text}");
    }
    // TOML syntax errors carry the line the toml crate reports.
    let err = Config::parse_toml(
        "[server]\ndata_dir = \"/d\"\ntick_time_ms = = 3\n",
        "g.toml",
    )
    .expect_err("syntax");
    assert!(
        matches!(err, ConfigError::Syntax { line: Some(3), .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("g.toml:3: "), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Warnings

#[test]
fn unknown_zoo_cfg_key_is_kept_as_a_property_with_a_warning() {
    let (c, warnings) = zoo("dataDir=/d\nclientPort=2181\ntikTime=2000\nfrobnicate=7\n");
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(c.system_property("zookeeper.tikTime"), Some("2000"));
    assert_eq!(c.system_property("zookeeper.frobnicate"), Some("7"));
    assert_eq!(
        shown(&warnings),
        [
            "zoo.cfg:3: tikTime: unknown setting; kept as system property zookeeper.tikTime, as ZooKeeper does (did you mean tickTime?)",
            "zoo.cfg:4: frobnicate: unknown setting; kept as system property zookeeper.frobnicate, as ZooKeeper does",
        ]
    );
    let w = &warnings[0];
    assert_eq!(
        (w.file.as_str(), w.line, w.key.as_str()),
        ("zoo.cfg", Some(3), "tikTime")
    );
}

#[test]
fn values_zookeeper_corrects_silently_get_a_warning() {
    let (c, warnings) = zoo(concat!(
        "dataDir=/d\nclientPort=2181\n",
        "autopurge.snapRetainCount=1\n",
        "forceSync=false\n",
        "skipACL=true\n",
        "enforceQuota=yes\n",
        "snapCount=1\n",
        "maxCnxns=-3\n",
        "readonlymode.enabled=TRUE\n",
    ));
    assert_eq!(c.autopurge_snap_retain_count, 3);
    assert!(c.force_sync, "only \"no\" turns fsync off");
    assert!(!c.skip_acl, "only \"yes\" skips ACLs");
    assert!(!c.enforce_quota, "Boolean.parseBoolean(\"yes\") is false");
    assert_eq!(c.snap_count, 2);
    assert_eq!(c.max_cnxns, 0);
    assert!(c.readonly_mode_enabled, "Boolean.getBoolean ignores case");
    assert_eq!(
        shown(&warnings),
        [
            "zoo.cfg:3: autopurge.snapRetainCount: Invalid autopurge.snapRetainCount: 1. Defaulting to 3",
            "zoo.cfg:4: forceSync: \"false\" is neither \"yes\" nor \"no\"; only \"no\" turns fsync off, so fsync stays on (as in ZooKeeper)",
            "zoo.cfg:5: skipACL: \"true\" is neither \"yes\" nor \"no\"; only \"yes\" skips ACL checks, so they stay on (as in ZooKeeper)",
            "zoo.cfg:6: enforceQuota: \"yes\" is neither \"true\" nor \"false\"; ZooKeeper reads it as false",
            "zoo.cfg:7: snapCount: snapCount should be 2 or more; 1 is reset to 2, as ZooKeeper does",
            "zoo.cfg:8: maxCnxns: maxCnxns should be greater than or equal to 0; -3 means 0 (no limit), as in ZooKeeper",
        ]
    );
}

#[test]
fn duplicate_keys_last_wins_with_a_warning() {
    let (c, warnings) = zoo("dataDir=/d\nclientPort=2181\ntickTime=1000\ntickTime=4000\n");
    assert_eq!(c.tick_time_ms, 4000);
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:3: tickTime: overridden by line 4 (the last value wins, as in ZooKeeper)"]
    );
}

#[test]
fn relative_data_dir_warns_like_zookeeper() {
    let (_, warnings) = zoo("dataDir=data\nclientPort=2181\n");
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:1: dataDir: data is relative. Prepend ./ to indicate that you're sure!"]
    );
}

#[test]
fn missing_client_port_warns() {
    let (c, warnings) = zoo("dataDir=/d\n");
    assert_eq!(c.client_port, 2181);
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg: clientPort: is not set: ZooKeeper would open no client port; geokeeper listens on 2181"]
    );
}

#[test]
fn unknown_toml_keys_and_sections_warn() {
    let (c, warnings) = toml(concat!(
        "[server]\n",
        "data_dir = \"/d\"\n",
        "tick_time = 2000\n",
        "[sessions]\n",
        "min_timeout_ms = 1\n",
        "[system_properties]\n",
        "\"zookeeper.digest.enabled\" = false\n",
        "\"zookeeper.mystery\" = 1\n",
    ));
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(c.system_property("zookeeper.digest.enabled"), Some("false"));
    assert_eq!(c.system_property("zookeeper.mystery"), Some("1"));
    assert_eq!(
        shown(&warnings),
        [
            "geokeeper.toml:3: server.tick_time: unknown key; ignored (did you mean tick_time_ms?)",
            "geokeeper.toml:4: sessions: unknown section; ignored (did you mean session?)",
            "geokeeper.toml:8: system_properties.\"zookeeper.mystery\": not a ZooKeeper 3.8 property geokeeper knows; kept in system_properties",
        ]
    );
}

#[test]
fn toml_implicit_tables_dotted_keys_and_odd_types() {
    let (c, warnings) = toml(concat!(
        "server.data_dir = \"/d\"\n",
        "server.tick_time_ms = 1000\n",
        "features.enforce_quota = true\n",
        "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 2\n",
        "colour = 1\n",
    ));
    assert_eq!(c.tick_time_ms, 1000);
    assert!(c.enforce_quota);
    assert_eq!(c.servers.len(), 1);
    assert_eq!(
        shown(&warnings),
        [
            "geokeeper.toml:4: quorum.servers[0]: Invalid configuration, only one server specified (ignoring): running standalone",
            "geokeeper.toml:9: quorum.servers[0].colour: unknown key; ignored",
        ]
    );
    assert_eq!(
        toml_err("[server]\ndata_dir = \"/d\"\ntick_time_ms = 1979-05-27\n"),
        "geokeeper.toml:3: server.tick_time_ms: expected an integer, found datetime 1979-05-27"
    );
    assert_eq!(
        toml_err("[server]\ndata_dir = \"/d\"\ntick_time_ms = 1.5\n"),
        "geokeeper.toml:3: server.tick_time_ms: expected an integer, found float 1.5"
    );
}

#[test]
fn toml_system_properties_set_typed_fields() {
    let (c, warnings) = toml(concat!(
        "[server]\ndata_dir = \"/d\"\n",
        "[system_properties]\n",
        "\"zookeeper.enforceQuota\" = \"true\"\n",
        "\"jute.maxbuffer\" = \"0x200000\"\n",
        "\"zookeeper.skipACL\" = \"yes\"\n",
    ));
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert!(c.enforce_quota);
    assert!(c.skip_acl);
    assert_eq!(c.jute_maxbuffer, 0x200000);
}

// ---------------------------------------------------------------------------------------------
// -D flags (SERVER_JVMFLAGS / JVMFLAGS)

#[test]
fn jvm_flags_set_known_properties() {
    let mut c = Config::embedded();
    let warnings = c
        .apply_jvm_flags(concat!(
            "-Xmx2g -XX:+UseG1GC -Dzookeeper.log.dir=/var/log/zk ",
            "-Djute.maxbuffer=0x400000 -Dzookeeper.enforceQuota=true -Dreadonlymode.enabled=true ",
            "-Djava.security.auth.login.config=/etc/zookeeper/jaas.conf ",
            "-Dzookeeper.extendedTypesEnabled=true -Dzookeeper.skipACL=yes ",
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:abc= ",
            "-Dzookeeper.fsync.warningthresholdms=50 -Dzookeeper.snapCount=1000 ",
            "-Dzookeeper.preAllocSize=1024 -Dzookeeper.forceSync=no ",
            "-Dzookeeper.4lw.commands.whitelist=* -Dznode.container.checkIntervalMs=5000 ",
            "-Dznode.container.maxPerMinute=100 -Dzookeeper.globalOutstandingLimit=10 ",
            "-Dzookeeper.maxCnxns=77 -Dzookeeper.digest.enabled=false",
        ))
        .expect("flags apply");
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.jute_maxbuffer, 0x400000);
    assert!(c.enforce_quota);
    assert!(c.readonly_mode_enabled);
    assert_eq!(
        c.jaas_config,
        Some(PathBuf::from("/etc/zookeeper/jaas.conf"))
    );
    assert!(c.extended_types_enabled);
    assert!(c.skip_acl);
    assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
    assert_eq!(c.fsync_warning_threshold_ms, 50);
    assert_eq!(c.snap_count, 1000);
    assert_eq!(c.pre_alloc_size_kb, 1024);
    assert!(!c.force_sync);
    assert_eq!(c.four_letter_whitelist, ["*"]);
    assert_eq!(c.container_check_interval_ms, 5000);
    assert_eq!(c.container_max_per_minute, 100);
    assert_eq!(c.global_outstanding_limit, 10);
    assert_eq!(c.max_cnxns, 77);
    // Every -D lands in system_properties, known or not.
    assert_eq!(c.system_property("zookeeper.log.dir"), Some("/var/log/zk"));
    assert_eq!(c.system_property("zookeeper.digest.enabled"), Some("false"));
    assert_eq!(c.system_property("Xmx2g"), None);
}

#[test]
fn later_jvm_flag_wins() {
    let mut c = Config::embedded();
    c.apply_jvm_flags("-Dzookeeper.snapCount=10 -Dzookeeper.snapCount=20")
        .expect("flags");
    assert_eq!(c.snap_count, 20);
}

#[test]
fn zoo_cfg_key_beats_jvm_flag_as_in_zookeeper() {
    // parseProperties calls System.setProperty("zookeeper.snapCount", …) after the JVM started.
    let (mut c, _) = zoo("dataDir=/d\nclientPort=2181\nsnapCount=500\n");
    let warnings = c
        .apply_jvm_flags_from("SERVER_JVMFLAGS", "-Dzookeeper.snapCount=7")
        .expect("flags");
    assert_eq!(c.snap_count, 500);
    assert_eq!(c.system_property("zookeeper.snapCount"), Some("500"));
    assert_eq!(
        shown(&warnings),
        ["SERVER_JVMFLAGS: -Dzookeeper.snapCount: ignored: snapCount (zoo.cfg:3) sets zookeeper.snapCount and takes precedence"]
    );
}

#[test]
fn jvm_flag_beats_full_property_name_in_zoo_cfg() {
    // ZooKeeper never reads "jute.maxbuffer" from zoo.cfg (it would set
    // zookeeper.jute.maxbuffer); the -D flag is what it uses, so it wins here too.
    let (mut c, _) = zoo("dataDir=/d\nclientPort=2181\njute.maxbuffer=2000000\n");
    assert_eq!(c.jute_maxbuffer, 2_000_000);
    let warnings = c
        .apply_jvm_flags_from("SERVER_JVMFLAGS", "-Djute.maxbuffer=4000000")
        .expect("flags");
    assert_eq!(c.jute_maxbuffer, 4_000_000);
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:3: jute.maxbuffer: overridden by -Djute.maxbuffer (SERVER_JVMFLAGS), which takes precedence for jute.maxbuffer"]
    );
}

#[test]
fn short_key_beats_full_name_in_the_same_zoo_cfg() {
    let (c, warnings) =
        zoo("dataDir=/d\nclientPort=2181\nzookeeper.enforceQuota=false\nenforceQuota=true\n");
    assert!(c.enforce_quota);
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:3: zookeeper.enforceQuota: overridden by enforceQuota (zoo.cfg:4), which takes precedence for zookeeper.enforceQuota"]
    );
}

#[test]
fn toml_setting_beats_jvm_flag() {
    let (mut c, _) = toml("[server]\ndata_dir = \"/d\"\n[features]\nenforce_quota = false\n");
    c.apply_jvm_flags("-Dzookeeper.enforceQuota=true")
        .expect("flags");
    assert!(!c.enforce_quota);
}

#[test]
fn fsync_threshold_prefers_the_zookeeper_prefixed_property() {
    let mut c = Config::embedded();
    let warnings = c
        .apply_jvm_flags("-Dzookeeper.fsync.warningthresholdms=20 -Dfsync.warningthresholdms=30")
        .expect("flags");
    assert_eq!(c.fsync_warning_threshold_ms, 20);
    assert_eq!(
        shown(&warnings),
        ["JVM flags: -Dfsync.warningthresholdms: ignored: zookeeper.fsync.warningthresholdms is also set and is read first"]
    );
    let mut c = Config::embedded();
    c.apply_jvm_flags("-Dfsync.warningthresholdms=30")
        .expect("flags");
    assert_eq!(c.fsync_warning_threshold_ms, 30);
}

#[test]
fn bad_jvm_flag_is_an_error_naming_the_variable() {
    let mut c = Config::embedded();
    let err = c
        .apply_jvm_flags_from("SERVER_JVMFLAGS", "-Xmx1g -Djute.maxbuffer=abc")
        .expect_err("bad flag");
    assert_eq!(
        err.to_string(),
        "SERVER_JVMFLAGS: -Djute.maxbuffer: \"abc\" is not a number"
    );
}

#[test]
fn jvm_flags_are_checked_against_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_text = format!(
        "dataDir={}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
         server.300=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n",
        dir.path().display()
    );
    std::fs::write(dir.path().join("myid"), "300\n").expect("myid");
    let path = dir.path().join("zoo.cfg");
    std::fs::write(&path, cfg_text).expect("zoo.cfg");
    let (mut c, _) = Config::load(&path).expect("loads");
    assert_eq!(c.server_id, 300);
    let err = c
        .apply_jvm_flags_from("JVMFLAGS", "-Dzookeeper.extendedTypesEnabled=true")
        .expect_err("server id too large for TTL nodes");
    assert_eq!(
        err.to_string(),
        "JVMFLAGS: -Dzookeeper.extendedTypesEnabled: extendedTypesEnabled is true but Server ID 300 is too large. Cannot be larger than 254"
    );
}

#[test]
fn from_env_and_file_applies_server_jvmflags_then_jvmflags() {
    // The only test that touches these variables.
    std::env::set_var(
        "SERVER_JVMFLAGS",
        "-Xmx1g -Dzookeeper.snapCount=10 -Djute.maxbuffer=5000",
    );
    std::env::set_var("JVMFLAGS", "-Dzookeeper.snapCount=20");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("zoo.cfg");
    std::fs::write(
        &path,
        format!(
            "dataDir={}\nclientPort=2181\nforceSync=no\n",
            dir.path().display()
        ),
    )
    .expect("write");
    let result = Config::from_env_and_file(Some(&path));
    let embedded = Config::from_env_and_file(None);
    std::env::remove_var("SERVER_JVMFLAGS");
    std::env::remove_var("JVMFLAGS");
    let (c, warnings) = result.expect("loads");
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.snap_count, 20);
    assert_eq!(c.jute_maxbuffer, 5000);
    assert!(!c.force_sync);
    let (e, _) = embedded.expect("embedded");
    assert_eq!(e.snap_count, 20);
    assert_eq!(
        e.client_socket_addr(),
        "127.0.0.1:2181".parse().expect("addr")
    );
}

// ---------------------------------------------------------------------------------------------
// The ensemble: server.N lines

const ENSEMBLE: &str = "dataDir=/d\nclientPort=2181\ninitLimit=10\nsyncLimit=5\n";

#[test]
fn server_lines_of_every_form() {
    let (c, warnings) = zoo(&format!(
        "{ENSEMBLE}\
         server.1=zoo1:2888:3888\n\
         server.2=[2001:db8::2]:2888:3888:participant\n\
         server.3=zoo3:2888:3888;2181\n\
         server.4=zoo4:2888:3888:observer;10.0.0.4:2182\n"
    ));
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert!(c.is_distributed());
    assert_eq!(c.voters().map(|s| s.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(c.observers().map(|s| s.id).collect::<Vec<_>>(), [4]);
    assert_eq!(c.servers[&2].addresses[0].host, "2001:db8::2");
    assert_eq!(
        c.servers[&4].client,
        Some(ClientAddress {
            host: "10.0.0.4".into(),
            port: 2182
        })
    );
    assert_eq!(
        c.servers[&4].to_string(),
        "zoo4:2888:3888:observer;10.0.0.4:2182"
    );
}

#[test]
fn multiple_addresses_need_multi_address_enabled() {
    let lines = "server.1=a1:2888:3888|a2:2889:3889\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n";
    assert_eq!(
        zoo_err(&format!("{ENSEMBLE}{lines}")),
        "zoo.cfg:5: server.1: Multiple address feature is disabled, but multiple addresses were specified for sid 1 (set multiAddress.enabled=true)"
    );
    let (c, _) = zoo(&format!("{ENSEMBLE}multiAddress.enabled=true\n{lines}"));
    assert_eq!(c.servers[&1].addresses.len(), 2);
    // The Java system property enables it too.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("zoo.cfg");
    std::fs::write(&path, format!("{ENSEMBLE}{lines}")).expect("write");
    let (mut parsed, mut warnings) = Config::parse_file(&path).expect("parses");
    parsed
        .set_jvm_flags(
            "SERVER_JVMFLAGS",
            "-Dzookeeper.multiAddress.enabled=true",
            &mut warnings,
        )
        .expect("flag");
    finish::finish(&mut parsed, &mut warnings, false).expect("valid with the property");
}

#[test]
fn bad_server_lines() {
    let cases: &[(&str, &str)] = &[
        (
            "server.1=zoo1:2888\n",
            "zoo.cfg:5: server.1: \"zoo1:2888\" does not have the form host:port:port[:participant|:observer] (several separated by '|') optionally followed by ;[host:]clientPort",
        ),
        (
            "server.one=zoo1:2888:3888\n",
            "zoo.cfg:5: server.one: \"one\" is not a server id",
        ),
        (
            "server.1=zoo1:2888:3888:voter\n",
            "zoo.cfg:5: server.1: Unrecognised peertype: voter",
        ),
        (
            "server.1=zoo1:2888:2888\n",
            "zoo.cfg:5: server.1: quorum port and election port must be different (both are 2888)",
        ),
        (
            "server.1=[::1:2888:3888\n",
            "zoo.cfg:5: server.1: [::1:2888:3888 starts with '[' but has no matching ']:'",
        ),
        (
            "server.1=a:1:2\nserver.01=b:1:2\n",
            "zoo.cfg:6: server.01: server id 1 is already defined by server.1 (zoo.cfg:5)",
        ),
        (
            "server.1=a:1:2:observer\n",
            "zoo.cfg:5: server.1: Observers w/o participants is an invalid configuration",
        ),
        (
            "server.1=a:1:2\nserver.2=b:1:2:observer\n",
            "zoo.cfg:6: server.2: Observers w/o quorum is an invalid configuration",
        ),
        (
            "standaloneEnabled=false\n",
            "zoo.cfg:5: standaloneEnabled: standaloneEnabled = false then number of participants should be >0",
        ),
        (
            "dynamicConfigFile=/etc/zk/zoo.cfg.dynamic\nserver.1=a:1:2\n",
            "zoo.cfg:6: server.1: parameter: server.1 must be in a separate dynamic config file",
        ),
    ];
    for (lines, expected) in cases {
        assert_eq!(
            &zoo_err(&format!("{ENSEMBLE}{lines}")),
            expected,
            "for:\n{lines}"
        );
    }
}

#[test]
fn ensemble_size_warnings() {
    let (c, warnings) = zoo(&format!("{ENSEMBLE}server.1=a:1:2\n"));
    assert!(!c.is_distributed());
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:5: server.1: Invalid configuration, only one server specified (ignoring): running standalone"]
    );
    let (c, warnings) = zoo(&format!("{ENSEMBLE}server.1=a:1:2\nserver.2=b:1:2\n"));
    assert!(c.is_distributed());
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:5: server.1: No server failure will be tolerated. You need at least 3 servers."]
    );
    let (_, warnings) = zoo(&format!(
        "{ENSEMBLE}server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\n"
    ));
    assert_eq!(
        shown(&warnings),
        ["zoo.cfg:5: server.1: Non-optimal configuration, consider an odd number of servers."]
    );
}

#[test]
fn a_zoo_cfg_quorum_needs_init_and_sync_limits() {
    let servers = "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n";
    assert_eq!(
        zoo_err(&format!(
            "dataDir=/d\nclientPort=2181\nsyncLimit=5\n{servers}"
        )),
        "zoo.cfg: initLimit: is not set (required when the ensemble has several voters)"
    );
    assert_eq!(
        zoo_err(&format!(
            "dataDir=/d\nclientPort=2181\ninitLimit=10\nsyncLimit=0\n{servers}"
        )),
        "zoo.cfg:4: syncLimit: must be greater than 0 in a quorum"
    );
}

// ---------------------------------------------------------------------------------------------
// Loading files: myid, dynamicConfigFile, dialect by extension

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn load_reads_myid_and_takes_this_servers_client_port_and_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("myid"), "4\n").expect("myid");
    let path = write(
        dir.path(),
        "zoo.cfg",
        &format!(
            "dataDir={}\ninitLimit=10\nsyncLimit=5\npeerType=observer\n\
             server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n\
             server.4=127.0.0.1:2888:3888:observer;127.0.0.1:2185\n",
            data.display()
        ),
    );
    let (c, warnings) = Config::load(&path).expect("loads");
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.server_id, 4);
    assert_eq!(c.peer_type, PeerType::Observer);
    assert_eq!(
        c.client_socket_addr(),
        "127.0.0.1:2185".parse().expect("addr")
    );
    assert_eq!(c.this_server().map(|s| s.role), Some(PeerType::Observer));
}

#[test]
fn load_checks_myid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = "server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n";
    let text = format!(
        "dataDir={}\nclientPort=2181\ninitLimit=10\nsyncLimit=5\n{servers}",
        dir.path().display()
    );
    let path = write(dir.path(), "zoo.cfg", &text);
    let err = Config::load(&path).expect_err("no myid");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: myid: myid file is missing: {}/myid (required when the ensemble has several voters)",
            path.display(),
            dir.path().display()
        )
    );
    std::fs::write(dir.path().join("myid"), "x\n").expect("myid");
    let err = Config::load(&path).expect_err("bad myid");
    assert_eq!(
        err.to_string(),
        format!(
            "{}/myid:1: myid: serverid x is not a number",
            dir.path().display()
        )
    );
    std::fs::write(dir.path().join("myid"), "9\n").expect("myid");
    let err = Config::load(&path).expect_err("myid not listed");
    assert_eq!(
        err.to_string(),
        format!("{}: myid: server id 9 has no server.9 line", path.display())
    );
}

#[test]
fn client_port_must_agree_with_this_servers_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("myid"), "1").expect("myid");
    let path = write(
        dir.path(),
        "zoo.cfg",
        &format!(
            "dataDir={}\nclientPort=2181\ninitLimit=10\nsyncLimit=5\n\
             server.1=a:2888:3888;2190\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n",
            dir.path().display()
        ),
    );
    let err = Config::load(&path).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        format!(
            "{p}:2: clientPort: client address for this server (id = 1) is 0.0.0.0:2181 but server.1 ({p}:5) says 0.0.0.0:2190",
            p = path.display()
        )
    );
}

#[test]
fn load_reads_the_dynamic_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("myid"), "2").expect("myid");
    let dynamic = write(
        dir.path(),
        "zoo.cfg.dynamic.100000000",
        "server.1=a:2888:3888:participant;0.0.0.0:2181\nserver.2=b:2888:3888:participant;0.0.0.0:2181\nserver.3=c:2888:3888:participant;0.0.0.0:2181\n",
    );
    let path = write(
        dir.path(),
        "zoo.cfg",
        &format!(
            "dataDir={}\ninitLimit=10\nsyncLimit=5\nreconfigEnabled=true\ndynamicConfigFile={}\n",
            dir.path().display(),
            dynamic.display()
        ),
    );
    let (c, warnings) = Config::load(&path).expect("loads");
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.servers.len(), 3);
    assert!(c.is_distributed());
    assert_eq!(c.client_port, 2181);

    write(
        dir.path(),
        "zoo.cfg.dynamic.100000000",
        "server.1=a:1:2\ntickTime=5\n",
    );
    let err = Config::load(&path).expect_err("only server lines");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: tickTime: Unrecognised parameter: tickTime",
            dynamic.display()
        )
    );
}

#[test]
fn load_picks_the_dialect_by_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml_path = write(
        dir.path(),
        "geokeeper.toml",
        &format!(
            "[server]\ndata_dir = \"{}\"\ntick_time_ms = 1500\n",
            dir.path().display()
        ),
    );
    let (c, _) = Config::load(&toml_path).expect("toml");
    assert_eq!(c.tick_time_ms, 1500);
    let cfg_path = write(
        dir.path(),
        "geokeeper.cfg",
        &format!(
            "dataDir={}\nclientPort=2181\ntickTime=1500\n",
            dir.path().display()
        ),
    );
    let (c, _) = Config::load(&cfg_path).expect("cfg");
    assert_eq!(c.tick_time_ms, 1500);
    let err = Config::load(&dir.path().join("absent.cfg")).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn toml_quorum_needs_a_server_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = format!("[server]\ndata_dir = \"{}\"\n", dir.path().display());
    for id in 1..=3 {
        text.push_str(&format!(
            "[[quorum.servers]]\nid = {id}\nhost = \"h{id}\"\nquorum_port = 2888\nelection_port = 3888\n"
        ));
    }
    let path = write(dir.path(), "geokeeper.toml", &text);
    let err = Config::load(&path).expect_err("no id");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: server.server_id: is not set and {}/myid does not exist (required when the ensemble has several voters)",
            path.display(),
            dir.path().display()
        )
    );
    std::fs::write(dir.path().join("myid"), "2\n").expect("myid");
    let (c, _) = Config::load(&path).expect("myid read");
    assert_eq!(c.server_id, 2);
}

#[test]
fn toml_server_id_must_match_myid() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("myid"), "3").expect("myid");
    let path = write(
        dir.path(),
        "geokeeper.toml",
        &format!(
            "[server]\ndata_dir = \"{}\"\nserver_id = 2\n",
            dir.path().display()
        ),
    );
    let err = Config::load(&path).expect_err("mismatch");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: server.server_id: is 2 but {}/myid says 3",
            path.display(),
            dir.path().display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// The ensemble in TOML

#[test]
fn toml_servers_of_every_form() {
    let (c, warnings) = toml(concat!(
        "[server]\ndata_dir = \"/d\"\nserver_id = 1\n",
        "[[quorum.servers]]\nid = 1\nhost = \"zoo1\"\nquorum_port = 2888\nelection_port = 3888\nclient_port = 2181\n",
        "[[quorum.servers]]\nid = 2\nhost = \"[2001:db8::2]\"\nquorum_port = 2888\nelection_port = 3888\n",
        "[[quorum.servers]]\nid = 3\nquorum_port = 2888\nelection_port = 3888\nhost = \"zoo3\"\n",
        "[[quorum.servers]]\nid = 4\nrole = \"observer\"\nclient_port = 2182\nclient_address = \"10.0.0.4\"\n",
        "addresses = [ { host = \"zoo4a\", quorum_port = 2888, election_port = 3888 },\n",
        "              { host = \"zoo4b\", quorum_port = 2889, election_port = 3889 } ]\n",
        "[quorum]\nmulti_address_enabled = true\n",
    ));
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert!(c.is_distributed());
    assert_eq!(c.client_port, 2181);
    assert_eq!(
        c.servers[&1].to_string(),
        "zoo1:2888:3888:participant;0.0.0.0:2181"
    );
    assert_eq!(
        c.servers[&2].to_string(),
        "[2001:db8::2]:2888:3888:participant"
    );
    assert_eq!(
        c.servers[&4].to_string(),
        "zoo4a:2888:3888|zoo4b:2889:3889:observer;10.0.0.4:2182"
    );
    // The same ensemble written as zoo.cfg lines.
    let (z, _) = zoo(concat!(
        "dataDir=/d\nclientPort=2181\ninitLimit=10\nsyncLimit=5\nmultiAddress.enabled=true\n",
        "server.1=zoo1:2888:3888;2181\n",
        "server.2=[2001:db8::2]:2888:3888\n",
        "server.3=zoo3:2888:3888\n",
        "server.4=zoo4a:2888:3888|zoo4b:2889:3889:observer;10.0.0.4:2182\n",
    ));
    assert_eq!(z.servers, c.servers);
}

#[test]
fn bad_toml_servers() {
    let head = "[server]\ndata_dir = \"/d\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "[[quorum.servers]]\nhost = \"a\"\nquorum_port = 1\nelection_port = 2\n",
            "geokeeper.toml:3: quorum.servers[0]: id is required",
        ),
        (
            "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\n",
            "geokeeper.toml:3: quorum.servers[0]: election_port is required",
        ),
        (
            "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 70000\n",
            "geokeeper.toml:7: quorum.servers[0].election_port: 70000 is not a port number (1-65535)",
        ),
        (
            "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 1\n",
            "geokeeper.toml:3: quorum.servers[0]: quorum port and election port must be different (both are 1)",
        ),
        (
            "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 2\nrole = \"leader\"\n",
            "geokeeper.toml:8: quorum.servers[0].role: Unrecognised peertype: leader",
        ),
        (
            "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 2\nclient_address = \"h\"\n",
            "geokeeper.toml:8: quorum.servers[0].client_address: client_address needs client_port",
        ),
        (
            "[[quorum.servers]]\nid = 1\nhost = \"a\"\nquorum_port = 1\nelection_port = 2\n\
             [[quorum.servers]]\nid = 1\nhost = \"b\"\nquorum_port = 1\nelection_port = 2\n",
            "geokeeper.toml:8: quorum.servers[1]: server id 1 is already defined by quorum.servers[0] (geokeeper.toml:3)",
        ),
        (
            "[quorum]\nservers = 3\n",
            "geokeeper.toml:4: quorum.servers: expected an array of tables ([[quorum.servers]]), found integer 3",
        ),
    ];
    for (servers, expected) in cases {
        assert_eq!(
            &toml_err(&format!("{head}{servers}")),
            expected,
            "for:\n{servers}"
        );
    }
}

#[test]
fn warning_and_error_display() {
    let w = Warning {
        file: "zoo.cfg".into(),
        line: Some(3),
        key: "forceSync".into(),
        message: "m".into(),
    };
    assert_eq!(w.to_string(), "zoo.cfg:3: forceSync: m");
    let w = Warning { line: None, ..w };
    assert_eq!(w.to_string(), "zoo.cfg: forceSync: m");
}

#[test]
fn geokeeper_refuses_to_vote_in_an_ensemble() {
    let ensemble = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888\n";
    let mut c = Config::parse_zoo_cfg(
        &format!("dataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n{ensemble}"),
        "zoo.cfg",
    )
    .expect("parses")
    .0;
    c.server_id = 2;
    assert_eq!(
        c.refuse_voting().unwrap_err().to_string(),
        "zoo.cfg:6: server.2: this server (id 2) would be a voting participant of a 3-voter ensemble; \
         geokeeper joins a ZooKeeper ensemble only as an observer: end its server.2 line with \
         :observer (and set peerType=observer)"
    );
    // As an observer of the same ensemble it may join.
    let observer = Config::parse_zoo_cfg(
        &format!(
            "dataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\npeerType=observer\n{ensemble}server.4=127.0.0.4:2888:3888:observer\n"
        ),
        "zoo.cfg",
    )
    .expect("parses")
    .0;
    let mut o = observer;
    o.server_id = 4;
    assert!(o.refuse_voting().is_ok());
    // A single server line is standalone, as in ZooKeeper.
    let (mut single, _) = zoo("dataDir=/d\nclientPort=2181\nserver.1=127.0.0.1:2888:3888\n");
    single.server_id = 1;
    assert!(single.refuse_voting().is_ok());
}

#[test]
fn quorum_tls_reads_pem_stores_and_refuses_what_it_cannot_honour() {
    let ensemble = "dataDir=/d\nclientPort=2181\npeerType=observer\ninitLimit=5\nsyncLimit=2\n\
                    server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
                    server.3=127.0.0.3:2888:3888\nserver.4=127.0.0.4:2888:3888:observer\n";
    let (c, _) = zoo(ensemble);
    assert_eq!(c.quorum_tls().unwrap(), None, "off without sslQuorum");
    let (c, w) = zoo(&format!(
        "{ensemble}sslQuorum=true\nssl.quorum.keyStore.location=/k/me.pem\n\
         ssl.quorum.trustStore.location=/k/ca.pem\nssl.quorum.hostnameVerification=false\n"
    ));
    assert_eq!(
        c.quorum_tls().unwrap(),
        Some(crate::QuorumTls {
            key_store: "/k/me.pem".into(),
            trust_store: "/k/ca.pem".into(),
            hostname_verification: false,
        })
    );
    assert!(c.refuse_voting().is_ok() && !w.iter().any(|w| w.to_string().contains("sslQuorum")));
    assert!(
        c.inert_settings().iter().all(|s| !s.contains("ssl")),
        "acted on by a gateway: {:?}",
        c.inert_settings()
    );
    let (c, _) = zoo(&format!(
        "{ensemble}sslQuorum=true\nssl.quorum.keyStore.location=/k/me.jks\n\
         ssl.quorum.keyStore.type=JKS\nssl.quorum.trustStore.location=/k/ca.pem\n"
    ));
    let e = c.quorum_tls().unwrap_err().to_string();
    assert!(e.contains("PEM files only"), "{e}");
    let (c, _) = zoo(&format!(
        "{ensemble}sslQuorum=true\nssl.quorum.keyStore.location=/k/me.pem\n\
         ssl.quorum.keyStore.password=secret\nssl.quorum.trustStore.location=/k/ca.pem\n"
    ));
    let e = c.quorum_tls().unwrap_err().to_string();
    assert!(e.contains("encrypted PEM private keys"), "{e}");
    let (c, _) = zoo(&format!("{ensemble}sslQuorum=true\n"));
    let e = c.quorum_tls().unwrap_err().to_string();
    assert!(e.contains("ssl.quorum.keyStore.location"), "{e}");
}

#[test]
fn a_gateway_in_toml_reads_as_in_zoo_cfg() {
    let mut text = String::from(
        "[server]\ndata_dir = \"/d\"\nserver_id = 4\npeer_type = \"observer\"\n\
         [quorum]\ninit_limit = 5\nsync_limit = 2\nobserver_master_port = 2191\n\
         local_sessions_enabled = true\nlocal_sessions_upgrading_enabled = false\n\
         [system_properties]\n\"zookeeper.sslQuorum\" = \"true\"\n\
         \"zookeeper.ssl.quorum.keyStore.location\" = \"/k/me.pem\"\n\
         \"zookeeper.ssl.quorum.trustStore.location\" = \"/k/ca.pem\"\n",
    );
    for id in 1..=3 {
        text.push_str(&format!(
            "[[quorum.servers]]\nid = {id}\nhost = \"zk{id}\"\nquorum_port = 2888\nelection_port = 3888\n"
        ));
    }
    text.push_str(
        "[[quorum.servers]]\nid = 4\nhost = \"gw\"\nquorum_port = 2888\nelection_port = 3888\nrole = \"observer\"\n",
    );
    let (c, w) = toml(&text);
    assert!(w.is_empty(), "{w:?}");
    assert!(c.is_distributed() && c.refuse_voting().is_ok());
    assert_eq!(c.server_id, 4);
    assert_eq!(c.observer_master_port(), Some(2191));
    assert!(c.local_sessions_enabled());
    assert!(!c.local_sessions_upgrading_enabled());
    assert_eq!(
        c.quorum_tls().unwrap().map(|t| t.key_store),
        Some("/k/me.pem".into())
    );
    assert!(c.inert_settings().is_empty(), "{:?}", c.inert_settings());
}

// ---------------------------------------------------------------------------------------------
// The QUIC relay: a publisher of the committed stream, and observers that follow it

const RELAY_PUBLISHER_ZOO_CFG: &str = "dataDir=/d\nclientPort=2181\nclientPortAddress=10.0.0.5\n\
     relayPort=2191\nrelay.keyStore.location=/k/node.pem\nrelay.trustStore.location=/k/ca.pem\n\
     relay.subscribers=7@eu-west, 8@us-east.2\nmaxLagMs=2000\nrelay.retainTxns=500\n\
     relay.diffMaxTxns=9000\nrelay.bufferBytes=1048576\nrelay.heartbeatMs=250\n";

const RELAY_PUBLISHER_TOML: &str = r#"
[server]
data_dir = "/d"
client_port = 2181
client_address = "10.0.0.5"

[relay]
port = 2191
key_store = "/k/node.pem"
trust_store = "/k/ca.pem"
subscribers = ["7@eu-west", "8@us-east.2"]
max_lag_ms = 2000
retain_txns = 500
diff_max_txns = 9000
buffer_bytes = 1048576
heartbeat_ms = 250
"#;

#[test]
fn a_relay_publisher_reads_the_same_in_both_dialects() {
    let expected = RelayConfig {
        listen: Some("10.0.0.5:2191".parse().expect("addr")),
        cert: Some("/k/node.pem".into()),
        key: Some("/k/node.pem".into()),
        ca: Some("/k/ca.pem".into()),
        room: None,
        subscribers: vec![(7, "eu-west".to_string()), (8, "us-east.2".to_string())],
        upstreams: Vec::new(),
        max_lag_ms: 2000,
        retain_txns: 500,
        diff_max_txns: 9000,
        buffer_bytes: 1_048_576,
        heartbeat_ms: 250,
    };
    for (dialect, (c, w)) in [
        ("zoo.cfg", zoo(RELAY_PUBLISHER_ZOO_CFG)),
        ("toml", toml(RELAY_PUBLISHER_TOML)),
    ] {
        assert!(w.is_empty(), "{dialect}: {:#?}", shown(&w));
        assert_eq!(c.relay().expect("relay"), expected, "{dialect}");
        assert!(!c.is_relay_observer(), "{dialect}");
        // A standalone server that publishes: no vote, and the relay keys are acted on.
        assert!(c.refuse_voting().is_ok(), "{dialect}");
        assert!(
            c.inert_settings().is_empty(),
            "{dialect}: {:?}",
            c.inert_settings()
        );
    }
    // relayAddress wins over clientPortAddress; without either the relay binds 0.0.0.0.
    let (c, _) = zoo(&format!("{RELAY_PUBLISHER_ZOO_CFG}relayAddress=::1\n"));
    assert_eq!(
        c.relay().expect("relay").listen,
        Some("[::1]:2191".parse().expect("addr"))
    );
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\nrelayPort=2191\n\
         relay.keyStore.location=/k/node.pem\nrelay.trustStore.location=/k/ca.pem\n");
    assert_eq!(
        c.relay().expect("relay").listen,
        Some("0.0.0.0:2191".parse().expect("addr"))
    );
}

#[test]
fn relay_defaults_publish_nothing_and_follow_nothing() {
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\n");
    let relay = c.relay().expect("relay");
    assert_eq!(relay, RelayConfig::default());
    assert_eq!(relay.listen, None);
    assert_eq!(
        (relay.cert, relay.key, relay.ca, relay.room),
        (None, None, None, None)
    );
    assert!(relay.subscribers.is_empty() && relay.upstreams.is_empty());
    assert_eq!(relay.max_lag_ms, 1000);
    assert_eq!(relay.retain_txns, 10_000);
    assert_eq!(relay.diff_max_txns, 100_000);
    assert_eq!(relay.buffer_bytes, 67_108_864);
    assert_eq!(relay.heartbeat_ms, 500);
    assert!(!c.is_relay_observer());
    assert_eq!(
        Config::embedded().relay().expect("relay"),
        RelayConfig::default()
    );
    // relayPort=0 is no publisher, so it needs no PEM stores.
    let (c, _) = zoo("dataDir=/d\nclientPort=2181\nrelayPort=0\n");
    assert_eq!(c.relay().expect("relay").listen, None);
}

const RELAY_OBSERVER_ZOO_CFG: &str = "dataDir=/d\nclientPort=2181\npeerType=observer\n\
     relay.upstreams=pub1.eu:2191;room=B;weight=3, 10.0.0.9:2191,[::1]:2191\n\
     relay.keyStore.location=/k/obs.pem\nrelay.trustStore.location=/k/ca.pem\n";

#[test]
fn a_relay_observer_reads_the_same_in_both_dialects() {
    let toml_text = "[server]\ndata_dir = \"/d\"\nserver_id = 12\nrole = \"observer\"\n\
         [relay]\nupstreams = [{ address = \"pub1.eu:2191\", room = \"B\", weight = 3 }, \"10.0.0.9:2191\", \"[::1]:2191\"]\n\
         key_store = \"/k/obs.pem\"\ntrust_store = \"/k/ca.pem\"\n";
    for (dialect, (c, w)) in [
        ("zoo.cfg", zoo(RELAY_OBSERVER_ZOO_CFG)),
        ("toml", toml(toml_text)),
    ] {
        assert!(w.is_empty(), "{dialect}: {:#?}", shown(&w));
        let relay = c.relay().expect("relay");
        let ups: Vec<String> = relay.upstreams.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            ups,
            [
                "pub1.eu:2191;weight=3;room=B",
                "10.0.0.9:2191",
                "[::1]:2191"
            ],
            "{dialect}"
        );
        assert_eq!(relay.cert, Some("/k/obs.pem".into()), "{dialect}");
        assert_eq!(relay.key, Some("/k/obs.pem".into()), "{dialect}");
        assert_eq!(relay.listen, None, "{dialect}");
        assert_eq!(c.peer_type, PeerType::Observer, "{dialect}");
        assert!(c.is_relay_observer(), "{dialect}");
        assert!(!c.is_distributed(), "{dialect}");
        assert!(c.refuse_voting().is_ok(), "{dialect}");
        assert!(
            c.inert_settings().is_empty(),
            "{dialect}: {:?}",
            c.inert_settings()
        );
    }
}

#[test]
fn a_relay_observer_keeps_its_peer_type_with_a_myid_file() {
    // ZooKeeper's setupPeerType takes the role from the servers list; a QUIC observer has
    // none, so its peerType stands.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("myid"), "12\n").expect("myid");
    let text = RELAY_OBSERVER_ZOO_CFG.replace("dataDir=/d", &format!("dataDir={}", data.display()));
    let path = write(dir.path(), "zoo.cfg", &text);
    let (c, warnings) = Config::load(&path).expect("loads");
    assert!(warnings.is_empty(), "{:#?}", shown(&warnings));
    assert_eq!(c.server_id, 12);
    assert_eq!(c.peer_type, PeerType::Observer);
    assert!(c.is_relay_observer() && c.refuse_voting().is_ok());
}

#[test]
fn relay_errors_name_file_line_and_key() {
    let stores = "relay.keyStore.location=/k/n.pem\nrelay.trustStore.location=/k/ca.pem\n";
    let head = "dataDir=/d\nclientPort=2181\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{head}relay.subscribers=7@eu,seven@us\n"),
            "zoo.cfg:3: relay.subscribers: \"seven@us\" is not ID@ROOM (a node id and a room of \
             letters, digits, '.', '_', '-'): \"seven\" is not a node id",
        ),
        (
            format!("{head}relay.subscribers=7@eu west\n"),
            "zoo.cfg:3: relay.subscribers: \"7@eu west\" is not ID@ROOM (a node id and a room of \
             letters, digits, '.', '_', '-'): ' ' in the room",
        ),
        (
            format!("{head}relay.subscribers=7\n"),
            "zoo.cfg:3: relay.subscribers: \"7\" is not ID@ROOM (a node id and a room of \
             letters, digits, '.', '_', '-'): no '@'",
        ),
        (
            format!("{head}peerType=observer\n{stores}relay.upstreams=pub1:2191,pub2\n"),
            "zoo.cfg:6: relay.upstreams: \"pub2\" is not host:port: no ':port'",
        ),
        (
            format!("{head}peerType=observer\n{stores}relay.upstreams=pub1:0\n"),
            "zoo.cfg:6: relay.upstreams: \"pub1:0\" is not host:port: \"0\" is not a port number (1-65535)",
        ),
        (
            format!("{head}peerType=observer\n{stores}relay.upstreams=::1:2191\n"),
            "zoo.cfg:6: relay.upstreams: \"::1:2191\" is not host:port: write an IPv6 address in brackets: [::1]:port",
        ),
        (
            format!("{head}relayPort=70000\n"),
            "zoo.cfg:3: relayPort: 70000 is not a port number (1-65535, or 0 for no publisher)",
        ),
        (
            format!("{head}relayPort=abc\n"),
            "zoo.cfg:3: relayPort: \"abc\" is not a number",
        ),
        (
            format!("{head}relayAddress=10.0.0.1\n"),
            "zoo.cfg:3: relayAddress: relayAddress is set but relayPort is not set",
        ),
        (
            format!("{head}maxLagMs=0\n"),
            "zoo.cfg:3: maxLagMs: must be greater than 0 (got 0)",
        ),
        (
            format!("{head}relay.retainTxns=-1\n"),
            "zoo.cfg:3: relay.retainTxns: must not be negative (got -1)",
        ),
        (
            format!("{head}relayPort=2191\nrelay.trustStore.location=/k/ca.pem\n"),
            "zoo.cfg:3: relayPort: a relay publisher needs PEM files of this server's certificate \
             chain and private key (relay.ssl.cert and relay.ssl.key, or relay.keyStore.location \
             holding both); not set",
        ),
        (
            format!("{head}relayPort=2191\nrelay.keyStore.location=\n"),
            "zoo.cfg:4: relay.keyStore.location: is empty",
        ),
        (
            format!("{head}peerType=observer\nrelay.upstreams=pub1:2191\n"),
            "zoo.cfg:4: relay.upstreams: a QUIC observer needs PEM files of this server's \
             certificate chain and private key (relay.ssl.cert and relay.ssl.key, or \
             relay.keyStore.location holding both) and of the cluster's CA certificates \
             (relay.ssl.ca or relay.trustStore.location); not set",
        ),
        (
            format!("{head}{stores}relay.upstreams=pub1:2191\n"),
            "zoo.cfg:5: relay.upstreams: relay upstreams make this server a QUIC observer: set peerType=observer",
        ),
        (
            format!("{head}relayPort=2191\nrelay.ssl.cert=/k/n.crt\nrelay.ssl.ca=/k/ca.pem\n"),
            "zoo.cfg:4: relay.ssl.cert: is set but relay.ssl.key is not (the file of this \
             server's private key)",
        ),
        (
            format!("{head}relayPort=2191\nrelay.ssl.key=/k/n.key\nrelay.ssl.ca=/k/ca.pem\n"),
            "zoo.cfg:4: relay.ssl.key: is set but relay.ssl.cert is not (the file of this \
             server's certificate chain)",
        ),
        (
            format!("{head}relayPort=2191\n{stores}relay.ssl.cert=/k/n.crt\nrelay.ssl.key=/k/n.key\n"),
            "zoo.cfg:6: relay.ssl.cert: relay.keyStore.location already names this server's key \
             and certificate chain: set either it or relay.ssl.cert and relay.ssl.key",
        ),
        (
            format!("{head}relayPort=2191\n{stores}relay.ssl.ca=/k/ca2.pem\n"),
            "zoo.cfg:6: relay.ssl.ca: relay.trustStore.location already names the cluster's CA \
             certificates: set one of them",
        ),
        (
            format!("{head}relayPort=2191\nrelay.ssl.cert=/k/n.crt\nrelay.ssl.key=/k/n.key\n"),
            "zoo.cfg:3: relayPort: a relay publisher needs PEM files of the cluster's CA \
             certificates (relay.ssl.ca or relay.trustStore.location); not set",
        ),
        (
            format!("{head}room=eu west\n"),
            "zoo.cfg:3: room: \"eu west\" is not a room (letters, digits, '.', '_', '-'): ' ' in the room",
        ),
        (
            format!("{head}room=\n"),
            "zoo.cfg:3: room: \"\" is not a room (letters, digits, '.', '_', '-'): the room is empty",
        ),
        (
            format!(
                "{head}initLimit=5\nsyncLimit=2\npeerType=observer\n{stores}relay.upstreams=pub1:2191\n\
                 server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n\
                 server.4=d:2888:3888:observer\n"
            ),
            "zoo.cfg:8: relay.upstreams: a server follows either a ZooKeeper ensemble or relay \
             upstreams, not both: the server lines from server.1 (zoo.cfg:9) make this one a \
             gateway of an ensemble; remove them or relay.upstreams",
        ),
    ];
    for (text, expected) in &cases {
        assert_eq!(&zoo_err(text), expected, "for:\n{text}");
    }
}

#[test]
fn relay_errors_in_toml_name_the_toml_key() {
    let head = "[server]\ndata_dir = \"/d\"\n";
    let stores = "key_store = \"/k/n.pem\"\ntrust_store = \"/k/ca.pem\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{head}[relay]\nsubscribers = [\n  \"7@eu\",\n  \"8@\",\n]\n"),
            "geokeeper.toml:6: relay.subscribers[1]: \"8@\" is not ID@ROOM (a node id and a room \
             of letters, digits, '.', '_', '-'): the room is empty",
        ),
        (
            format!("{head}[relay]\nsubscribers = \"7@eu\"\n"),
            "geokeeper.toml:4: relay.subscribers: expected an array of \"ID@ROOM\" strings, found string \"7@eu\"",
        ),
        (
            format!("{head}[relay]\nsubscribers = [\"7@eu,8@us\"]\n"),
            "geokeeper.toml:4: relay.subscribers[0]: \"7@eu,8@us\": one ID@ROOM per string (no commas)",
        ),
        (
            format!("{head}role = \"observer\"\n[relay]\n{stores}upstreams = [\"pub1:2191\", \"[::1]2191\"]\n"),
            "geokeeper.toml:7: relay.upstreams[1]: \"[::1]2191\" is not host:port: no ':port' after the IPv6 address",
        ),
        (
            format!("{head}[relay]\nport = 2191\ntrust_store = \"/k/ca.pem\"\n"),
            "geokeeper.toml:4: relay.port: a relay publisher needs PEM files of this server's \
             certificate chain and private key (relay.cert and relay.key, or relay.key_store \
             holding both); not set",
        ),
        (
            format!("{head}[relay]\nport = -1\n"),
            "geokeeper.toml:4: relay.port: -1 is not a port number (1-65535, or 0 for no publisher)",
        ),
        (
            format!("{head}[relay]\n{stores}upstreams = [\"pub1:2191\"]\n"),
            "geokeeper.toml:6: relay.upstreams: relay upstreams make this server a QUIC observer: \
             set server.peer_type=observer",
        ),
        (
            format!("{head}role = \"leader\"\n"),
            "geokeeper.toml:3: server.role: Unrecognised peertype: leader",
        ),
        (
            format!("{head}peer_type = \"observer\"\nrole = \"observer\"\n"),
            "geokeeper.toml:4: server.role: sets the peer type, which server.peer_type (geokeeper.toml:3) already sets",
        ),
    ];
    for (text, expected) in &cases {
        assert_eq!(&toml_err(text), expected, "for:\n{text}");
    }
    // An ensemble and relay upstreams together.
    let mut text = format!(
        "{head}server_id = 4\nrole = \"observer\"\n[quorum]\ninit_limit = 5\nsync_limit = 2\n\
         [relay]\n{stores}upstreams = [\"pub1:2191\"]\n"
    );
    for id in 1..=3 {
        text.push_str(&format!(
            "[[quorum.servers]]\nid = {id}\nhost = \"zk{id}\"\nquorum_port = 2888\nelection_port = 3888\n"
        ));
    }
    text.push_str(
        "[[quorum.servers]]\nid = 4\nhost = \"gw\"\nquorum_port = 2888\nelection_port = 3888\nrole = \"observer\"\n",
    );
    assert_eq!(
        toml_err(&text),
        "geokeeper.toml:11: relay.upstreams: a server follows either a ZooKeeper ensemble or \
         relay upstreams, not both: the server lines from quorum.servers[0] (geokeeper.toml:12) \
         make this one a gateway of an ensemble; remove them or relay.upstreams"
    );
}

#[test]
fn a_misspelt_relay_key_is_a_warning_with_a_suggestion() {
    let (c, w) = zoo("dataDir=/d\nclientPort=2181\nrelay.keystore.location=/k/n.pem\n");
    assert_eq!(
        shown(&w),
        ["zoo.cfg:3: relay.keystore.location: unknown setting; kept as system property \
          zookeeper.relay.keystore.location, as ZooKeeper does (did you mean relay.keyStore.location?)"]
    );
    assert_eq!(c.relay().expect("relay").cert, None);
    let (_, w) = toml("[server]\ndata_dir = \"/d\"\n[relay]\nheartbeat = 100\n");
    assert_eq!(
        shown(&w),
        ["geokeeper.toml:4: relay.heartbeat: unknown key; ignored (did you mean heartbeat_ms?)"]
    );
}

#[test]
fn relay_ssl_files_and_room_read_the_same_in_both_dialects() {
    let zoo_text = "dataDir=/d\nclientPort=2181\npeerType=observer\nroom=eu-west.2\n\
         relay.upstreams=pub1:2191\nrelay.ssl.cert=/k/b1.crt\nrelay.ssl.key=/k/b1.key\n\
         relay.ssl.ca=/k/ca.pem\n";
    let toml_text = "[server]\ndata_dir = \"/d\"\nrole = \"observer\"\nroom = \"eu-west.2\"\n\
         [relay]\nupstreams = [\"pub1:2191\"]\ncert = \"/k/b1.crt\"\nkey = \"/k/b1.key\"\n\
         ca = \"/k/ca.pem\"\n";
    for (dialect, (c, w)) in [("zoo.cfg", zoo(zoo_text)), ("toml", toml(toml_text))] {
        assert!(w.is_empty(), "{dialect}: {:#?}", shown(&w));
        let relay = c.relay().expect("relay");
        assert_eq!(relay.cert, Some("/k/b1.crt".into()), "{dialect}");
        assert_eq!(relay.key, Some("/k/b1.key".into()), "{dialect}");
        assert_eq!(relay.ca, Some("/k/ca.pem".into()), "{dialect}");
        assert_eq!(relay.room.as_deref(), Some("eu-west.2"), "{dialect}");
        assert!(c.is_relay_observer(), "{dialect}");
        assert!(
            c.inert_settings().is_empty(),
            "{dialect}: {:?}",
            c.inert_settings()
        );
    }
    // The TOML error names the TOML keys.
    assert_eq!(
        toml_err("[server]\ndata_dir = \"/d\"\n[relay]\nport = 2191\ncert = \"/k/n.crt\"\nca = \"/k/ca.pem\"\n"),
        "geokeeper.toml:5: relay.cert: is set but relay.key is not (the file of this server's \
         private key)"
    );
    assert_eq!(
        toml_err("[server]\ndata_dir = \"/d\"\nroom = \"a/b\"\n"),
        "geokeeper.toml:3: server.room: \"a/b\" is not a room (letters, digits, '.', '_', '-'): '/' in the room"
    );
}
