//! The TCP client port and the tasks that move bytes for the [`Server`] state machine.
//!
//! * one task per connection reads length-prefixed frames, decodes them off the core and
//!   hands typed inputs to the core; a second writes what the core sends, many frames per
//!   write;
//! * the core task owns the [`Server`] and is the only place its state changes;
//! * a log thread makes transactions durable through the [`TxnLog`], one group commit per
//!   batch it finds waiting, and reports back.
//!
//! A frame with a negative length or one above `jute.maxbuffer` closes that connection
//! (ZooKeeper's "Len error"); nothing else is affected.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn, Instrument};

use crate::proto::records::{ConnectRequest, RequestHeader};
use crate::proto::{Reader, Record};
use crate::request::Request;
use crate::server::{Clock, ConnId, Input, LogEntry, Output, Server};
use crate::storage::TxnLog;

/// What the driver needs besides the state machine.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// `jute.maxbuffer`: the largest frame accepted.
    pub max_buffer: usize,
    /// How often containers and TTL nodes are checked (`znode.container.checkIntervalMs`).
    pub container_check_interval: Duration,
}

enum Msg {
    Input(Input),
    Register {
        conn: ConnId,
        tx: mpsc::UnboundedSender<ConnMsg>,
        ready: oneshot::Sender<()>,
    },
    /// The log failed: the server can no longer acknowledge anything.
    LogFailed(io::Error),
}

enum ConnMsg {
    Frame(Bytes),
    Close,
}

struct ConnHandle {
    tx: mpsc::UnboundedSender<ConnMsg>,
    ready: Option<oneshot::Sender<()>>,
}

/// A clock that reads monotonic time from a fixed start and wall time from the system.
#[derive(Clone, Copy)]
struct Clocks {
    start: Instant,
}

impl Clocks {
    fn now(&self) -> Clock {
        Clock {
            mono_ms: self.start.elapsed().as_millis() as u64,
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }
}

/// Serves clients on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    server: Server,
    log: Box<dyn TxnLog>,
    settings: NetSettings,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let (core_tx, core_rx) = mpsc::unbounded_channel::<Msg>();
    let (log_tx, log_rx) = mpsc::unbounded_channel::<Vec<LogEntry>>();
    let log_thread = spawn_log_thread(log, log_rx, core_tx.clone())?;
    let clocks = Clocks {
        start: Instant::now(),
    };
    let core = tokio::spawn(core_loop(
        server,
        core_rx,
        log_tx,
        clocks,
        settings.clone(),
        shutdown.clone(),
    ));

    let mut next_conn: ConnId = 1;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn = next_conn;
                next_conn += 1;
                let _ = stream.set_nodelay(true);
                let span = tracing::info_span!("conn", id = conn, %peer);
                tokio::spawn(connection(stream, conn, peer, core_tx.clone(), settings.max_buffer).instrument(span));
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(core_tx);
    let _ = core.await;
    let _ = tokio::task::spawn_blocking(move || log_thread.join()).await;
    Ok(())
}

fn spawn_log_thread(
    mut log: Box<dyn TxnLog>,
    mut rx: mpsc::UnboundedReceiver<Vec<LogEntry>>,
    core: mpsc::UnboundedSender<Msg>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("txnlog".into())
        .spawn(move || {
            while let Some(mut batch) = rx.blocking_recv() {
                // Group commit: everything that queued up while the last sync ran goes
                // into this one.
                while let Ok(more) = rx.try_recv() {
                    batch.extend(more);
                }
                let Some(last) = batch.last().map(|e| e.zxid) else {
                    continue;
                };
                match log.append(&batch) {
                    Ok(()) => {
                        if core
                            .send(Msg::Input(Input::Durable { zxid: last }))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = core.send(Msg::LogFailed(e));
                        return;
                    }
                }
            }
        })
}

async fn core_loop(
    mut server: Server,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    log_tx: mpsc::UnboundedSender<Vec<LogEntry>>,
    clocks: Clocks,
    settings: NetSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns: HashMap<ConnId, ConnHandle> = HashMap::new();
    let mut msgs = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut next_container_check = clocks.start + settings.container_check_interval;
    loop {
        let session_deadline = server
            .next_deadline()
            .map(|ms| clocks.start + Duration::from_millis(ms))
            .unwrap_or(next_container_check);
        let wake = session_deadline.min(next_container_check);
        tokio::select! {
            n = rx.recv_many(&mut msgs, 512) => {
                if n == 0 {
                    break;
                }
                let now = clocks.now();
                for m in msgs.drain(..) {
                    match m {
                        Msg::Input(i) => server.handle(i, now, &mut out),
                        Msg::Register { conn, tx, ready } => {
                            conns.insert(conn, ConnHandle { tx, ready: Some(ready) });
                        }
                        Msg::LogFailed(e) => {
                            error!("transaction log failed, the server stops: {e}");
                            return;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = clocks.now();
                server.tick(now, &mut out);
                if Instant::now() >= next_container_check {
                    server.check_containers(now, &mut out);
                    next_container_check = Instant::now() + settings.container_check_interval;
                }
            }
            _ = shutdown.changed() => break,
        }
        for o in out.drain(..) {
            match o {
                Output::Send { conn, frame } => {
                    if let Some(c) = conns.get(&conn) {
                        let _ = c.tx.send(ConnMsg::Frame(frame));
                    }
                }
                Output::Established { conn } => {
                    if let Some(r) = conns.get_mut(&conn).and_then(|c| c.ready.take()) {
                        let _ = r.send(());
                    }
                }
                Output::Close { conn } => {
                    if let Some(c) = conns.remove(&conn) {
                        let _ = c.tx.send(ConnMsg::Close);
                    }
                }
                Output::Log { entries } => {
                    if log_tx.send(entries).is_err() {
                        error!("transaction log thread is gone");
                        return;
                    }
                }
            }
        }
    }
    for (_, c) in conns.drain() {
        let _ = c.tx.send(ConnMsg::Close);
    }
}

/// Reads one frame: `Ok(None)` at a clean end of stream.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<Option<Bytes>> {
    loop {
        if buf.len() >= 4 {
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if len < 0 || len as usize > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "Len error. A message with advertised length of {len} is either a malformed message or too large to process (length is greater than jute.maxbuffer={max})"
                    ),
                ));
            }
            let len = len as usize;
            if buf.len() >= 4 + len {
                buf.advance(4);
                return Ok(Some(buf.split_to(len).freeze()));
            }
            buf.reserve(4 + len - buf.len());
        }
        if rd.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-frame",
            ));
        }
    }
}

async fn connection(
    stream: TcpStream,
    conn: ConnId,
    peer: SocketAddr,
    core: mpsc::UnboundedSender<Msg>,
    max_buffer: usize,
) {
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    if core
        .send(Msg::Register {
            conn,
            tx,
            ready: ready_tx,
        })
        .is_err()
    {
        return;
    }
    let mut writer = tokio::spawn(writer(wr, rx).in_current_span());
    // The reader stops when the client goes away, or when the server closes the
    // connection (the writer ends after flushing).
    tokio::select! {
        r = read_loop(&mut rd, conn, peer, &core, max_buffer, ready_rx) => {
            if let Err(e) = r {
                info!("closing connection: {e}");
            }
        }
        _ = &mut writer => {}
    }
    let _ = core.send(Msg::Input(Input::Closed { conn }));
}

async fn read_loop(
    rd: &mut OwnedReadHalf,
    conn: ConnId,
    peer: SocketAddr,
    core: &mpsc::UnboundedSender<Msg>,
    max_buffer: usize,
    ready: oneshot::Receiver<()>,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let Some(first) = read_frame(rd, &mut buf, max_buffer).await? else {
        return Ok(());
    };
    let (req, has_read_only) = ConnectRequest::decode_with_read_only_flag(&mut Reader::new(&first))
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad connect request: {e}"),
            )
        })?;
    let _ = core.send(Msg::Input(Input::Connect {
        conn,
        peer: peer.ip(),
        req,
        old_client: !has_read_only,
    }));
    // Like ZooKeeper, read nothing more until the session is established; a refused
    // handshake drops `ready` and the connection ends here.
    if ready.await.is_err() {
        return Ok(());
    }
    while let Some(f) = read_frame(rd, &mut buf, max_buffer).await? {
        let mut r = Reader::new(&f);
        let h = RequestHeader::decode(&mut r).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad request header: {e}"),
            )
        })?;
        let req = Request::decode(h.r#type, r.rest());
        debug!(xid = h.xid, op = h.r#type, "request");
        if core
            .send(Msg::Input(Input::Request {
                conn,
                xid: h.xid,
                req,
            }))
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

async fn writer(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<ConnMsg>) {
    let mut batch = Vec::with_capacity(64);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut close = false;
        for m in batch.drain(..) {
            match m {
                ConnMsg::Frame(f) => buf.extend_from_slice(&f),
                ConnMsg::Close => {
                    close = true;
                    break;
                }
            }
        }
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
        }
        if close {
            break;
        }
    }
    let _ = wr.shutdown().await;
}
