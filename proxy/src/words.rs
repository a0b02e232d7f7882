//! The proxy's own four-letter words: `ruok`, `srvr`, `stat`, `mntr`, `cons` describe the
//! proxy and its upstreams (in ZooKeeper's layouts, `Mode: proxy`); `isro` says `rw`.
//! Other words are refused as a server refuses words off its whitelist.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use geokeeper_core::four_letter::Word;

use crate::state::{Health, Shared};

/// The version string, as a server's: the ZooKeeper version matched, then geokeeper's.
fn version() -> String {
    format!("3.8.4-geokeeper-{} proxy", env!("CARGO_PKG_VERSION"))
}

pub(crate) fn answer(shared: &Shared, word: Word) -> String {
    match word {
        Word::Ruok => "imok".into(),
        Word::Isro => "rw".into(),
        Word::Srvr => srvr(shared),
        Word::Stat => {
            let mut s = String::from("Zookeeper version: ");
            s.push_str(&version());
            s.push_str("\nClients:\n");
            for c in shared.connections() {
                let _ = writeln!(
                    s,
                    " /{}[1](queued=0,recved={},sent={})",
                    c.peer, c.received, c.sent
                );
            }
            s.push('\n');
            s.push_str(srvr(shared).split_once('\n').map_or("", |(_, rest)| rest));
            s
        }
        Word::Mntr => mntr(shared),
        Word::Cons => {
            let ups = shared.upstreams();
            let mut s = String::new();
            for c in shared.connections() {
                let up = c
                    .upstream
                    .and_then(|i| ups.get(i))
                    .map_or("-", |u| u.entry.address.as_str());
                let _ = writeln!(
                    s,
                    " /{}[1](queued=0,recved={},sent={},sid={:#x},upstream={up})",
                    c.peer, c.received, c.sent, c.session
                );
            }
            s.push('\n');
            s
        }
        other => format!(
            "{} is not executed because it is not in the whitelist.\n",
            other.name()
        ),
    }
}

fn srvr(shared: &Shared) -> String {
    let ups = shared.upstreams();
    let healthy = ups.iter().filter(|u| u.eligible).count();
    let leader = ups
        .iter()
        .find(|u| matches!(&u.health, Health::Serving { mode, .. } if mode == "leader" || mode == "standalone"))
        .map_or("unknown", |u| u.entry.address.as_str());
    format!(
        "Zookeeper version: {}\nLatency min/avg/max: 0/0.0/0\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: {:#x}\nMode: proxy\nNode count: 0\nRoom: {}\nUpstreams: {} ({} healthy)\nLeader: {}\n",
        version(),
        shared.received.load(Ordering::Relaxed),
        shared.sent.load(Ordering::Relaxed),
        shared.connections().len(),
        shared.outstanding.load(Ordering::Relaxed),
        shared.reference_zxid(),
        shared.cfg.room,
        ups.len(),
        healthy,
        leader,
    )
}

fn mntr(shared: &Shared) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(s, "zk_{k}\t{v}");
    };
    line("version", &version());
    line("server_state", &"proxy");
    line("proxy_room", &shared.cfg.room);
    line("num_alive_connections", &shared.connections().len());
    line(
        "outstanding_requests",
        &shared.outstanding.load(Ordering::Relaxed),
    );
    for (key, counter) in [
        ("packets_received", &shared.received),
        ("packets_sent", &shared.sent),
        ("proxy_connections_refused", &shared.refused_cnxns),
        ("proxy_sessions_reattached", &shared.reattached),
        ("proxy_sessions_reattach_failed", &shared.reattach_failed),
        ("proxy_sessions_moved_home", &shared.moved_home),
    ] {
        line(key, &counter.load(Ordering::Relaxed));
    }
    line("proxy_uptime_ms", &shared.started.elapsed().as_millis());
    let ups = shared.upstreams();
    line(
        "proxy_sessions_placed",
        &ups.iter().map(|u| u.placed).sum::<u64>(),
    );
    line("proxy_upstreams", &ups.len());
    line(
        "proxy_upstreams_healthy",
        &ups.iter().filter(|u| u.eligible).count(),
    );
    for (i, u) in ups.iter().enumerate() {
        let p = format!("proxy_upstream_{i}_");
        line(&format!("{p}address"), &u.entry.address);
        line(&format!("{p}room"), &u.entry.room.as_deref().unwrap_or(""));
        line(&format!("{p}weight"), &u.entry.weight);
        line(&format!("{p}sessions"), &u.sessions);
        line(&format!("{p}placed"), &u.placed);
        line(&format!("{p}healthy"), &u8::from(u.eligible));
        let (state, mode, zxid, lag) = match &u.health {
            Health::Unknown => ("unknown", "", 0, 0),
            Health::Down(_) => ("down", "", 0, 0),
            Health::NotServing => ("not_serving", "", 0, 0),
            Health::Serving { mode, zxid, lag_ms } => ("serving", mode.as_str(), *zxid, *lag_ms),
        };
        line(&format!("{p}state"), &state);
        line(&format!("{p}mode"), &mode);
        line(&format!("{p}zxid"), &format_args!("{zxid:#x}"));
        line(&format!("{p}lag_ms"), &lag);
    }
    s
}
