//! One client cannot make the server hold unbounded memory: a client that pipelines
//! requests for large replies and never reads its socket is held back once jute.maxbuffer
//! of its replies wait unread (its requests stay queued in TCP, nothing is dropped), and a
//! multiRead whose reply would pass jute.maxbuffer is refused instead of built. Meanwhile
//! other clients are served as usual. Measured against the live process's RSS. The same
//! for a proxy in front of a server, with 10,000 idle sessions through it besides.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{ErrorCode, OpCode, Reader, Record};
use geokeeper_core::request::{frame, MultiOp, Request};
use support::gk::{rss_kb, Geokeeper};
use support::proxy::{upstream, Proxy};
use support::rawzk::RawZk;

/// The size of the znode every large reply carries (as in the measurement).
const BIG: usize = 1_000_000;
/// What the server may grow to while a client misbehaves.
const RSS_BOUND_KB: u64 = 256 * 1024;

fn open_acl() -> Vec<Acl> {
    geokeeper_core::acl::open_acl_unsafe()
}

fn session(addr: SocketAddr) -> RawZk {
    let z = RawZk::connect(addr, 0, &[0; 16], 0, 30_000).expect("connect");
    assert!(z.response.time_out > 0, "session refused");
    z
}

fn get_big() -> Request {
    Request::GetData(GetDataRequest {
        path: "/big".into(),
        watch: false,
    })
}

/// Creates `/big` (1,000,000 bytes) and `/small`.
fn populate(addr: SocketAddr) {
    let mut z = session(addr);
    for (path, len) in [("/big", BIG), ("/small", 10)] {
        let req = Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: path.into(),
                data: Some(vec![b'x'; len].into()),
                acl: open_acl(),
                flags: 0,
            },
        };
        let f = z.call(OpCode::Create, &req).reply.expect("create reply");
        assert_eq!(f.header.err, 0, "create {path}");
    }
}

/// Reads of `/small` on a fresh session, as (longest latency, all succeeded).
fn small_reads(addr: SocketAddr, n: usize) -> (Duration, bool) {
    let mut z = session(addr);
    let mut worst = Duration::ZERO;
    let mut ok = true;
    for _ in 0..n {
        let t = Instant::now();
        let req = Request::GetData(GetDataRequest {
            path: "/small".into(),
            watch: false,
        });
        let r = z.call(OpCode::GetData, &req).reply;
        worst = worst.max(t.elapsed());
        ok &= r.is_ok_and(|f| f.header.err == 0);
    }
    (worst, ok)
}

fn read_reply(s: &mut TcpStream) -> (ReplyHeader, usize) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("reply body");
    let h = ReplyHeader::decode(&mut Reader::new(&body)).expect("reply header");
    (h, body.len())
}

/// What a client that reads nothing did to the process serving it.
struct SlowReader {
    /// The process's resident memory 3 s after the client sent its requests.
    held_kb: u64,
    /// Another client's slowest of 50 small reads meanwhile, and whether all succeeded.
    worst: Duration,
    others_ok: bool,
}

/// A client pipelines `n` getData of the 1 MB znode at `addr` and reads nothing for 3 s,
/// while process `pid` takes what it will (the rest waits in TCP) and another client
/// reads. Then it reads (each reply within `patience`): every reply arrives, in order,
/// whole, none dropped or failed.
fn slow_reader(addr: SocketAddr, pid: u32, n: i32, patience: Duration) -> SlowReader {
    let mut slow = session(addr).into_stream();
    let mut w = slow.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for xid in 1..=n {
            buf.extend_from_slice(&frame(xid, OpCode::GetData, &get_big()));
        }
        // Blocks once the server stops reading; the bytes wait in TCP.
        w.write_all(&buf).expect("requests written");
    });
    std::thread::sleep(Duration::from_secs(3));
    let (held_kb, _) = rss_kb(pid).expect("rss");
    let (worst, others_ok) = small_reads(addr, 50);
    slow.set_read_timeout(Some(patience)).expect("timeout");
    for xid in 1..=n {
        let (h, len) = read_reply(&mut slow);
        assert_eq!((h.xid, h.err), (xid, 0), "reply {xid}");
        assert_eq!(len, 16 + 4 + BIG + 68, "reply {xid}");
    }
    writer.join().expect("writer");
    SlowReader {
        held_kb,
        worst,
        others_ok,
    }
}

#[test]
fn a_client_that_never_reads_cannot_exhaust_the_server() {
    let gk = Geokeeper::start("");
    let pid = gk.pid().expect("pid");
    populate(gk.addr);
    let (before_kb, _) = rss_kb(pid).expect("rss");

    // 3,000 pipelined getData of the 1 MB znode, and not one byte read.
    let slow = slow_reader(gk.addr, pid, 3_000, Duration::from_secs(30));
    eprintln!(
        "slow reader: RSS {before_kb} KiB before, {} KiB while it reads nothing; \
         another client's slowest of 50 reads {:?}",
        slow.held_kb, slow.worst
    );
    assert!(slow.others_ok, "another client's reads failed");
    assert!(
        slow.held_kb < RSS_BOUND_KB,
        "RSS {} KiB while a client reads nothing",
        slow.held_kb
    );
    assert!(
        slow.worst < Duration::from_secs(2),
        "another client waited {:?}",
        slow.worst
    );
    let (_, peak_kb) = rss_kb(pid).expect("rss");
    assert!(peak_kb < RSS_BOUND_KB, "peak RSS {peak_kb} KiB");
}

#[test]
fn a_multi_read_whose_reply_would_pass_jute_maxbuffer_is_refused_not_built() {
    let gk = Geokeeper::start("");
    let pid = gk.pid().expect("pid");
    populate(gk.addr);
    let mut z = session(gk.addr);
    // Just under 1 MB of request (18 bytes an op) for 55 GB of reply.
    let ops: Vec<MultiOp> = (0..55_000)
        .map(|_| {
            MultiOp::GetData(GetDataRequest {
                path: "/big".into(),
                watch: false,
            })
        })
        .collect();
    let t = Instant::now();
    let f = z
        .call(OpCode::MultiRead, &Request::MultiRead(ops))
        .reply
        .expect("multiRead reply");
    assert_eq!(f.header.err, ErrorCode::MarshallingError as i32);
    assert!(f.body.is_empty());
    eprintln!("huge multiRead refused in {:?}", t.elapsed());
    // The session goes on; a multiRead that fits is answered whole.
    let ops = vec![
        MultiOp::GetData(GetDataRequest {
            path: "/small".into(),
            watch: false,
        });
        100
    ];
    let f = z
        .call(OpCode::MultiRead, &Request::MultiRead(ops))
        .reply
        .expect("small multiRead");
    assert_eq!(f.header.err, 0);
    let (_, peak_kb) = rss_kb(pid).expect("rss");
    assert!(peak_kb < RSS_BOUND_KB, "peak RSS {peak_kb} KiB");
}

/// How many sessions a proxy can hold here: 10,000, or fewer when the open-file limit
/// (which the proxy raises its own to) cannot give each session its two sockets, the
/// client's and the upstream's. Raises this process's soft limit to the hard one.
fn sessions_the_limit_allows(want: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    // Room for the proxy's listener, probes, runtime and log.
    want.min((lim.rlim_max as usize).saturating_sub(256) / 2)
}

/// The proxy's memory stays bounded: 10,000 idle sessions through it cost a few KiB
/// each, and a client that pipelines reads of a 1 MB znode and reads nothing holds back
/// its own upstream (the replies wait in TCP), not the proxy's memory, while others are
/// served. Then it reads, and every reply arrives in order.
#[test]
fn the_proxys_memory_is_bounded_by_idle_sessions_and_a_slow_reader() {
    /// The proxy's resident memory per idle session, at most.
    const PER_SESSION_KB: u64 = 8;
    /// What a client that reads nothing may add to the proxy's resident memory.
    const SLOW_READER_KB: u64 = 32 * 1024;
    let sessions = sessions_the_limit_allows(10_000);
    let gk = Geokeeper::start("maxClientCnxns=0\n");
    populate(gk.addr);
    let p = Proxy::start("B", &[upstream(gk.addr, "B", 1)], "");
    p.wait_healthy(1, Duration::from_secs(20));
    let pid = p.pid().expect("proxy pid");
    // One session first: the proxy's one-time costs (its runtime's threads, buffers).
    let first = session(p.addr);
    let (base_kb, _) = rss_kb(pid).expect("rss");
    let t = Instant::now();
    let idle: Vec<RawZk> = (0..sessions).map(|_| session(p.addr)).collect();
    let opened = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (idle_kb, _) = rss_kb(pid).expect("rss");
    let per = (idle_kb.saturating_sub(base_kb)) as f64 / sessions as f64;
    eprintln!(
        "{sessions} idle sessions through the proxy (opened in {opened:?}): RSS {base_kb} -> {idle_kb} KiB, {per:.1} KiB each"
    );
    assert!(
        per <= PER_SESSION_KB as f64,
        "{per:.1} KiB per idle session"
    );

    // A client that reads nothing.
    let slow = slow_reader(p.addr, pid, 300, Duration::from_secs(60));
    eprintln!(
        "slow reader through the proxy: RSS {idle_kb} KiB before, {} KiB while it reads nothing; another client's slowest of 50 reads {:?}",
        slow.held_kb, slow.worst
    );
    assert!(slow.others_ok, "another client's reads failed");
    assert!(
        slow.held_kb.saturating_sub(idle_kb) < SLOW_READER_KB,
        "the proxy grew by {} KiB for a client that reads nothing",
        slow.held_kb.saturating_sub(idle_kb)
    );
    drop(idle);
    drop(first);
}
