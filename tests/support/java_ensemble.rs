//! A real Apache ZooKeeper 3.8 ensemble for end-to-end tests: N participants started with
//! `java -cp … QuorumPeerMain`, each on its own 127.0.0.x address with its client,
//! quorum (learner) and election ports, small heaps, and a `myid` in its data directory.
//! `start` returns once every member serves and one of them leads.
//!
//! [`JavaEnsemble::start_in_rooms`] lays the members out over rooms joined by a WAN: each
//! member's zoo.cfg names the peers of other rooms at delaying TCP forwarders
//! ([`TcpCut::start_delayed`]) in front of their quorum and election ports, so that the
//! learners' traffic with a leader of another room crosses the delay; the forwarders in
//! front of the client ports are there for clients of other rooms
//! ([`JavaEnsemble::client_from`]). One path is not delayed: ZooKeeper's election keeps
//! only connections opened by the higher server id, and when a lower id connects first the
//! higher one connects back to the address the lower one announces, its own, direct
//! (`QuorumCnxManager.handleConnection`); election messages of such a pair skip the delay.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::java_zk::{
    four_letter_within, free_loopback_addr, free_port_on, keep_logs, zk_classpath, JVM_FLAGS,
};
use super::tcp_cut::TcpCut;

/// The answer of `srvr` (and most words) from a server that takes no clients: a leader
/// with `leaderServes=no`, a server out of its quorum.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

pub struct Member {
    pub id: u64,
    /// A Java observer (`peerType=observer`, `:observer` on its line) rather than a
    /// participant.
    pub observer: bool,
    pub client: SocketAddr,
    /// The learner port (`server.N=host:QUORUM:election`): the leader listens here.
    pub quorum: SocketAddr,
    pub election: SocketAddr,
    /// Its room, in an ensemble laid out over rooms.
    pub room: Option<String>,
    /// Its `server.N` lines as it sees its peers (those of other rooms at their
    /// forwarders); `None`: the ensemble's `server_lines`.
    peer_lines: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

/// The one-way delay between two rooms.
pub type OneWay = dyn Fn(&str, &str) -> Duration;

/// A member's ports as another room reaches them: delaying forwarders to its client,
/// quorum and election ports (the last two on one address, as a `server.N` line wants).
pub struct RoomLink {
    pub member: usize,
    /// The room on the other side.
    pub from: String,
    pub client: TcpCut,
    pub quorum: TcpCut,
    pub election: TcpCut,
}

pub struct JavaEnsemble {
    pub members: Vec<Member>,
    /// Holds every member's configuration, data and logs.
    _base: tempfile::TempDir,
    /// The `server.N` lines, as a gateway's zoo.cfg would copy them.
    pub server_lines: String,
    /// JVM flags after the harness's own (a larger -Xmx, say).
    jvm_extra: Vec<String>,
    /// The WAN between rooms (empty unless started in rooms).
    pub links: Vec<RoomLink>,
}

impl JavaEnsemble {
    /// Starts `n` participants (tickTime 500 ms, initLimit 20, syncLimit 10, no fsync per
    /// commit: the tests kill processes, never the machine, and right after a fresh
    /// build the disk's writeback made one Java commit wait over 10 s in CI runs) with
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
        Self::start_inner(ips.len(), 0, extra_cfg, &[], Some(ips), None)
    }

    /// One participant per entry of `rooms` (its room), each with `jvm_extra` flags; the
    /// traffic between members of rooms `a` and `b` is delayed by `delay(a, b)` each way.
    pub fn start_in_rooms(
        rooms: &[&str],
        delay: &OneWay,
        extra_cfg: &str,
        jvm_extra: &[&str],
    ) -> JavaEnsemble {
        Self::start_inner(
            rooms.len(),
            0,
            extra_cfg,
            jvm_extra,
            None,
            Some((rooms, delay)),
        )
    }

    /// Member `i`'s client address as clients in `room` reach it: its own in its room,
    /// else the forwarder from `room`.
    pub fn client_from(&self, i: usize, room: &str) -> SocketAddr {
        match self.members[i].room.as_deref() {
            None => self.members[i].client,
            Some(r) if r == room => self.members[i].client,
            Some(_) => {
                self.links
                    .iter()
                    .find(|l| l.member == i && l.from == room)
                    .expect("a link from that room")
                    .client
                    .addr
            }
        }
    }

    /// Bytes the quorum and election forwarders carried between rooms, both ways.
    pub fn quorum_bytes_between_rooms(&self) -> u64 {
        self.links
            .iter()
            .flat_map(|l| [l.quorum.bytes(), l.election.bytes()])
            .map(|(a, b)| a + b)
            .sum()
    }

    /// [`JavaEnsemble::start_with_observers`], each JVM with `jvm_extra` flags too.
    pub fn start_with_jvm_flags(
        n: usize,
        observers: usize,
        extra_cfg: &str,
        jvm_extra: &[&str],
    ) -> JavaEnsemble {
        Self::start_inner(n, observers, extra_cfg, jvm_extra, None, None)
    }

    fn start_inner(
        n: usize,
        observers: usize,
        extra_cfg: &str,
        jvm_extra: &[&str],
        ips: Option<&[String]>,
        rooms: Option<(&[&str], &OneWay)>,
    ) -> JavaEnsemble {
        let base = tempfile::Builder::new()
            .prefix("javaensemble-")
            .disable_cleanup(keep_logs())
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
                room: None,
                peer_lines: None,
                dir: base.path().join(format!("zk{}", i + 1)),
                child: None,
            });
        }
        let line = |m: &Member, quorum: SocketAddr, election: SocketAddr| {
            format!(
                "server.{}={}:{}:{}{}\n",
                m.id,
                quorum.ip(),
                quorum.port(),
                election.port(),
                if m.observer { ":observer" } else { "" }
            )
        };
        let server_lines: String = members
            .iter()
            .map(|m| line(m, m.quorum, m.election))
            .collect();
        let mut links = Vec::new();
        if let Some((rooms, delay)) = rooms {
            for (m, r) in members.iter_mut().zip(rooms) {
                m.room = Some(r.to_string());
            }
            let mut names: Vec<&str> = rooms.to_vec();
            names.sort_unstable();
            names.dedup();
            for (i, m) in members.iter().enumerate() {
                for from in names.iter().filter(|r| **r != rooms[i]) {
                    let d = delay(from, rooms[i]);
                    let ip = match free_loopback_addr().ip() {
                        std::net::IpAddr::V4(ip) => ip,
                        _ => unreachable!("loopback v4"),
                    };
                    let on = |ip: Ipv4Addr| SocketAddr::new(ip.into(), free_port_on(ip));
                    links.push(RoomLink {
                        member: i,
                        from: from.to_string(),
                        client: TcpCut::start_delayed(m.client, d),
                        // A follower may connect before a new leader listens: it must
                        // see its connection wait, not close (see `start_patient_on`).
                        quorum: TcpCut::start_patient_on(
                            on(ip),
                            m.quorum,
                            d,
                            Duration::from_secs(5),
                        ),
                        election: TcpCut::start_delayed_on(on(ip), m.election, d),
                    });
                }
            }
            for i in 0..members.len() {
                let lines: String = members
                    .iter()
                    .enumerate()
                    .map(|(j, m)| {
                        match links.iter().find(|l| l.member == j && l.from == rooms[i]) {
                            Some(l) => line(m, l.quorum.addr, l.election.addr),
                            None => line(m, m.quorum, m.election),
                        }
                    })
                    .collect();
                members[i].peer_lines = Some(lines);
            }
        }
        let mut e = JavaEnsemble {
            members,
            _base: base,
            server_lines,
            jvm_extra: jvm_extra.iter().map(|s| s.to_string()).collect(),
            links,
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
            "{}tickTime=500\ninitLimit=20\nsyncLimit=10\nforceSync=no\ndataDir={}\nclientPort={}\n\
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
            m.peer_lines.as_ref().unwrap_or(&self.server_lines),
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

    /// Index of the member that leads now (one with `leaderServes=no` included).
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.is_up(i)
                && (self.mode(i).as_deref() == Some("leader") || self.leads_without_serving(i))
        })
    }

    /// Whether member `i` leads but takes no clients (`leaderServes=no`): its `srvr` says it
    /// is not serving, and its log's last state change is to leading in the broadcast
    /// phase (ZooKeeper's words give no mode for a server that does not serve).
    pub fn leads_without_serving(&self, i: usize) -> bool {
        let not_serving =
            four_letter_within(self.members[i].client, "srvr", Duration::from_secs(1))
                .is_ok_and(|a| a.trim_end() == NOT_SERVING);
        not_serving
            && self
                .peer_state(i)
                .is_some_and(|s| s.starts_with("leading") && s.contains("broadcast"))
    }

    /// Member `i`'s last state change in its log (`QuorumPeer`'s "Peer state changed:
    /// following - broadcast", say).
    pub fn peer_state(&self, i: usize) -> Option<String> {
        let log = fs::read_to_string(self.members[i].dir.join("zookeeper.log")).ok()?;
        log.lines()
            .rev()
            .find_map(|l| l.split_once("Peer state changed: "))
            .map(|(_, s)| s.trim().to_string())
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Waits until every running member serves and one leads (with `leaderServes=no`:
    /// every running member but the leader serves).
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
            let quiet: Vec<usize> = up.clone().filter(|&i| modes[i].is_none()).collect();
            if let [l] = quiet[..] {
                if modes
                    .iter()
                    .flatten()
                    .all(|m| m == "follower" || m == "observer")
                    && self.leads_without_serving(l)
                {
                    return;
                }
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
        // A test that failed with an ensemble running says what its servers last logged
        // (sessions expired, a leader given up, connections closed); kept logs end with
        // each JVM's threads (SIGQUIT: a thread dump in its stdout.log).
        if std::thread::panicking() {
            for i in 0..self.members.len() {
                eprintln!(
                    "--- zk{} (last 40 lines) ---\n{}",
                    i + 1,
                    self.log_tail(i, 40)
                );
            }
            if keep_logs() {
                for c in self.members.iter().filter_map(|m| m.child.as_ref()) {
                    let _ = Command::new("kill")
                        .args(["-QUIT", &c.id().to_string()])
                        .status();
                }
                sleep(Duration::from_secs(1));
            }
        }
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
