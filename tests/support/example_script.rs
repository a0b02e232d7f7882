//! Runs one of the examples' deployment scripts (`examples/two-rooms/run.sh`,
//! `examples/three-rooms/run.sh`) as the README's walk-throughs do: in a loopback block of
//! its own (127.X.Y.10 and up) and ports below the ephemeral range, so that it runs beside
//! the other tests; its `name=host:port` lines parsed; SIGINT as the terminal's Ctrl-C; and
//! what it left behind found by the work directory and the loopback block.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";
/// From SIGINT to the script's exit, every child stopped.
pub const STOP: Duration = Duration::from_secs(15);

/// The wan_link example beside the geokeeper binary. A whole `cargo test` builds the
/// examples; `cargo test --test example_two_rooms` does not, so it is built here then.
pub fn wan_link() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let gk = PathBuf::from(env!("CARGO_BIN_EXE_geokeeper"));
    let profile_dir = gk.parent().expect("the binary's directory");
    let bin = profile_dir.join("examples").join("wan_link");
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.exists() {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "--example", "wan_link"]);
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let target = profile_dir.parent().expect("the target directory");
        let status = cargo
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --example wan_link: {status}");
    }
    bin
}

/// A deployment script running, and what it printed.
pub struct Deployment {
    child: Child,
    pub endpoints: BTreeMap<String, SocketAddr>,
    /// Holds `--dir` (configurations, data, logs, pid files: the script keeps it; the test
    /// removes it) and the script's stderr.
    work: tempfile::TempDir,
    stderr: PathBuf,
    /// The loopback block's prefix (`127.X.Y.`): every address the script uses.
    prefix: String,
}

impl Deployment {
    /// Starts `script` with `args` and waits (up to `within`) for exactly the `want`
    /// endpoints' `name=host:port` lines.
    pub fn start(script: &str, args: &[&str], want: &[&str], within: Duration) -> Deployment {
        let (x, y) = (rand::random_range(1..=254u8), rand::random::<u8>());
        let prefix = format!("127.{x}.{y}.");
        // Client ports N, relay N+9, the WAN's links N+100.., quorum N+707, election
        // N+1707: all below 32768, where nothing else binds by chance.
        let port = rand::random_range(10_000..30_000u16);
        let work = tempfile::tempdir().expect("tempdir");
        let stderr = work.path().join("run.stderr");
        // A process started in the background by a non-interactive shell inherits SIGINT
        // ignored, and bash cannot trap a signal ignored on entry: restore the default so
        // that the test's SIGINT is the terminal's Ctrl-C wherever the tests run from.
        let mut cmd = Command::new("env");
        cmd.args(["--default-signal=INT", "bash", script])
            .args([
                "--base-ip",
                &format!("{prefix}10"),
                "--port",
                &port.to_string(),
            ])
            .arg("--dir")
            .arg(work.path().join("run"))
            .args(args)
            .env("GEOKEEPER_BIN", env!("CARGO_BIN_EXE_geokeeper"))
            .env("WAN_LINK_BIN", wan_link())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let mut child = cmd.spawn().expect("run the script");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Deployment {
            child,
            endpoints: BTreeMap::new(),
            work,
            stderr,
            prefix,
        };
        let deadline = Instant::now() + within;
        while !want.iter().all(|n| t.endpoints.contains_key(*n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let (name, addr) = line
                        .split_once('=')
                        .unwrap_or_else(|| panic!("not name=host:port: {line:?}"));
                    let addr = addr
                        .parse()
                        .unwrap_or_else(|_| panic!("not host:port: {line:?}"));
                    t.endpoints.insert(name.to_owned(), addr);
                }
                Err(e) => panic!(
                    "the script did not print its endpoints ({e}); got {:?}\n{}",
                    t.endpoints,
                    t.stderr()
                ),
            }
        }
        assert_eq!(t.endpoints.len(), want.len(), "{:?}", t.endpoints);
        t
    }

    pub fn endpoint(&self, name: &str) -> SocketAddr {
        self.endpoints[name]
    }

    /// The script's `--dir`.
    pub fn dir(&self) -> PathBuf {
        self.work.path().join("run")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Processes whose command line names the work directory or the loopback block:
    /// what the script started and left behind.
    pub fn leftovers(&self) -> Vec<String> {
        let dir = self.work.path().display().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(&dir) || cmdline.contains(&self.prefix) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        found
    }

    /// Ctrl-C: the script stops everything it started and exits 0; no endpoint serves
    /// and no process is left.
    pub fn ctrl_c_stops_everything(&mut self) {
        self.signal("INT");
        let status = self.wait_exit(STOP).unwrap_or_else(|| {
            panic!(
                "the script did not exit within {STOP:?} of SIGINT\n{}",
                self.stderr()
            )
        });
        assert_eq!(status.code(), Some(0), "exit status\n{}", self.stderr());
        for (name, addr) in &self.endpoints {
            assert!(
                !serves(*addr),
                "{name} at {addr} still serves after the stop"
            );
        }
        assert_eq!(
            self.leftovers(),
            Vec::<String>::new(),
            "processes left behind"
        );
    }
}

impl Drop for Deployment {
    /// A failed test still stops the deployment: SIGTERM lets the script stop its
    /// children; SIGKILL only if it does not.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
            if self.wait_exit(STOP).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// zkCli.sh as the README runs it: one command per run.
pub fn zkcli(addr: SocketAddr, command: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg(ZKCLI)
        .arg("-server")
        .arg(addr.to_string())
        .args(command)
        .stdin(Stdio::null())
        .output()
        .expect("run zkCli.sh (apt-get install zookeeper)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Something accepts connections at `addr`.
pub fn serves(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

pub fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
