//! The publisher: serves a server's committed stream to the replicas that follow it over
//! QUIC (its subscribers), whatever the server is — a standalone geokeeper leader, a
//! gateway following an Apache ZooKeeper ensemble, or an observer re-publishing in its
//! room. It ships the same ZooKeeper transaction records in every case.
//!
//! Each subscriber says the last zxid it has; the publisher answers with the
//! transactions after it (from its in-memory tail or its log files) or, when it no
//! longer has them or they are too many, with its newest snapshot file (in chunks, each
//! checksummed, resumable from the last whole chunk) followed by the transactions after
//! the snapshot, then `UpToDate`, then the live stream. Each subscriber has its own task
//! and queue: snapshot bytes and slow readers delay nobody else, and a subscriber whose
//! queue grows past its bound is dropped (it comes back and catches up).
//!
//! What a subscriber forwards (REQUEST, REVALIDATE, touches) goes to the core, which
//! commits it (a leader) or passes it up (an observer); the answers come back through
//! the log thread ([`Published::Answer`]), behind every transaction before them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use geokeeper_core::net::UpstreamMsg;
use geokeeper_core::proto::txn::LogEntry;
use geokeeper_core::publish::{entry_time, Published, SubscriberAnswer};
use geokeeper_core::server::Input;
use geokeeper_core::{snapshot, txnlog};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn, Instrument};

use crate::quic::{admit, Identity};
use crate::wire::{self, Down, Resume, Up};

/// Close codes a publisher gives a subscriber it lets go.
pub const CLOSE_TOO_SLOW: u32 = 0x534c; // "SL"
pub const CLOSE_RESET: u32 = 0x5253; // "RS"
pub const CLOSE_NOT_IN_SYNC: u32 = 0x4e53; // "NS"
pub const CLOSE_PROTOCOL: u32 = 0x5052; // "PR"
pub const CLOSE_SHUTDOWN: u32 = 0x5344; // "SD"

#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// Where to listen (UDP).
    pub listen: SocketAddr,
    /// The identities of the replicas allowed to subscribe.
    pub allowed: HashSet<Identity>,
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The last zxid durable here when the publisher starts.
    pub start_zxid: i64,
    /// This server is the leader (standalone): always in sync with itself.
    pub leader: bool,
    /// The leader's commit position is this server's own (a leader, or a gateway whose
    /// transactions carry the Java leader's times); otherwise the observer driver keeps
    /// the clock from its upstream's heartbeats.
    pub own_clock: bool,
    /// Transactions kept in memory for diffs.
    pub retain_txns: usize,
    /// A subscriber further behind than this gets a snapshot instead of a diff.
    pub diff_max_txns: u64,
    /// Bytes a subscriber may leave queued before it is dropped.
    pub buffer_bytes: usize,
    /// How often heartbeats go out.
    pub heartbeat: Duration,
    /// Snapshot chunk size.
    pub chunk: usize,
}

impl PublisherSettings {
    pub fn new(listen: SocketAddr, snap_dir: PathBuf, log_dir: PathBuf) -> PublisherSettings {
        PublisherSettings {
            listen,
            allowed: HashSet::new(),
            snap_dir,
            log_dir,
            start_zxid: 0,
            leader: true,
            own_clock: true,
            retain_txns: 10_000,
            diff_max_txns: 100_000,
            buffer_bytes: 64 << 20,
            heartbeat: Duration::from_millis(500),
            chunk: 1 << 20,
        }
    }
}

pub use geokeeper_core::publish::LeaderClock;

/// What `mntr` shows of one subscriber, read live when `mntr` runs.
#[derive(Debug, Clone)]
pub struct SubscriberView {
    pub identity: String,
    pub addr: SocketAddr,
    sent: Arc<AtomicI64>,
    wire: Arc<AtomicU64>,
}

/// Counters for `mntr`.
#[derive(Debug, Default)]
pub struct PublisherStats {
    pub subscribers: Mutex<Vec<SubscriberView>>,
    /// The last zxid published.
    pub last_zxid: AtomicI64,
    pub bytes_wire: AtomicU64,
    pub bytes_raw: AtomicU64,
    pub snapshots_sent: AtomicU64,
    pub diffs_sent: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub refused: AtomicU64,
}

/// One item of a subscriber's live queue.
#[derive(Debug)]
enum Live {
    Txns(Arc<[LogEntry]>),
    Answer(SubscriberAnswer),
}

struct Sub {
    tx: mpsc::UnboundedSender<Live>,
    queued: Arc<AtomicUsize>,
    sent: Arc<AtomicI64>,
    stop: Option<oneshot::Sender<(u32, String)>>,
    identity: Identity,
    addr: SocketAddr,
    wire: Arc<AtomicU64>,
}

/// How a subscriber catches up, decided when it registers.
struct Plan {
    /// The publisher's last zxid then: the live queue starts after it.
    to: i64,
    /// The tail's entries after the subscriber's zxid, when the tail has them all.
    tail: Option<Vec<LogEntry>>,
    live: mpsc::UnboundedReceiver<Live>,
    queued: Arc<AtomicUsize>,
    sent: Arc<AtomicI64>,
    stop: oneshot::Receiver<(u32, String)>,
    wire: Arc<AtomicU64>,
}

enum Cmd {
    Subscribe {
        id: u64,
        identity: Identity,
        addr: SocketAddr,
        last_zxid: i64,
        reply: oneshot::Sender<Result<Plan, String>>,
    },
    Gone(u64),
}

/// Runs the publisher until `shutdown`.
pub async fn run(
    s: PublisherSettings,
    server_config: quinn::ServerConfig,
    mut published: mpsc::UnboundedReceiver<Published>,
    core: mpsc::UnboundedSender<UpstreamMsg>,
    clock: Arc<LeaderClock>,
    stats: Arc<PublisherStats>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let endpoint = quinn::Endpoint::server(server_config, s.listen)?;
    info!(addr = %s.listen, allowed = s.allowed.len(), "relay publisher listening");
    let s = Arc::new(s);
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Cmd>();
    let mut hub = Hub {
        tail: VecDeque::new(),
        last: s.start_zxid,
        in_sync: s.leader,
        subs: HashMap::new(),
        s: s.clone(),
        clock: clock.clone(),
        stats: stats.clone(),
    };
    if s.own_clock {
        clock.set(s.start_zxid, 0);
    }
    stats.last_zxid.store(s.start_zxid, Ordering::Relaxed);
    let mut next_id = 1u64;
    loop {
        tokio::select! {
            p = published.recv() => {
                let Some(p) = p else { break };
                hub.published(p);
                stats.last_zxid.store(hub.last, Ordering::Relaxed);
            }
            Some(c) = cmd_rx.recv() => {
                hub.command(c);
                hub.refresh_views();
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let id = next_id;
                next_id += 1;
                let ctx = SubCtx {
                    id,
                    s: s.clone(),
                    cmds: cmd_tx.clone(),
                    core: core.clone(),
                    clock: clock.clone(),
                    stats: stats.clone(),
                };
                let span = tracing::info_span!("subscriber", id, remote = %incoming.remote_address());
                tokio::spawn(async move {
                    let allowed = ctx.s.allowed.clone();
                    let (conn, identity) = match admit(incoming, &allowed).await {
                        Ok(x) => x,
                        Err(_) => {
                            ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let cmds = ctx.cmds.clone();
                    subscriber(ctx, conn, identity).await;
                    let _ = cmds.send(Cmd::Gone(id));
                }.instrument(span));
            }
            _ = shutdown.changed() => break,
        }
    }
    hub.drop_all(CLOSE_SHUTDOWN, "the publisher is shutting down");
    endpoint.close(CLOSE_SHUTDOWN.into(), b"shutting down");
    Ok(())
}

struct Hub {
    tail: VecDeque<LogEntry>,
    last: i64,
    in_sync: bool,
    subs: HashMap<u64, Sub>,
    s: Arc<PublisherSettings>,
    clock: Arc<LeaderClock>,
    stats: Arc<PublisherStats>,
}

impl Hub {
    fn published(&mut self, p: Published) {
        match p {
            Published::Txns(batch) => {
                let Some(last) = batch.last() else { return };
                self.last = last.zxid;
                // The server's log thread moved the clock as it published this batch
                // (`core::net::Settings::own_clock`); a publisher fed otherwise has only
                // this. Never backwards, so the later of the two is what heartbeats say.
                if self.s.own_clock {
                    self.clock.set(last.zxid, entry_time(last).unwrap_or(0));
                }
                for e in batch.iter() {
                    self.tail.push_back(e.clone());
                }
                while self.tail.len() > self.s.retain_txns {
                    self.tail.pop_front();
                }
                let bytes: usize = batch.iter().map(|e| e.bytes.len() + 12).sum();
                let limit = self.s.buffer_bytes;
                let mut slow = Vec::new();
                for (&id, sub) in &self.subs {
                    let q = sub.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
                    if q > limit || sub.tx.send(Live::Txns(batch.clone())).is_err() {
                        slow.push(id);
                    }
                }
                for id in slow {
                    self.stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    self.drop_sub(
                        id,
                        CLOSE_TOO_SLOW,
                        format!("more than {limit} bytes queued: too slow; catch up again"),
                    );
                }
            }
            Published::Answer { sub, answer } => {
                if let Some(s) = self.subs.get(&sub) {
                    let _ = s.tx.send(Live::Answer(answer));
                }
            }
            Published::Reset { zxid } => {
                info!(
                    zxid = format_args!("{zxid:#x}"),
                    "a new tree was installed here: subscribers start again"
                );
                self.tail.clear();
                self.last = zxid;
                self.drop_all(CLOSE_RESET, "the publisher installed a new tree");
            }
            Published::Upstream { in_sync } => {
                if self.s.leader || in_sync == self.in_sync {
                    return;
                }
                self.in_sync = in_sync;
                if !in_sync {
                    self.drop_all(CLOSE_NOT_IN_SYNC, "the publisher lost its own upstream");
                }
            }
        }
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Subscribe {
                id,
                identity,
                addr,
                last_zxid,
                reply,
            } => {
                let r = self.subscribe(id, identity, addr, last_zxid);
                let _ = reply.send(r);
            }
            Cmd::Gone(id) => {
                self.subs.remove(&id);
            }
        }
    }

    fn subscribe(
        &mut self,
        id: u64,
        identity: Identity,
        addr: SocketAddr,
        last_zxid: i64,
    ) -> Result<Plan, String> {
        if !self.in_sync {
            return Err("this publisher is not in sync with its own upstream".into());
        }
        if last_zxid > self.last {
            return Err(format!(
                "the subscriber has zxid {last_zxid:#x}, ahead of this publisher's {:#x}",
                self.last
            ));
        }
        let tail = if last_zxid == self.last {
            Some(Vec::new())
        } else {
            match self.tail.front() {
                Some(f) if f.zxid <= last_zxid + 1 => Some(
                    self.tail
                        .iter()
                        .filter(|e| e.zxid > last_zxid)
                        .cloned()
                        .collect(),
                ),
                _ => None,
            }
        };
        let (tx, live) = mpsc::unbounded_channel();
        let (stop_tx, stop) = oneshot::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicI64::new(last_zxid));
        let wire = Arc::new(AtomicU64::new(0));
        self.subs.insert(
            id,
            Sub {
                tx,
                queued: queued.clone(),
                sent: sent.clone(),
                stop: Some(stop_tx),
                identity,
                addr,
                wire: wire.clone(),
            },
        );
        Ok(Plan {
            to: self.last,
            tail,
            live,
            queued,
            sent,
            stop,
            wire,
        })
    }

    fn drop_sub(&mut self, id: u64, code: u32, reason: String) {
        if let Some(mut s) = self.subs.remove(&id) {
            warn!(subscriber = %s.identity, "dropping subscriber: {reason}");
            if let Some(stop) = s.stop.take() {
                let _ = stop.send((code, reason));
            }
        }
    }

    fn drop_all(&mut self, code: u32, reason: &str) {
        let ids: Vec<u64> = self.subs.keys().copied().collect();
        for id in ids {
            self.drop_sub(id, code, reason.to_string());
        }
    }

    fn refresh_views(&self) {
        let views = self
            .subs
            .values()
            .map(|s| SubscriberView {
                identity: format!("{}@{}", s.identity.node, s.identity.room),
                addr: s.addr,
                sent: s.sent.clone(),
                wire: s.wire.clone(),
            })
            .collect();
        if let Ok(mut v) = self.stats.subscribers.lock() {
            *v = views;
        }
    }
}

struct SubCtx {
    id: u64,
    s: Arc<PublisherSettings>,
    cmds: mpsc::UnboundedSender<Cmd>,
    core: mpsc::UnboundedSender<UpstreamMsg>,
    clock: Arc<LeaderClock>,
    stats: Arc<PublisherStats>,
}

#[derive(Debug, thiserror::Error)]
enum SubError {
    #[error("connection: {0}")]
    Conn(#[from] quinn::ConnectionError),
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("read: {0}")]
    Read(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Wire(#[from] wire::WireError),
    #[error("{0}")]
    Other(String),
    #[error("let go ({code:#x}): {reason}")]
    Closed { code: u32, reason: String },
}

/// Reads one frame from a QUIC receive stream; `None` at its clean end.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<(u8, Bytes)>, FrameError> {
    loop {
        if let Some(f) = wire::split_frame(buf)? {
            return Ok(Some(f));
        }
        let n = recv.read_buf(buf).await?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside a frame",
            )));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wire(#[from] wire::WireError),
}

impl From<FrameError> for SubError {
    fn from(e: FrameError) -> SubError {
        match e {
            FrameError::Io(e) => SubError::Read(e),
            FrameError::Wire(e) => SubError::Wire(e),
        }
    }
}

async fn subscriber(ctx: SubCtx, conn: quinn::Connection, identity: Identity) {
    let addr = conn.remote_address();
    match serve_subscriber(&ctx, &conn, identity.clone(), addr).await {
        Ok(()) => {}
        Err(SubError::Conn(e)) => info!(subscriber = %identity, "subscriber gone: {e}"),
        Err(SubError::Closed { code, reason }) => {
            conn.close(code.into(), reason.as_bytes());
        }
        Err(SubError::Wire(e)) => {
            warn!(subscriber = %identity, "subscriber sent a bad frame: {e}; closing");
            conn.close(CLOSE_PROTOCOL.into(), e.to_string().as_bytes());
        }
        Err(e) => {
            info!(subscriber = %identity, "subscriber stream ended: {e}");
            conn.close(CLOSE_PROTOCOL.into(), e.to_string().as_bytes());
        }
    }
}

async fn serve_subscriber(
    ctx: &SubCtx,
    conn: &quinn::Connection,
    identity: Identity,
    addr: SocketAddr,
) -> Result<(), SubError> {
    let (mut send, mut recv) = conn.accept_bi().await?;
    let mut rbuf = BytesMut::new();
    let (kind, body) = read_frame(&mut recv, &mut rbuf)
        .await?
        .ok_or_else(|| SubError::Other("the stream ended before Hello".into()))?;
    let (last_zxid, resume, version) = match Up::decode(kind, &body)? {
        Up::Hello {
            version,
            last_zxid,
            resume,
        } => {
            if !(wire::MIN_VERSION..=wire::VERSION).contains(&version) {
                return Err(SubError::Other(format!(
                    "protocol version {version}, this publisher speaks {} to {}",
                    wire::MIN_VERSION,
                    wire::VERSION
                )));
            }
            (last_zxid, resume, version)
        }
        other => {
            return Err(SubError::Other(format!(
                "the first frame must be Hello, not {other:?}"
            )))
        }
    };
    let (reply, plan) = oneshot::channel();
    let _ = ctx.cmds.send(Cmd::Subscribe {
        id: ctx.id,
        identity: identity.clone(),
        addr,
        last_zxid,
        reply,
    });
    let plan = match plan.await {
        Ok(Ok(p)) => p,
        Ok(Err(why)) => {
            info!(subscriber = %identity, "subscriber refused: {why}");
            ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
            conn.close(CLOSE_NOT_IN_SYNC.into(), why.as_bytes());
            return Ok(());
        }
        Err(_) => return Err(SubError::Other("the publisher stopped".into())),
    };
    // Requests from the subscriber go to the core as they come.
    let reader = tokio::spawn(read_upstream(
        recv,
        rbuf,
        ctx.id,
        ctx.core.clone(),
        identity.clone(),
    ));
    // Heartbeats go out as datagrams on a timer of their own, whatever the stream is
    // doing: a subscriber whose stream is backlogged (the publisher waiting in a write)
    // still learns how far behind the leader it is. Without datagrams (a peer that does
    // not take them) they go in-band, between the stream's batches.
    let beats = conn
        .max_datagram_size()
        .map(|_| tokio::spawn(heartbeats(ctx.heartbeat_source(), conn.clone())));
    let z = if version >= 2 {
        Some(wire::TxnStream::new().map_err(|e| SubError::Other(format!("zstd: {e}")))?)
    } else {
        None
    };
    let mut out = Out {
        send: &mut send,
        wire: plan.wire.clone(),
        stats: ctx.stats.clone(),
        stream: z,
    };
    let r = stream(
        ctx,
        &mut out,
        plan,
        last_zxid,
        resume,
        &identity,
        beats.is_none(),
    )
    .await;
    reader.abort();
    if let Some(b) = beats {
        b.abort();
    }
    r
}

/// What a heartbeat is made of: the leader's clock and how far this publisher is.
#[derive(Clone)]
struct HeartbeatSource {
    clock: Arc<LeaderClock>,
    stats: Arc<PublisherStats>,
    every: Duration,
}

impl HeartbeatSource {
    fn frame(&self) -> Down {
        Down::Heartbeat {
            leader_zxid: self.clock.zxid.load(Ordering::Relaxed),
            leader_time_ms: self.clock.time_ms.load(Ordering::Relaxed),
            publisher_zxid: self.stats.last_zxid.load(Ordering::Relaxed),
        }
    }
}

impl SubCtx {
    fn heartbeat_source(&self) -> HeartbeatSource {
        HeartbeatSource {
            clock: self.clock.clone(),
            stats: self.stats.clone(),
            every: self.s.heartbeat,
        }
    }
}

/// Sends a heartbeat datagram every `every` until the connection ends. A datagram is
/// off the ordered stream: it reaches the subscriber ahead of any data queued or being
/// retransmitted there, so the subscriber sees how far behind the leader it is, transit
/// and queueing included.
async fn heartbeats(src: HeartbeatSource, conn: quinn::Connection) {
    let mut tick = tokio::time::interval(src.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut b = BytesMut::new();
        src.frame().encode(&mut b);
        match conn.send_datagram(b.freeze()) {
            Ok(()) => {}
            Err(quinn::SendDatagramError::ConnectionLost(_)) => return,
            Err(e) => {
                warn!(peer = %conn.remote_address(), "a heartbeat datagram was not sent: {e}");
            }
        }
    }
}

struct Out<'a> {
    send: &'a mut quinn::SendStream,
    wire: Arc<AtomicU64>,
    stats: Arc<PublisherStats>,
    /// The connection's compression stream (a version 2 subscriber).
    stream: Option<wire::TxnStream>,
}

impl Out<'_> {
    async fn frames(&mut self, frames: &[Down]) -> Result<(), SubError> {
        let mut b = BytesMut::new();
        let mut sizes = wire::Sizes::default();
        for f in frames {
            let s = f
                .encode_with(&mut b, self.stream.as_mut())
                .map_err(|e| SubError::Other(format!("zstd stream: {e}")))?;
            sizes.wire += s.wire;
            sizes.raw += s.raw;
        }
        self.wire.fetch_add(sizes.wire as u64, Ordering::Relaxed);
        self.stats
            .bytes_wire
            .fetch_add(sizes.wire as u64, Ordering::Relaxed);
        self.stats
            .bytes_raw
            .fetch_add(sizes.raw as u64, Ordering::Relaxed);
        self.send.write_all(&b).await?;
        Ok(())
    }
}

/// Catch-up, then the live stream, until the hub lets the subscriber go or the
/// connection ends.
async fn stream(
    ctx: &SubCtx,
    out: &mut Out<'_>,
    mut plan: Plan,
    last_zxid: i64,
    resume: Option<Resume>,
    identity: &Identity,
    in_band_heartbeats: bool,
) -> Result<(), SubError> {
    let to = plan.to;
    let mut sent = last_zxid;
    let catch_up = match plan.tail.take() {
        Some(entries) => {
            info!(subscriber = %identity, from = format_args!("{last_zxid:#x}"), to = format_args!("{to:#x}"), txns = entries.len(), "diff from memory");
            Some(entries)
        }
        // Across epochs the count is unknown until the log is read: it decides, and a diff
        // longer than diffMaxTxns is a snapshot's job all the same.
        None if to >> 32 != last_zxid >> 32 || (to - last_zxid) as u64 <= ctx.s.diff_max_txns => {
            let entries = diff_from_disk(&ctx.s, last_zxid, to)
                .await
                .filter(|e| e.len() as u64 <= ctx.s.diff_max_txns);
            if let Some(e) = &entries {
                info!(subscriber = %identity, from = format_args!("{last_zxid:#x}"), to = format_args!("{to:#x}"), txns = e.len(), "diff from the log");
            }
            entries
        }
        None => None,
    };
    let entries = match catch_up {
        Some(e) => {
            ctx.stats.diffs_sent.fetch_add(1, Ordering::Relaxed);
            e
        }
        None => {
            let zxid = send_snapshot(ctx, out, resume, identity).await?;
            sent = zxid;
            ctx.stats.snapshots_sent.fetch_add(1, Ordering::Relaxed);
            if zxid >= to {
                Vec::new()
            } else {
                diff_from_disk(&ctx.s, zxid, to).await.ok_or_else(|| {
                    SubError::Other(format!(
                        "the log does not hold every transaction from the snapshot at {zxid:#x} to {to:#x}"
                    ))
                })?
            }
        }
    };
    for chunk in entries.chunks(1000) {
        out.frames(&[Down::Txns(chunk.to_vec())]).await?;
        if let Some(l) = chunk.last() {
            sent = l.zxid;
        }
    }
    plan.sent.store(sent.max(last_zxid), Ordering::Relaxed);
    let beat = ctx.heartbeat_source();
    out.frames(&[beat.frame(), Down::UpToDate { zxid: sent }])
        .await?;
    let mut tick = tokio::time::interval(ctx.s.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut items = Vec::new();
    loop {
        tokio::select! {
            biased;
            stop = &mut plan.stop => {
                return match stop {
                    Ok((code, reason)) => Err(SubError::Closed { code, reason }),
                    Err(_) => Ok(()),
                };
            }
            n = plan.live.recv_many(&mut items, 256) => {
                if n == 0 {
                    return Ok(());
                }
                let mut frames = Vec::new();
                let mut batch: Vec<LogEntry> = Vec::new();
                let mut bytes = 0usize;
                for item in items.drain(..) {
                    match item {
                        Live::Txns(t) => {
                            bytes += t.iter().map(|e| e.bytes.len() + 12).sum::<usize>();
                            batch.extend(t.iter().filter(|e| e.zxid > sent).cloned());
                            if let Some(l) = batch.last() {
                                sent = l.zxid;
                            }
                        }
                        Live::Answer(a) => {
                            if !batch.is_empty() {
                                frames.push(Down::Txns(std::mem::take(&mut batch)));
                            }
                            frames.push(match a {
                                SubscriberAnswer::Synced => Down::Synced,
                                SubscriberAnswer::Revalidated { session, valid } => {
                                    Down::Revalidated { session, valid }
                                }
                            });
                        }
                    }
                }
                if !batch.is_empty() {
                    frames.push(Down::Txns(batch));
                }
                out.frames(&frames).await?;
                plan.queued.fetch_sub(bytes, Ordering::Relaxed);
                plan.sent.store(sent, Ordering::Relaxed);
            }
            _ = tick.tick(), if in_band_heartbeats => {
                out.frames(&[beat.frame()]).await?;
            }
        }
    }
}

/// Forwards what the subscriber sends to the core until the stream ends.
async fn read_upstream(
    mut recv: quinn::RecvStream,
    mut buf: BytesMut,
    sub: u64,
    core: mpsc::UnboundedSender<UpstreamMsg>,
    identity: Identity,
) {
    loop {
        let (kind, body) = match read_frame(&mut recv, &mut buf).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                debug!(subscriber = %identity, "subscriber's stream: {e}");
                return;
            }
        };
        let input = match Up::decode(kind, &body) {
            Ok(Up::Forward(packet)) => Input::FromSubscriber { sub, packet },
            Ok(Up::Touch(sessions)) => Input::SubscriberTouch(sessions),
            Ok(Up::Hello { .. }) => {
                warn!(subscriber = %identity, "a second Hello; ignored");
                continue;
            }
            Err(e) => {
                warn!(subscriber = %identity, "a bad frame from the subscriber: {e}");
                return;
            }
        };
        if core.send(UpstreamMsg::Input(input)).is_err() {
            return;
        }
    }
}

/// The transactions in (`from`, `to`] from the log files, if they hold all of them.
async fn diff_from_disk(s: &PublisherSettings, from: i64, to: i64) -> Option<Vec<LogEntry>> {
    // A replica publishes what it receives as it hands it to its log: the last batch
    // published may still be on its way to the file. Give it the time of a slow fsync.
    let mut waited = Duration::ZERO;
    loop {
        match read_diff(s, from, to).await {
            Diff::Whole(e) => return Some(e),
            Diff::Short if waited < LOG_CATCH_UP => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            Diff::Short | Diff::Missing => return None,
        }
    }
}

/// How long a diff waits for the log to hold what was already published.
const LOG_CATCH_UP: Duration = Duration::from_secs(2);

enum Diff {
    /// Every transaction after `from` up to `to`.
    Whole(Vec<LogEntry>),
    /// The log follows on from `from` but ends before `to`.
    Short,
    /// The log does not follow on from `from`, or cannot be read.
    Missing,
}

async fn read_diff(s: &PublisherSettings, from: i64, to: i64) -> Diff {
    if from == to {
        return Diff::Whole(Vec::new());
    }
    let dir = s.log_dir.clone();
    let read = tokio::task::spawn_blocking(move || txnlog::read_log(&dir, from)).await;
    let entries = match read {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            warn!("cannot read the log for a diff: {e}");
            return Diff::Missing;
        }
        Err(_) => return Diff::Missing,
    };
    let mut out = Vec::new();
    let mut prev = from;
    for e in entries {
        if e.zxid > to {
            break;
        }
        let follows =
            e.zxid == prev + 1 || ((e.zxid >> 32) > (prev >> 32) && (e.zxid & 0xffff_ffff) <= 1);
        if !follows {
            return Diff::Missing;
        }
        prev = e.zxid;
        out.push(LogEntry {
            zxid: e.zxid,
            bytes: Bytes::from(e.bytes),
        });
    }
    if prev == to {
        Diff::Whole(out)
    } else {
        Diff::Short
    }
}

/// Sends the newest snapshot file (or resumes the one the subscriber holds part of);
/// returns its zxid.
async fn send_snapshot(
    ctx: &SubCtx,
    out: &mut Out<'_>,
    resume: Option<Resume>,
    identity: &Identity,
) -> Result<i64, SubError> {
    let dir = ctx.s.snap_dir.clone();
    let files = tokio::task::spawn_blocking(move || snapshot::snapshot_files(&dir))
        .await
        .map_err(|e| SubError::Other(e.to_string()))??;
    let valid: Vec<(i64, PathBuf)> = files
        .into_iter()
        .filter(|(_, p)| snapshot::looks_valid(p))
        .collect();
    let (zxid, path) = valid
        .first()
        .cloned()
        .ok_or_else(|| SubError::Other("no snapshot to send".into()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut file = tokio::fs::File::open(&path).await?;
    let size = file.metadata().await?.len();
    let mut offset = 0;
    if let Some(r) = resume.filter(|r| r.name == name && r.size == size && r.offset <= size) {
        offset = r.offset;
    }
    info!(
        subscriber = %identity,
        snapshot = %name,
        size,
        from = offset,
        "sending a snapshot"
    );
    use tokio::io::AsyncSeekExt;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    out.frames(&[Down::SnapBegin {
        name,
        zxid,
        size,
        offset,
    }])
    .await?;
    let mut buf = vec![0u8; ctx.s.chunk.max(1024)];
    while offset < size {
        let want = ((size - offset) as usize).min(buf.len());
        file.read_exact(&mut buf[..want]).await?;
        let data = Bytes::copy_from_slice(&buf[..want]);
        let crc = crc32fast::hash(&data);
        out.frames(&[Down::SnapChunk { offset, crc, data }]).await?;
        offset += want as u64;
    }
    out.frames(&[Down::SnapEnd]).await?;
    Ok(zxid)
}

impl PublisherStats {
    /// `mntr` lines (keys without `zk_`): totals, then each subscriber's position.
    pub fn mntr_lines(&self) -> Vec<(String, String)> {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let subs = self
            .subscribers
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let mut v = vec![
            ("relay_subscribers".to_string(), subs.len().to_string()),
            ("relay_bytes_out".into(), n(&self.bytes_wire)),
            ("relay_bytes_out_uncompressed".into(), n(&self.bytes_raw)),
            ("relay_diffs_sent".into(), n(&self.diffs_sent)),
            ("relay_snapshots_sent".into(), n(&self.snapshots_sent)),
            (
                "relay_subscribers_dropped_slow".into(),
                n(&self.dropped_slow),
            ),
            ("relay_subscribers_refused".into(), n(&self.refused)),
        ];
        let last = self.last_zxid.load(Ordering::Relaxed);
        for s in subs {
            let key = format!("relay_subscriber_{}", s.identity.replace('@', "_"));
            let sent = s.sent.load(Ordering::Relaxed);
            // Across an epoch change the count is unknown: -1.
            let lag = if sent >> 32 == last >> 32 {
                (last - sent).max(0)
            } else {
                -1
            };
            v.push((format!("{key}_addr"), s.addr.to_string()));
            v.push((format!("{key}_zxid"), format!("0x{sent:x}")));
            v.push((format!("{key}_lag_txns"), lag.to_string()));
            v.push((
                format!("{key}_bytes_out"),
                s.wire.load(Ordering::Relaxed).to_string(),
            ));
        }
        v
    }
}
