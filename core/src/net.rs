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
//! (ZooKeeper's "Len error"); nothing else is affected. A connection that opens with a
//! four-letter word instead of a ConnectRequest gets the word's text from the core task and
//! is closed ([`crate::four_letter`]).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::{debug, error, info, warn, Instrument};

use crate::four_letter::{self, FourLetterSettings, Host, Socket, Word};
use crate::limits::{
    answers_counted_request, ClientLimits, ConnLimits, ConnSlot, ConnThrottle, Throttle,
};
use crate::proto::frame;
use crate::publish::{LeaderClock, Published};
use crate::server::{Clock, ConnId, Input, LogEntry, Output, Server};
use crate::storage::TxnLog;

/// What the driver needs besides the state machine.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// `jute.maxbuffer`: the largest frame accepted.
    pub max_buffer: usize,
    /// How often containers and TTL nodes are checked (`znode.container.checkIntervalMs`).
    pub container_check_interval: Duration,
    /// Where snapshots go and how often (`None`: no snapshots, as with an in-memory log).
    pub snapshots: Option<SnapshotSettings>,
    /// The four-letter words' whitelist and what `conf` reports.
    pub four_letter: FourLetterSettings,
    /// `maxClientCnxns`, `maxCnxns`, `globalOutstandingLimit` and the longest buffer or
    /// string a record may hold.
    pub limits: ClientLimits,
    /// Where the log thread publishes what it made durable, for the relay's subscribers.
    pub publish: Option<mpsc::UnboundedSender<Published>>,
    /// The leader's clock when this server keeps it itself (a leader, a gateway): the log
    /// thread moves it as it publishes, so that heartbeats tell subscribers where the log
    /// is, not how far the publisher's task has got with its queue.
    pub own_clock: Option<Arc<LeaderClock>>,
}

#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// `dataDir/version-2`.
    pub dir: std::path::PathBuf,
    /// `snapCount`: a snapshot after snapCount/2 plus a random share of snapCount/2
    /// transactions, so that replicas do not all snapshot at once (`SyncRequestProcessor`).
    pub snap_count: u64,
    /// `snapSizeLimitInKb` in bytes: also a snapshot after about this much log (half of
    /// it plus a random share of the other half). `None`: no limit by size.
    pub snap_size_limit: Option<u64>,
    /// Take one as soon as the server starts (after a restore that replayed the log).
    pub at_start: bool,
    /// `zookeeper.snapshot.compression.method`.
    pub compression: crate::snapshot::Compression,
}

/// A replica's link to the ensemble it follows (the gateway's learner link): it feeds
/// the core committed transactions and the leader's answers, and takes the packets the
/// core has for the leader.
pub struct Upstream {
    pub inputs: mpsc::UnboundedReceiver<UpstreamMsg>,
    pub to_leader: mpsc::UnboundedSender<ToUpstream>,
}

/// What the link tells the core.
#[derive(Debug)]
pub enum UpstreamMsg {
    Input(Input),
    /// The sessions touched since the last call, for a PING reply.
    TakeTouched(oneshot::Sender<Vec<(i64, i32)>>),
    /// The last zxid handed to the log: where the next sync starts.
    LastReceived(oneshot::Sender<i64>),
}

/// What the core tells the link.
#[derive(Debug)]
pub enum ToUpstream {
    Packet(crate::proto::quorum::QuorumPacket),
    /// Drop the link and sync again from an empty data directory.
    Resync(String),
}

/// What the log thread is told, in order.
enum LogCmd {
    Append(Vec<LogEntry>, u64),
    /// End the log file; batches of a generation below this one are void.
    Roll(u64),
    /// For the subscribers, behind every batch before it.
    Publish(Published),
}

/// What the snapshot writer thread is told.
enum SnapMsg {
    Begin {
        zxid: i64,
        start: Vec<u8>,
    },
    Nodes(Vec<u8>),
    Finish {
        acl_map: Vec<u8>,
        zxid_digest: (i64, i64),
    },
    /// The snapshot in progress is void.
    Abort,
}

enum Msg {
    Input(Input),
    Register {
        conn: ConnId,
        peer: SocketAddr,
        direct: Direct,
        /// Told the session id once the handshake is done.
        ready: oneshot::Sender<i64>,
    },
    /// The connection opened with a four-letter word: answer it and close.
    FourLetter {
        conn: ConnId,
        word: Word,
        /// `stmk`'s mask.
        arg: Option<i64>,
        host: Host,
    },
    /// The log rolled to a new file: time for a snapshot.
    StartSnapshot,
    /// A connection's writer brought its unread bytes back under the bound while the core
    /// held requests of it: go on with them.
    Drained {
        conn: ConnId,
    },
}

/// What the core hands a connection's writer task: frames in order, then perhaps the
/// close. Lighter than a channel: an idle connection holds an empty deque and nothing
/// preallocated.
struct Outbox {
    state: std::sync::Mutex<OutboxState>,
    wake: Notify,
    /// Frames handed over and not yet written. Only the core adds (before it hands one
    /// over) and only the writer subtracts (after writing), so zero means the socket is the
    /// core's to write.
    queued: AtomicUsize,
}

#[derive(Default)]
struct OutboxState {
    /// Bytes to write; `true`: they end with a reply to a request that is outstanding
    /// until written.
    frames: VecDeque<(Bytes, bool)>,
    closed: bool,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            state: std::sync::Mutex::new(OutboxState::default()),
            wake: Notify::new(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        // A writer that panicked left nothing half-changed: the deque is whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: Bytes, counted: bool) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        st.frames.push_back((bytes, counted));
        drop(st);
        self.wake.notify_one();
    }

    /// Nothing more will be handed over; the writer ends once it has written the rest.
    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Waits for frames and moves up to 64 into `into`; false once closed and empty.
    async fn take(&self, into: &mut Vec<(Bytes, bool)>) -> bool {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut st = self.lock();
                if !st.frames.is_empty() {
                    let n = st.frames.len().min(64);
                    into.extend(st.frames.drain(..n));
                    if st.frames.is_empty() && st.frames.capacity() > 16 {
                        st.frames = VecDeque::new();
                    }
                    return true;
                }
                if st.closed {
                    return false;
                }
            }
            woken.await;
        }
    }
}

/// The core's own way to a connection's socket. Replies go out from the core with one
/// non-blocking write when the connection's writer task has nothing queued (no task wake,
/// no copy); whatever the socket does not take, and everything after it until the writer
/// has caught up, goes through the writer task, so a connection's bytes stay in order.
struct Direct {
    wr: Arc<OwnedWriteHalf>,
    outbox: Arc<Outbox>,
    throttle: Arc<ConnThrottle>,
}

struct ConnHandle {
    direct: Direct,
    ready: Option<oneshot::Sender<i64>>,
    peer: SocketAddr,
    accepted: Clock,
    four_letter: bool,
    /// Requests read while the client had more unread bytes than its bound: they go to
    /// the core, in order, once the writer has caught up ([`ConnThrottle::hold`]).
    held: VecDeque<Input>,
}

impl Drop for ConnHandle {
    /// However the core lets a connection go, its writer flushes and ends.
    fn drop(&mut self) {
        self.direct.outbox.close();
    }
}

impl ConnHandle {
    /// Hands bytes to the writer task.
    fn queue(&self, bytes: Bytes, counted: bool) {
        self.direct.outbox.push(bytes, counted);
    }

    /// Lets the connection go: the writer flushes what it has and ends.
    fn close(&self) {
        self.direct.outbox.close();
    }

    /// Sends reply and event frames (this connection's run of the batch), in order:
    /// straight to the socket while it takes them and nothing is queued, the rest through
    /// the writer task. True when the core held requests of this connection and the
    /// bytes written here brought it back under its bound.
    #[must_use]
    fn deliver(&self, frames: &[(ConnId, Bytes)]) -> bool {
        let mut at = FramePos::default();
        if self.direct.outbox.queued.load(Ordering::Acquire) == 0 {
            // Until the socket is full, or broken: the writer task then waits for room,
            // or fails and ends the connection.
            while at.frame < frames.len() {
                if try_write_frames(&self.direct.wr, frames, |f| &f.1, &mut at).is_err() {
                    break;
                }
            }
        }
        let (i, off) = (at.frame, at.offset);
        let throttle = &self.direct.throttle;
        let mut written = off;
        for (_, f) in &frames[..i] {
            written += f.len();
            if answers_counted_request(f) {
                throttle.reply_written();
            }
        }
        for (k, (_, f)) in frames[i..].iter().enumerate() {
            let counted = answers_counted_request(f);
            self.queue(if k == 0 { f.slice(off..) } else { f.clone() }, counted);
        }
        throttle.written(written)
    }
}

/// How far a run of frames has been written: whole frames, then bytes of the next.
#[derive(Default)]
struct FramePos {
    frame: usize,
    offset: usize,
}

/// One vectored, non-blocking write of what is left of `frames` (at most 64 of them).
/// Moves `at` past what the socket took; `WouldBlock` (a full socket) is an error like
/// any other, for the caller to wait or give up on.
fn try_write_frames<T>(
    wr: &OwnedWriteHalf,
    frames: &[T],
    bytes: impl Fn(&T) -> &Bytes,
    at: &mut FramePos,
) -> io::Result<()> {
    let mut slices = [io::IoSlice::new(&[]); 64];
    let rest = &frames[at.frame..];
    let n = rest.len().min(64);
    for (k, f) in rest[..n].iter().enumerate() {
        let b = bytes(f);
        slices[k] = io::IoSlice::new(if k == 0 { &b[at.offset..] } else { &b[..] });
    }
    let mut w = wr.try_write_vectored(&slices[..n])?;
    while w > 0 && at.frame < frames.len() {
        let left = bytes(&frames[at.frame]).len() - at.offset;
        if w >= left {
            w -= left;
            at.frame += 1;
            at.offset = 0;
        } else {
            at.offset += w;
            w = 0;
        }
    }
    Ok(())
}

/// The core task's side of the four-letter words.
struct FourLetterDriver {
    settings: Arc<FourLetterSettings>,
    state: four_letter::State,
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
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_replica(listener, server, log, settings, None, shutdown).await
}

/// [`serve`], for a server that follows an upstream (an observer) when `upstream` is
/// given.
pub async fn serve_replica(
    listener: TcpListener,
    server: Server,
    log: Box<dyn TxnLog>,
    settings: NetSettings,
    upstream: Option<Upstream>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let (core_tx, core_rx) = mpsc::unbounded_channel::<Msg>();
    let (log_tx, log_rx) = std::sync::mpsc::channel::<LogCmd>();
    // The log thread's reports (durable, failed, time for a snapshot) have their own
    // channel, which the core reads first: a write's reply does not queue behind reads.
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Msg>();
    let snap_count = settings.snapshots.as_ref().map(|s| s.snap_count);
    let snap_size_limit = settings.snapshots.as_ref().and_then(|s| s.snap_size_limit);
    let log_thread = spawn_log_thread(
        log,
        log_rx,
        done_tx,
        Publishing {
            to: settings.publish.clone(),
            clock: settings.own_clock.clone(),
            on_receipt: upstream.is_some(),
        },
        snap_count,
        snap_size_limit,
    )?;
    let snap_tx = match &settings.snapshots {
        Some(s) => Some(spawn_snapshot_thread(s.dir.clone(), s.compression)?),
        None => None,
    };
    let clocks = Clocks {
        start: Instant::now(),
    };
    let core = tokio::spawn(core_loop(
        server,
        core_rx,
        done_rx,
        log_tx,
        snap_tx,
        clocks,
        settings.clone(),
        upstream,
        shutdown.clone(),
    ));

    let four_letter = Arc::new(settings.four_letter.clone());
    let limits = &settings.limits;
    let mut admission = ConnLimits::new(limits.max_client_cnxns, limits.max_cnxns);
    let throttle = Throttle::new(limits.global_outstanding_limit);
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
                let Some(slot) = admission.admit(peer.ip(), clocks.now().mono_ms) else {
                    // `fastCloseSock`: closed at once with a reset, nothing sent.
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    continue;
                };
                let adm = Admitted {
                    _slot: slot,
                    // A client may leave at most jute.maxbuffer of replies unread (plus
                    // the one that crossed the line) before its requests are held.
                    throttle: throttle.connection(settings.max_buffer),
                    max_buffer: settings.max_buffer,
                    max_record_len: limits.max_record_len,
                    sessionless_cnxn_timeout: limits.sessionless_cnxn_timeout,
                };
                let conn = next_conn;
                next_conn += 1;
                let _ = stream.set_nodelay(true);
                let span = tracing::info_span!("conn", id = conn, %peer);
                tokio::spawn(connection(stream, conn, peer, core_tx.clone(), adm, four_letter.clone()).instrument(span));
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(core_tx);
    let _ = core.await;
    let _ = tokio::task::spawn_blocking(move || log_thread.join()).await;
    Ok(())
}

/// Where the log thread publishes, and when.
struct Publishing {
    to: Option<mpsc::UnboundedSender<Published>>,
    /// Moved to each batch as it is published, when the server keeps its own.
    clock: Option<Arc<LeaderClock>>,
    /// A replica's transactions are committed upstream before they reach it: it passes
    /// them on as it hands them to its log, not after its own fsync, so a chain of
    /// relays costs no fsync per hop on the way down (its own clients still read only
    /// what its log holds: it applies after the fsync). A leader publishes what its
    /// fsync made committed.
    on_receipt: bool,
}

fn spawn_log_thread(
    mut log: Box<dyn TxnLog>,
    rx: std::sync::mpsc::Receiver<LogCmd>,
    core: mpsc::UnboundedSender<Msg>,
    publishing: Publishing,
    snap_count: Option<u64>,
    snap_size_limit: Option<u64>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("txnlog".into())
        .spawn(move || {
            let Publishing {
                to: publish,
                clock,
                on_receipt,
            } = publishing;
            let publish_txns = |batch: Arc<[LogEntry]>| {
                if let Some(c) = &clock {
                    c.published(&batch);
                }
                if let Some(tx) = &publish {
                    let _ = tx.send(Published::Txns(batch));
                }
            };
            raise_priority("txnlog");
            // Timed waits of tens of microseconds need a timer slack below the default 50.
            // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer and touches no memory.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64) };
            let seed = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            let mut roll = SnapRoll::new(snap_count, snap_size_limit, seed);
            // Batches of a generation that failed are void: their zxids will be handed
            // out again, so none of them may reach the log. So are those before a roll
            // that installed a new tree.
            let mut void_below = 0u64;
            let mut last_batch = 0usize;
            // A command met while gathering a batch, for the next round.
            let mut pending: Option<LogCmd> = None;
            loop {
                let cmd = match pending.take() {
                    Some(c) => c,
                    None => match rx.recv() {
                        Ok(c) => c,
                        Err(_) => break,
                    },
                };
                let (mut batch, generation) = match cmd {
                    LogCmd::Append(b, g) => (b, g),
                    LogCmd::Roll(g) => {
                        void_below = void_below.max(g);
                        if let Err(e) = log.discard() {
                            // Old entries could be replayed over the new tree at the
                            // next start: the replica must not go on as if they were gone.
                            void_below = u64::MAX;
                            error!("cannot drop the old transaction log: {e}; no more writes are made durable");
                            let _ = core.send(Msg::Input(Input::LogFailed {
                                generation: g,
                                error: format!("cannot drop the old transaction log: {e}"),
                            }));
                        }
                        roll.reset();
                        continue;
                    }
                    LogCmd::Publish(p) => {
                        if let Some(tx) = &publish {
                            let _ = tx.send(p);
                        }
                        continue;
                    }
                };
                if generation < void_below {
                    continue;
                }
                // Group commit: everything that queued up while the last sync ran goes
                // into this one. When the last batch showed concurrent writers, linger
                // while their writes keep arriving (each gap under LINGER_GAP, at most
                // LINGER_MAX in all): fewer, larger fsyncs.
                let started = Instant::now();
                loop {
                    let more = match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
                        Err(std::sync::mpsc::TryRecvError::Empty) => {
                            let lingering = last_batch > 1
                                && batch.len() < last_batch.saturating_mul(2)
                                && started.elapsed() < LINGER_MAX;
                            if lingering {
                                rx.recv_timeout(LINGER_GAP).ok()
                            } else {
                                None
                            }
                        }
                    };
                    let Some(cmd) = more else { break };
                    match cmd {
                        LogCmd::Append(more, g) => {
                            if g >= void_below {
                                batch.extend(more);
                            }
                        }
                        other @ (LogCmd::Roll(_) | LogCmd::Publish(_)) => {
                            pending = Some(other);
                            break;
                        }
                    }
                }
                last_batch = batch.len();
                let Some(last) = batch.last().map(|e| e.zxid) else {
                    continue;
                };
                // Published before the core hears of it: whatever the core then
                // acknowledges or answers is behind it in every subscriber's stream.
                if on_receipt {
                    publish_txns(Arc::from(batch.clone()));
                }
                match log.append(&batch) {
                    Ok(()) => {
                        let bytes = batch.iter().map(|e| e.bytes.len() as u64).sum();
                        let n = batch.len() as u64;
                        if !on_receipt {
                            publish_txns(Arc::from(std::mem::take(&mut batch)));
                        }
                        if core
                            .send(Msg::Input(Input::Durable { zxid: last }))
                            .is_err()
                        {
                            return;
                        }
                        if roll.count(n, bytes) {
                            // The log rolls synchronously after the batch that crossed the
                            // line, so the next entry starts a new file, as in ZooKeeper.
                            log.roll();
                            let _ = core.send(Msg::StartSnapshot);
                        }
                    }
                    Err(e) => {
                        void_below = void_below.max(generation + 1);
                        let _ = core.send(Msg::Input(Input::LogFailed {
                            generation,
                            error: e.to_string(),
                        }));
                    }
                }
            }
        })
}

/// The log thread's queue.
type LogTx = std::sync::mpsc::Sender<LogCmd>;

/// Group commit lingering: the longest pause between arriving writes, and the longest wait.
const LINGER_GAP: Duration = Duration::from_micros(40);
const LINGER_MAX: Duration = Duration::from_micros(150);

/// Asks the kernel to run this thread ahead of busy ones (nice -10). The log thread
/// sleeps in fsync and needs the CPU only for a moment after it: when the request threads
/// and the clients keep every core busy, that moment otherwise waits for a time slice, and
/// every acknowledged write waits with it. Without the privilege it stays as it is.
fn raise_priority(name: &str) {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10)
    };
    if r != 0 {
        debug!(
            "{name} thread keeps its priority: {}",
            io::Error::last_os_error()
        );
    }
}

/// `SyncRequestProcessor.shouldSnapshot`: after snapCount/2 + rand[0, snapCount/2)
/// transactions, or once the log written since the last snapshot passes
/// snapSizeLimit/2 + rand[0, snapSizeLimit/2) bytes (`zookeeper.snapSizeLimitInKb`), so
/// that large values cannot grow the log, and the replay at restart, without bound.
/// ZooKeeper measures the log files' length on disk, preallocation included; this counts
/// the bytes of the entries written (ZooKeeper's entry framing included), which is what
/// the replay reads.
struct SnapRoll {
    snap_count: Option<u64>,
    size_limit: Option<u64>,
    since: u64,
    since_bytes: u64,
    threshold: u64,
    size_threshold: u64,
    seed: u64,
}

/// What one log entry takes in a log file besides its bytes: checksum, length, end mark.
const LOG_ENTRY_FRAMING: u64 = 8 + 4 + 1;

impl SnapRoll {
    fn new(snap_count: Option<u64>, size_limit: Option<u64>, seed: u64) -> SnapRoll {
        let mut r = SnapRoll {
            snap_count,
            size_limit: size_limit.filter(|_| snap_count.is_some()),
            since: 0,
            since_bytes: 0,
            threshold: 0,
            size_threshold: 0,
            seed: seed | 1,
        };
        r.reset();
        r
    }

    fn next_random(&mut self) -> u64 {
        // xorshift: the roll only has to differ between servers, not be strong.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    fn reset(&mut self) {
        self.since = 0;
        self.since_bytes = 0;
        if let Some(c) = self.snap_count {
            let half = (c / 2).max(1);
            self.threshold = half + self.next_random() % half;
        }
        if let Some(limit) = self.size_limit {
            let half = (limit / 2).max(1);
            self.size_threshold = half + self.next_random() % half;
        }
    }

    /// Counts a batch of `txns` entries holding `bytes` bytes; true when it is time for a
    /// snapshot.
    fn count(&mut self, txns: u64, bytes: u64) -> bool {
        if self.snap_count.is_none() {
            return false;
        }
        self.since += txns;
        self.since_bytes += bytes + txns * LOG_ENTRY_FRAMING;
        let by_size = self
            .size_limit
            .is_some_and(|_| self.since_bytes > self.size_threshold);
        if self.since > self.threshold || by_size {
            self.reset();
            return true;
        }
        false
    }
}

/// The snapshot thread's inbox, and how many node chunks wait in it.
struct SnapLink {
    tx: std::sync::mpsc::Sender<SnapMsg>,
    backlog: Arc<AtomicUsize>,
}

/// Node chunks the walk may run ahead of the snapshot thread: the walk pauses rather than
/// queue a whole tree's worth of bytes behind a slow disk.
const SNAP_BACKLOG: usize = 4;

impl SnapLink {
    fn send(&self, m: SnapMsg) {
        let chunk = matches!(m, SnapMsg::Nodes(_));
        if chunk {
            self.backlog.fetch_add(1, Ordering::AcqRel);
        }
        if self.tx.send(m).is_err() && chunk {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn behind(&self) -> bool {
        self.backlog.load(Ordering::Acquire) >= SNAP_BACKLOG
    }
}

fn spawn_snapshot_thread(
    dir: std::path::PathBuf,
    compression: crate::snapshot::Compression,
) -> io::Result<SnapLink> {
    let (tx, rx) = std::sync::mpsc::channel::<SnapMsg>();
    let backlog = Arc::new(AtomicUsize::new(0));
    let left = backlog.clone();
    std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            let mut current: Option<(i64, Vec<u8>, crate::snapshot::NodeSpool, Instant)> = None;
            while let Ok(m) = rx.recv() {
                match m {
                    SnapMsg::Begin { zxid, start } => {
                        match crate::snapshot::NodeSpool::create(&dir, zxid) {
                            Ok(spool) => current = Some((zxid, start, spool, Instant::now())),
                            Err(e) => {
                                error!("cannot start snapshot {zxid:#x}: {e}");
                                current = None;
                            }
                        }
                    }
                    SnapMsg::Nodes(b) => {
                        if let Some((zxid, _, spool, _)) = current.as_mut() {
                            if let Err(e) = spool.write(&b) {
                                error!("snapshot {zxid:#x} failed: {e}");
                                if let Some((_, _, spool, _)) = current.take() {
                                    spool.discard();
                                }
                            }
                        }
                        left.fetch_sub(1, Ordering::AcqRel);
                    }
                    SnapMsg::Abort => {
                        if let Some((zxid, _, spool, _)) = current.take() {
                            info!("snapshot {zxid:#x} abandoned: the tree was replaced");
                            spool.discard();
                        }
                    }
                    SnapMsg::Finish {
                        acl_map,
                        zxid_digest,
                    } => {
                        let Some((zxid, start, spool, t)) = current.take() else {
                            continue;
                        };
                        let r = spool.finish().and_then(|mut nodes| {
                            crate::snapshot::assemble(
                                &dir,
                                zxid,
                                &start,
                                &acl_map,
                                &mut nodes,
                                zxid_digest,
                                compression,
                            )
                        });
                        match r {
                            Ok(p) => info!(
                                "Snapshot taken in {} ms: {}",
                                t.elapsed().as_millis(),
                                p.display()
                            ),
                            Err(e) => error!("snapshot {zxid:#x} failed: {e}"),
                        }
                    }
                }
            }
        })?;
    Ok(SnapLink { tx, backlog })
}

#[allow(clippy::too_many_arguments)]
async fn core_loop(
    mut server: Server,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut done_rx: mpsc::UnboundedReceiver<Msg>,
    log_tx: LogTx,
    snap_tx: Option<SnapLink>,
    clocks: Clocks,
    settings: NetSettings,
    upstream: Option<Upstream>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut up_rx, up_tx) = match upstream {
        Some(u) => (Some(u.inputs), Some(u.to_leader)),
        None => (None, None),
    };
    let up_tx = up_tx.as_ref();
    let mut conns: HashMap<ConnId, ConnHandle> = HashMap::new();
    let mut msgs = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut next_container_check = clocks.start + settings.container_check_interval;
    let mut fl = FourLetterDriver {
        settings: Arc::new(settings.four_letter.clone()),
        state: four_letter::State::default(),
    };
    if settings.snapshots.as_ref().is_some_and(|s| s.at_start) {
        server.start_snapshot(&mut out);
    }
    loop {
        let session_deadline = server
            .next_deadline()
            .map(|ms| clocks.start + Duration::from_millis(ms))
            .unwrap_or(next_container_check);
        let mut wake = session_deadline.min(next_container_check);
        let stepping = server.snapshot_in_progress();
        // The snapshot thread is behind: serve requests as usual and look again soon.
        let paused = stepping && snap_tx.as_ref().is_some_and(SnapLink::behind);
        if paused {
            wake = wake.min(Instant::now() + Duration::from_millis(1));
        }
        if stepping && !paused {
            // A snapshot walks the tree in slices between batches of requests: take what
            // is queued without waiting (the log thread's reports first), then one slice.
            while let Ok(m) = done_rx.try_recv() {
                handle_msg(
                    &mut server,
                    &mut conns,
                    &mut fl,
                    m,
                    clocks.now(),
                    &mut out,
                    &log_tx,
                );
            }
            if let Some(rx) = up_rx.as_mut() {
                while let Ok(m) = rx.try_recv() {
                    upstream_msg(&mut server, &conns, m, clocks.now(), &mut out, &log_tx);
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
                if msgs.len() >= 512 {
                    break;
                }
            }
            let now = clocks.now();
            for m in msgs.drain(..) {
                handle_msg(&mut server, &mut conns, &mut fl, m, now, &mut out, &log_tx);
                log_now(&mut out, &log_tx);
            }
            if Instant::now() >= wake {
                step(&conns, &mut out, |out| {
                    timers(
                        &mut server,
                        &clocks,
                        &settings,
                        &mut next_container_check,
                        out,
                    )
                });
            }
            server.snapshot_step(2_000, &mut out);
            if *shutdown.borrow() {
                break;
            }
            if !flush(
                &mut server,
                &mut conns,
                &mut out,
                &log_tx,
                snap_tx.as_ref(),
                up_tx,
                &clocks,
            ) {
                return;
            }
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            biased;
            Some(m) = done_rx.recv() => {
                handle_msg(&mut server, &mut conns, &mut fl, m, clocks.now(), &mut out, &log_tx);
            }
            Some(m) = async {
                match up_rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                upstream_msg(&mut server, &conns, m, clocks.now(), &mut out, &log_tx);
            }
            n = rx.recv_many(&mut msgs, 512) => {
                if n == 0 {
                    break;
                }
                let now = clocks.now();
                for m in msgs.drain(..) {
                    handle_msg(&mut server, &mut conns, &mut fl, m, now, &mut out, &log_tx);
                    log_now(&mut out, &log_tx);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                step(&conns, &mut out, |out| {
                    timers(&mut server, &clocks, &settings, &mut next_container_check, out)
                });
            }
            _ = shutdown.changed() => break,
        }
        if !flush(
            &mut server,
            &mut conns,
            &mut out,
            &log_tx,
            snap_tx.as_ref(),
            up_tx,
            &clocks,
        ) {
            return;
        }
    }
    for (_, c) in conns.drain() {
        c.close();
    }
}

/// One message from the upstream link.
fn upstream_msg(
    server: &mut Server,
    conns: &HashMap<ConnId, ConnHandle>,
    m: UpstreamMsg,
    now: Clock,
    out: &mut Vec<Output>,
    log_tx: &LogTx,
) {
    match m {
        UpstreamMsg::Input(i) => {
            step(conns, out, |out| server.handle(i, now, out));
            log_now(out, log_tx);
        }
        UpstreamMsg::TakeTouched(reply) => {
            let _ = reply.send(server.take_touched());
        }
        UpstreamMsg::LastReceived(reply) => {
            let _ = reply.send(server.last_received());
        }
    }
}

/// Runs one step of the core and charges the frames it produced to their connections'
/// unread bytes, at once: a connection's next request is held on that figure, before the
/// batch is dispatched.
fn step(
    conns: &HashMap<ConnId, ConnHandle>,
    out: &mut Vec<Output>,
    f: impl FnOnce(&mut Vec<Output>),
) {
    let before = out.len();
    f(out);
    for o in &out[before..] {
        if let Output::Send { conn, frame } = o {
            if let Some(c) = conns.get(conn) {
                c.direct.throttle.produced(frame.len());
            }
        }
    }
}

/// Hands held requests of `conn` to the core, in order, while its client keeps up.
fn release_held(
    server: &mut Server,
    conns: &mut HashMap<ConnId, ConnHandle>,
    conn: ConnId,
    now: Clock,
    out: &mut Vec<Output>,
    log_tx: &LogTx,
) {
    loop {
        let Some(c) = conns.get_mut(&conn) else {
            return;
        };
        if c.held.is_empty() || (c.direct.throttle.over_unsent() && c.direct.throttle.hold()) {
            return;
        }
        let Some(input) = c.held.pop_front() else {
            return;
        };
        step(conns, out, |out| server.handle(input, now, out));
        log_now(out, log_tx);
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_msg(
    server: &mut Server,
    conns: &mut HashMap<ConnId, ConnHandle>,
    fl: &mut FourLetterDriver,
    m: Msg,
    now: Clock,
    out: &mut Vec<Output>,
    log_tx: &LogTx,
) {
    match m {
        Msg::Input(Input::Request { conn, xid, req }) => {
            let input = Input::Request { conn, xid, req };
            // A client with more unread bytes than its bound: its requests wait, in
            // order, until the writer catches up.
            if let Some(c) = conns.get_mut(&conn) {
                if !c.held.is_empty()
                    || (c.direct.throttle.over_unsent() && c.direct.throttle.hold())
                {
                    c.held.push_back(input);
                    return;
                }
            }
            step(conns, out, |out| server.handle(input, now, out));
        }
        Msg::Input(i) => step(conns, out, |out| server.handle(i, now, out)),
        Msg::Drained { conn } => release_held(server, conns, conn, now, out, log_tx),
        Msg::Register {
            conn,
            peer,
            direct,
            ready,
        } => {
            conns.insert(
                conn,
                ConnHandle {
                    direct,
                    ready: Some(ready),
                    peer,
                    accepted: now,
                    four_letter: false,
                    held: VecDeque::new(),
                },
            );
        }
        Msg::FourLetter {
            conn,
            word,
            arg,
            host,
        } => four_letter_word(server, conns, fl, conn, word, arg, &host, now),
        Msg::StartSnapshot => step(conns, out, |out| server.start_snapshot(out)),
    }
}

/// Answers a four-letter word from the state the core owns and the sockets it holds, then
/// closes the connection once the text is flushed (`CLOSE_CONNECTION_COMMAND`).
#[allow(clippy::too_many_arguments)]
fn four_letter_word(
    server: &mut Server,
    conns: &mut HashMap<ConnId, ConnHandle>,
    fl: &mut FourLetterDriver,
    conn: ConnId,
    word: Word,
    arg: Option<i64>,
    host: &Host,
    now: Clock,
) {
    let Some(c) = conns.get_mut(&conn) else {
        return;
    };
    c.four_letter = true;
    if fl.settings.enabled(word) {
        info!("Processing {} command from {}", word.name(), c.peer);
    } else {
        debug!(
            "Command {} is not executed because it is not in the whitelist.",
            word.name()
        );
    }
    let mut sockets: Vec<Socket> = conns
        .iter()
        .map(|(&id, c)| Socket {
            conn: id,
            addr: c.peer,
            accepted_wall_ms: c.accepted.wall_ms,
            accepted_mono_ms: c.accepted.mono_ms,
            four_letter: c.four_letter,
        })
        .collect();
    sockets.sort_unstable_by_key(|s| s.conn);
    let driver = four_letter::Driver {
        settings: &fl.settings,
        sockets: &sockets,
        host,
        now,
    };
    let text = four_letter::answer(word, arg, server, &driver, &mut fl.state);
    if let Some(c) = conns.remove(&conn) {
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            c.direct.throttle.produced(t.len());
            c.queue(Bytes::from(t), false);
        }
        c.close();
    }
}

/// Hands a write's log entries to the log thread as soon as they are prepared, not after
/// the rest of the batch (the group commit gathers them there).
fn log_now(out: &mut Vec<Output>, log_tx: &LogTx) {
    if let Some(Output::Log { .. }) = out.last() {
        if let Some(Output::Log {
            entries,
            generation,
        }) = out.pop()
        {
            if log_tx.send(LogCmd::Append(entries, generation)).is_err() {
                error!("transaction log thread is gone");
            }
        }
    }
}

fn timers(
    server: &mut Server,
    clocks: &Clocks,
    settings: &NetSettings,
    next_container_check: &mut Instant,
    out: &mut Vec<Output>,
) {
    let now = clocks.now();
    server.tick(now, out);
    if Instant::now() >= *next_container_check {
        server.check_containers(now, out);
        *next_container_check = Instant::now() + settings.container_check_interval;
    }
}

/// Carries out the core's outputs, and goes on with the held requests of connections the
/// core's own writes brought back under their bound; false when the server cannot go on.
fn flush(
    server: &mut Server,
    conns: &mut HashMap<ConnId, ConnHandle>,
    out: &mut Vec<Output>,
    log_tx: &LogTx,
    snap_tx: Option<&SnapLink>,
    up_tx: Option<&mpsc::UnboundedSender<ToUpstream>>,
    clocks: &Clocks,
) -> bool {
    let mut drained = Vec::new();
    loop {
        if !dispatch(out, conns, log_tx, snap_tx, up_tx, &mut drained) {
            return false;
        }
        if drained.is_empty() {
            return true;
        }
        let now = clocks.now();
        for conn in drained.drain(..) {
            release_held(server, conns, conn, now, out, log_tx);
        }
    }
}

/// Carries out the core's outputs; false when the server cannot go on. Connections whose
/// held requests may go on are added to `drained`.
fn dispatch(
    out: &mut Vec<Output>,
    conns: &mut HashMap<ConnId, ConnHandle>,
    log_tx: &LogTx,
    snap_tx: Option<&SnapLink>,
    up_tx: Option<&mpsc::UnboundedSender<ToUpstream>>,
    drained: &mut Vec<ConnId>,
) -> bool {
    // Frames are gathered per connection and written once per connection per batch.
    let mut sends: Vec<(ConnId, Bytes)> = Vec::new();
    for o in out.drain(..) {
        match o {
            Output::Send { conn, frame } => sends.push((conn, frame)),
            Output::Established { conn, session } => {
                if let Some(r) = conns.get_mut(&conn).and_then(|c| c.ready.take()) {
                    let _ = r.send(session);
                }
            }
            Output::Close { conn } => {
                deliver_all(&mut sends, conns, drained);
                if let Some(c) = conns.remove(&conn) {
                    c.close();
                }
            }
            Output::Log {
                entries,
                generation,
            } => {
                deliver_all(&mut sends, conns, drained);
                if log_tx.send(LogCmd::Append(entries, generation)).is_err() {
                    error!("transaction log thread is gone");
                    return false;
                }
            }
            Output::LogRoll { generation } => {
                if log_tx.send(LogCmd::Roll(generation)).is_err() {
                    error!("transaction log thread is gone");
                    return false;
                }
            }
            Output::Publish(p) => {
                if log_tx.send(LogCmd::Publish(p)).is_err() {
                    error!("transaction log thread is gone");
                    return false;
                }
            }
            Output::SnapshotAbort => {
                if let Some(t) = snap_tx {
                    t.send(SnapMsg::Abort);
                }
            }
            Output::ToLeader(p) => {
                if let Some(tx) = up_tx {
                    let _ = tx.send(ToUpstream::Packet(p));
                }
            }
            Output::Resync { reason } => {
                if let Some(tx) = up_tx {
                    let _ = tx.send(ToUpstream::Resync(reason));
                }
            }
            Output::SnapshotBegin { zxid, start } => {
                if let Some(t) = snap_tx {
                    t.send(SnapMsg::Begin { zxid, start });
                }
            }
            Output::SnapshotNodes(b) => {
                if let Some(t) = snap_tx {
                    t.send(SnapMsg::Nodes(b));
                }
            }
            Output::SnapshotFinish {
                acl_map,
                zxid_digest,
            } => {
                if let Some(t) = snap_tx {
                    t.send(SnapMsg::Finish {
                        acl_map,
                        zxid_digest,
                    });
                }
            }
        }
    }
    deliver_all(&mut sends, conns, drained);
    true
}

/// Sends gathered frames, each connection's run in its order; a connection gone
/// meanwhile gets none.
fn deliver_all(
    sends: &mut Vec<(ConnId, Bytes)>,
    conns: &HashMap<ConnId, ConnHandle>,
    drained: &mut Vec<ConnId>,
) {
    // Stable: a connection's frames keep their order.
    sends.sort_by_key(|s| s.0);
    for run in sends.chunk_by(|a, b| a.0 == b.0) {
        if let Some(c) = conns.get(&run[0].0) {
            if c.deliver(run) {
                drained.push(run[0].0);
            }
        }
    }
    sends.clear();
}

/// What a read asks for when the buffer holds no partial frame. Small: a connection keeps
/// its buffer (a busy one reads many requests into one allocation), so this is most of
/// what an idle connection holds for reading.
const READ_CHUNK: usize = 512;

/// A buffer grown past this for a large frame is let go of once it is empty.
const READ_KEEP: usize = 16 * 1024;

/// Reads one frame: `Ok(None)` at a clean end of stream. The buffer starts empty and
/// stays small (see [`READ_CHUNK`]); one grown for a large frame is let go of.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
    peer: SocketAddr,
) -> io::Result<Option<Bytes>> {
    loop {
        let len = frame::frame_len(buf, max).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                e.message_from(&peer.to_string()),
            )
        })?;
        let want = match len {
            Some(len) if buf.len() >= 4 + len => {
                buf.advance(4);
                let f = buf.split_to(len).freeze();
                if buf.is_empty() && buf.capacity() > READ_KEEP {
                    *buf = BytesMut::new();
                }
                return Ok(Some(f));
            }
            Some(len) => 4 + len - buf.len(),
            None => READ_CHUNK,
        };
        if buf.capacity() - buf.len() < want {
            buf.reserve(want.max(READ_CHUNK));
        }
        // `read_buf`, not readiness then `try_read_buf`: a read that leaves the buffer
        // partly empty tells tokio the socket is drained, which saves a recv that would
        // only say EAGAIN (one per request at one request in flight).
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

/// What a connection was given when it was admitted.
struct Admitted {
    /// Its place under `maxClientCnxns` and `maxCnxns`, given back when it ends.
    _slot: ConnSlot,
    throttle: Arc<ConnThrottle>,
    max_buffer: usize,
    max_record_len: usize,
    sessionless_cnxn_timeout: Duration,
}

async fn connection(
    stream: TcpStream,
    conn: ConnId,
    peer: SocketAddr,
    core: mpsc::UnboundedSender<Msg>,
    adm: Admitted,
    four_letter: Arc<FourLetterSettings>,
) {
    let (mut rd, wr) = stream.into_split();
    let wr = Arc::new(wr);
    let outbox = Arc::new(Outbox::new());
    let (ready_tx, ready_rx) = oneshot::channel();
    let direct = Direct {
        wr: wr.clone(),
        outbox: outbox.clone(),
        throttle: adm.throttle.clone(),
    };
    if core
        .send(Msg::Register {
            conn,
            peer,
            direct,
            ready: ready_tx,
        })
        .is_err()
    {
        return;
    }
    let mut writer = tokio::spawn(
        writer(wr, outbox, adm.throttle.clone(), conn, core.clone()).in_current_span(),
    );
    // The reader stops when the client goes away, or when the server closes the
    // connection (the writer ends after flushing).
    tokio::select! {
        r = read_loop(&mut rd, conn, peer, &core, &adm, ready_rx, four_letter) => {
            match r {
                // Bad framing or a bad handshake: ZooKeeper's WARN "Close of session".
                Err(e) if e.kind() == io::ErrorKind::InvalidData => warn!("{e}"),
                Err(e) => info!("closing connection: {e}"),
                Ok(()) => {}
            }
        }
        _ = &mut writer => {}
    }
    let _ = core.send(Msg::Input(Input::Closed { conn }));
}

/// Errors that close the connection name the session, as ZooKeeper's do.
fn closing(session: i64) -> impl Fn(io::Error) -> io::Error {
    move |e: io::Error| match e.kind() {
        io::ErrorKind::InvalidData => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("Close of session 0x{session:x}: {e}"),
        ),
        _ => e,
    }
}

/// The connection's opening: a four-letter word (answered, then `None`), or a
/// ConnectRequest handed to the core and the session it established (`None` when refused
/// or gone).
#[allow(clippy::too_many_arguments)]
async fn handshake(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    conn: ConnId,
    peer: SocketAddr,
    core: &mpsc::UnboundedSender<Msg>,
    adm: &Admitted,
    ready: oneshot::Receiver<i64>,
    four_letter: Arc<FourLetterSettings>,
) -> io::Result<Option<i64>> {
    // A connection that does not complete its ConnectRequest in time is closed, so that
    // idle sockets cannot hold places under maxClientCnxns (ZooKeeper's connection
    // expirer, `zookeeper.nio.sessionlessCnxnTimeout`; it measures from the last bytes
    // received, this from the accept).
    let deadline = tokio::time::Instant::now() + adm.sessionless_cnxn_timeout;
    let expired = |_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no ConnectRequest within {} ms",
                adm.sessionless_cnxn_timeout.as_millis()
            ),
        )
    };
    // ZooKeeper reads exactly 4 bytes first and, before the ConnectRequest, looks them up
    // as a four-letter word before it takes them as a frame length (`checkFourLetterWord`).
    let opened = tokio::time::timeout_at(deadline, async {
        while buf.len() < 4 {
            if rd.read_buf(buf).await? == 0 {
                if buf.is_empty() {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-frame",
                ));
            }
        }
        Ok(true)
    })
    .await
    .map_err(expired)??;
    if !opened {
        return Ok(None);
    }
    if let Some(word) = Word::from_bytes([buf[0], buf[1], buf[2], buf[3]]) {
        let buf = std::mem::take(buf);
        four_letter_request(rd, conn, word, buf, core, four_letter).await?;
        return Ok(None);
    }
    let Some(first) = tokio::time::timeout_at(deadline, read_frame(rd, buf, adm.max_buffer, peer))
        .await
        .map_err(expired)?
        .map_err(closing(0))?
    else {
        return Ok(None);
    };
    let (req, has_read_only) = frame::decode_connect(&first, adm.max_record_len)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad connect request: {e}"),
            )
        })
        .map_err(closing(0))?;
    let _ = core.send(Msg::Input(Input::Connect {
        conn,
        peer: peer.ip(),
        req,
        old_client: !has_read_only,
    }));
    // Like ZooKeeper, read nothing more until the session is established; a refused
    // handshake drops `ready` and the connection ends here.
    Ok(ready.await.ok())
}

async fn read_loop(
    rd: &mut OwnedReadHalf,
    conn: ConnId,
    peer: SocketAddr,
    core: &mpsc::UnboundedSender<Msg>,
    adm: &Admitted,
    ready: oneshot::Receiver<i64>,
    four_letter: Arc<FourLetterSettings>,
) -> io::Result<()> {
    let max_buffer = adm.max_buffer;
    let mut buf = BytesMut::new();
    // Boxed: the opening's timers and four-letter path would otherwise enlarge every
    // connection's task for its whole life.
    let opening = handshake(rd, &mut buf, conn, peer, core, adm, ready, four_letter);
    let Some(session) = Box::pin(opening).await? else {
        return Ok(());
    };
    while let Some(f) = read_frame(rd, &mut buf, max_buffer, peer)
        .await
        .map_err(closing(session))?
    {
        let (h, req) = frame::decode_request(&f, adm.max_record_len)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad request header: {e}"),
                )
            })
            .map_err(closing(session))?;
        debug!(xid = h.xid, op = h.r#type, "request");
        // Counted before the core can answer it (`incrOutstandingAndCheckThrottle`).
        adm.throttle.request_read(h.xid);
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
        // globalOutstandingLimit: stop reading while the server has too much to do and
        // this connection has requests of its own in it; TCP holds back the rest.
        if adm.throttle.wait_readable().await {
            debug!("reading resumes after throttling");
        }
    }
    Ok(())
}

/// Hands a four-letter word to the core task, with what the operating system knows when
/// the word reports it (read on a blocking thread, off the core), then reads nothing more.
async fn four_letter_request(
    rd: &mut OwnedReadHalf,
    conn: ConnId,
    word: Word,
    mut buf: BytesMut,
    core: &mpsc::UnboundedSender<Msg>,
    settings: Arc<FourLetterSettings>,
) -> io::Result<()> {
    let enabled = settings.enabled(word);
    let mut arg = None;
    if word == Word::Stmk && enabled {
        // The mask is the 8 bytes after the word. ZooKeeper takes only what has already
        // arrived; a client that sends them a moment later is given that moment.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while buf.len() < 12 {
                if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    break;
                }
            }
        })
        .await;
        arg = buf
            .get(4..12)
            .map(|b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    }
    let host = if enabled && word.needs_host() {
        tokio::task::spawn_blocking(move || Host::read(word, &settings))
            .await
            .unwrap_or_default()
    } else {
        Host::default()
    };
    if core
        .send(Msg::FourLetter {
            conn,
            word,
            arg,
            host,
        })
        .is_err()
    {
        return Ok(());
    }
    // Whatever else the client sends is ignored (ZooKeeper cancels the read interest),
    // but drained, so that the close after the answer is a FIN and not a reset.
    let mut sink = [0u8; 1024];
    while rd.read(&mut sink).await.unwrap_or(0) > 0 {}
    Ok(())
}

/// Writes what the core queued for one connection, frames straight from their buffers
/// (vectored, no staging copy), and settles the accounts once they are written: the
/// connection's unread bytes, and its outstanding requests.
async fn writer(
    wr: Arc<OwnedWriteHalf>,
    outbox: Arc<Outbox>,
    throttle: Arc<ConnThrottle>,
    conn: ConnId,
    core: mpsc::UnboundedSender<Msg>,
) {
    let mut frames: Vec<(Bytes, bool)> = Vec::new();
    'run: while outbox.take(&mut frames).await {
        let total: usize = frames.iter().map(|f| f.0.len()).sum();
        let mut at = FramePos::default();
        while at.frame < frames.len() {
            if wr.writable().await.is_err() {
                break 'run;
            }
            match try_write_frames(&wr, &frames, |f| &f.0, &mut at) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break 'run,
            }
        }
        for _ in frames.iter().filter(|f| f.1) {
            throttle.reply_written();
        }
        if throttle.written(total) {
            let _ = core.send(Msg::Drained { conn });
        }
        outbox.queued.fetch_sub(frames.len(), Ordering::AcqRel);
        frames.clear();
        // An idle connection keeps no frame buffer.
        frames.shrink_to_fit();
    }
    // The write side shuts down (FIN) when the last holder drops it: this task, and the
    // core when it forgets the connection.
}
