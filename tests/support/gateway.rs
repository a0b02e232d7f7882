//! Helpers for the gateway's end-to-end tests: a geokeeper gateway following a
//! [`JavaEnsemble`], its `mntr`, and small client calls.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;

use super::gk::Geokeeper;
use super::java_ensemble::JavaEnsemble;
use super::java_zk::four_letter;
use super::rawzk::{decode_body, Body, RawZk};

pub fn session(addr: SocketAddr) -> RawZk {
    let z = RawZk::connect(addr, 0, &[0; 16], 0, 30_000).expect("connect");
    assert!(z.response.time_out > 0, "session refused by {addr}");
    z
}

/// A geokeeper gateway following `e`: `peerType=observer`, the ensemble's own
/// `server.N` lines plus its own `:observer` line (the ensemble's need not list it),
/// and `myid` in its data directory.
pub fn start_gateway(e: &JavaEnsemble, id: u64, data: &std::path::Path, extra: &str) -> Geokeeper {
    std::fs::create_dir_all(data).expect("data dir");
    std::fs::write(data.join("myid"), format!("{id}\n")).expect("myid");
    let cfg = format!(
        "tickTime=500\ninitLimit=20\nsyncLimit=10\npeerType=observer\n4lw.commands.whitelist=*\n{}server.{id}=127.0.0.1:1:2:observer\n{extra}\n",
        e.server_lines
    );
    Geokeeper::start_on(data, &cfg)
}

pub fn mntr(addr: SocketAddr) -> BTreeMap<String, String> {
    four_letter(addr, "mntr")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Waits until the gateway says it is in sync, and returns its mntr.
pub fn wait_synced(gk: &Geokeeper, within: Duration) -> BTreeMap<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let m = mntr(gk.addr);
        if m.get("zk_observer_synced").map(String::as_str) == Some("1") {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not sync within {within:?}: {m:?}\n{}",
            gk.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn stat_of(z: &mut RawZk, path: &str) -> Option<Stat> {
    let f = z
        .call(
            OpCode::Exists,
            &Request::Exists(ExistsRequest {
                path: path.into(),
                watch: false,
            }),
        )
        .reply
        .expect("reply");
    match decode_body(OpCode::Exists as i32, &f.body) {
        Body::Stat(s) if f.header.err == 0 => Some(s),
        _ => None,
    }
}
