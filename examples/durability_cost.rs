//! What durability costs, measured on this machine, beside Apache ZooKeeper 3.8:
//!
//! 1. write throughput: 32 sessions (the `zookeeper-client` crate), each doing setData of
//!    100 bytes on its own znode in a closed loop, with `forceSync=yes` and `forceSync=no`;
//! 2. transactions per fsync under that load: geokeeper's own group-commit counters (the
//!    "txnlog group commit since start" line it logs on shutdown), and for ZooKeeper the
//!    zxid advance divided by `zk_cnt_fsynctime` from `mntr`;
//! 3. restart time with 1,000,000 znodes of 100 bytes (1000 parents of 1000 children,
//!    populated by pipelined creates, then a clean stop): from process start to the first
//!    successful request (a new session and `exists /`).
//!
//! ```text
//! cargo build --release --bin geokeeper
//! cargo run --release --example durability_cost
//! ```
//!
//! Environment: `DC_WHAT=throughput|restart|all` (all), `DC_SECS` (10, the measured window
//! of each throughput run, after 3 s of warm-up), `DC_NODES` (1000000), `DC_SKIP_ZK=1`,
//! `GEOKEEPER_BIN` (default: `geokeeper` next to this example's directory). ZooKeeper runs
//! from Debian's jars in /usr/share/java with `-Xmx2g`.

#[path = "../tests/support/rawzk.rs"]
mod rawzk;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{OpCode, Record};
use geokeeper_core::request::Request;
use rawzk::RawZk;

const WRITERS: usize = 32;
const JAVA_DIR: &str = "/usr/share/java";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Geokeeper,
    ZooKeeper,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Geokeeper => "geokeeper",
            Kind::ZooKeeper => "ZooKeeper 3.8",
        }
    }
}

/// One server process on a data directory it may outlive.
struct Server {
    kind: Kind,
    addr: SocketAddr,
    work: PathBuf,
    child: Option<Child>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn geokeeper_bin() -> PathBuf {
    if let Ok(p) = std::env::var("GEOKEEPER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/examples/durability_cost -> target/release/geokeeper
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

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local_addr")
}

fn zk_classpath(work: &Path) -> String {
    let conf = work.join("log4j");
    std::fs::create_dir_all(&conf).expect("log4j dir");
    std::fs::write(
        conf.join("log4j.properties"),
        "log4j.rootLogger=INFO, FILE\n\
         log4j.appender.FILE=org.apache.log4j.FileAppender\n\
         log4j.appender.FILE.File=${zookeeper.log.dir}/zookeeper.log\n\
         log4j.appender.FILE.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n",
    )
    .expect("log4j.properties");
    let mut parts = vec![conf.display().to_string()];
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

impl Server {
    /// Writes zoo.cfg for a server on `work/data` and starts it; returns it with the time
    /// from spawn to its first successful request.
    fn start(kind: Kind, work: &Path, extra_cfg: &str) -> (Server, Duration) {
        std::fs::create_dir_all(work.join("data")).expect("data dir");
        let addr = free_addr();
        let cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nclientPortAddress={}\n\
             4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n{}\n",
            work.join("data").display(),
            addr.port(),
            addr.ip(),
            extra_cfg
        );
        std::fs::write(work.join("zoo.cfg"), cfg).expect("zoo.cfg");
        let mut s = Server {
            kind,
            addr,
            work: work.to_owned(),
            child: None,
        };
        let t = s.restart();
        (s, t)
    }

    /// Starts the process on the existing zoo.cfg; the time to its first successful request.
    fn restart(&mut self) -> Duration {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join("server.out"))
            .expect("log");
        let err = log.try_clone().expect("log");
        let cfg = self.work.join("zoo.cfg");
        let t = Instant::now();
        let child = match self.kind {
            Kind::Geokeeper => Command::new(geokeeper_bin())
                .arg("serve")
                .arg("--config")
                .arg(&cfg)
                .env("GEOKEEPER_LOG", "info")
                .stdout(log)
                .stderr(err)
                .spawn()
                .expect("spawn geokeeper"),
            Kind::ZooKeeper => Command::new("java")
                .args(["-Xmx2g", "-Djava.awt.headless=true"])
                .arg(format!("-Dzookeeper.log.dir={}", self.work.display()))
                .arg("-cp")
                .arg(zk_classpath(&self.work))
                .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .expect("spawn java"),
        };
        self.child = Some(child);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{} exited ({st}); see {}",
                    self.kind.name(),
                    self.work.join("server.out").display()
                );
            }
            if first_request(self.addr) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "{} did not come up",
                self.kind.name()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM and wait for the exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(120) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.work.join("server.out")).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.work.join("zookeeper.log")).unwrap_or_default());
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A new session and `exists /`: whether the server served both within `PROBE_TIMEOUT`
/// each. The timeout is short because a server may accept a connection and then not answer
/// it at all (ZooKeeper leaves one that arrives before it runs unanswered until the
/// client gives up): a fresh attempt every `PROBE_TIMEOUT` bounds the error of the
/// measured start time by it.
fn first_request(addr: SocketAddr) -> bool {
    const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = s.set_nodelay(true);
    let mut send = |body: &[u8]| {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        s.write_all(&f)
    };
    let connect = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30000,
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only: false,
    };
    if send(&connect.to_bytes()).is_err() {
        return false;
    }
    let Some(resp) = read_frame(&mut s) else {
        return false;
    };
    // ConnectResponse: protocolVersion, timeOut, ...
    if resp.len() < 8 || i32::from_be_bytes([resp[4], resp[5], resp[6], resp[7]]) <= 0 {
        return false;
    }
    let exists = geokeeper_core::request::frame(
        1,
        OpCode::Exists,
        &Request::Exists(ExistsRequest {
            path: "/".into(),
            watch: false,
        }),
    );
    if s.write_all(&exists).is_err() {
        return false;
    }
    // ReplyHeader: xid 1, zxid, err 0.
    let ok = read_frame(&mut s)
        .is_some_and(|r| r.len() >= 16 && r[0..4] == 1i32.to_be_bytes() && r[12..16] == [0; 4]);
    let close = geokeeper_core::request::frame(2, OpCode::CloseSession, &Request::CloseSession);
    if ok && s.write_all(&close).is_ok() {
        let _ = read_frame(&mut s);
    }
    ok
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = i32::from_be_bytes(len);
    if !(0..=1 << 20).contains(&n) {
        return None;
    }
    let mut b = vec![0u8; n as usize];
    s.read_exact(&mut b).ok()?;
    Some(b)
}

fn four_letter(addr: SocketAddr, cmd: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(cmd.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `Zxid: 0x...` from `srvr`, and `zk_cnt_fsynctime` from `mntr`.
fn zk_counters(addr: SocketAddr) -> Option<(i64, u64)> {
    let srvr = four_letter(addr, "srvr");
    let zxid = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .and_then(|h| i64::from_str_radix(h.trim(), 16).ok())?;
    let mntr = four_letter(addr, "mntr");
    let fsyncs = mntr
        .lines()
        .find_map(|l| l.strip_prefix("zk_cnt_fsynctime"))
        .and_then(|v| v.trim().parse().ok())?;
    Some((zxid, fsyncs))
}

// ---------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------

struct Throughput {
    ops_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    per_fsync: String,
}

fn throughput(kind: Kind, force_sync: bool, secs: u64) -> Throughput {
    let work = tempfile::Builder::new()
        .prefix("dc-tput-")
        .tempdir()
        .expect("tempdir");
    let sync = if force_sync { "yes" } else { "no" };
    let (mut server, _) = Server::start(kind, work.path(), &format!("forceSync={sync}"));
    let addr = server.addr;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let before = Arc::new(std::sync::Mutex::new(None));
    let lat = rt.block_on(async {
        let cluster = addr.to_string();
        let setup = zookeeper_client::Client::connect(&cluster)
            .await
            .expect("connect");
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        setup
            .create("/bench", b"", &opts)
            .await
            .expect("create /bench");
        let mut tasks = Vec::new();
        for i in 0..WRITERS {
            let client = zookeeper_client::Client::connect(&cluster)
                .await
                .expect("connect");
            let path = format!("/bench/s{i:02}");
            client
                .create(&path, &[0u8; 100], &opts)
                .await
                .expect("create");
            let (measuring, stop, done) = (measuring.clone(), stop.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let data = [b'x'; 100];
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    client.set_data(&path, &data, None).await.expect("setData");
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed().as_micros() as u64);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        if kind == Kind::ZooKeeper {
            *before.lock().expect("lock") = zk_counters(addr);
        }
        measuring.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        measuring.store(false, Ordering::Relaxed);
        let n = done.load(Ordering::Relaxed);
        let after = if kind == Kind::ZooKeeper {
            zk_counters(addr)
        } else {
            None
        };
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        (n, all, after)
    });
    let (n, mut all, after) = lat;
    server.stop();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let per_fsync = match kind {
        Kind::Geokeeper => server
            .log()
            .lines()
            .rfind(|l| l.contains("txnlog group commit since start"))
            .and_then(|l| l.split("since start: ").nth(1))
            .map(|s| format!("whole run: {}", s.trim()))
            .unwrap_or_else(|| "no group-commit line in the log".into()),
        Kind::ZooKeeper => match (*before.lock().expect("lock"), after) {
            (Some((z0, f0)), Some((z1, f1))) if f1 > f0 => format!(
                "measured window: {} transactions, {} fsyncs ({:.2} per fsync)",
                z1 - z0,
                f1 - f0,
                (z1 - z0) as f64 / (f1 - f0) as f64
            ),
            (Some((z0, _)), Some((z1, _))) => {
                format!("measured window: {} transactions, no fsync", z1 - z0)
            }
            _ => "no mntr/srvr counters".into(),
        },
    };
    Throughput {
        ops_per_s: n as f64 / secs as f64,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        per_fsync,
    }
}

// ---------------------------------------------------------------------------------------
// Restart time
// ---------------------------------------------------------------------------------------

/// Creates `paths` with `data`, pipelined `window` deep on one connection.
fn create_pipelined(addr: SocketAddr, paths: &[String], data: &[u8], window: usize) {
    let mut zk = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
    let mut inflight = std::collections::VecDeque::new();
    let mut next = 0;
    while next < paths.len() || !inflight.is_empty() {
        while next < paths.len() && inflight.len() < window {
            let xid = zk.take_xid();
            let req = Request::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: paths[next].clone(),
                    data: Some(data.to_vec().into()),
                    acl: geokeeper_core::acl::open_acl_unsafe(),
                    flags: 0,
                },
            };
            zk.send(xid, OpCode::Create, &req).expect("send create");
            inflight.push_back(xid);
            next += 1;
        }
        let xid = inflight.pop_front().expect("in flight");
        let f = zk.read_frame().expect("create reply");
        assert_eq!(f.header.xid, xid, "replies out of order");
        assert_eq!(f.header.err, 0, "create failed");
    }
    let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
}

fn count_nodes(addr: SocketAddr, path: &str) -> i32 {
    let mut zk = RawZk::connect(addr, 0, &[0; 16], 0, 30000).expect("connect");
    let req = Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: path.into() });
    let f = zk
        .call(OpCode::GetAllChildrenNumber, &req)
        .reply
        .expect("reply");
    let _ = zk.call(OpCode::CloseSession, &Request::CloseSession);
    i32::from_be_bytes([f.body[0], f.body[1], f.body[2], f.body[3]])
}

fn dir_summary(dir: &Path) -> String {
    let mut snaps = 0;
    let mut logs = 0;
    let mut bytes = 0u64;
    if let Ok(rd) = std::fs::read_dir(dir.join("data").join("version-2")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("snapshot.") {
                snaps += 1;
            } else if n.starts_with("log.") {
                logs += 1;
            }
            // Allocated size, as the log files are preallocated.
            bytes += e
                .metadata()
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.blocks() * 512
                })
                .unwrap_or(0);
        }
    }
    format!(
        "{snaps} snapshots, {logs} log files, {:.0} MB allocated",
        bytes as f64 / 1e6
    )
}

fn restart_time(kind: Kind, nodes: usize) -> Vec<Duration> {
    let tmp = tempfile::Builder::new()
        .prefix("dc-restart-")
        .tempdir()
        .expect("tempdir");
    let work = if std::env::var("DC_KEEP").is_ok() {
        // For profiling a restart by hand afterwards.
        let p = tmp.keep();
        eprintln!("  keeping {}", p.display());
        p
    } else {
        tmp.path().to_owned()
    };
    let (mut server, first) = Server::start(kind, &work, "");
    eprintln!(
        "  {}: fresh start {} ms; populating {nodes} znodes",
        kind.name(),
        first.as_millis()
    );
    let parents = nodes.div_ceil(1000).max(1);
    let per = nodes.div_ceil(parents);
    let t = Instant::now();
    create_pipelined(server.addr, &["/r".to_string()], b"", 1);
    let top: Vec<String> = (0..parents).map(|p| format!("/r/p{p:04}")).collect();
    create_pipelined(server.addr, &top, b"", 1000);
    let children: Vec<String> = (0..nodes)
        .map(|i| format!("/r/p{:04}/n{:04}", i / per, i % per))
        .collect();
    let data = [b'v'; 100];
    std::thread::scope(|s| {
        for chunk in children.chunks(children.len().div_ceil(4)) {
            let addr = server.addr;
            s.spawn(move || create_pipelined(addr, chunk, &data, 1000));
        }
    });
    let populated = t.elapsed();
    let total = count_nodes(server.addr, "/r");
    assert_eq!(
        total as usize,
        nodes + parents,
        "{} lost znodes",
        kind.name()
    );
    eprintln!(
        "  {}: populated in {:.1} s ({:.0} creates/s); stopping",
        kind.name(),
        populated.as_secs_f64(),
        nodes as f64 / populated.as_secs_f64()
    );
    server.stop();
    eprintln!(
        "  {}: data directory after stop: {}",
        kind.name(),
        dir_summary(&work)
    );
    let mut times = Vec::new();
    for i in 0..3 {
        let t = server.restart();
        let total = count_nodes(server.addr, "/r");
        assert_eq!(
            total as usize,
            nodes + parents,
            "{} lost znodes on restart",
            kind.name()
        );
        let log = server.log();
        let loaded = log
            .lines()
            .rfind(|l| l.contains("Snapshot loaded in"))
            .map(|l| l[l.find("Snapshot loaded").unwrap_or(0)..].to_string())
            .unwrap_or_default();
        eprintln!(
            "  {}: restart {} serving after {} ms ({loaded})",
            kind.name(),
            i + 1,
            t.as_millis()
        );
        times.push(t);
        // Let a snapshot the restart triggered finish before the next clean stop.
        std::thread::sleep(Duration::from_secs(3));
        server.stop();
    }
    times
}

fn main() {
    let what = std::env::var("DC_WHAT").unwrap_or_else(|_| "all".into());
    let secs = env_u64("DC_SECS", 10);
    let nodes = env_u64("DC_NODES", 1_000_000) as usize;
    let kinds: Vec<Kind> = if std::env::var("DC_SKIP_ZK").is_ok() {
        vec![Kind::Geokeeper]
    } else {
        vec![Kind::Geokeeper, Kind::ZooKeeper]
    };
    println!(
        "durability_cost: {} cores; data directories under {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::temp_dir().display()
    );
    if what == "all" || what == "throughput" {
        println!("\n== setData of 100 B, {WRITERS} sessions, closed loop, {secs} s measured after 3 s warm-up ==");
        for kind in &kinds {
            for force_sync in [true, false] {
                let r = throughput(*kind, force_sync, secs);
                println!(
                    "{:<14} forceSync={:<3}  {:>8.0} writes/s   p50 {:>6} us   p99 {:>6} us   {}",
                    kind.name(),
                    if force_sync { "yes" } else { "no" },
                    r.ops_per_s,
                    r.p50_us,
                    r.p99_us,
                    r.per_fsync
                );
            }
        }
    }
    if what == "all" || what == "restart" {
        println!(
            "\n== restart with {nodes} znodes of 100 B: process start to first served request =="
        );
        for kind in &kinds {
            let times = restart_time(*kind, nodes);
            let ms: Vec<u128> = times.iter().map(|t| t.as_millis()).collect();
            println!("{:<14} restarts: {:?} ms", kind.name(), ms);
        }
    }
}
