//! The per-room client proxy (`geokeeper proxy`) in front of real servers: sessions spread
//! by weight over the healthy upstreams of the proxy's own room, other rooms only when its
//! own has none, and home again when it recovers; a session's frames are the upstream's
//! own (its session id, zxids and watch events); the proxy's four-letter words describe it
//! and its upstreams; limits as on a server.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::gk::Geokeeper;
use support::java_zk::four_letter;
use support::proxy::{upstream, Proxy};
use support::rawzk::RawZk;
use support::relay::{start_observer, wait_synced, Certs, PubKind, Publisher};

const WAIT: Duration = Duration::from_secs(20);

/// Opens and closes `n` sessions through the proxy; returns how many each upstream got
/// (by the proxy's own count of placements).
fn place(p: &Proxy, n: usize) -> BTreeMap<usize, u64> {
    let before = placed(p);
    for _ in 0..n {
        let z = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session through the proxy");
        assert!(z.response.time_out > 0, "session refused");
        z.disconnect();
    }
    placed(p)
        .into_iter()
        .map(|(i, v)| (i, v - before.get(&i).copied().unwrap_or(0)))
        .collect()
}

fn placed(p: &Proxy) -> BTreeMap<usize, u64> {
    let m = p.mntr();
    (0..m["zk_proxy_upstreams"].parse::<usize>().expect("n"))
        .map(|i| {
            (
                i,
                m[&format!("zk_proxy_upstream_{i}_placed")]
                    .parse()
                    .expect("placed"),
            )
        })
        .collect()
}

#[test]
fn sessions_spread_by_weight_in_the_own_room_and_move_rooms_only_when_it_has_none() {
    // A leader in room A; room B: observers weighted 10 and 5; room C: one observer.
    // The proxy is B's, and prefers C to A. (Behind a proxy every session comes from
    // the proxy's address: the servers take more than 60 connections from one address.)
    let certs = Certs::new(&[
        ("leader", 1, "A"),
        ("b1", 11, "B"),
        ("b2", 12, "B"),
        ("c1", 21, "C"),
    ]);
    let limits = "maxClientCnxns=0\n";
    let leader = Publisher::start(PubKind::Leader, &certs, "leader", "11@B,12@B,21@C", limits);
    let mut b1 = start_observer(&certs, "b1", 11, &[leader.relay()], None, limits);
    let mut b2 = start_observer(&certs, "b2", 12, &[leader.relay()], None, limits);
    let c1 = start_observer(&certs, "c1", 21, &[leader.relay()], None, limits);
    for o in [&b1, &b2, &c1] {
        wait_synced(o, WAIT);
    }
    let p = Proxy::start(
        "B",
        &[
            upstream(leader.leader_addr(), "A", 1),
            upstream(b1.addr(), "B", 10),
            upstream(b2.addr(), "B", 5),
            upstream(c1.addr(), "C", 1),
        ],
        "prefer_rooms = [\"C\", \"A\"]\n",
    );
    p.wait_healthy(4, WAIT);

    let got = place(&p, 1_500);
    let (n1, n2) = (got[&1] as f64, got[&2] as f64);
    assert_eq!(
        (got[&0], got[&3]),
        (0, 0),
        "another room while B is healthy: {got:?}"
    );
    assert!(
        (n1 - 1_000.0).abs() <= 100.0 && (n2 - 500.0).abs() <= 50.0,
        "{got:?}"
    );

    // Room B lost: C, the first preference, takes every new session.
    b1.gk.kill();
    b2.gk.kill();
    p.wait_healthy(2, WAIT);
    let got = place(&p, 50);
    assert_eq!((got[&0], got[&3]), (0, 50), "{got:?}");

    // B back: new sessions return home.
    b2.gk.restart();
    wait_synced(&b2, WAIT);
    p.wait_healthy(3, WAIT);
    let got = place(&p, 50);
    assert_eq!((got[&2], got[&3]), (50, 0), "{got:?}");
}

#[test]
fn a_session_through_the_proxy_is_the_upstreams_own() {
    let gk = Geokeeper::start("4lw.commands.whitelist=*\n");
    let p = Proxy::start("B", &[upstream(gk.addr, "B", 1)], "");
    p.wait_healthy(1, WAIT);
    let z = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session");
    let id = z.session_id();
    // The upstream lists the session under the id the client was given.
    let cons = four_letter(gk.addr, "cons");
    assert!(
        cons.contains(&format!("sid={id:#x}")),
        "{id:#x} not in\n{cons}"
    );
    // The proxy's own words describe it.
    let srvr = four_letter(p.addr, "srvr");
    assert!(srvr.contains("Mode: proxy"), "{srvr}");
    assert!(srvr.contains("Room: B"), "{srvr}");
    let pc = four_letter(p.addr, "cons");
    assert!(
        pc.contains(&format!("sid={id:#x}")) && pc.contains(&gk.addr.to_string()),
        "{pc}"
    );
    assert_eq!(four_letter(p.addr, "ruok"), "imok");
    drop(z);
}

/// `leaderServes=no`: a leader (here a standalone geokeeper leader others follow over the
/// relay) refuses client sessions as ZooKeeper's leader does, and its `srvr` says it is not
/// serving; the proxy, told nothing about who leads, places no session on it. A server that
/// leads nobody ignores the setting, as ZooKeeper's standalone server does.
#[test]
fn a_leader_that_does_not_serve_gets_no_sessions() {
    let certs = Certs::new(&[("leader", 1, "A"), ("a2", 12, "A")]);
    let leader = Publisher::start(
        PubKind::Leader,
        &certs,
        "leader",
        "12@A",
        "leaderServes=no\nmaxClientCnxns=0\n",
    );
    let a2 = start_observer(
        &certs,
        "a2",
        12,
        &[leader.relay()],
        None,
        "maxClientCnxns=0\n",
    );
    wait_synced(&a2, WAIT);
    // The leader refuses the session: the connection closes without an answer.
    assert!(
        RawZk::connect(leader.leader_addr(), 0, &[0; 16], 0, 30_000).is_err(),
        "the leader took a session"
    );
    assert_eq!(
        four_letter(leader.leader_addr(), "srvr"),
        "This ZooKeeper instance is not currently serving requests\n"
    );
    assert_eq!(four_letter(leader.leader_addr(), "ruok"), "imok");
    // Writes still reach it through the observer.
    let mut z = RawZk::connect(a2.addr(), 0, &[0; 16], 0, 30_000).expect("observer session");
    let (err, _) = support::relay::create(&mut z, "/through-a2", b"x", 0);
    assert_eq!(err, 0);

    // The proxy lists both, the leader with the higher weight: every session goes to a2.
    let p = Proxy::start(
        "A",
        &[
            upstream(leader.leader_addr(), "A", 100),
            upstream(a2.addr(), "A", 1),
        ],
        "",
    );
    p.wait_healthy(1, WAIT);
    let m = p.mntr();
    assert_eq!(m["zk_proxy_upstream_0_state"], "not_serving", "{m:?}");
    let got = place(&p, 40);
    assert_eq!((got[&0], got[&1]), (0, 40), "{got:?}");

    // A standalone server with no followers ignores it.
    let alone = Geokeeper::start("leaderServes=no\n");
    assert!(RawZk::connect(alone.addr, 0, &[0; 16], 0, 30_000).is_ok());
    assert!(
        alone.log().contains("leaderServes=no is ignored"),
        "{}",
        alone.log()
    );
}

/// Limits as on a server: past `maxClientCnxns` from one address a connection is closed
/// (and counted); a frame over `jute.maxbuffer` closes that client's connection only.
#[test]
fn the_proxy_keeps_a_servers_limits() {
    let gk = Geokeeper::start("maxClientCnxns=0\n");
    let p = Proxy::start_with(
        "B",
        &[upstream(gk.addr, "B", 1)],
        "",
        "max_client_cnxns = 2\njute_maxbuffer = 4096\n",
    );
    p.wait_healthy(1, WAIT);
    let mut a = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("first");
    let mut b = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("second");
    assert!(
        RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).is_err(),
        "a third connection from one address"
    );
    // A request frame over jute.maxbuffer: that connection is closed.
    let xid = b.take_xid();
    b.send_raw(xid, 4, &vec![0u8; 5_000]).expect("send");
    assert!(
        b.closed_within(Duration::from_secs(5)).expect("no answer"),
        "still open"
    );
    // (mntr is a connection from this address too: it fits once b's is counted out.)
    let t = std::time::Instant::now();
    let refused = loop {
        match support::java_zk::four_letter_within(p.addr, "mntr", Duration::from_secs(2)) {
            Ok(m) if !m.is_empty() => break m,
            _ if t.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("mntr: {other:?}"),
        }
    };
    assert!(
        refused.contains("zk_proxy_connections_refused\t1\n"),
        "{refused}"
    );
    assert!(
        p.log().contains("Too many connections from /"),
        "{}",
        p.log()
    );
    // The other session is untouched, and a new one fits again.
    let (err, _) = support::relay::create(&mut a, "/still-here", b"x", 0);
    assert_eq!(err, 0);
    let c = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("room again");
    drop(c);
}
