//! Reference-implementation helpers for integration tests: Debian's Apache ZooKeeper 3.8
//! server (`JavaZk`), its Java CLI (`zkcli`), the C client shell (`cli_mt`) and kazoo
//! (`kazoo`), plus normalizers that strip what legitimately differs between two servers so
//! that the same script can be run against Apache ZooKeeper and geokeeper and compared.
//!
//! Needs the Debian packages `zookeeper` and `zookeeper-bin`, `java`, and `python3` with
//! `kazoo`; `scripts/test.sh` installs them.
//!
//! Include it from a test file with `#[path = "support/java_zk.rs"] mod java_zk;` (or from
//! `tests/support/mod.rs` with `pub mod java_zk;`).
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where Debian puts the ZooKeeper jars and their dependencies.
const JAVA_DIR: &str = "/usr/share/java";
/// Debian's build of the C client shell (package `zookeeper-bin`).
pub const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";
/// How long `JavaZk::start` waits for `ruok` to answer `imok`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one client run (zkcli, kazoo) may take before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long cli_mt may take for one command.
const CLI_MT_STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// JVM flags used for every Java process: C1 only, serial GC and a small heap start the
/// server in about 0.4 s on a 2-core machine; no hsperfdata files are left in /tmp.
pub const JVM_FLAGS: &[&str] = &[
    "-Xshare:auto",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xmx256m",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
];

/// log4j 1.2 configuration shared by server and clients. The root logger comes from the
/// system property `zookeeper.root.logger` (default `WARN, CONSOLE`: warnings to stderr);
/// the server runs with `INFO, FILE`, which writes `${zookeeper.log.dir}/zookeeper.log`.
/// A server's client connections log why and when they close (NIOServerCnxn at DEBUG:
/// a few lines per connection, none per request).
const LOG4J_PROPERTIES: &str = "\
zookeeper.root.logger=WARN, CONSOLE
zookeeper.log.dir=.
zookeeper.log.file=zookeeper.log
log4j.rootLogger=${zookeeper.root.logger}
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.err
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${zookeeper.log.dir}/${zookeeper.log.file}
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
log4j.logger.org.apache.zookeeper.server.NIOServerCnxn=DEBUG
";

// ---------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------

/// A pseudo-random u64 from std only (per-process random SipHash keys, time, pid, counter).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.finish()
}

/// Whether a failed test keeps its servers' logs (`GEOKEEPER_KEEP_JAVA_LOGS` set): the
/// Java data directories with a thread dump of each JVM, and geokeeper's logs.
pub fn keep_logs() -> bool {
    std::env::var_os("GEOKEEPER_KEEP_JAVA_LOGS").is_some()
}

/// Marks `addr` (`udp` or TCP) as handed out by this test process; false if it already
/// was. A port bound to 0 and dropped is free again at once, and the kernel may give it
/// to the next bind: once two ports of one Java ensemble member came out equal (its
/// client and election port: the JVM refused its configuration). Test binaries run one
/// at a time, so remembering what this process handed out keeps tests that run in
/// parallel, and the ports of one server, apart.
fn claim(udp: bool, addr: SocketAddr) -> bool {
    static GIVEN: OnceLock<Mutex<HashSet<(bool, SocketAddr)>>> = OnceLock::new();
    GIVEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((udp, addr))
}

/// A free TCP address on a random loopback IP 127.0.0.x (x in 2..250), never handed out
/// before in this process, so that tests running in parallel (and servers that bind
/// several ports) do not collide.
pub fn free_loopback_addr() -> SocketAddr {
    for _ in 0..1000 {
        let x = 2 + (random_u64() % 248) as u8;
        let ip = Ipv4Addr::new(127, 0, 0, x);
        if let Ok(listener) = TcpListener::bind(SocketAddrV4::new(ip, 0)) {
            if let Ok(addr) = listener.local_addr() {
                if claim(false, addr) {
                    return addr;
                }
            }
        }
    }
    panic!("could not find a free loopback address");
}

/// A TCP port free on `ip` a moment ago and never handed out before in this process.
pub fn free_port_on(ip: Ipv4Addr) -> u16 {
    loop {
        let l = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind");
        let addr = l.local_addr().expect("addr");
        if claim(false, addr) {
            return addr.port();
        }
    }
}

/// A UDP address on 127.0.0.1 free a moment ago and never handed out before in this
/// process.
pub fn free_udp_addr() -> SocketAddr {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let addr = s.local_addr().expect("udp addr");
        if claim(true, addr) {
            return addr;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Java classpath
// ---------------------------------------------------------------------------------------

/// Directory holding the shared log4j.properties (written once per process, atomically).
fn log4j_conf_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("geokeeper-zk-log4j");
        fs::create_dir_all(&dir).expect("create log4j conf dir");
        let tmp = dir.join(format!("log4j.properties.{}", random_u64()));
        fs::write(&tmp, LOG4J_PROPERTIES).expect("write log4j.properties");
        fs::rename(&tmp, dir.join("log4j.properties")).expect("install log4j.properties");
        dir
    })
}

/// Classpath for Debian's ZooKeeper 3.8 server and Java client: the log4j config dir,
/// `zookeeper.jar` (whose manifest Class-Path pulls in jute, netty, slf4j-api, commons-cli,
/// metrics, snappy, jetty, jackson, ... from /usr/share/java) and the slf4j → log4j 1.2
/// binding (without it slf4j falls back to NOP and prints a warning).
///
/// `jline.jar` is listed in the manifest but not installed by Debian's packages; without it
/// `ZooKeeperMain` reads commands line by line from stdin, which is what `zkcli` relies on.
pub fn zk_classpath() -> String {
    let mut parts = vec![log4j_conf_dir().display().to_string()];
    for jar in [
        "zookeeper.jar",
        "zookeeper-jute.jar",
        "slf4j-log4j12.jar",
        "log4j-1.2.jar",
    ] {
        parts.push(format!("{JAVA_DIR}/{jar}"));
    }
    // Quorum TLS needs netty's codec, which Debian's zookeeper.jar manifest leaves out
    // (LearnerHandler fails with ClassNotFoundException io.netty…ByteToMessageDecoder).
    let codec = format!("{JAVA_DIR}/netty-codec.jar");
    if std::path::Path::new(&codec).exists() {
        parts.push(codec);
    }
    parts.join(":")
}

fn java_command() -> Command {
    let mut cmd = Command::new("java");
    cmd.args(JVM_FLAGS);
    cmd
}

// ---------------------------------------------------------------------------------------
// Four-letter words
// ---------------------------------------------------------------------------------------

/// Sends a four-letter word and returns the whole answer (the server closes after it).
pub fn try_four_letter(addr: SocketAddr, cmd: &str) -> io::Result<String> {
    four_letter_within(addr, cmd, Duration::from_secs(10))
}

/// `try_four_letter` with a bound on connecting and on each read and write.
pub fn four_letter_within(addr: SocketAddr, cmd: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(cmd.as_bytes())?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Sends a four-letter word (`ruok`, `srvr`, `stat`, `mntr`, `conf`, ...) and returns the
/// answer; panics if the connection fails.
pub fn four_letter(addr: SocketAddr, cmd: &str) -> String {
    try_four_letter(addr, cmd)
        .unwrap_or_else(|e| panic!("four-letter word {cmd:?} to {addr} failed: {e}"))
}

// ---------------------------------------------------------------------------------------
// JavaZk: a standalone Apache ZooKeeper server
// ---------------------------------------------------------------------------------------

/// A standalone Apache ZooKeeper 3.8 server (`ZooKeeperServerMain`) on a random loopback
/// address, with its data, config and logs in `dir`. Dropping it kills the process.
pub struct JavaZk {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

enum StartFailure {
    /// The port was taken between `free_loopback_addr` and the server's bind: retry.
    AddrInUse,
    Fatal(String),
}

impl JavaZk {
    /// Starts a server with the standard config plus `extra_cfg` (zoo.cfg lines, e.g.
    /// `"extendedTypesEnabled=true\nmaxSessionTimeout=60000"`), and waits until it answers
    /// `ruok` with `imok` and `srvr` with its version (it is then serving requests).
    /// Panics with the tail of its log on failure or after 60 s.
    pub fn start(extra_cfg: &str) -> JavaZk {
        Self::start_with_jvm_flags(extra_cfg, &[])
    }

    /// `start` with extra JVM flags, for settings ZooKeeper reads only as system properties
    /// under a name zoo.cfg cannot give (zoo.cfg's unknown keys become `zookeeper.<key>`),
    /// e.g. `-Dznode.container.checkIntervalMs=3600000`.
    pub fn start_with_jvm_flags(extra_cfg: &str, jvm_flags: &[&str]) -> JavaZk {
        for _attempt in 0..5 {
            match Self::try_start(None, extra_cfg, jvm_flags) {
                Ok(zk) => return zk,
                Err(StartFailure::AddrInUse) => continue,
                Err(StartFailure::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!("JavaZk: address in use on 5 attempts");
    }

    /// Starts a server like `start`, but on the given `data_dir` (which may already hold a
    /// ZooKeeper or geokeeper data directory, or not exist yet); config and logs stay in
    /// the server's own temp dir, so the data directory outlives the server.
    pub fn start_on(data_dir: &Path, extra_cfg: &str) -> JavaZk {
        for _attempt in 0..5 {
            match Self::try_start(Some(data_dir), extra_cfg, &[]) {
                Ok(zk) => return zk,
                Err(StartFailure::AddrInUse) => continue,
                Err(StartFailure::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!("JavaZk: address in use on 5 attempts");
    }

    fn try_start(
        data_dir: Option<&Path>,
        extra_cfg: &str,
        jvm_flags: &[&str],
    ) -> Result<JavaZk, StartFailure> {
        let addr = free_loopback_addr();
        let dir = tempfile::Builder::new()
            .prefix("javazk-")
            .tempdir()
            .expect("create JavaZk temp dir");
        let data_dir = data_dir.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        fs::create_dir_all(&data_dir).expect("create dataDir");
        let cfg_path = dir.path().join("zoo.cfg");
        let cfg = format!(
            "tickTime=2000\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress={}\n\
             4lw.commands.whitelist=*\n\
             admin.enableServer=false\n\
             {}\n",
            data_dir.display(),
            addr.port(),
            addr.ip(),
            extra_cfg.trim()
        );
        fs::write(&cfg_path, cfg).expect("write zoo.cfg");
        let out = fs::File::create(dir.path().join("stdout.log")).expect("create stdout.log");
        let err = out.try_clone().expect("clone stdout.log");
        let child = java_command()
            .arg(format!("-Dzookeeper.log.dir={}", dir.path().display()))
            .arg("-Dzookeeper.log.file=zookeeper.log")
            .arg("-Dzookeeper.root.logger=INFO, FILE")
            .arg("-Dzookeeper.jmx.log4j.disable=true")
            .args(jvm_flags)
            .arg("-cp")
            .arg(zk_classpath())
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&cfg_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn java (is a JRE installed?)");
        let mut zk = JavaZk { addr, dir, child };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = zk.child.try_wait() {
                let log = zk.log_tail(60);
                if log.contains("Address already in use") {
                    return Err(StartFailure::AddrInUse);
                }
                return Err(StartFailure::Fatal(format!(
                    "JavaZk on {addr} exited early ({status}); log tail:\n{log}"
                )));
            }
            // `ruok` answers `imok` as soon as the listener is up, a little before the
            // server takes requests (`srvr` then says "not currently serving requests").
            let probe = |cmd| four_letter_within(addr, cmd, Duration::from_secs(1));
            // (A whitelist without ruok refuses it: the server is up all the same.)
            let ruok = probe("ruok").unwrap_or_default();
            if ruok == "imok" || ruok.starts_with("ruok is not executed") {
                let srvr = probe("srvr").unwrap_or_default();
                if srvr.contains("Zookeeper version:") {
                    return Ok(zk);
                }
            }
            if Instant::now() > deadline {
                let log = zk.log_tail(60);
                return Err(StartFailure::Fatal(format!(
                    "JavaZk on {addr} did not answer ruok within {START_TIMEOUT:?}; log tail:\n{log}"
                )));
            }
            sleep(Duration::from_millis(25));
        }
    }

    /// `host:port` for client connect strings.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// The server's log4j log (`zookeeper.log`) followed by its raw stdout/stderr.
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("zookeeper.log"), read("stdout.log"))
    }

    /// SIGKILL (a crash: nothing is flushed or closed), then wait. The log stays readable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `n` lines of `log()`.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for JavaZk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Running client processes
// ---------------------------------------------------------------------------------------

/// Waits for `child` up to `timeout`; kills it after that. `None` means it was killed.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A temp file given to a child as both stdout and stderr: both descriptors share one file
/// offset, so the text keeps the order in which the child wrote it.
fn combined_output() -> (tempfile::NamedTempFile, Stdio, Stdio) {
    let file = tempfile::NamedTempFile::new().expect("create output temp file");
    let out = file.reopen().expect("reopen output file");
    let err = out.try_clone().expect("clone output file");
    (file, Stdio::from(out), Stdio::from(err))
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

// ---------------------------------------------------------------------------------------
// Data-directory tools (TxnLogToolkit, SnapshotFormatter)
// ---------------------------------------------------------------------------------------

/// What a tool printed (stdout and stderr interleaved) and its exit code (`None` if it
/// was killed after the client timeout).
#[derive(Debug)]
pub struct ToolRun {
    pub code: Option<i32>,
    pub output: String,
}

/// Runs a main class from ZooKeeper's jars (plus commons-cli, which the tools need) with
/// `args`.
fn run_zk_tool(class: &str, args: &[&str]) -> ToolRun {
    let (file, out, err) = combined_output();
    let mut child = java_command()
        .arg("-Dzookeeper.root.logger=WARN, CONSOLE")
        .arg("-cp")
        .arg(format!("{}:{JAVA_DIR}/commons-cli.jar", zk_classpath()))
        .arg(class)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn java {class}: {e}"));
    let status = wait_with_timeout(&mut child, CLIENT_TIMEOUT);
    ToolRun {
        code: status.and_then(|s| s.code()),
        output: read_lossy(file.path()),
    }
}

/// ZooKeeper's transaction log dumper (`TxnLogToolkit [-dhrvyc] <file>`, what
/// `zkTxnLogToolkit.sh` runs) on one log file.
pub fn txn_log_toolkit(args: &[&str], file: &Path) -> ToolRun {
    let file = file.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&file);
    run_zk_tool(
        "org.apache.zookeeper.server.persistence.TxnLogToolkit",
        &all,
    )
}

/// ZooKeeper's snapshot dumper (`SnapshotFormatter [-d|-json] <file>`) on one snapshot.
pub fn snapshot_formatter(args: &[&str], file: &Path) -> ToolRun {
    let file = file.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&file);
    run_zk_tool("org.apache.zookeeper.server.SnapshotFormatter", &all)
}

// ---------------------------------------------------------------------------------------
// zkCli (org.apache.zookeeper.ZooKeeperMain)
// ---------------------------------------------------------------------------------------

/// The command `zkcli` appends to flush watch events; its "Sync is OK" line is removed.
const ZKCLI_FLUSH: &str = "sync /";

/// Runs Debian's Java CLI (`ZooKeeperMain -server addr`) and executes `commands` in order in
/// one session, fed line by line on stdin (no jline on the classpath, so the CLI reads
/// stdin without prompts). Returns stdout and stderr interleaved as written.
///
/// The CLI prints results on stdout but "Created /x" and errors ("Node does not exist: /x")
/// on stderr; watch events come from another thread ("WATCHER::" then "WatchedEvent ...").
/// A final `sync /` is appended so that every watch event triggered by the commands is
/// printed before the CLI exits (the sync callback runs on the event thread, after the
/// events); its "Sync is OK" line is removed from the output. The process exit code is the
/// one of the last command, so it is not reported.
pub fn zkcli(addr: SocketAddr, commands: &[&str]) -> String {
    zkcli_with_jvm_flags(addr, &[], commands)
}

/// `zkcli` with extra JVM flags for the CLI's JVM, e.g. a SASL client login:
/// `-Djava.security.auth.login.config=/path/client.jaas` (a `Client` section with
/// `DigestLoginModule`, `username` and `password`). The Java client then authenticates
/// with DIGEST-MD5 right after connecting; the `SaslAuthenticated` / `AuthFailed` events
/// it prints are connection-state events, which `normalize_zkcli` drops.
pub fn zkcli_with_jvm_flags(addr: SocketAddr, jvm_flags: &[&str], commands: &[&str]) -> String {
    let (file, out, err) = combined_output();
    let mut child = java_command()
        .arg("-Dzookeeper.root.logger=WARN, CONSOLE")
        .args(jvm_flags)
        .arg("-cp")
        .arg(zk_classpath())
        .arg("org.apache.zookeeper.ZooKeeperMain")
        .arg("-server")
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn java ZooKeeperMain");
    {
        let mut script = String::new();
        for c in commands {
            script.push_str(c);
            script.push('\n');
        }
        script.push_str(ZKCLI_FLUSH);
        script.push('\n');
        let mut stdin = child.stdin.take().expect("zkcli stdin");
        // The CLI may exit early (e.g. `quit`): ignore a broken pipe.
        let _ = stdin.write_all(script.as_bytes());
    }
    let status = wait_with_timeout(&mut child, CLIENT_TIMEOUT);
    let mut text = read_lossy(file.path());
    if let Some(pos) = text.rfind("Sync is OK\n") {
        text.replace_range(pos..pos + "Sync is OK\n".len(), "");
    }
    if status.is_none() {
        text.push_str(&format!("<zkcli: killed after {CLIENT_TIMEOUT:?}>\n"));
    }
    text
}

/// Whether `line` is a log4j line (`2026-01-02 03:04:05,678 - ...`) or other logging noise.
fn is_java_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    let ts = b.len() >= 23
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b',';
    ts || line.starts_with("SLF4J:")
        || line.starts_with("log4j:")
        || line.starts_with("\tat ")
        || (line.starts_with("\t... ") && line.ends_with(" more"))
}

/// Replaces every `a.b.c.d:port` in `line` with `<addr>`.
fn replace_socket_addrs(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        let starts_token = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        if starts_token && b[i].is_ascii_digit() {
            if let Some(end) = match_ipv4_port(b, i) {
                out.push_str("<addr>");
                i = end;
                continue;
            }
        }
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// If `b[start..]` begins with `d.d.d.d:d` (digits), returns the end index.
fn match_ipv4_port(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    for k in 0..4 {
        if !digits(&mut i) {
            return None;
        }
        let sep = if k < 3 { b'.' } else { b':' };
        if i >= b.len() || b[i] != sep {
            return None;
        }
        i += 1;
    }
    if !digits(&mut i) {
        return None;
    }
    Some(i)
}

/// Replaces `0x` followed by 8 or more hex digits (session ids) with `0x<id>`.
fn replace_long_hex(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find("0x") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let n = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if n >= 8 {
            out.push_str("0x<id>");
        } else {
            out.push_str(&rest[pos..pos + 2 + n]);
        }
        rest = &after[n..];
    }
    out.push_str(rest);
    out
}

/// Normalizes zkcli output so that the runs of one script against two servers compare
/// equal when the servers behave the same:
/// * drops client-library noise: log4j/slf4j lines and stack-trace lines, "Connecting to",
///   "Welcome to ZooKeeper!", "JLine support is ...", "WATCHER::" and blank lines;
/// * strips a jline prompt `[zk: ...] ` if jline happens to be installed;
/// * stat values that differ between servers become placeholders: `cZxid`, `mZxid`,
///   `pZxid` → `<zxid>`, `ctime`, `mtime` → `<time>`, a non-zero `ephemeralOwner` →
///   `<session>` (`0x0` stays);
/// * any other `0x` + 8 or more hex digits (session ids) → `0x<id>`, and `a.b.c.d:port`
///   → `<addr>`;
/// * connection-state events (`WatchedEvent ... type:None`) are dropped; the other
///   `WatchedEvent` lines are moved, in order, after a `-- watch events --` line at the end
///   (they come from the event thread, so their place among command output is racy, but
///   their order is not);
/// * whole-line bracketed lists (`ls`, `getEphemerals`) are sorted, and so are the ids
///   `whoami` lists (`sort_whoami_ids`); an exception printed under a log line is dropped.
pub fn normalize_zkcli(out: &str) -> String {
    let mut lines = Vec::new();
    let mut events = Vec::new();
    let mut after_log = false;
    for raw in out.lines() {
        let mut line = raw.trim_end();
        if let Some(rest) = line.strip_prefix("[zk: ") {
            line = rest.split_once("] ").map(|(_, r)| r).unwrap_or("");
        }
        // The exception logged with a log4j line comes on the next line (its `toString()`,
        // e.g. the client's "EndOfStreamException: Unable to read additional data ..." when
        // the server closes the socket after answering closeSession): noise like its log line.
        let logged = is_java_log_line(line) || (after_log && is_throwable_line(line));
        after_log = logged;
        if line.is_empty()
            || logged
            || line.starts_with("Connecting to ")
            || line == "Welcome to ZooKeeper!"
            || line.starts_with("JLine support is")
            || line == "WATCHER::"
        {
            continue;
        }
        if line.starts_with("WatchedEvent ") {
            if !line.contains("type:None") {
                events.push(replace_socket_addrs(line));
            }
            continue;
        }
        // A whole-line bracketed list is a child list (`ls`) or an ephemeral list
        // (`getEphemerals`): Apache ZooKeeper prints Java HashSet order, geokeeper sorts
        // (a deliberate difference, see README), so the items are sorted.
        if let Some(items) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let mut items: Vec<&str> = items.split(", ").collect();
            items.sort_unstable();
            lines.push(replace_socket_addrs(&format!("[{}]", items.join(", "))));
            continue;
        }
        let normalized = match line.split_once(" = ") {
            Some((key @ ("cZxid" | "mZxid" | "pZxid"), _)) => format!("{key} = <zxid>"),
            Some((key @ ("ctime" | "mtime"), _)) => format!("{key} = <time>"),
            Some(("ephemeralOwner", v)) if v != "0x0" => "ephemeralOwner = <session>".into(),
            _ => replace_long_hex(&replace_socket_addrs(line)),
        };
        lines.push(normalized);
    }
    sort_whoami_ids(&mut lines);
    if !events.is_empty() {
        lines.push("-- watch events --".into());
        lines.extend(events);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Whether `line` is a Java exception's `toString()` (`[pkg.]NameException: message`,
/// `...Error`) or a `Caused by:` line.
fn is_throwable_line(line: &str) -> bool {
    let name = line.split_once(": ").map_or(line, |(n, _)| n);
    line.starts_with("Caused by: ")
        || (!name.contains(' ') && (name.ends_with("Exception") || name.ends_with("Error")))
}

/// Sorts the `scheme: id` lines that follow each `whoami` header ("Auth scheme: User"):
/// Apache ZooKeeper keeps a connection's ids in a ConcurrentHashMap-backed set and lists them
/// in hash order, geokeeper in the order they were added (its automatic `ip` id first).
fn sort_whoami_ids(lines: &mut [String]) {
    // `scheme: id`, or `super:` (the super user's id is empty; trailing blanks are trimmed).
    let is_id = |l: &str| {
        l.split_once(':').is_some_and(|(scheme, id)| {
            !scheme.is_empty() && !scheme.contains(' ') && (id.is_empty() || id.starts_with(' '))
        })
    };
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "Auth scheme: User" {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && is_id(&lines[end]) {
                end += 1;
            }
            lines[start..end].sort_unstable();
            i = end;
        } else {
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// cli_mt (the C client shell)
// ---------------------------------------------------------------------------------------

/// The path `cli_mt` syncs after each command to learn that the command has completed.
const CLI_MT_SENTINEL: &str = "sync /";

/// Counts completed sentinel completions: `[/]: rc = 0` + `\tname = /`, or `[/]: rc = N`.
fn count_cli_mt_syncs(out: &str) -> usize {
    let complete = &out[..out.rfind('\n').map(|i| i + 1).unwrap_or(0)];
    let lines: Vec<&str> = complete.lines().collect();
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        if let Some(rc) = l.strip_prefix("[/]: rc = ") {
            if rc != "0" || lines.get(i + 1) == Some(&"\tname = /") {
                n += 1;
            }
        }
    }
    n
}

/// Removes the last sentinel completion (one or two lines) from `chunk`.
fn strip_last_cli_mt_sync(chunk: &str) -> String {
    let lines: Vec<&str> = chunk.split_inclusive('\n').collect();
    let Some(idx) = lines.iter().rposition(|l| l.starts_with("[/]: rc = ")) else {
        return chunk.to_string();
    };
    let mut skip = 1;
    if lines[idx].trim_end() == "[/]: rc = 0"
        && lines.get(idx + 1).map(|l| l.trim_end()) == Some("\tname = /")
    {
        skip = 2;
    }
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < idx || *i >= idx + skip)
        .map(|(_, l)| *l)
        .collect()
}

/// Runs Debian's C client shell (`cli_mt -h host:port`) with `commands` (`create [+e|+s] /p`,
/// `get /p`, `set /p data`, `ls /p`, `ls2 /p`, `delete /p`, `exists /p`, `wexists /p`,
/// `sync /p`, `config`, `myid`, `addauth`, `quit`; an `a` prefix runs a command
/// asynchronously) in one session, and returns what it printed.
///
/// cli_mt reads stdin with its own loop and runs most commands asynchronously, printing
/// completions from another thread; at end of input it closes the session at once, failing
/// what is still pending with rc = -116 (ZCLOSING). So this helper waits for the session,
/// then sends one command at a time, each followed by `sync /`, and waits for that sync's
/// completion (which the client delivers after the command's own) before the next; the
/// sentinel's lines are removed from the output. Almost everything goes to stderr
/// (unbuffered); `myid` prints to stdout, which is block-buffered and so appears at the end.
pub fn cli_mt(addr: SocketAddr, commands: &[&str]) -> String {
    let (file, out, err) = combined_output();
    let mut child = Command::new(CLI_MT)
        .arg("-h")
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn cli_mt (is zookeeper-bin installed?)");
    let mut stdin = child.stdin.take().expect("cli_mt stdin");
    let read = || read_lossy(file.path());
    let wait_for = |pred: &dyn Fn(&str) -> bool, timeout: Duration| -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&read()) {
                return true;
            }
            sleep(Duration::from_millis(5));
        }
        false
    };

    let mut result = String::new();
    if !wait_for(&|o| o.contains("CONNECTED_STATE"), CLI_MT_STEP_TIMEOUT) {
        result.push_str("<cli_mt: not connected>\n");
    }
    let mut consumed = read().len();
    result.push_str(&read()[..consumed]);
    let mut expected = 0;
    for cmd in commands {
        let cmd = cmd.trim();
        if stdin.write_all(format!("{cmd}\n").as_bytes()).is_err() {
            break;
        }
        if cmd.starts_with("quit") {
            break;
        }
        if cmd == CLI_MT_SENTINEL || cmd == "async /" {
            expected += 1;
        }
        expected += 1;
        if stdin
            .write_all(format!("{CLI_MT_SENTINEL}\n").as_bytes())
            .is_err()
        {
            break;
        }
        let done = wait_for(&|o| count_cli_mt_syncs(o) >= expected, CLI_MT_STEP_TIMEOUT);
        let now = read();
        result.push_str(&strip_last_cli_mt_sync(&now[consumed..]));
        consumed = now.len();
        if !done {
            result.push_str(&format!("<cli_mt: no completion for {cmd:?}>\n"));
            break;
        }
    }
    drop(stdin);
    if wait_with_timeout(&mut child, CLI_MT_STEP_TIMEOUT).is_none() {
        result.push_str("<cli_mt: killed>\n");
    }
    let now = read();
    result.push_str(now.get(consumed..).unwrap_or(""));
    result
}

/// Normalizes cli_mt output like `normalize_zkcli`: drops the C client's log lines
/// (`...:ZOO_WARN@...`), `time = N msec` lines and session-id lines (`Got a new session
/// id`, `session Id =`); stat values become placeholders (`ctime`/`mtime` → `<time>`,
/// `czxid`/`mzxid` → `<zxid>`, a non-zero `ephemeralOwner` → `<session>`); addresses →
/// `<addr>`; blank lines are dropped; child lists are sorted (`sort_cli_mt_children`).
pub fn normalize_cli_mt(out: &str) -> String {
    let mut lines = Vec::new();
    for raw in out.lines() {
        let line = raw.trim_end();
        let body = line.trim_start();
        if body.is_empty()
            || line.contains(":ZOO_")
            || (body.starts_with("time = ") && body.ends_with(" msec"))
            || body.starts_with("Got a new session id")
            || body.starts_with("session Id = ")
        {
            continue;
        }
        let normalized = if body.starts_with("ctime = ") {
            "\tctime = <time>".to_string()
        } else if body.starts_with("mtime=") {
            "\tmtime=<time>".to_string()
        } else if body.starts_with("czxid=") {
            "\tczxid=<zxid>".to_string()
        } else if body.starts_with("mzxid=") {
            "\tmzxid=<zxid>".to_string()
        } else if body.starts_with("ephemeralOwner = ") && body != "ephemeralOwner = 0" {
            "\tephemeralOwner = <session>".to_string()
        } else {
            replace_long_hex(&replace_socket_addrs(line))
        };
        lines.push(normalized);
    }
    sort_cli_mt_children(&mut lines);
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Sorts each child list of `ls`/`ls2`/`wls` (the `\tname` lines, which hold no `=`, after a
/// `path: rc = 0` line): Apache ZooKeeper returns Java HashSet order, geokeeper sorts (a
/// deliberate difference, see README).
fn sort_cli_mt_children(lines: &mut [String]) {
    let mut i = 0;
    while i < lines.len() {
        if lines[i].ends_with(": rc = 0") && !lines[i].starts_with('[') {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].starts_with('\t') && !lines[end].contains('=') {
                end += 1;
            }
            lines[start..end].sort_unstable();
            i = end;
        } else {
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// kazoo (Python)
// ---------------------------------------------------------------------------------------

/// Path of the kazoo driver script.
pub fn kazoo_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kazoo_run.py")
}

/// Runs `tests/support/kazoo_run.py host:port` with `ops_json` (a JSON list of operations,
/// see the script) on stdin, and returns its JSON output (one result per operation).
/// Panics if the script fails (its stderr is in the message).
pub fn kazoo(addr: SocketAddr, ops_json: &str) -> String {
    run_kazoo(addr, None, ops_json)
}

/// `kazoo` with `KazooClient` keyword arguments (`client_json`, a JSON object such as
/// `{"sasl_options": {"mechanism": "DIGEST-MD5", "username": "bob", "password": "pw"}}`
/// or `{"auth_data": [["digest", "bob:pw"]]}`). The output then starts with a
/// `{"start": STATE}` entry: `"CONNECTED"`, or the state the connection ended in
/// (`"AUTH_FAILED"` when the server refused the SASL login), in which case no
/// operation runs.
pub fn kazoo_with_options(addr: SocketAddr, client_json: &str, ops_json: &str) -> String {
    run_kazoo(addr, Some(client_json), ops_json)
}

fn run_kazoo(addr: SocketAddr, client_json: Option<&str>, ops_json: &str) -> String {
    let script = kazoo_script();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(addr.to_string())
        .args(client_json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 kazoo_run.py");
    {
        let mut stdin = child.stdin.take().expect("kazoo stdin");
        stdin
            .write_all(ops_json.as_bytes())
            .expect("write kazoo ops");
    }
    let output = child.wait_with_output().expect("wait for kazoo_run.py");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "kazoo_run.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
}
