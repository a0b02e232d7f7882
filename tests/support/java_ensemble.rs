//! A real Apache ZooKeeper 3.8 ensemble for end-to-end tests: N participants started with
//! `java -cp … QuorumPeerMain`, each on its own 127.0.0.x address with its client,
//! quorum (learner) and election ports, small heaps, and a `myid` in its data directory.
//! `start` returns once every member serves and one of them leads.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::java_zk::{four_letter_within, free_loopback_addr, zk_classpath, JVM_FLAGS};

pub struct Member {
    pub id: u64,
    /// A Java observer (`peerType=observer`, `:observer` on its line) rather than a
    /// participant.
    pub observer: bool,
    pub client: SocketAddr,
    /// The learner port (`server.N=host:QUORUM:election`): the leader listens here.
    pub quorum: SocketAddr,
    pub election: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

pub struct JavaEnsemble {
    pub members: Vec<Member>,
    /// Holds every member's configuration, data and logs.
    _base: tempfile::TempDir,
    /// The `server.N` lines, as a gateway's zoo.cfg would copy them.
    pub server_lines: String,
    /// JVM flags after the harness's own (a larger -Xmx, say).
    jvm_extra: Vec<String>,
}

/// A free port on `ip` besides those already taken.
fn free_port_on(ip: Ipv4Addr) -> u16 {
    let l = TcpListener::bind(SocketAddrV4::new(ip, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

impl JavaEnsemble {
    /// Starts `n` participants (tickTime 500 ms, initLimit 20, syncLimit 10) with
    /// `extra_cfg` lines, and waits until they serve with a leader.
    pub fn start(n: usize, extra_cfg: &str) -> JavaEnsemble {
        Self::start_with_observers(n, 0, extra_cfg)
    }

    /// `n` participants and `observers` Java observers (the last members).
    pub fn start_with_observers(n: usize, observers: usize, extra_cfg: &str) -> JavaEnsemble {
        Self::start_with_jvm_flags(n, observers, extra_cfg, &[])
    }

    /// `n` loopback addresses for the members of an ensemble to come (to name them in
    /// certificates before it starts).
    pub fn server_addresses(n: usize) -> Vec<String> {
        (0..n)
            .map(|_| free_loopback_addr().ip().to_string())
            .collect()
    }

    /// `ips.len()` participants on these addresses.
    pub fn start_on_addresses(ips: &[String], extra_cfg: &str) -> JavaEnsemble {
        Self::start_inner(ips.len(), 0, extra_cfg, &[], Some(ips))
    }

    /// [`JavaEnsemble::start_with_observers`], each JVM with `jvm_extra` flags too.
    pub fn start_with_jvm_flags(
        n: usize,
        observers: usize,
        extra_cfg: &str,
        jvm_extra: &[&str],
    ) -> JavaEnsemble {
        Self::start_inner(n, observers, extra_cfg, jvm_extra, None)
    }

    fn start_inner(
        n: usize,
        observers: usize,
        extra_cfg: &str,
        jvm_extra: &[&str],
        ips: Option<&[String]>,
    ) -> JavaEnsemble {
        let base = tempfile::Builder::new()
            .prefix("javaensemble-")
            .disable_cleanup(std::env::var_os("GEOKEEPER_KEEP_JAVA_LOGS").is_some())
            .tempdir()
            .expect("tempdir");
        let mut members = Vec::new();
        for i in 0..n + observers {
            let client = match ips.and_then(|v| v.get(i)) {
                Some(ip) => {
                    let ip: Ipv4Addr = ip.parse().expect("an IPv4 loopback address");
                    SocketAddr::new(ip.into(), free_port_on(ip))
                }
                None => free_loopback_addr(),
            };
            let ip = match client.ip() {
                std::net::IpAddr::V4(ip) => ip,
                _ => unreachable!("loopback v4"),
            };
            members.push(Member {
                id: i as u64 + 1,
                observer: i >= n,
                client,
                quorum: SocketAddr::new(ip.into(), free_port_on(ip)),
                election: SocketAddr::new(ip.into(), free_port_on(ip)),
                dir: base.path().join(format!("zk{}", i + 1)),
                child: None,
            });
        }
        let server_lines: String = members
            .iter()
            .map(|m| {
                format!(
                    "server.{}={}:{}:{}{}\n",
                    m.id,
                    m.quorum.ip(),
                    m.quorum.port(),
                    m.election.port(),
                    if m.observer { ":observer" } else { "" }
                )
            })
            .collect();
        let mut e = JavaEnsemble {
            members,
            _base: base,
            server_lines,
            jvm_extra: jvm_extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n + observers {
            e.write_config(i, extra_cfg);
            e.launch(i);
        }
        e.wait_serving(Duration::from_secs(90));
        e
    }

    fn write_config(&self, i: usize, extra_cfg: &str) {
        let m = &self.members[i];
        let data = m.dir.join("data");
        fs::create_dir_all(&data).expect("mkdir data");
        fs::write(data.join("myid"), format!("{}\n", m.id)).expect("myid");
        let cfg = format!(
            "{}tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={}\n\
             clientPortAddress={}\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
             {}{}\n",
            if m.observer {
                "peerType=observer\n"
            } else {
                ""
            },
            data.display(),
            m.client.port(),
            m.client.ip(),
            self.server_lines,
            // `{id}` stands for the member's id (its own key store, say).
            extra_cfg.trim().replace("{id}", &m.id.to_string())
        );
        fs::write(m.dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
    }

    fn launch(&mut self, i: usize) {
        let m = &mut self.members[i];
        let out = fs::File::create(m.dir.join("stdout.log")).expect("stdout.log");
        let err = out.try_clone().expect("clone");
        let child = Command::new("java")
            .args(JVM_FLAGS)
            .args(&self.jvm_extra)
            .arg(format!("-Dzookeeper.log.dir={}", m.dir.display()))
            .arg("-Dzookeeper.log.file=zookeeper.log")
            .arg("-Dzookeeper.root.logger=INFO, FILE")
            .arg("-Dzookeeper.jmx.log4j.disable=true")
            .arg("-cp")
            .arg(zk_classpath())
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(m.dir.join("zoo.cfg"))
            .current_dir(&m.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn java (is a JRE installed?)");
        m.child = Some(child);
    }

    /// `srvr`'s Mode line of member `i` (`leader`, `follower`, …), if it answers.
    pub fn mode(&self, i: usize) -> Option<String> {
        let srvr =
            four_letter_within(self.members[i].client, "srvr", Duration::from_secs(1)).ok()?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// Index of the member that leads now.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len())
            .find(|&i| self.is_up(i) && self.mode(i).as_deref() == Some("leader"))
    }

    fn is_up(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Waits until every running member serves and one leads.
    pub fn wait_serving(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let modes: Vec<Option<String>> = (0..self.members.len())
                .map(|i| self.is_up(i).then(|| self.mode(i)).flatten())
                .collect();
            let up = (0..self.members.len()).filter(|&i| self.is_up(i));
            let serving = up.clone().all(|i| modes[i].is_some());
            if serving && modes.iter().any(|m| m.as_deref() == Some("leader")) {
                return;
            }
            if Instant::now() > deadline {
                let logs: String = (0..self.members.len())
                    .map(|i| format!("--- zk{} ---\n{}\n", i + 1, self.log_tail(i, 30)))
                    .collect();
                panic!("ensemble not serving within {within:?}: {modes:?}\n{logs}");
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.launch(i);
    }

    /// The client connect string of every member.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn log_tail(&self, i: usize, n: usize) -> String {
        let read =
            |name: &str| fs::read_to_string(self.members[i].dir.join(name)).unwrap_or_default();
        let log = format!("{}{}", read("zookeeper.log"), read("stdout.log"));
        // The harness's own srvr probes say nothing.
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("Processing srvr command"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for JavaEnsemble {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
