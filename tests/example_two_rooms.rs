//! `examples/two-rooms/run.sh` end to end, as the README's walk-through uses it: the script
//! brings up room A (a geokeeper leader, or with `--zk` an Apache ZooKeeper 3.8 ensemble and
//! a gateway) and room B (observer b1 following room A through a 25 ms WAN link, b2
//! following b1), prints its endpoints once they serve, and stops everything it started on
//! Ctrl-C. A write through b2 (with zkCli) is the leader's, seen by b1; a write at the
//! leader reaches b2; a write through b2 takes at least one WAN round trip.
//!
//! Each run takes a loopback block of its own (127.X.Y.10 and up) and ports below the
//! ephemeral range, so it runs beside the other tests.

mod support;

use std::time::{Duration, Instant};

use support::example_script::{wait_until, zkcli, Deployment};
use support::relay::{create, get, session, set_data, sync};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-rooms/run.sh");
/// The script's default one-way WAN delay.
const WAN_ONE_WAY: Duration = Duration::from_millis(25);
/// Three JVMs, a gateway and two observers starting on a busy 2-core machine.
const START: Duration = Duration::from_secs(180);

/// The walk-through: writes both ways between the rooms, the WAN in the write path, and
/// a clean stop on SIGINT.
fn writes_cross_the_rooms_and_ctrl_c_stops_everything(zk: bool) {
    let mut want = vec!["leader", "observer-b1", "observer-b2"];
    if zk {
        want.extend(["zk-1", "zk-2", "zk-3", "gateway"]);
    }
    let args: &[&str] = if zk { &["--zk"] } else { &[] };
    let mut t = Deployment::start(SCRIPT, args, &want, START);
    let (leader, b1, b2) = (
        t.endpoint("leader"),
        t.endpoint("observer-b1"),
        t.endpoint("observer-b2"),
    );

    // zkCli creates a znode through b2: the write climbs b2 -> b1 -> WAN -> room A.
    let out = zkcli(b2, &["create", "/two-rooms", "from-b2"]);
    assert!(
        out.contains("Created /two-rooms"),
        "zkCli through b2:\n{out}"
    );
    let mut l = session(leader);
    assert_eq!(sync(&mut l, "/"), 0);
    assert_eq!(get(&mut l, "/two-rooms").1, b"from-b2", "at the leader");
    let out = zkcli(leader, &["get", "/two-rooms"]);
    assert!(
        out.lines().any(|line| line == "from-b2"),
        "zkCli at the leader:\n{out}"
    );
    let mut z1 = session(b1);
    assert_eq!(sync(&mut z1, "/two-rooms"), 0);
    assert_eq!(get(&mut z1, "/two-rooms").1, b"from-b2", "at b1");

    // A write at the leader comes down to b2 by itself (no sync).
    assert_eq!(set_data(&mut l, "/two-rooms", b"from-leader").0, 0);
    let mut z2 = session(b2);
    wait_until(
        Duration::from_secs(10),
        "b2 sees the leader's write",
        || get(&mut z2, "/two-rooms").1 == b"from-leader",
    );

    // Each write through b2 is answered once its transaction is back from room A: at
    // least one WAN round trip.
    let mut fastest = Duration::MAX;
    for i in 0..5 {
        let started = Instant::now();
        let (err, _) = create(&mut z2, &format!("/two-rooms-{i}"), b"x", 0);
        assert_eq!(err, 0, "create through b2");
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest >= 2 * WAN_ONE_WAY,
        "a write through b2 took {fastest:?}, less than a WAN round trip"
    );
    drop((l, z1, z2));

    // Ctrl-C: the script stops everything and exits 0.
    t.ctrl_c_stops_everything();
}

#[test]
fn two_rooms_with_a_geokeeper_leader() {
    writes_cross_the_rooms_and_ctrl_c_stops_everything(false);
}

#[test]
fn two_rooms_with_a_zookeeper_ensemble_and_a_gateway() {
    writes_cross_the_rooms_and_ctrl_c_stops_everything(true);
}
