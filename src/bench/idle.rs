//! `geokeeper bench idle`: what an idle connection costs the server. Opens N sessions
//! (spread over 127.x source addresses, so that no source passes `maxClientCnxns`), keeps
//! them alive with pings as a ZooKeeper client does (one every third of the timeout), and
//! reports the server's resident memory growth per connection once they have all pinged
//! twice. The client side keeps nothing per session but its socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use geokeeper_core::proto::records::ConnectRequest;
use geokeeper_core::proto::Record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::report::Json;
use super::{sys, Progress};

pub struct IdleSpec {
    pub addr: SocketAddr,
    pub sessions: usize,
    pub session_timeout_ms: i32,
    pub server_pid: u32,
    /// Sessions opened at once.
    pub concurrency: usize,
}

pub struct IdleReport {
    pub sessions: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    pub connect_secs: f64,
}

impl IdleReport {
    pub fn per_connection(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.sessions.max(1) as f64
    }

    pub fn table(&self) -> String {
        format!(
            "idle sessions {}: server RSS {:.1} MiB before, {:.1} MiB after ({:.0} bytes per connection); opened in {:.1} s\n",
            self.sessions,
            self.rss_before as f64 / 1048576.0,
            self.rss_after as f64 / 1048576.0,
            self.per_connection(),
            self.connect_secs
        )
    }

    pub fn json(&self) -> String {
        let mut j = Json::object();
        j.str("workload", "idle")
            .num("sessions", self.sessions as f64)
            .num("rss_before_bytes", self.rss_before as f64)
            .num("rss_after_bytes", self.rss_after as f64)
            .num("bytes_per_connection", self.per_connection())
            .num("connect_seconds", self.connect_secs);
        j.finish()
    }
}

/// The i-th session's source address: 50 sessions per address, from 127.1.0.1 on.
fn source(i: usize) -> IpAddr {
    let k = i / 50;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (k / 62_500) as u8,
        (k / 250 % 250) as u8,
        (k % 250 + 1) as u8,
    ))
}

fn frame(body: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(64);
    b.extend_from_slice(&[0; 4]);
    body(&mut b);
    let len = (b.len() - 4) as i32;
    b[0..4].copy_from_slice(&len.to_be_bytes());
    b.to_vec()
}

async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = i32::from_be_bytes(len);
    if !(0..=1 << 20).contains(&n) {
        return Err(std::io::Error::other(format!("frame length {n}")));
    }
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

async fn open(addr: SocketAddr, from: IpAddr, timeout_ms: i32) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(from, 0))?;
    let mut s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: timeout_ms,
        session_id: 0,
        passwd: bytes::Bytes::from_static(&[0; 16]),
        read_only: false,
    };
    s.write_all(&frame(|b| req.encode(b))).await?;
    let body = read_frame(&mut s).await?;
    // ConnectResponse: protocolVersion, timeOut, …: a zero timeout is a refusal.
    if body.len() < 8 || body[4..8] == [0, 0, 0, 0] {
        return Err(std::io::Error::other("session refused"));
    }
    Ok(s)
}

/// Pings every session once and reads every answer.
async fn ping_all(streams: &mut [TcpStream]) -> std::io::Result<()> {
    let ping = frame(|b| {
        b.extend_from_slice(&(-2i32).to_be_bytes());
        b.extend_from_slice(&11i32.to_be_bytes());
    });
    for s in streams.iter_mut() {
        s.write_all(&ping).await?;
    }
    for s in streams.iter_mut() {
        read_frame(s).await?;
    }
    Ok(())
}

pub async fn run(spec: &IdleSpec, progress: &Progress) -> Result<IdleReport, String> {
    let need = spec.sessions as u64 + 64;
    if sys::nofile_limit() < need {
        return Err(format!(
            "{} sessions need {need} open files; the limit is {} (ulimit -n)",
            spec.sessions,
            sys::nofile_limit()
        ));
    }
    let rss = || sys::rss_bytes(spec.server_pid).ok_or("the server process is gone");
    let rss_before = rss()?;
    let bar = progress.bar(
        spec.sessions as u64,
        "opening {pos}/{len} sessions {wide_bar}",
    );
    let started = Instant::now();
    let mut streams = Vec::with_capacity(spec.sessions);
    let mut next = 0usize;
    let mut opening = JoinSet::new();
    let ping_every = Duration::from_millis(spec.session_timeout_ms.max(300) as u64 / 3);
    let mut last_ping = Instant::now();
    while streams.len() < spec.sessions {
        while next < spec.sessions && opening.len() < spec.concurrency.max(1) {
            let (addr, from, t) = (spec.addr, source(next), spec.session_timeout_ms);
            opening.spawn(async move { open(addr, from, t).await });
            next += 1;
        }
        match opening.join_next().await {
            Some(Ok(Ok(s))) => {
                streams.push(s);
                bar.inc(1);
            }
            Some(Ok(Err(e))) => return Err(format!("session {}: {e}", streams.len() + 1)),
            Some(Err(e)) => return Err(format!("session task: {e}")),
            None => break,
        }
        // Sessions opened first must not expire while the rest open.
        if last_ping.elapsed() > ping_every {
            ping_all(&mut streams)
                .await
                .map_err(|e| format!("ping: {e}"))?;
            last_ping = Instant::now();
        }
    }
    bar.finish_and_clear();
    let connect_secs = started.elapsed().as_secs_f64();
    // Every session pings twice (its read and write paths have run), then the server is
    // measured idle.
    for _ in 0..2 {
        ping_all(&mut streams)
            .await
            .map_err(|e| format!("ping: {e}"))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss_after = rss()?;
    drop(streams);
    Ok(IdleReport {
        sessions: spec.sessions,
        rss_before,
        rss_after,
        connect_secs,
    })
}
