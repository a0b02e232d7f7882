//! Watches of every kind against a real geokeeper: data, exists, child, persistent and
//! persistent-recursive; one-shot semantics; removal; and the ordering guarantee that a
//! client sees a watch event before any reply that reflects the change behind it.
//!
//! Tests that need to see exactly what the server sends (an event that must *not* come, the
//! order of several events, the header of a notification) use `rawzk`, which hands over
//! every frame; the others go through the `zookeeper-client` crate.

mod support;

use std::time::Duration;

use geokeeper_core::proto::records::*;
use geokeeper_core::proto::OpCode;
use geokeeper_core::request::{MultiOp, Request};
use support::gk::Geokeeper;
use support::rawzk::{Exchange, RawZk};
use support::zkc::{
    already_fired, already_next, connect, ephemeral, ev, fired, next, persistent, quiet,
};
use zookeeper_client::{Acl, Acls, AddWatchMode, AuthId, CreateMode, EventType, Permission};

use EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};

const NODE_CREATED: i32 = 1;
const NODE_DELETED: i32 = 2;
const NODE_DATA_CHANGED: i32 = 3;
const NODE_CHILDREN_CHANGED: i32 = 4;

// ---------------------------------------------------------------------------------------
// Raw-protocol helpers
// ---------------------------------------------------------------------------------------

fn raw(gk: &Geokeeper) -> RawZk {
    let z = RawZk::connect(gk.addr, 0, &[0; 16], 0, 10_000).expect("raw connect");
    assert_ne!(z.session_id(), 0, "raw session refused");
    z
}

fn ok(x: Exchange) -> Exchange {
    let err = x.reply.as_ref().expect("reply").header.err;
    assert_eq!(err, 0, "request failed: {x:?}");
    x
}

fn err_of(x: &Exchange) -> i32 {
    x.reply.as_ref().expect("reply").header.err
}

/// `world:anyone` with every permission, as a wire record.
fn anyone() -> geokeeper_core::proto::records::Acl {
    geokeeper_core::proto::records::Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }
}

fn create(z: &mut RawZk, path: &str, flags: i32) -> Exchange {
    z.call(
        OpCode::Create2,
        &Request::Create {
            op: OpCode::Create2,
            req: CreateRequest {
                path: path.into(),
                data: Some(b"".to_vec().into()),
                acl: vec![anyone()],
                flags,
            },
        },
    )
}

fn set_data(z: &mut RawZk, path: &str, data: &[u8]) -> Exchange {
    z.call(
        OpCode::SetData,
        &Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(data.to_vec().into()),
            version: -1,
        }),
    )
}

fn delete(z: &mut RawZk, path: &str) -> Exchange {
    z.call(
        OpCode::Delete,
        &Request::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        }),
    )
}

fn get_data_watch(z: &mut RawZk, path: &str) -> Exchange {
    z.call(
        OpCode::GetData,
        &Request::GetData(GetDataRequest {
            path: path.into(),
            watch: true,
        }),
    )
}

fn exists_watch(z: &mut RawZk, path: &str) -> Exchange {
    z.call(
        OpCode::Exists,
        &Request::Exists(ExistsRequest {
            path: path.into(),
            watch: true,
        }),
    )
}

fn children_watch(z: &mut RawZk, path: &str) -> Exchange {
    z.call(
        OpCode::GetChildren,
        &Request::GetChildren(GetChildrenRequest {
            path: path.into(),
            watch: true,
        }),
    )
}

fn add_watch(z: &mut RawZk, path: &str, mode: i32) -> Exchange {
    z.call(
        OpCode::AddWatch,
        &Request::AddWatch(AddWatchRequest {
            path: path.into(),
            mode,
        }),
    )
}

fn check_watches(z: &mut RawZk, path: &str, t: i32) -> i32 {
    err_of(&z.call(
        OpCode::CheckWatches,
        &Request::CheckWatches(CheckWatchesRequest {
            path: path.into(),
            r#type: t,
        }),
    ))
}

fn remove_watches(z: &mut RawZk, path: &str, t: i32) -> i32 {
    err_of(&z.call(
        OpCode::RemoveWatches,
        &Request::RemoveWatches(RemoveWatchesRequest {
            path: path.into(),
            r#type: t,
        }),
    ))
}

/// The `(type, path)` of every notification that arrives before the reply to a sync: since
/// notifications are queued before any later reply, this is everything pending.
fn pending(z: &mut RawZk) -> Vec<(i32, String)> {
    let x = ok(z.call(
        OpCode::Sync,
        &Request::Sync(SyncRequest { path: "/".into() }),
    ));
    events(&x)
}

fn events(x: &Exchange) -> Vec<(i32, String)> {
    for n in &x.notifications {
        assert_eq!(n.header.xid, -1);
        assert_eq!(n.header.zxid, -1, "3.8 notifications carry zxid -1");
        assert_eq!(n.header.err, 0);
        assert_eq!(n.event.state, 3, "SyncConnected");
    }
    x.notifications
        .iter()
        .map(|n| (n.event.r#type, n.event.path.clone()))
        .collect()
}

fn e(t: i32, p: &str) -> (i32, String) {
    (t, p.to_string())
}

// ---------------------------------------------------------------------------------------
// One-shot watches through the crate
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn data_watch_fires_on_set_data_and_on_delete() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let b = connect(gk.addr).await;
    a.create("/d", b"1", &persistent()).await.unwrap();

    let (_, _, w) = a.get_and_watch_data("/d").await.unwrap();
    b.set_data("/d", b"2", None).await.unwrap();
    let got = fired(w).await;
    assert_eq!(ev(&got), (NodeDataChanged, "/d"));

    let (_, _, w) = a.get_and_watch_data("/d").await.unwrap();
    b.delete("/d", None).await.unwrap();
    assert_eq!(ev(&fired(w).await), (NodeDeleted, "/d"));
}

#[tokio::test]
async fn exists_watch_on_a_missing_node_fires_when_it_is_created() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let b = connect(gk.addr).await;
    let (stat, w) = a.check_and_watch_stat("/later").await.unwrap();
    assert_eq!(stat, None);
    b.create("/later", b"", &persistent()).await.unwrap();
    assert_eq!(ev(&fired(w).await), (NodeCreated, "/later"));

    let (stat, w) = a.check_and_watch_stat("/later").await.unwrap();
    assert!(stat.is_some());
    b.set_data("/later", b"x", None).await.unwrap();
    assert_eq!(ev(&fired(w).await), (NodeDataChanged, "/later"));

    let (_, w) = a.check_and_watch_stat("/later").await.unwrap();
    b.delete("/later", None).await.unwrap();
    assert_eq!(ev(&fired(w).await), (NodeDeleted, "/later"));
}

#[tokio::test]
async fn child_watch_fires_on_child_changes_and_on_delete_but_not_on_data() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let b = connect(gk.addr).await;
    a.create("/p", b"", &persistent()).await.unwrap();
    a.create("/p/old", b"", &persistent()).await.unwrap();

    let (_, w) = a.list_and_watch_children("/p").await.unwrap();
    // Data changes on the parent or a child do not touch a child watch.
    b.set_data("/p", b"x", None).await.unwrap();
    b.set_data("/p/old", b"x", None).await.unwrap();
    b.create("/p/new", b"", &persistent()).await.unwrap();
    let got = fired(w).await;
    assert_eq!(ev(&got), (NodeChildrenChanged, "/p"));

    let (_, _, w) = a.get_and_watch_children("/p").await.unwrap();
    b.delete("/p/new", None).await.unwrap();
    assert_eq!(ev(&fired(w).await), (NodeChildrenChanged, "/p"));

    b.delete("/p/old", None).await.unwrap();
    let (_, w) = a.list_and_watch_children("/p").await.unwrap();
    b.delete("/p", None).await.unwrap();
    assert_eq!(ev(&fired(w).await), (NodeDeleted, "/p"));
}

#[test]
fn one_shot_watches_fire_once_and_are_then_gone() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let mut b = raw(&gk);
    ok(create(&mut b, "/o", 0));
    ok(get_data_watch(&mut a, "/o"));
    ok(children_watch(&mut a, "/o"));
    ok(set_data(&mut b, "/o", b"1"));
    ok(set_data(&mut b, "/o", b"2"));
    ok(create(&mut b, "/o/c1", 0));
    ok(create(&mut b, "/o/c2", 0));
    assert_eq!(
        pending(&mut a),
        [e(NODE_DATA_CHANGED, "/o"), e(NODE_CHILDREN_CHANGED, "/o")]
    );
    // Both watches were consumed: the server no longer holds them.
    assert_eq!(check_watches(&mut a, "/o", 2), -121);
    assert_eq!(check_watches(&mut a, "/o", 1), -121);
    ok(set_data(&mut b, "/o", b"3"));
    ok(delete(&mut b, "/o/c1"));
    assert_eq!(pending(&mut a), []);

    // Registering twice on the same path still gives one event.
    ok(exists_watch(&mut a, "/o"));
    ok(get_data_watch(&mut a, "/o"));
    ok(set_data(&mut b, "/o", b"4"));
    assert_eq!(pending(&mut a), [e(NODE_DATA_CHANGED, "/o")]);
}

#[test]
fn exists_on_a_missing_node_sets_a_watch_but_get_data_does_not() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let mut b = raw(&gk);
    assert_eq!(err_of(&exists_watch(&mut a, "/x")), -101);
    assert_eq!(err_of(&get_data_watch(&mut a, "/y")), -101);
    assert_eq!(err_of(&children_watch(&mut a, "/z")), -101);
    ok(create(&mut b, "/x", 0));
    ok(create(&mut b, "/y", 0));
    ok(create(&mut b, "/z", 0));
    assert_eq!(pending(&mut a), [e(NODE_CREATED, "/x")]);
}

#[test]
fn delete_sends_one_node_deleted_per_connection_then_the_parent_change() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let mut b = raw(&gk);
    ok(create(&mut b, "/e", 0));
    ok(create(&mut b, "/e/c", 0));
    ok(get_data_watch(&mut a, "/e/c"));
    ok(children_watch(&mut a, "/e/c"));
    ok(children_watch(&mut a, "/e"));
    ok(delete(&mut b, "/e/c"));
    assert_eq!(
        pending(&mut a),
        [e(NODE_DELETED, "/e/c"), e(NODE_CHILDREN_CHANGED, "/e")]
    );
    // The child-table slot was consumed along with the data one.
    assert_eq!(check_watches(&mut a, "/e/c", 3), -121);

    // create /a/b with exists(/a/b) and getChildren(/a): the node's event comes first.
    assert_eq!(err_of(&exists_watch(&mut a, "/e/n")), -101);
    ok(children_watch(&mut a, "/e"));
    ok(create(&mut b, "/e/n", 0));
    assert_eq!(
        pending(&mut a),
        [e(NODE_CREATED, "/e/n"), e(NODE_CHILDREN_CHANGED, "/e")]
    );
}

#[test]
fn multi_fires_each_ops_events_in_order_before_its_reply() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    ok(create(&mut a, "/a", 0));
    ok(create(&mut a, "/c", 0));
    ok(get_data_watch(&mut a, "/a"));
    assert_eq!(err_of(&exists_watch(&mut a, "/b")), -101);
    ok(exists_watch(&mut a, "/c"));
    ok(children_watch(&mut a, "/"));
    let ops = vec![
        MultiOp::SetData(SetDataRequest {
            path: "/a".into(),
            data: None,
            version: -1,
        }),
        MultiOp::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: "/b".into(),
                data: None,
                acl: vec![anyone()],
                flags: 0,
            },
        },
        MultiOp::Delete(DeleteRequest {
            path: "/c".into(),
            version: -1,
        }),
    ];
    let x = ok(a.call(OpCode::Multi, &Request::Multi(ops)));
    assert_eq!(
        events(&x),
        [
            e(NODE_DATA_CHANGED, "/a"),
            e(NODE_CREATED, "/b"),
            e(NODE_CHILDREN_CHANGED, "/"),
            e(NODE_DELETED, "/c"),
        ]
    );
    // A failed multi changes nothing and fires nothing.
    ok(get_data_watch(&mut a, "/a"));
    let ops = vec![
        MultiOp::SetData(SetDataRequest {
            path: "/a".into(),
            data: None,
            version: -1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/missing".into(),
            version: -1,
        }),
    ];
    let x = ok(a.call(OpCode::Multi, &Request::Multi(ops)));
    assert_eq!(events(&x), []);
}

// ---------------------------------------------------------------------------------------
// Persistent and recursive watches
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn persistent_watch_fires_repeatedly_for_the_node_and_its_children() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let b = connect(gk.addr).await;
    // Set on a node that does not exist yet.
    let mut w = a.watch("/pw", AddWatchMode::Persistent).await.unwrap();
    b.create("/pw", b"", &persistent()).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeCreated, "/pw"));
    b.set_data("/pw", b"1", None).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeDataChanged, "/pw"));
    b.set_data("/pw", b"2", None).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeDataChanged, "/pw"));
    b.create("/pw/c", b"", &persistent()).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeChildrenChanged, "/pw"));
    // Grandchildren and data changes of children are not the node's business.
    b.create("/pw/c/g", b"", &persistent()).await.unwrap();
    b.set_data("/pw/c", b"x", None).await.unwrap();
    b.delete("/pw/c/g", None).await.unwrap();
    b.delete("/pw/c", None).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeChildrenChanged, "/pw"));
    // Deleting the node does not end the watch.
    b.delete("/pw", None).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeDeleted, "/pw"));
    b.create("/pw", b"", &persistent()).await.unwrap();
    assert_eq!(ev(&next(&mut w).await), (NodeCreated, "/pw"));
    quiet(&mut w, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn recursive_watch_sees_every_descendant_but_no_children_changed() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let b = connect(gk.addr).await;
    let mut w = a
        .watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    b.create("/r", b"", &persistent()).await.unwrap();
    b.create("/r/a", b"", &persistent()).await.unwrap();
    b.create("/r/a/b", b"", &persistent()).await.unwrap();
    b.set_data("/r/a/b", b"x", None).await.unwrap();
    b.create("/rx", b"", &persistent()).await.unwrap(); // a sibling with a common prefix
    b.delete("/r/a/b", None).await.unwrap();
    b.set_data("/r", b"y", None).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        let x = next(&mut w).await;
        got.push((x.event_type, x.path));
    }
    assert_eq!(
        got,
        [
            (NodeCreated, "/r".to_string()),
            (NodeCreated, "/r/a".to_string()),
            (NodeCreated, "/r/a/b".to_string()),
            (NodeDataChanged, "/r/a/b".to_string()),
            (NodeDeleted, "/r/a/b".to_string()),
            (NodeDataChanged, "/r".to_string()),
        ]
    );
    quiet(&mut w, Duration::from_millis(200)).await;
}

#[test]
fn persistent_watches_on_the_wire() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let mut b = raw(&gk);
    // addWatch needs no node and answers with a 4-byte ErrorResponse{0}.
    let x = ok(add_watch(&mut a, "/nope/x", 0));
    assert_eq!(x.reply.unwrap().body, [0, 0, 0, 0]);
    // An unknown mode is a marshalling error.
    assert_eq!(err_of(&add_watch(&mut a, "/nope", 2)), -5);

    ok(add_watch(&mut a, "/p", 0));
    ok(add_watch(&mut a, "/r", 1));
    ok(create(&mut b, "/p", 0));
    ok(create(&mut b, "/r", 0));
    ok(create(&mut b, "/r/k", 0));
    ok(create(&mut b, "/p/k", 0));
    ok(delete(&mut b, "/r/k"));
    assert_eq!(
        pending(&mut a),
        [
            e(NODE_CREATED, "/p"),
            e(NODE_CREATED, "/r"),
            e(NODE_CREATED, "/r/k"),
            e(NODE_CHILDREN_CHANGED, "/p"),
            e(NODE_DELETED, "/r/k"),
        ]
    );
    // A recursive watch and a standard watch below it: one event, standard slot consumed.
    ok(create(&mut b, "/r/s", 0));
    assert_eq!(pending(&mut a), [e(NODE_CREATED, "/r/s")]);
    ok(get_data_watch(&mut a, "/r/s"));
    ok(set_data(&mut b, "/r/s", b"1"));
    assert_eq!(pending(&mut a), [e(NODE_DATA_CHANGED, "/r/s")]);
    assert_eq!(check_watches(&mut a, "/r/s", 2), -121);
    ok(set_data(&mut b, "/r/s", b"2"));
    assert_eq!(pending(&mut a), [e(NODE_DATA_CHANGED, "/r/s")]);
}

#[test]
fn one_shot_registration_on_a_persistent_path_downgrades_its_data_slot() {
    // ZooKeeper keeps one mode per (connection, path, table); the last registration wins
    // (WatchManager.addWatch, ZOOKEEPER-4466).
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let mut b = raw(&gk);
    ok(create(&mut b, "/e", 0));
    ok(add_watch(&mut a, "/e", 0));
    ok(get_data_watch(&mut a, "/e"));
    ok(set_data(&mut b, "/e", b"1"));
    ok(set_data(&mut b, "/e", b"2"));
    ok(create(&mut b, "/e/k", 0));
    assert_eq!(
        pending(&mut a),
        [e(NODE_DATA_CHANGED, "/e"), e(NODE_CHILDREN_CHANGED, "/e")]
    );
    ok(delete(&mut b, "/e/k"));
    ok(delete(&mut b, "/e"));
    ok(create(&mut b, "/e", 0));
    assert_eq!(
        pending(&mut a),
        [e(NODE_CHILDREN_CHANGED, "/e"), e(NODE_DELETED, "/e")]
    );

    // The other way round, a persistent registration upgrades a one-shot child watch.
    ok(children_watch(&mut a, "/e"));
    ok(add_watch(&mut a, "/e", 0));
    ok(create(&mut b, "/e/1", 0));
    ok(create(&mut b, "/e/2", 0));
    assert_eq!(
        pending(&mut a),
        [
            e(NODE_CHILDREN_CHANGED, "/e"),
            e(NODE_CHILDREN_CHANGED, "/e")
        ]
    );
}

// ---------------------------------------------------------------------------------------
// checkWatches / removeWatches
// ---------------------------------------------------------------------------------------

#[test]
fn remove_watches_drops_the_watch_and_reports_no_watcher_when_absent() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let mut b = raw(&gk);
    ok(create(&mut b, "/w", 0));
    ok(get_data_watch(&mut a, "/w"));
    ok(children_watch(&mut a, "/w"));
    assert_eq!(check_watches(&mut a, "/w", 2), 0);
    assert_eq!(check_watches(&mut a, "/w", 1), 0);
    assert_eq!(check_watches(&mut a, "/w", 3), 0);
    assert_eq!(check_watches(&mut a, "/other", 3), -121);
    // checkWatches changes nothing.
    assert_eq!(check_watches(&mut a, "/w", 2), 0);

    assert_eq!(remove_watches(&mut a, "/w", 2), 0);
    assert_eq!(remove_watches(&mut a, "/w", 2), -121);
    assert_eq!(check_watches(&mut a, "/w", 2), -121);
    // Only the child watch is left.
    ok(set_data(&mut b, "/w", b"1"));
    ok(create(&mut b, "/w/c", 0));
    assert_eq!(pending(&mut a), [e(NODE_CHILDREN_CHANGED, "/w")]);

    // Any (3) removes a persistent watch from both tables.
    ok(add_watch(&mut a, "/w", 0));
    assert_eq!(remove_watches(&mut a, "/w", 3), 0);
    assert_eq!(remove_watches(&mut a, "/w", 3), -121);
    ok(set_data(&mut b, "/w", b"2"));
    ok(delete(&mut b, "/w/c"));
    assert_eq!(pending(&mut a), []);

    // A persistent watch removed with type 2 keeps its child-table half.
    ok(add_watch(&mut a, "/w", 0));
    assert_eq!(remove_watches(&mut a, "/w", 2), 0);
    ok(set_data(&mut b, "/w", b"3"));
    ok(create(&mut b, "/w/d", 0));
    assert_eq!(pending(&mut a), [e(NODE_CHILDREN_CHANGED, "/w")]);
    // Watcher types other than 1, 2 and 3 are unknown to 3.8.
    assert_eq!(check_watches(&mut a, "/w", 4), -5);
    assert_eq!(remove_watches(&mut a, "/w", 5), -5);
}

#[tokio::test]
async fn crate_removes_watches_it_no_longer_wants() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    a.create("/w", b"", &persistent()).await.unwrap();
    let (_, _, w) = a.get_and_watch_data("/w").await.unwrap();
    #[allow(deprecated)]
    w.remove().await.unwrap();
    let pw = a
        .watch("/w", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    #[allow(deprecated)]
    pw.remove().await.unwrap();
    // The server no longer holds anything for /w on that connection; a raw probe from
    // another session sees no watcher (checkWatches answers for any connection).
    let mut z = raw(&gk);
    assert_eq!(check_watches(&mut z, "/w", 3), -121);
}

// ---------------------------------------------------------------------------------------
// Ordering
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn watch_event_arrives_before_the_reply_of_a_later_request() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let b = connect(gk.addr).await;
    a.create("/o", b"old", &persistent()).await.unwrap();
    for round in 0..20 {
        let (_, _, w) = a.get_and_watch_data("/o").await.unwrap();
        let (_, _, cw) = a.get_and_watch_children("/o").await.unwrap();
        let value = format!("v{round}");
        b.set_data("/o", value.as_bytes(), None).await.unwrap();
        b.create(&format!("/o/{round}"), b"", &persistent())
            .await
            .unwrap();
        // A's read is ordered after B's writes, so its reply reflects them, and the events
        // they caused must already have been delivered when the reply is.
        let (data, _) = a.get_data("/o").await.unwrap();
        assert_eq!(data, value.as_bytes());
        let got = already_fired(w)
            .await
            .expect("data event before the read's reply");
        assert_eq!(ev(&got), (NodeDataChanged, "/o"));
        let got = already_fired(cw)
            .await
            .expect("child event before the read's reply");
        assert_eq!(ev(&got), (NodeChildrenChanged, "/o"));
    }
}

#[tokio::test]
async fn client_watching_the_node_it_writes_gets_the_event_before_the_reply() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    a.create("/self", b"", &persistent()).await.unwrap();
    for round in 0..20 {
        let (_, _, w) = a.get_and_watch_data("/self").await.unwrap();
        a.set_data("/self", format!("{round}").as_bytes(), None)
            .await
            .unwrap();
        let got = already_fired(w)
            .await
            .expect("event before setData's reply");
        assert_eq!(ev(&got), (NodeDataChanged, "/self"));
    }
    let (_, w) = a.check_and_watch_stat("/self/kid").await.unwrap();
    let (_, cw) = a.list_and_watch_children("/self").await.unwrap();
    a.create("/self/kid", b"", &ephemeral()).await.unwrap();
    assert_eq!(
        ev(&already_fired(w).await.expect("event before create's reply")),
        (NodeCreated, "/self/kid")
    );
    assert_eq!(
        ev(&already_fired(cw)
            .await
            .expect("child event before create's reply")),
        (NodeChildrenChanged, "/self")
    );

    // The same with a persistent watch.
    a.create("/pers", b"", &persistent()).await.unwrap();
    let mut pw = a.watch("/pers", AddWatchMode::Persistent).await.unwrap();
    for round in 0..20 {
        a.set_data("/pers", format!("{round}").as_bytes(), None)
            .await
            .unwrap();
        let got = already_next(&mut pw)
            .await
            .expect("persistent event before the reply");
        assert_eq!(ev(&got), (NodeDataChanged, "/pers"));
    }
    a.create("/pers/k", b"", &persistent()).await.unwrap();
    assert_eq!(
        ev(&already_next(&mut pw)
            .await
            .expect("child event before create's reply")),
        (NodeChildrenChanged, "/pers")
    );
    a.delete("/pers/k", None).await.unwrap();
    assert_eq!(
        ev(&already_next(&mut pw)
            .await
            .expect("child event before delete's reply")),
        (NodeChildrenChanged, "/pers")
    );
}

#[test]
fn own_write_event_precedes_its_reply_on_the_wire() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    ok(create(&mut a, "/n", 0));
    ok(get_data_watch(&mut a, "/n"));
    let x = ok(set_data(&mut a, "/n", b"x"));
    assert_eq!(events(&x), [e(NODE_DATA_CHANGED, "/n")]);
    assert!(x.strays.is_empty());
    ok(exists_watch(&mut a, "/n"));
    ok(children_watch(&mut a, "/"));
    let x = ok(delete(&mut a, "/n"));
    assert_eq!(
        events(&x),
        [e(NODE_DELETED, "/n"), e(NODE_CHILDREN_CHANGED, "/")]
    );
}

#[test]
fn pipelined_requests_are_answered_in_order_with_events_first() {
    let gk = Geokeeper::start("");
    let mut a = raw(&gk);
    let req = |path: &str| CreateRequest {
        path: path.into(),
        data: None,
        acl: vec![anyone()],
        flags: 0,
    };
    // Six requests on the wire at once, reads behind writes on the same session.
    a.send(
        1,
        OpCode::Create2,
        &Request::Create {
            op: OpCode::Create2,
            req: req("/p"),
        },
    )
    .unwrap();
    let get = |watch| {
        Request::GetData(GetDataRequest {
            path: "/p".into(),
            watch,
        })
    };
    a.send(2, OpCode::GetData, &get(true)).unwrap();
    let set = Request::SetData(SetDataRequest {
        path: "/p".into(),
        data: Some(b"v".to_vec().into()),
        version: -1,
    });
    a.send(3, OpCode::SetData, &set).unwrap();
    let exists = Request::Exists(ExistsRequest {
        path: "/p".into(),
        watch: true,
    });
    a.send(4, OpCode::Exists, &exists).unwrap();
    let del = Request::Delete(DeleteRequest {
        path: "/p".into(),
        version: -1,
    });
    a.send(5, OpCode::Delete, &del).unwrap();
    a.send(6, OpCode::GetData, &get(false)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let f = a.read_frame().expect("frame");
        let what = if f.header.xid == -1 {
            let ev: WatcherEvent = geokeeper_core::proto::Record::from_bytes(&f.body).unwrap();
            format!("event {} {}", ev.r#type, ev.path)
        } else {
            format!("reply {} err {}", f.header.xid, f.header.err)
        };
        seen.push(what);
    }
    assert_eq!(
        seen,
        [
            "reply 1 err 0",
            "reply 2 err 0",
            "event 3 /p",
            "reply 3 err 0",
            "reply 4 err 0",
            "event 2 /p",
            "reply 5 err 0",
            "reply 6 err -101",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// ACL filtering at delivery (ZooKeeper 3.8.4, CVE-2024-23944)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn recursive_watch_events_need_read_permission_on_the_node() {
    let gk = Geokeeper::start("");
    let a = connect(gk.addr).await;
    let owner = connect(gk.addr).await;
    owner.auth("digest", b"alice:secret").await.unwrap();
    owner.create("/open", b"", &persistent()).await.unwrap();
    let mut w = a
        .watch("/open", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let private = [Acl::new(
        Permission::ALL,
        AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
    )];
    owner
        .create(
            "/open/sec",
            b"",
            &CreateMode::Persistent.with_acls(Acls::new(&private)),
        )
        .await
        .unwrap();
    owner.set_data("/open/sec", b"x", None).await.unwrap();
    owner.create("/open/pub", b"", &persistent()).await.unwrap();
    // The first event A may see is the one about the node it can read.
    assert_eq!(ev(&next(&mut w).await), (NodeCreated, "/open/pub"));
    quiet(&mut w, Duration::from_millis(200)).await;
}
