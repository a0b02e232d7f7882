//! The QUIC relay end to end, with real processes: a standalone geokeeper publishing its
//! committed stream, observers in a remote room following it over QUIC with mutual TLS,
//! and a room relay re-publishing to a sibling. Clients use the observers as ZooKeeper
//! servers: reads from the observer's tree, writes forwarded and answered when their
//! transaction comes back. Each scenario runs with both kinds of publisher: a standalone
//! geokeeper leader, and a gateway following a 3-participant Apache ZooKeeper 3.8
//! ensemble, whose Java leader the writes reach and whose tree the observers end with.

mod support;

use std::time::Duration;

use support::gateway::mntr;
use support::relay::*;

const SYNC: Duration = Duration::from_secs(30);

with_both_publishers!(
    a_remote_observer_serves_reads_forwards_writes_and_resumes_by_diff,
    an_observer_too_far_behind_catches_up_by_snapshot_and_ends_identical,
    an_observer_moves_to_its_next_upstream_when_its_relay_dies,
    a_stalled_subscriber_is_dropped_without_slowing_the_leader_or_its_sibling,
    sessions_are_global_kept_alive_by_batched_touches_and_move_with_their_watches,
    local_sessions_of_a_remote_observer_never_cross_the_wan_until_they_need_to,
);

fn a_remote_observer_serves_reads_forwards_writes_and_resumes_by_diff(kind: PubKind) {
    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B"), ("b2", 12, "B")]);
    let leader = Publisher::start(kind, &certs, "leader", "11@B,12@B", "");
    let mut lz = leader.session();
    assert_eq!(create(&mut lz, "/before", b"x", 0).0, 0);

    // b1 follows the leader and re-publishes to b2 (one WAN stream for the room).
    let b1 = start_observer(&certs, "b1", 11, &[leader.relay()], Some("12@B"), "");
    let m = wait_synced(&b1, SYNC);
    assert_eq!(m["zk_server_state"], "observer", "{m:?}");
    let b2 = start_observer(&certs, "b2", 12, &[b1.relay.expect("relay")], None, "");
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
    // b2's mntr counts both directions of its stream.
    let m2 = mntr(b2.addr());
    let count = |k: &str| -> u64 { m2[k].parse().expect("a count") };
    assert!(count("zk_relay_bytes_sent_upstream") > 0, "{m2:?}");
    assert!(count("zk_relay_bytes_in") > 0, "{m2:?}");
    // Sessions are global: the observer's session is the leader's.
    let sid = z2.session_id();
    assert_eq!(sid >> 56, 12, "b2 picks its ids with its server id");

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
    wait_zxid(&b2, leader.zxid(), SYNC);
    assert_eq!(get(&mut z2, "/eph").0, 0);
    z1.disconnect();

    // The publisher lists its subscriber; b1 its upstream and relays to b2.
    let lm = mntr(leader.node.addr());
    assert_eq!(lm["zk_relay_subscribers"], "1", "{lm:?}");
    assert!(
        lm.contains_key("zk_relay_subscriber_11_B_lag_txns"),
        "{lm:?}"
    );
    let m1 = mntr(b1.addr());
    assert_eq!(m1["zk_relay_subscribers"], "1", "{m1:?}");
    assert_eq!(m1["zk_relay_upstream"], leader.relay().to_string());

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
    wait_zxid(&b2, leader.zxid(), SYNC);
    assert_eq!(dump(b2.addr()), leader.tree(), "b2's tree is the leader's");
    assert_eq!(dump(b1.addr()), leader.tree(), "b1's tree is the leader's");
}

fn an_observer_too_far_behind_catches_up_by_snapshot_and_ends_identical(kind: PubKind) {
    let certs = Certs::new(&[("leader", 1, "A"), ("c1", 21, "C")]);
    // Few transactions in memory, a low diff limit and frequent snapshots: a long
    // absence is caught up by a snapshot.
    let leader = Publisher::start(
        kind,
        &certs,
        "leader",
        "21@C",
        "relay.retainTxns=10\nrelay.diffMaxTxns=50\nsnapCount=100\n",
    );
    let mut lz = leader.session();
    for i in 0..30 {
        assert_eq!(create(&mut lz, &format!("/a{i}"), b"1", 0).0, 0);
    }
    let mut c1 = start_observer(&certs, "c1", 21, &[leader.relay()], None, "");
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
    wait_zxid(&c1, leader.zxid(), SYNC);
    assert_eq!(dump(c1.addr()), leader.tree(), "every znode and stat");
    // And it keeps following.
    let (_, z) = create(&mut lz, "/after", b"", 0);
    wait_zxid(&c1, z, SYNC);
    // A restart after the snapshot resumes by diff from its own data directory.
    c1.gk.restart();
    let m = wait_synced(&c1, SYNC);
    assert_eq!(m["zk_observer_sync_type"], "DIFF", "{m:?}");
    assert_eq!(dump(c1.addr()), leader.tree());
}

fn an_observer_moves_to_its_next_upstream_when_its_relay_dies(kind: PubKind) {
    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B"), ("b2", 12, "B")]);
    let leader = Publisher::start(kind, &certs, "leader", "11@B,12@B", "");
    let mut b1 = start_observer(&certs, "b1", 11, &[leader.relay()], Some("12@B"), "");
    wait_synced(&b1, SYNC);
    // b2 prefers its room's relay, then the publisher itself, by name (resolved at
    // each attempt).
    let by_name = format!("localhost:{}", leader.relay().port());
    let b2 = start_observer_of(
        &certs,
        "b2",
        12,
        &[b1.relay.expect("relay").to_string(), by_name.clone()],
        None,
        "",
    );
    wait_synced(&b2, SYNC);
    assert_eq!(
        mntr(b2.addr())["zk_relay_upstream"],
        b1.relay.expect("relay").to_string()
    );
    let mut z2 = session(b2.addr());
    assert_eq!(create(&mut z2, "/via-b1", b"", 0).0, 0);
    let mut lz = leader.session();

    b1.gk.kill();
    for i in 0..10 {
        assert_eq!(create(&mut lz, &format!("/b1-down-{i}"), b"", 0).0, 0);
    }
    // b2 lost its upstream: it finds the publisher and resumes from its last zxid.
    let t = std::time::Instant::now();
    loop {
        let m = mntr(b2.addr());
        if m["zk_relay_upstream"] == by_name && m["zk_observer_synced"] == "1" {
            assert_eq!(m["zk_observer_sync_type"], "DIFF", "{m:?}");
            break;
        }
        assert!(
            t.elapsed() < SYNC,
            "b2 did not move: {m:?}\n{}",
            b2.gk.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_zxid(&b2, leader.zxid(), SYNC);
    // Its clients write through the new upstream.
    let mut z2 = session(b2.addr());
    assert_eq!(create(&mut z2, "/via-leader", b"", 0).0, 0);
    assert_eq!(dump(b2.addr()), leader.tree());
    drop(z2);
    b1.gk.restart();
    wait_synced(&b1, SYNC);
    wait_zxid(&b1, leader.zxid(), SYNC);
    assert_eq!(dump(b1.addr()), leader.tree());
}

fn a_stalled_subscriber_is_dropped_without_slowing_the_leader_or_its_sibling(kind: PubKind) {
    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B"), ("c1", 21, "C")]);
    // A small per-subscriber bound.
    let leader = Publisher::start(
        kind,
        &certs,
        "leader",
        "11@B,21@C",
        "relay.bufferBytes=262144\n",
    );
    let b1 = start_observer(&certs, "b1", 11, &[leader.relay()], None, "");
    let link = support::wan::UdpWan::start(
        leader.relay(),
        support::wan::LinkSpec {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: 0,
        },
        21,
    );
    let c1 = start_observer(&certs, "c1", 21, &[link.addr()], None, "");
    wait_synced(&b1, SYNC);
    wait_synced(&c1, SYNC);
    // c1's link stalls (nothing acknowledged, nothing read) while the leader writes
    // megabytes: its queue passes the bound and it is let go; b1 keeps up.
    link.cut();
    let mut lz = leader.session();
    let t = std::time::Instant::now();
    let mut dropped = false;
    for i in 0..600 {
        // Incompressible: the stream must really carry megabytes.
        let data: Vec<u8> = (0..8_000).map(|_| rand::random::<u8>()).collect();
        assert_eq!(create(&mut lz, &format!("/bulk-{i}"), &data, 0).0, 0);
        if !dropped && i % 50 == 49 {
            dropped = mntr(leader.node.addr())["zk_relay_subscribers_dropped_slow"] != "0";
        }
    }
    let took = t.elapsed();
    let lm = mntr(leader.node.addr());
    assert_ne!(lm["zk_relay_subscribers_dropped_slow"], "0", "{lm:?}");
    wait_zxid(&b1, leader.zxid(), Duration::from_secs(5));
    assert_eq!(mntr(b1.addr())["zk_observer_synced"], "1");
    eprintln!("600 writes of 8 kB with a stalled subscriber: {took:?}");
    // Back on the network, c1 catches up by itself.
    link.heal();
    wait_synced(&c1, SYNC);
    wait_zxid(&c1, leader.zxid(), SYNC);
    assert_eq!(dump(c1.addr()), leader.tree());
}

fn sessions_are_global_kept_alive_by_batched_touches_and_move_with_their_watches(kind: PubKind) {
    use geokeeper_core::proto::records::{GetDataRequest, SetWatches};
    use geokeeper_core::proto::OpCode;
    use geokeeper_core::request::Request;
    use support::rawzk::{zookeeper_password, RawZk};

    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B")]);
    let leader = Publisher::start(kind, &certs, "leader", "11@B", "");
    let b1 = start_observer(&certs, "b1", 11, &[leader.relay()], None, "");
    wait_synced(&b1, SYNC);
    // A session of the shortest timeout (2 ticks: 4 s), created through b1, with an
    // ephemeral; kept alive by pings to b1 only, for three timeouts.
    let mut z = support::rawzk::RawZk::connect(b1.addr(), 0, &[0; 16], 0, 4_000).expect("connect");
    assert_eq!(z.response.time_out, 4_000);
    let sid = z.session_id();
    assert_eq!(create(&mut z, "/eph", b"", 1).0, 0);
    assert_eq!(create(&mut z, "/w", b"0", 0).0, 0);
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(12) {
        let f = z.call_with_xid(-2, OpCode::Ping, &Request::Ping);
        assert!(f.reply.is_ok(), "ping through b1");
        std::thread::sleep(Duration::from_millis(1_000));
    }
    let mut lz = leader.session();
    let (err, _, stat) = get(&mut lz, "/eph");
    assert_eq!(
        err, 0,
        "the session expired at the leader though pinged at b1"
    );
    assert_eq!(stat.expect("stat").ephemeral_owner, sid);

    // A data watch at b1; the client moves to the leader (same id and password) while
    // /w changes; setWatches there from its last zxid fires the event it missed.
    let f = z
        .call(
            OpCode::GetData,
            &Request::GetData(GetDataRequest {
                path: "/w".into(),
                watch: true,
            }),
        )
        .reply
        .expect("getData");
    let seen = f.header.zxid;
    z.disconnect();
    assert_eq!(set_data(&mut lz, "/w", b"1").0, 0);
    let mut moved = RawZk::connect(
        leader.leader_addr(),
        sid,
        &zookeeper_password(sid),
        seen,
        4_000,
    )
    .expect("move");
    assert_eq!(
        moved.response.session_id, sid,
        "the leader took the session"
    );
    assert!(moved.response.time_out > 0);
    let ex = moved.call_with_xid(
        -8,
        OpCode::SetWatches,
        &Request::SetWatches(SetWatches {
            relative_zxid: seen,
            data_watches: vec!["/w".into()],
            exist_watches: vec![],
            child_watches: vec![],
        }),
    );
    let mut events = ex.notifications.clone();
    if events.is_empty() {
        if let Ok(f) = moved.read_frame() {
            assert_eq!(f.header.xid, -1, "a notification: {f:?}");
            events.push(support::rawzk::Notification {
                header: f.header.clone(),
                event: geokeeper_core::proto::Record::decode(
                    &mut geokeeper_core::proto::Reader::new(&f.body),
                )
                .expect("event"),
            });
        }
    }
    assert!(
        events
            .iter()
            .any(|n| n.event.path == "/w" && n.event.r#type == 3),
        "no NodeDataChanged for /w after setWatches: {ex:?}"
    );
    // And back to b1 within the timeout: still the same session, ephemeral intact.
    moved.disconnect();
    let back = RawZk::connect(b1.addr(), sid, &zookeeper_password(sid), seen, 4_000).expect("back");
    assert_eq!(back.response.session_id, sid);
    assert!(
        back.response.time_out > 0,
        "b1 revalidated the session with the leader"
    );
    assert_eq!(get(&mut lz, "/eph").0, 0);
}

fn local_sessions_of_a_remote_observer_never_cross_the_wan_until_they_need_to(kind: PubKind) {
    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 11, "B")]);
    let leader = Publisher::start(kind, &certs, "leader", "11@B", "");
    let b1 = start_observer(
        &certs,
        "b1",
        11,
        &[leader.relay()],
        None,
        "localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true\n",
    );
    wait_synced(&b1, SYNC);
    let global = || -> u64 {
        mntr(leader.leader_addr())["zk_global_sessions"]
            .parse()
            .expect("count")
    };
    let before = global();
    // A reading client: its session is b1's own.
    let mut r = session(b1.addr());
    assert_eq!(get(&mut r, "/").0, 0);
    let mut lz = leader.session();
    let (_, z) = create(&mut lz, "/seen", b"", 0);
    wait_zxid(&b1, z, SYNC);
    assert_eq!(get(&mut r, "/seen").0, 0);
    assert_eq!(
        global(),
        before + 1,
        "only the leader's own client is global"
    );
    // An ephemeral needs a global session: the session is upgraded, through the WAN.
    assert_eq!(create(&mut r, "/mine", b"", 1).0, 0);
    assert_eq!(
        global(),
        before + 2,
        "the upgraded session is the leader's now"
    );
    let (_, _, stat) = get(&mut lz, "/mine");
    assert_eq!(stat.expect("stat").ephemeral_owner, r.session_id());
}

#[test]
fn an_observer_takes_its_certificate_and_key_as_two_files_and_must_be_the_node_they_name() {
    let certs = Certs::new(&[("leader", 1, "A"), ("b1", 2, "B")]);
    let leader = start_leader(&certs, "leader", "2@B", "");
    let mut lz = session(leader.addr());
    assert_eq!(create(&mut lz, "/x", b"from A", 0).0, 0);

    // `geokeeper certs` writes key and chain in one PEM; production users often have two.
    let pem = std::fs::read_to_string(certs.key_store("b1")).expect("b1.pem");
    let blocks: Vec<String> = pem
        .split("-----BEGIN ")
        .filter(|b| !b.trim().is_empty())
        .map(|b| format!("-----BEGIN {b}"))
        .collect();
    let pick = |kind: &str| -> String {
        blocks
            .iter()
            .filter(|b| b.starts_with(&format!("-----BEGIN {kind}")))
            .cloned()
            .collect()
    };
    let (cert_pem, key_pem) = (pick("CERTIFICATE"), pick("PRIVATE KEY"));
    assert!(
        cert_pem.contains("CERTIFICATE") && !cert_pem.contains("PRIVATE"),
        "{pem}"
    );
    assert!(key_pem.contains("PRIVATE KEY") && !key_pem.contains("CERTIFICATE"));
    let files = tempfile::tempdir().expect("tempdir");
    let (crt, key) = (files.path().join("b1.crt"), files.path().join("b1.key"));
    std::fs::write(&crt, cert_pem).expect("b1.crt");
    std::fs::write(&key, key_pem).expect("b1.key");
    let cfg = |room: &str| {
        format!(
            "4lw.commands.whitelist=*\npeerType=observer\n{room}relay.upstreams={}\n\
             relay.ssl.cert={}\nrelay.ssl.key={}\nrelay.ssl.ca={}\n",
            leader.relay.expect("relay"),
            crt.display(),
            key.display(),
            certs.trust_store().display()
        )
    };

    // A server whose myid is not the node its certificate names would hand out session
    // ids its peers take for another's: it does not start.
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("myid"), "5\n").expect("myid");
    let log = support::gk::refused_start(data.path(), &cfg(""));
    assert!(
        log.contains("certificate names node 2 of room B, but its server id (myid) is 5"),
        "{log}"
    );
    // Nor one whose configured room is not its certificate's.
    std::fs::write(data.path().join("myid"), "2\n").expect("myid");
    let log = support::gk::refused_start(data.path(), &cfg("room=C\n"));
    assert!(
        log.contains("certificate names node 2 of room B, but its configuration puts it in room C"),
        "{log}"
    );

    // With the right room it follows the leader.
    let gk = support::gk::Geokeeper::start_on(data.path(), &cfg("room=B\n"));
    let b1 = Node::of(gk, data.path());
    wait_synced(&b1, SYNC);
    let mut z = session(b1.addr());
    assert_eq!(get(&mut z, "/x").1, b"from A");
    assert!(
        b1.gk.log().contains("relay identity: node 2 of room B"),
        "{}",
        b1.gk.log()
    );
}
