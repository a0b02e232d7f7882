//! Helpers for the QUIC relay's end-to-end tests: certificates for a topology, a
//! publishing leader, observers following relay upstreams, and a whole-tree comparison.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use geokeeper_relay::certs::{issue, NodeSpec, Options};

use super::gateway::mntr;
use super::gk::Geokeeper;
pub use super::java_zk::free_udp_addr;
use super::rawzk::{decode_body, Body, RawZk};

/// A development CA and node certificates (`geokeeper certs`' library), in a temp dir.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    /// `nodes`: (file name, node id, room).
    pub fn new(nodes: &[(&str, u64, &str)]) -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs: Vec<NodeSpec> = nodes
            .iter()
            .map(|(name, id, room)| NodeSpec::new(name, *id, room))
            .collect();
        issue(dir.path(), &specs, &Options::default()).expect("certificates");
        Certs { dir }
    }

    pub fn key_store(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pem"))
    }

    pub fn trust_store(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The zoo.cfg lines naming a node's certificate, key and CA (`geokeeper certs` puts the
    /// certificate and the key in one PEM file, which serves as both).
    pub fn lines(&self, name: &str) -> String {
        format!(
            "relay.ssl.cert={k}\nrelay.ssl.key={k}\nrelay.ssl.ca={}\n",
            self.trust_store().display(),
            k = self.key_store(name).display(),
        )
    }

    /// The same with the key-store form: one PEM file of key and chain, one of CAs.
    pub fn key_store_lines(&self, name: &str) -> String {
        format!(
            "relay.keyStore.location={}\nrelay.trustStore.location={}\n",
            self.key_store(name).display(),
            self.trust_store().display()
        )
    }
}

/// A server publishing over the relay: the client port on its own address, the relay
/// on `relay` (127.0.0.1), `subscribers` allowed (`id@room,...`).
pub struct Node {
    pub gk: Geokeeper,
    pub relay: Option<SocketAddr>,
    pub data: PathBuf,
    _data_dir: Option<tempfile::TempDir>,
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        self.gk.addr
    }

    /// A server a test started itself, with no relay port of its own.
    pub fn of(gk: Geokeeper, data: &Path) -> Node {
        Node {
            gk,
            relay: None,
            data: data.to_path_buf(),
            _data_dir: None,
        }
    }
}

/// A standalone geokeeper that publishes its stream.
pub fn start_leader(certs: &Certs, name: &str, subscribers: &str, extra: &str) -> Node {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let data = data_dir.path().to_path_buf();
    let relay = free_udp_addr();
    let cfg = format!(
        "4lw.commands.whitelist=*\nrelayPort={}\nrelayAddress=127.0.0.1\nrelay.subscribers={subscribers}\n{}{extra}\n",
        relay.port(),
        certs.lines(name)
    );
    let gk = Geokeeper::start_on(&data, &cfg);
    Node {
        gk,
        relay: Some(relay),
        data,
        _data_dir: Some(data_dir),
    }
}

/// An observer following `upstreams` in order, on a data directory of its own (removed
/// with the node); with `subscribers`, it re-publishes (a room relay).
pub fn start_observer(
    certs: &Certs,
    name: &str,
    id: u64,
    upstreams: &[SocketAddr],
    subscribers: Option<&str>,
    extra: &str,
) -> Node {
    let ups: Vec<String> = upstreams.iter().map(|a| a.to_string()).collect();
    start_observer_of(certs, name, id, &ups, subscribers, extra)
}

/// [`start_observer`] with upstreams as written in the configuration (`host:port`, the
/// host a name or an address).
pub fn start_observer_of(
    certs: &Certs,
    name: &str,
    id: u64,
    ups: &[String],
    subscribers: Option<&str>,
    extra: &str,
) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = start_observer_in(certs, name, id, ups, subscribers, dir.path(), extra);
    n._data_dir = Some(dir);
    n
}

/// [`start_observer_of`] on a data directory the test keeps (to start again on it).
pub fn start_observer_in(
    certs: &Certs,
    name: &str,
    id: u64,
    ups: &[String],
    subscribers: Option<&str>,
    data: &Path,
    extra: &str,
) -> Node {
    std::fs::create_dir_all(data).expect("data dir");
    std::fs::write(data.join("myid"), format!("{id}\n")).expect("myid");
    let (relay, publish) = match subscribers {
        Some(s) => {
            let a = free_udp_addr();
            (
                Some(a),
                format!(
                    "relayPort={}\nrelayAddress=127.0.0.1\nrelay.subscribers={s}\n",
                    a.port()
                ),
            )
        }
        None => (None, String::new()),
    };
    let cfg = format!(
        "4lw.commands.whitelist=*\npeerType=observer\nrelay.upstreams={}\n{publish}{}{extra}\n",
        ups.join(","),
        certs.lines(name)
    );
    let gk = Geokeeper::start_on(data, &cfg);
    Node {
        gk,
        relay,
        data: data.to_path_buf(),
        _data_dir: None,
    }
}

/// Waits until the observer is in sync and serving; returns its mntr.
pub fn wait_synced(n: &Node, within: Duration) -> BTreeMap<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let m = mntr(n.addr());
        if m.get("zk_observer_synced").map(String::as_str) == Some("1") {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the observer did not sync within {within:?}: {m:?}\n{}",
            n.gk.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `n` has applied `zxid`.
pub fn wait_zxid(n: &Node, zxid: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let m = mntr(n.addr());
        let last = m
            .get("zk_observer_last_zxid")
            .and_then(|v| i64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        if last >= zxid {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not reach zxid {zxid:#x} within {within:?} (at {last:#x}): {m:?}\n{}",
            n.addr(),
            n.gk.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new session at `addr`. A server that closes the handshake unanswered is not serving
/// (a Java leader just elected, a server just restarted): asked again for up to 10 s.
pub fn session(addr: SocketAddr) -> RawZk {
    let t = Instant::now();
    let z = loop {
        match RawZk::connect(addr, 0, &[0; 16], 0, 30_000) {
            Ok(z) => break z,
            Err(e) if t.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connect to {addr}: {e:?}"),
        }
    };
    assert!(z.response.time_out > 0, "session refused by {addr}");
    z
}

/// Creates `path` with `data`; returns the reply's (err, zxid).
pub fn create(z: &mut RawZk, path: &str, data: &[u8], flags: i32) -> (i32, i64) {
    let f = z
        .call(
            OpCode::Create,
            &Request::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: path.into(),
                    data: Some(data.to_vec().into()),
                    acl: vec![Acl {
                        perms: 31,
                        id: Id {
                            scheme: "world".into(),
                            id: "anyone".into(),
                        },
                    }],
                    flags,
                },
            },
        )
        .reply
        .expect("create reply");
    (f.header.err, f.header.zxid)
}

pub fn set_data(z: &mut RawZk, path: &str, data: &[u8]) -> (i32, i64) {
    let f = z
        .call(
            OpCode::SetData,
            &Request::SetData(SetDataRequest {
                path: path.into(),
                data: Some(data.to_vec().into()),
                version: -1,
            }),
        )
        .reply
        .expect("setData reply");
    (f.header.err, f.header.zxid)
}

pub fn sync(z: &mut RawZk, path: &str) -> i32 {
    let f = z
        .call(
            OpCode::Sync,
            &Request::Sync(SyncRequest { path: path.into() }),
        )
        .reply
        .expect("sync reply");
    f.header.err
}

/// getData: (err, data, stat).
pub fn get(z: &mut RawZk, path: &str) -> (i32, Vec<u8>, Option<Stat>) {
    let f = z
        .call(
            OpCode::GetData,
            &Request::GetData(GetDataRequest {
                path: path.into(),
                watch: false,
            }),
        )
        .reply
        .expect("getData reply");
    match decode_body(OpCode::GetData as i32, &f.body) {
        Body::GetData(g) if f.header.err == 0 => (
            0,
            g.data.map(|d| d.to_vec()).unwrap_or_default(),
            Some(g.stat),
        ),
        _ => (f.header.err, Vec::new(), None),
    }
}

fn children(z: &mut RawZk, path: &str) -> Vec<String> {
    let f = z
        .call(
            OpCode::GetChildren,
            &Request::GetChildren(GetChildrenRequest {
                path: path.into(),
                watch: false,
            }),
        )
        .reply
        .expect("getChildren reply");
    match decode_body(OpCode::GetChildren as i32, &f.body) {
        Body::GetChildren(c) if f.header.err == 0 => c.children,
        _ => Vec::new(),
    }
}

/// Every znode under `/` (but `/zookeeper`) with its data and stat.
pub fn dump(addr: SocketAddr) -> BTreeMap<String, (Vec<u8>, Stat)> {
    let mut z = session(addr);
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        if p == "/zookeeper" {
            continue;
        }
        let (err, data, stat) = get(&mut z, &p);
        if err != 0 {
            continue;
        }
        if let Some(stat) = stat {
            out.insert(p.clone(), (data, stat));
        }
        for c in children(&mut z, &p) {
            todo.push(if p == "/" {
                format!("/{c}")
            } else {
                format!("{p}/{c}")
            });
        }
    }
    z.disconnect();
    out
}

/// A zxid as mntr prints it.
pub fn hex(m: &BTreeMap<String, String>, key: &str) -> i64 {
    m.get(key)
        .and_then(|v| i64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(-1)
}

/// The last zxid a server has applied, from `srvr`.
pub fn leader_zxid(n: &Node) -> i64 {
    srvr_zxid(n.addr())
}

/// The last zxid of any ZooKeeper server (geokeeper or Java), from `srvr`.
pub fn srvr_zxid(addr: SocketAddr) -> i64 {
    let s = super::java_zk::four_letter(addr, "srvr");
    s.lines()
        .find_map(|l| l.strip_prefix("Zxid: "))
        .and_then(|z| i64::from_str_radix(z.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("no Zxid in srvr of {addr}: {s}"))
}

/// Which kind of server publishes the stream a test's observers follow: the relay's tests
/// run with both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubKind {
    /// A standalone geokeeper: the leader itself.
    Leader,
    /// A geokeeper gateway following a 3-participant Apache ZooKeeper 3.8 ensemble: the
    /// transactions are the Java leader's, and writes from remote rooms reach it through
    /// the gateway.
    Gateway,
}

/// The server id of a test's gateway: above the Java participants' 1-3 and the
/// observers' own ids, so that no two servers hand out session ids with the same top byte.
pub const GATEWAY_ID: u64 = 99;

/// For each scenario function `name(kind: PubKind)`, a module `name` with two tests:
/// `leader` (a standalone geokeeper publishes) and `gateway` (a gateway of a Java ensemble
/// does).
#[macro_export]
macro_rules! with_both_publishers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn leader() {
                    let _one = $crate::support::relay::one_relay_test_at_a_time();
                    super::$name($crate::support::relay::PubKind::Leader)
                }
                #[test]
                fn gateway() {
                    let _one = $crate::support::relay::one_relay_test_at_a_time();
                    super::$name($crate::support::relay::PubKind::Gateway)
                }
            }
        )*
    };
}

/// Held by each test of [`with_both_publishers`] for its whole run, so that a test
/// binary runs them one at a time (tests outside the macro, such as relay_wan.rs's
/// backlog test, still run beside them). Two at once (a gateway variant's three JVMs,
/// gateway and observers beside another test's servers, on two cores) fail in about one
/// run of tests/relay.rs in three, in two ways:
/// - the test's own request to the Java leader goes unanswered (a reply Timeout, or Eof
///   when the leader expires the session 30 s later). Found so far (2026-12-07): the
///   client's socket shows every byte sent and acknowledged, the leader's shows nothing
///   left to read, yet the request never reaches the leader's transaction log nor its
///   followers', and a thread dump shows the leader's request pipeline idle. It is lost
///   inside the Java 3.8.0 leader between reading and proposing; why, is not found;
/// - `a_stalled_subscriber...`'s sibling b1, on a CPU shared with another test, falls
///   `relay.bufferBytes` (256 KiB) behind and is dropped as too slow with c1.
///
/// Serialised, tests/relay.rs has passed every run since. `GEOKEEPER_RELAY_TESTS_TOGETHER=1`
/// lets them run together again, `GEOKEEPER_KEEP_JAVA_LOGS=1` keeps the Java logs (with a
/// thread dump) and the geokeeper logs of a failed test.
pub fn one_relay_test_at_a_time() -> Option<std::sync::MutexGuard<'static, ()>> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if std::env::var_os("GEOKEEPER_RELAY_TESTS_TOGETHER").is_some() {
        return None;
    }
    Some(
        LOCK.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// A publisher of either kind, and for a gateway, the ensemble it follows.
pub struct Publisher {
    pub kind: PubKind,
    /// The publishing geokeeper: the standalone leader, or the gateway.
    pub node: Node,
    /// The ensemble a gateway follows (kept running as long as the publisher lives).
    pub ensemble: Option<super::java_ensemble::JavaEnsemble>,
}

impl Publisher {
    /// Starts a publisher of `kind` with `name`'s certificate, allowing `subscribers`
    /// (`id@room,...`), with `extra` configuration lines for the publishing geokeeper;
    /// returns once it serves (a gateway: once it is in sync with the ensemble).
    pub fn start(
        kind: PubKind,
        certs: &Certs,
        name: &str,
        subscribers: &str,
        extra: &str,
    ) -> Publisher {
        match kind {
            PubKind::Leader => Publisher {
                kind,
                node: start_leader(certs, name, subscribers, extra),
                ensemble: None,
            },
            PubKind::Gateway => {
                // Sessions of up to 60 s, as a standalone geokeeper allows by default: the
                // tests' clients ask for 30 s and ride out WAN cuts of several seconds.
                let e = super::java_ensemble::JavaEnsemble::start(3, "maxSessionTimeout=60000\n");
                let data_dir = tempfile::tempdir().expect("tempdir");
                let data = data_dir.path().to_path_buf();
                let relay = free_udp_addr();
                let gk = super::gateway::start_gateway(
                    &e,
                    GATEWAY_ID,
                    &data,
                    &format!(
                        "relayPort={}\nrelayAddress=127.0.0.1\nrelay.subscribers={subscribers}\n{}{extra}\n",
                        relay.port(),
                        certs.lines(name)
                    ),
                );
                super::gateway::wait_synced(&gk, Duration::from_secs(60));
                Publisher {
                    kind,
                    node: Node {
                        gk,
                        relay: Some(relay),
                        data,
                        _data_dir: Some(data_dir),
                    },
                    ensemble: Some(e),
                }
            }
        }
    }

    /// Where the publisher's stream is served.
    pub fn relay(&self) -> SocketAddr {
        self.node.relay.expect("a publisher's relay port")
    }

    /// The client address of the leader: the standalone geokeeper, or the Java leader.
    pub fn leader_addr(&self) -> SocketAddr {
        match &self.ensemble {
            None => self.node.addr(),
            Some(e) => {
                let i = e.leader().expect("the ensemble has a leader");
                e.members[i].client
            }
        }
    }

    /// A session at the leader for a test's own writes. It waits up to 60 s for each
    /// reply: a Java leader among several JVMs on a loaded two-core machine has taken over
    /// 10 s to answer one create (four times in fresh-clone CI runs, in the gateway
    /// variants); what the tests measure is the replicas, not the leader's latency.
    pub fn session(&self) -> RawZk {
        let mut z = session(self.leader_addr());
        z.set_reply_timeout(Duration::from_secs(60));
        z
    }

    /// The leader's last zxid: what every replica must reach.
    pub fn zxid(&self) -> i64 {
        srvr_zxid(self.leader_addr())
    }

    /// The leader's whole tree, which every replica's must equal.
    pub fn tree(&self) -> BTreeMap<String, (Vec<u8>, Stat)> {
        dump(self.leader_addr())
    }
}
