//! Client histories through relays under WAN trouble, checked by `support::history`: a
//! leader in room A, a room relay b1 in room B (behind an emulated WAN) re-publishing to
//! b2, and c1 in room C behind another WAN. Raw clients, one session each, do a seeded mix
//! of writes, watched reads and sync-then-read on a few znodes from random replicas, and
//! move to another replica with their session id, password and last zxid whenever a
//! connection is lost, re-arming their watches with setWatches as ZooKeeper clients do.
//! Meanwhile a seeded schedule changes link delays, cuts links for seconds and SIGKILLs
//! b2 or c1. At the end every replica must reach the leader's zxid with the same tree,
//! and the recorded history must be one ZooKeeper allows (linearizable writes, sessions
//! that never go back, sync then read, the watch event before the data).
//!
//! Twice: with a standalone geokeeper leader publishing, and with a gateway of a
//! 3-participant Apache ZooKeeper 3.8 ensemble publishing, where clients also use the Java
//! servers and the gateway, and the schedule also SIGKILLs the Java leader (an election
//! moves the gateway to the next one) and the gateway itself, restarting them after.
//!
//! `GEOKEEPER_RELAY_HISTORY_SEED` replays one round; `GEOKEEPER_RELAY_HISTORY_ROUNDS`
//! (default 2) runs more rounds, each with the next seed.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::{
    Acl, CreateRequest, DeleteRequest, ExistsRequest, GetDataRequest, Id, SetDataRequest,
    SetWatches, SyncRequest,
};
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::history::{render, EventKind, History, Op, OpKind, Outcome, Reply, Stat, ZkError};
use support::proxy::{upstream, Proxy};
use support::rawzk::{decode_body, Body, Exchange, Frame, RawZk, SET_WATCHES_XID};
use support::relay::*;
use support::wan::{LinkSpec, UdpWan};

const SYNC: Duration = Duration::from_secs(60);
/// How long clients run in a round.
const RUN: Duration = Duration::from_secs(15);
const SESSION_TIMEOUT_MS: i32 = 10_000;
const CLIENTS: usize = 5;
/// Written and read by every client; created before the history starts.
const PATHS: [&str; 4] = ["/h0", "/h1", "/h2", "/h3"];
/// Created and deleted while the history runs.
const CHURN: &str = "/h4";

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn wan_link(delay_ms: u64, loss: f64) -> LinkSpec {
    LinkSpec {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(delay_ms / 10 + 1),
        loss,
        bandwidth: 0,
    }
}

fn stat_of(s: &geokeeper_core::proto::records::Stat) -> Stat {
    Stat::new(s.version, s.czxid, s.mzxid)
}

/// What the round did, for its summary line.
#[derive(Default)]
struct Counters {
    reconnects: AtomicU64,
    moves: AtomicU64,
    refused: AtomicU64,
    new_sessions: AtomicU64,
    set_watches: AtomicU64,
    odd_errors: AtomicU64,
    events: AtomicU64,
}

/// One client: a session, the connection it is on, and the watches it holds.
struct Client {
    id: usize,
    h: Arc<History>,
    replicas: Vec<SocketAddr>,
    rng: StdRng,
    counters: Arc<Counters>,
    conn: Option<RawZk>,
    /// The replica of the current (or last) connection.
    at: usize,
    session: i64,
    passwd: Vec<u8>,
    /// Paths with a data watch (getData, or exists on a present node) and with an exist
    /// watch (exists on a missing node), as the client library keeps them.
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    /// The last version this client saw per path, for conditional writes.
    versions: HashMap<String, i32>,
    /// When the connection was lost (to give up on the session after its timeout).
    lost_at: Option<Instant>,
    writes: u64,
    /// The highest zxid of a reply this session received, on any connection.
    last_zxid_store: i64,
}

fn event_kind(t: i32) -> Option<EventKind> {
    match t {
        1 => Some(EventKind::NodeCreated),
        2 => Some(EventKind::NodeDeleted),
        3 => Some(EventKind::NodeDataChanged),
        4 => Some(EventKind::NodeChildrenChanged),
        _ => None,
    }
}

impl Client {
    /// Records the notifications an exchange read before its reply, in arrival order, and
    /// disarms the watches they fired.
    fn record_events(&mut self, ex: &Exchange) {
        for n in &ex.notifications {
            let Some(kind) = event_kind(n.event.r#type) else {
                continue;
            };
            self.h.event(self.session, &n.event.path, kind);
            self.counters.events.fetch_add(1, Ordering::Relaxed);
            if kind != EventKind::NodeChildrenChanged {
                self.data_watches.retain(|p| *p != n.event.path);
                self.exist_watches.retain(|p| *p != n.event.path);
            }
        }
    }

    /// A connection to some replica with this client's session, or with a new one when the
    /// old one has been unreachable for longer than its timeout.
    fn ensure_connected(&mut self, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            if self.conn.is_some() {
                return true;
            }
            let expired = self
                .lost_at
                .is_some_and(|t| t.elapsed() > Duration::from_millis(SESSION_TIMEOUT_MS as u64));
            if expired && self.session != 0 {
                // The session may be gone; a new one is a new history session.
                self.session = 0;
                self.passwd = vec![0; 16];
                self.data_watches.clear();
                self.exist_watches.clear();
                self.counters.new_sessions.fetch_add(1, Ordering::Relaxed);
            }
            // Another replica than the one that was lost.
            self.at =
                (self.at + self.rng.random_range(1..self.replicas.len())) % self.replicas.len();
            let addr = self.replicas[self.at];
            // A new session has seen nothing yet.
            let last = if self.session == 0 {
                0
            } else {
                self.last_zxid_store
            };
            match RawZk::connect(addr, self.session, &self.passwd, last, SESSION_TIMEOUT_MS) {
                Ok(z) if z.response.time_out > 0 => {
                    if self.session != 0 {
                        assert_eq!(z.response.session_id, self.session, "moved session");
                        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.session = z.response.session_id;
                        self.passwd = z.response.passwd.to_vec();
                        self.last_zxid_store = 0;
                    }
                    self.conn = Some(z);
                    self.lost_at = None;
                    if !self.rearm_watches() {
                        self.drop_conn();
                    }
                }
                _ => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(self.rng.random_range(50..200)));
                }
            }
        }
    }

    /// setWatches from the last zxid seen, as ZooKeeper clients send on reconnecting.
    fn rearm_watches(&mut self) -> bool {
        if self.data_watches.is_empty() && self.exist_watches.is_empty() {
            return true;
        }
        self.counters.set_watches.fetch_add(1, Ordering::Relaxed);
        let z = self.conn.as_mut().expect("connected");
        let req = Request::SetWatches(SetWatches {
            relative_zxid: z.last_zxid,
            data_watches: self.data_watches.clone(),
            exist_watches: self.exist_watches.clone(),
            child_watches: vec![],
        });
        let ex = z.call_with_xid(SET_WATCHES_XID, OpCode::SetWatches, &req);
        self.record_events(&ex);
        ex.reply.is_ok()
    }

    fn drop_conn(&mut self) {
        if let Some(z) = self.conn.take() {
            self.last_zxid_store = self.last_zxid_store.max(z.last_zxid);
            z.disconnect();
        }
        if self.lost_at.is_none() {
            self.lost_at = Some(Instant::now());
        }
    }

    /// Sends `req`, records events and the outcome `decode` makes of the reply.
    fn run(
        &mut self,
        op: Op,
        code: OpCode,
        req: &Request,
        decode: impl FnOnce(&Frame) -> Outcome,
    ) -> Option<Outcome> {
        let id = self.h.invoke(self.session, op.clone());
        let z = self.conn.as_mut().expect("connected");
        let ex = z.call(code, req);
        self.last_zxid_store = self.last_zxid_store.max(z.last_zxid);
        self.record_events(&ex);
        match &ex.reply {
            Ok(f) => {
                let outcome = decode(f);
                if outcome == Outcome::Unknown {
                    self.counters.odd_errors.fetch_add(1, Ordering::Relaxed);
                    self.h.complete(id, Outcome::Unknown, None);
                } else {
                    self.h.complete(id, outcome.clone(), Some(f.header.zxid));
                }
                Some(outcome)
            }
            Err(_) => {
                self.h.complete(id, Outcome::Unknown, None);
                self.drop_conn();
                None
            }
        }
    }

    fn set_data(&mut self, path: &str, version: i32) {
        self.writes += 1;
        let data = format!("c{}-{}", self.id, self.writes).into_bytes();
        let req = Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(data.clone().into()),
            version,
        });
        let out = self.run(
            Op::set_data(path, data, version),
            OpCode::SetData,
            &req,
            |f| match (f.header.err, decode_body(OpCode::SetData as i32, &f.body)) {
                (0, Body::Stat(s)) => Outcome::Ok(Reply::Set(stat_of(&s))),
                (e, _) => write_error(e),
            },
        );
        if let Some(Outcome::Ok(Reply::Set(s))) = out {
            self.versions.insert(path.into(), s.version);
        }
    }

    fn create(&mut self, path: &str) {
        self.writes += 1;
        let data = format!("c{}-{}", self.id, self.writes).into_bytes();
        let req = Request::Create {
            op: OpCode::Create2,
            req: CreateRequest {
                path: path.into(),
                data: Some(data.clone().into()),
                acl: vec![Acl {
                    perms: 31,
                    id: Id {
                        scheme: "world".into(),
                        id: "anyone".into(),
                    },
                }],
                flags: 0,
            },
        };
        let out = self.run(Op::create(path, data), OpCode::Create2, &req, |f| {
            match (f.header.err, decode_body(OpCode::Create2 as i32, &f.body)) {
                (0, Body::Create2(c)) => Outcome::Ok(Reply::Created(Some(stat_of(&c.stat)))),
                (e, _) => write_error(e),
            }
        });
        if let Some(Outcome::Ok(Reply::Created(Some(s)))) = out {
            self.versions.insert(path.into(), s.version);
        }
    }

    fn delete(&mut self, path: &str, version: i32) {
        let req = Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        });
        self.run(
            Op::delete(path, version),
            OpCode::Delete,
            &req,
            |f| match f.header.err {
                0 => Outcome::Ok(Reply::Deleted),
                e => write_error(e),
            },
        );
    }

    fn get_data(&mut self, path: &str, watch: bool) {
        let req = Request::GetData(GetDataRequest {
            path: path.into(),
            watch,
        });
        let out = self.run(
            Op::get_data(path, watch),
            OpCode::GetData,
            &req,
            |f| match (f.header.err, decode_body(OpCode::GetData as i32, &f.body)) {
                (0, Body::GetData(g)) => Outcome::Ok(Reply::Data(
                    g.data.map(|d| d.to_vec()).unwrap_or_default(),
                    stat_of(&g.stat),
                )),
                (-101, _) => Outcome::Err(ZkError::NoNode),
                _ => Outcome::Unknown,
            },
        );
        if let Some(Outcome::Ok(Reply::Data(_, s))) = out {
            self.versions.insert(path.into(), s.version);
            if watch && !self.data_watches.iter().any(|p| p == path) {
                self.data_watches.push(path.into());
            }
        }
    }

    fn exists(&mut self, path: &str, watch: bool) {
        let req = Request::Exists(ExistsRequest {
            path: path.into(),
            watch,
        });
        let out = self.run(Op::exists(path, watch), OpCode::Exists, &req, |f| {
            match (f.header.err, decode_body(OpCode::Exists as i32, &f.body)) {
                (0, Body::Stat(s)) => Outcome::Ok(Reply::Exists(Some(stat_of(&s)))),
                (-101, _) => Outcome::Ok(Reply::Exists(None)),
                _ => Outcome::Unknown,
            }
        });
        let present = match out {
            Some(Outcome::Ok(Reply::Exists(Some(s)))) => {
                self.versions.insert(path.into(), s.version);
                true
            }
            Some(Outcome::Ok(Reply::Exists(None))) => false,
            _ => return,
        };
        let armed = self.data_watches.iter().any(|p| p == path)
            || self.exist_watches.iter().any(|p| p == path);
        if watch && !armed {
            if present {
                self.data_watches.push(path.into());
            } else {
                self.exist_watches.push(path.into());
            }
        }
    }

    /// sync, then a read of the same path if the sync was answered.
    fn sync_then_read(&mut self, path: &str) {
        let req = Request::Sync(SyncRequest { path: path.into() });
        let out = self.run(Op::sync(path), OpCode::Sync, &req, |f| match f.header.err {
            0 => Outcome::Ok(Reply::Synced),
            _ => Outcome::Unknown,
        });
        if out == Some(Outcome::Ok(Reply::Synced)) {
            self.get_data(path, false);
        }
    }

    fn step(&mut self) {
        let path = PATHS[self.rng.random_range(0..PATHS.len())];
        let known = self.versions.get(path).copied().unwrap_or(0);
        match self.rng.random_range(0..100) {
            0..=19 => self.set_data(path, -1),
            20..=29 => self.set_data(path, known),
            30..=49 => {
                let w = self.rng.random_bool(0.5);
                self.get_data(path, w)
            }
            50..=69 => {
                let w = self.rng.random_bool(0.5);
                self.exists(path, w)
            }
            70..=81 => self.sync_then_read(path),
            82..=88 => self.create(CHURN),
            89..=93 => {
                let v = if self.rng.random_bool(0.5) {
                    -1
                } else {
                    self.versions.get(CHURN).copied().unwrap_or(0)
                };
                self.delete(CHURN, v)
            }
            94..=96 => {
                let w = self.rng.random_bool(0.5);
                self.exists(CHURN, w)
            }
            97 => {
                // A client moves on its own now and then, as one whose server is slow.
                self.counters.moves.fetch_add(1, Ordering::Relaxed);
                self.drop_conn();
                self.lost_at = Some(Instant::now());
            }
            _ => self.get_data(CHURN, true),
        }
    }
}

/// A write's error: definite for the errors the leader decides, unknown otherwise (a
/// replica that answers ConnectionLoss may have forwarded the write already).
fn write_error(e: i32) -> Outcome {
    match e {
        -101 => Outcome::Err(ZkError::NoNode),
        -110 => Outcome::Err(ZkError::NodeExists),
        -103 => Outcome::Err(ZkError::BadVersion),
        -111 => Outcome::Err(ZkError::NotEmpty),
        _ => Outcome::Unknown,
    }
}

/// The fault schedule's tally.
#[derive(Default, Debug)]
struct Faults {
    delay_changes: u32,
    cuts: u32,
    kills: u32,
    leader_kills: u32,
}

struct Round {
    seed: u64,
    kind: PubKind,
    /// Clients connect only to the proxies of rooms B and C, which move their sessions
    /// when a replica dies.
    proxies: bool,
}

fn round(
    Round {
        seed,
        kind,
        proxies,
    }: Round,
) {
    let started = Instant::now();
    let via = if proxies { " through proxies" } else { "" };
    eprintln!(
        "relay_history: {kind:?}{via} seed {seed} (replay: GEOKEEPER_RELAY_HISTORY_SEED={seed} GEOKEEPER_RELAY_HISTORY_ROUNDS=1)"
    );
    let certs = Certs::new(&[
        ("leader", 1, "A"),
        ("b1", 11, "B"),
        ("b2", 12, "B"),
        ("c1", 21, "C"),
    ]);
    let leader = Publisher::start(kind, &certs, "leader", "11@B,21@C", "");
    let relay = leader.relay();
    let link_b = Arc::new(UdpWan::start(
        relay,
        wan_link(25, 0.005),
        splitmix64(seed ^ 1),
    ));
    let link_c = Arc::new(UdpWan::start(
        relay,
        wan_link(25, 0.005),
        splitmix64(seed ^ 2),
    ));
    let b1 = start_observer(&certs, "b1", 11, &[link_b.addr()], Some("12@B"), "");
    wait_synced(&b1, SYNC);
    let b2 = start_observer(&certs, "b2", 12, &[b1.relay.expect("relay")], None, "");
    let c1 = start_observer(&certs, "c1", 21, &[link_c.addr()], None, "");
    wait_synced(&b2, SYNC);
    wait_synced(&c1, SYNC);

    eprintln!("relay_history: topology up in {:?}", started.elapsed());
    // The paths every client works on exist before the history starts.
    let h = Arc::new(History::new());
    let mut lz = leader.session();
    for p in PATHS {
        assert_eq!(create(&mut lz, p, b"init", 0).0, 0, "create {p}");
        let (err, data, stat) = get(&mut lz, p);
        assert_eq!(err, 0);
        h.initial(p, data, stat_of(&stat.expect("stat")));
    }
    lz.disconnect();
    wait_zxid(&b2, leader.zxid(), SYNC);
    wait_zxid(&c1, leader.zxid(), SYNC);

    // Every server clients may use: the standalone leader, or the Java servers and the
    // gateway; and the observers.
    let mut replicas = match &leader.ensemble {
        None => vec![leader.node.addr()],
        Some(e) => e.members.iter().map(|m| m.client).collect(),
    };
    if kind == PubKind::Gateway {
        replicas.push(leader.node.addr());
    }
    replicas.extend([b1.addr(), b2.addr(), c1.addr()]);
    // Through proxies: room B's (b1, b2; then C, then A) and room C's (c1; then B, then
    // A), and nothing else.
    let mut room_proxies = Vec::new();
    if proxies {
        let leader_up = upstream(leader.leader_addr(), "A", 1);
        let (b1_up, b2_up, c1_up) = (
            upstream(b1.addr(), "B", 1),
            upstream(b2.addr(), "B", 1),
            upstream(c1.addr(), "C", 1),
        );
        room_proxies.push(Proxy::start(
            "B",
            &[
                b1_up.clone(),
                b2_up.clone(),
                c1_up.clone(),
                leader_up.clone(),
            ],
            "prefer_rooms = [\"C\", \"A\"]\n",
        ));
        room_proxies.push(Proxy::start(
            "C",
            &[c1_up, b1_up, b2_up, leader_up],
            "prefer_rooms = [\"B\", \"A\"]\n",
        ));
        for p in &room_proxies {
            p.wait_healthy(4, SYNC);
        }
        replicas = room_proxies.iter().map(|p| p.addr).collect();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let (h, stop, counters, replicas) =
            (h.clone(), stop.clone(), counters.clone(), replicas.clone());
        let n_replicas = replicas.len();
        let rng = StdRng::seed_from_u64(splitmix64(seed ^ (100 + id as u64)));
        clients.push(thread::spawn(move || {
            let mut c = Client {
                id,
                h,
                replicas,
                rng,
                counters,
                conn: None,
                at: id % n_replicas,
                session: 0,
                passwd: vec![0; 16],
                data_watches: Vec::new(),
                exist_watches: Vec::new(),
                versions: HashMap::new(),
                lost_at: None,
                writes: 0,
                last_zxid_store: 0,
            };
            while c.ensure_connected(&stop) {
                c.step();
                let pause = c.rng.random_range(5..40);
                thread::sleep(Duration::from_millis(pause));
            }
            if let Some(z) = c.conn.take() {
                z.disconnect();
            }
        }));
    }

    // The fault schedule: owns b2, c1 and the publisher so that it can kill and restart
    // them.
    let fault = {
        let (stop, link_b, link_c) = (stop.clone(), link_b.clone(), link_c.clone());
        let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ 7));
        let (mut b2, mut c1, mut leader) = (b2, c1, leader);
        thread::spawn(move || {
            let mut faults = Faults::default();
            let mut log = Vec::new();
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(rng.random_range(800..2_500)));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (lname, link) = if rng.random_bool(0.5) {
                    ("b", &link_b)
                } else {
                    ("c", &link_c)
                };
                let at = t0.elapsed().as_millis();
                let kinds = if leader.kind == PubKind::Gateway {
                    5
                } else {
                    3
                };
                match rng.random_range(0..kinds) {
                    0 => {
                        let d = rng.random_range(5..120);
                        let loss = rng.random_range(0.0..0.02);
                        link.set_link(wan_link(d, loss));
                        faults.delay_changes += 1;
                        log.push(format!("{at}ms link {lname}: {d} ms, loss {loss:.3}"));
                    }
                    1 => {
                        let d = Duration::from_millis(rng.random_range(2_000..8_000));
                        link.cut_for(d);
                        faults.cuts += 1;
                        log.push(format!("{at}ms link {lname}: cut for {d:?}"));
                    }
                    3 => {
                        // The Java leader dies; the other two elect one, the gateway
                        // follows it, and the dead one comes back as a follower.
                        let e = leader.ensemble.as_mut().expect("an ensemble");
                        let Some(i) = e.leader() else { continue };
                        e.kill(i);
                        let down = rng.random_range(500..3_000);
                        thread::sleep(Duration::from_millis(down));
                        e.restart(i);
                        faults.leader_kills += 1;
                        log.push(format!(
                            "{at}ms kill -9 the Java leader (server {}), down {down} ms",
                            i + 1
                        ));
                    }
                    4 => {
                        leader.node.gk.kill();
                        let down = rng.random_range(200..1_500);
                        thread::sleep(Duration::from_millis(down));
                        if let Err(e) = leader.node.gk.try_restart(Duration::from_secs(30)) {
                            panic!(
                                "the gateway did not restart: {e:?}\n{}",
                                leader.node.gk.log()
                            );
                        }
                        faults.kills += 1;
                        log.push(format!("{at}ms kill -9 the gateway, down {down} ms"));
                    }
                    _ => {
                        let (name, node) = if rng.random_bool(0.5) {
                            ("b2", &mut b2)
                        } else {
                            ("c1", &mut c1)
                        };
                        node.gk.kill();
                        let down = rng.random_range(200..1_500);
                        thread::sleep(Duration::from_millis(down));
                        if let Err(e) = node.gk.try_restart(Duration::from_secs(30)) {
                            panic!("{name} did not restart: {e:?}\n{}", node.gk.log());
                        }
                        faults.kills += 1;
                        log.push(format!("{at}ms kill -9 {name}, down {down} ms"));
                    }
                }
            }
            (b2, c1, leader, faults, log)
        })
    };

    eprintln!("relay_history: clients started at {:?}", started.elapsed());
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    eprintln!("relay_history: clients joined at {:?}", started.elapsed());
    let (b2, c1, leader, faults, fault_log) = fault.join().expect("fault thread");
    eprintln!(
        "relay_history: faults joined at {:?}: {fault_log:?}",
        started.elapsed()
    );
    let run_took = started.elapsed();

    // Heal everything; every replica reaches the leader's zxid with the leader's tree.
    for l in [&link_b, &link_c] {
        l.heal();
        l.set_link(wan_link(25, 0.005));
    }
    if let Some(e) = &leader.ensemble {
        e.wait_serving(SYNC);
        wait_gateway(&leader);
    }
    let zxid = leader.zxid();
    let want = leader.tree();
    for (name, n) in [("b1", &b1), ("b2", &b2), ("c1", &c1)] {
        wait_zxid(n, zxid, SYNC);
        let got = dump(n.addr());
        assert!(
            got == want,
            "{kind:?} seed {seed}: {name} differs from the leader at zxid {zxid:#x}:\n{name}: {got:?}\nleader: {want:?}"
        );
    }

    let result = h.check();
    let c = &counters;
    let tally = format!(
        "reconnects {} (moves {}), refused connects {}, new sessions {}, setWatches {}, odd errors {}, events {}; faults {faults:?}",
        c.reconnects.load(Ordering::Relaxed),
        c.moves.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        c.new_sessions.load(Ordering::Relaxed),
        c.set_watches.load(Ordering::Relaxed),
        c.odd_errors.load(Ordering::Relaxed),
        c.events.load(Ordering::Relaxed),
    );
    match result {
        Ok(summary) => {
            let moved: u64 = room_proxies
                .iter()
                .map(|p| {
                    p.mntr()["zk_proxy_sessions_reattached"]
                        .parse::<u64>()
                        .unwrap_or(0)
                })
                .sum();
            eprintln!(
                "relay_history: {kind:?}{via} seed {seed}: {summary}\n  {tally}; sessions the proxies moved {moved}\n  schedule: {}\n  run {run_took:?}, round {:?}",
                fault_log.join("; "),
                started.elapsed()
            );
            assert!(summary.of(OpKind::SetData).ok > 0, "no write succeeded");
        }
        Err(v) => {
            let file = std::env::temp_dir().join(format!("relay_history-{seed}.txt"));
            std::fs::write(&file, h.dump()).expect("write history");
            panic!(
                "{kind:?} seed {seed}: {}\n{tally}\nschedule: {}\nhistory in {}",
                render(&v),
                fault_log.join("; "),
                file.display()
            );
        }
    }
}

/// The gateway is in sync with the ensemble again (after the schedule killed it or the
/// Java leader).
fn wait_gateway(p: &Publisher) {
    support::gateway::wait_synced(&p.node.gk, SYNC);
}

fn rounds(kind: PubKind, proxies: bool) {
    let (base, rounds) = match std::env::var("GEOKEEPER_RELAY_HISTORY_SEED") {
        Ok(s) => (s.parse::<u64>().expect("seed"), 1),
        Err(_) => (rand::random::<u64>() >> 1, 2),
    };
    let rounds = std::env::var("GEOKEEPER_RELAY_HISTORY_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or(rounds);
    let mut seeds = BTreeMap::new();
    for r in 0..rounds {
        let seed = base.wrapping_add(r);
        seeds.insert(r, seed);
        round(Round {
            seed,
            kind,
            proxies,
        });
    }
    eprintln!(
        "relay_history: {kind:?}: {} round(s) passed: {seeds:?}",
        seeds.len()
    );
}

#[test]
fn histories_through_relays_under_wan_faults_are_zookeeper_consistent() {
    rounds(PubKind::Leader, false);
}

/// The same with every client behind the proxies of rooms B and C: the schedule kills the
/// replicas under their sessions (b2, c1) and cuts the rooms' links; the proxies move the
/// sessions, and the history must still be one ZooKeeper allows.
#[test]
fn histories_through_room_proxies_with_replicas_killed_are_zookeeper_consistent() {
    rounds(PubKind::Leader, true);
}

#[test]
fn histories_through_a_gateways_relays_with_the_java_leader_killed_are_zookeeper_consistent() {
    rounds(PubKind::Gateway, false);
}
