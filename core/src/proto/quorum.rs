//! The quorum records: what a learner and a leader exchange on the learner port
//! (`org.apache.zookeeper.server.quorum` in zookeeper.jute; the packet types of
//! `Leader.java`), and the framing of that port.
//!
//! The learner port carries QuorumPackets back to back with no length prefix (each is a
//! jute record written straight to the stream), so a reader must walk a packet's own
//! lengths to know where it ends: [`packet_len`] does that without decoding or
//! allocating, and tells "incomplete, read more" apart from "invalid, drop the link",
//! like the client port's [`super::frame`].

use bytes::Bytes;

use super::jute::{DecodeError, Reader, Record};
use super::records::{jute_record, Id};

jute_record! {
    /// `QuorumPacket`: every message between a leader and its learners.
    pub struct QuorumPacket {
        r#type: i32,
        zxid: i64,
        data: Option<Bytes>,
        authinfo: Option<Vec<Id>>,
    }

    /// `LearnerInfo`: the body of a FOLLOWERINFO or OBSERVERINFO.
    pub struct LearnerInfo {
        serverid: i64,
        protocol_version: i32,
        config_version: i64,
    }
}

/// The learner protocol version a 3.4+ leader and learner speak (`0x10000`).
pub const PROTOCOL_VERSION: i32 = 0x10000;

/// What a leader sends after a SNAP's serialized database (`LearnerHandler`).
pub const SNAP_SIGNATURE: &str = "BenWasHere";

/// QuorumPacket types (`Leader.java`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum PacketType {
    Request = 1,
    Proposal = 2,
    Ack = 3,
    Commit = 4,
    Ping = 5,
    Revalidate = 6,
    Sync = 7,
    Inform = 8,
    CommitAndActivate = 9,
    NewLeader = 10,
    FollowerInfo = 11,
    UpToDate = 12,
    Diff = 13,
    Trunc = 14,
    Snap = 15,
    ObserverInfo = 16,
    LeaderInfo = 17,
    AckEpoch = 18,
    InformAndActivate = 19,
}

impl PacketType {
    pub fn from_i32(t: i32) -> Option<PacketType> {
        use PacketType::*;
        Some(match t {
            1 => Request,
            2 => Proposal,
            3 => Ack,
            4 => Commit,
            5 => Ping,
            6 => Revalidate,
            7 => Sync,
            8 => Inform,
            9 => CommitAndActivate,
            10 => NewLeader,
            11 => FollowerInfo,
            12 => UpToDate,
            13 => Diff,
            14 => Trunc,
            15 => Snap,
            16 => ObserverInfo,
            17 => LeaderInfo,
            18 => AckEpoch,
            19 => InformAndActivate,
            _ => return None,
        })
    }

    /// The name ZooKeeper's logs use (`LearnerHandler.packetToString`).
    pub fn name(self) -> &'static str {
        use PacketType::*;
        match self {
            Request => "REQUEST",
            Proposal => "PROPOSAL",
            Ack => "ACK",
            Commit => "COMMIT",
            Ping => "PING",
            Revalidate => "REVALIDATE",
            Sync => "SYNC",
            Inform => "INFORM",
            CommitAndActivate => "COMMITANDACTIVATE",
            NewLeader => "NEWLEADER",
            FollowerInfo => "FOLLOWERINFO",
            UpToDate => "UPTODATE",
            Diff => "DIFF",
            Trunc => "TRUNC",
            Snap => "SNAP",
            ObserverInfo => "OBSERVERINFO",
            LeaderInfo => "LEADERINFO",
            AckEpoch => "ACKEPOCH",
            InformAndActivate => "INFORMANDACTIVATE",
        }
    }
}

impl QuorumPacket {
    pub fn new(t: PacketType, zxid: i64, data: Option<Bytes>) -> QuorumPacket {
        QuorumPacket {
            r#type: t as i32,
            zxid,
            data,
            authinfo: None,
        }
    }

    pub fn kind(&self) -> Option<PacketType> {
        PacketType::from_i32(self.r#type)
    }

    /// The data, empty when null.
    pub fn body(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }
}

/// A learner-port packet that cannot be read: the link is dropped and resynced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("quorum packet at offset {offset}: invalid length {len}")]
    BadLength { offset: usize, len: i32 },
    #[error("quorum packet of {len} bytes or more is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("quorum packet: {0}")]
    Decode(#[from] DecodeError),
}

/// The length of the QuorumPacket that starts `buf`: `Ok(None)` while more bytes are
/// needed. Its buffer and strings may not pass `max` bytes together (a leader's packets
/// are bounded by `jute.maxbuffer` on its side too); a negative length other than null's
/// −1 is invalid.
pub fn packet_len(buf: &[u8], max: usize) -> Result<Option<usize>, PacketError> {
    let mut at = 4 + 8; // type, zxid
                        // One length field: Ok(None) when more bytes are needed, the length (0 for null).
    let length = |at: &mut usize| -> Result<Option<usize>, PacketError> {
        let Some(b) = buf.get(*at..*at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let offset = *at;
        *at += 4;
        match len {
            -1 => Ok(Some(0)),
            n if n < 0 => Err(PacketError::BadLength { offset, len: n }),
            n => Ok(Some(n as usize)),
        }
    };
    let Some(data) = length(&mut at)? else {
        return Ok(None);
    };
    if data > max {
        return Err(PacketError::TooLarge { len: data, max });
    }
    at += data;
    let Some(ids) = length(&mut at)? else {
        return Ok(None);
    };
    // Each Id is two strings, each at least its 4-byte length.
    if ids.saturating_mul(8) > max {
        return Err(PacketError::TooLarge {
            len: ids.saturating_mul(8),
            max,
        });
    }
    for _ in 0..ids * 2 {
        let Some(n) = length(&mut at)? else {
            return Ok(None);
        };
        at += n;
        if at > max + 4 + 8 + 4 + 4 {
            return Err(PacketError::TooLarge { len: at, max });
        }
    }
    Ok((buf.len() >= at).then_some(at))
}

/// The first whole QuorumPacket in `buf` and the bytes it takes, or `Ok(None)`.
pub fn split_packet(buf: &[u8], max: usize) -> Result<Option<(QuorumPacket, usize)>, PacketError> {
    let Some(len) = packet_len(buf, max)? else {
        return Ok(None);
    };
    let mut r = Reader::new(&buf[..len]);
    let p = QuorumPacket::decode(&mut r)?;
    Ok(Some((p, len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(
        t: i32,
        zxid: i64,
        data: Option<Vec<u8>>,
        ids: Option<Vec<(&str, &str)>>,
    ) -> QuorumPacket {
        QuorumPacket {
            r#type: t,
            zxid,
            data: data.map(Bytes::from),
            authinfo: ids.map(|v| {
                v.into_iter()
                    .map(|(s, i)| Id {
                        scheme: s.into(),
                        id: i.into(),
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn packets_split_where_they_end_and_wait_for_the_rest() {
        let a = packet(17, 5 << 32, Some(vec![0, 1, 0, 0]), None);
        let b = packet(
            1,
            0,
            Some(b"req".to_vec()),
            Some(vec![("ip", "127.0.0.1"), ("digest", "u:x")]),
        );
        let c = packet(12, -1, None, Some(vec![]));
        let mut stream = a.to_bytes().to_vec();
        stream.extend_from_slice(&b.to_bytes());
        stream.extend_from_slice(&c.to_bytes());
        // Every prefix is incomplete or yields exactly the first packet.
        let first = a.to_bytes().len();
        for cut in 0..first {
            assert_eq!(split_packet(&stream[..cut], 1 << 20), Ok(None), "cut {cut}");
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((p, n)) = split_packet(&stream[at..], 1 << 20).unwrap() {
            got.push(p);
            at += n;
        }
        assert_eq!(got, vec![a, b, c]);
        assert_eq!(at, stream.len());
        // Null and empty authinfo stay apart.
        assert_eq!(got[0].authinfo, None);
        assert_eq!(got[2].authinfo, Some(vec![]));
    }

    #[test]
    fn bad_lengths_are_errors_not_waits() {
        let mut p = packet(5, 0, Some(vec![1, 2, 3]), None).to_bytes().to_vec();
        p[12..16].copy_from_slice(&(-7i32).to_be_bytes());
        assert!(matches!(
            packet_len(&p, 1 << 20),
            Err(PacketError::BadLength { len: -7, .. })
        ));
        let big = packet(5, 0, Some(vec![0; 100]), None).to_bytes();
        assert!(matches!(
            packet_len(&big, 50),
            Err(PacketError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(t in any::<i32>(), zxid in any::<i64>(),
                      data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                      ids in proptest::option::of(proptest::collection::vec(("[a-z]{0,6}", "[a-z:0-9]{0,12}"), 0..4))) {
            let p = QuorumPacket {
                r#type: t,
                zxid,
                data: data.map(Bytes::from),
                authinfo: ids.map(|v| v.into_iter().map(|(s, i)| Id { scheme: s, id: i }).collect()),
            };
            let bytes = p.to_bytes();
            prop_assert_eq!(split_packet(&bytes, 1 << 20).unwrap(), Some((p, bytes.len())));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..300) {
            let _ = split_packet(&bytes, max);
        }
    }
}
