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
use std::time::Duration;

use bytes::BytesMut;
use geokeeper_core::learner::{Event, Learner, LearnerError, LearnerStart};
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
}

/// How to reach and follow the leader.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The learner (quorum) ports of the ensemble's servers, in the order to try.
    pub quorum_addrs: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    /// The longest silence before the link is given up: `initLimit` ticks while syncing
    /// (the SNAP may take that long), `syncLimit` ticks after (`Learner`'s socket timeouts).
    pub sync_timeout: Duration,
    pub follow_timeout: Duration,
    /// The longest buffer or string a packet may hold.
    pub max_len: usize,
}

/// The first learner port that accepts: the leader's.
pub async fn find_leader(s: &LinkSettings) -> Result<(TcpStream, SocketAddr), LinkError> {
    let mut why = Vec::new();
    for &addr in &s.quorum_addrs {
        match tokio::time::timeout(s.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => why.push(format!("{addr}: {e}")),
            Err(_) => why.push(format!("{addr}: no answer in {:?}", s.connect_timeout)),
        }
    }
    Err(LinkError::NoLeader(why.join("; ")))
}

/// Registers with the leader, syncs and follows until the link fails. Events other than
/// sends and pings go to `events`, in order; `touched` gives the sessions to report in a
/// ping reply (and forgets them).
pub async fn follow(
    s: &LinkSettings,
    start: LearnerStart,
    events: &mpsc::Sender<Event>,
    mut touched: impl FnMut() -> Vec<(i64, i32)>,
) -> Result<(), LinkError> {
    let (mut stream, addr) = find_leader(s).await?;
    info!(%addr, server_id = start.server_id, last_zxid = format_args!("{:#x}", start.last_zxid), "registering with the leader as an observer");
    let io_err = |source| LinkError::Io { addr, source };
    let (mut learner, hello) = Learner::new(start, s.max_len);
    stream.write_all(&hello.to_bytes()).await.map_err(io_err)?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = Vec::new();
    loop {
        let timeout = if learner.is_following() {
            s.follow_timeout
        } else {
            s.sync_timeout
        };
        let n = match tokio::time::timeout(timeout, stream.read_buf(&mut buf)).await {
            Ok(r) => r.map_err(io_err)?,
            Err(_) => return Err(LinkError::Silent { addr, timeout }),
        };
        if n == 0 {
            return Err(io_err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the leader closed the link",
            )));
        }
        let used = learner
            .receive(&buf, &mut out)
            .map_err(|source| LinkError::Protocol { addr, source })?;
        let _ = buf.split_to(used);
        let mut replies = BytesMut::new();
        for e in out.drain(..) {
            match e {
                Event::Send(p) => p.encode(&mut replies),
                Event::Ping { zxid, authinfo } => {
                    Learner::ping_reply(zxid, authinfo, &touched()).encode(&mut replies)
                }
                other => {
                    if events.send(other).await.is_err() {
                        return Err(LinkError::ServerGone);
                    }
                }
            }
        }
        if !replies.is_empty() {
            stream.write_all(&replies).await.map_err(io_err)?;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
    }
}
