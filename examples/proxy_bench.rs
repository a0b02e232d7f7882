//! The per-room client proxy measured (issue 12), at 25 ms one-way between rooms, on
//! this machine:
//!
//! 1. **read latency**: getData of a 32-byte znode, one request outstanding, through
//!    proxy B and straight to b1 (the replica the proxy put the session on), alternately,
//!    after a warm-up; p50/p99 and their difference (goal: within 1 ms).
//! 2. **write latency**: setData of 32 bytes, one outstanding, through proxy B and straight
//!    to b1, round by round, beside setData straight at the leader (its own commit); goal:
//!    through the proxy within one WAN round trip plus the leader's own latency.
//! 3. **throughput**: K sessions each keeping W getData in flight for T seconds (`--shapes
//!    KxW,…`), through proxy B and straight to b1; ops/s and their ratio (goal: ≥ 0.8), and
//!    CPU per request of the proxy, of b1 and of this program (utime + stime from
//!    /proc/<pid>/stat over the window).
//! 4. **failover**: N sessions through a second proxy (b1 and b2 weighted `--failover-weights`),
//!    each with a data watch; b1 is SIGKILLed and each session sends one getData at once;
//!    the time until each of b1's sessions is answered, and every error any session saw
//!    (an error reply such as ConnectionLoss, a Disconnected or Expired event, its
//!    connection closed); then a setData at the leader must fire every session's watch,
//!    and each session reads once more and closes. The proxy re-attaches at
//!    `--reattach-per-second`.
//! 5. (with Java) 1 and 3 again with the proxy in front of an Apache ZooKeeper 3.8
//!    standalone server (`java -cp` from Debian's jars), against that server directly.
//!
//! Topology: room A is a standalone geokeeper leader publishing its committed stream over
//! QUIC (`relayPort`); room B is two geokeeper observers, b1 and b2, following it through
//! one emulated WAN link (the UDP forwarder of `tests/support/wan.rs`, run in this process,
//! `--delay-ms` each way); proxy B (`geokeeper proxy`) lists b1 and b2 (room B) and the
//! leader (room A). For 1–3 its weights put every session on b1 (1,000,000 : 1), so that
//! "through the proxy" and "direct" use the same replica. Servers keep their defaults
//! (forceSync on) with `maxClientCnxns=0`; every process is SIGKILLed at the end, on a
//! panic, and by the kernel if this program dies.
//!
//! ```text
//! ./scripts/bench-proxy.sh                 # builds in release, runs it (~2.5-3 minutes)
//! ./scripts/bench-proxy.sh --quick         # ~1 minute, to validate
//! ./scripts/bench-proxy.sh --help          # every knob
//! # the issue's failover: 2,000 sessions all on the replica killed
//! ./scripts/bench-proxy.sh --what failover --sessions 2000 --failover-weights 1000000:1
//! ```
//!
//! Between figures the bench waits until the proxy sees its upstreams healthy (and notes
//! it when it had to): before 3233084 a session closed through the proxy left its upstream
//! marked down until the next probe, and new sessions were closed unanswered meanwhile
//! (a load session's handshake is still tried again, and counted).
//!
//! Addresses 127.0.0.110–119, free ports on them. The load generator of 3 and the
//! sessions of 4 are tokio tasks in this process; on a machine of few cores they compete
//! with the proxy and the replica for CPU, which lowers both sides of the ratio.

#[path = "../tests/support/rawzk.rs"]
mod rawzk;
#[path = "../tests/support/wan.rs"]
mod wan;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use clap::Parser;
use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{OpCode, Reader, Record};
use geokeeper_core::request::{frame, Request};
use geokeeper_relay::certs::{issue, NodeSpec, Options};
use rawzk::RawZk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wan::{LinkSpec, UdpWan};

const JAVA_DIR: &str = "/usr/share/java";
/// The znode every read reads (32 bytes of data).
const SMALL: &str = "/bench/small";
/// The znode every failover session watches.
const WATCHED: &str = "/bench/watched";
/// Keys the write latency figure writes, in turn.
const WRITE_KEYS: usize = 100;
const VALUE: &[u8] = b"0123456789abcdef0123456789abcdef";
/// How long anything may take to come up or sync.
const PATIENCE: Duration = Duration::from_secs(120);
/// The session timeout every session of the bench asks for (the servers grant up to
/// 20 × tickTime = 40 s).
const SESSION_TIMEOUT_MS: i32 = 30_000;

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

/// The per-room client proxy measured: read and write latency, throughput and CPU per
/// request against a direct connection, and the failover of a killed replica's sessions.
#[derive(Parser, Debug, Clone)]
#[command(name = "proxy_bench")]
struct Args {
    /// A short run (~40 s) to validate the bench: fewer samples, one throughput
    /// shape, fewer sessions. Explicit flags still win.
    #[arg(long)]
    quick: bool,
    /// One-way delay of the WAN link between room A and room B, ms.
    #[arg(long, default_value_t = 25)]
    delay_ms: u64,
    /// Figure 1: reads measured on each side, after a tenth as many of warm-up
    /// [default: 5000; quick: 1000].
    #[arg(long)]
    read_samples: Option<usize>,
    /// Figure 2: setData measured on each path [default: 300; quick: 60].
    #[arg(long)]
    write_samples: Option<usize>,
    /// Figure 3: the loads, comma-separated `SESSIONSxIN_FLIGHT` (each session keeps that
    /// many getData in flight) [default: 16x32,64x32,64x1; quick: 16x32]. Figure 5 uses
    /// the first.
    #[arg(long)]
    shapes: Option<String>,
    /// Figure 3: seconds measured per run, after 1 s of warm-up [default: 10; quick: 3].
    #[arg(long)]
    secs: Option<u64>,
    /// Figure 4: sessions opened through the failover proxy [default: 4000; quick: 1000].
    #[arg(long)]
    sessions: Option<usize>,
    /// Figure 4: the failover proxy's weights of b1 and b2, `W1:W2`.
    #[arg(long, default_value = "1:1")]
    failover_weights: String,
    /// Figure 4: the proxy's `reattach_per_second` (its default is 200).
    #[arg(long, default_value_t = 200)]
    reattach_per_second: u64,
    /// Which figures: a comma list of read, write, throughput, failover, java; or all.
    #[arg(long, default_value = "all")]
    what: String,
    /// Leave out the Apache ZooKeeper comparison even when Java and the jars are there.
    #[arg(long)]
    no_java: bool,
    /// Work directory [default: <target>/release/proxy-bench]; removed after a run
    /// unless --keep.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Keep the work directory (servers' and proxies' logs) after the run.
    #[arg(long)]
    keep: bool,
}

struct Settings {
    delay_ms: u64,
    read_samples: usize,
    write_samples: usize,
    /// (sessions, requests in flight each).
    shapes: Vec<(usize, usize)>,
    secs: u64,
    sessions: usize,
    weights: (u32, u32),
    reattach_per_second: u64,
    what: Vec<String>,
    java: bool,
    work: PathBuf,
    keep: bool,
}

impl Settings {
    fn from_args(a: Args) -> Settings {
        let q = |full: usize, quick: usize| if a.quick { quick } else { full };
        let shapes = a
            .shapes
            .unwrap_or_else(|| if a.quick { "16x32" } else { "16x32,64x32,64x1" }.into())
            .split(',')
            .map(|c| {
                c.trim()
                    .split_once('x')
                    .and_then(|(k, w)| Some((k.parse().ok()?, w.parse().ok()?)))
                    .expect("--shapes: SESSIONSxIN_FLIGHT,...")
            })
            .collect();
        let weights = a
            .failover_weights
            .split_once(':')
            .and_then(|(x, y)| Some((x.trim().parse().ok()?, y.trim().parse().ok()?)))
            .expect("--failover-weights W1:W2");
        let what: Vec<String> = if a.what == "all" {
            ["read", "write", "throughput", "failover", "java"]
                .map(String::from)
                .to_vec()
        } else {
            a.what.split(',').map(|s| s.trim().to_string()).collect()
        };
        let java_there = Path::new(&format!("{JAVA_DIR}/zookeeper.jar")).exists()
            && Command::new("java")
                .arg("-version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let wants_java = what.iter().any(|w| w == "java") && !a.no_java;
        if wants_java && !java_there {
            eprintln!("proxy_bench: no java or no {JAVA_DIR}/zookeeper.jar: the Apache ZooKeeper comparison is left out");
        }
        Settings {
            delay_ms: a.delay_ms,
            read_samples: a.read_samples.unwrap_or(q(5000, 1000)),
            write_samples: a.write_samples.unwrap_or(q(300, 60)),
            shapes,
            secs: a.secs.unwrap_or(q(10, 3) as u64),
            sessions: a.sessions.unwrap_or(q(4000, 1000)),
            weights,
            reattach_per_second: a.reattach_per_second,
            java: wants_java && java_there,
            what,
            work: a.work.unwrap_or_else(|| {
                geokeeper_bin()
                    .parent()
                    .expect("target dir")
                    .join("proxy-bench")
            }),
            keep: a.keep,
        }
    }

    fn wants(&self, what: &str) -> bool {
        self.what.iter().any(|w| w == what)
    }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

fn geokeeper_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GEOKEEPER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/examples/proxy_bench -> target/release/geokeeper
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

/// A process started by this run, SIGKILLed when dropped (also on a panic), and by the
/// kernel if this process dies first.
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

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
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

fn spawn_geokeeper(name: &str, dir: &Path, args: &[&str]) -> Proc {
    let mut c = Command::new(geokeeper_bin());
    c.args(args).env("GEOKEEPER_LOG", "info").current_dir(dir);
    Proc::spawn(name, dir, c)
}

/// A fresh directory `work/name` with `data/` and `zoo.cfg` (dataDir first, then `cfg`).
fn server_dir(work: &Path, name: &str, cfg: &str) -> PathBuf {
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    std::fs::write(
        dir.join("zoo.cfg"),
        format!("dataDir={}\n{cfg}", dir.join("data").display()),
    )
    .expect("zoo.cfg");
    dir
}

/// CPU time (user + system) a process has used so far; `None` once it is gone.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Raises the soft open-file limit to the hard one: figure 4 holds thousands of sessions.
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            if lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            return lim.rlim_cur;
        }
    }
    0
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

fn free_udp(x: u8) -> SocketAddr {
    UdpSocket::bind((ip(x), 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("no free UDP port on {}: {e}", ip(x)))
}

fn four(addr: SocketAddr, cmd: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
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

/// `srvr`'s zxid, when the server serves.
fn srvr_zxid(addr: SocketAddr) -> Option<i64> {
    let s = four(addr, "srvr");
    s.lines().find_map(|l| l.strip_prefix("Mode: "))?;
    s.lines()
        .find_map(|l| l.strip_prefix("Zxid: "))
        .and_then(parse_hex)
}

/// A geokeeper observer's applied zxid, once it serves.
fn observer_zxid(addr: SocketAddr) -> Option<i64> {
    let m = mntr(addr);
    if m.get("zk_observer_synced").map(String::as_str) != Some("1") {
        return None;
    }
    m.get("zk_observer_last_zxid").and_then(|v| parse_hex(v))
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "timed out after {within:?}: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// The topology
// ---------------------------------------------------------------------------------------

/// A server or proxy of the run: its process and client address.
struct Node {
    proc: Proc,
    client: SocketAddr,
}

impl Node {
    fn wait_serving(&mut self, check: impl Fn(SocketAddr) -> bool) {
        let t = Instant::now();
        while !check(self.client) {
            self.proc.check_alive();
            assert!(
                t.elapsed() < PATIENCE,
                "{} does not serve:\n{}",
                self.proc.name,
                self.proc.log_tail(30)
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn relay_stores(certs: &Path, name: &str) -> String {
    format!(
        "relay.keyStore.location={}\nrelay.trustStore.location={}\n",
        certs.join(format!("{name}.pem")).display(),
        certs.join("ca.pem").display()
    )
}

/// Room A's standalone leader, publishing to b1 and b2.
fn start_leader(work: &Path, certs: &Path) -> (Node, SocketAddr) {
    let client = free_tcp(110);
    let relay = free_udp(110);
    let cfg = format!(
        "tickTime=2000\nclientPort={}\nclientPortAddress={}\n4lw.commands.whitelist=*\n\
         maxClientCnxns=0\nrelayPort={}\nrelayAddress={}\nrelay.subscribers=11@B,12@B\n{}",
        client.port(),
        client.ip(),
        relay.port(),
        relay.ip(),
        relay_stores(certs, "leader")
    );
    let dir = server_dir(work, "leader", &cfg);
    let mut n = Node {
        proc: spawn_geokeeper("leader", &dir, &["serve", "--config", "zoo.cfg"]),
        client,
    };
    n.wait_serving(|a| srvr_zxid(a).is_some());
    (n, relay)
}

/// A room-B observer following `upstream` (the WAN link's address).
fn start_observer(
    work: &Path,
    certs: &Path,
    name: &str,
    id: u64,
    x: u8,
    upstream: SocketAddr,
) -> Node {
    let client = free_tcp(x);
    let cfg = format!(
        "tickTime=2000\nclientPort={}\nclientPortAddress={}\n4lw.commands.whitelist=*\n\
         maxClientCnxns=0\npeerType=observer\nroom=B\nrelay.upstreams={upstream}\n{}",
        client.port(),
        client.ip(),
        relay_stores(certs, name)
    );
    let dir = server_dir(work, name, &cfg);
    std::fs::write(dir.join("data").join("myid"), format!("{id}\n")).expect("myid");
    let mut n = Node {
        proc: spawn_geokeeper(name, &dir, &["serve", "--config", "zoo.cfg"]),
        client,
    };
    n.wait_serving(|a| observer_zxid(a).is_some());
    n
}

/// A `geokeeper proxy` for room B in front of `upstreams` (address, room, weight), with
/// `extra` lines in its `[proxy]` section; returns once `healthy` upstreams are.
fn start_proxy(
    work: &Path,
    name: &str,
    upstreams: &[(SocketAddr, &str, u32)],
    extra: &str,
    healthy: usize,
) -> Node {
    let client = free_tcp(116);
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("proxy dir");
    let list: Vec<String> = upstreams
        .iter()
        .map(|(a, room, w)| format!("  {{ address = \"{a}\", room = \"{room}\", weight = {w} }}"))
        .collect();
    std::fs::write(
        dir.join("proxy.toml"),
        format!(
            "[server]\nclient_port = {}\nclient_address = \"{}\"\nroom = \"B\"\n\n\
             [limits]\nmax_client_cnxns = 0\n\n[proxy]\nupstreams = [\n{}\n]\n{extra}",
            client.port(),
            client.ip(),
            list.join(",\n")
        ),
    )
    .expect("proxy.toml");
    let mut n = Node {
        proc: spawn_geokeeper(name, &dir, &["proxy", "--config", "proxy.toml"]),
        client,
    };
    n.wait_serving(|a| {
        mntr(a)
            .get("zk_proxy_upstreams_healthy")
            .and_then(|v| v.parse::<usize>().ok())
            == Some(healthy)
    });
    n
}

fn java_classpath(work: &Path) -> String {
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
    let mut parts = vec![dir.display().to_string()];
    for jar in [
        "zookeeper.jar",
        "zookeeper-jute.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
    ] {
        parts.push(format!("{JAVA_DIR}/{jar}"));
    }
    parts.join(":")
}

/// An Apache ZooKeeper 3.8 standalone server (G1, 512 MiB heap).
fn start_java(work: &Path) -> Node {
    let client = free_tcp(118);
    let cfg = format!(
        "tickTime=2000\nclientPort={}\nclientPortAddress={}\n4lw.commands.whitelist=*\n\
         admin.enableServer=false\nmaxClientCnxns=0\n",
        client.port(),
        client.ip()
    );
    let dir = server_dir(work, "zk", &cfg);
    let mut c = Command::new("java");
    c.args([
        "-Xshare:auto",
        "-XX:-UsePerfData",
        "-XX:+UseG1GC",
        "-Xmx512m",
        "-Djava.awt.headless=true",
        "-Dzookeeper.jmx.log4j.disable=true",
    ])
    .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
    .arg("-cp")
    .arg(java_classpath(work))
    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
    .arg(dir.join("zoo.cfg"))
    .current_dir(&dir);
    let mut n = Node {
        proc: Proc::spawn("Apache ZooKeeper", &dir, c),
        client,
    };
    n.wait_serving(|a| srvr_zxid(a).is_some());
    n
}

/// Relay certificates for the leader, b1 and b2, naming 127.0.0.110–119.
fn certs(work: &Path) -> PathBuf {
    let dir = work.join("certs");
    let hosts: Vec<String> = (110..120).map(|x| ip(x).to_string()).collect();
    let nodes: Vec<NodeSpec> = [("leader", 1, "A"), ("b1", 11, "B"), ("b2", 12, "B")]
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

// ---------------------------------------------------------------------------------------
// Blocking client calls (RawZk: the bytes on the wire, nothing retried or hidden)
// ---------------------------------------------------------------------------------------

fn session(addr: SocketAddr) -> RawZk {
    let z = RawZk::connect(addr, 0, &[0; 16], 0, SESSION_TIMEOUT_MS)
        .unwrap_or_else(|e| panic!("connect {addr}: {e:?}"));
    assert!(z.response.time_out > 0, "session refused by {addr}");
    z
}

fn close(mut z: RawZk) {
    let _ = z.call(OpCode::CloseSession, &Request::CloseSession);
}

fn get_req(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

fn set_req(path: &str) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(Bytes::from_static(VALUE)),
        version: -1,
    })
}

/// One request, answered without error.
fn call_ok(z: &mut RawZk, op: OpCode, req: &Request) {
    let e = z.call(op, req);
    match e.reply {
        Ok(f) if f.header.err == 0 => {}
        other => panic!("{op:?} failed: {other:?}"),
    }
}

/// Creates the bench's znodes at the leader; returns the leader's zxid after.
fn create_znodes(leader: SocketAddr) -> i64 {
    let mut z = session(leader);
    let mut paths = vec!["/bench".to_string(), SMALL.into(), WATCHED.into()];
    paths.extend((0..WRITE_KEYS).map(|i| format!("/bench/w{i:03}")));
    for p in paths {
        let req = Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: p,
                data: Some(Bytes::from_static(VALUE)),
                acl: geokeeper_core::acl::open_acl_unsafe(),
                flags: 0,
            },
        };
        call_ok(&mut z, OpCode::Create, &req);
    }
    close(z);
    srvr_zxid(leader).expect("leader's zxid")
}

// ---------------------------------------------------------------------------------------
// Figures 1 and 2: latency, one request outstanding
// ---------------------------------------------------------------------------------------

/// Percentiles (nearest rank) of microsecond samples, in ms.
#[derive(Clone, Copy, Default, Debug)]
struct Pct {
    p50: f64,
    p99: f64,
    n: usize,
}

fn pct(samples: &[u64]) -> Pct {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let at = |p: f64| {
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
        v.get(rank - 1).copied().unwrap_or(0) as f64 / 1000.0
    };
    Pct {
        p50: at(0.50),
        p99: at(0.99),
        n: v.len(),
    }
}

/// Round by round, one `op` on each of `through` in turn, timed in µs; the first
/// `warmup` rounds are not kept.
fn latency(
    through: &[SocketAddr],
    rounds: usize,
    warmup: usize,
    mut req: impl FnMut(usize) -> (OpCode, Request),
) -> Vec<Vec<u64>> {
    let mut sessions: Vec<RawZk> = through.iter().map(|a| session(*a)).collect();
    let mut out = vec![Vec::with_capacity(rounds); through.len()];
    for round in 0..warmup + rounds {
        let (op, r) = req(round);
        for (i, z) in sessions.iter_mut().enumerate() {
            let t = Instant::now();
            call_ok(z, op, &r);
            if round >= warmup {
                out[i].push(t.elapsed().as_micros() as u64);
            }
        }
    }
    for z in sessions {
        close(z);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Async client pieces (figures 3 and 4): one task per session
// ---------------------------------------------------------------------------------------

type Res<T> = Result<T, String>;

/// The next whole frame (length prefix stripped) from `r`, `None` at a clean end.
async fn next_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> Res<Option<Bytes>> {
    loop {
        if buf.len() >= 4 {
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if !(0..=(64 << 20)).contains(&len) {
                return Err(format!("frame length {len}"));
            }
            let len = len as usize;
            if buf.len() >= 4 + len {
                buf.advance(4);
                return Ok(Some(buf.split_to(len).freeze()));
            }
            buf.reserve(4 + len - buf.len());
        }
        match r.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err("the connection ended inside a frame".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A new session at `addr`: the connection and the server's answer.
async fn open(addr: SocketAddr) -> Res<(tokio::net::TcpStream, ConnectResponse)> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: SESSION_TIMEOUT_MS,
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only: false,
    }
    .to_bytes();
    let mut f = (req.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&req);
    s.write_all(&f).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    let answer = tokio::time::timeout(Duration::from_secs(30), next_frame(&mut s, &mut buf))
        .await
        .map_err(|_| "no handshake answer within 30 s".to_string())??
        .ok_or("closed the handshake")?;
    let r = ConnectResponse::decode(&mut Reader::new(&answer))
        .map_err(|e| format!("ConnectResponse: {e}"))?;
    if r.time_out <= 0 {
        return Err("session refused".into());
    }
    Ok((s, r))
}

fn header(f: &[u8]) -> Res<ReplyHeader> {
    ReplyHeader::decode(&mut Reader::new(f)).map_err(|e| format!("ReplyHeader: {e}"))
}

fn ping_frame() -> Bytes {
    let mut f = 8i32.to_be_bytes().to_vec();
    f.extend_from_slice(&rawzk::PING_XID.to_be_bytes());
    f.extend_from_slice(&(OpCode::Ping as i32).to_be_bytes());
    f.into()
}

// ---------------------------------------------------------------------------------------
// Figure 3: throughput and CPU per request
// ---------------------------------------------------------------------------------------

/// One session keeping `window` getData in flight until `stop`; every reply counts in
/// `done`, every error reply in `errors`.
async fn load_session(
    addr: SocketAddr,
    window: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) -> Res<()> {
    let mut tries = 0;
    let s = loop {
        match open(addr).await {
            Ok((s, _)) => break s,
            Err(e) if tries < 20 => {
                eprintln!("    a load session's handshake: {e}; again in 100 ms");
                tries += 1;
                refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let (mut r, mut w) = s.into_split();
    // One request frame, its xid patched for each send.
    let template = frame(0, OpCode::GetData, &get_req(SMALL)).to_vec();
    let (mut next_xid, mut inflight) = (1i32, 0usize);
    let mut out = Vec::with_capacity(template.len() * window);
    let mut buf = BytesMut::with_capacity(64 << 10);
    loop {
        if !stop.load(Ordering::Relaxed) {
            while inflight < window {
                let at = out.len();
                out.extend_from_slice(&template);
                out[at + 4..at + 8].copy_from_slice(&next_xid.to_be_bytes());
                next_xid += 1;
                inflight += 1;
            }
        }
        if !out.is_empty() {
            w.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        if inflight == 0 {
            break;
        }
        // Every whole reply read so far, at least one.
        let f = next_frame(&mut r, &mut buf)
            .await?
            .ok_or("the server closed the connection")?;
        let mut frames = vec![f];
        while buf.len() >= 4 {
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            buf.advance(4);
            frames.push(buf.split_to(len).freeze());
        }
        for f in frames {
            let h = header(&f)?;
            if h.xid > 0 {
                inflight -= 1;
                done.fetch_add(1, Ordering::Relaxed);
                if h.err != 0 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let close = frame(next_xid, OpCode::CloseSession, &Request::CloseSession);
    let _ = w.write_all(&close).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), next_frame(&mut r, &mut buf)).await;
    Ok(())
}

/// One throughput run's result.
#[derive(Clone, Copy, Default, Debug)]
struct Rate {
    ops_per_s: f64,
    errors: u64,
    /// CPU per request, µs: of the proxy (when it was in the path), of the server, and of
    /// this program (the load generator).
    proxy_us: Option<f64>,
    server_us: f64,
    client_us: f64,
    /// Sessions the proxy refused or closed at the handshake (each tried again).
    refused: u64,
    /// How busy the machine's cores were, 0 to 1.
    busy: f64,
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
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// `conns` sessions at `addr`, `window` in flight each, measured for `secs` after 1 s of
/// warm-up; `proxy` and `server` are the pids whose CPU is counted.
fn throughput(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    conns: usize,
    window: usize,
    secs: u64,
    proxy: Option<u32>,
    server: u32,
) -> Rate {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            rt.spawn(load_session(
                addr,
                window,
                stop.clone(),
                done.clone(),
                errors.clone(),
                refused.clone(),
            ))
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let me = std::process::id();
    let cpu = |pid: Option<u32>| pid.and_then(cpu_time).unwrap_or_default();
    let (p0, s0, c0, j0) = (cpu(proxy), cpu(Some(server)), cpu(Some(me)), cpu_jiffies());
    let (n0, e0, t0) = (
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        Instant::now(),
    );
    thread::sleep(Duration::from_secs(secs));
    let (n1, e1, took) = (
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        t0.elapsed(),
    );
    let (p1, s1, c1, j1) = (cpu(proxy), cpu(Some(server)), cpu(Some(me)), cpu_jiffies());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        match rt.block_on(t) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("a load session failed: {e}"),
            Err(e) => panic!("a load session panicked: {e}"),
        }
    }
    let n = (n1 - n0).max(1) as f64;
    let per = |a: Duration, b: Duration| (b - a).as_secs_f64() * 1e6 / n;
    Rate {
        ops_per_s: n / took.as_secs_f64(),
        errors: e1 - e0,
        proxy_us: proxy.map(|_| per(p0, p1)),
        server_us: per(s0, s1),
        client_us: per(c0, c1),
        refused: refused.load(Ordering::Relaxed),
        busy: (j1.0 - j0.0) as f64 / (j1.1 - j0.1).max(1) as f64,
    }
}

// ---------------------------------------------------------------------------------------
// Figure 4: failover
// ---------------------------------------------------------------------------------------

/// What the failover's driver tells every session.
const HOLD: u8 = 0;
/// b1 was killed: send one read now.
const READ: u8 = 1;
/// Every first read is in and the watched znode was written: read once more and close.
const FINISH: u8 = 2;

/// One failover session's story.
#[derive(Debug, Default, Clone)]
struct Outcome {
    session_id: i64,
    /// Kill → the answer to the read sent at the kill.
    first_read: Option<Duration>,
    /// Every error seen after the session was set up.
    errors: Vec<String>,
    watch_fired: bool,
    final_read_ok: bool,
}

/// What the driver watches while the sessions run.
#[derive(Default)]
struct FailoverCounters {
    ready: AtomicUsize,
    answered: AtomicUsize,
    fired: AtomicUsize,
    failed_setup: AtomicUsize,
}

/// One session of figure 4: set up (paced by `setup`), a data watch on WATCHED, pings
/// every 10 s; one read at READ; the final read and close at FINISH.
async fn failover_session(
    addr: SocketAddr,
    setup: Arc<tokio::sync::Semaphore>,
    mut phase: tokio::sync::watch::Receiver<u8>,
    kill_at: Arc<OnceLock<Instant>>,
    counters: Arc<FailoverCounters>,
) -> Outcome {
    let mut o = Outcome::default();
    let permit = setup.acquire_owned().await;
    let opened = async {
        let (s, resp) = open(addr).await?;
        let (mut r, mut w) = s.into_split();
        let mut buf = BytesMut::new();
        let watch = Request::GetData(GetDataRequest {
            path: WATCHED.into(),
            watch: true,
        });
        w.write_all(&frame(1, OpCode::GetData, &watch))
            .await
            .map_err(|e| e.to_string())?;
        let f = next_frame(&mut r, &mut buf)
            .await?
            .ok_or("closed before the watch was set")?;
        let h = header(&f)?;
        if h.xid != 1 || h.err != 0 {
            return Err(format!("getData with a watch: xid {} err {}", h.xid, h.err));
        }
        Ok::<_, String>((r, w, buf, resp.session_id))
    }
    .await;
    drop(permit);
    let (mut r, mut w, mut buf, sid) = match opened {
        Ok(x) => x,
        Err(e) => {
            counters.failed_setup.fetch_add(1, Ordering::Relaxed);
            counters.answered.fetch_add(1, Ordering::Relaxed);
            o.errors.push(format!("setup: {e}"));
            return o;
        }
    };
    o.session_id = sid;
    counters.ready.fetch_add(1, Ordering::Relaxed);
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    ping.tick().await;
    let (mut read_xid, mut final_xid, mut close_xid) = (None, None, None);
    let mut next_xid = 2i32;
    let mut answered = false;
    loop {
        tokio::select! {
            f = next_frame(&mut r, &mut buf) => {
                let f = match f {
                    Ok(Some(f)) => f,
                    Ok(None) | Err(_) if close_xid.is_some() => break,
                    Ok(None) => {
                        o.errors.push("connection closed".into());
                        break;
                    }
                    Err(e) => {
                        o.errors.push(format!("connection broken: {e}"));
                        break;
                    }
                };
                let h = match header(&f) {
                    Ok(h) => h,
                    Err(e) => {
                        o.errors.push(e);
                        break;
                    }
                };
                if h.xid == rawzk::NOTIFICATION_XID {
                    let mut rd = Reader::new(&f[16..]);
                    match WatcherEvent::decode(&mut rd) {
                        // A state change: Disconnected (0), Expired (-112), AuthFailed...
                        Ok(ev) if ev.r#type == -1 => {
                            o.errors.push(format!("event: state {}", ev.state));
                        }
                        Ok(ev) if ev.r#type == 3 && ev.path == WATCHED => {
                            if !o.watch_fired {
                                o.watch_fired = true;
                                counters.fired.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(ev) => o.errors.push(format!("unexpected event {ev:?}")),
                        Err(e) => o.errors.push(format!("a notification: {e}")),
                    }
                    continue;
                }
                if h.err != 0 {
                    o.errors.push(format!("xid {} answered error {}", h.xid, h.err));
                }
                if Some(h.xid) == read_xid && !answered {
                    answered = true;
                    if h.err == 0 {
                        o.first_read = kill_at.get().map(Instant::elapsed);
                    }
                    counters.answered.fetch_add(1, Ordering::Relaxed);
                } else if Some(h.xid) == final_xid {
                    o.final_read_ok = h.err == 0;
                    let x = next_xid;
                    next_xid += 1;
                    close_xid = Some(x);
                    if w.write_all(&frame(x, OpCode::CloseSession, &Request::CloseSession)).await.is_err() {
                        break;
                    }
                } else if Some(h.xid) == close_xid {
                    break;
                }
            }
            _ = ping.tick() => {
                if w.write_all(&ping_frame()).await.is_err() {
                    o.errors.push("ping: write failed".into());
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let p = *phase.borrow_and_update();
                let req = get_req(WATCHED);
                if p >= READ && read_xid.is_none() {
                    let x = next_xid;
                    next_xid += 1;
                    read_xid = Some(x);
                    if let Err(e) = w.write_all(&frame(x, OpCode::GetData, &req)).await {
                        o.errors.push(format!("read: {e}"));
                    }
                }
                if p >= FINISH && final_xid.is_none() {
                    let x = next_xid;
                    next_xid += 1;
                    final_xid = Some(x);
                    if let Err(e) = w.write_all(&frame(x, OpCode::GetData, &req)).await {
                        o.errors.push(format!("final read: {e}"));
                    }
                }
            }
        }
    }
    if !answered {
        counters.answered.fetch_add(1, Ordering::Relaxed);
    }
    o
}

/// Figure 4's result.
struct Failover {
    total: usize,
    on_b1: usize,
    rate: u64,
    /// Kill → the last of b1's sessions answered; their p50 and p99.
    all_served: Option<Duration>,
    b1: Pct,
    /// The first reads of the sessions on b2 (not moved).
    b2: Pct,
    /// Sessions of b1 and of b2 that saw any error (and how many of them expired or lost
    /// their connection).
    b1_errors: usize,
    b2_errors: usize,
    expired: usize,
    disconnected: usize,
    unanswered: usize,
    fired: usize,
    final_ok: usize,
    reattached: u64,
    reattach_failed: u64,
    example_errors: Vec<String>,
    setup: Duration,
}

/// `cons` of a proxy: session id → upstream address.
fn proxy_cons(proxy: SocketAddr) -> HashMap<i64, String> {
    four(proxy, "cons")
        .lines()
        .filter_map(|l| {
            let sid = l.split("sid=").nth(1)?.split(',').next()?;
            let up = l.split("upstream=").nth(1)?.trim_end_matches(')');
            Some((parse_hex(sid)?, up.to_string()))
        })
        .collect()
}

fn failover(
    s: &Settings,
    rt: &tokio::runtime::Runtime,
    leader: SocketAddr,
    b1: &mut Node,
    b2: &Node,
    proxy: &Node,
) -> Failover {
    let setup_started = Instant::now();
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(HOLD);
    let kill_at = Arc::new(OnceLock::new());
    let counters = Arc::new(FailoverCounters::default());
    // Handshakes through an observer take a WAN round trip (the leader creates the
    // session): a few hundred at a time.
    let setup = Arc::new(tokio::sync::Semaphore::new(256));
    let tasks: Vec<_> = (0..s.sessions)
        .map(|_| {
            rt.spawn(failover_session(
                proxy.client,
                setup.clone(),
                phase_rx.clone(),
                kill_at.clone(),
                counters.clone(),
            ))
        })
        .collect();
    wait_until("every failover session is set up", PATIENCE, || {
        counters.ready.load(Ordering::Relaxed) + counters.failed_setup.load(Ordering::Relaxed)
            == s.sessions
    });
    let setup = setup_started.elapsed();
    assert_eq!(
        counters.failed_setup.load(Ordering::Relaxed),
        0,
        "sessions failed to set up"
    );
    let placed = proxy_cons(proxy.client);
    let b1_addr = b1.client.to_string();
    let b2_addr = b2.client.to_string();
    let on_b1 = placed.values().filter(|u| **u == b1_addr).count();
    eprintln!(
        "    {} sessions set up in {:.1} s: {on_b1} on b1, {} on b2",
        s.sessions,
        setup.as_secs_f64(),
        placed.values().filter(|u| **u == b2_addr).count()
    );

    // b1 dies; every session reads at once.
    let _ = kill_at.set(Instant::now());
    b1.proc.kill();
    let _ = phase_tx.send(READ);
    wait_until("every session's first read is answered", PATIENCE, || {
        counters.answered.load(Ordering::Relaxed) == s.sessions
    });
    let m = mntr(proxy.client);
    let num = |k: &str| m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0u64);
    let (reattached, reattach_failed) = (
        num("zk_proxy_sessions_reattached"),
        num("zk_proxy_sessions_reattach_failed"),
    );

    // Every watch must still fire.
    let mut z = session(leader);
    call_ok(&mut z, OpCode::SetData, &set_req(WATCHED));
    close(z);
    let t = Instant::now();
    while counters.fired.load(Ordering::Relaxed) < s.sessions
        && t.elapsed() < Duration::from_secs(15)
    {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = phase_tx.send(FINISH);
    let outcomes: Vec<Outcome> = tasks
        .into_iter()
        .map(|t| {
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), t).await })
                .expect("a failover session did not finish")
                .expect("a failover session panicked")
        })
        .collect();

    let is_b1 = |o: &Outcome| placed.get(&o.session_id) == Some(&b1_addr);
    let b1_times: Vec<u64> = outcomes
        .iter()
        .filter(|o| is_b1(o))
        .filter_map(|o| o.first_read.map(|d| d.as_micros() as u64))
        .collect();
    let b2_times: Vec<u64> = outcomes
        .iter()
        .filter(|o| !is_b1(o))
        .filter_map(|o| o.first_read.map(|d| d.as_micros() as u64))
        .collect();
    let with = |f: &dyn Fn(&str) -> bool| {
        outcomes
            .iter()
            .filter(|o| o.errors.iter().any(|e| f(e)))
            .count()
    };
    let mut example_errors: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.errors
                .iter()
                .map(move |e| format!("{:#x}: {e}", o.session_id))
        })
        .take(5)
        .collect();
    example_errors.dedup();
    Failover {
        total: s.sessions,
        on_b1,
        rate: s.reattach_per_second,
        all_served: (b1_times.len() == on_b1)
            .then(|| Duration::from_micros(b1_times.iter().copied().max().unwrap_or_default())),
        b1: pct(&b1_times),
        b2: pct(&b2_times),
        b1_errors: outcomes
            .iter()
            .filter(|o| is_b1(o) && !o.errors.is_empty())
            .count(),
        b2_errors: outcomes
            .iter()
            .filter(|o| !is_b1(o) && !o.errors.is_empty())
            .count(),
        expired: with(&|e| e.contains("-112")),
        disconnected: with(&|e| e.contains("connection") || e.contains("state 0")),
        unanswered: outcomes.iter().filter(|o| o.first_read.is_none()).count(),
        fired: outcomes.iter().filter(|o| o.watch_fired).count(),
        final_ok: outcomes.iter().filter(|o| o.final_read_ok).count(),
        reattached,
        reattach_failed,
        example_errors,
        setup,
    }
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    rows: Vec<[String; 5]>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, what: &str, proxied: String, direct: String, diff: String, goal: String) {
        eprintln!("    {what} | {proxied} | {direct} | {diff} | {goal}");
        self.rows.push([what.into(), proxied, direct, diff, goal]);
    }

    fn note(&mut self, n: String) {
        eprintln!("    note: {n}");
        self.notes.push(n);
    }
}

fn ms(v: f64) -> String {
    format!("{v:.3} ms")
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn step(what: &str) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    eprintln!(
        "==> [{:02}:{:02}:{:02}] {what}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
}

fn read_rows(r: &mut Report, upstream: &str, lat: &[Vec<u64>]) {
    let (p, d) = (pct(&lat[0]), pct(&lat[1]));
    r.row(
        &format!(
            "1. getData 32 B, one outstanding, p50 ({upstream}; {} samples each)",
            p.n
        ),
        ms(p.p50),
        ms(d.p50),
        format!("{:+.3} ms", p.p50 - d.p50),
        format!("within 1 ms: {}", met(p.p50 - d.p50 <= 1.0)),
    );
    r.row(
        "   the same, p99",
        ms(p.p99),
        ms(d.p99),
        format!("{:+.3} ms", p.p99 - d.p99),
        format!("within 1 ms: {}", met(p.p99 - d.p99 <= 1.0)),
    );
}

fn rate_rows(r: &mut Report, what: &str, server: &str, via: Rate, direct: Rate) {
    let ratio = via.ops_per_s / direct.ops_per_s;
    r.row(
        what,
        format!("{:.0} ops/s", via.ops_per_s),
        format!("{:.0} ops/s", direct.ops_per_s),
        format!("{ratio:.2}x"),
        format!("≥ 0.8x: {}", met(ratio >= 0.8)),
    );
    r.row(
        "   CPU per request: the proxy",
        format!("{:.1} µs", via.proxy_us.unwrap_or_default()),
        "—".into(),
        "—".into(),
        "—".into(),
    );
    r.row(
        &format!("   CPU per request: {server} (reference)"),
        format!("{:.1} µs", via.server_us),
        format!("{:.1} µs", direct.server_us),
        "—".into(),
        "—".into(),
    );
    r.row(
        "   CPU per request: the load generator; cores busy",
        format!("{:.1} µs; {:.0}%", via.client_us, via.busy * 100.0),
        format!("{:.1} µs; {:.0}%", direct.client_us, direct.busy * 100.0),
        "—".into(),
        "—".into(),
    );
    if via.refused + direct.refused > 0 {
        r.note(format!(
            "{what}: {} session handshakes through the proxy were closed unanswered and tried again ({} direct)",
            via.refused, direct.refused
        ));
    }
    if via.errors + direct.errors > 0 {
        r.note(format!(
            "{what}: {} error replies through the proxy, {} direct",
            via.errors, direct.errors
        ));
    }
}

// ---------------------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------------------

/// Waits until `proxy` counts `n` healthy upstreams (a session closed through it can leave
/// its upstream marked down until the next probe: see the README); notes the wait.
fn settle(r: &mut Report, proxy: SocketAddr, n: usize, before: &str) {
    let t = Instant::now();
    let mut unhealthy = false;
    wait_until("the proxy's upstreams healthy", PATIENCE, || {
        let ok = mntr(proxy)
            .get("zk_proxy_upstreams_healthy")
            .and_then(|v| v.parse::<usize>().ok())
            == Some(n);
        unhealthy |= !ok;
        ok
    });
    if unhealthy {
        r.note(format!(
            "before {before}: the proxy had an upstream marked down after sessions closed; waited {} ms for its probe",
            t.elapsed().as_millis()
        ));
    }
}

fn geokeeper_runs(s: &Settings, rt: &tokio::runtime::Runtime, r: &mut Report) {
    step("room A: a standalone geokeeper leader; room B: observers b1 and b2 over the WAN");
    let certs = certs(&s.work);
    let (leader, relay) = start_leader(&s.work, &certs);
    let link = UdpWan::start_on(
        free_udp(111),
        relay,
        LinkSpec {
            delay: Duration::from_millis(s.delay_ms),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: 0,
        },
        7,
    );
    let mut b1 = start_observer(&s.work, &certs, "b1", 11, 112, link.addr());
    let b2 = start_observer(&s.work, &certs, "b2", 12, 113, link.addr());
    let zxid = create_znodes(leader.client);
    for o in [&b1, &b2] {
        wait_until("the observers have the bench's znodes", PATIENCE, || {
            observer_zxid(o.client).is_some_and(|z| z >= zxid)
        });
    }
    step("proxy B: b1 (weight 1,000,000) and b2 (1) of room B, the leader of room A");
    let proxy = start_proxy(
        &s.work,
        "proxy-b",
        &[
            (b1.client, "B", 1_000_000),
            (b2.client, "B", 1),
            (leader.client, "A", 1),
        ],
        "",
        3,
    );
    let via_b1 = |m: &BTreeMap<String, String>| {
        m.get("zk_proxy_upstream_0_placed")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let placed_before = via_b1(&mntr(proxy.client));

    if s.wants("read") {
        step(&format!(
            "figure 1: getData through proxy B and at b1, {} samples each",
            s.read_samples
        ));
        settle(r, proxy.client, 3, "figure 1");
        let lat = latency(
            &[proxy.client, b1.client],
            s.read_samples,
            s.read_samples / 10,
            |_| (OpCode::GetData, get_req(SMALL)),
        );
        read_rows(r, "b1", &lat);
    }

    if s.wants("write") {
        step(&format!(
            "figure 2: setData through proxy B, at b1 and at the leader, {} samples each",
            s.write_samples
        ));
        settle(r, proxy.client, 3, "figure 2");
        let lat = latency(
            &[proxy.client, b1.client, leader.client],
            s.write_samples,
            20,
            |i| {
                (
                    OpCode::SetData,
                    set_req(&format!("/bench/w{:03}", i % WRITE_KEYS)),
                )
            },
        );
        let (p, d, l) = (pct(&lat[0]), pct(&lat[1]), pct(&lat[2]));
        let rtt = 2.0 * s.delay_ms as f64;
        r.row(
            &format!(
                "2. setData 32 B, one outstanding, p50 ({} samples each)",
                p.n
            ),
            ms(p.p50),
            ms(d.p50),
            format!("{:+.3} ms", p.p50 - d.p50),
            format!(
                "≤ RTT + leader's own = {}: {}",
                ms(rtt + l.p50),
                met(p.p50 <= rtt + l.p50)
            ),
        );
        r.row(
            "   the same, p99",
            ms(p.p99),
            ms(d.p99),
            format!("{:+.3} ms", p.p99 - d.p99),
            format!(
                "≤ RTT + leader's own = {}: {}",
                ms(rtt + l.p99),
                met(p.p99 <= rtt + l.p99)
            ),
        );
        r.row(
            "   setData straight at the leader (its own commit), p50 / p99",
            "—".into(),
            format!("{} / {}", ms(l.p50), ms(l.p99)),
            "—".into(),
            "reference".into(),
        );
    }

    if s.wants("throughput") {
        for &(k, window) in &s.shapes {
            step(&format!(
                "figure 3: {k} sessions × {window} getData in flight, {} s, through proxy B then at b1",
                s.secs
            ));
            settle(r, proxy.client, 3, &format!("figure 3 ({k}x{window})"));
            let via = throughput(
                rt,
                proxy.client,
                k,
                window,
                s.secs,
                Some(proxy.proc.pid()),
                b1.proc.pid(),
            );
            let direct = throughput(rt, b1.client, k, window, s.secs, None, b1.proc.pid());
            rate_rows(
                r,
                &format!(
                    "3. getData throughput, {k} sessions × {window} in flight, {} s",
                    s.secs
                ),
                "b1",
                via,
                direct,
            );
        }
    }
    let placed_after = via_b1(&mntr(proxy.client));
    let m = mntr(proxy.client);
    let placed_total: u64 = m
        .get("zk_proxy_sessions_placed")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    r.note(format!(
        "proxy B placed {} of figures 1-3's sessions on b1, of {} placed in all",
        placed_after - placed_before,
        placed_total
    ));
    drop(proxy);

    if s.wants("failover") {
        step(&format!(
            "figure 4: {} sessions through a proxy weighting b1:b2 {}:{}, each with a watch; b1 SIGKILLed; reattach_per_second = {}",
            s.sessions, s.weights.0, s.weights.1, s.reattach_per_second
        ));
        let proxy = start_proxy(
            &s.work,
            "proxy-failover",
            &[
                (b1.client, "B", s.weights.0),
                (b2.client, "B", s.weights.1),
                (leader.client, "A", 1),
            ],
            &format!("reattach_per_second = {}\n", s.reattach_per_second),
            3,
        );
        let f = failover(s, rt, leader.client, &mut b1, &b2, &proxy);
        let none = |n: usize| format!("{n}");
        r.row(
            &format!(
                "4. failover: b1 SIGKILLed under {} of {} sessions (each with a watch), re-attached at {}/s: kill → every b1 session answered a read",
                f.on_b1, f.total, f.rate
            ),
            f.all_served
                .map_or("**not all**".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            "—".into(),
            format!("paced minimum {:.2} s", f.on_b1 as f64 / f.rate as f64),
            "—".into(),
        );
        r.row(
            "   kill → a session's first read answered, p50 / p99: b1's sessions (moved); b2's (not moved)",
            format!(
                "{:.0} / {:.0} ms; {}",
                f.b1.p50,
                f.b1.p99,
                if f.b2.n == 0 {
                    "none on b2".to_string()
                } else {
                    format!("{:.1} / {:.1} ms", f.b2.p50, f.b2.p99)
                }
            ),
            "—".into(),
            "—".into(),
            "—".into(),
        );
        r.row(
            "   sessions that saw an error (b1's; b2's): expired; disconnected",
            format!(
                "{} ({}; {}): {}; {}",
                f.b1_errors + f.b2_errors,
                f.b1_errors,
                f.b2_errors,
                none(f.expired),
                none(f.disconnected)
            ),
            "—".into(),
            "—".into(),
            format!(
                "none expired, none disconnected: {}",
                met(f.b1_errors + f.b2_errors == 0 && f.unanswered == 0)
            ),
        );
        r.row(
            "   then a setData at the leader: watch events received; final reads answered",
            format!("{} / {}; {} / {}", f.fired, f.total, f.final_ok, f.total),
            "—".into(),
            "—".into(),
            format!("all: {}", met(f.fired == f.total && f.final_ok == f.total)),
        );
        r.note(format!(
            "figure 4: the proxy counted {} sessions re-attached, {} failed; {} sessions set up in {:.1} s{}",
            f.reattached,
            f.reattach_failed,
            f.total,
            f.setup.as_secs_f64(),
            if f.example_errors.is_empty() {
                String::new()
            } else {
                format!("; errors seen, e.g.: {}", f.example_errors.join("; "))
            }
        ));
    }
    let st = link.stats();
    r.note(format!(
        "WAN link: {} ms each way; {} datagrams to the leader, {} back",
        s.delay_ms, st.to_target.forwarded, st.to_client.forwarded
    ));
}

fn java_runs(s: &Settings, rt: &tokio::runtime::Runtime, r: &mut Report) {
    step("Apache ZooKeeper 3.8 standalone, and a proxy in front of it");
    let zk = start_java(&s.work);
    create_znodes(zk.client);
    let proxy = start_proxy(&s.work, "proxy-zk", &[(zk.client, "B", 1)], "", 1);
    // The JIT's warm-up: a few seconds of load first.
    let (k, window) = s.shapes[0];
    let _ = throughput(rt, zk.client, k, window, 3, None, zk.proc.pid());
    step(&format!(
        "figure 5: getData through the proxy and at Apache ZooKeeper, {} samples each",
        s.read_samples
    ));
    settle(r, proxy.client, 1, "figure 5 (reads)");
    let lat = latency(
        &[proxy.client, zk.client],
        s.read_samples,
        s.read_samples / 10,
        |_| (OpCode::GetData, get_req(SMALL)),
    );
    let (p, d) = (pct(&lat[0]), pct(&lat[1]));
    r.row(
        &format!(
            "5. Apache ZooKeeper 3.8 behind the proxy: getData p50 ({} samples each)",
            p.n
        ),
        ms(p.p50),
        ms(d.p50),
        format!("{:+.3} ms", p.p50 - d.p50),
        format!("within 1 ms: {}", met(p.p50 - d.p50 <= 1.0)),
    );
    r.row(
        "   the same, p99",
        ms(p.p99),
        ms(d.p99),
        format!("{:+.3} ms", p.p99 - d.p99),
        format!("within 1 ms: {}", met(p.p99 - d.p99 <= 1.0)),
    );
    step(&format!(
        "figure 5: {k} sessions × {window} getData in flight, {} s, through the proxy then at Apache ZooKeeper",
        s.secs
    ));
    settle(r, proxy.client, 1, "figure 5 (throughput)");
    let via = throughput(
        rt,
        proxy.client,
        k,
        window,
        s.secs,
        Some(proxy.proc.pid()),
        zk.proc.pid(),
    );
    let direct = throughput(rt, zk.client, k, window, s.secs, None, zk.proc.pid());
    rate_rows(
        r,
        &format!(
            "5. Apache ZooKeeper behind the proxy: getData throughput, {k} sessions × {window} in flight, {} s",
            s.secs
        ),
        "the Java server",
        via,
        direct,
    );
}

fn main() {
    let s = Settings::from_args(Args::parse());
    let _ = std::fs::remove_dir_all(&s.work);
    std::fs::create_dir_all(&s.work).expect("work dir");
    let nofile = raise_nofile_limit();
    let started = Instant::now();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "proxy_bench: {cores} cores, {} ms one-way, open files {nofile}, work dir {}",
        s.delay_ms,
        s.work.display()
    );
    // Two workers: the load generator and the sessions share the machine with the
    // servers and the proxy.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let mut r = Report::default();
    if ["read", "write", "throughput", "failover"]
        .iter()
        .any(|w| s.wants(w))
    {
        geokeeper_runs(&s, &rt, &mut r);
    }
    if s.java {
        java_runs(&s, &rt, &mut r);
    }
    r.note(format!(
        "{cores} cores; /proc/loadavg before the run: {}; after: {}",
        load_before.trim(),
        load().trim()
    ));
    println!(
        "\nproxy_bench: {} ms one-way between rooms; {} s in all\n",
        s.delay_ms,
        started.elapsed().as_secs()
    );
    println!("| measurement | through the proxy | direct | difference | goal |");
    println!("|---|---|---|---|---|");
    for row in &r.rows {
        println!("| {} |", row.join(" | "));
    }
    for n in &r.notes {
        println!("\n- {n}");
    }
    drop(rt);
    if !s.keep {
        let _ = std::fs::remove_dir_all(&s.work);
    }
}
