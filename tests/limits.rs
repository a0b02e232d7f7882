//! The client port's limits, each as ZooKeeper 3.8 enforces it: `jute.maxbuffer` on frames
//! and inside records, `maxClientCnxns` and `maxCnxns` at accept, `globalOutstandingLimit`
//! as backpressure, `minSessionTimeout`/`maxSessionTimeout` in the handshake, and quota
//! under `zookeeper.enforceQuota`.
//!
//! Every scenario a client can observe runs against geokeeper and against Apache
//! ZooKeeper 3.8 (`JavaZk`) and must give the same observations; log lines are checked on
//! both, with the exact texts ZooKeeper writes. What only the server can see (that reads
//! really pause under `globalOutstandingLimit`) is checked in process, on the driver
//! itself, with a transaction log held shut.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{OpCode, Reader, Record};
use geokeeper_core::request::Request;
use support::gk::Geokeeper;
use support::java_zk::JavaZk;
use support::rawzk::RawZk;

fn raw(addr: SocketAddr) -> RawZk {
    let z = RawZk::connect(addr, 0, &[0; 16], 0, 30_000).expect("raw connect");
    assert_ne!(z.session_id(), 0, "session refused by {addr}");
    z
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn create(path: &str, data: &[u8]) -> Request {
    Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.into(),
            data: Some(data.to_vec().into()),
            acl: open_acl(),
            flags: 0,
        },
    }
}

fn set_data(path: &str, data: &[u8]) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data.to_vec().into()),
        version: -1,
    })
}

fn get_data(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch: false,
    })
}

/// (err, zxid) of a call.
fn call(z: &mut RawZk, op: OpCode, req: &Request) -> (i32, i64) {
    let h = z.call(op, req).reply.expect("reply").header;
    (h.err, h.zxid)
}

/// Whether the server closes `stream` without sending a byte.
fn closed_silently(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut b = [0u8; 64];
    match stream.read(&mut b) {
        Ok(0) => true,
        Ok(n) => panic!("expected a silent close, got {n} bytes"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(e) => panic!("expected a close, got {e}"),
    }
}

fn connect_request_frame(passwd_len: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&30_000i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&passwd_len.to_be_bytes());
    if passwd_len == 16 {
        body.extend_from_slice(&[0; 16]);
    }
    body.push(0);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

/// A connection with a new session, as a bare stream (for writing frames by hand).
fn handshaken_stream(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(&connect_request_frame(16)).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("ConnectResponse length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("ConnectResponse");
    let rsp = ConnectResponse::decode(&mut Reader::new(&body)).expect("ConnectResponse");
    assert_ne!(rsp.session_id, 0, "session refused");
    s
}

/// The address this host connects from (on loopback, 127.0.0.1 whatever the server's).
fn client_ip(addr: SocketAddr) -> std::net::IpAddr {
    TcpStream::connect(addr)
        .and_then(|s| s.local_addr())
        .expect("local address")
        .ip()
}

fn wait_for_log(log: impl Fn() -> String, needle: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if log().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

// ---------------------------------------------------------------------------------------
// jute.maxbuffer
// ---------------------------------------------------------------------------------------

/// What a client sees of `jute.maxbuffer = max`: a frame of exactly `max` bytes is
/// served, one byte more closes that connection with no reply, and another session goes
/// on untouched.
#[derive(Debug, PartialEq, Eq)]
struct FrameLimit {
    at_limit: i32,
    over_limit_closed: bool,
    other_session_data_len: usize,
    new_session_after: bool,
}

fn frame_limit(addr: SocketAddr, max: usize) -> FrameLimit {
    let mut a = raw(addr);
    assert_eq!(call(&mut a, OpCode::Create, &create("/big", b"")).0, 0);
    // setData "/big": xid, type, path (4 + 4), data (4 + n), version: 24 + n bytes.
    let data = vec![7u8; max - 24];
    let at_limit = call(&mut a, OpCode::SetData, &set_data("/big", &data)).0;

    let mut b = handshaken_stream(addr);
    let mut f = ((max + 1) as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&[0u8; 64]);
    let _ = b.write_all(&f);
    let over_limit_closed = closed_silently(&mut b);

    let got = a
        .call(OpCode::GetData, &get_data("/big"))
        .reply
        .expect("reply");
    let rsp = GetDataResponse::decode(&mut Reader::new(&got.body)).expect("GetDataResponse");
    let mut c = raw(addr);
    let new_session_after = call(&mut c, OpCode::Exists, &get_data("/big")).0 == 0;
    FrameLimit {
        at_limit,
        over_limit_closed,
        other_session_data_len: rsp.data.map_or(0, |d| d.len()),
        new_session_after,
    }
}

const LEN_ERROR_TAIL: &str = "is either a malformed message or too large to process";

#[test]
fn an_oversized_frame_closes_only_its_connection() {
    let max = 100_000;
    let expected = FrameLimit {
        at_limit: 0,
        over_limit_closed: true,
        other_session_data_len: max - 24,
        new_session_after: true,
    };
    let gk = Geokeeper::start(&format!("jute.maxbuffer={max}"));
    assert_eq!(frame_limit(gk.addr, max), expected);
    let line = format!(
        "with advertised length of {} {LEN_ERROR_TAIL} (length is greater than jute.maxbuffer={max})",
        max + 1
    );
    assert!(wait_for_log(|| gk.log(), &line), "{}", gk.log());
    assert!(gk.log().contains("Len error. A message from /127.0.0."));

    let java = JavaZk::start_with_jvm_flags("", &[&format!("-Djute.maxbuffer={max}")]);
    assert_eq!(frame_limit(java.addr, max), expected);
    assert!(wait_for_log(|| java.log(), &line), "{}", java.log_tail(40));
}

/// The default, as captured from ZooKeeper 3.8.0: 1,048,575 bytes pass, 1,048,576 close.
#[test]
fn the_default_jute_maxbuffer_is_0xfffff() {
    let gk = Geokeeper::start("");
    let java = JavaZk::start("");
    let expected = FrameLimit {
        at_limit: 0,
        over_limit_closed: true,
        other_session_data_len: 1_048_551,
        new_session_after: true,
    };
    assert_eq!(frame_limit(gk.addr, 0xfffff), expected);
    assert_eq!(frame_limit(java.addr, 0xfffff), expected);
    assert!(gk.log().contains(
        "with advertised length of 1048576 is either a malformed message or too large to process (length is greater than jute.maxbuffer=1048575)"
    ));
}

/// A request body whose buffer or string claims more than `jute.maxbuffer` + extrasize, or
/// more than the frame holds: MarshallingError (-5), a zxid consumed for a write and none
/// for a read. A ConnectRequest like that closes the connection.
#[derive(Debug, PartialEq, Eq)]
struct RecordLengths {
    /// (err, zxid - zxid before) per request.
    replies: Vec<(i32, i64)>,
    connect_closed: bool,
}

fn record_lengths(addr: SocketAddr) -> RecordLengths {
    let mut z = raw(addr);
    let (_, base) = call(&mut z, OpCode::Create, &create("/r", b""));
    let mut replies = Vec::new();
    let mut raw_call = |z: &mut RawZk, op: OpCode, body: &[u8]| {
        let xid = z.take_xid();
        z.send_raw(xid, op as i32, body).expect("send");
        let h = z.await_reply(xid).reply.expect("reply").header;
        replies.push((h.err, h.zxid - base));
    };
    // create: path length 3,000,000 (unreasonable), then 2,000,000 (past the frame).
    raw_call(&mut z, OpCode::Create, &3_000_000i32.to_be_bytes());
    raw_call(&mut z, OpCode::Create, &2_000_000i32.to_be_bytes());
    // getData with an unreasonable path length: no transaction.
    raw_call(&mut z, OpCode::GetData, &3_000_000i32.to_be_bytes());
    // setData whose data length is negative (and not -1).
    let mut body = Vec::new();
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(b"/r");
    body.extend_from_slice(&(-7i32).to_be_bytes());
    raw_call(&mut z, OpCode::SetData, &body);
    // The session is fine afterwards.
    let (err, zxid) = call(&mut z, OpCode::SetData, &set_data("/r", b"ok"));
    replies.push((err, zxid - base));

    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(&connect_request_frame(5_000_000))
        .expect("send");
    let connect_closed = closed_silently(&mut s);
    RecordLengths {
        replies,
        connect_closed,
    }
}

#[test]
fn an_unreasonable_length_inside_a_record_is_a_marshalling_error() {
    let expected = RecordLengths {
        replies: vec![(-5, 1), (-5, 2), (-5, 2), (-5, 3), (0, 4)],
        connect_closed: true,
    };
    let gk = Geokeeper::start("");
    assert_eq!(record_lengths(gk.addr), expected);
    assert!(wait_for_log(|| gk.log(), "Unreasonable length = 3000000"));
    let java = JavaZk::start("");
    assert_eq!(record_lengths(java.addr), expected);
    assert!(java.log().contains("Unreasonable length = 3000000"));
}

// ---------------------------------------------------------------------------------------
// maxClientCnxns, maxCnxns
// ---------------------------------------------------------------------------------------

/// Opens `n` sessions from this address; returns them so they stay open.
fn sessions(addr: SocketAddr, n: usize) -> Vec<RawZk> {
    (0..n).map(|_| raw(addr)).collect()
}

/// Whether one more connection is refused: closed at accept, its ConnectRequest unanswered.
fn next_refused(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    let _ = s.write_all(&connect_request_frame(16));
    closed_silently_or_answered(&mut s)
}

/// `true` if closed without a byte, `false` if a ConnectResponse came.
fn closed_silently_or_answered(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(e) => panic!("neither closed nor answered: {e}"),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct PerIp {
    refused_at_limit: bool,
    accepted_after_one_closes: bool,
}

fn per_ip(addr: SocketAddr, limit: usize) -> PerIp {
    let mut open = sessions(addr, limit);
    let refused_at_limit = next_refused(addr);
    let first = open.remove(0);
    first.disconnect();
    // The server notices the close asynchronously.
    let t = Instant::now();
    let mut accepted_after_one_closes = false;
    while t.elapsed() < Duration::from_secs(5) {
        if !next_refused(addr) {
            accepted_after_one_closes = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(open);
    PerIp {
        refused_at_limit,
        accepted_after_one_closes,
    }
}

#[test]
fn max_client_cnxns_defaults_to_60_per_address() {
    let expected = PerIp {
        refused_at_limit: true,
        accepted_after_one_closes: true,
    };
    let gk = Geokeeper::start("");
    assert_eq!(per_ip(gk.addr, 60), expected);
    let ip = client_ip(gk.addr);
    let line = format!("Message:Error accepting new connection: Too many connections from /{ip} - max is 60 Value:null");
    assert!(wait_for_log(|| gk.log(), &line), "{}", gk.log());
    let java = JavaZk::start("");
    assert_eq!(per_ip(java.addr, 60), expected);
    assert!(wait_for_log(|| java.log(), &line), "{}", java.log_tail(20));
}

#[test]
fn max_client_cnxns_counts_per_address_and_zero_means_unlimited() {
    // A limit of 3: a fourth connection from the same address is refused, one from
    // another loopback address is not.
    let gk = Geokeeper::start("maxClientCnxns=3");
    let _held = sessions(gk.addr, 3);
    assert!(next_refused(gk.addr));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let other_ip_ok = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        // Another source address on the loopback network.
        let src = if gk.addr.ip().to_string() == "127.0.0.251" {
            "127.0.0.252:0"
        } else {
            "127.0.0.251:0"
        };
        sock.bind(src.parse().expect("addr")).expect("bind");
        let mut s = sock.connect(gk.addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(&connect_request_frame(16)).await.expect("send");
        let mut b = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
            .await
            .is_ok_and(|r| r.is_ok())
    });
    assert!(other_ip_ok, "a connection from another address was refused");

    // 0: no limit at all.
    let cfg = "maxClientCnxns=0";
    let gk = Geokeeper::start(cfg);
    let _held = sessions(gk.addr, 100);
    assert!(!next_refused(gk.addr));
    let java = JavaZk::start(cfg);
    let _held = sessions(java.addr, 100);
    assert!(!next_refused(java.addr));
}

#[test]
fn max_cnxns_limits_every_connection_together() {
    let gk = Geokeeper::start("maxCnxns=3");
    let java = JavaZk::start("maxCnxns=3");
    for (addr, log) in [
        (gk.addr, Box::new(|| gk.log()) as Box<dyn Fn() -> String>),
        (java.addr, Box::new(|| java.log())),
    ] {
        let _held = sessions(addr, 3);
        assert!(next_refused(addr));
        assert!(wait_for_log(&log, "Too many connections 3 - max is 3"));
        assert!(wait_for_log(
            &log,
            "Message:Error accepting new connection: Too many connections max allowed is 3 Value:null"
        ));
    }
}

// ---------------------------------------------------------------------------------------
// globalOutstandingLimit
// ---------------------------------------------------------------------------------------

/// Pipelines `n` requests per connection on `conns` connections at once (creates and
/// reads, writing everything before reading anything back) and returns, per connection,
/// the (xid, err) of every reply in arrival order.
fn pipeline(addr: SocketAddr, conns: usize, n: i32) -> Vec<Vec<(i32, i32)>> {
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = handshaken_stream(addr);
                let mut w = s.try_clone().expect("clone");
                let writer = std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    for xid in 1..=n {
                        let req = if xid % 2 == 1 {
                            create(&format!("/p{c}-{xid}"), b"v")
                        } else {
                            get_data(&format!("/p{c}-{}", xid - 1))
                        };
                        let op = if xid % 2 == 1 {
                            OpCode::Create
                        } else {
                            OpCode::GetData
                        };
                        buf.extend_from_slice(&geokeeper_core::request::frame(xid, op, &req));
                        if buf.len() > 16 * 1024 {
                            w.write_all(&buf).expect("write");
                            buf.clear();
                        }
                    }
                    w.write_all(&buf).expect("write");
                });
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                let mut out = Vec::new();
                for _ in 0..n {
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).expect("reply length");
                    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
                    s.read_exact(&mut body).expect("reply");
                    let h = ReplyHeader::decode(&mut Reader::new(&body)).expect("header");
                    out.push((h.xid, h.err));
                }
                writer.join().expect("writer");
                out
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("conn"))
        .collect()
}

#[test]
fn global_outstanding_limit_throttles_without_dropping_or_failing() {
    let cfg = "globalOutstandingLimit=1";
    let expected: Vec<(i32, i32)> = (1..=1000).map(|x| (x, 0)).collect();
    let gk = Geokeeper::start(cfg);
    for replies in pipeline(gk.addr, 4, 1000) {
        assert_eq!(replies, expected);
    }
    let java = JavaZk::start(cfg);
    for replies in pipeline(java.addr, 4, 1000) {
        assert_eq!(replies, expected);
    }
}

/// A request stays outstanding until its reply is written to the socket, not merely
/// queued: a client that pipelines requests and reads nothing is throttled by the global
/// limit once the socket stops taking its replies, and the server stops reading it (its
/// requests wait in TCP). Counted when queued, the client was never throttled: the server
/// read all it sent and kept every reply in memory. Per-connection unread bytes are bounded
/// too (tests/memory_bounds.rs); here jute.maxbuffer is raised so that only the global
/// limit can stop the reading. Geokeeper only: ZooKeeper counts a reply as sent when it
/// is queued.
#[test]
fn global_outstanding_limit_counts_a_reply_until_it_is_written() {
    let gk = Geokeeper::start("globalOutstandingLimit=10\njute.maxbuffer=400000000");
    {
        let mut z = RawZk::connect(gk.addr, 0, &[0; 16], 0, 30_000).expect("connect");
        assert_eq!(
            call(&mut z, OpCode::Create, &create("/small", b"0123456789")).0,
            0
        );
    }
    const N: i32 = 1_500_000;
    let mut s = handshaken_stream(gk.addr);
    let mut requests = Vec::with_capacity(N as usize * 23);
    for xid in 1..=N {
        requests.extend_from_slice(&geokeeper_core::request::frame(
            xid,
            OpCode::GetData,
            &get_data("/small"),
        ));
    }
    // Writes without blocking, noting how much the server has taken.
    s.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0usize;
    let push = |s: &mut TcpStream, sent: &mut usize, for_: Duration| {
        let t = Instant::now();
        while *sent < requests.len() && t.elapsed() < for_ {
            match s.write(&requests[*sent..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("write: {e}"),
            }
        }
    };
    push(&mut s, &mut sent, Duration::from_secs(2));
    let at_2s = sent;
    push(&mut s, &mut sent, Duration::from_secs(2));
    let at_4s = sent;
    eprintln!(
        "server took {at_2s} of {} request bytes in 2 s, {at_4s} in 4 s",
        requests.len()
    );
    assert!(
        at_4s < requests.len() && at_4s == at_2s,
        "the server kept reading a client that reads nothing: {at_2s} then {at_4s} of {} bytes",
        requests.len()
    );
    // It reads: the server reads the rest, every reply arrives in order.
    s.set_nonblocking(false).expect("blocking");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let rest = requests[sent..].to_vec();
    let writer = std::thread::spawn(move || w.write_all(&rest).expect("the rest"));
    let mut r = std::io::BufReader::with_capacity(1 << 20, s);
    let mut body = Vec::new();
    for xid in 1..=N {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).expect("reply length");
        body.resize(i32::from_be_bytes(len) as usize, 0);
        r.read_exact(&mut body).expect("reply");
        let h = ReplyHeader::decode(&mut Reader::new(&body)).expect("header");
        assert_eq!((h.xid, h.err), (xid, 0));
    }
    writer.join().expect("writer");
}

// ---------------------------------------------------------------------------------------
// minSessionTimeout, maxSessionTimeout
// ---------------------------------------------------------------------------------------

fn negotiated(addr: SocketAddr, asks: &[i32]) -> Vec<i32> {
    asks.iter()
        .map(|&t| {
            let z = RawZk::connect(addr, 0, &[0; 16], 0, t).expect("connect");
            z.response.time_out
        })
        .collect()
}

#[test]
fn session_timeouts_are_clamped_to_min_and_max() {
    let asks = [0, 1000, 4000, 6000, 30_000, 40_000, 100_000];
    // tickTime=2000: the defaults are 2 and 20 ticks.
    let defaults = vec![4000, 4000, 4000, 6000, 30_000, 40_000, 40_000];
    let cfg = "minSessionTimeout=5000\nmaxSessionTimeout=8000";
    let configured = vec![5000, 5000, 5000, 6000, 8000, 8000, 8000];
    let gk = Geokeeper::start("");
    assert_eq!(negotiated(gk.addr, &asks), defaults);
    let java = JavaZk::start("");
    assert_eq!(negotiated(java.addr, &asks), defaults);
    let gk = Geokeeper::start(cfg);
    assert_eq!(negotiated(gk.addr, &asks), configured);
    let java = JavaZk::start(cfg);
    assert_eq!(negotiated(java.addr, &asks), configured);
}

// ---------------------------------------------------------------------------------------
// Quota
// ---------------------------------------------------------------------------------------

/// Sets a quota as zkCli's `setquota` does: the intermediate nodes, the limits node, then
/// the stats node (whose content the server recomputes).
fn set_quota(z: &mut RawZk, path: &str, limits: &str) {
    let mut p = String::from("/zookeeper/quota");
    for part in path.split('/').filter(|s| !s.is_empty()) {
        p.push('/');
        p.push_str(part);
        let _ = call(z, OpCode::Create, &create(&p, b""));
    }
    let (err, _) = call(
        z,
        OpCode::Create,
        &create(&format!("{p}/zookeeper_limits"), limits.as_bytes()),
    );
    assert_eq!(err, 0, "limits node");
    let (err, _) = call(
        z,
        OpCode::Create,
        &create(&format!("{p}/zookeeper_stats"), b"count=0,bytes=0"),
    );
    assert_eq!(err, 0, "stats node");
}

/// The captured 3.8.0 scenario: `setquota -n 2 /q` (soft), `-N 2 /h` (hard count),
/// `-B 10 /hb` (hard bytes). Returns (op, err, zxid - zxid of the previous reply).
fn quota_scenario(addr: SocketAddr) -> Vec<(String, i32, i64)> {
    let mut z = raw(addr);
    for p in ["/q", "/h", "/hb"] {
        assert_eq!(call(&mut z, OpCode::Create, &create(p, b"")).0, 0);
    }
    set_quota(&mut z, "/q", "count=2,bytes=-1");
    set_quota(
        &mut z,
        "/h",
        "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2",
    );
    set_quota(
        &mut z,
        "/hb",
        "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1",
    );
    let (_, mut last) = call(
        &mut z,
        OpCode::Sync,
        &Request::Sync(SyncRequest { path: "/".into() }),
    );
    let mut out = Vec::new();
    let steps: Vec<(&str, OpCode, Request)> = vec![
        ("create /h/1", OpCode::Create, create("/h/1", b"")),
        ("create /h/2", OpCode::Create, create("/h/2", b"")),
        ("create /h/3", OpCode::Create, create("/h/3", b"")),
        ("create /q/1", OpCode::Create, create("/q/1", b"")),
        ("create /q/2", OpCode::Create, create("/q/2", b"")),
        ("create /q/3", OpCode::Create, create("/q/3", b"")),
        ("create /hb/x", OpCode::Create, create("/hb/x", b"12345")),
        (
            "create /hb/y",
            OpCode::Create,
            create("/hb/y", b"12345678901"),
        ),
        (
            "set /hb/x 20",
            OpCode::SetData,
            set_data("/hb/x", &[b'a'; 20]),
        ),
        ("set /hb/x 3", OpCode::SetData, set_data("/hb/x", b"abc")),
        (
            "delete /h/1",
            OpCode::Delete,
            Request::Delete(DeleteRequest {
                path: "/h/1".into(),
                version: -1,
            }),
        ),
        ("create /h/4", OpCode::Create, create("/h/4", b"")),
        ("create /h/5", OpCode::Create, create("/h/5", b"")),
    ];
    for (name, op, req) in steps {
        let (err, zxid) = call(&mut z, op, &req);
        out.push((name.to_string(), err, zxid - last));
        last = zxid;
    }
    let stats = z
        .call(
            OpCode::GetData,
            &get_data("/zookeeper/quota/h/zookeeper_stats"),
        )
        .reply
        .expect("reply");
    let rsp = GetDataResponse::decode(&mut Reader::new(&stats.body)).expect("stats");
    out.push((
        String::from_utf8_lossy(&rsp.data.unwrap_or_default()).into_owned(),
        0,
        0,
    ));
    out
}

fn quota_expected(enforced: bool) -> Vec<(String, i32, i64)> {
    let q = if enforced { -125 } else { 0 };
    let v = |s: &str, e: i32| (s.to_string(), e, 1);
    vec![
        v("create /h/1", 0),
        v("create /h/2", q),
        v("create /h/3", q),
        v("create /q/1", 0),
        v("create /q/2", 0),
        v("create /q/3", 0),
        v("create /hb/x", 0),
        v("create /hb/y", q),
        v("set /hb/x 20", q),
        v("set /hb/x 3", 0),
        v("delete /h/1", 0),
        v("create /h/4", 0),
        v("create /h/5", q),
        (
            if enforced {
                "count=2,bytes=0"
            } else {
                "count=5,bytes=0"
            }
            .to_string(),
            0,
            0,
        ),
    ]
}

const QUOTA_LINES: &[&str] = &[
    "Message:Quota exceeded: /h [current count=3, hardCountLimit=2] Value:null",
    "Message: Quota exceeded: /h [current count=3, hardCountLimit=2]",
    "Message:Quota exceeded: /q [current count=3, softCountLimit=2] Value:null",
    "Message:Quota exceeded: /q [current count=4, softCountLimit=2] Value:null",
    "Message:Quota exceeded: /hb [current bytes=16, hardByteLimit=10] Value:null",
    "Message:Quota exceeded: /hb [current bytes=20, hardByteLimit=10] Value:null",
];

#[test]
fn enforced_quota_refuses_writes_past_hard_limits_and_logs_soft_ones() {
    let gk = Geokeeper::start("zookeeper.enforceQuota=true");
    assert_eq!(quota_scenario(gk.addr), quota_expected(true));
    let java = JavaZk::start_with_jvm_flags("", &["-Dzookeeper.enforceQuota=true"]);
    assert_eq!(quota_scenario(java.addr), quota_expected(true));
    for line in QUOTA_LINES {
        // The flush line needs the retry at least 100 ms after the first refusal, which a
        // fast run may not give; it is checked below with a pause.
        if line.starts_with("Message: ") {
            continue;
        }
        assert!(
            gk.log().contains(line),
            "geokeeper lacks {line:?}:\n{}",
            gk.log()
        );
        assert!(java.log().contains(line), "ZooKeeper lacks {line:?}");
    }
    assert!(gk
        .log()
        .contains("zookeeper.enforceQuota = true, Quota Enforce enables"));
    assert!(java
        .log()
        .contains("zookeeper.enforceQuota = true, Quota Enforce enables"));
}

#[test]
fn a_repeated_quota_refusal_is_flushed_after_100_ms() {
    for (addr, log) in [
        {
            let gk = Geokeeper::start("zookeeper.enforceQuota=true");
            let addr = gk.addr;
            (addr, Box::new(move || gk.log()) as Box<dyn Fn() -> String>)
        },
        {
            let java = JavaZk::start_with_jvm_flags("", &["-Dzookeeper.enforceQuota=true"]);
            let addr = java.addr;
            (
                addr,
                Box::new(move || java.log()) as Box<dyn Fn() -> String>,
            )
        },
    ] {
        let mut z = raw(addr);
        assert_eq!(call(&mut z, OpCode::Create, &create("/h", b"")).0, 0);
        set_quota(
            &mut z,
            "/h",
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1",
        );
        assert_eq!(call(&mut z, OpCode::Create, &create("/h/1", b"")).0, -125);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(call(&mut z, OpCode::Create, &create("/h/2", b"")).0, -125);
        assert!(log()
            .contains("Message:Quota exceeded: /h [current count=2, hardCountLimit=1] Value:null"));
        assert!(log().contains("Message: Quota exceeded: /h [current count=2, hardCountLimit=1]"));
    }
}

#[test]
fn without_enforce_quota_nothing_is_checked_or_logged() {
    let gk = Geokeeper::start("");
    assert_eq!(quota_scenario(gk.addr), quota_expected(false));
    let java = JavaZk::start("");
    assert_eq!(quota_scenario(java.addr), quota_expected(false));
    assert!(!gk.log().contains("Quota exceeded"), "{}", gk.log());
    assert!(!java.log().contains("Quota exceeded"));
}

/// A transaction log that holds every append until its gate opens, and records how many
/// entries each append carried (the log thread groups what queued up while it waited).
struct GatedLog {
    inner: geokeeper_core::storage::MemoryLog,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    batches: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl geokeeper_core::storage::TxnLog for GatedLog {
    fn append(&mut self, entries: &[geokeeper_core::server::LogEntry]) -> std::io::Result<()> {
        self.batches.lock().unwrap().push(entries.len());
        let (open, cv) = &*self.gate;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        drop(g);
        self.inner.append(entries)
    }

    fn last_zxid(&self) -> i64 {
        self.inner.last_zxid()
    }

    fn read_after(&self, zxid: i64) -> Option<Vec<geokeeper_core::server::LogEntry>> {
        self.inner.read_after(zxid)
    }
}

/// What only the server sees: while its log is stuck, a connection pipelining writes is
/// read only until the server holds more than `globalOutstandingLimit` requests, and the
/// rest waits in TCP; another session still gets its reads answered; when the log moves
/// again, everything is answered in order, nothing failed.
#[test]
fn reads_pause_while_the_server_is_over_the_outstanding_limit() {
    use geokeeper_core::limits::ClientLimits;
    use geokeeper_core::net::{serve, NetSettings};
    use geokeeper_core::server::{Clock, Server, Settings};
    use geokeeper_core::tree::DataTree;
    use std::sync::{Arc, Condvar, Mutex};

    const LIMIT: u32 = 5;
    const WRITES: i32 = 200;
    let gate = Arc::new((Mutex::new(true), Condvar::new()));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let log = GatedLog {
        inner: geokeeper_core::storage::MemoryLog::new(1000),
        gate: gate.clone(),
        batches: batches.clone(),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let settings = NetSettings {
        max_buffer: 0xfffff,
        container_check_interval: Duration::from_secs(3600),
        snapshots: None,
        four_letter: Default::default(),
        limits: ClientLimits {
            global_outstanding_limit: LIMIT,
            ..ClientLimits::default()
        },
        publish: None,
        own_clock: None,
    };
    let server = Server::new(Settings::default(), DataTree::new(), Clock::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let served = rt.spawn(serve(listener, server, Box::new(log), settings, stop_rx));

    let mut writer_conn = handshaken_stream(addr);
    let mut reader_conn = raw(addr);
    assert_eq!(
        call(&mut reader_conn, OpCode::Create, &create("/r", b"x")).0,
        0
    );
    let before = batches.lock().unwrap().len();
    *gate.0.lock().unwrap() = false;

    let mut w = writer_conn.try_clone().expect("clone");
    let pipelined = std::thread::spawn(move || {
        for xid in 1..=WRITES {
            let f = geokeeper_core::request::frame(
                xid,
                OpCode::Create,
                &create(&format!("/w{xid}"), &[b'v'; 100]),
            );
            w.write_all(&f).expect("write");
        }
    });
    // The log is stuck; reads of another session are still answered, one at a time.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..10 {
        let (err, _) = call(&mut reader_conn, OpCode::GetData, &get_data("/r"));
        assert_eq!(err, 0);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();

    writer_conn
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    for xid in 1..=WRITES {
        let mut len = [0u8; 4];
        writer_conn.read_exact(&mut len).expect("reply length");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        writer_conn.read_exact(&mut body).expect("reply");
        let h = ReplyHeader::decode(&mut Reader::new(&body)).expect("header");
        assert_eq!((h.xid, h.err), (xid, 0));
    }
    pipelined.join().expect("writer");
    let batches = batches.lock().unwrap()[before..].to_vec();
    // While the log was stuck, the connection was read until the server held more than
    // the limit (one request past it, as ZooKeeper reads it before it stops): the first
    // append took what had been read when the log thread woke, the second what queued up
    // behind it. Without the throttle these would hold all the writes.
    let limit = LIMIT as usize + 1;
    assert!(batches.len() >= 2, "{batches:?}");
    assert!(batches[0] <= limit, "{batches:?}");
    assert!(batches[0] + batches[1] <= 2 * limit, "{batches:?}");
    assert_eq!(batches.iter().sum::<usize>(), WRITES as usize);
    let _ = stop_tx.send(true);
    let _ = rt.block_on(served);
}

/// `zookeeper.jute.maxbuffer.extrasize` moves the record limit: with `jute.maxbuffer=10000`
/// and an extra 2000, a field claiming 13,000 bytes is "Unreasonable", one claiming 11,000
/// merely runs past the frame. Both are MarshallingError; only the log tells them apart.
#[test]
fn jute_maxbuffer_extrasize_sets_the_record_limit() {
    let gk = Geokeeper::start("jute.maxbuffer=10000\njute.maxbuffer.extrasize=2000");
    let java = JavaZk::start_with_jvm_flags(
        "",
        &[
            "-Djute.maxbuffer=10000",
            "-Dzookeeper.jute.maxbuffer.extrasize=2000",
        ],
    );
    for (addr, log) in [
        (gk.addr, Box::new(|| gk.log()) as Box<dyn Fn() -> String>),
        (java.addr, Box::new(|| java.log())),
    ] {
        let mut z = raw(addr);
        for len in [13_000i32, 11_000] {
            let xid = z.take_xid();
            z.send_raw(xid, OpCode::GetData as i32, &len.to_be_bytes())
                .expect("send");
            let h = z.await_reply(xid).reply.expect("reply").header;
            assert_eq!(h.err, -5);
        }
        assert!(wait_for_log(&log, "Unreasonable length = 13000"));
        assert!(!log().contains("Unreasonable length = 11000"));
    }
}

/// A connection that never sends its ConnectRequest is closed by the connection expirer
/// (`zookeeper.nio.sessionlessCnxnTimeout`), and so gives back its place under
/// `maxClientCnxns`: with a limit of 1, an idle socket blocks others only for a while.
#[test]
fn a_connection_without_a_handshake_expires() {
    let gk = Geokeeper::start("maxClientCnxns=1\nnio.sessionlessCnxnTimeout=2000");
    let java = JavaZk::start_with_jvm_flags(
        "maxClientCnxns=1",
        &["-Dzookeeper.nio.sessionlessCnxnTimeout=2000"],
    );
    let check = |addr: SocketAddr| {
        let t = Instant::now();
        let mut idle = TcpStream::connect(addr).expect("connect");
        std::thread::sleep(Duration::from_millis(300));
        assert!(next_refused(addr), "the idle socket holds the only place");
        idle.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut b = [0u8; 8];
        let closed = matches!(idle.read(&mut b), Ok(0))
            || matches!(idle.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
        let waited = t.elapsed();
        assert!(closed, "the idle socket was not closed");
        // ZooKeeper's expiry queue closes it between one and two intervals.
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(8),
            "closed after {waited:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(!next_refused(addr), "its place is free again");
    };
    let (a, b) = (gk.addr, java.addr);
    let t = std::thread::spawn(move || check(b));
    check(a);
    t.join().expect("java");
}
