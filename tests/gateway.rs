//! The gateway: geokeeper following an Apache ZooKeeper 3.8 ensemble as an observer,
//! through ZooKeeper's own learner protocol. (Growing with issue 10. Today: the learner
//! role of `geokeeper_core::learner` driven by `geokeeper_relay::learner_link` registers
//! with a real 3-participant ensemble, syncs, and follows its committed stream; the tree it
//! builds must equal the ensemble's, znode by znode, stat by stat.)

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use geokeeper_core::learner::{Event, LearnerStart};
use geokeeper_core::proto::records::*;
use geokeeper_core::proto::txn::TxnEntry;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use geokeeper_core::tree::DataTree;
use geokeeper_relay::learner_link::{follow, LinkError, LinkSettings, Sink, Synced};
use support::gateway::{mntr, session, start_gateway, stat_of, wait_synced};
use support::gk::Geokeeper;
use support::java_ensemble::JavaEnsemble;
use support::java_zk::four_letter;
use support::rawzk::{decode_body, Body, RawZk};
use tokio::sync::mpsc;

/// Every znode's stat and data, by path.
type Dump = BTreeMap<String, (Stat, Option<Vec<u8>>)>;

/// Creates `/gw/<prefix><i>` for i in 0..n (data of varying length, one ACL of two kinds),
/// and returns the last zxid seen.
fn write(addr: SocketAddr, prefix: &str, n: usize) -> i64 {
    let mut z = session(addr);
    // Setup, not what is measured: a Java leader on a busy 2-core machine has taken over
    // 10 s for one create in a CI run.
    z.set_reply_timeout(std::time::Duration::from_secs(60));
    let _ = z.call(
        OpCode::Create,
        &Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: "/gw".into(),
                data: None,
                acl: geokeeper_core::acl::open_acl_unsafe(),
                flags: 0,
            },
        },
    );
    for i in 0..n {
        let acl = if i % 3 == 0 {
            geokeeper_core::acl::read_acl_unsafe()
        } else {
            geokeeper_core::acl::open_acl_unsafe()
        };
        let f = z
            .call(
                OpCode::Create,
                &Request::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: format!("/gw/{prefix}{i}"),
                        data: Some(vec![b'a' + (i % 26) as u8; i % 40].into()),
                        acl,
                        flags: 0,
                    },
                },
            )
            .reply
            .expect("create reply");
        assert_eq!(f.header.err, 0, "create {prefix}{i}");
    }
    z.last_zxid
}

/// The whole tree through a client: getData and getChildren2 of every znode.
fn dump_server(addr: SocketAddr) -> Dump {
    let mut z = session(addr);
    let mut out = Dump::new();
    let mut todo = vec!["/".to_string()];
    while let Some(path) = todo.pop() {
        let call = |z: &mut RawZk, op: OpCode, req: Request| {
            let f = z.call(op, &req).reply.expect("reply");
            assert_eq!(f.header.err, 0, "{} {path}", op.name());
            decode_body(op as i32, &f.body)
        };
        let Body::GetData(d) = call(
            &mut z,
            OpCode::GetData,
            Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }),
        ) else {
            panic!("getData {path}");
        };
        let Body::GetChildren2(kids) = call(
            &mut z,
            OpCode::GetChildren2,
            Request::GetChildren2(GetChildren2Request {
                path: path.clone(),
                watch: false,
            }),
        ) else {
            panic!("getChildren2 {path}");
        };
        for k in kids.children {
            todo.push(if path == "/" {
                format!("/{k}")
            } else {
                format!("{path}/{k}")
            });
        }
        out.insert(path, (d.stat, d.data.map(|b| b.to_vec())));
    }
    out
}

fn dump_tree(t: &DataTree) -> Dump {
    t.walk()
        .into_iter()
        .filter_map(|p| {
            let n = t.get(&p)?;
            let v = (n.to_stat(), n.data.map(<[u8]>::to_vec));
            Some((p, v))
        })
        .collect()
}

/// `/zookeeper/config` is each server's own (every Java server writes its local
/// configuration there at startup, with its own mtime): not compared.
fn assert_same(server: &Dump, learner: &Dump) {
    for (path, v) in server {
        if path == "/zookeeper/config" {
            continue;
        }
        assert_eq!(learner.get(path), Some(v), "{path}: ensemble vs learner");
    }
    let extra: Vec<&String> = learner
        .keys()
        .filter(|p| !server.contains_key(*p))
        .collect();
    assert!(
        extra.is_empty(),
        "the learner has znodes the ensemble lacks: {extra:?}"
    );
}

/// Applies events to `tree` until `until` says stop; panics after `within`. Returns how
/// many snapshots (SNAP syncs) came.
async fn apply_until(
    rx: &mut mpsc::Receiver<Event>,
    tree: &mut DataTree,
    within: Duration,
    mut until: impl FnMut(&Event, &DataTree) -> bool,
) -> usize {
    let deadline = Instant::now() + within;
    let mut snaps = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, rx.recv())
            .await
            .expect("events from the leader in time")
            .expect("the link is up");
        match &e {
            Event::Snapshot { tree: t, .. } => {
                snaps += 1;
                *tree = (**t).clone()
            }
            Event::Committed(entry) => {
                let txn = TxnEntry::decode(&entry.bytes).expect("a committed txn decodes");
                tree.apply(&txn.header, &txn.body, &mut Vec::new());
                if let Some(d) = txn.digest {
                    assert_eq!(
                        d.tree_digest,
                        tree.digest(),
                        "digest after {:#x}",
                        entry.zxid
                    );
                }
            }
            Event::Truncate { zxid } => panic!("a fresh learner was told to truncate to {zxid:#x}"),
            _ => {}
        }
        if until(&e, tree) {
            return snaps;
        }
    }
}

/// A link whose events go to a channel, as a test reads them.
struct ChannelSink(mpsc::Sender<Event>);

impl Sink for ChannelSink {
    async fn events(&mut self, events: Vec<Event>) -> Result<(), LinkError> {
        for e in events {
            self.0.send(e).await.map_err(|_| LinkError::ServerGone)?;
        }
        Ok(())
    }
    async fn up_to_date(&mut self, s: Synced) -> Result<(), LinkError> {
        self.0
            .send(Event::UpToDate { epoch: s.epoch })
            .await
            .map_err(|_| LinkError::ServerGone)
    }
    async fn ping(&mut self, _zxid: i64) -> Result<Vec<(i64, i32)>, LinkError> {
        Ok(Vec::new())
    }
}

fn spawn_link(
    settings: LinkSettings,
    start: LearnerStart,
) -> (
    tokio::task::JoinHandle<Result<(), LinkError>>,
    mpsc::Receiver<Event>,
) {
    let (tx, rx) = mpsc::channel(4096);
    let link = tokio::spawn(async move {
        let (_keep, mut outgoing) = mpsc::unbounded_channel();
        follow(&settings, start, &mut ChannelSink(tx), &mut outgoing).await
    });
    (link, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learner_syncs_with_a_java_ensemble_and_follows_its_commits() {
    let e = tokio::task::spawn_blocking(|| JavaEnsemble::start(3, ""))
        .await
        .expect("ensemble");
    let leader = e.leader().expect("a leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let (lead_addr, follow_addr) = (e.members[leader].client, e.members[follower].client);
    tokio::task::spawn_blocking(move || write(lead_addr, "before-", 300))
        .await
        .expect("writes");

    let settings = LinkSettings {
        quorum_addrs: e.members.iter().map(|m| m.quorum.to_string()).collect(),
        connect_timeout: Duration::from_secs(1),
        sync_timeout: Duration::from_secs(10),
        follow_timeout: Duration::from_secs(5),
        max_len: geokeeper_core::proto::frame::max_record_len(
            geokeeper_core::proto::frame::DEFAULT_MAX_BUFFER,
            None,
        ),
        first: 0,
        tls: None,
    };
    let start = LearnerStart {
        server_id: 42,
        last_zxid: 0,
        accepted_epoch: 0,
        current_epoch: 0,
    };
    let (link, mut rx) = spawn_link(settings, start);
    let mut tree = DataTree::new();
    let snaps = apply_until(&mut rx, &mut tree, Duration::from_secs(30), |e, _| {
        matches!(e, Event::UpToDate { .. })
    })
    .await;
    assert_eq!(snaps, 1, "a fresh learner behind 300 writes is sent a SNAP");
    let server = tokio::task::spawn_blocking(move || dump_server(lead_addr))
        .await
        .expect("dump");
    assert!(server.contains_key("/gw/before-299"));
    assert_same(&server, &dump_tree(&tree));

    // Writes through a follower reach the observer as INFORMs.
    let last = tokio::task::spawn_blocking(move || write(follow_addr, "after-", 100))
        .await
        .expect("writes");
    apply_until(&mut rx, &mut tree, Duration::from_secs(30), |_, t| {
        t.last_zxid() >= last
    })
    .await;
    let server = tokio::task::spawn_blocking(move || dump_server(lead_addr))
        .await
        .expect("dump");
    assert!(server.contains_key("/gw/after-99"));
    assert_same(&server, &dump_tree(&tree));
    assert!(!link.is_finished(), "the link is still up");
    link.abort();

    // Rejoining from its last zxid while the leader still has the history: a DIFF.
    let last = tokio::task::spawn_blocking(move || write(lead_addr, "while-away-", 50))
        .await
        .expect("writes");
    let epoch = (tree.last_zxid() >> 32) as u32;
    let start = LearnerStart {
        server_id: 42,
        last_zxid: tree.last_zxid(),
        accepted_epoch: epoch,
        current_epoch: epoch,
    };
    let settings = LinkSettings {
        quorum_addrs: e.members.iter().map(|m| m.quorum.to_string()).collect(),
        connect_timeout: Duration::from_secs(1),
        sync_timeout: Duration::from_secs(10),
        follow_timeout: Duration::from_secs(5),
        max_len: 1 << 21,
        first: 0,
        tls: None,
    };
    let (link, mut rx) = spawn_link(settings, start);
    let mut up = false;
    let snaps = apply_until(&mut rx, &mut tree, Duration::from_secs(30), |e, t| {
        up |= matches!(e, Event::UpToDate { .. });
        up && t.last_zxid() >= last
    })
    .await;
    assert_eq!(
        snaps, 0,
        "a learner that missed 50 writes catches up by DIFF"
    );
    let server = tokio::task::spawn_blocking(move || dump_server(lead_addr))
        .await
        .expect("dump");
    assert!(server.contains_key("/gw/while-away-49"));
    assert_same(&server, &dump_tree(&tree));
    link.abort();
}

// ---- geokeeper serving clients as an observer of the ensemble (the gateway) ----

/// One call that must succeed; its decoded body.
fn ok(z: &mut RawZk, op: OpCode, req: Request) -> Body {
    let f = z.call(op, &req).reply.expect("reply");
    assert_eq!(f.header.err, 0, "{} {req:?}", op.name());
    decode_body(op as i32, &f.body)
}

fn err_of(z: &mut RawZk, op: OpCode, req: Request) -> i32 {
    z.call(op, &req).reply.expect("reply").header.err
}

fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.into(),
            data: Some(data.to_vec().into()),
            acl: geokeeper_core::acl::open_acl_unsafe(),
            flags,
        },
    }
}

fn get(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch,
    })
}

#[test]
fn a_gateway_serves_clients_of_a_java_ensemble_as_an_observer() {
    let e = JavaEnsemble::start(3, "");
    let leader = e.leader().expect("a leader");
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let (lead, fol) = (e.members[leader].client, e.members[follower].client);
    write(lead, "before-", 200);

    let data = tempfile::tempdir().expect("tempdir");
    let mut gk = start_gateway(&e, 10, data.path(), "");
    let m = wait_synced(&gk, Duration::from_secs(30));
    assert_eq!(m["zk_server_state"], "observer");
    assert_eq!(m["zk_observer_sync_type"], "SNAP", "{m:?}");
    let srvr = four_letter(gk.addr, "srvr");
    assert!(srvr.contains("Mode: observer"), "{srvr}");
    // The Java leader counts the gateway as a synced observer.
    let lm = mntr(lead);
    assert_eq!(
        lm.get("zk_synced_observers").map(String::as_str),
        Some("1"),
        "{lm:?}"
    );

    // A new session through the gateway is a global session: created by the leader.
    let mut z = session(gk.addr);
    let sid = z.session_id();
    assert_eq!(
        sid >> 56,
        10,
        "the gateway hands out ids with its own server id"
    );
    // Reads of what was there before; writes forwarded and answered when committed.
    let Body::GetData(d) = ok(&mut z, OpCode::GetData, get("/gw/before-7", false)) else {
        panic!("getData")
    };
    assert_eq!(d.data.as_deref(), Some(&b"hhhhhhh"[..]));
    ok(&mut z, OpCode::Create, create("/served", b"one", 0));
    let Body::GetData(d) = ok(&mut z, OpCode::GetData, get("/served", true)) else {
        panic!("getData")
    };
    assert_eq!(
        d.data.as_deref(),
        Some(&b"one"[..]),
        "a client reads its own write"
    );
    assert_eq!(d.stat.czxid, z.last_zxid, "the reply's zxid is the write's");
    // The write is the ensemble's.
    let mut j = session(fol);
    ok(
        &mut j,
        OpCode::Sync,
        Request::Sync(SyncRequest { path: "/".into() }),
    );
    assert_eq!(stat_of(&mut j, "/served"), Some(d.stat));
    // An error comes back as the leader's error.
    assert_eq!(
        err_of(&mut z, OpCode::Create, create("/served", b"", 0)),
        -110
    );
    assert_eq!(
        err_of(&mut z, OpCode::Create, create("/no/parent", b"", 0)),
        -101
    );
    // A write made elsewhere fires the gateway client's watch, before the data is read.
    ok(
        &mut j,
        OpCode::SetData,
        Request::SetData(SetDataRequest {
            path: "/served".into(),
            data: Some(b"two".to_vec().into()),
            version: -1,
        }),
    );
    let ex = z.call(
        OpCode::Sync,
        &Request::Sync(SyncRequest {
            path: "/served".into(),
        }),
    );
    assert_eq!(ex.reply.expect("sync").header.err, 0);
    assert_eq!(
        ex.notifications.len(),
        1,
        "NodeDataChanged before the sync's reply"
    );
    let Body::GetData(d) = ok(&mut z, OpCode::GetData, get("/served", false)) else {
        panic!("getData")
    };
    assert_eq!(
        d.data.as_deref(),
        Some(&b"two"[..]),
        "sync then read sees the write"
    );
    // Pipelined writes and reads of one session are answered in order.
    let mut xids = Vec::new();
    for i in 0..50 {
        let x = z.take_xid();
        z.send(x, OpCode::Create, &create(&format!("/served-{i}"), b"x", 0))
            .expect("send");
        xids.push(x);
        let x = z.take_xid();
        z.send(
            x,
            OpCode::Exists,
            &Request::Exists(ExistsRequest {
                path: format!("/served-{i}"),
                watch: false,
            }),
        )
        .expect("send");
        xids.push(x);
    }
    for x in xids {
        let f = z.read_frame().expect("reply");
        assert_eq!(f.header.xid, x, "replies in request order");
        assert_eq!(f.header.err, 0, "xid {x}");
    }
    // An ephemeral through the gateway belongs to the gateway's session at the leader.
    ok(&mut z, OpCode::Create, create("/eph", b"", 1));
    ok(
        &mut j,
        OpCode::Sync,
        Request::Sync(SyncRequest { path: "/".into() }),
    );
    assert_eq!(
        stat_of(&mut j, "/eph").map(|s| s.ephemeral_owner),
        Some(sid)
    );

    // The session moves to a Java follower and back, keeping its ephemeral.
    let pw = z.response.passwd.to_vec();
    let seen = z.last_zxid;
    z.disconnect();
    let moved = RawZk::connect(fol, sid, &pw, seen, 30_000).expect("reconnect");
    assert_eq!(
        moved.session_id(),
        sid,
        "the follower takes the session over"
    );
    moved.disconnect();
    let mut back = RawZk::connect(gk.addr, sid, &pw, seen, 30_000).expect("reconnect");
    assert_eq!(
        back.session_id(),
        sid,
        "the gateway revalidates it with the leader"
    );
    assert!(stat_of(&mut back, "/eph").is_some());
    // A Java session moves to the gateway too (REVALIDATE at the leader).
    let (jsid, jpw) = (j.session_id(), j.response.passwd.to_vec());
    let jseen = j.last_zxid;
    j.disconnect();
    let mut j2 = RawZk::connect(gk.addr, jsid, &jpw, jseen, 30_000).expect("reconnect");
    assert_eq!(j2.session_id(), jsid);
    assert!(stat_of(&mut j2, "/served").is_some());
    // closeSession through the gateway: the leader removes the ephemeral.
    let x = back.take_xid();
    back.send(x, OpCode::CloseSession, &Request::CloseSession)
        .expect("close");
    let f = back.await_reply(x).reply.expect("close reply");
    assert_eq!(f.header.err, 0);
    let mut l = session(lead);
    ok(
        &mut l,
        OpCode::Sync,
        Request::Sync(SyncRequest { path: "/".into() }),
    );
    assert_eq!(
        stat_of(&mut l, "/eph"),
        None,
        "closing the session removed its ephemeral"
    );
    // A wrong password is refused (and, as in ZooKeeper, the session's connection here
    // is closed first).
    let bad = RawZk::connect(gk.addr, jsid, &[7; 16], jseen, 30_000).expect("connect");
    assert_eq!(bad.response.time_out, 0, "a wrong password is refused");
    // A session the leader closed is refused.
    let gone = RawZk::connect(gk.addr, sid, &pw, seen, 30_000).expect("connect");
    assert_eq!(gone.response.time_out, 0, "a closed session is refused");

    // The gateway's tree is the ensemble's, znode by znode.
    let last = write(fol, "after-", 50);
    let deadline = Instant::now() + Duration::from_secs(20);
    while mntr(gk.addr)["zk_observer_last_zxid"] != format!("0x{last:x}") {
        assert!(Instant::now() < deadline, "gateway caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_same(&dump_server(lead), &dump_server(gk.addr));

    // A restart rejoins from the data directory by DIFF; nothing is lost.
    gk.restart();
    let m = wait_synced(&gk, Duration::from_secs(30));
    assert_eq!(m["zk_observer_sync_type"], "DIFF", "{m:?}");
    write(lead, "while-restarted-", 20);
    let last = write(lead, "after-restart-", 20);
    let deadline = Instant::now() + Duration::from_secs(20);
    while mntr(gk.addr)["zk_observer_last_zxid"] != format!("0x{last:x}") {
        assert!(Instant::now() < deadline, "gateway caught up after restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_same(&dump_server(lead), &dump_server(gk.addr));
    assert_eq!(mntr(gk.addr)["zk_digest_mismatches_count"], "0");
}

/// Reconnects a session to `addr` until the server answers the ConnectRequest (a
/// gateway takes none while it is out of sync): the session, or its refusal
/// (`response.time_out == 0`).
fn reconnect(addr: SocketAddr, sid: i64, pw: &[u8], seen: i64, within: Duration) -> RawZk {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(z) = RawZk::connect(addr, sid, pw, seen, 6_000) {
            return z;
        }
        assert!(
            Instant::now() < deadline,
            "no answer from {addr} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The gateway's link to the leader cut (a forwarder in front of every quorum port):
/// shorter than a session's timeout, the session survives with its ephemeral; longer,
/// the leader expires it, and the gateway applies the expiry.
#[test]
fn a_cut_link_keeps_sessions_shorter_than_their_timeout() {
    use support::tcp_cut::TcpCut;
    let e = JavaEnsemble::start(3, "");
    let cuts: Vec<TcpCut> = e.members.iter().map(|m| TcpCut::start(m.quorum)).collect();
    let lines: String = e
        .members
        .iter()
        .zip(&cuts)
        .map(|(m, c)| {
            format!(
                "server.{}={}:{}:{}\n",
                m.id,
                c.addr.ip(),
                c.addr.port(),
                m.election.port()
            )
        })
        .collect();
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("myid"), "11\n").expect("myid");
    let gk = Geokeeper::start_on(
        data.path(),
        &format!(
            "tickTime=500\ninitLimit=20\nsyncLimit=4\npeerType=observer\n4lw.commands.whitelist=*\n{lines}server.11=127.0.0.1:1:2:observer\n"
        ),
    );
    wait_synced(&gk, Duration::from_secs(30));
    let leader = e.leader().expect("leader");
    let lead = e.members[leader].client;

    // A session of 6 s with an ephemeral, through the gateway.
    let mut z = reconnect(gk.addr, 0, &[0; 16], 0, Duration::from_secs(10));
    let (sid, pw) = (z.session_id(), z.response.passwd.to_vec());
    assert_eq!(z.response.time_out, 6_000);
    let f = z.call(OpCode::Create, &create("/cut", b"", 1)).reply;
    assert!(
        f.as_ref().is_ok_and(|f| f.header.err == 0),
        "{f:?}\n{}",
        gk.log()
    );
    // The gateway reports the session's pings to the leader: it outlives its timeout.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        let f = z
            .call_with_xid(-2, OpCode::Ping, &Request::Ping)
            .reply
            .expect("ping");
        assert_eq!(f.header.err, 0);
    }
    let mut l = session(lead);
    assert!(
        stat_of(&mut l, "/cut").is_some(),
        "kept alive through the gateway"
    );
    drop(l);

    // A 2 s cut: the gateway loses its leader and closes its clients; the session is
    // back within its timeout, with its ephemeral.
    let seen = z.last_zxid;
    cuts[leader].refuse(true);
    cuts[leader].cut();
    assert!(
        matches!(z.closed_within(Duration::from_secs(5)), Ok(true)),
        "the gateway closes its clients when it loses the leader"
    );
    std::thread::sleep(Duration::from_secs(2));
    cuts[leader].refuse(false);
    let mut z = reconnect(gk.addr, sid, &pw, seen, Duration::from_secs(20));
    assert_eq!(
        z.session_id(),
        sid,
        "the session survived a short cut\n{}\n{}",
        gk.log(),
        e.log_tail(leader, 60)
    );
    assert!(stat_of(&mut z, "/cut").is_some());
    let m = mntr(gk.addr);
    assert_eq!(m["zk_observer_sync_type"], "DIFF", "{m:?}");
    let seen = z.last_zxid;

    // A 10 s cut, longer than the session's 6 s: the leader expires it.
    cuts[leader].refuse(true);
    cuts[leader].cut();
    z.disconnect();
    std::thread::sleep(Duration::from_secs(10));
    let mut l = session(lead);
    assert!(stat_of(&mut l, "/cut").is_none(), "expired at the leader");
    cuts[leader].refuse(false);
    let z = reconnect(gk.addr, sid, &pw, seen, Duration::from_secs(20));
    assert_eq!(z.response.time_out, 0, "an expired session is refused");
    let mut y = reconnect(gk.addr, 0, &[0; 16], 0, Duration::from_secs(10));
    assert!(
        stat_of(&mut y, "/cut").is_none(),
        "the gateway applied the expiry"
    );
    assert_same(&dump_server(lead), &dump_server(gk.addr));
}

/// What one writer saw: creates acknowledged, and creates whose fate it could not know
/// (the connection was lost before the reply).
#[derive(Default)]
struct Outcomes {
    acked: Vec<String>,
    unknown: Vec<String>,
}

/// Creates `/kill/<name>-<i>` one after another through `addr` until `stop`, keeping
/// its session across lost connections.
fn writer(
    addr: SocketAddr,
    name: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Outcomes {
    use std::sync::atomic::Ordering;
    let mut out = Outcomes::default();
    let mut z = reconnect(addr, 0, &[0; 16], 0, Duration::from_secs(30));
    let (mut sid, mut pw) = (z.session_id(), z.response.passwd.to_vec());
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let path = format!("/kill/{name}-{i}");
        i += 1;
        match z.call(OpCode::Create, &create(&path, b"w", 0)).reply {
            Ok(f) if f.header.err == 0 => out.acked.push(path),
            Ok(f) => panic!("{path}: error {} through the gateway", f.header.err),
            Err(_) => {
                out.unknown.push(path);
                let seen = z.last_zxid;
                z = reconnect(addr, sid, &pw, seen, Duration::from_secs(60));
                if z.response.time_out == 0 {
                    // Expired meanwhile: a new session.
                    z = reconnect(addr, 0, &[0; 16], seen, Duration::from_secs(60));
                    (sid, pw) = (z.session_id(), z.response.passwd.to_vec());
                }
            }
        }
    }
    out
}

/// The leader SIGKILLed under load through the gateway, over seeded rounds: the gateway
/// follows the new leader without a restart, every write it acknowledged is in the
/// ensemble, and its tree equals the leader's (a transaction applied twice or skipped
/// would show). `GEOKEEPER_GATEWAY_KILL_ROUNDS` runs more rounds.
#[test]
fn the_leader_killed_under_load_loses_no_acknowledged_write() {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let rounds: u64 = std::env::var("GEOKEEPER_GATEWAY_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("GEOKEEPER_GATEWAY_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("GEOKEEPER_GATEWAY_KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut e = JavaEnsemble::start(3, "");
    let data = tempfile::tempdir().expect("tempdir");
    let gk = start_gateway(&e, 12, data.path(), "");
    wait_synced(&gk, Duration::from_secs(30));
    let mut root = session(gk.addr);
    ok(&mut root, OpCode::Create, create("/kill", b"", 0));
    let mut all = Outcomes::default();
    let mut epochs = std::collections::BTreeSet::new();
    let mut syncs = Vec::new();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (addr, stop) = (gk.addr, stop.clone());
                std::thread::spawn(move || writer(addr, format!("r{round}w{w}"), stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        let leader = e.leader().expect("a leader");
        e.kill(leader);
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..3000)));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let o = w.join().expect("writer");
            all.acked.extend(o.acked);
            all.unknown.extend(o.unknown);
        }
        e.restart(leader);
        e.wait_serving(Duration::from_secs(60));
        let m = wait_synced(&gk, Duration::from_secs(60));
        epochs.insert(m["zk_observer_epoch"].clone());
        syncs.push(m["zk_observer_sync_type"].clone());
    }
    // Everything settles: the gateway at the leader's last zxid.
    let lead = e.members[e.leader().expect("a leader")].client;
    let mut l = session(lead);
    ok(&mut l, OpCode::Create, create("/kill-done", b"", 0));
    let last = l.last_zxid;
    let deadline = Instant::now() + Duration::from_secs(30);
    while mntr(gk.addr)["zk_observer_last_zxid"] != format!("0x{last:x}") {
        assert!(Instant::now() < deadline, "gateway caught up\n{}", gk.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ensemble = dump_server(lead);
    assert_same(&ensemble, &dump_server(gk.addr));
    for p in &all.acked {
        assert!(
            ensemble.contains_key(p),
            "acknowledged {p} is lost (seed {seed})"
        );
    }
    let known: std::collections::HashSet<&String> = all.acked.iter().chain(&all.unknown).collect();
    let created: Vec<&String> = ensemble
        .keys()
        .filter(|p| p.starts_with("/kill/"))
        .collect();
    for p in &created {
        assert!(known.contains(p), "{p} was never asked for (seed {seed})");
    }
    assert!(
        all.acked.len() > 20 * rounds as usize,
        "the load went on: {} acknowledged",
        all.acked.len()
    );
    assert!(
        epochs.len() as u64 >= rounds.min(2),
        "new epochs followed: {epochs:?}"
    );
    assert_eq!(mntr(gk.addr)["zk_digest_mismatches_count"], "0");
    eprintln!(
        "{} rounds: {} writes acknowledged, {} of unknown fate ({} of them applied), epochs {epochs:?}, resyncs {syncs:?}",
        rounds,
        all.acked.len(),
        all.unknown.len(),
        all.unknown.iter().filter(|p| ensemble.contains_key(*p)).count()
    );
}

/// `localSessionsEnabled` on the ensemble and the gateway: a session that only reads and
/// writes persistent nodes never reaches the leader's session table; its first
/// ephemeral upgrades it. With `readonlymode.enabled`, a gateway whose ensemble lost its
/// quorum serves read-only sessions (isro `ro`, writes NotReadOnly) and goes back to
/// read-write when the quorum returns.
#[test]
fn local_sessions_and_read_only_mode() {
    let mut e = JavaEnsemble::start(3, "localSessionsEnabled=true");
    let data = tempfile::tempdir().expect("tempdir");
    let gk = start_gateway(
        &e,
        13,
        data.path(),
        "localSessionsEnabled=true\nreadonlymode.enabled=true",
    );
    wait_synced(&gk, Duration::from_secs(30));
    let leader = e.leader().expect("leader");
    let lead = e.members[leader].client;
    let global = || mntr(lead)["zk_global_sessions"].clone();
    let before = global();

    let mut z = session(gk.addr);
    let sid = z.session_id();
    ok(&mut z, OpCode::Create, create("/local", b"l", 0));
    let Body::GetData(d) = ok(&mut z, OpCode::GetData, get("/local", false)) else {
        panic!("getData")
    };
    assert_eq!(d.data.as_deref(), Some(&b"l"[..]));
    assert_eq!(global(), before, "a local session is not the leader's");
    ok(&mut z, OpCode::Create, create("/local/eph", b"", 1));
    let mut l = session(lead);
    ok(
        &mut l,
        OpCode::Sync,
        Request::Sync(SyncRequest { path: "/".into() }),
    );
    assert_eq!(
        stat_of(&mut l, "/local/eph").map(|s| s.ephemeral_owner),
        Some(sid),
        "the upgraded session owns its ephemeral at the leader"
    );
    drop(l);

    // The quorum lost: the gateway serves reads, read-only.
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &others {
        e.kill(i);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while four_letter(gk.addr, "isro") != "ro" {
        assert!(
            Instant::now() < deadline,
            "read-only: {}",
            four_letter(gk.addr, "isro")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut ro = RawZk::connect_with(gk.addr, 0, &[0; 16], 0, 10_000, true).expect("ro");
    assert!(ro.response.read_only, "a read-only session");
    let Body::GetData(d) = ok(&mut ro, OpCode::GetData, get("/local", false)) else {
        panic!("getData")
    };
    assert_eq!(d.data.as_deref(), Some(&b"l"[..]));
    assert_eq!(err_of(&mut ro, OpCode::Create, create("/ro", b"", 0)), -119);
    assert!(
        RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).is_err(),
        "a client that does not allow read-only is refused"
    );

    // The quorum is back: read-write again; the read-only connection is closed.
    for &i in &others {
        e.restart(i);
    }
    e.wait_serving(Duration::from_secs(60));
    wait_synced(&gk, Duration::from_secs(60));
    assert_eq!(four_letter(gk.addr, "isro"), "rw");
    assert!(matches!(ro.closed_within(Duration::from_secs(5)), Ok(true)));
    let mut z = session(gk.addr);
    ok(&mut z, OpCode::Create, create("/rw-again", b"", 0));
}

/// `observerMasterPort`: the gateway attaches to a follower's ObserverMaster, off the
/// leader, and is served there as by the leader.
#[test]
fn a_gateway_attaches_to_a_followers_observer_master() {
    let ips = JavaEnsemble::server_addresses(3);
    // A port free on all three addresses.
    let port = (0..200)
        .map(|_| rand::random_range(20_000u16..60_000))
        .find(|&p| {
            ips.iter()
                .all(|ip| std::net::TcpListener::bind((ip.as_str(), p)).is_ok())
        })
        .expect("a free port");
    let e = JavaEnsemble::start_on_addresses(&ips, &format!("observerMasterPort={port}"));
    let leader = e.leader().expect("leader");
    let data = tempfile::tempdir().expect("tempdir");
    let gk = start_gateway(&e, 15, data.path(), &format!("observerMasterPort={port}"));
    let m = wait_synced(&gk, Duration::from_secs(30));
    let master: SocketAddr = m["zk_observer_leader"].parse().expect("an address");
    assert_eq!(master.port(), port, "attached to an ObserverMaster: {m:?}");
    // A follower's, not the leader's. (Asked now: an election under load may have moved
    // the leadership since the ensemble started.)
    let attached = (0..e.members.len())
        .find(|&i| e.members[i].client.ip() == master.ip())
        .expect("a member at the master's address");
    assert_eq!(
        e.mode(attached).as_deref(),
        Some("follower"),
        "attached to {master}, which is not a follower: {m:?}"
    );
    // Sessions, writes, sync and reads through the follower's ObserverMaster.
    let mut z = session(gk.addr);
    ok(&mut z, OpCode::Create, create("/via-master", b"m", 1));
    ok(
        &mut z,
        OpCode::Sync,
        Request::Sync(SyncRequest { path: "/".into() }),
    );
    let Body::GetData(d) = ok(&mut z, OpCode::GetData, get("/via-master", false)) else {
        panic!("getData")
    };
    assert_eq!(d.data.as_deref(), Some(&b"m"[..]));
    let mut l = session(e.members[leader].client);
    ok(
        &mut l,
        OpCode::Sync,
        Request::Sync(SyncRequest { path: "/".into() }),
    );
    assert_eq!(
        stat_of(&mut l, "/via-master").map(|s| s.ephemeral_owner),
        Some(z.session_id())
    );
}
