//! The relay's wire format (`geokeeper-relay/1`): the frames a subscriber and its
//! publisher exchange on one bidirectional QUIC stream. No I/O here: encoding, and
//! decoding that refuses anything malformed with a reason.
//!
//! A frame is a 4-byte big-endian length (of what follows), a 1-byte kind, and the
//! kind's body, with integers big-endian and strings and byte blocks length-prefixed.
//! Transactions travel as ZooKeeper serializes them ([`LogEntry`]: TxnHeader, txn and
//! digest), batched, and zstd-compressed when that pays; forwarded requests are the
//! learner protocol's own QuorumPackets (REQUEST, REVALIDATE).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use geokeeper_core::proto::quorum::QuorumPacket;
use geokeeper_core::proto::txn::LogEntry;
use geokeeper_core::proto::{Reader, Record};

/// The protocol version a Hello carries. Version 2 compresses transaction batches in
/// one zstd stream per connection ([`TxnStream`]); a publisher still serves version 1
/// subscribers with batches compressed one by one.
pub const VERSION: u32 = 2;

/// The oldest protocol version a publisher still serves.
pub const MIN_VERSION: u32 = 1;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 << 20;

/// Batches at least this large are compressed.
const COMPRESS_MIN: usize = 512;

/// zstd level for live batches: fast, and still several times smaller for the
/// repetitive paths and headers of ZooKeeper transactions.
const ZSTD_LEVEL: i32 = 1;

/// zstd level of a connection's stream ([`TxnStream`]).
const STREAM_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLong(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("{kind} frame: {why}")]
    Malformed { kind: &'static str, why: String },
}

/// Where a snapshot transfer cut short can resume: the file the subscriber has part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The publisher's file name (`snapshot.<zxid>[.ext]`).
    pub name: String,
    /// Its size as announced.
    pub size: u64,
    /// How many of its bytes the subscriber holds, checked chunk by chunk.
    pub offset: u64,
}

/// Subscriber to publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Up {
    /// The first frame: the last zxid the subscriber has logged, and a snapshot it
    /// holds part of.
    Hello {
        version: u32,
        last_zxid: i64,
        resume: Option<Resume>,
    },
    /// A REQUEST or REVALIDATE for the leader, on behalf of a client.
    Forward(QuorumPacket),
    /// The sessions its clients kept alive since the last heartbeat (one message per
    /// heartbeat for all of them), with their timeouts.
    Touch(Vec<(i64, i32)>),
}

/// Publisher to subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// Committed transactions, in zxid order, contiguous with what came before.
    Txns(Vec<LogEntry>),
    /// A snapshot transfer starts (or resumes at `offset`).
    SnapBegin {
        name: String,
        zxid: i64,
        size: u64,
        offset: u64,
    },
    /// The file's bytes at `offset`, with their CRC-32 (IEEE).
    SnapChunk { offset: u64, crc: u32, data: Bytes },
    /// The whole file is sent; transactions after its zxid follow.
    SnapEnd,
    /// The subscriber has everything the publisher had when it sent this; the live
    /// stream follows.
    UpToDate { zxid: i64 },
    /// Every heartbeat interval: the leader's last committed zxid and its commit time
    /// (leader wall ms), as far as the publisher knows, and the publisher's own last.
    Heartbeat {
        leader_zxid: i64,
        leader_time_ms: i64,
        publisher_zxid: i64,
    },
    /// The answer to the oldest sync this subscriber forwarded.
    Synced,
    /// The answer to a REVALIDATE.
    Revalidated { session: i64, valid: bool },
}

const HELLO: u8 = 1;
const FORWARD: u8 = 2;
const TOUCH: u8 = 3;
const TXNS: u8 = 10;
const TXNS_ZSTD: u8 = 11;
const SNAP_BEGIN: u8 = 12;
const SNAP_CHUNK: u8 = 13;
const SNAP_END: u8 = 14;
const UP_TO_DATE: u8 = 15;
const HEARTBEAT: u8 = 16;
const SYNCED: u8 = 17;
const REVALIDATED: u8 = 18;
const TXNS_ZSTREAM: u8 = 19;

/// Byte counts of one encoded frame: on the wire, and before compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    pub wire: usize,
    pub raw: usize,
}

fn begin(out: &mut BytesMut, kind: u8) -> usize {
    let at = out.len();
    out.put_u32(0);
    out.put_u8(kind);
    at
}

fn finish(out: &mut BytesMut, at: usize) -> usize {
    let len = out.len() - at - 4;
    out[at..at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    len + 4
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

impl Up {
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Up::Hello {
                version,
                last_zxid,
                resume,
            } => {
                let at = begin(out, HELLO);
                out.put_u32(*version);
                out.put_i64(*last_zxid);
                match resume {
                    None => out.put_u8(0),
                    Some(r) => {
                        out.put_u8(1);
                        put_str(out, &r.name);
                        out.put_u64(r.size);
                        out.put_u64(r.offset);
                    }
                }
                finish(out, at);
            }
            Up::Forward(p) => {
                let at = begin(out, FORWARD);
                p.encode(out);
                finish(out, at);
            }
            Up::Touch(sessions) => {
                let at = begin(out, TOUCH);
                out.put_u32(sessions.len() as u32);
                for (id, t) in sessions {
                    out.put_i64(*id);
                    out.put_i32(*t);
                }
                finish(out, at);
            }
        }
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Up, WireError> {
        let mut b = Body::new(kind, body);
        let up = match kind {
            HELLO => {
                let version = b.u32()?;
                let last_zxid = b.i64()?;
                let resume = match b.u8()? {
                    0 => None,
                    1 => Some(Resume {
                        name: b.string()?,
                        size: b.u64()?,
                        offset: b.u64()?,
                    }),
                    x => return Err(b.bad(format!("resume flag {x}"))),
                };
                Up::Hello {
                    version,
                    last_zxid,
                    resume,
                }
            }
            FORWARD => {
                let mut r = Reader::new(b.rest());
                let p = QuorumPacket::decode(&mut r).map_err(|e| b.bad(e.to_string()))?;
                if !r.rest().is_empty() {
                    return Err(b.bad("bytes after the packet".into()));
                }
                return Ok(Up::Forward(p));
            }
            TOUCH => {
                let n = b.u32()? as usize;
                if n > b.remaining() / 12 {
                    return Err(b.bad(format!("{n} sessions in {} bytes", b.remaining())));
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push((b.i64()?, b.i32()?));
                }
                Up::Touch(v)
            }
            _ => return Err(WireError::UnknownKind(kind)),
        };
        b.end()?;
        Ok(up)
    }
}

/// The body of a transaction batch: (zxid, length, bytes) for each.
fn put_entries(out: &mut BytesMut, entries: &[LogEntry]) {
    out.put_u32(entries.len() as u32);
    for e in entries {
        out.put_i64(e.zxid);
        out.put_u32(e.bytes.len() as u32);
        out.put_slice(&e.bytes);
    }
}

fn read_entries(b: &mut Body<'_>, data: Bytes) -> Result<Vec<LogEntry>, WireError> {
    let n = b.u32()? as usize;
    if n > b.remaining() / 12 {
        return Err(b.bad(format!("{n} transactions in {} bytes", b.remaining())));
    }
    let mut v = Vec::with_capacity(n);
    let mut prev = None;
    for _ in 0..n {
        let zxid = b.i64()?;
        let len = b.u32()? as usize;
        if len > b.remaining() {
            return Err(b.bad(format!(
                "transaction {zxid:#x} of {len} bytes in {}",
                b.remaining()
            )));
        }
        if prev.is_some_and(|p| zxid <= p) {
            return Err(b.bad(format!("zxid {zxid:#x} after {:#x}", prev.unwrap_or(0))));
        }
        prev = Some(zxid);
        let start = b.pos;
        b.pos += len;
        v.push(LogEntry {
            zxid,
            bytes: data.slice(start..start + len),
        });
    }
    Ok(v)
}

/// A transaction batch, zstd-compressed when it is large enough and that pays.
fn encode_txns(entries: &[LogEntry], out: &mut BytesMut) -> Sizes {
    let raw_len: usize = 4 + entries.iter().map(|e| 12 + e.bytes.len()).sum::<usize>();
    if raw_len >= COMPRESS_MIN {
        let mut raw = BytesMut::with_capacity(raw_len);
        put_entries(&mut raw, entries);
        if let Ok(z) = zstd::bulk::compress(&raw, ZSTD_LEVEL) {
            if z.len() < raw.len() {
                let at = begin(out, TXNS_ZSTD);
                out.put_u32(raw.len() as u32);
                out.put_slice(&z);
                let wire = finish(out, at);
                return Sizes {
                    wire,
                    raw: raw_len + 5,
                };
            }
        }
    }
    let at = begin(out, TXNS);
    put_entries(out, entries);
    let wire = finish(out, at);
    Sizes { wire, raw: wire }
}

/// One zstd stream per connection for its transaction batches (protocol version 2):
/// each batch is compressed against everything the connection carried before it and
/// flushed, so a small transaction costs little more than what is new in it (its value;
/// headers and paths repeat), where a batch compressed alone pays for all of it. The
/// publisher keeps one per subscriber, the subscriber one per connection; both begin
/// with the first batch of the connection.
pub struct TxnStream {
    enc: zstd::stream::raw::Encoder<'static>,
}

impl TxnStream {
    pub fn new() -> std::io::Result<TxnStream> {
        Ok(TxnStream {
            enc: zstd::stream::raw::Encoder::new(STREAM_LEVEL)?,
        })
    }

    /// `raw` compressed and flushed: the subscriber can decode it whole on its own.
    fn compress(&mut self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let mut input = InBuffer::around(raw);
        let mut chunk = vec![0u8; (raw.len() + 1024).min(1 << 20)];
        while input.pos < raw.len() {
            let mut o = OutBuffer::around(&mut chunk[..]);
            self.enc.run(&mut input, &mut o)?;
            let n = o.pos();
            out.extend_from_slice(&chunk[..n]);
        }
        loop {
            let mut o = OutBuffer::around(&mut chunk[..]);
            let left = self.enc.flush(&mut o)?;
            let n = o.pos();
            out.extend_from_slice(&chunk[..n]);
            if left == 0 {
                return Ok(out);
            }
        }
    }
}

/// The subscriber's side of a [`TxnStream`].
pub struct TxnUnstream {
    dec: zstd::stream::raw::Decoder<'static>,
}

impl TxnUnstream {
    pub fn new() -> std::io::Result<TxnUnstream> {
        Ok(TxnUnstream {
            dec: zstd::stream::raw::Decoder::new()?,
        })
    }

    /// Decodes one flushed batch of `raw_len` bytes.
    fn decompress(&mut self, z: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut out = vec![0u8; raw_len];
        let mut input = InBuffer::around(z);
        let mut filled = 0usize;
        while input.pos < z.len() {
            let before = input.pos;
            let mut o = OutBuffer::around(&mut out[filled..]);
            self.dec
                .run(&mut input, &mut o)
                .map_err(|e| e.to_string())?;
            let n = o.pos();
            if n == 0 && input.pos == before {
                return Err(format!("more than the {raw_len} bytes announced"));
            }
            filled += n;
        }
        // A flushed block may still have bytes in the decoder's window to hand out.
        loop {
            let mut o = OutBuffer::around(&mut out[filled..]);
            self.dec.flush(&mut o).map_err(|e| e.to_string())?;
            let n = o.pos();
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled != raw_len {
            return Err(format!("{filled} bytes decompressed, {raw_len} announced"));
        }
        Ok(out)
    }
}

/// A transaction batch compressed in the connection's stream.
fn encode_txns_stream(
    entries: &[LogEntry],
    z: &mut TxnStream,
    out: &mut BytesMut,
) -> std::io::Result<Sizes> {
    let raw_len: usize = 4 + entries.iter().map(|e| 12 + e.bytes.len()).sum::<usize>();
    let mut raw = BytesMut::with_capacity(raw_len);
    put_entries(&mut raw, entries);
    // zstd fails only for want of memory; the stream is unusable from there on (the
    // subscriber, missing a batch of it, could not decode the next): the caller ends
    // the connection.
    let c = z.compress(&raw)?;
    let at = begin(out, TXNS_ZSTREAM);
    out.put_u32(raw.len() as u32);
    out.put_slice(&c);
    let wire = finish(out, at);
    Ok(Sizes {
        wire,
        raw: raw_len + 5,
    })
}

impl Down {
    /// Appends the frame to `out`; returns its sizes on the wire and before compression.
    pub fn encode(&self, out: &mut BytesMut) -> Sizes {
        let at = match self {
            Down::Txns(entries) => return encode_txns(entries, out),
            Down::SnapBegin {
                name,
                zxid,
                size,
                offset,
            } => {
                let at = begin(out, SNAP_BEGIN);
                put_str(out, name);
                out.put_i64(*zxid);
                out.put_u64(*size);
                out.put_u64(*offset);
                at
            }
            Down::SnapChunk { offset, crc, data } => {
                let at = begin(out, SNAP_CHUNK);
                out.put_u64(*offset);
                out.put_u32(*crc);
                out.put_slice(data);
                at
            }
            Down::SnapEnd => begin(out, SNAP_END),
            Down::UpToDate { zxid } => {
                let at = begin(out, UP_TO_DATE);
                out.put_i64(*zxid);
                at
            }
            Down::Heartbeat {
                leader_zxid,
                leader_time_ms,
                publisher_zxid,
            } => {
                let at = begin(out, HEARTBEAT);
                out.put_i64(*leader_zxid);
                out.put_i64(*leader_time_ms);
                out.put_i64(*publisher_zxid);
                at
            }
            Down::Synced => begin(out, SYNCED),
            Down::Revalidated { session, valid } => {
                let at = begin(out, REVALIDATED);
                out.put_i64(*session);
                out.put_u8(u8::from(*valid));
                at
            }
        };
        let wire = finish(out, at);
        Sizes { wire, raw: wire }
    }

    /// [`Down::encode`], transaction batches in the connection's zstd stream when given
    /// one; an error only if that stream fails (the connection must end).
    pub fn encode_with(
        &self,
        out: &mut BytesMut,
        stream: Option<&mut TxnStream>,
    ) -> std::io::Result<Sizes> {
        match (self, stream) {
            (Down::Txns(entries), Some(z)) => encode_txns_stream(entries, z, out),
            _ => Ok(self.encode(out)),
        }
    }

    /// Decodes a frame's body (the bytes after its kind).
    pub fn decode(kind: u8, body: Bytes) -> Result<Down, WireError> {
        Self::decode_with(kind, body, None)
    }

    /// [`Down::decode`] with the connection's zstd stream, for batches compressed in it.
    pub fn decode_with(
        kind: u8,
        body: Bytes,
        stream: Option<&mut TxnUnstream>,
    ) -> Result<Down, WireError> {
        let mut b = Body::new(kind, &body);
        let down = match kind {
            TXNS_ZSTREAM => {
                let raw_len = b.u32()? as usize;
                if raw_len > MAX_FRAME {
                    return Err(b.bad(format!("{raw_len} bytes once decompressed")));
                }
                let z = stream.ok_or_else(|| {
                    b.bad("a batch of a compression stream this connection did not start".into())
                })?;
                let raw = z
                    .decompress(b.rest(), raw_len)
                    .map_err(|e| b.bad(format!("zstd stream: {e}")))?;
                let raw = Bytes::from(raw);
                let mut inner = Body::new(kind, &raw);
                let v = read_entries(&mut inner, raw.clone())?;
                inner.end()?;
                return Ok(Down::Txns(v));
            }
            TXNS => {
                let v = read_entries(&mut b, body.clone())?;
                b.end()?;
                return Ok(Down::Txns(v));
            }
            TXNS_ZSTD => {
                let raw_len = b.u32()? as usize;
                if raw_len > MAX_FRAME {
                    return Err(b.bad(format!("{raw_len} bytes once decompressed")));
                }
                let raw = zstd::bulk::decompress(b.rest(), raw_len)
                    .map_err(|e| b.bad(format!("zstd: {e}")))?;
                if raw.len() != raw_len {
                    return Err(b.bad(format!(
                        "{} bytes decompressed, {raw_len} announced",
                        raw.len()
                    )));
                }
                let raw = Bytes::from(raw);
                let mut inner = Body::new(kind, &raw);
                let v = read_entries(&mut inner, raw.clone())?;
                inner.end()?;
                return Ok(Down::Txns(v));
            }
            SNAP_BEGIN => Down::SnapBegin {
                name: b.string()?,
                zxid: b.i64()?,
                size: b.u64()?,
                offset: b.u64()?,
            },
            SNAP_CHUNK => {
                let offset = b.u64()?;
                let crc = b.u32()?;
                let data = body.slice(b.pos..);
                return Ok(Down::SnapChunk { offset, crc, data });
            }
            SNAP_END => Down::SnapEnd,
            UP_TO_DATE => Down::UpToDate { zxid: b.i64()? },
            HEARTBEAT => Down::Heartbeat {
                leader_zxid: b.i64()?,
                leader_time_ms: b.i64()?,
                publisher_zxid: b.i64()?,
            },
            SYNCED => Down::Synced,
            REVALIDATED => Down::Revalidated {
                session: b.i64()?,
                valid: match b.u8()? {
                    0 => false,
                    1 => true,
                    x => return Err(b.bad(format!("valid flag {x}"))),
                },
            },
            _ => return Err(WireError::UnknownKind(kind)),
        };
        b.end()?;
        Ok(down)
    }
}

/// Splits one frame off the front of `buf`: `Ok(None)` until it is whole.
pub fn split_frame(buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len));
    }
    if len == 0 {
        return Err(WireError::Malformed {
            kind: "frame",
            why: "length 0: no kind".into(),
        });
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let mut frame = buf.split_to(len).freeze();
    let kind = frame[0];
    frame.advance(1);
    Ok(Some((kind, frame)))
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        HELLO => "Hello",
        FORWARD => "Forward",
        TOUCH => "Touch",
        TXNS | TXNS_ZSTD | TXNS_ZSTREAM => "Txns",
        SNAP_BEGIN => "SnapBegin",
        SNAP_CHUNK => "SnapChunk",
        SNAP_END => "SnapEnd",
        UP_TO_DATE => "UpToDate",
        HEARTBEAT => "Heartbeat",
        SYNCED => "Synced",
        REVALIDATED => "Revalidated",
        _ => "unknown",
    }
}

/// A cursor over a frame body that names the frame in its errors.
struct Body<'a> {
    kind: u8,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Body<'a> {
    fn new(kind: u8, b: &'a [u8]) -> Body<'a> {
        Body { kind, b, pos: 0 }
    }

    fn bad(&self, why: String) -> WireError {
        WireError::Malformed {
            kind: kind_name(self.kind),
            why,
        }
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(self.bad(format!(
                "cut short: {n} bytes needed at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(self.u64()? as i64)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.bad("a string that is not UTF-8".into()))
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.pos..]
    }

    fn end(&self) -> Result<(), WireError> {
        if self.remaining() != 0 {
            return Err(self.bad(format!("{} bytes after the body", self.remaining())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(zxid: i64, n: usize) -> LogEntry {
        LogEntry {
            zxid,
            bytes: Bytes::from((0..n).map(|i| (i % 7) as u8 + b'a').collect::<Vec<u8>>()),
        }
    }

    fn round_down(d: &Down) -> Down {
        let mut b = BytesMut::new();
        d.encode(&mut b);
        let (kind, body) = split_frame(&mut b).expect("frame").expect("whole");
        assert!(b.is_empty());
        Down::decode(kind, body).expect("decodes")
    }

    fn round_up(u: &Up) -> Up {
        let mut b = BytesMut::new();
        u.encode(&mut b);
        let (kind, body) = split_frame(&mut b).expect("frame").expect("whole");
        Up::decode(kind, &body).expect("decodes")
    }

    #[test]
    fn every_frame_reads_back_as_written() {
        let downs = [
            Down::Txns(vec![]),
            Down::Txns(vec![entry(5, 10)]),
            Down::Txns((1..200).map(|z| entry(z, 100)).collect()),
            Down::SnapBegin {
                name: "snapshot.1f".into(),
                zxid: 0x1f,
                size: 1 << 40,
                offset: 77,
            },
            Down::SnapChunk {
                offset: 9,
                crc: 0xdead_beef,
                data: Bytes::from_static(b"chunk"),
            },
            Down::SnapEnd,
            Down::UpToDate {
                zxid: 0x1_0000_0003,
            },
            Down::Heartbeat {
                leader_zxid: 3,
                leader_time_ms: 1_700_000_000_000,
                publisher_zxid: 2,
            },
            Down::Synced,
            Down::Revalidated {
                session: -5,
                valid: true,
            },
        ];
        for d in &downs {
            assert_eq!(&round_down(d), d);
        }
        let ups = [
            Up::Hello {
                version: VERSION,
                last_zxid: 42,
                resume: None,
            },
            Up::Hello {
                version: VERSION,
                last_zxid: 0,
                resume: Some(Resume {
                    name: "snapshot.a.gz".into(),
                    size: 100,
                    offset: 50,
                }),
            },
            Up::Forward(QuorumPacket {
                r#type: 1,
                zxid: -1,
                data: Some(Bytes::from_static(b"\0\0\0\0\0\0\0\x01")),
                authinfo: Some(vec![]),
            }),
            Up::Touch(vec![(1, 2), (3, 4)]),
        ];
        for u in &ups {
            assert_eq!(&round_up(u), u);
        }
    }

    #[test]
    fn large_batches_are_compressed_and_small_ones_are_not() {
        let big = Down::Txns((1..500).map(|z| entry(z, 200)).collect());
        let mut b = BytesMut::new();
        let sizes = big.encode(&mut b);
        assert!(sizes.wire * 4 < sizes.raw, "{sizes:?}");
        assert_eq!(b[4], TXNS_ZSTD);
        let small = Down::Txns(vec![entry(1, 20)]);
        let mut b = BytesMut::new();
        let sizes = small.encode(&mut b);
        assert_eq!(sizes.wire, sizes.raw);
        assert_eq!(b[4], TXNS);
    }

    /// A transaction like a setData of `value` on `path`: header fields that change a
    /// little from one to the next, the path, the value.
    fn set_data_like(zxid: i64, path: &str, value: &[u8]) -> LogEntry {
        let mut b = BytesMut::new();
        b.put_i64(0x1234_5678_9abc); // session
        b.put_i32(zxid as i32); // cxid
        b.put_i64(zxid);
        b.put_i64(1_700_000_000_000 + zxid * 5); // time
        b.put_i32(5); // setData
        put_str(&mut b, path);
        b.put_u32(value.len() as u32);
        b.put_slice(value);
        b.put_i32(zxid as i32); // version
        LogEntry {
            zxid,
            bytes: b.freeze(),
        }
    }

    /// In the connection's stream, one small transaction at a time (a paced write) costs
    /// what is new in it: a value that repeats with small changes (service records,
    /// configuration) comes down to a fraction of its size, where the same batch alone
    /// would not even be compressed; and the stream decodes back to every byte, batch
    /// after batch, big and small.
    #[test]
    fn a_connection_stream_compresses_small_batches_against_what_came_before() {
        let mut z = TxnStream::new().expect("zstd");
        let mut u = TxnUnstream::new().expect("zstd");
        let mut alone = 0usize;
        let mut streamed = 0usize;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for zxid in 1..=400i64 {
            let value = format!(
                r#"{{"host":"10.1.{}.{}","port":20880,"weight":100,"service":"com.example.Orders","ts":{}}}"#,
                zxid % 7,
                zxid % 13,
                1_700_000_000 + zxid
            );
            let d = if zxid % 50 == 0 {
                // Now and then a big batch of noise: the stream must carry it all the same.
                Down::Txns(
                    (0..20)
                        .map(|i| {
                            let noise: Vec<u8> = (0..300)
                                .map(|_| {
                                    rng ^= rng << 13;
                                    rng ^= rng >> 7;
                                    rng ^= rng << 17;
                                    rng as u8
                                })
                                .collect();
                            set_data_like(zxid * 100 + i, "/noise", &noise)
                        })
                        .collect(),
                )
            } else {
                Down::Txns(vec![set_data_like(
                    zxid,
                    &format!("/services/orders/providers/p-{}", zxid % 10),
                    value.as_bytes(),
                )])
            };
            let mut b = BytesMut::new();
            let sizes = d.encode_with(&mut b, Some(&mut z)).expect("zstd");
            assert_eq!(b[4], TXNS_ZSTREAM);
            let mut one = BytesMut::new();
            let single = d.encode(&mut one);
            if zxid > 10 && zxid % 50 != 0 {
                streamed += sizes.wire;
                alone += single.wire;
            }
            let (kind, body) = split_frame(&mut b).expect("frame").expect("whole");
            assert_eq!(
                Down::decode_with(kind, body, Some(&mut u)).expect("decodes"),
                d,
                "batch {zxid}"
            );
        }
        assert!(
            streamed * 3 < alone,
            "small batches: {streamed} bytes in the stream, {alone} one by one"
        );
    }

    /// A stream batch needs the connection's stream: without it, or out of order, or
    /// cut, it is refused with a reason, never decoded into something else.
    #[test]
    fn a_stream_batch_out_of_its_stream_is_refused() {
        let mut z = TxnStream::new().expect("zstd");
        let frames: Vec<(u8, Bytes)> = (1..=3)
            .map(|i| {
                let d = Down::Txns(vec![set_data_like(i, "/a/b", b"the same value again")]);
                let mut b = BytesMut::new();
                d.encode_with(&mut b, Some(&mut z)).expect("zstd");
                split_frame(&mut b).expect("frame").expect("whole")
            })
            .collect();
        let (k, body) = frames[1].clone();
        assert!(matches!(
            Down::decode(k, body),
            Err(WireError::Malformed { kind: "Txns", .. })
        ));
        // The third batch refers to the first two: a fresh decoder cannot read it.
        let mut u = TxnUnstream::new().expect("zstd");
        let (k, body) = frames[2].clone();
        assert!(Down::decode_with(k, body, Some(&mut u)).is_err());
        // A batch cut short.
        let mut u = TxnUnstream::new().expect("zstd");
        let (k, body) = frames[0].clone();
        let cut = body.slice(..body.len() - 3);
        assert!(Down::decode_with(k, cut, Some(&mut u)).is_err());
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        // Too long.
        let mut b = BytesMut::from(&((MAX_FRAME as u32 + 1).to_be_bytes())[..]);
        assert_eq!(split_frame(&mut b), Err(WireError::TooLong(MAX_FRAME + 1)));
        // Incomplete: waits.
        let mut b = BytesMut::from(&[0u8, 0, 0, 9, TXNS][..]);
        assert_eq!(split_frame(&mut b), Ok(None));
        // Unknown kind.
        assert_eq!(
            Down::decode(99, Bytes::new()),
            Err(WireError::UnknownKind(99))
        );
        assert_eq!(Up::decode(TXNS, &[]), Err(WireError::UnknownKind(TXNS)));
        // A batch whose count lies.
        let body = Bytes::from_static(&[0, 0, 0, 200, 0, 0]);
        assert!(matches!(
            Down::decode(TXNS, body),
            Err(WireError::Malformed { .. })
        ));
        // zxids going back.
        let mut raw = BytesMut::new();
        put_entries(&mut raw, &[entry(5, 1), entry(4, 1)]);
        assert!(matches!(
            Down::decode(TXNS, raw.freeze()),
            Err(WireError::Malformed { .. })
        ));
        // A decompression bomb is bounded by the announced length.
        let mut b = BytesMut::new();
        b.put_u32(10);
        b.put_slice(&zstd::bulk::compress(&[0u8; 10_000], 1).expect("zstd"));
        assert!(Down::decode(TXNS_ZSTD, b.freeze()).is_err());
        // Trailing bytes.
        assert!(Down::decode(SYNCED, Bytes::from_static(b"x")).is_err());
    }

    proptest! {
        #[test]
        fn no_input_makes_the_decoders_panic(kind in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Down::decode(kind, Bytes::from(body.clone()));
            let _ = Up::decode(kind, &body);
            let mut b = BytesMut::from(&body[..]);
            while let Ok(Some(_)) = split_frame(&mut b) {}
        }
    }
}
