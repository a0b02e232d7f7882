//! What the proxy keeps of a session so that it can move it to another upstream without
//! the client noticing: the last zxid the client has seen, the watches it holds, its auth
//! packets, and its requests in flight, in order. Pure: the connection task feeds it the
//! frames it relays and asks it what to send after a re-attachment.
//!
//! The rules are the client's own (`ClientCnxn`): the last zxid moves with replies to
//! requests, not with pings, auth answers or events; a watch is held once the reply that
//! set it came back (an `exists` on a missing node sets an exist watch), and a one-shot
//! watch is gone once its event came; replies come in request order.

use std::collections::{BTreeSet, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use geokeeper_core::proto::records::{ReplyHeader, SetWatches, SetWatches2, WatcherEvent};
use geokeeper_core::proto::{OpCode, Reader, Record};
use geokeeper_core::request::Request;

pub const NOTIFICATION_XID: i32 = -1;
pub const PING_XID: i32 = -2;
pub const AUTH_XID: i32 = -4;
pub const SET_WATCHES_XID: i32 = -8;

/// `KeeperException.Code.CONNECTIONLOSS`.
pub const CONNECTION_LOSS: i32 = -4;
/// `KeeperException.Code.NONODE`.
const NO_NODE: i32 = -101;

/// The watches a session holds, by kind, as SetWatches2 lists them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Watches {
    pub data: BTreeSet<String>,
    pub exist: BTreeSet<String>,
    pub child: BTreeSet<String>,
    pub persistent: BTreeSet<String>,
    pub recursive: BTreeSet<String>,
}

/// What a request does to the watches once its reply is a success.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sets {
    None,
    /// `exists`: a data watch if the node is there, an exist watch if not.
    Exists(String),
    Data(String),
    Child(String),
    Persistent(String),
    Recursive(String),
    /// removeWatches: 1 children, 2 data, 3 any.
    Remove(String, i32),
    /// The client's own SetWatches after its reconnect.
    Restore(Watches),
    /// An auth packet sent with an ordinary xid (the Java client uses -4, other clients
    /// their next xid and wait for that answer): kept for replay once it succeeded, as
    /// this frame with xid -4.
    Auth(Bytes),
}

/// A request relayed and not yet answered.
#[derive(Debug, Clone)]
struct InFlight {
    xid: i32,
    frame: Bytes,
    /// Safe to send again to another upstream (a read, sync, a watch operation).
    retry: bool,
    sets: Sets,
    /// Sent to an upstream (a request that came while the session had none is not).
    sent: bool,
    /// Lost with its upstream and not safe to send again: answered ConnectionLoss by the
    /// proxy when its turn comes.
    lost: bool,
    /// A closeSession.
    close: bool,
}

/// What the connection task must do after a reply from the upstream.
#[derive(Debug, PartialEq, Eq)]
pub enum Relay {
    /// Send this frame on to the client.
    Forward,
    /// Swallow it: the answer to something the proxy sent itself.
    Swallow,
}

#[derive(Debug, Default)]
pub struct Book {
    pub last_zxid: i64,
    pub watches: Watches,
    /// The client's auth packets, to send again to a new upstream.
    auth: Vec<Bytes>,
    /// The client used SASL: its login cannot be replayed.
    pub sasl: bool,
    /// The upstream answered the client's closeSession: the session is over, and the
    /// upstream closing the connection next is ZooKeeper's way of ending it (as
    /// `NIOServerCnxn` does after the reply), not a failure.
    pub closed: bool,
    pending: VecDeque<InFlight>,
    /// Answers still to come for requests the proxy sent itself (auth, SetWatches).
    own_auth: usize,
    own_set_watches: usize,
    /// The client's pings relayed to the upstream and not answered yet.
    pings: usize,
}

/// A reply frame (length prefix included) with only a header.
pub fn reply_frame(xid: i32, zxid: i64, err: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(20);
    b.put_i32(16);
    b.put_i32(xid);
    b.put_i64(zxid);
    b.put_i32(err);
    b.freeze()
}

fn request_frame(xid: i32, op: OpCode, record: &impl Record) -> Bytes {
    let mut body = BytesMut::new();
    body.put_i32(xid);
    body.put_i32(op as i32);
    record.encode(&mut body);
    let mut f = BytesMut::with_capacity(body.len() + 4);
    f.put_i32(body.len() as i32);
    f.put_slice(&body);
    f.freeze()
}

impl Book {
    pub fn new(last_zxid: i64) -> Book {
        Book {
            last_zxid,
            ..Book::default()
        }
    }

    /// A request frame from the client (length prefix included), relayed now (`sent`) or
    /// once the session has an upstream again. Pings are only counted: every client takes
    /// their answers out of order.
    pub fn request(&mut self, frame: &Bytes, sent: bool) {
        let Some((xid, op)) = header(frame) else {
            return;
        };
        let body = &frame[12..];
        if xid == PING_XID {
            if sent {
                self.pings += 1;
            }
            return;
        }
        let req = Request::decode(op, body);
        match &req {
            Request::Auth(_) if xid == AUTH_XID => {
                self.auth.push(frame.clone());
                return;
            }
            Request::Sasl(_) => self.sasl = true,
            _ => {}
        }
        let sets = match req {
            Request::Auth(_) => Sets::Auth(with_xid(frame, AUTH_XID)),
            Request::Exists(r) if r.watch => Sets::Exists(r.path),
            Request::GetData(r) if r.watch => Sets::Data(r.path),
            Request::GetChildren(r) if r.watch => Sets::Child(r.path),
            Request::GetChildren2(r) if r.watch => Sets::Child(r.path),
            Request::AddWatch(r) if r.mode == 1 => Sets::Recursive(r.path),
            Request::AddWatch(r) => Sets::Persistent(r.path),
            Request::RemoveWatches(r) => Sets::Remove(r.path, r.r#type),
            Request::SetWatches(w) => Sets::Restore(Watches {
                data: w.data_watches.into_iter().collect(),
                exist: w.exist_watches.into_iter().collect(),
                child: w.child_watches.into_iter().collect(),
                ..Watches::default()
            }),
            Request::SetWatches2(w) => Sets::Restore(Watches {
                data: w.data_watches.into_iter().collect(),
                exist: w.exist_watches.into_iter().collect(),
                child: w.child_watches.into_iter().collect(),
                persistent: w.persistent_watches.into_iter().collect(),
                recursive: w.persistent_recursive_watches.into_iter().collect(),
            }),
            _ => Sets::None,
        };
        let retry = matches!(
            OpCode::from_i32(op),
            Some(
                OpCode::Exists
                    | OpCode::GetData
                    | OpCode::GetAcl
                    | OpCode::GetChildren
                    | OpCode::GetChildren2
                    | OpCode::GetAllChildrenNumber
                    | OpCode::GetEphemerals
                    | OpCode::MultiRead
                    | OpCode::CheckWatches
                    | OpCode::RemoveWatches
                    | OpCode::AddWatch
                    | OpCode::SetWatches
                    | OpCode::SetWatches2
                    | OpCode::WhoAmI
                    | OpCode::Sync
                    | OpCode::CloseSession
                    | OpCode::Auth
            )
        );
        self.pending.push_back(InFlight {
            xid,
            frame: frame.clone(),
            retry,
            sets,
            sent,
            lost: false,
            close: op == OpCode::CloseSession as i32,
        });
    }

    /// A frame from the upstream: what to do with it. An answer out of request order is an
    /// error (the upstream is not to be trusted).
    pub fn reply(&mut self, frame: &Bytes) -> Result<Relay, String> {
        let mut r = Reader::new(frame.get(4..).unwrap_or_default());
        let h = ReplyHeader::decode(&mut r).map_err(|e| format!("a reply header: {e}"))?;
        match h.xid {
            NOTIFICATION_XID => {
                let e = WatcherEvent::decode(&mut r).map_err(|e| format!("an event: {e}"))?;
                self.fired(&e);
                return Ok(Relay::Forward);
            }
            PING_XID => {
                self.pings = self.pings.saturating_sub(1);
                return Ok(Relay::Forward);
            }
            AUTH_XID if self.own_auth > 0 => {
                self.own_auth -= 1;
                return Ok(Relay::Swallow);
            }
            AUTH_XID => return Ok(Relay::Forward),
            SET_WATCHES_XID if self.own_set_watches > 0 => {
                self.own_set_watches -= 1;
                return Ok(Relay::Swallow);
            }
            _ => {}
        }
        let Some(req) = self.pending.pop_front() else {
            return Err(format!("an answer (xid {}) to no request", h.xid));
        };
        if req.lost {
            return Err(format!(
                "an answer (xid {}) where the proxy owed one for xid {}",
                h.xid, req.xid
            ));
        }
        if req.xid != h.xid {
            return Err(format!(
                "an answer for xid {} where {} was next",
                h.xid, req.xid
            ));
        }
        if h.zxid > 0 {
            self.last_zxid = self.last_zxid.max(h.zxid);
        }
        self.closed |= req.close;
        self.applied(req.sets, h.err);
        Ok(Relay::Forward)
    }

    fn applied(&mut self, sets: Sets, err: i32) {
        let w = &mut self.watches;
        match (sets, err) {
            (Sets::Exists(p), 0) => {
                w.data.insert(p);
            }
            (Sets::Exists(p), NO_NODE) => {
                w.exist.insert(p);
            }
            (Sets::Data(p), 0) => {
                w.data.insert(p);
            }
            (Sets::Child(p), 0) => {
                w.child.insert(p);
            }
            (Sets::Persistent(p), 0) => {
                w.persistent.insert(p);
            }
            (Sets::Recursive(p), 0) => {
                w.recursive.insert(p);
            }
            (Sets::Remove(p, kind), 0) => {
                if kind == 1 || kind == 3 {
                    w.child.remove(&p);
                }
                if kind == 2 || kind == 3 {
                    w.data.remove(&p);
                    w.exist.remove(&p);
                }
                if kind == 3 {
                    w.persistent.remove(&p);
                    w.recursive.remove(&p);
                }
            }
            (Sets::Auth(frame), 0) => self.auth.push(frame),
            (Sets::Restore(all), 0) => {
                w.data.extend(all.data);
                w.exist.extend(all.exist);
                w.child.extend(all.child);
                w.persistent.extend(all.persistent);
                w.recursive.extend(all.recursive);
            }
            _ => {}
        }
    }

    /// An event fired: the one-shot watches it consumed are gone.
    fn fired(&mut self, e: &WatcherEvent) {
        let w = &mut self.watches;
        let p = &e.path;
        match e.r#type {
            // NodeCreated
            1 => {
                w.exist.remove(p);
                w.data.remove(p);
            }
            // NodeDeleted
            2 => {
                w.data.remove(p);
                w.exist.remove(p);
                w.child.remove(p);
            }
            // NodeDataChanged
            3 => {
                w.data.remove(p);
                w.exist.remove(p);
            }
            // NodeChildrenChanged
            4 => {
                w.child.remove(p);
            }
            _ => {}
        }
    }

    /// The requests in flight when the upstream was lost, to send to the next one; the
    /// others (writes, whose fate is unknown) are answered ConnectionLoss in their turn.
    /// Before them: the auth packets again, and one SetWatches2 (SetWatches when no
    /// persistent watch is held) relative to the last zxid, so missed events fire.
    pub fn reattach_frames(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.own_auth = self.auth.len();
        out.extend(self.auth.iter().cloned());
        // As the Java client does, in frames of at most 128 KiB of paths, so that none
        // passes the server's jute.maxbuffer.
        let frames = set_watches_frames(&self.watches, self.last_zxid);
        self.own_set_watches = frames.len();
        out.extend(frames);
        // In-flight writes are answered ConnectionLoss in their turn (see `due_local`);
        // the rest is sent again, in order.
        for req in self.pending.iter_mut() {
            if !req.lost && (req.retry || !req.sent) {
                out.push(req.frame.clone());
                req.sent = true;
            } else {
                req.lost = true;
            }
        }
        out
    }

    /// Answers for the pings a lost upstream will never answer, to send to the client at
    /// once (pings are answered out of order anyway). A client that sees a ping go
    /// unanswered drops its connection (kazoo: "outstanding heartbeat ping not received"),
    /// which the proxy is there to keep up.
    pub fn lost_pings(&mut self) -> Vec<Bytes> {
        let n = std::mem::take(&mut self.pings);
        (0..n)
            .map(|_| reply_frame(PING_XID, self.last_zxid, 0))
            .collect()
    }

    /// The proxy's own answers whose turn has come: lost requests with no request still
    /// waiting for the upstream before them. Call after a re-attachment and after each
    /// answer relayed.
    pub fn due_local(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|r| r.lost) {
            if let Some(r) = self.pending.pop_front() {
                out.push(reply_frame(r.xid, self.last_zxid, CONNECTION_LOSS));
            }
        }
        out
    }

    /// Requests in flight, the proxy's own answers still to give included.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether the session can move to another upstream by choice, now, without the
    /// client seeing anything: no request of its own or of the proxy's in flight, no SASL
    /// login (it cannot be replayed), not closed, and no persistent watch (SetWatches2
    /// registers those again without the events of the changes made in between, which
    /// one-shot watches get through its relative zxid).
    pub fn can_move_quietly(&self) -> bool {
        self.pending.is_empty()
            && self.own_auth == 0
            && self.own_set_watches == 0
            && !self.sasl
            && !self.closed
            && self.watches.persistent.is_empty()
            && self.watches.recursive.is_empty()
    }
}

/// The most path bytes one SetWatches frame carries, length prefixes included (the Java
/// client's `SET_WATCHES_MAX_LENGTH` counts the paths alone).
const SET_WATCHES_MAX_LENGTH: usize = 128 * 1024;

/// `watches` as SetWatches frames relative to `zxid` (SetWatches2 when persistent watches
/// are held), each within [`SET_WATCHES_MAX_LENGTH`].
fn set_watches_frames(watches: &Watches, zxid: i64) -> Vec<Bytes> {
    let persistent = !(watches.persistent.is_empty() && watches.recursive.is_empty());
    let lists = [
        &watches.data,
        &watches.exist,
        &watches.child,
        &watches.persistent,
        &watches.recursive,
    ];
    let mut frames = Vec::new();
    let mut batch: [Vec<String>; 5] = Default::default();
    let mut size = 0usize;
    let flush = |batch: &mut [Vec<String>; 5], frames: &mut Vec<Bytes>| {
        if batch.iter().all(Vec::is_empty) {
            return;
        }
        let [data, exist, child, pers, rec] = std::mem::take(batch);
        frames.push(if persistent {
            request_frame(
                SET_WATCHES_XID,
                OpCode::SetWatches2,
                &SetWatches2 {
                    relative_zxid: zxid,
                    data_watches: data,
                    exist_watches: exist,
                    child_watches: child,
                    persistent_watches: pers,
                    persistent_recursive_watches: rec,
                },
            )
        } else {
            request_frame(
                SET_WATCHES_XID,
                OpCode::SetWatches,
                &SetWatches {
                    relative_zxid: zxid,
                    data_watches: data,
                    exist_watches: exist,
                    child_watches: child,
                },
            )
        });
    };
    for (k, list) in lists.iter().enumerate() {
        for path in list.iter() {
            // A path costs its bytes and their length prefix.
            if size + path.len() + 4 > SET_WATCHES_MAX_LENGTH {
                flush(&mut batch, &mut frames);
                size = 0;
            }
            size += path.len() + 4;
            batch[k].push(path.clone());
        }
    }
    flush(&mut batch, &mut frames);
    frames
}

/// (xid, opcode) of a request frame.
/// `frame` (a request, length prefix included) with its xid replaced.
fn with_xid(frame: &Bytes, xid: i32) -> Bytes {
    let mut f = BytesMut::from(&frame[..]);
    if let Some(x) = f.get_mut(4..8) {
        x.copy_from_slice(&xid.to_be_bytes());
    }
    f.freeze()
}

fn header(frame: &[u8]) -> Option<(i32, i32)> {
    let b = frame.get(4..12)?;
    Some((
        i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geokeeper_core::proto::records::{ExistsRequest, GetDataRequest, SetDataRequest};

    fn req(xid: i32, op: OpCode, r: &impl Record) -> Bytes {
        request_frame(xid, op, r)
    }

    fn reply(xid: i32, zxid: i64, err: i32) -> Bytes {
        reply_frame(xid, zxid, err)
    }

    fn event(kind: i32, path: &str) -> Bytes {
        let mut body = BytesMut::new();
        ReplyHeader {
            xid: NOTIFICATION_XID,
            zxid: -1,
            err: 0,
        }
        .encode(&mut body);
        WatcherEvent {
            r#type: kind,
            state: 3,
            path: path.into(),
        }
        .encode(&mut body);
        let mut f = BytesMut::new();
        f.put_i32(body.len() as i32);
        f.put_slice(&body);
        f.freeze()
    }

    fn get(path: &str, watch: bool) -> GetDataRequest {
        GetDataRequest {
            path: path.into(),
            watch,
        }
    }

    /// closeSession has no body: the frame is its header.
    fn close_session(xid: i32) -> Bytes {
        let mut f = BytesMut::new();
        f.put_i32(8);
        f.put_i32(xid);
        f.put_i32(OpCode::CloseSession as i32);
        f.freeze()
    }

    #[test]
    fn a_session_is_over_once_its_close_session_is_answered() {
        let mut b = Book::new(5);
        b.request(&req(1, OpCode::GetData, &get("/a", false)), true);
        b.request(&close_session(2), true);
        assert_eq!(b.reply(&reply(1, 5, 0)), Ok(Relay::Forward));
        assert!(!b.closed, "the read's answer does not end the session");
        assert_eq!(b.reply(&reply(2, 6, 0)), Ok(Relay::Forward));
        assert!(b.closed);

        // Unanswered when its upstream is lost, it is not over: it goes to the next one.
        let mut b = Book::new(5);
        b.request(&close_session(1), true);
        assert!(!b.closed);
        assert_eq!(b.reattach_frames().last(), Some(&close_session(1)));
    }

    #[test]
    fn a_session_moves_by_choice_only_when_nothing_is_in_flight_and_no_watch_is_persistent() {
        use geokeeper_core::proto::records::AddWatchRequest;
        let mut b = Book::new(5);
        assert!(b.can_move_quietly());
        b.request(&req(1, OpCode::GetData, &get("/a", true)), true);
        assert!(!b.can_move_quietly(), "a read in flight");
        assert_eq!(b.reply(&reply(1, 5, 0)), Ok(Relay::Forward));
        assert!(
            b.can_move_quietly(),
            "a one-shot watch moves with its relative zxid"
        );
        // The proxy's own SetWatches after a move, until answered.
        b.reattach_frames();
        assert!(!b.can_move_quietly());
        assert_eq!(b.reply(&reply(SET_WATCHES_XID, 5, 0)), Ok(Relay::Swallow));
        assert!(b.can_move_quietly());
        let add = AddWatchRequest {
            path: "/p".into(),
            mode: 0,
        };
        b.request(&req(2, OpCode::AddWatch, &add), true);
        assert_eq!(b.reply(&reply(2, 5, 0)), Ok(Relay::Forward));
        assert!(!b.can_move_quietly(), "a persistent watch");
    }

    #[test]
    fn watches_are_held_once_set_and_gone_once_fired() {
        let mut b = Book::new(5);
        b.request(&req(1, OpCode::GetData, &get("/a", true)), true);
        b.request(
            &req(
                2,
                OpCode::Exists,
                &ExistsRequest {
                    path: "/missing".into(),
                    watch: true,
                },
            ),
            true,
        );
        b.request(&req(3, OpCode::GetData, &get("/gone", true)), true);
        assert_eq!(b.reply(&reply(1, 9, 0)), Ok(Relay::Forward));
        assert_eq!(b.reply(&reply(2, 9, NO_NODE)), Ok(Relay::Forward));
        assert_eq!(b.reply(&reply(3, 9, NO_NODE)), Ok(Relay::Forward));
        assert_eq!(b.last_zxid, 9);
        assert!(b.watches.data.contains("/a"));
        assert!(b.watches.exist.contains("/missing"));
        assert!(
            !b.watches.data.contains("/gone"),
            "no watch on a NoNode getData"
        );
        // Events: the one-shot watches they consume go; the zxid does not move.
        assert_eq!(b.reply(&event(3, "/a")), Ok(Relay::Forward));
        assert_eq!(b.reply(&event(1, "/missing")), Ok(Relay::Forward));
        assert_eq!(b.watches, Watches::default());
        assert_eq!(b.last_zxid, 9);
        // An answer out of order is the upstream's fault.
        b.request(&req(4, OpCode::GetData, &get("/a", false)), true);
        assert!(b.reply(&reply(5, 10, 0)).is_err());
    }

    #[test]
    fn an_auth_packet_with_an_ordinary_xid_is_answered_in_turn_and_replayed_as_minus_four() {
        use geokeeper_core::proto::records::AuthPacket;
        let auth = AuthPacket {
            r#type: 0,
            scheme: "digest".into(),
            auth: Bytes::from_static(b"alice:secret"),
        };
        let mut b = Book::new(0);
        b.request(&req(7, OpCode::Auth, &auth), true);
        assert_eq!(b.in_flight(), 1, "its answer is awaited in turn");
        assert_eq!(b.reply(&reply(7, 0, 0)), Ok(Relay::Forward));
        let frames = b.reattach_frames();
        assert_eq!(frames, vec![req(AUTH_XID, OpCode::Auth, &auth)]);
        // The replay's answer is the proxy's own.
        assert_eq!(b.reply(&reply(AUTH_XID, 0, 0)), Ok(Relay::Swallow));
        // A failed one is not replayed.
        let mut b = Book::new(0);
        b.request(&req(8, OpCode::Auth, &auth), true);
        assert_eq!(b.reply(&reply(8, 0, -115)), Ok(Relay::Forward));
        assert!(b.reattach_frames().is_empty());
    }

    #[test]
    fn after_a_lost_upstream_reads_go_again_and_writes_are_answered_in_their_turn() {
        let mut b = Book::new(0);
        let set = SetDataRequest {
            path: "/w".into(),
            data: Some(Bytes::from_static(b"v")),
            version: -1,
        };
        b.request(&req(1, OpCode::GetData, &get("/w", true)), true);
        assert_eq!(b.reply(&reply(1, 7, 0)), Ok(Relay::Forward));
        // In flight when the upstream dies: a read, a write, a read.
        let r2 = req(2, OpCode::GetData, &get("/x", false));
        let w3 = req(3, OpCode::SetData, &set);
        let r4 = req(4, OpCode::GetData, &get("/y", false));
        for f in [&r2, &w3, &r4] {
            b.request(f, true);
        }
        // A write that came while there was no upstream: never sent, so sent later.
        let w5 = req(5, OpCode::SetData, &set);
        b.request(&w5, false);
        let frames = b.reattach_frames();
        // SetWatches relative to zxid 7 for /w, then r2, r4 and w5 (not w3).
        assert_eq!(frames.len(), 4, "{frames:?}");
        let (xid, op) = header(&frames[0]).expect("header");
        assert_eq!((xid, op), (SET_WATCHES_XID, OpCode::SetWatches as i32));
        let sw = SetWatches::decode(&mut Reader::new(&frames[0][12..])).expect("SetWatches");
        assert_eq!(sw.relative_zxid, 7);
        assert_eq!(sw.data_watches, ["/w"]);
        assert_eq!(&frames[1..], &[r2, r4, w5]);
        // Nothing is due before r2's answer; then w3's ConnectionLoss; then r4, w5.
        assert!(b.due_local().is_empty());
        assert_eq!(b.reply(&reply(SET_WATCHES_XID, 0, 0)), Ok(Relay::Swallow));
        assert_eq!(b.reply(&reply(2, 8, 0)), Ok(Relay::Forward));
        assert_eq!(b.due_local(), vec![reply_frame(3, 8, CONNECTION_LOSS)]);
        assert_eq!(b.reply(&reply(4, 8, 0)), Ok(Relay::Forward));
        assert_eq!(b.reply(&reply(5, 9, 0)), Ok(Relay::Forward));
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn pings_a_lost_upstream_never_answered_are_the_proxys_to_answer() {
        let mut b = Book::new(4);
        let mut ping = BytesMut::new();
        ping.put_i32(8);
        ping.put_i32(PING_XID);
        ping.put_i32(OpCode::Ping as i32);
        let ping = ping.freeze();
        b.request(&ping, true);
        b.request(&ping, true);
        assert_eq!(b.reply(&reply(PING_XID, 4, 0)), Ok(Relay::Forward));
        // One still unanswered when the upstream is lost: answered once, by the proxy.
        assert_eq!(b.lost_pings(), vec![reply_frame(PING_XID, 4, 0)]);
        assert!(b.lost_pings().is_empty());
        // A ping that came while there was no upstream is answered as it comes.
        b.request(&ping, false);
        assert!(b.lost_pings().is_empty());
        assert_eq!(b.in_flight(), 0);
    }

    #[test]
    fn many_watches_go_in_frames_of_at_most_128_kib_of_paths() {
        let mut b = Book::new(3);
        for i in 0..5_000 {
            b.watches
                .data
                .insert(format!("/a/fairly/long/path/to/znode-{i:06}"));
            b.watches.child.insert(format!("/children/of/znode-{i:06}"));
        }
        let frames = b.reattach_frames();
        assert!(frames.len() >= 2, "{} frames", frames.len());
        let mut data = 0;
        let mut child = 0;
        for f in &frames {
            assert!(f.len() < 140 * 1024, "a frame of {} bytes", f.len());
            let w = SetWatches::decode(&mut Reader::new(&f[12..])).expect("SetWatches");
            assert_eq!(w.relative_zxid, 3);
            data += w.data_watches.len();
            child += w.child_watches.len();
        }
        assert_eq!((data, child), (5_000, 5_000));
        for _ in &frames {
            assert_eq!(b.reply(&reply(SET_WATCHES_XID, 0, 0)), Ok(Relay::Swallow));
        }
    }

    #[test]
    fn auth_is_replayed_and_its_answers_swallowed() {
        use geokeeper_core::proto::records::AuthPacket;
        let mut b = Book::new(0);
        let auth = req(
            AUTH_XID,
            OpCode::Auth,
            &AuthPacket {
                r#type: 0,
                scheme: "digest".into(),
                auth: Bytes::from_static(b"u:p"),
            },
        );
        b.request(&auth, true);
        assert_eq!(b.reply(&reply(AUTH_XID, 0, 0)), Ok(Relay::Forward));
        assert_eq!(b.reattach_frames(), vec![auth]);
        assert_eq!(b.reply(&reply(AUTH_XID, 0, 0)), Ok(Relay::Swallow));
        assert_eq!(b.in_flight(), 0);
    }
}
