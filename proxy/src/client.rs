//! One client connection: its first four bytes tell a four-letter word from a session
//! handshake; a session is placed on an upstream and its frames are relayed both ways
//! unchanged, the proxy reading only what it must (frame lengths, reply headers).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use geokeeper_core::four_letter::Word;
use geokeeper_core::proto::frame::frame_len;
use geokeeper_core::proto::records::ConnectRequest;
use geokeeper_core::proto::Reader;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::state::{ConnView, Shared};
use crate::words;

/// The largest frame an upstream may send (a reply or an event); past it the upstream is
/// answering garbage.
const MAX_UPSTREAM_FRAME: usize = 64 << 20;

/// How long a new connection may take to send its first frame, and an upstream its
/// handshake answer.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Upstreams a session's handshake tries before the client is let go.
const ATTEMPTS: usize = 3;

/// The `xid` of a watch event: not the answer to any request.
const NOTIFICATION_XID: i32 = -1;

pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64) {
    if !shared.admit(peer.ip()) {
        // As ZooKeeper: the connection is closed, the reason logged.
        warn!(
            "Too many connections from /{} - max is {}",
            peer.ip(),
            shared.cfg.max_client_cnxns
        );
        return;
    }
    shared.register(
        id,
        ConnView {
            peer,
            session: 0,
            upstream: None,
            received: 0,
            sent: 0,
        },
    );
    if let Err(e) = session(&shared, stream, peer, id).await {
        debug!(client = %peer, "connection ended: {e}");
    }
    shared.unregister(id);
    shared.leave(peer.ip());
}

async fn session(
    shared: &Arc<Shared>,
    mut client: TcpStream,
    peer: SocketAddr,
    id: u64,
) -> std::io::Result<()> {
    let max = shared.cfg.max_buffer as usize;
    let mut cbuf = BytesMut::with_capacity(4096);
    // The first four bytes: a four-letter word, or the length of the handshake.
    while cbuf.len() < 4 {
        let n = tokio::time::timeout(HANDSHAKE, client.read_buf(&mut cbuf))
            .await
            .map_err(|_| other("no handshake"))??;
        if n == 0 {
            return Ok(());
        }
    }
    if let Some(word) = Word::from_bytes([cbuf[0], cbuf[1], cbuf[2], cbuf[3]]) {
        let answer = words::answer(shared, word);
        client.write_all(answer.as_bytes()).await?;
        return client.shutdown().await;
    }
    let Some(connect) = read_frame(&mut client, &mut cbuf, max, HANDSHAKE).await? else {
        return Ok(());
    };
    let (request, _) = ConnectRequest::decode_with_read_only_flag(&mut Reader::new(&connect[4..]))
        .map_err(|e| other(&format!("a handshake that is no ConnectRequest: {e}")))?;

    // Place it: an upstream that serves, is within the lag bound, and has the client's
    // last seen zxid (ZooKeeper refuses the others); the next one if it refuses anyway.
    let mut tried = Vec::new();
    let (index, mut upstream, answer) = loop {
        if tried.len() >= ATTEMPTS {
            return Err(other("no upstream took the session"));
        }
        let Some((index, address)) = shared.attach(request.last_zxid_seen, &tried) else {
            return Err(other("no healthy upstream"));
        };
        tried.push(index);
        match handshake(&address, &connect).await {
            Ok((up, answer)) => break (index, up, answer),
            Err(e) => {
                shared.detach(index);
                shared.suspect(index, &e.to_string());
            }
        }
    };
    let session_id = if answer.len() >= 4 + 16 {
        i64::from_be_bytes(answer[12..20].try_into().unwrap_or([0; 8]))
    } else {
        0
    };
    shared.update_conn(id, |c| {
        c.session = session_id;
        c.upstream = Some(index);
    });
    debug!(client = %peer, upstream = index, session = format_args!("{session_id:#x}"), "session placed");
    client.write_all(&answer).await?;
    let r = relay(shared, &mut client, &mut cbuf, &mut upstream, id).await;
    shared.detach(index);
    if let Err(e) = &r {
        info!(client = %peer, session = format_args!("{session_id:#x}"), "session's upstream link ended: {e}");
    }
    r
}

/// Sends the client's handshake frame to `address` and reads the answer frame.
async fn handshake(address: &str, connect: &Bytes) -> std::io::Result<(TcpStream, Bytes)> {
    let mut up = tokio::time::timeout(HANDSHAKE, TcpStream::connect(address))
        .await
        .map_err(|_| other("connect timed out"))??;
    let _ = up.set_nodelay(true);
    up.write_all(connect).await?;
    let mut buf = BytesMut::new();
    match read_frame(&mut up, &mut buf, MAX_UPSTREAM_FRAME, HANDSHAKE).await? {
        Some(answer) => Ok((up, answer)),
        // ZooKeeper closes instead of answering a client that has seen more than it has.
        None => Err(other("closed the handshake")),
    }
}

/// Relays frames both ways until either side ends.
async fn relay(
    shared: &Arc<Shared>,
    client: &mut TcpStream,
    cbuf: &mut BytesMut,
    upstream: &mut TcpStream,
    id: u64,
) -> std::io::Result<()> {
    let max = shared.cfg.max_buffer as usize;
    let limit = shared.cfg.outstanding_limit as usize;
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let mut ubuf = BytesMut::with_capacity(4096);
    let mut mine = 0usize;
    let mut pause = tokio::time::interval(Duration::from_millis(5));
    let r = loop {
        // Past globalOutstandingLimit the proxy stops reading requests (the clients' TCP
        // windows fill) until answers bring it back under.
        let room = shared.outstanding.load(Ordering::Relaxed) < limit.max(1);
        tokio::select! {
            f = next_frame(&mut cr, cbuf, max), if room => match f {
                Ok(Some(frame)) => {
                    uw.write_all(&frame).await?;
                    mine += 1;
                    shared.outstanding.fetch_add(1, Ordering::Relaxed);
                    shared.received.fetch_add(1, Ordering::Relaxed);
                    shared.update_conn(id, |c| c.received += 1);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
            f = next_frame(&mut ur, &mut ubuf, MAX_UPSTREAM_FRAME) => match f {
                Ok(Some(frame)) => {
                    let xid = if frame.len() >= 4 + 16 {
                        (&frame[4..8]).get_i32()
                    } else {
                        break Err(other("an upstream frame too short for a reply header"));
                    };
                    cw.write_all(&frame).await?;
                    if xid != NOTIFICATION_XID && mine > 0 {
                        mine -= 1;
                        shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    shared.update_conn(id, |c| c.sent += 1);
                }
                Ok(None) => break Err(other("the upstream closed the connection")),
                Err(e) => break Err(e),
            },
            _ = pause.tick(), if !room => {}
        }
    };
    shared.outstanding.fetch_sub(mine, Ordering::Relaxed);
    r
}

/// The next whole frame (length prefix included) from `r`, `None` at a clean end.
async fn next_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> std::io::Result<Option<Bytes>> {
    loop {
        match frame_len(buf, max) {
            Err(e) => return Err(other(&e.to_string())),
            Ok(Some(len)) if buf.len() >= 4 + len => {
                return Ok(Some(buf.split_to(4 + len).freeze()))
            }
            Ok(Some(len)) => buf.reserve(4 + len - buf.len()),
            Ok(None) => {}
        }
        if r.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(other("the connection ended inside a frame"))
            };
        }
    }
}

/// [`next_frame`] within `within`.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
    within: Duration,
) -> std::io::Result<Option<Bytes>> {
    tokio::time::timeout(within, next_frame(r, buf, max))
        .await
        .map_err(|_| other("timed out"))?
}

fn other(why: &str) -> std::io::Error {
    std::io::Error::other(why.to_string())
}
