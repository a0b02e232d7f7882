//! Starts real `geokeeper` processes for end-to-end tests, each on its own 127.0.0.x
//! address and port, with a zoo.cfg in a temporary directory.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::java_zk::free_loopback_addr;

pub struct Geokeeper {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_geokeeper"))
}

impl Geokeeper {
    /// Starts a server with `tickTime=2000` plus `extra_cfg` lines (zoo.cfg dialect).
    pub fn start(extra_cfg: &str) -> Geokeeper {
        for _ in 0..5 {
            let addr = free_loopback_addr();
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
                return gk;
            }
            // Most likely the port was taken between picking and binding: try another.
            gk.kill();
        }
        panic!("geokeeper did not start");
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
    }
}
