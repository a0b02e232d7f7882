//! What startup does with settings geokeeper recognises but does not act on: the harmless
//! ones are named together in one log line, and one that asks for security or durability
//! geokeeper does not provide stops startup with an error naming the file, line and key
//! (exit code 2). (The same refusal for `-D` flags is covered by conf's unit tests.)

mod support;

use support::gk::{refused_start, Geokeeper};
use support::java_zk::four_letter;
use support::rawzk::RawZk;

#[test]
fn harmless_settings_are_named_in_one_startup_line() {
    let gk = Geokeeper::start(concat!(
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n",
        "metricsProvider.httpPort=7000\n",
        "admin.enableServer=false\n",
        "snapSizeLimitInKb=1048576\n",
    ));
    let log = gk.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("recognised but not acted on"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    for key in [
        "metricsProvider.className (",
        "metricsProvider.httpPort (",
        "admin.enableServer (",
    ] {
        assert!(lines[0].contains(key), "{key} not named: {}", lines[0]);
    }
    // snapSizeLimitInKb is acted on now: not in the line.
    assert!(!lines[0].contains("snapSizeLimitInKb"), "{}", lines[0]);
}

#[test]
fn settings_that_would_weaken_security_or_durability_stop_startup() {
    for (cfg, key) in [
        ("sslQuorum=true", "sslQuorum"),
        ("secureClientPort=2281", "secureClientPort"),
        ("audit.enable=true", "audit.enable"),
        (
            "zookeeper.datadir.autocreate=false",
            "zookeeper.datadir.autocreate",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = refused_start(dir.path(), cfg);
        let line = log
            .lines()
            .find(|l| l.contains("is not supported by geokeeper"))
            .unwrap_or_else(|| panic!("{cfg}: no refusal line:\n{log}"));
        // zoo.cfg:<line>: <key>: …
        assert!(
            line.contains("zoo.cfg:") && line.contains(&format!(": {key}: ")),
            "{cfg}: the error should name file, line and key: {line}"
        );
    }
}

/// A zoo.cfg copied from an ensemble, with this server's own `server.N` line, must never
/// start a standalone server with an empty tree beside the ensemble.
#[test]
fn an_ensemble_configuration_never_starts_a_standalone_server() {
    let ensemble = "initLimit=5\nsyncLimit=2\n\
                    server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888\n";
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("myid"), "2").expect("myid");
    let log = refused_start(dir.path(), ensemble);
    let says = "geokeeper joins a ZooKeeper ensemble only as an observer";
    assert!(log.contains(says), "expected {says:?}:\n{log}");

    // As an observer it is a gateway: with no leader to follow it takes no session
    // (ZooKeeper's "not running"), rather than serve an empty tree of its own.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("myid"), "4").expect("myid");
    let gk = Geokeeper::start_on(
        dir.path(),
        &format!("{ensemble}peerType=observer\nserver.4=127.0.0.4:2888:3888:observer\n4lw.commands.whitelist=*\n"),
    );
    // Not serving: srvr says so, as ZooKeeper's does.
    let srvr = four_letter(gk.addr, "srvr");
    assert_eq!(
        srvr,
        "This ZooKeeper instance is not currently serving requests\n"
    );
    assert!(
        four_letter(gk.addr, "mntr").contains("zk_observer_synced\t0"),
        "not in sync without a leader"
    );
    // Closed without a ConnectResponse.
    if let Ok(z) = RawZk::connect(gk.addr, 0, &[0; 16], 0, 30_000) {
        panic!(
            "a gateway without a leader gave a session: {:?}",
            z.response
        );
    }
    assert!(
        gk.log().contains("not in sync with a leader"),
        "{}",
        gk.log()
    );
}
