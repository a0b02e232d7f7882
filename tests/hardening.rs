//! Hostile input on the client port: many connections throw random and mutated frames at a
//! running geokeeper (malformed frames, truncated records, absurd lengths, fields of the
//! wrong type, unknown opcodes, garbage before and after the handshake, clients that never
//! read) while well-behaved sessions, through the `zookeeper-client` crate and kazoo, keep
//! working. Every good operation must succeed promptly; afterwards the server still answers,
//! its data is what the good clients wrote, it never panicked and its memory stayed bounded.
//!
//! Seeded: the seed is printed; `GK_HARDENING_SEED=<n>` replays it (the byte streams are
//! the same, their interleaving with the server is not). `GK_HARDENING_FRAMES=<n>` sets the
//! frames per attacker at least (default 500; the attack also lasts until the kazoo run is
//! over and 3 s at least), `GK_HARDENING_SECS` the time bound (default 30).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use geokeeper_core::proto::records::*;
use geokeeper_core::proto::{JuteWrite, OpCode};
use geokeeper_core::request::{MultiOp, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::gk::Geokeeper;
use support::java_zk::kazoo;
use support::zkc::persistent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client::Client;

const ATTACKERS: u64 = 20;
const GOOD_CLIENTS: usize = 3;
/// How long one good operation may take before it counts as a stall.
const GOOD_OP_BOUND: Duration = Duration::from_secs(5);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------
// What the attackers send
// ---------------------------------------------------------------------------------------

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// A path the attackers may touch: under `/fz`, sometimes odd. Never `/`: any client may
/// change the root's ACL, and one that did would lock the good clients out, as it would in
/// ZooKeeper.
fn fz_path(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => "/fz".into(),
        1 => "/fz//x".into(),
        2 => "/fz/\u{0}".into(),
        3 => format!("/fz/{}", "é".repeat(rng.random_range(1..50))),
        _ => format!("/fz/n{}", rng.random_range(0..50)),
    }
}

/// A well-formed request of a random kind, as (opcode, body).
fn valid_request(rng: &mut StdRng) -> (i32, Vec<u8>) {
    let path = fz_path(rng);
    let data: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
    let create = |path: String, flags: i32| CreateRequest {
        path,
        data: Some(data.clone().into()),
        acl: open_acl(),
        flags,
    };
    let (op, req) = match rng.random_range(0..22) {
        0 => (
            OpCode::Create,
            Request::Create {
                op: OpCode::Create,
                req: create(path, rng.random_range(-1..8)),
            },
        ),
        1 => (
            OpCode::Create2,
            Request::Create {
                op: OpCode::Create2,
                req: create(path, 2),
            },
        ),
        2 => (
            OpCode::CreateContainer,
            Request::Create {
                op: OpCode::CreateContainer,
                req: create(path, 4),
            },
        ),
        3 => (
            OpCode::CreateTtl,
            Request::CreateTtl(CreateTtlRequest {
                path,
                data: Some(data.clone().into()),
                acl: open_acl(),
                flags: rng.random_range(4..7),
                ttl: rng.random_range(-2..100_000),
            }),
        ),
        4 => (
            OpCode::Delete,
            Request::Delete(DeleteRequest {
                path,
                version: rng.random_range(-1..3),
            }),
        ),
        5 => (
            OpCode::SetData,
            Request::SetData(SetDataRequest {
                path,
                data: Some(data.clone().into()),
                version: -1,
            }),
        ),
        6 => (
            OpCode::GetData,
            Request::GetData(GetDataRequest {
                path,
                watch: rng.random(),
            }),
        ),
        7 => (
            OpCode::Exists,
            Request::Exists(ExistsRequest {
                path,
                watch: rng.random(),
            }),
        ),
        8 => (
            OpCode::GetChildren2,
            Request::GetChildren2(GetChildren2Request {
                path,
                watch: rng.random(),
            }),
        ),
        9 => (
            OpCode::SetAcl,
            Request::SetAcl(SetAclRequest {
                path,
                acl: open_acl(),
                version: -1,
            }),
        ),
        10 => (OpCode::GetAcl, Request::GetAcl(GetAclRequest { path })),
        11 => (OpCode::Sync, Request::Sync(SyncRequest { path })),
        12 => (OpCode::Ping, Request::Ping),
        13 => {
            let ops = vec![
                MultiOp::Create {
                    op: OpCode::Create,
                    req: create(format!("{path}m"), 0),
                },
                MultiOp::SetData(SetDataRequest {
                    path: path.clone(),
                    data: None,
                    version: -1,
                }),
                MultiOp::Check(CheckVersionRequest { path, version: 0 }),
            ];
            (OpCode::Multi, Request::Multi(ops))
        }
        14 => (
            OpCode::MultiRead,
            Request::MultiRead(vec![
                MultiOp::GetData(GetDataRequest {
                    path: path.clone(),
                    watch: false,
                }),
                MultiOp::GetChildren(GetChildrenRequest { path, watch: false }),
            ]),
        ),
        15 => (
            OpCode::SetWatches2,
            Request::SetWatches2(SetWatches2 {
                relative_zxid: rng.random_range(-1..1000),
                data_watches: vec![path.clone()],
                exist_watches: vec![path.clone()],
                child_watches: vec![path.clone()],
                persistent_watches: vec![path.clone()],
                persistent_recursive_watches: vec![path],
            }),
        ),
        16 => (
            OpCode::AddWatch,
            Request::AddWatch(AddWatchRequest {
                path,
                mode: rng.random_range(-1..3),
            }),
        ),
        17 => (
            OpCode::RemoveWatches,
            Request::RemoveWatches(RemoveWatchesRequest {
                path,
                r#type: rng.random_range(0..4),
            }),
        ),
        18 => (OpCode::DeleteContainer, Request::DeleteContainer(path)),
        19 => (
            OpCode::GetAllChildrenNumber,
            Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path }),
        ),
        20 => (OpCode::WhoAmI, Request::WhoAmI),
        _ => (
            OpCode::Auth,
            Request::Auth(AuthPacket {
                r#type: 0,
                // An unknown scheme fails the auth and closes the connection.
                scheme: if rng.random_range(0..8) == 0 {
                    "nosuch"
                } else {
                    "digest"
                }
                .into(),
                auth: data.clone().into(),
            }),
        ),
    };
    let mut w = BytesMut::new();
    req.encode_body(&mut w);
    (op as i32, w.to_vec())
}

/// Overwrites 4 bytes at a random place with a hostile integer.
fn poke_int(rng: &mut StdRng, body: &mut [u8]) {
    if body.len() < 4 {
        return;
    }
    let at = rng.random_range(0..=body.len() - 4);
    let v: i32 = *[i32::MAX, i32::MIN, -1, -2, 0, 0xfffff, 0x100000, 3_000_000]
        .get(rng.random_range(0..8))
        .unwrap_or(&-1);
    body[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// One frame to throw: a length prefix (usually honest) and its bytes.
fn hostile_frame(rng: &mut StdRng, xid: i32) -> Vec<u8> {
    let (mut op, mut body) = valid_request(rng);
    let mut honest_len = true;
    // Mostly mutations a session survives (answered with an error code), so that one
    // connection carries many; the ones that close it (an unknown opcode, a lying length)
    // are rarer.
    match rng.random_range(0..64) {
        // Well-formed requests, so that deeper code runs.
        12..=40 => {}
        0 | 1 | 41..=45 => {}
        // Bit flips.
        2 | 3 | 46..=55 => {
            for _ in 0..rng.random_range(1..6) {
                if !body.is_empty() {
                    let i = rng.random_range(0..body.len());
                    body[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        // Absurd lengths and counts inside the record.
        4 | 5 | 56..=63 => poke_int(rng, &mut body),
        // A truncated record.
        6 => {
            let keep = rng.random_range(0..=body.len());
            body.truncate(keep);
        }
        // Fields of the wrong type: another opcode's body.
        7 => op = valid_request(rng).0,
        // An opcode no server knows (which closes the connection, as in ZooKeeper).
        8 => op = rng.random(),
        // Random bytes.
        9 => {
            body = (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect()
        }
        // A length prefix that lies (longer: the next frames are swallowed into this
        // one; shorter: the rest of this one is read as the next frame's start).
        10 => honest_len = false,
        // Extra bytes after a good record (ZooKeeper ignores them).
        11 => body.extend((0..rng.random_range(1..20)).map(|_| rng.random::<u8>())),
        _ => unreachable!(),
    }
    let mut f = BytesMut::new();
    let len = 8 + body.len() as i32;
    f.put_int(if honest_len {
        len
    } else {
        (len + rng.random_range(-12..40)).max(0)
    });
    f.put_int(xid);
    f.put_int(op);
    f.extend_from_slice(&body);
    f.to_vec()
}

/// Something other than a frame: the stream is broken from here on.
fn stream_breaker(rng: &mut StdRng) -> Vec<u8> {
    let mut f = BytesMut::new();
    match rng.random_range(0..4) {
        0 => f.put_int(i32::MAX),
        1 => f.put_int(-rng.random_range(1..1000)),
        2 => f.put_int(0x100000),
        _ => f.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
    }
    f.to_vec()
}

fn connect_request(rng: &mut StdRng) -> Vec<u8> {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: rng.random_range(1000..60_000),
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only: rng.random(),
    };
    let mut w = BytesMut::new();
    geokeeper_core::proto::Record::encode(&req, &mut w);
    let mut body = w.to_vec();
    match rng.random_range(0..10) {
        // A broken handshake now and then.
        0 => poke_int(rng, &mut body),
        1 => body.truncate(rng.random_range(0..body.len())),
        _ => {}
    }
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

#[derive(Default)]
struct AttackStats {
    frames: AtomicU64,
    connections: AtomicU64,
    closed_by_server: AtomicU64,
    reply_bytes: AtomicU64,
}

/// One attacking client: connections one after another, each fed hostile frames until the
/// server closes it or its share is spent. It goes on past its share while `more` is set
/// (the good clients are still at work), up to the deadline.
async fn attacker(
    addr: SocketAddr,
    seed: u64,
    frames: u64,
    deadline: Instant,
    more: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<AttackStats>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // A few never read what the server sends back.
    let reads = seed % 7 != 0;
    let mut sent = 0;
    let wanted = |sent: u64| sent < frames || more.load(Ordering::Relaxed);
    while wanted(sent) && Instant::now() < deadline {
        let Ok(stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (mut rd, mut wr) = stream.into_split();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drain = {
            let stats = stats.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut b = vec![0u8; 64 * 1024];
                loop {
                    match rd.read(&mut b).await {
                        Ok(0) | Err(_) => {
                            stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
                            closed.store(true, Ordering::Relaxed);
                            return;
                        }
                        Ok(n) => {
                            stats.reply_bytes.fetch_add(n as u64, Ordering::Relaxed);
                            if !reads {
                                // Stop reading: let the server's writes back up.
                                std::future::pending::<()>().await;
                            }
                        }
                    }
                }
            })
        };
        let mut out = Vec::new();
        match rng.random_range(0..20) {
            0 => out.extend(stream_breaker(&mut rng)),
            1 => out.extend_from_slice(b"ruok"),
            _ => out.extend(connect_request(&mut rng)),
        }
        let mut xid = 1;
        let per_conn = rng.random_range(1..100);
        for _ in 0..per_conn {
            // Once the server has closed it, the rest would only fill a dead socket.
            if !wanted(sent) || closed.load(Ordering::Relaxed) {
                break;
            }
            sent += 1;
            stats.frames.fetch_add(1, Ordering::Relaxed);
            if rng.random_range(0..200) == 0 {
                out.extend(stream_breaker(&mut rng));
            } else {
                let x = if rng.random_range(0..5) == 0 {
                    rng.random_range(-10..1)
                } else {
                    xid
                };
                out.extend(hostile_frame(&mut rng, x));
                xid += 1;
            }
            // Send in bursts of random size, sometimes split mid-frame.
            if out.len() > rng.random_range(0..4096) {
                let cut = rng.random_range(0..=out.len());
                let ok = tokio::time::timeout(Duration::from_secs(2), wr.write_all(&out[..cut]))
                    .await
                    .is_ok_and(|r| r.is_ok());
                out.drain(..cut);
                if !ok {
                    break;
                }
                // Now and then give the server time to answer before the next burst.
                if rng.random_range(0..4) == 0 {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), wr.write_all(&out)).await;
        // Half-close some, then let the server answer what it was sent: wait until no
        // reply came for 30 ms (or the server closed), at most 2 s.
        if rng.random() {
            let _ = wr.shutdown().await;
        }
        let until = Instant::now() + Duration::from_secs(2);
        let mut seen = stats.reply_bytes.load(Ordering::Relaxed);
        while reads && !closed.load(Ordering::Relaxed) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let now = stats.reply_bytes.load(Ordering::Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
        drain.abort();
    }
}

// ---------------------------------------------------------------------------------------
// The well-behaved sessions
// ---------------------------------------------------------------------------------------

/// Awaits a good client's operation, which must succeed within [`GOOD_OP_BOUND`].
async fn good<T, E: std::fmt::Debug>(
    what: &str,
    worst: &mut Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    let t = Instant::now();
    let r = match tokio::time::timeout(GOOD_OP_BOUND, f).await {
        Ok(r) => r,
        Err(_) => panic!("good operation {what} stalled for {GOOD_OP_BOUND:?}"),
    };
    *worst = (*worst).max(t.elapsed());
    r.unwrap_or_else(|e| panic!("good operation {what} failed: {e:?}"))
}

/// A good client's loop: creates, reads back, updates, lists, multis, deletes under its own
/// subtree until told to stop. Returns the data it expects to find afterwards, its
/// operation count and its slowest operation.
async fn good_client(
    addr: SocketAddr,
    id: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<(String, Vec<u8>)>, u64, Duration) {
    let mut worst = Duration::ZERO;
    // A 15 s session makes the client's own "no response" timer 6 s, above the test's
    // bound: with the default 6 s session it gives up after 2.4 s without a reply, which an
    // fsync on a busy shared disk can take (writes, and the pings queued behind them, wait
    // for it, in ZooKeeper too). The bound this test asserts is GOOD_OP_BOUND.
    let connector = Client::connector().with_session_timeout(Duration::from_secs(15));
    let c: Client = good("connect", &mut worst, connector.connect(&addr.to_string())).await;
    let root = format!("/good/c{id}");
    good(
        "create root",
        &mut worst,
        c.create(&root, b"", &persistent()),
    )
    .await;
    let mut expect = Vec::new();
    let mut ops = 0u64;
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) || k < 5 {
        let p = format!("{root}/n{k}");
        let v1 = format!("v1-{id}-{k}").into_bytes();
        good("create", &mut worst, c.create(&p, &v1, &persistent())).await;
        let (d, _) = good("get", &mut worst, c.get_data(&p)).await;
        assert_eq!(d, v1, "read back {p}");
        let v2 = format!("v2-{id}-{k}").into_bytes();
        let stat = good("set", &mut worst, c.set_data(&p, &v2, Some(0))).await;
        assert_eq!(stat.version, 1);
        let children = good("list", &mut worst, c.list_children(&root)).await;
        assert!(children.contains(&format!("n{k}")));
        let mut m = c.new_multi_writer();
        let q = format!("{root}/m{k}");
        m.add_create(&q, b"multi", &persistent())
            .expect("add_create");
        m.add_set_data(&p, b"v3", Some(1)).expect("add_set_data");
        good("multi", &mut worst, m.commit()).await;
        if k % 3 == 0 {
            good("delete", &mut worst, c.delete(&q, None)).await;
        } else {
            expect.push((q, b"multi".to_vec()));
        }
        expect.push((p, b"v3".to_vec()));
        ops += 7;
        k += 1;
    }
    (expect, ops, worst)
}

/// kazoo, the same idea through Python: the operations must all answer "ok".
fn kazoo_ops(rounds: usize) -> String {
    let mut ops = vec![r#"{"op": "create", "path": "/kz", "data": ""}"#.to_string()];
    for i in 0..rounds {
        ops.push(format!(
            r#"{{"op": "create", "path": "/kz/n{i}", "data": "a{i}"}}"#
        ));
        ops.push(format!(r#"{{"op": "get", "path": "/kz/n{i}"}}"#));
        ops.push(format!(
            r#"{{"op": "set", "path": "/kz/n{i}", "data": "b{i}", "version": 0}}"#
        ));
        ops.push(r#"{"op": "children", "path": "/kz"}"#.to_string());
        ops.push(format!(
            r#"{{"op": "multi", "ops": [{{"op": "create", "path": "/kz/m{i}", "data": "m"}}, {{"op": "check", "path": "/kz/n{i}", "version": 1}}]}}"#
        ));
        ops.push(format!(r#"{{"op": "exists", "path": "/kz/m{i}"}}"#));
    }
    format!("[{}]", ops.join(", "))
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_frames_from_many_connections_do_not_disturb_good_sessions() {
    let seed = env_u64("GK_HARDENING_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let frames = env_u64("GK_HARDENING_FRAMES").unwrap_or(500);
    let secs = env_u64("GK_HARDENING_SECS").unwrap_or(30);
    println!("hardening seed: {seed} (replay with GK_HARDENING_SEED={seed})");
    // The attackers reconnect hundreds of times; the per-address limit has its own test.
    let mut gk = Geokeeper::start("maxClientCnxns=0\nextendedTypesEnabled=true");
    let addr = gk.addr;
    let setup = Client::connect(&addr.to_string()).await.expect("connect");
    setup
        .create("/good", b"", &persistent())
        .await
        .expect("/good");
    setup.create("/fz", b"", &persistent()).await.expect("/fz");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stats = Arc::new(AttackStats::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    // The attack lasts until kazoo is done and for at least 3 s, whatever the frame count.
    let more = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            tokio::spawn(attacker(
                addr,
                seed.wrapping_add(i),
                frames,
                deadline,
                more.clone(),
                stats.clone(),
            ))
        })
        .collect();
    let goods: Vec<_> = (0..GOOD_CLIENTS)
        .map(|i| tokio::spawn(good_client(addr, i, stop.clone())))
        .collect();
    let kazoo_run = tokio::task::spawn_blocking(move || kazoo(addr, &kazoo_ops(15)));
    while !kazoo_run.is_finished() || started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    more.store(false, Ordering::Relaxed);

    for a in attackers {
        a.await.expect("attacker task");
    }
    let attack_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut expected = Vec::new();
    let mut good_ops = 0;
    let mut worst = Duration::ZERO;
    for g in goods {
        let (e, n, w) = g.await.expect("a good client failed");
        expected.extend(e);
        good_ops += n;
        worst = worst.max(w);
    }
    let kazoo_out = kazoo_run.await.expect("kazoo runner");
    assert!(
        !kazoo_out.contains("\"error\""),
        "kazoo saw an error: {kazoo_out}"
    );
    println!(
        "attack: {} frames on {} connections ({} closed by the server, {} reply bytes) in {:.1?}; \
         good: {good_ops} operations, slowest {worst:?}; kazoo: {} results, all ok",
        stats.frames.load(Ordering::Relaxed),
        stats.connections.load(Ordering::Relaxed),
        stats.closed_by_server.load(Ordering::Relaxed),
        stats.reply_bytes.load(Ordering::Relaxed),
        attack_time,
        kazoo_out.matches("\"ok\"").count(),
    );
    assert!(stats.frames.load(Ordering::Relaxed) >= ATTACKERS * frames.min(50));

    // Afterwards: the server answers a new session, and the data is what was written.
    assert!(gk.is_running(), "geokeeper died:\n{}", gk.log());
    let after = Client::connect(&addr.to_string())
        .await
        .expect("connect after");
    for (p, v) in &expected {
        let (d, _) = after
            .get_data(p)
            .await
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(&d, v, "{p}");
    }
    for c in 0..GOOD_CLIENTS {
        let mut children = after
            .list_children(&format!("/good/c{c}"))
            .await
            .expect("list");
        children.sort();
        let mut want: Vec<String> = expected
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&format!("/good/c{c}/")).map(String::from))
            .collect();
        want.sort();
        assert_eq!(children, want, "children of /good/c{c}");
    }
    for i in 0..15 {
        let (d, s) = after
            .get_data(&format!("/kz/n{i}"))
            .await
            .expect("kazoo node");
        assert_eq!((d, s.version), (format!("b{i}").into_bytes(), 1));
    }
    let log = gk.log();
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
    let count = |needle: &str| log.matches(needle).count();
    println!(
        "server log: {} bad frames or handshakes closed, {} unknown opcodes, {} marshalling errors on reads, {} connections closed by their clients",
        count("Close of session"),
        count("Received packet at server of unknown type"),
        count("marshalling error"),
        count("closing connection"),
    );
    if std::env::var_os("GK_HARDENING_LOG").is_some() {
        std::fs::write("/tmp/gk-hardening.log", &log).ok();
    }
    if let Some(kb) = gk.pid().and_then(peak_rss_kb) {
        println!("geokeeper peak RSS: {} MiB", kb / 1024);
        assert!(kb < 512 * 1024, "peak RSS {kb} KiB");
    }
    gk.kill();
}
