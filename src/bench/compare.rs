//! `geokeeper bench compare`: the same workloads against Apache ZooKeeper 3.8 (Debian's
//! `zookeeper` package, started with `java -cp` from its jars) and against geokeeper, on
//! this machine, with the data directories of both on the same disk and forceSync on.
//!
//! Runs alternate A B A B (ZooKeeper, geokeeper, ZooKeeper, geokeeper) so that drift of
//! the machine (other load, thermal state, page cache) falls on both. Each run gets a
//! fresh server and a fresh data directory, so no run inherits another's state. Every
//! figure is printed as ratio geokeeper / ZooKeeper next to the raw numbers of each run,
//! with each server's CPU seconds per 1,000 operations (from /proc/<pid>/stat), since the
//! generator shares the machine's cores with the server it measures.
//!
//! Memory is bytes per znode for N znodes: geokeeper's resident-set growth against
//! ZooKeeper's live heap growth after a full GC (`jcmd PID GC.run`, `GC.heap_info`);
//! restart is spawn → serving a read of the last populated znode, with N znodes.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use super::load::{self, FanoutSpec, LoadSpec, PopulateSpec};
use super::report::{json_num, json_str, Json, RunResult};
use super::{parse_duration, sys, Progress};

/// How long a fresh server may take to serve.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server with N znodes may take to come back.
const RESTART_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Workloads, comma-separated: reads-if1, reads-if16, writes-if1, writes-if16,
    /// mix-if1, mix-if16, create-seq-eph-if1, create-seq-eph-if16, multi-if1, multi-if16,
    /// fanout, memory, restart (memory and restart share one population of --znodes).
    #[arg(
        long,
        default_value = "reads-if1,reads-if16,writes-if1,writes-if16,mix-if1,create-seq-eph-if1,fanout,memory,restart"
    )]
    pub workloads: String,
    /// A B pairs per workload (2: A B A B).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Measured time of each load run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up before each load run (the JVM compiles its hot paths then).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    #[arg(long, default_value_t = 32)]
    pub sessions: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Znodes for the memory and restart figures.
    #[arg(long, default_value_t = 1_000_000)]
    pub znodes: usize,
    /// Watcher sessions for fan-out.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Where both servers' data directories go (one disk for both).
    #[arg(long, default_value = "target/bench-compare")]
    pub workdir: PathBuf,
    /// ZooKeeper's maximum heap (-Xmx).
    #[arg(long, default_value = "4g")]
    pub zk_heap: String,
    /// More JVM flags for ZooKeeper, space-separated.
    #[arg(long, default_value = "")]
    pub zk_jvm_flags: String,
    /// Where Debian puts ZooKeeper's jars.
    #[arg(long, default_value = "/usr/share/java")]
    pub zk_java_dir: PathBuf,
    /// The geokeeper binary to compare (default: this one).
    #[arg(long)]
    pub geokeeper: Option<PathBuf>,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Keep the data directories afterwards.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zk,
    Gk,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Zk => "zookeeper",
            Kind::Gk => "geokeeper",
        }
    }

    /// Each server gets its own loopback address.
    fn ip(self) -> Ipv4Addr {
        match self {
            Kind::Zk => Ipv4Addr::new(127, 0, 0, 10),
            Kind::Gk => Ipv4Addr::new(127, 0, 0, 20),
        }
    }
}

/// How to start the two servers.
struct Env {
    args: CompareArgs,
    /// The binary compared, and the copy of it that runs.
    source: PathBuf,
    geokeeper: PathBuf,
    classpath: String,
}

const LOG4J: &str = "\
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.err
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
";

impl Env {
    fn new(args: &CompareArgs) -> io::Result<Env> {
        std::fs::create_dir_all(&args.workdir)?;
        let conf = args.workdir.join("log4j");
        std::fs::create_dir_all(&conf)?;
        std::fs::write(conf.join("log4j.properties"), LOG4J)?;
        let jar = |n: &str| args.zk_java_dir.join(n).display().to_string();
        if !args.zk_java_dir.join("zookeeper.jar").exists() {
            return Err(io::Error::other(format!(
                "no zookeeper.jar in {} (apt-get install zookeeper; scripts/bench-compare.sh does)",
                args.zk_java_dir.display()
            )));
        }
        // The classpath tests/support/java_zk.rs uses: zookeeper.jar's manifest pulls in
        // its dependencies from the same directory; slf4j → log4j 1.2 for its logging.
        let classpath = [
            std::path::absolute(&conf)?.display().to_string(),
            jar("zookeeper.jar"),
            jar("zookeeper-jute.jar"),
            jar("slf4j-log4j12.jar"),
            jar("log4j-1.2.jar"),
        ]
        .join(":");
        // A copy of the binary under test: a rebuild in the work tree during a long run
        // must not change the server between runs.
        let source = args.geokeeper.clone().unwrap_or_else(super::own_binary);
        let geokeeper = std::path::absolute(args.workdir.join("geokeeper-under-test"))?;
        let tmp = geokeeper.with_extension("tmp");
        std::fs::copy(&source, &tmp)
            .map_err(|e| io::Error::other(format!("copy {}: {e}", source.display())))?;
        std::fs::rename(&tmp, &geokeeper)?;
        Ok(Env {
            args: args.clone(),
            source: std::path::absolute(&source)?,
            geokeeper,
            classpath,
        })
    }

    /// The JVM flags: the test harness's minus its start-up shortcuts (C1 only, serial GC,
    /// a 256 MiB heap), which would handicap ZooKeeper under load; G1 as zkServer.sh gets
    /// from JDK 17, and a heap large enough for a million znodes.
    fn jvm_flags(&self) -> Vec<String> {
        let mut f: Vec<String> = [
            "-Xshare:auto",
            "-XX:+UseG1GC",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            "-Dzookeeper.jmx.log4j.disable=true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        f.push(format!("-Xmx{}", self.args.zk_heap));
        f.extend(
            self.args
                .zk_jvm_flags
                .split_whitespace()
                .map(str::to_string),
        );
        f
    }
}

/// A server process of either kind, on a data directory of its own.
struct Server {
    kind: Kind,
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

fn free_port(ip: Ipv4Addr) -> io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

impl Server {
    /// Writes zoo.cfg in `dir` (once) and starts the server on it; returns when it was
    /// spawned (not yet serving).
    fn spawn(
        env: &Env,
        kind: Kind,
        dir: &Path,
        addr: Option<SocketAddr>,
    ) -> io::Result<(Server, Instant)> {
        std::fs::create_dir_all(dir.join("data"))?;
        let addr = match addr {
            Some(a) => a,
            None => SocketAddr::new(kind.ip().into(), free_port(kind.ip())?),
        };
        let dir = std::path::absolute(dir)?;
        let cfg = dir.join("zoo.cfg");
        let mut text = format!(
            "tickTime=2000\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress={}\n\
             maxClientCnxns=0\n\
             forceSync=yes\n\
             4lw.commands.whitelist=*\n",
            dir.join("data").display(),
            addr.port(),
            addr.ip()
        );
        if kind == Kind::Zk {
            text.push_str("admin.enableServer=false\n");
        }
        std::fs::write(&cfg, text)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))?;
        let mut cmd = match kind {
            Kind::Zk => {
                let mut c = Command::new("java");
                c.args(env.jvm_flags())
                    .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
                    .arg("-cp")
                    .arg(&env.classpath)
                    .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
                    .arg(&cfg);
                c
            }
            Kind::Gk => {
                let mut c = Command::new(&env.geokeeper);
                // Warnings, and the log's group-commit counters (transactions per fsync).
                c.arg("serve")
                    .arg("--config")
                    .arg(&cfg)
                    .env("GEOKEEPER_LOG", "warn,geokeeper_core::txnlog=info");
                c
            }
        };
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let since = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", kind.name())))?;
        Ok((
            Server {
                kind,
                addr,
                dir,
                child,
            },
            since,
        ))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a session can read `probe`; the time since `since`.
    async fn wait_serving(
        &mut self,
        probe: &str,
        since: Instant,
        within: Duration,
    ) -> io::Result<Duration> {
        let child = &mut self.child;
        let r = load::wait_serving(self.addr, probe, since, within, || {
            matches!(child.try_wait(), Ok(None))
        })
        .await;
        r.map_err(|e| io::Error::other(format!("{}: {e}\n{}", self.kind.name(), self.log_tail())))
    }

    /// Starts a fresh server on `dir` and waits until it serves.
    async fn start(env: &Env, kind: Kind, dir: &Path) -> io::Result<Server> {
        let mut last = None;
        // A port taken between choosing and binding: another one.
        for _ in 0..3 {
            let (mut s, since) = Server::spawn(env, kind, dir, None)?;
            match s.wait_serving("/", since, START_TIMEOUT).await {
                Ok(_) => return Ok(s),
                Err(e) => {
                    s.stop().await;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("did not start")))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn stop(mut self) {
        let pid = self.pid();
        stop_child(&mut self.child, pid).await;
    }
}

/// Transactions per fsync from the last group-commit line geokeeper's log wrote in `dir`
/// ("txnlog group commit since start: N transactions in W writes and F fsyncs …").
fn gk_txns_per_fsync(dir: &Path) -> Option<f64> {
    let log = std::fs::read_to_string(dir.join("server.log")).ok()?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("txnlog group commit since start:"))?;
    let rest = line.split("since start:").nth(1)?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let entries: f64 = words.first()?.parse().ok()?;
    let fsyncs: f64 = words
        .iter()
        .position(|w| *w == "fsyncs")
        .and_then(|i| words.get(i - 1))?
        .parse()
        .ok()?;
    (fsyncs > 0.0).then(|| entries / fsyncs)
}

/// SIGTERM, up to 30 s for a clean exit, then SIGKILL.
pub async fn stop_child(child: &mut Child, pid: u32) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    sys::sigterm(pid);
    for _ in 0..1500 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until the process uses less than 5% of a core over a second (snapshots written,
/// GC done), at most `max`.
async fn wait_idle(pid: u32, max: Duration) {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        let a = sys::cpu_seconds(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        match (a, sys::cpu_seconds(pid)) {
            (Some(a), Some(b)) if b - a < 0.05 => return,
            (None, _) | (_, None) => return,
            _ => {}
        }
    }
}

/// ZooKeeper's live heap in bytes after a full GC (`jcmd PID GC.run`, then the `used`
/// of `GC.heap_info`'s heap lines).
async fn zk_live_heap(pid: u32) -> io::Result<u64> {
    for _ in 0..2 {
        jcmd(pid, "GC.run").await?;
    }
    let info = jcmd(pid, "GC.heap_info").await?;
    parse_heap_used(&info)
        .ok_or_else(|| io::Error::other(format!("no heap size in GC.heap_info:\n{info}")))
}

async fn jcmd(pid: u32, what: &str) -> io::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("jcmd")
            .arg(pid.to_string())
            .arg(what)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("jcmd {what} took over 120 s"),
        )
    })?
    .map_err(|e| io::Error::other(format!("jcmd (a JDK's, package default-jdk-headless): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "jcmd {pid} {what}: {}",
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sums `used NNNK` over the heap lines of `GC.heap_info` (those with `total`: G1 has one,
/// the serial and parallel collectors one per generation; Metaspace lines have none).
fn parse_heap_used(info: &str) -> Option<u64> {
    let mut sum = None;
    for line in info
        .lines()
        .filter(|l| l.contains("total") && l.contains("used"))
    {
        let after = line.split("used").nth(1)?.trim_start();
        let num: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        let v: u64 = num.parse().ok()?;
        let unit = after[num.len()..].chars().next().unwrap_or('K');
        let mult = match unit {
            'K' => 1024,
            'M' => 1024 * 1024,
            'G' => 1024 * 1024 * 1024,
            _ => 1,
        };
        *sum.get_or_insert(0) += v * mult;
    }
    sum
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::AtLeast(v) => format!("≥{v}"),
            Target::AtMost(v) => format!("≤{v}"),
        }
    }

    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(v) => ratio >= v,
            Target::AtMost(v) => ratio <= v,
        }
    }
}

/// One figure of one workload: each server's value per round.
struct Row {
    workload: String,
    metric: String,
    zk: Vec<f64>,
    gk: Vec<f64>,
    target: Option<Target>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        let (z, g) = (mean(&self.zk)?, mean(&self.gk)?);
        (z > 0.0).then_some(g / z)
    }
}

/// "targets met: M of N": the rows that carry a target, and those whose ratio meets it
/// (a row without both servers' figures counts as not met).
fn targets_met(rows: &[Row]) -> String {
    let with_target: Vec<&Row> = rows.iter().filter(|r| r.target.is_some()).collect();
    let met = with_target
        .iter()
        .filter(|r| match (r.target, r.ratio()) {
            (Some(t), Some(ratio)) => t.met(ratio),
            _ => false,
        })
        .count();
    format!("targets met: {met} of {}", with_target.len())
}

fn fmt_val(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_cell(v: &[f64]) -> String {
    match mean(v) {
        None => "-".into(),
        Some(m) if v.len() == 1 => fmt_val(m),
        Some(m) => {
            let raw: Vec<String> = v.iter().map(|x| fmt_val(*x)).collect();
            format!("{} ({})", fmt_val(m), raw.join(" "))
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:<26} {:>28} {:>28} {:>8} {:>7}",
        "workload",
        "figure",
        "ZooKeeper 3.8 mean (runs)",
        "geokeeper mean (runs)",
        "gk/zk",
        "target"
    );
    for r in rows {
        let ratio = r.ratio();
        let verdict = match (r.target, ratio) {
            (Some(t), Some(x)) if t.met(x) => "meets",
            (Some(_), Some(_)) => "MISSES",
            _ => "",
        };
        let _ = writeln!(
            s,
            "{:<20} {:<26} {:>28} {:>28} {:>8} {:>7} {}",
            r.workload,
            r.metric,
            fmt_cell(&r.zk),
            fmt_cell(&r.gk),
            ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            r.target.map(Target::text).unwrap_or_default(),
            verdict
        );
    }
    s
}

fn rows_json(rows: &[Row]) -> String {
    let arr = |v: &[f64]| {
        format!(
            "[{}]",
            v.iter().map(|x| json_num(*x)).collect::<Vec<_>>().join(",")
        )
    };
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let mut j = Json::object();
            j.str("workload", &r.workload)
                .str("figure", &r.metric)
                .raw("zookeeper", &arr(&r.zk))
                .raw("geokeeper", &arr(&r.gk))
                .opt("ratio", r.ratio());
            match r.target {
                Some(t) => j.str("target", &t.text()).raw(
                    "met",
                    if r.ratio().is_some_and(|x| t.met(x)) {
                        "true"
                    } else {
                        "false"
                    },
                ),
                None => j.raw("target", "null"),
            };
            j.finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A load workload of the comparison.
struct LoadDef {
    name: &'static str,
    mix: &'static str,
    in_flight: usize,
    /// Read-only workloads are held to the CPU target too.
    reads: bool,
}

const LOADS: &[LoadDef] = &[
    LoadDef {
        name: "reads-if1",
        mix: "get=100",
        in_flight: 1,
        reads: true,
    },
    LoadDef {
        name: "reads-if16",
        mix: "get=100",
        in_flight: 16,
        reads: true,
    },
    LoadDef {
        name: "writes-if1",
        mix: "set=100",
        in_flight: 1,
        reads: false,
    },
    LoadDef {
        name: "writes-if16",
        mix: "set=100",
        in_flight: 16,
        reads: false,
    },
    LoadDef {
        name: "mix-if1",
        mix: "get=90,set=10",
        in_flight: 1,
        reads: false,
    },
    LoadDef {
        name: "mix-if16",
        mix: "get=90,set=10",
        in_flight: 16,
        reads: false,
    },
    LoadDef {
        name: "create-seq-eph-if1",
        mix: "create-seq-eph=100",
        in_flight: 1,
        reads: false,
    },
    LoadDef {
        name: "create-seq-eph-if16",
        mix: "create-seq-eph=100",
        in_flight: 16,
        reads: false,
    },
    LoadDef {
        name: "multi-if1",
        mix: "multi=100",
        in_flight: 1,
        reads: false,
    },
    LoadDef {
        name: "multi-if16",
        mix: "multi=100",
        in_flight: 16,
        reads: false,
    },
];

/// The rows a load workload contributes, from each server's runs.
fn load_rows(def: &LoadDef, zk: &[RunResult], gk: &[RunResult]) -> Vec<Row> {
    let mut rows = Vec::new();
    let pick = |runs: &[RunResult], f: &dyn Fn(&RunResult) -> Option<f64>| -> Vec<f64> {
        runs.iter().filter_map(f).collect()
    };
    let is_read = def.reads;
    let is_write = def.mix == "set=100";
    let throughput_target = match def.name {
        n if n.starts_with("reads")
            || n.starts_with("writes")
            || n.starts_with("mix")
            || n.starts_with("create-seq-eph") =>
        {
            Some(Target::AtLeast(2.0))
        }
        _ => None,
    };
    let row = |metric: String, f: &dyn Fn(&RunResult) -> Option<f64>, target: Option<Target>| Row {
        workload: def.name.to_string(),
        metric,
        zk: pick(zk, f),
        gk: pick(gk, f),
        target,
    };
    rows.push(row(
        "ops/s".into(),
        &|r| Some(r.ops_per_s()),
        throughput_target,
    ));
    let names: Vec<&'static str> = zk
        .first()
        .or(gk.first())
        .map(|r| r.ops.iter().map(|o| o.name).collect())
        .unwrap_or_default();
    for name in names {
        let op = |r: &RunResult| r.ops.iter().find(|o| o.name == name).cloned();
        let p99_target = (is_read || is_write).then_some(Target::AtMost(0.5));
        rows.push(row(
            format!("{name} p50 µs"),
            &|r| op(r).map(|o| o.pct_us(50.0) as f64),
            None,
        ));
        rows.push(row(
            format!("{name} p99 µs"),
            &|r| op(r).map(|o| o.pct_us(99.0) as f64),
            p99_target,
        ));
        rows.push(row(
            format!("{name} p99.9 µs"),
            &|r| op(r).map(|o| o.pct_us(99.9) as f64),
            None,
        ));
        rows.push(row(
            format!("{name} errors"),
            &|r| op(r).map(|o| o.errors as f64),
            None,
        ));
    }
    rows.push(row(
        "server CPU s/1k ops".into(),
        &|r| r.server_cpu_per_1k(),
        is_read.then_some(Target::AtMost(0.3)),
    ));
    rows.push(row(
        "generator CPU s/1k ops".into(),
        &|r| r.client_cpu_per_1k(),
        None,
    ));
    // User CPU of every other process during the window: noise, if not ~0.
    rows.push(row(
        "other processes, cores".into(),
        &|r| r.others_cores(),
        None,
    ));
    rows
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

pub async fn run(args: &CompareArgs, progress: &Progress) -> Result<(), String> {
    let env = Env::new(args).map_err(|e| e.to_string())?;
    let wanted: Vec<String> = args
        .workloads
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    for w in &wanted {
        if !LOADS.iter().any(|l| l.name == w)
            && !["fanout", "memory", "restart"].contains(&w.as_str())
        {
            return Err(format!("unknown workload {w:?}"));
        }
    }
    if wanted.iter().any(|w| w == "fanout") && sys::nofile_limit() < args.watchers as u64 * 3 + 256
    {
        return Err(format!(
            "fan-out with {} watchers needs about {} open files here (clients and servers); the limit is {}",
            args.watchers,
            args.watchers * 3 + 256,
            sys::nofile_limit()
        ));
    }
    let rounds = args.rounds.max(1);
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut raw: Vec<String> = Vec::new();
    {
        println!(
            "geokeeper bench compare — Apache ZooKeeper 3.8 (java {}) vs geokeeper ({}), {} cores, workdir {}",
            env.jvm_flags().join(" "),
            env.source.display(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            args.workdir.display()
        );
        println!(
            "sessions {}, value {} B, keys {}, warm-up {:.0} s, measured {:.0} s per run, {} A/B rounds (A B A B), forceSync=yes",
            args.sessions,
            args.value_size,
            args.keys,
            args.warmup.as_secs_f64(),
            args.duration.as_secs_f64(),
            rounds
        );
    }

    for def in LOADS.iter().filter(|d| wanted.iter().any(|w| w == d.name)) {
        let mut zk = Vec::new();
        let mut gk = Vec::new();
        let mut batches = Vec::new();
        for round in 0..rounds {
            for kind in [Kind::Zk, Kind::Gk] {
                progress.note(&format!(
                    "[{:>5.0} s] {} round {} on {}",
                    started.elapsed().as_secs_f64(),
                    def.name,
                    round + 1,
                    kind.name()
                ));
                let dir =
                    env.args
                        .workdir
                        .join(format!("{}-{}-r{}", kind.name(), def.name, round + 1));
                let _ = std::fs::remove_dir_all(&dir);
                let server = Server::start(&env, kind, &dir)
                    .await
                    .map_err(|e| e.to_string())?;
                let spec = LoadSpec {
                    hosts: vec![server.addr],
                    sessions: args.sessions,
                    in_flight: def.in_flight,
                    mix: def.mix.parse()?,
                    value_size: args.value_size,
                    keys: args.keys,
                    warmup: args.warmup,
                    duration: args.duration,
                    session_timeout_ms: 30_000,
                    prefix: "/bench".into(),
                    server_pid: Some(server.pid()),
                };
                let r = async {
                    load::prepare(&spec).await?;
                    load::run_load(&spec, progress).await
                }
                .await;
                let log = server.log_tail();
                server.stop().await;
                if kind == Kind::Gk {
                    batches.extend(gk_txns_per_fsync(&dir));
                }
                if !args.keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                let r = r.map_err(|e| format!("{} on {}: {e}\n{log}", def.name, kind.name()))?;
                progress.note(&format!(
                    "          {:.0} ops/s, server CPU {:.4} s/1k ops",
                    r.ops_per_s(),
                    r.server_cpu_per_1k().unwrap_or(0.0)
                ));
                raw.push(format!(
                    "{{\"workload\":{},\"server\":{},\"round\":{},\"run\":{}}}",
                    json_str(def.name),
                    json_str(kind.name()),
                    round + 1,
                    r.json()
                ));
                match kind {
                    Kind::Zk => zk.push(r),
                    Kind::Gk => gk.push(r),
                }
            }
        }
        let mut new_rows = load_rows(def, &zk, &gk);
        if !def.reads {
            // How well geokeeper's group commit batches (ZooKeeper does not say).
            new_rows.push(Row {
                workload: def.name.to_string(),
                metric: "txns per fsync".into(),
                zk: Vec::new(),
                gk: batches,
                target: None,
            });
        }
        progress.note(&table(&new_rows));
        rows.extend(new_rows);
    }

    if wanted.iter().any(|w| w == "fanout") {
        let mut zk = Vec::new();
        let mut gk = Vec::new();
        for round in 0..rounds {
            for kind in [Kind::Zk, Kind::Gk] {
                progress.note(&format!(
                    "[{:>5.0} s] fanout round {} on {}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    kind.name()
                ));
                let dir = env
                    .args
                    .workdir
                    .join(format!("{}-fanout-r{}", kind.name(), round + 1));
                let _ = std::fs::remove_dir_all(&dir);
                let server = Server::start(&env, kind, &dir)
                    .await
                    .map_err(|e| e.to_string())?;
                let spec = FanoutSpec {
                    hosts: vec![server.addr],
                    watchers: args.watchers,
                    max_rounds: 100_000,
                    warmup: args.warmup,
                    duration: args.duration,
                    value_size: args.value_size,
                    path: "/bench-fanout".into(),
                    session_timeout_ms: 30_000,
                    server_pid: Some(server.pid()),
                };
                let r = load::fanout(&spec, progress).await;
                let log = server.log_tail();
                server.stop().await;
                if !args.keep {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                let r = r.map_err(|e| format!("fanout on {}: {e}\n{log}", kind.name()))?;
                raw.push(format!(
                    "{{\"workload\":\"fanout\",\"server\":{},\"round\":{},\"run\":{}}}",
                    json_str(kind.name()),
                    round + 1,
                    r.json()
                ));
                match kind {
                    Kind::Zk => zk.push(r),
                    Kind::Gk => gk.push(r),
                }
            }
        }
        let name = format!("fanout-{}", args.watchers);
        let f = |runs: &[load::FanoutResult], g: &dyn Fn(&load::FanoutResult) -> f64| {
            runs.iter().map(g).collect::<Vec<_>>()
        };
        let mk = |metric: &str, g: &dyn Fn(&load::FanoutResult) -> f64, target| Row {
            workload: name.clone(),
            metric: metric.into(),
            zk: f(&zk, g),
            gk: f(&gk, g),
            target,
        };
        let new_rows = vec![
            mk("rounds", &|r| r.rounds as f64, None),
            mk("all events p50 µs", &|r| r.all.pct_us(50.0) as f64, None),
            mk(
                "all events p99 µs",
                &|r| r.all.pct_us(99.0) as f64,
                Some(Target::AtMost(0.5)),
            ),
            mk("each event p50 µs", &|r| r.each.pct_us(50.0) as f64, None),
            mk("each event p99 µs", &|r| r.each.pct_us(99.0) as f64, None),
            mk("setData p99 µs", &|r| r.set.pct_us(99.0) as f64, None),
            mk(
                "server CPU s/1k events",
                &|r| r.server_cpu_per_1k_events().unwrap_or(f64::NAN),
                None,
            ),
            mk(
                "other processes, cores",
                &|r| r.others_cores().unwrap_or(f64::NAN),
                None,
            ),
        ];
        progress.note(&table(&new_rows));
        rows.extend(new_rows);
    }

    if wanted.iter().any(|w| w == "memory" || w == "restart") {
        let new_rows = znodes_stage(&env, progress, &wanted, &mut raw, started).await?;
        progress.note(&table(&new_rows));
        rows.extend(new_rows);
    }

    println!(
        "ratio geokeeper / ZooKeeper of the means; each run's figure in parentheses, in run order:"
    );
    print!("{}", table(&rows));
    println!("{}", targets_met(&rows));
    if wanted.iter().any(|w| w == "memory") {
        println!("bytes/znode: geokeeper's resident-set growth, ZooKeeper's live-heap growth after a full GC (jcmd GC.run, GC.heap_info)");
    }
    println!(
        "{{\"compare\":{},\"runs\":[{}],\"jvm_flags\":{},\"elapsed_s\":{}}}",
        rows_json(&rows),
        raw.join(","),
        json_str(&env.jvm_flags().join(" ")),
        json_num(started.elapsed().as_secs_f64())
    );
    Ok(())
}

/// Memory per znode and restart time with `--znodes` znodes: each server is populated
/// once; then restarts alternate A B A B on those data directories.
async fn znodes_stage(
    env: &Env,
    progress: &Progress,
    wanted: &[String],
    raw: &mut Vec<String>,
    started: Instant,
) -> Result<Vec<Row>, String> {
    let args = &env.args;
    let n = args.znodes.max(1);
    let name = format!("znodes-{n}");
    let mut rows = Vec::new();
    let mut pop_rate = (Vec::new(), Vec::new());
    let mut mem = (Vec::new(), Vec::new());
    let mut mem_restored = (Vec::new(), Vec::new());
    let mut rss_growth = (Vec::new(), Vec::new());
    let mut restart = (Vec::new(), Vec::new());
    let mut state: Vec<(Kind, PathBuf, SocketAddr, f64)> = Vec::new();
    let pop_spec = |addr, pid| PopulateSpec {
        hosts: vec![addr],
        count: n,
        value_size: args.value_size,
        sessions: args.sessions,
        in_flight: 16,
        parent: "/bench-pop".into(),
        per_dir: 1000,
        session_timeout_ms: 30_000,
        server_pid: Some(pid),
    };
    let probe = pop_spec(SocketAddr::from(([127, 0, 0, 1], 0)), 0).last_leaf();
    for kind in [Kind::Zk, Kind::Gk] {
        progress.note(&format!(
            "[{:>5.0} s] populating {n} znodes on {}",
            started.elapsed().as_secs_f64(),
            kind.name()
        ));
        let dir = args.workdir.join(format!("{}-znodes", kind.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = Server::start(env, kind, &dir)
            .await
            .map_err(|e| e.to_string())?;
        let pid = server.pid();
        wait_idle(pid, Duration::from_secs(30)).await;
        let base_rss = sys::rss_bytes(pid).unwrap_or(0) as f64;
        let base_heap = match kind {
            Kind::Zk => Some(zk_live_heap(pid).await.map_err(|e| e.to_string())? as f64),
            Kind::Gk => None,
        };
        let r = load::populate(&pop_spec(server.addr, pid), progress).await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let log = server.log_tail();
                server.stop().await;
                return Err(format!("populate on {}: {e}\n{log}", kind.name()));
            }
        };
        raw.push(format!(
            "{{\"workload\":\"populate\",\"server\":{},\"run\":{}}}",
            json_str(kind.name()),
            r.json()
        ));
        wait_idle(pid, Duration::from_secs(120)).await;
        let rss = sys::rss_bytes(pid).unwrap_or(0) as f64;
        let growth = (rss - base_rss) / n as f64;
        let per_znode = match (kind, base_heap) {
            (Kind::Zk, Some(h0)) => {
                (zk_live_heap(pid).await.map_err(|e| e.to_string())? as f64 - h0) / n as f64
            }
            _ => growth,
        };
        progress.note(&format!(
            "          {:.0} creates/s; {:.0} bytes/znode{}; RSS growth {:.0} bytes/znode",
            r.ops_per_s(),
            per_znode,
            if kind == Kind::Zk { " (live heap)" } else { "" },
            growth
        ));
        let (pr, m, g) = match kind {
            Kind::Zk => (&mut pop_rate.0, &mut mem.0, &mut rss_growth.0),
            Kind::Gk => (&mut pop_rate.1, &mut mem.1, &mut rss_growth.1),
        };
        pr.push(r.ops_per_s());
        m.push(per_znode);
        g.push(growth);
        state.push((kind, dir, server.addr, base_heap.unwrap_or(base_rss)));
        server.stop().await;
    }
    let rounds = if wanted.iter().any(|w| w == "restart") {
        args.rounds.max(1)
    } else {
        1
    };
    for round in 0..rounds {
        for (kind, dir, addr, base) in &state {
            progress.note(&format!(
                "[{:>5.0} s] restart round {} on {}",
                started.elapsed().as_secs_f64(),
                round + 1,
                kind.name()
            ));
            let (mut server, since) =
                Server::spawn(env, *kind, dir, Some(*addr)).map_err(|e| e.to_string())?;
            let took = server.wait_serving(&probe, since, RESTART_TIMEOUT).await;
            let took = match took {
                Ok(t) => t,
                Err(e) => {
                    server.stop().await;
                    return Err(format!("restart of {}: {e}", kind.name()));
                }
            };
            progress.note(&format!(
                "          serving after {:.2} s",
                took.as_secs_f64()
            ));
            let pid = server.pid();
            // Let the start-up snapshot finish, so the next restart starts from the same
            // kind of directory (and memory is measured at rest).
            wait_idle(pid, Duration::from_secs(120)).await;
            if round == 0 {
                let after = match kind {
                    Kind::Zk => zk_live_heap(pid).await.map_err(|e| e.to_string())? as f64,
                    Kind::Gk => sys::rss_bytes(pid).unwrap_or(0) as f64,
                };
                let v = (after - base) / n as f64;
                match kind {
                    Kind::Zk => mem_restored.0.push(v),
                    Kind::Gk => mem_restored.1.push(v),
                }
            }
            server.stop().await;
            match kind {
                Kind::Zk => restart.0.push(took.as_secs_f64()),
                Kind::Gk => restart.1.push(took.as_secs_f64()),
            }
        }
    }
    if !args.keep {
        for (_, dir, _, _) in &state {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let mk = |metric: &str, v: &(Vec<f64>, Vec<f64>), target| Row {
        workload: name.clone(),
        metric: metric.into(),
        zk: v.0.clone(),
        gk: v.1.clone(),
        target,
    };
    rows.push(mk("populate creates/s", &pop_rate, None));
    if wanted.iter().any(|w| w == "memory") {
        // geokeeper: resident-set growth; ZooKeeper: live-heap growth after a full GC.
        rows.push(mk("bytes/znode", &mem, Some(Target::AtMost(0.5))));
        rows.push(mk("bytes/znode after restart", &mem_restored, None));
        // Both as the OS sees them (a JVM's RSS follows its heap sizing, not its data).
        rows.push(mk("RSS growth bytes/znode", &rss_growth, None));
    }
    if wanted.iter().any(|w| w == "restart") {
        rows.push(mk(
            "restart to serving s",
            &restart,
            Some(Target::AtMost(0.5)),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_commit_line() {
        let dir = std::env::temp_dir().join(format!("gk-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("server.log"),
            "x txnlog group commit since start: 10 transactions in 5 writes and 5 fsyncs (2.00 per write)\n\
             y txnlog group commit since start: 300 transactions in 20 writes and 20 fsyncs (15.00 per write)\n",
        )
        .unwrap();
        assert_eq!(gk_txns_per_fsync(&dir), Some(15.0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn heap_info_of_g1_and_serial() {
        let g1 = "1234:\n garbage-first heap   total 1048576K, used 524288K [0x0000000700000000, 0x0000000800000000)\n  region size 1024K, 3 young (3072K), 0 survivors (0K)\n Metaspace       used 25000K, committed 25500K, reserved 1073152K\n  class space    used 2800K, committed 3000K, reserved 1048576K\n";
        assert_eq!(parse_heap_used(g1), Some(524288 * 1024));
        let serial = " def new generation   total 9792K, used 1000K [0x0, 0x1, 0x2)\n tenured generation   total 21888K, used 2000K [0x3, 0x4, 0x5)\n Metaspace       used 1K, committed 2K, reserved 3K\n";
        assert_eq!(parse_heap_used(serial), Some(3000 * 1024));
        assert_eq!(parse_heap_used("nothing"), None);
    }

    #[test]
    fn rows_show_means_runs_and_verdicts() {
        let r = Row {
            workload: "reads-if1".into(),
            metric: "ops/s".into(),
            zk: vec![10_000.0, 12_000.0],
            gk: vec![30_000.0, 30_000.0],
            target: Some(Target::AtLeast(2.0)),
        };
        assert_eq!(r.ratio(), Some(30_000.0 / 11_000.0));
        let t = table(&[r]);
        assert!(t.contains("11000 (10000 12000)"), "{t}");
        assert!(t.contains("2.73"), "{t}");
        assert!(t.contains("meets"), "{t}");
        let row = |metric: &str, zk: f64, gk: f64, target: Option<Target>| Row {
            workload: "w".into(),
            metric: metric.into(),
            zk: vec![zk],
            gk: vec![gk],
            target,
        };
        let rows = [
            row("get p99 µs", 100.0, 40.0, Some(Target::AtMost(0.5))),
            row("ops/s", 10_000.0, 15_000.0, Some(Target::AtLeast(2.0))),
            row("set p50 µs", 1.0, 1.0, None),
        ];
        assert_eq!(targets_met(&rows), "targets met: 1 of 2");
    }
}
