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
use support::relay::{start_observer, wait_synced, Certs, Node, PubKind, Publisher};

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

/// Whatever is not connections from one address: behind a proxy every session comes from
/// the proxy's, so the servers take more than `maxClientCnxns`' default 60 from one.
const LIMITS: &str = "maxClientCnxns=0\n";

/// A geokeeper leader in room A and observers following it directly, each named with its
/// node id and room; returned once every observer is in sync. The certificates are the
/// first element: keep them while the servers run.
fn rooms<const N: usize>(observers: [(&str, u64, &str); N]) -> (Certs, Publisher, [Node; N]) {
    let mut names = vec![("leader", 1, "A")];
    names.extend(observers);
    let certs = Certs::new(&names);
    let subscribers: Vec<String> = observers
        .iter()
        .map(|(_, id, room)| format!("{id}@{room}"))
        .collect();
    let leader = Publisher::start(
        PubKind::Leader,
        &certs,
        "leader",
        &subscribers.join(","),
        LIMITS,
    );
    let nodes = observers
        .map(|(name, id, _)| start_observer(&certs, name, id, &[leader.relay()], None, LIMITS));
    for o in &nodes {
        wait_synced(o, WAIT);
    }
    (certs, leader, nodes)
}

#[test]
fn sessions_spread_by_weight_in_the_own_room_and_move_rooms_only_when_it_has_none() {
    // A leader in room A; room B: observers weighted 10 and 5; room C: one observer.
    // The proxy is B's, and prefers C to A. (Behind a proxy every session comes from
    // the proxy's address: the servers take more than 60 connections from one address.)
    let (_certs, leader, [mut b1, mut b2, c1]) =
        rooms([("b1", 11, "B"), ("b2", 12, "B"), ("c1", 21, "C")]);
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

/// A client that closes its session (closeSession) gets the answer, then the end of its
/// connection, as from a server. The upstream ending the connection after the answer is how
/// ZooKeeper ends a closed session: the proxy neither blames the upstream (which would send
/// the next sessions to another upstream, or another room) nor moves the session.
#[test]
fn a_closed_session_ends_its_connection_and_its_upstream_stays_healthy() {
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;

    let gk = Geokeeper::start("4lw.commands.whitelist=*\n");
    let p = Proxy::start("B", &[upstream(gk.addr, "B", 1)], "");
    p.wait_healthy(1, WAIT);
    for _ in 0..3 {
        let mut z = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session");
        let e = z.call(OpCode::CloseSession, &Request::CloseSession);
        assert_eq!(e.reply.map(|f| f.header.err), Ok(0), "closeSession");
        assert_eq!(
            z.closed_within(Duration::from_secs(5)),
            Ok(true),
            "the connection ends after closeSession"
        );
        let m = p.mntr();
        assert_eq!(m["zk_proxy_upstream_0_state"], "serving", "{m:?}");
    }
    let m = p.mntr();
    assert_eq!(m["zk_proxy_sessions_reattached"], "0", "{m:?}");
    assert_eq!(m["zk_proxy_sessions_reattach_failed"], "0", "{m:?}");
    let log = p.log();
    assert!(!log.contains("failed a session"), "{log}");
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

/// A session outlives its replica: the observer behind it is killed, and the proxy moves
/// the session to the room's other observer on the same client connection — same session
/// id (its ephemeral lives on), its watches restored relative to its last zxid so that the
/// changes made meanwhile fire, and its next read answered.
#[test]
fn a_session_outlives_its_replica() {
    use geokeeper_core::proto::records::{ExistsRequest, GetChildrenRequest, GetDataRequest};
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;
    use support::relay::{create, session, Node};

    let (_certs, leader, [mut b1, mut b2]) = rooms([("b1", 11, "B"), ("b2", 12, "B")]);
    let p = Proxy::start(
        "B",
        &[upstream(b1.addr(), "B", 1), upstream(b2.addr(), "B", 1)],
        "",
    );
    p.wait_healthy(2, WAIT);
    let mut lz = session(leader.leader_addr());
    assert_eq!(create(&mut lz, "/w", b"v1", 0).0, 0);

    let mut z = RawZk::connect(p.addr, 0, &[0; 16], 0, 10_000).expect("session");
    let id = z.session_id();
    fn ok(e: &support::rawzk::Exchange) -> Result<i32, support::rawzk::Lost> {
        e.reply.as_ref().map(|f| f.header.err).map_err(Clone::clone)
    }
    let get = Request::GetData(GetDataRequest {
        path: "/w".into(),
        watch: true,
    });
    assert_eq!(ok(&z.call(OpCode::GetData, &get)), Ok(0));
    let exists = Request::Exists(ExistsRequest {
        path: "/new".into(),
        watch: true,
    });
    assert_eq!(ok(&z.call(OpCode::Exists, &exists)), Ok(-101));
    let children = Request::GetChildren(GetChildrenRequest {
        path: "/w".into(),
        watch: true,
    });
    assert_eq!(ok(&z.call(OpCode::GetChildren, &children)), Ok(0));
    assert_eq!(
        create(&mut z, "/eph", b"", 1).0,
        0,
        "an ephemeral of the session"
    );

    // Kill the observer the session is on.
    let cons = four_letter(p.addr, "cons");
    let on_b1 = cons.contains(&format!("upstream={}", b1.addr()));
    let (victim, survivor): (&mut Node, &Node) = if on_b1 {
        (&mut b1, &b2)
    } else {
        (&mut b2, &b1)
    };
    victim.gk.kill();
    // Changes while the session moves.
    assert_eq!(support::relay::set_data(&mut lz, "/w", b"v2").0, 0);
    assert_eq!(create(&mut lz, "/new", b"", 0).0, 0);
    assert_eq!(create(&mut lz, "/w/d", b"", 0).0, 0);

    // The three events arrive on the same connection, then reads are answered.
    let mut seen = std::collections::BTreeSet::new();
    let t = std::time::Instant::now();
    while seen.len() < 3 {
        assert!(t.elapsed() < WAIT, "events so far {seen:?}\n{}", p.log());
        match z.read_frame() {
            Ok(f) if f.header.xid == -1 => {
                let mut r = geokeeper_core::proto::Reader::new(&f.body);
                let e = <geokeeper_core::proto::records::WatcherEvent as geokeeper_core::proto::Record>::decode(&mut r)
                    .expect("event");
                seen.insert((e.r#type, e.path));
            }
            Ok(f) => panic!("a stray frame {f:?}"),
            Err(support::rawzk::Lost::Timeout) => {}
            Err(e) => panic!("the client's connection was lost: {e:?}\n{}", p.log()),
        }
    }
    assert_eq!(
        seen,
        [
            (1, "/new".to_string()),
            (3, "/w".to_string()),
            (4, "/w".to_string())
        ]
        .into_iter()
        .collect()
    );
    let plain = Request::GetData(GetDataRequest {
        path: "/w".into(),
        watch: false,
    });
    let e = z.call(OpCode::GetData, &plain);
    assert_eq!(ok(&e), Ok(0), "{e:?}");
    assert_eq!(z.session_id(), id);
    // The session lives: its ephemeral is still there, owned by it, at the leader.
    let (err, _, stat) = support::relay::get(&mut lz, "/eph");
    assert_eq!(err, 0);
    assert_eq!(stat.expect("stat").ephemeral_owner, id);
    let cons = four_letter(p.addr, "cons");
    assert!(
        cons.contains(&format!("upstream={}", survivor.addr())),
        "{cons}"
    );
    let m = p.mntr();
    assert_eq!(m["zk_proxy_sessions_reattached"], "1", "{m:?}");
    assert_eq!(m["zk_proxy_sessions_reattach_failed"], "0", "{m:?}");
}

/// Sessions placed in another room while their own had no healthy upstream go back home
/// once it has one again for `returnHomeMs`, paced, each at a moment it has nothing in
/// flight, without the client seeing anything: same connection, same session, and a
/// change made while they move fires each one-shot watch exactly once. A session holding
/// a persistent watch stays (its events could not be carried over without a gap).
#[test]
fn sessions_placed_in_another_room_go_home_once_it_is_back() {
    use geokeeper_core::proto::records::{AddWatchRequest, GetDataRequest, SyncRequest};
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;
    use support::relay::{create, session, set_data};

    const SESSIONS: usize = 20;
    let (_certs, leader, [mut b1, c1]) = rooms([("b1", 11, "B"), ("c1", 21, "C")]);
    let mut lz = session(leader.leader_addr());
    assert_eq!(create(&mut lz, "/w", b"v1", 0).0, 0);
    // 20 sessions at 10 a second: their moves take about 2 s.
    let p = Proxy::start(
        "B",
        &[upstream(b1.addr(), "B", 1), upstream(c1.addr(), "C", 1)],
        "return_home_ms = 1000\nreattach_per_second = 10\n",
    );
    p.wait_healthy(2, WAIT);
    b1.gk.kill();
    p.wait_healthy(1, WAIT);

    let ok =
        |e: &support::rawzk::Exchange| e.reply.as_ref().map(|f| f.header.err).map_err(Clone::clone);
    let watch = Request::GetData(GetDataRequest {
        path: "/w".into(),
        watch: true,
    });
    let mut sessions: Vec<RawZk> = (0..SESSIONS)
        .map(|_| {
            let mut z = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session");
            assert_eq!(ok(&z.call(OpCode::GetData, &watch)), Ok(0));
            z
        })
        .collect();
    let mut persistent = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session");
    let add = Request::AddWatch(AddWatchRequest {
        path: "/w".into(),
        mode: 0,
    });
    assert_eq!(ok(&persistent.call(OpCode::AddWatch, &add)), Ok(0));
    let m = p.mntr();
    assert_eq!(
        m["zk_proxy_upstream_1_sessions"],
        (SESSIONS + 1).to_string(),
        "all in room C: {m:?}"
    );

    // B is back: after a second of health the sessions move, ten a second; /w changes
    // while they do.
    b1.gk.restart();
    wait_synced(&b1, WAIT);
    let moved =
        |p: &Proxy| -> usize { p.mntr()["zk_proxy_sessions_moved_home"].parse().expect("n") };
    let t = std::time::Instant::now();
    while moved(&p) == 0 {
        assert!(
            t.elapsed() < WAIT,
            "none moved home: {:?}\n{}",
            p.mntr(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(set_data(&mut lz, "/w", b"v2").0, 0);
    let during = moved(&p);
    while moved(&p) < SESSIONS {
        assert!(
            t.elapsed() < WAIT,
            "{} moved home: {:?}\n{}",
            moved(&p),
            p.mntr(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{during} of {SESSIONS} had moved home when /w changed");
    // Past every pacing slot (a tenth of a second each): the persistent watch's session
    // would have had its turn by now.
    std::thread::sleep(Duration::from_secs(1));

    // Each session: one NodeDataChanged for /w, on its own connection, then its reads.
    let sync = Request::Sync(SyncRequest { path: "/w".into() });
    let read = Request::GetData(GetDataRequest {
        path: "/w".into(),
        watch: false,
    });
    for z in sessions.iter_mut() {
        let id = z.session_id();
        let s = z.call(OpCode::Sync, &sync);
        assert_eq!(ok(&s), Ok(0), "session {id:#x}: {s:?}");
        let r = z.call(OpCode::GetData, &read);
        assert_eq!(ok(&r), Ok(0), "session {id:#x}: {r:?}");
        let events: Vec<(i32, String)> = s
            .notifications
            .iter()
            .chain(&r.notifications)
            .map(|n| (n.event.r#type, n.event.path.clone()))
            .collect();
        assert_eq!(events, [(3, "/w".to_string())], "session {id:#x}");
        assert!(
            s.strays.is_empty() && r.strays.is_empty(),
            "session {id:#x}: {s:?} {r:?}"
        );
        assert_eq!(z.session_id(), id);
    }
    // The persistent watch's session stayed in C and got its event there.
    let s = persistent.call(OpCode::Sync, &sync);
    assert_eq!(ok(&s), Ok(0));
    let events: Vec<(i32, String)> = s
        .notifications
        .iter()
        .map(|n| (n.event.r#type, n.event.path.clone()))
        .collect();
    assert_eq!(events, [(3, "/w".to_string())]);
    let m = p.mntr();
    assert_eq!(
        (
            m["zk_proxy_upstream_0_sessions"].as_str(),
            m["zk_proxy_upstream_1_sessions"].as_str(),
            m["zk_proxy_sessions_moved_home"].as_str(),
            m["zk_proxy_sessions_reattached"].as_str(),
            m["zk_proxy_sessions_reattach_failed"].as_str(),
        ),
        (
            SESSIONS.to_string().as_str(),
            "1",
            SESSIONS.to_string().as_str(),
            "0",
            "0"
        ),
        "{m:?}"
    );
}

/// A replica with 2,000 sessions dies: every session moves to the room's other replica on
/// its own client connection, paced at `reattachPerSecond`, none expired, none
/// disconnected, each answering reads again with its own session id.
#[test]
fn two_thousand_sessions_of_a_dead_replica_move_paced_and_none_is_lost() {
    use geokeeper_core::proto::records::GetDataRequest;
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;

    const SESSIONS: usize = 2_000;
    let (_certs, _leader, [mut b1, b2]) = rooms([("b1", 11, "B"), ("b2", 12, "B")]);
    // Weights of a million to one: all 2,000 sessions go to b1.
    let p = Proxy::start(
        "B",
        &[
            upstream(b1.addr(), "B", 1_000_000),
            upstream(b2.addr(), "B", 1),
        ],
        "reattach_per_second = 500\n",
    );
    p.wait_healthy(2, WAIT);
    let read = Request::GetData(GetDataRequest {
        path: "/".into(),
        watch: false,
    });
    let mut sessions: Vec<RawZk> = (0..SESSIONS)
        .map(|_| RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session"))
        .collect();
    assert!(sessions.iter().all(|z| z.response.time_out > 0));
    let ids: Vec<i64> = sessions.iter().map(RawZk::session_id).collect();
    assert_eq!(
        p.mntr()["zk_proxy_upstream_0_sessions"],
        SESSIONS.to_string()
    );

    // b1 dies.
    let killed = std::time::Instant::now();
    b1.gk.kill();
    let moved = loop {
        let m = p.mntr();
        let n: usize = m["zk_proxy_sessions_reattached"].parse().expect("n");
        assert_eq!(m["zk_proxy_sessions_reattach_failed"], "0", "{m:?}");
        if n == SESSIONS {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < WAIT,
            "{n} of {SESSIONS} re-attached: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Paced: 2,000 at 500 a second take at least ~4 s.
    assert!(
        moved >= Duration::from_millis(3_500),
        "all moved in {moved:?}"
    );
    for (z, id) in sessions.iter_mut().zip(&ids) {
        let e = z.call(OpCode::GetData, &read);
        assert_eq!(e.reply.map(|f| f.header.err), Ok(0), "session {id:#x}");
        assert_eq!(z.session_id(), *id);
    }
    let m = p.mntr();
    assert_eq!(
        m["zk_proxy_upstream_1_sessions"],
        SESSIONS.to_string(),
        "{m:?}"
    );
    eprintln!("{SESSIONS} sessions re-attached in {moved:?}, none lost");
}

/// Writes in flight when the replica dies: each is answered exactly once, in its turn —
/// with its real result if the reply came, ConnectionLoss if not — and none is sent
/// again (a write whose fate is unknown must not happen twice). Reads in flight are sent
/// again to the next replica and answered after the writes before them.
#[test]
fn writes_in_flight_when_the_replica_dies_are_answered_once_and_never_sent_twice() {
    use geokeeper_core::proto::records::{CreateRequest, GetChildrenRequest, GetDataRequest};
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;
    use support::relay::{create, get, session};
    use support::wan::{LinkSpec, UdpWan};

    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B"), ("b2", 12, "B")]);
    let leader = Publisher::start(PubKind::Leader, &certs, "leader", "11@B,12@B", LIMITS);
    // b1 reaches the leader over a 25 ms one-way link: its writes are in flight for 50 ms.
    let link = UdpWan::start(
        leader.relay(),
        LinkSpec {
            delay: Duration::from_millis(25),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: 0,
        },
        41,
    );
    let mut b1 = start_observer(&certs, "b1", 11, &[link.addr()], None, LIMITS);
    let b2 = start_observer(&certs, "b2", 12, &[leader.relay()], None, LIMITS);
    wait_synced(&b1, WAIT);
    wait_synced(&b2, WAIT);
    let mut lz = session(leader.leader_addr());
    assert_eq!(create(&mut lz, "/w", b"", 0).0, 0);
    // b1 first: the smooth round-robin's first pick is the heaviest.
    let p = Proxy::start(
        "B",
        &[upstream(b1.addr(), "B", 10), upstream(b2.addr(), "B", 1)],
        "",
    );
    p.wait_healthy(2, WAIT);
    let mut z = RawZk::connect(p.addr, 0, &[0; 16], 0, 20_000).expect("session");
    let id = z.session_id();
    assert!(
        four_letter(p.addr, "cons").contains(&format!("upstream={}", b1.addr())),
        "not on b1: {}",
        four_letter(p.addr, "cons")
    );
    // /w is there on b1 before anything is sent (a read answered in the room).
    let t = std::time::Instant::now();
    while get(&mut z, "/w").0 != 0 {
        assert!(t.elapsed() < WAIT, "/w never reached b1");
    }

    const WRITES: usize = 40;
    let mut sent = Vec::new();
    for i in 0..WRITES {
        let xid = z.take_xid();
        let req = Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: "/w/n-".into(),
                data: Some(format!("{i}").into_bytes().into()),
                acl: geokeeper_core::acl::open_acl_unsafe(),
                flags: 2, // sequential: a write sent twice would make two nodes
            },
        };
        z.send(xid, OpCode::Create, &req).expect("send create");
        sent.push((xid, Some(i)));
    }
    let xid = z.take_xid();
    z.send(
        xid,
        OpCode::GetData,
        &Request::GetData(GetDataRequest {
            path: "/w".into(),
            watch: false,
        }),
    )
    .expect("send read");
    sent.push((xid, None));
    // The replies cannot be back yet (a round trip is 50 ms): kill b1 under them.
    std::thread::sleep(Duration::from_millis(10));
    b1.gk.kill();

    let mut created = BTreeMap::new();
    let mut lost = 0;
    for (xid, write) in &sent {
        let f = loop {
            match z.read_frame() {
                Ok(f) if f.header.xid == -1 => continue,
                Ok(f) => break f,
                Err(support::rawzk::Lost::Timeout) => continue,
                Err(e) => panic!("the client's connection was lost: {e:?}\n{}", p.log()),
            }
        };
        assert_eq!(f.header.xid, *xid, "answers out of order");
        match (write, f.header.err) {
            (Some(i), 0) => {
                let body = support::rawzk::decode_body(OpCode::Create as i32, &f.body);
                created.insert(*i, format!("{body:?}"));
            }
            (Some(_), -4) => lost += 1,
            (None, 0) => {}
            (w, err) => panic!("{w:?}: error {err}"),
        }
    }
    assert!(lost > 0, "no write was in flight when b1 died");
    assert_eq!(z.session_id(), id);

    // On b2 now, the same session: every node is there once, the acknowledged ones among
    // them; each write in flight happened at most once.
    assert!(
        four_letter(p.addr, "cons").contains(&format!("upstream={}", b2.addr())),
        "{}",
        four_letter(p.addr, "cons")
    );
    assert_eq!(support::relay::sync(&mut z, "/w"), 0);
    let x = z.call(
        OpCode::GetChildren,
        &Request::GetChildren(GetChildrenRequest {
            path: "/w".into(),
            watch: false,
        }),
    );
    let f = x.reply.expect("children");
    assert_eq!(f.header.err, 0);
    let names = match support::rawzk::decode_body(OpCode::GetChildren as i32, &f.body) {
        support::rawzk::Body::GetChildren(c) => c.children,
        other => panic!("{other:?}"),
    };
    let mut datas = std::collections::BTreeSet::new();
    for name in &names {
        let (err, data, _) = get(&mut z, &format!("/w/{name}"));
        assert_eq!(err, 0);
        let i: usize = String::from_utf8(data)
            .expect("utf8")
            .parse()
            .expect("index");
        assert!(datas.insert(i), "write {i} happened twice: {names:?}");
    }
    for i in created.keys() {
        assert!(datas.contains(i), "acknowledged write {i} is missing");
    }
    assert!(names.len() <= WRITES);
    eprintln!(
        "{} writes in flight: {} acknowledged, {lost} ConnectionLoss, {} happened",
        WRITES,
        created.len(),
        names.len()
    );
}

/// A stand-in for a server that answers garbage: to `srvr` with `srvr` (it looks healthy)
/// or with junk, and to a session's handshake with a frame that is no ConnectResponse.
fn garbage_server(srvr_ok: bool) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut head = [0u8; 4];
            if s.read_exact(&mut head).is_err() {
                continue;
            }
            let answer: Vec<u8> = if &head == b"srvr" && srvr_ok {
                b"Zookeeper version: 3.8.4-fake, built on 01/01/2026 00:00 GMT\nLatency min/avg/max: 0/0.0/0\nReceived: 0\nSent: 0\nConnections: 0\nOutstanding: 0\nZxid: 0x7fffffff\nMode: standalone\nNode count: 5\n".to_vec()
            } else if &head == b"srvr" {
                b"\x00\x01garbage\xff\xfe".to_vec()
            } else {
                // A frame of 8 bytes: too short for a ConnectResponse.
                vec![0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]
            };
            let _ = s.write_all(&answer);
        }
    });
    addr
}

/// An upstream that answers garbage is not trusted: one that fails its probes never gets
/// a session; one that passes them but answers a session's handshake with garbage is
/// passed over for the next upstream within the same connect (the client never notices)
/// and marked down until its next probe.
#[test]
fn an_upstream_that_answers_garbage_is_not_trusted() {
    let gk = Geokeeper::start("maxClientCnxns=0\n4lw.commands.whitelist=*\n");
    let junk = garbage_server(false);
    let liar = garbage_server(true);
    let p = Proxy::start(
        "B",
        &[
            upstream(junk, "B", 100),
            upstream(liar, "B", 100),
            upstream(gk.addr, "B", 1),
        ],
        "",
    );
    p.wait_healthy(2, WAIT);
    let m = p.mntr();
    assert_eq!(m["zk_proxy_upstream_0_state"], "down", "{m:?}");
    for _ in 0..20 {
        let z = RawZk::connect(p.addr, 0, &[0; 16], 0, 30_000).expect("session");
        assert!(z.response.time_out > 0);
        let id = z.session_id();
        assert!(
            four_letter(gk.addr, "cons").contains(&format!("sid={id:#x}")),
            "session {id:#x} is not on the real server"
        );
        drop(z);
    }
    let m = p.mntr();
    assert_eq!(m["zk_proxy_upstream_0_placed"], "0", "{m:?}");
    assert!(
        p.log().contains("upstream failed a session"),
        "the liar was never marked: {}",
        p.log()
    );
}

/// `globalOutstandingLimit` across the proxy: however many requests its clients pipeline,
/// no more than the limit (and one frame per connection being read) are in flight at
/// once, and every request is answered, in order.
#[test]
fn the_proxy_keeps_global_outstanding_limit() {
    use geokeeper_core::proto::records::GetDataRequest;
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;
    use support::tcp_cut::TcpCut;

    let gk = Geokeeper::start("maxClientCnxns=0\n");
    // 20 ms each way to the server: requests stay in flight long enough to count.
    let slow = TcpCut::start_delayed(gk.addr, Duration::from_millis(20));
    const LIMIT: usize = 8;
    const CLIENTS: usize = 4;
    const EACH: usize = 60;
    let p = Proxy::start_with(
        "B",
        &[upstream(slow.addr, "B", 1)],
        "",
        &format!("max_client_cnxns = 0\nglobal_outstanding_limit = {LIMIT}\n"),
    );
    p.wait_healthy(1, WAIT);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let addr = p.addr;
        std::thread::spawn(move || {
            let mut max = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = support::java_zk::four_letter_within(addr, "mntr", WAIT) {
                    if let Some(v) = m
                        .lines()
                        .find_map(|l| l.strip_prefix("zk_outstanding_requests\t"))
                    {
                        max = max.max(v.trim().parse().unwrap_or(0));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            max
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = p.addr;
            std::thread::spawn(move || {
                let mut z = RawZk::connect(addr, 0, &[0; 16], 0, 30_000).expect("session");
                let get = Request::GetData(GetDataRequest {
                    path: "/zookeeper".into(),
                    watch: false,
                });
                let xids: Vec<i32> = (0..EACH)
                    .map(|_| {
                        let xid = z.take_xid();
                        z.send(xid, OpCode::GetData, &get).expect("send");
                        xid
                    })
                    .collect();
                for xid in xids {
                    let f = z.await_reply(xid).reply.expect("reply");
                    assert_eq!(f.header.err, 0);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.join().expect("sampler");
    assert!(max > 0, "nothing was ever seen in flight");
    assert!(
        max <= LIMIT + CLIENTS,
        "{max} requests in flight through a proxy limited to {LIMIT}"
    );
    eprintln!("at most {max} in flight (limit {LIMIT}, {CLIENTS} clients x {EACH} pipelined)");
}

/// A replica that hangs (here: SIGSTOP) keeps its connections open and answers nothing;
/// the proxy's probes find it down twice in a row and its sessions move, on the same
/// client connections, with their ids.
#[test]
fn the_sessions_of_a_hung_replica_move() {
    use support::relay::{get, session};

    let (_certs, _leader, [b1, b2]) = rooms([("b1", 11, "B"), ("b2", 12, "B")]);
    let p = Proxy::start(
        "B",
        &[upstream(b1.addr(), "B", 1), upstream(b2.addr(), "B", 1)],
        "",
    );
    p.wait_healthy(2, WAIT);
    let mut zs: Vec<RawZk> = (0..10)
        .map(|_| RawZk::connect(p.addr, 0, &[0; 16], 0, 20_000).expect("session"))
        .collect();
    let cons = four_letter(p.addr, "cons");
    let on_b1 = cons.matches(&format!("upstream={}", b1.addr())).count();
    assert!(on_b1 > 0, "{cons}");
    let pid = b1.gk.pid().expect("b1 runs");
    // SAFETY: kill(2) on a child process of this test.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let t = std::time::Instant::now();
    for z in zs.iter_mut() {
        let id = z.session_id();
        loop {
            let (err, _, _) = get(z, "/zookeeper");
            if err == 0 {
                break;
            }
            assert!(t.elapsed() < WAIT, "a read never came back: {err}");
        }
        assert_eq!(z.session_id(), id);
    }
    let took = t.elapsed();
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let cons = four_letter(p.addr, "cons");
    assert_eq!(
        cons.matches(&format!("upstream={}", b1.addr())).count(),
        0,
        "{cons}"
    );
    assert!(p.log().contains("moving its sessions"), "{}", p.log());
    eprintln!("{on_b1} sessions of a hung replica served again within {took:?}");
    drop(session(b2.addr()));
}

/// Health and lag: an observer that falls behind (its WAN link cut while the leader takes
/// writes) gets no new session once it has been behind the newest zxid the proxy saw for
/// longer than `maxLagMs`, while it still says it serves; once caught up it gets them
/// again.
#[test]
fn an_upstream_lagging_past_max_lag_gets_no_new_sessions() {
    use support::relay::{create, session, set_data, wait_zxid};
    use support::wan::{LinkSpec, UdpWan};

    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B"), ("b2", 12, "B")]);
    let leader = Publisher::start(PubKind::Leader, &certs, "leader", "11@B,12@B", LIMITS);
    let link = UdpWan::start(
        leader.relay(),
        LinkSpec {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: 0,
        },
        43,
    );
    let b1 = start_observer(&certs, "b1", 11, &[link.addr()], None, LIMITS);
    let b2 = start_observer(&certs, "b2", 12, &[leader.relay()], None, LIMITS);
    wait_synced(&b1, WAIT);
    wait_synced(&b2, WAIT);
    let p = Proxy::start(
        "B",
        &[
            upstream(leader.leader_addr(), "A", 1),
            upstream(b1.addr(), "B", 100),
            upstream(b2.addr(), "B", 1),
        ],
        "max_lag_ms = 300\n",
    );
    p.wait_healthy(3, WAIT);
    let mut lz = session(leader.leader_addr());
    assert_eq!(create(&mut lz, "/lag", b"0", 0).0, 0);

    // b1 cut off while the leader writes on.
    link.cut_for(Duration::from_secs(4));
    let t = std::time::Instant::now();
    let lagging = loop {
        assert_eq!(set_data(&mut lz, "/lag", b"x").0, 0);
        let m = p.mntr();
        let lag: u64 = m["zk_proxy_upstream_1_lag_ms"].parse().expect("lag");
        if m["zk_proxy_upstream_1_state"] == "serving" && lag > 300 {
            break m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "b1 never lagged: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let got = place(&p, 20);
    assert_eq!(
        (got[&1], got[&2]),
        (0, 20),
        "sessions on a lagging upstream: {got:?}; {lagging:?}"
    );

    // Caught up: it takes sessions again (weight 100 against 1).
    link.heal();
    wait_zxid(&b1, leader.zxid(), WAIT);
    let t = std::time::Instant::now();
    loop {
        let m = p.mntr();
        if m["zk_proxy_upstream_1_state"] == "serving" && m["zk_proxy_upstream_1_lag_ms"] == "0" {
            break;
        }
        assert!(t.elapsed() < WAIT, "b1 never caught up: {m:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = place(&p, 20);
    assert!(got[&1] >= 19, "{got:?}");
}
