//! The per-room proxy in front of a real Apache ZooKeeper 3.8 ensemble: five participants
//! laid out 2+2+1 over three rooms (ids 1 and 2 in room A, 3 and 4 in B, 5 in C), one
//! proxy per room, each listing every server with its room and preferring the nearest
//! other room when its own has no healthy server.
//!
//! The rooms are joined by a WAN of delaying TCP forwarders, one way: A–B 10 ms, A–C
//! 20 ms, B–C 25 ms. Each Java server's zoo.cfg names the peers of other rooms at the
//! forwarders in front of their quorum and election ports (its own line is its real
//! address), so a learner's traffic with a leader of another room — proposals, acks,
//! commits, pings, sync — crosses the delay; a proxy reaches the servers of other rooms,
//! probes included, through forwarders in front of their client ports. Not delayed: the
//! election connections ZooKeeper re-opens to the address a lower server id announces (see
//! `support::java_ensemble`), so some election messages take the direct path.
//!
//! Each test starts its own ensemble; they run one at a time (five JVMs each on a small
//! machine). The last test, a regression these found in the proxy (a ping in flight when
//! the upstream is lost), needs no ensemble: one geokeeper server behind a forwarder.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::{
    Acl, CreateRequest, DeleteRequest, ExistsRequest, GetDataRequest, Id, SetDataRequest,
    WatcherEvent,
};
use geokeeper_core::proto::{OpCode, Reader, Record};
use geokeeper_core::request::Request;
use support::java_ensemble::{JavaEnsemble, NOT_SERVING};
use support::java_zk::four_letter;
use support::proxy::{upstream, Proxy};
use support::rawzk::{Frame, Lost, RawZk, NOTIFICATION_XID, PING_XID};
use support::relay::{create, get, session, set_data, sync};

/// The room of each member, in id order.
const ROOMS: [&str; 5] = ["A", "A", "B", "B", "C"];
const ROOM_NAMES: [&str; 3] = ["A", "B", "C"];

/// How long the ensemble may take to serve (five JVMs on a busy machine).
const ENSEMBLE_WAIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(60);
/// The session timeout clients ask for (the servers allow up to 30 s).
const SESSION_MS: i32 = 30_000;

/// NodeCreated, NodeDataChanged.
const CREATED: i32 = 1;
const DATA_CHANGED: i32 = 3;
const NO_NODE: i32 = -101;
const BAD_VERSION: i32 = -103;
const NODE_EXISTS: i32 = -110;
const NOT_EMPTY: i32 = -111;

/// The one-way delay between two rooms.
fn one_way(a: &str, b: &str) -> Duration {
    let ms = match (a.min(b), a.max(b)) {
        (x, y) if x == y => 0,
        ("A", "B") => 10,
        ("A", "C") => 20,
        _ => 25,
    };
    Duration::from_millis(ms)
}

/// The other rooms, nearest first: where a room's clients go when it is lost.
fn nearest_first(room: &str) -> Vec<&'static str> {
    let mut others: Vec<&'static str> = ROOM_NAMES.into_iter().filter(|r| *r != room).collect();
    others.sort_by_key(|r| one_way(room, r));
    others
}

/// The least a write from `room` can take when the leader is in `leader_room`: a round
/// trip to the leader, and a quorum of three spans at least two rooms.
fn write_floor(room: &str, leader_room: &str) -> Duration {
    if room != leader_room {
        return 2 * one_way(room, leader_room);
    }
    2 * nearest_first(leader_room)
        .into_iter()
        .map(|r| one_way(leader_room, r))
        .min()
        .expect("another room")
}

/// This file's tests run one at a time, whatever the harness's thread count.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Prints how long a test took once it had the machine to itself.
struct Took(&'static str, Instant);

impl Took {
    fn new(what: &'static str) -> Took {
        Took(what, Instant::now())
    }
}

impl Drop for Took {
    fn drop(&mut self) {
        eprintln!("{}: {:?}", self.0, self.1.elapsed());
    }
}

/// The 2+2+1 ensemble over the WAN. Behind a proxy every session comes from one address:
/// `maxClientCnxns=0`.
fn ensemble(extra: &str) -> JavaEnsemble {
    let t = Instant::now();
    let e = JavaEnsemble::start_in_rooms(
        &ROOMS,
        &one_way,
        &format!("maxClientCnxns=0\nmaxSessionTimeout={SESSION_MS}\n{extra}"),
        &["-Xmx128m"],
    );
    eprintln!("ensemble serving after {:?}", t.elapsed());
    e
}

/// A room's proxy: its own room's servers, then the others' nearest room first, each at
/// the address its room reaches it by.
struct RoomProxy {
    room: &'static str,
    p: Proxy,
    /// The member behind each upstream, in the proxy's list order.
    members: Vec<usize>,
    addrs: Vec<SocketAddr>,
}

impl RoomProxy {
    fn start(e: &JavaEnsemble, room: &'static str) -> RoomProxy {
        let mut members: Vec<usize> = (0..ROOMS.len()).filter(|&i| ROOMS[i] == room).collect();
        for r in nearest_first(room) {
            members.extend((0..ROOMS.len()).filter(|&i| ROOMS[i] == r));
        }
        let addrs: Vec<SocketAddr> = members.iter().map(|&i| e.client_from(i, room)).collect();
        let ups: Vec<String> = members
            .iter()
            .zip(&addrs)
            .map(|(&i, a)| upstream(*a, ROOMS[i], 1))
            .collect();
        let prefer: Vec<String> = nearest_first(room)
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect();
        let p = Proxy::start(
            room,
            &ups,
            // Sessions placed away from their room go back 2 s after it serves again.
            &format!(
                "prefer_rooms = [{}]\nreturn_home_ms = 2000\n",
                prefer.join(", ")
            ),
        );
        RoomProxy {
            room,
            p,
            members,
            addrs,
        }
    }

    fn index_of(&self, member: usize) -> usize {
        self.members
            .iter()
            .position(|&m| m == member)
            .expect("listed")
    }

    /// The member a session is attached to now, by the proxy's `cons`.
    fn member_of(&self, session: i64) -> Option<usize> {
        let cons = four_letter(self.p.addr, "cons");
        let line = cons
            .lines()
            .find(|l| l.contains(&format!("sid={session:#x},")))?;
        let up: SocketAddr = line
            .split("upstream=")
            .nth(1)?
            .trim_end_matches(')')
            .parse()
            .ok()?;
        let k = self.addrs.iter().position(|a| *a == up)?;
        Some(self.members[k])
    }

    /// Sessions placed so far on each member, by the proxy's `mntr`.
    fn placed(&self) -> BTreeMap<usize, u64> {
        let m = self.p.mntr();
        (0..self.members.len())
            .map(|k| {
                (
                    self.members[k],
                    m[&format!("zk_proxy_upstream_{k}_placed")]
                        .parse()
                        .expect("placed"),
                )
            })
            .collect()
    }

    /// Opens `n` sessions and drops their connections; returns how many each member got.
    fn place(&self, n: usize) -> BTreeMap<usize, u64> {
        let before = self.placed();
        for _ in 0..n {
            let z = self.open();
            z.disconnect();
        }
        self.placed()
            .into_iter()
            .map(|(m, v)| (m, v - before[&m]))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    fn open(&self) -> RawZk {
        let z = RawZk::connect(self.p.addr, 0, &[0; 16], 0, SESSION_MS)
            .unwrap_or_else(|e| panic!("a session through {}: {e:?}", self.room));
        assert!(
            z.response.time_out > 0,
            "a session refused through {}",
            self.room
        );
        z
    }

    /// The state (`serving`, `not_serving`, `down`) the proxy gives `member`.
    fn state_of(&self, member: usize) -> String {
        let k = self.index_of(member);
        self.p.mntr()[&format!("zk_proxy_upstream_{k}_state")].clone()
    }

    /// Waits until the proxy gives `member` the state `want`.
    fn wait_state(&self, member: usize, want: &str) {
        let t = Instant::now();
        loop {
            let now = self.state_of(member);
            if now == want {
                return;
            }
            assert!(
                t.elapsed() < WAIT,
                "{}: id {} is {now}, not {want}",
                self.room,
                member + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mntr_u64(&self, key: &str) -> u64 {
        self.p.mntr()[key].parse().expect("a number")
    }
}

impl Drop for RoomProxy {
    /// A failing test keeps the proxy's log.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = std::env::temp_dir().join(format!(
                "proxy_zk-{}-{}.log",
                self.room,
                std::process::id()
            ));
            if std::fs::write(&kept, self.p.log()).is_ok() {
                eprintln!("proxy {}'s log: {}", self.room, kept.display());
            }
        }
    }
}

/// Waits until every proxy's `srvr` names `leader` (at the address its room reaches it
/// by): what the proxy learned from its upstreams' `srvr` Mode.
fn wait_named_leader(e: &JavaEnsemble, proxies: &[RoomProxy], leader: usize) {
    let t = Instant::now();
    for rp in proxies {
        let named = format!("Leader: {}\n", e.client_from(leader, rp.room));
        loop {
            let srvr = four_letter(rp.p.addr, "srvr");
            if srvr.contains(&named) {
                break;
            }
            assert!(t.elapsed() < WAIT, "{}: {srvr}", rp.room);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn start_proxies(e: &JavaEnsemble, healthy: usize) -> Vec<RoomProxy> {
    let proxies: Vec<RoomProxy> = ROOM_NAMES
        .into_iter()
        .map(|r| RoomProxy::start(e, r))
        .collect();
    for rp in &proxies {
        rp.p.wait_healthy(healthy, WAIT);
    }
    proxies
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// A client session through a proxy that keeps the watch events it receives.
struct Client {
    z: RawZk,
    id: i64,
    events: BTreeSet<(i32, String)>,
    /// The proxy's log, for a failure's story.
    log: std::path::PathBuf,
}

impl Client {
    fn through(rp: &RoomProxy) -> Client {
        let z = rp.open();
        let id = z.session_id();
        Client {
            z,
            id,
            events: BTreeSet::new(),
            log: rp.p.dir.path().join("proxy.log"),
        }
    }

    /// Fails the test with what the proxy logged about this session.
    fn fail(&self, why: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let id = format!("{:#x}", self.id);
        let kept = std::env::temp_dir().join(format!("proxy_zk-{id}.log"));
        let _ = std::fs::write(&kept, &log);
        eprintln!("the proxy's whole log: {}", kept.display());
        let about: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&id) || l.contains("upstream"))
            .collect();
        panic!(
            "session {id}: {why}\nthe proxy's log about it:\n{}",
            about[about.len().saturating_sub(60)..].join("\n")
        );
    }

    /// Sends `req` and returns its answer; the connection must stay up.
    fn call(&mut self, op: OpCode, req: &Request) -> Frame {
        let x = self.z.call(op, req);
        for n in x.notifications {
            self.events.insert((n.event.r#type, n.event.path));
        }
        assert_eq!(x.strays, vec![], "session {:#x}: stray frames", self.id);
        match x.reply {
            Ok(f) => f,
            Err(e) => self.fail(&format!("no answer: {e:?}")),
        }
    }

    /// A ping (the proxy answers it itself while the session has no server).
    fn ping(&mut self) {
        let x = self.z.call_with_xid(PING_XID, OpCode::Ping, &Request::Ping);
        for n in x.notifications {
            self.events.insert((n.event.r#type, n.event.path));
        }
        if let Err(e) = x.reply {
            self.fail(&format!("ping lost: {e:?}"));
        }
    }

    fn get_watch(&mut self, path: &str) -> i32 {
        let req = Request::GetData(GetDataRequest {
            path: path.into(),
            watch: true,
        });
        self.call(OpCode::GetData, &req).header.err
    }

    fn exists_watch(&mut self, path: &str) -> i32 {
        let req = Request::Exists(ExistsRequest {
            path: path.into(),
            watch: true,
        });
        self.call(OpCode::Exists, &req).header.err
    }

    fn ephemeral(&mut self, path: &str) -> i32 {
        let req = Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: Some(b"mine".to_vec().into()),
                acl: open_acl(),
                flags: 1,
            },
        };
        self.call(OpCode::Create, &req).header.err
    }

    /// Reads until every event of `want` has come, on this very connection.
    fn await_events(&mut self, want: &[(i32, &str)], within: Duration) {
        let t = Instant::now();
        let missing = |c: &Client| -> Vec<(i32, String)> {
            want.iter()
                .map(|(ty, p)| (*ty, p.to_string()))
                .filter(|w| !c.events.contains(w))
                .collect()
        };
        while !missing(self).is_empty() {
            assert!(
                t.elapsed() < within,
                "session {:#x}: events {:?} missing, got {:?}",
                self.id,
                missing(self),
                self.events
            );
            match self.z.read_frame() {
                Ok(f) if f.header.xid == NOTIFICATION_XID => {
                    let e = WatcherEvent::decode(&mut Reader::new(&f.body)).expect("an event");
                    self.events.insert((e.r#type, e.path));
                }
                Ok(f) if f.header.xid == PING_XID => {}
                Ok(f) => panic!("session {:#x}: a stray frame {f:?}", self.id),
                Err(Lost::Timeout) => {}
                Err(e) => self.fail(&format!("connection lost: {e:?}")),
            }
        }
    }
}

/// A request's answer as (error, body): what must come back through a proxy exactly as
/// from the server.
fn answer(z: &mut RawZk, op: OpCode, req: &Request) -> (i32, Vec<u8>) {
    let f = z.call(op, req).reply.expect("an answer");
    (f.header.err, f.body)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// Reads are answered in the room, by a server of the proxy's room; writes, sync and
/// createSession go to the leader (their time is at least the WAN round trip to it); a
/// change made through one room's proxy is read, after sync, through another's with the
/// stat the leader has; answers, errors included, are the servers' own bytes; each proxy
/// names the leader it learned from its upstreams' `srvr`.
#[test]
fn each_rooms_proxy_reads_in_its_room_and_its_writes_reach_the_leader_across_the_wan() {
    let _serial = one_at_a_time();
    let _took = Took::new("in-room reads, writes to the leader");
    let e = ensemble("");
    let leader = e.leader().expect("a leader");
    let leader_room = ROOMS[leader];
    eprintln!("leader: id {} in room {leader_room}", leader + 1);
    let proxies = start_proxies(&e, 5);
    wait_named_leader(&e, &proxies, leader);

    // Sessions through each proxy: on a server of its room (the proxy's `cons` and the
    // server's own say so); createSession, writes and sync take the WAN to the leader,
    // reads do not.
    let nearest_rtt = 2 * one_way("A", "B");
    let mut by_room = BTreeMap::new();
    for rp in &proxies {
        let floor = write_floor(rp.room, leader_room);
        let mut sessions = Vec::new();
        for _ in 0..4 {
            let (z, took) = timed(|| rp.open());
            let id = z.session_id();
            let m = rp.member_of(id).expect("on an upstream");
            assert_eq!(ROOMS[m], rp.room, "session {id:#x} through {}", rp.room);
            let cons = four_letter(e.members[m].client, "cons");
            assert!(
                cons.contains(&format!("sid={id:#x},")),
                "{id:#x} not on id {}: {cons}",
                m + 1
            );
            assert!(
                took >= floor,
                "createSession through {} took {took:?} < {floor:?}",
                rp.room
            );
            sessions.push(z);
        }
        let z = &mut sessions[0];
        let path = format!("/lat-{}", rp.room);
        let (w, write) = timed(|| create(z, &path, b"x", 0));
        assert_eq!(w.0, 0);
        assert!(
            write >= floor,
            "a write through {} took {write:?} < {floor:?}",
            rp.room
        );
        let reads: Vec<Duration> = (0..10)
            .map(|_| {
                let (r, took) = timed(|| get(z, &path));
                assert_eq!(r.0, 0);
                took
            })
            .collect();
        let fastest = *reads.iter().min().expect("reads");
        assert!(
            fastest < nearest_rtt,
            "reads through {} take the WAN: {reads:?}",
            rp.room
        );
        let (s, synced) = timed(|| sync(z, &path));
        assert_eq!(s, 0);
        if rp.room != leader_room {
            assert!(
                synced >= floor,
                "sync through {} took {synced:?} < {floor:?}",
                rp.room
            );
        }
        eprintln!(
            "room {}: write {write:?}, fastest read {fastest:?}, sync {synced:?}",
            rp.room
        );
        by_room.insert(rp.room, sessions);
    }
    assert!(
        e.quorum_bytes_between_rooms() > 0,
        "no quorum traffic crossed the WAN"
    );

    // Written through C; read through B after sync: the leader's stat, the servers' bytes.
    let zc = &mut by_room.get_mut("C").expect("C")[0];
    assert_eq!(create(zc, "/geo", b"", 0).0, 0);
    assert_eq!(create(zc, "/geo/c", b"written in C", 0).0, 0);
    let zb = &mut by_room.get_mut("B").expect("B")[0];
    assert_eq!(sync(zb, "/geo/c"), 0);
    let (err, data, stat) = get(zb, "/geo/c");
    assert_eq!((err, data.as_slice()), (0, &b"written in C"[..]));
    let mut at_leader = session(e.members[leader].client);
    assert_eq!(sync(&mut at_leader, "/geo/c"), 0);
    assert_eq!(get(&mut at_leader, "/geo/c").2, stat, "the leader's stat");

    // The same requests through proxy B and straight to a server of room B: the same
    // answers, errors included.
    let mut direct = session(e.members[2].client);
    assert_eq!(sync(&mut direct, "/geo/c"), 0);
    let create_c = |path: &str| Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.into(),
            data: Some(b"again".to_vec().into()),
            acl: open_acl(),
            flags: 0,
        },
    };
    let cases: Vec<(OpCode, Request, i32)> = vec![
        (
            OpCode::GetData,
            Request::GetData(GetDataRequest {
                path: "/geo/c".into(),
                watch: false,
            }),
            0,
        ),
        (
            OpCode::GetData,
            Request::GetData(GetDataRequest {
                path: "/geo/missing".into(),
                watch: false,
            }),
            NO_NODE,
        ),
        (OpCode::Create, create_c("/geo/c"), NODE_EXISTS),
        (OpCode::Create, create_c("/geo/missing/child"), NO_NODE),
        (
            OpCode::SetData,
            Request::SetData(SetDataRequest {
                path: "/geo/c".into(),
                data: Some(b"no".to_vec().into()),
                version: 42,
            }),
            BAD_VERSION,
        ),
        (
            OpCode::Delete,
            Request::Delete(DeleteRequest {
                path: "/geo/c".into(),
                version: 42,
            }),
            BAD_VERSION,
        ),
        (
            OpCode::Delete,
            Request::Delete(DeleteRequest {
                path: "/geo".into(),
                version: -1,
            }),
            NOT_EMPTY,
        ),
    ];
    for (op, req, want) in &cases {
        let through = answer(zb, *op, req);
        let straight = answer(&mut direct, *op, req);
        assert_eq!(through.0, *want, "{op:?} {req:?} through B");
        assert_eq!(through, straight, "{op:?} {req:?}: proxy B and id 3 differ");
    }
}

/// Room B is lost whole while the leader is elsewhere: its two servers die, the quorum
/// (three of five) goes on. Every session of B's proxy moves to the nearest room, A, on its
/// own client connection, with its id (its ephemeral lives on), its watches restored so
/// that changes made after the loss fire, and reads answered; none expires. New sessions
/// through B's proxy go to room A meanwhile, and home to B once its servers serve again;
/// B's sessions follow them home `returnHomeMs` later, each on its own connection still.
#[test]
fn a_room_lost_whole_moves_its_proxys_sessions_to_the_nearest_room_and_none_is_lost() {
    lose_room_b(false);
}

/// Room B is lost whole with the leader in it: the three survivors elect a new leader, so
/// every server drops its clients on the way and serves again only once synced with it.
/// Every session of B's proxy still moves on its own connection, keeps its id, ephemeral
/// and watches; as do the sessions of the other proxies, whose servers went through the
/// election too. (A re-attaching session goes to the first room in the proxy's order that
/// has a server serving at that moment: the new leader, in C, may serve before A's
/// followers have synced with it, so some of B's sessions may land in C.) Once B serves
/// again, every one of B's sessions goes home.
#[test]
fn a_room_lost_with_the_leader_moves_every_session_through_the_election() {
    lose_room_b(true);
}

/// Moves the leader into room B, or out of it: its server is stopped until another leads
/// (the highest id in sync wins), then started again.
fn lead_in_room_b(e: &mut JavaEnsemble, want: bool) {
    for _ in 0..4 {
        let l = e.leader().expect("a leader");
        if (ROOMS[l] == "B") == want {
            return;
        }
        e.kill(l);
        e.wait_serving(ENSEMBLE_WAIT);
        e.restart(l);
        e.wait_serving(ENSEMBLE_WAIT);
    }
    let l = e.leader().expect("a leader");
    assert_eq!(ROOMS[l] == "B", want, "the leader is id {}", l + 1);
}

fn lose_room_b(with_leader: bool) {
    const SESSIONS: usize = 50;
    const OTHERS: usize = 5;
    let _serial = one_at_a_time();
    let _took = Took::new(if with_leader {
        "room B lost with the leader"
    } else {
        "room B lost"
    });
    let mut e = ensemble("");
    lead_in_room_b(&mut e, with_leader);
    let leader = e.leader().expect("a leader");
    eprintln!("leader: id {} in room {}", leader + 1, ROOMS[leader]);
    let proxies = start_proxies(&e, 5);
    wait_named_leader(&e, &proxies, leader);
    let pb = &proxies[1];

    let mut setup = Client::through(&proxies[0]);
    for p in ["/lost", "/lost/w"] {
        assert_eq!(create(&mut setup.z, p, b"v1", 0).0, 0);
    }
    // B's sessions, each with an ephemeral, a data watch and an exist watch of its own;
    // and a few through A's and C's proxies with a data watch.
    let mut clients: Vec<Client> = (0..SESSIONS).map(|_| Client::through(pb)).collect();
    let mut on = BTreeMap::new();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.ephemeral(&format!("/lost/eph-{i}")), 0);
        assert_eq!(c.get_watch("/lost/w"), 0);
        assert_eq!(c.exists_watch(&format!("/lost/new-{i}")), NO_NODE);
        let m = pb.member_of(c.id).expect("attached");
        assert_eq!(ROOMS[m], "B");
        *on.entry(m + 1).or_insert(0) += 1;
    }
    eprintln!("{SESSIONS} sessions through proxy B, by server id: {on:?}");
    let mut others: Vec<(usize, Client)> = Vec::new();
    for k in [0, 2] {
        for _ in 0..OTHERS {
            let mut c = Client::through(&proxies[k]);
            assert_eq!(c.get_watch("/lost/w"), 0);
            others.push((k, c));
        }
    }

    // Room B lost.
    let lost = Instant::now();
    e.kill(2);
    e.kill(3);
    let moved = loop {
        for c in clients.iter_mut().chain(others.iter_mut().map(|(_, c)| c)) {
            c.ping();
        }
        let n = pb.mntr_u64("zk_proxy_sessions_reattached");
        assert_eq!(pb.mntr_u64("zk_proxy_sessions_reattach_failed"), 0);
        if n >= SESSIONS as u64 {
            break lost.elapsed();
        }
        assert!(lost.elapsed() < WAIT, "{n} of {SESSIONS} re-attached");
        std::thread::sleep(Duration::from_millis(200));
    };
    e.wait_serving(ENSEMBLE_WAIT);
    let now_leading = e.leader().expect("a leader");
    assert_ne!(ROOMS[now_leading], "B");
    assert_eq!(now_leading != leader, with_leader, "an election iff B led");
    // The proxies follow the leader by themselves.
    wait_named_leader(&e, &proxies, now_leading);
    eprintln!(
        "{SESSIONS} sessions re-attached {moved:?} after room B was lost; leader id {}",
        now_leading + 1
    );

    // Changes after the loss: every session's watches fire on its own connection.
    let mut w = session(e.members[0].client);
    assert_eq!(set_data(&mut w, "/lost/w", b"v2").0, 0);
    for i in 0..SESSIONS {
        assert_eq!(create(&mut w, &format!("/lost/new-{i}"), b"", 0).0, 0);
    }
    let mut moved_to = BTreeMap::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let new = format!("/lost/new-{i}");
        c.await_events(&[(DATA_CHANGED, "/lost/w"), (CREATED, &new)], WAIT);
        let (err, data, _) = get(&mut c.z, "/lost/w");
        assert_eq!((err, data.as_slice()), (0, &b"v2"[..]));
        assert_eq!(c.z.session_id(), c.id);
        let m = pb.member_of(c.id).expect("attached");
        *moved_to.entry(m + 1).or_insert(0) += 1;
        if with_leader {
            assert_ne!(ROOMS[m], "B", "session {:#x} on id {}", c.id, m + 1);
        } else {
            assert_eq!(ROOMS[m], "A", "session {:#x} moved to id {}", c.id, m + 1);
        }
        // Its ephemeral lives on, still its own.
        let (err, _, stat) = get(&mut w, &format!("/lost/eph-{i}"));
        assert_eq!(err, 0, "session {:#x} lost its ephemeral", c.id);
        assert_eq!(stat.expect("stat").ephemeral_owner, c.id);
    }
    eprintln!("B's sessions moved to server ids {moved_to:?}");
    for (k, c) in others.iter_mut() {
        c.await_events(&[(DATA_CHANGED, "/lost/w")], WAIT);
        assert_eq!(get(&mut c.z, "/lost/w").0, 0);
        let m = proxies[*k].member_of(c.id).expect("attached");
        assert_ne!(ROOMS[m], "B");
    }
    let m = pb.p.mntr();
    assert_eq!(m["zk_proxy_sessions_reattach_failed"], "0", "{m:?}");
    assert!(
        m["zk_num_alive_connections"].parse::<usize>().expect("n") >= SESSIONS,
        "{m:?}"
    );
    for rp in &proxies {
        eprintln!(
            "proxy {}: {} sessions re-attached",
            rp.room,
            rp.mntr_u64("zk_proxy_sessions_reattached")
        );
    }

    // New sessions through B meanwhile: room A, the nearest.
    let got = pb.place(10);
    assert!(got.keys().all(|m| ROOMS[*m] == "A"), "{got:?}");

    // Room B back: once its servers serve, new sessions go home.
    e.restart(2);
    e.restart(3);
    e.wait_serving(ENSEMBLE_WAIT);
    pb.p.wait_healthy(5, WAIT);
    let got = pb.place(10);
    assert!(got.keys().all(|m| ROOMS[*m] == "B"), "{got:?}");
    for c in clients.iter_mut() {
        c.ping();
        assert_eq!(get(&mut c.z, "/lost/w").0, 0);
    }
    let ids: BTreeMap<usize, u64> = got.iter().map(|(m, n)| (m + 1, *n)).collect();
    eprintln!("room B back: new sessions through its proxy went to server ids {ids:?}");

    // And B's sessions go home too, each at a quiet moment once B has served for
    // returnHomeMs: on the same connection, with the same session, its ephemeral and
    // its watch.
    for c in clients.iter_mut() {
        c.events.clear();
        assert_eq!(c.get_watch("/lost/w"), 0);
    }
    let back = Instant::now();
    loop {
        for c in clients.iter_mut() {
            c.ping();
        }
        let n = pb.mntr_u64("zk_proxy_sessions_moved_home");
        if n >= SESSIONS as u64 {
            break;
        }
        assert!(back.elapsed() < WAIT, "{n} of {SESSIONS} moved home");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{SESSIONS} sessions back in room B {:?} after it served again",
        back.elapsed()
    );
    let mut w = session(e.members[0].client);
    assert_eq!(set_data(&mut w, "/lost/w", b"v3").0, 0);
    let mut home = BTreeMap::new();
    for (i, c) in clients.iter_mut().enumerate() {
        c.await_events(&[(DATA_CHANGED, "/lost/w")], WAIT);
        let (err, data, _) = get(&mut c.z, "/lost/w");
        assert_eq!((err, data.as_slice()), (0, &b"v3"[..]));
        assert_eq!(c.z.session_id(), c.id);
        let m = pb.member_of(c.id).expect("attached");
        assert_eq!(ROOMS[m], "B", "session {:#x} on id {}", c.id, m + 1);
        *home.entry(m + 1).or_insert(0) += 1;
        let (err, _, stat) = get(&mut w, &format!("/lost/eph-{i}"));
        assert_eq!(err, 0, "session {:#x} lost its ephemeral", c.id);
        assert_eq!(stat.expect("stat").ephemeral_owner, c.id);
    }
    eprintln!("B's sessions back home on server ids {home:?}");
    // The other proxies' sessions end in their own rooms too: with the leader in B, A's
    // and C's servers went through the election, some of their sessions may have moved
    // to another room, and they go home as well; without, they never left.
    let t = Instant::now();
    for (k, c) in others.iter_mut() {
        let rp = &proxies[*k];
        loop {
            let m = rp.member_of(c.id).expect("attached");
            if ROOMS[m] == rp.room {
                break;
            }
            assert!(
                t.elapsed() < WAIT,
                "session {:#x} of proxy {} still on id {}",
                c.id,
                rp.room,
                m + 1
            );
            c.ping();
            std::thread::sleep(Duration::from_millis(100));
        }
        if !with_leader {
            assert_eq!(
                rp.mntr_u64("zk_proxy_sessions_moved_home"),
                0,
                "{}",
                rp.room
            );
        }
    }
}

/// `leaderServes=no`: the Java leader takes no clients and its `srvr` says it does not
/// serve; no proxy places a session on it. The leader is killed and another server is
/// elected: every server drops its clients on the way, and each proxy re-attaches its
/// sessions — those that were on the server now leading too — to servers that serve,
/// never to the new leader; new sessions never land on it either. Nothing tells the
/// proxies who leads but their upstreams.
#[test]
fn with_leader_serves_no_no_session_lands_on_a_leader_before_or_after_an_election() {
    const PER_PROXY: usize = 8;
    let _serial = one_at_a_time();
    let _took = Took::new("leaderServes=no");
    let mut e = ensemble("leaderServes=no");
    let old = e.leader().expect("a leader");
    assert_eq!(
        four_letter(e.members[old].client, "srvr").trim_end(),
        NOT_SERVING
    );
    eprintln!("leader: id {} in room {}", old + 1, ROOMS[old]);
    let proxies = start_proxies(&e, 4);
    for rp in &proxies {
        rp.wait_state(old, "not_serving");
    }

    let mut setup = Client::through(&proxies[0]);
    for p in ["/ls", "/ls/w"] {
        assert_eq!(create(&mut setup.z, p, b"v1", 0).0, 0);
    }
    let mut clients: Vec<(usize, Client)> = Vec::new();
    let mut before: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, rp) in proxies.iter().enumerate() {
        for _ in 0..PER_PROXY {
            let mut c = Client::through(rp);
            let i = clients.len();
            assert_eq!(c.ephemeral(&format!("/ls/eph-{i}")), 0);
            assert_eq!(c.get_watch("/ls/w"), 0);
            let m = rp.member_of(c.id).expect("attached");
            assert_ne!(m, old, "a session on the leader through {}", rp.room);
            *before.entry(m + 1).or_insert(0) += 1;
            clients.push((k, c));
        }
    }
    eprintln!("sessions by server id before the election: {before:?}");

    // The leader dies; another is elected.
    let killed = Instant::now();
    e.kill(old);
    let total = clients.len() as u64;
    let moved = loop {
        for (_, c) in clients.iter_mut() {
            c.ping();
        }
        let n: u64 = proxies
            .iter()
            .map(|rp| rp.mntr_u64("zk_proxy_sessions_reattached"))
            .sum();
        for rp in &proxies {
            assert_eq!(rp.mntr_u64("zk_proxy_sessions_reattach_failed"), 0);
        }
        if n >= total {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < WAIT, "{n} of {total} re-attached");
        std::thread::sleep(Duration::from_millis(200));
    };
    e.wait_serving(ENSEMBLE_WAIT);
    let new = e.leader().expect("a new leader");
    assert_ne!(new, old);
    eprintln!(
        "{total} sessions re-attached {moved:?} after the leader died; new leader id {}",
        new + 1
    );
    assert!(
        before.get(&(new + 1)).copied().unwrap_or(0) > 0,
        "no session was on id {} before it led: {before:?}",
        new + 1
    );
    for rp in &proxies {
        rp.wait_state(new, "not_serving");
    }
    // (A leader that does not serve answers srvr with no Mode: the proxies cannot name it.)
    let srvr = four_letter(proxies[0].p.addr, "srvr");
    eprintln!(
        "proxy A's srvr: {}",
        srvr.lines()
            .find(|l| l.starts_with("Leader:"))
            .unwrap_or("-")
    );

    let survivor = (0..ROOMS.len())
        .find(|&i| i != old && i != new)
        .expect("a follower");
    let mut w = session(e.members[survivor].client);
    assert_eq!(set_data(&mut w, "/ls/w", b"v2").0, 0);
    for (i, (k, c)) in clients.iter_mut().enumerate() {
        let rp = &proxies[*k];
        c.await_events(&[(DATA_CHANGED, "/ls/w")], WAIT);
        let (err, data, _) = get(&mut c.z, "/ls/w");
        assert_eq!((err, data.as_slice()), (0, &b"v2"[..]));
        assert_eq!(c.z.session_id(), c.id);
        let m = rp.member_of(c.id).expect("attached");
        assert!(
            m != old && m != new,
            "session {:#x} through {} on id {}",
            c.id,
            rp.room,
            m + 1
        );
        let (err, _, stat) = get(&mut w, &format!("/ls/eph-{i}"));
        assert_eq!(err, 0, "session {:#x} lost its ephemeral", c.id);
        assert_eq!(stat.expect("stat").ephemeral_owner, c.id);
    }

    // New sessions through every proxy: never on the new leader.
    for rp in &proxies {
        let got = rp.place(10);
        assert!(
            !got.contains_key(&new) && !got.contains_key(&old),
            "{}: {got:?}",
            rp.room
        );
    }
}

/// Found with the election above: a ping in flight when the session's upstream is lost
/// was answered by no one (pings were not counted), and a client that sees a ping go
/// unanswered drops its connection (kazoo does). The proxy now answers it itself at
/// once. Here the upstream is a geokeeper server behind a slow forwarder that is cut
/// while the ping is on its way; the session moves to the same server's other address.
#[test]
fn a_ping_in_flight_when_the_upstream_is_lost_is_answered_by_the_proxy() {
    use support::gk::Geokeeper;
    use support::tcp_cut::TcpCut;

    let gk = Geokeeper::start("maxClientCnxns=0\n");
    let slow = TcpCut::start_delayed(gk.addr, Duration::from_millis(300));
    let p = Proxy::start(
        "A",
        &[
            upstream(slow.addr, "A", 1_000_000),
            upstream(gk.addr, "A", 1),
        ],
        "",
    );
    p.wait_healthy(2, WAIT);
    let mut z = RawZk::connect(p.addr, 0, &[0; 16], 0, SESSION_MS).expect("a session");
    let id = z.session_id();
    assert!(
        four_letter(p.addr, "cons").contains(&format!("upstream={}", slow.addr)),
        "not on the slow path"
    );
    z.send(PING_XID, OpCode::Ping, &Request::Ping)
        .expect("send a ping");
    std::thread::sleep(Duration::from_millis(50));
    slow.refuse(true);
    slow.cut();
    let t = Instant::now();
    let f = z
        .read_frame()
        .expect("the ping's answer, on the same connection");
    assert_eq!(f.header.xid, PING_XID);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The session lives on at the other address.
    let (err, _, _) = get(&mut z, "/");
    assert_eq!(err, 0);
    assert_eq!(z.session_id(), id);
    assert_eq!(p.mntr()["zk_proxy_sessions_reattached"], "1");
}
