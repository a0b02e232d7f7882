//! The observer role of [`Server`]: the state machine of a replica that applies what an
//! ensemble's leader commits and forwards its clients' writes (the gateway; next, the
//! QUIC observer). It shares everything else with the standalone server: committed
//! transactions go through the same log → durable → apply path, and replies, watch
//! events and per-session order come from the same code.
//!
//! What differs, as in ZooKeeper's `ObserverZooKeeperServer`:
//! * zxids come from the leader ([`Input::Committed`]); nothing is prepared here;
//! * writes, sync, createSession and closeSession go to the leader as REQUEST packets
//!   ([`Output::ToLeader`]) with the client's identities, and the client is answered when
//!   the transaction (or the leader's error transaction) comes back, matched by session
//!   id and cxid as `CommitProcessor` matches them;
//! * a sync is answered when the leader's SYNC has come and everything committed before
//!   it is applied here;
//! * a reconnecting session is vouched for by the leader (REVALIDATE); sessions are
//!   never expired here, and those touched are reported in the reply to each PING.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};
use tracing::{debug, error, info, warn};

use super::subscribers::SyncOwner;
use super::*;
use crate::publish::Published;

/// Whether a request creates an ephemeral node (alone or in a multi): a local session
/// must become global for it.
fn creates_ephemeral(req: &Request) -> bool {
    use crate::request::MultiOp;
    let eph = |flags: i32| flags == 1 || flags == 3;
    match req {
        Request::Create { req, .. } => eph(req.flags),
        Request::Multi(ops) => ops
            .iter()
            .any(|o| matches!(o, MultiOp::Create { req, .. } if eph(req.flags))),
        _ => false,
    }
}

/// `Learner.request`: REQUEST with session id, cxid, opcode and the request body; the
/// client's ids as authinfo (the leader checks ACLs against them).
fn request_packet(
    session: i64,
    cxid: i32,
    op: OpCode,
    body: impl FnOnce(&mut BytesMut),
    authinfo: Option<Vec<Id>>,
) -> QuorumPacket {
    let mut data = BytesMut::with_capacity(64);
    data.put_i64(session);
    data.put_i32(cxid);
    data.put_i32(op as i32);
    body(&mut data);
    QuorumPacket {
        r#type: PacketType::Request as i32,
        zxid: -1,
        data: Some(data.freeze()),
        authinfo,
    }
}

/// A new session (or a local one being upgraded) for the leader to create: cxid 0, the
/// timeout as its body, no authinfo (`ZooKeeperServer.createSession`).
pub(super) fn create_session_request(session: i64, timeout: u32) -> QuorumPacket {
    request_packet(
        session,
        0,
        OpCode::CreateSession,
        |b| b.put_i32(timeout as i32),
        None,
    )
}

/// `Learner.validateSession`: is this session (moving here) still live at the leader?
pub(super) fn revalidate_request(session: i64, timeout: u32) -> QuorumPacket {
    let mut data = BytesMut::with_capacity(12);
    data.put_i64(session);
    data.put_i32(timeout as i32);
    QuorumPacket {
        r#type: PacketType::Revalidate as i32,
        zxid: -1,
        data: Some(data.freeze()),
        authinfo: None,
    }
}

/// The table of an observer's local sessions (`localSessionsEnabled`, read-only ones).
pub(super) fn local_session_table(settings: &Settings, now: Clock) -> SessionTracker {
    SessionTracker::new(settings.server_id, settings.tick_ms, now.wall_ms)
}

/// A forwarded request taken from its session's queue.
struct Taken {
    conn: ConnId,
    op: OpCode,
    start_ms: u64,
    path: Option<String>,
}

impl Server {
    /// Whether clients get sessions here now: not on a leader with `leaderServes=no`, not
    /// on an observer out of sync (unless read-only sessions are served).
    pub fn serves_clients(&self) -> bool {
        self.settings.serves_clients
            && !(self.settings.role == Role::Observer && !self.obs.serving && !self.read_only())
    }

    /// Out of sync with `readonlymode.enabled`: read-only sessions are served.
    pub fn read_only(&self) -> bool {
        self.settings.role == Role::Observer && self.settings.read_only_mode && !self.obs.serving
    }

    /// `isro`: `ro` while read-only, `null` while not serving at all (ZooKeeper's
    /// answer when its server is not running), else `rw`.
    pub fn isro(&self) -> &'static str {
        if self.read_only() {
            "ro"
        } else if !self.serves_clients() {
            "null"
        } else {
            "rw"
        }
    }

    /// A ConnectRequest this observer answers by itself: a new local or read-only
    /// session, or a reconnect to one. False: the leader is to be asked.
    pub(super) fn local_connect(
        &mut self,
        conn: ConnId,
        req: &ConnectRequest,
        timeout: u32,
        now: Clock,
        out: &mut Vec<Output>,
    ) -> bool {
        let read_only = self.read_only();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.read_only = read_only;
        }
        let id = req.session_id;
        let known_local = self.obs.local.as_ref().is_some_and(|l| l.contains(id));
        if id == 0 && (read_only || self.settings.local_sessions) {
            let id = self.sessions.next_session_id();
            if let Some(l) = self.obs.local.as_mut() {
                l.add(id, timeout, now.mono_ms);
            }
            self.bind(conn, id);
            self.finish_session_init(conn, true, out);
            return true;
        }
        if id != 0 && (known_local || read_only) {
            let password_ok = req.passwd.len() == 16 && req.passwd[..] == session_password(id)[..];
            let live = match self.obs.local.as_mut().filter(|l| l.contains(id)) {
                Some(l) => l.touch_for(id, Some(timeout), now.mono_ms),
                // Read-only: a global session this tree knows is served as it is.
                None => self.sessions.contains(id),
            };
            if let Some(old) = self.session_conn.get(&id).copied().filter(|&o| o != conn) {
                self.close_conn(old, out);
                self.drop_conn(old);
            }
            self.bind(conn, id);
            self.finish_session_init(conn, password_ok && live, out);
            return true;
        }
        false
    }

    /// Expires local sessions whose time is up; their connections close.
    pub(super) fn expire_local(&mut self, now: Clock, out: &mut Vec<Output>) {
        let Some(local) = self.obs.local.as_mut() else {
            return;
        };
        let expired = local.expire(now.mono_ms);
        for &id in &expired {
            local.remove(id);
        }
        for id in expired {
            self.stats.sessions_expired += 1;
            info!("Expiring local session 0x{id:x}");
            if let Some(conn) = self.session_conn.remove(&id) {
                self.close_conn(conn, out);
                self.drop_conn(conn);
            }
            self.queues.remove(&id);
        }
    }

    /// A client's write or sync on an observer: refused while read-only, answered here
    /// for a local session's close, upgraded first when a local session creates an
    /// ephemeral, and otherwise forwarded.
    pub(super) fn observer_write(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        req: Request,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        if self.conns.get(&conn).is_some_and(|c| c.read_only) {
            if matches!(req, Request::CloseSession) {
                return self.close_local(conn, session, xid, now, out);
            }
            return self.answer_in_turn(conn, session, xid, ErrorCode::NotReadOnly, now, out);
        }
        let local = self.obs.local.as_ref().is_some_and(|l| l.contains(session));
        if local {
            if matches!(req, Request::CloseSession) {
                return self.close_local(conn, session, xid, now, out);
            }
            if creates_ephemeral(&req) {
                if !self.settings.local_sessions_upgrading {
                    return self.answer_in_turn(
                        conn,
                        session,
                        xid,
                        ErrorCode::EphemeralOnLocalSession,
                        now,
                        out,
                    );
                }
                // `QuorumZooKeeperServer.checkUpgradeSession`: createSession first, then
                // the request; the leader commits them in that order.
                let timeout = self
                    .obs
                    .local
                    .as_mut()
                    .and_then(|l| l.remove(session))
                    .map_or(0, |s| s.timeout_ms);
                info!("Upgrading session 0x{session:x}");
                self.obs.upgrading.insert(session, timeout);
                out.push(Output::ToLeader(create_session_request(session, timeout)));
                self.obs.touched.insert(session, timeout as i32);
            }
        }
        self.forward(conn, session, xid, req, now, out)
    }

    /// closeSession of a local or read-only session: nothing to commit.
    fn close_local(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        if !self.queues.get(&session).is_none_or(VecDeque::is_empty) {
            // Behind forwarded requests: answered in turn, then closed by the client.
            return self.answer_in_turn(conn, session, xid, ErrorCode::Ok, now, out);
        }
        if let Some(l) = self.obs.local.as_mut() {
            l.remove(session);
        }
        let zxid = self.tree.last_zxid();
        let f = reply_frame(xid, zxid, ErrorCode::Ok, None);
        self.reply(conn, xid, zxid, "CLOS", now.mono_ms, true, f, out);
        self.close_conn(conn, out);
        if self.session_conn.get(&session) == Some(&conn) {
            self.session_conn.remove(&session);
        }
    }

    /// Answers `err` once the session's earlier requests are answered.
    fn answer_in_turn(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        err: ErrorCode,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        let q = self.queues.entry(session).or_default();
        if q.is_empty() {
            self.answer_error(conn, xid, err, now.mono_ms, out);
        } else {
            q.push_back(Queued::Answer {
                conn,
                xid,
                err,
                start_ms: now.mono_ms,
            });
        }
    }

    pub(super) fn answer_error(
        &mut self,
        conn: ConnId,
        xid: i32,
        err: ErrorCode,
        start_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let zxid = self.tree.last_zxid();
        let f = reply_frame(xid, zxid, err, None);
        self.reply(conn, xid, zxid, "NA", start_ms, false, f, out);
    }

    /// Transactions the leader committed: logged, then applied when durable.
    pub(super) fn committed(&mut self, entries: Vec<LogEntry>, out: &mut Vec<Output>) {
        for e in entries {
            if e.zxid <= self.obs.last_received {
                warn!(
                    zxid = format_args!("{:#x}", e.zxid),
                    "a committed transaction at or before the last one received; skipped"
                );
                continue;
            }
            let entry = match TxnEntry::decode(&e.bytes) {
                Ok(x) => x,
                Err(err) => {
                    let reason = format!("committed transaction {:#x}: {err}", e.zxid);
                    error!("{reason}");
                    out.push(Output::Resync { reason });
                    return self.leader_lost("a committed transaction did not decode", out);
                }
            };
            self.obs.last_received = e.zxid;
            self.to_log.push(e);
            self.stats.outstanding += 1;
            self.in_flight.push_back(InFlight {
                origin: Origin::Remote,
                header: entry.header,
                body: entry.body,
                digest: entry.digest.map(|d| d.tree_digest),
                start_ms: self.now.mono_ms,
            });
        }
    }

    /// The leader's database (SNAP) replaces the tree and the sessions. The driver has
    /// written it as a snapshot already; the log rolls, so the next entry starts a file
    /// of its own after it.
    pub(super) fn install(
        &mut self,
        tree: DataTree,
        sessions: &[(i64, i32)],
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        // Every connection goes, read-only ones included (ZooKeeper shuts its read-only
        // server down once it has found a leader): a client must not see the tree it
        // read replaced under it, its zxids go back, or its watches miss what the new
        // tree brought.
        if self.obs.serving {
            self.leader_lost("a new database is being installed", out);
        }
        // Out of sync only read-only connections are left; their local sessions expire
        // as sessions of a read-only server do.
        let left: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in left {
            self.close_conn(c, out);
        }
        if self.snapshot.take().is_some() {
            out.push(Output::SnapshotAbort);
        }
        self.obs.up_to_date_at = None;
        self.log_generation += 1;
        self.in_flight.clear();
        self.to_log.clear();
        self.stats.outstanding = 0;
        self.queues.clear();
        self.prep = Prep::new(self.settings.prep.clone());
        self.last_zxid = tree.last_zxid();
        self.obs.last_received = tree.last_zxid();
        self.obs.behind.clear();
        self.digest_log.clear();
        self.tree = tree;
        self.sessions =
            SessionTracker::new(self.settings.server_id, self.settings.tick_ms, now.wall_ms);
        for &(id, t) in sessions {
            self.sessions.add(id, t.max(0) as u32, now.mono_ms);
        }
        info!(
            zxid = format_args!("{:#x}", self.tree.last_zxid()),
            nodes = self.tree.node_count(),
            sessions = sessions.len(),
            "installed the leader's database"
        );
        out.push(Output::LogRoll {
            generation: self.log_generation,
        });
        out.push(Output::Publish(Published::Reset {
            zxid: self.tree.last_zxid(),
        }));
    }

    /// UPTODATE: the observer serves once it has applied everything received before it.
    pub(super) fn up_to_date(&mut self, info: SyncInfo, out: &mut Vec<Output>) {
        let received = self.obs.last_received;
        if self.tree.last_zxid() < received {
            debug!(
                applied = format_args!("{:#x}", self.tree.last_zxid()),
                received = format_args!("{received:#x}"),
                "in sync with the leader: serving once what came before is applied"
            );
            self.obs.up_to_date_at = Some((received, info));
            return;
        }
        self.serve(info, out);
    }

    /// In sync, and the tree has everything the sync brought: clients are served.
    pub(super) fn serve(&mut self, info: SyncInfo, out: &mut Vec<Output>) {
        info!(
            leader = %info.leader,
            epoch = info.epoch,
            kind = info.kind,
            ms = info.duration_ms,
            "in sync with the leader: serving clients"
        );
        // Read-only sessions end with the read-only server (ZooKeeper shuts it down);
        // their clients come back read-write.
        let read_only: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.read_only && !c.kept)
            .map(|(&id, _)| id)
            .collect();
        for c in read_only {
            self.close_conn(c, out);
        }
        // Sessions kept through the outage are read-write again.
        for c in self.conns.values_mut().filter(|c| c.kept) {
            c.kept = false;
            c.read_only = false;
        }
        self.forget_local_sessions();
        self.obs.serving = true;
        self.obs.sync = Some(info);
        self.publish(Published::Upstream { in_sync: true }, out);
    }

    /// The link is gone: clients are closed and everything forwarded is given up (its
    /// fate is unknown: the client sees the connection lost, never a guess).
    pub(super) fn leader_lost(&mut self, reason: &str, out: &mut Vec<Output>) {
        let was_serving = std::mem::replace(&mut self.obs.serving, false);
        self.obs.up_to_date_at = None;
        // In read-only mode a client with nothing in flight keeps its connection and its
        // session (ZOOKEEPER-1607): its reads are served from this tree, its writes get
        // NotReadOnly until the upstream is back. The others are closed: a forwarded
        // request's fate is unknown, and the client must see ConnectionLoss, never a guess.
        let keep = |s: &Server, c: &Conn| {
            s.settings.read_only_mode
                && c.established
                && !c.closing
                && !c.read_only
                && c.session.is_some_and(|id| {
                    s.queues.get(&id).is_none_or(VecDeque::is_empty)
                        && !s.obs.creating.contains_key(&id)
                        && !s.obs.revalidating.contains_key(&id)
                        && !s.obs.upgrading.contains_key(&id)
                        && !s.obs.local.as_ref().is_some_and(|l| l.contains(id))
                })
        };
        let (mut kept, mut closed) = (Vec::new(), Vec::new());
        for (&id, c) in &self.conns {
            if keep(self, c) {
                kept.push(id);
            } else {
                closed.push(id);
            }
        }
        if was_serving || !closed.is_empty() || !kept.is_empty() {
            warn!(
                clients = closed.len(),
                kept = kept.len(),
                forwarded = self.forwarded_count(),
                "lost the leader ({reason}): closing client connections until in sync again"
            );
        }
        for c in closed {
            self.close_conn(c, out);
        }
        for id in kept {
            if let Some(c) = self.conns.get_mut(&id) {
                c.read_only = true;
                c.kept = true;
            }
        }
        // Local sessions do not outlive the server that held them.
        self.forget_local_sessions();
        self.queues.clear();
        self.obs.creating.clear();
        self.obs.revalidating.clear();
        self.obs.syncs.clear();
        self.obs.sync_waits.clear();
        self.obs.touched.clear();
        self.obs.upgrading.clear();
        self.obs.remote_revalidations.clear();
        self.publish(Published::Upstream { in_sync: false }, out);
    }

    /// A fresh local session table (an observer's; nothing for a standalone server).
    fn forget_local_sessions(&mut self) {
        if let Some(l) = self.obs.local.as_mut() {
            *l = local_session_table(&self.settings, self.now);
        }
    }

    /// The leader answered the oldest forwarded sync. Everything it committed before
    /// is on its way here: the sync is answered once that is applied.
    pub(super) fn synced(&mut self, out: &mut Vec<Output>) {
        let (session, xid) = match self.obs.syncs.pop_front() {
            Some(SyncOwner::Client { session, xid }) => (session, xid),
            Some(SyncOwner::Subscriber(sub)) => return self.subscriber_synced(sub, out),
            None => {
                warn!("a SYNC from the leader with no sync pending; ignored");
                return;
            }
        };
        self.obs
            .sync_waits
            .push_back((self.obs.last_received, session, xid));
        self.complete_syncs(out);
    }

    /// Answers the syncs whose transactions are all applied.
    pub(super) fn complete_syncs(&mut self, out: &mut Vec<Output>) {
        while let Some(&(needed, session, xid)) = self.obs.sync_waits.front() {
            if needed > self.tree.last_zxid() {
                return;
            }
            self.obs.sync_waits.pop_front();
            let Some(t) = self.take_forwarded(session, xid, true) else {
                continue;
            };
            let (conn, start_ms) = (t.conn, t.start_ms);
            let zxid = self.tree.last_zxid();
            let path = t.path.unwrap_or_default();
            let f = reply_frame(xid, zxid, ErrorCode::Ok, Some(&SyncResponse { path }));
            self.reply(conn, xid, zxid, "SYNC", start_ms, false, f, out);
            self.run_queued_reads(session, out);
        }
    }

    /// Takes the forwarded request `xid` of `session` (a sync or not, as `sync` says)
    /// from its queue: the front, as `CommitProcessor` expects; one further back is
    /// answered too, with a warning, rather than left hanging.
    fn take_forwarded(&mut self, session: i64, xid: i32, sync: bool) -> Option<Taken> {
        let q = self.queues.get_mut(&session)?;
        let pos = q.iter().position(|x| {
            matches!(x, Queued::Forwarded { xid: x, sync: s, .. } if *x == xid && s.is_some() == sync)
        })?;
        if pos != 0 {
            warn!(
                session = format_args!("0x{session:x}"),
                xid, "the leader answered a request of this session out of order"
            );
        }
        match q.remove(pos)? {
            Queued::Forwarded {
                conn,
                op,
                start_ms,
                sync,
                ..
            } => Some(Taken {
                conn,
                op,
                start_ms,
                path: sync,
            }),
            _ => None,
        }
    }

    pub(super) fn revalidated(
        &mut self,
        session: i64,
        valid: bool,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        let asked_here = self.obs.revalidating.contains_key(&session);
        if self.subscriber_revalidated(session, valid, out) && !asked_here {
            return;
        }
        let Some(conn) = self.obs.revalidating.remove(&session) else {
            return;
        };
        let Some(c) = self.conns.get(&conn).filter(|c| c.session == Some(session)) else {
            return;
        };
        if valid {
            let timeout = c.timeout_ms;
            if !self.sessions.contains(session) {
                self.sessions.add(session, timeout, now.mono_ms);
            }
            self.obs.touched.insert(session, timeout as i32);
        } else {
            info!(
                "Invalid session 0x{session:x} for client {}, probably expired",
                c.peer
            );
        }
        self.finish_session_init(conn, valid, out);
    }

    /// A client's write, sync or closeSession goes to the leader (`Learner.request`):
    /// session id, cxid, opcode and the request body, with the connection's identities
    /// (the leader checks ACLs against them and trusts them).
    pub(super) fn forward(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        req: Request,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        if let Request::Malformed { .. } = req {
            // Its bytes did not decode here and would not at the leader either: answered
            // MarshallingError in the session's order, as a read is.
            return self.read_in_turn(conn, session, xid, req, now.mono_ms, out);
        }
        let op = write_opcode(&req);
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        out.push(Output::ToLeader(request_packet(
            session,
            xid,
            op,
            |b| req.encode_body(b),
            Some(auth),
        )));
        let sync = match req {
            Request::Sync(r) => {
                self.obs.syncs.push_back(SyncOwner::Client { session, xid });
                Some(r.path)
            }
            _ => None,
        };
        self.queues
            .entry(session)
            .or_default()
            .push_back(Queued::Forwarded {
                conn,
                xid,
                op,
                start_ms: now.mono_ms,
                sync,
            });
    }

    /// Who a committed transaction answers: the client that forwarded it (matched by
    /// session and cxid), the connection waiting for a new session, or no one. A
    /// closeSession nobody here asked for is an expiry: the session's connection closes.
    /// A forwarded request's latency runs from its arrival here: `start_ms` becomes it.
    pub(super) fn remote_origin(
        &mut self,
        h: &TxnHeader,
        body: &TxnBody,
        start_ms: &mut u64,
    ) -> Origin {
        let session = h.client_id;
        if let TxnBody::CreateSession(t) = body {
            self.obs.upgrading.remove(&session);
            self.sessions
                .add(session, t.time_out.max(0) as u32, self.now.mono_ms);
            return match self.obs.creating.remove(&session) {
                Some(conn) => Origin::CreateSession { conn },
                None => Origin::Internal,
            };
        }
        if let Some(t) = self.take_forwarded(session, h.cxid, false) {
            *start_ms = t.start_ms;
            return Origin::Client {
                conn: t.conn,
                xid: h.cxid,
                op: t.op,
            };
        }
        if matches!(body, TxnBody::CloseSession(_)) {
            return Origin::Expiry;
        }
        Origin::Internal
    }

    /// The leader's digest after a transaction differs from ours: this tree is not the
    /// ensemble's. Said loudly, counted, and answered by a fresh sync.
    pub(super) fn digest_mismatch(
        &mut self,
        zxid: i64,
        expected: i64,
        ours: i64,
        out: &mut Vec<Output>,
    ) {
        self.obs.digest_mismatches += 1;
        let reason = format!(
            "digest mismatch at zxid {zxid:#x}: the leader's tree digest is {expected}, ours {ours}"
        );
        error!("{reason}; this replica's tree differs from the ensemble's: resyncing from scratch");
        out.push(Output::Resync { reason });
        self.leader_lost("digest mismatch", out);
    }

    /// Requests forwarded and not answered yet.
    pub(super) fn forwarded_count(&self) -> u64 {
        let queued: usize = self
            .queues
            .values()
            .map(|q| {
                q.iter()
                    .filter(|x| matches!(x, Queued::Forwarded { .. }))
                    .count()
            })
            .sum();
        (queued + self.obs.creating.len() + self.obs.revalidating.len()) as u64
    }
}
