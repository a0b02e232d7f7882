//! Shared helpers for end-to-end tests: real geokeeper and Apache ZooKeeper processes and
//! the reference clients (zkCli, cli_mt, kazoo), and network trouble between them
//! (tcp_cut, wan).
#![allow(dead_code)]

pub mod certs;
pub mod example_script;
pub mod gateway;
pub mod gk;
pub mod history;
pub mod java_ensemble;
pub mod java_zk;
pub mod proxy;
pub mod rawzk;
pub mod relay;
pub mod tcp_cut;
pub mod wan;
pub mod zkc;

/// Where Apache ZooKeeper's data directories go: memory (/dev/shm) when the machine has
/// it. The tests kill Java processes, never the machine, so the page cache is as durable
/// for them as a disk; and a Java server writing its log on a disk busy with a fresh
/// build's writeback can stall for seconds, which the tests would take for its answers
/// being lost.
pub fn java_scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let writable = shm.is_dir()
        && tempfile::Builder::new()
            .prefix("geokeeper-probe-")
            .tempfile_in(shm)
            .is_ok();
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
