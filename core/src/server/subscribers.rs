//! What a server does for the replicas that follow it over the relay (its subscribers):
//! the requests they forward on behalf of their clients, and the sessions they keep
//! alive.
//!
//! A standalone server is their leader, as ZooKeeper's leader is its learners': a
//! forwarded write, createSession or closeSession is prepared and committed here (its
//! client is answered by the subscriber, which matches the committed transaction, or the
//! error transaction, by session id and cxid); a sync or REVALIDATE is answered at once,
//! behind every transaction already handed to the log. An observer (a gateway, or a
//! relay in a remote room) passes them up to its own leader and routes the answers back.
//! Either way an answer reaches its subscriber through the log thread
//! ([`Output::Publish`]), so it arrives after every transaction committed before it.

use tracing::{debug, warn};

use super::*;
use crate::proto::Reader;
use crate::publish::{Published, SubscriberAnswer};

/// Who is waiting for the leader's next SYNC: a client here, or a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SyncOwner {
    Client { session: i64, xid: i32 },
    Subscriber(u64),
}

impl Server {
    /// A packet a subscriber forwarded (REQUEST or REVALIDATE, as a learner sends them).
    pub(super) fn subscriber_packet(
        &mut self,
        sub: u64,
        packet: QuorumPacket,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        if self.settings.role == Role::Observer {
            return self.pass_up(sub, packet, out);
        }
        let mut r = Reader::new(packet.body());
        match packet.kind() {
            Some(PacketType::Revalidate) => {
                let (Ok(session), Ok(timeout)) = (r.read_i64(), r.read_i32()) else {
                    return warn!(sub, "a REVALIDATE from a subscriber that does not decode");
                };
                // `LearnerHandler`: `zk.checkIfValidGlobalSession` touches it as well.
                let valid =
                    self.sessions
                        .touch_for(session, Some(timeout.max(0) as u32), now.mono_ms);
                self.publish(
                    Published::Answer {
                        sub,
                        answer: SubscriberAnswer::Revalidated { session, valid },
                    },
                    out,
                );
            }
            Some(PacketType::Request) => {
                let (Ok(session), Ok(cxid), Ok(op)) = (r.read_i64(), r.read_i32(), r.read_i32())
                else {
                    return warn!(sub, "a REQUEST from a subscriber that does not decode");
                };
                self.subscriber_request(sub, session, cxid, op, r, &packet, now, out);
            }
            other => warn!(sub, "a {other:?} packet from a subscriber; ignored"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn subscriber_request(
        &mut self,
        sub: u64,
        session: i64,
        cxid: i32,
        op: i32,
        mut r: Reader<'_>,
        packet: &QuorumPacket,
        now: Clock,
        out: &mut Vec<Output>,
    ) {
        match OpCode::from_i32(op) {
            Some(OpCode::CreateSession) => {
                let Ok(timeout) = r.read_i32() else {
                    return warn!(sub, "a createSession from a subscriber without its timeout");
                };
                // The subscriber chose the id (its server id in the top byte); the session
                // is global from now on, expired here unless touched.
                let timeout = timeout.max(0) as u32;
                self.sessions.add(session, timeout, now.mono_ms);
                let mut h = self.header(session, cxid, now);
                let (body, digest) =
                    self.prep
                        .prepare_create_session(&self.tree, timeout as i32, &mut h);
                self.submit(Origin::Internal, h, body, digest);
            }
            Some(OpCode::Sync) => {
                // `Leader.processSync`: everything this server has committed (handed to
                // the log) is ahead of the answer.
                self.publish(
                    Published::Answer {
                        sub,
                        answer: SubscriberAnswer::Synced,
                    },
                    out,
                );
            }
            Some(OpCode::CloseSession) => {
                self.sessions.set_closing(session);
                let mut h = self.header(session, cxid, now);
                let (body, digest) = self.prep.prepare_close_session(&self.tree, session, &mut h);
                self.submit(Origin::Internal, h, body, digest);
            }
            _ => {
                let req = Request::decode(op, r.rest());
                if let Request::Unknown(_) = req {
                    return warn!(
                        sub,
                        "a subscriber forwarded opcode {op}, which is no write; ignored"
                    );
                }
                if !req.is_write() {
                    return warn!(sub, "a subscriber forwarded a read (opcode {op}); ignored");
                }
                // The session is kept alive by the request, as a client's is.
                let state = match self.sessions.get(session) {
                    Some(s) if s.closing => SessionState::Closing,
                    Some(_) => {
                        self.sessions.touch_for(session, None, now.mono_ms);
                        SessionState::Live
                    }
                    None => SessionState::Unknown,
                };
                let auth = packet.authinfo.clone().unwrap_or_default();
                let caller = Caller {
                    session,
                    session_state: state,
                    auth: &auth,
                };
                let mut h = self.header(session, cxid, now);
                // A body that does not decode is prepared as ZooKeeper's leader does:
                // an error transaction the subscriber's client is answered with.
                let (body, digest) = self.prep.prepare(&self.tree, &caller, &req, &mut h);
                debug!(
                    sub,
                    session = format_args!("0x{session:x}"),
                    cxid,
                    zxid = format_args!("{:#x}", h.zxid),
                    "a subscriber's write"
                );
                self.submit(Origin::Internal, h, body, digest);
            }
        }
    }

    /// An observer passes a subscriber's packet up to its leader and remembers whom the
    /// answer is for.
    fn pass_up(&mut self, sub: u64, packet: QuorumPacket, out: &mut Vec<Output>) {
        match packet.kind() {
            Some(PacketType::Revalidate) => {
                let Ok(session) = Reader::new(packet.body()).read_i64() else {
                    return warn!(sub, "a REVALIDATE from a subscriber that does not decode");
                };
                self.obs
                    .remote_revalidations
                    .entry(session)
                    .or_default()
                    .push(sub);
            }
            Some(PacketType::Request) => {
                let mut r = Reader::new(packet.body());
                let op = r
                    .read_i64()
                    .and_then(|_| r.read_i32())
                    .and_then(|_| r.read_i32());
                let Ok(op) = op else {
                    return warn!(sub, "a REQUEST from a subscriber that does not decode");
                };
                if op == OpCode::Sync as i32 {
                    self.obs.syncs.push_back(SyncOwner::Subscriber(sub));
                }
            }
            other => return warn!(sub, "a {other:?} packet from a subscriber; ignored"),
        }
        out.push(Output::ToLeader(packet));
    }

    /// Sessions a subscriber's clients kept alive since its last report.
    pub(super) fn subscriber_touch(&mut self, sessions: Vec<(i64, i32)>, now: Clock) {
        if self.settings.role == Role::Observer {
            // Reported up with this observer's own at the next ping.
            for (id, t) in sessions {
                self.obs.touched.insert(id, t);
            }
            return;
        }
        for (id, t) in sessions {
            self.sessions
                .touch_for(id, Some(t.max(0) as u32), now.mono_ms);
        }
    }

    /// The leader answered a sync a subscriber forwarded. Everything received before the
    /// answer was handed to the log already, so the answer follows it there.
    pub(super) fn subscriber_synced(&mut self, sub: u64, out: &mut Vec<Output>) {
        self.publish(
            Published::Answer {
                sub,
                answer: SubscriberAnswer::Synced,
            },
            out,
        );
    }

    /// The leader answered a REVALIDATE; true if a subscriber had asked.
    pub(super) fn subscriber_revalidated(
        &mut self,
        session: i64,
        valid: bool,
        out: &mut Vec<Output>,
    ) -> bool {
        let Some(subs) = self.obs.remote_revalidations.remove(&session) else {
            return false;
        };
        for sub in subs {
            self.publish(
                Published::Answer {
                    sub,
                    answer: SubscriberAnswer::Revalidated { session, valid },
                },
                out,
            );
        }
        true
    }

    /// Hands `p` to the log thread behind everything prepared so far.
    pub(super) fn publish(&mut self, p: Published, out: &mut Vec<Output>) {
        self.flush_log(out);
        out.push(Output::Publish(p));
    }
}
