//! `examples/two-rooms/run.sh` end to end, as the README's walk-through uses it: the script
//! brings up room A (a geokeeper leader, or with `--zk` an Apache ZooKeeper 3.8 ensemble and
//! a gateway) and room B (observer b1 following room A through a 25 ms WAN link, b2
//! following b1), prints its endpoints once they serve, and stops everything it started on
//! Ctrl-C. A write through b2 (with zkCli) is the leader's, seen by b1; a write at the
//! leader reaches b2; a write through b2 takes at least one WAN round trip.
//!
//! Each run takes a loopback block of its own (127.X.Y.10 and up) and ports below the
//! ephemeral range, so it runs beside the other tests.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::relay::{create, get, session, set_data, sync};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-rooms/run.sh");
const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";
/// The script's default one-way WAN delay.
const WAN_ONE_WAY: Duration = Duration::from_millis(25);
/// Three JVMs, a gateway and two observers starting on a busy 2-core machine.
const START: Duration = Duration::from_secs(180);
/// From SIGINT to the script's exit, every child stopped.
const STOP: Duration = Duration::from_secs(15);

/// The wan_link example beside the geokeeper binary. A whole `cargo test` builds the
/// examples; `cargo test --test example_two_rooms` does not, so it is built here then.
fn wan_link() -> PathBuf {
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

/// The script running, and what it printed.
struct TwoRooms {
    child: Child,
    endpoints: BTreeMap<String, SocketAddr>,
    /// `--dir`: configurations, data and logs (the script keeps it; the test removes it).
    work: tempfile::TempDir,
    stderr: PathBuf,
    /// The loopback block's prefix (`127.X.Y.`): every address the script uses.
    prefix: String,
}

impl TwoRooms {
    /// Starts the script and waits for its `name=host:port` lines.
    fn start(zk: bool) -> TwoRooms {
        let (x, y) = (rand::random_range(1..=254u8), rand::random::<u8>());
        let prefix = format!("127.{x}.{y}.");
        // Client ports N, relay N+9, quorum N+707, election N+1707: all below 32768,
        // where nothing else binds by chance.
        let port = rand::random_range(10_000..30_000u16);
        let work = tempfile::tempdir().expect("tempdir");
        let stderr = work.path().join("run.stderr");
        // A process started in the background by a non-interactive shell inherits SIGINT
        // ignored, and bash cannot trap a signal ignored on entry: restore the default so
        // that the test's SIGINT is the terminal's Ctrl-C wherever the tests run from.
        let mut cmd = Command::new("env");
        cmd.args(["--default-signal=INT", "bash", SCRIPT])
            .args([
                "--base-ip",
                &format!("{prefix}10"),
                "--port",
                &port.to_string(),
            ])
            .arg("--dir")
            .arg(work.path().join("run"))
            .env("GEOKEEPER_BIN", env!("CARGO_BIN_EXE_geokeeper"))
            .env("WAN_LINK_BIN", wan_link())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if zk {
            cmd.arg("--zk");
        }
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
        let mut t = TwoRooms {
            child,
            endpoints: BTreeMap::new(),
            work,
            stderr,
            prefix,
        };
        let mut want = vec!["leader", "observer-b1", "observer-b2"];
        if zk {
            want.extend(["zk-1", "zk-2", "zk-3", "gateway"]);
        }
        let deadline = Instant::now() + START;
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

    fn endpoint(&self, name: &str) -> SocketAddr {
        self.endpoints[name]
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
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
    fn leftovers(&self) -> Vec<String> {
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
}

impl Drop for TwoRooms {
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
fn zkcli(addr: SocketAddr, command: &[&str]) -> String {
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

fn serves(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The walk-through: writes both ways between the rooms, the WAN in the write path, and
/// a clean stop on SIGINT.
fn writes_cross_the_rooms_and_ctrl_c_stops_everything(zk: bool) {
    let mut t = TwoRooms::start(zk);
    let (leader, b1, b2) = (
        t.endpoint("leader"),
        t.endpoint("observer-b1"),
        t.endpoint("observer-b2"),
    );

    // zkCli creates a znode through b2: the write climbs b2 -> b1 -> WAN -> room A.
    let out = zkcli(b2, &["create", "/two-rooms", "from-b2"]);
    assert!(
        out.contains("Created /two-rooms"),
        "zkCli through b2:\n{out}"
    );
    let mut l = session(leader);
    assert_eq!(sync(&mut l, "/"), 0);
    assert_eq!(get(&mut l, "/two-rooms").1, b"from-b2", "at the leader");
    let out = zkcli(leader, &["get", "/two-rooms"]);
    assert!(
        out.lines().any(|line| line == "from-b2"),
        "zkCli at the leader:\n{out}"
    );
    let mut z1 = session(b1);
    assert_eq!(sync(&mut z1, "/two-rooms"), 0);
    assert_eq!(get(&mut z1, "/two-rooms").1, b"from-b2", "at b1");

    // A write at the leader comes down to b2 by itself (no sync).
    assert_eq!(set_data(&mut l, "/two-rooms", b"from-leader").0, 0);
    let mut z2 = session(b2);
    wait_until(
        Duration::from_secs(10),
        "b2 sees the leader's write",
        || get(&mut z2, "/two-rooms").1 == b"from-leader",
    );

    // Each write through b2 is answered once its transaction is back from room A: at
    // least one WAN round trip.
    let mut fastest = Duration::MAX;
    for i in 0..5 {
        let started = Instant::now();
        let (err, _) = create(&mut z2, &format!("/two-rooms-{i}"), b"x", 0);
        assert_eq!(err, 0, "create through b2");
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest >= 2 * WAN_ONE_WAY,
        "a write through b2 took {fastest:?}, less than a WAN round trip"
    );
    drop((l, z1, z2));

    // Ctrl-C: the script stops everything and exits 0.
    t.signal("INT");
    let status = t.wait_exit(STOP).unwrap_or_else(|| {
        panic!(
            "the script did not exit within {STOP:?} of SIGINT\n{}",
            t.stderr()
        )
    });
    assert_eq!(status.code(), Some(0), "exit status\n{}", t.stderr());
    for (name, addr) in &t.endpoints {
        assert!(
            !serves(*addr),
            "{name} at {addr} still serves after the stop"
        );
    }
    assert_eq!(t.leftovers(), Vec::<String>::new(), "processes left behind");
}

#[test]
fn two_rooms_with_a_geokeeper_leader() {
    writes_cross_the_rooms_and_ctrl_c_stops_everything(false);
}

#[test]
fn two_rooms_with_a_zookeeper_ensemble_and_a_gateway() {
    writes_cross_the_rooms_and_ctrl_c_stops_everything(true);
}
