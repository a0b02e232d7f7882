//! What startup does with settings geokeeper recognises but does not act on: the harmless
//! ones are named together in one log line, and one that asks for security or durability
//! geokeeper does not provide stops startup with an error naming the file, line and key
//! (exit code 2). (The same refusal for `-D` flags is covered by conf's unit tests.)

mod support;

use support::gk::{Geokeeper, StartError};

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
        match Geokeeper::try_start_on(dir.path(), cfg) {
            Ok(gk) => panic!("{cfg}: geokeeper started:\n{}", gk.log()),
            Err((StartError::Exited(code), log)) => {
                assert_eq!(code, Some(2), "{cfg}:\n{log}");
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
            Err((e, log)) => panic!("{cfg}: {e:?}\n{log}"),
        }
    }
}
