//! A minimal synchronous ZooKeeper client built from geokeeper's own records, for tests
//! that compare two servers byte for byte: no client library sits between the test and
//! the wire, so nothing is retried, reordered, validated or hidden.
//!
//! One [`RawZk`] is one TCP connection bound to one session. [`RawZk::call`] sends a
//! request with an xid and reads frames until the reply carrying that xid, collecting the
//! notifications (xid −1) that arrived before it; [`decode_body`] turns a reply body into
//! a typed [`Body`] according to the request's opcode, keeping whatever did not decode.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{OpCode, Reader, Record};
use geokeeper_core::request::{frame, Request};

/// How long a read waits for the server before the reply counts as missing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Special xids (`ClientCnxn`).
pub const NOTIFICATION_XID: i32 = -1;
pub const PING_XID: i32 = -2;
pub const AUTH_XID: i32 = -4;
pub const SET_WATCHES_XID: i32 = -8;

/// A watch notification as it arrived: its header and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub header: ReplyHeader,
    pub event: WatcherEvent,
}

/// One frame read from the server after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: ReplyHeader,
    pub body: Vec<u8>,
}

/// What happened to a request: the notifications read before its reply, then the reply,
/// or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub notifications: Vec<Notification>,
    /// Frames that were neither notifications nor the awaited reply (other xids).
    pub strays: Vec<Frame>,
    pub reply: Result<Frame, Lost>,
}

/// Why no reply came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// The server closed the connection.
    Eof,
    /// Nothing arrived within [`REPLY_TIMEOUT`].
    Timeout,
    /// A frame that could not be parsed, or another I/O error.
    Broken(String),
}

/// A connection to a ZooKeeper server with an established (or refused) session.
pub struct RawZk {
    stream: TcpStream,
    next_xid: i32,
    /// The highest zxid seen in a reply header (what a client sends as `lastZxidSeen`).
    pub last_zxid: i64,
    pub response: ConnectResponse,
}

fn read_exact_or_eof(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), Lost> {
    let mut done = 0;
    while done < buf.len() {
        match stream.read(&mut buf[done..]) {
            Ok(0) => return Err(Lost::Eof),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Err(Lost::Timeout)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Lost::Eof),
            Err(e) => return Err(Lost::Broken(e.to_string())),
        }
    }
    Ok(())
}

/// Reads one length-prefixed frame.
fn read_frame_bytes(stream: &mut TcpStream) -> Result<Vec<u8>, Lost> {
    let mut len = [0u8; 4];
    read_exact_or_eof(stream, &mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&len) {
        return Err(Lost::Broken(format!("frame length {len}")));
    }
    let mut body = vec![0u8; len as usize];
    read_exact_or_eof(stream, &mut body)?;
    Ok(body)
}

impl RawZk {
    /// Opens a connection and sends a ConnectRequest: a new session when `session_id` is
    /// 0, else a reconnect with `passwd`. Returns the client whatever the answer (a refused
    /// session has `response.time_out == 0`; the server then closes the connection).
    pub fn connect(
        addr: SocketAddr,
        session_id: i64,
        passwd: &[u8],
        last_zxid_seen: i64,
        time_out: i32,
    ) -> Result<RawZk, Lost> {
        Self::connect_with(addr, session_id, passwd, last_zxid_seen, time_out, false)
    }

    /// [`RawZk::connect`], saying whether a read-only session will do (`canBeReadOnly`).
    pub fn connect_with(
        addr: SocketAddr,
        session_id: i64,
        passwd: &[u8],
        last_zxid_seen: i64,
        time_out: i32,
        read_only: bool,
    ) -> Result<RawZk, Lost> {
        let mut stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
            .map_err(|e| Lost::Broken(format!("connect {addr}: {e}")))?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).ok();
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).ok();
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            time_out,
            session_id,
            passwd: passwd.to_vec().into(),
            read_only,
        };
        let body = req.to_bytes();
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        stream
            .write_all(&f)
            .map_err(|e| Lost::Broken(format!("send ConnectRequest: {e}")))?;
        let bytes = read_frame_bytes(&mut stream)?;
        let mut r = Reader::new(&bytes);
        let response = ConnectResponse::decode(&mut r)
            .map_err(|e| Lost::Broken(format!("ConnectResponse: {e}")))?;
        if r.remaining() != 0 {
            return Err(Lost::Broken(format!(
                "ConnectResponse has {} trailing bytes",
                r.remaining()
            )));
        }
        Ok(RawZk {
            stream,
            next_xid: 1,
            last_zxid: last_zxid_seen,
            response,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.response.session_id
    }

    /// The next xid a request would use.
    pub fn take_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    /// Sends a request frame with opcode `op` and `req`'s body, with the given xid.
    pub fn send(&mut self, xid: i32, op: OpCode, req: &Request) -> Result<(), Lost> {
        let f = frame(xid, op, req);
        self.stream
            .write_all(&f)
            .map_err(|e| Lost::Broken(format!("send: {e}")))
    }

    /// Sends a request frame with an arbitrary opcode number and body.
    pub fn send_raw(&mut self, xid: i32, op: i32, body: &[u8]) -> Result<(), Lost> {
        let mut f = ((8 + body.len()) as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&xid.to_be_bytes());
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(body);
        self.stream
            .write_all(&f)
            .map_err(|e| Lost::Broken(format!("send: {e}")))
    }

    /// Reads one frame after the handshake.
    pub fn read_frame(&mut self) -> Result<Frame, Lost> {
        let bytes = read_frame_bytes(&mut self.stream)?;
        let mut r = Reader::new(&bytes);
        let header =
            ReplyHeader::decode(&mut r).map_err(|e| Lost::Broken(format!("ReplyHeader: {e}")))?;
        Ok(Frame {
            header,
            body: r.rest().to_vec(),
        })
    }

    /// Reads frames until the one with `xid`, collecting notifications before it.
    pub fn await_reply(&mut self, xid: i32) -> Exchange {
        let mut notifications = Vec::new();
        let mut strays = Vec::new();
        loop {
            let f = match self.read_frame() {
                Ok(f) => f,
                Err(e) => {
                    return Exchange {
                        notifications,
                        strays,
                        reply: Err(e),
                    }
                }
            };
            if f.header.xid == xid {
                if f.header.zxid > self.last_zxid {
                    self.last_zxid = f.header.zxid;
                }
                return Exchange {
                    notifications,
                    strays,
                    reply: Ok(f),
                };
            }
            if f.header.xid == NOTIFICATION_XID {
                let mut r = Reader::new(&f.body);
                match WatcherEvent::decode(&mut r) {
                    Ok(event) if r.remaining() == 0 => notifications.push(Notification {
                        header: f.header,
                        event,
                    }),
                    _ => strays.push(f),
                }
            } else {
                strays.push(f);
            }
        }
    }

    /// Sends `req` with a fresh xid and waits for its reply.
    pub fn call(&mut self, op: OpCode, req: &Request) -> Exchange {
        let xid = self.take_xid();
        self.call_with_xid(xid, op, req)
    }

    /// Sends `req` with `xid` (ping −2, auth −4, setWatches −8, or a numbered one) and
    /// waits for the reply with that xid.
    pub fn call_with_xid(&mut self, xid: i32, op: OpCode, req: &Request) -> Exchange {
        if let Err(e) = self.send(xid, op, req) {
            return Exchange {
                notifications: Vec::new(),
                strays: Vec::new(),
                reply: Err(e),
            };
        }
        self.await_reply(xid)
    }

    /// How long a reply may take on this connection (default [`REPLY_TIMEOUT`]).
    pub fn set_reply_timeout(&mut self, within: Duration) {
        self.stream.set_read_timeout(Some(within)).ok();
    }

    /// Whether the server closes the connection within `within` without sending more.
    /// `Err` carries a frame that arrived instead.
    pub fn closed_within(&mut self, within: Duration) -> Result<bool, Frame> {
        self.stream.set_read_timeout(Some(within)).ok();
        let r = self.read_frame();
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT)).ok();
        match r {
            Ok(f) => Err(f),
            Err(Lost::Eof) => Ok(true),
            Err(Lost::Timeout) => Ok(false),
            Err(Lost::Broken(_)) => Ok(true),
        }
    }

    /// The connection itself, after the handshake, for tests that frame their own bytes.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Drops the TCP connection without closing the session.
    pub fn disconnect(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// ZooKeeper's session password (`ZooKeeperServer.generatePasswd`): 16 bytes of
/// `java.util.Random(sessionId ^ 0xB3415C00).nextBytes`, written here from the JDK's
/// documented LCG so that the test does not trust the server's own implementation.
pub fn zookeeper_password(session_id: i64) -> [u8; 16] {
    const MASK: u64 = (1 << 48) - 1;
    const MULT: u64 = 0x5DEE_CE66D;
    let mut seed = ((session_id ^ 0xB341_5C00) as u64 ^ MULT) & MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        seed = seed.wrapping_mul(MULT).wrapping_add(0xB) & MASK;
        let r = (seed >> 16) as u32;
        chunk.copy_from_slice(&r.to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Reply bodies
// ---------------------------------------------------------------------------------------

/// One result inside a multi or multiRead reply, with its MultiHeader's `type` and `err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Create(String),
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    GetChildren(Vec<String>),
    GetData(GetDataResponse),
    Error(i32),
}

/// A decoded reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body at all.
    None,
    Create(CreateResponse),
    Create2(Create2Response),
    /// exists, setData, setACL.
    Stat(Stat),
    GetData(GetDataResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    GetAcl(GetAclResponse),
    Sync(SyncResponse),
    AllChildrenNumber(i32),
    Ephemerals(Vec<String>),
    /// addWatch answers with an ErrorResponse.
    ErrorResponse(i32),
    WhoAmI(Vec<ClientInfo>),
    /// Multi results, and the terminator's (type, err).
    Multi {
        results: Vec<(i32, i32, OpResult)>,
        done: (i32, i32),
    },
    /// A body this decoder does not understand, or one with trailing bytes.
    Raw {
        why: String,
        bytes: Vec<u8>,
    },
}

fn rec<T: Record>(r: &mut Reader<'_>) -> Result<T, String> {
    T::decode(r).map_err(|e| e.to_string())
}

/// Decodes a multi/multiRead response (`MultiResponse`).
fn decode_multi(r: &mut Reader<'_>) -> Result<Body, String> {
    let mut results = Vec::new();
    loop {
        let h: MultiHeader = rec(r)?;
        if h.done {
            return Ok(Body::Multi {
                results,
                done: (h.r#type, h.err),
            });
        }
        let res = match h.r#type {
            1 => OpResult::Create(rec::<CreateResponse>(r)?.path),
            15 => {
                let c: Create2Response = rec(r)?;
                OpResult::Create2(c.path, c.stat)
            }
            2 => OpResult::Delete,
            5 => OpResult::SetData(rec::<SetDataResponse>(r)?.stat),
            13 => OpResult::Check,
            8 => OpResult::GetChildren(rec::<GetChildrenResponse>(r)?.children),
            4 => OpResult::GetData(rec(r)?),
            -1 => OpResult::Error(rec::<ErrorResponse>(r)?.err),
            t => return Err(format!("unknown multi result type {t}")),
        };
        results.push((h.r#type, h.err, res));
    }
}

/// Decodes a reply body for a request with opcode `op`. An empty body is [`Body::None`];
/// anything that does not decode exactly (including trailing bytes) is [`Body::Raw`].
pub fn decode_body(op: i32, body: &[u8]) -> Body {
    if body.is_empty() {
        return Body::None;
    }
    let mut r = Reader::new(body);
    let decoded: Result<Body, String> = (|| {
        let r = &mut r;
        Ok(match OpCode::from_i32(op) {
            Some(OpCode::Create) => Body::Create(rec(r)?),
            Some(OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
                Body::Create2(rec(r)?)
            }
            Some(OpCode::Exists) => Body::Stat(rec::<ExistsResponse>(r)?.stat),
            Some(OpCode::SetData) => Body::Stat(rec::<SetDataResponse>(r)?.stat),
            Some(OpCode::SetAcl) => Body::Stat(rec::<SetAclResponse>(r)?.stat),
            Some(OpCode::GetData) => Body::GetData(rec(r)?),
            Some(OpCode::GetChildren) => Body::GetChildren(rec(r)?),
            Some(OpCode::GetChildren2) => Body::GetChildren2(rec(r)?),
            Some(OpCode::GetAcl) => Body::GetAcl(rec(r)?),
            Some(OpCode::Sync) => Body::Sync(rec(r)?),
            Some(OpCode::GetAllChildrenNumber) => {
                Body::AllChildrenNumber(rec::<GetAllChildrenNumberResponse>(r)?.total_number)
            }
            Some(OpCode::GetEphemerals) => {
                Body::Ephemerals(rec::<GetEphemeralsResponse>(r)?.ephemerals)
            }
            Some(OpCode::AddWatch) => Body::ErrorResponse(rec::<ErrorResponse>(r)?.err),
            Some(OpCode::WhoAmI) => Body::WhoAmI(rec::<WhoAmIResponse>(r)?.client_info),
            Some(OpCode::Multi | OpCode::MultiRead) => decode_multi(r)?,
            _ => return Err("no decoder for this opcode".to_string()),
        })
    })();
    match decoded {
        Ok(b) if r.remaining() == 0 => b,
        Ok(b) => Body::Raw {
            why: format!("{b:?} followed by {} trailing bytes", r.remaining()),
            bytes: body.to_vec(),
        },
        Err(why) => Body::Raw {
            why,
            bytes: body.to_vec(),
        },
    }
}

/// The name of a watch event type (`Watcher.Event.EventType`).
pub fn event_type_name(t: i32) -> String {
    match t {
        -1 => "None".into(),
        1 => "NodeCreated".into(),
        2 => "NodeDeleted".into(),
        3 => "NodeDataChanged".into(),
        4 => "NodeChildrenChanged".into(),
        5 => "DataWatchRemoved".into(),
        6 => "ChildWatchRemoved".into(),
        7 => "PersistentWatchRemoved".into(),
        t => format!("EventType({t})"),
    }
}
