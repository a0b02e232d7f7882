//! A lean pipelined ZooKeeper client for the load generator, built from geokeeper's own
//! records: one TCP connection is one session, requests are appended to a write buffer
//! and sent many per `write`, replies are cut from a read buffer many per `read`. Nothing
//! is retried, reordered or hidden, so P requests in flight per session are really P on
//! the wire, and the generator costs little next to the server it measures.
//!
//! ZooKeeper answers a session's requests in the order it sent them (FIFO per session),
//! so callers match replies to requests with a queue; notifications (xid −1) and ping
//! replies (xid −2) come interleaved and are told apart by their xid.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use geokeeper_core::proto::records::{
    ConnectRequest, ConnectResponse, GetDataRequest, ReplyHeader, RequestHeader, WatcherEvent,
};
use geokeeper_core::proto::{xid, OpCode, Reader, Record};
use geokeeper_core::request::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The largest reply frame accepted (ZooKeeper's default `jute.maxbuffer` is 1 MiB; a
/// client of ours never asks for more than that, so anything larger is a broken stream).
const MAX_FRAME: usize = 16 << 20;

/// One frame after the handshake: its reply header and the body that follows it.
#[derive(Debug)]
pub struct Frame {
    pub header: ReplyHeader,
    pub body: Bytes,
}

impl Frame {
    /// The watch event of a notification frame (xid −1).
    pub fn event(&self) -> Option<WatcherEvent> {
        (self.header.xid == xid::NOTIFICATION)
            .then(|| WatcherEvent::from_bytes(&self.body).ok())
            .flatten()
    }
}

fn broken(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A connected session.
pub struct Session {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    next_xid: i32,
    pub session_id: i64,
    /// The negotiated session timeout.
    pub timeout: Duration,
    /// When the last request (or ping) went out; the server expires a session that sends
    /// nothing for its timeout.
    pub last_sent: Instant,
}

impl Session {
    /// Connects and opens a new session asking for `timeout_ms`, within `within`.
    pub async fn connect(
        addr: SocketAddr,
        timeout_ms: i32,
        within: Duration,
    ) -> io::Result<Session> {
        Self::connect_from(addr, None, timeout_ms, within).await
    }

    /// [`Session::connect`] from a given local address: spreading many sessions over
    /// 127.0.0.x sources keeps each source under a server's per-address connection limit
    /// (`maxClientCnxns`, 60 by default in both servers).
    pub async fn connect_from(
        addr: SocketAddr,
        local: Option<IpAddr>,
        timeout_ms: i32,
        within: Duration,
    ) -> io::Result<Session> {
        match tokio::time::timeout(within, Self::connect_inner(addr, local, timeout_ms)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no session from {addr} within {within:?}"),
            )),
        }
    }

    async fn connect_inner(
        addr: SocketAddr,
        local: Option<IpAddr>,
        timeout_ms: i32,
    ) -> io::Result<Session> {
        let stream = match local {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let sock = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                sock.bind(SocketAddr::new(ip, 0))?;
                sock.connect(addr).await?
            }
        };
        stream.set_nodelay(true)?;
        let mut s = Session {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(16 * 1024),
            next_xid: 1,
            session_id: 0,
            timeout: Duration::ZERO,
            last_sent: Instant::now(),
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: timeout_ms,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: false,
        };
        s.wbuf.extend_from_slice(&[0; 4]);
        req.encode(&mut s.wbuf);
        let len = (s.wbuf.len() - 4) as i32;
        s.wbuf[0..4].copy_from_slice(&len.to_be_bytes());
        s.flush().await?;
        let body = loop {
            if let Some(b) = s.cut_frame()? {
                break b;
            }
            s.fill().await?;
        };
        let resp = ConnectResponse::from_bytes(&body)
            .map_err(|e| broken(format!("ConnectResponse from {addr}: {e}")))?;
        if resp.time_out <= 0 {
            return Err(broken(format!("{addr} refused the session")));
        }
        s.session_id = resp.session_id;
        s.timeout = Duration::from_millis(resp.time_out as u64);
        Ok(s)
    }

    /// How often an idle session pings: a third of its timeout, as ZooKeeper's client.
    pub fn ping_interval(&self) -> Duration {
        (self.timeout / 3).max(Duration::from_millis(100))
    }

    /// Appends a request to the write buffer and returns its xid; [`Session::flush`] sends it.
    pub fn queue(&mut self, op: OpCode, req: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        self.queue_with_xid(xid, op, req);
        xid
    }

    fn queue_with_xid(&mut self, xid: i32, op: OpCode, req: &Request) {
        let at = self.wbuf.len();
        self.wbuf.extend_from_slice(&[0; 4]);
        RequestHeader {
            xid,
            r#type: op as i32,
        }
        .encode(&mut self.wbuf);
        req.encode_body(&mut self.wbuf);
        let len = (self.wbuf.len() - at - 4) as i32;
        self.wbuf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends a ping (xid −2).
    pub fn queue_ping(&mut self) {
        self.queue_with_xid(xid::PING, OpCode::Ping, &Request::Ping);
    }

    /// Sends everything queued, in one write when the socket takes it.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            self.last_sent = Instant::now();
        }
        Ok(())
    }

    /// Reads whatever the socket has (at least one byte); EOF is an error.
    pub async fn fill(&mut self) -> io::Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(64 * 1024);
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }

    /// Cuts one whole length-prefixed frame from the read buffer, if there is one.
    fn cut_frame(&mut self) -> io::Result<Option<Bytes>> {
        if self.rbuf.len() < 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]);
        if len < 0 || len as usize > MAX_FRAME {
            return Err(broken(format!("frame length {len}")));
        }
        let len = len as usize;
        if self.rbuf.len() < 4 + len {
            return Ok(None);
        }
        self.rbuf.advance(4);
        Ok(Some(self.rbuf.split_to(len).freeze()))
    }

    /// The next whole frame already read, without waiting.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let Some(mut body) = self.cut_frame()? else {
            return Ok(None);
        };
        let mut r = Reader::new(&body);
        let header =
            ReplyHeader::decode(&mut r).map_err(|e| broken(format!("ReplyHeader: {e}")))?;
        let used = r.position();
        body.advance(used);
        Ok(Some(Frame { header, body }))
    }

    /// Waits for the next frame, pinging whenever the session has been quiet for a third
    /// of its timeout; gives up after `within`.
    pub async fn read_frame(&mut self, within: Duration) -> io::Result<Frame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(f) = self.next_frame()? {
                return Ok(f);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time"));
            }
            let ping_at = self.last_sent + self.ping_interval();
            if now >= ping_at {
                self.queue_ping();
                self.flush().await?;
                continue;
            }
            let wake = deadline.min(ping_at);
            match tokio::time::timeout_at(wake.into(), self.fill()).await {
                Ok(r) => r?,
                Err(_) => continue,
            }
        }
    }

    /// Sends one request and waits for its reply, passing over pings and handing each
    /// notification read on the way to `on_event`.
    pub async fn call_with(
        &mut self,
        op: OpCode,
        req: &Request,
        within: Duration,
        mut on_event: impl FnMut(&Frame),
    ) -> io::Result<Frame> {
        let xid = self.queue(op, req);
        self.flush().await?;
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.read_frame(left).await?;
            match f.header.xid {
                x if x == xid => return Ok(f),
                xid::NOTIFICATION => on_event(&f),
                _ => {}
            }
        }
    }

    /// [`Session::call_with`] that drops notifications.
    pub async fn call(&mut self, op: OpCode, req: &Request, within: Duration) -> io::Result<Frame> {
        self.call_with(op, req, within, |_| {}).await
    }

    /// `getData` without a watch, for probes.
    pub async fn get(&mut self, path: &str, within: Duration) -> io::Result<Frame> {
        let req = Request::GetData(GetDataRequest {
            path: path.to_owned(),
            watch: false,
        });
        self.call(OpCode::GetData, &req, within).await
    }

    /// Closes the session (its ephemerals go with it) and the connection; bounded by
    /// `within`, errors ignored: the server expires what it did not hear.
    pub async fn close(mut self, within: Duration) {
        let _ = self
            .call(OpCode::CloseSession, &Request::CloseSession, within)
            .await;
        let _ = self.stream.shutdown().await;
    }
}
