//! The learner side of ZooKeeper's learner protocol, as an observer speaks it
//! (`Learner.registerWithLeader`, `syncWithLeader`, `Observer.processPacket`), as a state
//! machine without I/O: bytes from the leader go in through [`Learner::receive`], and
//! [`Event`]s say what to send back, what is committed and when the learner is in sync.
//! The relay crate moves the bytes.
//!
//! The handshake: OBSERVERINFO (LearnerInfo: server id, protocol 0x10000, config version
//! 0), LEADERINFO (the new epoch), ACKEPOCH (our last zxid, and our current epoch or −1).
//! Then the leader picks DIFF (PROPOSAL + COMMIT pairs follow), TRUNC, or SNAP (the
//! serialized database follows on the stream, then the string "BenWasHere"), and ends
//! the sync with NEWLEADER (answered ACK) and UPTODATE (answered ACK). A SNAP's tree is
//! handed over (to be written as a snapshot) as soon as it is whole, and every transaction
//! after it is committed through the log like any other. (ZooKeeper applies those that
//! arrive before NEWLEADER in memory and snapshots at NEWLEADER; making each durable as it
//! comes loses nothing and needs no second path.)
//! In steady state INFORMs carry committed transactions and PINGs are answered with the
//! sessions this observer touched.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use tracing::{debug, info, warn};

use crate::proto::quorum::{
    split_packet, LearnerInfo, PacketError, PacketType, QuorumPacket, PROTOCOL_VERSION,
    SNAP_SIGNATURE,
};
use crate::proto::txn::{LogEntry, TxnEntry};
use crate::proto::{DecodeError, Record};
use crate::snapshot_stream::{DatabaseStream, StreamError};
use crate::tree::DataTree;

/// What the learner asks of its driver.
#[derive(Debug)]
pub enum Event {
    /// Write this packet to the leader.
    Send(QuorumPacket),
    /// The leader sent its whole database (SNAP): replace the tree with this one, taken
    /// as of `zxid` (entries committed before NEWLEADER are already in it).
    Snapshot {
        tree: Box<DataTree>,
        sessions: Vec<(i64, i32)>,
        zxid: i64,
    },
    /// The log after `zxid` is to be cut off (TRUNC): everything after it is discarded.
    Truncate { zxid: i64 },
    /// A committed transaction, in zxid order: log it, then apply it.
    Committed(LogEntry),
    /// The sync is over (UPTODATE): serve clients from now on.
    UpToDate { epoch: u32 },
    /// The leader pinged: answer with [`Learner::ping_reply`] and the touched sessions.
    Ping {
        zxid: i64,
        authinfo: Option<Vec<crate::proto::records::Id>>,
    },
    /// The leader answered the oldest forwarded sync (SYNC carries no id).
    Sync,
    /// The leader answered a REVALIDATE.
    Revalidated { session: i64, valid: bool },
}

/// Why the link to the leader must be dropped (and the sync started again).
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error(transparent)]
    Snapshot(#[from] StreamError),
    #[error("{what}: {err}")]
    Decode {
        what: &'static str,
        err: DecodeError,
    },
    #[error("unexpected {got} while {expecting}")]
    Unexpected {
        got: String,
        expecting: &'static str,
    },
    #[error("the leader's epoch {leader} is older than ours ({ours})")]
    EpochBehind { leader: u32, ours: u32 },
    #[error("the SNAP ended with {0:?}, not \"BenWasHere\"")]
    BadSignature(String),
}

#[derive(Debug)]
enum Phase {
    /// OBSERVERINFO sent; LEADERINFO next.
    LeaderInfo,
    /// ACKEPOCH sent; DIFF, TRUNC or SNAP next.
    SyncMode,
    /// The serialized database is arriving.
    Snap(Box<DatabaseStream>, i64),
    /// The database is whole; its signature string next.
    Signature(i64),
    /// Proposals and commits until NEWLEADER, then UPTODATE.
    Syncing,
    /// In sync: INFORMs and PINGs.
    Following,
}

/// What this replica knows of itself when it connects.
#[derive(Debug, Clone, Copy)]
pub struct LearnerStart {
    pub server_id: u64,
    /// The last zxid in its log (0 when empty).
    pub last_zxid: i64,
    /// `acceptedEpoch` and `currentEpoch` (ZooKeeper keeps them in files; the epoch of
    /// `last_zxid` when it has none).
    pub accepted_epoch: u32,
    pub current_epoch: u32,
}

pub struct Learner {
    start: LearnerStart,
    phase: Phase,
    new_epoch: u32,
    /// Max bytes of a buffer or string in a packet (`jute.maxbuffer` + extrasize).
    max_len: usize,
    /// Proposals not committed yet during the sync, oldest first.
    proposals: VecDeque<LogEntry>,
    /// How the leader chose to sync us: DIFF, TRUNC or SNAP.
    sync_kind: &'static str,
}

fn be_i32(v: i32) -> Bytes {
    Bytes::copy_from_slice(&v.to_be_bytes())
}

impl Learner {
    /// A learner about to register; the OBSERVERINFO to send first is returned with it.
    pub fn new(start: LearnerStart, max_len: usize) -> (Learner, QuorumPacket) {
        let info = LearnerInfo {
            serverid: start.server_id as i64,
            protocol_version: PROTOCOL_VERSION,
            config_version: 0,
        };
        let hello = QuorumPacket::new(
            PacketType::ObserverInfo,
            i64::from(start.accepted_epoch) << 32,
            Some(info.to_bytes()),
        );
        let l = Learner {
            start,
            phase: Phase::LeaderInfo,
            new_epoch: 0,
            max_len,
            proposals: VecDeque::new(),
            sync_kind: "",
        };
        (l, hello)
    }

    /// Whether the learner is in sync and following.
    pub fn is_following(&self) -> bool {
        matches!(self.phase, Phase::Following)
    }

    /// DIFF, TRUNC or SNAP once the leader has chosen; empty before.
    pub fn sync_kind(&self) -> &'static str {
        self.sync_kind
    }

    /// The leader's epoch once LEADERINFO has arrived.
    pub fn epoch(&self) -> u32 {
        self.new_epoch
    }

    /// Consumes what it can of `buf` (whole packets, and the database after a SNAP) and
    /// returns how many bytes that was; the caller keeps the rest for the next call.
    pub fn receive(&mut self, buf: &[u8], out: &mut Vec<Event>) -> Result<usize, LearnerError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            let n = match &mut self.phase {
                Phase::Snap(stream, zxid) => {
                    let zxid = *zxid;
                    let n = stream.feed(rest)?;
                    if stream.is_done() {
                        let Phase::Snap(stream, _) =
                            std::mem::replace(&mut self.phase, Phase::Signature(zxid))
                        else {
                            unreachable!("matched above")
                        };
                        let nodes = stream.nodes();
                        let (tree, sessions) = stream.finish(zxid)?;
                        info!(
                            zxid = format_args!("{zxid:#x}"),
                            nodes, "snapshot received from the leader"
                        );
                        out.push(Event::Snapshot {
                            tree: Box::new(tree),
                            sessions,
                            zxid,
                        });
                    }
                    n
                }
                Phase::Signature(zxid) => {
                    let zxid = *zxid;
                    let Some(len_bytes) = rest.get(..4) else {
                        return Ok(used);
                    };
                    let len = i32::from_be_bytes([
                        len_bytes[0],
                        len_bytes[1],
                        len_bytes[2],
                        len_bytes[3],
                    ]);
                    if !(0..=64).contains(&len) {
                        return Err(LearnerError::BadSignature(format!("<length {len}>")));
                    }
                    let Some(s) = rest.get(4..4 + len as usize) else {
                        return Ok(used);
                    };
                    if s != SNAP_SIGNATURE.as_bytes() {
                        return Err(LearnerError::BadSignature(
                            String::from_utf8_lossy(s).into_owned(),
                        ));
                    }
                    debug!(
                        zxid = format_args!("{zxid:#x}"),
                        "snapshot signature checked"
                    );
                    self.phase = Phase::Syncing;
                    4 + len as usize
                }
                _ => {
                    let Some((p, n)) = split_packet(rest, self.max_len)? else {
                        return Ok(used);
                    };
                    self.packet(p, out)?;
                    n
                }
            };
            if n == 0 {
                return Ok(used);
            }
            used += n;
        }
    }

    /// One packet from the leader.
    fn packet(&mut self, p: QuorumPacket, out: &mut Vec<Event>) -> Result<(), LearnerError> {
        let kind = p.kind();
        let unexpected = |expecting| LearnerError::Unexpected {
            got: kind.map_or_else(|| format!("packet type {}", p.r#type), |k| k.name().into()),
            expecting,
        };
        match (&self.phase, kind) {
            (Phase::LeaderInfo, Some(PacketType::LeaderInfo)) => {
                let new_epoch = (p.zxid >> 32) as u32;
                let ours = self.start.accepted_epoch;
                let epoch_data = if new_epoch > ours {
                    self.start.current_epoch as i32
                } else if new_epoch == ours {
                    -1
                } else {
                    return Err(LearnerError::EpochBehind {
                        leader: new_epoch,
                        ours,
                    });
                };
                self.new_epoch = new_epoch;
                self.start.accepted_epoch = new_epoch;
                out.push(Event::Send(QuorumPacket::new(
                    PacketType::AckEpoch,
                    self.start.last_zxid,
                    Some(be_i32(epoch_data)),
                )));
                self.phase = Phase::SyncMode;
            }
            (Phase::LeaderInfo, _) => return Err(unexpected("waiting for LEADERINFO")),
            (Phase::SyncMode, Some(PacketType::Diff)) => {
                info!(
                    zxid = format_args!("{:#x}", p.zxid),
                    "Getting a diff from the leader"
                );
                self.sync_kind = "DIFF";
                self.phase = Phase::Syncing;
            }
            (Phase::SyncMode, Some(PacketType::Trunc)) => {
                warn!(
                    zxid = format_args!("{:#x}", p.zxid),
                    "Truncating log to get in sync with the leader"
                );
                out.push(Event::Truncate { zxid: p.zxid });
                self.sync_kind = "TRUNC";
                self.phase = Phase::Syncing;
            }
            (Phase::SyncMode, Some(PacketType::Snap)) => {
                info!(
                    zxid = format_args!("{:#x}", p.zxid),
                    "Getting a snapshot from the leader"
                );
                self.sync_kind = "SNAP";
                self.phase = Phase::Snap(Box::new(DatabaseStream::new(self.max_len)), p.zxid);
            }
            (Phase::SyncMode, _) => return Err(unexpected("waiting for DIFF, TRUNC or SNAP")),
            (Phase::Syncing, Some(PacketType::Proposal)) => {
                let e = entry(&p, 0)?;
                self.proposals.push_back(e);
            }
            (Phase::Syncing, Some(PacketType::Commit | PacketType::CommitAndActivate)) => {
                match self.proposals.front() {
                    Some(e) if e.zxid == p.zxid => {
                        if let Some(e) = self.proposals.pop_front() {
                            out.push(Event::Committed(e));
                        }
                    }
                    _ => warn!(
                        zxid = format_args!("{:#x}", p.zxid),
                        "Committing a zxid that is not the next proposal; ignored"
                    ),
                }
            }
            (Phase::Syncing, Some(PacketType::Inform)) => out.push(Event::Committed(entry(&p, 0)?)),
            (Phase::Syncing, Some(PacketType::InformAndActivate)) => {
                out.push(Event::Committed(entry(&p, 8)?));
            }
            (Phase::Syncing, Some(PacketType::NewLeader)) => {
                out.push(Event::Send(QuorumPacket::new(
                    PacketType::Ack,
                    i64::from(self.new_epoch) << 32,
                    None,
                )));
            }
            (Phase::Syncing, Some(PacketType::UpToDate)) => {
                out.push(Event::Send(QuorumPacket::new(
                    PacketType::Ack,
                    i64::from(self.new_epoch) << 32,
                    None,
                )));
                if !self.proposals.is_empty() {
                    warn!(
                        left = self.proposals.len(),
                        "proposals never committed before UPTODATE"
                    );
                    self.proposals.clear();
                }
                out.push(Event::UpToDate {
                    epoch: self.new_epoch,
                });
                self.phase = Phase::Following;
            }
            // The leader's pings can overtake UPTODATE; ZooKeeper ignores them then too.
            (Phase::Syncing, _) => debug!(packet = p.r#type, "ignored while syncing"),
            (Phase::Following, Some(PacketType::Inform)) => {
                out.push(Event::Committed(entry(&p, 0)?));
            }
            (Phase::Following, Some(PacketType::InformAndActivate)) => {
                out.push(Event::Committed(entry(&p, 8)?));
            }
            (Phase::Following, Some(PacketType::Ping)) => {
                out.push(Event::Ping {
                    zxid: p.zxid,
                    authinfo: p.authinfo,
                });
            }
            (Phase::Following, Some(PacketType::Sync)) => out.push(Event::Sync),
            (Phase::Following, Some(PacketType::Revalidate)) => {
                // The leader's answer: session id and one boolean byte (`Leader`
                // writes `dos.writeBoolean(valid)`).
                let body = p.body();
                let (Some(id), Some(&valid)) = (body.get(..8), body.get(8)) else {
                    return Err(LearnerError::Decode {
                        what: "REVALIDATE",
                        err: DecodeError::Truncated {
                            offset: body.len(),
                            needed: 9,
                        },
                    });
                };
                let mut sid = [0u8; 8];
                sid.copy_from_slice(id);
                out.push(Event::Revalidated {
                    session: i64::from_be_bytes(sid),
                    valid: valid != 0,
                });
            }
            (Phase::Following, _) => {
                warn!(
                    packet = p.r#type,
                    "Unknown packet type from the leader; ignored"
                );
            }
            (Phase::Snap(..) | Phase::Signature(_), _) => {
                unreachable!("receive reads the stream, not packets, in these phases")
            }
        }
        Ok(())
    }

    /// The answer to a leader's PING: the sessions this observer touched since the last
    /// one, with their timeouts (`Learner.ping`). An empty list is an empty array, never
    /// null: the leader reads it as a stream.
    pub fn ping_reply(
        zxid: i64,
        authinfo: Option<Vec<crate::proto::records::Id>>,
        touched: &[(i64, i32)],
    ) -> QuorumPacket {
        let mut b = BytesMut::with_capacity(touched.len() * 12);
        for (id, timeout) in touched {
            b.put_i64(*id);
            b.put_i32(*timeout);
        }
        QuorumPacket {
            r#type: PacketType::Ping as i32,
            zxid,
            data: Some(b.freeze()),
            authinfo,
        }
    }
}

/// A committed transaction from a PROPOSAL or INFORM (after `skip` bytes: the leader id
/// of an INFORMANDACTIVATE), checked to decode before anything applies it.
fn entry(p: &QuorumPacket, skip: usize) -> Result<LogEntry, LearnerError> {
    let body = p.body();
    let bytes = body.get(skip..).ok_or(LearnerError::Decode {
        what: "transaction",
        err: DecodeError::Truncated {
            offset: 0,
            needed: skip,
        },
    })?;
    let e = TxnEntry::decode(bytes).map_err(|err| LearnerError::Decode {
        what: "transaction",
        err,
    })?;
    Ok(LogEntry {
        zxid: e.header.zxid,
        bytes: Bytes::copy_from_slice(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::open_acl_unsafe;
    use crate::proto::txn::{CreateTxn, TxnBody, TxnHeader};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const EPOCH: u32 = 3;

    fn zxid(counter: i64) -> i64 {
        (i64::from(EPOCH) << 32) | counter
    }

    fn txn(counter: i64) -> Bytes {
        let hdr = TxnHeader {
            client_id: 0x11,
            cxid: counter as i32,
            zxid: zxid(counter),
            time: 1_700_000_000_000,
            r#type: 0,
        };
        let body = TxnBody::Create(CreateTxn {
            path: format!("/n{counter}"),
            data: Some(Bytes::from_static(b"v")),
            acl: open_acl_unsafe(),
            ephemeral: false,
            parent_cversion: -1,
        });
        TxnEntry::new(hdr, body, None).to_bytes()
    }

    fn pkt(t: PacketType, zxid: i64, data: Option<Bytes>) -> Vec<u8> {
        QuorumPacket::new(t, zxid, data).to_bytes().to_vec()
    }

    /// What a leader sends a learner at zxid(1) that is 2 transactions behind: a DIFF.
    fn diff_stream() -> Vec<u8> {
        let mut s = pkt(
            PacketType::LeaderInfo,
            i64::from(EPOCH) << 32,
            Some(be_i32(PROTOCOL_VERSION)),
        );
        s.extend(pkt(PacketType::Diff, zxid(3), None));
        s.extend(pkt(PacketType::Proposal, zxid(2), Some(txn(2))));
        s.extend(pkt(PacketType::Proposal, zxid(3), Some(txn(3))));
        s.extend(pkt(PacketType::Commit, zxid(2), None));
        s.extend(pkt(PacketType::Commit, zxid(3), None));
        s.extend(pkt(
            PacketType::NewLeader,
            i64::from(EPOCH) << 32,
            Some(Bytes::from_static(b"server.1=x\nversion=0")),
        ));
        // A ping can overtake UPTODATE: ignored while syncing.
        s.extend(pkt(PacketType::Ping, zxid(3), None));
        s.extend(pkt(PacketType::UpToDate, -1, None));
        s.extend(pkt(PacketType::Inform, zxid(4), Some(txn(4))));
        s.extend(pkt(PacketType::Ping, zxid(4), None));
        s
    }

    /// Feeds `stream` in seeded random chunks; returns the events in order.
    fn run(start: LearnerStart, stream: &[u8], seed: u64) -> Result<Vec<Event>, LearnerError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut l, hello) = Learner::new(start, 1 << 20);
        assert_eq!(hello.kind(), Some(PacketType::ObserverInfo));
        let mut events = Vec::new();
        let mut pending = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let n = rng.random_range(1..=64).min(stream.len() - at);
            pending.extend_from_slice(&stream[at..at + n]);
            at += n;
            let used = l.receive(&pending, &mut events)?;
            pending.drain(..used);
        }
        assert!(pending.is_empty(), "{} bytes left unread", pending.len());
        Ok(events)
    }

    fn describe(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Send(p) => format!(
                    "send {} {:#x} {:?}",
                    p.kind().map_or("?", PacketType::name),
                    p.zxid,
                    p.data.as_deref()
                ),
                Event::Committed(e) => format!("commit {:#x}", e.zxid),
                Event::UpToDate { epoch } => format!("uptodate {epoch}"),
                Event::Ping { zxid, .. } => format!("ping {zxid:#x}"),
                Event::Snapshot { zxid, tree, .. } => {
                    format!("snapshot {zxid:#x} {}", tree.node_count())
                }
                Event::Truncate { zxid } => format!("truncate {zxid:#x}"),
                Event::Sync => "sync".into(),
                Event::Revalidated { session, valid } => {
                    format!("revalidated {session:#x} {valid}")
                }
            })
            .collect()
    }

    #[test]
    fn a_diff_sync_then_following_whatever_the_chunking() {
        let start = LearnerStart {
            server_id: 9,
            last_zxid: zxid(1),
            accepted_epoch: EPOCH - 1,
            current_epoch: EPOCH - 1,
        };
        let want = vec![
            format!("send ACKEPOCH {:#x} Some([0, 0, 0, 2])", zxid(1)),
            format!("commit {:#x}", zxid(2)),
            format!("commit {:#x}", zxid(3)),
            format!("send ACK {:#x} None", i64::from(EPOCH) << 32),
            format!("send ACK {:#x} None", i64::from(EPOCH) << 32),
            "uptodate 3".to_string(),
            format!("commit {:#x}", zxid(4)),
            format!("ping {:#x}", zxid(4)),
        ];
        for seed in 0..200 {
            let events = run(start, &diff_stream(), seed).unwrap();
            assert_eq!(describe(&events), want, "seed {seed}");
        }
        // The same epoch already accepted: ACKEPOCH says -1.
        let again = LearnerStart {
            accepted_epoch: EPOCH,
            current_epoch: EPOCH,
            ..start
        };
        let events = run(again, &diff_stream(), 1).unwrap();
        assert_eq!(
            describe(&events)[0],
            format!("send ACKEPOCH {:#x} Some([255, 255, 255, 255])", zxid(1))
        );
    }

    #[test]
    fn a_snap_sync_installs_the_streamed_tree() {
        let mut tree = DataTree::new();
        let mut ch = Vec::new();
        for i in 0..30 {
            tree.create_node(
                &format!("/s{i}"),
                Some(b"x"),
                &open_acl_unsafe(),
                0,
                -1,
                zxid(i + 1),
                5,
                &mut ch,
            )
            .unwrap();
        }
        let mut db = Vec::new();
        db.extend_from_slice(&1i32.to_be_bytes());
        db.extend_from_slice(&0x77i64.to_be_bytes());
        db.extend_from_slice(&30_000i32.to_be_bytes());
        let mut acls = std::collections::BTreeMap::new();
        let mut nodes = Vec::new();
        for p in tree.walk() {
            let n = tree.get(&p).unwrap();
            if let Some(l) = tree.acls.stored(n.acl) {
                acls.insert(n.acl, std::sync::Arc::from(l));
            }
            crate::snapshot::encode_node(&p, &n, &mut nodes);
        }
        db.extend(crate::snapshot::encode_acl_map(&acls));
        db.extend(nodes);
        db.extend_from_slice(&1i32.to_be_bytes());
        db.push(b'/');
        let mut s = pkt(
            PacketType::LeaderInfo,
            i64::from(EPOCH) << 32,
            Some(be_i32(PROTOCOL_VERSION)),
        );
        s.extend(pkt(PacketType::Snap, zxid(30), None));
        s.extend(db);
        s.extend_from_slice(&(SNAP_SIGNATURE.len() as i32).to_be_bytes());
        s.extend_from_slice(SNAP_SIGNATURE.as_bytes());
        s.extend(pkt(PacketType::Inform, zxid(31), Some(txn(31))));
        s.extend(pkt(PacketType::NewLeader, i64::from(EPOCH) << 32, None));
        s.extend(pkt(PacketType::UpToDate, -1, None));
        let start = LearnerStart {
            server_id: 9,
            last_zxid: 0,
            accepted_epoch: 0,
            current_epoch: 0,
        };
        for seed in 0..100 {
            let events = run(start, &s, seed).unwrap();
            let Some(Event::Snapshot {
                tree: got,
                sessions,
                zxid: z,
            }) = events.get(1)
            else {
                panic!("seed {seed}: {:?}", describe(&events));
            };
            assert_eq!((*z, sessions.clone()), (zxid(30), vec![(0x77, 30_000)]));
            assert_eq!(got.digest(), tree.digest(), "seed {seed}");
            assert_eq!(
                describe(&events[2..]),
                vec![
                    format!("commit {:#x}", zxid(31)),
                    format!("send ACK {:#x} None", i64::from(EPOCH) << 32),
                    format!("send ACK {:#x} None", i64::from(EPOCH) << 32),
                    "uptodate 3".to_string(),
                ]
            );
        }
    }

    #[test]
    fn bad_input_from_the_leader_ends_the_link_with_a_reason() {
        let start = LearnerStart {
            server_id: 9,
            last_zxid: 0,
            accepted_epoch: EPOCH + 1,
            current_epoch: EPOCH + 1,
        };
        // A leader of an older epoch.
        assert!(matches!(
            run(start, &diff_stream(), 0),
            Err(LearnerError::EpochBehind { leader: 3, ours: 4 })
        ));
        let start = LearnerStart {
            accepted_epoch: 0,
            current_epoch: 0,
            ..start
        };
        // Something other than LEADERINFO first.
        assert!(matches!(
            run(start, &pkt(PacketType::UpToDate, -1, None), 0),
            Err(LearnerError::Unexpected { .. })
        ));
        // An INFORM whose transaction does not decode.
        let mut s = pkt(PacketType::LeaderInfo, i64::from(EPOCH) << 32, None);
        s.extend(pkt(PacketType::Diff, 0, None));
        s.extend(pkt(
            PacketType::Inform,
            zxid(1),
            Some(Bytes::from_static(b"garbage")),
        ));
        assert!(matches!(
            run(start, &s, 0),
            Err(LearnerError::Decode { .. })
        ));
        // A SNAP whose signature is wrong.
        let mut s = pkt(PacketType::LeaderInfo, i64::from(EPOCH) << 32, None);
        s.extend(pkt(PacketType::Snap, zxid(0), None));
        // No sessions, no ACLs, a root, the end marker.
        s.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        crate::snapshot::encode_node("/", &DataTree::new().get("/").unwrap(), &mut s);
        s.extend_from_slice(&1i32.to_be_bytes());
        s.push(b'/');
        s.extend_from_slice(&4i32.to_be_bytes());
        s.extend_from_slice(b"Eve!");
        assert!(matches!(
            run(start, &s, 0),
            Err(LearnerError::BadSignature(_))
        ));
        // A negative buffer length is invalid, not a wait.
        let mut s = pkt(PacketType::LeaderInfo, i64::from(EPOCH) << 32, None);
        s.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0]);
        assert!(matches!(run(start, &s, 0), Err(LearnerError::Packet(_))));
    }
}
