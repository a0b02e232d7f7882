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
        };
        (l, hello)
    }

    /// Whether the learner is in sync and following.
    pub fn is_following(&self) -> bool {
        matches!(self.phase, Phase::Following)
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
                self.phase = Phase::Syncing;
            }
            (Phase::SyncMode, Some(PacketType::Trunc)) => {
                warn!(
                    zxid = format_args!("{:#x}", p.zxid),
                    "Truncating log to get in sync with the leader"
                );
                out.push(Event::Truncate { zxid: p.zxid });
                self.phase = Phase::Syncing;
            }
            (Phase::SyncMode, Some(PacketType::Snap)) => {
                info!(
                    zxid = format_args!("{:#x}", p.zxid),
                    "Getting a snapshot from the leader"
                );
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
