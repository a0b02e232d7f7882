//! Starts real `geokeeper proxy` processes for end-to-end tests: a geokeeper.toml with a
//! `[proxy]` section in a temporary directory, on a fresh 127.0.0.x address.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::gk::binary;
use super::java_zk::{four_letter_within, free_loopback_addr};

pub struct Proxy {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// One upstream of a proxy's list, in the TOML table form.
pub fn upstream(addr: SocketAddr, room: &str, weight: u32) -> String {
    format!("{{ address = \"{addr}\", room = \"{room}\", weight = {weight} }}")
}

impl Proxy {
    /// A proxy for `room` in front of `upstreams` (TOML items, see [`upstream`]), with
    /// `extra` lines added to its `[proxy]` section; returns once it answers `ruok`.
    pub fn start(room: &str, upstreams: &[String], extra: &str) -> Proxy {
        Self::start_with(room, upstreams, extra, "max_client_cnxns = 0\n")
    }

    /// [`Proxy::start`] with the `[limits]` section's lines.
    pub fn start_with(room: &str, upstreams: &[String], extra: &str, limits: &str) -> Proxy {
        let addr = free_loopback_addr();
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            "[server]\nclient_port = {}\nclient_address = \"{}\"\nroom = \"{room}\"\ndata_dir = \"{}\"\n\n[limits]\n{limits}\n[proxy]\nprobe_ms = 100\nupstreams = [\n  {}\n]\n{extra}\n",
            addr.port(),
            addr.ip(),
            dir.path().display(),
            upstreams.join(",\n  ")
        );
        std::fs::write(dir.path().join("proxy.toml"), toml).expect("write proxy.toml");
        let mut p = Proxy {
            addr,
            dir,
            child: None,
        };
        p.spawn();
        let t = Instant::now();
        while four_letter_within(addr, "ruok", Duration::from_secs(1))
            .ok()
            .as_deref()
            != Some("imok")
        {
            if let Some(c) = p.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("the proxy exited ({status}):\n{}", p.log());
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the proxy did not start:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("proxy.log"))
            .expect("log file");
        let child = Command::new(binary())
            .arg("proxy")
            .arg("--config")
            .arg(self.dir.path().join("proxy.toml"))
            // GEOKEEPER_PROXY_LOG=debug, say, to follow each connection's end.
            .env(
                "GEOKEEPER_LOG",
                std::env::var("GEOKEEPER_PROXY_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn geokeeper proxy");
        self.child = Some(child);
    }

    /// The proxy process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// The proxy's `mntr`, as a map.
    pub fn mntr(&self) -> BTreeMap<String, String> {
        four_letter_within(self.addr, "mntr", Duration::from_secs(5))
            .expect("mntr")
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Waits until `n` upstreams are healthy.
    pub fn wait_healthy(&self, n: usize, within: Duration) {
        let t = Instant::now();
        loop {
            let m = self.mntr();
            if m["zk_proxy_upstreams_healthy"].parse::<usize>().ok() == Some(n) {
                return;
            }
            assert!(
                t.elapsed() < within,
                "{n} healthy upstreams expected: {m:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
