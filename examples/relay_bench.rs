//! The QUIC relay beside a Java observer, over the same emulated WAN (25 ms one-way between
//! room A and room B), on this machine:
//!
//! 1. **commit → visible**: a client at the leader does setData; a client at a room-B
//!    observer holds a data watch on that znode; the latency is the watch event's arrival
//!    minus the arrival of the leader's reply to the writer (one process, one clock). One
//!    transaction feeds both observers of the side by side at once; paced, one at a time.
//! 2. **write through a room-B observer**: setData of 100 B through it, p50/p99, beside
//!    the leader's own local write latency, round by round.
//! 3. **WAN bytes per committed setData of 100 B**: the bytes the WAN links carry (both
//!    ways, and downstream alone) while N setData are committed at the leader, / N: (a)
//!    one geokeeper observer in room B (the UDP link's payload: QUIC headers, ACKs and
//!    all); (b) five, the room relay b1 the only WAN subscriber and b2..b5 its in-room
//!    subscribers; (c) a Java observer of the same ensemble (the payload of its TCP links,
//!    learner and election: TCP's headers and pure ACKs are not seen from user space).
//!    Paced (one write at a time) and in a burst (pipelined); then (a) and (c) again with
//!    random alphanumeric text values, and with service records (`RB_VALUES=records`).
//! 4. **the stream's sustained rate at 1% loss each way**: a standalone geokeeper leader
//!    driven as hard as pipelined writers go, with no loss (a control) and with the loss;
//!    its commit rate against its room-B observer's applied rate (zxids sampled every
//!    250 ms) and the observer's lag; then fixed rates (`RB_LADDER`) up to the first the
//!    observer does not keep up with.
//! 5. **catch-up of a fresh observer** after RB_ZNODES znodes (1000 per parent) were
//!    written: start on an empty data directory → serving at the leader's zxid, for a
//!    geokeeper observer (by the gateway's snapshot over QUIC, and by diff when the
//!    gateway's log reaches back to the start) and a Java observer (SNAP over TCP).
//!
//! The publisher of the side by side (1–3, 5) is a geokeeper gateway following an Apache
//! ZooKeeper 3.8 ensemble (3 participants, `java -cp` from Debian's jars in
//! /usr/share/java, G1, 1 GiB heaps) in room A: the same transactions feed the gateway's
//! QUIC stream and the Java observer (2 GiB), whose zoo.cfg names TCP forwarders (25 ms
//! each way) for the participants' quorum and election ports. 1–4 are also taken with a
//! standalone geokeeper leader as the publisher. The WAN is user space
//! (`tests/support/wan.rs`, `tests/support/tcp_cut.rs`): the kernel here has no netem.
//! Every value written is 100 bytes, random bytes by default (`RB_VALUES=text`: random
//! alphanumerics); keys are `/bench/k00000`..`/bench/k00999`. The servers keep their
//! defaults (forceSync on). Every server is SIGKILLed at the end, on a panic, and by the
//! kernel if this program dies.
//!
//! ```text
//! ./scripts/bench-relay.sh                 # installs ZooKeeper and a JRE if missing
//! cargo build --release --bin geokeeper && cargo run --release --example relay_bench
//! RB_QUICK=1 cargo run --release --example relay_bench   # ~4 minutes, 100,000 znodes
//! ```
//!
//! Environment (defaults for a full run; `RB_QUICK=1` lowers them): `RB_WHAT` (`all`, or a
//! comma list of `standalone`, `gateway`, `join`), `RB_DELAY_MS` (25), `RB_LOSS` (0.01,
//! figure 4), `RB_SAMPLES` (500, figure 1), `RB_WRITE_SAMPLES` (300, figure 2),
//! `RB_PACED_WRITES` (2000) at `RB_PACED_RATE` (200/s), `RB_BURST_WRITES` (10000),
//! `RB_LOAD_SECS` (10), `RB_LADDER` (`1000,2000,3000,4000,6000,8000` per second),
//! `RB_LADDER_SECS` (10), `RB_ZNODES` (1000000), `RB_VALUES` (`bytes`|`text`|`records`), `RB_WORK`
//! (`<target>/release/relay-bench`; removed after a successful run unless `RB_KEEP=1`),
//! `GEOKEEPER_BIN`. Addresses 127.0.0.60–99, free ports on them.

#[path = "../tests/support/rawzk.rs"]
mod rawzk;
#[path = "../tests/support/tcp_cut.rs"]
mod tcp_cut;
#[path = "../tests/support/wan.rs"]
mod wan;

/// What `tcp_cut` takes from the Java helpers, which this example does not need whole.
mod java_zk {
    use std::net::{SocketAddr, TcpListener};

    pub fn free_loopback_addr() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
    }
}

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use geokeeper_relay::certs::{issue, NodeSpec, Options};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rawzk::RawZk;
use tcp_cut::TcpCut;
use wan::{LinkSpec, UdpWan};

const JAVA_DIR: &str = "/usr/share/java";
const KEYS: usize = 1000;
const VALUE_SIZE: usize = 100;
/// The znode figure 1 watches.
const WATCHED: &str = "/bench/k00042";
/// How long anything may take to come up, sync or catch up.
const PATIENCE: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Values {
    Bytes,
    Text,
    /// A service registration as discovery frameworks write them (JSON of a host, a
    /// port, a weight, a timestamp, an instance id), padded to 100 bytes: some 60 bits of
    /// it random, the rest what the previous records also said.
    Records,
}

#[derive(Clone)]
struct Settings {
    delay_ms: u64,
    loss: f64,
    samples: usize,
    write_samples: usize,
    paced_writes: usize,
    paced_rate: u64,
    burst_writes: usize,
    load_secs: u64,
    ladder: Vec<u64>,
    ladder_secs: u64,
    znodes: usize,
    values: Values,
    what: Vec<String>,
    work: PathBuf,
    keep: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("RB_QUICK").is_ok_and(|v| v != "0");
        let q = |full: usize, quick_value: usize| if quick { quick_value } else { full };
        let values = match std::env::var("RB_VALUES").as_deref() {
            Ok("text") => Values::Text,
            Ok("records") => Values::Records,
            Ok("bytes") | Err(_) => Values::Bytes,
            Ok(other) => panic!("RB_VALUES={other:?}: bytes, text or records"),
        };
        let what = env_or("RB_WHAT", "all".to_string());
        let what = if what == "all" {
            vec!["standalone".into(), "gateway".into(), "join".into()]
        } else {
            what.split(',').map(|s| s.trim().to_string()).collect()
        };
        let work = std::env::var("RB_WORK")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                geokeeper_bin()
                    .parent()
                    .expect("target dir")
                    .join("relay-bench")
            });
        Settings {
            delay_ms: env_or("RB_DELAY_MS", 25),
            loss: env_or("RB_LOSS", 0.01),
            samples: env_or("RB_SAMPLES", q(500, 100)),
            write_samples: env_or("RB_WRITE_SAMPLES", q(300, 60)),
            paced_writes: env_or("RB_PACED_WRITES", q(2000, 500)),
            paced_rate: env_or("RB_PACED_RATE", 200),
            burst_writes: env_or("RB_BURST_WRITES", q(10_000, 3000)),
            load_secs: env_or("RB_LOAD_SECS", q(10, 6) as u64),
            ladder: env_or("RB_LADDER", "1000,2000,3000,4000,6000,8000".to_string())
                .split(',')
                .map(|r| r.trim().parse().expect("RB_LADDER: rates per second"))
                .collect(),
            ladder_secs: env_or("RB_LADDER_SECS", q(10, 5) as u64),
            znodes: env_or("RB_ZNODES", q(1_000_000, 100_000)),
            values,
            what,
            work,
            keep: std::env::var("RB_KEEP").is_ok_and(|v| v != "0"),
        }
    }

    fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    fn wants(&self, what: &str) -> bool {
        self.what.iter().any(|w| w == what)
    }

    /// One value of 100 bytes, as the run's values are.
    fn value(&self, rng: &mut StdRng) -> Vec<u8> {
        match self.values {
            Values::Bytes => {
                let mut v = vec![0u8; VALUE_SIZE];
                rng.fill_bytes(&mut v);
                v
            }
            Values::Text => rng
                .sample_iter(rand::distr::Alphanumeric)
                .take(VALUE_SIZE)
                .collect(),
            Values::Records => {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let mut v = format!(
                    r#"{{"svc":"orders","host":"10.{}.{}.{}","port":{},"weight":100,"ts":{ts},"id":"{:08x}"}}"#,
                    rng.random_range(0..4),
                    rng.random_range(0..=255),
                    rng.random_range(1..=254),
                    20880 + rng.random_range(0..4),
                    rng.random::<u32>(),
                )
                .into_bytes();
                v.resize(VALUE_SIZE, b' ');
                v
            }
        }
    }

    fn values_name(&self) -> &'static str {
        match self.values {
            Values::Bytes => "random bytes",
            Values::Text => "random alphanumeric text",
            Values::Records => "service records (JSON)",
        }
    }
}

fn key(i: usize) -> String {
    format!("/bench/k{:05}", i % KEYS)
}

fn seeded(n: u64) -> StdRng {
    StdRng::seed_from_u64(0x5eed_0000 + n)
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

fn geokeeper_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GEOKEEPER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/examples/relay_bench -> target/release/geokeeper
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("geokeeper"))
        .expect("target dir");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--release", "--bin", "geokeeper"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot build the geokeeper binary");
    }
    bin
}

/// A server process started by this run, SIGKILLed when dropped (also on a panic), and
/// by the kernel if this process dies first.
struct Proc {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: &str, dir: &Path, mut cmd: Command) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("out.log"))
            .expect("log file");
        let err = log.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe, and nothing else runs between fork and exec.
        // Every Proc is spawned from the main thread, whose exit is what the signal marks.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            name: name.to_owned(),
            dir: dir.to_owned(),
            child: Some(child),
        }
    }

    /// Panics with its log's tail if the process has exited.
    fn check_alive(&mut self) {
        if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
            panic!(
                "{} exited ({st}); its log ends:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        for f in ["out.log", "zookeeper.log"] {
            s.push_str(&std::fs::read_to_string(self.dir.join(f)).unwrap_or_default());
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log4j_dir(work: &Path) -> PathBuf {
    let dir = work.join("log4j");
    std::fs::create_dir_all(&dir).expect("log4j dir");
    std::fs::write(
        dir.join("log4j.properties"),
        "log4j.rootLogger=INFO, FILE\n\
         log4j.appender.FILE=org.apache.log4j.FileAppender\n\
         log4j.appender.FILE.File=${zookeeper.log.dir}/zookeeper.log\n\
         log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n",
    )
    .expect("log4j.properties");
    dir
}

fn java_classpath(work: &Path) -> String {
    let mut parts = vec![log4j_dir(work).display().to_string()];
    for jar in [
        "zookeeper.jar",
        "zookeeper-jute.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
    ] {
        let p = format!("{JAVA_DIR}/{jar}");
        assert!(
            Path::new(&p).exists(),
            "{p} is missing: install Debian's zookeeper package (scripts/bench-relay.sh does)"
        );
        parts.push(p);
    }
    parts.join(":")
}

/// A Java ZooKeeper server (`QuorumPeerMain`) on `dir/zoo.cfg`, G1 with `heap`.
fn spawn_java(name: &str, dir: &Path, work: &Path, heap: &str) -> Proc {
    let mut c = Command::new("java");
    c.args([
        "-Xshare:auto",
        "-XX:-UsePerfData",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        "-Dzookeeper.jmx.log4j.disable=true",
    ])
    .arg(format!("-Xmx{heap}"))
    .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
    .arg("-cp")
    .arg(java_classpath(work))
    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
    .arg(dir.join("zoo.cfg"))
    .current_dir(dir);
    Proc::spawn(name, dir, c)
}

fn spawn_geokeeper(name: &str, dir: &Path) -> Proc {
    let mut c = Command::new(geokeeper_bin());
    c.arg("serve")
        .arg("--config")
        .arg(dir.join("zoo.cfg"))
        .env("GEOKEEPER_LOG", "info")
        .current_dir(dir);
    Proc::spawn(name, dir, c)
}

/// A fresh directory for a server: `dir/data` with `myid` when given, and `dir/zoo.cfg`.
/// An earlier server's directory of that name is moved aside (`NAME.1`, …), logs and all.
fn server_dir(work: &Path, name: &str, myid: Option<u64>, cfg: &str) -> PathBuf {
    let dir = work.join(name);
    if dir.exists() {
        let aside = (1..)
            .map(|k| work.join(format!("{name}.{k}")))
            .find(|d| !d.exists())
            .expect("a free name");
        std::fs::rename(&dir, aside).expect("move the old directory aside");
    }
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    if let Some(id) = myid {
        std::fs::write(dir.join("data").join("myid"), format!("{id}\n")).expect("myid");
    }
    std::fs::write(
        dir.join("zoo.cfg"),
        format!("dataDir={}\n{cfg}", dir.join("data").display()),
    )
    .expect("zoo.cfg");
    dir
}

// ---------------------------------------------------------------------------------------
// Addresses, four-letter words
// ---------------------------------------------------------------------------------------

fn ip(x: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, x)
}

fn free_tcp(x: u8) -> SocketAddr {
    TcpListener::bind((ip(x), 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free TCP port on {}: {e}", ip(x)))
}

/// `n` distinct free TCP ports on 127.0.0.`x` (the listeners are held until all are
/// picked, so no two are the same).
fn free_tcps(x: u8, n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((ip(x), 0))
                .unwrap_or_else(|e| panic!("no free TCP port on {}: {e}", ip(x)))
        })
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect()
}

fn free_udp(x: u8) -> SocketAddr {
    UdpSocket::bind((ip(x), 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("no free UDP port on {}: {e}", ip(x)))
}

fn four(addr: SocketAddr, cmd: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(cmd.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn mntr(addr: SocketAddr) -> BTreeMap<String, String> {
    four(addr, "mntr")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn parse_hex(v: &str) -> Option<i64> {
    i64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok()
}

/// `srvr`: (Mode, Zxid), when the server serves.
fn srvr(addr: SocketAddr) -> Option<(String, i64)> {
    let s = four(addr, "srvr");
    let mode = s.lines().find_map(|l| l.strip_prefix("Mode: "))?;
    let zxid = s
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: "))
        .and_then(parse_hex)?;
    Some((mode.trim().to_owned(), zxid))
}

/// A geokeeper observer's applied zxid, once it serves (in sync).
fn observer_zxid(addr: SocketAddr) -> Option<i64> {
    let m = mntr(addr);
    if m.get("zk_observer_synced").map(String::as_str) != Some("1") {
        return None;
    }
    m.get("zk_observer_last_zxid").and_then(|v| parse_hex(v))
}

/// A Java observer's zxid, once it serves as an observer.
fn java_observer_zxid(addr: SocketAddr) -> Option<i64> {
    srvr(addr).filter(|(m, _)| m == "observer").map(|(_, z)| z)
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "timed out after {within:?}: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// An observer in the side by side: how to read the zxid it has applied.
#[derive(Clone, Copy)]
enum Obs {
    Geokeeper(SocketAddr),
    Java(SocketAddr),
}

impl Obs {
    fn addr(self) -> SocketAddr {
        match self {
            Obs::Geokeeper(a) | Obs::Java(a) => a,
        }
    }

    fn zxid(self) -> Option<i64> {
        match self {
            Obs::Geokeeper(a) => observer_zxid(a),
            Obs::Java(a) => java_observer_zxid(a),
        }
    }

    fn wait_zxid(self, zxid: i64, within: Duration) {
        wait_until(
            &format!("{} at zxid {zxid:#x}", self.addr()),
            within,
            || self.zxid().is_some_and(|z| z >= zxid),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Client calls (RawZk: the bytes on the wire, nothing retried or hidden)
// ---------------------------------------------------------------------------------------

fn session(addr: SocketAddr) -> RawZk {
    // The longest timeout the servers grant (20 × tickTime): a session lives through a
    // disk stall as long as this shared VM has shown (tens of seconds, rarely).
    let z = RawZk::connect(addr, 0, &[0; 16], 0, 40_000)
        .unwrap_or_else(|e| panic!("connect {addr}: {e:?}"));
    assert!(z.response.time_out > 0, "session refused by {addr}");
    z
}

fn close(mut z: RawZk) {
    let _ = z.call(OpCode::CloseSession, &Request::CloseSession);
}

fn set_req(path: &str, data: Vec<u8>) -> (OpCode, Request) {
    (
        OpCode::SetData,
        Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(data.into()),
            version: -1,
        }),
    )
}

fn create_req(path: &str, data: Vec<u8>) -> (OpCode, Request) {
    (
        OpCode::Create,
        Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: Some(data.into()),
                acl: geokeeper_core::acl::open_acl_unsafe(),
                flags: 0,
            },
        },
    )
}

/// How long a reply or a watch event may take. RawZk gives up on a read after 10 s; this
/// shared VM's disk has stalled a single fsync for 10 s, so a read that times out is
/// tried again until this much time has passed.
const REPLY_PATIENCE: Duration = Duration::from_secs(120);

/// The next frame from the server, waiting up to [`REPLY_PATIENCE`].
fn next_frame(z: &mut RawZk) -> rawzk::Frame {
    let t = Instant::now();
    loop {
        match z.read_frame() {
            Ok(f) => return f,
            Err(rawzk::Lost::Timeout) if t.elapsed() < REPLY_PATIENCE => {}
            Err(e) => panic!("no frame from the server within {:?}: {e:?}", t.elapsed()),
        }
    }
}

/// One request, answered without error; returns the reply's zxid.
fn call_ok(z: &mut RawZk, (op, req): (OpCode, Request)) -> i64 {
    let xid = z.take_xid();
    z.send(xid, op, &req).expect("send");
    let f = loop {
        let f = next_frame(z);
        if f.header.xid == xid {
            break f;
        }
    };
    assert_eq!(f.header.err, 0, "{op:?} failed");
    f.header.zxid
}

/// Sends the requests `next` makes over one new session, `window` in flight, until it
/// makes none or `stop` is set; every reply must be a success. Returns how many.
fn pipeline(
    addr: SocketAddr,
    window: usize,
    stop: &AtomicBool,
    mut next: impl FnMut(u64) -> Option<(OpCode, Request)>,
) -> u64 {
    let mut z = session(addr);
    let mut inflight = VecDeque::new();
    let (mut sent, mut done, mut exhausted) = (0u64, 0u64, false);
    loop {
        while !exhausted && inflight.len() < window {
            if stop.load(Ordering::Relaxed) {
                exhausted = true;
                break;
            }
            match next(sent) {
                Some((op, req)) => {
                    let xid = z.take_xid();
                    z.send(xid, op, &req).expect("send");
                    inflight.push_back((xid, op));
                    sent += 1;
                }
                None => exhausted = true,
            }
        }
        let Some((xid, op)) = inflight.pop_front() else {
            break;
        };
        let f = next_frame(&mut z);
        assert_eq!(f.header.xid, xid, "replies out of order");
        assert_eq!(f.header.err, 0, "{op:?} failed");
        done += 1;
    }
    close(z);
    done
}

/// `count` setData of fresh values at `addr` over `conns` sessions, `window` in flight
/// each; returns the time taken.
fn burst(s: &Settings, addr: SocketAddr, count: usize, conns: usize, window: usize) -> Duration {
    let t = Instant::now();
    let stop = AtomicBool::new(false);
    thread::scope(|sc| {
        for c in 0..conns {
            let stop = &stop;
            let share = count / conns + usize::from(c < count % conns);
            sc.spawn(move || {
                let mut rng = seeded(1000 + c as u64);
                pipeline(addr, window, stop, |i| {
                    let i = i as usize;
                    (i < share).then(|| set_req(&key(i * conns + c), s.value(&mut rng)))
                })
            });
        }
    });
    t.elapsed()
}

/// Creates /bench and its KEYS keys at the leader.
fn create_keys(s: &Settings, leader: SocketAddr) {
    let mut z = session(leader);
    let _ = z.call(OpCode::Create, &create_req("/bench", Vec::new()).1);
    close(z);
    let stop = AtomicBool::new(false);
    let mut rng = seeded(1);
    pipeline(leader, 100, &stop, |i| {
        ((i as usize) < KEYS).then(|| create_req(&key(i as usize), s.value(&mut rng)))
    });
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

/// Percentiles (nearest rank) of microsecond samples.
#[derive(Clone, Copy, Default, Debug)]
struct Pct {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn pct(samples: &[i64]) -> Pct {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let at = |p: f64| {
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
        v.get(rank - 1).copied().unwrap_or(0) as f64 / 1000.0
    };
    Pct {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: v.last().copied().unwrap_or(0) as f64 / 1000.0,
    }
}

enum WatchCmd {
    Arm,
}

enum WatchMsg {
    Armed,
    Fired(Instant),
}

/// A session at an observer that, on each `Arm`, reads `path` with a watch, says so, and
/// stamps the watch event's arrival.
struct Watcher {
    cmd: mpsc::Sender<WatchCmd>,
    msg: mpsc::Receiver<WatchMsg>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(addr: SocketAddr, path: &str) -> Watcher {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (msg_tx, msg_rx) = mpsc::channel();
        let path = path.to_owned();
        let mut z = session(addr);
        let handle = thread::spawn(move || {
            for WatchCmd::Arm in cmd_rx {
                let req = Request::GetData(GetDataRequest {
                    path: path.clone(),
                    watch: true,
                });
                call_ok(&mut z, (OpCode::GetData, req));
                if msg_tx.send(WatchMsg::Armed).is_err() {
                    break;
                }
                let f = next_frame(&mut z);
                let at = Instant::now();
                assert_eq!(f.header.xid, rawzk::NOTIFICATION_XID, "not a notification");
                if msg_tx.send(WatchMsg::Fired(at)).is_err() {
                    break;
                }
            }
            close(z);
        });
        Watcher {
            cmd: cmd_tx,
            msg: msg_rx,
            handle: Some(handle),
        }
    }

    fn arm(&self) {
        self.cmd.send(WatchCmd::Arm).expect("watcher gone");
    }

    fn armed(&self) {
        match self.msg.recv_timeout(REPLY_PATIENCE) {
            Ok(WatchMsg::Armed) => {}
            _ => panic!("a watcher did not arm"),
        }
    }

    fn fired(&self) -> Instant {
        match self.msg.recv_timeout(REPLY_PATIENCE) {
            Ok(WatchMsg::Fired(t)) => t,
            _ => panic!("no watch event within {REPLY_PATIENCE:?}"),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.cmd, tx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Figure 1: for each observer, commit at the leader → watch event there, in µs.
fn visibility(
    s: &Settings,
    leader: SocketAddr,
    observers: &[SocketAddr],
    warmup: usize,
) -> Vec<Vec<i64>> {
    let watchers: Vec<Watcher> = observers
        .iter()
        .map(|a| Watcher::start(*a, WATCHED))
        .collect();
    let mut writer = session(leader);
    let mut rng = seeded(2);
    let mut out = vec![Vec::new(); observers.len()];
    for round in 0..warmup + s.samples {
        for w in &watchers {
            w.arm();
        }
        for w in &watchers {
            w.armed();
        }
        // Paced: the previous round is over everywhere; a pause between writes.
        thread::sleep(Duration::from_millis(10));
        call_ok(&mut writer, set_req(WATCHED, s.value(&mut rng)));
        let replied = Instant::now();
        for (i, w) in watchers.iter().enumerate() {
            let fired = w.fired();
            let us = if fired >= replied {
                (fired - replied).as_micros() as i64
            } else {
                -((replied - fired).as_micros() as i64)
            };
            if round >= warmup {
                out[i].push(us);
            }
        }
    }
    close(writer);
    out
}

/// Figure 2: setData latency, in µs, through each of `through` in turn, round by round.
fn write_latency(s: &Settings, through: &[SocketAddr], warmup: usize) -> Vec<Vec<i64>> {
    let mut sessions: Vec<RawZk> = through.iter().map(|a| session(*a)).collect();
    let mut rng = seeded(3);
    let mut out = vec![Vec::new(); through.len()];
    for round in 0..warmup + s.write_samples {
        for (i, z) in sessions.iter_mut().enumerate() {
            let req = set_req(&key(round * 7 + i), s.value(&mut rng));
            let t = Instant::now();
            call_ok(z, req);
            if round >= warmup {
                out[i].push(t.elapsed().as_micros() as i64);
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    for z in sessions {
        close(z);
    }
    out
}

/// The WAN links one side of the comparison uses.
enum Wan<'a> {
    Udp(&'a UdpWan),
    Tcp(Vec<&'a TcpCut>),
}

impl Wan<'_> {
    /// Datagrams carried so far, both ways (UDP only).
    fn datagrams(&self) -> Option<u64> {
        match self {
            Wan::Udp(w) => {
                let st = w.stats();
                Some(st.to_target.forwarded + st.to_client.forwarded)
            }
            Wan::Tcp(_) => None,
        }
    }

    /// Bytes carried so far: (upstream, downstream).
    fn bytes(&self) -> (u64, u64) {
        match self {
            Wan::Udp(w) => {
                let st = w.stats();
                (st.to_target.forwarded_bytes, st.to_client.forwarded_bytes)
            }
            Wan::Tcp(links) => links.iter().fold((0, 0), |(u, d), l| {
                let (lu, ld) = l.bytes();
                (u + lu, d + ld)
            }),
        }
    }
}

/// Bytes per committed write: (both ways, downstream).
#[derive(Clone, Copy, Default, Debug)]
struct PerWrite {
    total: f64,
    down: f64,
    /// UDP datagrams per write, both ways (each costs 28 bytes of IPv4 and UDP headers
    /// more on a real link); TCP segments cannot be counted from user space.
    datagrams: Option<f64>,
}

impl PerWrite {
    /// `total (down)`, and the datagrams when counted.
    fn cell(&self) -> String {
        match self.datagrams {
            Some(d) => format!("{:.0} ({:.0}) B in {d:.2} datagrams", self.total, self.down),
            None => format!("{:.0} ({:.0}) B", self.total, self.down),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Drive {
    Paced,
    Burst,
}

/// Figure 3: N setData at the leader, paced or in a burst; the bytes each WAN carried
/// until every observer had them, divided by N.
fn wan_bytes(
    s: &Settings,
    leader: SocketAddr,
    leader_zxid: &dyn Fn() -> i64,
    observers: &[Obs],
    wans: &[Wan],
    drive: Drive,
) -> (Vec<PerWrite>, f64) {
    let mut writer = session(leader);
    let n = match drive {
        Drive::Paced => s.paced_writes,
        Drive::Burst => s.burst_writes,
    };
    let before: Vec<(u64, u64)> = wans.iter().map(Wan::bytes).collect();
    let before_dgrams: Vec<Option<u64>> = wans.iter().map(Wan::datagrams).collect();
    let t = Instant::now();
    match drive {
        Drive::Paced => {
            let mut rng = seeded(4);
            let every = Duration::from_secs_f64(1.0 / s.paced_rate as f64);
            for i in 0..n {
                let due = t + every * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                call_ok(&mut writer, set_req(&key(i), s.value(&mut rng)));
            }
        }
        Drive::Burst => {
            burst(s, leader, n, 4, 64);
        }
    }
    let took = t.elapsed();
    let target = leader_zxid();
    for o in observers {
        o.wait_zxid(target, PATIENCE);
    }
    // The acknowledgements of the last packets.
    thread::sleep(Duration::from_millis(500));
    let after: Vec<(u64, u64)> = wans.iter().map(Wan::bytes).collect();
    let after_dgrams: Vec<Option<u64>> = wans.iter().map(Wan::datagrams).collect();
    close(writer);
    let per = (0..wans.len())
        .map(|i| {
            let (b, a) = (before[i], after[i]);
            PerWrite {
                total: ((a.0 - b.0) + (a.1 - b.1)) as f64 / n as f64,
                down: (a.1 - b.1) as f64 / n as f64,
                datagrams: before_dgrams[i]
                    .zip(after_dgrams[i])
                    .map(|(b, a)| (a - b) as f64 / n as f64),
            }
        })
        .collect();
    (per, n as f64 / took.as_secs_f64())
}

/// Figure 4's result.
struct Stream {
    leader_rate: f64,
    observer_rate: f64,
    /// How long into the measured window the publisher let the observer go as too slow
    /// (its queue passed `relay.bufferBytes`); the rates are those before it.
    dropped_after: Option<Duration>,
    /// How far behind the observer was, by this program's own samples: the time since
    /// the leader had the zxid the observer had then (a lower bound, to the sampling
    /// interval), and the transactions between them; before any drop.
    worst_lag: Duration,
    worst_lag_txns: i64,
    end_lag: Duration,
    /// The worst `zk_observer_lag_ms` the observer reported meanwhile.
    worst_reported_lag_ms: u64,
    catch_up: Duration,
    /// The observer's `zk_relay_snapshots_received` over the run.
    snapshots: u64,
    lost: (u64, u64),
    datagrams: (u64, u64),
    down_bytes_per_s: f64,
    /// How busy the machine's cores were during the window, 0 to 1.
    cpu_busy: f64,
    /// UDP datagrams the kernel dropped (full receive buffers) over the run.
    rcvbuf_drops: u64,
}

impl Stream {
    /// Kept up: never let go as too slow, and within `maxLagMs` (1 s, the bound an
    /// observer serves clients within) of the leader at the end of the window. Over a
    /// window of seconds, a rate within a few percent of the leader's follows from it.
    fn kept_up(&self) -> bool {
        self.dropped_after.is_none() && self.end_lag <= Duration::from_secs(1)
    }
}

/// /proc/stat's first line: (busy, all) jiffies of every core.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let all: u64 = v.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// UDP datagrams the kernel dropped for want of receive buffer, machine-wide
/// (/proc/net/snmp `Udp: RcvbufErrors`): losses the WAN link's own counters do not see.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn counter(a: SocketAddr, k: &str) -> u64 {
    mntr(a).get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Figure 4: pipelined setData at the leader (4 sessions × 64 in flight), as fast as they
/// go or at `rate` per second, for `secs` after 2 s of warm-up; the leader's and the
/// observer's zxids sampled every 250 ms. With `heal_to_catch_up`, the link's loss is
/// lifted once the load stops (only the load is measured, and a catch-up at 1% loss can
/// take a minute).
fn sustained(
    s: &Settings,
    leader: SocketAddr,
    obs: SocketAddr,
    link: &UdpWan,
    rate: Option<u64>,
    secs: u64,
    heal_to_catch_up: bool,
) -> Stream {
    const EVERY: Duration = Duration::from_millis(250);
    const WRITERS: u64 = 4;
    let stop = AtomicBool::new(false);
    let leader_zxid = || srvr(leader).map_or(0, |(_, z)| z);
    let st0 = link.stats();
    let drops0 = counter(leader, "zk_relay_subscribers_dropped_slow");
    let rcvbuf0 = udp_rcvbuf_errors();
    let snaps0 = counter(obs, "zk_relay_snapshots_received");
    // (when, leader's zxid, observer's zxid, observer's zk_observer_lag_ms, drops so far)
    let mut samples: Vec<(Instant, i64, i64, u64, u64)> = Vec::new();
    let mut window = (st0, st0);
    let mut cpu = ((0, 0), (0, 0));
    let started = Instant::now();
    thread::scope(|sc| {
        for c in 0..WRITERS {
            let stop = &stop;
            sc.spawn(move || {
                let mut rng = seeded(100 + c);
                let every = rate.map(|r| Duration::from_secs_f64(WRITERS as f64 / r as f64));
                pipeline(leader, 64, stop, |i| {
                    if let Some(due) = every.map(|e| started + e * i as u32) {
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                    }
                    Some(set_req(&key((i * WRITERS + c) as usize), s.value(&mut rng)))
                })
            });
        }
        thread::sleep(Duration::from_secs(2));
        window.0 = link.stats();
        cpu.0 = cpu_jiffies();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            let at = Instant::now();
            let lz = leader_zxid();
            let m = mntr(obs);
            let oz = m
                .get("zk_observer_last_zxid")
                .and_then(|v| parse_hex(v))
                .unwrap_or(0);
            let lag = m
                .get("zk_observer_lag_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let drops = counter(leader, "zk_relay_subscribers_dropped_slow") - drops0;
            samples.push((at, lz, oz, lag, drops));
            thread::sleep(EVERY.saturating_sub(at.elapsed()));
        }
        window.1 = link.stats();
        cpu.1 = cpu_jiffies();
        stop.store(true, Ordering::Relaxed);
    });
    let stopped = Instant::now();
    if heal_to_catch_up {
        link.set_link(LinkSpec {
            loss: 0.0,
            bandwidth: 0,
            ..link.link()
        });
    }
    let target = leader_zxid();
    Obs::Geokeeper(obs).wait_zxid(target, PATIENCE);
    let catch_up = stopped.elapsed();
    let st1 = link.stats();
    // Up to the first drop: after it the observer's zxid moves by snapshot, not stream.
    let kept = samples.iter().take_while(|x| x.4 == 0).count().max(1);
    let dropped_after = (kept < samples.len()).then(|| samples[kept].0 - samples[0].0);
    let samples = &samples[..kept];
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let span = (last.0 - first.0).as_secs_f64().max(1e-9);
    // The observer's zxid at sample i was the leader's at the first sample whose leader
    // zxid reached it (or before the first sample).
    let time_lag = |i: usize| {
        let (at, _, oz, _, _) = samples[i];
        let since = samples
            .iter()
            .find(|x| x.1 >= oz)
            .map_or(samples[0].0, |x| x.0);
        at.saturating_duration_since(since)
    };
    Stream {
        leader_rate: (last.1 - first.1) as f64 / span,
        observer_rate: (last.2 - first.2) as f64 / span,
        dropped_after,
        worst_lag: (0..samples.len()).map(time_lag).max().unwrap_or_default(),
        worst_lag_txns: samples.iter().map(|x| x.1 - x.2).max().unwrap_or(0),
        end_lag: time_lag(samples.len() - 1),
        worst_reported_lag_ms: samples.iter().map(|x| x.3).max().unwrap_or(0),
        catch_up,
        snapshots: counter(obs, "zk_relay_snapshots_received") - snaps0,
        lost: (
            st1.to_target.lost - st0.to_target.lost,
            st1.to_client.lost - st0.to_client.lost,
        ),
        datagrams: (
            st1.to_target.forwarded - st0.to_target.forwarded,
            st1.to_client.forwarded - st0.to_client.forwarded,
        ),
        down_bytes_per_s: (window.1.to_client.forwarded_bytes - window.0.to_client.forwarded_bytes)
            as f64
            / secs as f64,
        cpu_busy: (cpu.1 .0 - cpu.0 .0) as f64 / (cpu.1 .1 - cpu.0 .1).max(1) as f64,
        rcvbuf_drops: udp_rcvbuf_errors() - rcvbuf0,
    }
}

// ---------------------------------------------------------------------------------------
// Topologies
// ---------------------------------------------------------------------------------------

/// Relay certificates for every node of both topologies, naming every address used.
fn certs(work: &Path) -> PathBuf {
    let dir = work.join("certs");
    let hosts: Vec<String> = (60..100).map(|x| ip(x).to_string()).collect();
    let nodes: Vec<NodeSpec> = [
        ("leader", 1, "A"),
        ("c1", 21, "B"),
        ("gw", 5, "A"),
        ("b1", 11, "B"),
        ("b2", 12, "B"),
        ("b3", 13, "B"),
        ("b4", 14, "B"),
        ("b5", 15, "B"),
    ]
    .iter()
    .map(|(name, id, room)| {
        let mut n = NodeSpec::new(name, *id, room);
        n.add_hosts(&hosts);
        n
    })
    .collect();
    issue(&dir, &nodes, &Options::default()).expect("certificates");
    dir
}

fn relay_stores(certs: &Path, name: &str) -> String {
    format!(
        "relay.keyStore.location={}\nrelay.trustStore.location={}\n",
        certs.join(format!("{name}.pem")).display(),
        certs.join("ca.pem").display()
    )
}

/// A geokeeper QUIC observer of room B at 127.0.0.`x`, following `upstream`; with
/// `subscribers`, a room relay.
struct GkObserver {
    proc: Proc,
    client: SocketAddr,
    relay: Option<SocketAddr>,
}

fn start_observer(
    work: &Path,
    certs: &Path,
    name: &str,
    id: u64,
    x: u8,
    upstream: SocketAddr,
    subscribers: Option<&str>,
) -> GkObserver {
    let client = free_tcp(x);
    let relay = subscribers.map(|_| free_udp(x));
    let publish = match (relay, subscribers) {
        (Some(r), Some(subs)) => format!(
            "relayPort={}\nrelayAddress={}\nrelay.subscribers={subs}\n",
            r.port(),
            r.ip()
        ),
        _ => String::new(),
    };
    let cfg = format!(
        "tickTime=2000\nclientPort={}\nclientPortAddress={}\n4lw.commands.whitelist=*\n\
         peerType=observer\nrelay.upstreams={upstream}\n{publish}{}",
        client.port(),
        client.ip(),
        relay_stores(certs, name)
    );
    let dir = server_dir(work, name, Some(id), &cfg);
    GkObserver {
        proc: spawn_geokeeper(name, &dir),
        client,
        relay,
    }
}

fn wait_observer_synced(o: &mut GkObserver) {
    let t = Instant::now();
    while observer_zxid(o.client).is_none() {
        o.proc.check_alive();
        assert!(
            t.elapsed() < PATIENCE,
            "{} did not sync:\n{}",
            o.proc.name,
            o.proc.log_tail(30)
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The Java ensemble of room A (three participants), and its observer in room B whose
/// view of the participants goes through 25 ms TCP forwarders.
struct Ensemble {
    members: Vec<Proc>,
    clients: Vec<SocketAddr>,
    leader: SocketAddr,
    /// The `server.N` lines as room A sees them.
    server_lines: String,
    /// The observer's zoo.cfg, to start it again.
    observer_cfg: String,
    /// Its learner and election links through the WAN, one pair per participant.
    wan: Vec<TcpCut>,
    observer: Option<Proc>,
    observer_client: SocketAddr,
}

impl Ensemble {
    fn start(s: &Settings) -> Ensemble {
        let ids = [1u64, 2, 3];
        let xs = [61u8, 62, 63];
        let obs_x = 64u8;
        // Client, quorum and election ports of each member.
        let ports: Vec<Vec<SocketAddr>> = xs.iter().map(|x| free_tcps(*x, 3)).collect();
        let clients: Vec<SocketAddr> = ports.iter().map(|p| p[0]).collect();
        let quorum: Vec<SocketAddr> = ports.iter().map(|p| p[1]).collect();
        let election: Vec<SocketAddr> = ports.iter().map(|p| p[2]).collect();
        let o = free_tcps(obs_x, 3);
        let (oc, oq, oe) = (o[0], o[1], o[2]);
        let line = |id: u64, q: SocketAddr, e: SocketAddr, obs: bool| {
            format!(
                "server.{id}={}:{}:{}{}\n",
                q.ip(),
                q.port(),
                e.port(),
                if obs { ":observer" } else { "" }
            )
        };
        let obs_line = line(4, oq, oe, true);
        let server_lines: String = (0..3)
            .map(|i| line(ids[i], quorum[i], election[i], false))
            .collect();
        // Room B's view: each participant's quorum and election ports behind a forwarder
        // of its own address (127.0.0.71-73), 25 ms each way.
        let mut wan = Vec::new();
        let mut b_lines = String::new();
        for i in 0..3 {
            let f = free_tcps(71 + i as u8, 2);
            let fq = TcpCut::start_delayed_on(f[0], quorum[i], s.delay());
            let fe = TcpCut::start_delayed_on(f[1], election[i], s.delay());
            b_lines.push_str(&line(ids[i], fq.addr, fe.addr, false));
            wan.push(fq);
            wan.push(fe);
        }
        let common = "tickTime=2000\ninitLimit=30\nsyncLimit=5\n4lw.commands.whitelist=*\n\
                      admin.enableServer=false\nmaxClientCnxns=0\n";
        let mut members = Vec::new();
        for i in 0..3 {
            let cfg = format!(
                "clientPort={}\nclientPortAddress={}\n{common}{server_lines}{obs_line}",
                clients[i].port(),
                clients[i].ip()
            );
            let dir = server_dir(&s.work, &format!("zk{}", ids[i]), Some(ids[i]), &cfg);
            members.push(spawn_java(&format!("zk{}", ids[i]), &dir, &s.work, "1g"));
        }
        let observer_cfg = format!(
            "clientPort={}\nclientPortAddress={}\npeerType=observer\n{common}{b_lines}{obs_line}",
            oc.port(),
            oc.ip()
        );
        let mut e = Ensemble {
            members,
            clients,
            leader: oc,
            server_lines,
            observer_cfg,
            wan,
            observer: None,
            observer_client: oc,
        };
        let t = Instant::now();
        e.leader = loop {
            for m in &mut e.members {
                m.check_alive();
            }
            if let Some(l) = e
                .clients
                .iter()
                .find(|c| srvr(**c).is_some_and(|(m, _)| m == "leader"))
            {
                break *l;
            }
            assert!(t.elapsed() < PATIENCE, "the ensemble elected no leader");
            thread::sleep(Duration::from_millis(100));
        };
        e
    }

    /// Starts the Java observer on an empty data directory; returns when it serves at
    /// the leader's zxid, and how long that took from spawn.
    fn start_observer(&mut self, work: &Path) -> Duration {
        if let Some(mut p) = self.observer.take() {
            p.kill();
        }
        let dir = server_dir(work, "zk4", Some(4), &self.observer_cfg);
        let target = self.leader_zxid();
        let t = Instant::now();
        let mut p = spawn_java("zk4 (Java observer)", &dir, work, "2g");
        while java_observer_zxid(self.observer_client).is_none_or(|z| z < target) {
            p.check_alive();
            assert!(
                t.elapsed() < PATIENCE,
                "the Java observer did not sync:\n{}",
                p.log_tail(30)
            );
            thread::sleep(Duration::from_millis(20));
        }
        let took = t.elapsed();
        self.observer = Some(p);
        took
    }

    fn leader_zxid(&self) -> i64 {
        srvr(self.leader).map_or(0, |(_, z)| z)
    }

    fn wan(&self) -> Wan<'_> {
        Wan::Tcp(self.wan.iter().collect())
    }
}

/// The geokeeper gateway of room A, publishing the ensemble's stream.
fn start_gateway(
    s: &Settings,
    e: &Ensemble,
    certs: &Path,
    client: SocketAddr,
    relay: SocketAddr,
) -> Proc {
    let cfg = format!(
        "tickTime=2000\ninitLimit=30\nsyncLimit=5\npeerType=observer\nclientPort={}\n\
         clientPortAddress={}\n4lw.commands.whitelist=*\n{}server.5={}:1:2:observer\n\
         relayPort={}\nrelayAddress={}\nrelay.subscribers=11@B\n{}",
        client.port(),
        client.ip(),
        e.server_lines,
        client.ip(),
        relay.port(),
        relay.ip(),
        relay_stores(certs, "gw")
    );
    let dir = server_dir(&s.work, "gw", Some(5), &cfg);
    let mut p = spawn_geokeeper("gateway", &dir);
    let t = Instant::now();
    while observer_zxid(client).is_none() {
        p.check_alive();
        assert!(t.elapsed() < PATIENCE, "the gateway did not sync");
        thread::sleep(Duration::from_millis(20));
    }
    let target = e.leader_zxid();
    Obs::Geokeeper(client).wait_zxid(target, PATIENCE);
    p
}

fn udp_link(s: &Settings, listen_x: u8, target: SocketAddr, loss: f64, seed: u64) -> UdpWan {
    UdpWan::start_on(
        free_udp(listen_x),
        target,
        LinkSpec {
            delay: s.delay(),
            jitter: Duration::ZERO,
            loss,
            bandwidth: 0,
        },
        seed,
    )
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    rows: Vec<[String; 6]>,
    notes: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        what: &str,
        figure: &str,
        gk: String,
        java: String,
        ratio: String,
        goal: String,
    ) {
        eprintln!("    {what} | {figure} | {gk} | {java} | {ratio} | {goal}");
        self.rows
            .push([what.into(), figure.into(), gk, java, ratio, goal]);
    }

    /// Figure 3's row: one geokeeper observer (a) against the Java observer (c).
    fn bytes_vs_java(&mut self, what: &str, a: PerWrite, c: PerWrite) {
        self.row(
            what,
            "(a) one observer vs (c) Java: both ways (down)",
            a.cell(),
            c.cell(),
            format!("{:.2}", a.total / c.total),
            format!("(a) ≤ 0.5 × (c): {}", met(a.total <= 0.5 * c.total)),
        );
    }

    fn note(&mut self, n: String) {
        eprintln!("    note: {n}");
        self.notes.push(n);
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn step(what: &str) {
    eprintln!("==> [{}] {what}", clock());
}

/// UTC wall-clock time of day, for the log.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------------------

/// Figures 1–4 with a standalone geokeeper leader publishing to one room-B observer.
fn standalone(s: &Settings, certs: &Path, r: &mut Report) {
    step("standalone geokeeper leader (room A) and observer c1 (room B)");
    let client = free_tcp(90);
    let relay = free_udp(90);
    let cfg = format!(
        "tickTime=2000\nclientPort={}\nclientPortAddress={}\n4lw.commands.whitelist=*\n\
         relayPort={}\nrelayAddress={}\nrelay.subscribers=21@B\n{}",
        client.port(),
        client.ip(),
        relay.port(),
        relay.ip(),
        relay_stores(certs, "leader")
    );
    let dir = server_dir(&s.work, "leader", None, &cfg);
    let mut leader = spawn_geokeeper("standalone leader", &dir);
    wait_until("the standalone leader serves", PATIENCE, || {
        leader.check_alive();
        srvr(client).is_some()
    });
    let link = udp_link(s, 91, relay, 0.0, 7);
    let mut c1 = start_observer(&s.work, certs, "c1", 21, 92, link.addr(), None);
    wait_observer_synced(&mut c1);
    create_keys(s, client);
    let leader_zxid = || srvr(client).map_or(0, |(_, z)| z);
    burst(s, client, 5000, 4, 64);
    Obs::Geokeeper(c1.client).wait_zxid(leader_zxid(), PATIENCE);

    step(&format!(
        "figure 1: commit → visible at c1, {} samples",
        s.samples
    ));
    let vis = visibility(s, client, &[c1.client], 50);
    let v = pct(&vis[0]);
    let goal = s.delay_ms as f64 + 2.0;
    r.note(spread("figure 1, standalone leader → c1", &vis[0], goal));
    r.row(
        "1. commit at the leader → visible in room B (standalone geokeeper leader)",
        "p50 / p99",
        format!("{} / {}", ms(v.p50), ms(v.p99)),
        "—".into(),
        "—".into(),
        format!(
            "≤ {goal} ms: p50 {}, p99 {}",
            met(v.p50 <= goal),
            met(v.p99 <= goal)
        ),
    );

    step(&format!(
        "figure 2: setData through c1, {} samples",
        s.write_samples
    ));
    let w = write_latency(s, &[c1.client, client], 20);
    let (via, local) = (pct(&w[0]), pct(&w[1]));
    r.note(spread(
        "figure 2, setData through c1",
        &w[0],
        2.0 * s.delay_ms as f64 + local.p50,
    ));
    let rtt = 2.0 * s.delay_ms as f64;
    r.row(
        "2. setData 100 B through the room-B observer (standalone geokeeper leader)",
        "p50 / p99",
        format!("{} / {}", ms(via.p50), ms(via.p99)),
        "—".into(),
        "—".into(),
        format!(
            "≤ RTT + leader's own ({} / {}): p50 {}, p99 {}",
            ms(rtt + local.p50),
            ms(rtt + local.p99),
            met(via.p50 <= rtt + local.p50),
            met(via.p99 <= rtt + local.p99)
        ),
    );
    r.row(
        "   the standalone leader's own local setData",
        "p50 / p99",
        format!("{} / {}", ms(local.p50), ms(local.p99)),
        "—".into(),
        "—".into(),
        "reference".into(),
    );

    for drive in [Drive::Paced, Drive::Burst] {
        step(&format!(
            "figure 3a (standalone): WAN bytes, {}",
            drive_label(s, drive)
        ));
        let (per, rate) = wan_bytes(
            s,
            client,
            &leader_zxid,
            &[Obs::Geokeeper(c1.client)],
            &[Wan::Udp(&link)],
            drive,
        );
        r.row(
            &format!(
                "3a. WAN bytes per setData, one observer, standalone geokeeper leader, {}",
                drive_label(s, drive)
            ),
            "both ways (down)",
            per[0].cell(),
            "—".into(),
            "—".into(),
            format!("{rate:.0} writes/s"),
        );
    }

    let lossy = |loss: f64| {
        link.set_link(LinkSpec {
            delay: s.delay(),
            jitter: Duration::ZERO,
            loss,
            bandwidth: 0,
        })
    };
    for loss in [0.0, s.loss] {
        step(&format!(
            "figure 4: {} s of pipelined setData at the leader, as fast as it goes, {}% loss each way",
            s.load_secs,
            loss * 100.0
        ));
        lossy(loss);
        let st = sustained(s, client, c1.client, &link, None, s.load_secs, false);
        let ratio = st.observer_rate / st.leader_rate;
        let what = if loss > 0.0 {
            format!(
                "4. the stream at {}% loss each way, the standalone leader saturated: c1's applied rate vs the leader's commit rate",
                loss * 100.0
            )
        } else {
            "   the same, no loss (control)".to_string()
        };
        // A rate over less than 2 s before a drop says nothing.
        let short = st.dropped_after.is_some_and(|d| d < Duration::from_secs(2));
        r.row(
            &what,
            "txns/s",
            if short {
                "— (dropped first)".into()
            } else {
                format!("{:.0}", st.observer_rate)
            },
            format!("leader: {:.0}", st.leader_rate),
            if short {
                "—".into()
            } else {
                format!("{ratio:.3}")
            },
            if loss > 0.0 {
                format!(
                    "kept up (within 1 s at the end, never dropped): {}",
                    met(st.kept_up())
                )
            } else {
                "—".into()
            },
        );
        r.row(
            "   c1's lag over that run",
            "worst / at the end",
            stream_lag(&st),
            "—".into(),
            "—".into(),
            format!(
                "c1's own zk_observer_lag_ms said at most {} ms",
                st.worst_reported_lag_ms
            ),
        );
        r.note(stream_note(
            &format!("saturated, {}% loss", loss * 100.0),
            &st,
        ));
    }
    // Fixed rates at the lossy link, up to the first the stream does not keep up with.
    let mut sustained_rate = None;
    let mut failed = None;
    for &rate in &s.ladder {
        step(&format!(
            "figure 4: {rate} setData/s for {} s, {}% loss each way",
            s.ladder_secs,
            s.loss * 100.0
        ));
        lossy(s.loss);
        let st = sustained(s, client, c1.client, &link, Some(rate), s.ladder_secs, true);
        r.note(stream_note(
            &format!("{rate}/s, {}% loss", s.loss * 100.0),
            &st,
        ));
        if st.kept_up() {
            sustained_rate = Some((rate, st));
        } else {
            failed = Some((rate, st));
            break;
        }
    }
    r.row(
        &format!(
            "   the highest fixed rate c1 kept up with at {}% loss ({} s each of {:?}/s)",
            s.loss * 100.0,
            s.ladder_secs,
            s.ladder
        ),
        "txns/s",
        match &sustained_rate {
            Some((rate, st)) => format!("{rate} ({})", stream_lag(st)),
            None => "none".into(),
        },
        "—".into(),
        "—".into(),
        match &failed {
            Some((rate, st)) => format!(
                "at {rate}/s: {:.0} applied of {:.0} committed{}",
                st.observer_rate,
                st.leader_rate,
                st.dropped_after
                    .map(|d| format!(", dropped as too slow after {:.1} s", d.as_secs_f64()))
                    .unwrap_or_default()
            ),
            None => "every rate tried".into(),
        },
    );
    drop(c1);
    drop(link);
    leader.kill();
}

/// A latency distribution against its goal, for the notes.
fn spread(what: &str, samples: &[i64], goal_ms: f64) -> String {
    let p = pct(samples);
    let over = samples
        .iter()
        .filter(|us| **us as f64 / 1000.0 > goal_ms)
        .count();
    let slow = samples.iter().filter(|us| **us > 100_000).count();
    format!(
        "{what}: {} samples, p50 {}, p90 {}, p99 {}, max {}; {over} above {goal_ms} ms, {slow} above 100 ms",
        samples.len(),
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.max)
    )
}

fn stream_lag(st: &Stream) -> String {
    format!(
        "≥ {:.2} s ({} txns) / ≥ {:.2} s{}; in step {:.1} s after the load stopped",
        st.worst_lag.as_secs_f64(),
        st.worst_lag_txns,
        st.end_lag.as_secs_f64(),
        st.dropped_after
            .map(|d| format!("; dropped as too slow {:.1} s in", d.as_secs_f64()))
            .unwrap_or_default(),
        st.catch_up.as_secs_f64()
    )
}

fn stream_note(what: &str, st: &Stream) -> String {
    format!(
        "figure 4, {what}: leader {:.0} txns/s, c1 {:.0} txns/s{}; lag {}; WAN downstream {:.0} kB/s during the load; datagrams lost up/down {}/{} of {}/{} carried; c1 received {} snapshots; the machine's cores {:.0}% busy; UDP datagrams dropped by the kernel (full receive buffers, machine-wide) {}",
        st.leader_rate,
        st.observer_rate,
        st.dropped_after
            .map(|d| format!(" (until dropped as too slow {:.1} s in)", d.as_secs_f64()))
            .unwrap_or_default(),
        stream_lag(st),
        st.down_bytes_per_s / 1000.0,
        st.lost.0,
        st.lost.1,
        st.datagrams.0,
        st.datagrams.1,
        st.snapshots,
        st.cpu_busy * 100.0,
        st.rcvbuf_drops
    )
}

fn drive_label(s: &Settings, drive: Drive) -> String {
    match drive {
        Drive::Paced => format!(
            "paced ({} writes, one at a time, {}/s)",
            s.paced_writes, s.paced_rate
        ),
        Drive::Burst => format!(
            "burst ({} writes, 4 sessions × 64 in flight)",
            s.burst_writes
        ),
    }
}

/// Figures 1–3 and 5, the gateway of a Java ensemble beside a Java observer of it.
fn gateway(s: &Settings, certs: &Path, r: &mut Report) {
    step("a Java ensemble (3 participants, room A), its Java observer (room B, 25 ms TCP)");
    let mut e = Ensemble::start(s);
    let java_join = e.start_observer(&s.work);
    eprintln!(
        "    Java observer serving {:.2} s after spawn (empty tree)",
        java_join.as_secs_f64()
    );
    step("the gateway (room A) and its QUIC observer b1 (room B)");
    let (gw_client, gw_relay) = (free_tcp(65), free_udp(65));
    let mut gw = start_gateway(s, &e, certs, gw_client, gw_relay);
    let link = udp_link(s, 74, gw_relay, 0.0, 8);
    let subs = "12@B,13@B,14@B,15@B";
    let mut b1 = start_observer(&s.work, certs, "b1", 11, 81, link.addr(), Some(subs));
    wait_observer_synced(&mut b1);
    let leader = e.leader;
    let jobs = Obs::Java(e.observer_client);
    let leader_zxid = || srvr(leader).map_or(0, |(_, z)| z);

    if s.wants("gateway") {
        create_keys(s, leader);
        step("warm-up: 5000 setData at the Java leader");
        burst(s, leader, 5000, 4, 64);
        let z = leader_zxid();
        Obs::Geokeeper(b1.client).wait_zxid(z, PATIENCE);
        jobs.wait_zxid(z, PATIENCE);

        step(&format!(
            "figure 1: commit at the Java leader → visible at b1 and at the Java observer, {} samples",
            s.samples
        ));
        let vis = visibility(s, leader, &[b1.client, e.observer_client], 50);
        let (g, j) = (pct(&vis[0]), pct(&vis[1]));
        let goal = s.delay_ms as f64 + 2.0;
        r.note(spread(
            "figure 1, Java leader → gateway → b1",
            &vis[0],
            goal,
        ));
        r.note(spread(
            "figure 1, Java leader → Java observer",
            &vis[1],
            goal,
        ));
        r.row(
            "1. commit at the leader → visible in room B (Java ensemble; gateway → QUIC vs Java observer)",
            "p50",
            ms(g.p50),
            ms(j.p50),
            format!("{:.2}", g.p50 / j.p50),
            format!("≤ {goal} ms: {}", met(g.p50 <= goal)),
        );
        r.row(
            "",
            "p99",
            ms(g.p99),
            ms(j.p99),
            format!("{:.2}", g.p99 / j.p99),
            format!("≤ {goal} ms: {}", met(g.p99 <= goal)),
        );
        let both_later = vis[0].iter().zip(&vis[1]).filter(|(g, j)| g > j).count();
        r.note(format!(
            "figure 1, same transactions: the geokeeper observer saw the event after the Java observer in {both_later} of {} rounds",
            vis[0].len()
        ));

        step(&format!(
            "figure 2: setData through b1, through the Java observer, at the leader; {} rounds",
            s.write_samples
        ));
        let w = write_latency(s, &[b1.client, e.observer_client, leader], 20);
        let (g, j, l) = (pct(&w[0]), pct(&w[1]), pct(&w[2]));
        let rtt = 2.0 * s.delay_ms as f64;
        r.note(spread("figure 2, setData through b1", &w[0], rtt + l.p50));
        r.note(spread(
            "figure 2, setData through the Java observer",
            &w[1],
            rtt + l.p50,
        ));
        r.note(spread("figure 2, setData at the Java leader", &w[2], l.p50));
        r.row(
            "2. setData 100 B through the room-B observer (Java ensemble)",
            "p50",
            ms(g.p50),
            ms(j.p50),
            format!("{:.2}", g.p50 / j.p50),
            format!(
                "≤ RTT + leader's own = {}: {}",
                ms(rtt + l.p50),
                met(g.p50 <= rtt + l.p50)
            ),
        );
        r.row(
            "",
            "p99",
            ms(g.p99),
            ms(j.p99),
            format!("{:.2}", g.p99 / j.p99),
            format!(
                "≤ RTT + leader's own = {}: {}",
                ms(rtt + l.p99),
                met(g.p99 <= rtt + l.p99)
            ),
        );
        r.row(
            "   the Java leader's own local setData",
            "p50 / p99",
            "—".into(),
            format!("{} / {}", ms(l.p50), ms(l.p99)),
            "—".into(),
            "reference".into(),
        );

        let mut single = Vec::new();
        for drive in [Drive::Paced, Drive::Burst] {
            step(&format!(
                "figure 3a/3c: WAN bytes, one geokeeper observer and the Java observer, {}",
                drive_label(s, drive)
            ));
            let (per, rate) = wan_bytes(
                s,
                leader,
                &leader_zxid,
                &[Obs::Geokeeper(b1.client), jobs],
                &[Wan::Udp(&link), e.wan()],
                drive,
            );
            single.push((per[0], per[1], rate));
        }
        step("four more geokeeper observers in room B, subscribed to b1 (the room relay)");
        let b1_relay = b1.relay.expect("b1 publishes");
        let mut more: Vec<GkObserver> = (0..4)
            .map(|i| {
                start_observer(
                    &s.work,
                    certs,
                    &format!("b{}", i + 2),
                    12 + i as u64,
                    82 + i as u8,
                    b1_relay,
                    None,
                )
            })
            .collect();
        for o in &mut more {
            wait_observer_synced(o);
        }
        let mut all: Vec<Obs> = vec![Obs::Geokeeper(b1.client), jobs];
        all.extend(more.iter().map(|o| Obs::Geokeeper(o.client)));
        for (k, drive) in [Drive::Paced, Drive::Burst].into_iter().enumerate() {
            step(&format!(
                "figure 3b: WAN bytes, five geokeeper observers behind b1, {}",
                drive_label(s, drive)
            ));
            let (per, rate) = wan_bytes(
                s,
                leader,
                &leader_zxid,
                &all,
                &[Wan::Udp(&link), e.wan()],
                drive,
            );
            let (a, c, rate_a) = single[k];
            let b = per[0];
            r.bytes_vs_java(
                &format!(
                    "3. WAN bytes per setData (Java ensemble), {}",
                    drive_label(s, drive)
                ),
                a,
                c,
            );
            r.row(
                "",
                "(b) b1 + 4 behind it vs (a)",
                b.cell(),
                format!(
                    "Java in the same run: {:.0} ({:.0})",
                    per[1].total, per[1].down
                ),
                format!("{:.3}", b.total / a.total),
                format!(
                    "(b) = (a) within 5%: {}",
                    met((b.total / a.total - 1.0).abs() <= 0.05)
                ),
            );
            r.note(format!(
                "figure 3, {}: the leader committed {rate_a:.0} writes/s in run (a)+(c), {rate:.0} in run (b)",
                drive_label(s, drive)
            ));
        }
        drop(more);

        // The same (a) and (c) with values a compressor can shrink: random text a little,
        // service records (what discovery writes) a lot. 100 random bytes alone are
        // 0.53 × (c): the goal (a) ≤ 0.5 × (c) needs values that are not noise.
        for values in [Values::Text, Values::Records] {
            let v = Settings {
                values,
                ..s.clone()
            };
            for drive in [Drive::Paced, Drive::Burst] {
                step(&format!(
                    "figure 3a/3c with {} values, {}",
                    v.values_name(),
                    drive_label(s, drive)
                ));
                let (per, _) = wan_bytes(
                    &v,
                    leader,
                    &leader_zxid,
                    &[Obs::Geokeeper(b1.client), jobs],
                    &[Wan::Udp(&link), e.wan()],
                    drive,
                );
                let (a, c) = (per[0], per[1]);
                r.bytes_vs_java(
                    &format!(
                        "3. the same with 100-byte values of {}, {}",
                        v.values_name(),
                        drive_label(s, drive)
                    ),
                    a,
                    c,
                );
            }
        }
    }

    if s.wants("join") {
        step("figure 5: the observers stop; the leader gets the znodes");
        b1.proc.kill();
        if let Some(mut p) = e.observer.take() {
            p.kill();
        }
        populate(s, leader);
        let target = leader_zxid();
        Obs::Geokeeper(gw_client).wait_zxid(target, PATIENCE);
        let count = srvr_nodes(leader);
        // This gateway's log reaches back to the ensemble's first transaction, so a fresh
        // observer (zxid 0, another epoch) is sent that whole log as a diff. A gateway
        // that has run for a while has purged it; one that has just joined by SNAP keeps
        // only a snapshot and the log after it: restarted on an empty data directory, the
        // gateway is that, and the fresh observer then catches up by snapshot.
        step(&format!(
            "figure 5: a fresh geokeeper observer joins over QUIC ({count} znodes; the gateway has every transaction in its log)"
        ));
        let (diff_join, diff_kind) = fresh_observer_join(s, certs, link.addr(), target, r);
        step(
            "figure 5: the gateway restarts on an empty data directory (SNAP from the Java leader)",
        );
        gw.kill();
        let t = Instant::now();
        gw = start_gateway(s, &e, certs, gw_client, gw_relay);
        let gw_join = t.elapsed();
        step(&format!(
            "figure 5: a fresh geokeeper observer joins over QUIC ({count} znodes; the gateway has a snapshot)"
        ));
        let (snap_join, snap_kind) = fresh_observer_join(s, certs, link.addr(), target, r);
        step(&format!(
            "figure 5: a fresh Java observer joins over TCP ({count} znodes)"
        ));
        let tcp0 = e.wan().bytes();
        let java_join = e.start_observer(&s.work);
        let tcp1 = e.wan().bytes();
        r.note(format!(
            "figure 5, Java observer: {} znodes; WAN bytes down during the join {}. The gateway's own restart on an empty data directory (a SNAP from the Java leader in room A, no WAN): {:.2} s",
            srvr_nodes(e.observer_client),
            tcp1.1 - tcp0.1,
            gw_join.as_secs_f64()
        ));
        r.row(
            &format!("5. a fresh observer in room B, {count} znodes at the leader"),
            &format!("start → serving at the leader's zxid ({snap_kind})"),
            format!("{:.2} s", snap_join.as_secs_f64()),
            format!("{:.2} s", java_join.as_secs_f64()),
            format!("{:.2}", snap_join.as_secs_f64() / java_join.as_secs_f64()),
            "side by side".into(),
        );
        r.row(
            "   the same when the gateway's log reaches back to the start",
            &format!("start → serving at the leader's zxid ({diff_kind})"),
            format!("{:.2} s", diff_join.as_secs_f64()),
            format!("{:.2} s", java_join.as_secs_f64()),
            format!("{:.2}", diff_join.as_secs_f64() / java_join.as_secs_f64()),
            "side by side".into(),
        );
    }
    drop(b1);
    drop(link);
    gw.kill();
    drop(e);
}

/// A geokeeper observer b1 on an empty data directory, following `upstream`: the time
/// from its spawn to serving at `target`, and how it synced. It is stopped after.
fn fresh_observer_join(
    s: &Settings,
    certs: &Path,
    upstream: SocketAddr,
    target: i64,
    r: &mut Report,
) -> (Duration, String) {
    let rcvbuf0 = udp_rcvbuf_errors();
    let t = Instant::now();
    let mut fresh = start_observer(&s.work, certs, "b1", 11, 81, upstream, None);
    while observer_zxid(fresh.client).is_none_or(|z| z < target) {
        fresh.proc.check_alive();
        assert!(
            t.elapsed() < PATIENCE,
            "the fresh observer did not sync:\n{}",
            fresh.proc.log_tail(30)
        );
        thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    let m = mntr(fresh.client);
    let get = |k: &str| m.get(k).cloned().unwrap_or_default();
    let kind = get("zk_observer_sync_type");
    r.note(format!(
        "figure 5, geokeeper observer: {:.2} s by {kind} (the sync itself {} ms); snapshot bytes received {}; relay bytes in {} ({} before compression); {} znodes; UDP datagrams dropped by the kernel meanwhile (machine-wide) {}",
        took.as_secs_f64(),
        get("zk_observer_sync_time_ms"),
        get("zk_relay_snapshot_bytes_received"),
        get("zk_relay_bytes_in"),
        get("zk_relay_bytes_in_uncompressed"),
        get("zk_znode_count"),
        udp_rcvbuf_errors() - rcvbuf0
    ));
    (took, kind)
}

/// `Node count` from srvr.
fn srvr_nodes(addr: SocketAddr) -> String {
    four(addr, "srvr")
        .lines()
        .find_map(|l| l.strip_prefix("Node count: "))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// RB_ZNODES znodes of 100 bytes at the leader, 1000 per parent (/pop/d0000/n0000…):
/// pipelined creates over four sessions.
fn populate(s: &Settings, leader: SocketAddr) {
    let parents = s.znodes.div_ceil(1000);
    let t = Instant::now();
    let stop = AtomicBool::new(false);
    let mut z = session(leader);
    call_ok(&mut z, create_req("/pop", Vec::new()));
    close(z);
    pipeline(leader, 500, &stop, |i| {
        ((i as usize) < parents).then(|| create_req(&format!("/pop/d{i:04}"), Vec::new()))
    });
    thread::scope(|sc| {
        for c in 0..4usize {
            let stop = &stop;
            sc.spawn(move || {
                let mut rng = seeded(200 + c as u64);
                pipeline(leader, 500, stop, |i| {
                    let n = i as usize * 4 + c;
                    (n < s.znodes).then(|| {
                        create_req(
                            &format!("/pop/d{:04}/n{:04}", n / 1000, n % 1000),
                            s.value(&mut rng),
                        )
                    })
                })
            });
        }
    });
    eprintln!(
        "    {} znodes created in {:.1} s ({:.0}/s)",
        s.znodes,
        t.elapsed().as_secs_f64(),
        s.znodes as f64 / t.elapsed().as_secs_f64()
    );
}

/// 50 writes of 4 KiB with O_DSYNC in `dir`: the time each took on average, in ms. The
/// servers' commit path waits for one such flush per batch.
fn disk_probe(dir: &Path) -> f64 {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("disk-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .expect("disk probe file");
    let block = [7u8; 4096];
    let t = Instant::now();
    for _ in 0..50 {
        f.write_all(&block).expect("disk probe write");
    }
    let took = t.elapsed().as_secs_f64() * 1000.0 / 50.0;
    let _ = std::fs::remove_file(path);
    took
}

/// The fsync warnings (ZooKeeper's `fsync.warningthresholdms`, 1 s, in both servers'
/// logs) of every server of the run: how often the disk stalled under them.
fn fsync_stalls(work: &Path) -> String {
    let mut per: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for d in std::fs::read_dir(work).into_iter().flatten().flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        for f in ["out.log", "zookeeper.log"] {
            let text = std::fs::read_to_string(d.path().join(f)).unwrap_or_default();
            for l in text
                .lines()
                .filter(|l| l.contains("fsync-ing the write ahead log"))
            {
                let took = l
                    .split(" took ")
                    .nth(1)
                    .and_then(|t| t.split("ms").next())
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0);
                let e = per.entry(name.clone()).or_default();
                e.0 += 1;
                e.1 = e.1.max(took);
            }
        }
    }
    if per.is_empty() {
        return "no server logged an fsync slower than 1 s".into();
    }
    let all: Vec<String> = per
        .iter()
        .map(|(n, (c, m))| format!("{n} {c} (longest {m} ms)"))
        .collect();
    format!(
        "fsyncs slower than 1 s logged by the servers: {}",
        all.join(", ")
    )
}

fn main() {
    let s = Settings::from_env();
    let _ = std::fs::remove_dir_all(&s.work);
    std::fs::create_dir_all(&s.work).expect("work dir");
    let started = Instant::now();
    eprintln!(
        "relay_bench: {} cores, {} ms one-way, values: 100 B of {}, work dir {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        s.delay_ms,
        s.values_name(),
        s.work.display()
    );
    let certs = certs(&s.work);
    let mut r = Report::default();
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let disk_before = disk_probe(&s.work);
    eprintln!("    a 4 KiB O_DSYNC write takes {disk_before:.2} ms here now");
    if s.wants("standalone") {
        standalone(&s, &certs, &mut r);
    }
    if s.wants("gateway") || s.wants("join") {
        gateway(&s, &certs, &mut r);
    }
    r.note(fsync_stalls(&s.work));
    r.note(format!(
        "/proc/loadavg before the run: {}; after: {}. A 4 KiB O_DSYNC write in the work directory took {disk_before:.2} ms before the run, {:.2} ms after (mean of 50)",
        load_before.trim(),
        load().trim(),
        disk_probe(&s.work)
    ));
    println!(
        "\nrelay_bench: {} ms one-way; 100-byte values of {}; {} s in all\n",
        s.delay_ms,
        s.values_name(),
        started.elapsed().as_secs()
    );
    println!("| measurement | figure | geokeeper | Java observer | ratio | goal |");
    println!("|---|---|---|---|---|---|");
    for row in &r.rows {
        println!("| {} |", row.join(" | "));
    }
    for n in &r.notes {
        println!("\n- {n}");
    }
    if !s.keep {
        let _ = std::fs::remove_dir_all(&s.work);
    }
}
