//! One link to a ZooKeeper leader's learner port: find the leader, register as an
//! observer, sync, then follow. The [`Learner`] state machine decides; this task reads
//! the socket into it, writes what it says to send, answers pings with the sessions the
//! server touched, and hands everything else ([`Event`]) to the server.
//!
//! Finding the leader: only the leader listens on its `server.N` quorum port (followers
//! open none unless `observerMasterPort` is set), so the learner ports of the configured
//! servers are tried in turn and the one that accepts is the leader.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use geokeeper_core::learner::{Event, Learner, LearnerError, LearnerStart};
use geokeeper_core::net::ToUpstream;
use geokeeper_core::proto::Record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::info;

/// Why a link ended; the caller connects again (perhaps to a new leader).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no leader's learner port accepted a connection ({0})")]
    NoLeader(String),
    #[error("link to the leader at {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("link to the leader at {addr}: {source}")]
    Protocol {
        addr: SocketAddr,
        #[source]
        source: LearnerError,
    },
    #[error("link to the leader at {addr}: nothing from the leader for {0:?}", .timeout)]
    Silent { addr: SocketAddr, timeout: Duration },
    #[error("the server stopped taking events")]
    ServerGone,
    #[error("resync asked: {0}")]
    Resync(String),
    #[error("the leader truncates our log to {0:#x}: starting again from an empty tree")]
    Truncate(i64),
    #[error("cannot write the leader's snapshot: {0}")]
    Snapshot(io::Error),
}

/// How to reach and follow the leader.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The learner (quorum) ports of the ensemble's servers, `host:port`, in the order
    /// to try; names are resolved again at every attempt.
    pub quorum_addrs: Vec<String>,
    pub connect_timeout: Duration,
    /// The longest silence before the link is given up: `initLimit` ticks while syncing
    /// (the SNAP may take that long), `syncLimit` ticks after (`Learner`'s socket timeouts).
    pub sync_timeout: Duration,
    pub follow_timeout: Duration,
    /// The longest buffer or string a packet may hold.
    pub max_len: usize,
    /// Quorum TLS (`sslQuorum=true`): the handshake runs right after the connect.
    pub tls: Option<crate::tls::QuorumTls>,
    /// The index in `quorum_addrs` to try first. The gateway moves it on after a link
    /// that failed before it synced: something that accepts but is not a leader (a
    /// forwarder, a proxy) must not be tried first forever.
    pub first: usize,
}

/// A link's byte stream: TCP, or TLS over TCP.
pub trait LinkStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> LinkStream for T {}

/// The first learner port that accepts (and, with TLS, completes the handshake): the
/// leader's.
pub async fn find_leader(s: &LinkSettings) -> Result<(Box<dyn LinkStream>, SocketAddr), LinkError> {
    let mut why = Vec::new();
    let n = s.quorum_addrs.len();
    for addr in (0..n).map(|i| &s.quorum_addrs[(s.first + i) % n]) {
        match tokio::time::timeout(s.connect_timeout, TcpStream::connect(addr.as_str())).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let peer = match stream.peer_addr() {
                    Ok(p) => p,
                    Err(e) => {
                        why.push(format!("{addr}: {e}"));
                        continue;
                    }
                };
                let Some(tls) = &s.tls else {
                    return Ok((Box::new(stream), peer));
                };
                let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                let name = match crate::tls::QuorumTls::server_name(host) {
                    Ok(n) => n,
                    Err(e) => {
                        why.push(format!("{addr}: {e}"));
                        continue;
                    }
                };
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                match tokio::time::timeout(s.connect_timeout, connector.connect(name, stream)).await
                {
                    Ok(Ok(t)) => return Ok((Box::new(t), peer)),
                    Ok(Err(e)) => {
                        tracing::warn!(%addr, "quorum TLS handshake failed: {e}");
                        why.push(format!("{addr}: TLS handshake: {e}"));
                    }
                    Err(_) => why.push(format!(
                        "{addr}: no TLS handshake in {:?}",
                        s.connect_timeout
                    )),
                }
            }
            Ok(Err(e)) => why.push(format!("{addr}: {e}")),
            Err(_) => why.push(format!("{addr}: no answer in {:?}", s.connect_timeout)),
        }
    }
    Err(LinkError::NoLeader(why.join("; ")))
}

/// What a link reports besides committed transactions: how the sync went.
#[derive(Debug, Clone)]
pub struct Synced {
    pub leader: SocketAddr,
    pub epoch: u32,
    pub kind: &'static str,
    pub duration: Duration,
}

/// Where the link's events go. The gateway's driver implements it over the core's
/// channel; tests over a plain tree.
pub trait Sink {
    /// Events for the replica, in order (committed transactions, a SNAP, TRUNC, SYNC,
    /// REVALIDATE answers). Err: the replica is gone.
    fn events(
        &mut self,
        events: Vec<Event>,
    ) -> impl std::future::Future<Output = Result<(), LinkError>> + Send;
    /// The sync is over (UPTODATE).
    fn up_to_date(
        &mut self,
        synced: Synced,
    ) -> impl std::future::Future<Output = Result<(), LinkError>> + Send;
    /// The leader pinged with its last proposed zxid: the sessions to report.
    fn ping(
        &mut self,
        zxid: i64,
    ) -> impl std::future::Future<Output = Result<Vec<(i64, i32)>, LinkError>> + Send;
}

/// Registers with the leader, syncs and follows until the link fails (or the replica
/// asks for a resync). Packets from `outgoing` are written to the leader as they come.
pub async fn follow(
    s: &LinkSettings,
    start: LearnerStart,
    sink: &mut impl Sink,
    outgoing: &mut mpsc::UnboundedReceiver<ToUpstream>,
) -> Result<(), LinkError> {
    let begun = Instant::now();
    let (stream, addr) = find_leader(s).await?;
    info!(%addr, server_id = start.server_id, last_zxid = format_args!("{:#x}", start.last_zxid), "registering with the leader as an observer");
    let io_err = |source| LinkError::Io { addr, source };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (mut learner, hello) = Learner::new(start, s.max_len);
    wr.write_all(&hello.to_bytes()).await.map_err(io_err)?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = Vec::new();
    let mut replies = BytesMut::new();
    loop {
        let timeout = if learner.is_following() {
            s.follow_timeout
        } else {
            s.sync_timeout
        };
        tokio::select! {
            biased;
            o = outgoing.recv() => match o {
                Some(ToUpstream::Packet(p)) => {
                    replies.clear();
                    p.encode(&mut replies);
                    // Whatever else is queued goes in the same write.
                    while let Ok(ToUpstream::Packet(p)) = outgoing.try_recv() {
                        p.encode(&mut replies);
                    }
                    wr.write_all(&replies).await.map_err(io_err)?;
                    continue;
                }
                Some(ToUpstream::Resync(reason)) => return Err(LinkError::Resync(reason)),
                None => return Err(LinkError::ServerGone),
            },
            r = tokio::time::timeout(timeout, rd.read_buf(&mut buf)) => {
                let n = match r {
                    Ok(r) => r.map_err(io_err)?,
                    Err(_) => return Err(LinkError::Silent { addr, timeout }),
                };
                if n == 0 {
                    return Err(io_err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the leader closed the link",
                    )));
                }
            }
        }
        let was_following = learner.is_following();
        let used = learner
            .receive(&buf, &mut out)
            .map_err(|source| LinkError::Protocol { addr, source })?;
        let _ = buf.split_to(used);
        replies.clear();
        let mut events = Vec::new();
        let mut up_to_date = false;
        for e in out.drain(..) {
            match e {
                Event::Send(p) => p.encode(&mut replies),
                Event::Ping { zxid, authinfo } => {
                    if !events.is_empty() {
                        sink.events(std::mem::take(&mut events)).await?;
                    }
                    let touched = sink.ping(zxid).await?;
                    Learner::ping_reply(zxid, authinfo, &touched).encode(&mut replies)
                }
                Event::UpToDate { .. } => up_to_date = true,
                other => events.push(other),
            }
        }
        if !events.is_empty() {
            sink.events(events).await?;
        }
        if !replies.is_empty() {
            wr.write_all(&replies).await.map_err(io_err)?;
        }
        if up_to_date && !was_following {
            sink.up_to_date(Synced {
                leader: addr,
                epoch: learner.epoch(),
                kind: learner.sync_kind(),
                duration: begun.elapsed(),
            })
            .await?;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
    }
}
