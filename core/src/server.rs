//! The standalone server as one state machine: connections, sessions, the request
//! pipeline (prepare → log → apply → reply and watch events) and the reads between.
//!
//! It does no I/O and reads no clock. The driver ([`crate::net`]) feeds it [`Input`]s
//! with the current [`Clock`] and carries out the [`Output`]s it returns: frames to send,
//! connections to close, transactions to make durable. A transaction is applied only
//! after the driver reports it durable ([`Input::Durable`]), so nothing is acknowledged
//! before it is on disk, and reads never see a write that could still be lost.
//!
//! Order per session is ZooKeeper's: replies leave in request order; a read waits behind
//! the session's own writes still in flight; the watch events a transaction triggers are
//! queued before its reply and before the reply of anything processed after it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::{debug, error, info, warn};

use crate::acl::{check_acl, Provider};
use crate::metrics::{CnxnStats, PercentileSummary, ResponseSizes, Summary};
use crate::prep::{Caller, Prep, PrepSettings, SessionState};
use crate::proto::quorum::{PacketType, QuorumPacket};
use crate::proto::records::*;
use crate::proto::txn::{TxnBody, TxnDigest, TxnEntry, TxnHeader};
use crate::proto::{perms, xid, ErrorCode, OpCode, Record};
use crate::request::{MultiOp, Request};
use crate::sasl::{random_nonce, DigestMd5Server, Outcome, SaslConfig};
use crate::session::{session_password, SessionTracker};
use crate::tree::{DataTree, TxnResult};
use crate::watch::{EventType, Fired, WatchManager, WatcherType};

mod observer;
#[cfg(test)]
mod observer_sim;
mod subscribers;

pub type ConnId = u64;

/// `Watcher.Event.KeeperState.SyncConnected`: the state of every server-sent event.
const SYNC_CONNECTED: i32 = 3;

/// Time as the driver reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    /// Monotonic milliseconds: session expiry.
    pub mono_ms: u64,
    /// Wall-clock milliseconds since the epoch: transaction times (ctime, mtime).
    pub wall_ms: i64,
}

/// The part a server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Prepares, logs and applies its own transactions; expires its sessions.
    #[default]
    Standalone,
    /// An observer of an ensemble (the gateway): applies what the leader commits, through
    /// the same log → apply path, and forwards its clients' writes, sync, createSession
    /// and closeSession to the leader. Sessions are the leader's: created, expired and
    /// revalidated there; the observer reports the ones its clients touched.
    Observer,
}

/// What the server needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub role: Role,
    /// Observer: `localSessionsEnabled`: new sessions are this server's own until they
    /// need the leader (an ephemeral), and are expired here.
    pub local_sessions: bool,
    /// Observer: `localSessionsUpgradingEnabled`: a local session that creates an
    /// ephemeral becomes global; otherwise the create fails (EphemeralOnLocalSession).
    pub local_sessions_upgrading: bool,
    /// Observer: `readonlymode.enabled`: while out of sync, clients that allow it get
    /// read-only sessions (reads from this tree; writes answered NotReadOnly).
    pub read_only_mode: bool,
    /// The server id in the top byte of session ids (1 for a standalone server, as in
    /// ZooKeeper's `createSessionTrackerServerId`).
    pub server_id: u64,
    pub tick_ms: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub prep: PrepSettings,
    pub super_digest: Option<String>,
    /// The SASL login (JAAS `Server` section); `None`: SASL is not configured.
    pub sasl: Option<std::sync::Arc<SaslConfig>>,
    /// The largest reply built from many results (`multiRead`): `jute.maxbuffer`.
    pub max_reply_bytes: usize,
    /// `enforce.auth.enabled` with its `enforce.auth.schemes` (or
    /// `sessionRequireClientSASLAuth`, which means `["sasl"]`): a connection must hold an
    /// identity of one of these schemes before any request but auth and sasl. `None`: off.
    pub enforce_auth_schemes: Option<Vec<String>>,
    /// False on a leader or gateway with `leaderServes=no`: it takes no client sessions
    /// (as a ZooKeeper leader whose `leaderServes` is `no`) and its `srvr` says it is not
    /// serving; four-letter words still answer.
    pub serves_clients: bool,
}

impl Settings {
    /// `saslAuthRequired`: enforcement is on and lists `sasl`; a failed SASL exchange is
    /// then answered -124 rather than AuthFailed, and never let through.
    fn sasl_auth_required(&self) -> bool {
        self.enforce_auth_schemes
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == "sasl"))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            role: Role::Standalone,
            local_sessions: false,
            local_sessions_upgrading: true,
            read_only_mode: false,
            server_id: 1,
            tick_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            prep: PrepSettings {
                digest_enabled: true,
                ..Default::default()
            },
            super_digest: None,
            sasl: None,
            enforce_auth_schemes: None,
            max_reply_bytes: crate::proto::frame::DEFAULT_MAX_BUFFER,
            serves_clients: true,
        }
    }
}

#[derive(Debug)]
pub enum Input {
    /// A connection sent its ConnectRequest. `old_client`: it omitted the readOnly byte.
    Connect {
        conn: ConnId,
        peer: IpAddr,
        req: ConnectRequest,
        old_client: bool,
    },
    /// A request frame on an established connection.
    Request {
        conn: ConnId,
        xid: i32,
        req: Request,
    },
    /// The connection is gone.
    Closed { conn: ConnId },
    /// Every transaction up to `zxid` is durable.
    Durable { zxid: i64 },
    /// The log could not make the batches of `generation` durable (a full disk, an I/O
    /// error): nothing in flight will be; fail it and go on.
    LogFailed { generation: u64, error: String },
    /// Observer: transactions the leader committed, in zxid order; logged, then applied.
    Committed(Vec<LogEntry>),
    /// Observer: the leader's whole database (a SNAP), already written as a snapshot in
    /// the data directory; it replaces the tree and the sessions.
    Install {
        tree: Box<DataTree>,
        sessions: Vec<(i64, i32)>,
    },
    /// Observer: in sync (UPTODATE); clients are served from now on.
    UpToDate(SyncInfo),
    /// Observer: the link to the leader is gone. Every client connection is closed and
    /// what was forwarded is given up (ZooKeeper's observer shuts its server down until
    /// it has synced again); the sessions live on at the leader.
    LeaderLost { reason: String },
    /// Observer: the leader pinged; `zxid` is the last it proposed.
    LeaderPing { zxid: i64 },
    /// Observer: the leader answered the oldest forwarded sync (SYNC).
    Synced,
    /// Observer: the leader answered a REVALIDATE.
    Revalidated { session: i64, valid: bool },
    /// A packet a subscriber (a replica following this server over the relay)
    /// forwarded for its clients: REQUEST or REVALIDATE.
    FromSubscriber { sub: u64, packet: QuorumPacket },
    /// Sessions a subscriber's clients kept alive, with their timeouts.
    SubscriberTouch(Vec<(i64, i32)>),
}

/// How an observer's last sync went, for `srvr` and `mntr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncInfo {
    /// The leader's learner address.
    pub leader: String,
    pub epoch: u32,
    /// DIFF, SNAP or TRUNC.
    pub kind: &'static str,
    /// From connecting to UPTODATE.
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One length-prefixed frame for the connection.
    Send { conn: ConnId, frame: Bytes },
    /// The handshake is done: the connection may read requests (its logs name `session`).
    Established { conn: ConnId, session: i64 },
    /// Close once what was sent before is flushed.
    Close { conn: ConnId },
    /// Make these durable, then report `Input::Durable` with the last zxid. Batches of an
    /// older `generation` than the last failure are void and must be dropped.
    Log {
        entries: Vec<LogEntry>,
        generation: u64,
    },
    /// A fuzzy snapshot starts: header and sessions.
    SnapshotBegin { zxid: i64, start: Vec<u8> },
    /// Node records of the snapshot in progress.
    SnapshotNodes(Vec<u8>),
    /// The walk is done: the ACL map it met and the (zxid, digest) trailer.
    SnapshotFinish {
        acl_map: Vec<u8>,
        zxid_digest: (i64, i64),
    },
    /// The snapshot in progress is void (the tree it walked was replaced).
    SnapshotAbort,
    /// Observer: a packet for the leader (REQUEST, REVALIDATE).
    ToLeader(QuorumPacket),
    /// Observer: this replica's state cannot be trusted any more (a digest mismatch, a
    /// log that failed): drop the link, start again from an empty data directory and
    /// sync from the leader.
    Resync { reason: String },
    /// Observer: end the log file (a new tree was installed). Batches of an older
    /// `generation` are void and must be dropped.
    LogRoll { generation: u64 },
    /// For the subscribers, through the log thread: behind every batch handed to it
    /// before.
    Publish(crate::publish::Published),
}

pub use crate::proto::txn::LogEntry;

#[derive(Debug)]
struct Conn {
    peer: IpAddr,
    session: Option<i64>,
    auth: Vec<Id>,
    timeout_ms: u32,
    old_client: bool,
    /// The session handshake completed; requests are accepted.
    established: bool,
    /// Closing: nothing more is read from it.
    closing: bool,
    /// Observer out of sync in read-only mode: a read-only session.
    read_only: bool,
    /// Observer: a read-write session kept through the loss of the upstream (read-only
    /// mode): served read-only until in sync again, then read-write as before.
    kept: bool,
    /// The connection's SASL exchange, from its first SASL token on.
    sasl: Option<DigestMd5Server>,
    /// What `stat` and `cons` show of it.
    stats: CnxnStats,
}

#[derive(Debug)]
enum Origin {
    Client {
        conn: ConnId,
        xid: i32,
        op: OpCode,
    },
    CreateSession {
        conn: ConnId,
    },
    Expiry,
    /// The container manager's deletes: no one to answer.
    Internal,
    /// Observer: committed by the leader; who to answer is found when it is applied.
    Remote,
}

#[derive(Debug)]
struct InFlight {
    origin: Origin,
    header: TxnHeader,
    body: TxnBody,
    /// Observer: the leader's tree digest after this transaction, to check ours against.
    digest: Option<i64>,
    /// Monotonic ms the request arrived: its latency runs until the reply.
    start_ms: u64,
}

#[derive(Debug)]
enum Queued {
    Write(i64),
    /// A request answered here with an error, in its turn (NotReadOnly,
    /// EphemeralOnLocalSession).
    Answer {
        conn: ConnId,
        xid: i32,
        err: ErrorCode,
        start_ms: u64,
    },
    /// Observer: a request forwarded to the leader, answered when its transaction (or
    /// the leader's SYNC) comes back; matched by the session and `xid` (the cxid).
    Forwarded {
        conn: ConnId,
        xid: i32,
        op: OpCode,
        start_ms: u64,
        /// A sync's path: it is answered on SYNC, not by a transaction.
        sync: Option<String>,
    },
    Read {
        conn: ConnId,
        xid: i32,
        req: Request,
        start_ms: u64,
    },
}

/// Counters for `srvr`, `stat` and `mntr`: ZooKeeper's `ServerStats`, and the
/// `ServerMetrics` that mean something here (see [`crate::four_letter::mntr`]).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Frames received, the ConnectRequest and four-letter words included.
    pub packets_received: u64,
    /// Frames sent, events and four-letter answers included.
    pub packets_sent: u64,
    pub outstanding: u64,
    /// Every answered request, ms from arrival to reply (`Latency min/avg/max`).
    pub latency: Summary,
    /// The same for requests without a transaction (`readlatency`) …
    pub read_latency: PercentileSummary,
    /// … and with one (`updatelatency`).
    pub update_latency: PercentileSummary,
    pub response_size: ResponseSizes,
    /// Bytes of replies to requests (`response_bytes`).
    pub response_bytes: u64,
    /// Bytes of watch events (`watch_bytes`).
    pub watch_bytes: u64,
    /// ConnectRequests (`connection_request_count`).
    pub connection_requests: u64,
    /// Connections the client closed (`connection_drop_count`).
    pub connection_drops: u64,
    /// Sessions that timed out (`stale_sessions_expired`).
    pub sessions_expired: u64,
}

impl Stats {
    /// `srst`: everything but the outstanding-requests gauge.
    pub fn reset(&mut self) {
        *self = Stats {
            outstanding: self.outstanding,
            ..Stats::default()
        };
    }
}

/// What the four-letter words see of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionView<'a> {
    /// 0 until a session is bound to it.
    pub session: i64,
    /// The negotiated session timeout; 0 before.
    pub timeout_ms: u32,
    pub stats: &'a CnxnStats,
}

/// ZooKeeper logs the tree digest at every 128th zxid and keeps the last 1024
/// (`DataTree.DIGEST_LOG_INTERVAL`, `DIGEST_LOG_LIMIT`), for `hash`.
const DIGEST_LOG_INTERVAL: i64 = 128;
const DIGEST_LOG_LIMIT: usize = 1024;

pub struct Server {
    settings: Settings,
    tree: DataTree,
    sessions: SessionTracker,
    watches: WatchManager,
    prep: Prep,
    /// The last zxid handed out.
    last_zxid: i64,
    conns: HashMap<ConnId, Conn>,
    session_conn: HashMap<i64, ConnId>,
    in_flight: VecDeque<InFlight>,
    queues: HashMap<i64, VecDeque<Queued>>,
    to_log: Vec<LogEntry>,
    /// Bumped when the log fails, voiding every batch handed to it before.
    log_generation: u64,
    snapshot: Option<crate::snapshot::SnapshotWalk>,
    pub stats: Stats,
    /// The clock of the input being handled: replies take their time from it.
    now: Clock,
    started_ms: u64,
    /// (zxid, tree digest) at every 128th zxid, for `hash`.
    digest_log: VecDeque<(i64, i64)>,
    /// The observer role's state (unused by a standalone server).
    obs: ObserverState,
}

/// What an observer keeps besides the tree: its link's state and its forwarded requests.
#[derive(Default)]
struct ObserverState {
    /// Synced and serving clients.
    serving: bool,
    sync: Option<SyncInfo>,
    /// UPTODATE came while transactions received before it were still on their way
    /// to the log: serving starts once the tree has applied up to this zxid, so that no
    /// client reads a tree older than the sync it waited for (ZOOKEEPER-3500).
    up_to_date_at: Option<(i64, SyncInfo)>,
    /// The last zxid handed to the log (applied or about to be).
    last_received: i64,
    /// The last zxid the leader said it proposed (PING).
    leader_zxid: i64,
    /// Leader positions announced by its pings and not yet applied here.
    behind: crate::lag::Behind,
    /// New sessions whose createSession was forwarded, by session id.
    creating: HashMap<i64, ConnId>,
    /// Sessions whose REVALIDATE is out, by session id.
    revalidating: HashMap<i64, ConnId>,
    /// Forwarded syncs in the order they were sent: the leader's SYNC carries no id.
    syncs: VecDeque<subscribers::SyncOwner>,
    /// Subscribers waiting for the answer to a REVALIDATE they forwarded, by session.
    remote_revalidations: HashMap<i64, Vec<u64>>,
    /// Syncs the leader answered, waiting until everything committed before the answer
    /// is applied here: (last zxid received then, session, xid).
    sync_waits: VecDeque<(i64, i64, i32)>,
    /// Sessions touched since the last ping, with their timeouts.
    touched: HashMap<i64, i32>,
    /// Local sessions (`localSessionsEnabled`, and read-only ones): this server's own,
    /// expired here, never reported to the leader.
    local: Option<SessionTracker>,
    /// Local sessions whose upgrade (createSession) is on its way to the leader, with
    /// their timeouts: live meanwhile, and reported (`LearnerSessionTracker` accepts
    /// sessions being upgraded).
    upgrading: HashMap<i64, u32>,
    digest_mismatches: u64,
}

/// What `srvr` and `mntr` show of an observer.
#[derive(Debug, Clone)]
pub struct ObserverView {
    pub serving: bool,
    pub sync: Option<SyncInfo>,
    pub last_received: i64,
    pub leader_zxid: i64,
    /// Transactions the leader proposed that are not applied here (same epoch only).
    pub lag_txns: i64,
    /// How old the oldest not-yet-applied transaction is, in ms (0 when caught up).
    pub lag_ms: i64,
    pub forwarded: u64,
    pub digest_mismatches: u64,
}

/// The encoded length of a `Stat`.
const STAT_LEN: usize = 68;

/// A length-prefixed frame. A body past `i32::MAX` bytes cannot be framed; the caller gets
/// `None` rather than a length that wraps and desynchronises the client's stream.
fn try_frame(f: impl FnOnce(&mut BytesMut)) -> Option<Bytes> {
    let mut b = BytesMut::with_capacity(64);
    b.put_i32(0);
    f(&mut b);
    let len = i32::try_from(b.len() - 4).ok()?;
    b[0..4].copy_from_slice(&len.to_be_bytes());
    Some(b.freeze())
}

/// A frame of a record whose size `jute.maxbuffer` bounds (events, SASL tokens, connect
/// responses): never near 2 GiB. Were one to pass it, nothing is sent rather than a
/// frame whose length wraps.
fn frame(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    try_frame(f).unwrap_or_else(|| {
        error!("a frame over 2 GiB was not sent");
        Bytes::new()
    })
}

fn reply_frame(xid: i32, zxid: i64, err: ErrorCode, body: Option<&dyn Encode>) -> Bytes {
    let built = try_frame(|b| {
        ReplyHeader {
            xid,
            zxid,
            err: err.code(),
        }
        .encode(b);
        if err == ErrorCode::Ok {
            if let Some(r) = body {
                r.put(b);
            }
        }
    });
    built.unwrap_or_else(|| {
        error!(
            xid,
            "a reply over 2 GiB cannot be framed; answered MarshallingError"
        );
        reply_frame(xid, zxid, ErrorCode::MarshallingError, None)
    })
}

/// A SASL reply: the `SetSASLResponse` follows the header whatever the error, with a
/// null token (length -1) when there is none (`processSasl`).
fn sasl_reply_frame(xid: i32, err: ErrorCode, token: Option<&[u8]>) -> Bytes {
    frame(|b| {
        ReplyHeader {
            xid,
            zxid: 0,
            err: err.code(),
        }
        .encode(b);
        match token {
            Some(t) => SetSaslResponse {
                token: Bytes::copy_from_slice(t),
            }
            .encode(b),
            None => b.put_i32(-1),
        }
    })
}

/// Object-safe encoding, so replies of every record type share one path.
trait Encode {
    fn put(&self, b: &mut BytesMut);
}

impl<T: Record> Encode for T {
    fn put(&self, b: &mut BytesMut) {
        self.encode(b)
    }
}

/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1("user:password"))`.
pub fn digest_id(user_password: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

impl Server {
    pub fn new(settings: Settings, tree: DataTree, now: Clock) -> Server {
        let last_zxid = tree.last_zxid();
        let local = (settings.role == Role::Observer)
            .then(|| observer::local_session_table(&settings, now));
        Server {
            sessions: SessionTracker::new(settings.server_id, settings.tick_ms, now.wall_ms),
            prep: Prep::new(settings.prep.clone()),
            settings,
            tree,
            watches: WatchManager::new(),
            last_zxid,
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            in_flight: VecDeque::new(),
            queues: HashMap::new(),
            to_log: Vec::new(),
            log_generation: 0,
            snapshot: None,
            stats: Stats::default(),
            now,
            started_ms: now.mono_ms,
            digest_log: VecDeque::new(),
            obs: ObserverState {
                last_received: last_zxid,
                local,
                ..Default::default()
            },
        }
    }

    pub fn role(&self) -> Role {
        self.settings.role
    }

    /// An observer's link state and lag; `None` for a standalone server.
    pub fn observer_view(&self) -> Option<ObserverView> {
        if self.settings.role != Role::Observer {
            return None;
        }
        let o = &self.obs;
        let applied = self.tree.last_zxid();
        let lag_txns = if o.serving && (o.leader_zxid >> 32) == (applied >> 32) {
            (o.leader_zxid - applied).max(0)
        } else {
            0
        };
        let lag_ms = if o.serving {
            o.behind.lag_ms(applied, self.now.mono_ms) as i64
        } else {
            0
        };
        Some(ObserverView {
            serving: o.serving,
            sync: o.sync.clone(),
            last_received: o.last_received,
            leader_zxid: o.leader_zxid,
            lag_txns,
            lag_ms,
            forwarded: self.forwarded_count(),
            digest_mismatches: o.digest_mismatches,
        })
    }

    /// Observer: the sessions its clients touched since the last call, with their
    /// timeouts, for the reply to the leader's PING (`LearnerSessionTracker.snapshot`).
    pub fn take_touched(&mut self) -> Vec<(i64, i32)> {
        self.obs.touched.drain().collect()
    }

    /// The last zxid handed to the log: where a resync starts from.
    pub fn last_received(&self) -> i64 {
        self.obs.last_received.max(self.tree.last_zxid())
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn sessions(&self) -> &SessionTracker {
        &self.sessions
    }

    pub fn watches(&self) -> &WatchManager {
        &self.watches
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// A connection past its ConnectRequest, for the four-letter words.
    pub fn connection(&self, conn: ConnId) -> Option<ConnectionView<'_>> {
        self.conns.get(&conn).map(|c| ConnectionView {
            session: c.session.unwrap_or(0),
            timeout_ms: c.timeout_ms,
            stats: &c.stats,
        })
    }

    /// Monotonic ms the server started (`uptime`).
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// (zxid, digest) pairs for `hash`, oldest first.
    pub fn digest_log(&self) -> impl Iterator<Item = &(i64, i64)> {
        self.digest_log.iter()
    }

    /// `srst`: server statistics and metrics start again; gauges stay.
    pub fn reset_stats(&mut self) {
        self.stats.reset();
        self.watches.trigger_counts = Default::default();
    }

    /// `crst`: every connection's statistics start again.
    pub fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.stats.reset();
        }
    }

    /// When [`Server::tick`] should run next.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.settings.role == Role::Observer {
            // The leader expires global sessions; an observer only its local ones.
            return self
                .obs
                .local
                .as_ref()
                .and_then(SessionTracker::next_deadline);
        }
        self.sessions.next_deadline()
    }

    pub fn handle(&mut self, input: Input, now: Clock, out: &mut Vec<Output>) {
        self.now = now;
        match input {
            Input::Connect {
                conn,
                peer,
                req,
                old_client,
            } => {
                self.stats.packets_received += 1;
                self.stats.connection_requests += 1;
                self.connect(conn, peer, req, old_client, now, out)
            }
            Input::Request { conn, xid, req } => {
                self.stats.packets_received += 1;
                self.request(conn, xid, req, now, out)
            }
            Input::Closed { conn } => self.closed(conn, out),
            Input::Durable { zxid } => self.durable(zxid, out),
            Input::LogFailed { generation, error } => self.log_failed(generation, &error, now, out),
            Input::Committed(entries) => self.committed(entries, out),
            Input::Install { tree, sessions } => self.install(*tree, &sessions, now, out),
            Input::UpToDate(info) => self.up_to_date(info, out),
            Input::LeaderLost { reason } => self.leader_lost(&reason, out),
            Input::LeaderPing { zxid } => {
                self.obs.leader_zxid = zxid;
                let have = self.tree.last_zxid();
                self.obs.behind.leader_at(zxid, have, now.mono_ms);
            }
            Input::Synced => self.synced(out),
            Input::Revalidated { session, valid } => self.revalidated(session, valid, now, out),
            Input::FromSubscriber { sub, packet } => self.subscriber_packet(sub, packet, now, out),
            Input::SubscriberTouch(sessions) => self.subscriber_touch(sessions, now),
        }
        self.flush_log(out);
    }

    /// Restores sessions found in the data directory: each expires unless its client
    /// comes back within its timeout, counted from now.
    pub fn restore_sessions(&mut self, sessions: &[(i64, i32)], now: Clock) {
        for (id, t) in sessions {
            self.sessions.add(*id, (*t).max(0) as u32, now.mono_ms);
        }
        self.sessions.bump_next_id(sessions.iter().map(|s| s.0));
    }

    /// Starts a fuzzy snapshot of the tree as applied now, unless one is running.
    pub fn start_snapshot(&mut self, out: &mut Vec<Output>) {
        if self.snapshot.is_some() {
            warn!("Too busy to snap, skipping");
            return;
        }
        let zxid = self.tree.last_zxid();
        let sessions: Vec<(i64, i32)> = self
            .sessions
            .iter()
            .map(|s| (s.id, s.timeout_ms as i32))
            .collect();
        info!("Snapshotting: {zxid:#x}");
        self.snapshot = Some(crate::snapshot::SnapshotWalk::new(zxid));
        out.push(Output::SnapshotBegin {
            zxid,
            start: crate::snapshot::encode_start(&sessions),
        });
    }

    /// Walks up to `budget` more nodes of the snapshot in progress; true while work is
    /// left. Called between batches of requests, so requests never wait for a whole walk.
    pub fn snapshot_step(&mut self, budget: usize, out: &mut Vec<Output>) -> bool {
        let Some(walk) = self.snapshot.as_mut() else {
            return false;
        };
        let mut buf = Vec::with_capacity(64 * 1024);
        let more = walk.step(&self.tree, budget, &mut buf);
        if !buf.is_empty() {
            out.push(Output::SnapshotNodes(buf));
        }
        if !more {
            let acl_map = walk.acl_map();
            self.snapshot = None;
            out.push(Output::SnapshotFinish {
                acl_map,
                zxid_digest: (self.tree.last_zxid(), self.tree.digest()),
            });
        }
        more
    }

    pub fn snapshot_in_progress(&self) -> bool {
        self.snapshot.is_some()
    }

    /// The log failed: every transaction in flight is lost before it was durable. Each
    /// writer is told (SystemError), prepared state is dropped, zxids resume after the
    /// last durable one, and the server goes on — writes succeed again once the log can
    /// take them (space freed, say).
    fn log_failed(&mut self, generation: u64, error: &str, now: Clock, out: &mut Vec<Output>) {
        if generation < self.log_generation {
            return;
        }
        if self.settings.role == Role::Observer {
            // Zxids are the leader's: nothing can be handed out again. What was not made
            // durable is fetched again by a fresh sync.
            self.log_generation += 1;
            self.in_flight.clear();
            self.to_log.clear();
            out.push(Output::Resync {
                reason: format!("the transaction log failed: {error}"),
            });
            return self.leader_lost("the transaction log failed", out);
        }
        let failed = std::mem::take(&mut self.in_flight);
        tracing::error!(
            "the transaction log failed ({error}); {} writes in flight were not made durable and are refused",
            failed.len()
        );
        self.log_generation += 1;
        self.to_log.clear();
        self.prep = Prep::new(self.settings.prep.clone());
        self.last_zxid = self.tree.last_zxid();
        self.stats.outstanding = 0;
        let zxid = self.tree.last_zxid();
        for f in failed {
            let session = f.header.client_id;
            match f.origin {
                Origin::Client { conn, xid, op } => {
                    let frame = reply_frame(xid, zxid, ErrorCode::SystemError, None);
                    self.send(conn, frame, out);
                    if op == OpCode::CloseSession {
                        self.sessions.reopen(session, now.mono_ms);
                    }
                    self.release_session_queue(session, f.header.zxid, out);
                }
                Origin::CreateSession { conn } => {
                    self.sessions.remove(session);
                    self.close_conn(conn, out);
                }
                Origin::Expiry => self.sessions.reopen(session, now.mono_ms),
                Origin::Internal | Origin::Remote => {}
            }
        }
    }

    /// Expires sessions whose time is up.
    pub fn tick(&mut self, now: Clock, out: &mut Vec<Output>) {
        self.now = now;
        if self.settings.role == Role::Observer {
            return self.expire_local(now, out);
        }
        for id in self.sessions.expire(now.mono_ms) {
            self.stats.sessions_expired += 1;
            let timeout = self.sessions.get(id).map_or(0, |s| s.timeout_ms);
            info!(
                session = format_args!("0x{id:x}"),
                "Expiring session 0x{id:x}, timeout of {timeout}ms exceeded"
            );
            let mut h = self.header(id, 0, now);
            let (body, digest) = self.prep.prepare_close_session(&self.tree, id, &mut h);
            self.submit(Origin::Expiry, h, body, digest);
        }
        self.flush_log(out);
    }

    /// `ContainerManager.checkContainers`: deletes empty containers that once had a child
    /// and TTL nodes without children whose TTL has passed since their last change, each
    /// through a deleteContainer transaction from session 0. Prep re-checks emptiness, so
    /// a child created meanwhile makes it a harmless NotEmpty error transaction.
    pub fn check_containers(&mut self, now: Clock, out: &mut Vec<Output>) {
        self.now = now;
        if self.settings.role == Role::Observer {
            // The leader's container manager deletes them; the deletes arrive committed.
            return;
        }
        let mut candidates = Vec::new();
        for p in self.tree.containers() {
            if let Some(n) = self.tree.get(p) {
                if n.child_count() == 0 && n.stat.cversion > 0 {
                    candidates.push(p.clone());
                }
            }
        }
        for p in self.tree.ttls() {
            if let Some(n) = self.tree.get(p) {
                let ttl = n.stat.ephemeral_owner & crate::tree::ephemeral::MAX_TTL;
                if n.child_count() == 0 && ttl != 0 && now.wall_ms - n.stat.mtime > ttl {
                    candidates.push(p.clone());
                }
            }
        }
        for path in candidates {
            let mut h = self.header(0, 0, now);
            let caller = Caller {
                session: 0,
                session_state: SessionState::Live,
                auth: &[],
            };
            let (body, digest) =
                self.prep
                    .prepare(&self.tree, &caller, &Request::DeleteContainer(path), &mut h);
            self.submit(Origin::Internal, h, body, digest);
        }
        self.flush_log(out);
    }

    fn header(&mut self, session: i64, cxid: i32, now: Clock) -> TxnHeader {
        self.last_zxid += 1;
        TxnHeader {
            client_id: session,
            cxid,
            zxid: self.last_zxid,
            time: now.wall_ms,
            r#type: 0,
        }
    }

    fn submit(
        &mut self,
        origin: Origin,
        header: TxnHeader,
        body: TxnBody,
        digest: Option<TxnDigest>,
    ) {
        let entry = TxnEntry {
            header: header.clone(),
            body,
            digest,
        };
        self.to_log.push(LogEntry {
            zxid: header.zxid,
            bytes: entry.to_bytes(),
        });
        self.stats.outstanding += 1;
        self.in_flight.push_back(InFlight {
            origin,
            header,
            body: entry.body,
            digest: None,
            start_ms: self.now.mono_ms,
        });
    }

    fn flush_log(&mut self, out: &mut Vec<Output>) {
        if !self.to_log.is_empty() {
            out.push(Output::Log {
                entries: std::mem::take(&mut self.to_log),
                generation: self.log_generation,
            });
        }
    }

    fn send(&mut self, conn: ConnId, frame: Bytes, out: &mut Vec<Output>) {
        if let Some(c) = self.conns.get_mut(&conn).filter(|c| !c.closing) {
            self.stats.packets_sent += 1;
            c.stats.sent += 1;
            c.stats.touched_ms = self.now.mono_ms;
            // After the handshake every frame starts with a ReplyHeader; the
            // ConnectResponse before it counts in no size (`sendResponse` vs
            // `sendBuffer`).
            if c.established && frame.len() >= 8 {
                let size = frame.len() as i64 - 4;
                self.stats.response_size.record(size);
                let xid = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                if xid > 0 {
                    c.stats.queued = c.stats.queued.saturating_sub(1);
                } else if xid == xid::NOTIFICATION {
                    self.stats.watch_bytes += size as u64;
                }
            }
            out.push(Output::Send { conn, frame });
        }
    }

    /// Sends the reply to a request and records it (`FinalRequestProcessor.updateStats`):
    /// latency from `start_ms`, as a read or an update, and the connection's last op.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        op: &'static str,
        start_ms: u64,
        update: bool,
        frame: Bytes,
        out: &mut Vec<Output>,
    ) {
        let now = self.now.mono_ms;
        let latency = now.saturating_sub(start_ms) as i64;
        self.stats.latency.add(latency);
        if update {
            self.stats.update_latency.add(latency);
        } else {
            self.stats.read_latency.add(latency);
        }
        self.stats.response_bytes += frame.len().saturating_sub(4) as u64;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.answered(xid, zxid, op, start_ms, now);
        }
        self.send(conn, frame, out);
    }

    fn close_conn(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.closing {
                c.closing = true;
                out.push(Output::Close { conn });
            }
        }
    }

    // ---- connections and sessions ----

    fn connect(
        &mut self,
        conn: ConnId,
        peer: IpAddr,
        req: ConnectRequest,
        old_client: bool,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        self.conns.insert(
            conn,
            Conn {
                peer,
                session: None,
                // The ip id every connection carries (NIOServerCnxn adds it on accept).
                auth: vec![Id {
                    scheme: "ip".into(),
                    id: crate::acl::ip_id(peer),
                }],
                timeout_ms: 0,
                old_client,
                established: false,
                closing: false,
                read_only: false,
                kept: false,
                sasl: None,
                stats: CnxnStats::connected(now.mono_ms),
            },
        );
        if old_client {
            warn!(%peer, "Connection request from old client {peer}; will be dropped if server is in r-o mode");
        }
        if !self.settings.serves_clients {
            // `leaderServes=no`: the leader has no ZooKeeperServer for its client port.
            info!(%peer, "Refusing session request for client {peer}: leaderServes=no (ZooKeeperServer not running)");
            self.close_conn(conn, out);
            return;
        }
        if self.settings.role == Role::Observer && !self.obs.serving && !self.read_only() {
            // `readConnectRequest`: "ZooKeeperServer not running"; the client tries
            // another server.
            info!(%peer, "Refusing session request for client {peer}: not in sync with a leader (ZooKeeperServer not running)");
            self.close_conn(conn, out);
            return;
        }
        if self.read_only() && !req.read_only {
            // `ReadOnlyZooKeeperServer`: only clients that allow read-only sessions.
            info!(%peer, "Refusing session request for not-read-only client {peer}");
            self.close_conn(conn, out);
            return;
        }
        if req.last_zxid_seen > self.tree.last_zxid() {
            info!(
                %peer,
                "Refusing session request for client {peer} as it has seen zxid 0x{:x} our last zxid is 0x{:x} client must try another server",
                req.last_zxid_seen,
                self.tree.last_zxid()
            );
            self.close_conn(conn, out);
            return;
        }
        let timeout = (req
            .time_out
            .max(self.settings.min_session_timeout_ms as i32) as u32)
            .min(self.settings.max_session_timeout_ms);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.timeout_ms = timeout;
        }
        if self.settings.role == Role::Observer && self.local_connect(conn, &req, timeout, now, out)
        {
            return;
        }
        if req.session_id == 0 && self.settings.role == Role::Observer {
            // The observer picks the id (its server id in the top byte); the leader
            // creates the session, and the client is answered when that commits.
            let id = self.sessions.next_session_id();
            self.bind(conn, id);
            self.obs.creating.insert(id, conn);
            out.push(Output::ToLeader(observer::create_session_request(
                id, timeout,
            )));
            return;
        }
        if req.session_id == 0 {
            let id = self.sessions.next_session_id();
            self.sessions.add(id, timeout, now.mono_ms);
            self.bind(conn, id);
            let mut h = self.header(id, 0, now);
            let (body, digest) =
                self.prep
                    .prepare_create_session(&self.tree, timeout as i32, &mut h);
            self.submit(Origin::CreateSession { conn }, h, body, digest);
            return;
        }
        let id = req.session_id;
        // A session lives on one connection: a reconnect takes it over, even before its
        // password is checked (`processConnectRequest` closes the old one first).
        if let Some(old) = self.session_conn.get(&id).copied() {
            if old != conn {
                self.close_conn(old, out);
                self.drop_conn(old);
            }
        }
        let password_ok = req.passwd.len() == 16 && req.passwd[..] == session_password(id)[..];
        if self.settings.role == Role::Observer && password_ok {
            // `LearnerZooKeeperServer.revalidateSession`: a global session is the
            // leader's to vouch for (REVALIDATE), even one this observer knows.
            self.bind(conn, id);
            if let Some(old) = self.obs.revalidating.insert(id, conn) {
                if old != conn {
                    self.close_conn(old, out);
                }
            }
            out.push(Output::ToLeader(observer::revalidate_request(id, timeout)));
            return;
        }
        let valid = password_ok && self.sessions.touch_for(id, Some(timeout), now.mono_ms);
        if valid {
            self.bind(conn, id);
            self.finish_session_init(conn, true, out);
        } else {
            if req.passwd.len() == 16 && req.passwd[..] != session_password(id)[..] {
                warn!(%peer, "Incorrect password from {peer} for session 0x{id:x}");
            }
            info!(%peer, "Invalid session 0x{id:x} for client {peer}, probably expired");
            self.finish_session_init(conn, false, out);
        }
    }

    fn bind(&mut self, conn: ConnId, session: i64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(session);
        }
        self.session_conn.insert(session, conn);
    }

    /// `finishSessionInit`: the ConnectResponse, with the session on success and zeros
    /// (timeout 0, id 0, 16 zero bytes) on failure, after which the connection closes.
    fn finish_session_init(&mut self, conn: ConnId, valid: bool, out: &mut Vec<Output>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let id = c.session.unwrap_or(0);
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: if valid { c.timeout_ms as i32 } else { 0 },
            session_id: if valid { id } else { 0 },
            passwd: if valid {
                Bytes::copy_from_slice(&session_password(id))
            } else {
                Bytes::from_static(&[0u8; 16])
            },
            read_only: c.read_only,
        };
        let old = c.old_client;
        let peer = c.peer;
        let f = frame(|b| {
            if old {
                rsp.encode_without_read_only(b)
            } else {
                rsp.encode(b)
            }
        });
        self.send(conn, f, out);
        if valid {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.established = true;
            }
            debug!(
                session = format_args!("0x{id:x}"),
                "Established session 0x{id:x} for client {peer}"
            );
            out.push(Output::Established { conn, session: id });
        } else {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = None;
            }
            if self.session_conn.get(&id) == Some(&conn) {
                self.session_conn.remove(&id);
            }
            self.close_conn(conn, out);
        }
    }

    fn closed(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        if self.conns.get(&conn).is_some_and(|c| !c.closing) {
            self.stats.connection_drops += 1;
        }
        self.drop_conn(conn);
        // The driver still holds the socket's write half: without this it would stay
        // open (CLOSE_WAIT after a client's close, or a silent hang after a frame over
        // jute.maxbuffer, which ZooKeeper answers by closing the connection).
        out.push(Output::Close { conn });
    }

    /// Forgets a connection: its watches go with it; its session lives on until it
    /// expires or a client reconnects to it.
    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.watches.remove_watcher(conn);
            if let Some(s) = c.session {
                if self.session_conn.get(&s) == Some(&conn) {
                    self.session_conn.remove(&s);
                }
            }
        }
    }

    // ---- requests ----

    fn request(&mut self, conn: ConnId, xid: i32, req: Request, now: Clock, out: &mut Vec<Output>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // `packetReceived`, and `incrOutstandingAndCheckThrottle` for real xids.
        c.stats.recved += 1;
        c.stats.touched_ms = now.mono_ms;
        if xid > 0 {
            c.stats.queued += 1;
        }
        if c.closing || !c.established {
            return;
        }
        let Some(session) = c.session else {
            return;
        };
        // auth and sasl are answered on the spot, never touch the session, and can
        // overtake earlier replies (`ZooKeeperServer.processPacket`).
        match &req {
            Request::Auth(a) => return self.auth(conn, xid, a, out),
            Request::Sasl(r) => return self.sasl(conn, xid, &r.token, out),
            // An auth or sasl body that does not decode is an IOException in
            // `processPacket`: the connection is closed, nothing is answered.
            Request::Malformed {
                op: op @ (OpCode::Auth | OpCode::Sasl),
                reason,
            } => {
                warn!(
                    "Close of session 0x{session:x}: malformed {} packet: {reason}",
                    op.name()
                );
                self.close_conn(conn, out);
                return;
            }
            _ => {}
        }
        // `enforce.auth.enabled` (`AuthenticationHelper.enforceAuthentication`): every
        // other packet, pings and setWatches included, needs an identity of a listed
        // scheme; without one the client gets -124 and the connection is closed (the
        // session itself lives on until it expires).
        if let Some(schemes) = &self.settings.enforce_auth_schemes {
            let ids = &c.auth;
            if !ids.iter().any(|id| schemes.contains(&id.scheme)) {
                let have: Vec<&str> = ids.iter().map(|id| id.scheme.as_str()).collect();
                error!(
                    "Client authentication scheme(s) [{}] does not match with any of the expected authentication scheme [{}], closing session.",
                    have.join(", "),
                    schemes.join(", ")
                );
                let f = reply_frame(xid, 0, ErrorCode::SessionClosedRequireSaslAuth, None);
                self.send(conn, f, out);
                self.close_conn(conn, out);
                return;
            }
        }
        // Every other request keeps the session alive; on a closing or unknown session
        // it is dropped without a reply (`submitRequestNow`: MissingSessionException).
        let timeout = c.timeout_ms;
        if !self.touch(session, timeout, now) {
            debug!(
                session = format_args!("0x{session:x}"),
                "Dropping request on a closing or unknown session"
            );
            return;
        }
        if let Request::Unknown(op) = req {
            warn!("Received packet at server of unknown type {op}");
            let f = reply_frame(xid, -1, ErrorCode::Unimplemented, None);
            self.send(conn, f, out);
            self.close_conn(conn, out);
            return;
        }
        if self.settings.role == Role::Observer
            && (req.is_write() || matches!(req, Request::Sync(_)))
        {
            return self.observer_write(conn, session, xid, req, now, out);
        }
        if req.is_write() {
            let op = write_opcode(&req);
            let mut h = self.header(session, xid, now);
            let (body, digest) = if op == OpCode::CloseSession {
                self.sessions.set_closing(session);
                self.prep.prepare_close_session(&self.tree, session, &mut h)
            } else {
                let state = match self.sessions.get(session) {
                    Some(s) if s.closing => SessionState::Closing,
                    Some(_) => SessionState::Live,
                    None => SessionState::Unknown,
                };
                let auth = self
                    .conns
                    .get(&conn)
                    .map(|c| c.auth.clone())
                    .unwrap_or_default();
                let caller = Caller {
                    session,
                    session_state: state,
                    auth: &auth,
                };
                self.prep.prepare(&self.tree, &caller, &req, &mut h)
            };
            let zxid = h.zxid;
            self.submit(Origin::Client { conn, xid, op }, h, body, digest);
            self.queues
                .entry(session)
                .or_default()
                .push_back(Queued::Write(zxid));
            return;
        }
        self.read_in_turn(conn, session, xid, req, now.mono_ms, out);
    }

    /// Answers a read now, or after the session's writes in flight, in its turn.
    fn read_in_turn(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        req: Request,
        start_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let q = self.queues.entry(session).or_default();
        if q.is_empty() {
            self.read(conn, xid, req, start_ms, out);
        } else {
            q.push_back(Queued::Read {
                conn,
                xid,
                req,
                start_ms,
            });
        }
    }

    fn touch(&mut self, session: i64, timeout: u32, now: Clock) -> bool {
        if let Some(local) = self.obs.local.as_mut().filter(|l| l.contains(session)) {
            return local.touch_for(session, Some(timeout), now.mono_ms);
        }
        if let Some(&t) = self.obs.upgrading.get(&session) {
            self.obs.touched.insert(session, t as i32);
            return true;
        }
        let live = self.sessions.touch_for(session, Some(timeout), now.mono_ms);
        if live && self.settings.role == Role::Observer {
            self.obs.touched.insert(session, timeout as i32);
        }
        live
    }

    /// `addauth` (`ZooKeeperServer.processPacket`): the scheme's registered provider
    /// authenticates the connection; an unknown scheme or a refusal is answered AuthFailed
    /// and the connection closed (the session lives on until it expires).
    fn auth(&mut self, conn: ConnId, xid: i32, a: &AuthPacket, out: &mut Vec<Output>) {
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer) else {
            return;
        };
        let provider = self.settings.prep.auth_providers.get(&a.scheme);
        let ids = match provider {
            Some(Provider::Digest) => {
                let id = digest_id(&String::from_utf8_lossy(&a.auth));
                let mut ids = Vec::new();
                if self.settings.super_digest.as_deref() == Some(id.as_str()) {
                    ids.push(Id {
                        scheme: "super".into(),
                        id: String::new(),
                    });
                }
                ids.push(Id {
                    scheme: "digest".into(),
                    id,
                });
                Some(ids)
            }
            // The ip provider authenticates by address: it adds the connection's own id
            // again, whatever the bytes say.
            Some(Provider::Ip) => Some(vec![Id {
                scheme: "ip".into(),
                id: crate::acl::ip_id(peer),
            }]),
            // SASL ids come only from the SASL exchange (`SASLAuthenticationProvider`).
            Some(Provider::Sasl) | None => None,
        };
        let Some(ids) = ids else {
            if provider.is_none() {
                let list = self.settings.prep.auth_providers.list();
                warn!(scheme = %a.scheme, "No authentication provider for scheme: {} has {list}", a.scheme);
            } else {
                warn!(scheme = %a.scheme, "Authentication failed for scheme: {}", a.scheme);
            }
            let f = reply_frame(xid, 0, ErrorCode::AuthFailed, None);
            self.send(conn, f, out);
            self.close_conn(conn, out);
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            for id in ids {
                if !c.auth.contains(&id) {
                    c.auth.push(id);
                }
            }
            if let Some(s) = c.session {
                info!(
                    "Session 0x{s:x}: auth success for scheme {} and address {peer}",
                    a.scheme
                );
            }
        }
        let f = reply_frame(xid, 0, ErrorCode::Ok, None);
        self.send(conn, f, out);
    }

    /// One SASL token (`ZooKeeperServer.processSasl`), answered on the spot with zxid 0
    /// and a `SetSASLResponse`. A failed exchange is answered AuthFailed *with* a body (a
    /// null token) and the connection closed, unless `allowSaslFailedClients`. Without a
    /// SASL login ZooKeeper's connection has no SASL server: it logs the null pointer and
    /// answers OK with a null token, leaving the client to give up on its side.
    fn sasl(&mut self, conn: ConnId, xid: i32, token: &[u8], out: &mut Vec<Output>) {
        let Some(login) = self.settings.sasl.clone() else {
            error!(
                "cnxn.saslServer is null: cnxn object did not initialize its saslServer properly."
            );
            let f = sasl_reply_frame(xid, ErrorCode::Ok, None);
            return self.send(conn, f, out);
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let exchange = c
            .sasl
            .get_or_insert_with(|| DigestMd5Server::new(random_nonce()));
        match exchange.evaluate(&login, token) {
            Ok(Outcome::Challenge(t)) => {
                let f = sasl_reply_frame(xid, ErrorCode::Ok, Some(&t));
                self.send(conn, f, out);
            }
            Ok(Outcome::Complete {
                token,
                authorization_id,
            }) => {
                let session = c.session.unwrap_or(0);
                info!("Session 0x{session:x}: adding SASL authorization for authorizationID: {authorization_id}");
                let mut ids = vec![Id {
                    scheme: "sasl".into(),
                    id: authorization_id.clone(),
                }];
                if login.is_super_user(&authorization_id) {
                    info!("Session 0x{session:x}: Authenticated Id '{authorization_id}' as super user");
                    ids.push(Id {
                        scheme: "super".into(),
                        id: String::new(),
                    });
                }
                for id in ids {
                    if !c.auth.contains(&id) {
                        c.auth.push(id);
                    }
                }
                let f = sasl_reply_frame(xid, ErrorCode::Ok, Some(&token));
                self.send(conn, f, out);
            }
            Err(e) => {
                let peer = c.peer;
                warn!("Client {peer} failed to SASL authenticate: {e}");
                if self.settings.sasl_auth_required() {
                    // `processSasl` with `saslAuthRequired`: allowSaslFailedClients does
                    // not apply; -124 with an empty SetSASLResponse, then the close.
                    warn!("Closing client connection due to server requires client SASL authenticaiton,but client SASL authentication has failed, or client is not configured with SASL authentication.");
                    let f = sasl_reply_frame(xid, ErrorCode::SessionClosedRequireSaslAuth, None);
                    self.send(conn, f, out);
                    self.close_conn(conn, out);
                } else if login.allow_failed_clients {
                    warn!("Maintaining client connection despite SASL authentication failure.");
                    let f = sasl_reply_frame(xid, ErrorCode::Ok, None);
                    self.send(conn, f, out);
                } else {
                    warn!("Closing client connection due to SASL authentication failure.");
                    let f = sasl_reply_frame(xid, ErrorCode::AuthFailed, None);
                    self.send(conn, f, out);
                    self.close_conn(conn, out);
                }
            }
        }
    }

    fn conn_auth(&self, conn: ConnId) -> &[Id] {
        self.conns.get(&conn).map(|c| &c.auth[..]).unwrap_or(&[])
    }

    fn can_read(&self, conn: ConnId, path: &str, perm: i32) -> Result<(), ErrorCode> {
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        // An id missing from the ACL cache refuses the request, as ZooKeeper's
        // `convertLong` failure does (FinalRequestProcessor answers MarshallingError).
        let Some(acl) = self.tree.acls.lookup(n.acl) else {
            error!(acl = n.acl, path, "ACL not available for long {}", n.acl);
            return Err(ErrorCode::MarshallingError);
        };
        if check_acl(
            &self.settings.prep.auth_providers,
            acl,
            perm,
            self.conn_auth(conn),
            self.settings.prep.skip_acl,
        ) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// Answers a read (`FinalRequestProcessor`), registering its watch.
    fn read(&mut self, conn: ConnId, xid: i32, req: Request, start_ms: u64, out: &mut Vec<Output>) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let zxid = self.tree.last_zxid();
        let lop = read_op_name(&req);
        let r: Result<Option<Box<dyn Encode>>, ErrorCode> = match req {
            Request::Ping => {
                let f = reply_frame(xid::PING, zxid, ErrorCode::Ok, None);
                return self.reply(conn, xid, zxid, lop, start_ms, false, f, out);
            }
            Request::Sync(r) => Ok(Some(Box::new(SyncResponse { path: r.path }))),
            Request::Exists(r) => self
                .exists(conn, &r.path, r.watch)
                .map(|s| Some(Box::new(ExistsResponse { stat: s }) as Box<dyn Encode>)),
            Request::GetData(r) => self.get_data(conn, &r.path, r.watch).map(|(data, stat)| {
                Some(Box::new(GetDataResponse { data, stat }) as Box<dyn Encode>)
            }),
            Request::GetChildren(r) => {
                self.get_children(conn, &r.path, r.watch)
                    .map(|(children, _)| {
                        Some(Box::new(GetChildrenResponse { children }) as Box<dyn Encode>)
                    })
            }
            Request::GetChildren2(r) => {
                self.get_children(conn, &r.path, r.watch)
                    .map(|(children, stat)| {
                        Some(Box::new(GetChildren2Response { children, stat }) as Box<dyn Encode>)
                    })
            }
            Request::GetAllChildrenNumber(r) => {
                self.can_read(conn, &r.path, perms::READ).map(|_| {
                    let n = self.tree.all_children_number(&r.path).unwrap_or(0);
                    Some(Box::new(GetAllChildrenNumberResponse { total_number: n })
                        as Box<dyn Encode>)
                })
            }
            Request::GetAcl(r) => self
                .get_acl(conn, &r.path)
                .map(|r| Some(Box::new(r) as Box<dyn Encode>)),
            Request::GetEphemerals(r) => {
                let session = self.conns.get(&conn).and_then(|c| c.session).unwrap_or(0);
                let prefix = r.prefix_path.trim();
                let all = prefix.is_empty() || prefix == "/";
                let ephemerals = self
                    .tree
                    .ephemerals_of(session)
                    .into_iter()
                    .filter(|p| all || p.starts_with(&r.prefix_path))
                    .cloned()
                    .collect();
                Ok(Some(Box::new(GetEphemeralsResponse { ephemerals })))
            }
            Request::WhoAmI => {
                let client_info = self
                    .conn_auth(conn)
                    .iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: self.settings.prep.auth_providers.user_name(id),
                    })
                    .collect();
                Ok(Some(Box::new(WhoAmIResponse { client_info })))
            }
            Request::AddWatch(r) => match r.mode {
                0 | 1 => {
                    self.watches.add_persistent(&r.path, conn, r.mode == 1);
                    Ok(Some(Box::new(ErrorResponse { err: 0 })))
                }
                _ => Err(ErrorCode::MarshallingError),
            },
            Request::CheckWatches(r) => match WatcherType::from_i32(r.r#type) {
                // ZooKeeper's WatchManager answers for the path, whoever watches it.
                Some(t) => match self.watches.path_watched(&r.path, t) {
                    Some(true) => Ok(None),
                    Some(false) => Err(ErrorCode::NoWatcher),
                    None => Err(ErrorCode::MarshallingError),
                },
                None => Err(ErrorCode::MarshallingError),
            },
            Request::RemoveWatches(r) => match WatcherType::from_i32(r.r#type) {
                Some(t) if self.watches.remove(&r.path, t, conn) => Ok(None),
                Some(_) => Err(ErrorCode::NoWatcher),
                None => Err(ErrorCode::MarshallingError),
            },
            Request::SetWatches(r) => {
                self.set_watches(
                    conn,
                    r.relative_zxid,
                    &r.data_watches,
                    &r.exist_watches,
                    &r.child_watches,
                    &[],
                    &[],
                    out,
                );
                Ok(None)
            }
            Request::SetWatches2(r) => {
                self.set_watches(
                    conn,
                    r.relative_zxid,
                    &r.data_watches,
                    &r.exist_watches,
                    &r.child_watches,
                    &r.persistent_watches,
                    &r.persistent_recursive_watches,
                    out,
                );
                Ok(None)
            }
            Request::MultiRead(ops) if ops.iter().any(|o| !o.is_read()) => {
                // ZooKeeper fails at the first write op but still sends the (empty)
                // response it had started: an error header *with* a body.
                let f = frame(|b| {
                    ReplyHeader {
                        xid,
                        zxid,
                        err: ErrorCode::MarshallingError.code(),
                    }
                    .encode(b);
                    MultiResponse(Vec::new()).put(b);
                });
                return self.reply(conn, xid, zxid, lop, start_ms, false, f, out);
            }
            Request::MultiRead(ops) => self
                .multi_read(conn, &ops)
                .map(|r| Some(Box::new(r) as Box<dyn Encode>)),
            Request::Malformed { op, reason } => {
                warn!(op = op.name(), %reason, "Failed to process request: marshalling error");
                Err(ErrorCode::MarshallingError)
            }
            _ => Err(ErrorCode::MarshallingError),
        };
        let f = match r {
            Ok(body) => reply_frame(xid, zxid, ErrorCode::Ok, body.as_deref()),
            Err(e) => reply_frame(xid, zxid, e, None),
        };
        self.reply(conn, xid, zxid, lop, start_ms, false, f, out);
    }

    fn exists(&mut self, conn: ConnId, path: &str, watch: bool) -> Result<Stat, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        if self.tree.contains(path) {
            self.can_read(conn, path, perms::READ)?;
        }
        // The watch is set whether or not the node exists: it then waits for NodeCreated.
        if watch {
            self.watches.add_data_watch(path, conn);
        }
        self.tree
            .get(path)
            .map(|n| n.to_stat())
            .ok_or(ErrorCode::NoNode)
    }

    fn get_data(
        &mut self,
        conn: ConnId,
        path: &str,
        watch: bool,
    ) -> Result<(Option<Bytes>, Stat), ErrorCode> {
        self.can_read(conn, path, perms::READ)?;
        if watch {
            self.watches.add_data_watch(path, conn);
        }
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        Ok((n.data.map(Bytes::copy_from_slice), n.to_stat()))
    }

    fn get_children(
        &mut self,
        conn: ConnId,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ErrorCode> {
        self.can_read(conn, path, perms::READ)?;
        if watch {
            self.watches.add_child_watch(path, conn);
        }
        let stat = self.tree.get(path).ok_or(ErrorCode::NoNode)?.to_stat();
        Ok((self.tree.children(path).unwrap_or_default(), stat))
    }

    /// getACL needs READ or ADMIN; without ADMIN, digest hashes are masked.
    fn get_acl(&mut self, conn: ConnId, path: &str) -> Result<GetAclResponse, ErrorCode> {
        self.can_read(conn, path, perms::READ | perms::ADMIN)?;
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        let stat = n.to_stat();
        // `can_read` above has refused an id the cache does not hold.
        let acl: Vec<Acl> = self
            .tree
            .acls
            .lookup(n.acl)
            .map(|a| a.to_vec())
            .ok_or(ErrorCode::MarshallingError)?;
        let acl = if self.can_read(conn, path, perms::ADMIN).is_ok() {
            acl
        } else {
            acl.into_iter()
                .map(|mut a| {
                    if a.id.scheme == "digest" {
                        let user = a.id.id.split(':').next().unwrap_or("").to_owned();
                        a.id.id = format!("{user}:x");
                    }
                    a
                })
                .collect()
        };
        Ok(GetAclResponse { acl, stat })
    }

    /// `multiRead`. Its reply grows with every op (65,000 getData of one 1 MiB znode fit
    /// in one request), so it is refused with MarshallingError as soon as it would pass
    /// `jute.maxbuffer`: ZooKeeper builds such a reply whole, and a client with the same
    /// `jute.maxbuffer` cannot read it anyway ("Packet len … is out of range").
    fn multi_read(&mut self, conn: ConnId, ops: &[MultiOp]) -> Result<MultiResponse, ErrorCode> {
        let mut results = Vec::with_capacity(ops.len().min(1024));
        // ReplyHeader, then per op a MultiHeader (type, done, err) and its record.
        let mut size = 16usize;
        for op in ops {
            let r = match op {
                MultiOp::GetChildren(r) => self
                    .get_children(conn, &r.path, false)
                    .map(|(c, _)| OpResult::GetChildren(c)),
                MultiOp::GetData(r) => self
                    .get_data(conn, &r.path, false)
                    .map(|(d, s)| OpResult::GetData(d, s)),
                _ => Err(ErrorCode::MarshallingError),
            };
            size += 9 + match &r {
                Ok(OpResult::GetData(d, _)) => 4 + d.as_ref().map_or(0, Bytes::len) + STAT_LEN,
                Ok(OpResult::GetChildren(c)) => 4 + c.iter().map(|n| 4 + n.len()).sum::<usize>(),
                _ => 4,
            };
            if size > self.settings.max_reply_bytes {
                warn!(
                    ops = ops.len(),
                    "multiRead refused: its reply would pass jute.maxbuffer ({} bytes)",
                    self.settings.max_reply_bytes
                );
                return Err(ErrorCode::MarshallingError);
            }
            results.push(r.unwrap_or_else(OpResult::Error));
        }
        Ok(MultiResponse(results))
    }

    #[allow(clippy::too_many_arguments)]
    fn set_watches(
        &mut self,
        conn: ConnId,
        rel: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
        out: &mut Vec<Output>,
    ) {
        // `DataTree.setWatches`: fire what the client missed since `rel`, register the
        // rest. These events are not filtered by ACL.
        let mut events = Vec::new();
        for p in data {
            match self.tree.get(p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat.mzxid > rel => events.push((EventType::NodeDataChanged, p)),
                Some(_) => self.watches.add_data_watch(p, conn),
            }
        }
        for p in exist {
            if self.tree.contains(p) {
                events.push((EventType::NodeCreated, p));
            } else {
                self.watches.add_data_watch(p, conn);
            }
        }
        for p in child {
            match self.tree.get(p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat.pzxid > rel => events.push((EventType::NodeChildrenChanged, p)),
                Some(_) => self.watches.add_child_watch(p, conn),
            }
        }
        for p in persistent {
            self.watches.add_persistent(p, conn, false);
        }
        for p in recursive {
            self.watches.add_persistent(p, conn, true);
        }
        for (e, p) in events {
            let f = event_frame(e, p);
            self.send(conn, f, out);
        }
    }

    // ---- commit ----

    fn durable(&mut self, zxid: i64, out: &mut Vec<Output>) {
        while self
            .in_flight
            .front()
            .is_some_and(|f| f.header.zxid <= zxid)
        {
            let Some(f) = self.in_flight.pop_front() else {
                break;
            };
            self.stats.outstanding = self.stats.outstanding.saturating_sub(1);
            self.apply(f, out);
            if self.settings.role == Role::Observer {
                // A sync the leader answered before the next transaction is answered
                // before that transaction's reply: the session's order.
                self.complete_syncs(out);
            }
        }
        if self
            .obs
            .up_to_date_at
            .as_ref()
            .is_some_and(|(z, _)| self.tree.last_zxid() >= *z)
        {
            if let Some((_, info)) = self.obs.up_to_date_at.take() {
                self.serve(info, out);
            }
        }
    }

    fn apply(&mut self, mut f: InFlight, out: &mut Vec<Output>) {
        let mut changes = Vec::new();
        let result = self.tree.apply(&f.header, &f.body, &mut changes);
        self.prep.applied(f.header.zxid);
        if let Origin::Remote = f.origin {
            f.origin = self.remote_origin(&f.header, &f.body, &mut f.start_ms);
            self.obs.behind.reached(f.header.zxid);
            if let Some(expected) = f.digest.filter(|_| self.obs.serving) {
                let ours = self.tree.digest();
                if ours != expected && self.settings.prep.digest_enabled {
                    self.digest_mismatch(f.header.zxid, expected, ours, out);
                }
            }
        }
        if self.settings.prep.digest_enabled && f.header.zxid % DIGEST_LOG_INTERVAL == 0 {
            if self.digest_log.len() == DIGEST_LOG_LIMIT {
                self.digest_log.pop_front();
            }
            self.digest_log
                .push_back((f.header.zxid, self.tree.digest()));
        }
        let session = f.header.client_id;
        if let TxnBody::CloseSession(_) = f.body {
            self.sessions.remove(session);
            // Closed: no longer reported to the leader (`removeSession`).
            self.obs.touched.remove(&session);
        }
        // Events first: a watcher sees the event before the reply of the write that
        // caused it, and before any later reply.
        if !changes.is_empty() {
            let mut fired = Vec::new();
            self.watches.trigger(&changes, &mut fired);
            self.deliver(fired, out);
        }
        let zxid = self.tree.last_zxid();
        match f.origin {
            Origin::Internal | Origin::Remote => {}
            Origin::CreateSession { conn } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.stats
                        .answered(0, zxid, "SESS", f.start_ms, self.now.mono_ms);
                }
                let latency = self.now.mono_ms.saturating_sub(f.start_ms) as i64;
                self.stats.latency.add(latency);
                self.stats.update_latency.add(latency);
                self.finish_session_init(conn, true, out);
            }
            Origin::Expiry => {
                // The client learns of it when the socket closes and its reconnect is refused.
                if let Some(conn) = self.session_conn.remove(&session) {
                    self.close_conn(conn, out);
                    self.drop_conn(conn);
                }
            }
            Origin::Client { conn, xid, op } => {
                let frame = write_reply(xid, zxid, op, &f.body, &result);
                // An error transaction fails before Final names the op.
                let lop = match result {
                    TxnResult::Error(_) if op != OpCode::Multi => "NA",
                    _ => write_op_name(op),
                };
                self.reply(conn, xid, zxid, lop, f.start_ms, true, frame, out);
                if op == OpCode::CloseSession {
                    self.close_conn(conn, out);
                    if self.session_conn.get(&session) == Some(&conn) {
                        self.session_conn.remove(&session);
                    }
                }
                self.release_session_queue(session, f.header.zxid, out);
            }
        }
        if matches!(f.body, TxnBody::CloseSession(_)) {
            self.queues.remove(&session);
        }
    }

    /// The write at the front of the session's queue is answered: run the reads that
    /// waited behind it, up to the next write.
    fn release_session_queue(&mut self, session: i64, zxid: i64, out: &mut Vec<Output>) {
        let Some(q) = self.queues.get_mut(&session) else {
            return;
        };
        if let Some(Queued::Write(z)) = q.front() {
            if *z == zxid {
                q.pop_front();
            }
        }
        self.run_queued_reads(session, out);
    }

    /// Runs the reads at the front of the session's queue, up to the next write.
    fn run_queued_reads(&mut self, session: i64, out: &mut Vec<Output>) {
        loop {
            let Some(q) = self.queues.get_mut(&session) else {
                return;
            };
            match q.front() {
                Some(Queued::Read { .. }) => {
                    if let Some(Queued::Read {
                        conn,
                        xid,
                        req,
                        start_ms,
                    }) = q.pop_front()
                    {
                        self.read(conn, xid, req, start_ms, out);
                    }
                }
                Some(Queued::Answer { .. }) => {
                    if let Some(Queued::Answer {
                        conn,
                        xid,
                        err,
                        start_ms,
                    }) = q.pop_front()
                    {
                        self.answer_error(conn, xid, err, start_ms, out);
                    }
                }
                Some(Queued::Write(_) | Queued::Forwarded { .. }) => return,
                None => {
                    self.queues.remove(&session);
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, fired: Vec<Fired>, out: &mut Vec<Output>) {
        // Every watcher of one change gets the same bytes: encode them once.
        let mut last: Option<(EventType, String, Bytes)> = None;
        for f in fired {
            let Some(c) = self.conns.get(&f.watcher) else {
                continue;
            };
            let providers = &self.settings.prep.auth_providers;
            if !check_acl(
                providers,
                &f.acl,
                perms::READ,
                &c.auth,
                self.settings.prep.skip_acl,
            ) {
                continue;
            }
            let frame = match &last {
                Some((e, p, b)) if *e == f.event && *p == f.path => b.clone(),
                _ => {
                    let b = event_frame(f.event, &f.path);
                    last = Some((f.event, f.path, b.clone()));
                    b
                }
            };
            self.send(f.watcher, frame, out);
        }
    }
}

/// The opcode of a write request (and of sync, which an observer forwards too).
fn write_opcode(req: &Request) -> OpCode {
    match req {
        Request::Create { op, .. } => *op,
        Request::CreateTtl(_) => OpCode::CreateTtl,
        Request::Delete(_) => OpCode::Delete,
        Request::DeleteContainer(_) => OpCode::DeleteContainer,
        Request::SetData(_) => OpCode::SetData,
        Request::SetAcl(_) => OpCode::SetAcl,
        Request::Check(_) => OpCode::Check,
        Request::Multi(_) => OpCode::Multi,
        Request::Reconfig(_) => OpCode::Reconfig,
        Request::CloseSession => OpCode::CloseSession,
        Request::Sync(_) => OpCode::Sync,
        Request::Malformed { op, .. } => *op,
        _ => OpCode::Error,
    }
}

/// The `lop` ZooKeeper's Final records for a read (`cons`).
fn read_op_name(req: &Request) -> &'static str {
    match req {
        Request::Ping => "PING",
        Request::Sync(_) => "SYNC",
        Request::Exists(_) => "EXIS",
        Request::GetData(_) => "GETD",
        Request::GetChildren(_) | Request::GetChildren2(_) => "GETC",
        Request::GetAllChildrenNumber(_) => "GETACN",
        Request::GetAcl(_) => "GETA",
        Request::GetEphemerals(_) => "GETE",
        Request::WhoAmI => "HOMI",
        Request::AddWatch(_) => "ADDW",
        Request::CheckWatches(_) => "CHKW",
        Request::RemoveWatches(_) => "REMW",
        Request::SetWatches(_) => "SETW",
        Request::SetWatches2(_) => "STW2",
        Request::MultiRead(_) => "MLTR",
        _ => "NA",
    }
}

/// The `lop` ZooKeeper's Final records for a write.
fn write_op_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => "CREA",
        OpCode::Delete | OpCode::DeleteContainer => "DELE",
        OpCode::SetData => "SETD",
        OpCode::SetAcl => "SETA",
        OpCode::Check => "CHEC",
        OpCode::Multi => "MULT",
        OpCode::Reconfig => "RECO",
        OpCode::CloseSession => "CLOS",
        _ => "NA",
    }
}

fn event_frame(event: EventType, path: &str) -> Bytes {
    frame(|b| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid: -1,
            err: 0,
        }
        .encode(b);
        WatcherEvent {
            r#type: event as i32,
            state: SYNC_CONNECTED,
            path: path.to_owned(),
        }
        .encode(b);
    })
}

/// One result inside a multi or multiRead reply (`OpResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Create(String),
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    GetChildren(Vec<String>),
    GetData(Option<Bytes>, Stat),
    Error(ErrorCode),
}

/// `MultiResponse`: per op a MultiHeader and its record, then the `done` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiResponse(pub Vec<OpResult>);

impl Encode for MultiResponse {
    fn put(&self, b: &mut BytesMut) {
        for r in &self.0 {
            let (ty, err) = match r {
                OpResult::Create(_) => (OpCode::Create as i32, 0),
                OpResult::Create2(..) => (OpCode::Create2 as i32, 0),
                OpResult::Delete => (OpCode::Delete as i32, 0),
                OpResult::SetData(_) => (OpCode::SetData as i32, 0),
                OpResult::Check => (OpCode::Check as i32, 0),
                OpResult::GetChildren(_) => (OpCode::GetChildren as i32, 0),
                OpResult::GetData(..) => (OpCode::GetData as i32, 0),
                OpResult::Error(e) => (OpCode::Error as i32, e.code()),
            };
            MultiHeader {
                r#type: ty,
                done: false,
                err,
            }
            .encode(b);
            match r {
                OpResult::Create(p) => CreateResponse { path: p.clone() }.encode(b),
                OpResult::Create2(p, s) => Create2Response {
                    path: p.clone(),
                    stat: s.clone(),
                }
                .encode(b),
                OpResult::SetData(s) => SetDataResponse { stat: s.clone() }.encode(b),
                OpResult::GetChildren(c) => GetChildrenResponse {
                    children: c.clone(),
                }
                .encode(b),
                OpResult::GetData(d, s) => GetDataResponse {
                    data: d.clone(),
                    stat: s.clone(),
                }
                .encode(b),
                OpResult::Error(e) => ErrorResponse { err: e.code() }.encode(b),
                OpResult::Delete | OpResult::Check => {}
            }
        }
        MultiHeader {
            r#type: -1,
            done: true,
            err: -1,
        }
        .encode(b);
    }
}

/// The reply to an applied write (`FinalRequestProcessor`).
fn write_reply(xid: i32, zxid: i64, op: OpCode, body: &TxnBody, result: &TxnResult) -> Bytes {
    if let TxnResult::Error(e) = result {
        return reply_frame(xid, zxid, *e, None);
    }
    match (op, result) {
        (OpCode::Create, TxnResult::Created { path, .. }) => reply_frame(
            xid,
            zxid,
            ErrorCode::Ok,
            Some(&CreateResponse { path: path.clone() }),
        ),
        (
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl,
            TxnResult::Created { path, stat },
        ) => reply_frame(
            xid,
            zxid,
            ErrorCode::Ok,
            Some(&Create2Response {
                path: path.clone(),
                stat: stat.clone(),
            }),
        ),
        (OpCode::SetData, TxnResult::Stat(stat)) => reply_frame(
            xid,
            zxid,
            ErrorCode::Ok,
            Some(&SetDataResponse { stat: stat.clone() }),
        ),
        (OpCode::SetAcl, TxnResult::Stat(stat)) => reply_frame(
            xid,
            zxid,
            ErrorCode::Ok,
            Some(&SetAclResponse { stat: stat.clone() }),
        ),
        (OpCode::Multi, TxnResult::Multi(results)) => {
            let ops: &[TxnBody] = match body {
                TxnBody::Multi(ops) => ops,
                _ => &[],
            };
            let rsp = MultiResponse(
                ops.iter()
                    .zip(results)
                    .map(|(op, r)| match (op, r) {
                        (_, TxnResult::Error(e)) => OpResult::Error(*e),
                        (TxnBody::Create(_), TxnResult::Created { path, .. }) => {
                            OpResult::Create(path.clone())
                        }
                        (
                            TxnBody::Create2(_)
                            | TxnBody::CreateContainer(_)
                            | TxnBody::CreateTtl(_),
                            TxnResult::Created { path, stat },
                        ) => OpResult::Create2(path.clone(), stat.clone()),
                        (TxnBody::Delete(_) | TxnBody::DeleteContainer(_), _) => OpResult::Delete,
                        (TxnBody::SetData(_), TxnResult::Stat(s)) => OpResult::SetData(s.clone()),
                        (TxnBody::Check(_), _) => OpResult::Check,
                        _ => OpResult::Error(ErrorCode::SystemError),
                    })
                    .collect(),
            );
            reply_frame(xid, zxid, ErrorCode::Ok, Some(&rsp))
        }
        _ => reply_frame(xid, zxid, ErrorCode::Ok, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::open_acl_unsafe;
    use crate::proto::Reader;
    use std::net::Ipv4Addr;

    const NOW: Clock = Clock {
        mono_ms: 1_000,
        wall_ms: 1_700_000_000_000,
    };

    fn server() -> Server {
        Server::new(Settings::default(), DataTree::new(), NOW)
    }

    /// Connects `conn` and completes its createSession; returns the session id.
    fn connect(s: &mut Server, conn: ConnId) -> i64 {
        let mut out = Vec::new();
        let req = ConnectRequest {
            time_out: 10_000,
            passwd: Bytes::from_static(&[0; 16]),
            ..Default::default()
        };
        s.handle(
            Input::Connect {
                conn,
                peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
                req,
                old_client: false,
            },
            NOW,
            &mut out,
        );
        let zxid = logged(&out).expect("createSession is logged");
        out.clear();
        s.handle(Input::Durable { zxid }, NOW, &mut out);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Established { conn: c, .. } if *c == conn)));
        s.conns[&conn].session.expect("bound")
    }

    fn logged(out: &[Output]) -> Option<i64> {
        out.iter().rev().find_map(|o| match o {
            Output::Log { entries, .. } => entries.last().map(|e| e.zxid),
            _ => None,
        })
    }

    /// (conn, xid, err) of every frame sent, in order.
    fn sent(out: &[Output]) -> Vec<(ConnId, i32, i32)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { conn, frame } => {
                    let h = ReplyHeader::decode(&mut Reader::new(&frame[4..])).ok()?;
                    Some((*conn, h.xid, h.err))
                }
                _ => None,
            })
            .collect()
    }

    fn req(s: &mut Server, conn: ConnId, xid: i32, r: Request, out: &mut Vec<Output>) {
        s.handle(Input::Request { conn, xid, req: r }, NOW, out);
    }

    fn create(path: &str) -> Request {
        Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"v")),
                acl: open_acl_unsafe(),
                flags: 0,
            },
        }
    }

    fn get(path: &str, watch: bool) -> Request {
        Request::GetData(GetDataRequest {
            path: path.into(),
            watch,
        })
    }

    /// A tree holding `/open` (ACL id −1, world:anyone ALL as ZooKeeper reads it) and
    /// `/orphan`, whose ACL id 77 is not in the ACL cache (a crafted or damaged snapshot).
    fn tree_with_unknown_acl_id() -> DataTree {
        let mut t = DataTree::new();
        let stat = crate::tree::NodeStat {
            czxid: 1,
            mzxid: 1,
            pzxid: 1,
            ..Default::default()
        };
        assert!(t.restore_node("/open", Some(b"o"), crate::acl::OPEN_UNSAFE_ACL_ID, stat));
        assert!(t.restore_node("/orphan", Some(b"x"), 77, stat));
        t
    }

    #[test]
    fn an_unknown_acl_id_grants_nothing() {
        let mut s = Server::new(Settings::default(), tree_with_unknown_acl_id(), NOW);
        let session = connect(&mut s, 1);
        let mut out = Vec::new();
        let reads = [
            get("/orphan", false),
            Request::GetAcl(GetAclRequest {
                path: "/orphan".into(),
            }),
            get("/open", false),
        ];
        for (xid, r) in (1..).zip(reads) {
            req(&mut s, 1, xid, r, &mut out);
        }
        let set = |path: &str| {
            Request::SetData(SetDataRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"changed")),
                version: -1,
            })
        };
        req(&mut s, 1, 4, set("/orphan"), &mut out);
        req(&mut s, 1, 5, set("/open"), &mut out);
        let zxid = logged(&out).expect("the writes are logged");
        s.handle(Input::Durable { zxid }, NOW, &mut out);
        let marshalling = ErrorCode::MarshallingError as i32;
        assert_eq!(
            sent(&out)
                .into_iter()
                .map(|(_, xid, err)| (xid, err))
                .collect::<Vec<_>>(),
            vec![
                (1, marshalling),
                (2, marshalling),
                (3, 0),
                (4, marshalling),
                (5, 0)
            ],
            "session {session:x}"
        );
        let n = s.tree.get("/orphan").expect("still there");
        assert_eq!(n.data_bytes(), b"x", "the refused setData changed nothing");
    }

    #[test]
    fn nothing_is_answered_or_visible_before_the_log_says_durable() {
        let mut s = server();
        connect(&mut s, 1);
        connect(&mut s, 2);
        let mut out = Vec::new();
        req(&mut s, 1, 10, create("/a"), &mut out);
        req(&mut s, 1, 11, get("/a", false), &mut out);
        // The writer's own read waits behind its write; another session reads the tree
        // as committed, without the write.
        req(&mut s, 2, 20, get("/a", false), &mut out);
        assert_eq!(sent(&out), vec![(2, 20, ErrorCode::NoNode.code())]);
        let zxid = logged(&out).unwrap();
        out.clear();
        s.handle(Input::Durable { zxid }, NOW, &mut out);
        assert_eq!(sent(&out), vec![(1, 10, 0), (1, 11, 0)]);
    }

    #[test]
    fn a_watch_event_leaves_before_the_reply_of_the_write_that_fired_it() {
        let mut s = server();
        connect(&mut s, 1);
        let mut out = Vec::new();
        req(
            &mut s,
            1,
            1,
            Request::Exists(ExistsRequest {
                path: "/w".into(),
                watch: true,
            }),
            &mut out,
        );
        assert_eq!(sent(&out), vec![(1, 1, ErrorCode::NoNode.code())]);
        out.clear();
        req(&mut s, 1, 2, create("/w"), &mut out);
        let zxid = logged(&out).unwrap();
        out.clear();
        s.handle(Input::Durable { zxid }, NOW, &mut out);
        assert_eq!(sent(&out), vec![(1, xid::NOTIFICATION, 0), (1, 2, 0)]);
    }

    #[test]
    fn a_failed_write_takes_a_zxid_and_answers_with_it() {
        let mut s = server();
        connect(&mut s, 1);
        let mut out = Vec::new();
        req(&mut s, 1, 1, create("/nope/x"), &mut out);
        let zxid = logged(&out).unwrap();
        out.clear();
        s.handle(Input::Durable { zxid }, NOW, &mut out);
        let Some(Output::Send { frame, .. }) = out.first() else {
            panic!("no reply: {out:?}");
        };
        let h = ReplyHeader::decode(&mut Reader::new(&frame[4..])).unwrap();
        assert_eq!((h.err, h.zxid), (ErrorCode::NoNode.code(), zxid));
        assert_eq!(s.tree().last_zxid(), zxid);
    }

    /// PrepRequestProcessor's closeSession moves only the parent's pzxid, not its child
    /// count: a delete of the parent prepared before the close is applied gets NotEmpty.
    #[test]
    fn a_delete_of_the_parent_prepared_behind_a_close_session_is_not_empty() {
        for digest_enabled in [true, false] {
            let mut settings = Settings::default();
            settings.prep.digest_enabled = digest_enabled;
            let mut s = Server::new(settings, DataTree::new(), NOW);
            connect(&mut s, 1);
            connect(&mut s, 2);
            let mut out = Vec::new();
            let mut eph = create("/p/e");
            if let Request::Create { req, .. } = &mut eph {
                req.flags = 1;
            }
            req(&mut s, 1, 1, create("/p"), &mut out);
            req(&mut s, 1, 2, eph, &mut out);
            let zxid = logged(&out).unwrap();
            s.handle(Input::Durable { zxid }, NOW, &mut out);
            out.clear();
            req(&mut s, 1, 3, Request::CloseSession, &mut out);
            let delete = Request::Delete(DeleteRequest {
                path: "/p".into(),
                version: -1,
            });
            req(&mut s, 2, 9, delete, &mut out);
            let zxid = logged(&out).unwrap();
            s.handle(Input::Durable { zxid }, NOW, &mut out);
            let replies: Vec<_> = sent(&out)
                .into_iter()
                .filter(|(conn, _, _)| *conn == 2)
                .collect();
            assert_eq!(
                replies,
                vec![(2, 9, ErrorCode::NotEmpty as i32)],
                "digest enabled: {digest_enabled}"
            );
            assert!(s.tree().contains("/p") && !s.tree().contains("/p/e"));
        }
    }

    #[test]
    fn an_expired_session_loses_its_ephemerals_and_its_connection() {
        let mut s = server();
        let sid = connect(&mut s, 1);
        connect(&mut s, 2);
        let mut out = Vec::new();
        let mut eph = create("/e");
        if let Request::Create { req, .. } = &mut eph {
            req.flags = 1;
        }
        req(&mut s, 1, 1, eph, &mut out);
        let zxid = logged(&out).unwrap();
        s.handle(Input::Durable { zxid }, NOW, &mut out);
        out.clear();
        req(&mut s, 2, 5, get("/e", true), &mut out);
        out.clear();
        // Session 2 keeps pinging; session 1 falls silent.
        let later = Clock {
            mono_ms: NOW.mono_ms + 11_000,
            ..NOW
        };
        s.handle(
            Input::Request {
                conn: 2,
                xid: xid::PING,
                req: Request::Ping,
            },
            later,
            &mut out,
        );
        let much_later = Clock {
            mono_ms: NOW.mono_ms + 13_000,
            ..NOW
        };
        out.clear();
        s.tick(much_later, &mut out);
        let zxid = logged(&out).expect("closeSession logged");
        out.clear();
        s.handle(Input::Durable { zxid }, much_later, &mut out);
        assert!(!s.tree().contains("/e"));
        assert!(!s.sessions().contains(sid));
        assert_eq!(sent(&out), vec![(2, xid::NOTIFICATION, 0)]);
        assert!(out.contains(&Output::Close { conn: 1 }));
    }
}
