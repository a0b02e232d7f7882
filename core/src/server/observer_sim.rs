//! A seeded, deterministic simulation of the observer role: one [`Server`] in
//! [`Role::Observer`], with this test playing both its driver (the sockets, the log) and an
//! ensemble's leader, with no sockets, no threads and no clock.
//!
//! The fake leader keeps its own [`DataTree`] and prepares what it is forwarded with the
//! same [`Prep`] a standalone server uses, so it knows the zxid and the result of every
//! write. Each step a seeded RNG picks what happens next: a client connects, reconnects
//! (sometimes with a wrong password, sometimes taking over its own live connection), drops
//! its connection or pipelines requests (create in every mode, setData, delete, multi,
//! getData/exists/getChildren with and without watches, sync, ping, closeSession); the
//! leader handles some of what reached it, commits writes of clients of other servers and
//! expires sessions; some prefix of the leader's link (commits, SYNCs, REVALIDATE answers,
//! in order) is delivered, commits split into batches of any size; the log makes some
//! prefix of what it was handed durable; the link drops and comes back with a DIFF or a
//! SNAP, sometimes in a new epoch, with clients coming and going between the steps of the
//! sync; the log fails and the replica is rebuilt from scratch; the timer expires local
//! sessions. A quarter of the seeds each run with global sessions only, with local
//! sessions (upgraded when they create an ephemeral), with read-only mode, and with local
//! sessions that are never upgraded plus read-only mode.
//!
//! Checked after every input, and once everything has settled:
//! 1. per connection, replies leave in request order, each request is answered at most
//!    once, and a forwarded write's reply is byte for byte the one the leader's result
//!    makes (its zxid, its error code, its body);
//! 2. a watch event leaves before any reply on its connection whose zxid is at or after
//!    the change that fired it, events leave in the order of their changes, and no event
//!    leaves that no watch of the connection asked for;
//! 3. a sync's reply carries a zxid at or after the leader's last zxid when the leader
//!    answered it;
//! 4. once settled, the observer's tree (digest, every node's data, stat and ACL),
//!    last zxid and sessions are the leader's; every request on a live connection has been
//!    answered, every due watch event sent, and nothing forwarded is still held;
//! 5. losing the leader closes every client connection, nothing is sent on a connection
//!    after its close, and nothing forwarded on a lost link is answered on a later one;
//! 6. no forwarded write is answered before its transaction is durable and applied; a
//!    read's reply is the leader's tree as of the reply's zxid, and the zxids of a
//!    connection's replies never go back;
//! 7. handshakes end as they must (a new session once its createSession is applied, a
//!    reconnect as the leader's REVALIDATE answer says, local and read-only sessions on
//!    the spot), every log entry is the leader's transaction byte for byte, and the
//!    observer's local sessions are the ones its clients were given.
//!
//! `GEOKEEPER_SIM_SEEDS=<n>` runs seeds 0..n (200 by default), `GEOKEEPER_SIM_STEPS=<n>`
//! that many steps per seed (300), and `GEOKEEPER_SIM_SEED=<n>` replays one seed; a
//! failure's message names its seed and step and lists the inputs before it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::acl::{open_acl_unsafe, read_acl_unsafe};
use crate::proto::Reader;
use crate::tree::{split_path, Change};

const DEFAULT_SEEDS: u64 = 200;
const DEFAULT_STEPS: usize = 300;
/// Client slots: each holds at most one session and one current connection.
const CLIENTS: usize = 4;
/// The observer's `myid`: the top byte of the session ids it hands out.
const OBSERVER_ID: u64 = 5;
/// The leader's server id.
const LEADER_ID: i64 = 1;
/// Sessions of clients of other servers (server id 2).
const FOREIGN_SESSIONS: i64 = 2 << 56;
/// Where the clients work: collisions, watch hits and NotEmpty are frequent. `/ro` is
/// world-readable only, so writes under it fail with NoAuth at the leader.
const PATHS: &[&str] = &["/a", "/b", "/ro", "/a/x", "/a/y", "/b/x", "/ro/x", "/a/x/z"];
/// The inputs a failure's message lists (`GEOKEEPER_SIM_TRACE=<n>` for more).
const TRACE: usize = 60;

#[test]
fn an_observer_matches_its_leader_under_seeded_schedules() {
    let steps = env("GEOKEEPER_SIM_STEPS").unwrap_or(DEFAULT_STEPS);
    if let Some(seed) = env::<u64>("GEOKEEPER_SIM_SEED") {
        run(seed, steps);
        return;
    }
    let seeds = env("GEOKEEPER_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let mut total = Coverage::default();
    for seed in 0..seeds {
        total.add(&run(seed, steps).coverage);
    }
    if seeds >= DEFAULT_SEEDS && steps >= DEFAULT_STEPS {
        // The schedules still reach every case the invariants are about.
        total.check();
    }
}

/// A failing seed is only useful if it fails again: the same seed feeds the same inputs
/// and ends the same way (a panic included).
#[test]
fn a_seed_replays_the_same_run() {
    for seed in [3, 11] {
        let once = || {
            std::panic::catch_unwind(|| run(seed, 200).fingerprint).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "a panic without a message".into())
            })
        };
        assert_eq!(once(), once(), "seed {seed}");
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.trim().parse().ok()
}

struct Outcome {
    /// Of every input fed, in order.
    fingerprint: u64,
    coverage: Coverage,
}

/// Runs one seed: the steps, then everything settled, then the final checks.
fn run(seed: u64, steps: usize) -> Outcome {
    let mut sim = Sim::new(seed);
    while !sim.serving {
        if sim.serve_at.is_some() {
            sim.make_durable(sim.log.len());
        } else {
            sim.resync();
        }
    }
    for step in 1..=steps {
        sim.diag.step = step;
        sim.step();
    }
    sim.diag.step = steps + 1;
    sim.diag
        .note("(settling: everything delivered, made durable and answered)".into());
    sim.settle();
    sim.check_converged();
    Outcome {
        fingerprint: sim.diag.fingerprint.finish(),
        coverage: sim.cov,
    }
}

/// How often the runs reached each case: a schedule that stops reaching one proves
/// nothing about it any more.
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    writes_ok: u64,
    write_errors: u64,
    multis: u64,
    syncs: u64,
    reads: u64,
    malformed: u64,
    events: u64,
    sessions_created: u64,
    revalidated: u64,
    revalidation_refused: u64,
    bad_passwords: u64,
    connects_refused: u64,
    takeovers: u64,
    expiries_closed: u64,
    close_sessions: u64,
    leaders_lost: u64,
    log_failures: u64,
    snaps: u64,
    diffs: u64,
    new_epochs: u64,
    local_sessions: u64,
    read_only_sessions: u64,
    local_reconnects: u64,
    refused_here: u64,
    local_closes: u64,
    upgrades: u64,
    local_expiries: u64,
    kept_connections: u64,
    deferred_serving: u64,
}

impl Coverage {
    fn add(&mut self, o: &Coverage) {
        let Coverage {
            writes_ok,
            write_errors,
            multis,
            syncs,
            reads,
            malformed,
            events,
            sessions_created,
            revalidated,
            revalidation_refused,
            bad_passwords,
            connects_refused,
            takeovers,
            expiries_closed,
            close_sessions,
            leaders_lost,
            log_failures,
            snaps,
            diffs,
            new_epochs,
            local_sessions,
            read_only_sessions,
            local_reconnects,
            refused_here,
            local_closes,
            upgrades,
            local_expiries,
            kept_connections,
            deferred_serving,
        } = o;
        self.writes_ok += writes_ok;
        self.write_errors += write_errors;
        self.multis += multis;
        self.syncs += syncs;
        self.reads += reads;
        self.malformed += malformed;
        self.events += events;
        self.sessions_created += sessions_created;
        self.revalidated += revalidated;
        self.revalidation_refused += revalidation_refused;
        self.bad_passwords += bad_passwords;
        self.kept_connections += kept_connections;
        self.deferred_serving += deferred_serving;
        self.connects_refused += connects_refused;
        self.takeovers += takeovers;
        self.expiries_closed += expiries_closed;
        self.close_sessions += close_sessions;
        self.leaders_lost += leaders_lost;
        self.log_failures += log_failures;
        self.snaps += snaps;
        self.diffs += diffs;
        self.new_epochs += new_epochs;
        self.local_sessions += local_sessions;
        self.read_only_sessions += read_only_sessions;
        self.local_reconnects += local_reconnects;
        self.refused_here += refused_here;
        self.local_closes += local_closes;
        self.upgrades += upgrades;
        self.local_expiries += local_expiries;
    }

    fn check(&self) {
        let c = self;
        for (what, n, min) in [
            ("successful writes", c.writes_ok, 1000),
            ("failed writes", c.write_errors, 1000),
            ("multis", c.multis, 100),
            ("syncs", c.syncs, 300),
            ("reads", c.reads, 1000),
            ("malformed writes", c.malformed, 20),
            ("watch events", c.events, 200),
            ("sessions created", c.sessions_created, 300),
            ("sessions revalidated", c.revalidated, 300),
            ("revalidations refused", c.revalidation_refused, 30),
            ("wrong passwords", c.bad_passwords, 30),
            ("connects refused", c.connects_refused, 30),
            ("connections taken over", c.takeovers, 30),
            ("connections closed by an expiry", c.expiries_closed, 30),
            ("closeSessions answered", c.close_sessions, 30),
            ("leaders lost", c.leaders_lost, 100),
            ("log failures", c.log_failures, 20),
            ("SNAPs", c.snaps, 50),
            ("DIFFs", c.diffs, 100),
            ("new epochs", c.new_epochs, 50),
            ("local sessions", c.local_sessions, 400),
            ("read-only sessions", c.read_only_sessions, 40),
            ("local reconnects", c.local_reconnects, 200),
            ("requests refused by the observer", c.refused_here, 150),
            ("local closeSessions", c.local_closes, 50),
            ("session upgrades", c.upgrades, 80),
            ("local sessions expired", c.local_expiries, 10),
            (
                "connections kept through a lost leader",
                c.kept_connections,
                20,
            ),
            (
                "UPTODATEs before the sync's transactions were durable",
                c.deferred_serving,
                50,
            ),
        ] {
            assert!(
                n >= min,
                "the schedules reached {what} {n} times, fewer than {min}: {c:?}"
            );
        }
    }
}

// ---- the fake leader ----

/// What the leader sends the observer, in link order.
#[derive(Debug)]
enum Down {
    Commit(LogEntry),
    /// The answer to the oldest forwarded sync.
    Sync,
    Revalidated {
        session: i64,
        valid: bool,
    },
}

/// A znode as the leader's tree had it after some zxid: what a read there returns.
#[derive(Debug, Clone, PartialEq)]
struct NodeState {
    data: Option<Bytes>,
    stat: Stat,
    children: Vec<String>,
}

/// A change that fires a watch: the event it sends and where it sits in the history.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Trigger {
    zxid: i64,
    /// Its place among the changes of its transaction (a multi, a closeSession).
    idx: usize,
    event: EventType,
}

impl Trigger {
    fn at(&self) -> (i64, usize) {
        (self.zxid, self.idx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum WatchKind {
    /// getData, exists.
    Data,
    /// getChildren.
    Child,
}

/// The reply a forwarded write must get.
struct Answer {
    zxid: i64,
    frame: Bytes,
}

struct Leader {
    tree: DataTree,
    prep: Prep,
    epoch: i64,
    last_zxid: i64,
    wall_ms: i64,
    /// Live sessions and their timeouts.
    sessions: BTreeMap<i64, i32>,
    /// The zxid of each session's createSession.
    created: HashMap<i64, i64>,
    /// Every transaction committed, in zxid order: what a DIFF sends.
    history: Vec<LogEntry>,
    /// Per path, its state after each transaction that touched it (zxid 0: the start).
    states: HashMap<String, Vec<(i64, Option<NodeState>)>>,
    /// Per path, the changes that fire a data watch (getData, exists) on it …
    data_triggers: HashMap<String, Vec<Trigger>>,
    /// … and those that fire a child watch (getChildren).
    child_triggers: HashMap<String, Vec<Trigger>>,
    /// The reply each forwarded write must get, by (session, cxid).
    answers: HashMap<(i64, i32), Answer>,
    /// The leader's last zxid when it answered each forwarded sync, by (session, cxid).
    sync_floors: HashMap<(i64, i32), i64>,
    /// Packets from the observer not handled yet.
    inbox: VecDeque<QuorumPacket>,
    /// Packets for the observer not delivered yet.
    link: VecDeque<Down>,
    link_up: bool,
    /// `localSessionsEnabled` at the leader: an unknown session of another server is
    /// taken for one of its local sessions.
    local_sessions: bool,
    /// The session of "another server's client" writing directly at the leader.
    foreign: Option<i64>,
    foreign_cxid: i32,
    foreign_count: i64,
}

fn node_state(tree: &DataTree, path: &str) -> Option<NodeState> {
    tree.get(path).map(|n| NodeState {
        data: n.data.map(Bytes::copy_from_slice),
        stat: n.to_stat(),
        children: tree.children(path).unwrap_or_default(),
    })
}

fn push_trigger(map: &mut HashMap<String, Vec<Trigger>>, path: &str, t: Trigger) {
    map.entry(path.to_owned()).or_default().push(t);
}

impl Leader {
    fn new(wall_ms: i64) -> Leader {
        let tree = DataTree::new();
        let states = tree
            .walk()
            .into_iter()
            .map(|p| {
                let s = node_state(&tree, &p);
                (p, vec![(0, s)])
            })
            .collect();
        Leader {
            tree,
            prep: Prep::new(PrepSettings {
                digest_enabled: true,
                ..Default::default()
            }),
            epoch: 1,
            last_zxid: 1 << 32,
            wall_ms,
            sessions: BTreeMap::new(),
            created: HashMap::new(),
            history: Vec::new(),
            states,
            data_triggers: HashMap::new(),
            child_triggers: HashMap::new(),
            answers: HashMap::new(),
            sync_floors: HashMap::new(),
            inbox: VecDeque::new(),
            link: VecDeque::new(),
            link_up: false,
            local_sessions: false,
            foreign: None,
            foreign_cxid: 0,
            foreign_count: 0,
        }
    }

    /// The zxid of the last transaction committed (a new epoch's first zxid is not one).
    fn last_committed(&self) -> i64 {
        self.history.last().map_or(0, |e| e.zxid)
    }

    /// A new leader was elected: zxids go on in the next epoch.
    fn new_epoch(&mut self) {
        self.epoch += 1;
        self.last_zxid = self.epoch << 32;
    }

    fn send(&mut self, d: Down) {
        if self.link_up {
            self.link.push_back(d);
        }
    }

    /// As the standalone server's `header`: the next zxid, the leader's time.
    fn header(&mut self, session: i64, cxid: i32) -> TxnHeader {
        self.last_zxid += 1;
        TxnHeader {
            client_id: session,
            cxid,
            zxid: self.last_zxid,
            time: self.wall_ms,
            r#type: 0,
        }
    }

    /// One packet from the observer, as ZooKeeper's `LearnerHandler` and the leader's
    /// `PrepRequestProcessor` take it.
    fn handle(&mut self, p: QuorumPacket) -> Result<(), String> {
        let mut r = Reader::new(p.body());
        let bad = |e| format!("a {:?} packet from the observer: {e}", p.kind());
        match p.kind() {
            Some(PacketType::Revalidate) => {
                let session = r.read_i64().map_err(bad)?;
                r.read_i32().map_err(bad)?;
                let valid = self.sessions.contains_key(&session);
                self.send(Down::Revalidated { session, valid });
            }
            Some(PacketType::Request) => {
                let session = r.read_i64().map_err(bad)?;
                let cxid = r.read_i32().map_err(bad)?;
                let op = r.read_i32().map_err(bad)?;
                match OpCode::from_i32(op) {
                    Some(OpCode::CreateSession) => {
                        let timeout = r.read_i32().map_err(bad)?;
                        let mut h = self.header(session, cxid);
                        let (body, digest) = self
                            .prep
                            .prepare_create_session(&self.tree, timeout, &mut h);
                        self.commit(h, body, digest)?;
                    }
                    Some(OpCode::Sync) => {
                        // The leader's commits are instant: SYNC follows what it has
                        // committed so far (`Leader.processSync`).
                        self.sync_floors
                            .insert((session, cxid), self.last_committed());
                        self.send(Down::Sync);
                    }
                    _ => {
                        let req = Request::decode(op, r.rest());
                        if matches!(req, Request::Malformed { .. } | Request::Unknown(_)) {
                            return Err(format!(
                                "the observer forwarded opcode {op} with a body that does not decode: {req:?}"
                            ));
                        }
                        let auth = p.authinfo.clone().unwrap_or_default();
                        self.write(session, cxid, &req, &auth)?;
                    }
                }
            }
            other => return Err(format!("an unexpected packet for the leader: {other:?}")),
        }
        Ok(())
    }

    /// Prepares and commits a write as the standalone server does; the reply its client
    /// must get is kept by (session, cxid).
    fn write(&mut self, session: i64, cxid: i32, req: &Request, auth: &[Id]) -> Result<(), String> {
        let op = write_opcode(req);
        let mut h = self.header(session, cxid);
        let (body, digest) = if let Request::CloseSession = req {
            self.prep.prepare_close_session(&self.tree, session, &mut h)
        } else {
            // `LeaderSessionTracker.checkSession`: with local sessions, an unknown session
            // of another server is one of its local sessions; an ephemeral needs a
            // global one (`checkGlobalSession`).
            let session_state = if self.sessions.contains_key(&session)
                || (self.local_sessions && session >> 56 != LEADER_ID && !creates_ephemeral(req))
            {
                SessionState::Live
            } else {
                SessionState::Unknown
            };
            let caller = Caller {
                session,
                session_state,
                auth,
            };
            self.prep.prepare(&self.tree, &caller, req, &mut h)
        };
        let zxid = h.zxid;
        let (body, result) = self.commit(h, body, digest)?;
        let frame = write_reply(cxid, zxid, op, &body, &result);
        self.answers.insert((session, cxid), Answer { zxid, frame });
        Ok(())
    }

    /// The leader's session expiry: a closeSession with cxid 0 nobody asked for.
    fn expire(&mut self, session: i64) -> Result<(), String> {
        if self.foreign == Some(session) {
            self.foreign = None;
        }
        let mut h = self.header(session, 0);
        let (body, digest) = self.prep.prepare_close_session(&self.tree, session, &mut h);
        self.commit(h, body, digest).map(|_| ())
    }

    /// Applies a prepared transaction to the leader's tree, records what reads and watches
    /// must see of it, and queues it for the observer.
    fn commit(
        &mut self,
        header: TxnHeader,
        body: TxnBody,
        digest: Option<TxnDigest>,
    ) -> Result<(TxnBody, TxnResult), String> {
        let zxid = header.zxid;
        let session = header.client_id;
        let entry = TxnEntry {
            header,
            body,
            digest,
        };
        let bytes = entry.to_bytes();
        let mut changes = Vec::new();
        let result = self.tree.apply(&entry.header, &entry.body, &mut changes);
        self.prep.applied(zxid);
        if let Some(d) = &entry.digest {
            if d.tree_digest != self.tree.digest() {
                return Err(format!(
                    "the leader's Prep predicted tree digest {} for zxid {zxid:#x} ({:?}); its tree has {}",
                    d.tree_digest,
                    entry.body,
                    self.tree.digest()
                ));
            }
        }
        match &entry.body {
            TxnBody::CreateSession(t) => {
                self.sessions.insert(session, t.time_out);
                self.created.insert(session, zxid);
            }
            TxnBody::CloseSession(_) => {
                self.sessions.remove(&session);
            }
            _ => {}
        }
        self.record(zxid, &changes);
        let e = LogEntry { zxid, bytes };
        self.history.push(e.clone());
        self.send(Down::Commit(e));
        Ok((entry.body, result))
    }

    /// What each change fires (`WatchManager.trigger`), and the state of every node it
    /// touched.
    fn record(&mut self, zxid: i64, changes: &[Change]) {
        let mut touched = BTreeSet::new();
        for (idx, c) in changes.iter().enumerate() {
            let t = |event| Trigger { zxid, idx, event };
            let path = c.path();
            let parent = split_path(path).0;
            match c {
                Change::Created { .. } => {
                    push_trigger(&mut self.data_triggers, path, t(EventType::NodeCreated));
                    push_trigger(
                        &mut self.child_triggers,
                        parent,
                        t(EventType::NodeChildrenChanged),
                    );
                }
                Change::Deleted { .. } => {
                    push_trigger(&mut self.data_triggers, path, t(EventType::NodeDeleted));
                    push_trigger(&mut self.child_triggers, path, t(EventType::NodeDeleted));
                    push_trigger(
                        &mut self.child_triggers,
                        parent,
                        t(EventType::NodeChildrenChanged),
                    );
                }
                Change::DataChanged { .. } => {
                    push_trigger(&mut self.data_triggers, path, t(EventType::NodeDataChanged));
                }
            }
            touched.insert(path.to_owned());
            if !parent.is_empty() {
                touched.insert(parent.to_owned());
            }
        }
        for p in touched {
            let s = node_state(&self.tree, &p);
            self.states.entry(p).or_default().push((zxid, s));
        }
    }

    /// The node at `path` as of `zxid`.
    fn state_at(&self, path: &str, zxid: i64) -> Option<&NodeState> {
        let v = self.states.get(path)?;
        let i = v.partition_point(|(z, _)| *z <= zxid);
        v.get(i.checked_sub(1)?)?.1.as_ref()
    }

    /// The first change after `since` that fires a watch of this kind on `path`.
    fn trigger(&self, kind: WatchKind, path: &str, since: i64) -> Option<Trigger> {
        let map = match kind {
            WatchKind::Data => &self.data_triggers,
            WatchKind::Child => &self.child_triggers,
        };
        let v = map.get(path)?;
        v.get(v.partition_point(|t| t.zxid <= since)).copied()
    }
}

// ---- the clients and their connections ----

#[derive(Debug, Default)]
struct Client {
    /// The session it holds (learned from a ConnectResponse).
    session: Option<i64>,
    conn: Option<ConnId>,
    /// xids go on across reconnects, as ZooKeeper's `ClientCnxn` counts them.
    next_xid: i32,
    last_zxid_seen: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Asked for a new session: the id the observer forwarded a createSession for.
    New(Option<i64>),
    /// Asked for a new session the observer makes its own (a local or read-only one):
    /// answered on the spot.
    NewLocal,
    /// Reconnecting to a session the observer answers for itself (a local session, or
    /// any while read-only): on the spot, valid or not.
    LocalReconnect {
        session: i64,
        valid: bool,
    },
    /// Reconnecting to a session: answered after the leader's REVALIDATE.
    Reconnect(i64),
    /// Reconnecting with a wrong password: refused on the spot.
    BadPassword(i64),
    Open(i64),
    /// Refused: not serving, ahead of the observer, or an invalid session.
    Refused,
}

#[derive(Debug, Clone)]
enum Expect {
    /// A write forwarded on link `link`.
    Write {
        op: OpCode,
        link: u64,
    },
    Sync {
        path: String,
        link: u64,
    },
    GetData {
        path: String,
        watch: bool,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    Ping,
    /// A write whose body did not decode.
    Malformed,
    /// Refused by the observer itself, in the session's order (NotReadOnly,
    /// EphemeralOnLocalSession).
    Refused(ErrorCode),
    /// closeSession of a local or read-only session: answered by the observer.
    LocalClose,
}

#[derive(Debug)]
struct Pending {
    xid: i32,
    what: Expect,
}

#[derive(Debug)]
struct ConnState {
    client: usize,
    /// The negotiated session timeout.
    timeout: i32,
    phase: Phase,
    /// The REVALIDATE of a reconnect went to the leader.
    revalidating: bool,
    /// Requests sent and not answered, in order.
    pending: VecDeque<Pending>,
    /// Watches set by answered reads: the zxid they were set at.
    watches: BTreeMap<(WatchKind, String), i64>,
    /// The highest zxid of a reply on it.
    last_zxid: i64,
    /// The server sent Close.
    closed: bool,
    /// The driver reported it gone (`Input::Closed`).
    gone: bool,
    /// Connected while the observer was read-only: its ConnectResponse says so, and it
    /// closes when the observer is in sync again. Also set on a connection kept through
    /// the loss of the leader (`kept`) until the observer is in sync again.
    read_only: bool,
    /// Read-write, and kept open through the loss of the leader (read-only mode).
    kept: bool,
    /// Sent no readOnly byte: its ConnectResponse has none either.
    old_client: bool,
}

/// The input whose outputs are being checked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctx {
    Connect(ConnId),
    Request(ConnId, i32),
    Durable,
    UpToDate,
    Tick,
    Revalidated { session: i64, valid: bool },
    LeaderLost,
    LogFailed,
    Other,
}

/// What a failure reports: the seed, the step and the inputs before it.
struct Diag {
    trace_len: usize,
    seed: u64,
    step: usize,
    trace: VecDeque<String>,
    fingerprint: DefaultHasher,
}

impl Diag {
    fn note(&mut self, s: String) {
        s.hash(&mut self.fingerprint);
        if self.trace.len() == self.trace_len {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("step {}: {s}", self.step));
    }

    #[track_caller]
    fn fail(&self, msg: impl std::fmt::Display) -> ! {
        let mut m = format!(
            "observer simulation, seed {seed}, step {step}: {msg}\n\
             replay: GEOKEEPER_SIM_SEED={seed} cargo test -p geokeeper-core observer_sim\n\
             the last inputs, oldest first:\n",
            seed = self.seed,
            step = self.step,
        );
        for t in &self.trace {
            m.push_str("  ");
            m.push_str(t);
            m.push('\n');
        }
        panic!("{m}");
    }
}

struct Sim {
    diag: Diag,
    rng: StdRng,
    clock: Clock,
    server: Server,
    leader: Leader,
    clients: Vec<Client>,
    conns: BTreeMap<ConnId, ConnState>,
    next_conn: ConnId,
    /// Connections closed on one side whose `Input::Closed` the driver has not fed yet.
    unclosed: BTreeSet<ConnId>,
    /// Connections that must be closed by the end of the current input.
    must_close: Vec<(ConnId, &'static str)>,
    /// Connections their clients close once the current input is handled.
    client_closes: Vec<ConnId>,
    /// Connections the current input closed.
    closed_now: Vec<ConnId>,
    /// The log: (zxid, generation) handed to it and not reported durable yet.
    log: VecDeque<(i64, u64)>,
    /// Batches of an older generation are void (`Output::LogRoll`, a failed log).
    void_below: u64,
    /// The last zxid handed to the log.
    logged_last: i64,
    /// The last zxid reported durable.
    durable: i64,
    /// Counts the links to the leader.
    link: u64,
    /// Synced and serving, as far as the driver knows.
    serving: bool,
    /// UPTODATE came before what the sync brought was durable: the observer serves once
    /// the log has made everything up to this zxid durable (and it is applied).
    serve_at: Option<i64>,
    /// The input being checked is the one that started serving (UPTODATE, or the
    /// Durable after a deferred one).
    starts_serving: bool,
    /// The core asked for a resync from scratch (`Output::Resync`).
    reset: bool,
    /// The link is up and the observer is being synced: UPTODATE is next, of a sync of
    /// this kind.
    syncing: Option<&'static str>,
    variant: Variant,
    /// The observer's local sessions (and read-only ones), as the clients saw them made.
    local: BTreeSet<i64>,
    /// Local sessions the observer upgraded (forwarded a createSession for).
    upgraded: BTreeSet<i64>,
    /// Local sessions closed whose end the observer may leave to their expiry.
    lingering: BTreeSet<i64>,
    cov: Coverage,
}

/// The observer's session settings a seed runs with.
#[derive(Debug, Clone, Copy)]
struct Variant {
    /// `localSessionsEnabled`.
    local: bool,
    /// `localSessionsUpgradingEnabled`.
    upgrading: bool,
    /// `readonlymode.enabled`.
    read_only: bool,
}

impl Variant {
    /// A quarter of the seeds each: global sessions only; local sessions, upgraded for
    /// ephemerals; read-only mode; local sessions never upgraded, with read-only mode.
    fn of(seed: u64) -> Variant {
        let (local, upgrading, read_only) = match seed % 4 {
            0 => (false, true, false),
            1 => (true, true, false),
            2 => (false, true, true),
            _ => (true, false, true),
        };
        Variant {
            local,
            upgrading,
            read_only,
        }
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let clock = Clock {
            mono_ms: 1_000,
            wall_ms: 1_700_000_000_000,
        };
        let variant = Variant::of(seed);
        let settings = Settings {
            role: Role::Observer,
            server_id: OBSERVER_ID,
            local_sessions: variant.local,
            local_sessions_upgrading: variant.upgrading,
            read_only_mode: variant.read_only,
            ..Settings::default()
        };
        let mut sim = Sim {
            diag: Diag {
                trace_len: env("GEOKEEPER_SIM_TRACE").unwrap_or(TRACE),
                seed,
                step: 0,
                trace: VecDeque::new(),
                fingerprint: DefaultHasher::new(),
            },
            rng: StdRng::seed_from_u64(seed),
            clock,
            server: Server::new(settings, DataTree::new(), clock),
            leader: Leader::new(clock.wall_ms),
            clients: (0..CLIENTS)
                .map(|_| Client {
                    next_xid: 1,
                    ..Default::default()
                })
                .collect(),
            conns: BTreeMap::new(),
            next_conn: 1,
            unclosed: BTreeSet::new(),
            must_close: Vec::new(),
            client_closes: Vec::new(),
            closed_now: Vec::new(),
            log: VecDeque::new(),
            void_below: 0,
            logged_last: 0,
            durable: 0,
            link: 0,
            serving: false,
            serve_at: None,
            starts_serving: false,
            reset: false,
            syncing: None,
            variant,
            local: BTreeSet::new(),
            upgraded: BTreeSet::new(),
            lingering: BTreeSet::new(),
            cov: Coverage::default(),
        };
        sim.leader.local_sessions = variant.local;
        // The ensemble was busy before the observer came: /a, /b and a read-only /ro.
        sim.foreign_write(None);
        for (path, acl) in [
            ("/a", open_acl_unsafe()),
            ("/b", open_acl_unsafe()),
            ("/ro", read_acl_unsafe()),
        ] {
            let req = Request::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: path.into(),
                    data: Some(Bytes::from_static(b"init")),
                    acl,
                    flags: 0,
                },
            };
            sim.foreign_write(Some(req));
        }
        sim
    }

    fn step(&mut self) {
        let dt = self.rng.random_range(1..=200);
        self.clock.mono_ms += dt;
        self.clock.wall_ms += dt as i64;
        self.leader.wall_ms = self.clock.wall_ms;
        // With read-only mode the observer is left out of sync longer: that is when it
        // serves read-only sessions.
        let resync = if self.variant.read_only { 0.1 } else { 0.2 };
        if (!self.leader.link_up || self.syncing.is_some()) && self.rng.random_bool(resync) {
            return self.resync();
        }
        match self.rng.random_range(0..1000) {
            0..=449 => self.client_step(),
            450..=579 => {
                let n = self.rng.random_range(1..=6);
                self.leader_handles(n);
            }
            580..=709 => {
                let n = self.rng.random_range(1..=8);
                self.deliver(n);
            }
            710..=839 => {
                let n = self.rng.random_range(1..=8);
                self.make_durable(n);
            }
            840..=889 => self.foreign_write(None),
            890..=895 => self.expire(),
            896..=902 => self.ping(),
            903..=910 => self.tick(),
            911..=950 => self.feed_closed(),
            951..=958 => self.late_request(),
            959..=964 => self.lose_leader(),
            965..=966 => self.fail_log(),
            _ => {
                let n = self.rng.random_range(1..=8);
                self.deliver(n);
            }
        }
    }

    // ---- feeding the server and checking what it does ----

    fn feed(&mut self, what: String, input: Input, ctx: Ctx) {
        self.diag.note(what);
        let mut out = Vec::new();
        self.server.handle(input, self.clock, &mut out);
        self.check(out, ctx);
    }

    /// The driver's timer: an observer expires its local sessions, nothing else.
    fn tick(&mut self) {
        self.diag.note("tick".into());
        let mut out = Vec::new();
        self.server.tick(self.clock, &mut out);
        self.check(out, Ctx::Tick);
    }

    /// Checks what one input (or tick) made the observer do.
    fn check(&mut self, out: Vec<Output>, ctx: Ctx) {
        let was_local = self.local.clone();
        let was_open: BTreeSet<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closed && !c.gone)
            .map(|(&id, _)| id)
            .collect();
        for o in out {
            self.output(o, ctx);
        }
        let mut server_local: BTreeSet<i64> = self
            .server
            .obs
            .local
            .iter()
            .flat_map(|l| l.iter().map(|s| s.id))
            .collect();
        let expired: BTreeSet<i64> = self
            .local
            .union(&self.lingering)
            .filter(|s| !server_local.contains(s))
            .copied()
            .collect();
        self.lingering.retain(|s| server_local.contains(s));
        server_local.retain(|s| !self.lingering.contains(s));
        let starts_serving = std::mem::take(&mut self.starts_serving);
        match ctx {
            Ctx::LeaderLost | Ctx::LogFailed => self.local.clear(),
            _ if starts_serving => {
                // Read-only sessions end when the observer is in sync again.
                if let Some((id, _)) = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.read_only && !c.kept && !c.closed && !c.gone)
                {
                    self.diag.fail(format_args!(
                        "read-only connection {id} is still open after UPTODATE"
                    ));
                }
                self.local.clear();
                // Kept connections are read-write again.
                for c in self.conns.values_mut().filter(|c| c.kept) {
                    c.kept = false;
                    c.read_only = false;
                }
            }
            Ctx::Tick => {
                self.cov.local_expiries += expired.len() as u64;
                for (id, c) in &self.conns {
                    if let Phase::Open(s) = c.phase {
                        if expired.contains(&s) && !c.closed && !c.gone {
                            self.diag.fail(format_args!(
                                "connection {id} is still open after its local session {s:#x} expired"
                            ));
                        }
                    }
                }
                for conn in &self.closed_now {
                    match self.conns.get(conn).map(|c| c.phase) {
                        Some(Phase::Open(s)) if expired.contains(&s) => {}
                        phase => self.diag.fail(format_args!(
                            "a tick closed connection {conn} ({phase:?}), whose session did not expire"
                        )),
                    }
                }
                self.local = server_local.clone();
            }
            _ => {}
        }
        self.closed_now.clear();
        if self.local != server_local {
            self.diag.fail(format_args!(
                "the observer's local sessions are {server_local:x?}, the clients know {:x?}",
                self.local
            ));
        }
        for conn in std::mem::take(&mut self.client_closes) {
            if let Some(c) = self.conns.get(&conn) {
                let client = &mut self.clients[c.client];
                if client.conn == Some(conn) {
                    client.conn = None;
                }
                if !c.gone {
                    self.unclosed.insert(conn);
                }
            }
        }
        for (conn, why) in std::mem::take(&mut self.must_close) {
            if self.conns.get(&conn).is_some_and(|c| !c.closed && !c.gone) {
                self.diag
                    .fail(format_args!("connection {conn} was not closed ({why})"));
            }
        }
        if matches!(ctx, Ctx::LeaderLost | Ctx::LogFailed) {
            // Invariant 5: every client connection is closed with the link, but in
            // read-only mode those of read-write sessions with nothing in flight, which
            // are kept (and served read-only until the observer is in sync again).
            for (id, c) in self.conns.iter_mut() {
                // (A connection its client gave up, after a closeSession, is not.)
                let keepable = self.variant.read_only
                    && self.clients[c.client].conn == Some(*id)
                    && !c.read_only
                    && c.pending.is_empty()
                    && matches!(c.phase, Phase::Open(s) if !was_local.contains(&s));
                let open = !c.closed && !c.gone;
                if open && !keepable {
                    self.diag.fail(format_args!(
                        "connection {id} ({:?}) is still open after the leader was lost ({:?} pending, read-only {}, revalidating {}, owned {}, was local {})",
                        c.phase, c.pending, c.read_only, c.revalidating,
                        self.clients[c.client].conn == Some(*id),
                        matches!(c.phase, Phase::Open(s) if was_local.contains(&s)),
                    ));
                }
                if keepable && !c.closed {
                    c.read_only = true;
                    c.kept = true;
                    self.cov.kept_connections += 1;
                } else if keepable && was_open.contains(id) {
                    self.diag.fail(format_args!(
                        "connection {id} ({:?}) had nothing in flight but was closed with the link in read-only mode ({:?} pending, client {} owns {:?})",
                        c.phase, c.pending, c.client, self.clients[c.client].conn
                    ));
                }
            }
        }
        if self.server.obs.serving != self.serving {
            self.diag.fail(format_args!(
                "the observer says serving = {}, the driver expects {}",
                self.server.obs.serving, self.serving
            ));
        }
        // Connections gone on both sides can see nothing more: forget them.
        self.conns.retain(|_, c| !(c.closed && c.gone));
    }

    fn output(&mut self, o: Output, ctx: Ctx) {
        match o {
            Output::Send { conn, frame } => self.on_frame(conn, &frame, ctx),
            Output::Established { conn, session } => {
                let phase = self.conns.get(&conn).map(|c| c.phase);
                if phase != Some(Phase::Open(session)) {
                    self.diag.fail(format_args!(
                        "Established for connection {conn}, session {session:#x}, which is {phase:?}"
                    ));
                }
            }
            Output::Close { conn } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    self.diag
                        .fail(format_args!("Close for unknown connection {conn}"));
                };
                if !c.closed {
                    self.closed_now.push(conn);
                    c.closed = true;
                    if !c.gone {
                        self.unclosed.insert(conn);
                    }
                    match ctx {
                        Ctx::Connect(k) if k != conn => self.cov.takeovers += 1,
                        Ctx::Durable
                            if matches!(c.phase, Phase::Open(_))
                                && !self.must_close.iter().any(|&(m, _)| m == conn) =>
                        {
                            self.cov.expiries_closed += 1
                        }
                        _ => {}
                    }
                }
                let client = &mut self.clients[c.client];
                if client.conn == Some(conn) {
                    client.conn = None;
                }
            }
            Output::Log {
                entries,
                generation,
            } => {
                if generation < self.void_below {
                    self.diag.fail(format_args!(
                        "a log batch of generation {generation}, void since {}",
                        self.void_below
                    ));
                }
                for e in entries {
                    if e.zxid <= self.logged_last {
                        self.diag.fail(format_args!(
                            "zxid {:#x} logged after {:#x}",
                            e.zxid, self.logged_last
                        ));
                    }
                    self.logged_last = e.zxid;
                    let h = &self.leader.history;
                    match h.binary_search_by_key(&e.zxid, |x| x.zxid) {
                        Ok(i) if h[i].bytes == e.bytes => {}
                        _ => self.diag.fail(format_args!(
                            "logged zxid {:#x} is not the leader's transaction",
                            e.zxid
                        )),
                    }
                    self.log.push_back((e.zxid, generation));
                }
            }
            Output::LogRoll { generation } => {
                self.void_below = generation;
                self.log.retain(|&(_, g)| g >= generation);
            }
            Output::ToLeader(p) => self.for_leader(p, ctx),
            // No subscribers in this simulation.
            Output::Publish(_) => {}
            Output::Resync { reason } => {
                if ctx != Ctx::LogFailed {
                    self.diag
                        .fail(format_args!("the observer asked for a resync: {reason}"));
                }
                self.reset = true;
                self.serving = false;
                self.serve_at = None;
            }
            Output::SnapshotBegin { .. }
            | Output::SnapshotNodes(_)
            | Output::SnapshotFinish { .. }
            | Output::SnapshotAbort => {}
        }
    }

    fn for_leader(&mut self, p: QuorumPacket, ctx: Ctx) {
        if !self.leader.link_up {
            self.diag.fail(format_args!(
                "a packet for the leader while there is no link: {p:?}"
            ));
        }
        let create_session = p.kind() == Some(PacketType::Request)
            && p.body().get(12..16) == Some(&(OpCode::CreateSession as i32).to_be_bytes());
        if let (Ctx::Request(conn, _), true) = (ctx, create_session) {
            // `checkUpgradeSession`: a local session about to create an ephemeral.
            let session = self.conns.get(&conn).and_then(|c| match c.phase {
                Phase::Open(s) => Some(s),
                _ => None,
            });
            match session {
                Some(s) if self.variant.upgrading && self.local.remove(&s) => {
                    self.upgraded.insert(s);
                    self.cov.upgrades += 1;
                }
                _ => self.diag.fail(format_args!(
                    "connection {conn} (session {session:x?}) sent the leader a createSession"
                )),
            }
        } else if create_session && !matches!(ctx, Ctx::Connect(_)) {
            self.diag.fail(format_args!(
                "a createSession for the leader while handling {ctx:?}"
            ));
        }
        if let Ctx::Connect(conn) = ctx {
            let body = p.body();
            let session = body
                .get(..8)
                .map(|b| i64::from_be_bytes(b.try_into().unwrap_or_default()));
            let c = self
                .conns
                .get_mut(&conn)
                .expect("the connection being connected");
            match (p.kind(), c.phase, session) {
                (Some(PacketType::Request), Phase::New(None), Some(id))
                    if body.get(12..16) == Some(&(OpCode::CreateSession as i32).to_be_bytes()) =>
                {
                    c.phase = Phase::New(Some(id));
                }
                (Some(PacketType::Revalidate), Phase::Reconnect(s), Some(id)) if s == id => {
                    c.revalidating = true;
                }
                _ => self.diag.fail(format_args!(
                    "connection {conn} ({:?}) sent the leader {p:?}",
                    c.phase
                )),
            }
        }
        self.leader.inbox.push_back(p);
    }

    fn on_frame(&mut self, conn: ConnId, frame: &Bytes, ctx: Ctx) {
        let Some(c) = self.conns.get(&conn) else {
            self.diag.fail(format_args!(
                "a frame for connection {conn}, which is closed and gone"
            ));
        };
        if c.closed || c.gone {
            self.diag.fail(format_args!(
                "a frame for connection {conn} after it was closed (closed by the server: {}, gone: {})",
                c.closed, c.gone
            ));
        }
        let len = frame
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if len != Some(frame.len() as i32 - 4) {
            self.diag.fail(format_args!(
                "a frame whose length prefix is {len:?}: {frame:?}"
            ));
        }
        match c.phase {
            Phase::Open(session) => self.on_reply(conn, session, frame, ctx),
            Phase::Refused => self.diag.fail(format_args!(
                "a frame for connection {conn} after its session was refused"
            )),
            _ => self.on_connect_response(conn, &frame[4..], ctx),
        }
    }

    fn on_connect_response(&mut self, conn: ConnId, body: &[u8], ctx: Ctx) {
        let applied = self.server.tree().last_zxid();
        let rsp = ConnectResponse::decode(&mut Reader::new(body))
            .unwrap_or_else(|e| self.diag.fail(format_args!("a bad ConnectResponse: {e}")));
        let c = self.conns.get_mut(&conn).expect("checked by on_frame");
        let expected = match (c.phase, ctx) {
            (Phase::New(Some(id)), Ctx::Durable) => {
                match self.leader.created.get(&id) {
                    Some(&z) if z <= applied => {}
                    z => self.diag.fail(format_args!(
                        "session {id:#x} was answered before its createSession (at {z:?}) was applied (at {applied:#x})"
                    )),
                }
                id
            }
            (Phase::Reconnect(s), Ctx::Revalidated { session, valid }) if s == session => {
                if valid {
                    s
                } else {
                    0
                }
            }
            (Phase::BadPassword(_), Ctx::Connect(k)) if k == conn => 0,
            (Phase::NewLocal, Ctx::Connect(k)) if k == conn => {
                let id = rsp.session_id;
                if id >> 56 != OBSERVER_ID as i64
                    || self.leader.created.contains_key(&id)
                    || self.local.contains(&id)
                {
                    self.diag.fail(format_args!(
                        "connection {conn} got new local session {id:#x}, which is not a fresh id of this observer"
                    ));
                }
                self.local.insert(id);
                id
            }
            (Phase::LocalReconnect { session, valid }, Ctx::Connect(k)) if k == conn => {
                if valid {
                    session
                } else {
                    0
                }
            }
            (phase, ctx) => self.diag.fail(format_args!(
                "connection {conn} ({phase:?}) got a ConnectResponse while handling {ctx:?}: {rsp:?}"
            )),
        };
        if rsp.session_id != expected {
            self.diag.fail(format_args!(
                "connection {conn} ({:?}) got session {:#x}, expected {expected:#x}",
                c.phase, rsp.session_id
            ));
        }
        if !c.old_client && rsp.read_only != c.read_only {
            self.diag.fail(format_args!(
                "connection {conn} ({:?}) expected read-only {}: {rsp:?}",
                c.phase, c.read_only
            ));
        }
        match c.phase {
            Phase::New(_) => self.cov.sessions_created += 1,
            Phase::NewLocal if c.read_only => self.cov.read_only_sessions += 1,
            Phase::NewLocal => self.cov.local_sessions += 1,
            Phase::LocalReconnect { .. } => self.cov.local_reconnects += 1,
            Phase::Reconnect(_) if expected != 0 => self.cov.revalidated += 1,
            Phase::Reconnect(_) => self.cov.revalidation_refused += 1,
            _ => self.cov.bad_passwords += 1,
        }
        let client = &mut self.clients[c.client];
        if expected == 0 {
            if rsp.time_out != 0 || rsp.passwd[..] != [0; 16] {
                self.diag
                    .fail(format_args!("a refusal that is not all zeros: {rsp:?}"));
            }
            if let Phase::Reconnect(s)
            | Phase::BadPassword(s)
            | Phase::LocalReconnect { session: s, .. } = c.phase
            {
                if client.session == Some(s) {
                    client.session = None;
                }
            }
            c.phase = Phase::Refused;
            self.must_close.push((conn, "its session was refused"));
        } else {
            if rsp.time_out != c.timeout || rsp.passwd[..] != session_password(expected)[..] {
                self.diag.fail(format_args!(
                    "connection {conn} expected timeout {} and the session's password: {rsp:?}",
                    c.timeout
                ));
            }
            c.phase = Phase::Open(expected);
            if client.conn == Some(conn) {
                client.session = Some(expected);
            }
        }
    }

    fn on_reply(&mut self, conn: ConnId, session: i64, frame: &Bytes, ctx: Ctx) {
        let applied = self.server.tree().last_zxid();
        let mut r = Reader::new(&frame[4..]);
        let h = ReplyHeader::decode(&mut r)
            .unwrap_or_else(|e| self.diag.fail(format_args!("a bad ReplyHeader: {e}")));
        if h.xid == xid::NOTIFICATION {
            return self.on_event(conn, &mut r, applied);
        }
        let c = self.conns.get_mut(&conn).expect("checked by on_frame");
        // Invariants 1 and 6: in order, once.
        let Some(p) = c.pending.pop_front() else {
            self.diag.fail(format_args!(
                "a reply to xid {} on connection {conn}, which has nothing outstanding",
                h.xid
            ));
        };
        // Caught here: requests of a local session being upgraded dropped unanswered
        // (seeds 1 and 73 before the fix: it was in neither tracker until its
        // createSession applied), and a sync overtaken by a later write's reply (117 of
        // 200 seeds before fba4ff8).
        if p.xid != h.xid {
            self.diag.fail(format_args!(
                "on connection {conn} xid {} was answered (err {}, zxid {:#x}) while xid {} ({:?}) was outstanding before it",
                h.xid, h.err, h.zxid, p.xid, p.what
            ));
        }
        // Caught here (seed 23 before the fix): a read-only connection left open across
        // `Input::Install` saw the tree emptied for a resync from scratch (ZooKeeper
        // shuts its read-only server down before it syncs with a leader).
        if h.zxid < c.last_zxid || h.zxid > applied {
            self.diag.fail(format_args!(
                "the reply to xid {} on connection {conn} has zxid {:#x}: the last reply had {:#x}, the tree is at {applied:#x}",
                h.xid, h.zxid, c.last_zxid
            ));
        }
        c.last_zxid = h.zxid;
        // Invariant 2: every watch of this connection fired at or before this zxid has
        // sent its event already. Caught here (seed 62 before the fix): a read-only
        // connection's watches never fired for what an `Input::Install` (SNAP) brought.
        for ((kind, path), since) in &c.watches {
            if let Some(t) = self.leader.trigger(*kind, path, *since) {
                if t.zxid <= h.zxid {
                    self.diag.fail(format_args!(
                        "the reply to xid {} (zxid {:#x}) on connection {conn} left before the {:?} event of {path} (zxid {:#x}) its {kind:?} watch set at {since:#x} must see first",
                        h.xid, h.zxid, t.event, t.zxid
                    ));
                }
            }
        }
        let client = &mut self.clients[c.client];
        client.last_zxid_seen = client.last_zxid_seen.max(h.zxid);
        if matches!(
            p.what,
            Expect::GetData { .. } | Expect::Exists { .. } | Expect::GetChildren { .. }
        ) {
            self.cov.reads += 1;
        }
        let ok = ErrorCode::Ok.code();
        let no_node = ErrorCode::NoNode.code();
        let fail = |what: &str| -> ! {
            self.diag.fail(format_args!(
                "xid {} on connection {conn} ({:?}) at zxid {:#x}: {what}",
                p.xid, p.what, h.zxid
            ))
        };
        match &p.what {
            Expect::Write { op, link } => {
                let Some(a) = self.leader.answers.get(&(session, p.xid)) else {
                    fail("answered, but the leader never committed it");
                };
                if a.frame != *frame {
                    let theirs = ReplyHeader::decode(&mut Reader::new(&a.frame[4..]));
                    fail(&format!(
                        "the reply (err {}) is not the leader's result ({theirs:?}; {} bytes vs {})",
                        h.err,
                        a.frame.len(),
                        frame.len()
                    ));
                }
                if a.zxid > self.durable {
                    fail(&format!(
                        "answered before it was durable (the log is durable up to {:#x})",
                        self.durable
                    ));
                }
                if *link != self.link {
                    fail(&format!(
                        "forwarded on link {link}, answered on link {}",
                        self.link
                    ));
                }
                if *op == OpCode::CloseSession {
                    self.must_close
                        .push((conn, "its closeSession was answered"));
                    self.cov.close_sessions += 1;
                }
                if h.err == ok {
                    self.cov.writes_ok += 1;
                } else {
                    self.cov.write_errors += 1;
                }
                if *op == OpCode::Multi {
                    self.cov.multis += 1;
                }
            }
            Expect::Sync { path, link } => {
                let rsp = SyncResponse::decode(&mut r);
                if h.err != ok || rsp.as_ref().map(|s| &s.path) != Ok(path) {
                    fail(&format!("the reply is err {}, {rsp:?}", h.err));
                }
                // Invariant 3.
                match self.leader.sync_floors.get(&(session, p.xid)) {
                    Some(&floor) if h.zxid >= floor => {}
                    floor => fail(&format!(
                        "the leader was at {floor:?} when it answered the sync"
                    )),
                }
                if *link != self.link {
                    fail(&format!(
                        "forwarded on link {link}, answered on link {}",
                        self.link
                    ));
                }
                self.cov.syncs += 1;
            }
            Expect::GetData { path, watch } => match self.leader.state_at(path, h.zxid) {
                Some(s) => {
                    let rsp = GetDataResponse::decode(&mut r);
                    let want = GetDataResponse {
                        data: s.data.clone(),
                        stat: s.stat.clone(),
                    };
                    if h.err != ok || rsp.as_ref() != Ok(&want) {
                        fail(&format!(
                            "got err {}, {rsp:?}; the leader had {want:?}",
                            h.err
                        ));
                    }
                    if *watch {
                        c.watches
                            .entry((WatchKind::Data, path.clone()))
                            .or_insert(h.zxid);
                    }
                }
                None if h.err == no_node => {}
                None => fail(&format!("got err {}; the leader had no node", h.err)),
            },
            Expect::Exists { path, watch } => {
                match self.leader.state_at(path, h.zxid) {
                    Some(s) => {
                        let rsp = ExistsResponse::decode(&mut r);
                        if h.err != ok || rsp.as_ref().map(|x| &x.stat) != Ok(&s.stat) {
                            fail(&format!(
                                "got err {}, {rsp:?}; the leader had {:?}",
                                h.err, s.stat
                            ));
                        }
                    }
                    None if h.err == no_node => {}
                    None => fail(&format!("got err {}; the leader had no node", h.err)),
                }
                // exists sets its watch whether or not the node is there.
                if *watch {
                    c.watches
                        .entry((WatchKind::Data, path.clone()))
                        .or_insert(h.zxid);
                }
            }
            Expect::GetChildren { path, watch } => match self.leader.state_at(path, h.zxid) {
                Some(s) => {
                    let rsp = GetChildrenResponse::decode(&mut r);
                    let mut got = rsp.as_ref().map(|x| x.children.clone()).unwrap_or_default();
                    got.sort();
                    if h.err != ok || rsp.is_err() || got != s.children {
                        fail(&format!(
                            "got err {}, {rsp:?}; the leader had {:?}",
                            h.err, s.children
                        ));
                    }
                    if *watch {
                        c.watches
                            .entry((WatchKind::Child, path.clone()))
                            .or_insert(h.zxid);
                    }
                }
                None if h.err == no_node => {}
                None => fail(&format!("got err {}; the leader had no node", h.err)),
            },
            Expect::Ping => {
                if h.err != ok {
                    fail(&format!("got err {}", h.err));
                }
            }
            Expect::Malformed => {
                // Answered here, in the session's order, as ZooKeeper's observer does.
                if h.err != ErrorCode::MarshallingError.code() {
                    fail(&format!("got err {}", h.err));
                }
                self.cov.malformed += 1;
            }
            Expect::Refused(code) => {
                if h.err != code.code() {
                    fail(&format!("got err {}", h.err));
                }
                self.cov.refused_here += 1;
            }
            Expect::LocalClose => {
                if h.err != ok {
                    fail(&format!("got err {}", h.err));
                }
                self.cov.local_closes += 1;
                if ctx == Ctx::Request(conn, p.xid) {
                    // Nothing of the session was outstanding: the connection closes now.
                    self.must_close
                        .push((conn, "its local closeSession was answered"));
                } else {
                    // Answered in turn, behind forwarded requests: the client closes the
                    // connection. (`close_local` then leaves the local session to expire,
                    // where ZooKeeper removes it as it answers; either is accepted.)
                    self.client_closes.push(conn);
                }
            }
        }
    }

    fn on_event(&mut self, conn: ConnId, r: &mut Reader<'_>, applied: i64) {
        let ev = WatcherEvent::decode(r)
            .unwrap_or_else(|e| self.diag.fail(format_args!("a bad WatcherEvent: {e}")));
        let c = self.conns.get_mut(&conn).expect("checked by on_frame");
        if ev.state != SYNC_CONNECTED {
            self.diag
                .fail(format_args!("an event in state {}", ev.state));
        }
        let mut hit = Vec::new();
        for kind in [WatchKind::Data, WatchKind::Child] {
            let key = (kind, ev.path.clone());
            let Some(&since) = c.watches.get(&key) else {
                continue;
            };
            if let Some(t) = self.leader.trigger(kind, &ev.path, since) {
                if t.event as i32 == ev.r#type && t.zxid <= applied {
                    hit.push((key, t));
                }
            }
        }
        let Some(first) = hit.iter().map(|(_, t)| *t).min_by_key(Trigger::at) else {
            self.diag.fail(format_args!(
                "connection {conn} got event type {} for {} (the tree is at {applied:#x}), which none of its watches fires: {:?}",
                ev.r#type, ev.path, c.watches
            ));
        };
        self.cov.events += 1;
        // One change fires a path's data and child watches with one event.
        for (key, t) in hit {
            if t.at() == first.at() {
                c.watches.remove(&key);
            }
        }
        for ((kind, path), since) in &c.watches {
            if let Some(t) = self.leader.trigger(*kind, path, *since) {
                if t.at() < first.at() {
                    self.diag.fail(format_args!(
                        "on connection {conn} the {:?} event of {} (zxid {:#x}) left before the {:?} event of {path} (zxid {:#x}, {kind:?} watch)",
                        first.event, ev.path, first.zxid, t.event, t.zxid
                    ));
                }
            }
        }
    }

    // ---- the clients ----

    fn client_step(&mut self) {
        let i = self.rng.random_range(0..CLIENTS);
        let Some(conn) = self.clients[i].conn else {
            return self.connect(i);
        };
        let open = matches!(self.conns[&conn].phase, Phase::Open(_));
        let r = self.rng.random_range(0..100);
        if !open {
            // Waiting for the handshake; now and then the client gives up on it.
            if r < 5 {
                self.client_drops(i, conn);
            }
            return;
        }
        match r {
            0..=2 => self.client_drops(i, conn),
            3 => {
                // The client goes away for good: its session is left to expire.
                self.clients[i].session = None;
                self.client_drops(i, conn);
            }
            4..=6 => self.connect(i),
            _ => {
                let n = match self.rng.random_range(0..10) {
                    0..=3 => 1,
                    4..=6 => 2,
                    7..=8 => 3,
                    _ => 5,
                };
                self.send_requests(i, conn, n);
            }
        }
    }

    /// The client closes its socket.
    fn client_drops(&mut self, i: usize, conn: ConnId) {
        self.clients[i].conn = None;
        self.unclosed.remove(&conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.gone = true;
        }
        self.feed(
            format!("client {i} drops connection {conn}"),
            Input::Closed { conn },
            Ctx::Other,
        );
    }

    /// Connects client `i` anew: a new session, or its session again (a reconnect that may
    /// take over its current connection, or a wrong password).
    fn connect(&mut self, i: usize) {
        if let Some(old) = self.clients[i].conn.take() {
            // The client gives up its connection: the driver sees it close now or later.
            if self.rng.random_bool(0.5) {
                self.client_drops(i, old);
            } else {
                self.unclosed.insert(old);
            }
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let asked: i32 = if self.rng.random_bool(0.5) {
            self.rng.random_range(1_000..8_000)
        } else {
            self.rng.random_range(1_000..60_000)
        };
        let wrong_password = self.rng.random_bool(0.05);
        let old_client = self.rng.random_bool(0.1);
        // Old clients cannot ask for a read-only session.
        let can_read_only = !old_client && self.rng.random_bool(0.7);
        let session_id = self.clients[i].session.unwrap_or(0);
        let passwd = if session_id == 0 {
            Bytes::from_static(&[0; 16])
        } else if wrong_password {
            Bytes::from_static(&[7; 16])
        } else {
            Bytes::copy_from_slice(&session_password(session_id))
        };
        let last_zxid_seen = self.clients[i].last_zxid_seen;
        // What the observer must do, in `connect`'s order.
        let read_only = self.variant.read_only && !self.serving;
        let refused = (!self.serving && !read_only)
            || (read_only && !can_read_only)
            || last_zxid_seen > self.server.tree().last_zxid();
        let phase = if session_id == 0 {
            if read_only || self.variant.local {
                Phase::NewLocal
            } else {
                Phase::New(None)
            }
        } else if self.local.contains(&session_id) || read_only {
            let live =
                self.local.contains(&session_id) || self.server.sessions().contains(session_id);
            Phase::LocalReconnect {
                session: session_id,
                valid: !wrong_password && live,
            }
        } else if wrong_password {
            Phase::BadPassword(session_id)
        } else {
            Phase::Reconnect(session_id)
        };
        self.conns.insert(
            conn,
            ConnState {
                client: i,
                timeout: asked.clamp(4_000, 40_000),
                phase,
                revalidating: false,
                pending: VecDeque::new(),
                watches: BTreeMap::new(),
                last_zxid: 0,
                closed: false,
                gone: false,
                read_only,
                kept: false,
                old_client,
            },
        );
        self.clients[i].conn = Some(conn);
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            time_out: asked,
            session_id,
            passwd,
            read_only: can_read_only,
        };
        self.feed(
            format!(
                "client {i} connects on {conn}: session {session_id:#x} ({phase:?}), last zxid seen {last_zxid_seen:#x}, read-only allowed {can_read_only}"
            ),
            Input::Connect {
                conn,
                peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
                req,
                old_client,
            },
            Ctx::Connect(conn),
        );
        let c = &self.conns[&conn];
        let fine = if refused {
            c.closed && c.phase == phase
        } else {
            match phase {
                Phase::New(_) => matches!(c.phase, Phase::New(Some(_))) && !c.closed,
                Phase::Reconnect(_) => c.revalidating && !c.closed,
                Phase::NewLocal | Phase::LocalReconnect { valid: true, .. } => {
                    matches!(c.phase, Phase::Open(_)) && !c.closed
                }
                _ => c.closed && c.phase == Phase::Refused,
            }
        };
        if !fine {
            self.diag.fail(format_args!(
                "connection {conn} ({phase:?}, refused: {refused}) ended its ConnectRequest as {:?}, closed: {}, revalidating: {}",
                c.phase, c.closed, c.revalidating
            ));
        }
        if refused {
            self.cov.connects_refused += 1;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.phase = Phase::Refused;
            }
        }
    }

    fn send_requests(&mut self, i: usize, conn: ConnId, n: usize) {
        for _ in 0..n {
            if self.conns.get(&conn).is_none_or(|c| c.closed) {
                return;
            }
            let req = self.random_request();
            let xid = if let Request::Ping = req {
                xid::PING
            } else {
                let x = self.clients[i].next_xid;
                self.clients[i].next_xid += 1;
                x
            };
            let what = match &req {
                Request::Sync(r) => Expect::Sync {
                    path: r.path.clone(),
                    link: self.link,
                },
                Request::GetData(r) => Expect::GetData {
                    path: r.path.clone(),
                    watch: r.watch,
                },
                Request::Exists(r) => Expect::Exists {
                    path: r.path.clone(),
                    watch: r.watch,
                },
                Request::GetChildren(r) => Expect::GetChildren {
                    path: r.path.clone(),
                    watch: r.watch,
                },
                Request::Ping => Expect::Ping,
                Request::Malformed { .. } => Expect::Malformed,
                w => Expect::Write {
                    op: write_opcode(w),
                    link: self.link,
                },
            };
            // What the observer answers by itself (`observer_write`).
            let c = &self.conns[&conn];
            let local = matches!(c.phase, Phase::Open(s) if self.local.contains(&s));
            let forwarded = req.is_write() || matches!(req, Request::Sync(_));
            let what = match &req {
                Request::CloseSession if c.read_only || local => Expect::LocalClose,
                _ if c.read_only && forwarded => Expect::Refused(ErrorCode::NotReadOnly),
                r if local && !self.variant.upgrading && creates_ephemeral(r) => {
                    Expect::Refused(ErrorCode::EphemeralOnLocalSession)
                }
                _ => what,
            };
            let closing = matches!(req, Request::CloseSession);
            if closing {
                // The client is done with the session and the connection, whatever comes
                // of the close (ZooKeeper's `close()` is final). Whether the observer
                // ends a local session now or as it answers, it is no longer the clients'.
                self.clients[i].session = None;
                self.clients[i].conn = None;
                if let Phase::Open(s) = self.conns[&conn].phase {
                    if self.local.remove(&s) {
                        self.lingering.insert(s);
                    }
                }
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                c.pending.push_back(Pending { xid, what });
            }
            self.feed(
                format!("client {i} on {conn}: xid {xid} {}", describe(&req)),
                Input::Request { conn, xid, req },
                Ctx::Request(conn, xid),
            );
            if closing {
                return;
            }
        }
    }

    /// A request on a connection the server has closed, read before the socket went: never
    /// answered.
    fn late_request(&mut self) {
        let closed: Vec<ConnId> = self
            .unclosed
            .iter()
            .copied()
            .filter(|c| self.conns.get(c).is_some_and(|c| c.closed))
            .collect();
        if closed.is_empty() {
            return;
        }
        let conn = closed[self.rng.random_range(0..closed.len())];
        let req = Request::GetData(GetDataRequest {
            path: "/a".into(),
            watch: true,
        });
        self.feed(
            format!("a late request on closed connection {conn}"),
            Input::Request {
                conn,
                xid: 1_000_000,
                req,
            },
            Ctx::Other,
        );
    }

    /// The driver reports some connections closed on one side as gone.
    fn feed_closed(&mut self) {
        let ids: Vec<ConnId> = self.unclosed.iter().copied().collect();
        for conn in ids {
            if self.rng.random_bool(0.5) {
                self.unclosed.remove(&conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.gone = true;
                }
                self.feed(
                    format!("connection {conn} is gone"),
                    Input::Closed { conn },
                    Ctx::Other,
                );
            }
        }
    }

    // ---- requests ----

    fn random_path(&mut self) -> String {
        if self.rng.random_bool(0.25) {
            let nodes: Vec<String> = self
                .leader
                .tree
                .walk()
                .into_iter()
                .filter(|p| p != "/" && !p.starts_with("/zookeeper"))
                .collect();
            if !nodes.is_empty() {
                return nodes[self.rng.random_range(0..nodes.len())].clone();
            }
        }
        PATHS[self.rng.random_range(0..PATHS.len())].to_owned()
    }

    fn random_data(&mut self) -> Option<Bytes> {
        if self.rng.random_bool(0.1) {
            return None;
        }
        Some(Bytes::from(format!("v{}", self.rng.random_range(0..100))))
    }

    fn random_version(&mut self, any: f64) -> i32 {
        if self.rng.random_bool(any) {
            -1
        } else {
            self.rng.random_range(0..3)
        }
    }

    fn random_create(&mut self) -> CreateRequest {
        let flags = match self.rng.random_range(0..100) {
            0..=59 => 0,
            60..=79 => 1,
            80..=89 => 2,
            _ => 3,
        };
        let path = if flags & 2 != 0 {
            let parent = ["/a", "/b", "/ro", "/a/x"][self.rng.random_range(0..4)];
            format!("{parent}/s")
        } else {
            self.random_path()
        };
        let acl = match self.rng.random_range(0..100) {
            // An empty ACL is InvalidACL.
            0..=2 => Vec::new(),
            _ if path == "/ro" => read_acl_unsafe(),
            _ => open_acl_unsafe(),
        };
        CreateRequest {
            path,
            data: self.random_data(),
            acl,
            flags,
        }
    }

    fn random_write(&mut self) -> Request {
        match self.rng.random_range(0..100) {
            0..=39 => Request::Create {
                op: if self.rng.random_bool(0.5) {
                    OpCode::Create
                } else {
                    OpCode::Create2
                },
                req: self.random_create(),
            },
            40..=64 => Request::SetData(SetDataRequest {
                path: self.random_path(),
                data: self.random_data(),
                version: self.random_version(0.5),
            }),
            65..=84 => Request::Delete(DeleteRequest {
                path: self.random_path(),
                version: self.random_version(0.7),
            }),
            _ => {
                let n = self.rng.random_range(1..=3);
                let ops = (0..n)
                    .map(|_| match self.rng.random_range(0..4) {
                        0 => MultiOp::Create {
                            op: OpCode::Create,
                            req: self.random_create(),
                        },
                        1 => MultiOp::SetData(SetDataRequest {
                            path: self.random_path(),
                            data: self.random_data(),
                            version: self.random_version(0.6),
                        }),
                        2 => MultiOp::Delete(DeleteRequest {
                            path: self.random_path(),
                            version: self.random_version(0.8),
                        }),
                        _ => MultiOp::Check(CheckVersionRequest {
                            path: self.random_path(),
                            version: self.random_version(0.5),
                        }),
                    })
                    .collect();
                Request::Multi(ops)
            }
        }
    }

    fn random_request(&mut self) -> Request {
        let watch = self.rng.random_bool(0.6);
        match self.rng.random_range(0..100) {
            0..=51 => self.random_write(),
            52..=63 => Request::GetData(GetDataRequest {
                path: self.random_path(),
                watch,
            }),
            64..=71 => Request::Exists(ExistsRequest {
                path: self.random_path(),
                watch,
            }),
            72..=80 => Request::GetChildren(GetChildrenRequest {
                path: if self.rng.random_bool(0.15) {
                    "/".into()
                } else {
                    self.random_path()
                },
                watch,
            }),
            81..=91 => Request::Sync(SyncRequest {
                path: self.random_path(),
            }),
            92..=96 => Request::Ping,
            97 => Request::Malformed {
                op: OpCode::SetData,
                reason: "cut short".into(),
            },
            _ => Request::CloseSession,
        }
    }

    // ---- the leader ----

    fn leader_handles(&mut self, n: usize) {
        for _ in 0..n {
            let Some(p) = self.leader.inbox.pop_front() else {
                return;
            };
            self.diag
                .note(format!("the leader handles {}", describe_packet(&p)));
            if let Err(e) = self.leader.handle(p) {
                self.diag.fail(e);
            }
        }
    }

    /// A write by a client of another server, straight at the leader (`None`: a random
    /// one, or the end of its session); the first starts a session.
    fn foreign_write(&mut self, req: Option<Request>) {
        let session = match self.leader.foreign {
            Some(s) => s,
            None => {
                let l = &mut self.leader;
                l.foreign_count += 1;
                let id = FOREIGN_SESSIONS + l.foreign_count;
                l.foreign = Some(id);
                l.foreign_cxid = 0;
                self.diag
                    .note(format!("another server's client starts session {id:#x}"));
                let mut h = l.header(id, 0);
                let (body, digest) = l.prep.prepare_create_session(&l.tree, 30_000, &mut h);
                if let Err(e) = l.commit(h, body, digest) {
                    self.diag.fail(e);
                }
                id
            }
        };
        let req = match req {
            Some(r) => r,
            None if self.rng.random_bool(0.08) => {
                self.leader.foreign = None;
                Request::CloseSession
            }
            None => self.random_write(),
        };
        self.diag.note(format!(
            "another server's client {session:#x}: {}",
            describe(&req)
        ));
        let l = &mut self.leader;
        l.foreign_cxid += 1;
        if let Err(e) = l.write(session, l.foreign_cxid, &req, &[]) {
            self.diag.fail(e);
        }
    }

    /// The leader expires a session, the observer's clients' or another server's.
    fn expire(&mut self) {
        let ids: Vec<i64> = self.leader.sessions.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let s = ids[self.rng.random_range(0..ids.len())];
        self.diag.note(format!("the leader expires session {s:#x}"));
        if let Err(e) = self.leader.expire(s) {
            self.diag.fail(e);
        }
    }

    fn ping(&mut self) {
        if !self.leader.link_up {
            return;
        }
        let zxid = self.leader.last_zxid;
        self.feed(
            format!("the leader pings at {zxid:#x}"),
            Input::LeaderPing { zxid },
            Ctx::Other,
        );
        // The answer to the ping: the sessions touched, every one a session the leader
        // created. (One closed since it was touched may still be listed, where ZooKeeper's
        // `LearnerSessionTracker.removeSession` drops it from the touch table; the leader's
        // touch of a closed session does nothing.)
        let touched = self.server.take_touched();
        if let Some((s, _)) = touched
            .iter()
            .find(|(s, _)| !self.leader.created.contains_key(s) && !self.upgraded.contains(s))
        {
            self.diag.fail(format_args!(
                "the observer reports session {s:#x} touched, which the leader never created nor the observer upgraded"
            ));
        }
    }

    /// Delivers the first `n` messages of the link, commits in batches of any size.
    fn deliver(&mut self, n: usize) {
        let mut batch: Vec<LogEntry> = Vec::new();
        for _ in 0..n {
            let Some(d) = self.leader.link.pop_front() else {
                break;
            };
            match d {
                Down::Commit(e) => {
                    batch.push(e);
                    if self.rng.random_bool(0.3) {
                        self.feed_batch(std::mem::take(&mut batch), "COMMIT");
                    }
                }
                Down::Sync => {
                    self.feed_batch(std::mem::take(&mut batch), "COMMIT");
                    self.feed("SYNC".into(), Input::Synced, Ctx::Other);
                }
                Down::Revalidated { session, valid } => {
                    self.feed_batch(std::mem::take(&mut batch), "COMMIT");
                    self.feed(
                        format!("REVALIDATE answer: session {session:#x} valid {valid}"),
                        Input::Revalidated { session, valid },
                        Ctx::Revalidated { session, valid },
                    );
                }
            }
        }
        self.feed_batch(batch, "COMMIT");
    }

    /// Feeds committed transactions, split into `Input::Committed` batches at random.
    fn feed_batch(&mut self, mut entries: Vec<LogEntry>, kind: &str) {
        while !entries.is_empty() {
            let n = self.rng.random_range(1..=entries.len());
            let rest = entries.split_off(n);
            let batch = std::mem::replace(&mut entries, rest);
            self.feed(
                format!(
                    "{kind}: {} txns {:#x}..={:#x}",
                    batch.len(),
                    batch[0].zxid,
                    batch[batch.len() - 1].zxid
                ),
                Input::Committed(batch),
                Ctx::Other,
            );
        }
    }

    /// The log makes its first `n` pending entries durable.
    fn make_durable(&mut self, n: usize) {
        let mut last = None;
        for _ in 0..n {
            match self.log.pop_front() {
                Some((z, _)) => last = Some(z),
                None => break,
            }
        }
        let Some(zxid) = last else {
            return;
        };
        self.durable = self.durable.max(zxid);
        if self.serve_at.is_some_and(|z| zxid >= z) {
            self.serve_at = None;
            self.serving = true;
            self.starts_serving = true;
            self.cov.deferred_serving += 1;
        }
        self.feed(
            format!("durable up to {zxid:#x}"),
            Input::Durable { zxid },
            Ctx::Durable,
        );
        let applied = self.server.tree().last_zxid();
        if applied != zxid {
            self.diag.fail(format_args!(
                "durable up to {zxid:#x}, but the tree is at {applied:#x}"
            ));
        }
    }

    /// The link is gone. What the observer had sent may or may not have reached the
    /// leader; what the leader had queued for it is lost (the commits come again in the
    /// next DIFF).
    fn drop_link(&mut self) {
        self.leader.link_up = false;
        self.syncing = None;
        self.leader.link.clear();
        if self.rng.random_bool(0.5) {
            let n = self.leader.inbox.len();
            self.leader_handles(n);
        } else {
            self.leader.inbox.clear();
        }
    }

    fn lose_leader(&mut self) {
        if !self.leader.link_up {
            return;
        }
        self.drop_link();
        self.serving = false;
        self.serve_at = None;
        self.cov.leaders_lost += 1;
        self.feed(
            "the leader is lost".into(),
            Input::LeaderLost {
                reason: "simulated".into(),
            },
            Ctx::LeaderLost,
        );
    }

    /// The log fails: the core must give up its link and ask for a resync from scratch.
    fn fail_log(&mut self) {
        let Some(&(_, generation)) = self.log.front() else {
            if self.void_below > 0 {
                // A failure of batches already void: nothing to do.
                let generation = self.void_below - 1;
                self.feed(
                    format!("the log fails (generation {generation}, void)"),
                    Input::LogFailed {
                        generation,
                        error: "simulated".into(),
                    },
                    Ctx::Other,
                );
            }
            return;
        };
        self.cov.log_failures += 1;
        self.feed(
            format!("the log fails (generation {generation})"),
            Input::LogFailed {
                generation,
                error: "simulated".into(),
            },
            Ctx::LogFailed,
        );
        if !self.reset {
            self.diag
                .fail("a failed log did not make the observer ask for a resync");
        }
        self.log.clear();
        self.void_below = generation + 1;
        if self.leader.link_up {
            self.drop_link();
        }
        // The gateway reports the link's end as it does any other.
        self.feed(
            "the leader is lost (after the resync request)".into(),
            Input::LeaderLost {
                reason: "resync".into(),
            },
            Ctx::LeaderLost,
        );
    }

    /// One step of getting in sync again: the data directory emptied if the core asked
    /// for it (the gateway's `reset_data`); a new link's DIFF from the observer's last
    /// zxid, or a SNAP; then UPTODATE. Clients come and go between the steps, and
    /// read-only ones are served.
    fn resync(&mut self) {
        if let Some(kind) = self.syncing.take() {
            // Clients are served once the tree holds everything the sync brought
            // (ZOOKEEPER-3500): at once if the log has made it durable, else at the
            // Durable that does.
            let received = self.server.last_received();
            if received > self.durable {
                self.serve_at = Some(received);
            } else {
                self.serving = true;
                self.starts_serving = true;
            }
            let info = SyncInfo {
                leader: "leader:2888".into(),
                epoch: self.leader.epoch as u32,
                kind,
                duration_ms: 0,
            };
            return self.feed("UPTODATE".into(), Input::UpToDate(info), Ctx::UpToDate);
        }
        if self.reset {
            self.reset = false;
            self.durable = 0;
            self.logged_last = 0;
            return self.feed(
                "install an empty tree (the data directory was emptied)".into(),
                Input::Install {
                    tree: Box::new(DataTree::new()),
                    sessions: Vec::new(),
                },
                Ctx::Other,
            );
        }
        if self.rng.random_bool(0.3) {
            self.leader.new_epoch();
            self.cov.new_epochs += 1;
        }
        self.link += 1;
        self.leader.link_up = true;
        let snap = self
            .rng
            .random_bool(if self.variant.read_only { 0.4 } else { 0.25 });
        if snap {
            self.cov.snaps += 1;
            let sessions = self.leader.sessions.iter().map(|(&s, &t)| (s, t)).collect();
            self.durable = self.leader.tree.last_zxid();
            self.logged_last = self.durable;
            self.feed(
                format!("link {}: SNAP at {:#x}", self.link, self.durable),
                Input::Install {
                    tree: Box::new(self.leader.tree.clone()),
                    sessions,
                },
                Ctx::Other,
            );
        } else {
            self.cov.diffs += 1;
            let from = self.server.last_received();
            let h = &self.leader.history;
            let mut start = h.partition_point(|e| e.zxid <= from);
            if self.rng.random_bool(0.2) {
                // Some transactions it has already: the observer skips them.
                start = start.saturating_sub(self.rng.random_range(1..=3));
            }
            let diff = h[start..].to_vec();
            self.diag
                .note(format!("link {}: DIFF after {from:#x}", self.link));
            self.feed_batch(diff, "DIFF");
        }
        self.syncing = Some(if snap { "SNAP" } else { "DIFF" });
    }

    // ---- the end ----

    /// Runs the link and the log dry: every packet handled, delivered, made durable.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.leader.link_up || self.syncing.is_some() {
                self.resync();
            } else if !self.leader.inbox.is_empty() {
                self.leader_handles(self.leader.inbox.len());
            } else if !self.leader.link.is_empty() {
                self.deliver(self.leader.link.len());
            } else if !self.log.is_empty() {
                self.make_durable(self.log.len());
            } else if !self.unclosed.is_empty() {
                for conn in std::mem::take(&mut self.unclosed) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.gone = true;
                    }
                    self.feed(
                        format!("connection {conn} is gone"),
                        Input::Closed { conn },
                        Ctx::Other,
                    );
                }
            } else {
                return;
            }
        }
        self.diag.fail("the simulation did not settle");
    }

    fn check_converged(&self) {
        let fail = |m: String| -> ! { self.diag.fail(m) };
        // Invariant 4: the leader's tree.
        let (ours, theirs) = (self.server.tree(), &self.leader.tree);
        let last = self.leader.last_committed();
        if ours.last_zxid() != theirs.last_zxid() || self.server.last_received() != last {
            fail(format!(
                "the observer is at {:#x} (received {:#x}), the leader at {last:#x}",
                ours.last_zxid(),
                self.server.last_received(),
            ));
        }
        let paths = ours.walk();
        if paths != theirs.walk() {
            fail(format!(
                "the observer's nodes {paths:?} differ from the leader's {:?}",
                theirs.walk()
            ));
        }
        for p in &paths {
            let (a, b) = (ours.get(p), theirs.get(p));
            /// A node's data, stat and ACL.
            type View<'a> = Option<(Option<&'a [u8]>, Stat, Option<Vec<Acl>>)>;
            fn view<'a>(t: &'a DataTree, n: Option<crate::tree::NodeView<'a>>) -> View<'a> {
                n.map(|n| {
                    (
                        n.data,
                        n.to_stat(),
                        t.acls.lookup(n.acl).map(<[Acl]>::to_vec),
                    )
                })
            }
            if view(ours, a) != view(theirs, b) {
                fail(format!(
                    "{p} differs: the observer has {:?}, the leader {:?}",
                    view(ours, a),
                    view(theirs, b)
                ));
            }
        }
        if ours.digest() != theirs.digest() {
            fail(format!(
                "the observer's tree digest is {}, the leader's {}",
                ours.digest(),
                theirs.digest()
            ));
        }
        let sessions: BTreeSet<i64> = self.server.sessions().iter().map(|s| s.id).collect();
        let leaders: BTreeSet<i64> = self.leader.sessions.keys().copied().collect();
        if sessions != leaders {
            fail(format!(
                "the observer knows sessions {sessions:x?}, the leader {leaders:x?}"
            ));
        }
        // Every request on a live connection is answered; every due event sent.
        let applied = ours.last_zxid();
        for (id, c) in self.conns.iter().filter(|(_, c)| !c.closed && !c.gone) {
            let Phase::Open(s) = c.phase else {
                fail(format!(
                    "connection {id} never finished its handshake ({:?})",
                    c.phase
                ));
            };
            if !c.pending.is_empty() {
                fail(format!(
                    "connection {id} (session {s:#x}, live at the leader: {}) never got replies to {:?}",
                    self.leader.sessions.contains_key(&s),
                    c.pending
                ));
            }
            for ((kind, path), since) in &c.watches {
                if let Some(t) = self.leader.trigger(*kind, path, *since) {
                    if t.zxid <= applied {
                        fail(format!(
                            "connection {id} never got the {:?} event of {path} (zxid {:#x}) for its {kind:?} watch",
                            t.event, t.zxid
                        ));
                    }
                }
            }
        }
        let s = &self.server;
        if s.forwarded_count() != 0
            || !s.obs.syncs.is_empty()
            || !s.obs.sync_waits.is_empty()
            || s.queues.values().any(|q| !q.is_empty())
        {
            fail(format!(
                "the observer still holds forwarded requests: {} forwarded, syncs {:?}, waits {:?}, queues {:?}",
                s.forwarded_count(),
                s.obs.syncs,
                s.obs.sync_waits,
                s.queues
            ));
        }
    }
}

/// A request in a few words, for the trace.
fn describe(req: &Request) -> String {
    match req {
        Request::Create { op, req } => format!(
            "{op:?} {} flags {} acl {}",
            req.path,
            req.flags,
            req.acl.len()
        ),
        Request::SetData(r) => format!("setData {} v{}", r.path, r.version),
        Request::Delete(r) => format!("delete {} v{}", r.path, r.version),
        Request::GetData(r) => format!("getData {} watch {}", r.path, r.watch),
        Request::Exists(r) => format!("exists {} watch {}", r.path, r.watch),
        Request::GetChildren(r) => format!("getChildren {} watch {}", r.path, r.watch),
        Request::Sync(r) => format!("sync {}", r.path),
        Request::Multi(ops) => format!(
            "multi [{}]",
            ops.iter()
                .map(|o| format!("{:?} {}", o.opcode(), o.path()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// Whether a request creates an ephemeral node, alone or in a multi. The simulation's
/// own, on purpose: it is the oracle the observer's `creates_ephemeral` is checked against.
fn creates_ephemeral(req: &Request) -> bool {
    let eph = |flags: i32| flags == 1 || flags == 3;
    match req {
        Request::Create { req, .. } => eph(req.flags),
        Request::Multi(ops) => ops
            .iter()
            .any(|o| matches!(o, MultiOp::Create { req, .. } if eph(req.flags))),
        _ => false,
    }
}

fn describe_packet(p: &QuorumPacket) -> String {
    let b = p.body();
    let int = |r: std::ops::Range<usize>| {
        b.get(r)
            .map(|x| x.iter().fold(0i64, |a, &y| (a << 8) | y as i64))
            .unwrap_or(-1)
    };
    match p.kind() {
        Some(PacketType::Request) => format!(
            "REQUEST session {:#x} cxid {} op {}",
            int(0..8),
            int(8..12) as i32,
            int(12..16) as i32
        ),
        Some(PacketType::Revalidate) => format!("REVALIDATE session {:#x}", int(0..8)),
        k => format!("{k:?}"),
    }
}
