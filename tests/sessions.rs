//! Sessions against a real geokeeper: ephemerals live and die with their session, a
//! session expires when its client goes silent (and the other sessions' watches fire), a
//! session survives losing its TCP connection and is resumed with its id and password,
//! a wrong password or an expired session is refused, and the watches a client held are
//! re-registered on reconnect (setWatches), firing for whatever it missed meanwhile.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::Request;
use support::gk::Geokeeper;
use support::rawzk::{zookeeper_password, Exchange, RawZk, SET_WATCHES_XID};
use support::tcp_cut::TcpCut;
use support::zkc::{
    connect, connect_with_timeout, ephemeral, ev, fired, mode, next, persistent, within, PROMPT,
};
use zookeeper_client::{AddWatchMode, Client, CreateMode, Error, EventType, SessionState};

use EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};

/// Server-side session timeouts with `tickTime=2000`: min 2 ticks, max 20 ticks.
const MIN_TIMEOUT_MS: i32 = 4000;
const MAX_TIMEOUT_MS: i32 = 40000;

fn world() -> geokeeper_core::proto::records::Acl {
    geokeeper_core::proto::records::Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }
}

fn raw_create(z: &mut RawZk, path: &str, flags: i32) -> Exchange {
    z.call(
        OpCode::Create2,
        &Request::Create {
            op: OpCode::Create2,
            req: CreateRequest {
                path: path.into(),
                data: None,
                acl: vec![world()],
                flags,
            },
        },
    )
}

fn raw_ok(x: Exchange) -> Exchange {
    assert_eq!(x.reply.as_ref().expect("reply").header.err, 0, "{x:?}");
    x
}

fn events(x: &Exchange) -> Vec<(i32, String)> {
    x.notifications
        .iter()
        .map(|n| (n.event.r#type, n.event.path.clone()))
        .collect()
}

/// Waits until the client's session state is `want`.
async fn state_becomes(c: &Client, want: SessionState, within_: Duration) {
    let mut sw = c.state_watcher();
    within(within_, async {
        let mut s = sw.state();
        while s != want {
            s = sw.changed().await;
        }
    })
    .await;
}

#[tokio::test]
async fn ephemerals_are_deleted_when_their_session_closes() {
    let gk = Geokeeper::start("");
    let owner = connect(gk.addr).await;
    let watcher = connect(gk.addr).await;
    watcher.create("/dir", b"", &persistent()).await.unwrap();
    owner.create("/e", b"", &ephemeral()).await.unwrap();
    owner.create("/dir/x", b"", &ephemeral()).await.unwrap();
    let (_, seq) = owner
        .create("/dir/s-", b"", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    let seq_path = format!("/dir/s-{seq}");

    let (_, we) = watcher.check_and_watch_stat("/e").await.unwrap();
    let (_, _, wx) = watcher.get_and_watch_data("/dir/x").await.unwrap();
    let (_, wd) = watcher.list_and_watch_children("/dir").await.unwrap();
    let mut pw = watcher
        .watch(&seq_path, AddWatchMode::Persistent)
        .await
        .unwrap();

    drop(owner); // closes the session

    assert_eq!(ev(&fired(we).await), (NodeDeleted, "/e"));
    assert_eq!(ev(&fired(wx).await), (NodeDeleted, "/dir/x"));
    assert_eq!(ev(&fired(wd).await), (NodeChildrenChanged, "/dir"));
    assert_eq!(ev(&next(&mut pw).await), (NodeDeleted, seq_path.as_str()));
    assert!(watcher.list_children("/dir").await.unwrap().is_empty());
    assert_eq!(watcher.check_stat("/e").await.unwrap(), None);
    // The parent's pzxid moved to the close; its client-visible cversion counts the deletes.
    let (_, st) = watcher.get_children("/dir").await.unwrap();
    assert_eq!((st.num_children, st.cversion), (0, 4));
}

#[test]
fn new_sessions_get_zookeepers_id_password_and_negotiated_timeout() {
    let gk = Geokeeper::start("");
    for (asked, got) in [
        (1, MIN_TIMEOUT_MS),
        (-5, MIN_TIMEOUT_MS),
        (5000, 5000),
        (100_000, MAX_TIMEOUT_MS),
    ] {
        let z = RawZk::connect(gk.addr, 0, &[0; 16], 0, asked).unwrap();
        let r = &z.response;
        assert_eq!(r.time_out, got, "asked for {asked}");
        assert_eq!(r.protocol_version, 0);
        assert_eq!(
            r.session_id >> 56,
            1,
            "standalone server id 1 in the top byte"
        );
        assert_eq!(&r.passwd[..], &zookeeper_password(r.session_id)[..]);
    }
}

#[tokio::test]
async fn session_expires_when_its_client_stops_pinging() {
    let gk = Geokeeper::start("");
    // A raw client that connects, creates an ephemeral, then says nothing at all.
    let mut silent = RawZk::connect(gk.addr, 0, &[0; 16], 0, MIN_TIMEOUT_MS).unwrap();
    assert_eq!(silent.response.time_out, MIN_TIMEOUT_MS);
    let sid = silent.session_id();
    let passwd = silent.response.passwd.to_vec();
    // The session's clock starts when the create arrives, before its (fsynced) reply.
    let last_touch = Instant::now();
    raw_ok(raw_create(&mut silent, "/silent", 1));

    // A crate client with the same short timeout keeps itself alive by pinging.
    let alive = connect_with_timeout(gk.addr, Duration::from_millis(4000)).await;
    assert_eq!(alive.session_timeout(), Duration::from_millis(4000));
    alive.create("/alive", b"", &ephemeral()).await.unwrap();

    let observer = connect(gk.addr).await;
    let (stat, w) = observer.check_and_watch_stat("/silent").await.unwrap();
    assert_eq!(stat.unwrap().ephemeral_owner, sid);
    let (_, cw) = observer.list_and_watch_children("/").await.unwrap();

    let got = within(Duration::from_secs(12), w.changed()).await;
    let after = last_touch.elapsed();
    assert_eq!(ev(&got), (NodeDeleted, "/silent"));
    assert_eq!(ev(&fired(cw).await), (NodeChildrenChanged, "/"));
    // Expiry comes no earlier than the timeout, and within a tick (plus slack) after it.
    assert!(
        after >= Duration::from_millis(3900),
        "expired after {after:?}"
    );
    assert!(
        after <= Duration::from_millis(8500),
        "expired after {after:?}"
    );

    // The server closed the silent client's socket without a word.
    assert_eq!(silent.closed_within(Duration::from_secs(3)), Ok(true));
    // The expired session cannot be resumed, even with the right password.
    let again = RawZk::connect(gk.addr, sid, &passwd, 0, MIN_TIMEOUT_MS).unwrap();
    assert_eq!((again.response.session_id, again.response.time_out), (0, 0));

    // Meanwhile the pinging client, idle for longer than its timeout, is still there.
    assert_eq!(alive.state(), SessionState::SyncConnected);
    let st = observer.check_stat("/alive").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, alive.session_id().0);
    alive.set_data("/alive", b"still here", None).await.unwrap();
}

#[tokio::test]
async fn partitioned_client_loses_its_session_and_its_ephemerals() {
    let gk = Geokeeper::start("");
    let cut = TcpCut::start(gk.addr);
    let c = connect_with_timeout(cut.addr, Duration::from_millis(4000)).await;
    c.create("/mine", b"", &ephemeral()).await.unwrap();
    let session = c.session().clone();
    let observer = connect(gk.addr).await;
    let (_, w) = observer.check_and_watch_stat("/mine").await.unwrap();

    cut.refuse(true);
    assert_eq!(cut.cut(), 1);
    let t = Instant::now();
    assert_eq!(
        ev(&within(Duration::from_secs(12), w.changed()).await),
        (NodeDeleted, "/mine")
    );
    assert!(
        t.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        t.elapsed()
    );

    // The server refuses the expired session when the client comes back.
    cut.refuse(false);
    state_becomes(&c, SessionState::Expired, Duration::from_secs(10)).await;
    assert_eq!(c.get_data("/").await.unwrap_err(), Error::SessionExpired);
    let refused = Client::connector()
        .with_session(session)
        .connect(&gk.addr.to_string())
        .await;
    assert_eq!(refused.unwrap_err(), Error::SessionExpired);
}

#[tokio::test]
async fn reconnecting_with_id_and_password_resumes_the_session() {
    let gk = Geokeeper::start("");
    let first = Client::connector()
        .with_detached()
        .connect(&gk.addr.to_string())
        .await
        .unwrap();
    let sid = first.session_id();
    first.create("/mine", b"", &ephemeral()).await.unwrap();
    let session = first.into_session(); // detached: the session is not closed
    tokio::time::sleep(Duration::from_millis(300)).await;

    let observer = connect(gk.addr).await;
    let st = observer.check_stat("/mine").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, sid.0);

    let second = Client::connector()
        .with_session(session)
        .connect(&gk.addr.to_string())
        .await
        .unwrap();
    assert_eq!(second.session_id(), sid);
    assert_eq!(second.list_ephemerals("/").await.unwrap(), ["/mine"]);
    second.create("/mine2", b"", &ephemeral()).await.unwrap();

    let (_, w) = observer.check_and_watch_stat("/mine").await.unwrap();
    drop(second);
    assert_eq!(ev(&fired(w).await), (NodeDeleted, "/mine"));
    assert_eq!(observer.check_stat("/mine2").await.unwrap(), None);
}

#[test]
fn reconnect_on_the_wire_moves_the_session_to_the_new_connection() {
    let gk = Geokeeper::start("");
    let mut a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    let sid = a.session_id();
    let passwd = a.response.passwd.to_vec();
    raw_ok(raw_create(&mut a, "/e", 1));

    let mut b = RawZk::connect(gk.addr, sid, &passwd, a.last_zxid, 6_000).unwrap();
    assert_eq!(b.session_id(), sid);
    assert_eq!(b.response.time_out, 6_000);
    assert_eq!(&b.response.passwd[..], &passwd[..]);
    // The server closes the session's previous connection.
    assert_eq!(a.closed_within(Duration::from_secs(3)), Ok(true));
    // The session and its ephemeral carry on over the new connection.
    let x = raw_ok(b.call(
        OpCode::GetEphemerals,
        &Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: "/".into(),
        }),
    ));
    assert_eq!(
        support::rawzk::decode_body(OpCode::GetEphemerals as i32, &x.reply.unwrap().body),
        support::rawzk::Body::Ephemerals(vec!["/e".into()])
    );
}

#[test]
fn wrong_password_is_refused_and_the_session_lives_on() {
    let gk = Geokeeper::start("");
    let mut a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    let sid = a.session_id();
    let passwd = a.response.passwd.to_vec();
    raw_ok(raw_create(&mut a, "/e", 1));
    a.disconnect();

    let mut wrong = passwd.clone();
    wrong[0] ^= 0xff;
    for bad in [&wrong[..], &[0u8; 16][..], &passwd[..15]] {
        let mut z = RawZk::connect(gk.addr, sid, bad, 0, 10_000).unwrap();
        let r = &z.response;
        assert_eq!((r.session_id, r.time_out, r.protocol_version), (0, 0, 0));
        assert_eq!(
            &r.passwd[..],
            &[0u8; 16][..],
            "an invalid session gets 16 zero bytes"
        );
        assert_eq!(z.closed_within(Duration::from_secs(3)), Ok(true));
    }
    // An unknown session id looks the same.
    let mut z = RawZk::connect(
        gk.addr,
        sid + 1000,
        &zookeeper_password(sid + 1000),
        0,
        10_000,
    )
    .unwrap();
    assert_eq!((z.response.session_id, z.response.time_out), (0, 0));
    assert_eq!(z.closed_within(Duration::from_secs(3)), Ok(true));

    let b = RawZk::connect(gk.addr, sid, &passwd, 0, 10_000).unwrap();
    assert_eq!(b.session_id(), sid);
}

#[test]
fn client_ahead_of_the_server_is_refused_without_a_response() {
    let gk = Geokeeper::start("");
    let a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    let sid = a.session_id();
    let passwd = a.response.passwd.to_vec();
    a.disconnect();
    // lastZxidSeen beyond the server's last zxid: the connection closes, no ConnectResponse.
    match RawZk::connect(gk.addr, sid, &passwd, 1 << 40, 10_000) {
        Err(support::rawzk::Lost::Eof) => {}
        Err(e) => panic!("expected a silent close, got {e:?}"),
        Ok(z) => panic!("expected a silent close, got {:?}", z.response),
    }
}

#[tokio::test]
async fn watches_are_reset_on_reconnect_and_fire_for_what_was_missed() {
    let gk = Geokeeper::start("");
    let cut = TcpCut::start(gk.addr);
    let other = connect(gk.addr).await;
    for p in ["/d", "/p", "/del", "/same"] {
        other.create(p, b"", &persistent()).await.unwrap();
    }
    let c = connect_with_timeout(cut.addr, Duration::from_secs(10)).await;
    let sid = c.session_id();
    c.create("/c-eph", b"", &ephemeral()).await.unwrap();
    let (_, _, w_data) = c.get_and_watch_data("/d").await.unwrap();
    let (none, w_new) = c.check_and_watch_stat("/new").await.unwrap();
    assert!(none.is_none());
    let (_, w_kids) = c.list_and_watch_children("/p").await.unwrap();
    let (_, w_del) = c.check_and_watch_stat("/del").await.unwrap();
    let (_, _, w_same) = c.get_and_watch_data("/same").await.unwrap();

    cut.refuse(true);
    assert_eq!(cut.cut(), 1);
    state_becomes(&c, SessionState::Disconnected, PROMPT).await;

    other.set_data("/d", b"changed", None).await.unwrap();
    other.create("/new", b"", &persistent()).await.unwrap();
    other.create("/p/k", b"", &persistent()).await.unwrap();
    other.delete("/del", None).await.unwrap();

    cut.refuse(false);
    state_becomes(&c, SessionState::SyncConnected, Duration::from_secs(10)).await;
    assert_eq!(c.session_id(), sid);

    assert_eq!(ev(&fired(w_data).await), (NodeDataChanged, "/d"));
    assert_eq!(ev(&fired(w_new).await), (NodeCreated, "/new"));
    assert_eq!(ev(&fired(w_kids).await), (NodeChildrenChanged, "/p"));
    assert_eq!(ev(&fired(w_del).await), (NodeDeleted, "/del"));

    // The untouched watch was re-registered and fires on the next change.
    other.set_data("/same", b"now", None).await.unwrap();
    assert_eq!(ev(&fired(w_same).await), (NodeDataChanged, "/same"));

    // The session and its ephemeral survived the cut.
    let st = other.check_stat("/c-eph").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, sid.0);
}

#[test]
fn set_watches_fires_missed_events_before_its_reply() {
    let gk = Geokeeper::start("");
    let mut w = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    for p in ["/d", "/p", "/del", "/same", "/kids-gone"] {
        raw_ok(raw_create(&mut w, p, 0));
    }
    let mut a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    let sid = a.session_id();
    let passwd = a.response.passwd.to_vec();
    // Touch the server once so that `last_zxid` is the latest zxid.
    raw_ok(a.call(
        OpCode::Sync,
        &Request::Sync(SyncRequest { path: "/".into() }),
    ));
    let seen = a.last_zxid;
    a.disconnect();

    // Changes while the client is away.
    raw_ok(w.call(
        OpCode::SetData,
        &Request::SetData(SetDataRequest {
            path: "/d".into(),
            data: Some(b"x".to_vec().into()),
            version: -1,
        }),
    ));
    raw_ok(raw_create(&mut w, "/new", 0));
    raw_ok(raw_create(&mut w, "/p/k", 0));
    raw_ok(w.call(
        OpCode::Delete,
        &Request::Delete(DeleteRequest {
            path: "/del".into(),
            version: -1,
        }),
    ));
    raw_ok(w.call(
        OpCode::Delete,
        &Request::Delete(DeleteRequest {
            path: "/kids-gone".into(),
            version: -1,
        }),
    ));

    let mut b = RawZk::connect(gk.addr, sid, &passwd, seen, 10_000).unwrap();
    assert_eq!(b.session_id(), sid);
    let req = SetWatches {
        relative_zxid: seen,
        data_watches: vec!["/d".into(), "/same".into(), "/del".into()],
        exist_watches: vec!["/new".into(), "/never".into()],
        child_watches: vec!["/p".into(), "/kids-gone".into()],
    };
    let x = b.call_with_xid(
        SET_WATCHES_XID,
        OpCode::SetWatches,
        &Request::SetWatches(req),
    );
    let reply = x.reply.as_ref().expect("setWatches reply");
    assert_eq!(reply.header.err, 0);
    assert!(reply.body.is_empty());
    let mut got = events(&x);
    got.sort();
    let mut want = vec![
        (3, "/d".to_string()),
        (2, "/del".to_string()),
        (1, "/new".to_string()),
        (4, "/p".to_string()),
        (2, "/kids-gone".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);

    // The watches that had nothing to report are registered now.
    raw_ok(raw_create(&mut w, "/never", 0));
    raw_ok(w.call(
        OpCode::SetData,
        &Request::SetData(SetDataRequest {
            path: "/same".into(),
            data: None,
            version: -1,
        }),
    ));
    let x = raw_ok(b.call(
        OpCode::Sync,
        &Request::Sync(SyncRequest { path: "/".into() }),
    ));
    assert_eq!(
        events(&x),
        [(1, "/never".to_string()), (3, "/same".to_string())]
    );
}

#[test]
fn set_watches2_restores_persistent_watches_without_firing() {
    // The crate sends persistent watches in the wrong setWatches list on reconnect (its
    // `resend_watches` never raises `index`), so setWatches2 is exercised on the wire.
    let gk = Geokeeper::start("");
    let mut w = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    raw_ok(raw_create(&mut w, "/p", 0));
    raw_ok(raw_create(&mut w, "/r", 0));
    let a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    let (sid, passwd, seen) = (a.session_id(), a.response.passwd.to_vec(), w.last_zxid);
    a.disconnect();
    raw_ok(w.call(
        OpCode::SetData,
        &Request::SetData(SetDataRequest {
            path: "/p".into(),
            data: None,
            version: -1,
        }),
    ));

    let mut b = RawZk::connect(gk.addr, sid, &passwd, seen, 10_000).unwrap();
    let req = SetWatches2 {
        relative_zxid: seen,
        data_watches: vec![],
        exist_watches: vec![],
        child_watches: vec![],
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec!["/r".into()],
    };
    let x = b.call_with_xid(
        SET_WATCHES_XID,
        OpCode::SetWatches2,
        &Request::SetWatches2(req),
    );
    assert_eq!(x.reply.as_ref().unwrap().header.err, 0);
    assert_eq!(
        events(&x),
        [],
        "persistent watches are re-added, never fired"
    );

    raw_ok(raw_create(&mut w, "/r/a", 0));
    raw_ok(raw_create(&mut w, "/r/a/b", 0));
    raw_ok(raw_create(&mut w, "/p/k", 0));
    raw_ok(w.call(
        OpCode::SetData,
        &Request::SetData(SetDataRequest {
            path: "/p".into(),
            data: None,
            version: -1,
        }),
    ));
    let x = raw_ok(b.call(
        OpCode::Sync,
        &Request::Sync(SyncRequest { path: "/".into() }),
    ));
    assert_eq!(
        events(&x),
        [
            (1, "/r/a".to_string()),
            (1, "/r/a/b".to_string()),
            (4, "/p".to_string()),
            (3, "/p".to_string()),
        ]
    );
}

#[test]
fn server_closes_its_end_when_the_client_goes_away() {
    let gk = Geokeeper::start("");
    // Handshake by hand, then half-close: ZooKeeper reads EOF and closes the connection.
    let mut s = std::net::TcpStream::connect(gk.addr).unwrap();
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 10_000,
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only: false,
    };
    let body = geokeeper_core::proto::Record::to_bytes(&req);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    s.write_all(&f).unwrap();
    let mut rsp = [0u8; 41];
    s.read_exact(&mut rsp).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => {}
        r => panic!("expected the server to close its end, got {r:?}"),
    }
}

#[tokio::test]
async fn frame_over_jute_maxbuffer_closes_the_connection_but_not_the_session() {
    let gk = Geokeeper::start("");
    let c = connect(gk.addr).await;
    let sid = c.session_id();
    c.create("/big", b"small", &persistent()).await.unwrap();
    // Just under the default jute.maxbuffer (0xfffff) with the headers: accepted.
    let st = c
        .set_data("/big", &vec![7u8; 1_000_000], None)
        .await
        .unwrap();
    assert_eq!(st.data_length, 1_000_000);
    // Over it: ZooKeeper closes the connection without a reply ("Len error").
    let t = Instant::now();
    let err = c
        .set_data("/big", &vec![8u8; 1_100_000], None)
        .await
        .unwrap_err();
    assert_eq!(err, Error::ConnectionLoss);
    // Promptly (the suite's bound for prompt things; 16 tests share two cores here).
    assert!(t.elapsed() < PROMPT, "{:?}", t.elapsed());
    // The client reconnects to the same session; nothing was written.
    state_becomes(&c, SessionState::SyncConnected, PROMPT).await;
    assert_eq!(c.session_id(), sid);
    let (data, st) = c.get_data("/big").await.unwrap();
    assert_eq!((data.len(), st.version), (1_000_000, 1));
}

#[test]
fn close_session_fires_the_closers_own_watches_then_replies_then_closes() {
    let gk = Geokeeper::start("");
    let mut a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
    raw_ok(raw_create(&mut a, "/e", 1));
    raw_ok(a.call(
        OpCode::Exists,
        &Request::Exists(ExistsRequest {
            path: "/e".into(),
            watch: true,
        }),
    ));
    a.send(50, OpCode::CloseSession, &Request::CloseSession)
        .unwrap();
    // Pipelined after the close: dropped without a reply.
    a.send(
        51,
        OpCode::GetData,
        &Request::GetData(GetDataRequest {
            path: "/".into(),
            watch: false,
        }),
    )
    .unwrap();
    let x = a.await_reply(50);
    assert_eq!(events(&x), [(2, "/e".to_string())]);
    let reply = x.reply.unwrap();
    assert_eq!((reply.header.err, reply.body.len()), (0, 0));
    assert_eq!(a.closed_within(Duration::from_secs(3)), Ok(true));
}

#[tokio::test]
async fn a_reconnect_timeout_drives_the_sessions_expiry_from_then_on() {
    let gk = Geokeeper::start("");
    let mut a = RawZk::connect(gk.addr, 0, &[0; 16], 0, MAX_TIMEOUT_MS).unwrap();
    let (sid, passwd) = (a.session_id(), a.response.passwd.to_vec());
    raw_ok(raw_create(&mut a, "/e", 1));
    a.disconnect();
    // Reconnect asking for the minimum, then go silent: expiry follows the new timeout.
    let b = RawZk::connect(gk.addr, sid, &passwd, 0, MIN_TIMEOUT_MS).unwrap();
    assert_eq!(b.response.time_out, MIN_TIMEOUT_MS);
    let t = Instant::now();
    let observer = connect(gk.addr).await;
    let (_, w) = observer.check_and_watch_stat("/e").await.unwrap();
    assert_eq!(
        ev(&within(Duration::from_secs(12), w.changed()).await),
        (NodeDeleted, "/e")
    );
    assert!(
        t.elapsed() < Duration::from_millis(8500),
        "{:?}",
        t.elapsed()
    );
    drop(b);
}

#[tokio::test]
async fn close_session_removes_an_ephemeral_created_just_before_it() {
    let gk = Geokeeper::start("");
    let observer = connect(gk.addr).await;
    for i in 0..10 {
        let mut a = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).unwrap();
        let p = format!("/e{i}");
        // Pipelined: the close is prepared while the create may not be applied yet.
        let create = Request::Create {
            op: OpCode::Create2,
            req: CreateRequest {
                path: p.clone(),
                data: None,
                acl: vec![world()],
                flags: 1,
            },
        };
        a.send(1, OpCode::Create2, &create).unwrap();
        a.send(2, OpCode::CloseSession, &Request::CloseSession)
            .unwrap();
        let x = a.await_reply(2);
        assert_eq!(x.reply.unwrap().header.err, 0);
        assert_eq!(observer.check_stat(&p).await.unwrap(), None, "{p}");
    }
}
