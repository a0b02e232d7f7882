//! Starts real `geokeeper` processes for end-to-end tests, each on its own 127.0.0.x
//! address and port, with a zoo.cfg in a temporary directory.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::java_zk::{free_loopback_addr, keep_logs};
use super::rawzk::RawZk;

/// A session id no server hands out (server id 0x7f, counter 1): resuming it is refused.
const PROBE_SESSION: i64 = 0x7f00_0000_0000_0001;

pub struct Geokeeper {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_geokeeper"))
}

/// Starts geokeeper on `data_dir` with `extra_cfg`, expecting a configuration error: the
/// process must exit with code 2 (as ZooKeeper's "Invalid arguments, exiting abnormally").
/// Returns its log; panics if it started or ended any other way.
pub fn refused_start(data_dir: &Path, extra_cfg: &str) -> String {
    match Geokeeper::try_start_on(data_dir, extra_cfg) {
        Ok(gk) => panic!("{extra_cfg}: geokeeper started:\n{}", gk.log()),
        Err((StartError::Exited(code), log)) => {
            assert_eq!(code, Some(2), "{extra_cfg}: exit code\n{log}");
            log
        }
        Err((e, log)) => panic!("{extra_cfg}: {e:?}\n{log}"),
    }
}

/// A process's resident memory now (`VmRSS`) and at its peak (`VmHWM`), in KiB.
pub fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Runs `geokeeper ARGS` (a tool subcommand) to its end: (exit code, stdout, stderr).
pub fn gk_tool(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("GEOKEEPER_LOG", "warn")
        .output()
        .expect("run geokeeper");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Geokeeper {
    /// Starts a server with `tickTime=2000` plus `extra_cfg` lines (zoo.cfg dialect), on a
    /// fresh 127.0.0.x address.
    pub fn start(extra_cfg: &str) -> Geokeeper {
        let mut last = String::new();
        for _ in 0..5 {
            // A failure is most likely the port taken between picking and binding.
            match Geokeeper::try_start_at(free_loopback_addr(), extra_cfg) {
                Ok(gk) => return gk,
                Err(log) => last = log,
            }
        }
        panic!("geokeeper did not start; last log:\n{last}");
    }

    /// Starts a server on a given data directory (an existing ZooKeeper or geokeeper data
    /// directory, or a new one), with `extra_cfg` lines (zoo.cfg dialect; `tickTime=2000`
    /// unless they set it). zoo.cfg and geokeeper.log live in the server's own temp dir, so
    /// the data directory outlives the server and [`Geokeeper::restart`] reuses both.
    /// Returns once the server answers `srvr` (the directory is restored); panics with its
    /// log if it exits instead.
    pub fn start_on(data_dir: &Path, extra_cfg: &str) -> Geokeeper {
        for _ in 0..5 {
            let addr = free_loopback_addr();
            let dir = tempfile::tempdir().expect("tempdir");
            let tick = if extra_cfg
                .lines()
                .any(|l| l.trim_start().starts_with("tickTime"))
            {
                ""
            } else {
                "tickTime=2000\n"
            };
            let cfg = format!(
                "{tick}dataDir={}\nclientPort={}\nclientPortAddress={}\n{}\n",
                data_dir.display(),
                addr.port(),
                addr.ip(),
                extra_cfg
            );
            std::fs::write(dir.path().join("zoo.cfg"), cfg).expect("write zoo.cfg");
            let mut gk = Geokeeper {
                addr,
                dir,
                child: None,
            };
            gk.spawn_appending_log();
            if gk.wait_serving(Duration::from_secs(20)) {
                return gk;
            }
            let log = gk.log();
            gk.kill();
            if !log.contains("cannot listen") {
                panic!("geokeeper on {} did not start:\n{log}", data_dir.display());
            }
            // The port was taken between picking and binding: try another.
        }
        panic!("geokeeper did not start");
    }

    /// SIGKILL, then the same zoo.cfg again: same address, same data directory. The log
    /// file keeps both runs.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_appending_log();
        if !self.wait_serving(Duration::from_secs(20)) {
            panic!("geokeeper did not restart:\n{}", self.log());
        }
    }

    /// Starts the process on `dir/zoo.cfg`, appending its stderr to `dir/geokeeper.log`.
    fn spawn_appending_log(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("geokeeper.log"))
            .expect("log file");
        let child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("zoo.cfg"))
            .env("GEOKEEPER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn geokeeper");
        self.child = Some(child);
    }

    /// Whether the server answers a session handshake within `within`: it binds its port
    /// before it restores the data directory, so accepting a connection is not enough. The
    /// probe asks to resume a session that cannot exist, which the server refuses without
    /// writing a transaction.
    fn wait_serving(&mut self, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return false;
                }
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
                && RawZk::connect(self.addr, PROBE_SESSION, &[0; 16], 0, 30000).is_ok()
            {
                return true;
            }
            // A gateway takes no session until it has synced with its leader; it is up
            // once it answers srvr, as an observer or as not serving yet.
            if super::java_zk::try_four_letter(self.addr, "srvr").is_ok_and(|s| {
                s.contains("Mode: observer") || s.contains("not currently serving requests")
            }) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts a server listening on `addr` (any address, e.g. `[::1]:port`), with
    /// `tickTime=2000` plus `extra_cfg`. If it did not come up (the port was taken, or it
    /// refused its configuration), its log.
    pub fn try_start_at(addr: SocketAddr, extra_cfg: &str) -> Result<Geokeeper, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nclientPortAddress={}\n{}\n",
            dir.path().join("data").display(),
            addr.port(),
            addr.ip(),
            extra_cfg
        );
        let cfg_path = dir.path().join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
        let log = std::fs::File::create(dir.path().join("geokeeper.log")).expect("log file");
        let child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&cfg_path)
            .env("GEOKEEPER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn geokeeper");
        let mut gk = Geokeeper {
            addr,
            dir,
            child: Some(child),
        };
        if gk.wait_listening(Duration::from_secs(10)) {
            Ok(gk)
        } else {
            gk.kill();
            Err(gk.log())
        }
    }

    fn wait_listening(&mut self, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return false;
                }
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("geokeeper.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILL, then wait.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Geokeeper {
    fn drop(&mut self) {
        self.kill();
        // A failed test keeps its servers' logs when asked to (see `keep_logs`).
        if std::thread::panicking() && keep_logs() {
            let keep = std::env::temp_dir().join(format!(
                "geokeeper-log-{}-{}.log",
                self.addr.ip(),
                self.addr.port()
            ));
            let _ = std::fs::write(keep, self.log());
        }
    }
}

/// Why [`Geokeeper::try_restart`] did not reach the point of serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The process exited first, with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// Still running but not answering a session handshake.
    NotServing,
}

impl Geokeeper {
    /// [`Geokeeper::restart`] for a start that may fail (a damaged data directory): SIGKILL,
    /// the same zoo.cfg again, and `Err` with the exit code if the process exits instead of
    /// serving within `within`.
    pub fn try_restart(&mut self, within: Duration) -> Result<(), StartError> {
        self.kill();
        self.spawn_appending_log();
        if self.wait_serving(within) {
            return Ok(());
        }
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => {
                self.child = None;
                Err(StartError::Exited(st.code()))
            }
            _ => Err(StartError::NotServing),
        }
    }

    /// [`Geokeeper::start_on`] for a data directory the server may refuse: `Err` with why
    /// it did not come up and its log.
    pub fn try_start_on(
        data_dir: &Path,
        extra_cfg: &str,
    ) -> Result<Geokeeper, (StartError, String)> {
        for _ in 0..5 {
            let addr = free_loopback_addr();
            let dir = tempfile::tempdir().expect("tempdir");
            let tick = if extra_cfg
                .lines()
                .any(|l| l.trim_start().starts_with("tickTime"))
            {
                ""
            } else {
                "tickTime=2000\n"
            };
            let cfg = format!(
                "{tick}dataDir={}\nclientPort={}\nclientPortAddress={}\n{}\n",
                data_dir.display(),
                addr.port(),
                addr.ip(),
                extra_cfg
            );
            std::fs::write(dir.path().join("zoo.cfg"), cfg).expect("write zoo.cfg");
            let mut gk = Geokeeper {
                addr,
                dir,
                child: None,
            };
            match gk.try_restart(Duration::from_secs(20)) {
                Ok(()) => return Ok(gk),
                Err(e) => {
                    gk.kill();
                    let log = gk.log();
                    if log.contains("cannot listen") {
                        // The port was taken between picking and binding: try another.
                        continue;
                    }
                    return Err((e, log));
                }
            }
        }
        panic!("geokeeper did not start");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}
