//! geokeeper's per-room client proxy: one ZooKeeper endpoint per room that unmodified
//! clients connect to as to a ZooKeeper server. It places each new session on a healthy
//! upstream (a geokeeper observer or gateway, or any ZooKeeper 3.8 server) of its own room
//! by weight ([`place`]), falling back to other rooms in a configured order, and relays the
//! session's frames both ways unchanged: session ids, passwords, zxids, stats, errors and
//! watch events are the upstream's own. Reads are answered by that upstream, in the room;
//! writes are forwarded by it to the leader (one WAN round trip from an observer). Health
//! and lag come from probing the upstreams ([`probe`]). A session that lost its upstream
//! moves to another without the client noticing; one placed outside its room goes back
//! once the room is healthy again.
//!
//! Limits as on a server: `maxClientCnxns` per client address, `jute.maxbuffer` on what
//! clients send, `globalOutstandingLimit` on requests in flight through the proxy; a
//! malformed frame closes only its connection. Buffers are bounded per connection and
//! nothing is queued without bound: a client that reads nothing stops its upstream's
//! stream, not the proxy.

mod book;
mod client;
mod home;
pub mod place;
pub mod probe;
mod state;
mod words;

use std::sync::Arc;
use std::time::Duration;

use geokeeper_conf::ProxyConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub use state::{Health, Shared, UpstreamView};

/// Serves clients on `listener` until `shutdown` turns true.
pub async fn run(
    cfg: ProxyConfig,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared::new(cfg));
    info!(
        listen = %listener.local_addr()?,
        room = %shared.cfg.room,
        upstreams = shared.cfg.upstreams.len(),
        "proxy serving"
    );
    for index in 0..shared.cfg.upstreams.len() {
        tokio::spawn(prober(shared.clone(), index, shutdown.clone()));
    }
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    next_id += 1;
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(client::serve(shared.clone(), stream, peer, next_id));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    info!("proxy stopping");
                    return Ok(());
                }
            }
        }
    }
}

/// Probes one upstream every probe interval until shutdown.
async fn prober(shared: Arc<Shared>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(shared.cfg.probe_ms);
    // A probe may take up to two intervals (at least a second) before it counts as failed.
    let timeout = (every * 2).max(Duration::from_secs(1));
    let address = shared.cfg.upstreams[index].address.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
        let answer = probe::srvr(&address, timeout).await;
        shared.probed(index, answer);
    }
}
