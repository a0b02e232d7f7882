//! `examples/three-rooms/run.sh` end to end, as the README's walk-through uses it: the
//! script brings up room A (a geokeeper leader with `leaderServes=no`, or with `--zk` an
//! Apache ZooKeeper 3.8 ensemble with `leaderServes=no` and a gateway), room B (b1 following
//! room A through a 25 ms WAN link and relaying to b2) and room C (c1 on a WAN link of its
//! own), and a client proxy per room; it prints its endpoints once they serve and stops
//! everything it started on Ctrl-C. A write through proxy C (with zkCli) is read through
//! proxy B and proxy A; a write through proxy B takes at least one WAN round trip; the
//! leader takes no sessions; and a session through proxy B lives on when the observer
//! under it (b1) is killed: same id, its ephemeral kept, the event of a change made
//! meanwhile delivered, reads answered.
//!
//! Each run takes a loopback block of its own (127.X.Y.10 and up) and ports below the
//! ephemeral range, so it runs beside the other tests.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::{GetDataRequest, WatcherEvent};
use geokeeper_core::proto::{OpCode, Reader, Record};
use geokeeper_core::request::Request;
use support::example_script::{zkcli, Deployment};
use support::java_zk::four_letter;
use support::rawzk::Lost;
use support::relay::{create, get, session, set_data, sync};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/three-rooms/run.sh");
/// The script's default one-way WAN delay.
const WAN_ONE_WAY: Duration = Duration::from_millis(25);
/// Three JVMs, a gateway, three observers and three proxies starting on a busy 2-core
/// machine.
const START: Duration = Duration::from_secs(180);
/// A session's move off a killed observer: b2 notices its upstream b1 gone within the
/// relay's idle timeout (5 s), so the proxy may wait for it or go to another room.
const FAILOVER: Duration = Duration::from_secs(30);
/// ZooKeeper's ephemeral flag for create.
const EPHEMERAL: i32 = 1;

/// `cons` of a proxy: the upstream the session `id` is on.
fn upstream_of(proxy: SocketAddr, id: i64) -> Option<String> {
    let sid = format!("sid={id:#x},");
    four_letter(proxy, "cons")
        .lines()
        .find(|l| l.contains(&sid))
        .and_then(|l| l.split("upstream=").nth(1))
        .map(|u| u.trim_end_matches(')').to_string())
}

/// The endpoint a proxy's upstream address stands for: itself, or the server a WAN link
/// leads to (the link to host base+k listens on port N+100+k, N the client port).
fn endpoint_behind(t: &Deployment, upstream: &str) -> String {
    let Ok(addr) = upstream.parse::<SocketAddr>() else {
        return upstream.to_string();
    };
    let base = t.endpoint("proxy-a");
    let target = match addr.port().checked_sub(base.port() + 100) {
        Some(k) if addr.port() != base.port() => {
            let std::net::IpAddr::V4(ip) = base.ip() else {
                return upstream.to_string();
            };
            // proxy-a is host base+5.
            let [a, b, c, d] = ip.octets();
            let host = u16::from(d) - 5 + k;
            SocketAddr::from(([a, b, c, u8::try_from(host).unwrap_or(0)], base.port()))
        }
        _ => addr,
    };
    t.endpoints
        .iter()
        .filter(|(_, a)| **a == target)
        .map(|(n, _)| n.clone())
        .next()
        .unwrap_or_else(|| upstream.to_string())
}

/// The walk-through: writes across the rooms through the proxies, the WAN in the write
/// path, a session outliving observer-b1, and a clean stop on SIGINT.
fn proxies_serve_every_room_and_a_session_outlives_observer_b1(zk: bool) {
    let mut want = vec![
        "leader",
        "proxy-a",
        "proxy-b",
        "proxy-c",
        "observer-b1",
        "observer-b2",
        "observer-c1",
    ];
    if zk {
        want.extend(["zk-1", "zk-2", "zk-3", "gateway"]);
    }
    let args: &[&str] = if zk { &["--zk"] } else { &[] };
    let started = Instant::now();
    let mut t = Deployment::start(SCRIPT, args, &want, START);
    eprintln!("serving after {:?}", started.elapsed());
    let (pa, pb, pc) = (
        t.endpoint("proxy-a"),
        t.endpoint("proxy-b"),
        t.endpoint("proxy-c"),
    );
    let b1 = t.endpoint("observer-b1");

    // The leader takes no client sessions; the proxies learned it.
    let srvr = four_letter(t.endpoint("leader"), "srvr");
    assert!(
        srvr.contains("not currently serving"),
        "the leader's srvr:\n{srvr}"
    );

    // zkCli creates a znode through proxy C: c1 forwards it over room C's WAN link.
    let out = zkcli(pc, &["create", "/three-rooms", "from-c"]);
    assert!(
        out.contains("Created /three-rooms"),
        "zkCli through proxy C:\n{out}"
    );
    // Read through proxy B: after a sync, the session's observer has it; zkCli's own
    // session (perhaps on the other observer of room B) within a moment.
    let mut zb = session(pb);
    assert_eq!(sync(&mut zb, "/three-rooms"), 0);
    assert_eq!(get(&mut zb, "/three-rooms").1, b"from-c", "through proxy B");
    let out = zkcli(pb, &["get", "/three-rooms"]);
    assert!(
        out.lines().any(|line| line == "from-c"),
        "zkCli through proxy B:\n{out}"
    );
    // Proxy A's sessions go where room A serves clients (the ensemble's followers with
    // --zk; room B without).
    let mut za = session(pa);
    assert_eq!(sync(&mut za, "/three-rooms"), 0);
    assert_eq!(get(&mut za, "/three-rooms").1, b"from-c", "through proxy A");

    // Each write through proxy B is answered once its transaction is back from room A:
    // at least one WAN round trip.
    let mut fastest = Duration::MAX;
    for i in 0..5 {
        let started = Instant::now();
        let (err, _) = create(&mut zb, &format!("/three-rooms-{i}"), b"x", 0);
        assert_eq!(err, 0, "create through proxy B");
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest >= 2 * WAN_ONE_WAY,
        "a write through proxy B took {fastest:?}, less than a WAN round trip"
    );
    drop((za, zb));

    // A session through proxy B on observer-b1 (sessions alternate between b1 and b2),
    // with a data watch and an ephemeral.
    let mut zc = session(pc);
    assert_eq!(create(&mut zc, "/w", b"v1", 0).0, 0);
    let mut elsewhere = Vec::new();
    let mut z = loop {
        let z = session(pb);
        if upstream_of(pb, z.session_id()) == Some(b1.to_string()) {
            break z;
        }
        assert!(elsewhere.len() < 4, "no session of proxy B lands on b1");
        elsewhere.push(z);
    };
    drop(elsewhere);
    let id = z.session_id();
    assert_eq!(sync(&mut z, "/w"), 0);
    let watch = Request::GetData(GetDataRequest {
        path: "/w".into(),
        watch: true,
    });
    let e = z.call(OpCode::GetData, &watch);
    assert_eq!(
        e.reply.map(|f| f.header.err),
        Ok(0),
        "getData /w with a watch"
    );
    assert_eq!(
        create(&mut z, "/three-rooms/eph", b"", EPHEMERAL).0,
        0,
        "an ephemeral of the session"
    );

    // Kill observer-b1 as the README does: by the pid the script wrote.
    let pid = std::fs::read_to_string(t.dir().join("b1.pid")).expect("b1.pid");
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -KILL {pid}");
    // A change made meanwhile, through proxy C.
    assert_eq!(set_data(&mut zc, "/w", b"v2").0, 0);

    // Its event arrives on the same connection, then reads are answered, as the same
    // session.
    loop {
        assert!(
            killed.elapsed() < FAILOVER,
            "no event for /w within {FAILOVER:?}\n{}",
            t.stderr()
        );
        match z.read_frame() {
            Ok(f) if f.header.xid == -1 => {
                let e = WatcherEvent::decode(&mut Reader::new(&f.body)).expect("event");
                assert_eq!((e.r#type, e.path.as_str()), (3, "/w"), "NodeDataChanged");
                break;
            }
            Ok(f) => panic!("a stray frame {f:?}"),
            Err(Lost::Timeout) => {}
            Err(e) => panic!("the client's connection was lost: {e:?}"),
        }
    }
    let moved = killed.elapsed();
    assert_eq!(get(&mut z, "/w").1, b"v2", "a read after the move");
    assert_eq!(z.session_id(), id);
    let now_on = upstream_of(pb, id).expect("the session in proxy B's cons");
    assert_ne!(now_on, b1.to_string(), "still on the killed b1");
    eprintln!(
        "the session moved to {} ({now_on}) in {moved:?}",
        endpoint_behind(&t, &now_on)
    );
    // The session lives: its ephemeral is still there, owned by it, seen from room C.
    assert_eq!(sync(&mut zc, "/three-rooms"), 0);
    let (err, _, stat) = get(&mut zc, "/three-rooms/eph");
    assert_eq!(err, 0, "the ephemeral through proxy C");
    assert_eq!(stat.expect("stat").ephemeral_owner, id);
    drop((z, zc));

    t.ctrl_c_stops_everything();
    eprintln!("whole run {:?}", started.elapsed());
}

#[test]
fn three_rooms_with_a_geokeeper_leader() {
    proxies_serve_every_room_and_a_session_outlives_observer_b1(false);
}

#[test]
fn three_rooms_with_a_zookeeper_ensemble_and_a_gateway() {
    proxies_serve_every_room_and_a_session_outlives_observer_b1(true);
}
