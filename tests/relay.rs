//! The QUIC relay end to end, with real processes: a standalone geokeeper publishing its
//! committed stream, observers in a remote room following it over QUIC with mutual TLS,
//! and a room relay re-publishing to a sibling. Clients use the observers as ZooKeeper
//! servers: reads from the observer's tree, writes forwarded and answered when their
//! transaction comes back.

mod support;

use std::time::Duration;

use support::gateway::mntr;
use support::relay::*;

const SYNC: Duration = Duration::from_secs(30);

#[test]
fn a_remote_observer_serves_reads_forwards_writes_and_resumes_by_diff() {
    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 2, "B"), ("b2", 3, "B")]);
    let leader = start_leader(&certs, "leader", "2@B,3@B", "");
    let mut lz = session(leader.addr());
    assert_eq!(create(&mut lz, "/before", b"x", 0).0, 0);

    // b1 follows the leader and re-publishes to b2 (one WAN stream for the room).
    let b1_data = tempfile::tempdir().expect("tempdir");
    let b1 = start_observer(
        &certs,
        "b1",
        2,
        &[leader.relay.expect("relay")],
        Some("3@B"),
        b1_data.path(),
        "",
    );
    let m = wait_synced(&b1, SYNC);
    assert_eq!(m["zk_server_state"], "observer", "{m:?}");
    let b2_data = tempfile::tempdir().expect("tempdir");
    let b2 = start_observer(
        &certs,
        "b2",
        3,
        &[b1.relay.expect("relay")],
        None,
        b2_data.path(),
        "",
    );
    wait_synced(&b2, SYNC);

    // What the leader had before is there; a write through b2 climbs the chain, comes
    // back down, and is answered with its zxid.
    let mut z2 = session(b2.addr());
    assert_eq!(get(&mut z2, "/before").1, b"x");
    let (err, zxid) = create(&mut z2, "/from-b2", b"hello", 0);
    assert_eq!(err, 0, "create through the chain");
    let (_, data, stat) = get(&mut z2, "/from-b2");
    assert_eq!(data, b"hello");
    assert_eq!(stat.expect("stat").czxid, zxid, "read your own write");
    let (_, data, _) = get(&mut lz, "/from-b2");
    assert_eq!(data, b"hello", "the leader has it");
    // The leader's error comes back as the leader's: NodeExists.
    assert_eq!(create(&mut z2, "/from-b2", b"again", 0).0, -110);
    // Sessions are global: the observer's session is the leader's.
    let sid = z2.session_id();
    assert_eq!(sid >> 56, 3, "b2 picks its ids with its server id");

    // A write at the leader, then sync + read on b1: it is there.
    let (_, w) = set_data(&mut lz, "/before", b"y");
    let mut z1 = session(b1.addr());
    assert_eq!(sync(&mut z1, "/before"), 0);
    let (_, data, stat) = get(&mut z1, "/before");
    assert_eq!(data, b"y");
    assert_eq!(stat.expect("stat").mzxid, w);

    // An ephemeral through b1 belongs to its global session; closing the session
    // removes it everywhere.
    assert_eq!(create(&mut z1, "/eph", b"", 1).0, 0);
    wait_zxid(&b2, leader_zxid(&leader), SYNC);
    assert_eq!(get(&mut z2, "/eph").0, 0);
    z1.disconnect();

    // The publisher lists its subscriber; b1 its upstream and relays to b2.
    let lm = mntr(leader.addr());
    assert_eq!(lm["zk_relay_subscribers"], "1", "{lm:?}");
    assert!(
        lm.contains_key("zk_relay_subscriber_2_B_lag_txns"),
        "{lm:?}"
    );
    let m1 = mntr(b1.addr());
    assert_eq!(m1["zk_relay_subscribers"], "1", "{m1:?}");
    assert_eq!(
        m1["zk_relay_upstream"],
        leader.relay.expect("relay").to_string()
    );

    // b2 restarts after more writes: it resumes by diff from b1's memory.
    drop(z2);
    let mut b2 = b2;
    b2.gk.kill();
    for i in 0..20 {
        assert_eq!(create(&mut lz, &format!("/while-down-{i}"), b"d", 0).0, 0);
    }
    b2.gk.restart();
    let m2 = wait_synced(&b2, SYNC);
    assert_eq!(m2["zk_observer_sync_type"], "DIFF", "{m2:?}");
    wait_zxid(&b2, leader_zxid(&leader), SYNC);
    assert_eq!(
        dump(b2.addr()),
        dump(leader.addr()),
        "b2's tree is the leader's"
    );
    assert_eq!(
        dump(b1.addr()),
        dump(leader.addr()),
        "b1's tree is the leader's"
    );
}

#[test]
fn an_observer_too_far_behind_catches_up_by_snapshot_and_ends_identical() {
    let certs = Certs::new(&[("leader", 1, "A"), ("c1", 4, "C")]);
    // Few transactions in memory, a low diff limit and frequent snapshots: a long
    // absence is caught up by a snapshot.
    let leader = start_leader(
        &certs,
        "leader",
        "4@C",
        "relay.retainTxns=10\nrelay.diffMaxTxns=50\nsnapCount=100\n",
    );
    let mut lz = session(leader.addr());
    for i in 0..30 {
        assert_eq!(create(&mut lz, &format!("/a{i}"), b"1", 0).0, 0);
    }
    let c1_data = tempfile::tempdir().expect("tempdir");
    let mut c1 = start_observer(
        &certs,
        "c1",
        4,
        &[leader.relay.expect("relay")],
        None,
        c1_data.path(),
        "",
    );
    wait_synced(&c1, SYNC);
    c1.gk.kill();
    for i in 0..400 {
        assert_eq!(create(&mut lz, &format!("/b{i}"), &[i as u8; 100], 0).0, 0);
    }
    for i in 0..30 {
        let _ = set_data(&mut lz, &format!("/a{i}"), b"2");
    }
    c1.gk.restart();
    let m = wait_synced(&c1, SYNC);
    assert_eq!(m["zk_observer_sync_type"], "SNAP", "{m:?}");
    assert_eq!(m["zk_relay_snapshots_received"], "1", "{m:?}");
    wait_zxid(&c1, leader_zxid(&leader), SYNC);
    assert_eq!(dump(c1.addr()), dump(leader.addr()), "every znode and stat");
    // And it keeps following.
    let (_, z) = create(&mut lz, "/after", b"", 0);
    wait_zxid(&c1, z, SYNC);
    // A restart after the snapshot resumes by diff from its own data directory.
    c1.gk.restart();
    let m = wait_synced(&c1, SYNC);
    assert_eq!(m["zk_observer_sync_type"], "DIFF", "{m:?}");
    assert_eq!(dump(c1.addr()), dump(leader.addr()));
}

fn leader_zxid(n: &Node) -> i64 {
    let s = support::java_zk::four_letter(n.addr(), "srvr");
    s.lines()
        .find_map(|l| l.strip_prefix("Zxid: "))
        .and_then(|z| i64::from_str_radix(z.trim().trim_start_matches("0x"), 16).ok())
        .expect("srvr Zxid")
}
