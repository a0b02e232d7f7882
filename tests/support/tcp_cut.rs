//! A TCP forwarder that a test can use to cut a client off its server without the client
//! closing its session: clients connect to [`TcpCut::addr`], every connection is relayed to
//! the target, and the test can drop every live connection ([`TcpCut::cut`]) and refuse new
//! ones for a while ([`TcpCut::refuse`]), as a network partition would. Built with
//! [`TcpCut::start_delayed`], it also delays each direction by a fixed one-way latency, as
//! a WAN link between rooms would.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::java_zk::free_loopback_addr;

struct Shared {
    /// Both ends of every relayed connection, so that `cut` can shut them down.
    live: Mutex<Vec<(TcpStream, TcpStream)>>,
    refusing: AtomicBool,
    stopped: AtomicBool,
    /// One-way delay of each direction; zero relays at once.
    delay: Duration,
    /// How long a connection whose target refuses is held while the target is asked
    /// again; zero: closed at once.
    patience: Duration,
    /// Bytes carried towards the target and back to the clients, over all connections.
    to_target: Arc<AtomicU64>,
    to_client: Arc<AtomicU64>,
}

/// A forwarder from a loopback address of its own to `target`.
pub struct TcpCut {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TcpCut {
    pub fn start(target: SocketAddr) -> TcpCut {
        Self::start_delayed(target, Duration::ZERO)
    }

    /// Like `start`, but bytes read from one side at time t are written to the other at
    /// t + `delay`, in order, in each direction: a round trip through it takes 2 × `delay`
    /// more, while throughput is not limited by the delay.
    pub fn start_delayed(target: SocketAddr, delay: Duration) -> TcpCut {
        Self::start_delayed_on(free_loopback_addr(), target, delay)
    }

    /// Like `start_delayed`, listening on `listen`.
    pub fn start_delayed_on(listen: SocketAddr, target: SocketAddr, delay: Duration) -> TcpCut {
        Self::start_patient_on(listen, target, delay, Duration::ZERO)
    }

    /// Like `start_delayed_on`, but a connection whose target refuses (not listening yet)
    /// is held open for up to `patience` while the target is asked again, as a real
    /// network would retransmit a SYN, instead of being accepted and closed at once. A
    /// ZooKeeper follower retries a leader that refuses its connection, but takes one
    /// that is accepted and then closed for a failed leader and elects again; a forwarder
    /// between the two must not turn the first into the second.
    pub fn start_patient_on(
        listen: SocketAddr,
        target: SocketAddr,
        delay: Duration,
        patience: Duration,
    ) -> TcpCut {
        let listener = TcpListener::bind(listen).expect("bind forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let shared = Arc::new(Shared {
            live: Mutex::new(Vec::new()),
            refusing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            delay,
            patience,
            to_target: Arc::new(AtomicU64::new(0)),
            to_client: Arc::new(AtomicU64::new(0)),
        });
        let s = shared.clone();
        thread::spawn(move || accept_loop(listener, target, s));
        TcpCut { addr, shared }
    }

    /// Bytes carried so far (towards the target, back to the clients), over all
    /// connections: what the TCP payload of a WAN link would be.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.to_target.load(Ordering::Relaxed),
            self.shared.to_client.load(Ordering::Relaxed),
        )
    }

    /// While `on`, new connections are accepted and closed at once: the client sees its
    /// connect attempts fail, the server never hears of them.
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, Ordering::SeqCst);
    }

    /// Shuts down every live connection on both sides; returns how many there were.
    pub fn cut(&self) -> usize {
        let live = std::mem::take(&mut *self.shared.live.lock().unwrap());
        for (client, server) in &live {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        live.len()
    }

    /// How many connections are being relayed now.
    pub fn live(&self) -> usize {
        let mut live = self.shared.live.lock().unwrap();
        live.retain(|(c, _)| c.peer_addr().is_ok());
        live.len()
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so that it sees `stopped`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        if shared.refusing.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        if shared.patience.is_zero() {
            relay_one(client, target, &shared);
        } else {
            let shared = shared.clone();
            thread::spawn(move || relay_one(client, target, &shared));
        }
    }
}

/// Connects `client` to `target` (asking again while it refuses, within the patience)
/// and starts relaying between them.
fn relay_one(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let give_up = Instant::now() + shared.patience;
    let server = loop {
        match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Ok(server) => break server,
            Err(_) if Instant::now() < give_up && !shared.stopped.load(Ordering::SeqCst) => {
                thread::sleep(Duration::from_millis(50))
            }
            Err(_) => {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
        }
    };
    client.set_nodelay(true).ok();
    server.set_nodelay(true).ok();
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    {
        // Connections that ended are forgotten here, so that a forwarder carrying many
        // short ones (a proxy's probes) holds no descriptors for them.
        let mut live = shared.live.lock().unwrap();
        live.retain(|(c, _)| c.peer_addr().is_ok());
        live.push((c3, s3));
    }
    let delay = shared.delay;
    let (up, down) = (shared.to_target.clone(), shared.to_client.clone());
    if delay.is_zero() {
        thread::spawn(move || pump(client, server, up));
        thread::spawn(move || pump(s2, c2, down));
    } else {
        thread::spawn(move || pump_delayed(client, server, delay, up));
        thread::spawn(move || pump_delayed(s2, c2, delay, down));
    }
}

/// Copies `from` to `to` until either side fails, then shuts both down.
fn pump(mut from: TcpStream, mut to: TcpStream, carried: Arc<AtomicU64>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                carried.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// `pump` through a delay line: this thread reads and stamps each chunk with its delivery
/// time; a writer thread sleeps until then and writes it. The channel keeps the order, and
/// reading goes on while earlier chunks wait, so the link stays full.
fn pump_delayed(mut from: TcpStream, to: TcpStream, delay: Duration, carried: Arc<AtomicU64>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let Ok(from2) = from.try_clone() else {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
        return;
    };
    let writer = thread::spawn(move || deliver(rx, from2, to, carried));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // The writer is gone once the other side failed: nothing more to carry.
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    // The end of the stream travels with the same delay: the writer closes both sides
    // after the last chunk is due and written.
    drop(tx);
    let _ = writer.join();
}

/// The writer half of `pump_delayed`.
fn deliver(
    rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    from: TcpStream,
    mut to: TcpStream,
    carried: Arc<AtomicU64>,
) {
    for (due, bytes) in rx {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        if to.write_all(&bytes).is_err() {
            break;
        }
        carried.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
