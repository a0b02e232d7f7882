//! A WAN between rooms on one machine: the test support code's user-space forwarders
//! (`tests/support/wan.rs` for UDP, so QUIC, with delay, jitter and loss;
//! `tests/support/tcp_cut.rs` for TCP, with a fixed delay) run as a process of their own,
//! for the examples' deployment scripts and the benchmarks. The kernel here has no netem.
//!
//! ```text
//! cargo build --release --example wan_link
//! target/release/examples/wan_link udp,listen=127.0.0.1:7001,to=127.0.0.1:7000,delay=25 \
//!                                  tcp,listen=127.0.0.1:3001,to=127.0.0.1:3000,delay=25
//! ```
//!
//! Each argument is one link: `udp` or `tcp`, then `listen=ADDR`, `to=ADDR`, `delay=MS`
//! (one-way, each direction), and for UDP `jitter=MS` and `loss=P` (0 to 1) optionally, and
//! `seed=N`. It prints `link udp 127.0.0.1:7001 -> 127.0.0.1:7000 ...` once every link
//! listens, then forwards until killed; with `--stats SECS` it prints each link's bytes
//! every SECS seconds (a line per link: `stats udp LISTEN to_target=B to_client=B`).

#[path = "../tests/support/tcp_cut.rs"]
mod tcp_cut;
#[path = "../tests/support/wan.rs"]
mod wan;

/// What `tcp_cut` takes from the Java helpers, which this example does not need whole.
mod java_zk {
    use std::net::{SocketAddr, TcpListener};

    pub fn free_loopback_addr() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
    }
}

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tcp_cut::TcpCut;
use wan::{LinkSpec, UdpWan};

enum Link {
    Udp(UdpWan),
    Tcp(TcpCut),
}

struct Spec {
    udp: bool,
    listen: SocketAddr,
    to: SocketAddr,
    delay_ms: u64,
    jitter_ms: u64,
    loss: f64,
    seed: u64,
}

fn parse(arg: &str) -> Result<Spec, String> {
    let mut parts = arg.split(',');
    let udp = match parts.next() {
        Some("udp") => true,
        Some("tcp") => false,
        other => return Err(format!("{arg}: starts with udp or tcp, not {other:?}")),
    };
    let (mut listen, mut to) = (None, None);
    let mut spec = Spec {
        udp,
        listen: ([127, 0, 0, 1], 0).into(),
        to: ([127, 0, 0, 1], 0).into(),
        delay_ms: 0,
        jitter_ms: 0,
        loss: 0.0,
        seed: 1,
    };
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{arg}: \"{part}\" is not key=value"))?;
        let bad = |what: &str| format!("{arg}: {key}={value} is not {what}");
        match key {
            "listen" => listen = Some(value.parse().map_err(|_| bad("an address"))?),
            "to" => to = Some(value.parse().map_err(|_| bad("an address"))?),
            "delay" => spec.delay_ms = value.parse().map_err(|_| bad("milliseconds"))?,
            "jitter" if udp => spec.jitter_ms = value.parse().map_err(|_| bad("milliseconds"))?,
            "loss" if udp => {
                spec.loss = value
                    .parse()
                    .ok()
                    .filter(|l| (0.0..=1.0).contains(l))
                    .ok_or_else(|| bad("a probability (0 to 1)"))?
            }
            "seed" => spec.seed = value.parse().map_err(|_| bad("a number"))?,
            _ => return Err(format!("{arg}: unknown key {key}")),
        }
    }
    spec.listen = listen.ok_or_else(|| format!("{arg}: no listen="))?;
    spec.to = to.ok_or_else(|| format!("{arg}: no to="))?;
    Ok(spec)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut stats_every = None;
    if let Some(i) = args.iter().position(|a| a == "--stats") {
        let secs = args.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        let Some(secs) = secs.filter(|s| *s > 0) else {
            eprintln!("--stats takes a number of seconds");
            return ExitCode::from(2);
        };
        stats_every = Some(Duration::from_secs(secs));
        args.drain(i..i + 2);
    }
    if args.is_empty() {
        eprintln!("usage: wan_link [--stats SECS] udp|tcp,listen=ADDR,to=ADDR,delay=MS[,jitter=MS][,loss=P][,seed=N] ...");
        return ExitCode::from(2);
    }
    let mut specs = Vec::new();
    for a in &args {
        match parse(a) {
            Ok(s) => specs.push(s),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut links = Vec::new();
    for s in &specs {
        let link = if s.udp {
            let spec = LinkSpec {
                delay: Duration::from_millis(s.delay_ms),
                jitter: Duration::from_millis(s.jitter_ms),
                loss: s.loss,
                bandwidth: 0,
            };
            Link::Udp(UdpWan::start_on(s.listen, s.to, spec, s.seed))
        } else {
            Link::Tcp(TcpCut::start_delayed_on(
                s.listen,
                s.to,
                Duration::from_millis(s.delay_ms),
            ))
        };
        println!(
            "link {} {} -> {} delay={}ms jitter={}ms loss={}",
            if s.udp { "udp" } else { "tcp" },
            s.listen,
            s.to,
            s.delay_ms,
            s.jitter_ms,
            s.loss
        );
        links.push(link);
    }
    loop {
        std::thread::sleep(stats_every.unwrap_or(Duration::from_secs(3600)));
        if stats_every.is_none() {
            continue;
        }
        for (s, link) in specs.iter().zip(&links) {
            let (kind, up, down) = match link {
                Link::Udp(w) => {
                    let st = w.stats();
                    (
                        "udp",
                        st.to_target.forwarded_bytes,
                        st.to_client.forwarded_bytes,
                    )
                }
                Link::Tcp(t) => {
                    let (up, down) = t.bytes();
                    ("tcp", up, down)
                }
            };
            println!("stats {kind} {} to_target={up} to_client={down}", s.listen);
        }
    }
}
