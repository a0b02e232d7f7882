//! One client connection: its first four bytes tell a four-letter word from a session
//! handshake; a session is placed on an upstream and its frames are relayed both ways
//! unchanged, the proxy reading only what it must (frame lengths, reply headers).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use geokeeper_core::four_letter::Word;
use geokeeper_core::proto::frame::frame_len;
use geokeeper_core::proto::records::{ConnectRequest, ConnectResponse};
use geokeeper_core::proto::{Reader, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::book::{reply_frame, Book, Relay, PING_XID};
use crate::home::Homeward;
use crate::probe::{self, Srvr};
use crate::state::{ConnStats, Shared};
use crate::words;

/// The largest frame an upstream may send (a reply or an event); past it the upstream is
/// answering garbage.
const MAX_UPSTREAM_FRAME: usize = 64 << 20;

/// How long a new connection may take to send its first frame, and an upstream its
/// handshake answer.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Upstreams a session's handshake tries before the client is let go.
const ATTEMPTS: usize = 3;

pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, id: u64) {
    if !shared.admit(peer.ip()) {
        // As ZooKeeper: the connection is closed, the reason logged.
        warn!(
            "Too many connections from /{} - max is {}",
            peer.ip(),
            shared.cfg.max_client_cnxns
        );
        return;
    }
    let conn = Arc::new(ConnStats::new(peer));
    shared.register(id, conn.clone());
    if let Err(e) = session(&shared, stream, peer, &conn).await {
        debug!(client = %peer, "connection ended: {e}");
    }
    shared.unregister(id);
    shared.leave(peer.ip());
}

async fn session(
    shared: &Arc<Shared>,
    mut client: TcpStream,
    peer: SocketAddr,
    conn: &ConnStats,
) -> std::io::Result<()> {
    let max = shared.cfg.max_buffer as usize;
    let mut cbuf = BytesMut::with_capacity(4096);
    // The first four bytes: a four-letter word, or the length of the handshake.
    while cbuf.len() < 4 {
        let n = tokio::time::timeout(HANDSHAKE, client.read_buf(&mut cbuf))
            .await
            .map_err(|_| other("no handshake"))??;
        if n == 0 {
            return Ok(());
        }
    }
    if let Some(word) = Word::from_bytes([cbuf[0], cbuf[1], cbuf[2], cbuf[3]]) {
        let answer = words::answer(shared, word);
        client.write_all(answer.as_bytes()).await?;
        return client.shutdown().await;
    }
    let Some(connect) = read_frame(&mut client, &mut cbuf, max, HANDSHAKE).await? else {
        return Ok(());
    };
    let (request, had_read_only_byte) =
        ConnectRequest::decode_with_read_only_flag(&mut Reader::new(&connect[4..]))
            .map_err(|e| other(&format!("a handshake that is no ConnectRequest: {e}")))?;

    // Place it: an upstream that serves, is within the lag bound, and has the client's
    // last seen zxid (ZooKeeper refuses the others); the next one if it refuses anyway.
    let Some((index, upstream, answer, response)) =
        place(shared, &connect, request.last_zxid_seen, ATTEMPTS).await
    else {
        return Err(other("no upstream took the session"));
    };
    conn.on(response.session_id, index);
    debug!(client = %peer, upstream = index, session = format_args!("{:#x}", response.session_id), "session placed");
    client.write_all(&answer).await?;
    // The handshake frames share the read buffers they were split from: let them go.
    drop((answer, connect));
    if response.time_out <= 0 {
        // Refused (expired, or a read-only server for a client that wants read-write):
        // the upstream's answer is the client's, and the upstream closes.
        shared.detach(index);
        return Ok(());
    }
    let s = Resume {
        request,
        had_read_only_byte,
        session_id: response.session_id,
        passwd: response.passwd.clone(),
        timeout: Duration::from_millis(response.time_out as u64),
    };
    relay(shared, client, cbuf, upstream, index, s, conn).await
}

/// What re-attaching a session to another upstream takes.
#[derive(Clone)]
struct Resume {
    request: ConnectRequest,
    had_read_only_byte: bool,
    session_id: i64,
    passwd: Bytes,
    /// The negotiated session timeout: past it without an upstream the session is gone.
    timeout: Duration,
}

impl Resume {
    /// The handshake that resumes the session, having seen `last_zxid`.
    fn frame(&self, last_zxid: i64) -> Bytes {
        let req = ConnectRequest {
            last_zxid_seen: last_zxid,
            session_id: self.session_id,
            passwd: self.passwd.clone(),
            ..self.request.clone()
        };
        let mut body = BytesMut::new();
        req.encode(&mut body);
        if !self.had_read_only_byte {
            body.truncate(body.len() - 1);
        }
        let mut f = BytesMut::with_capacity(body.len() + 4);
        f.put_i32(body.len() as i32);
        f.put_slice(&body);
        f.freeze()
    }
}

/// Tries up to `attempts` eligible upstreams with the handshake `connect`; an upstream
/// whose answer is no ConnectResponse is suspect, and the next one is tried.
async fn place(
    shared: &Arc<Shared>,
    connect: &Bytes,
    min_zxid: i64,
    attempts: usize,
) -> Option<(usize, TcpStream, Bytes, ConnectResponse)> {
    let mut tried = Vec::new();
    while tried.len() < attempts {
        let (index, address) = shared.attach(min_zxid, &tried)?;
        tried.push(index);
        let answered = handshake(&address, connect).await.and_then(|(up, answer)| {
            let response =
                ConnectResponse::decode(&mut Reader::new(&answer[4..])).map_err(|e| {
                    other(&format!(
                        "a handshake answer that is no ConnectResponse: {e}"
                    ))
                })?;
            Ok((up, answer, response))
        });
        match answered {
            Ok((up, answer, response)) => return Some((index, up, answer, response)),
            // It has not seen the client's last zxid yet: not its fault.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
                debug!(
                    upstream = index,
                    "closed the handshake of a client ahead of it"
                );
                shared.detach(index);
            }
            Err(e) => {
                shared.detach(index);
                shared.suspect(index, &e.to_string());
            }
        }
    }
    None
}

/// Re-attaches the session to another upstream, within its timeout: paced by the proxy's
/// re-attachment rate (unless it took its turn already), then any eligible upstream that
/// has `last_zxid`, each tried once per probe interval. `Ok(None)`: the session expired
/// (the upstream said so).
async fn reattach(
    shared: Arc<Shared>,
    s: Resume,
    last_zxid: i64,
    lost_at: Instant,
    pace: bool,
) -> std::io::Result<Option<(usize, TcpStream)>> {
    if pace {
        tokio::time::sleep(shared.reattach_slot(s.session_id)).await;
    }
    let connect = s.frame(last_zxid);
    let every = Duration::from_millis(shared.cfg.probe_ms);
    loop {
        if let Some((index, up, _, r)) = place(&shared, &connect, last_zxid, ATTEMPTS).await {
            if r.time_out <= 0 || r.session_id != s.session_id {
                shared.detach(index);
                return Ok(None);
            }
            return Ok(Some((index, up)));
        }
        if lost_at.elapsed() + every >= s.timeout {
            return Err(other("no upstream within the session timeout"));
        }
        tokio::time::sleep(every).await;
    }
}

/// Sends the client's handshake frame to `address` and reads the answer frame.
async fn handshake(address: &str, connect: &Bytes) -> std::io::Result<(TcpStream, Bytes)> {
    let mut up = tokio::time::timeout(HANDSHAKE, TcpStream::connect(address))
        .await
        .map_err(|_| other("connect timed out"))??;
    let _ = up.set_nodelay(true);
    up.write_all(connect).await?;
    let mut buf = BytesMut::new();
    match read_frame(&mut up, &mut buf, MAX_UPSTREAM_FRAME, HANDSHAKE).await? {
        Some(answer) => Ok((up, answer)),
        // ZooKeeper closes instead of answering a client that has seen more than it has.
        None => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "closed the handshake",
        )),
    }
}

type Reattaching =
    std::pin::Pin<Box<dyn Future<Output = std::io::Result<Option<(usize, TcpStream)>>> + Send>>;

/// Relays frames both ways until the client leaves; when the upstream is lost, moves the
/// session to another one without closing the client's connection.
async fn relay(
    shared: &Arc<Shared>,
    client: TcpStream,
    mut cbuf: BytesMut,
    upstream: TcpStream,
    index: usize,
    s: Resume,
    conn: &ConnStats,
) -> std::io::Result<()> {
    let max = shared.cfg.max_buffer as usize;
    let limit = shared.cfg.outstanding_limit as usize;
    let (mut cr, cw) = client.into_split();
    let mut evict = shared.evictions(index);
    let mut reattaching: Option<Reattaching> = None;
    let mut pause = tokio::time::interval(Duration::from_millis(5));
    let mut home = Homeward::new(shared);
    if let Some(h) = home.as_mut() {
        h.review(shared, Some(index));
    }
    let mut session = Session {
        shared,
        conn,
        book: Book::new(s.request.last_zxid_seen),
        s,
        cw,
        up: Some(Upstream::new(upstream, index)),
        counted: 0,
        untrusted: 0,
        moving_home: false,
    };
    let r = loop {
        let on = session.up.as_ref().map(|u| u.index);
        // Past globalOutstandingLimit the proxy stops reading requests (the clients' TCP
        // windows fill) until answers bring it back under.
        let room = shared.outstanding.load(Ordering::Relaxed) < limit.max(1);
        let lost: Option<Lost> = tokio::select! {
            f = next_frame(&mut cr, &mut cbuf, max), if room => match f {
                Ok(Some(first)) => match session.requests(first, &mut cbuf).await {
                    Ok(lost) => lost,
                    Err(e) => break Err(e),
                },
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
            f = async {
                match session.up.as_mut() {
                    Some(u) => next_frame(&mut u.r, &mut u.buf, MAX_UPSTREAM_FRAME).await,
                    None => std::future::pending().await,
                }
            } => match f {
                Ok(Some(first)) => match session.replies(first).await {
                    Ok(lost) => lost,
                    Err(e) => break Err(e),
                },
                Ok(None) => Some(Lost::Closed("the upstream closed the connection".into())),
                Err(e) if e.kind() == std::io::ErrorKind::Other => Some(Lost::Untrusted(e.to_string())),
                Err(e) => Some(Lost::Closed(e.to_string())),
            },
            _ = async {
                let changed = match evict.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => false,
                };
                if !changed {
                    std::future::pending::<()>().await;
                }
            } => Some(Lost::Evicted),
            r = async {
                match reattaching.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                reattaching = None;
                match r {
                    Ok(Some((index, stream))) => {
                        evict = shared.evictions(index);
                        if let Some(h) = home.as_mut() {
                            h.review(shared, Some(index));
                        }
                        match session.attached(index, stream).await {
                            Ok(lost) => lost,
                            Err(e) => break Err(e),
                        }
                    }
                    Ok(None) => {
                        shared.reattach_failed.fetch_add(1, Ordering::Relaxed);
                        break Err(other("the session expired while it had no upstream"));
                    }
                    Err(e) => {
                        shared.reattach_failed.fetch_add(1, Ordering::Relaxed);
                        break Err(e);
                    }
                }
            },
            _ = async {
                match home.as_mut() {
                    Some(h) => h.next(shared, on, session.s.session_id).await,
                    None => std::future::pending().await,
                }
            } => None,
            _ = pause.tick(), if !room => None,
        };
        session.recount();
        // Back home, at a moment the client cannot tell.
        let lost = lost.or_else(|| {
            (session.up.is_some()
                && home.as_ref().is_some_and(Homeward::due)
                && session.book.can_move_quietly())
            .then_some(Lost::Home)
        });
        let Some(lost) = lost else { continue };
        if session.up.is_none() {
            continue;
        }
        evict = None;
        let going_home = matches!(lost, Lost::Home);
        if let Some(h) = home.as_mut() {
            if going_home {
                h.moving();
            } else {
                h.review(shared, None);
            }
        }
        match session.leave(lost).await {
            Ok(Some(f)) => reattaching = Some(f),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    if let Some(u) = session.up.take() {
        shared.detach(u.index);
    }
    shared
        .outstanding
        .fetch_sub(session.counted, Ordering::Relaxed);
    r
}

/// A session's state in its relay loop, between frames.
struct Session<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a ConnStats,
    s: Resume,
    cw: OwnedWriteHalf,
    /// The upstream now; `None` while the session moves.
    up: Option<Upstream>,
    book: Book,
    /// This connection's requests counted in the proxy's outstanding total.
    counted: usize,
    /// Upstreams that answered this session out of order.
    untrusted: u32,
    /// The move under way is one home, by choice.
    moving_home: bool,
}

impl Session<'_> {
    /// Relays `first` and every whole client frame behind it already read, within
    /// `globalOutstandingLimit`, in one write; while the session has no upstream they
    /// wait in the book (pings are answered). `Err`: the client's connection ends.
    async fn requests(
        &mut self,
        first: Bytes,
        cbuf: &mut BytesMut,
    ) -> std::io::Result<Option<Lost>> {
        let (shared, conn) = (self.shared, self.conn);
        let max = shared.cfg.max_buffer as usize;
        let limit = shared.cfg.outstanding_limit as usize;
        let mut to_up = BytesMut::new();
        let mut to_client = BytesMut::new();
        let mut next = Some(first);
        let mut malformed = false;
        let mut broken = None;
        while let Some(frame) = next.take() {
            shared.received.fetch_add(1, Ordering::Relaxed);
            conn.received.fetch_add(1, Ordering::Relaxed);
            // A request is at least its header (xid, opcode): anything shorter is
            // malformed and closes this connection, as on a server.
            let Some(mut head) = frame.get(4..12) else {
                malformed = true;
                break;
            };
            let xid = head.get_i32();
            match self.up {
                // Between upstreams, pings are the proxy's to answer: the session lives
                // on at the leader within its timeout.
                None if xid == PING_XID => {
                    to_client.extend_from_slice(&reply_frame(PING_XID, self.book.last_zxid, 0));
                }
                None => self.book.request(&frame, false),
                Some(_) => {
                    self.book.request(&frame, true);
                    to_up.extend_from_slice(&frame);
                }
            }
            // Counted at once, so that the proxy's other connections see it before they
            // take more.
            let now = self.book.in_flight();
            if now > self.counted {
                shared
                    .outstanding
                    .fetch_add(now - self.counted, Ordering::Relaxed);
                self.counted = now;
            }
            if shared.outstanding.load(Ordering::Relaxed) < limit.max(1) {
                match buffered_frame(cbuf, max) {
                    Ok(f) => next = f,
                    Err(e) => broken = Some(e),
                }
            }
        }
        release_if_empty(cbuf);
        let mut lost = None;
        if let Some(u) = self.up.as_mut() {
            if !to_up.is_empty() {
                if let Err(e) = u.w.write_all(&to_up).await {
                    lost = Some(Lost::Closed(format!("write: {e}")));
                }
            }
        }
        if !to_client.is_empty() {
            self.cw.write_all(&to_client).await?;
        }
        if malformed {
            return Err(other("a request frame shorter than its header"));
        }
        if let Some(e) = broken {
            return Err(e);
        }
        Ok(lost)
    }

    /// Passes `first` and every whole upstream frame behind it already read to the client
    /// in one write, with the proxy's own answers whose turn came.
    async fn replies(&mut self, first: Bytes) -> std::io::Result<Option<Lost>> {
        let (shared, conn) = (self.shared, self.conn);
        let mut out = BytesMut::new();
        let mut next = Some(first);
        let mut lost = None;
        while let Some(frame) = next.take() {
            match self.book.reply(&frame) {
                Ok(Relay::Forward) => {
                    out.extend_from_slice(&frame);
                    for f in self.book.due_local() {
                        out.extend_from_slice(&f);
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    conn.sent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Relay::Swallow) => {}
                Err(why) => {
                    lost = Some(Lost::Untrusted(why));
                    break;
                }
            }
            if let Some(u) = self.up.as_mut() {
                match buffered_frame(&mut u.buf, MAX_UPSTREAM_FRAME) {
                    Ok(f) => next = f,
                    Err(e) => lost = Some(Lost::Untrusted(e.to_string())),
                }
            }
        }
        if let Some(u) = self.up.as_mut() {
            release_if_empty(&mut u.buf);
        }
        if !out.is_empty() {
            self.cw.write_all(&out).await?;
        }
        Ok(lost)
    }

    /// The session re-attached to upstream `index`: the book's auth, watches and
    /// requests go to it, and the proxy's answers whose turn came to the client.
    async fn attached(&mut self, index: usize, stream: TcpStream) -> std::io::Result<Option<Lost>> {
        let shared = self.shared;
        let mut u = Upstream::new(stream, index);
        let frames = self.book.reattach_frames();
        let mut failed = None;
        for f in &frames {
            if let Err(e) = u.w.write_all(f).await {
                failed = Some(Lost::Closed(format!("write: {e}")));
                break;
            }
        }
        for f in self.book.due_local() {
            self.cw.write_all(&f).await?;
        }
        self.conn.on(self.s.session_id, index);
        if std::mem::take(&mut self.moving_home) {
            shared.moved_home.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.reattached.fetch_add(1, Ordering::Relaxed);
        }
        info!(
            session = format_args!("{:#x}", self.s.session_id),
            upstream = index,
            resent = frames.len(),
            "session re-attached"
        );
        self.up = Some(u);
        Ok(failed)
    }

    /// Brings this connection's share of the proxy's requests in flight up to date
    /// (`globalOutstandingLimit`).
    fn recount(&mut self) {
        let now = self.book.in_flight();
        let outstanding = &self.shared.outstanding;
        if now > self.counted {
            outstanding.fetch_add(now - self.counted, Ordering::Relaxed);
        } else {
            outstanding.fetch_sub(self.counted - now, Ordering::Relaxed);
        }
        self.counted = now;
    }

    /// Leaves the upstream for `lost`: the re-attachment to start, `None` when the
    /// session is over (its closeSession was answered), `Err` when the client's
    /// connection must close.
    async fn leave(&mut self, lost: Lost) -> std::io::Result<Option<Reattaching>> {
        let shared = self.shared;
        let Some(u) = self.up.take() else {
            return Err(other("no upstream to leave"));
        };
        shared.detach(u.index);
        let why = match lost {
            // The answer to the client's closeSession came: the session is over.
            Lost::Closed(_) if self.book.closed => return Ok(None),
            Lost::Closed(why) => {
                // A server closes a session's connection on purpose too (a malformed
                // request, a failed auth, the session expired or taken over by another
                // connection): then the client's connection closes as it would have, and
                // the upstream is not suspect. Only a server that is gone or no longer
                // serves makes the session move.
                if still_serving(shared, u.index).await {
                    return Err(other(&format!("the upstream closed the session ({why})")));
                }
                shared.suspect(u.index, &why);
                why
            }
            Lost::Untrusted(why) => {
                // Once, the upstream is suspect and the session moves; twice, the session
                // itself is what the upstreams answer unexpectedly (a client the proxy
                // does not understand): it is closed, and no upstream is suspect for it
                // any more.
                self.untrusted += 1;
                if self.untrusted > 1 {
                    return Err(other(&format!("{why}, again after a move")));
                }
                shared.suspect(u.index, &why);
                why
            }
            Lost::Evicted => "the upstream is down".to_string(),
            Lost::Home => {
                self.moving_home = true;
                "a better room has an upstream again".to_string()
            }
        };
        for f in self.book.lost_pings() {
            self.cw.write_all(&f).await?;
        }
        if self.book.sasl {
            // A SASL login cannot be replayed to another server.
            return Err(other(&format!("{why}; a SASL session cannot move")));
        }
        info!(
            session = format_args!("{:#x}", self.s.session_id),
            upstream = u.index,
            "session leaves its upstream ({why}); re-attaching"
        );
        Ok(Some(Box::pin(reattach(
            shared.clone(),
            self.s.clone(),
            self.book.last_zxid,
            Instant::now(),
            // A move home took its turn already.
            !self.moving_home,
        ))))
    }
}

/// How a session lost its upstream.
enum Lost {
    /// The connection closed or failed.
    Closed(String),
    /// The upstream sent what a server does not (garbage, an answer out of order).
    Untrusted(String),
    /// The probes found the upstream down while its connections stayed open.
    Evicted,
    /// Not lost: a better room has an upstream again, and the session goes there.
    Home,
}

/// Whether upstream `index` answers its probe as a serving server, now.
async fn still_serving(shared: &Shared, index: usize) -> bool {
    let Some(u) = shared.cfg.upstreams.get(index) else {
        return false;
    };
    matches!(
        probe::srvr(&u.address, VERIFY).await,
        Ok(Srvr::Serving { .. })
    )
}

/// How long the probe that tells a deliberate close from a lost server may take.
const VERIFY: Duration = Duration::from_secs(1);

/// The session's link to its upstream now.
struct Upstream {
    r: OwnedReadHalf,
    w: OwnedWriteHalf,
    buf: BytesMut,
    index: usize,
}

impl Upstream {
    fn new(stream: TcpStream, index: usize) -> Upstream {
        let (r, w) = stream.into_split();
        Upstream {
            r,
            w,
            buf: BytesMut::new(),
            index,
        }
    }
}

/// What one read asks for at least: a batch of pipelined frames.
const READ_SIZE: usize = 16 * 1024;

/// The next whole frame already in `buf`, without reading.
fn buffered_frame(buf: &mut BytesMut, max: usize) -> std::io::Result<Option<Bytes>> {
    match frame_len(buf, max) {
        Err(e) => Err(other(&e.to_string())),
        Ok(Some(len)) if buf.len() >= 4 + len => Ok(Some(buf.split_to(4 + len).freeze())),
        _ => Ok(None),
    }
}

/// An idle connection holds no buffer: an empty one gives its memory back (the frames
/// split from it keep theirs until they are written).
fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
}

/// A socket frames are read from: it is waited on before a buffer is given to it, so an
/// idle connection holds no buffer.
trait FrameSource {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send;
    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize>;
}

impl FrameSource for TcpStream {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        TcpStream::readable(self)
    }
    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }
}

impl FrameSource for OwnedReadHalf {
    fn readable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        OwnedReadHalf::readable(self)
    }
    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize> {
        OwnedReadHalf::try_read_buf(self, buf)
    }
}

/// The next whole frame (length prefix included) from `r`, `None` at a clean end.
async fn next_frame<R: FrameSource>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> std::io::Result<Option<Bytes>> {
    loop {
        if let Some(frame) = buffered_frame(buf, max)? {
            return Ok(Some(frame));
        }
        release_if_empty(buf);
        r.readable().await?;
        let want = match frame_len(buf, max) {
            Ok(Some(len)) => (4 + len - buf.len()).max(READ_SIZE),
            _ => READ_SIZE,
        };
        if buf.capacity() - buf.len() < want / 2 {
            buf.reserve(want);
        }
        let n = match r.try_read_buf(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                release_if_empty(buf);
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(other("the connection ended inside a frame"))
            };
        }
    }
}

/// [`next_frame`] within `within`.
async fn read_frame<R: FrameSource>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
    within: Duration,
) -> std::io::Result<Option<Bytes>> {
    tokio::time::timeout(within, next_frame(r, buf, max))
        .await
        .map_err(|_| other("timed out"))?
}

fn other(why: &str) -> std::io::Error {
    std::io::Error::other(why.to_string())
}
