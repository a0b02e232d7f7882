//! A gateway joins an ensemble of a million znodes. In a test binary of its own: the
//! ensemble it needs (1.2 GB heaps, a million writes) must not share the two cores with
//! the other ensembles' tests, whose leaders would stall past their clients' timeouts.

mod support;

use std::time::{Duration, Instant};

use support::gateway::{session, start_gateway, stat_of, wait_synced};
use support::java_ensemble::JavaEnsemble;

/// A gateway joins an ensemble that holds a million znodes: by SNAP, streamed into its
/// tree, and then serves them. (`GEOKEEPER_GATEWAY_SNAP_ZNODES` changes the count.)
#[test]
fn a_gateway_joins_an_ensemble_of_a_million_znodes() {
    let n: u64 = std::env::var("GEOKEEPER_GATEWAY_SNAP_ZNODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // ZooKeeper holds ~430 B of heap per znode.
    // forceSync=no: the ensemble is only the source of the SNAP here.
    let e = JavaEnsemble::start_with_jvm_flags(3, 0, "forceSync=no", &["-Xmx1200m"]);
    let lead = e.members[e.leader().expect("leader")].client;
    let t = Instant::now();
    let out = std::process::Command::new(support::gk::binary())
        .args(["bench", "populate", "--hosts", &lead.to_string()])
        .args(["--count", &n.to_string(), "--value-size", "100"])
        .args(["--sessions", "8", "--in-flight", "64"])
        .output()
        .expect("geokeeper bench populate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{n} znodes written through the leader in {:?}", t.elapsed());

    let data = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let gk = start_gateway(&e, 14, data.path(), "");
    let m = wait_synced(&gk, Duration::from_secs(300));
    let joined = t.elapsed();
    assert_eq!(m["zk_observer_sync_type"], "SNAP", "{m:?}");
    let nodes: u64 = m["zk_znode_count"].parse().expect("znode count");
    assert!(nodes > n, "{nodes} znodes on the gateway");
    let rss = gk.pid().and_then(support::gk::rss_kb).map(|(rss, _)| rss);
    eprintln!(
        "joined in {joined:?} (sync {} ms), {nodes} znodes, resident {rss:?} kB",
        m["zk_observer_sync_time_ms"]
    );
    // A sample of znodes reads the same on the gateway as on the leader.
    let (mut g, mut l) = (session(gk.addr), session(lead));
    for i in (0..n).step_by((n / 200).max(1) as usize) {
        let path = format!("/bench-pop/d{:04}/n{:04}", i / 1000, i % 1000);
        let a = stat_of(&mut l, &path);
        assert!(a.is_some(), "{path} on the leader");
        assert_eq!(stat_of(&mut g, &path), a, "{path}");
    }
}
