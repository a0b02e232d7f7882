//! Every opcode a ZooKeeper 3.8 client sends, driven through the `zookeeper-client` crate
//! against a real geokeeper process: the replies, the stats they carry and the error codes
//! ZooKeeper gives. Where the crate cannot express a request (invalid paths it refuses to
//! send, per-op results of a failed multi) the test speaks the wire itself with `rawzk`.
//!
//! Each test runs twice: straight to the server, and through a geokeeper proxy in front of
//! it (`<test>::through_the_proxy`), where every reply must be the same.

mod support;

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::{MultiOp, Request};
use support::gk::Geokeeper;
use support::proxy::{upstream, Proxy};
use support::rawzk::{decode_body, Body, OpResult, RawZk};
use support::zkc::{connect, ephemeral, mode, persistent};
use zookeeper_client::{
    Acl, Acls, AuthId, Client, CreateMode, Error, MultiReadResult, MultiWriteError,
    MultiWriteResult, Permission,
};

thread_local! {
    /// Whether this test's clients go through a proxy (each test runs on its own thread).
    static PROXIED: Cell<bool> = const { Cell::new(false) };
}

/// Runs the test body twice, as `direct` and `through_the_proxy`.
macro_rules! both {
    (async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $body

            #[tokio::test]
            async fn direct() {
                body().await
            }

            #[tokio::test]
            async fn through_the_proxy() {
                PROXIED.with(|p| p.set(true));
                body().await
            }
        }
    };
}

/// What a test talks to: a geokeeper process, and in the proxied run a geokeeper proxy in
/// front of it; `addr` is where the clients connect.
struct Server {
    addr: SocketAddr,
    _proxy: Option<Proxy>,
    _gk: Geokeeper,
}

impl Server {
    fn start(cfg: &str) -> Server {
        let gk = Geokeeper::start(cfg);
        if !PROXIED.with(Cell::get) {
            return Server {
                addr: gk.addr,
                _proxy: None,
                _gk: gk,
            };
        }
        let p = Proxy::start("A", &[upstream(gk.addr, "A", 1)], "");
        p.wait_healthy(1, Duration::from_secs(20));
        Server {
            addr: p.addr,
            _proxy: Some(p),
            _gk: gk,
        }
    }
}

const EXTENDED: &str = "extendedTypesEnabled=true";

/// `digest` id of `alice:secret`: `alice:base64(sha1("alice:secret"))`.
const ALICE_DIGEST: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

fn raw(gk: &Server) -> RawZk {
    let z = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).expect("raw connect");
    assert_ne!(z.session_id(), 0, "raw session refused");
    z
}

/// The error code of a raw reply.
fn raw_err(z: &mut RawZk, op: OpCode, req: Request) -> i32 {
    z.call(op, &req).reply.expect("raw reply").header.err
}

fn create_req(path: &str, flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Some(b"x".to_vec().into()),
        acl: vec![world_anyone()],
        flags,
    }
}

/// `world:anyone` with every permission, as a wire record.
fn world_anyone() -> geokeeper_core::proto::records::Acl {
    geokeeper_core::proto::records::Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }
}

both! {
async fn create2_returns_the_new_nodes_stat_in_every_mode() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let sid = c.session_id().0;

    let (st, seq) = c.create("/p", b"data", &persistent()).await.unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert!(st.czxid > 0);
    assert_eq!((st.czxid, st.pzxid), (st.mzxid, st.mzxid));
    assert_eq!(st.ctime, st.mtime);
    assert_eq!((st.version, st.cversion, st.aversion), (0, 0, 0));
    assert_eq!(
        (st.ephemeral_owner, st.data_length, st.num_children),
        (0, 4, 0)
    );

    let (st, _) = c.create("/e", b"", &ephemeral()).await.unwrap();
    assert_eq!(st.ephemeral_owner, sid);
    assert_eq!(st.data_length, 0);

    let (st, seq) = c
        .create("/p/s-", b"1", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 0);
    assert_eq!(st.ephemeral_owner, 0);
    assert_eq!(seq.to_string(), "0000000000");
    let (st, seq) = c
        .create("/p/s-", b"2", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 1);
    assert_eq!(st.ephemeral_owner, sid);
    // A plain create under the same parent also advances the parent's counter.
    c.create("/p/plain", b"", &persistent()).await.unwrap();
    let (_, seq) = c
        .create("/p/s-", b"3", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 3);
    let mut kids = c.list_children("/p").await.unwrap();
    kids.sort();
    assert_eq!(
        kids,
        ["plain", "s-0000000000", "s-0000000001", "s-0000000003"]
    );

    // A container reports ephemeralOwner 0, like ZooKeeper's client-visible stat.
    let (st, _) = c
        .create("/c", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    assert_eq!(st.ephemeral_owner, 0);
    assert_eq!(
        c.check_stat("/c").await.unwrap().unwrap().ephemeral_owner,
        0
    );

    // The parent's stat after four creates: cversion 4, numChildren 4, pzxid the last create.
    let (last, _) = c.create("/p/last", b"", &persistent()).await.unwrap();
    let (_, pst) = c.get_data("/p").await.unwrap();
    assert_eq!((pst.cversion, pst.num_children), (5, 5));
    assert_eq!(pst.pzxid, last.czxid);
    assert_eq!(
        pst.mzxid, pst.czxid,
        "children do not change the parent's mzxid"
    );
}
}

both! {
async fn plain_create_opcode_replies_with_the_path_only() {
    let gk = Server::start("");
    // A client that believes the server is 3.4 sends opcode 1 (create), not create2.
    let c = Client::connector()
        .with_server_version(3, 4, 0)
        .connect(&gk.addr.to_string())
        .await
        .unwrap();
    let (st, seq) = c
        .create("/old-", b"v", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 0);
    assert!(st.is_invalid(), "create (1) carries no stat");
    assert_eq!(c.get_data("/old-0000000000").await.unwrap().0, b"v");

    let mut z = raw(&gk);
    let x = z.call(
        OpCode::Create,
        &Request::Create {
            op: OpCode::Create,
            req: create_req("/raw", 0),
        },
    );
    let f = x.reply.unwrap();
    assert_eq!(f.header.err, 0);
    match decode_body(OpCode::Create as i32, &f.body) {
        Body::Create(r) => assert_eq!(r.path, "/raw"),
        b => panic!("create reply {b:?}"),
    }
}
}

both! {
async fn ttl_nodes_need_extended_types() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let ttl = persistent().with_ttl(Duration::from_secs(60));
    assert_eq!(
        c.create("/t", b"", &ttl).await.unwrap_err(),
        Error::Unimplemented
    );
    assert_eq!(c.check_stat("/t").await.unwrap(), None);
}
}

both! {
async fn ttl_create_with_extended_types_returns_create2_stat() {
    let gk = Server::start(EXTENDED);
    let c = connect(gk.addr).await;
    let ttl = persistent().with_ttl(Duration::from_secs(60));
    let (st, seq) = c.create("/t", b"abc", &ttl).await.unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert_eq!((st.ephemeral_owner, st.data_length, st.version), (0, 3, 0));
    let seq_ttl = CreateMode::PersistentSequential
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_secs(60));
    let (_, seq) = c.create("/t/s", b"", &seq_ttl).await.unwrap();
    assert_eq!(seq.into_i64(), 0);
    assert_eq!(c.get_data("/t").await.unwrap().1.num_children, 1);
}
}

both! {
async fn reads_and_writes_report_zookeeper_stats() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let (created, _) = c.create("/n", b"one", &persistent()).await.unwrap();

    // exists
    assert_eq!(c.check_stat("/n").await.unwrap(), Some(created));
    assert_eq!(c.check_stat("/missing").await.unwrap(), None);

    // getData
    let (data, st) = c.get_data("/n").await.unwrap();
    assert_eq!((data.as_slice(), st), (&b"one"[..], created));

    // setData: version, mzxid and dataLength move; czxid does not.
    let st1 = c.set_data("/n", b"two!", Some(0)).await.unwrap();
    assert_eq!(st1.version, 1);
    assert_eq!(st1.czxid, created.czxid);
    assert!(st1.mzxid > created.mzxid);
    assert_eq!(st1.data_length, 4);
    assert!(st1.mtime >= created.mtime);
    let st2 = c.set_data("/n", b"", None).await.unwrap();
    assert_eq!((st2.version, st2.data_length), (2, 0));
    assert_eq!(c.get_data("/n").await.unwrap().0, b"");

    // getChildren (8) and getChildren2 (12)
    for k in ["a", "b", "c"] {
        c.create(&format!("/n/{k}"), b"", &persistent())
            .await
            .unwrap();
    }
    let mut kids = c.list_children("/n").await.unwrap();
    kids.sort();
    assert_eq!(kids, ["a", "b", "c"]);
    let (mut kids2, st) = c.get_children("/n").await.unwrap();
    kids2.sort();
    assert_eq!(kids2, kids);
    assert_eq!((st.num_children, st.cversion, st.version), (3, 3, 2));

    // delete with the right version, then the node is gone.
    c.delete("/n/a", Some(0)).await.unwrap();
    assert_eq!(c.check_stat("/n/a").await.unwrap(), None);
    let (_, st) = c.get_children("/n").await.unwrap();
    assert_eq!(st.num_children, 2);
    // ZooKeeper's client-visible cversion counts deletes too.
    assert_eq!(st.cversion, 4);
}
}

both! {
async fn get_all_children_number_counts_every_descendant() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    // A fresh server: /zookeeper, /zookeeper/quota, /zookeeper/config.
    assert_eq!(c.count_descendants_number("/").await.unwrap(), 3);
    c.create("/a", b"", &persistent()).await.unwrap();
    c.create("/a/b", b"", &persistent()).await.unwrap();
    c.create("/a/b/c", b"", &persistent()).await.unwrap();
    c.create("/ab", b"", &persistent()).await.unwrap();
    assert_eq!(c.count_descendants_number("/a").await.unwrap(), 2);
    assert_eq!(c.count_descendants_number("/a/b/c").await.unwrap(), 0);
    assert_eq!(c.count_descendants_number("/").await.unwrap(), 7);
    assert_eq!(
        c.count_descendants_number("/nope").await.unwrap_err(),
        Error::NoNode
    );
}
}

both! {
async fn get_ephemerals_lists_only_the_callers_ephemerals_by_prefix() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let other = connect(gk.addr).await;
    c.create("/app", b"", &persistent()).await.unwrap();
    c.create("/app/e1", b"", &ephemeral()).await.unwrap();
    c.create("/app/e2", b"", &ephemeral()).await.unwrap();
    c.create("/apple", b"", &ephemeral()).await.unwrap();
    other
        .create("/app/theirs", b"", &ephemeral())
        .await
        .unwrap();

    let mut all = c.list_ephemerals("/").await.unwrap();
    all.sort();
    assert_eq!(all, ["/app/e1", "/app/e2", "/apple"]);
    // A raw string prefix: "/app" also matches "/apple".
    let mut app = c.list_ephemerals("/app").await.unwrap();
    app.sort();
    assert_eq!(app, ["/app/e1", "/app/e2", "/apple"]);
    // (The crate refuses the prefix "/app/" client-side, so it is not tried here.)
    assert!(c.list_ephemerals("/none").await.unwrap().is_empty());
    assert_eq!(other.list_ephemerals("/").await.unwrap(), ["/app/theirs"]);
}
}

both! {
async fn sync_succeeds_and_later_reads_see_earlier_writes() {
    let gk = Server::start("");
    let writer = connect(gk.addr).await;
    let reader = connect(gk.addr).await;
    writer.create("/s", b"v1", &persistent()).await.unwrap();
    reader.sync("/s").await.unwrap();
    assert_eq!(reader.get_data("/s").await.unwrap().0, b"v1");
    // ZooKeeper does not check that the synced path exists.
    reader.sync("/not/there").await.unwrap();
}
}

both! {
async fn multi_applies_every_op_and_returns_per_op_results() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/m", b"", &persistent()).await.unwrap();

    let mut w = c.new_multi_writer();
    w.add_check_version("/m", 0).unwrap();
    w.add_create("/m/a", b"A", &persistent()).unwrap();
    w.add_create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
        .unwrap();
    w.add_set_data("/m", b"M", Some(0)).unwrap();
    w.add_create("/m/tmp", b"", &persistent()).unwrap();
    w.add_delete("/m/tmp", Some(0)).unwrap();
    let r = w.commit().await.unwrap();
    assert_eq!(r.len(), 6);
    assert_eq!(r[0], MultiWriteResult::Check);
    let MultiWriteResult::Create { path, stat } = &r[1] else {
        panic!("{:?}", r[1])
    };
    assert_eq!(path, "/m/a");
    assert_eq!(stat.data_length, 1);
    let zxid = stat.czxid;
    let MultiWriteResult::Create { path, stat } = &r[2] else {
        panic!("{:?}", r[2])
    };
    assert_eq!(path, "/m/s-0000000001");
    assert_eq!(stat.czxid, zxid, "all ops of a multi share one zxid");
    let MultiWriteResult::SetData { stat } = &r[3] else {
        panic!("{:?}", r[3])
    };
    assert_eq!((stat.version, stat.mzxid), (1, zxid));
    assert!(matches!(r[4], MultiWriteResult::Create { .. }));
    assert_eq!(r[5], MultiWriteResult::Delete);

    assert_eq!(c.get_data("/m").await.unwrap().0, b"M");
    let mut kids = c.list_children("/m").await.unwrap();
    kids.sort();
    assert_eq!(kids, ["a", "s-0000000001"]);

    // CheckWriter: the check passes, the rest applies.
    let mut cw = c.new_check_writer("/m", Some(1)).unwrap();
    cw.add_set_data("/m/a", b"B", None).unwrap();
    let r = cw.commit().await.unwrap();
    assert!(matches!(r[..], [MultiWriteResult::SetData { .. }]));
}
}

both! {
async fn failed_multi_changes_nothing_and_reports_the_failing_op() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/m", b"", &persistent()).await.unwrap();

    let mut w = c.new_multi_writer();
    w.add_create("/m/a", b"", &persistent()).unwrap();
    w.add_check_version("/m", 7).unwrap();
    w.add_create("/m/b", b"", &persistent()).unwrap();
    assert_eq!(
        w.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 1,
            source: Error::BadVersion
        }
    );
    assert!(c.list_children("/m").await.unwrap().is_empty());

    let mut w = c.new_multi_writer();
    w.add_set_data("/m", b"x", None).unwrap();
    w.add_delete("/nope", None).unwrap();
    assert_eq!(
        w.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 1,
            source: Error::NoNode
        }
    );
    assert_eq!(c.get_data("/m").await.unwrap().1.version, 0);

    let mut w = c.new_multi_writer();
    w.add_create("/m", b"", &persistent()).unwrap();
    assert_eq!(
        w.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 0,
            source: Error::NodeExists
        }
    );

    // A failed sequential create gives its number back (ZOOKEEPER-1624).
    let mut w = c.new_multi_writer();
    w.add_create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
        .unwrap();
    w.add_delete("/nope", None).unwrap();
    assert!(w.commit().await.is_err());
    let (_, seq) = c
        .create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 0);

    // CheckWriter reports a failed path check separately.
    let mut cw = c.new_check_writer("/m", Some(5)).unwrap();
    cw.add_create("/m/z", b"", &persistent()).unwrap();
    assert!(matches!(
        cw.commit().await.unwrap_err(),
        zookeeper_client::CheckWriteError::CheckFailed {
            source: Error::BadVersion
        }
    ));
}
}

both! {
async fn failed_multi_reply_has_zero_before_the_failure_and_minus_two_after() {
    // The crate only reports the first failure; the wire carries a result for every op.
    let gk = Server::start("");
    let mut z = raw(&gk);
    let x = z.call(
        OpCode::Create2,
        &Request::Create {
            op: OpCode::Create2,
            req: create_req("/m", 0),
        },
    );
    assert_eq!(x.reply.unwrap().header.err, 0);
    let ops = vec![
        MultiOp::Create {
            op: OpCode::Create2,
            req: create_req("/m/a", 0),
        },
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: Some(b"x".to_vec().into()),
            version: 3,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/m/a".into(),
            version: -1,
        }),
    ];
    let f = z.call(OpCode::Multi, &Request::Multi(ops)).reply.unwrap();
    assert_eq!(f.header.err, 0, "a multi's header err is always 0");
    match decode_body(OpCode::Multi as i32, &f.body) {
        Body::Multi { results, done } => {
            assert_eq!(
                results,
                vec![
                    (-1, 0, OpResult::Error(0)),
                    (-1, -103, OpResult::Error(-103)),
                    (-1, -2, OpResult::Error(-2)),
                ]
            );
            assert_eq!(done, (-1, -1));
        }
        b => panic!("multi reply {b:?}"),
    }

    // A successful one: create2 results carry the stat, check and delete carry nothing.
    let ops = vec![
        MultiOp::Check(CheckVersionRequest {
            path: "/m".into(),
            version: 0,
        }),
        MultiOp::Create {
            op: OpCode::Create,
            req: create_req("/m/b", 0),
        },
        MultiOp::Delete(DeleteRequest {
            path: "/m/b".into(),
            version: 0,
        }),
    ];
    let f = z.call(OpCode::Multi, &Request::Multi(ops)).reply.unwrap();
    match decode_body(OpCode::Multi as i32, &f.body) {
        Body::Multi { results, .. } => {
            assert_eq!(
                results,
                vec![
                    (13, 0, OpResult::Check),
                    (1, 0, OpResult::Create("/m/b".into())),
                    (2, 0, OpResult::Delete),
                ]
            );
        }
        b => panic!("multi reply {b:?}"),
    }
}
}

both! {
async fn multi_read_returns_data_children_and_per_op_errors() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/r", b"root", &persistent()).await.unwrap();
    c.create("/r/x", b"", &persistent()).await.unwrap();
    let mut rd = c.new_multi_reader();
    rd.add_get_data("/r").unwrap();
    rd.add_get_children("/r").unwrap();
    rd.add_get_data("/missing").unwrap();
    rd.add_get_children("/missing").unwrap();
    let r = rd.commit().await.unwrap();
    assert_eq!(r.len(), 4);
    match &r[0] {
        MultiReadResult::Data { data, stat } => {
            assert_eq!(data, b"root");
            assert_eq!(stat.num_children, 1);
        }
        x => panic!("{x:?}"),
    }
    match &r[1] {
        MultiReadResult::Children { children } => assert_eq!(children, &["x"]),
        x => panic!("{x:?}"),
    }
    assert!(matches!(
        r[2],
        MultiReadResult::Error { err: Error::NoNode }
    ));
    assert!(matches!(
        r[3],
        MultiReadResult::Error { err: Error::NoNode }
    ));
}
}

both! {
async fn get_acl_and_set_acl_track_the_acl_version() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/a", b"", &persistent()).await.unwrap();
    let (acl, st) = c.get_acl("/a").await.unwrap();
    assert_eq!(acl, &Acls::anyone_all()[..]);
    assert_eq!(st.aversion, 0);

    let read_only = [Acl::new(Permission::READ, AuthId::new("world", "anyone"))];
    assert_eq!(
        c.set_acl("/a", &read_only, Some(1)).await.unwrap_err(),
        Error::BadVersion
    );
    let st = c.set_acl("/a", &read_only, Some(0)).await.unwrap();
    assert_eq!((st.aversion, st.version), (1, 0));
    let (acl, st) = c.get_acl("/a").await.unwrap();
    assert_eq!(acl, read_only);
    assert_eq!(st.aversion, 1);
    // READ only: writes, creates and ACL changes are refused; ADMIN is checked before
    // the ACL version.
    assert_eq!(
        c.set_data("/a", b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        c.create("/a/b", b"", &persistent()).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        c.set_acl("/a", &Acls::anyone_all(), Some(0))
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(c.get_data("/a").await.unwrap().0, b"");
    assert_eq!(c.get_acl("/missing").await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.set_acl("/missing", &Acls::anyone_all(), None)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    // The built-in config node: world READ, aversion -1.
    let (acl, st) = c.get_acl("/zookeeper/config").await.unwrap();
    assert_eq!(acl, &Acls::anyone_read()[..]);
    assert_eq!(st.aversion, -1);
}
}

both! {
async fn digest_auth_grants_access_to_acl_protected_nodes() {
    let gk = Server::start("");
    let alice = connect(gk.addr).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    alice
        .create(
            "/secret",
            b"s3cr3t",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
    // `auth` is expanded into the creator's digest id.
    let (acl, _) = alice.get_acl("/secret").await.unwrap();
    assert_eq!(
        acl,
        [Acl::new(
            Permission::ALL,
            AuthId::new("digest", ALICE_DIGEST)
        )]
    );
    assert_eq!(alice.get_data("/secret").await.unwrap().0, b"s3cr3t");

    let eve = connect(gk.addr).await;
    assert_eq!(eve.get_data("/secret").await.unwrap_err(), Error::NoAuth);
    assert_eq!(
        eve.set_data("/secret", b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        eve.create("/secret/x", b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        eve.check_stat("/secret").await.unwrap_err(),
        Error::NoAuth,
        "exists checks READ in 3.8"
    );
    assert_eq!(
        eve.get_acl("/secret").await.unwrap_err(),
        Error::NoAuth,
        "getACL needs READ or ADMIN"
    );
    // Deleting checks DELETE on the parent, which is world:anyone here.
    eve.delete("/secret", None).await.unwrap();
}
}

both! {
async fn digest_auth_unlocks_reads_writes_and_children() {
    let gk = Server::start("");
    let alice = connect(gk.addr).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    alice
        .create(
            "/vault",
            b"v",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();

    let other = connect(gk.addr).await;
    assert_eq!(other.get_data("/vault").await.unwrap_err(), Error::NoAuth);
    assert_eq!(
        other.list_children("/vault").await.unwrap_err(),
        Error::NoAuth
    );
    other.auth("digest", b"bob:pw").await.unwrap();
    assert_eq!(other.get_data("/vault").await.unwrap_err(), Error::NoAuth);
    other.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(other.get_data("/vault").await.unwrap().0, b"v");
    other.set_data("/vault", b"w", None).await.unwrap();
    other
        .create("/vault/child", b"", &persistent())
        .await
        .unwrap();
    assert_eq!(other.list_children("/vault").await.unwrap(), ["child"]);
    // Deleting a child needs DELETE on the parent, which alice's digest holds.
    other.delete("/vault/child", None).await.unwrap();
}
}

both! {
async fn get_acl_without_admin_masks_digest_passwords() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let acl = [
        Acl::new(Permission::READ, AuthId::new("world", "anyone")),
        Acl::new(Permission::ALL, AuthId::new("digest", ALICE_DIGEST)),
    ];
    c.create(
        "/d",
        b"",
        &CreateMode::Persistent.with_acls(Acls::new(&acl)),
    )
    .await
    .unwrap();
    let (seen, _) = c.get_acl("/d").await.unwrap();
    assert_eq!(
        seen,
        [
            Acl::new(Permission::READ, AuthId::new("world", "anyone")),
            Acl::new(Permission::ALL, AuthId::new("digest", "alice:x")),
        ]
    );
    c.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(c.get_acl("/d").await.unwrap().0, acl);
}
}

both! {
async fn who_am_i_lists_the_connections_identities() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let users = c.list_auth_users().await.unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].scheme(), "ip");
    assert_eq!(users[0].user(), "127.0.0.1");
    c.auth("digest", b"alice:secret").await.unwrap();
    let users = c.list_auth_users().await.unwrap();
    let mut pairs: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.scheme().to_string(), u.user().to_string()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("digest".to_string(), "alice".to_string()),
            ("ip".to_string(), "127.0.0.1".to_string())
        ]
    );
}
}

both! {
async fn invalid_acls_are_refused_with_invalid_acl() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    // `auth` without any authenticated identity.
    assert_eq!(
        c.create(
            "/a",
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all())
        )
        .await
        .unwrap_err(),
        Error::InvalidAcl
    );
    let bad: [&[Acl]; 4] = [
        &[Acl::new(Permission::ALL, AuthId::new("digest", "no-colon"))],
        &[Acl::new(Permission::ALL, AuthId::new("unknown", "x"))],
        &[Acl::new(Permission::ALL, AuthId::new("world", "someone"))],
        &[Acl::new(Permission::ALL, AuthId::new("ip", "300.1.2.3"))],
    ];
    for acl in bad {
        let opts = CreateMode::Persistent.with_acls(Acls::new(acl));
        assert_eq!(
            c.create("/a", b"", &opts).await.unwrap_err(),
            Error::InvalidAcl,
            "{acl:?}"
        );
    }
    assert_eq!(c.check_stat("/a").await.unwrap(), None);
    // setACL validates too, and InvalidACL is reported before NoNode.
    c.create("/b", b"", &persistent()).await.unwrap();
    assert_eq!(
        c.set_acl("/b", bad[0], None).await.unwrap_err(),
        Error::InvalidAcl
    );
    assert_eq!(
        c.set_acl("/missing", bad[1], None).await.unwrap_err(),
        Error::InvalidAcl
    );
    // Valid non-world ACLs are accepted as given.
    let ok = [
        Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.0/8")),
        Acl::new(Permission::READ, AuthId::new("digest", ALICE_DIGEST)),
    ];
    c.create("/c", b"", &CreateMode::Persistent.with_acls(Acls::new(&ok)))
        .await
        .unwrap();
    assert_eq!(c.get_acl("/c").await.unwrap().0, ok);
    // The ip ACL matches this client's address.
    c.set_data("/c", b"ip ok", None).await.unwrap();
}
}

both! {
async fn error_codes_match_zookeeper() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/x", b"", &persistent()).await.unwrap();
    c.create("/x/y", b"", &persistent()).await.unwrap();
    c.create("/eph", b"", &ephemeral()).await.unwrap();

    // NoNode
    assert_eq!(c.get_data("/nope").await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.set_data("/nope", b"", None).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(c.delete("/nope", None).await.unwrap_err(), Error::NoNode);
    assert_eq!(c.list_children("/nope").await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.create("/nope/child", b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoNode
    );
    // NodeExists
    assert_eq!(
        c.create("/x", b"", &persistent()).await.unwrap_err(),
        Error::NodeExists
    );
    // BadVersion
    assert_eq!(
        c.set_data("/x", b"", Some(5)).await.unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        c.delete("/x/y", Some(1)).await.unwrap_err(),
        Error::BadVersion
    );
    // NotEmpty
    assert_eq!(c.delete("/x", None).await.unwrap_err(), Error::NotEmpty);
    // NoChildrenForEphemerals, also for sequential children.
    assert_eq!(
        c.create("/eph/kid", b"", &persistent()).await.unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    assert_eq!(
        c.create("/eph/kid", b"", &mode(CreateMode::EphemeralSequential))
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    // BadArguments: paths the crate lets through but ZooKeeper's PathUtils rejects.
    let bad_args = Error::BadArguments(&"server error");
    for p in ["/x/.", "/x/..", "/."] {
        assert_eq!(
            c.create(p, b"", &persistent()).await.unwrap_err(),
            bad_args,
            "create {p}"
        );
        assert_eq!(
            c.set_data(p, b"", None).await.unwrap_err(),
            bad_args,
            "setData {p}"
        );
        assert_eq!(
            c.set_acl(p, &Acls::anyone_all(), None).await.unwrap_err(),
            bad_args,
            "setACL {p}"
        );
    }
    // The built-in nodes cannot be deleted.
    for p in ["/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(c.delete(p, None).await.unwrap_err(), bad_args, "delete {p}");
    }
    // Paths no client library sends, on the wire.
    let mut z = raw(&gk);
    for p in ["//a", "/x//y", "/x/y/", "x", "/a\u{0}b", "/\u{1}"] {
        let err = raw_err(
            &mut z,
            OpCode::Create2,
            Request::Create {
                op: OpCode::Create2,
                req: create_req(p, 0),
            },
        );
        // ZooKeeper checks the parent first: "/x//y" and "/x/y/" have a missing parent.
        let want = if p == "/x//y" { -101 } else { -8 };
        let want = if p == "/x/y/" { -8 } else { want };
        assert_eq!(err, want, "create {p:?}");
    }
    for p in ["/x/.", "//x", "x"] {
        let err = raw_err(
            &mut z,
            OpCode::SetData,
            Request::SetData(SetDataRequest {
                path: p.into(),
                data: None,
                version: -1,
            }),
        );
        assert_eq!(err, -8, "setData {p:?}");
    }
    assert_eq!(
        raw_err(
            &mut z,
            OpCode::Delete,
            Request::Delete(DeleteRequest {
                path: "x".into(),
                version: -1
            })
        ),
        -8
    );
    // Nothing was created by any of that.
    let mut kids = c.list_children("/").await.unwrap();
    kids.sort();
    assert_eq!(kids, ["eph", "x", "zookeeper"]);
}
}

both! {
async fn pipelined_requests_see_the_sessions_earlier_writes() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/x", b"0", &persistent()).await.unwrap();
    for i in 0..100 {
        let v = format!("{i}");
        // The crate sends each request when its future is created: these three are on
        // the wire together, and the reads must wait for the write before them.
        let w = c.set_data("/x", v.as_bytes(), None);
        let r = c.get_data("/x");
        let e = c.check_stat("/x");
        let (w, r, e) = tokio::join!(w, r, e);
        let st = w.unwrap();
        let (data, rst) = r.unwrap();
        assert_eq!(data, v.as_bytes(), "round {i}");
        assert_eq!(rst, st);
        assert_eq!(e.unwrap(), Some(st));
    }
}
}

both! {
async fn concurrent_sequential_creates_get_distinct_numbers() {
    let gk = Server::start("");
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(gk.addr).await);
    }
    clients[0].create("/q", b"", &persistent()).await.unwrap();
    let mut pending = Vec::new();
    for c in &clients {
        for _ in 0..50 {
            pending.push(c.create("/q/n-", b"", &mode(CreateMode::EphemeralSequential)));
        }
    }
    let mut seqs = Vec::new();
    for f in pending {
        seqs.push(f.await.unwrap().1.into_i64());
    }
    seqs.sort();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    assert_eq!(clients[0].list_children("/q").await.unwrap().len(), 200);
}
}

both! {
async fn super_digest_bypasses_every_acl() {
    // super:secret
    let gk = Server::start(
        "DigestAuthenticationProvider.superDigest=super:lK75jTNcA+U9vtVEw5vB51mj/w4=",
    );
    let alice = connect(gk.addr).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    alice
        .create(
            "/s",
            b"x",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
    let admin = connect(gk.addr).await;
    assert_eq!(admin.get_data("/s").await.unwrap_err(), Error::NoAuth);
    admin.auth("digest", b"super:secret").await.unwrap();
    assert_eq!(admin.get_data("/s").await.unwrap().0, b"x");
    admin.set_data("/s", b"y", None).await.unwrap();
    admin
        .set_acl("/s", &Acls::anyone_read(), None)
        .await
        .unwrap();
    let mut users: Vec<(String, String)> = admin
        .list_auth_users()
        .await
        .unwrap()
        .iter()
        .map(|u| (u.scheme().to_string(), u.user().to_string()))
        .collect();
    users.sort();
    assert_eq!(
        users,
        [
            ("digest".to_string(), "super".to_string()),
            ("ip".to_string(), "127.0.0.1".to_string()),
            ("super".to_string(), String::new()),
        ]
    );
}
}

both! {
async fn auth_with_an_unknown_scheme_fails_the_connection_not_the_session() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    c.create("/mine", b"", &ephemeral()).await.unwrap();
    assert_eq!(c.auth("nosuch", b"x").await.unwrap_err(), Error::AuthFailed);
    assert_eq!(c.state(), zookeeper_client::SessionState::AuthFailed);
    assert_eq!(c.get_data("/").await.unwrap_err(), Error::AuthFailed);
    // ZooKeeper closes the connection but leaves the session to expire.
    let other = connect(gk.addr).await;
    let st = other.check_stat("/mine").await.unwrap().unwrap();
    assert_eq!(st.ephemeral_owner, c.session_id().0);
}
}

both! {
async fn config_node_is_empty_and_reconfig_is_disabled_in_standalone() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let (data, st) = c.get_config().await.unwrap();
    assert!(data.is_empty());
    assert_eq!((st.aversion, st.version, st.czxid), (-1, 0, 0));
    assert_eq!(
        c.set_data("/zookeeper/config", b"x", None)
            .await
            .unwrap_err(),
        Error::NoAuth
    );
    let update = zookeeper_client::EnsembleUpdate::New {
        ensemble: ["server.1=127.0.0.1:2888:3888;2181"].into_iter(),
    };
    assert_eq!(
        c.update_ensemble(update, None).await.unwrap_err(),
        Error::ReconfigDisabled
    );
    // The connection stays usable.
    c.create("/after", b"", &persistent()).await.unwrap();
}
}

both! {
async fn multi_ops_see_the_effects_of_earlier_ops_in_the_same_multi() {
    let gk = Server::start("");
    let c = connect(gk.addr).await;
    let mut w = c.new_multi_writer();
    w.add_create("/e", b"", &ephemeral()).unwrap();
    w.add_create("/e/k", b"", &persistent()).unwrap();
    assert_eq!(
        w.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 1,
            source: Error::NoChildrenForEphemerals
        }
    );
    let mut w = c.new_multi_writer();
    w.add_create("/p", b"", &persistent()).unwrap();
    w.add_create("/p/k", b"", &persistent()).unwrap();
    w.add_delete("/p", None).unwrap();
    assert_eq!(
        w.commit().await.unwrap_err(),
        MultiWriteError::OperationFailed {
            index: 2,
            source: Error::NotEmpty
        }
    );
    let mut w = c.new_multi_writer();
    w.add_create("/p", b"", &persistent()).unwrap();
    w.add_set_data("/p", b"x", Some(0)).unwrap();
    w.add_check_version("/p", 1).unwrap();
    w.add_set_data("/p", b"y", Some(1)).unwrap();
    let r = w.commit().await.unwrap();
    let MultiWriteResult::SetData { stat } = &r[3] else {
        panic!("{:?}", r[3])
    };
    assert_eq!(stat.version, 2);
    assert_eq!(c.check_stat("/e").await.unwrap(), None);
}
}
