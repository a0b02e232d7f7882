//! A gateway as a relay publisher, end to end: a geokeeper gateway follows a real Apache
//! ZooKeeper 3.8 ensemble through ZooKeeper's learner protocol and publishes its
//! committed stream over QUIC to an observer in a remote room. The remote observer is a
//! ZooKeeper server of that ensemble for its clients: its writes reach the Java leader
//! through the gateway (as the gateway's own REQUEST packets) and come back as the
//! leader's transactions or errors, sync orders its reads behind the ensemble's writes,
//! its sessions are the leader's, and it follows the gateway through a kill -9.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use support::gateway::{mntr, start_gateway, stat_of};
use support::java_ensemble::JavaEnsemble;
use support::java_zk::four_letter;
use support::relay::*;
use support::{gateway, relay};

const SYNC: Duration = Duration::from_secs(30);

#[test]
fn a_gateway_publishes_to_a_remote_observer_whose_writes_reach_the_java_leader() {
    let e = JavaEnsemble::start(3, "");
    let leader = e.leader().expect("a leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let (lead, fol) = (e.members[leader].client, e.members[follower].client);
    let mut l = session(lead);
    assert_eq!(create(&mut l, "/before", b"java", 0).0, 0);

    // The gateway (id 10, room A) publishes to b1 (id 11, room B).
    let certs = Certs::new(&[("gw", 10, "A"), ("b1", 11, "B")]);
    let gw_relay = free_udp_addr();
    let gw_data = tempfile::tempdir().expect("tempdir");
    let mut gw = start_gateway(
        &e,
        10,
        gw_data.path(),
        &format!(
            "relayPort={}\nrelayAddress=127.0.0.1\nrelay.subscribers=11@B\n{}",
            gw_relay.port(),
            certs.key_store_lines("gw")
        ),
    );
    gateway::wait_synced(&gw, SYNC);
    let b1 = start_observer(&certs, "b1", 11, &[gw_relay], None, "");
    let m = relay::wait_synced(&b1, SYNC);
    assert_eq!(m["zk_server_state"], "observer", "{m:?}");
    assert_eq!(m["zk_relay_upstream"], gw_relay.to_string(), "{m:?}");
    let gm = mntr(gw.addr);
    assert_eq!(gm["zk_relay_subscribers"], "1", "{gm:?}");
    assert!(
        gm.contains_key("zk_relay_subscriber_11_B_lag_txns"),
        "{gm:?}"
    );

    // What the ensemble had before is there.
    let mut z = session(b1.addr());
    assert_eq!(get(&mut z, "/before").1, b"java");

    // A write through b1 is the ensemble's: committed by the Java leader, seen with the
    // same czxid at a Java server and at the gateway, and read back by its writer.
    let (err, zxid) = create(&mut z, "/from-b1", b"hello", 0);
    assert_eq!(err, 0, "create through b1 and the gateway\n{}", b1.gk.log());
    let (_, data, stat) = get(&mut z, "/from-b1");
    assert_eq!(data, b"hello");
    assert_eq!(stat.expect("stat").czxid, zxid, "read your own write");
    let mut j = session(fol);
    assert_eq!(sync(&mut j, "/"), 0);
    let (err, data, stat) = get(&mut j, "/from-b1");
    assert_eq!(
        (err, data.as_slice()),
        (0, &b"hello"[..]),
        "at a Java server"
    );
    assert_eq!(stat.expect("stat").czxid, zxid, "the Java leader's zxid");
    let mut g = session(gw.addr);
    assert_eq!(sync(&mut g, "/"), 0);
    assert_eq!(
        stat_of(&mut g, "/from-b1").map(|s| s.czxid),
        Some(zxid),
        "at the gateway"
    );
    // The Java leader's error comes back as it is: NodeExists.
    assert_eq!(create(&mut z, "/from-b1", b"again", 0).0, -110);
    assert_eq!(create(&mut z, "/no/parent", b"", 0).0, -101);

    // A write at a Java server, then sync + read through b1: it is there.
    let (err, w) = set_data(&mut j, "/before", b"changed");
    assert_eq!(err, 0);
    assert_eq!(sync(&mut z, "/before"), 0);
    let (_, data, stat) = get(&mut z, "/before");
    assert_eq!(data, b"changed", "read after sync");
    assert_eq!(stat.expect("stat").mzxid, w);

    // Sessions are global: b1's session (its id under b1's server id) owns an ephemeral
    // at the Java leader, and closing it through b1 removes the ephemeral there.
    let sid = z.session_id();
    assert_eq!(sid >> 56, 11, "b1 hands out ids with its own server id");
    assert_eq!(create(&mut z, "/eph", b"", 1).0, 0);
    assert_eq!(sync(&mut j, "/"), 0);
    assert_eq!(
        stat_of(&mut j, "/eph").map(|s| s.ephemeral_owner),
        Some(sid),
        "the Java ensemble knows b1's session"
    );
    close_session(z);
    assert_eq!(sync(&mut j, "/"), 0);
    assert_eq!(
        stat_of(&mut j, "/eph"),
        None,
        "closing the session through b1 removed its ephemeral at the Java leader"
    );

    // The gateway is killed; the ensemble goes on without it. Restarted, it catches up
    // with the Java leader, and b1 comes back to it by itself and ends with the
    // ensemble's tree.
    let reconnects = count(&mntr(b1.addr()), "zk_relay_reconnects");
    gw.kill();
    for i in 0..20 {
        assert_eq!(create(&mut l, &format!("/while-down-{i}"), b"d", 0).0, 0);
    }
    assert_eq!(
        set_data(&mut l, "/from-b1", b"while the gateway was down").0,
        0
    );
    gw.restart();
    gateway::wait_synced(&gw, SYNC);
    relay::wait_synced(&b1, SYNC);
    wait_zxid(&b1, java_zxid(lead), SYNC);
    let want = dump(lead);
    let deadline = Instant::now() + SYNC;
    loop {
        let got = dump(b1.addr());
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b1's tree is not the ensemble's: {:?}",
            differences(&want, &got)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        count(&mntr(b1.addr()), "zk_relay_reconnects") > reconnects,
        "b1 reconnected"
    );
    assert_eq!(dump(gw.addr), want, "the gateway's tree is the ensemble's");
    // And it writes through the restarted gateway again. (A new Java session: the first
    // may have expired while idle, as no one pings for it.)
    let mut z = session(b1.addr());
    let (err, zxid) = create(&mut z, "/after-restart", b"", 0);
    assert_eq!(err, 0, "create after the gateway's restart");
    let mut j = session(fol);
    assert_eq!(sync(&mut j, "/"), 0);
    assert_eq!(
        stat_of(&mut j, "/after-restart").map(|s| s.czxid),
        Some(zxid)
    );
}

/// closeSession, and its reply.
fn close_session(mut z: support::rawzk::RawZk) {
    let f = z
        .call(OpCode::CloseSession, &Request::CloseSession)
        .reply
        .expect("closeSession reply");
    assert_eq!(f.header.err, 0, "closeSession");
}

/// The last zxid a Java server has, from `srvr`.
fn java_zxid(addr: SocketAddr) -> i64 {
    four_letter(addr, "srvr")
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: "))
        .and_then(|z| i64::from_str_radix(z.trim().trim_start_matches("0x"), 16).ok())
        .expect("srvr Zxid")
}

fn count(m: &BTreeMap<String, String>, key: &str) -> u64 {
    m.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The paths whose data or stat differ (or that one side lacks).
fn differences<V: PartialEq>(want: &BTreeMap<String, V>, got: &BTreeMap<String, V>) -> Vec<String> {
    want.keys()
        .chain(got.keys())
        .filter(|p| want.get(*p) != got.get(*p))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
