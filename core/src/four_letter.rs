//! Four-letter words: the operator commands a ZooKeeper server answers on its client port
//! (`echo mntr | nc host 2181`), with ZooKeeper 3.8's output, byte for byte where the value
//! allows it.
//!
//! A connection whose first 4 bytes, before any ConnectRequest, spell a word ZooKeeper 3.8
//! knows (`FourLetterCommands.isKnown`: conf cons crst dirs dump envi gtmk ruok stmk srst
//! srvr stat wchc wchp wchs mntr isro hash, and `0xfff4fffd` "telnet close") gets the
//! command's text and is closed. Other 4-byte starts (`reqs`, `kill` and any typo) are
//! frame lengths, and too large ones close the connection silently, as in 3.8.
//! Words not in `4lw.commands.whitelist` get ZooKeeper's refusal line instead.
//!
//! The driver ([`crate::net`]) detects the word, reads what the operating system knows
//! ([`Host`]) off the core, and the core task calls [`answer`] with the server it owns and
//! the sockets it holds. [`answer`] does the counting and the resets; every word's text is
//! a pure function of a [`View`].
//!
//! Version strings (`srvr`, `stat`, `envi`, `mntr`) name the ZooKeeper release whose
//! behaviour geokeeper matches, then geokeeper's own version ([`FULL_VERSION`]): clients
//! feature-detect on the leading `3.8.` (kazoo's `server_version()` parses `envi`).
//! `conf` prints no version in 3.8, so neither does geokeeper.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::metrics::{java_double, Summary};
use crate::server::{Clock, ConnId, Server};
use crate::tree::StatsTrack;

/// What `srvr`, `stat`, `envi` and `mntr` report as the version: the ZooKeeper release
/// geokeeper behaves as, then geokeeper's own version and build time.
pub const FULL_VERSION: &str = concat!(
    "3.8.4-geokeeper-",
    env!("CARGO_PKG_VERSION"),
    ", built on ",
    env!("GEOKEEPER_BUILD_DATE")
);

/// The trace mask a fresh server reports (`ZooTrace.textTraceMask`: client requests,
/// server packets and watch events).
pub const DEFAULT_TRACE_MASK: i64 = 306;

/// ZooKeeper's `BufferedWriter` in front of the socket hands over 8192 chars at a time, and
/// each hand-over is one "sent packet" (`packetSent`).
const WRITE_CHUNK: usize = 8192;

/// `NIOServerCnxnFactory`'s connection expiry interval (`zookeeper.nio.sessionlessCnxnTimeout`),
/// which `dump` reports connection deadlines in.
const SESSIONLESS_CNXN_TIMEOUT_MS: u64 = 10_000;

/// A four-letter word ZooKeeper 3.8 recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Word {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Ruok,
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    Hash,
    /// `0xfff4fffd`, what telnet sends for ^C: known, but never a command.
    TelnetClose,
}

impl Word {
    pub const ALL: [Word; 19] = [
        Word::Conf,
        Word::Cons,
        Word::Crst,
        Word::Dirs,
        Word::Dump,
        Word::Envi,
        Word::Gtmk,
        Word::Ruok,
        Word::Stmk,
        Word::Srst,
        Word::Srvr,
        Word::Stat,
        Word::Wchc,
        Word::Wchp,
        Word::Wchs,
        Word::Mntr,
        Word::Isro,
        Word::Hash,
        Word::TelnetClose,
    ];

    /// The word the first 4 bytes of a connection spell, if ZooKeeper 3.8 knows it
    /// (exact bytes: the match is case-sensitive).
    pub fn from_bytes(b: [u8; 4]) -> Option<Word> {
        if b == [0xff, 0xf4, 0xff, 0xfd] {
            return Some(Word::TelnetClose);
        }
        Word::ALL
            .into_iter()
            .find(|w| w.name().as_bytes() == b.as_slice())
    }

    /// The name the whitelist and the refusal text use.
    pub fn name(self) -> &'static str {
        match self {
            Word::Conf => "conf",
            Word::Cons => "cons",
            Word::Crst => "crst",
            Word::Dirs => "dirs",
            Word::Dump => "dump",
            Word::Envi => "envi",
            Word::Gtmk => "gtmk",
            Word::Ruok => "ruok",
            Word::Stmk => "stmk",
            Word::Srst => "srst",
            Word::Srvr => "srvr",
            Word::Stat => "stat",
            Word::Wchc => "wchc",
            Word::Wchp => "wchp",
            Word::Wchs => "wchs",
            Word::Mntr => "mntr",
            Word::Isro => "isro",
            Word::Hash => "hash",
            Word::TelnetClose => "telnet close",
        }
    }

    /// Whether answering it needs [`Host::read`] (the file system and `/proc`).
    pub fn needs_host(self) -> bool {
        matches!(self, Word::Conf | Word::Dirs | Word::Envi | Word::Mntr)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The configuration the words report or obey, fixed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FourLetterSettings {
    /// `4lw.commands.whitelist`, resolved (`FourLetterCommands.isEnabled`).
    enabled: u32,
    pub client_port: u16,
    /// -1: no secure client port (geokeeper has none yet).
    pub secure_client_port: i32,
    /// Where snapshots go: `<dataDir>/version-2`, absolute.
    pub snap_dir: PathBuf,
    /// Where transaction logs go: `<dataLogDir>/version-2`, absolute.
    pub log_dir: PathBuf,
    pub tick_ms: u32,
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// -1: the operating system's default backlog.
    pub listen_backlog: i32,
    /// 0 for a standalone server.
    pub server_id: u64,
    /// More `mntr` lines from outside the core (the relay's publisher and observer link).
    pub extra_mntr: Option<ExtraMntr>,
}

/// A source of extra `mntr` lines: (key without `zk_`, value), read when `mntr` runs.
#[derive(Clone)]
pub struct ExtraMntr(pub std::sync::Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>);

impl std::fmt::Debug for ExtraMntr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraMntr")
    }
}

impl PartialEq for ExtraMntr {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ExtraMntr {}

impl Default for FourLetterSettings {
    fn default() -> Self {
        FourLetterSettings {
            enabled: Word::Srvr.bit(),
            client_port: 2181,
            secure_client_port: -1,
            snap_dir: PathBuf::from("version-2"),
            log_dir: PathBuf::from("version-2"),
            tick_ms: 3000,
            max_client_cnxns: 60,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 60000,
            listen_backlog: -1,
            server_id: 0,
            extra_mntr: None,
        }
    }
}

impl FourLetterSettings {
    /// Enables exactly the words `allowed` says yes to (give it
    /// `Config::four_letter_word_enabled`); `srvr` stays enabled whatever it says.
    pub fn set_whitelist(&mut self, allowed: impl Fn(&str) -> bool) {
        self.enabled = Word::Srvr.bit();
        for w in Word::ALL {
            if allowed(w.name()) {
                self.enabled |= w.bit();
            }
        }
    }

    pub fn enabled(&self, w: Word) -> bool {
        self.enabled & w.bit() != 0
    }
}

/// What the operating system says, read by the driver off the core task just before a
/// word that reports it is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Total size of the files under the snapshot directory (`getDataDirSize`).
    pub data_dir_size: u64,
    /// Total size of the files under the log directory (`getLogDirSize`).
    pub log_dir_size: u64,
    /// Entries of `/proc/self/fd`.
    pub open_fds: Option<u64>,
    /// RLIMIT_NOFILE (the soft limit: what this process can open).
    pub max_fds: Option<u64>,
    /// `envi`'s lines after `zookeeper.version`, in ZooKeeper's order.
    pub environment: Vec<(&'static str, String)>,
}

impl Host {
    /// Reads what `word` reports (nothing for the words that report none).
    pub fn read(word: Word, settings: &FourLetterSettings) -> Host {
        let mut h = Host::default();
        match word {
            Word::Conf | Word::Dirs => {
                h.data_dir_size = dir_size(&settings.snap_dir);
                h.log_dir_size = dir_size(&settings.log_dir);
            }
            Word::Envi => h.environment = environment(),
            Word::Mntr => {
                h.open_fds = std::fs::read_dir("/proc/self/fd")
                    .ok()
                    .map(|d| d.count() as u64);
                h.max_fds = max_open_files();
            }
            _ => {}
        }
        h
    }
}

/// `ZooKeeperServer.getDirSize`: the sizes of the files under `dir`, recursively; 0 when it
/// does not exist.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The soft RLIMIT_NOFILE, from `/proc/self/limits` ("Max open files  <soft>  <hard>  files").
fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    Some(soft.parse().unwrap_or(u64::MAX))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `Environment.list` for a process that is not a JVM: the `java.*` properties it has no
/// value for print `<NA>`, as ZooKeeper prints a missing property; the `os.*` and `user.*`
/// ones are this process's. Memory: `total` is the resident set, `max` the memory limit
/// (the cgroup's, or the machine's), `free` what is left of it.
fn environment() -> Vec<(&'static str, String)> {
    let na = || "<NA>".to_string();
    let host = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(na);
    let os_name = read_trimmed("/proc/sys/kernel/ostype").unwrap_or_else(|| {
        match std::env::consts::OS {
            "linux" => "Linux",
            "macos" => "Mac OS X",
            "windows" => "Windows",
            other => other,
        }
        .to_string()
    });
    // Java's names for the architectures (`os.arch`).
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        other => other,
    }
    .to_string();
    let os_version = read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(na);
    let (user, home) = user_and_home();
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| na());
    let mib = 1024 * 1024;
    let total = proc_status_kb("VmRSS").map(|kb| kb * 1024).unwrap_or(0);
    let max = memory_limit().unwrap_or(total);
    vec![
        ("host.name", host),
        ("java.version", na()),
        ("java.vendor", na()),
        ("java.home", na()),
        ("java.class.path", na()),
        ("java.library.path", na()),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.compiler", na()),
        ("os.name", os_name),
        ("os.arch", arch),
        ("os.version", os_version),
        ("user.name", user.unwrap_or_else(na)),
        ("user.home", home.unwrap_or_else(na)),
        ("user.dir", cwd),
        (
            "os.memory.free",
            format!("{}MB", max.saturating_sub(total) / mib),
        ),
        ("os.memory.max", format!("{}MB", max / mib)),
        ("os.memory.total", format!("{}MB", total / mib)),
    ]
}

fn proc_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The cgroup v2 memory limit when there is one, otherwise the machine's memory.
fn memory_limit() -> Option<u64> {
    if let Some(v) = read_trimmed("/sys/fs/cgroup/memory.max").and_then(|s| s.parse().ok()) {
        return Some(v);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The user this process runs as and its home, as Java takes them from the password
/// database (`getpwuid(getuid())`), falling back to `$USER` and `$HOME`.
fn user_and_home() -> (Option<String>, Option<String>) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    if let (Some(uid), Ok(passwd)) = (uid, std::fs::read_to_string("/etc/passwd")) {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 6 && f[2] == uid {
                return (Some(f[0].to_owned()), Some(f[5].to_owned()));
            }
        }
    }
    (std::env::var("USER").ok(), std::env::var("HOME").ok())
}

/// A socket the driver holds: every accepted connection, whether it is still in its
/// handshake, has a session, or asked a four-letter word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub conn: ConnId,
    pub addr: SocketAddr,
    /// Wall-clock ms when it was accepted (`cons`' `est`).
    pub accepted_wall_ms: i64,
    /// Monotonic ms when it was accepted.
    pub accepted_mono_ms: u64,
    /// It sent a four-letter word: ZooKeeper shows it with interest ops 0 (the selection
    /// key is cancelled) and one packet received.
    pub four_letter: bool,
}

/// The four-letter machinery's own state: the trace mask `gtmk` reads and `stmk` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub trace_mask: i64,
}

impl Default for State {
    fn default() -> Self {
        State {
            trace_mask: DEFAULT_TRACE_MASK,
        }
    }
}

/// What the driver brings to a word besides the server: the settings, every socket it
/// holds, what the operating system said, and the time.
pub struct Driver<'a> {
    pub settings: &'a FourLetterSettings,
    /// Every open socket, in accept order.
    pub sockets: &'a [Socket],
    pub host: &'a Host,
    pub now: Clock,
}

/// Everything a word's text is made of.
pub struct View<'a> {
    pub server: &'a Server,
    pub settings: &'a FourLetterSettings,
    /// Every open socket, in accept order.
    pub sockets: &'a [Socket],
    pub host: &'a Host,
    pub now: Clock,
    pub trace_mask: i64,
}

/// Answers `word` on behalf of the core task: counts it as a received packet, refuses it if
/// the whitelist does not allow it, runs the resets of `crst`, `srst` and `stmk`, and counts
/// the packets the text will take. `None`: send nothing and close (`telnet close` when
/// enabled, `stmk` without its 8-byte mask), as ZooKeeper does.
///
/// `arg` is `stmk`'s mask, the big-endian long that follows the word.
pub fn answer(
    word: Word,
    arg: Option<i64>,
    server: &mut Server,
    driver: &Driver,
    state: &mut State,
) -> Option<String> {
    let settings = driver.settings;
    // `checkFourLetterWord` calls `packetReceived` before anything else, so the word
    // sees itself in `Received`.
    server.stats.packets_received += 1;
    let text = if !settings.enabled(word) {
        format!(
            "{} is not executed because it is not in the whitelist.\n",
            word.name()
        )
    } else {
        match word {
            Word::TelnetClose => return None,
            Word::Stmk => {
                state.trace_mask = arg?;
            }
            Word::Crst => server.reset_connection_stats(),
            Word::Srst => server.reset_stats(),
            _ => {}
        }
        let view = View {
            server,
            settings,
            sockets: driver.sockets,
            host: driver.host,
            now: driver.now,
            trace_mask: state.trace_mask,
        };
        render(word, &view)
    };
    server.stats.packets_sent += text.len().div_ceil(WRITE_CHUNK) as u64;
    Some(text)
}

/// What ZooKeeper's four-letter words say when the server takes no clients.
pub const ZK_NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The text of an enabled word.
pub fn render(word: Word, v: &View) -> String {
    match word {
        Word::Ruok => "imok".into(),
        // `ZK_NOT_SERVING`, as ZooKeeper's words print it when no ZooKeeperServer runs.
        // (mntr goes on reporting: an observer's sync progress is what one watches then.)
        Word::Srvr | Word::Stat if !v.server.serves_clients() => format!("{ZK_NOT_SERVING}\n"),
        Word::Srvr => srvr(v),
        Word::Stat => stat(v),
        Word::Cons => cons(v),
        Word::Crst => "Connection stats reset.\n".into(),
        Word::Srst => "Server stats reset.\n".into(),
        Word::Conf => conf(v),
        Word::Envi => envi(v),
        Word::Dirs => dirs(v),
        Word::Dump => dump(v),
        Word::Wchs => wchs(v),
        Word::Wchc => wchc(v),
        Word::Wchp => wchp(v),
        Word::Mntr => mntr(v),
        // A standalone server is never read-only; an observer may be.
        Word::Isro => v.server.isro().into(),
        Word::Gtmk | Word::Stmk => v.trace_mask.to_string(),
        Word::Hash => hash(v),
        Word::TelnetClose => String::new(),
    }
}

// ---- srvr, stat, cons ----

/// `Mode:` and `zk_server_state`.
fn mode(server: &Server) -> &'static str {
    match server.role() {
        crate::server::Role::Standalone => "standalone",
        crate::server::Role::Observer => "observer",
    }
}

/// `srvr`: `StatCommand` in brief, `ServerStats.toString` and the node count.
pub fn srvr(v: &View) -> String {
    let mut s = format!("Zookeeper version: {FULL_VERSION}\n");
    server_stats(v, &mut s);
    s
}

/// `stat`: as `srvr`, with a brief line per connection after the version.
pub fn stat(v: &View) -> String {
    let mut s = format!("Zookeeper version: {FULL_VERSION}\nClients:\n");
    for sock in v.sockets {
        connection_line(v, sock, true, &mut s);
        s.push('\n');
    }
    s.push('\n');
    server_stats(v, &mut s);
    s
}

fn server_stats(v: &View, s: &mut String) {
    let st = &v.server.stats;
    let _ = write!(
        s,
        "Latency min/avg/max: {}/{}/{}\n\
         Received: {}\n\
         Sent: {}\n\
         Connections: {}\n\
         Outstanding: {}\n\
         Zxid: 0x{:x}\n\
         Mode: {}\n\
         Node count: {}\n",
        st.latency.min(),
        java_double(st.latency.avg()),
        st.latency.max(),
        st.packets_received,
        st.packets_sent,
        v.sockets.len(),
        st.outstanding,
        v.server.tree().last_zxid(),
        mode(v.server),
        node_count(v.server),
    );
}

/// `DataTree.getNodeCount`: ZooKeeper keeps the root under both `""` and `"/"`, so it
/// counts one node more than there are.
fn node_count(server: &Server) -> usize {
    server.tree().node_count() + 1
}

/// `cons`: one full line per connection, then an empty line.
pub fn cons(v: &View) -> String {
    let mut s = String::new();
    for sock in v.sockets {
        connection_line(v, sock, false, &mut s);
        s.push('\n');
    }
    s.push('\n');
    s
}

/// `ServerCnxn.dumpConnectionInfo`.
fn connection_line(v: &View, sock: &Socket, brief: bool, s: &mut String) {
    let conn = v.server.connection(sock.conn).filter(|_| !sock.four_letter);
    // Interest ops: a connection being read is 1; a four-letter socket's key is cancelled.
    let (ops, queued, recved, sent) = match (&conn, sock.four_letter) {
        (Some(c), _) => (1, c.stats.queued, c.stats.recved, c.stats.sent),
        (None, true) => (0, 0, 1, 0),
        (None, false) => (1, 0, 0, 0),
    };
    let _ = write!(
        s,
        " {}[{ops}](queued={queued},recved={recved},sent={sent}",
        java_socket_addr(&sock.addr)
    );
    if let Some(c) = conn.filter(|c| !brief && c.session != 0) {
        let st = c.stats;
        let _ = write!(
            s,
            ",sid=0x{:x},lop={},est={},to={}",
            c.session, st.last_op, sock.accepted_wall_ms, c.timeout_ms
        );
        if st.last_cxid >= 0 {
            let _ = write!(s, ",lcxid=0x{:x}", st.last_cxid);
        }
        let _ = write!(
            s,
            ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            st.last_zxid,
            st.last_response_ms,
            st.last_latency,
            st.min_latency(),
            st.avg_latency(),
            st.max_latency()
        );
    }
    s.push(')');
}

/// Java's `InetSocketAddress.toString` for a resolved-less address: `/127.0.0.1:2181`,
/// `/[0:0:0:0:0:0:0:1]:2181` (uncompressed, as `Inet6Address.getHostAddress`).
fn java_socket_addr(a: &SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("/{ip}:{}", a.port()),
        IpAddr::V6(ip) => {
            let segs: Vec<String> = ip.segments().iter().map(|s| format!("{s:x}")).collect();
            format!("/[{}]:{}", segs.join(":"), a.port())
        }
    }
}

// ---- conf, envi, dirs ----

/// `ZooKeeperServer.dumpConf`.
pub fn conf(v: &View) -> String {
    let c = v.settings;
    format!(
        "clientPort={}\n\
         secureClientPort={}\n\
         dataDir={}\n\
         dataDirSize={}\n\
         dataLogDir={}\n\
         dataLogSize={}\n\
         tickTime={}\n\
         maxClientCnxns={}\n\
         minSessionTimeout={}\n\
         maxSessionTimeout={}\n\
         clientPortListenBacklog={}\n\
         serverId={}\n",
        c.client_port,
        c.secure_client_port,
        c.snap_dir.display(),
        v.host.data_dir_size,
        c.log_dir.display(),
        v.host.log_dir_size,
        c.tick_ms,
        c.max_client_cnxns,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
        c.listen_backlog,
        c.server_id,
    )
}

/// `Environment.list`.
pub fn envi(v: &View) -> String {
    let mut s = format!("Environment:\nzookeeper.version={FULL_VERSION}\n");
    for (k, val) in &v.host.environment {
        let _ = writeln!(s, "{k}={val}");
    }
    s
}

pub fn dirs(v: &View) -> String {
    format!(
        "datadir_size: {}\nlogdir_size: {}\n",
        v.host.data_dir_size, v.host.log_dir_size
    )
}

// ---- dump ----

/// `DumpCommand`: the session expiry queue, the ephemerals, the connection expiry queue.
pub fn dump(v: &View) -> String {
    let mut s = String::from("SessionTracker dump:\nSession ");
    let buckets: Vec<(u64, Vec<String>)> = v
        .server
        .sessions()
        .expiry_buckets()
        .map(|(t, ids)| {
            let mut ids: Vec<i64> = ids.collect();
            ids.sort_unstable();
            (t, ids.iter().map(|id| format!("0x{id:x}")).collect())
        })
        .collect();
    expiry_queue(v.now, &buckets, &mut s);

    s.push_str("ephemeral nodes dump:\n");
    let mut owners: Vec<i64> = v
        .server
        .tree()
        .sessions_with_ephemerals()
        .map(|(id, _)| id)
        .collect();
    owners.sort_unstable();
    let _ = writeln!(s, "Sessions with Ephemerals ({}):", owners.len());
    for id in owners {
        let _ = writeln!(s, "0x{id:x}:");
        for p in v.server.tree().ephemerals_of(id) {
            let _ = writeln!(s, "\t{p}");
        }
    }

    s.push_str("Connections dump:\nConnections ");
    let mut by_deadline: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for sock in v.sockets {
        let conn = v.server.connection(sock.conn).filter(|_| !sock.four_letter);
        // `touchCnxn`: the deadline moves with every read and write, by the negotiated
        // session timeout once there is one, by the sessionless timeout before.
        let (touched, timeout, session) = match conn {
            Some(c) => (
                c.stats.touched_ms.max(sock.accepted_mono_ms),
                if c.timeout_ms > 0 {
                    c.timeout_ms as u64
                } else {
                    SESSIONLESS_CNXN_TIMEOUT_MS
                },
                c.session,
            ),
            None => (sock.accepted_mono_ms, SESSIONLESS_CNXN_TIMEOUT_MS, 0),
        };
        let deadline = (touched + timeout) / SESSIONLESS_CNXN_TIMEOUT_MS
            * SESSIONLESS_CNXN_TIMEOUT_MS
            + SESSIONLESS_CNXN_TIMEOUT_MS;
        by_deadline.entry(deadline).or_default().push(format!(
            "ip: {} sessionId: 0x{session:x}",
            java_socket_addr(&sock.addr)
        ));
    }
    let buckets: Vec<(u64, Vec<String>)> = by_deadline.into_iter().collect();
    expiry_queue(v.now, &buckets, &mut s);
    s
}

/// `ExpiryQueue.dump`: `Sets (<buckets>)/(<elements>):`, then each bucket by time.
fn expiry_queue(now: Clock, buckets: &[(u64, Vec<String>)], s: &mut String) {
    let total: usize = buckets.iter().map(|(_, e)| e.len()).sum();
    let _ = writeln!(s, "Sets ({})/({}):", buckets.len(), total);
    for (t, elems) in buckets {
        // `Time.elapsedTimeToDate`: monotonic deadline → wall clock.
        let wall = now.wall_ms - now.mono_ms as i64 + *t as i64;
        let _ = writeln!(s, "{} expire at {}:", elems.len(), java_date(wall));
        for e in elems {
            let _ = writeln!(s, "\t{e}");
        }
    }
}

/// `java.util.Date.toString` (`EEE MMM dd HH:mm:ss zzz yyyy`) for a server in UTC.
pub fn java_date(epoch_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {y}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---- wchs, wchc, wchp, hash ----

/// `WatchManager.toString` of the data-watch table (child watches are not reported).
pub fn wchs(v: &View) -> String {
    let (conns, paths, total) = v.server.watches().data_watch_summary();
    format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
}

fn session_of(v: &View, conn: ConnId) -> i64 {
    v.server.connection(conn).map_or(0, |c| c.session)
}

/// `dumpWatches(byPath=false)` of the data-watch table, then an empty line.
pub fn wchc(v: &View) -> String {
    let mut s = String::new();
    for (conn, paths) in v.server.watches().data_watches_by_watcher() {
        let _ = writeln!(s, "0x{:x}", session_of(v, conn));
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s.push('\n');
    s
}

/// `dumpWatches(byPath=true)` of the data-watch table, then an empty line.
pub fn wchp(v: &View) -> String {
    let mut s = String::new();
    for (path, conns) in v.server.watches().data_watches_by_path() {
        let _ = writeln!(s, "{path}");
        for c in conns {
            let _ = writeln!(s, "\t0x{:x}", session_of(v, c));
        }
    }
    s.push('\n');
    s
}

/// `DigestCommand`: the tree digest at every 128th zxid, oldest first.
pub fn hash(v: &View) -> String {
    let mut s = String::new();
    for (zxid, digest) in v.server.digest_log() {
        let _ = writeln!(s, "{zxid:x}: {digest}");
    }
    s
}

// ---- mntr ----

/// `MonitorCommand`: `zk_<key>\t<value>` lines in ZooKeeper 3.8's order (registration order
/// through its ConcurrentHashMaps, verified against a 3.8.0 server).
///
/// Keys left out because what they measure does not exist in geokeeper: TLS and Netty
/// (`non_mtls_remote_conn_count`, `non_mtls_local_conn_count`, `outstanding_tls_handshake`,
/// `auth_failed_count`, `tls_handshake_exceeded`, `netty_queued_buffer_capacity`), the
/// connection throttle and request throttler (`connection_drop_probability`,
/// `connection_token_deficit`, `throttled_ops`, `stale_requests`, `stale_requests_dropped`,
/// `request_throttle_*`, `large_requests_rejected`), local sessions (`local_sessions`), the
/// AdminServer (`insecure_admin_count`), JVM pauses (`jvm_pause_time_ms`), ZooKeeper's
/// processor threads and their queues (`prep_processor_*`, `prep_process_time`,
/// `sync_processor_*`, `sync_process_time`, `*commit_proc*`, `*_in_session_queue`,
/// `session_queues_drained`, `pending_session_queue_size`, `*_final_proc_time_ms`,
/// `outstanding_changes_*`, `requests_not_forwarded_to_commit_processor`,
/// `skip_learner_request_to_next_processor_count`, `propagation_latency`,
/// `close_session_prep_time`, `time_waiting_empty_pool_in_commit_processor_read_ms`,
/// `write_batch_time_in_commit_processor`, `concurrent_request_processing_in_commit_processor`,
/// `cnxn_closed_without_zk_server_running`), the response caches
/// (`response_packet_*cache*`), the optimized watch manager (`dead_watchers_*`,
/// `add_dead_watcher_stall_time`), and everything a quorum has (`proposal_*`, `looking_count`,
/// `learner_*`, `ensemble_auth_*`, `diff_count`, `commit_count`, `revalidate_count`,
/// `connection_revalidate_count`, `quit_leading_due_to_disloyal_voter`, `election_time`,
/// `follower_sync_time`, `observer_sync_time`, `leader_unavailable_time`, `unavailable_time`,
/// `inflight_*`, `quorum_ack_latency`, `commit_propagation_latency`, `om_*`,
/// `*_write_committed_time_ms`, `unsuccessful_handshake`, `digest_mismatches_count`).
/// Left out until the numbers reach the core task: from the log and snapshot threads
/// (`fsynctime`, `sync_processor_batch_size`, `snapshottime`, `snap_count`, `dbinittime`,
/// `startup_*`), from the connection tasks (`bytes_received_count`) and the accept loop
/// (`connection_rejected`, `sessionless_connections_expired`); and the per-namespace
/// `read_per_namespace` / `write_per_namespace` summary sets (a map lookup per request).
/// `fsync_threshold_exceed_count` is not in 3.8's `mntr` at all (only the AdminServer's).
pub fn mntr(v: &View) -> String {
    let st = &v.server.stats;
    let tree = v.server.tree();
    let mut s = String::with_capacity(4096);
    let mut line = |k: &str, val: &dyn std::fmt::Display| {
        let _ = writeln!(s, "zk_{k}\t{val}");
    };
    line("version", &FULL_VERSION);
    line("server_state", &mode(v.server));
    // Gauges.
    line("ephemerals_count", &tree.ephemeral_count());
    line("num_alive_connections", &v.sockets.len());
    line("avg_latency", &java_double(st.latency.avg()));
    line("outstanding_requests", &st.outstanding);
    line("znode_count", &node_count(v.server));
    line("global_sessions", &v.server.sessions().len());
    line("last_client_response_size", &st.response_size.last);
    line("packets_sent", &st.packets_sent);
    line("packets_received", &st.packets_received);
    line("max_client_response_size", &st.response_size.max);
    line("watch_count", &v.server.watches().count());
    line("min_latency", &st.latency.min());
    if let Some(n) = v.host.max_fds {
        line("max_file_descriptor_count", &n);
    }
    line("approximate_data_size", &tree.approximate_data_size());
    if let Some(n) = v.host.open_fds {
        line("open_file_descriptor_count", &n);
    }
    line(
        "uptime",
        &v.now.mono_ms.saturating_sub(v.server.started_ms()),
    );
    line("max_latency", &st.latency.max());
    line("min_client_response_size", &st.response_size.min);
    // An observer's link (geokeeper's own keys, and ZooKeeper's digest counter).
    if let Some(o) = v.server.observer_view() {
        let sync = o.sync.as_ref();
        line("observer_synced", &u8::from(o.serving));
        line("observer_leader", &sync.map_or("", |s| s.leader.as_str()));
        line("observer_epoch", &sync.map_or(0, |s| s.epoch));
        line(
            "observer_last_zxid",
            &format_args!("0x{:x}", tree.last_zxid()),
        );
        line(
            "observer_leader_zxid",
            &format_args!("0x{:x}", o.leader_zxid),
        );
        line("observer_lag_txns", &o.lag_txns);
        line("observer_lag_ms", &o.lag_ms);
        line("observer_sync_type", &sync.map_or("", |s| s.kind));
        line("observer_sync_time_ms", &sync.map_or(0, |s| s.duration_ms));
        line("observer_forwarded_requests", &o.forwarded);
        line("digest_mismatches_count", &o.digest_mismatches);
    }
    if let Some(extra) = &v.settings.extra_mntr {
        for (k, val) in (extra.0)() {
            line(&k, &val);
        }
    }
    // Gauge sets: quotas.
    let quotas = quota_gauges(v.server);
    for (set, pick) in [
        ("quota_bytes_limit_per_namespace", 1),
        ("quota_count_usage_per_namespace", 2),
        ("quota_count_limit_per_namespace", 0),
        ("quota_bytes_usage_per_namespace", 3),
    ] {
        for (ns, vals) in &quotas {
            if let Some(x) = vals[pick] {
                line(&format!("{ns}_{set}"), &x);
            }
        }
    }
    // Counters.
    line("watch_bytes", &st.watch_bytes);
    line("connection_drop_count", &st.connection_drops);
    line("connection_request_count", &st.connection_requests);
    line("response_bytes", &st.response_bytes);
    line("stale_sessions_expired", &st.sessions_expired);
    // Basic summaries.
    let w = &v.server.watches().trigger_counts;
    let mut summary = |name: &str, x: &Summary, percentiles: Option<[i64; 4]>| {
        line(&format!("avg_{name}"), &java_double(x.avg()));
        line(&format!("min_{name}"), &x.min());
        line(&format!("max_{name}"), &x.max());
        line(&format!("cnt_{name}"), &x.count());
        line(&format!("sum_{name}"), &x.sum());
        if let Some([p50, p95, p99, p999]) = percentiles {
            line(&format!("p50_{name}"), &p50);
            line(&format!("p95_{name}"), &p95);
            line(&format!("p99_{name}"), &p99);
            line(&format!("p999_{name}"), &p999);
        }
    };
    summary("node_created_watch_count", &w.created, None);
    summary("node_deleted_watch_count", &w.deleted, None);
    summary("node_children_watch_count", &w.children, None);
    summary("node_changed_watch_count", &w.changed, None);
    // Advanced summaries.
    summary(
        "updatelatency",
        st.update_latency.summary(),
        Some(st.update_latency.percentiles()),
    );
    summary(
        "readlatency",
        st.read_latency.summary(),
        Some(st.read_latency.percentiles()),
    );
    s
}

/// Per namespace, `[count limit, bytes limit, count usage, bytes usage]`
/// (`QuotaMetricsUtils`): every `zookeeper_limits` and `zookeeper_stats` node under
/// `/zookeeper/quota`, the namespace being the first component after that prefix; limits
/// take the hard limit when set, the soft one otherwise; several quotas in one namespace add up.
fn quota_gauges(server: &Server) -> Vec<(String, [Option<i64>; 4])> {
    const QUOTA_ROOT: &str = "/zookeeper/quota";
    let tree = server.tree();
    let mut out: Vec<(String, [Option<i64>; 4])> = Vec::new();
    let mut stack = vec![QUOTA_ROOT.to_string()];
    while let Some(path) = stack.pop() {
        let Some(node) = tree.get(&path) else {
            continue;
        };
        if node.child_count() > 0 {
            for c in node.children() {
                stack.push(format!("{path}/{c}"));
            }
            continue;
        }
        let limits = path.ends_with("/zookeeper_limits");
        if !limits && !path.ends_with("/zookeeper_stats") {
            continue;
        }
        let Some(ns) = path[QUOTA_ROOT.len()..]
            .split('/')
            .nth(1)
            .filter(|ns| !ns.is_empty())
        else {
            continue;
        };
        let Some(data) = node.data.as_ref() else {
            continue;
        };
        let t = StatsTrack::parse(data);
        let pick = |hard: &str, soft: &str| {
            let h = t.get(hard);
            if h > -1 {
                h
            } else {
                t.get(soft)
            }
        };
        let i = match out.iter().position(|(n, _)| n == ns) {
            Some(i) => i,
            None => {
                out.push((ns.to_owned(), [None; 4]));
                out.len() - 1
            }
        };
        let vals = &mut out[i].1;
        let mut add = |k: usize, x: i64| vals[k] = Some(vals[k].unwrap_or(0) + x);
        if limits {
            add(0, pick("countHardLimit", "count"));
            add(1, pick("byteHardLimit", "bytes"));
        } else {
            add(2, t.get("count"));
            add(3, t.get("bytes"));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Settings;
    use crate::tree::DataTree;
    use std::net::Ipv4Addr;

    const NOW: Clock = Clock {
        mono_ms: 5_000,
        // Mon Nov 23 19:58:21 UTC 2026
        wall_ms: 1_795_463_901_000,
    };

    fn all_words() -> FourLetterSettings {
        let mut s = FourLetterSettings::default();
        s.set_whitelist(|_| true);
        s
    }

    fn sock(conn: ConnId, port: u16, four_letter: bool) -> Socket {
        Socket {
            conn,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            accepted_wall_ms: NOW.wall_ms,
            accepted_mono_ms: NOW.mono_ms,
            four_letter,
        }
    }

    fn ask(word: Word, server: &mut Server, settings: &FourLetterSettings) -> Option<String> {
        let sockets = [sock(7, 41000, true)];
        let driver = Driver {
            settings,
            sockets: &sockets,
            host: &Host::default(),
            now: NOW,
        };
        answer(word, None, server, &driver, &mut State::default())
    }

    fn server() -> Server {
        Server::new(Settings::default(), DataTree::new(), Clock::default())
    }

    #[test]
    fn words_are_the_exact_lowercase_bytes_3_8_knows() {
        assert_eq!(Word::from_bytes(*b"ruok"), Some(Word::Ruok));
        assert_eq!(Word::from_bytes(*b"RUOK"), None);
        assert_eq!(Word::from_bytes(*b"reqs"), None, "not a 3.8 word");
        assert_eq!(Word::from_bytes(*b"kill"), None, "not a 3.8 word");
        assert_eq!(
            Word::from_bytes([0xff, 0xf4, 0xff, 0xfd]),
            Some(Word::TelnetClose)
        );
        for w in Word::ALL {
            if w != Word::TelnetClose {
                let b: [u8; 4] = w.name().as_bytes().try_into().unwrap();
                assert_eq!(Word::from_bytes(b), Some(w));
            }
        }
    }

    #[test]
    fn the_default_whitelist_allows_srvr_only_and_refuses_with_zookeepers_text() {
        let settings = FourLetterSettings::default();
        let mut s = server();
        assert_eq!(
            ask(Word::Ruok, &mut s, &settings).unwrap(),
            "ruok is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(
            ask(Word::TelnetClose, &mut s, &settings).unwrap(),
            "telnet close is not executed because it is not in the whitelist.\n"
        );
        let srvr = ask(Word::Srvr, &mut s, &settings).unwrap();
        assert!(
            srvr.starts_with("Zookeeper version: 3.8.4-geokeeper-"),
            "{srvr}"
        );
        // Each word counts as received before it is answered, and as one packet sent.
        assert!(srvr.contains("\nReceived: 3\nSent: 2\n"), "{srvr}");
    }

    #[test]
    fn srvr_on_a_fresh_server_has_zookeepers_lines() {
        let mut s = server();
        let text = ask(Word::Srvr, &mut s, &all_words()).unwrap();
        let body = text.split_once('\n').unwrap().1;
        assert_eq!(
            body,
            "Latency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\nConnections: 1\n\
             Outstanding: 0\nZxid: 0x0\nMode: standalone\nNode count: 5\n"
        );
    }

    #[test]
    fn stat_and_cons_list_the_asking_socket_as_zookeeper_does() {
        let mut s = server();
        let stat = ask(Word::Stat, &mut s, &all_words()).unwrap();
        assert!(
            stat.contains("\nClients:\n /127.0.0.1:41000[0](queued=0,recved=1,sent=0)\n\nLatency"),
            "{stat}"
        );
        let cons = ask(Word::Cons, &mut s, &all_words()).unwrap();
        assert_eq!(cons, " /127.0.0.1:41000[0](queued=0,recved=1,sent=0)\n\n");
    }

    #[test]
    fn small_words() {
        let mut s = server();
        let all = all_words();
        assert_eq!(ask(Word::Ruok, &mut s, &all).unwrap(), "imok");
        assert_eq!(ask(Word::Isro, &mut s, &all).unwrap(), "rw");
        assert_eq!(ask(Word::Gtmk, &mut s, &all).unwrap(), "306");
        assert_eq!(ask(Word::Hash, &mut s, &all).unwrap(), "");
        assert_eq!(
            ask(Word::Wchs, &mut s, &all).unwrap(),
            "0 connections watching 0 paths\nTotal watches:0\n"
        );
        assert_eq!(ask(Word::Wchc, &mut s, &all).unwrap(), "\n");
        assert_eq!(ask(Word::Wchp, &mut s, &all).unwrap(), "\n");
        assert_eq!(
            ask(Word::Crst, &mut s, &all).unwrap(),
            "Connection stats reset.\n"
        );
        assert_eq!(ask(Word::TelnetClose, &mut s, &all), None);
        assert_eq!(ask(Word::Stmk, &mut s, &all), None, "no mask: closed");
    }

    #[test]
    fn srst_resets_the_counters_before_its_own_answer_is_counted() {
        let mut s = server();
        let all = all_words();
        ask(Word::Ruok, &mut s, &all);
        assert_eq!(
            ask(Word::Srst, &mut s, &all).unwrap(),
            "Server stats reset.\n"
        );
        let srvr = ask(Word::Srvr, &mut s, &all).unwrap();
        assert!(srvr.contains("\nReceived: 1\nSent: 1\n"), "{srvr}");
    }

    #[test]
    fn stmk_sets_the_mask_gtmk_reads() {
        let mut s = server();
        let all = all_words();
        let mut state = State::default();
        let sockets = [sock(1, 1, true)];
        let driver = Driver {
            settings: &all,
            sockets: &sockets,
            host: &Host::default(),
            now: NOW,
        };
        let t = answer(Word::Stmk, Some(4), &mut s, &driver, &mut state);
        assert_eq!(t.as_deref(), Some("4"));
        let t = answer(Word::Gtmk, None, &mut s, &driver, &mut state);
        assert_eq!(t.as_deref(), Some("4"));
    }

    #[test]
    fn mntr_starts_as_zookeepers_and_counts_the_root_twice() {
        let mut s = server();
        let text = ask(Word::Mntr, &mut s, &all_words()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("zk_version\t3.8.4-geokeeper-"));
        assert_eq!(lines[1], "zk_server_state\tstandalone");
        assert!(lines.contains(&"zk_znode_count\t5"));
        assert!(lines.contains(&"zk_approximate_data_size\t44"));
        assert!(lines.contains(&"zk_last_client_response_size\t-1"));
        assert!(lines.contains(&"zk_p999_readlatency\t0"));
        assert!(lines
            .iter()
            .all(|l| l.starts_with("zk_") && l.contains('\t')));
    }

    #[test]
    fn mntr_reports_quotas_per_namespace_in_zookeepers_set_order() {
        use crate::tree::NodeStat;
        let mut t = DataTree::new();
        let node = |t: &mut DataTree, p: &str, d: &str| {
            t.restore_node(p, Some(d.as_bytes()), -1, NodeStat::default())
        };
        node(&mut t, "/zookeeper/quota/h", "");
        node(
            &mut t,
            "/zookeeper/quota/h/zookeeper_limits",
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2",
        );
        node(
            &mut t,
            "/zookeeper/quota/h/zookeeper_stats",
            "count=3,bytes=7",
        );
        node(&mut t, "/zookeeper/quota/q", "");
        node(
            &mut t,
            "/zookeeper/quota/q/zookeeper_limits",
            "count=2,bytes=10=;byteHardLimit=-1;countHardLimit=-1",
        );
        node(
            &mut t,
            "/zookeeper/quota/q/zookeeper_stats",
            "count=4,bytes=0",
        );
        let s = Server::new(Settings::default(), t, Clock::default());
        let settings = all_words();
        let host = Host::default();
        let v = View {
            server: &s,
            settings: &settings,
            sockets: &[],
            host: &host,
            now: NOW,
            trace_mask: DEFAULT_TRACE_MASK,
        };
        let text = mntr(&v);
        let quota: Vec<&str> = text.lines().filter(|l| l.contains("_quota_")).collect();
        assert_eq!(
            quota,
            [
                "zk_h_quota_bytes_limit_per_namespace\t-1",
                "zk_q_quota_bytes_limit_per_namespace\t10",
                "zk_h_quota_count_usage_per_namespace\t3",
                "zk_q_quota_count_usage_per_namespace\t4",
                "zk_h_quota_count_limit_per_namespace\t2",
                "zk_q_quota_count_limit_per_namespace\t2",
                "zk_h_quota_bytes_usage_per_namespace\t7",
                "zk_q_quota_bytes_usage_per_namespace\t0",
            ]
        );
        // Gauge sets come right after the gauges.
        let after = text
            .split("zk_min_client_response_size\t-1\n")
            .nth(1)
            .unwrap();
        assert!(after.starts_with("zk_h_quota_bytes_limit_per_namespace"));
    }

    #[test]
    fn conf_and_dirs_keep_zookeepers_order() {
        let settings = FourLetterSettings {
            client_port: 2181,
            snap_dir: "/d/version-2".into(),
            log_dir: "/l/version-2".into(),
            tick_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            ..all_words()
        };
        let s = server();
        let host = Host {
            data_dir_size: 457,
            log_dir_size: 12,
            ..Host::default()
        };
        let v = View {
            server: &s,
            settings: &settings,
            sockets: &[],
            host: &host,
            now: NOW,
            trace_mask: DEFAULT_TRACE_MASK,
        };
        assert_eq!(
            conf(&v),
            "clientPort=2181\nsecureClientPort=-1\ndataDir=/d/version-2\ndataDirSize=457\n\
             dataLogDir=/l/version-2\ndataLogSize=12\ntickTime=2000\nmaxClientCnxns=60\n\
             minSessionTimeout=4000\nmaxSessionTimeout=40000\nclientPortListenBacklog=-1\n\
             serverId=0\n"
        );
        assert_eq!(dirs(&v), "datadir_size: 457\nlogdir_size: 12\n");
    }

    #[test]
    fn dump_of_an_idle_server_lists_the_asking_socket() {
        let s = server();
        let sockets = [sock(3, 49010, true)];
        let settings = all_words();
        let host = Host::default();
        let v = View {
            server: &s,
            settings: &settings,
            sockets: &sockets,
            host: &host,
            now: NOW,
            trace_mask: DEFAULT_TRACE_MASK,
        };
        // Accepted at mono 5000: 5000 + 10000 rounds to the next interval, 20000
        // (`ExpiryQueue.roundToNextInterval`), 15 s after NOW.
        assert_eq!(
            dump(&v),
            "SessionTracker dump:\nSession Sets (0)/(0):\nephemeral nodes dump:\n\
             Sessions with Ephemerals (0):\nConnections dump:\nConnections Sets (1)/(1):\n\
             1 expire at Mon Nov 23 19:58:36 UTC 2026:\n\tip: /127.0.0.1:49010 sessionId: 0x0\n"
        );
    }

    #[test]
    fn dates_print_as_java_util_date_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(1_795_464_100_339), "Mon Nov 23 20:01:40 UTC 2026");
    }

    #[test]
    fn ipv6_addresses_print_uncompressed_in_brackets() {
        let a: SocketAddr = "[::1]:2181".parse().unwrap();
        assert_eq!(java_socket_addr(&a), "/[0:0:0:0:0:0:0:1]:2181");
    }
}
